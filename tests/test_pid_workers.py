"""call_in and NamespaceExecutor into a container-like target: own mnt (the installation hidden, its own
/proc), pid and uts namespaces.  Workers live inside the pid namespace and keep importing from the
caller's installation; a program that itself started with gons_mnt can use call_in."""

from __future__ import annotations

import errno
import os
import re
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import executor_targets as targets
import pytest
from nsutil import Holder, Venv, run_python
from test_foreign_mnt import TARGET_TEXT, base_prefix, hiding_setup, mnt_venv, result_of  # noqa: F401 (fixtures)

from pyns_boot import NamespaceError, NamespaceExecutor, Namespaces, call_in
from pyns_boot._call_in import _close_shared_server

HOSTNAME = "pyns-pid-ct"


@pytest.fixture
def container(holder: Callable[..., Holder], workdir: Path, base_prefix: str) -> Holder:  # noqa: F811
    setup = hiding_setup(workdir, base_prefix, proc="own-pid-namespace") + "\nhostname " + HOSTNAME
    h: Holder = holder(("mnt", "pid", "uts"), setup)
    return h


@pytest.fixture
def shared_server() -> Iterator[None]:
    _close_shared_server()
    yield
    _close_shared_server()


def target_file(workdir: Path) -> str:
    return str(workdir / "target" / "file")


def test_call_in_lives_in_the_pid_namespace_and_keeps_importing(
    container: Holder, workdir: Path, shared_server: None
) -> None:
    spec = Namespaces(mnt=container.ref("mnt"), pid=container.ref("pid"), uts=container.ref("uts"))
    result = call_in(spec, targets.read_file, target_file(workdir))
    assert result["text"].strip() == TARGET_TEXT and result["mnt"] == container.link("mnt")
    assert call_in(spec, targets.own_pid_namespace) == container.link("pid")
    assert 1 < call_in(spec, os.getpid) < 1000  # counted in the target's pid namespace
    assert call_in(spec, targets.hostname) == HOSTNAME
    # the installation is hidden in the target: a module the worker had not loaded comes from the old root
    assert call_in(spec, targets.imported_from, "decimal").startswith("/proc/self/fd/")


def test_executor_workers_live_in_the_pid_namespace(container: Holder, workdir: Path) -> None:
    spec = Namespaces.of_pid(container.pid, "mnt", "pid", "uts")
    with NamespaceExecutor(spec, max_workers=2) as executor:
        futures = [executor.submit(targets.own_pid_namespace) for _ in range(4)]
        assert {f.result(timeout=60) for f in futures} == {container.link("pid")}
        assert executor.submit(targets.read_file, target_file(workdir)).result(timeout=60)["text"].strip() == (
            TARGET_TEXT
        )


def test_mnt_without_pid_says_to_add_it(container: Holder, shared_server: None) -> None:
    with pytest.raises(NamespaceError) as info:
        call_in(Namespaces(mnt=container.ref("mnt")), targets.add, 1)
    message = str(info.value)
    assert message.startswith('pyns_boot: the worker joined mnt "{}"'.format(container.ref("mnt"))), message
    assert (
        "add pid={} to the Namespaces".format(container.ref("pid")) in message and "exited with status" not in message
    )
    assert info.value.failed == "mnt"


def test_mnt_with_the_pid_of_another_namespace_says_to_name_the_right_one(
    container: Holder, holder: Callable[..., Holder], shared_server: None
) -> None:
    # The worker lives in another pid namespace than the one the target's /proc shows: the start-up hook's
    # switch (pyns_boot.hook.switch_imports) fails, and the way out is in the terms of Namespaces.
    other = holder(("pid",))
    with pytest.raises(NamespaceError) as info:
        call_in(Namespaces(mnt=container.ref("mnt"), pid=other.ref("pid")), targets.add, 1)
    expected = (
        'pyns_boot: the worker joined mnt "{}", but cannot keep importing from the caller\'s installation: '
        r"/proc/self/fd/\d+ is not reachable there \(the target's /proc belongs to a pid namespace this process is "
        r"not a member of\); make pid name the pid namespace that /proc belongs to, or set "
        r"PYNS_BOOT_KEEP_IMPORTS=0 in the caller to import from the target's filesystem instead"
    ).format(re.escape(container.ref("mnt")))
    assert re.fullmatch(expected, str(info.value)), str(info.value)
    assert info.value.failed == "mnt" and info.value.errno == errno.ENOENT


def test_worker_in_pid_namespace_with_dead_init(dead_pid_ns: str, shared_server: None) -> None:
    with pytest.raises(NamespaceError) as info:
        call_in(Namespaces(pid=dead_pid_ns), targets.add, 1)
    # Refused at the join (Linux 6.11+ tells a dead pid namespace), before the worker forks into it.
    assert str(info.value).startswith(
        f'pyns_boot: cannot join gons_pid using reference "{dead_pid_ns}": the pid namespace is dead'
    )
    assert info.value.failed == "pid" and info.value.errno == errno.ESRCH


@pytest.fixture
def dead_pid_ns(tmp_path: Path) -> Iterator[str]:
    """A pid namespace kept by a bind mount after its init has exited."""
    subprocess.run(["mount", "--bind", str(tmp_path), str(tmp_path)], check=True)
    subprocess.run(["mount", "--make-private", str(tmp_path)], check=True)
    path = tmp_path / "pidns"
    path.touch()
    subprocess.run(["unshare", f"--pid={path}", "--fork", "true"], check=True)
    yield str(path)
    subprocess.run(["umount", str(path)], check=False)
    subprocess.run(["umount", str(tmp_path)], check=False)


CALLER = r"""
import json, os, socket, sys
from pyns_boot import Namespaces, NamespaceExecutor, call_in, status
hostname = call_in(Namespaces(uts="/proc/1/ns/uts"), socket.gethostname)
with NamespaceExecutor(Namespaces(uts="/proc/1/ns/uts"), max_workers=1) as executor:
    again = executor.submit(socket.gethostname).result(timeout=60)
print("RESULT " + json.dumps({"hostname": hostname, "again": again, "pid": os.getpid(),
                              "mode": status().pid_mode, "keeps": status().keeps_imports}))
"""


def test_call_in_from_a_program_started_with_gons_mnt(container: Holder, mnt_venv: Venv) -> None:  # noqa: F811
    env = {"gons_mnt": container.ref("mnt"), "gons_pid": container.ref("pid")}
    result = run_python(mnt_venv.python, CALLER, env)
    assert result.returncode == 0, result.stderr
    out = result_of(result.stdout)
    assert out["hostname"] == out["again"] == HOSTNAME
    assert out["mode"] == "entered" and out["keeps"] is True and 1 < out["pid"] < 1000
    assert result.stderr == ""
    leftover = Path(f"/proc/{container.pid}/task/{container.pid}/children").read_text().split()
    assert leftover == [], "no fork server, worker or supervisor left in the target"
