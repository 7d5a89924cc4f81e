#!/usr/bin/env python3
"""What ``--container NAME`` costs over ``-t PID``: the engines' lookup (issue 22).

    python3 benchmarks/container_lookup.py [--rounds N] [--python PATH ...]

Run as root from the source tree after ``scripts/lab.sh setup``: it starts
the lab's dockerd and containerd when they are not running
(``scripts/lab.sh engines start``; stopped again at the end if it started
them), runs a docker container of pyns-lab:sid, and in interleaved rounds
(benchmarks/_harness.py) starts ``python -c pass`` in it three ways:

- ``pyns-boot run -t PID --all -c pass``                 (no lookup)
- ``pyns-boot run --container NAME -c pass`` with a PATH on which docker is
  the only engine installed                             (the goal: at most 40 ms more)
- the same with every engine of this machine on PATH (podman, docker, ctr,
  lxc-info, machinectl: asked at once)

The lookup's cost is the paired median of the per-round differences.
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
from _harness import Case, measure, paired_delta_ms

sys.path.insert(0, str(REPO / "tests" / "support"))
from containers import LabContainer
from engines import EngineDaemons, tools_missing

GOAL_MS = 40.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--python", action="append")
    args = parser.parse_args()
    missing = tools_missing("dockerd", "containerd", "ctr", "docker")
    if missing:
        raise SystemExit(missing)
    daemons = EngineDaemons()
    os.environ.update(daemons.env)
    daemons.start()
    container = LabContainer("bench-lookup", engine="docker")
    try:
        with tempfile.TemporaryDirectory(prefix="pyns-bench-lookup-") as tmp:
            only_docker = Path(tmp) / "only-docker"
            only_docker.mkdir()
            (only_docker / "docker").symlink_to(shutil.which("docker") or "/usr/bin/docker")
            wheel = build_wheel(Path(tmp), REPO)
            for python in args.python or default_pythons():
                venvs = Venvs(python, wheel, Path(tmp))
                cli = str(Path(venvs.python("hook")).parent / "pyns-boot")
                env = clean_env(**daemons.env)
                cases = [
                    Case(
                        "pid",
                        "pyns-boot run -t PID --all -c pass",
                        [cli, "run", "-t", container.pid, "--all", "-c", "pass"],
                        env,
                    ),
                    Case(
                        "docker",
                        "pyns-boot run --container NAME -c pass (only docker on PATH)",
                        [cli, "run", "--container", container.name, "-c", "pass"],
                        {**env, "PATH": str(only_docker)},
                    ),
                    Case(
                        "all",
                        "pyns-boot run --container NAME -c pass (every engine on PATH)",
                        [cli, "run", "--container", container.name, "-c", "pass"],
                        env,
                    ),
                ]
                for case in cases:
                    done = subprocess.run(case.argv, env=case.env, capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        raise SystemExit(f"{case.label}: exit {done.returncode}: {done.stderr.strip()}")
                measure(cases, args.rounds)
                by_key = {case.key: case for case in cases}
                print(f"\n### Python {venvs.version}, a docker container ({args.rounds} interleaved rounds, medians)\n")
                print("| case | wall ms | CPU ms |\n|---|---|---|")
                for case in cases:
                    print(f"| {case.label} | {case.wall_ms:.2f} | {case.cpu_ms:.2f} |")
                docker = paired_delta_ms(by_key["docker"], by_key["pid"])
                every = paired_delta_ms(by_key["all"], by_key["pid"])
                verdict = "met" if docker <= GOAL_MS else "NOT met"
                print(
                    f"\n--container NAME over -t PID: {docker:+.2f} ms with only docker installed "
                    f"(goal <= {GOAL_MS:g} ms: {verdict}), {every:+.2f} ms with every engine installed (paired medians)"
                )
    finally:
        container.remove()
        daemons.stop()


if __name__ == "__main__":
    main()
