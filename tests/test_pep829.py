"""PEP 829 (.start files): what each interpreter's real site.py does with pyns_boot.

The cp38-abi3 wheel serves 3.8-3.17 with the import line of pyns_boot.pth
alone and ships no pyns_boot.start: 3.15-3.17 still run import lines, and a
.start file would both silence that line and make every process import
pkgutil to call the entry (docs/python-versions.md).  Python 3.18 ignores
import lines; a wheel built for it (PYNS_BOOT_ABI3_FLOOR=cp318) adds
pyns_boot.start, naming pyns_boot.hook:start.

3.18 does not exist yet.  Its behaviour is simulated faithfully on 3.15+:
the interpreter's own site.py, with the one statement that records a .pth
import line removed (PEP 829: from 3.18 they are ignored), is run as site.py
runs at start-up (``site.main()`` under -S).  Before 3.15 there is no PEP 829
site.py to patch.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Callable

import nsutil
import pytest
from nsutil import PROBE, REPO, SIMULATED_318_SITE, Holder, Venv, parse_probe, run_python

START_ENTRY = "pyns_boot.hook:start"

# What the probe adds: did the C helper act (the hook module's run() did not)?  None: pyns_boot.hook was not loaded.
HOW = r"""
record = sys.modules.get("pyns_boot._hook_record")
ran = getattr(record, "ran", False) if "pyns_boot.hook" in sys.modules else None
print("HOW " + json.dumps({"hook_ran": ran, "pkgutil": "pkgutil" in sys.modules}))
"""


def version_of(python: str) -> tuple[int, int]:
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"], check=True, capture_output=True, text=True
    )
    major, minor = out.stdout.split()
    return int(major), int(minor)


def needs_pep829_site(python: str) -> None:
    if version_of(python) < (3, 15):
        pytest.skip("the 3.18 simulation patches a PEP 829 site.py; this interpreter's (< 3.15) has none")


def how(stdout: str) -> dict[str, object]:
    import json

    for line in stdout.splitlines():
        if line.startswith("HOW "):
            result: dict[str, object] = json.loads(line[4:])
            return result
    raise AssertionError(f"no HOW line: {stdout!r}")


def as_318(venv: Venv, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_python(venv.python, SIMULATED_318_SITE + PROBE + HOW, env, python_args=["-S"])


def test_the_wheel_ships_no_start_file(hook_venv: Venv) -> None:
    site = hook_venv.site_packages
    assert (site / "pyns_boot.pth").is_file()
    assert not (site / "pyns_boot.start").exists()


def test_real_site_py_joins_through_the_c_helper(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    """On every interpreter, 3.15 included: the .pth line calls the C helper; nothing of the package loads."""
    target = holder(["uts"])
    result = run_python(hook_venv.python, "import json, sys\n" + HOW + PROBE, {"gons_uts": target.ref("uts")})
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert report["links"]["uts"] == target.link("uts") and report["env"] == {}
    assert report["loaded_at_start"] == []
    assert how(result.stdout) == {"hook_ran": None, "pkgutil": False}
    assert report["status"]["state"] == "succeeded"


def test_real_site_py_idle_loads_no_pkgutil(hook_venv: Venv) -> None:
    """What made 3.15's idle start 1.73x the floor: a .start entry, resolved through pkgutil."""
    code = "import sys; print(sorted(m for m in ('pkgutil', 'pyns_boot', '_pyns_boot', 're') if m in sys.modules))"
    result = run_python(hook_venv.python, code)
    assert result.returncode == 0 and result.stdout.split() == ["[]"], result


def test_simulated_318_does_not_run_the_import_line(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    """Why a 3.18 wheel needs the .start file: the cp38-abi3 wheel's line alone is ignored there."""
    needs_pep829_site(hook_venv.python)
    target = holder(["uts"])
    result = as_318(hook_venv, {"gons_uts": target.ref("uts")})
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert report["links"]["uts"] != target.link("uts")
    assert report["status"]["state"] == "not_run" and report["env"] == {"gons_uts": target.ref("uts")}


@pytest.fixture
def venv_318(fresh_hook_venv: Venv) -> Venv:
    """What the cp318-abi3 wheel installs: the same files plus pyns_boot.start (setup.py refuses to
    tag a wheel for an interpreter newer than the one building it, so it is added by hand here)."""
    needs_pep829_site(fresh_hook_venv.python)
    (fresh_hook_venv.site_packages / "pyns_boot.start").write_bytes((REPO / "pyns_boot.start").read_bytes())
    return fresh_hook_venv


@pytest.mark.unit
def test_start_file_names_the_start_entry() -> None:
    lines = (REPO / "pyns_boot.start").read_text(encoding="utf-8-sig").splitlines()
    entries = [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]
    assert entries == [START_ENTRY]
    if sys.version_info >= (3, 9):
        import pkgutil

        from pyns_boot import hook

        assert pkgutil.resolve_name(START_ENTRY) is hook.start


def test_simulated_318_start_entry_joins_through_the_c_helper(venv_318: Venv, holder: Callable[..., Holder]) -> None:
    target = holder(["uts", "net"])
    result = as_318(venv_318, {"gons_uts": target.ref("uts"), "gons_net": target.ref("net")})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = parse_probe(result.stdout)
    assert report["links"]["uts"] == target.link("uts") and report["links"]["net"] == target.link("net")
    assert report["status"]["state"] == "succeeded" and report["env"] == {}
    assert how(result.stdout)["hook_ran"] is False  # start() handed over to _pyns_boot.run()


def test_simulated_318_start_entry_idle(venv_318: Venv) -> None:
    result = as_318(venv_318, {})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    report = parse_probe(result.stdout)
    assert report["loaded_at_start"] == ["pyns_boot", "pyns_boot.hook"]  # the entry's module; no C helper
    assert report["status"]["state"] == "inactive"


def test_simulated_318_start_entry_failure_applies_the_policy(venv_318: Venv) -> None:
    result = as_318(venv_318, {"gons_uts": "/nonexistent"})
    assert result.returncode == nsutil.EXIT_STATUS and result.stdout == ""
    assert "gons_uts" in result.stderr and "/nonexistent" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("pyns_boot:") == 1
