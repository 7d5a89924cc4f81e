"""Benchmark call_in and NamespaceExecutor against their baselines.

Run as root, with pyns_boot installed in the interpreter that runs it:

    python benchmarks/bench_executor.py [--rounds N] [--calls N] [--netns N]

Every variant does the same work (benchmarks/_bench_work.py: read the
network namespace link and the interface names) and the variants of one
measurement alternate within each round; the table reports medians and the
ratio pyns_boot / baseline (below 1: pyns_boot is faster).

- warm call: NamespaceExecutor(max_workers=1) on a named netns against a
  plain ProcessPoolExecutor(max_workers=1), both warmed up; per-call time
  over blocks of --calls sequential submit().result().
- cold call: the first call_in of a program (the fork server is started
  for it) against ``nsenter --net=PATH python -c CODE`` and against a fresh
  interpreter joined by the start-up hook (``python -c CODE`` with
  Namespaces.to_env()).
- fifty netns: --netns different named network namespaces visited one
  after the other, starting without a fork server, against as many
  nsenter + python runs and as many hook-joined interpreters.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

from _bench_work import CODE, net_info

import pyns_boot
from pyns_boot import NamespaceExecutor, Namespaces, _call_in, call_in


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return out.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("gons_")}
    env.update(extra)
    return env


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_warm(spec: Namespaces, rounds: int, calls: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"NamespaceExecutor": [], "ProcessPoolExecutor": []}
    with NamespaceExecutor(spec, max_workers=1) as ours, ProcessPoolExecutor(max_workers=1) as plain:
        for executor in (ours, plain):
            for _ in range(20):
                executor.submit(net_info).result()
        for _ in range(rounds):
            for name, executor in (("NamespaceExecutor", ours), ("ProcessPoolExecutor", plain)):

                def block(executor: object = executor) -> None:
                    for _ in range(calls):
                        executor.submit(net_info).result()  # type: ignore[attr-defined]

                results[name].append(timed(block) / calls)
    return results


def bench_cold(spec: Namespaces, path: str, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"call_in, cold": [], "call_in, server running": [], "nsenter": [], "hook": []}
    nsenter = ["nsenter", "--net=" + path, sys.executable, "-c", CODE]
    hook_env = _clean_env(**spec.to_env())
    plain_env = _clean_env()
    for _ in range(rounds):
        _call_in._close_shared_server()
        results["call_in, cold"].append(timed(lambda: call_in(spec, net_info)))
        results["call_in, server running"].append(timed(lambda: call_in(spec, net_info)))
        results["nsenter"].append(timed(lambda: _run(nsenter, plain_env)))
        results["hook"].append(timed(lambda: _run([sys.executable, "-c", CODE], hook_env)))
    return results


def bench_fifty(paths: list[str], rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"call_in": [], "nsenter": [], "hook": []}
    specs = [Namespaces(net=p) for p in paths]
    plain_env = _clean_env()

    def with_call_in() -> None:
        _call_in._close_shared_server()
        links = {call_in(spec, net_info)[0] for spec in specs}
        assert len(links) == len(specs)

    def with_nsenter() -> None:
        for p in paths:
            _run(["nsenter", "--net=" + p, sys.executable, "-c", CODE], plain_env)

    def with_hook() -> None:
        for spec in specs:
            _run([sys.executable, "-c", CODE], _clean_env(**spec.to_env()))

    for _ in range(rounds):
        results["call_in"].append(timed(with_call_in))
        results["nsenter"].append(timed(with_nsenter))
        results["hook"].append(timed(with_hook))
    return results


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--netns", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces")

    names = [f"pyns-bench-{uuid.uuid4().hex[:6]}-{i}" for i in range(args.netns)]
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        paths = ["/run/netns/" + n for n in names]
        spec = Namespaces(net=paths[0])
        assert call_in(spec, net_info)[0] != net_info()[0], "call_in did not switch the network namespace"
        warm = bench_warm(spec, args.rounds, args.calls)
        cold = bench_cold(spec, paths[0], args.rounds)
        fifty = bench_fifty(paths, args.rounds)
    finally:
        _call_in._close_shared_server()
        for name in names:
            subprocess.run(["ip", "netns", "delete", name], check=False)

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        "{} UTC; {}, {} cores, Linux {}; Python {}; pyns_boot {}".format(
            datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            cpu,
            os.cpu_count() or 0,
            platform.release(),
            platform.python_version(),
            pyns_boot.__version__,
        )
    )
    print("`{}`; medians of {} interleaved rounds\n".format(" ".join(["python", *sys.argv]), args.rounds))
    print("| measurement | pyns_boot | baseline | ratio |")
    print("|---|---|---|---|")

    def row(label: str, ours: list[float], base: list[float], base_label: str, unit: str = "ms") -> None:
        a, b = ms(ours), ms(base)
        scale, fmt = (1000, "%.0f µs") if unit == "us" else (1, "%.1f ms")
        print(f"| {label} | {fmt % (a * scale)} | {base_label}: {fmt % (b * scale)} | {a / b:.2f}x |")

    row(
        "warm call (per call)",
        warm["NamespaceExecutor"],
        warm["ProcessPoolExecutor"],
        "ProcessPoolExecutor",
        "us",
    )
    row("cold call_in (starts the fork server)", cold["call_in, cold"], cold["nsenter"], "nsenter + python")
    row("cold call_in (starts the fork server)", cold["call_in, cold"], cold["hook"], "python joined by the hook")
    row("call_in, fork server running", cold["call_in, server running"], cold["nsenter"], "nsenter + python")
    row(f"{args.netns} netns one after the other", fifty["call_in"], fifty["nsenter"], "nsenter + python")
    row(f"{args.netns} netns one after the other", fifty["call_in"], fifty["hook"], "python joined by the hook")


if __name__ == "__main__":
    main()
