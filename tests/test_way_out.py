"""What a newcomer runs into: a stale variable, a mistyped policy, and the hint each failure carries.

Real holders, real named network namespaces, the venv's own pip and pyns-boot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Callable

import pytest
from cliutil import clear_command, pyns_boot
from nsutil import (
    CHILD_TIMEOUT,
    EXIT_STATUS,
    Holder,
    NamedNetns,
    Venv,
    as_user,
    clean_env,
    probe,
    run_python,
    wait_gone,
)

HINT = "pyns_boot: hint: "
NOT_UNDERSTOOD = (
    'pyns_boot: PYNS_BOOT_ON_ERROR="warning" is not understood (expected exit, warn or ignore); acting as exit\n'
)


@pytest.fixture
def stale(holder: Callable[..., Holder]) -> dict[str, str]:
    """gons_net as `eval "$(pyns-boot env -t PID --net)"` left it, after the target exited."""
    h = holder(("net",))
    env = {"gons_net": h.ref("net")}
    gone(h)
    return env


def gone(h: Holder) -> None:
    """Stop the holder and wait until its process is gone (reaped by init a moment after its parent)."""
    h.stop()
    assert wait_gone(h.pid)


def stale_lines(env: dict[str, str], venv: Venv, policy: str = "exit") -> tuple[str, str]:
    """The message and hint of a start with a stale gons_net (venv's bin/ not on PATH)."""
    pid = int(env["gons_net"].split("/")[2])
    warn = ", or set PYNS_BOOT_ON_ERROR=warn to start anyway" if policy == "exit" else ""
    return (
        'pyns_boot: invalid gons_net reference "{}": No such file or directory'.format(env["gons_net"]),
        HINT
        + f"process {pid} has exited (a stale gons_net?): {clear_command(venv)} unsets gons_net and every other "
        + "pyns_boot variable"
        + warn,
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
    assert result.stderr.splitlines() == list(stale_lines(stale, hook_venv))
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
    assert lines[:2] == list(stale_lines(stale, hook_venv))
    assert lines[2:] == ["pyns_boot: the pyns-boot command carries on (as with PYNS_BOOT_ON_ERROR=warn) to report this"]


def test_stale_variable_doctor_and_status_report_it(hook_venv: Venv, stale: dict[str, str]) -> None:
    doctor = pyns_boot(hook_venv, "doctor", "--json", env=stale)
    assert doctor.returncode == 0, doctor.stderr
    (finding,) = [f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "status"]
    assert finding["level"] == "warning" and "No such file or directory" in finding["message"]
    assert finding["fix"] == stale_lines(stale, hook_venv)[1][len(HINT) :]

    status = pyns_boot(hook_venv, "status", env=stale)
    assert status.returncode == 1
    assert "hint:    " + stale_lines(stale, hook_venv)[1][len(HINT) :] in status.stdout.splitlines()


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
    assert message == (
        f'pyns-boot: invalid --netns reference "{netns.name}x" (/run/netns/{netns.name}x): No such file or directory'
    )
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
    assert result.stderr.splitlines() == list(stale_lines(stale, hook_venv))


# ---------------------------------------------------------------- one way out of a stale shell

#: What `pyns-boot env` may set: every variable the hook acts on (pyns_boot.cli._steering_variables()).
STEERING_PREFIXES = ("gons_", "PYNS_BOOT_WD", "PYNS_BOOT_SETUID", "PYNS_BOOT_SETGID")
SHOW_STEERING = f"import os; print(sorted(k for k in os.environ if k.startswith({STEERING_PREFIXES!r})))"


def in_shell(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script, "sh", *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd="/",
        stdin=subprocess.DEVNULL,
    )


def test_a_stale_shell_has_one_way_out(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    """eval "$(pyns-boot env ...)" set several variables, the target exited: the hint's one command clears
    them all (unsetting the one the message names would only move the failure to the next)."""
    h = holder(("net", "uts"))
    exports = pyns_boot(hook_venv, "env", "-t", str(h.pid), "--net", "--uts", "--order", "!uts,!net", "-w", "/")
    assert exports.returncode == 0, exports.stderr
    gone(h)
    stale = in_shell('eval "$1"; "$2" -c "print(1)"', exports.stdout, hook_venv.python)
    assert stale.returncode == EXIT_STATUS and stale.stdout == ""
    message, hint = stale.stderr.splitlines()
    assert message == f'pyns_boot: invalid gons_uts reference "/proc/{h.pid}/ns/uts": No such file or directory'
    found = re.search(r'eval "\$\(.*? env --clear\)"', hint)
    assert found is not None and found.group(0) == clear_command(hook_venv), hint
    assert hint.startswith(HINT + f"process {h.pid} has exited (a stale gons_uts?): ")

    # The hint's command, verbatim, in that shell: silent, and every python starts again.
    script = 'eval "$1"; ' + found.group(0) + '; "$2" -c "$3"'
    cleared = in_shell(script, exports.stdout, hook_venv.python, SHOW_STEERING)
    assert (cleared.returncode, cleared.stderr, cleared.stdout) == (0, "", "[]\n")
    # What the shell held before: more than the one variable the message names.
    held = in_shell('eval "$1"; "$2" -S -c "$3"', exports.stdout, hook_venv.python, SHOW_STEERING)
    assert held.stdout == "['PYNS_BOOT_WD', 'gons_net', 'gons_order', 'gons_uts']\n", held.stderr


def test_the_way_out_names_pyns_boot_when_path_finds_it(hook_venv: Venv, stale: dict[str, str]) -> None:
    path = "{}:{}".format(hook_venv.path / "bin", os.environ.get("PATH", "/usr/bin:/bin"))
    result = run_python(hook_venv.python, "print('ran')", {**stale, "PATH": path})
    assert result.returncode == EXIT_STATUS
    assert ' (a stale gons_net?): eval "$(pyns-boot env --clear)" unsets gons_net ' in result.stderr.splitlines()[1]


def test_env_clear_unsets_every_steering_variable(hook_venv: Venv) -> None:
    from pyns_boot.cli import _steering_variables

    result = pyns_boot(hook_venv, "env", "--clear")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "unset {}\n".format(" ".join(_steering_variables()))
    names = result.stdout.split()[1:]
    for name in ("gons_net", "gons_uts", "gons_order", "gons_netns", "PYNS_BOOT_WD", "PYNS_BOOT_SETUID"):
        assert name in names
    assert "PYNS_BOOT_ON_ERROR" not in names  # a setting of the user's, not of a target


@pytest.mark.parametrize("extra", [["-t", "1", "--net"], ["--netns", "blue"], ["--json"], ["--format", "env"]])
def test_env_clear_takes_no_other_option(hook_venv: Venv, extra: list[str]) -> None:
    result = pyns_boot(hook_venv, "env", "--clear", *extra)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.endswith(
        "pyns-boot env: error: --clear takes no other option: it prints the unset line of every variable, for eval\n"
    )


@pytest.mark.parametrize("module", [False, True], ids=["console-script", "python-m"])
def test_env_clear_works_after_a_partial_join(hook_venv: Venv, holder: Callable[..., Holder], module: bool) -> None:
    """The hook of the pyns-boot process itself joined uts, then failed on a stale net: env --clear
    still prints its line, silently; env for a new target is refused, naming the way out."""
    h, dead = holder(("uts",)), holder(("net",))
    env = {"gons_uts": h.ref("uts"), "gons_net": dead.ref("net"), "gons_order": "uts,net"}
    gone(dead)
    cleared = pyns_boot(hook_venv, "env", "--clear", env=env, module=module)
    assert (cleared.returncode, cleared.stderr) == (0, "") and cleared.stdout.startswith("unset gons_cgroup ")
    refused = pyns_boot(hook_venv, "env", "-t", str(h.pid), "--uts", env=env, module=module)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        "pyns-boot: the start-up hook of this pyns-boot process failed after joining uts: clear the variables "
        f"(they belong to another program) with  {clear_command(hook_venv)}  and try again"
    )


# ---------------------------------------------------------------- hints that name what was given


@pytest.mark.parametrize("policy", ["warn", "ignore"])
def test_no_hint_offers_the_policy_in_force(hook_venv: Venv, stale: dict[str, str], policy: str) -> None:
    env = {**stale, "PYNS_BOOT_ON_ERROR": policy}
    result = run_python(hook_venv.python, "print('ran')", env)
    assert result.returncode == 0 and result.stdout == "ran\n"
    lines = stale_lines(stale, hook_venv, policy)
    assert result.stderr.splitlines() == ([] if policy == "ignore" else list(lines))
    assert "PYNS_BOOT_ON_ERROR" not in lines[1]
    assert probe(hook_venv.python, env)["status"]["hint"] == lines[1][len(HINT) :]


def test_gons_netns_failure_names_gons_netns(hook_venv: Venv, netns: NamedNetns) -> None:
    name = netns.name + "x"
    result = run_python(hook_venv.python, "print('ran')", {"gons_netns": name})
    assert result.returncode == EXIT_STATUS and result.stdout == ""
    message, hint = result.stderr.splitlines()
    assert message == (
        f'pyns_boot: invalid gons_netns reference "{name}" (/run/netns/{name}): No such file or directory'
    )
    assert hint.startswith(HINT + f"no network namespace named '{name}'; existing: ") and netns.name in hint
    assert hint.endswith(
        f"; {clear_command(hook_venv)} unsets gons_netns and every other pyns_boot variable, or "
        "set PYNS_BOOT_ON_ERROR=warn to start anyway"
    )
    assert "gons_net " not in hint and "gons_net," not in hint
    status = probe(hook_venv.python, {"gons_netns": name, "PYNS_BOOT_ON_ERROR": "warn"})["status"]
    assert status["error"] == message and HINT + status["hint"] == hint.replace(
        ", or set PYNS_BOOT_ON_ERROR=warn to start anyway", ""
    )


def test_gons_netns_cannot_join_names_gons_netns(hook_venv: Venv, netns: NamedNetns) -> None:
    """Refused by the kernel at the join (an unprivileged user): the other form of the message."""
    result = run_python(hook_venv.python, "print('ran')", {"gons_netns": netns.name}, wrapper=as_user())
    assert result.returncode == EXIT_STATUS and result.stdout == ""
    assert result.stderr.startswith(
        f'pyns_boot: cannot join gons_netns using reference "{netns.name}" ({netns.path}): Operation not permitted\n'
    )


@pytest.mark.parametrize(
    ("value", "instead"),
    [
        ("/run/netns/blue", "gons_netns=blue"),
        ("/run/netns/blue/", "gons_netns=blue"),
        ("/proc/1/ns/net", "gons_net=/proc/1/ns/net"),
        ("blue/red", "a name is a file name in /run/netns (ip netns list)"),
    ],
)
def test_gons_netns_path_offers_the_name(hook_venv: Venv, value: str, instead: str) -> None:
    result = run_python(hook_venv.python, "print('ran')", {"gons_netns": value})
    assert result.returncode == EXIT_STATUS and result.stdout == ""
    assert result.stderr == (
        f'pyns_boot: gons_netns="{value}" is not a network namespace name (as in: ip netns add NAME): {instead}\n'
    )


USER_MISSING = 'pyns-boot: invalid -U/--user reference "/nonexistent": No such file or directory'


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-U", "/nonexistent"], USER_MISSING),
        (["--user", "/nonexistent"], USER_MISSING),
        (
            ["-m", "/dev/null"],
            'pyns-boot: invalid -m/--mnt reference "/dev/null": not a namespace reference (it is a character device)',
        ),
        (
            ["--uts", "/proc/self/ns/net"],
            'pyns-boot: invalid -u/--uts reference "/proc/self/ns/net": it is a namespace of type net, not uts',
        ),
    ],
)
def test_cli_messages_name_the_option(hook_venv: Venv, options: list[str], message: str) -> None:
    result = pyns_boot(hook_venv, "env", *options)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines()[0] == message
    assert "gons_" not in result.stderr


def test_cli_relative_reference_hint_names_the_option(hook_venv: Venv) -> None:
    result = pyns_boot(hook_venv, "env", "-U", "no-such-user-ns")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        'pyns-boot: invalid -U/--user reference "no-such-user-ns": No such file or directory',
        "pyns-boot: hint: a reference is a path such as /proc/PID/ns/user or a bind-mounted namespace file: "
        "-U/--user /proc/PID/ns/user",
    ]


@pytest.mark.parametrize(("value", "instead"), [("/run/netns/blue", "--netns blue"), ("/x/blue", "--net /x/blue")])
def test_cli_netns_path_offers_the_name(hook_venv: Venv, value: str, instead: str) -> None:
    result = pyns_boot(hook_venv, "env", "--netns", value)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"pyns-boot env: error: --netns {value!r} is not a network namespace name (as in: ip netns add NAME): "
        f"{instead}\n"
    )
