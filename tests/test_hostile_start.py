"""Hostile starts: the process the hook runs in is set up badly on purpose.

* stdio closed at start, then a daemon's usual ``dup2(/dev/null, 0..2)``: the
  descriptors the hook keeps after a gons_mnt join must not sit on 0-2;
* stderr a full pipe that nobody reads: the failure message cannot get out,
  and the start must neither hang nor skip the policy.

Every child runs with a timeout (the hang bound) and reports what it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from typing import Callable, Iterator

import pytest
from nsutil import CHILD_TIMEOUT, EXIT_STATUS, Holder, Venv, clean_env, fresh_cwd

# ---------------------------------------------------------------- closed stdio

# Started with 0, 1 and 2 closed; reports on the descriptor given in argv[1].
CLOSED_STDIO_CODE = r"""
import os, sys
report_fd = int(sys.argv[1])
def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
open_at_start = [fd for fd in range(3) if is_open(fd)]
null = os.open("/dev/null", os.O_RDWR)
for fd in range(3):
    if fd != null:
        os.dup2(null, fd)
if null > 2:
    os.close(null)
try:
    import decimal  # not loaded yet: read through the kept root descriptor
    imported = decimal.Decimal("1.5") * 2 == 3
except ImportError as error:
    imported = "ImportError: %s" % error
import json, pyns_boot
s = pyns_boot.status()
os.write(report_fd, json.dumps({"open_at_start": open_at_start, "imported": imported, "state": s.state,
    "mnt": s.namespaces["mnt"].outcome, "imports_root": s.imports_root,
    "mnt_link": os.readlink("/proc/self/ns/mnt")}).encode())
"""
CLOSE_STDIO = ["/bin/sh", "-c", 'exec "$@" <&- >&- 2>&-', "sh"]


def run_with_closed_stdio(python: str, env: dict[str, str]) -> dict[str, object]:
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen(
            [*CLOSE_STDIO, python, "-c", CLOSED_STDIO_CODE, str(write_end)],
            env=clean_env(**env),
            pass_fds=(write_end,),
            cwd="/",
        )
        os.close(write_end)
        write_end = -1
        with os.fdopen(read_end, "rb") as reader:
            read_end = -1
            data = reader.read()
        assert child.wait(timeout=CHILD_TIMEOUT) == 0
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    report: dict[str, object] = json.loads(data)
    return report


def test_kept_descriptors_never_sit_on_stdio(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    """gons_mnt joined with stdio closed: the root and namespace descriptors the
    hook keeps land at 3 or above, so a daemon's dup2(/dev/null, 0..2) leaves
    them alone and modules still import from the original installation."""
    h = holder(("mnt",))
    report = run_with_closed_stdio(hook_venv.python, {"gons_mnt": h.ref("mnt")})
    assert report["open_at_start"] == [], "the hook left a descriptor on 0-2"
    assert report["imported"] is True
    assert (report["state"], report["mnt"], report["mnt_link"]) == ("succeeded", "joined", h.link("mnt"))
    root = str(report["imports_root"])
    assert root.startswith("/proc/self/fd/") and int(root.rsplit("/", 1)[1]) >= 3


def test_closed_stdio_idle_and_failing(hook_venv: Venv) -> None:
    """The same start without a join (nothing kept) and with a failing one
    under warn: nothing lands on 0-2 either."""
    for env in ({}, {"gons_mnt": "/nonexistent", "PYNS_BOOT_ON_ERROR": "warn"}):
        read_end, write_end = os.pipe()
        code = (
            "import os, sys\nfds = [fd for fd in range(3) if os.path.exists('/proc/self/fd/%d' % fd)]\n"
            "os.write(int(sys.argv[1]), repr(fds).encode())\n"
        )
        child = subprocess.Popen(
            [*CLOSE_STDIO, hook_venv.python, "-c", code, str(write_end)],
            env=clean_env(**env),
            pass_fds=(write_end,),
            cwd="/",
        )
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            data = reader.read()
        assert child.wait(timeout=CHILD_TIMEOUT) == 0
        assert data == b"[]", (env, data)


# ---------------------------------------------------------------- full stderr

STATUS_CODE = "import json, pyns_boot; s = pyns_boot.status(); print(json.dumps([s.state, s.errno, s.error]))"


def full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is full; the read end stays open and unread."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"x" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    return read_end, write_end


@pytest.fixture
def stderr_pipe() -> Iterator[tuple[int, int]]:
    ends = full_pipe()
    yield ends
    for fd in ends:
        os.close(fd)


@pytest.fixture(scope="module")
def venv_without_helper(workdir, wheel) -> Iterator[Venv]:  # type: ignore[no-untyped-def]
    """pyns_boot whose C helper is gone: the hook's Python writer reports."""
    from nsutil import make_venv, rmtree

    path = workdir / "hostile-no-helper-venv"
    venv = make_venv(path)
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    for so in venv.site_packages.glob("_pyns_boot*.so"):
        so.unlink()
    yield venv
    rmtree(path)


