#!/usr/bin/env python3
"""What a child interpreter started inside a container costs (issue 21, 3).

    python3 benchmarks/children.py [--rounds N] [--per-round K] [--python PATH ...]

Run as root from the source tree.  The target is made with ``unshare``: its
own mount and pid namespaces (a copy of the host's tree, its own /proc), so
that the parent can run there with keep-imports.  A parent program times, in
itself, K starts of a child of ``sys.executable``:

- ``subprocess.run([sys.executable, "-c", "pass"])``
- a ``multiprocessing`` spawn ``Process`` started and joined (one started
  before the timing, so the resource tracker of 3.15 is running)

once as a plain program on the host and once joined to the target
(``gons_mnt`` + ``gons_pid``), where each child starts from the original
mount namespace and joins the target again (pyns_boot._children).  The two
parents alternate, round by round; the numbers are medians over every
child of all rounds (wall time, and CPU time of the parent and its children
together: the parent's share is the route's), and their ratios.  For comparison, the hook route of a
child started from outside with the same joins (``gons_mnt=... gons_pid=...
python -c pass``) against a plain ``python -c pass``, timed the same way
(posix_spawn and wait4, interleaved).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fixtures import REPO, Holder, Venvs, build_wheel, clean_env, default_pythons, run
from _harness import Case, cpu_ratio, measure, ratio

PARENT = r"""
import json, multiprocessing, os, resource, subprocess, sys, time


def cpu():
    # the parent's own CPU time (the route runs in it) plus its reaped children's
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


if __name__ == "__main__":
    count = int(sys.argv[1])
    context = multiprocessing.get_context("spawn")
    warm = context.Process(target=os.getpid)
    warm.start()
    warm.join()
    samples = {"subprocess": [], "spawn": [], "subprocess_cpu": [], "spawn_cpu": []}
    for _ in range(count):
        start, start_cpu = time.perf_counter(), cpu()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        samples["subprocess"].append(time.perf_counter() - start)
        samples["subprocess_cpu"].append(cpu() - start_cpu)
        start, start_cpu = time.perf_counter(), cpu()
        process = context.Process(target=os.getpid)
        process.start()
        process.join()
        assert process.exitcode == 0
        samples["spawn"].append(time.perf_counter() - start)
        samples["spawn_cpu"].append(cpu() - start_cpu)
    print(json.dumps(samples))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--python", action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyns-bench-children-") as tmp:
        workdir = Path(tmp)
        wheel = build_wheel(workdir, REPO)
        holder = Holder(("mnt", "pid"), "mount -t proc proc /proc")
        try:
            for python in args.python or default_pythons():
                venvs = Venvs(python, wheel, workdir)
                hook = venvs.python("hook")
                program = venvs.site_packages("hook") / "pyns_bench_children.py"
                program.write_text(PARENT)
                inside = clean_env(**holder.env())
                parents = {"host": clean_env(), "inside": inside}
                samples: dict[str, dict[str, list[float]]] = {
                    k: {"subprocess": [], "spawn": [], "subprocess_cpu": [], "spawn_cpu": []} for k in parents
                }
                for round_no in range(args.rounds):
                    order = list(parents) if round_no % 2 == 0 else list(reversed(parents))
                    for where in order:
                        out = run([hook, "-m", "pyns_bench_children", str(args.per_round)], env=parents[where], cwd="/")
                        for kind, values in json.loads(out.stdout).items():
                            samples[where][kind].extend(values)
                hook_cases = [
                    Case("plain", "python -c pass", [hook, "-c", "pass"], clean_env()),
                    Case("joined", "gons_mnt + gons_pid python -c pass", [hook, "-c", "pass"], inside),
                ]
                measure(hook_cases, args.rounds * args.per_round)
                count = args.rounds * args.per_round
                print(
                    f"\n### Python {venvs.version}: a child start ({args.rounds} rounds of {args.per_round}, medians)\n"
                )
                print(
                    "| child | wall: plain parent on the host | parent inside the target | ratio "
                    "| CPU: on the host | inside | ratio |\n|---|---|---|---|---|---|---|"
                )
                for kind, label in (
                    ("subprocess", "subprocess.run([sys.executable, '-c', 'pass'])"),
                    ("spawn", "multiprocessing spawn Process start + join"),
                ):
                    cells = []
                    for key in (kind, kind + "_cpu"):
                        host = statistics.median(samples["host"][key]) * 1000
                        there = statistics.median(samples["inside"][key]) * 1000
                        cells.append(f"{host:.1f} ms | {there:.1f} ms | {there / host:.2f}x")
                    print(f"| {label} | {' | '.join(cells)} |")
                plain, joined = hook_cases
                print(
                    f"\nthe same child started from outside ({count} interleaved starts): python -c pass "
                    f"{plain.wall_ms:.1f} ms (CPU {plain.cpu_ms:.1f} ms), with gons_mnt + gons_pid "
                    f"{joined.wall_ms:.1f} ms (CPU {joined.cpu_ms:.1f} ms): {ratio(joined, plain):.2f}x wall, "
                    f"{cpu_ratio(joined, plain):.2f}x CPU"
                )
        finally:
            holder.stop()


if __name__ == "__main__":
    main()
