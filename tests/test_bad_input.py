"""The bad-input catalogue: malformed and hostile gons_* configurations, one row each.

Every row is checked the same way, on a real interpreter of a venv with the hook:

* the exact outcome: stderr byte for byte, exit status per policy (125 under the
  default), and under ``warn`` the status (state, errno, failed type, error text);
* a hang fails the row: every child runs with a timeout (``CHILD_TIMEOUT``, nsutil's
  HANG_TIMEOUT), short enough that a hang costs seconds, long enough that no healthy row
  comes near it; speed is measured in benchmarks/, not here;
* no descriptor is left behind: under ``warn`` the child lists ``/proc/self/fd``
  before it imports anything and compares with a run without gons_* variables;
* under the default policy the program's own code never ran (stdout stays empty).

Children start in a new session (no controlling terminal), in a fresh directory of their
own that holds only ``proc``, a symlink to ``/proc`` (for the relative-path rows).  Values
are bytes so that non-UTF-8 input reaches the hook unchanged.  Placeholders
in values and messages: ``{dir}`` a scratch directory with a FIFO, a socket, symlinks and
a regular file; ``{netns}`` a named network namespace; ``{gone}`` the pid of an exited and
reaped process; ``{zombie}`` the pid of an exited, unreaped one; ``{deleted}`` the path of
a named network namespace that was deleted again; ``{deadpidns}`` and ``{zombiepidns}``
the pid of a process whose pid namespace for children lost its init (reaped, or a zombie).

tests/test_errors.py checks the rules one by one; this module is the complete list.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest
from nsutil import (
    EXIT_STATUS,
    HANG_TIMEOUT,
    NamedNetns,
    Venv,
    as_user,
    clean_env,
    fresh_cwd,
    make_venv,
    rmtree,
    world_readable_dir,
)

CHILD_TIMEOUT = HANG_TIMEOUT  # seconds: a hang fails the row; a healthy row takes a few ms
USER_CODE = "print('user code ran')"
# Lists its descriptors before any import, then reports the hook's status.
STATUS_CODE = r"""
import os
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
import json, pyns_boot
s = pyns_boot.status()
print(json.dumps({"fds": fds, "state": s.state, "errno": s.errno, "failed": s.failed, "error": s.error}))
"""

POLICY_NOTICE = (
    b'\npyns_boot: PYNS_BOOT_ON_ERROR="%s" is not understood (expected exit, warn or ignore); acting as exit'
)
SECURE_REASON = b"the interpreter runs in secure-execution mode (set-user-ID, set-group-ID or file capabilities)"
LONG = 65536  # a 64 KiB value


def invalid(variable: str, path: bytes, reason: str) -> bytes:
    return b'pyns_boot: invalid %s reference "%s": %s' % (variable.encode(), path, reason.encode())


def not_a_namespace(variable: str, path: bytes, what: str) -> bytes:
    return invalid(variable, path, f"not a namespace reference (it is {what})")


def wrong_type(variable: str, path: bytes, actual: str) -> bytes:
    return invalid(variable, path, "it is a namespace of type {}, not {}".format(actual, variable[len("gons_") :]))


def unknown(name: bytes) -> bytes:
    return b'pyns_boot: unknown namespace type "%s" in gons_order' % name


def duplicate(name: str) -> bytes:
    return b"pyns_boot: duplicate namespace type %s in gons_order" % name.encode()


def unlisted(variable: str, path: bytes, order: bytes) -> bytes:
    kind = variable[len("gons_") :].encode()
    return b'pyns_boot: %s is set to "%s", but %s is not listed in gons_order "%s"' % (
        variable.encode(),
        path,
        kind,
        order,
    )


def dead_pid(path: bytes, reason: str) -> bytes:
    return (
        b'pyns_boot: cannot join gons_pid using reference "%s": the pid namespace is dead: %s, and the kernel '
        b"refuses to create any process in it (every fork would fail with ENOMEM); name a pid namespace whose init "
        b"is running" % (path, reason.encode())
    )


ENOENT = os.strerror(errno.ENOENT)
TYPES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")


@dataclass(frozen=True)
class Case:
    """One configuration and its exact outcome.

    message None: the hook succeeds (state ``state``) and user code runs.
    Otherwise the hook fails with message/errno/failed; ``notice`` is the extra
    stderr line the policy value adds; ``secure`` runs a set-group-ID interpreter
    as another user.
    """

    id: str
    env: Mapping[str, bytes]
    message: bytes | None
    errno: int = 0
    failed: str | None = None
    state: str = "failed"
    notice: bytes = b""
    secure: bool = False
    hint: bytes = b""  # the start of the "pyns_boot: hint: " line that follows the message, if any


def fail(id: str, env: Mapping[str, bytes], message: bytes, code: int, failed: str | None, **kw: object) -> Case:
    return Case(id, env, message, code, failed, **kw)  # type: ignore[arg-type]


def net(id: str, path: bytes, message: bytes, code: int = errno.EINVAL, hint: bytes = b"") -> Case:
    """A bad gons_net reference."""
    return fail(id, {"gons_net": path}, message, code, "net", hint=hint)


NO_NETNS = b"no network namespace named '%s'; existing: "


def bad_order(id: str, order: bytes, message: bytes) -> Case:
    return fail(id, {"gons_order": order}, message, errno.EINVAL, None)


EVERY = {"gons_" + t: b"" for t in TYPES}  # each filled in by the rows below
LONG_PATH = b"/" + b"a" * (LONG - 1)
LONG_NAME = b"x" * LONG
LONG_ORDER = b"net," + b" ," * (LONG // 2) + b"net"

CASES: list[Case] = [
    # ---- gons_order ---------------------------------------------------------------
    bad_order("order-unknown", b"bogus", unknown(b"bogus")),
    bad_order("order-upper-case", b"NET", unknown(b"NET")),
    bad_order("order-mixed-case", b"net,Uts", unknown(b"Uts")),
    bad_order("order-duplicate", b"net,uts,net", duplicate("net")),
    bad_order("order-duplicate-bang", b"!net,net", duplicate("net")),
    bad_order("order-double-bang", b"!!net", unknown(b"!net")),
    bad_order("order-lone-bang", b"!", unknown(b"")),
    bad_order("order-trailing-lone-bang", b"net,!", unknown(b"")),
    bad_order("order-bang-space", b"! net", unknown(b" net")),
    bad_order("order-inner-space", b"ne t", unknown(b"ne t")),
    bad_order("order-semicolon", b"net;uts", unknown(b"net;uts")),
    bad_order("order-nine-entries", b"user,mnt,cgroup,ipc,net,pid,time,uts,bogus", unknown(b"bogus")),
    bad_order("order-64k-name", LONG_NAME, unknown(LONG_NAME)),
    bad_order("order-64k-duplicate", LONG_ORDER, duplicate("net")),
    bad_order("order-non-utf8", b"net,\xff\xfe", unknown(b"\xff\xfe")),
    fail(
        "order-whitespace-only",
        {"gons_order": b" \t ", "gons_uts": b"/proc/self/ns/uts"},
        unlisted("gons_uts", b"/proc/self/ns/uts", b" \t "),
        errno.EINVAL,
        "uts",
    ),
    fail(
        "order-commas-only",
        {"gons_order": b",,,", "gons_uts": b"/proc/self/ns/uts"},
        unlisted("gons_uts", b"/proc/self/ns/uts", b",,,"),
        errno.EINVAL,
        "uts",
    ),
    fail(
        "order-unlisted-variable",
        {"gons_order": b"uts", "gons_net": b"{netns}"},
        unlisted("gons_net", b"{netns}", b"uts"),
        errno.EINVAL,
        "net",
    ),
    # Tolerated: whitespace and empty entries; the run then stops at the bad path.
    fail(
        "order-tolerated-whitespace",
        {"gons_order": b" net\n,, uts ,", "gons_net": b"/nonexistent"},
        invalid("gons_net", b"/nonexistent", ENOENT),
        errno.ENOENT,
        "net",
    ),
    # ---- references -----------------------------------------------------------------
    net("path-missing", b"/nonexistent/pyns", invalid("gons_net", b"/nonexistent/pyns", ENOENT), errno.ENOENT),
    net(
        "path-relative-missing",
        b"net-ref",
        invalid("gons_net", b"net-ref", ENOENT),
        errno.ENOENT,
        hint=NO_NETNS % b"net-ref",
    ),
    # relative to the working directory (its "proc" leads to /proc): resolves, and is the wrong type
    net("path-relative-resolved", b"proc/self/ns/uts", wrong_type("gons_net", b"proc/self/ns/uts", "uts")),
    net("path-whitespace", b" ", invalid("gons_net", b" ", ENOENT), errno.ENOENT, hint=NO_NETNS % b" "),
    net(
        "path-dangling-symlink",
        b"{dir}/dangling",
        invalid("gons_net", b"{dir}/dangling", ENOENT),
        errno.ENOENT,
    ),
    net(
        "path-symlink-loop",
        b"{dir}/loop",
        invalid("gons_net", b"{dir}/loop", os.strerror(errno.ELOOP)),
        errno.ELOOP,
    ),
    net("path-fifo", b"{dir}/fifo", not_a_namespace("gons_net", b"{dir}/fifo", "a FIFO")),
    net("path-socket", b"{dir}/socket", invalid("gons_net", b"{dir}/socket", os.strerror(errno.ENXIO)), errno.ENXIO),
    net("path-directory", b"/tmp", not_a_namespace("gons_net", b"/tmp", "a directory")),
    net("path-proc-ns-directory", b"/proc/self/ns", not_a_namespace("gons_net", b"/proc/self/ns", "a directory")),
    net("path-regular-file", b"{dir}/file", not_a_namespace("gons_net", b"{dir}/file", "a regular file")),
    net("path-dev-zero", b"/dev/zero", not_a_namespace("gons_net", b"/dev/zero", "a character device")),
    net("path-dev-null", b"/dev/null", not_a_namespace("gons_net", b"/dev/null", "a character device")),
    # the children have no controlling terminal (new session)
    net("path-dev-tty", b"/dev/tty", invalid("gons_net", b"/dev/tty", os.strerror(errno.ENXIO)), errno.ENXIO),
    net("path-wrong-type-uts", b"/proc/self/ns/uts", wrong_type("gons_net", b"/proc/self/ns/uts", "uts")),
    net("path-wrong-type-pid", b"/proc/self/ns/pid", wrong_type("gons_net", b"/proc/self/ns/pid", "pid")),
    fail(
        "path-wrong-type-user-for-mnt",
        {"gons_mnt": b"/proc/self/ns/user"},
        wrong_type("gons_mnt", b"/proc/self/ns/user", "user"),
        errno.EINVAL,
        "mnt",
    ),
    net(
        "path-exited-process",
        b"/proc/{gone}/ns/net",
        invalid("gons_net", b"/proc/{gone}/ns/net", ENOENT),
        errno.ENOENT,
        hint=b'process {gone} has exited (a stale gons_net?): eval "$(',  # the rest: tests/test_way_out.py
    ),
    net(
        "path-zombie-process",
        b"/proc/{zombie}/ns/net",
        invalid("gons_net", b"/proc/{zombie}/ns/net", ENOENT),
        errno.ENOENT,
        hint=b'process {zombie} has exited (a stale gons_net?): eval "$(',
    ),
    net(
        "path-deleted-netns",
        b"{deleted}",
        invalid("gons_net", b"{deleted}", ENOENT),
        errno.ENOENT,
        hint=NO_NETNS % b"{deleted_name}",
    ),
    net(
        "path-64k",
        LONG_PATH,
        invalid("gons_net", LONG_PATH, os.strerror(errno.ENAMETOOLONG)),
        errno.ENAMETOOLONG,
    ),
    net(
        "path-component-too-long",
        b"/tmp/" + b"x" * 256,
        invalid("gons_net", b"/tmp/" + b"x" * 256, os.strerror(errno.ENAMETOOLONG)),
        errno.ENAMETOOLONG,
    ),
    net("path-non-utf8", b"/tmp/\xff\xfe", invalid("gons_net", b"/tmp/\xff\xfe", ENOENT), errno.ENOENT),
    net("path-newline", b"/tmp/a\nb", invalid("gons_net", b"/tmp/a\nb", ENOENT), errno.ENOENT),
    # gons opens "!" references while it parses (ENOENT there); pyns_boot parses first
    bad_order("order-bad-after-bang-reference", b"!net,bogus", unknown(b"bogus")),
    # ---- a pid namespace whose init has exited: setns would succeed, every fork fail ---
    fail(
        "pid-dead-namespace",
        {"gons_pid": b"/proc/{deadpidns}/ns/pid_for_children"},
        dead_pid(b"/proc/{deadpidns}/ns/pid_for_children", "its process 1 (init) has exited"),
        errno.ESRCH,
        "pid",
    ),
    fail(
        "pid-zombie-init",
        {"gons_pid": b"/proc/{zombiepidns}/ns/pid_for_children"},
        dead_pid(
            b"/proc/{zombiepidns}/ns/pid_for_children",
            "its process 1 (init) has exited (a zombie its parent has not reaped)",
        ),
        errno.ESRCH,
        "pid",
    ),
    # ---- every variable set to the same path: the first early open (user) fails -----
    fail(
        "every-variable-same-netns",
        {v: b"{netns}" for v in EVERY},
        wrong_type("gons_user", b"{netns}", "net"),
        errno.EINVAL,
        "user",
    ),
    fail(
        "every-variable-same-directory",
        {v: b"/tmp" for v in EVERY},
        not_a_namespace("gons_user", b"/tmp", "a directory"),
        errno.EINVAL,
        "user",
    ),
    fail(
        "every-variable-same-missing",
        {v: b"/nonexistent" for v in EVERY},
        invalid("gons_user", b"/nonexistent", ENOENT),
        errno.ENOENT,
        "user",
    ),
    fail(
        "every-variable-same-unlisted",
        {**{v: b"{netns}" for v in EVERY}, "gons_order": b"net"},
        unlisted("gons_cgroup", b"{netns}", b"net"),
        errno.EINVAL,
        "cgroup",
    ),
    # ---- empty values count as unset -------------------------------------------------
    Case("every-variable-empty", {**EVERY, "gons_order": b""}, None, state="inactive"),
    # ---- failure policy values ---------------------------------------------------------
    *[
        fail(
            "policy-" + name,
            {"gons_net": b"/nonexistent", "PYNS_BOOT_ON_ERROR": value},
            invalid("gons_net", b"/nonexistent", ENOENT),
            errno.ENOENT,
            "net",
            notice=POLICY_NOTICE % value if value else b"",
        )
        for name, value in (
            ("empty", b""),
            ("unknown", b"bogus"),
            ("upper-case", b"WARN"),
            ("padded", b" warn"),
            ("number", b"0"),
            ("non-utf8", b"\xff"),
        )
    ],
    # ---- secure-execution mode (set-group-ID interpreter, other user) ----------------
    fail(
        "secure-net",
        {"gons_net": b"{netns}"},
        b'pyns_boot: refusing gons_net="{netns}": ' + SECURE_REASON,
        errno.EPERM,
        None,
        secure=True,
    ),
    fail(
        "secure-order-only",
        {"gons_order": b"net"},
        b'pyns_boot: refusing gons_order="net": ' + SECURE_REASON,
        errno.EPERM,
        None,
        secure=True,
    ),
    fail(
        "secure-bad-input",
        {"gons_order": b"!!net", "gons_uts": b"/dev/tty"},
        b'pyns_boot: refusing gons_uts="/dev/tty", gons_order="!!net": ' + SECURE_REASON,
        errno.EPERM,
        None,
        secure=True,
    ),
]
# A missing reference in each variable: the message names that variable.
CASES += [
    fail(
        "missing-" + t,
        {"gons_" + t: b"/nonexistent/" + t.encode()},
        invalid("gons_" + t, b"/nonexistent/" + t.encode(), ENOENT),
        errno.ENOENT,
        t,
    )
    for t in TYPES
]


class Scene:
    """The filesystem objects and processes the placeholders name."""

    def __init__(self) -> None:
        self.dir = world_readable_dir("pyns-boot-bad-input-")
        os.mkfifo(self.dir / "fifo")
        self.socket = socket.socket(socket.AF_UNIX)
        self.socket.bind(str(self.dir / "socket"))
        (self.dir / "dangling").symlink_to(self.dir / "nothing-here")
        (self.dir / "loop").symlink_to(self.dir / "loop")
        (self.dir / "file").write_text("not a namespace\n")
        self.netns = NamedNetns()
        deleted = NamedNetns()
        deleted.delete()
        self.deleted = deleted.path
        gone = subprocess.Popen(["true"])
        gone.wait()
        self.gone = gone.pid
        self.zombie_process = subprocess.Popen(["true"])
        os.waitid(os.P_PID, self.zombie_process.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        self.zombie = self.zombie_process.pid
        # Processes whose pid namespace for children lost its init: reaped
        # (sh waited for it) and a zombie (sleep never reaps it).
        self.dead_pid_holders = [
            subprocess.Popen(["unshare", "--pid", "sh", "-c", script])
            for script in ("sh -c : & wait; exec sleep 1000", "(exit 0) & exec sleep 1000")
        ]
        for holder in self.dead_pid_holders:
            self._wait_for_init_to_exit(holder.pid)
        self.deadpidns, self.zombiepidns = (h.pid for h in self.dead_pid_holders)

    @staticmethod
    def _wait_for_init_to_exit(pid: int) -> None:
        """Until the holder is sleep and its child (the namespace's init) has exited."""
        for _ in range(500):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            states = [Path(f"/proc/{c}/stat").read_text().rsplit(")", 1)[1].split()[0] for c in children]
            if comm == "sleep" and all(state == "Z" for state in states):
                return
            time.sleep(0.01)
        raise RuntimeError(f"the init of the pid namespace held by {pid} did not exit")

    def fill(self, value: bytes) -> bytes:
        for name, replacement in (
            (b"{dir}", os.fsencode(self.dir)),
            (b"{netns}", os.fsencode(self.netns.path)),
            (b"{deleted}", os.fsencode(self.deleted)),
            (b"{deleted_name}", os.fsencode(os.path.basename(self.deleted))),
            (b"{gone}", b"%d" % self.gone),
            (b"{zombie}", b"%d" % self.zombie),
            (b"{deadpidns}", b"%d" % self.deadpidns),
            (b"{zombiepidns}", b"%d" % self.zombiepidns),
        ):
            value = value.replace(name, replacement)
        return value

    def close(self) -> None:
        for holder in self.dead_pid_holders:
            holder.kill()
            holder.wait()
        self.zombie_process.wait()
        self.socket.close()
        self.netns.delete()
        rmtree(self.dir)


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    made = Scene()
    yield made
    made.close()


@pytest.fixture(scope="module")
def secure_venv(workdir: Path, wheel: Path) -> Iterator[Venv]:
    """A set-group-ID copy of the interpreter: AT_SECURE when another user runs it."""
    path = workdir / "bad-input-secure-venv"
    venv = make_venv(path, copies=True)
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    real = os.path.realpath(venv.python)
    os.chown(real, 0, 0)
    os.chmod(real, 0o2755)
    yield venv
    rmtree(path)


def run_child(
    python: str, code: str, env: Mapping[str, bytes], wrapper: Sequence[str] = ()
) -> subprocess.CompletedProcess[bytes]:
    full_env: dict[bytes, bytes] = {k.encode(): v.encode() for k, v in clean_env().items()}
    full_env.update({k.encode(): v for k, v in env.items()})
    return subprocess.run(
        [*wrapper, python, "-c", code],
        env=full_env,
        capture_output=True,
        timeout=CHILD_TIMEOUT,
        cwd=child_cwd(),
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal
    )


def child_cwd() -> str:
    path = fresh_cwd()
    os.symlink("/proc", os.path.join(path, "proc"))
    return path


def status_of(result: subprocess.CompletedProcess[bytes]) -> dict[str, object]:
    assert result.returncode == 0, (result.returncode, result.stderr[:2000])
    report: dict[str, object] = json.loads(result.stdout.decode())
    return report


_baselines: dict[tuple[str, ...], object] = {}


def baseline_fds(python: str, wrapper: Sequence[str]) -> object:
    key = (python, *wrapper)
    if key not in _baselines:
        _baselines[key] = status_of(run_child(python, STATUS_CODE, {}, wrapper))["fds"]
    return _baselines[key]


def as_text(message: bytes) -> str:
    """The message as status().error holds it (the hook decodes with surrogateescape)."""
    return message.decode("utf-8", "surrogateescape")


def without_hint(stderr: bytes, hint: bytes) -> bytes:
    """stderr without its hint line, which must start with hint (and be absent when hint is empty)."""
    lines = stderr.split(b"\n")
    hints = [i for i, line in enumerate(lines) if line.startswith(b"pyns_boot: hint: ")]
    if not hint:
        assert hints == [], stderr
        return stderr
    assert len(hints) == 1 and hints[0] == 1, stderr
    assert lines[1][len(b"pyns_boot: hint: ") :].startswith(hint), (lines[1], hint)
    return b"\n".join(lines[:1] + lines[2:])


def on_stderr(message: bytes) -> bytes:
    """The message as the hook writes it: the raw bytes, a non-UTF-8 path as given."""
    return message


@pytest.mark.unit
def test_catalogue_is_complete() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, hook_venv: Venv, scene: Scene, request: pytest.FixtureRequest) -> None:
    venv = request.getfixturevalue("secure_venv") if case.secure else hook_venv
    wrapper = as_user() if case.secure else []
    env = {k: scene.fill(v) for k, v in case.env.items()}
    baseline = baseline_fds(venv.python, wrapper)

    # The configuration as given (default policy unless the row sets one).
    result = run_child(venv.python, USER_CODE, env, wrapper)
    if case.message is None:
        assert (result.returncode, result.stdout, result.stderr) == (0, b"user code ran\n", b"")
        report = status_of(run_child(venv.python, STATUS_CODE, env, wrapper))
        assert report["state"] == case.state and report["fds"] == baseline
        return
    message = scene.fill(case.message)
    assert result.stdout == b"", "user code ran"
    assert result.returncode == EXIT_STATUS
    assert without_hint(result.stderr, scene.fill(case.hint)) == on_stderr(message + scene.fill(case.notice)) + b"\n"

    # The same under warn: the status tells exactly, and no descriptor is left open.
    warned = run_child(venv.python, STATUS_CODE, {**env, "PYNS_BOOT_ON_ERROR": b"warn"}, wrapper)
    report = status_of(warned)
    assert without_hint(warned.stderr, scene.fill(case.hint)) == on_stderr(message) + b"\n"
    assert report["error"] == as_text(message)
    assert (report["state"], report["errno"], report["failed"]) == ("failed", case.errno, case.failed)
    assert report["fds"] == baseline, "a descriptor was left open"


