"""pyns_boot._startup_order: the model of what site.py runs before the hook, per Python version.

pyns-boot doctor names the .pth and .start files that run before pyns_boot's (one of them may start
a thread, which blocks the joins).  The model, on site directories written here; the real site.py
of each interpreter is compared in tests/test_doctor.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyns_boot import _startup_order

pytestmark = pytest.mark.unit  # files in tmp_path: no privilege needed


def site_dirs(tmp_path: Path, files: dict[str, str]) -> list[str]:
    """Site directories 'a' and 'b' (in that order) holding files {'a/x.pth': text, ...}."""
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for name in ("a", "b"):
        (tmp_path / name).mkdir(exist_ok=True)
    return [str(tmp_path / "a"), str(tmp_path / "b")]


FILES = {
    "a/zz.pth": "import zz\n",
    "a/.hidden.pth": "import hidden\n",
    "a/paths.pth": "/some/dir\n",
    "a/pyns_boot.pth": "import os\n",
    "a/early.pth": "import early\n",
    "b/b.pth": "import b\n",
    "b/entry.start": "entry:main\n",
    "a/suppressed.pth": "import suppressed\n",
    "a/suppressed.start": "suppressed:main\n",
}


def names(order: list[tuple[str, str]]) -> list[str]:
    return [Path(directory).name + "/" + name for directory, name in order]


def test_before_313_every_pth_in_sorted_order_hidden_ones_too(tmp_path: Path) -> None:
    dirs = site_dirs(tmp_path, FILES)
    order = _startup_order.running_order(dirs, (3, 12))
    assert names(order) == [
        "a/.hidden.pth",
        "a/early.pth",
        "a/paths.pth",
        "a/pyns_boot.pth",
        "a/suppressed.pth",
        "a/zz.pth",
        "b/b.pth",
    ]
    hook, before = _startup_order.before_hook(dirs, (3, 12))
    assert hook == str(tmp_path / "a" / "pyns_boot.pth")
    assert names(before) == ["a/.hidden.pth", "a/early.pth", "a/paths.pth"]


def test_313_skips_hidden_files(tmp_path: Path) -> None:
    dirs = site_dirs(tmp_path, FILES)
    assert "a/.hidden.pth" not in names(_startup_order.running_order(dirs, (3, 13)))


def test_315_import_lines_first_then_start_entries(tmp_path: Path) -> None:
    """PEP 829 on 3.15-3.17: .pth files without an import line do not count, a .pth with a .start
    beside it is silenced, and every .start entry runs after every import line."""
    dirs = site_dirs(tmp_path, FILES)
    order = _startup_order.running_order(dirs, (3, 15))
    assert names(order) == [
        "a/early.pth",
        "a/pyns_boot.pth",
        "a/zz.pth",
        "b/b.pth",
        "a/suppressed.start",
        "b/entry.start",
    ]


def test_318_only_start_entries(tmp_path: Path) -> None:
    dirs = site_dirs(tmp_path, {**FILES, "b/pyns_boot.start": "pyns_boot.hook:start\n"})
    order = _startup_order.running_order(dirs, (3, 18))
    assert names(order) == ["a/suppressed.start", "b/entry.start", "b/pyns_boot.start"]
    hook, before = _startup_order.before_hook(dirs, (3, 18))
    assert hook == str(tmp_path / "b" / "pyns_boot.start")
    assert names(before) == ["a/suppressed.start", "b/entry.start"]


def test_no_hook_file(tmp_path: Path) -> None:
    dirs = site_dirs(tmp_path, {"a/x.pth": "import x\n"})
    assert _startup_order.before_hook(dirs, (3, 12)) == (None, [])


def test_start_entries_as_site_reads_them(tmp_path: Path) -> None:
    start = tmp_path / "x.start"
    start.write_bytes(b"\xef\xbb\xbf# a comment\n  pkg.mod:func  \n\nother:main\n")
    assert _startup_order.start_entries(str(start)) == ["pkg.mod:func", "other:main"]
    start.write_bytes(b"\xff\xfe not UTF-8\n")
    assert _startup_order.start_entries(str(start)) is None
    assert _startup_order.start_entries(str(tmp_path / "absent.start")) is None
