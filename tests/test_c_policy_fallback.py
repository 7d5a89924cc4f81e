"""The C helper's last resort: what run() does when the pyns_boot package cannot be imported.

A failed join normally goes through pyns_boot.hook.report_failure() and pyns_boot._policy (message, hint,
policy: tests/test_policy.py, on every start-up path).  When the package is gone or broken (half an uninstall,
a package directory removed by hand) while pyns_boot.pth and _pyns_boot.abi3.so are still in place, the C
helper writes the join's message alone and exits 125 unless PYNS_BOOT_ON_ERROR is exactly warn or ignore:
no hint, no complaint about a value it does not understand (that acts as exit), no exception for the pyns-boot
command (docs/hardening.md).  Each case is checked on that path, which no other test reaches.
"""

from __future__ import annotations

import shutil
from typing import Iterator

import pytest
from nsutil import EXIT_STATUS, HANG_TIMEOUT, Venv, run_python

MESSAGE = 'pyns_boot: invalid gons_net reference "/nonexistent/net": No such file or directory\n'
CODE = "import sys; print('ran', '_pyns_boot' in sys.modules, 'pyns_boot' in sys.modules)"


@pytest.fixture
def without_package(fresh_hook_venv: Venv) -> Iterator[Venv]:
    """The venv's pyns_boot.pth and C helper, without the pyns_boot package."""
    shutil.rmtree(fresh_hook_venv.site_packages / "pyns_boot")
    yield fresh_hook_venv


@pytest.mark.parametrize(
    "policy, returncode, stderr, ran",
    [
        (None, EXIT_STATUS, MESSAGE, False),
        ("exit", EXIT_STATUS, MESSAGE, False),
        ("warn", 0, MESSAGE, True),
        ("ignore", 0, "", True),
        ("warning", EXIT_STATUS, MESSAGE, False),
    ],
    ids=["default", "exit", "warn", "ignore", "not-understood"],
)
def test_c_helper_applies_the_policy_without_the_package(
    without_package: Venv, policy: str | None, returncode: int, stderr: str, ran: bool
) -> None:
    env = {"gons_net": "/nonexistent/net"}
    if policy is not None:
        env["PYNS_BOOT_ON_ERROR"] = policy
    result = run_python(without_package.python, CODE, env, timeout=HANG_TIMEOUT)
    assert (result.returncode, result.stderr) == (returncode, stderr)
    # the C helper acted (loaded), the package was not there to help
    assert result.stdout == ("ran True False\n" if ran else "")


def test_without_the_package_a_value_not_understood_goes_unsaid_after_a_join(without_package: Venv) -> None:
    """A successful join needs no policy: without pyns_boot._policy to say it, a mistyped value is not mentioned."""
    env = {"gons_net": "/proc/self/ns/net", "PYNS_BOOT_ON_ERROR": "warning"}
    result = run_python(without_package.python, CODE, env, timeout=HANG_TIMEOUT)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ran True False\n", "")
