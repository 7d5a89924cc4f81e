"""With gons_pid joined, the program itself lives in that pid namespace (fork + C supervisor).

Each signal once, the terminal and job control, and the program's death with a supervisor killed by
SIGKILL: tests/test_signals_once.py.

Real pid namespaces (holders made with unshare, a persistent one whose init
has exited), real interpreters, real signals sent to the supervisor.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
from nsutil import CHILD_TIMEOUT, EXIT_STATUS, Holder, Venv, clean_env, probe, run_python

# A program that reports its signals: handlers count them, SIGTERM ends it.
COUNTING = r"""
import os, signal, sys, time
names = ("SIGUSR1", "SIGUSR2", "SIGHUP", "SIGWINCH", "SIGALRM", "SIGINT", "SIGQUIT")
counts = dict.fromkeys(names, 0)
def count(number, frame):
    counts[signal.Signals(number).name] += 1
for name in names:
    signal.signal(getattr(signal, name), count)
done = []
signal.signal(signal.SIGTERM, lambda *a: done.append(1))
print("READY %d" % os.getpid(), flush=True)
deadline = time.monotonic() + 50
while not done and time.monotonic() < deadline:
    time.sleep(0.01)
print("COUNTS " + " ".join("%s=%d" % item for item in counts.items()), flush=True)
sys.exit(3)
"""


def job_of_its_own() -> None:
    """preexec_fn for a program the test stops with SIGTSTP (see start)."""
    os.setpgrp()
    signal.signal(signal.SIGTSTP, signal.SIG_DFL)


# One step of test_stop_and_continue_follow_the_program: well above the ~0.1 s a step takes at load 19 on
# 2 cores, and below COUNTING's own 50 s, so that a failure shows the two processes still alive.
STOP_TIMEOUT = 30.0


def start(python: str, code: str, env: dict[str, str], own_group: bool = False) -> subprocess.Popen[str]:
    """own_group: a process group of its own, whose parent (this process) is in another group of the
    same session; so the group is not orphaned, and the kernel does not discard the supervisor's own stop
    (it stops as the program stopped, SIGTSTP with its default action; the kernel would discard that in
    the group of a test run whose shell has gone).  SIGTSTP also gets its default action back:
    an ignored disposition survives exec, so a test run started by a launcher that ignores SIGTSTP would
    hand it to the program, which then rightly never stops (the supervisor passes it on as nsenter does)."""
    return subprocess.Popen(
        [python, "-c", code],
        env=clean_env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
        preexec_fn=job_of_its_own if own_group else None,
    )


def children_of(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return []


def state_of(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return "gone"
    return text[text.rindex(")") + 2]


def signal_state(pid: int) -> str:
    """State and signal masks from /proc/PID/status: tells a lost signal (S, nothing pending) from a process
    that was not yet scheduled (R, or the signal still pending)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return f"{pid} gone"
    keep = ("State", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    return "{}: {}".format(pid, ", ".join(line.replace("\t", " ") for line in lines if line.split(":")[0] in keep))


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0, pids: tuple[int, ...] = ()) -> None:
    """pids: processes whose signal state the failure message shows."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            states = "".join("\n  " + signal_state(pid) for pid in pids)
            raise AssertionError(f"timed out waiting for {what} ({timeout:g} s){states}")
        time.sleep(0.01)


def ready_child(process: subprocess.Popen[str]) -> int:
    """Wait for READY; return the program's pid as seen from here (the supervisor's only child)."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("READY "), (line, process.stderr.read() if process.stderr else "")
    (child,) = children_of(process.pid)
    return child


@pytest.fixture
def pid_holder(holder: Callable[..., Holder]) -> Holder:
    return holder(("pid",))


