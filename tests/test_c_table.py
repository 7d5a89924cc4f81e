"""The C helper's table, plan and reference check, as the rest of the package sees them.

_pyns_boot.kinds(), plan() and check_reference() are the core's own table
(ns_kinds), ns_plan and the check a join makes: Namespaces and the pyns-boot
command use them, so a message says the same whether the hook, the API or
the command line finds the problem.  The message tests compare the three
on the same input, against a real hook in a real child.
"""

from __future__ import annotations

import os
from pathlib import Path

import _pyns_boot
import pytest
from cliutil import pyns_boot
from nsutil import EXIT_STATUS, HANG_TIMEOUT, SELF_LINKS, TYPES, Venv, run_python

from pyns_boot import Namespaces
from pyns_boot._cli_namespaces import check_reference
from pyns_boot.cli import option_names

# The kernel's values (linux/sched.h), written out so that the C table is checked against something it did not make.
CLONE_FLAGS = {
    "cgroup": 0x02000000,
    "ipc": 0x08000000,
    "mnt": 0x00020000,
    "net": 0x40000000,
    "pid": 0x20000000,
    "time": 0x00000080,
    "user": 0x10000000,
    "uts": 0x04000000,
}
SINGLE_THREADED = {"mnt", "time", "user"}  # setns(2): the kernel refuses these to a multi-threaded caller


def test_kinds_is_the_table() -> None:
    kinds = _pyns_boot.kinds()
    assert tuple(k.name for k in kinds) == _pyns_boot.TYPES == TYPES
    assert tuple(k.variable for k in kinds) == _pyns_boot.VARIABLES == tuple("gons_" + t for t in TYPES)
    assert {k.name: k.clone_flag for k in kinds} == CLONE_FLAGS
    assert {k.name: k.self_links for k in kinds} == SELF_LINKS
    assert {k.name for k in kinds if k.single_threaded} == SINGLE_THREADED
    assert all(type(k.single_threaded) is bool for k in kinds)
    assert _pyns_boot.kinds() == kinds
    with pytest.raises(AttributeError):
        kinds[0].name = "x"  # type: ignore[misc]


def paths(**given: str) -> list[str | None]:
    return [given.get(t) for t in TYPES]


def test_plan_gives_the_hooks_steps() -> None:
    default = _pyns_boot.plan(None, paths())
    assert default == tuple((t.lstrip("!"), True) for t in _pyns_boot.DEFAULT_ORDER.split(","))
    assert _pyns_boot.plan("", paths(net="/x")) == default
    assert _pyns_boot.plan(" net , !uts,", paths(net="/x")) == (("net", False), ("uts", True))
    with pytest.raises(TypeError, match="plan\\(\\) paths must be a sequence of 8 items"):
        _pyns_boot.plan("net", ["/x"])


@pytest.mark.parametrize(
    "order, given",
    [
        ("uts", {"net": "/x"}),  # set, not listed
        ("net,bogus", {"net": "/x"}),
        ("net,!net", {"net": "/x"}),
        ("ipc", {"net": "/x", "uts": "/y"}),  # the first unlisted one is named
    ],
)
def test_plan_error_is_the_hooks_message(hook_venv: Venv, order: str, given: dict[str, str]) -> None:
    env = {"gons_order": order, **{"gons_" + t: p for t, p in given.items()}}
    hook = run_python(hook_venv.python, "print('user code ran')", env, timeout=HANG_TIMEOUT)
    assert hook.returncode == EXIT_STATUS and hook.stdout == "", hook
    message = hook.stderr.splitlines()[0]
    with pytest.raises(ValueError) as from_plan:
        _pyns_boot.plan(order, paths(**given))
    assert str(from_plan.value) == message
    with pytest.raises(ValueError) as from_api:
        Namespaces(order=order, **given)
    assert str(from_api.value) == message
    options = [arg for t, p in given.items() for arg in ("--" + t, p)]
    command = pyns_boot(hook_venv, "env", "--no-check", "--order", order, *options)
    assert command.returncode == 2
    assert command.stderr.splitlines()[-1] == "pyns-boot env: error: " + message.replace("pyns_boot: ", "")


def bad_references(tmp: Path) -> list[tuple[str, str]]:
    fifo = tmp / "fifo"
    os.mkfifo(fifo)  # no writer: a join's open (O_NONBLOCK) must not wait for one
    return [
        ("net", "/nonexistent/pyns"),
        ("net", str(tmp)),
        ("net", "/etc/hostname"),
        ("net", "/dev/null"),
        ("uts", str(fifo)),
        ("net", "/proc/self/ns/uts"),  # a namespace of another type
    ]


def test_check_reference_is_the_hooks_check(hook_venv: Venv, tmp_path: Path) -> None:
    for ns_type, path in bad_references(tmp_path):
        hook = run_python(hook_venv.python, "print('user code ran')", {"gons_" + ns_type: path}, timeout=HANG_TIMEOUT)
        assert hook.returncode == EXIT_STATUS and hook.stdout == "", hook
        message = hook.stderr.splitlines()[0]
        assert message.startswith(f'pyns_boot: invalid gons_{ns_type} reference "{path}": '), message
        with pytest.raises(OSError) as from_c:
            _pyns_boot.check_reference(ns_type, path)
        assert from_c.value.strerror == message and from_c.value.errno != 0
        command = pyns_boot(hook_venv, "env", "--" + ns_type, path)
        assert command.returncode == 1
        # the same words, naming the option that was given instead of the variable (-n/--net)
        said = message.replace("pyns_boot: ", "").replace(f"gons_{ns_type} ", option_names()[ns_type] + " ", 1)
        assert command.stderr.splitlines()[0] == "pyns-boot: " + said
    for kind in _pyns_boot.kinds():
        link = "/proc/self/ns/" + kind.self_links[0]
        if os.path.exists(link):
            _pyns_boot.check_reference(kind.name, link)  # no OSError
            check_reference(kind.name, link)  # the command line's: no CommandError
    with pytest.raises(ValueError, match='unknown namespace type "bogus"'):
        _pyns_boot.check_reference("bogus", "/proc/self/ns/net")
    with pytest.raises(ValueError):
        _pyns_boot.check_reference("net", "/proc/self/ns/net\0")


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_check_reference_leaves_no_descriptor(tmp_path: Path) -> None:
    references = [*bad_references(tmp_path), ("net", "/proc/self/ns/net"), ("pid", "/proc/self/ns/pid_for_children")]
    before = open_fds()
    for _ in range(50):
        for ns_type, path in references:
            try:
                _pyns_boot.check_reference(ns_type, path)
            except OSError:
                pass
    assert open_fds() == before
