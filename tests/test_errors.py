"""Every error of the spec: exact message, errno, policy outcome, no leaked descriptor."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from nsutil import EXIT_STATUS, HANG_TIMEOUT, SELF_LINKS, TYPES, Holder, NamedNetns, Venv, own_links, probe, run_python

USER_CODE = "print('user code ran')"


def fail_exit(venv: Venv, env: dict[str, str]) -> str:
    """Default policy: exit 125, message on stderr, user code never ran. Returns stderr."""
    result = run_python(venv.python, USER_CODE, env, timeout=HANG_TIMEOUT)  # bad input must not hang
    assert result.returncode == EXIT_STATUS, (result.returncode, result.stderr)
    assert result.stdout == ""
    return result.stderr


def fail_warn(venv: Venv, env: dict[str, str]) -> dict[str, Any]:
    """warn policy: message on stderr, program runs; returns the probe (status, fds)."""
    result = run_python(venv.python, env={**env, "PYNS_BOOT_ON_ERROR": "warn"}, timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr
    from nsutil import parse_probe

    report = parse_probe(result.stdout)
    hint = report["status"]["hint"]
    assert result.stderr == report["status"]["error"] + "\n" + (f"pyns_boot: hint: {hint}\n" if hint else "")
    return report


@pytest.fixture(scope="module")
def baseline_fds(hook_venv: Venv) -> list[int]:
    fds: list[int] = probe(hook_venv.python)["fds"]
    return fds


@pytest.fixture
def fifo(tmp_path: Path) -> str:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return str(path)


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    yield path
    sock.close()


def invalid(ns_type: str, path: str, reason: str) -> str:
    return f'pyns_boot: invalid gons_{ns_type} reference "{path}": {reason}\n'


BAD_REFERENCES = [
    # (id, path or fixture name, expected reason, errno)
    ("missing", "/nonexistent/pyns", "No such file or directory", errno.ENOENT),
    ("directory", "/tmp", "not a namespace reference (it is a directory)", errno.EINVAL),
    ("regular-file", "/etc/hostname", "not a namespace reference (it is a regular file)", errno.EINVAL),
    ("dev-null", "/dev/null", "not a namespace reference (it is a character device)", errno.EINVAL),
    ("fifo", "fifo", "not a namespace reference (it is a FIFO)", errno.EINVAL),
    ("socket", "unix_socket", "No such device or address", errno.ENXIO),
    ("long-path", "/" + "x" * 4999, "File name too long", errno.ENAMETOOLONG),
]


@pytest.mark.parametrize("name,path,reason,code", BAD_REFERENCES, ids=[b[0] for b in BAD_REFERENCES])
def test_bad_reference(
    hook_venv: Venv,
    baseline_fds: list[int],
    request: pytest.FixtureRequest,
    name: str,
    path: str,
    reason: str,
    code: int,
) -> None:
    if path in ("fifo", "unix_socket"):
        path = request.getfixturevalue(path)
    env = {"gons_net": path}
    assert fail_exit(hook_venv, env) == invalid("net", path, reason)
    report = fail_warn(hook_venv, env)
    status = report["status"]
    assert status["errno"] == code and status["failed"] == "net" and status["state"] == "failed"
    assert status["namespaces"]["net"]["outcome"] == "failed"
    assert report["fds"] == baseline_fds, "a descriptor leaked"


def test_fifo_does_not_hang(hook_venv: Venv, fifo: str) -> None:
    # fail_exit has a short timeout (HANG_TIMEOUT); a plain O_RDONLY open would block forever.
    assert fail_exit(hook_venv, {"gons_mnt": fifo}) == invalid("mnt", fifo, "not a namespace reference (it is a FIFO)")


def test_wrong_namespace_type(hook_venv: Venv, baseline_fds: list[int]) -> None:
    env = {"gons_uts": "/proc/self/ns/net"}
    expected = invalid("uts", "/proc/self/ns/net", "it is a namespace of type net, not uts")
    assert fail_exit(hook_venv, env) == expected
    report = fail_warn(hook_venv, env)
    assert report["status"]["errno"] == errno.EINVAL and report["fds"] == baseline_fds


def test_wrong_type_detected_before_any_switch(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net",))
    # net is joined before uts in the default order; the bad uts reference is
    # opened early ("!uts") and must stop the run before net is joined.
    env = {"gons_net": h.ref("net"), "gons_uts": h.ref("net")}
    report = fail_warn(hook_venv, env)
    assert report["links"]["net"] != h.link("net")
    outcomes = {t: ns["outcome"] for t, ns in report["status"]["namespaces"].items()}
    assert outcomes["net"] == "not_reached" and outcomes["uts"] == "failed"


def test_first_failure_stops_and_earlier_joins_stay(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net",))
    # Without "!", uts is opened at its turn, after net was joined.
    env = {"gons_order": "net,uts,ipc", "gons_net": h.ref("net"), "gons_uts": "/nonexistent", "gons_ipc": h.ref("net")}
    report = fail_warn(hook_venv, env)
    assert report["links"]["net"] == h.link("net")
    outcomes = {t: ns["outcome"] for t, ns in report["status"]["namespaces"].items()}
    assert outcomes == {**outcomes, "net": "joined", "uts": "failed", "ipc": "not_reached"}
    assert report["status"]["failed"] == "uts"


@pytest.mark.parametrize(
    "order,message",
    [
        ("net,NET", 'unknown namespace type "NET" in gons_order'),
        ("net,bogus", 'unknown namespace type "bogus" in gons_order'),
        ("!!net", 'unknown namespace type "!net" in gons_order'),
        ("net,!", 'unknown namespace type "" in gons_order'),
        ("net,uts,net", "duplicate namespace type net in gons_order"),
        ("!net,net", "duplicate namespace type net in gons_order"),
        ("user,mnt,cgroup,ipc,net,pid,time,uts,bogus", 'unknown namespace type "bogus" in gons_order'),
    ],
)
def test_order_errors(hook_venv: Venv, baseline_fds: list[int], order: str, message: str) -> None:
    # The duplicate is reported even though its variable is unset (gons would not).
    env = {"gons_order": order, "gons_uts": "/proc/self/ns/uts"}
    if "uts" in order:
        env.pop("gons_uts")
    assert fail_exit(hook_venv, env) == "pyns_boot: " + message + "\n"
    report = fail_warn(hook_venv, env)
    assert report["status"]["errno"] == errno.EINVAL and report["status"]["failed"] is None
    assert report["fds"] == baseline_fds
    # Nothing is opened or joined when the order is invalid.
    assert all(ns["outcome"] in ("not_requested", "not_reached") for ns in report["status"]["namespaces"].values())


def test_unlisted_variable_is_an_error(hook_venv: Venv, netns: NamedNetns) -> None:
    env = {"gons_order": "uts", "gons_net": netns.path}
    expected = f'pyns_boot: gons_net is set to "{netns.path}", but net is not listed in gons_order "uts"\n'
    assert fail_exit(hook_venv, env) == expected
    report = fail_warn(hook_venv, env)
    assert report["status"]["errno"] == errno.EINVAL and report["status"]["failed"] == "net"
    assert report["links"]["net"] != netns.link()


def test_cannot_join_message(hook_venv: Venv, holder: Callable[..., Holder], netns: NamedNetns) -> None:
    """The kernel refuses a join: after joining a child user namespace the
    process no longer holds CAP_SYS_ADMIN over a net namespace of the initial
    one, so setns fails with EPERM, reported in the gons shape."""
    h = holder(("user",))
    env = {"gons_user": h.ref("user"), "gons_net": netns.path}
    expected = f'pyns_boot: cannot join gons_net using reference "{netns.path}": Operation not permitted\n'
    hint = "pyns_boot: hint: that net namespace belongs to a user namespace above this process's user:{}".format(
        h.link("user")[len("user:") :]
    )
    stderr = fail_exit(hook_venv, env)
    assert stderr.startswith(expected + hint) and stderr.count("\n") == 2, stderr
    report = fail_warn(hook_venv, env)
    status = report["status"]
    assert status["errno"] == errno.EPERM and status["failed"] == "net"
    assert status["namespaces"]["user"]["outcome"] == "joined"  # not rolled back
    assert report["links"]["user"] == h.link("user")


THREAD_PTH = "import threading, time; threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
SINGLE_THREADED = ("mnt", "time", "user")


def thread_message(ns_type: str, path: str, site: Path, policy: str = "exit") -> str:
    """The refusal when a .pth file before ours started a thread: the count,
    the reason, every .pth file that ran before pyns_boot.pth, the way out
    (warn only where it is not in force)."""
    if ns_type in SINGLE_THREADED:
        reason = f"a {ns_type} namespace can only be joined by a single-threaded process"
    else:
        reason = f"setns moves only the calling thread (the others would stay in the old {ns_type} namespace)"
    before = sorted(p.name for p in site.glob("*.pth") if p.name < "pyns_boot.pth")
    return (
        'pyns_boot: cannot join gons_{} using reference "{}": the process has 2 threads, and {}; '
        ".pth files that ran before pyns_boot.pth (one of them started the threads): {}; remove that package or "
        "make its .pth file sort after pyns_boot.pth{}".format(
            ns_type,
            path,
            reason,
            ", ".join(str(site / name) for name in before),
            ", or set PYNS_BOOT_ON_ERROR=warn to carry on without this join" if policy == "exit" else "",
        )
    )


@pytest.mark.parametrize("ns_type", TYPES)
def test_second_thread_blocks_every_type(fresh_hook_venv: Venv, holder: Callable[..., Holder], ns_type: str) -> None:
    """A thread a .pth file started before ours would stay in the old namespace
    (net, uts, ipc, cgroup, pid: setns moves only the calling thread), or the
    kernel refuses (mnt, user, time): every type fails the same way, under the
    policy, naming the thread count and the .pth files that ran first."""
    site = fresh_hook_venv.site_packages
    (site / "aaa_thread.pth").write_text(THREAD_PTH)
    h = holder(("user", ns_type) if ns_type == "user" else (ns_type,))
    env = {"gons_" + ns_type: h.ref(ns_type)}
    expected = thread_message(ns_type, h.ref(ns_type), site)
    assert str(site / "aaa_thread.pth") in expected and str(site / "_virtualenv.pth") in expected
    assert fail_exit(fresh_hook_venv, env) == expected + "\n"
    report = fail_warn(fresh_hook_venv, env)  # warn: the explicit way to carry on
    status = report["status"]
    assert status["error"] == thread_message(ns_type, h.ref(ns_type), site, "warn")  # offers no warn under warn
    assert (status["state"], status["errno"], status["failed"]) == ("failed", errno.EINVAL, ns_type)
    assert status["namespaces"][ns_type]["outcome"] == "failed"
    before = own_links()
    for link in SELF_LINKS[ns_type]:
        assert report["links"][link] == before[link], "joined although another thread stays behind"
    assert report["fds"] == probe(fresh_hook_venv.python)["fds"]


def test_thread_started_after_the_hook_does_not_block(fresh_hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    (fresh_hook_venv.site_packages / "zzz_thread.pth").write_text(THREAD_PTH)
    h = holder(("net", "uts"))
    report = probe(fresh_hook_venv.python, {"gons_net": h.ref("net"), "gons_uts": h.ref("uts")})
    assert report["links"]["net"] == h.link("net") and report["links"]["uts"] == h.link("uts")
    assert report["status"]["state"] == "succeeded"


@pytest.mark.parametrize(
    "policy,code,stderr_extra,user_code_runs",
    [
        (None, 125, "", False),
        ("exit", 125, "", False),
        ("warn", 0, "", True),
        ("ignore", 0, None, True),
        (
            "bogus",
            125,
            'pyns_boot: PYNS_BOOT_ON_ERROR="bogus" is not understood (expected exit, warn or ignore); acting as exit\n',
            False,
        ),
        (
            "WARN",
            125,
            'pyns_boot: PYNS_BOOT_ON_ERROR="WARN" is not understood (expected exit, warn or ignore); acting as exit\n',
            False,
        ),
    ],
)
def test_failure_policy(
    hook_venv: Venv, policy: str | None, code: int, stderr_extra: str | None, user_code_runs: bool
) -> None:
    env = {"gons_net": "/nonexistent"}
    if policy is not None:
        env["PYNS_BOOT_ON_ERROR"] = policy
    result = run_python(hook_venv.python, USER_CODE, env)
    assert result.returncode == code
    message = invalid("net", "/nonexistent", "No such file or directory")
    assert result.stderr == ("" if stderr_extra is None else message + stderr_extra)
    assert (result.stdout == "user code ran\n") == user_code_runs


def test_ignore_policy_status_still_tells(hook_venv: Venv) -> None:
    result = run_python(hook_venv.python, env={"gons_net": "/nonexistent", "PYNS_BOOT_ON_ERROR": "ignore"})
    from nsutil import parse_probe

    status = parse_probe(result.stdout)["status"]
    assert status["state"] == "failed" and status["policy"] == "ignore" and status["errno"] == errno.ENOENT


SECURE_CODE = "import os; print('user code ran')"


def test_secure_execution_mode_refuses(workdir: Path, wheel: Path, netns: NamedNetns) -> None:
    """A set-group-ID interpreter run by another user starts with AT_SECURE set."""
    from nsutil import as_user, make_venv, parse_probe, rmtree

    path = workdir / "secure-venv"
    venv = make_venv(path, copies=True)
    try:
        venv.pip("install", "--no-deps", "--no-index", str(wheel))
        real = os.path.realpath(venv.python)
        os.chown(real, 0, 0)
        os.chmod(real, 0o2755)
        env = {"gons_net": netns.path}
        result = run_python(venv.python, USER_CODE, env, wrapper=as_user())
        assert result.returncode == EXIT_STATUS, result.stderr
        assert result.stderr == (
            f'pyns_boot: refusing gons_net="{netns.path}": the interpreter runs in secure-execution mode '
            "(set-user-ID, set-group-ID or file capabilities)\n"
        )
        assert result.stdout == ""
        warned = run_python(venv.python, env={**env, "PYNS_BOOT_ON_ERROR": "warn"}, wrapper=as_user())
        status = parse_probe(warned.stdout)["status"]
        assert status["errno"] == errno.EPERM and status["state"] == "failed"
        # root running the same binary is not in secure-execution mode
        assert probe(venv.python, env)["links"]["net"] == netns.link()
    finally:
        rmtree(path)


def test_bad_input_never_leaks_into_c_environment_of_children(hook_venv: Venv) -> None:
    """Under warn, a failed hook still removes the variables: children do not retry."""
    code = (
        "import subprocess, sys; "
        "sys.exit(subprocess.run(['sh', '-c', 'env | grep -c ^gons_'], capture_output=True).returncode)"
    )
    result = run_python(hook_venv.python, code, {"gons_net": "/nonexistent", "PYNS_BOOT_ON_ERROR": "warn"})
    assert result.returncode == 1  # grep found no line
