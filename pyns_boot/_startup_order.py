"""What site.py runs before the pyns_boot hook, modelled per Python version.

- 3.8-3.14: site directory by site directory (user site first), the .pth
  files of each in sorted order (3.13+ skips hidden ones), each file's path
  and import lines together; .start files are not read.
- 3.15-3.17 (PEP 829, site.StartupState): the .pth and .start files of every
  site directory are read first; then the path lines of all of them are
  applied, then every import line of every site directory runs (same order;
  a .pth with a .start of the same name beside it has its import lines
  suppressed), and only then every .start entry.
- 3.18 on: import lines are ignored; only .start entries run.

The hook is the import line of the first pyns_boot.pth that runs or, when
none does, the first pyns_boot.start entry.  Used by pyns-boot doctor.
"""

from __future__ import annotations

import os
import sys

from pyns_boot._sitedirs import PTH, pth_names

START = "pyns_boot.start"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Tuple

    Version = Tuple[int, int]


def has_import_line(path: str) -> bool:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as file:
            return any(line.strip().startswith(("import ", "import\t")) for line in file)
    except OSError:
        return False


def running_order(dirs: list[str], version: Version | None = None) -> list[tuple[str, str]]:
    """(directory, file name) of every .pth with code and every .start, in the order site.py runs them."""
    version = version or (sys.version_info[0], sys.version_info[1])
    if version < (3, 15):
        return [(d, n) for d in dirs for n in pth_names(d, ".pth", version)]
    order: list[tuple[str, str]] = []
    if version < (3, 18):
        for d in dirs:
            starts = set(pth_names(d, ".start", version))
            for name in pth_names(d, ".pth", version):
                if name[: -len(".pth")] + ".start" not in starts and has_import_line(os.path.join(d, name)):
                    order.append((d, name))
    order += [(d, n) for d in dirs for n in pth_names(d, ".start", version)]
    return order


def before_hook(dirs: list[str], version: Version | None = None) -> tuple[str | None, list[tuple[str, str]]]:
    """(path of the file whose line or entry runs the hook or None, the files site.py runs before it)."""
    order = running_order(dirs, version)
    for position, (directory, name) in enumerate(order):
        if name in (PTH, START):
            return os.path.join(directory, name), order[:position]
    return None, []


def start_entries(path: str) -> list[str] | None:
    """The entries of a .start file as site.py reads them (None: unreadable)."""
    try:
        with open(path, "rb") as file:
            text = file.read().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]
