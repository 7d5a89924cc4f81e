"""The suite tests the build it installed, not whatever lies around.

``python -c`` and ``-m`` put the working directory first on sys.path, so a
``_pyns_boot*.so`` (or a ``pyns_boot/``) in a child's cwd shadows the venv's
for every import after start-up, and a failure then reads like an install
bug.  The helpers therefore start every child in a fresh empty directory of
its own (nsutil.fresh_cwd), never in "/" nor in the test process's cwd.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cliutil import pyns_boot
from nsutil import REPO, Venv, run_python

WHERE = r"""
import json, os, sys
import pyns_boot, _pyns_boot
helper = sys.modules["_pyns_boot"]
print(json.dumps({"cwd": os.getcwd(), "listing": os.listdir("."), "helper": helper.__file__,
                  "package": pyns_boot.__file__, "same_helper": _pyns_boot is helper,
                  "state": pyns_boot.status().state}))
"""

STRAY_ELF = b"\x7fELF not the build under test"


def plant_strays(directory: Path) -> None:
    for name in ("_pyns_boot.abi3.so", "_pyns_boot.cpython-311-x86_64-linux-gnu.so", "_pyns_boot.so"):
        (directory / name).write_bytes(STRAY_ELF)
    package = directory / "pyns_boot"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('a stray pyns_boot package was imported')\n")


def where(result_stdout: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result_stdout.strip().splitlines()[-1])
    return report


def assert_from_venv(report: dict[str, Any], venv: Venv) -> None:
    site = os.path.realpath(venv.site_packages)
    helper = os.path.realpath(report["helper"])
    assert os.path.dirname(helper) == site and os.path.basename(helper).startswith("_pyns_boot."), report
    assert os.path.realpath(report["package"]) == os.path.join(site, "pyns_boot", "__init__.py"), report
    assert report["same_helper"] is True, report  # _pyns_boot is the helper the hook loaded


def assert_fresh_cwd(report: dict[str, Any], test_cwd: str) -> None:
    cwd = report["cwd"]
    assert cwd not in ("/", test_cwd, str(REPO)), report
    assert report["listing"] == [], report
    assert cwd.startswith("/tmp/"), report


@pytest.mark.parametrize("variables", [{}, {"gons_uts": "/proc/self/ns/uts"}], ids=["no-hook", "hook"])
def test_children_load_the_venvs_build_despite_strays_in_the_cwd(
    hook_venv: Venv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    strays = tmp_path / "strays"
    strays.mkdir()
    plant_strays(strays)
    monkeypatch.chdir(strays)  # the test process's cwd holds the strays
    result = run_python(hook_venv.python, WHERE, variables)
    assert result.returncode == 0, result.stderr
    report = where(result.stdout)
    assert_from_venv(report, hook_venv)
    assert_fresh_cwd(report, str(strays))
    assert report["state"] == ("succeeded" if variables else "inactive")


def test_pyns_boot_commands_run_in_a_fresh_directory(
    hook_venv: Venv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant_strays(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = pyns_boot(hook_venv, "run", "--uts", "/proc/self/ns/uts", "-c", WHERE)
    assert result.returncode == 0, result.stderr
    report = where(result.stdout)
    assert_from_venv(report, hook_venv)
    assert_fresh_cwd(report, str(tmp_path))


def test_a_stray_in_the_childs_cwd_would_shadow(hook_venv: Venv, tmp_path: Path) -> None:
    # Why the helpers keep children out of such directories: the check above can fail.
    plant_strays(tmp_path)
    result = run_python(hook_venv.python, WHERE, cwd=str(tmp_path))
    assert result.returncode != 0
    assert "a stray pyns_boot package was imported" in result.stderr