def test_program_lives_in_the_pid_namespace(hook_venv: Venv, pid_holder: Holder) -> None:
    baseline = probe(hook_venv.python)
    report = probe(hook_venv.python, {"gons_pid": pid_holder.ref("pid")})
    target = pid_holder.link("pid")
    assert report["links"]["pid"] == target and report["links"]["pid_for_children"] == target
    status = report["status"]
    assert status["ok"] and status["pid_mode"] == "entered"
    assert status["namespaces"]["pid"]["outcome"] == "joined"
    assert report["fds"] == baseline["fds"], "the child must hold no descriptor of the pid entry"
    code = "import os; print('PIDS %d %d' % (os.getpid(), os.getppid()))"
    result = run_python(hook_venv.python, code, {"gons_pid": pid_holder.ref("pid")})
    pid, ppid = map(int, result.stdout.split()[1:3])
    assert 1 < pid < 1000 and ppid == 0, "a pid counted in the new namespace, its parent outside it"


def test_children_keeps_the_gons_meaning(hook_venv: Venv, pid_holder: Holder) -> None:
    report = probe(hook_venv.python, {"gons_pid": pid_holder.ref("pid"), "PYNS_BOOT_PID": "children"})
    assert report["links"]["pid"] == os.readlink("/proc/self/ns/pid")
    assert report["links"]["pid_for_children"] == pid_holder.link("pid")
    assert report["status"]["pid_mode"] == "children" and report["status"]["ok"]


def test_already_inside_needs_no_fork(hook_venv: Venv) -> None:
    report = probe(hook_venv.python, {"gons_pid": "/proc/self/ns/pid"})
    assert report["status"]["namespaces"]["pid"]["outcome"] == "already_joined"
    assert report["status"]["pid_mode"] == "member"


def test_without_gons_pid_there_is_no_pid_mode(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    report = probe(hook_venv.python, {"gons_uts": holder(("uts",)).ref("uts")})
    assert report["status"]["pid_mode"] is None


@pytest.mark.parametrize("code, returncode", [("raise SystemExit(7)", 7), ("pass", 0)])
def test_exit_status_propagates(hook_venv: Venv, pid_holder: Holder, code: str, returncode: int) -> None:
    result = run_python(hook_venv.python, code, {"gons_pid": pid_holder.ref("pid")})
    assert result.returncode == returncode and result.stderr == ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT])
def test_death_by_signal_propagates_without_a_core(
    hook_venv: Venv, pid_holder: Holder, sig: signal.Signals, tmp_path: Path
) -> None:
    # The program forbids its own core dump: a core, if any, would be the supervisor's.
    code = f"import os, resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); os.kill(os.getpid(), {sig})"
    process = subprocess.Popen(
        [hook_venv.python, "-c", code],
        env=clean_env(gons_pid=pid_holder.ref("pid")),
        cwd=str(tmp_path),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2),
    )
    _, status = os.waitpid(process.pid, 0)
    process.returncode = 0  # reaped here
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig
    assert not os.WCOREDUMP(status), "the supervisor must not dump core"
    assert process.stderr is not None and process.stderr.read() == b""
    process.stderr.close()


def test_signal_storm_reaches_the_program(hook_venv: Venv, pid_holder: Holder) -> None:
    process = start(hook_venv.python, COUNTING, {"gons_pid": pid_holder.ref("pid")})
    ready_child(process)
    storm = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGWINCH, signal.SIGALRM, signal.SIGINT]
    storm.append(signal.SIGQUIT)
    for i in range(3000):
        os.kill(process.pid, storm[i % len(storm)])
    time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=CHILD_TIMEOUT)
    assert process.returncode == 3, err
    counts = dict(item.split("=") for item in out.split("COUNTS ")[1].split())
    assert all(int(n) >= 1 for n in counts.values()), counts


