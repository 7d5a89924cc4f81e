"""Where site.py finds pyns_boot.pth, and whether a fresh start would run the hook.

Kept apart from pyns_boot._doctor so that ``pyns-boot run`` can check
(hook_blocker) without the doctor's imports: run starts a second
interpreter, and everything it imports first is start-up time.
"""

from __future__ import annotations

import os
import site
import sys

PTH = "pyns_boot.pth"


def site_dirs() -> list[str]:
    """The directories whose .pth files site.py processes, in its order (user site first)."""
    dirs = []
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    dirs.extend(site.getsitepackages())
    result: list[str] = []
    for path in dirs:
        real = os.path.realpath(path)
        if os.path.isdir(path) and real not in (os.path.realpath(p) for p in result):
            result.append(path)
    return result


def pth_names(directory: str) -> list[str]:
    """The .pth files of a directory in site.py's order (3.13+ skips hidden ones)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    hidden_skipped = sys.version_info >= (3, 13)
    return sorted(n for n in names if n.endswith(".pth") and not (hidden_skipped and n.startswith(".")))


def hook_dir(dirs: list[str]) -> str | None:
    """The first site directory holding pyns_boot.pth: the one whose line acts."""
    for directory in dirs:
        if PTH in pth_names(directory):
            return directory
    return None


def hook_blocker() -> str | None:
    """Why a fresh start of this interpreter (without -S) would not run the hook, or None."""
    if hook_dir(site_dirs()) is None:
        return "%s is not in a site-packages directory of %s" % (PTH, sys.executable)
    try:
        from pyns_boot import _setns  # noqa: F401
    except ImportError as error:
        return "the C helper pyns_boot._setns does not load: %s" % error
    return None


__all__ = ["PTH", "hook_blocker", "hook_dir", "pth_names", "site_dirs"]
