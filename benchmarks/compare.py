"""Two builds of pyns_boot side by side: did a change make start-up slower?

    python3 benchmarks/compare.py --base REV [--head REV] [--rounds N] [--python PATH ...]

Run as root from a clone.  Builds the wheel of each revision (``--head``
defaults to the working tree; a revision is exported with ``git archive``),
installs each into its own venv of every interpreter (default: the oldest
and the newest pyenv CPython), starts one namespace holder (net+uts) and
measures, for both builds in the same interleaved rounds:

- idle: ``python -c pass`` with no gons_* variable;
- active: ``python -c pass`` joining gons_net and gons_uts;
- status: ``import pyns_boot; pyns_boot.status()`` after that join;
- mnt: ``python -c pass`` joining gons_mnt, gons_net and gons_uts of a second
  holder (keep imports, the path through Python after the joins).

With ``--executor``, each build's own benchmarks/bench_executor.py then runs
with that build installed (newest interpreter), base and head in turn, and
the ratios of its table (pyns_boot against its baseline) are set side by
side: executor ratios are not judged by the verdict, since they are wall
times of separate runs.

Wall and CPU medians move by a few percent on a shared machine, so each
row also gives the callgrind instruction count (``PYTHONHASHSEED=0``), which
does not; the verdict is judged on instructions: head within 1% of base.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from _fixtures import REPO, Holder, build_wheel, clean_env, default_pythons, run, version_of
from _harness import Case, instructions, measure, paired_delta_ms

PASS = ["-c", "pass"]
STATUS = ["-c", "import pyns_boot; pyns_boot.status()"]
# Head may cost this much more than base, in instructions, before the row says "slower".
TOLERANCE = 0.01


def export(revision: str, into: Path) -> Path:
    """The tree of a git revision, as files (no .git)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit("git archive {} failed: {}".format(revision, archive.stderr.decode(errors="replace")))
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def venv_with(python: str, wheel: Path, path: Path) -> str:
    run([python, "-m", "venv", "--without-pip", str(path)])
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    run([*pip, "--python", str(path / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)])
    return str(path / "bin" / "python")


def cases_of(build: str, python: str, holder: Holder, mnt_holder: Holder) -> list[Case]:
    return [
        Case("idle", f"{build} idle", [python, *PASS], clean_env()),
        Case("active", f"{build} net+uts", [python, *PASS], clean_env(**holder.env())),
        Case("status", f"{build} import + status()", [python, *STATUS], clean_env(**holder.env())),
        Case("mnt", f"{build} mnt+net+uts", [python, *PASS], clean_env(**mnt_holder.env())),
    ]


def check_joins(python: str, holder: Holder) -> None:
    probe = "import os, pyns_boot; print(pyns_boot.status().state, os.readlink('/proc/self/ns/net'))"
    out = run([python, "-c", probe], env=clean_env(**holder.env()), cwd="/").stdout.split()
    if out != ["succeeded", holder.link("net")]:
        raise SystemExit(f"{python} did not join: {out}")


def compare(pythons: Sequence[str], wheels: dict[str, Path], rounds: int, workdir: Path) -> tuple[str, bool]:
    holder = Holder(("net", "uts"))
    mnt_holder = Holder(("mnt", "net", "uts"))
    lines = [
        "| Python | case | base wall ms | head wall ms | head - base ms | base instructions "
        "| head instructions | head / base (instr.) | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    all_ok = True
    try:
        for base_python in pythons:
            version = version_of(base_python)
            pythons_of = {
                build: venv_with(base_python, wheel, workdir / (f"py{version}-{build}"))
                for build, wheel in wheels.items()
            }
            for python in pythons_of.values():
                check_joins(python, holder)
                check_joins(python, mnt_holder)
            cases = {build: cases_of(build, python, holder, mnt_holder) for build, python in pythons_of.items()}
            measure([*cases["base"], *cases["head"]], rounds)
            for base, head in zip(cases["base"], cases["head"]):
                base_count = instructions(base.argv, base.env)
                head_count = instructions(head.argv, head.env)
                share = head_count / base_count
                ok = share <= 1 + TOLERANCE
                all_ok &= ok
                lines.append(
                    "| {} | {} | {:.2f} | {:.2f} | {:+.3f} | {} | {} | {:.4f} | {} |".format(
                        version,
                        base.key,
                        base.wall_ms,
                        head.wall_ms,
                        paired_delta_ms(head, base),
                        format(base_count, ","),
                        format(head_count, ","),
                        share,
                        "same or better" if share <= 1 else ("within 1%" if ok else "SLOWER"),
                    )
                )
    finally:
        holder.stop()
        mnt_holder.stop()
    return "\n".join(lines), all_ok


def executor_ratios(python: str, source: Path, rounds: int) -> dict[str, str]:
    """The ratio column of one build's bench_executor.py table, by measurement."""
    script = source / "benchmarks" / "bench_executor.py"
    out = run([python, str(script), "--rounds", str(rounds), "--netns", "20"], cwd=str(script.parent)).stdout
    ratios = {}
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[3].endswith("x") and cells[0] != "measurement":
            ratios[cells[0] + " (vs " + cells[2].split(":")[0] + ")"] = cells[3]
    if not ratios:
        raise SystemExit(f"no table in the output of {script}:\n{out}")
    return ratios


def executor_table(pythons: dict[str, str], sources: dict[str, Path], rounds: int) -> str:
    ratios = {build: executor_ratios(python, sources[build], rounds) for build, python in pythons.items()}
    lines = ["| measurement | base ratio | head ratio |", "|---|---:|---:|"]
    for name, base in ratios["base"].items():
        lines.append("| {} | {} | {} |".format(name, base, ratios["head"].get(name, "-")))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--head", help="git revision to measure (default: the working tree)")
    parser.add_argument("--python", action="append", help="interpreter to make the venvs from (repeatable)")
    parser.add_argument("--rounds", type=int, default=100, help="interleaved rounds of process starts")
    parser.add_argument("--executor", action="store_true", help="also compare bench_executor.py's ratios")
    parser.add_argument("--executor-rounds", type=int, default=5, help="rounds of bench_executor.py")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pyns-boot-compare.") as tmp:
        workdir = Path(tmp)
        # A directory of our own: a "-c" program imports from its cwd first (the caller's may hold a pyns_boot/).
        os.chdir(workdir)
        sources = {"base": export(args.base, workdir / "base-src")}
        sources["head"] = export(args.head, workdir / "head-src") if args.head else REPO
        wheels = {}
        for build, source in sources.items():
            (workdir / ("wheel-" + build)).mkdir()
            wheels[build] = build_wheel(workdir / ("wheel-" + build), source)
        pythons = args.python or default_pythons()
        table, ok = compare(pythons, wheels, args.rounds, workdir)
        if args.executor:
            version = version_of(pythons[-1])
            venvs = {build: str(workdir / (f"py{version}-{build}") / "bin" / "python") for build in wheels}
            table += f"\n\nExecutor (Python {version}, bench_executor.py of each build, ratio pyns_boot / baseline)\n\n"
            table += executor_table(venvs, sources, args.executor_rounds)
    print(
        (
            "Measured {} UTC on {}, Linux {}; `python3 benchmarks/compare.py --base {}{} --rounds {}`; "
            "{} interleaved rounds, medians.\n"
        ).format(
            datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            platform.processor() or platform.machine(),
            platform.release(),
            args.base,
            f" --head {args.head}" if args.head else "",
            args.rounds,
            args.rounds,
        )
    )
    print(table)
    print("\nverdict: {}".format("no regression (head within 1% of base in instructions)" if ok else "REGRESSION"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
