"""The failure policy (PYNS_BOOT_ON_ERROR) on every start-up path, against one table.

pyns_boot/_policy.py is the policy's one home, and the start-up reaches it on three paths
(the ``start_path`` fixture runs each test on each of them, the way markupsafe's fixture
runs every test on its C speedups and on its pure fallback):

* ``c-helper``: pyns_boot.pth calls the C helper's run(); a failed join goes to
  pyns_boot.hook.report_failure(), a value not understood after a successful join to
  _policy.note() (the only import on that success path); C records the policy itself;
* ``python-hook``: pyns_boot.hook.run() with the helper loaded (gons_mnt, here the
  process's own mount namespace, is the Python hook's to join);
* ``no-helper``: pyns_boot.hook.run() when the C helper cannot load (the venv's
  _pyns_boot.abi3.so removed): the load error is the failure, written by the Python
  writer (_policy._write_bounded).

Each path must give the same stderr byte for byte (but for the failure's own message),
the same exit status and the same status() for each value: the expectations are one
table, so the paths agree with it and with each other.  The C helper's last resort (the
package itself cannot be imported) is tests/test_c_policy_fallback.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest
from nsutil import CHILD_TIMEOUT, EXIT_STATUS, Venv, clean_env, fresh_cwd, make_venv, rmtree

USER_CODE = "print('user code ran')"
STATUS_CODE = (
    "import json, pyns_boot; s = pyns_boot.status()\n"
    "print(json.dumps({'state': s.state, 'policy': s.policy, 'policy_error': s.policy_error, 'error': s.error}))"
)
MISSING = b'pyns_boot: invalid gons_net reference "/nonexistent": No such file or directory'
NO_HELPER = b"pyns_boot: cannot load the C helper _pyns_boot: No module named '_pyns_boot'"
CLOSE_STDERR = ["/bin/sh", "-c", 'exec "$@" 2>&-', "sh"]
CARRIES_ON = b"pyns_boot: the pyns-boot command carries on (as with PYNS_BOOT_ON_ERROR=warn) to report this"

# PYNS_BOOT_ON_ERROR: (id, value or None for unset, the policy it means, understood)
VALUES = [
    ("unset", None, "exit", True),
    ("empty", b"", "exit", True),
    ("exit", b"exit", "exit", True),
    ("warn", b"warn", "warn", True),
    ("ignore", b"ignore", "ignore", True),
    ("unknown", b"bogus", "exit", False),
    ("upper-case", b"WARN", "exit", False),
    ("padded", b" warn", "exit", False),
    ("number", b"0", "exit", False),
    ("non-utf8", b"\xff", "exit", False),
]
VALUE_IDS = [v[0] for v in VALUES]


def complaint(value: bytes) -> bytes:
    return b'pyns_boot: PYNS_BOOT_ON_ERROR="%s" is not understood (expected exit, warn or ignore); acting as exit' % (
        value,
    )


@dataclass(frozen=True)
class StartPath:
    name: str
    venv: Venv
    env: Mapping[str, bytes]  # what sends the start-up down this path, beside the test's own variables
    failure: bytes  # the message of a failed start with gons_net=/nonexistent on this path


def run(
    path: StartPath,
    env: Mapping[str, bytes],
    code: str = USER_CODE,
    command: str = "python",
    wrapper: Sequence[str] = (),
) -> subprocess.CompletedProcess[bytes]:
    """The venv's python (or its pyns-boot command, as script or -m) with env on top of a clean environment."""
    full = {os.fsencode(k): os.fsencode(v) for k, v in clean_env().items()}
    full.update({os.fsencode(k): v for k, v in {**path.env, **env}.items()})
    argv = {
        "python": [path.venv.python, "-c", code],
        "script": [str(path.venv.path / "bin" / "pyns-boot"), "--help"],
        "module": [path.venv.python, "-m", "pyns_boot", "--help"],
    }[command]
    return subprocess.run(
        [*wrapper, *argv],
        env=full,
        capture_output=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
        stdin=subprocess.DEVNULL,
    )


def with_policy(env: Mapping[str, bytes], value: bytes | None) -> dict[str, bytes]:
    return {**env, "PYNS_BOOT_ON_ERROR": value} if value is not None else dict(env)


@pytest.fixture(scope="module")
def venv_without_helper(workdir: Path, wheel: Path) -> Iterator[Venv]:
    """pyns_boot with its C helper removed: pyns_boot.pth falls back to pyns_boot.hook.run()."""
    path = workdir / "policy-no-helper-venv"
    venv = make_venv(path)
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    helpers = list(venv.site_packages.glob("_pyns_boot*.so"))
    assert helpers
    for helper in helpers:
        helper.unlink()
    yield venv
    rmtree(path)


