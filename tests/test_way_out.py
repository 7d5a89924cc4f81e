"""What a newcomer runs into: a stale variable, a mistyped policy, and the hint each failure carries.

Real holders, real named network namespaces, the venv's own pip and pyns-boot.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Callable

import pytest
from cliutil import pyns_boot
from nsutil import CHILD_TIMEOUT, EXIT_STATUS, Holder, NamedNetns, Venv, clean_env, probe, run_python

HINT = "pyns_boot: hint: "
NOT_UNDERSTOOD = (
    'pyns_boot: PYNS_BOOT_ON_ERROR="warning" is not understood (expected exit, warn or ignore); acting as exit\n'
)


@pytest.fixture
def stale(holder: Callable[..., Holder]) -> dict[str, str]:
    """gons_net as `eval "$(pyns-boot env -t PID --net)"` left it, after the target exited."""
    h = holder(("net",))
    env = {"gons_net": h.ref("net")}
    h.stop()
    deadline = time.monotonic() + CHILD_TIMEOUT
    while os.path.exists(f"/proc/{h.pid}"):  # reaped by init a moment after its parent
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return env


def stale_lines(env: dict[str, str]) -> tuple[str, str]:
    pid = int(env["gons_net"].split("/")[2])
    return (
        'pyns_boot: invalid gons_net reference "{}": No such file or directory'.format(env["gons_net"]),
        HINT
        + (
            f"process {pid} has exited (a stale variable?): unset gons_net, or set PYNS_BOOT_ON_ERROR=warn to start "
            "anyway"
        ),
    )


def test_stale_variable_pip_says_the_process_exited_and_the_way_out(hook_venv: Venv, stale: dict[str, str]) -> None:
    result = subprocess.run(
        [str(hook_venv.path / "bin" / "pip"), "--version"],
        env=clean_env(**stale),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd="/",
    )
    assert result.returncode == EXIT_STATUS and result.stdout == ""
    assert result.stderr.splitlines() == list(stale_lines(stale))
    # The way out it names works.
    warned = subprocess.run(
        [str(hook_venv.path / "bin" / "pip"), "--version"],
        env=clean_env(**stale, PYNS_BOOT_ON_ERROR="warn"),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd="/",
    )
    assert warned.returncode == 0 and warned.stdout.startswith("pip ")


@pytest.mark.parametrize("module", [False, True], ids=["console-script", "python-m"])
def test_stale_variable_pyns_boot_help_still_runs(hook_venv: Venv, stale: dict[str, str], module: bool) -> None:
    result = pyns_boot(hook_venv, "--help", env=stale, module=module)
    assert result.returncode == 0 and result.stdout.startswith("usage: pyns-boot")
    lines = result.stderr.splitlines()
    assert lines[:2] == list(stale_lines(stale))
    assert lines[2:] == ["pyns_boot: the pyns-boot command carries on (as with PYNS_BOOT_ON_ERROR=warn) to report this"]


def test_stale_variable_doctor_and_status_report_it(hook_venv: Venv, stale: dict[str, str]) -> None:
    doctor = pyns_boot(hook_venv, "doctor", "--json", env=stale)
    assert doctor.returncode == 0, doctor.stderr
    (finding,) = [f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "status"]
    assert finding["level"] == "warning" and "No such file or directory" in finding["message"]
    assert finding["fix"] == stale_lines(stale)[1][len(HINT) :]

    status = pyns_boot(hook_venv, "status", env=stale)
    assert status.returncode == 1
    assert "hint:    " + stale_lines(stale)[1][len(HINT) :] in status.stdout.splitlines()


def test_a_program_other_than_pyns_boot_still_exits(hook_venv: Venv, stale: dict[str, str]) -> None:
    """A script that happens to take pyns_boot arguments is not the pyns-boot command."""
    result = run_python(hook_venv.python, "print('ran')", stale, args=["pyns-boot"])
    assert result.returncode == EXIT_STATUS and result.stdout == ""


def test_misspelled_netns_lists_the_existing_ones(hook_venv: Venv, netns: NamedNetns) -> None:
    wrong = netns.path + "x"
    result = run_python(hook_venv.python, "print('ran')", {"gons_net": wrong})
    assert result.returncode == EXIT_STATUS
    message, hint = result.stderr.splitlines()
    assert message == f'pyns_boot: invalid gons_net reference "{wrong}": No such file or directory'
    assert hint.startswith(HINT + f"no network namespace named '{netns.name}x'; existing: ")
    assert netns.name in hint[len(HINT + f"no network namespace named '{netns.name}x'") :]


def test_bare_netns_name_points_to_the_path(hook_venv: Venv, netns: NamedNetns) -> None:
    result = run_python(hook_venv.python, "print('ran')", {"gons_net": netns.name})
    assert result.returncode == EXIT_STATUS
    assert result.stderr.splitlines()[1] == HINT + (
        (
            "a reference is a path: the network namespace '{}' is /run/netns/{}: gons_net=/run/netns/{} "
            "(or gons_netns={})"
        ).format(*(netns.name,) * 4)
    )


def test_cli_netns_typo_lists_the_existing_ones(hook_venv: Venv, netns: NamedNetns) -> None:
    result = pyns_boot(hook_venv, "env", "--netns", netns.name + "x")
    assert result.returncode == 1
    message, hint = result.stderr.splitlines()
    assert message == f'pyns-boot: invalid gons_net reference "/run/netns/{netns.name}x": No such file or directory'
    assert hint.startswith(f"pyns-boot: hint: no network namespace named '{netns.name}x'; existing: ")
    assert netns.name in hint


def test_call_in_names_the_existing_netns(hook_venv: Venv, netns: NamedNetns) -> None:
    code = (
        "import os, pyns_boot\n"
        "try:\n"
        "    pyns_boot.call_in(pyns_boot.Namespaces.netns({!r}), os.getpid)\n"
        "except pyns_boot.NamespaceError as error:\n"
        "    print(error.status.hint)\n"
        "    print(str(error).splitlines()[1])\n"
    ).format(netns.name + "x")
    result = run_python(hook_venv.python, code)
    assert result.returncode == 0, result.stderr
    hint, line = result.stdout.splitlines()
    assert hint.startswith(f"no network namespace named '{netns.name}x'; existing: ") and netns.name in hint
    assert line == HINT + hint


@pytest.mark.parametrize("path", ["c-helper", "python-hook"])
def test_mistyped_policy_is_said_at_every_start_and_in_status(hook_venv: Venv, path: str) -> None:
    """PYNS_BOOT_ON_ERROR=warning with a join that succeeds: one line on stderr, and in status()."""
    # gons_mnt goes to the Python hook; gons_net is the C helper's run() alone.
    variable = "gons_mnt" if path == "python-hook" else "gons_net"
    env = {variable: "/proc/self/ns/" + variable[len("gons_") :], "PYNS_BOOT_ON_ERROR": "warning"}
    for _ in range(2):
        result = run_python(hook_venv.python, env=env)
        assert result.returncode == 0 and result.stderr == NOT_UNDERSTOOD
    status = probe(hook_venv.python, env)["status"]
    assert status["state"] == "succeeded" and status["policy"] == "exit"
    assert status["policy_error"] == NOT_UNDERSTOOD.strip()


def test_policy_is_reported_when_understood(hook_venv: Venv) -> None:
    status = probe(hook_venv.python, {"gons_net": "/proc/self/ns/net", "PYNS_BOOT_ON_ERROR": "warn"})["status"]
    assert (status["policy"], status["policy_error"]) == ("warn", None)


def test_stale_variable_hint_on_the_python_hook_path(hook_venv: Venv, stale: dict[str, str]) -> None:
    """gons_mnt sends the start-up to pyns_boot.hook.run(): the same message and hint as the C path."""
    env = {**stale, "gons_mnt": "/proc/self/ns/mnt"}
    result = run_python(hook_venv.python, "print('ran')", env)
    assert result.returncode == EXIT_STATUS and result.stdout == ""
    assert result.stderr.splitlines() == list(stale_lines(stale))
