"""An interleaving process-start benchmark harness.

Each round starts every case once (A B C A B C ...), rotating the order
from round to round, so that drift of a shared machine hits every case
alike.  A run is posix_spawn + wait4: the wall time around both, and the
child's own CPU time (user + system) from its rusage.  Results are medians;
comparisons are ratios of medians and medians of per-round differences.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass
class Case:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str]
    wall_ns: list[int] = field(default_factory=list)
    cpu_ns: list[int] = field(default_factory=list)
    #: Minor page faults of each run (its own and its waited-for children's).
    faults: list[int] = field(default_factory=list)

    @property
    def wall_ms(self) -> float:
        return statistics.median(self.wall_ns) / 1e6

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpu_ns) / 1e6

    @property
    def median_faults(self) -> float:
        return statistics.median(self.faults)


def spawn_once(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, int, int, int]:
    """Start argv with stdin/stdout/stderr on /dev/null: (wall ns, CPU ns, exit code, minor page faults)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
        start = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], list(argv), dict(env), file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter_ns() - start
    finally:
        os.close(devnull)
    cpu = round((usage.ru_utime + usage.ru_stime) * 1e9)
    return wall, cpu, os.waitstatus_to_exitcode(status), usage.ru_minflt


def measure(cases: Sequence[Case], rounds: int, warmup: int = 3) -> None:
    """Interleaved rounds; a run that fails stops the benchmark."""
    for round_no in range(-warmup, rounds):
        shift = round_no % len(cases)
        for case in [*cases[shift:], *cases[:shift]]:
            wall, cpu, code, faults = spawn_once(case.argv, case.env)
            if code != 0:
                raise SystemExit("{} exited with {}: {}".format(case.label, code, " ".join(case.argv)))
            if round_no >= 0:
                case.wall_ns.append(wall)
                case.cpu_ns.append(cpu)
                case.faults.append(faults)


def paired_delta_ms(case: Case, reference: Case) -> float:
    """Median over rounds of (case - reference) wall time, in ms."""
    return statistics.median(a - b for a, b in zip(case.wall_ns, reference.wall_ns)) / 1e6


def paired_ratio(case: Case, reference: Case) -> float:
    """Median over rounds of case / reference wall time (each pair started back to back)."""
    return statistics.median(a / b for a, b in zip(case.wall_ns, reference.wall_ns))


def ratio(case: Case, reference: Case) -> float:
    return case.wall_ms / reference.wall_ms


def cpu_ratio(case: Case, reference: Case) -> float:
    return case.cpu_ms / reference.cpu_ms


_COLLECTED = re.compile(r"==\d+== Collected : (\d+)")


def instructions(argv: Sequence[str], env: Mapping[str, str], repeat: int = 3, largest: bool = False) -> int:
    """Instructions executed by argv under callgrind (median of repeat runs).

    largest: of the processes that report (argv forks), the largest count, not the last; a forked
    child inherits the counts of what ran before the fork."""
    counts = []
    for _ in range(repeat):
        result = subprocess.run(
            # --vgdb=no: no gdbserver FIFOs in /tmp, which a process that exits by a signal (the pid entry's) leaves
            ["valgrind", "--tool=callgrind", "--vgdb=no", "--callgrind-out-file=/dev/null", *argv],
            env={**env, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        found = _COLLECTED.findall(result.stderr)
        if result.returncode != 0 or not found:
            raise SystemExit("callgrind failed for {}:\n{}".format(" ".join(argv), result.stderr[-2000:]))
        counts.append(max(int(n) for n in found) if largest else int(found[-1]))
    return int(statistics.median(counts))


def syscalls(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """System calls made by argv and its children (strace -f -c)."""
    with tempfile.NamedTemporaryFile("r", prefix="pyns-boot-strace.") as out:
        result = subprocess.run(
            ["strace", "-f", "-c", "-o", out.name, *argv],
            env=dict(env),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit("strace failed for {}:\n{}".format(" ".join(argv), result.stderr[-2000:]))
        for line in out.read().splitlines():
            fields = line.split()
            if fields and fields[-1] == "total":
                return int(fields[3])
    raise SystemExit("strace printed no total for {}".format(" ".join(argv)))
