"""The examples as a newcomer runs them: examples/executor.py with and without arguments."""

from __future__ import annotations

import subprocess
from typing import Callable

from nsutil import CHILD_TIMEOUT, REPO, Holder, Venv, clean_env

EXECUTOR = str(REPO / "examples" / "executor.py")


def run_example(venv: Venv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv.python, EXECUTOR, *args],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT * 2,
        cwd="/",
        env=clean_env(),
    )


def netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def test_executor_without_arguments_uses_only_namespaces_of_its_own(hook_venv: Venv) -> None:
    before = netns_list()
    result = run_example(hook_venv)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    looked_at = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("Namespaces(")]
    assert len(looked_at) == 2 and all("netns='pyns-example-" in name for name in looked_at), result.stdout
    assert "free ports in Namespaces(netns='pyns-example-" in result.stdout
    assert netns_list() == before  # made and deleted again; nobody else's touched


def test_executor_with_pids_reports_what_it_cannot_reach(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net",))
    gone = subprocess.Popen(["true"])
    gone.wait()
    result = run_example(hook_venv, "1", str(h.pid), str(gone.pid))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert f"Namespaces(net='/proc/{h.pid}/ns/net')" in result.stdout and h.link("net") in result.stdout
    assert f"skipped {gone.pid}: " in result.stderr
    # PID 1: its namespace, or (where even root may not look, as in some sandboxes) one line saying why
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("Namespaces(net='/proc/1/ns/net')")]
    assert "net:[" in line or "cannot look in: pyns_boot: " in line
    assert "free ports" not in result.stdout  # binds ports only in namespaces of its own
