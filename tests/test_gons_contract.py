"""Points of docs/env-interface.md where pyns_boot and gons could part ways,
checked on real interpreters: the working directory after a skipped mnt join,
interpreter flags, and secure-execution mode for root."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Iterator

import pytest
from nsutil import EXIT_STATUS, NamedNetns, Venv, make_venv, probe, rmtree, run_python


def test_own_mount_namespace_moves_the_cwd_to_root(hook_venv: Venv, tmp_path: Path) -> None:
    """Already a member of the gons_mnt namespace: no setns, but the working
    directory becomes / as after a join (and as gons's setns does), so a
    relative path means the same whichever namespace gons_mnt names."""
    report = probe(hook_venv.python, {"gons_mnt": "/proc/self/ns/mnt"}, cwd=str(tmp_path))
    assert report["status"]["namespaces"]["mnt"]["outcome"] == "already_joined"
    assert report["cwd"] == "/"


def test_relative_reference_after_skipped_mnt_join(hook_venv: Venv, netns: NamedNetns, tmp_path: Path) -> None:
    """gons_order=mnt,net with a relative gons_net: resolved from / after the
    mnt step, joined or skipped alike (from tmp_path it would not exist)."""
    relative = netns.path.lstrip("/")
    env = {"gons_order": "mnt,net", "gons_mnt": "/proc/self/ns/mnt", "gons_net": relative}
    report = probe(hook_venv.python, env, cwd=str(tmp_path))
    assert report["status"]["state"] == "succeeded", report["status"]["error"]
    assert report["links"]["net"] == netns.link()


@pytest.mark.parametrize("flag", ["-I", "-E", "-s"])
def test_isolated_and_ignore_environment_still_honour_gons(hook_venv: Venv, netns: NamedNetns, flag: str) -> None:
    """-E ignores PYTHON* variables only, -s the user site only, -I is both
    (and safe-path): site.py still reads site-packages, so pyns_boot.pth runs
    and gons_* (not PYTHON* variables) are honoured.  Only -S turns it off."""
    report = probe(hook_venv.python, {"gons_net": netns.path}, python_args=(flag,))
    assert report["links"]["net"] == netns.link()
    assert report["status"]["state"] == "succeeded"


def test_dash_S_does_not(hook_venv: Venv, netns: NamedNetns) -> None:
    code = "import os; print(os.readlink('/proc/self/ns/net'))"
    result = run_python(hook_venv.python, code, {"gons_net": netns.path}, python_args=("-S",))
    assert result.returncode == 0 and result.stdout.strip() == os.readlink("/proc/self/ns/net")


@pytest.fixture(scope="module")
def root_setgid_venv(workdir: Path, wheel: Path) -> Iterator[Venv]:
    """A copy of the interpreter, set-group-ID to nogroup: root runs it with egid != rgid."""
    path = workdir / "contract-setgid-venv"
    venv = make_venv(path, copies=True)
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    real = os.path.realpath(venv.python)
    os.chown(real, 0, 65534)
    os.chmod(real, 0o2755)
    yield venv
    rmtree(path)


def test_root_running_a_setgid_interpreter_is_secure_mode(root_setgid_venv: Venv, netns: NamedNetns) -> None:
    """AT_SECURE is set for root too when the effective group differs from the
    real one: the variables are refused, as for any other user."""
    code = (
        "import ctypes, json, os, pyns_boot\n"
        "print(json.dumps([ctypes.CDLL(None).getauxval(23), os.getegid(), pyns_boot.status().errno]))\n"
    )
    env = {"gons_net": netns.path}
    refused = run_python(root_setgid_venv.python, "print('user code ran')", env)
    assert (refused.returncode, refused.stdout) == (EXIT_STATUS, "")
    assert refused.stderr.startswith(f'pyns_boot: refusing gons_net="{netns.path}": ')
    warned = run_python(root_setgid_venv.python, code, {**env, "PYNS_BOOT_ON_ERROR": "warn"})
    assert os.getuid() == 0 and json.loads(warned.stdout) == [1, 65534, errno.EPERM]
