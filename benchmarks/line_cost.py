#!/usr/bin/env python3
"""What each part of the pyns_boot.pth line costs, in callgrind instructions (PYTHONHASHSEED=0).

    python3 benchmarks/line_cost.py [--all | --python PATH ...] [--wheel W]

For each interpreter (default: the oldest and the newest pyenv CPython;
--all: every pyenv CPython 3.8+): the venv with the wheel installed, its
pyns_boot.pth line replaced by variants that stop after one step, each
measured with ``python -c pass``.

Idle (no gons_* variable): the comment-only floor, a bare ``import posix``
(what any import line of a .pth costs: site.py compiles and runs it, in a
venv of 3.8-3.14 twice), the line without its code string (the pre-filter),
the pre-filter with the shortest call after it (the least that any line
keeping the pre-filter and calling into the helper can cost), the line as
installed.

Active (gons_net and gons_uts naming a holder's namespaces): what each step
of the start-up adds to a run of the line whose pre-filter passes and does
nothing.  Each variant removes the two variables from ``posix.environ`` at
its end, as run() does, so that the second run of the line in a venv stops
at the pre-filter as the real one does; the line as installed gets the same
suffix.  The steps are measured one by one (importlib's search, which the
line no longer does; the load by path; load and run(); compiling a string),
so that the loader, the joins and the ``exec`` show apart.  Every variant is
compiled on idle starts too, so each active step is the difference of its
active and idle counts, less the same difference of the do-nothing variant.
The last table sums it up per version: idle floor, the line when idle, the
helper's load, the joins, the ``exec`` of the line's code string.
Run as root from the source tree; prints markdown tables.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fixtures import REPO, Holder, Venvs, all_pythons, build_wheel, clean_env, default_pythons, run
from _harness import instructions

LINE = (REPO / "pyns_boot.pth").read_text().strip()
FILTER, _, TAIL = LINE.partition("and exec(")
if not TAIL or not FILTER.startswith("import posix;not "):
    raise SystemExit("pyns_boot.pth is not 'import posix;not PRE-FILTER and exec(CODE)': update this script")
# As run() does: the variables leave the environment, so a second run of the line stops at the pre-filter.
POP = ";posix.environ.pop(b'gons_net',0);posix.environ.pop(b'gons_uts',0)"
# What the line's code does on its common path: load the helper from the file beside the .pth.
LOAD = (
    "__import__('_frozen_importlib_external')._bootstrap._load(__import__('_frozen_importlib_external')"
    ".spec_from_file_location('_pyns_boot',sitedir+'/_pyns_boot.abi3.so'))"
)

FLOOR = "comment-only .pth (floor)"
IDLE = {
    FLOOR: "#" + LINE,
    "`import posix` alone (any import line)": "import posix",
    "the line without its code string (the pre-filter)": FILTER.rstrip(),
    "the pre-filter and a bare call, `and m()` (the least a line that calls anything costs)": FILTER + "and m()",
    "the line as installed": LINE,
}
BASE = FILTER + "and 0" + POP
SEARCH = "importlib's sys.path search for _pyns_boot (`PathFinder.find_spec`), which the line does not do"
BY_PATH = "load the helper by its path beside the .pth (`_load(spec_from_file_location(...))`)"
BY_PATH_RUN = "load by path and `run()` (joins net and uts, removes the variables)"
EXEC_PASS = "`exec('pass')` alone (compiling any string)"
INSTALLED = "the line as installed: `exec` of its code string, load by path, `run()`"
ACTIVE = {
    SEARCH: FILTER + "and __import__('_frozen_importlib_external').PathFinder.find_spec('_pyns_boot')" + POP,
    BY_PATH: FILTER + "and " + LOAD + POP,
    BY_PATH_RUN: FILTER + "and " + LOAD + ".run()" + POP,
    EXEC_PASS: FILTER + "and exec('pass')" + POP,
    INSTALLED: LINE + POP,
}


def count(python: str, pth: Path, line: str, env: dict[str, str]) -> int:
    pth.write_text(line + "\n")
    return instructions([python, "-c", "pass"], clean_env(**env), repeat=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", help="interpreter to make the venv from (repeatable)")
    parser.add_argument("--wheel", type=Path, help="use this wheel instead of building one from the source tree")
    parser.add_argument("--all", action="store_true", help="every pyenv CPython 3.8+ (default: the oldest and newest)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pyns-boot-line-cost."))
    holder = Holder(("net", "uts"))
    idle_rows = ["| Python | pyns_boot.pth | instructions | vs floor |", "|---|---|---:|---:|"]
    active_rows = ["| Python | step | instructions added |", "|---|---|---:|"]
    step_rows = [
        "| Python | idle floor | the line, idle | helper load by path | joins (`run()`) | `exec` of the code string |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    try:
        wheel = args.wheel or build_wheel(workdir / "wheel", REPO)
        for python in args.python or (all_pythons() if args.all else default_pythons()):
            venvs = Venvs(python, wheel, workdir)
            (pth,) = venvs.site_packages("hook").glob("pyns_boot.pth")
            exe = venvs.python("hook")
            probe = [exe, "-c", "import os; print(os.readlink('/proc/self/ns/net'))"]
            joined = run(probe, env=clean_env(**holder.env()))
            if joined.stdout.strip() != holder.link("net"):
                raise SystemExit(f"{exe} did not join the holder's net namespace: {joined.stdout!r}")
            idle = {label: count(exe, pth, line, {}) for label, line in IDLE.items()}
            floor = idle["comment-only .pth (floor)"]
            for label, value in idle.items():
                idle_rows.append(f"| {venvs.version} | {label} | {value:,} | {value / floor:.4f} |")
            base = count(exe, pth, BASE, holder.env()) - count(exe, pth, BASE, {})
            added = {}
            for label, line in ACTIVE.items():
                added[label] = count(exe, pth, line, holder.env()) - count(exe, pth, line, {}) - base
                active_rows.append(f"| {venvs.version} | {label} | {added[label]:+,} |")
            line_idle = idle["the line as installed"] - floor
            step_rows.append(
                f"| {venvs.version} | {floor:,} | +{line_idle:,} ({line_idle / floor:.2%}) | {added[BY_PATH]:+,} "
                f"| {added[BY_PATH_RUN] - added[BY_PATH]:+,} | {added[INSTALLED] - added[BY_PATH_RUN]:+,} |"
            )
            pth.write_text(LINE + "\n")
    finally:
        holder.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(idle_rows) + "\n\n" + "\n".join(active_rows) + "\n\n" + "\n".join(step_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
