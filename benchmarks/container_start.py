#!/usr/bin/env python3
"""Starting a host Python inside a real container: pyns-boot run against the nsenter workaround.

    python3 benchmarks/container_start.py [--rounds N] [--python PATH ...] [--container-lookup]

Run as root from the source tree, with the lab (scripts/lab.sh setup): it
starts a podman container of localhost/pyns-lab:sid (own pid, mnt, net, uts,
ipc namespaces) and, in interleaved rounds (harness: benchmarks/_harness.py),
starts ``python -c pass`` of a venv that has the wheel:

- ``pyns-boot run -t PID --all -c pass``                        (the CLI)
- ``nsenter -t PID --pid -- env gons_ipc=.. gons_mnt=.. gons_net=.. gons_uts=.. python -c pass``
                                                                (the old workaround)
- ``gons_{ipc,mnt,net,pid,uts}=... python -c pass``: the variables alone, as after
  ``eval "$(pyns-boot env -t PID --all)"`` (the hook forks into gons_pid);
- the CLI's own share: ``pyns-boot run -t PID --net --uts --ipc -c pass``
  against ``env gons_net=.. gons_uts=.. gons_ipc=.. python -c pass``;
- ``python -c pass`` on the host, for scale.

The goal (issue 11): the CLI no slower than the workaround (ratio <= 1).
With --container-lookup also ``pyns-boot run --container NAME`` (which runs
``podman container inspect`` first).
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
from _harness import Case, measure, paired_delta_ms, ratio
from containers import LabContainer, lab_missing

JOINED = ("ipc", "mnt", "net", "uts")  # the container's; pid: nsenter --pid, or the hook (gons_pid)


def spawn_ok(argv: list[str], env: dict[str, str]) -> str | None:
    """None when argv runs with exit status 0, else its status and last line of stderr."""
    result = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if result.returncode == 0:
        return None
    lines = result.stderr.strip().splitlines()
    return "exit {}: {}".format(result.returncode, lines[-1] if lines else "")


def cases_for(venvs: Venvs, container: LabContainer, lookup: bool) -> tuple[list[Case], list[str]]:
    python = venvs.python("hook")
    cli = str(Path(python).parent / "pyns-boot")
    pid = container.pid
    refs = {"gons_" + t: container.ref(t) for t in JOINED}
    small = {k: v for k, v in refs.items() if k != "gons_mnt"}
    env = clean_env()
    nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
    envtool = shutil.which("env") or "/usr/bin/env"
    candidates = [
        Case("cli", "pyns-boot run -t PID --all -c pass", [cli, "run", "-t", pid, "--all", "-c", "pass"], env),
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
        Case(
            "env-all",
            "gons_{ipc,mnt,net,pid,uts}=... python -c pass (after eval $(pyns-boot env ...))",
            [python, "-c", "pass"],
            {**env, **refs, "gons_pid": container.ref("pid")},
        ),
        Case(
            "cli-small",
            "pyns-boot run -t PID --net --uts --ipc -c pass",
            [cli, "run", "-t", pid, "--net", "--uts", "--ipc", "-c", "pass"],
            env,
        ),
        Case("env-small", "gons_{net,uts,ipc}=... python -c pass", [python, "-c", "pass"], {**env, **small}),
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
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark starts a podman container")
    missing = lab_missing()
    if missing:
        raise SystemExit(missing)
    container = LabContainer("bench")
    try:
        with tempfile.TemporaryDirectory(prefix="pyns-bench-ctr-") as tmp:
            wheel = build_wheel(Path(tmp), REPO)
            for python in args.python or default_pythons():
                venvs = Venvs(python, wheel, Path(tmp))
                cases, skipped = cases_for(venvs, container, args.container_lookup)
                measure(cases, args.rounds)
                by_key = {case.key: case for case in cases}
                print(
                    f"\n### Python {venvs.version} into a podman container ({args.rounds} interleaved rounds, "
                    "medians)\n"
                )
                print("| case | wall ms | CPU ms |\n|---|---|---|")
                for case in cases:
                    print(f"| {case.label} | {case.wall_ms:.2f} | {case.cpu_ms:.2f} |")
                for line in skipped:
                    print(f"\nnot measured (it fails here): {line}")
                if "cli" in by_key and "nsenter" in by_key:
                    cli, nsenter = by_key["cli"], by_key["nsenter"]
                    print(
                        f"\nthe CLI against the nsenter workaround: ratio {ratio(cli, nsenter):.2f} (wall), "
                        f"{paired_delta_ms(cli, nsenter):+.2f} ms paired median"
                    )
                if "env-all" in by_key and "nsenter" in by_key:
                    print(
                        "the gons_* variables alone (gons_pid: the hook's fork) against the workaround: ratio {:.2f}, "
                        "{:+.2f} ms paired median".format(
                            ratio(by_key["env-all"], by_key["nsenter"]),
                            paired_delta_ms(by_key["env-all"], by_key["nsenter"]),
                        )
                    )
                if "cli-small" in by_key and "env-small" in by_key:
                    print(
                        "the CLI's own start (net, uts, ipc): {:+.2f} ms paired median, ratio {:.2f}".format(
                            paired_delta_ms(by_key["cli-small"], by_key["env-small"]),
                            ratio(by_key["cli-small"], by_key["env-small"]),
                        )
                    )
    finally:
        container.remove()


if __name__ == "__main__":
    main()
