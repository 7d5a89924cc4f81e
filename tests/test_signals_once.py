"""Each signal reaches the program inside the pid namespace once, however it was sent (issue 21, part 4).

Real pid namespaces (a holder made with unshare), real interpreters with the hook installed, both routes
into the namespace (the hook's `gons_pid=... python prog.py` and `pyns-boot run -t PID --pid -- prog.py`),
real pseudo-terminals (pty.fork: a session of its own with the pty as controlling terminal), a real
interactive bash doing job control on it, and kill(2) to a process group or to the supervisor.

The program counts SIGHUP, SIGINT and SIGTERM and writes each count to a report file.  After each signal
the test sends a barrier (a real-time signal) to the supervisor and waits for the program's report of it:
the supervisor takes pending signals lowest number first and the kernel delivers them to the program in
the same order, so a second SIGINT forwarded by the supervisor would be counted before the barrier's
report.  Nothing here measures time; every wait only bounds how long a failure takes to show.
"""

from __future__ import annotations

import functools
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
from nsutil import CHILD_TIMEOUT, Holder, Venv, clean_env, fresh_cwd

# How long one step may take before the test fails (a step is a few wakeups; a loaded 2-core machine
# has been seen to need seconds for one).
STEP = 30.0
BARRIER = getattr(signal, "SIGRTMIN", 34) + 4  # above every standard signal: taken and delivered last
ROUNDS = 4  # each kind of send is repeated: the double delivery this guards against was racy (3 of 10)

PROGRAM = r"""
import os, signal, sys, time
BARRIER = int(os.environ["SIGNALS_BARRIER"])
# os.write, not a file object: a handler can run while the main code is inside a write of its own
report = os.open(os.environ["SIGNALS_REPORT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
def say(line):
    os.write(report, line.encode())
names = ("SIGHUP", "SIGINT", "SIGTERM")
counts = dict.fromkeys(names, 0)
def count(number, frame):
    name = signal.Signals(number).name
    counts[name] += 1
    say("GOT %s %d\n" % (name, counts[name]))
for name in names:
    signal.signal(getattr(signal, name), count)
barriers = [0]
def foreground():
    try:
        return "1" if os.tcgetpgrp(0) == os.getpgrp() else "0"
    except OSError:  # stdin is not the controlling terminal
        return "-"
def barrier(number, frame):
    barriers[0] += 1
    items = " ".join("%s=%d" % item for item in counts.items())
    say("BARRIER %d %s FG=%s\n" % (barriers[0], items, foreground()))
signal.signal(BARRIER, barrier)
def read_line(number, frame):  # from the terminal (stdin)
    line = sys.stdin.readline().strip()
    say("LINE %s FG=%s\n" % (line, foreground()))
signal.signal(signal.SIGUSR1, read_line)
def child_reads(number, frame):  # a child of the program reads from the terminal
    import subprocess
    line = subprocess.run(["/bin/sh", "-c", "read x; echo $x"], stdout=subprocess.PIPE).stdout.decode().strip()
    say("LINE %s FG=%s\n" % (line, foreground()))
signal.signal(signal.SIGALRM, child_reads)
done = []
signal.signal(signal.SIGUSR2, lambda *a: done.append(1))
grandchild = None
if os.environ.get("SIGNALS_GRANDCHILD"):  # a child in the program's group that says when ^C reaches it
    import subprocess
    script = 'trap "echo CHILD-INT >> $SIGNALS_REPORT" INT; echo CHILD-READY >> $SIGNALS_REPORT; '
    grandchild = subprocess.Popen(["/bin/sh", "-c", script + "while :; do sleep 1; done"])
say("READY %d %d\n" % (os.getpid(), os.getpgrp()))
deadline = time.monotonic() + 300
while not done and time.monotonic() < deadline:
    time.sleep(0.02)
if grandchild is not None:
    grandchild.kill()
    grandchild.wait()
say("BYE\n")
"""


