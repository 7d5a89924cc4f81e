#!/usr/bin/env python3
"""What keeping imports on the original root costs after a gons_mnt join.

    python3 benchmarks/foreign_mnt.py [--rounds N] [--python PATH ...]

Run as root from the source tree.  The target is a mount namespace made with
``unshare --mount`` (a copy of the host's tree), so that both modes work and
can be compared on the same files:

1. start-up: ``python -c pass`` idle, with gons_mnt and PYNS_BOOT_KEEP_IMPORTS=0
   (imports read the target's copy at the usual paths), and with the default
   (imports read /proc/self/fd/N/...): interleaved process starts;
2. imports: the time a child spends importing a set of not-yet-loaded modules
   in both modes (timed inside the child, median of the runs);
3. the mechanism alone: os.stat of a standard-library file by its absolute
   path, through /proc/self/fd/N/..., and with dir_fd=N (what an openat-based
   meta path finder would do), in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fixtures import REPO, Holder, Venvs, build_wheel, clean_env, default_pythons, run
from _harness import Case, measure, paired_delta_ms

MODULES = "json, email.message, decimal, sqlite3, asyncio, http.client, xml.etree.ElementTree, argparse, logging"
IMPORT_TIMER = (
    f"import time; w, c = time.perf_counter(), time.process_time(); import {MODULES}; "
    "print(json.dumps([(time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000]))"
)


def import_ms(python: str, envs: list[dict[str, str]], runs: int) -> list[tuple[float, float]]:
    """(wall ms, CPU ms) medians per environment, the environments alternating run by run."""
    samples: list[list[list[float]]] = [[] for _ in envs]
    for _ in range(runs):
        for index, env in enumerate(envs):
            samples[index].append(json.loads(run([python, "-c", IMPORT_TIMER], env=env).stdout))
    return [(statistics.median(s[0] for s in runs_of), statistics.median(s[1] for s in runs_of)) for runs_of in samples]


def mechanism() -> dict[str, float]:
    target = os.path.join(os.path.dirname(os.__file__), "json", "decoder.py")
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        via_proc = f"/proc/self/fd/{fd}{target}"
        relative = target.lstrip("/")
        number = 200000
        result = {}
        for label, call in (
            ("absolute path", lambda: os.stat(target)),
            ("/proc/self/fd/N path", lambda: os.stat(via_proc)),
            ("dir_fd=N (openat)", lambda: os.stat(relative, dir_fd=fd)),
        ):
            best = min(timeit.repeat(call, number=number, repeat=5))
            result[label] = best / number * 1e9
        return result
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--python", action="append")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark makes a mount namespace")
    with tempfile.TemporaryDirectory(prefix="pyns-bench-mnt-") as tmp:
        workdir = Path(tmp)
        wheel = build_wheel(workdir, REPO)
        holder = Holder(("mnt",))
        try:
            for python in args.python or default_pythons():
                venvs = Venvs(python, wheel, workdir)
                hook = venvs.python("hook")
                mnt = holder.ref("mnt")
                cases = [
                    Case("idle", "idle", [hook, "-c", "pass"], clean_env()),
                    Case(
                        "off",
                        "gons_mnt, KEEP_IMPORTS=0",
                        [hook, "-c", "pass"],
                        clean_env(gons_mnt=mnt, PYNS_BOOT_KEEP_IMPORTS="0"),
                    ),
                    Case("on", "gons_mnt (default)", [hook, "-c", "pass"], clean_env(gons_mnt=mnt)),
                ]
                measure(cases, args.rounds)
                print(f"\n### Python {venvs.version}: start-up ({args.rounds} interleaved rounds, medians)\n")
                print("| case | wall ms | CPU ms |\n|---|---|---|")
                for case in cases:
                    print(f"| {case.label} | {case.wall_ms:.2f} | {case.cpu_ms:.2f} |")
                print(
                    f"\nkeeping imports costs {paired_delta_ms(cases[2], cases[1]):+.2f} ms wall per start (paired "
                    "median vs KEEP_IMPORTS=0)"
                )
                runs = max(5, args.rounds // 3)
                off, on = import_ms(
                    hook, [clean_env(gons_mnt=mnt, PYNS_BOOT_KEEP_IMPORTS="0"), clean_env(gons_mnt=mnt)], runs
                )
                print(
                    f"\nimport {MODULES}: wall {off[0]:.1f} ms / CPU {off[1]:.1f} ms at the usual paths, wall "
                    f"{on[0]:.1f} ms / CPU {on[1]:.1f} ms through "
                    f"/proc/self/fd/N (CPU {(on[1] / off[1] - 1) * 100:+.0f}%)"
                )
        finally:
            holder.stop()
    print("\n### The mechanism alone (this interpreter, ns per os.stat)\n")
    print("| lookup | ns |\n|---|---|")
    for label, ns in mechanism().items():
        print(f"| {label} | {ns:.0f} |")


if __name__ == "__main__":
    main()
