"""Start-up files that are not what this version installs.

A pyns_boot.start left behind by an older install or written by hand, present
in two site directories, .pth and .start of different versions, a stale
_pyns_boot.abi3-<platform>.so beside the good helper.  On Python 3.15 (real
site.py) each is refused under the policy: at most one action, one clear
message naming the file and the way out, exit 125 by default, no traceback.
Where an interpreter ignores the file (.start before 3.15, that .so suffix
before 3.15), the hook works as if it were not there.
"""

from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest
from nsutil import (
    EXIT_STATUS,
    PROBE,
    REPO,
    TYPES,
    Holder,
    Venv,
    clean_env,
    fresh_cwd,
    make_venv,
    parse_probe,
    rmtree,
    run_python,
    world_readable_dir,
)
from nsutil import test_python as interpreter_under_test

# The start-up files of the previous release (0.1.0 before this change): its .pth line and its .start entry.
OLD_PTH = (
    "import os; b'gons_' in b' '.join(os.environ._data) and exec('try:\\n import _pyns_boot as m\\n"
    "except ImportError:\\n import pyns_boot.hook as m\\nm.run()')\n"
)
OLD_START = "pyns_boot.hook:run\n"
STALE_HELPER = f"_pyns_boot.abi3-{platform.machine()}-linux-gnu.so"


def minor(python: str) -> int:
    out = subprocess.run([python, "-c", "import sys; print(sys.version_info[1])"], capture_output=True, text=True)
    return int(out.stdout)


PEP829 = minor(interpreter_under_test()) >= 15  # the interpreter under test reads .start files and that .so suffix


def knows_suffix(python: str, suffix: str) -> bool:
    """An import by name of python's finds an extension module file of that suffix (3.14 too: after .abi3.so)."""
    code = "import importlib.machinery as m, sys; print(sys.argv[1] in m.EXTENSION_SUFFIXES)"
    out = subprocess.run([python, "-c", code, suffix], capture_output=True, text=True)
    return out.stdout.strip() == "True"


TAGGED_SUFFIX = knows_suffix(interpreter_under_test(), STALE_HELPER[len("_pyns_boot") :])


def refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 125 before user code, one message, no traceback."""
    assert result.returncode == EXIT_STATUS, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("pyns_boot:") == 1 and result.stderr.endswith("\n"), result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def joined(result: subprocess.CompletedProcess[str], target: Holder, stderr_messages: int = 0) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("pyns_boot:") == stderr_messages, result.stderr
    report = parse_probe(result.stdout)
    assert report["links"]["uts"] == target.link("uts") and report["env"] == {}
    assert report["status"]["state"] == "succeeded"


def idle_is_silent(venv: Venv) -> None:
    result = run_python(venv.python, "print('user code ran')")
    assert result.returncode == 0 and result.stdout == "user code ran\n" and result.stderr == "", result


@pytest.mark.parametrize(
    "text",
    [OLD_START, "\ufeff# written by hand\n  pyns_boot.hook:run  \n\n"],
    ids=["left-behind", "edited-by-hand"],
)
def test_start_file_not_installed_by_this_version(
    fresh_hook_venv: Venv, holder: Callable[..., Holder], text: str
) -> None:
    start = fresh_hook_venv.site_packages / "pyns_boot.start"
    start.write_text(text, encoding="utf-8")
    target = holder(["uts"])
    env = {"gons_uts": target.ref("uts")}
    result = run_python(fresh_hook_venv.python, PROBE, env)
    if not PEP829:
        joined(result, target)  # nobody reads .start files before 3.15
        return
    refused(result, str(start), "calls pyns_boot.hook:run", f"rm {start}", "PYNS_BOOT_ON_ERROR=warn")
    warned = run_python(fresh_hook_venv.python, PROBE, {**env, "PYNS_BOOT_ON_ERROR": "warn"})
    joined(warned, target, 1)
    assert "PYNS_BOOT_ON_ERROR=warn" not in warned.stderr  # the way out in force already is not offered
    idle_is_silent(fresh_hook_venv)


def test_start_file_naming_something_else_is_reported_by_doctor(fresh_hook_venv: Venv) -> None:
    """An entry that is not the hook: on 3.15 site.py reports it itself, and the .pth line does not run."""
    start = fresh_hook_venv.site_packages / "pyns_boot.start"
    start.write_text("pyns_boot.hook:no_such_function\n")
    out = subprocess.run(
        [fresh_hook_venv.python, "-m", "pyns_boot", "doctor"],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=fresh_cwd(),
        timeout=120,
    )
    assert str(start) in out.stdout, out.stdout
    if PEP829:
        assert out.returncode == 1 and f"rm {start}" in out.stdout, out.stdout
    else:
        assert out.returncode == 0, out.stdout
    # What the process itself does: on 3.15 the .pth line is suppressed and site.py reports the entry
    # (its message, its traceback); nothing of pyns_boot runs, so the variable is not honoured.  The
    # limit of a .pth-based hook, documented in docs/python-versions.md; doctor is the way to find it.
    result = run_python(fresh_hook_venv.python, "print('user code ran')", {"gons_uts": "/nonexistent"})
    if PEP829:
        assert result.returncode == 0 and result.stdout == "user code ran\n", result
        assert "Error resolving entry point pyns_boot.hook:no_such_function" in result.stderr, result.stderr
    else:
        assert result.returncode == EXIT_STATUS and "gons_uts" in result.stderr, result


@pytest.fixture
def two_site_dirs(workdir: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Venv, Path, dict[str, str]]]:
    """A venv that sees the user site (PYTHONUSERBASE), pyns_boot installed in both site directories."""
    name = request.node.name.replace("[", "-").replace("]", "")
    venv_dir = workdir / ("two-sites-" + name)
    venv = make_venv(venv_dir, system_site=True)
    user_base = world_readable_dir("pyns-boot-py315-userbase-")
    env = {"PYTHONUSERBASE": str(user_base)}
    user_site = Path(run_python(venv.python, "import site; print(site.getusersitepackages())", env).stdout.strip())
    yield venv, user_site, env
    rmtree(venv_dir)
    rmtree(user_base)


def test_installed_in_two_site_directories_with_start_files(
    two_site_dirs: tuple[Venv, Path, dict[str, str]], wheel: Path, holder: Callable[..., Holder]
) -> None:
    venv, user_site, env = two_site_dirs
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    venv.pip("install", "--no-deps", "--no-index", "--target", str(user_site), str(wheel))
    starts = [venv.site_packages / "pyns_boot.start", user_site / "pyns_boot.start"]  # site.py's order in a venv
    for start in starts:
        start.write_text(OLD_START)
    check = run_python(venv.python, "import site, sys; print(site.ENABLE_USER_SITE, sys.path)", env)
    assert check.stdout.startswith("True") and str(user_site) in check.stdout, check
    target = holder(["uts"])
    env["gons_uts"] = target.ref("uts")
    result = run_python(venv.python, PROBE, env)
    if not PEP829:
        joined(result, target)  # both .pth lines run (the venv's first); the first acts, the second finds it done
        return
    refused(result, str(starts[0]))  # the first entry refuses; the second never runs
    joined(run_python(venv.python, PROBE, {**env, "PYNS_BOOT_ON_ERROR": "warn"}), target, 1)  # one message, once


def test_pth_and_start_of_an_older_version(fresh_hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    site = fresh_hook_venv.site_packages
    (site / "pyns_boot.pth").write_text(OLD_PTH)
    (site / "pyns_boot.start").write_text(OLD_START)
    target = holder(["uts"])
    env = {"gons_uts": target.ref("uts")}
    result = run_python(fresh_hook_venv.python, PROBE, env)
    if not PEP829:
        joined(result, target)  # the old line calls this version's helper
        return
    refused(result, str(site / "pyns_boot.start"), "rm ")
    idle_is_silent(fresh_hook_venv)


def test_stale_platform_tagged_helper_beside_the_good_one(fresh_hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    """The line loads the helper by its own path: a stale file beside it is never loaded, on any version."""
    site = fresh_hook_venv.site_packages
    stale = site / STALE_HELPER
    stale.write_bytes((site / "_pyns_boot.abi3.so").read_bytes())  # what a 3.15-built wheel of 0.1.0 installed
    target = holder(["uts"])
    env = {"gons_uts": target.ref("uts")}
    joined(run_python(fresh_hook_venv.python, PROBE, env), target)
    code = "import sys, pyns_boot; print(sys.modules['_pyns_boot'].__file__)"
    result = run_python(fresh_hook_venv.python, code, {"gons_uts": target.ref("uts")})
    assert result.returncode == 0 and result.stdout == f"{site / '_pyns_boot.abi3.so'}\n", result


def test_stale_platform_tagged_helper_instead_of_the_good_one(
    fresh_hook_venv: Venv, holder: Callable[..., Holder]
) -> None:
    """Without the helper the line loads, pyns_boot.hook imports by name: 3.14 and 3.15 find the stale file (3.14
    tries the suffix after .abi3.so) and refuse it."""
    site = fresh_hook_venv.site_packages
    stale = site / STALE_HELPER
    (site / "_pyns_boot.abi3.so").rename(stale)
    target = holder(["uts"])
    env = {"gons_uts": target.ref("uts")}
    result = run_python(fresh_hook_venv.python, PROBE, env)
    if not TAGGED_SUFFIX:  # that suffix is not one of the interpreter's (3.8-3.13): the package's own failure report
        assert result.returncode == EXIT_STATUS and result.stdout == "" and "Traceback" not in result.stderr
        assert result.stderr == "pyns_boot: cannot load the C helper _pyns_boot: No module named '_pyns_boot'\n"
        return
    refused(result, f"the C helper loaded is {stale}", f"rm {stale}", "no namespace was joined")
    warned = run_python(fresh_hook_venv.python, PROBE, {**env, "PYNS_BOOT_ON_ERROR": "warn"})
    assert warned.returncode == 0 and warned.stderr.count("pyns_boot:") == 1 and "Traceback" not in warned.stderr
    report = parse_probe(warned.stdout)
    assert report["links"]["uts"] != target.link("uts")
    assert report["status"]["state"] == "failed" and str(stale) in report["status"]["error"]
    idle_is_silent(fresh_hook_venv)


def test_helper_that_does_not_load_fails_cleanly(fresh_hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    """A helper file that is there but does not load (not an ELF object): the line falls back to
    pyns_boot.hook, which refuses under the policy: exit 125, one message naming the file, no traceback."""
    site = fresh_hook_venv.site_packages
    helper = site / "_pyns_boot.abi3.so"
    helper.write_bytes(b"not an ELF object\n")
    target = holder(["uts"])
    result = run_python(fresh_hook_venv.python, PROBE, {"gons_uts": target.ref("uts")})
    assert result.returncode == EXIT_STATUS and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith("pyns_boot: cannot load the C helper _pyns_boot: ") and str(helper) in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    idle_is_silent(fresh_hook_venv)


def test_helper_is_loaded_from_beside_the_line_not_by_search(
    fresh_hook_venv: Venv, holder: Callable[..., Holder], tmp_path: Path
) -> None:
    """A _pyns_boot earlier on sys.path (PYTHONPATH) is not what the line loads: it takes the file beside it."""
    site = fresh_hook_venv.site_packages
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "_pyns_boot.abi3.so").write_bytes(b"not an ELF object\n")  # would fail the start if loaded
    target = holder(["uts"])
    code = "import sys; print(sys.modules['_pyns_boot'].__file__)"
    env = {"gons_uts": target.ref("uts"), "PYTHONPATH": str(earlier)}
    result = run_python(fresh_hook_venv.python, code, env)
    assert result.returncode == 0 and result.stderr == "", result
    assert result.stdout == f"{site / '_pyns_boot.abi3.so'}\n", result


# ---------------------------------------------------------------- the .pth pre-filter

PTH_NAMES = re.compile(rb"isdisjoint\(b'([a-z_ ]+)'\.split\(\)\)")


@pytest.mark.unit
def test_the_copies_without_the_c_helper_are_the_c_table() -> None:
    """The one check of the table's copies that must work without the C helper: the .pth line's literal
    names and the hook's NAMESPACE_VARIABLES/TRIGGER_VARIABLES (and the doctor's TYPES made from them)."""
    import _pyns_boot

    from pyns_boot import _after_joins, _doctor, hook

    (names,) = PTH_NAMES.findall((REPO / "pyns_boot.pth").read_bytes())
    assert tuple(n.decode() for n in names.split()) == hook.TRIGGER_VARIABLES
    assert hook.NAMESPACE_VARIABLES == _pyns_boot.VARIABLES == tuple(kind.variable for kind in _pyns_boot.kinds())
    assert hook.TRIGGER_VARIABLES == _pyns_boot.TRIGGER_VARIABLES
    assert _pyns_boot.TRIGGER_VARIABLES == (*_pyns_boot.VARIABLES, _pyns_boot.ORDER_VARIABLE, "gons_netns")
    # the variables of the steps after the joins: C reads them, pyns_boot._after_joins takes the steps
    assert hook.AFTER_JOINS_VARIABLES == _pyns_boot.AFTER_JOINS_VARIABLES == _after_joins.VARIABLES
    assert _doctor.TYPES == _pyns_boot.TYPES == tuple(kind.name for kind in _pyns_boot.kinds())


C_IMPORT = re.compile(r'PyImport_ImportModule\(\s*("[^"]*"|\w+)\s*\)')
C_MACRO = re.compile(r'#define (ENTRY_MODULE|ENTRY_NAME|FAST_MODULE|CLI_MODULE|MAIN_NAME) "([^"]+)"')


@pytest.mark.unit
def test_the_one_python_name_c_calls_exists_with_its_signature() -> None:
    """C calls Python through one named entry (_pyns_boot.PYTHON_ENTRY): it exists and takes (report, steps).
    Read from the C sources: every other module C imports is the standard library's, so no rename of the
    package can make C fall silently to its last resort.  The command's script has two more (_run_command.c:
    the command lines its C does not run, as pyns_boot.__main__.command() runs them), called with no arguments."""
    import importlib
    import inspect

    import _pyns_boot

    module_name, name = _pyns_boot.PYTHON_ENTRY
    entry = getattr(importlib.import_module(module_name), name)
    assert list(inspect.signature(entry).parameters) == ["report", "steps"]
    sources = {path.name: path.read_text() for path in (REPO / "pyns_boot").glob("*.c")}
    macros = {m: v for text in sources.values() for m, v in C_MACRO.findall(text)}
    assert (macros["ENTRY_MODULE"], macros["ENTRY_NAME"]) == (module_name, name)
    imported = {arg.strip('"') for text in sources.values() for arg in C_IMPORT.findall(text)}
    assert imported == {"os", "posix", "_thread", "ENTRY_MODULE"}, imported
    assert "rest[] = {FAST_MODULE, CLI_MODULE}" in sources["_run_command.c"]
    for module in (macros["FAST_MODULE"], macros["CLI_MODULE"]):  # called with no arguments
        parameters = inspect.signature(getattr(importlib.import_module(module), macros["MAIN_NAME"])).parameters
        assert all(p.default is not p.empty for p in parameters.values()), (module, parameters)
    main_source = (REPO / "pyns_boot" / "__main__.py").read_text()
    assert "_run_fast.main()" in main_source and "cli.main()" in main_source  # the same steps
    assert not [f for f, text in sources.items() if '"pyns_boot.' in text and f not in ("_startup.c", "_run_command.c")]


@pytest.mark.parametrize("name", [f"gons_{t}" for t in TYPES] + ["gons_order", "gons_netns"])
def test_each_variable_alone_passes_the_pre_filter(hook_venv: Venv, name: str) -> None:
    """With a 60,000-variable environment, each of the ten names alone reaches the hook (bad value: exit 125)."""
    env = {f"V{i:05d}": "1" for i in range(60000)}
    env[name] = "bogus" if name == "gons_order" else "/nonexistent"
    result = run_python(hook_venv.python, "print('user code ran')", env)
    assert result.returncode == EXIT_STATUS and result.stdout == "", result.stderr
    assert name in result.stderr and "Traceback" not in result.stderr


def test_names_that_only_contain_gons_stay_idle(hook_venv: Venv) -> None:
    env = {"xgons_net": "/nonexistent", "gons_netx": "/nonexistent", "GONS_NET": "/nonexistent"}
    code = "import sys; print(sorted(m for m in sys.modules if 'pyns' in m))"
    result = run_python(hook_venv.python, code, env)
    assert result.returncode == 0 and result.stdout == "[]\n" and result.stderr == "", result
