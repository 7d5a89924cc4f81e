"""'!' entries are opened before the first switch (second, independent check).

tests/test_errors.py shows a bad '!' reference stopping the run before any
join.  This shows what early opening is for: a reference that exists only
in the mount namespace the process starts in.  A bind mount made after the
holder's private mount namespace was created exists only outside it; inside
it the same path is the plain empty file under the mount.  Opened early
(before the mnt join) it is the namespace; opened at its turn (after) it is
that regular file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest
from nsutil import EXIT_STATUS, Holder, Venv, probe, run_python, world_readable_dir


@pytest.fixture
def outside_only(holder: Callable[..., Holder]) -> Iterator[tuple[Holder, str]]:
    """A holder (mnt, net) and a path to its net namespace that exists only outside its mount namespace."""
    h = holder(("mnt", "net"))
    directory = world_readable_dir("pyns-boot-early-")
    path = directory / "net"
    path.touch()
    subprocess.run(["mount", "--bind", h.ref("net"), str(path)], check=True)
    try:
        yield h, str(path)
    finally:
        subprocess.run(["umount", str(path)], check=False)
        path.unlink()
        directory.rmdir()


def test_early_reference_is_resolved_before_the_mnt_join(hook_venv: Venv, outside_only: tuple[Holder, str]) -> None:
    h, path = outside_only
    report = probe(hook_venv.python, {"gons_mnt": h.ref("mnt"), "gons_net": path, "gons_order": "!mnt,!net"})
    assert report["links"]["net"] == h.link("net") and report["links"]["mnt"] == h.link("mnt")
    net = report["status"]["namespaces"]["net"]
    assert net["outcome"] == "joined" and net["early"] is True
    # the default order marks every type early
    report = probe(hook_venv.python, {"gons_mnt": h.ref("mnt"), "gons_net": path})
    assert report["links"]["net"] == h.link("net")


def test_late_reference_is_resolved_after_the_mnt_join(hook_venv: Venv, outside_only: tuple[Holder, str]) -> None:
    # The control: without "!" the same path is resolved in the holder's mount namespace.
    h, path = outside_only
    result = run_python(
        hook_venv.python,
        "print('user code ran')",
        {"gons_mnt": h.ref("mnt"), "gons_net": path, "gons_order": "!mnt,net"},
    )
    assert result.returncode == EXIT_STATUS and result.stdout == ""
    assert result.stderr == (
        f'pyns_boot: invalid gons_net reference "{path}": not a namespace reference (it is a regular file)\n'
    )
    assert Path(path).exists()
