#!/usr/bin/env python3
"""What importing extension modules costs after a mnt join into a real container.

    python3 benchmarks/foreign_imports.py [--rounds N] [--python PATH ...]

Run as root from the source tree, with the lab image (scripts/lab.sh setup).
A podman container of localhost/pyns-lab:sid (Debian sid: a newer glibc and
newer libraries than the host) is the target.  Each round starts, side by
side and alternating, the same venv interpreter

- on the host: ``import ssl, sqlite3, ctypes, lzma``, and
- inside the container: ``nsenter -t PID --pid -- ... gons_mnt=/proc/PID/ns/mnt``
  and the same imports, which there read the modules through /proc/self/fd/N
  and load their shared libraries from the host first (pyns_boot._elfdeps).

The child times the imports itself (wall and CPU, after start-up); the
report gives the medians and their ratio (the goal: at most 1.3).  The last
columns split the preloading inside: the time spent in
pyns_boot._elfdeps.preload_needed, and within it in dlopen() (work the host
does too, inside the dlopen of the extension module).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fixtures import REPO, Venvs, build_wheel, clean_env, default_pythons, run, tool

IMAGE = "localhost/pyns-lab:sid"
PODMAN = ["podman", "--runtime", "/usr/sbin/runc"]
MODULES = "ssl, sqlite3, ctypes, lzma"
COLLECTED = re.compile(r"==\d+== Collected : (\d+)")
# The preloading's own share, timed by wrapping the one function it goes through.
TIMER = rf"""
import json, sys, time
w, c = time.perf_counter(), time.process_time()  # loading pyns_boot._elfdeps counts too
spent = [0.0, 0.0]
if "pyns_boot._keep_imports" in sys.modules:
    import _pyns_boot
    from pyns_boot import _elfdeps
    def timing(function, slot):
        def timed(*args):
            start = time.process_time()
            try:
                return function(*args)
            finally:
                spent[slot] += time.process_time() - start
        return timed
    _elfdeps.preload_needed = timing(_elfdeps.preload_needed, 0)
    _pyns_boot.preload = timing(_pyns_boot.preload, 1)
import {MODULES}
w, c = time.perf_counter() - w, time.process_time() - c
print(json.dumps([w * 1000, c * 1000, spent[0] * 1000, spent[1] * 1000]))
"""


def measure(python: str, pid: int, rounds: int, prefix: list[str]) -> dict[str, list[list[float]]]:
    host = [*prefix, python, "-c", TIMER]
    inside = [*prefix, "nsenter", "-t", str(pid), "--pid", "--", python, "-c", TIMER]
    joined = clean_env(gons_mnt=f"/proc/{pid}/ns/mnt")
    samples: dict[str, list[list[float]]] = {"host": [], "container": []}
    for round_no in range(rounds + 2):
        order = [("host", host, clean_env()), ("container", inside, joined)]
        if round_no % 2:
            order.reverse()
        for key, argv, env in order:
            sample = json.loads(run(argv, env=env, cwd="/").stdout)
            if round_no >= 2:  # two warm-up rounds
                samples[key].append(sample)
    return samples


def instructions(argv: list[str], env: dict[str, str], repeat: int = 3) -> int:
    """Instructions executed by the interpreter (callgrind inside the wrapper: nsenter is not counted)."""
    counts = []
    for _ in range(repeat):
        result = subprocess.run(
            argv, env={**env, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/"
        )
        found = COLLECTED.findall(result.stderr)
        if result.returncode != 0 or not found:
            raise SystemExit("callgrind failed for {}:\n{}".format(" ".join(argv), result.stderr[-2000:]))
        counts.append(int(found[-1]))
    return int(statistics.median(counts))


def import_instructions(python: str, pid: int) -> tuple[int, int]:
    """Instructions the imports cost (with them minus without), on the host and inside."""
    valgrind = ["valgrind", "--tool=callgrind", "--vgdb=no", "--callgrind-out-file=/dev/null", python, "-c"]
    inside = ["nsenter", "-t", str(pid), "--pid", "--", *valgrind]
    joined = clean_env(gons_mnt=f"/proc/{pid}/ns/mnt")
    imports = f"import {MODULES}"
    host = instructions([*valgrind, imports], clean_env()) - instructions([*valgrind, "pass"], clean_env())
    there = instructions([*inside, imports], joined) - instructions([*inside, "pass"], joined)
    return host, there


def median(samples: list[list[float]], index: int) -> float:
    return statistics.median(sample[index] for sample in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--python", action="append")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts (valgrind)")
    parser.add_argument(
        "--fifo",
        action="store_true",
        help="run the timed children under SCHED_FIFO (chrt -f 10): other jobs of a shared machine then stretch "
        "neither side's wall clock",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark starts a container and joins its namespaces")
    if shutil.which("podman") is None or subprocess.run(["podman", "image", "exists", IMAGE]).returncode != 0:
        raise SystemExit(f"needs podman and the image {IMAGE}: run scripts/lab.sh setup")
    name = "pyns-bench-libs-" + uuid.uuid4().hex[:8]
    run([*PODMAN, "run", "-d", "--name", name, IMAGE, "sleep", "infinity"])
    try:
        pid = int(run([*PODMAN, "inspect", "-f", "{{.State.Pid}}", name]).stdout)
        with tempfile.TemporaryDirectory(prefix="pyns-bench-libs-") as tmp:
            workdir = Path(tmp)
            wheel = build_wheel(workdir, REPO)
            pythons = {}
            print(f"### import {MODULES}: on the host vs after a mnt join into a {IMAGE} container\n")
            print(
                "{} alternating rounds, medians, timed inside the child after start-up{}.\n".format(
                    args.rounds, ", children under SCHED_FIFO" if args.fifo else ""
                )
            )
            print(
                "| Python | host wall ms | container wall ms | ratio | host CPU ms | container CPU ms | ratio |"
                " preloading CPU ms | of which dlopen |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            for python in args.python or default_pythons():
                venvs = Venvs(python, wheel, workdir)
                pythons[venvs.version] = venvs.python("hook")
                samples = measure(venvs.python("hook"), pid, args.rounds, ["chrt", "-f", "10"] if args.fifo else [])
                host, inside = samples["host"], samples["container"]
                print(
                    f"| {venvs.version} | {median(host, 0):.2f} | {median(inside, 0):.2f} | "
                    f"{median(inside, 0) / median(host, 0):.2f} | {median(host, 1):.2f} | {median(inside, 1):.2f} | "
                    f"{median(inside, 1) / median(host, 1):.2f} | {median(inside, 2):.2f} | {median(inside, 3):.2f} |"
                )
            if args.no_callgrind or tool("valgrind") is None:
                return
            print("\n### The same imports in instructions (callgrind: with the imports minus `-c pass`)\n")
            print("| Python | host | container | ratio |\n|---|---|---|---|")
            for version, python in pythons.items():
                host_count, inside_count = import_instructions(python, pid)
                print(
                    f"| {version} | {host_count / 1e6:.1f} M | {inside_count / 1e6:.1f} M | "
                    f"{inside_count / host_count:.2f} |"
                )
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "-t", "0", name], capture_output=True)


if __name__ == "__main__":
    main()