# Which start-up path reports (pyns_boot._policy writes for each): the C helper's
# run() (gons_net) and the Python hook (gons_mnt) through the C helper's
# writer, and without the C helper through the Python copy of it.
WRITERS = {
    "c-run": ({"gons_net": "/nonexistent"}, 'pyns_boot: invalid gons_net reference "/nonexistent"'),
    "python-hook": ({"gons_mnt": "/nonexistent"}, 'pyns_boot: invalid gons_mnt reference "/nonexistent"'),
    "no-helper": ({"gons_net": "/nonexistent"}, "pyns_boot: cannot load the C helper _pyns_boot"),
}


def pick_venv(writer: str, hook_venv: Venv, request: pytest.FixtureRequest) -> Venv:
    if writer == "no-helper":
        venv: Venv = request.getfixturevalue("venv_without_helper")
        return venv
    return hook_venv


@pytest.mark.parametrize("policy", ["exit", "warn"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_full_stderr_pipe_does_not_hang(
    hook_venv: Venv, request: pytest.FixtureRequest, stderr_pipe: tuple[int, int], writer: str, policy: str
) -> None:
    """stderr is a full pipe nobody reads: the message waits for room a bounded
    time, then the policy applies all the same (exit 125 without user code, or
    carry on under warn with the failure in the status)."""
    env, head = WRITERS[writer]
    venv = pick_venv(writer, hook_venv, request)
    result = subprocess.run(
        [venv.python, "-c", STATUS_CODE],
        env=clean_env(**env, PYNS_BOOT_ON_ERROR=policy),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_pipe[1],
        timeout=CHILD_TIMEOUT,  # the hang bound
        cwd="/",
    )
    if policy == "exit":
        assert (result.returncode, result.stdout) == (EXIT_STATUS, b"")
    else:
        assert result.returncode == 0
        state, _, error = json.loads(result.stdout)
        assert state == "failed" and error.startswith(head)


@pytest.mark.parametrize("writer", list(WRITERS))
def test_full_stderr_pipe_with_a_late_reader_gets_the_message(
    hook_venv: Venv, request: pytest.FixtureRequest, writer: str
) -> None:
    """The bound is not a reason to lose the message: a reader that starts
    draining the pipe within the bound gets it whole."""
    env, head = WRITERS[writer]
    venv = pick_venv(writer, hook_venv, request)
    read_end, write_end = full_pipe()
    drained = bytearray()

    def drain() -> None:
        time.sleep(0.2)
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                return
            drained.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        result = subprocess.run(
            [venv.python, "-c", "print('user code ran')"],
            env=clean_env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=write_end,
            timeout=CHILD_TIMEOUT,
            cwd="/",
        )
    finally:
        os.close(write_end)
        reader.join(CHILD_TIMEOUT)
        os.close(read_end)
    assert (result.returncode, result.stdout) == (EXIT_STATUS, b"")
    message = bytes(drained).lstrip(b"x")
    assert message.startswith(head.encode()) and message.endswith(b"\n") and message.count(b"\n") == 1


def test_python_and_c_writers_share_the_bound(hook_venv: Venv) -> None:
    code = "import _pyns_boot, pyns_boot._policy as p; print(_pyns_boot.STDERR_TIMEOUT_MS, p.STDERR_TIMEOUT)"
    out = subprocess.run(
        [hook_venv.python, "-c", code], cwd=fresh_cwd(), capture_output=True, text=True, check=True, env=clean_env()
    )
    milliseconds, seconds = out.stdout.split()
    assert int(milliseconds) == round(float(seconds) * 1000)
