"""The suite leaves the machine as it found it: a pytest plugin that compares before and after.

At the start of the session it notes what is on the machine; at its end, after every fixture is
torn down (and what the end of the process would close anyway), it looks again and fails the run
naming each thing the session made and left:

    file      an entry of /tmp (pytest's own /tmp/pytest-of-USER, rotated by pytest, excepted)
    netns     a named network namespace (/run/netns)
    mount     a mount point of the suite's mount namespace (one more mount on a path counts too), but
              the two that tools make on first use and keep (FIRST_USE_MOUNTS)
    veth      a veth interface of the suite's network namespace
    container a podman container (root's), when podman is installed
    process   a process that inherited this session's mark (PYNS_TEST_SESSION=<uuid>, set at the start)

Processes are told apart exactly (their environment carries the mark); the rest by difference, which
is right when the suite runs alone, as in CI.  On a machine where other jobs make such things at the
same time, --leaks=warn reports without failing, --leaks=off skips the check.  --leaks-kinds and
--leaks-tmp narrow it (tests/test_leakcheck.py runs throwaway sessions with them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Callable, Iterable

import pytest

SESSION_VARIABLE = "PYNS_TEST_SESSION"
KINDS = ("file", "netns", "mount", "veth", "container", "process")
#: Mount points that tools make once, on their first use on a machine, and keep by design: iproute2's
#: /run/netns (made shared on the first `ip netns add`) and podman's overlay driver home.  The mounts
#: below them (a netns, a container's root) are checked.
FIRST_USE_MOUNTS = frozenset({"/run/netns", "/var/lib/containers/storage/overlay"})
#: How long to wait for processes that are being killed at the end of the session to be gone.
SETTLE_SECONDS = 10.0
BEFORE = pytest.StashKey["dict[str, Counter[str]]"]()
MARK = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leaks", "what the suite leaves on the machine (tests/support/leakcheck.py)")
    group.addoption(
        "--leaks",
        choices=("fail", "warn", "off"),
        default="fail",
        help="fail (default): fail the run when it leaves files in /tmp, netns, mounts, veths, containers or "
        "processes; warn: only say so (a machine where other jobs make such things meanwhile); off",
    )
    group.addoption("--leaks-kinds", default=",".join(KINDS), help="what to compare (default: %(default)s)")
    group.addoption("--leaks-tmp", default="/tmp", help="the directory whose entries count as files (default /tmp)")


def _kinds(config: pytest.Config) -> list[str]:
    kinds = [k for k in str(config.getoption("leaks_kinds")).split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise pytest.UsageError(f"--leaks-kinds: unknown {', '.join(unknown)} (known: {', '.join(KINDS)})")
    return kinds


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("leaks") == "off":
        return
    mark = uuid.uuid4().hex
    config.stash[MARK] = mark
    os.environ[SESSION_VARIABLE] = mark  # inherited by every process the session starts
    config.stash[BEFORE] = snapshot(_kinds(config), str(config.getoption("leaks_tmp")), mark)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    before = config.stash.get(BEFORE, None)
    if before is None:
        return
    run_exit_cleanups()
    kinds, mark = _kinds(config), config.stash[MARK]
    after = snapshot(kinds, str(config.getoption("leaks_tmp")), mark)
    if after.get("process"):  # processes killed at teardown may take a moment to be gone
        deadline = time.monotonic() + SETTLE_SECONDS
        while after["process"] and time.monotonic() < deadline:
            time.sleep(0.1)
            after["process"] = Counter(_processes(mark))
    left = leftovers(before, after)
    if not left:
        return
    lines = [f"the test session left {len(left)} thing(s) on the machine (tests/support/leakcheck.py):"]
    lines += [f"  {kind}: {what}" for kind, what in left]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    failing = config.getoption("leaks") == "fail"
    if reporter is not None:
        for line in lines:
            reporter.write_line(line, red=failing, yellow=not failing)
    else:
        sys.stderr.write("\n".join(lines) + "\n")
    if failing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def leftovers(before: dict[str, Counter[str]], after: dict[str, Counter[str]]) -> list[tuple[str, str]]:
    """(kind, what) for each thing after has and before had not (a count for things that can repeat)."""
    left = []
    for kind, now in after.items():
        for what, count in sorted((now - before.get(kind, Counter())).items()):
            left.append((kind, what if count == 1 else f"{what} ({count} more)"))
    return left


def run_exit_cleanups() -> None:
    """What the end of the pytest process closes anyway: it does not outlive the run, so it is not left."""
    import nsutil

    nsutil.remove_cwds()
    call_in = sys.modules.get("pyns_boot._call_in")
    if call_in is not None:
        call_in._close_shared_server()
    executor = sys.modules.get("pyns_boot._executor")
    if executor is not None:
        executor._at_exit()


def snapshot(kinds: Iterable[str], tmp: str, mark: str) -> dict[str, Counter[str]]:
    probes: dict[str, Callable[[], Iterable[str]]] = {
        "file": lambda: _files(tmp),
        "netns": _netns,
        "mount": _mounts,
        "veth": _veths,
        "container": _containers,
        "process": lambda: _processes(mark),
    }
    return {kind: Counter(probes[kind]()) for kind in kinds}


def _files(tmp: str) -> list[str]:
    try:
        names = os.listdir(tmp)
    except FileNotFoundError:
        return []
    return [os.path.join(tmp, n) for n in names if not n.startswith("pytest-of-")]


def _netns() -> list[str]:
    try:
        return os.listdir("/run/netns")
    except FileNotFoundError:
        return []


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo", "rb") as file:
        points = [os.fsdecode(line.split()[4]).replace("\\040", " ") for line in file]
    return [point for point in points if point not in FIRST_USE_MOUNTS]


def _veths() -> list[str]:
    if shutil.which("ip") is None:
        return []
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True, check=False)
    return [line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines() if line.count(":") >= 2]


def _containers() -> list[str]:
    if shutil.which("podman") is None or os.geteuid() != 0:
        return []
    out = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=False, timeout=120
    )
    return out.stdout.split()


def _processes(mark: str) -> list[str]:
    """The processes other than this one whose environment carries the mark (zombies are gone already)."""
    needle = f"{SESSION_VARIABLE}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                if needle not in file.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read().replace(b"\0", b" ").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if command:  # a zombie has no command line left: it goes with its parent
            found.append(f"pid {entry}: {os.fsdecode(command)[:200]}")
    return found
