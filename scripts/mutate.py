#!/usr/bin/env python3
"""A mutation pass: plant one plausible bug at a time and see whether the tests notice.

    scripts/mutate.py                  every mutation, each with its own test selection
    scripts/mutate.py --list           the mutations and their selections
    scripts/mutate.py no-cloexec fd-leak    only these
    scripts/mutate.py --full           the whole suite for each mutation (slow: about 2 min each)
    scripts/mutate.py --tests tests/test_early.py late-bang    does this file alone catch it?
    scripts/mutate.py --from DIR       clone DIR's committed HEAD (default: this repository)

It clones the committed HEAD (commit first: uncommitted changes are not in
the clone) into a temporary directory below /tmp, runs the README's test
command (scripts/test.sh, which builds the wheel from the clone, so C
mutations are compiled in) once unmutated on the union of the selections,
then once per mutation with ``-x``, and prints a Markdown table: "killed"
(the tests failed, as they should), "SURVIVED" (they passed: a blind spot),
"timeout", or "BROKEN" (no test ran: the mutated tree does not build, a C
warning being an error; fix the mutation).  Exit status 1 unless every
mutation was killed, and when the unmutated baseline fails.  Run as root,
like the tests.  See docs/development.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_TIMEOUT = 900  # seconds for one mutated run: a hang in the suite itself counts as "timeout"

Edit = Tuple[str, str, str]  # file, old text (must occur exactly once), new text


@dataclass
class Mutation:
    name: str
    description: str
    edits: list[Edit]
    tests: list[str] = field(default_factory=list)  # pytest arguments: files, -k expressions


CORE = "pyns_boot/_setns.c"  # the run: open early, join, report
ORDER = "pyns_boot/_order.c"  # the table, the order, the plan
REFERENCE = "pyns_boot/_reference.c"  # the reference check, membership
STARTUP = "pyns_boot/_startup.c"
POLICY = "pyns_boot/_policy.c"
VARIABLES = "pyns_boot/_variables.c"
PID_ENTRY = "pyns_boot/_pid_entry.c"
ERRORS = ["tests/test_errors.py", "tests/test_bad_input.py"]

MUTATIONS = [
    Mutation(
        "no-nsfs-check",
        "type check skipped: a reference is not checked to be on nsfs (NSFS_MAGIC)",
        [(REFERENCE, "if (fs.f_type != NSFS_MAGIC) {", "if (0) {")],
        ERRORS,
    ),
    Mutation(
        "no-nstype-check",
        "type check skipped: NS_GET_NSTYPE's answer is not compared with the variable's type",
        [(REFERENCE, "if (flag != ns_kinds[kind].clone_flag) {", "if (0) {")],
        ERRORS,
    ),
    Mutation(
        "fd-leak",
        "a reference descriptor is left open after its join",
        # (dropping the close and keeping the reset: close_all would close a descriptor left in fds[])
        [
            (
                CORE,
                "    close(state->fds[kind]);\n    state->fds[kind] = -1;\n    return 1;",
                "    state->fds[kind] = -1;\n    return 1;",
            )
        ],
        ["tests/test_join.py", *ERRORS],
    ),
    Mutation(
        "no-nonblock",
        "O_NONBLOCK dropped from the reference open (a FIFO blocks)",
        [(REFERENCE, "O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY", "O_RDONLY | O_CLOEXEC | O_NOCTTY")],
        [*ERRORS, "-k", "fifo"],
    ),
    Mutation(
        "late-bang",
        "'!' entries opened at their turn instead of before the first switch",
        [
            (
                CORE,
                "if (state->paths[kind] == NULL || !plan->steps[i].early)",
                "if (state->paths[kind] == NULL || 1)",
            )
        ],
        ["tests/test_errors.py", "tests/test_join.py", "tests/test_early.py"],
    ),
    Mutation(
        "no-scrub-c",
        "the gons_* variables are not removed (C start-up path)",
        [(STARTUP, "    if (remove_variables() < 0) {\n", "    if (0 && remove_variables() < 0) {\n")],
        ["tests/test_join.py", "tests/test_status.py"],
    ),
    Mutation(
        "rejoin-member",
        "setns is called again when the process is a member already",
        [(CORE, "    if (is_member(state, kind)) {", "    if (0 && is_member(state, kind)) {")],
        ["tests/test_join.py", "tests/test_status.py", "tests/test_cli.py"],
    ),
    Mutation(
        "no-secure-refusal",
        "secure-execution mode (setuid/setgid/capabilities) is not refused",
        [(ORDER, "if (secure_mode && (any_requested || explicit_order))", "if (0 && secure_mode)")],
        ERRORS,
    ),
    Mutation(
        "warn-as-ignore-c",
        "PYNS_BOOT_ON_ERROR=warn writes nothing, like ignore (C)",
        [(POLICY, "    if (policy[0] == 'i')\n", "    if (policy[0] == 'i' || policy[0] == 'w')\n")],
        [*ERRORS, "tests/test_c_policy_fallback.py"],
    ),
    Mutation(
        "warn-as-ignore-py",
        "PYNS_BOOT_ON_ERROR=warn writes nothing, like ignore (Python)",
        [("pyns_boot/_policy.py", '    if policy == "ignore":\n', '    if policy in ("ignore", "warn"):\n')],
        ["tests/test_policy.py", "tests/test_errors.py", "tests/test_foreign_mnt.py", "tests/test_load.py"],
    ),
    Mutation(
        "unsaid-policy-c",
        "a PYNS_BOOT_ON_ERROR value not understood goes unsaid after a successful join (C)",
        [
            (
                VARIABLES,
                "return s->policy_value != NULL && strcmp(s->policy_value, policy_in_force(s->policy_value)) != 0;",
                "(void)s;\n    return 0;",
            )
        ],
        ["tests/test_policy.py", "tests/test_way_out.py"],
    ),
    Mutation(
        "status-ok-wrong",
        "Status.ok is true for a failed hook",
        [("pyns_boot/_status.py", "return self.state in (INACTIVE, SUCCEEDED)", "return self.state != NOT_RUN")],
        ["tests/test_status.py", "tests/test_errors.py"],
    ),
    Mutation(
        "path-not-rewritten",
        "pyns_boot.__path__ is not rewritten to the original root after a mnt join (start-up hook)",
        [
            (
                "pyns_boot/hook.py",
                '    package.__path__[:] = [root + p if p.startswith("/") else p for p in package.__path__]\n',
                "",
            )
        ],
        ["tests/test_mnt_path.py", "tests/test_foreign_mnt.py"],
    ),
    Mutation(
        "no-remote-traceback",
        "call_in re-raises a worker's exception without the remote traceback as __cause__",
        [("pyns_boot/_worker_client.py", '        error.__cause__ = RemoteTraceback(reply["traceback"])\n', "")],
        ["tests/test_executor.py", "tests/test_remote_cause.py"],
    ),
    Mutation(
        "env-shlex-quote",
        "pyns-boot env --format env writes shlex.quote(value)",
        [
            (
                "pyns_boot/cli.py",
                'os.fsencode(f"{name}={value}\\n")',
                # __import__: shlex is a local name of that function, imported only after this line
                "os.fsencode(f\"{name}={__import__('shlex').quote(value)}\\n\")",
            )
        ],
        ["tests/test_env_formats.py", "tests/test_cli.py"],
    ),
    Mutation(
        "no-pdeathsig",
        "the pid entry's child lacks PR_SET_PDEATHSIG(SIGKILL): it outlives a supervisor killed with SIGKILL",
        [(PID_ENTRY, "    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)\n        raise(SIGKILL);\n", "")],
        ["tests/test_signals_once.py", "-k", "dies_with_its_supervisor"],
    ),
    Mutation(
        "no-cloexec",
        "O_CLOEXEC dropped from the reference open",
        [(REFERENCE, "O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY", "O_RDONLY | O_NONBLOCK | O_NOCTTY")],
        ["tests/test_cloexec.py"],
    ),
    Mutation(
        "children-cwd-root",
        "the tests' children run with cwd '/' (a stray _pyns_boot*.so there shadows the build under test)",
        [("tests/support/nsutil.py", "    os.chmod(path, 0o755)\n    return path\n", '    return "/"\n')],
        ["tests/test_loaded_from.py"],
    ),
]


def git(*args: str, cwd: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def apply(clone: str, mutation: Mutation) -> None:
    for path, old, new in mutation.edits:
        full = os.path.join(clone, path)
        with open(full, encoding="utf-8") as file:
            text = file.read()
        count = text.count(old)
        if count != 1:
            raise SystemExit(
                f"mutation {mutation.name}: {old!r} occurs {count} times in {path} (expected once): update MUTATIONS"
            )
        with open(full, "w", encoding="utf-8") as file:
            file.write(text.replace(old, new))


def run_tests(clone: str, pytest_args: Sequence[str], python: str, log: str) -> tuple[str, float, str]:
    """(outcome, seconds, first failure): outcome is passed, failed, timeout or broken (no test ran)."""
    env = dict(os.environ, PYTHON=python, PYNS_BOOT_TEST_VENV=os.path.join(clone, ".venv-test"))
    env.pop("PYNS_BOOT_WHEEL", None)  # build from the (mutated) clone
    command = [os.path.join(clone, "scripts", "test.sh"), "-x", "-q", "-p", "no:cacheprovider", *pytest_args]
    start = time.monotonic()
    with open(log, "w") as out:
        try:
            rc = subprocess.run(command, cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT)
            outcome = "passed" if rc.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            outcome = "timeout"
    seconds = time.monotonic() - start
    with open(log, errors="replace") as out:
        text = out.read()
    if outcome == "failed" and not re.search(r"\b\d+ (?:passed|failed|errors?)\b.* in [0-9.]+s", text):
        outcome = "broken"  # no pytest summary: the wheel did not build (a C warning is an error), say
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.MULTILINE)
    if not failed and outcome == "failed":
        failed = [line for line in text.splitlines() if line.strip()][-1:]
    return outcome, seconds, failed[0] if failed else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--full", action="store_true", help="run the whole suite for each mutation")
    parser.add_argument("--from", dest="source", default=REPO, help="the repository to clone (its HEAD)")
    parser.add_argument("--python", default=os.environ.get("PYTHON", "python3"), help="the interpreter under test")
    parser.add_argument("--tests", metavar="ARGS", help="pytest arguments instead of each mutation's own selection")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    parser.add_argument("--keep", action="store_true", help="keep the clone and the logs")
    args = parser.parse_args(argv)

    by_name = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        parser.error("unknown mutation(s): {} (see --list)".format(", ".join(unknown)))
    chosen = [by_name[n] for n in args.names] if args.names else MUTATIONS
    if args.list:
        for m in chosen:
            print("{!s:<20} {}\n{!s:<20} tests: {}".format(m.name, m.description, "", " ".join(m.tests) or "(all)"))
        return 0
    if os.geteuid() != 0:
        parser.error("run as root: the tests create namespaces")

    work = tempfile.mkdtemp(prefix="pyns-boot-mutate-", dir="/tmp")
    clone = os.path.join(work, "clone")
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", args.source, clone], check=True)
    head = git("rev-parse", "--short", "HEAD", cwd=clone).strip()
    print(f"clone of {args.source} at {head} in {clone}", flush=True)
    try:
        for m in chosen:  # every edit must apply before anything runs
            apply(clone, m)
            git("reset", "-q", "--hard", cwd=clone)
    except SystemExit:
        shutil.rmtree(work, ignore_errors=True)
        raise

    def selection(m: Mutation) -> list[str]:
        if args.tests is not None:
            return shlex.split(args.tests)
        return [] if args.full or not m.tests else m.tests

    failures = 0
    rows = []
    if not args.no_baseline:
        files = [] if args.full else sorted({t for m in chosen for t in selection(m) if t.startswith("tests/")})
        outcome, seconds, first = run_tests(clone, files, args.python, os.path.join(work, "baseline.log"))
        print(f"baseline (no mutation): {outcome} in {seconds:.0f} s {first}", flush=True)
        if outcome != "passed":
            print("the unmutated tests do not pass: see {}".format(os.path.join(work, "baseline.log")), file=sys.stderr)
            return 1
    for m in chosen:
        apply(clone, m)
        log = os.path.join(work, m.name + ".log")
        outcome, seconds, first = run_tests(clone, selection(m), args.python, log)
        git("reset", "-q", "--hard", cwd=clone)
        verdict = {"failed": "killed", "passed": "SURVIVED", "timeout": "timeout", "broken": "BROKEN"}[outcome]
        failures += verdict != "killed"
        rows.append((m.name, m.description, verdict, seconds, first))
        print(f"{m.name!s:<20} {verdict!s:<8} {seconds:5.0f} s  {first}", flush=True)

    print("\n| mutation | what | result | seconds | first failing test |\n|---|---|---|---|---|")
    for name, description, verdict, seconds, first in rows:
        print("| {} | {} | {} | {:.0f} | {} |".format(name, description, verdict, seconds, first.replace("|", "\\|")))
    print(f"\n{len(rows) - failures} of {len(rows)} killed")
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