def test_stop_and_continue_follow_the_program(hook_venv: Venv, pid_holder: Holder) -> None:
    """Each step is a chain of wakeups across three processes (test, supervisor, program); each wait has
    STOP_TIMEOUT, not 10 s: on a shared 2-core machine at load 10-19 the first step was reported to miss 10 s
    now and then (no lost signal was found in the supervisor; see the commits).  A lost signal still fails (the
    step never completes), and the message shows both processes' state and pending/blocked signals to tell it
    from slow scheduling."""
    process = start(hook_venv.python, COUNTING, {"gons_pid": pid_holder.ref("pid")}, own_group=True)
    child = ready_child(process)
    both = (process.pid, child)

    def wait(predicate: Callable[[], bool], what: str) -> None:
        wait_for(predicate, what, STOP_TIMEOUT, both)

    os.kill(process.pid, signal.SIGTSTP)  # forwarded: the program stops, then its supervisor (as nsenter)
    wait(lambda: state_of(child) == "T" and state_of(process.pid) == "T", "both to stop")
    os.kill(process.pid, signal.SIGCONT)
    wait(lambda: state_of(child) not in ("T", "t") and state_of(process.pid) != "T", "both to continue")
    os.kill(child, signal.SIGSTOP)  # the program stopped directly: the supervisor follows
    wait(lambda: state_of(process.pid) == "T", "the supervisor to follow the stop")
    os.kill(process.pid, signal.SIGCONT)  # the supervisor continues the program
    wait(lambda: state_of(child) not in ("T", "t"), "the program to continue")
    os.kill(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=CHILD_TIMEOUT)
    assert process.returncode == 3 and "COUNTS" in out, err


def test_supervisor_holds_only_the_standard_descriptors(hook_venv: Venv, pid_holder: Holder) -> None:
    process = start(hook_venv.python, COUNTING, {"gons_pid": pid_holder.ref("pid")})
    ready_child(process)
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{process.pid}/fd"))
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=CHILD_TIMEOUT)
    # 0-2, and the pipe end whose closing tells the program its supervisor is gone
    assert len(fds) == 4 and fds[:3] == [0, 1, 2], fds


@pytest.mark.parametrize(
    "policy, returncode, ran",
    [(None, EXIT_STATUS, False), ("exit", EXIT_STATUS, False), ("warn", 0, True), ("ignore", 0, True)],
)
def test_bogus_pid_setting(hook_venv: Venv, pid_holder: Holder, policy: str | None, returncode: int, ran: bool) -> None:
    env = {"gons_pid": pid_holder.ref("pid"), "PYNS_BOOT_PID": "bogus"}
    if policy is not None:
        env["PYNS_BOOT_ON_ERROR"] = policy
    result = run_python(hook_venv.python, "import os; print('ran', os.readlink('/proc/self/ns/pid_for_children'))", env)
    assert result.returncode == returncode
    message = (
        'pyns_boot: PYNS_BOOT_PID="bogus" is not understood (expected "children" to leave the program outside '
        "the pid namespace gons_pid names, or unset to run it inside); no namespace was joined\n"
    )
    assert result.stderr == ("" if policy == "ignore" else message)
    assert ("ran" in result.stdout) == ran
    if ran:  # nothing joined
        assert result.stdout.split()[1] == os.readlink("/proc/self/ns/pid_for_children")


@pytest.fixture
def dead_init_pid_ns() -> Iterator[str]:
    """A pid namespace kept by a bind mount after its init (true) has exited."""
    directory = Path(tempfile.mkdtemp(prefix="pyns-pid-"))
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    subprocess.run(["mount", "--make-private", str(directory)], check=True)
    path = directory / ("pidns-" + uuid.uuid4().hex[:8])
    path.touch()
    subprocess.run(["unshare", f"--pid={path}", "--fork", "true"], check=True)
    yield str(path)
    subprocess.run(["umount", str(path)], check=False)
    subprocess.run(["umount", str(directory)], check=False)
    path.unlink()
    directory.rmdir()


