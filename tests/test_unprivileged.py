"""A non-root user: joins what its own user namespace owns, is refused the rest."""

from __future__ import annotations

import errno
from typing import Callable

from nsutil import NOBODY, Holder, NamedNetns, Venv, as_user, parse_probe, probe, run_python


def test_child_is_unprivileged_and_runs_the_given_interpreter(hook_venv: Venv) -> None:
    report = probe(hook_venv.python, wrapper=as_user())
    root = probe(hook_venv.python)
    assert report["uid"] == NOBODY
    # The trap: an unreachable pyenv interpreter would silently load another libpython.
    assert report["version"] == root["version"]


def test_user_namespace_it_owns_then_what_that_namespace_owns(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("user", "mnt", "net", "uts", "ipc"), prefix=as_user())
    env = {"gons_" + t: h.ref(t) for t in ("user", "mnt", "net", "uts", "ipc")}
    report = probe(hook_venv.python, env, wrapper=as_user())
    for ns_type in ("user", "mnt", "net", "uts", "ipc"):
        assert report["links"][ns_type] == h.link(ns_type), ns_type
    assert report["status"]["ok"] and report["uid"] == 0  # root inside, mapped to nobody outside


def test_without_the_user_namespace_first_it_is_refused(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("user", "net"), prefix=as_user())
    env = {"gons_net": h.ref("net")}
    result = run_python(hook_venv.python, "print('user code ran')", env, wrapper=as_user())
    assert result.returncode == 125 and result.stdout == ""
    message, hint = result.stderr.splitlines()
    assert message == 'pyns_boot: cannot join gons_net using reference "{}": Operation not permitted'.format(
        h.ref("net")
    )
    owner = h.link("user")[len("user:") :]
    assert hint.startswith(f"pyns_boot: hint: that net namespace belongs to user namespace user:{owner}; "), hint
    assert hint.endswith("has no CAP_SYS_ADMIN there: join the user namespace that owns it first (gons_user=...)")


def test_bind_mounted_reference_of_root_opens_then_eperm(hook_venv: Venv, netns: NamedNetns) -> None:
    env = {"gons_net": netns.path, "PYNS_BOOT_ON_ERROR": "warn"}
    result = run_python(hook_venv.python, env=env, wrapper=as_user())
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f'pyns_boot: cannot join gons_net using reference "{netns.path}": Operation not permitted\n'
        "pyns_boot: hint: joining a net namespace needs CAP_SYS_ADMIN in this process's user namespace and in the "
        f"one owning it; this process runs as uid {NOBODY} without CAP_SYS_ADMIN: run it as root\n"
    )
    status = parse_probe(result.stdout)["status"]
    assert status["errno"] == errno.EPERM and status["failed"] == "net"


def test_proc_reference_of_root_process_is_eacces(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net",))  # owned by root
    result = run_python(hook_venv.python, "print('user code ran')", {"gons_net": h.ref("net")}, wrapper=as_user())
    assert result.returncode == 125
    assert result.stderr == (
        (
            'pyns_boot: invalid gons_net reference "{}": Permission denied\n'
            "pyns_boot: hint: reading another user's namespaces needs ptrace access to process {}: run as its owner or "
            "root\n"
        ).format(h.ref("net"), h.pid)
    )
