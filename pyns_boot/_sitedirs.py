"""Where site.py finds pyns_boot.pth and the .pth files it reads before it.

Kept apart from pyns_boot._doctor so that ``pyns-boot run`` can check
(hook_blocker) without the doctor's imports: run starts a second
interpreter, and everything it imports first is start-up time.  The
start-up hook uses it on one failure path only: when a join is refused
because other threads exist, the message names the .pth files that ran
before pyns_boot.pth (threads_note).
"""

from __future__ import annotations

import os
import site
import sys

PTH = "pyns_boot.pth"


def site_dirs() -> list[str]:
    """The directories whose .pth files site.py processes, in its order: a
    virtual environment's own first (site.venv() reads it before anything
    else, while site.PREFIXES still names the base installation: this holds
    during start-up too), then the user site, then the prefixes'."""
    dirs = []
    if sys.prefix != sys.base_prefix:
        dirs.extend(site.getsitepackages([sys.prefix]))
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    dirs.extend(site.getsitepackages())
    result: list[str] = []
    for path in dirs:
        real = os.path.realpath(path)
        if os.path.isdir(path) and real not in (os.path.realpath(p) for p in result):
            result.append(path)
    return result


def pth_names(directory: str, suffix: str = ".pth", version: tuple[int, int] | None = None) -> list[str]:
    """The .pth files (or the .start files: suffix) of a directory in site.py's order; version (default: this
    Python's) 3.13 and later skips hidden ones."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    hidden_skipped = (version or sys.version_info[:2]) >= (3, 13)
    return sorted(n for n in names if n.endswith(suffix) and not (hidden_skipped and n.startswith(".")))


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
        import _pyns_boot  # noqa: F401
    except ImportError as error:
        return "the C helper _pyns_boot does not load: %s" % error
    return None


def pth_before_hook() -> list[str]:
    """The paths of the .pth files site.py ran before pyns_boot.pth."""
    before: list[str] = []
    for directory in site_dirs():
        names = pth_names(directory)
        if PTH in names:
            return before + [os.path.join(directory, n) for n in names if n < PTH]
        before.extend(os.path.join(directory, n) for n in names)
    return before


def threads_note() -> str:
    """What the start-up hook adds to a join refused for other threads."""
    if sys.flags.no_site:
        return "; site.py did not run (-S): the threads come from the program that embeds Python or a preloaded library"
    from pyns_boot import _policy

    before = pth_before_hook()
    warn = "set %s=warn to carry on without this join" % _policy.VARIABLE if _policy.offers_warn() else ""
    if not before:
        return (
            "; no .pth file ran before %s: the threads come from the program that embeds Python or a "
            "preloaded library%s" % (PTH, "; " + warn if warn else "")
        )
    return (
        "; .pth files that ran before %s (one of them started the threads): %s; remove that package or make its "
        ".pth file sort after %s%s" % (PTH, ", ".join(before), PTH, ", or " + warn if warn else "")
    )


__all__ = ["PTH", "hook_blocker", "hook_dir", "pth_before_hook", "pth_names", "site_dirs", "threads_note"]