@pytest.mark.parametrize("policy", [None, "warn"])
def test_pid_namespace_with_dead_init(hook_venv: Venv, dead_init_pid_ns: str, policy: str | None) -> None:
    env = {"gons_pid": dead_init_pid_ns}
    if policy:
        env["PYNS_BOOT_ON_ERROR"] = policy
    code = "import pyns_boot; s = pyns_boot.status(); print('ran', s.pid_mode, s.failed, s.errno_name)"
    result = run_python(hook_venv.python, code, env)
    # Refused at the join (Linux 6.11+ tells a dead pid namespace), before any fork.
    message = (
        f'pyns_boot: cannot join gons_pid using reference "{dead_init_pid_ns}": the pid namespace is dead: its '
        "process 1 (init) has "
        "exited, and the kernel refuses to create any process in it (every fork would fail with ENOMEM); name a pid "
        "namespace whose init is running\n"
    )
    assert result.stderr == message
    if policy is None:
        assert result.returncode == EXIT_STATUS and result.stdout == ""
    else:
        assert result.returncode == 0 and result.stdout.split() == ["ran", "None", "pid", "ESRCH"]


def test_fallback_hook_enters_too(hook_venv: Venv, pid_holder: Holder) -> None:
    """The Python start-up path (pyns_boot.hook.run, as for a mnt join) enters through the same C code."""
    code = f"import sys; sys.path.append({str(hook_venv.site_packages)!r}); import pyns_boot.hook as h; h.run()\n"
    code += "import os; print('PID %d' % os.getpid())"
    result = run_python(hook_venv.python, code, {"gons_pid": pid_holder.ref("pid")}, python_args=["-S"])
    assert result.returncode == 0, result.stderr
    assert 1 < int(result.stdout.split()[1]) < 1000


def test_nothing_left_behind(hook_venv: Venv, pid_holder: Holder) -> None:
    result = run_python(hook_venv.python, "import os; print(os.getpid())", {"gons_pid": pid_holder.ref("pid")})
    assert result.returncode == 0
    assert children_of(pid_holder.pid) == [], "no zombie, no leftover in the namespace"


def test_cli_run_runs_the_program_inside(hook_venv: Venv, pid_holder: Holder) -> None:
    """pyns-boot run forks as the hook does, in its own process: the program runs inside, the command stays
    outside as the supervisor; through a fresh interpreter (an interpreter option) it forks before the exec,
    as nsenter --pid does, and that interpreter's hook has nothing to fork."""
    from cliutil import pyns_boot

    code = "import os, pyns_boot; s = pyns_boot.status(); print(os.getpid(), s.pid_mode, s.ok); raise SystemExit(9)"
    result = pyns_boot(hook_venv, "run", "-t", str(pid_holder.pid), "--pid", "--", "-c", code)
    pid, mode, ok = result.stdout.split()
    assert result.returncode == 9 and 1 < int(pid) < 1000 and (mode, ok) == ("entered", "True"), result
    fresh = pyns_boot(hook_venv, "run", "-t", str(pid_holder.pid), "--pid", "--", "-X", "utf8", "-c", code)
    pid, mode, ok = fresh.stdout.split()
    assert fresh.returncode == 9 and 1 < int(pid) < 1000 and (mode, ok) == ("member", "True"), fresh
    children = pyns_boot(
        hook_venv, "run", "-t", str(pid_holder.pid), "--pid", "--", "-c", code, env={"PYNS_BOOT_PID": "children"}
    )
    assert children.returncode == 9 and children.stdout.split()[1:] == ["children", "True"], children


def test_cli_run_supervisor_forwards_signals(hook_venv: Venv, pid_holder: Holder) -> None:
    process = subprocess.Popen(
        [str(hook_venv.path / "bin" / "pyns-boot"), "run", "-t", str(pid_holder.pid), "--pid", "--", "-c", COUNTING],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    ready_child(process)
    os.kill(process.pid, signal.SIGUSR1)
    time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=CHILD_TIMEOUT)
    assert process.returncode == 3 and "SIGUSR1=1" in out, (out, err)
