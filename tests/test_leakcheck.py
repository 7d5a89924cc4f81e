"""The suite's check that it leaves nothing behind (tests/support/leakcheck.py) fails a session that does.

Each test runs a throwaway session in a pytest subprocess with the plugin, narrowed to what it
makes (--leaks-kinds) and, for files, to a directory of its own (--leaks-tmp), so that other jobs
on the machine cannot change the verdict; the outer test then removes what the inner one left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Callable

import pytest
from nsutil import wait_gone

SUPPORT = str(Path(__file__).resolve().parent / "support")  # leakcheck.py, the plugin under test
CONFTEST = 'pytest_plugins = ["leakcheck"]\n'


@pytest.fixture
def inner_session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Callable[..., pytest.RunResult]:
    """inner_session(body, *options): a throwaway session of one test file, with the plugin, in a subprocess."""
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\n")  # not the project's ini: its addopts are not the throwaway's
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (SUPPORT, os.environ.get("PYTHONPATH")) if p))

    def run(body: str, *options: str) -> pytest.RunResult:
        pytester.makepyfile(test_throwaway=body)
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *options, timeout=120)

    return run


def test_a_file_left_in_tmp_fails_the_session(inner_session: Callable[..., pytest.RunResult], tmp_path: Path) -> None:
    watched = tmp_path / "tmp"
    watched.mkdir()
    (watched / "there-before").write_text("")
    body = f"def test_leaves_a_file():\n    open({str(watched / 'pyns-exec-left')!r}, 'w').close()\n"
    result = inner_session(body, "--leaks-kinds=file", f"--leaks-tmp={watched}")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*the test session left 1 thing(s) on the machine (tests/support/leakcheck.py):",
            f"  file: {watched}/pyns-exec-left",
        ]
    )
    assert "there-before" not in result.stdout.str()


def test_a_session_that_cleans_up_passes(inner_session: Callable[..., pytest.RunResult], tmp_path: Path) -> None:
    watched = tmp_path / "tmp"
    watched.mkdir()
    body = (
        "import os, subprocess\n"
        "def test_cleans_up():\n"
        f"    path = {str(watched / 'pyns-exec-gone')!r}\n"
        "    open(path, 'w').close()\n"
        "    os.unlink(path)\n"
        "    subprocess.run(['sleep', '0'], check=True)\n"
    )
    result = inner_session(body, "--leaks-kinds=file,process", f"--leaks-tmp={watched}")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "left" not in result.stdout.str()


def test_a_process_left_running_fails_the_session(
    inner_session: Callable[..., pytest.RunResult], tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    tag = uuid.uuid4().hex
    body = (
        "import subprocess\n"
        "def test_leaves_a_process():\n"
        f"    p = subprocess.Popen(['sh', '-c', 'sleep 1000; : {tag}'], start_new_session=True)\n"
        f"    open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
    )
    try:
        result = inner_session(body, "--leaks-kinds=process")
        result.assert_outcomes(passed=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        pid = int(pid_file.read_text())
        result.stdout.fnmatch_lines([f"  process: pid {pid}: sh -c sleep 1000; : {tag}"])
    finally:
        if pid_file.exists():
            kill_group(int(pid_file.read_text()))


LEAVE_NETNS = (
    "import subprocess\ndef test_leaves_a_netns():\n    subprocess.run(['ip', 'netns', 'add', {name!r}], check=True)\n"
)


def test_a_netns_left_fails_the_session_and_warn_only_says_so(inner_session: Callable[..., pytest.RunResult]) -> None:
    name = "pyns-test-left-" + uuid.uuid4().hex[:8]
    body = LEAVE_NETNS.format(name=name)
    try:
        result = inner_session(body, "--leaks-kinds=netns,mount")
        result.assert_outcomes(passed=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines([f"  netns: {name}", f"  mount: /run/netns/{name}"])
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
    try:
        warned = inner_session(body, "--leaks-kinds=netns", "--leaks=warn")
        assert warned.ret == pytest.ExitCode.OK
        warned.stdout.fnmatch_lines([f"  netns: {name}"])
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def kill_group(pid: int) -> None:
    """Kill the session the inner test started (sh and its sleep) and wait for its leader to be gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    assert wait_gone(pid)