class Report:
    """The program's report file, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.position = 0
        self.terminal: Terminal | None = None  # its output goes into a failure's message
        self.watched: list[int] = []  # processes whose state goes into a failure's message

    def has(self, pattern: str, what: str) -> None:
        """Wait for a line that matches pattern anywhere in the report (the position stays)."""
        position = self.position
        self.position = 0
        try:
            self.expect(pattern, what)
        finally:
            self.position = position

    def context(self) -> str:
        states = "".join(f"\n{pid}: {' '.join(stat_of(pid)[:6])}{ended(pid)}" for pid in self.watched)
        errors = self.path.with_name("stderr")
        if errors.exists():
            states += f"\nstderr: {errors.read_text()!r}"
        return states + ("" if self.terminal is None else f"\nterminal: {self.terminal.drain()!r}")

    def expect(self, pattern: str, what: str = "") -> re.Match[str]:
        """The next line (after the last one matched) that matches pattern."""
        deadline = time.monotonic() + STEP
        while True:
            text = self.path.read_text() if self.path.exists() else ""
            found = re.compile(pattern, re.M).search(text, self.position)
            if found:
                self.position = found.end()
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} ({what}) after {STEP:g} s in the report:\n{text}{self.context()}")
            time.sleep(0.01)


class Terminal:
    """argv in a new session whose controlling terminal is a new pty (what sshd does for ssh -t)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover (the child)
            try:
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = b""
        self.position = 0
        self.closed = False
        self.status: int | None = None

    def type(self, text: bytes) -> None:
        os.write(self.fd, text)

    def expect(self, pattern: bytes) -> bytes:
        deadline = time.monotonic() + STEP
        while True:
            found = re.compile(pattern).search(self.output, self.position)
            if found:
                self.position = found.end()
                return found.group(0)
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"no {pattern!r} on the terminal after {STEP:g} s:\n{self.output!r}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: every process of the session has let go of the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"terminal closed before {pattern!r}:\n{self.output!r}")
            self.output += chunk

    def drain(self) -> bytes:
        """What the terminal has shown so far (for a failure's message)."""
        while not self.closed and select.select([self.fd], [], [], 0)[0]:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
        return self.output

    def hang_up(self) -> None:
        """Close the master: the kernel hangs the terminal up (SIGHUP and SIGCONT to the session leader)."""
        if not self.closed:
            os.close(self.fd)
            self.closed = True

    def wait(self) -> int:
        """The wait status of the session's first process, which ends by itself."""
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.pid} did not end:\n{self.output!r}")
            time.sleep(0.01)

    def close(self) -> None:
        """Hang up, and end the session's first process if the test has not seen it end."""
        self.hang_up()
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def ended(pid: int) -> str:
    """How a child of this process that has ended ended (without reaping it), for a failure's message."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # not a child of this process
        return ""
    return "" if info is None else f" (ended: si_code {info.si_code}, status {info.si_status})"


def children_of(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def stat_of(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name: [state, ppid, pgrp, session, tty_nr, tpgid, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ["gone"]
    return text[text.rindex(")") + 2 :].split()


def has_terminal(pid: int, group: int) -> bool:
    """Whether the controlling terminal of pid has group in the foreground."""
    return stat_of(pid)[5] == str(group)


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({STEP:g} s)")
        time.sleep(0.01)


def only_child(pid: int, what: str) -> int:
    found: list[int] = []

    def one() -> bool:
        found[:] = children_of(pid)
        return len(found) == 1

    wait_for(one, what)
    return found[0]


def job_leader(shell: int) -> int:
    """The child of shell that leads its process group: the first process of a job."""
    found: list[int] = []

    def leader() -> bool:
        found[:] = [c for c in children_of(shell) if stat_of(c)[2] == str(c)]
        return len(found) == 1

    wait_for(leader, "the job's first process")
    return found[0]


ROUTES = ["hook", "run"]


class Setup:
    """What each test needs: the program, its report, the command of one route into the namespace."""

    def __init__(self, venv: Venv, holder: Holder, route: str, directory: Path) -> None:
        self.program = directory / "counting.py"
        self.program.write_text(PROGRAM)
        self.report = Report(directory / "report")
        self.env = clean_env(SIGNALS_REPORT=str(self.report.path), SIGNALS_BARRIER=str(BARRIER))
        if route == "hook":
            self.argv = [venv.python, str(self.program)]
            self.env["gons_pid"] = holder.ref("pid")
        else:
            pid = str(holder.pid)
            self.argv = [str(venv.path / "bin" / "pyns-boot"), "run", "-t", pid, "--pid", "--", str(self.program)]
        self.cwd = fresh_cwd()
        self.holder_pid = holder.pid  # the namespace's init: the program dies with it

    def ready(self, supervisor: int) -> tuple[int, re.Match[str]]:
        """Wait for the program's READY; return its pid as seen from here, and the READY line."""
        self.report.watched = [self.holder_pid, supervisor]
        ready = self.report.expect(r"^READY (\d+) (\d+)$", "the program started")
        program = only_child(supervisor, "the supervisor's one child")
        self.report.watched.append(program)
        return program, ready

    def round(self, supervisor: int, send: Callable[[], None], name: str, expected: dict[str, int]) -> str:
        """One send of signal name: the program counts it once (what the barrier's report says)."""
        send()
        expected[name] += 1
        self.report.expect(rf"^GOT {name} {expected[name]}$", f"{name} delivered")
        os.kill(supervisor, BARRIER)
        line = self.report.expect(r"^BARRIER \d+ .*$", "the barrier").group(0)
        counts = dict(item.split("=") for item in line.split()[2:])
        assert {k: int(v) for k, v in counts.items() if k != "FG"} == expected, line
        return counts["FG"]

    def end(self, supervisor: int) -> None:
        os.kill(supervisor, signal.SIGUSR2)
        self.report.expect(r"^BYE$", "the program's end")


