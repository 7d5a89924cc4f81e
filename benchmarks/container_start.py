#!/usr/bin/env python3
"""pyns-boot run against the hook route, nsenter and ip netns exec, into a real container.

    python3 benchmarks/container_start.py [--rounds N] [--python PATH ...] [--container-lookup] [--instructions]

Run as root from the source tree, with the lab (scripts/lab.sh setup): it
starts a podman container of localhost/pyns-lab:sid (own pid, mnt, net, uts,
ipc namespaces) and a named network namespace, and, in interleaved rounds
(harness: benchmarks/_harness.py), starts ``python -c pass`` of a venv that
has the wheel, each way side by side with what it is judged against:

- ``pyns-boot run -t PID --all -c pass`` against the hook route with the same
  joins, ``gons_{ipc,mnt,net,pid,uts}=... python -c pass`` (goal: at most
  1.05x), and against the nsenter workaround ``nsenter -t PID --pid -- env
  gons_{ipc,mnt,net,uts}=... python -c pass`` (within 10%);
- ``pyns-boot run -t PID -n -u -c pass`` against ``nsenter -t PID -n -u
  python -c pass`` (goal: at most 1.0x);
- ``pyns-boot run --netns NAME -c pass`` against ``ip netns exec NAME python
  -c pass`` (goal: at most 1.0x);
- ``python -c pass`` on the host, for scale.

Goals of issue 21 (pyns-boot run runs the program in its own process).  With
--container-lookup also ``pyns-boot run --container NAME`` (which runs
``podman container inspect`` first).  With --instructions also callgrind's
instruction counts of each ``pyns-boot run`` case and of the hook route with
the same joins (``gons_*=... python -c pass``, ``gons_netns=NAME python -c
pass``), which tell what the command adds whatever the machine's load; nsenter
and ip netns exec are left out there (callgrind counts the interpreter they
exec, not their own exec).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fixtures import REPO, Venvs, build_wheel, clean_env, default_pythons
from _harness import Case, cpu_ratio, instructions, measure, paired_delta_ms, ratio
from containers import LabContainer, lab_missing

JOINED = ("ipc", "mnt", "net", "uts")  # the container's; pid: nsenter --pid, or the hook (gons_pid)
#: (case, reference, goal): the ratios judged, by wall-time median.
GOALS = (("cli-all", "env-all", 1.05), ("cli-all", "nsenter", 1.10), ("cli-nu", "nsenter-nu", 1.0))
NETNS_GOAL = ("cli-netns", "ip-netns", 1.0)
#: (case, the hook route with the same joins): what --instructions compares.
INSTRUCTION_PAIRS = (("cli-all", "env-all"), ("cli-nu", "env-nu"), ("cli-netns", "env-netns"))


def spawn_ok(argv: list[str], env: dict[str, str]) -> str | None:
    """None when argv runs with exit status 0, else its status and last line of stderr."""
    result = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if result.returncode == 0:
        return None
    lines = result.stderr.strip().splitlines()
    return "exit {}: {}".format(result.returncode, lines[-1] if lines else "")


def cases_for(
    venvs: Venvs, container: LabContainer, netns: str, lookup: bool, instructions_too: bool
) -> tuple[list[Case], list[str]]:
    python = venvs.python("hook")
    cli = str(Path(python).parent / "pyns-boot")
    pid = container.pid
    refs = {"gons_" + t: container.ref(t) for t in JOINED}
    env = clean_env()
    nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
    envtool = shutil.which("env") or "/usr/bin/env"
    ip = shutil.which("ip") or "/usr/sbin/ip"
    candidates = [
        Case("cli-all", "pyns-boot run -t PID --all -c pass", [cli, "run", "-t", pid, "--all", "-c", "pass"], env),
        Case(
            "env-all",
            "gons_{ipc,mnt,net,pid,uts}=... python -c pass (the hook route, same joins)",
            [python, "-c", "pass"],
            {**env, **refs, "gons_pid": container.ref("pid")},
        ),
        Case(
            "nsenter",
            "nsenter -t PID --pid -- env gons_{ipc,mnt,net,uts}=... python -c pass",
            [
                nsenter,
                "-t",
                pid,
                "--pid",
                "--",
                envtool,
                *("{}={}".format(*kv) for kv in refs.items()),
                python,
                "-c",
                "pass",
            ],
            env,
        ),
        Case("cli-nu", "pyns-boot run -t PID -n -u -c pass", [cli, "run", "-t", pid, "-n", "-u", "-c", "pass"], env),
        Case(
            "nsenter-nu",
            "nsenter -t PID -n -u python -c pass",
            [nsenter, "-t", pid, "-n", "-u", python, "-c", "pass"],
            env,
        ),
        Case("cli-netns", "pyns-boot run --netns NAME -c pass", [cli, "run", "--netns", netns, "-c", "pass"], env),
        Case("ip-netns", "ip netns exec NAME python -c pass", [ip, "netns", "exec", netns, python, "-c", "pass"], env),
        Case("host", "python -c pass (host, no gons_*)", [python, "-c", "pass"], env),
    ]
    if lookup:
        candidates.append(
            Case(
                "lookup",
                "pyns-boot run --container NAME -c pass",
                [cli, "run", "--container", container.name, "-c", "pass"],
                env,
            )
        )
    if instructions_too:
        candidates += [
            Case(
                "env-nu",
                "gons_{net,uts}=... python -c pass (the hook route, same joins)",
                [python, "-c", "pass"],
                {**env, "gons_net": refs["gons_net"], "gons_uts": refs["gons_uts"]},
            ),
            Case(
                "env-netns",
                "gons_netns=NAME python -c pass (the hook route, same join)",
                [python, "-c", "pass"],
                {**env, "gons_netns": netns},
            ),
        ]
    usable, skipped = [], []
    for case in candidates:
        why = spawn_ok(case.argv, case.env)
        if why is None:
            usable.append(case)
        else:
            skipped.append(f"{case.label}: {why}")
    return usable, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--python", action="append")
    parser.add_argument("--container-lookup", action="store_true", help="also time run --container NAME")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark starts a podman container")
    missing = lab_missing()
    if missing:
        raise SystemExit(missing)
    container = LabContainer("bench")
    netns = "pyns-bench-" + os.urandom(4).hex()
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        with tempfile.TemporaryDirectory(prefix="pyns-bench-ctr-") as tmp:
            wheel = build_wheel(Path(tmp), REPO)
            for python in args.python or default_pythons():
                venvs = Venvs(python, wheel, Path(tmp))
                cases, skipped = cases_for(venvs, container, netns, args.container_lookup, args.instructions)
                timed = [case for case in cases if case.key not in ("env-nu", "env-netns")]
                measure(timed, args.rounds)
                report(venvs.version, args.rounds, timed, skipped)
                if args.instructions:
                    report_instructions(cases)
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)
        container.remove()


def report(version: str, rounds: int, cases: list[Case], skipped: list[str]) -> None:
    by_key = {case.key: case for case in cases}
    print(f"\n### Python {version} into a podman container ({rounds} interleaved rounds, medians)\n")
    print("| case | wall ms | CPU ms | minor page faults |\n|---|---|---|---|")
    for case in cases:
        print(f"| {case.label} | {case.wall_ms:.2f} | {case.cpu_ms:.2f} | {case.median_faults:.0f} |")
    for line in skipped:
        print(f"\nnot measured (it fails here): {line}")
    print("\n| ratio | wall | CPU | goal (wall) | paired median (wall) |\n|---|---|---|---|---|")
    for key, reference, goal in (*GOALS, NETNS_GOAL):
        if key in by_key and reference in by_key:
            case, base = by_key[key], by_key[reference]
            verdict = "met" if ratio(case, base) <= goal else "missed"
            print(
                f"| {case.label} / {base.label} | {ratio(case, base):.3f} | {cpu_ratio(case, base):.3f} | "
                f"<= {goal} ({verdict}) | {paired_delta_ms(case, base):+.2f} ms |"
            )


def report_instructions(cases: list[Case]) -> None:
    by_key = {case.key: case for case in cases}
    print(
        "\n| instructions (callgrind, PYTHONHASHSEED=0; with a pid join: the program's process) | pyns-boot run | "
        "the hook route | difference |"
    )
    print("|---|---|---|---|")
    for key, reference in INSTRUCTION_PAIRS:
        if key in by_key and reference in by_key:
            ours = instructions(by_key[key].argv, by_key[key].env, largest=True) / 1e6
            theirs = instructions(by_key[reference].argv, by_key[reference].env, largest=True) / 1e6
            print(f"| {by_key[key].label} | {ours:.2f} M | {theirs:.2f} M | {ours - theirs:+.2f} M |")
    if "host" in by_key:
        host = instructions(by_key["host"].argv, by_key["host"].env) / 1e6
        print(f"\n(python -c pass on the host: {host:.2f} M)")


if __name__ == "__main__":
    main()
