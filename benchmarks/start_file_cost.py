#!/usr/bin/env python3
"""What a pyns_boot.start file costs an idle start, in callgrind instructions (PYTHONHASHSEED=0).

    python3 benchmarks/start_file_cost.py --python python3.15 [--python ...] [--wheel W]

For each interpreter: the comment-only .pth floor, the cp38-abi3 wheel as
installed (the .pth line alone), the same plus pyns_boot.start (what the
0.1.0 wheel installed, and what a cp318-abi3 wheel installs), each running
``python -c pass`` with no gons_* variable.  On 3.15+ also the 3.18
simulation of tests/test_pep829.py (the interpreter's site.py with import
lines ignored, run under -S): the floor against the wheel with its .start.
Run as root from the source tree; prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fixtures import REPO, Venvs, build_wheel, clean_env, nsutil, run
from _harness import instructions

SIMULATED_318_SITE = nsutil.SIMULATED_318_SITE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", required=True)
    parser.add_argument("--wheel", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pyns-boot-start-cost."))
    rows = ["| Python | start-up | venv | instructions | vs floor |", "|---|---|---|---:|---:|"]
    try:
        wheel = args.wheel or build_wheel(workdir / "wheel", REPO)
        for python in args.python:
            venvs = Venvs(python, wheel, workdir)
            start = workdir / (f"py{venvs.version}-start")
            shutil.copytree(venvs.dirs["hook"], start, symlinks=True)
            (pth,) = start.glob("lib/python*/site-packages/pyns_boot.pth")
            (pth.parent / "pyns_boot.start").write_bytes((REPO / "pyns_boot.start").read_bytes())
            minor = int(run([python, "-c", "import sys; print(sys.version_info[1])"]).stdout)
            pythons = {
                "floor": venvs.python("floor"),
                "pyns_boot.pth only (cp38-abi3 wheel)": venvs.python("hook"),
                "pyns_boot.pth + pyns_boot.start": str(start / "bin" / "python"),
            }
            ways = [("site.py of this Python", ["-c", "pass"])]
            if minor >= 15:
                ways.append(("3.18 simulation (import lines ignored)", ["-S", "-c", SIMULATED_318_SITE]))
            for way, argv in ways:
                counts = {label: instructions([exe, *argv], clean_env()) for label, exe in pythons.items()}
                for label, count in counts.items():
                    rows.append(
                        "| {} | {} | {} | {} | {:.4f} |".format(
                            venvs.version, way, label, f"{count:,}", count / counts["floor"]
                        )
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
