#!/usr/bin/env python3
"""What entering the pid namespace costs: gons_pid (fork + C supervisor) against PYNS_BOOT_PID=children.

    python3 benchmarks/pid_entry.py [--rounds N] [--python PATH ...] [--wheel WHEEL] [--no-callgrind]

Run as root from the source tree.  Per interpreter (default: the oldest and
the newest pyenv CPython) one venv with the wheel, and one holder of a fresh
pid namespace (unshare).  ``python -c pass`` starts, interleaved round by
round: with no gons_* variable (idle, for scale), with gons_pid and
PYNS_BOOT_PID=children (the same join, no fork), and with gons_pid alone
(the program enters: the hook forks, the parent supervises).  The goal: the
median of the per-round differences entered - children under 0.5 ms.

Noise-free views beside the wall time: the user-space instructions of the
program's process under callgrind (a forked child inherits the counts of
what ran before the fork, so the program's count is the whole chain; the
supervisor's own loop after the fork is a few system calls), and the system
calls of every process of a start (strace -f).  The fork itself is kernel
work, which only the wall and CPU times see.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fixtures import REPO, Holder, Venvs, build_wheel, clean_env, default_pythons, run, tool
from _harness import Case, cpu_ratio, instructions, measure, paired_delta_ms, ratio, syscalls

PASS = ["-c", "pass"]
GOAL_MS = 0.5
# The same fork done by Python code at the start of an idle interpreter: what one fork of it costs.
FORK = "import os\nif os.fork():\n    os._exit(os.WEXITSTATUS(os.wait()[1]))"
MODE_PROBE = "import os, pyns_boot; print(pyns_boot.status().pid_mode, os.getpid())"


def minor_faults(argv: Sequence[str], env: Mapping[str, str], repeat: int = 20) -> int:
    """Page faults of a start, every process it waited for included (wait4 rusage; median)."""
    counts = []
    for _ in range(repeat):
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
            pid = os.posix_spawn(argv[0], list(argv), dict(env), file_actions=actions)
            _, _, usage = os.wait4(pid, 0)
        finally:
            os.close(devnull)
        counts.append(usage.ru_minflt + usage.ru_majflt)
    return int(statistics.median(counts))


class Interpreter:
    def __init__(self, venvs: Venvs, holder: Holder) -> None:
        self.version = venvs.version
        python = venvs.python("hook")
        pid = {"gons_pid": holder.ref("pid")}
        self.idle = Case("idle", "no gons_* (idle)", [python, *PASS], clean_env())
        self.children = Case(
            "children", "gons_pid, PYNS_BOOT_PID=children", [python, *PASS], clean_env(**pid, PYNS_BOOT_PID="children")
        )
        self.entered = Case("entered", "gons_pid (fork + supervisor)", [python, *PASS], clean_env(**pid))
        self.forked = Case("forked", "no gons_*, os.fork() first (one fork)", [python, "-c", FORK], clean_env())
        self.cases = [self.idle, self.children, self.entered, self.forked]

    def verify(self) -> None:
        """Each case does what its label says before it is timed."""
        for case, mode in ((self.children, "children"), (self.entered, "entered")):
            out = run([case.argv[0], "-c", MODE_PROBE], env=case.env).stdout.split()
            if out[0] != mode:
                raise SystemExit(f"{self.version} {case.label}: pid_mode is {out[0]}, not {mode}")


def report(
    interps: list[Interpreter],
    counts: dict[str, dict[str, int]],
    calls: dict[str, dict[str, int]],
    faults: dict[str, dict[str, int]],
    rounds: int,
    command: str,
) -> str:
    lines = [
        "# pid entry: fork + supervisor against PYNS_BOOT_PID=children",
        "",
        "{}; {}; {}, {} CPUs, load {}; {} interleaved rounds; `{}`".format(
            datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            platform.platform(),
            platform.machine(),
            os.cpu_count() or 0,
            " ".join(f"{load:.2f}" for load in os.getloadavg()),
            rounds,
            command,
        ),
        "",
        "| Python | case | wall median ms | CPU median ms | instructions (the program's process) | "
        "system calls (all processes) | page faults (all processes) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for interp in interps:
        for case in interp.cases:
            count = counts.get(interp.version, {}).get(case.key)
            call_count = calls.get(interp.version, {}).get(case.key)
            fault_count = faults.get(interp.version, {}).get(case.key)
            lines.append(
                "| {} | {} | {:.2f} | {:.2f} | {} | {} | {} |".format(
                    interp.version,
                    case.label,
                    case.wall_ms,
                    case.cpu_ms,
                    f"{count:,}" if count else "-",
                    call_count if call_count else "-",
                    fault_count if fault_count else "-",
                )
            )
    lines += [
        "",
        "| Python | entered - children, median of per-round differences | wall ratio | CPU ratio | "
        f"added instructions | goal < {GOAL_MS:.1f} ms | for scale: one os.fork(), forked - idle |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for interp in interps:
        delta = paired_delta_ms(interp.entered, interp.children)
        version_counts = counts.get(interp.version, {})
        added = (
            "{:+,}".format(version_counts["entered"] - version_counts["children"])
            if "entered" in version_counts
            else "-"
        )
        lines.append(
            "| {} | {:+.3f} ms | {:.3f} | {:.3f} | {} | {} | {:+.3f} ms |".format(
                interp.version,
                delta,
                ratio(interp.entered, interp.children),
                cpu_ratio(interp.entered, interp.children),
                added,
                "met" if delta < GOAL_MS else "MISSED",
                paired_delta_ms(interp.forked, interp.idle),
            )
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", help="interpreter to make the venv from (repeatable)")
    parser.add_argument("--rounds", type=int, default=300, help="interleaved rounds of process starts")
    parser.add_argument("--wheel", type=Path, help="use this wheel instead of building one from the source tree")
    parser.add_argument("--source", type=Path, default=REPO, help="source tree to build the wheel from")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the callgrind instruction counts")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark makes a pid namespace and joins it")
    if tool("unshare") is None:
        raise SystemExit("needs unshare (util-linux)")
    command = "python3 benchmarks/pid_entry.py" + "".join(" " + a for a in (argv if argv is not None else sys.argv[1:]))
    workdir = Path(tempfile.mkdtemp(prefix="pyns-boot-bench-pid."))
    holder: Holder | None = None
    try:
        print(f"building the wheel and the venvs in {workdir} ...", file=sys.stderr)
        wheel = args.wheel or build_wheel(workdir / "wheel", args.source)
        holder = Holder(("pid",))
        interps = [Interpreter(Venvs(p, wheel, workdir), holder) for p in args.python or default_pythons()]
        for interp in interps:
            interp.verify()
        cases = [case for interp in interps for case in interp.cases]
        print(f"timing {len(cases)} cases x {args.rounds} rounds ...", file=sys.stderr)
        measure(cases, args.rounds)
        counts: dict[str, dict[str, int]] = {}
        calls: dict[str, dict[str, int]] = {}
        faults = {interp.version: {c.key: minor_faults(c.argv, c.env) for c in interp.cases} for interp in interps}
        for interp in interps:
            if not args.no_callgrind and tool("valgrind") is not None:
                print(f"callgrind for {interp.version} ...", file=sys.stderr)
                counts[interp.version] = {c.key: instructions(c.argv, c.env, largest=True) for c in interp.cases}
            if tool("strace") is not None:
                calls[interp.version] = {c.key: syscalls(c.argv, c.env) for c in interp.cases}
        text = report(interps, counts, calls, faults, args.rounds, command)
    finally:
        if holder is not None:
            holder.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