def test_bind_mount_outlives_its_holder(hook_venv: Venv, scene: Scene) -> None:
    """Not bad input, the contrast to path-exited-process: a bind mount of
    /proc/PID/ns/net (here `ip netns add`, whose creator has exited) keeps the
    namespace alive, and joining it works."""
    env = {"gons_net": os.fsencode(scene.netns.path)}
    report = status_of(run_child(hook_venv.python, STATUS_CODE, env))
    assert report["state"] == "succeeded" and report["fds"] == baseline_fds(hook_venv.python, [])
    code = "import os; print(os.readlink('/proc/self/ns/net'))"
    assert run_child(hook_venv.python, code, env).stdout.decode().strip() == scene.netns.link()


CLOSE_STDERR = ["/bin/sh", "-c", 'exec "$@" 2>&-', "sh"]


@pytest.mark.parametrize("policy", [b"exit", b"warn"])
def test_closed_stderr(hook_venv: Venv, policy: bytes) -> None:
    """Hostile start: descriptor 2 closed.  The policy still holds (exit 125 without
    running user code, or carry on under warn), and nothing crashes for want of stderr."""
    env = {"gons_net": b"/nonexistent", "PYNS_BOOT_ON_ERROR": policy}
    if policy == b"exit":
        result = run_child(hook_venv.python, USER_CODE, env, CLOSE_STDERR)
        assert (result.returncode, result.stdout) == (EXIT_STATUS, b"")
    else:
        report = status_of(run_child(hook_venv.python, STATUS_CODE, env, CLOSE_STDERR))
        assert (report["state"], report["errno"]) == ("failed", errno.ENOENT)
        # The same descriptors as a clean start with stderr closed (where the
        # child's own listing of /proc/self/fd takes the free number 2).
        assert report["fds"] == baseline_fds(hook_venv.python, CLOSE_STDERR)