def start_path_named(name: str, request: pytest.FixtureRequest) -> StartPath:
    hook_venv: Venv = request.getfixturevalue("hook_venv")
    if name == "c-helper":
        return StartPath(name, hook_venv, {}, MISSING)
    if name == "python-hook":
        return StartPath(name, hook_venv, {"gons_mnt": b"/proc/self/ns/mnt"}, MISSING)
    return StartPath(name, request.getfixturevalue("venv_without_helper"), {}, NO_HELPER)


@pytest.fixture(params=["c-helper", "python-hook", "no-helper"])
def start_path(request: pytest.FixtureRequest) -> StartPath:
    """Every start-up path."""
    return start_path_named(request.param, request)


@pytest.fixture(params=["c-helper", "python-hook"])
def joining_path(request: pytest.FixtureRequest) -> StartPath:
    """The start-up paths that can join (without the C helper nothing is joined: test_failure covers it)."""
    return start_path_named(request.param, request)


@pytest.mark.parametrize("id, value, policy, understood", VALUES, ids=VALUE_IDS)
def test_failure(start_path: StartPath, id: str, value: bytes | None, policy: str, understood: bool) -> None:
    """A failed start: exit 125 without user code, or carry on (warn: the message; ignore: nothing)."""
    result = run(start_path, with_policy({"gons_net": b"/nonexistent"}, value))
    expected_stderr = b"" if policy == "ignore" else start_path.failure + b"\n"
    if not understood:
        expected_stderr += complaint(value or b"") + b"\n"
    carries_on = policy in ("warn", "ignore")
    assert (result.returncode, result.stderr, result.stdout) == (
        0 if carries_on else EXIT_STATUS,
        expected_stderr,
        b"user code ran\n" if carries_on else b"",
    )


CARRYING_ON = [v for v in VALUES if v[2] != "exit"]


@pytest.mark.parametrize("id, value, policy, understood", CARRYING_ON, ids=[v[0] for v in CARRYING_ON])
def test_failure_status(start_path: StartPath, id: str, value: bytes | None, policy: str, understood: bool) -> None:
    """What status() says after a failure the policy carried on from (warn, ignore)."""
    result = run(start_path, with_policy({"gons_net": b"/nonexistent"}, value), STATUS_CODE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "state": "failed",
        "policy": policy,
        "policy_error": None,
        "error": start_path.failure.decode(),
    }


@pytest.mark.parametrize("id, value, policy, understood", VALUES, ids=VALUE_IDS)
def test_success(joining_path: StartPath, id: str, value: bytes | None, policy: str, understood: bool) -> None:
    """A join that succeeds: the policy is recorded, and a value not understood is said in one line."""
    result = run(joining_path, with_policy({"gons_net": b"/proc/self/ns/net"}, value), STATUS_CODE)
    line = b"" if understood else complaint(value or b"") + b"\n"
    assert (result.returncode, result.stderr) == (0, line)
    assert json.loads(result.stdout) == {
        "state": "succeeded",
        "policy": policy,
        "policy_error": line.rstrip(b"\n").decode("utf-8", "surrogateescape") or None,
        "error": None,
    }


@pytest.mark.parametrize("command", ["script", "module"])
@pytest.mark.parametrize("value", [None, b"exit", b"bogus"], ids=["unset", "exit", "unknown"])
def test_pyns_boot_command_carries_on(start_path: StartPath, command: str, value: bytes | None) -> None:
    """The pyns-boot command never exits under the policy: it says so and runs, to report the way out."""
    result = run(start_path, with_policy({"gons_net": b"/nonexistent"}, value), command=command)
    lines = [start_path.failure]
    if value == b"bogus":
        lines.append(complaint(value))
    lines.append(CARRIES_ON)
    assert (result.returncode, result.stderr) == (0, b"\n".join(lines) + b"\n")
    assert result.stdout.startswith(b"usage: pyns-boot")


@pytest.mark.parametrize("value", [b"exit", b"warn"])
def test_closed_stderr(start_path: StartPath, value: bytes) -> None:
    """Descriptor 2 closed: the policy holds all the same, and nothing crashes for want of stderr."""
    result = run(start_path, with_policy({"gons_net": b"/nonexistent"}, value), wrapper=CLOSE_STDERR)
    if value == b"exit":
        assert (result.returncode, result.stdout) == (EXIT_STATUS, b"")
    else:
        assert (result.returncode, result.stdout) == (0, b"user code ran\n")