@pytest.fixture
def pid_holder(holder: Callable[..., Holder]) -> Holder:
    return holder(("pid",))


@pytest.fixture(params=ROUTES)
def setup(request: pytest.FixtureRequest, hook_venv: Venv, pid_holder: Holder, tmp_path: Path) -> Setup:
    return Setup(hook_venv, pid_holder, request.param, tmp_path)


def zero() -> dict[str, int]:
    return {"SIGHUP": 0, "SIGINT": 0, "SIGTERM": 0}


def test_program_leads_a_process_group_of_its_own(setup: Setup) -> None:
    """What the program can tell: getpgrp() is its own pid, not its supervisor's group (nor its session's)."""
    process = subprocess.Popen(setup.argv, env=setup.env, cwd=setup.cwd, stdin=subprocess.DEVNULL)
    try:
        program, ready = setup.ready(process.pid)
        assert ready.group(2) == ready.group(1), "getpgrp() == getpid() inside"
        assert stat_of(program)[2] == str(program) != stat_of(process.pid)[2]
        assert stat_of(program)[3] == stat_of(process.pid)[3], "one session"
        setup.end(process.pid)
        assert process.wait(timeout=CHILD_TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("arrangement", ["own group", "session leader"])
def test_group_and_direct_kills_arrive_once(setup: Setup, arrangement: str) -> None:
    """kill -SIG -PGID and kill -SIG PID, to a supervisor that leads its process group or its session."""
    stderr = setup.report.path.with_name("stderr").open("w")
    process = subprocess.Popen(
        setup.argv,
        env=setup.env,
        cwd=setup.cwd,
        stdin=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=arrangement == "session leader",
        preexec_fn=os.setpgrp if arrangement == "own group" else None,
    )
    try:
        setup.ready(process.pid)
        expected = zero()
        for _ in range(ROUNDS):
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                setup.round(process.pid, functools.partial(os.killpg, process.pid, sig), sig.name, expected)
                setup.round(process.pid, functools.partial(os.kill, process.pid, sig), sig.name, expected)
        setup.end(process.pid)
        assert process.wait(timeout=CHILD_TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr.close()


def use_terminal(setup: Setup, terminal: Terminal, supervisor: int, by: str = "program") -> None:
    """The program (or, by="child", a child it starts) reads a line from the terminal: the first use gives the
    program's group the terminal's foreground (SIGTTIN stops the group, the supervisor hands it over)."""
    os.kill(supervisor, signal.SIGUSR1 if by == "program" else signal.SIGALRM)
    terminal.type(b"hello\n")
    setup.report.expect(r"^LINE hello FG=1$", f"the {by}'s read from the terminal")


def test_session_leader_on_a_terminal(setup: Setup) -> None:
    """As ssh -t runs a command: the supervisor leads the session of a pty.  ^C typed, kill -INT -PGID, kill -INT
    PID: each once, before and after the program takes the terminal.  ^Z is discarded, as for any session leader
    (its group is orphaned): the program goes on.  A hang-up (the pty's master closed) reaches the supervisor
    alone, which forwards it once."""
    terminal = Terminal(setup.argv, setup.env, setup.cwd)
    setup.report.terminal = terminal
    supervisor = terminal.pid
    try:
        setup.ready(supervisor)
        expected = zero()
        for foreground in ("0", "1"):
            if foreground == "1":
                use_terminal(setup, terminal, supervisor)
            for _ in range(ROUNDS):
                assert setup.round(supervisor, lambda: terminal.type(b"\x03"), "SIGINT", expected) == foreground
                setup.round(supervisor, lambda: os.killpg(supervisor, signal.SIGINT), "SIGINT", expected)
                setup.round(supervisor, lambda: os.kill(supervisor, signal.SIGINT), "SIGINT", expected)
            terminal.type(b"\x1a")  # ^Z: discarded for an orphaned group
            assert setup.round(supervisor, lambda: terminal.type(b"\x03"), "SIGINT", expected) == foreground
            assert stat_of(supervisor)[0] != "T"
        setup.round(supervisor, terminal.hang_up, "SIGHUP", expected)
        setup.end(supervisor)
        status = terminal.wait()
    finally:
        terminal.close()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def interactive_bash(setup: Setup) -> Terminal:
    env = dict(setup.env, PS1="$ ", HISTFILE="/dev/null", TERM="dumb")
    terminal = Terminal(["/bin/bash", "--norc", "--noprofile", "-i"], env, setup.cwd)
    setup.report.terminal = terminal
    terminal.type(b"echo $((6*7))START\n")
    terminal.expect(b"42START")
    return terminal


def end_then_exit(setup: Setup, bash: Terminal, supervisor: int) -> int:
    """The supervisor's end, then the shell's: it still runs a command at its prompt, and exits (its status)."""
    setup.end(supervisor)
    bash.type(b"echo $((6*7))AFTER\n")
    bash.expect(b"42AFTER")
    bash.type(b"exit\n")
    return bash.wait()


def test_foreground_job_of_an_interactive_shell(setup: Setup) -> None:
    """A job of bash -i on a pty: ^C, kill -INT -JOB and kill -TERM PID each once, before and after a child of the
    program takes the terminal; ^Z stops the program and its supervisor, bash gets the terminal back, fg gives it
    to the job again; after the program's end, bash reads the terminal again."""
    bash = interactive_bash(setup)
    try:
        bash.type(shlex.join(setup.argv).encode() + b"\n")
        supervisor = only_child(bash.pid, "bash's job")
        program, _ = setup.ready(supervisor)
        assert stat_of(supervisor)[2] == str(supervisor), "bash made the job a process group"
        expected = zero()
        for foreground in ("0", "1"):
            if foreground == "1":
                use_terminal(setup, bash, supervisor, by="child")
            holder = program if foreground == "1" else supervisor  # the group with the terminal
            for _ in range(ROUNDS):
                assert setup.round(supervisor, lambda: bash.type(b"\x03"), "SIGINT", expected) == foreground
                setup.round(supervisor, lambda: os.killpg(supervisor, signal.SIGINT), "SIGINT", expected)
                setup.round(supervisor, lambda: os.kill(supervisor, signal.SIGTERM), "SIGTERM", expected)
            for _ in range(2):
                bash.type(b"\x1a")  # ^Z
                bash.expect(rb"Stopped")
                wait_for(lambda: stat_of(program)[0] == "T" and stat_of(supervisor)[0] == "T", "the job to stop")
                bash.type(b"echo $((6*7))STOPPED\n")  # read by bash: it has the terminal back
                bash.expect(b"42STOPPED")
                bash.type(b"fg\n")
                wait_for(lambda: stat_of(program)[0] != "T" and stat_of(supervisor)[0] != "T", "the job to go on")
                wait_for(functools.partial(has_terminal, program, holder), f"{holder}'s group to have the terminal")
                assert setup.round(supervisor, lambda: bash.type(b"\x03"), "SIGINT", expected) == foreground
        setup.end(supervisor)
        bash.type(b"echo $((6*7))AFTER $?\n")
        assert bash.expect(rb"42AFTER \d+") == b"42AFTER 0"
        bash.type(b"exit\n")
        status = bash.wait()
    finally:
        bash.close()
    assert os.WIFEXITED(status), status


def test_pipeline_member_reads_the_terminal(setup: Setup) -> None:
    """prog | reader, reader reading /dev/tty (as less does): the job's group keeps the terminal, so the reader
    reads; ^C reaches the reader and the supervisor, which forwards it once."""
    bash = interactive_bash(setup)
    reader = 'read x </dev/tty; echo "PIPE $x"; exec cat >/dev/null'
    try:
        bash.type(shlex.join(setup.argv).encode() + b" | sh -c " + shlex.quote(reader).encode() + b"\n")
        supervisor = job_leader(bash.pid)  # the first process of the pipeline
        setup.ready(supervisor)
        bash.type(b"hello\n")
        bash.expect(b"PIPE hello")
        expected = zero()
        assert setup.round(supervisor, lambda: bash.type(b"\x03"), "SIGINT", expected) == "0"
        status = end_then_exit(setup, bash, supervisor)
    finally:
        bash.close()
    assert os.WIFEXITED(status), status


def test_background_job_brought_to_the_foreground(setup: Setup) -> None:
    """Started with &, the program's group is in the background.  bash's fg of a running job gives the terminal to
    the job's group (the supervisor's) without a SIGCONT: ^C reaches the supervisor, which forwards it once; the
    program gets the terminal when it reads from it (SIGTTIN stops it, the supervisor hands it the terminal)."""
    bash = interactive_bash(setup)
    try:
        bash.type(shlex.join(setup.argv).encode() + b" &\n")
        supervisor = only_child(bash.pid, "bash's job")
        program, _ = setup.ready(supervisor)
        expected = zero()
        assert setup.round(supervisor, lambda: os.killpg(supervisor, signal.SIGINT), "SIGINT", expected) == "0"
        bash.type(b"fg\n")
        wait_for(lambda: stat_of(program)[5] == str(supervisor), "bash to give the job's group the terminal")
        assert setup.round(supervisor, lambda: bash.type(b"\x03"), "SIGINT", expected) == "0"
        use_terminal(setup, bash, supervisor)
        assert setup.round(supervisor, lambda: bash.type(b"\x03"), "SIGINT", expected) == "1"
        status = end_then_exit(setup, bash, supervisor)
    finally:
        bash.close()
    assert os.WIFEXITED(status), status


def test_background_job_that_reads_stops_until_fg(setup: Setup) -> None:
    """A background job whose program reads the terminal stops (bash says so), as a plain program would; fg gives
    the program's group the terminal and the read goes through."""
    bash = interactive_bash(setup)
    try:
        bash.type(shlex.join(setup.argv).encode() + b" &\n")
        supervisor = only_child(bash.pid, "bash's job")
        program, _ = setup.ready(supervisor)
        os.kill(supervisor, signal.SIGUSR1)  # the program reads from the terminal: SIGTTIN
        wait_for(lambda: stat_of(program)[0] == "T" and stat_of(supervisor)[0] == "T", "the job to stop")
        bash.type(b"\n")
        bash.expect(rb"Stopped")
        bash.type(b"fg\n")
        wait_for(lambda: stat_of(program)[5] == str(program), "the program's group to have the terminal")
        bash.type(b"hello\n")
        setup.report.expect(r"^LINE hello FG=1$", "the program's read from the terminal")
        expected = zero()
        assert setup.round(supervisor, lambda: bash.type(b"\x03"), "SIGINT", expected) == "1"
        status = end_then_exit(setup, bash, supervisor)
    finally:
        bash.close()
    assert os.WIFEXITED(status), status


def test_shell_without_job_control(setup: Setup) -> None:
    """sh -c, no job control: the supervisor shares sh's group, which has the terminal: ^C reaches sh (which traps
    it here) and the supervisor, which forwards it once, to the program and its child.  Once the program has taken
    the terminal, ^C reaches it alone; at its end the terminal goes back to sh's group, whose read then works."""
    script = "trap : INT; " + shlex.join(setup.argv) + '; read line; echo "READ $line"'
    setup.env["SIGNALS_GRANDCHILD"] = "1"
    terminal = Terminal(["/bin/sh", "-c", script], setup.env, setup.cwd)
    setup.report.terminal = terminal
    try:
        supervisor = only_child(terminal.pid, "sh's child")
        setup.ready(supervisor)
        setup.report.has(r"^CHILD-READY$", "the program's child started")
        expected = zero()
        # the terminal's ^C goes on to the program's whole group, as a plain program's job gets it
        setup.round(supervisor, lambda: terminal.type(b"\x03"), "SIGINT", expected)
        setup.report.has(r"^CHILD-INT$", "^C reached the program's child")
        for foreground in ("0", "1"):
            if foreground == "1":
                use_terminal(setup, terminal, supervisor)
            for _ in range(ROUNDS):
                assert setup.round(supervisor, lambda: terminal.type(b"\x03"), "SIGINT", expected) == foreground
        setup.end(supervisor)
        terminal.type(b"world\n")
        terminal.expect(b"READ world")
        status = terminal.wait()
    finally:
        terminal.close()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_program_dies_with_its_supervisor(setup: Setup) -> None:
    """SIGKILL to the supervisor kills the program (PR_SET_PDEATHSIG): it cannot end by itself meanwhile, as it
    waits for the end of a pipe this test holds open."""
    setup.program.write_text(
        "import os, sys\n"
        "open(os.environ['SIGNALS_REPORT'], 'a').write('READY %d %d\\n' % (os.getpid(), os.getpgrp()))\n"
        "sys.stdin.read()\n"
    )
    read_end, write_end = os.pipe()
    process = subprocess.Popen(setup.argv, env=setup.env, cwd=setup.cwd, stdin=read_end, stderr=subprocess.DEVNULL)
    os.close(read_end)
    program = None
    try:
        program, _ = setup.ready(process.pid)
        process.kill()
        process.wait()
        wait_for(lambda: stat_of(program)[0] in ("gone", "Z", "X"), "the program to die with its supervisor")
    finally:
        if program is not None and stat_of(program)[0] not in ("gone", "Z", "X"):
            os.kill(program, signal.SIGKILL)
        os.close(write_end)
        if process.poll() is None:
            process.kill()
            process.wait()
