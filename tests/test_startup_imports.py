"""The start-up modules stay cheap to import: the one list of them, checked.

Every Python process of an environment with pyns_boot installed runs the .pth line, and any of them
may take one of the hook's paths; a fork server and its workers start a fresh interpreter; status()
is the first thing a program asks.  The modules loaded there must not pull in the standard library's
heavy modules: each costs a measurable part of a start (benchmarks/README.md), more than the hook.

This file is the rule's one home: a module the hook starts to import goes into STARTUP_MODULES, and
the modules' docstrings point here.  Each module is imported alone in a fresh interpreter without
site.py (-I -S, the package's directory put on sys.path by hand), so that nothing imported before it
can hide what it pulls in.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import pyns_boot

# Module -> what loads it at start-up.  The hook's paths and the fork server's start come first
# (pyproject.toml: ruff's UP031/UP037 are off for these files); then the modules of a first use.
STARTUP_MODULES = {
    "_pyns_boot": "the .pth line: the C helper, which acts alone on the common path",
    "pyns_boot": "the package, the parent of every module below (its public names load lazily)",
    "pyns_boot.hook": "the .pth line when the C helper cannot act alone (gons_mnt, a helper that does not load)",
    "pyns_boot._after_joins": "the hook, when gons_netns, PYNS_BOOT_WD, PYNS_BOOT_SETUID or PYNS_BOOT_SETGID is set",
    "pyns_boot._keep_imports": "the hook, after a gons_mnt join that keeps importing from the original root",
    "pyns_boot._elfdeps": "pyns_boot._keep_imports, before an extension module loads from the original root",
    "pyns_boot._hints": "the hook, on a failed join",
    "pyns_boot._sitedirs": "the hook, when other threads refuse a join",
    "pyns_boot._policy": "the hook and the C helper: the failure policy and its one writer",
    "pyns_boot._hook_record": "the hook: the one record of what it did, read by status()",
    "pyns_boot._worker_server": "the start of a fork server and of each worker (python -I -S)",
    "pyns_boot._worker_protocol": "the fork server and the program: the wire format, both sides",
    "pyns_boot._status": "pyns_boot.status() and check(), a program's first question",
    "pyns_boot._errors": "the exceptions: status() when it raises, call_in, the command line",
    "pyns_boot._call_in": "the first call_in",
    "pyns_boot._worker_client": "the first call_in: the parent's side of the fork server",
    "pyns_boot._namespaces": "Namespaces, used by call_in and by pyns-boot run",
    "pyns_boot._run_fast": "the pyns-boot command's entry and run's common path, the program's start-up time",
    "pyns_boot._run_program": "pyns-boot run: the program's rarer forms (a console script, a directory, a zip file)",
    "pyns_boot.cli": "pyns-boot run past its fast path: its imports are start-up time of the program it runs",
    "pyns_boot._cli_namespaces": "pyns-boot run's options (test_cli_fast checks the whole path up to the program)",
}

# What none of them may import.  re, enum, functools, collections and typing are each a large part
# of an interpreter's start; the others pull those in.  struct, pickle and the like may be extension
# modules, which after a gons_mnt switch would load from the target's filesystem.
HEAVY_MODULES = frozenset(
    {
        "argparse",
        "ast",
        "collections",
        "concurrent.futures",
        "dataclasses",
        "enum",
        "functools",
        "importlib.metadata",
        "importlib.util",
        "inspect",
        "json",
        "logging",
        "pathlib",
        "pickle",
        "_pickle",
        "pkgutil",
        "re",
        "selectors",
        "shlex",
        "shutil",
        "signal",
        "socket",
        "struct",
        "subprocess",
        "tempfile",
        "textwrap",
        "threading",
        "tokenize",
        "typing",
    }
)

# These also quote their annotations instead of importing __future__: _keep_imports and _elfdeps load
# after the mnt switch, before imports are redirected; for the others it is a quarter of their cost.
NO_FUTURE = frozenset(
    {"pyns_boot", "pyns_boot.hook", "pyns_boot._keep_imports", "pyns_boot._elfdeps", "pyns_boot._status"}
)

CODE = """
import sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
__import__(sys.argv[2])
print(" ".join(sorted(set(sys.modules) - before)))
"""


def imported_by(module: str) -> set[str]:
    """The modules that importing `module` alone loads, in a fresh interpreter without site.py."""
    assert pyns_boot.__file__ is not None
    site = os.path.dirname(os.path.dirname(os.path.abspath(pyns_boot.__file__)))
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CODE, site, module], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.mark.unit
def test_a_bare_interpreter_has_none_of_the_heavy_modules() -> None:
    """Else the check below could not see them: they would be loaded before the module under test."""
    code = "import sys; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not HEAVY_MODULES & set(result.stdout.split())


@pytest.mark.unit
@pytest.mark.parametrize("module", sorted(STARTUP_MODULES))
def test_startup_module_imports_no_heavy_module(module: str) -> None:
    loaded = imported_by(module)
    assert module in loaded
    assert not loaded & HEAVY_MODULES, f"{module} ({STARTUP_MODULES[module]}) imports {loaded & HEAVY_MODULES}"
    if module in NO_FUTURE:
        assert "__future__" not in loaded, module


@pytest.mark.unit
def test_the_heavy_modules_are_real() -> None:
    """A misspelt name would make the check pass whatever the modules import."""
    code = "import sys\nfor name in sys.argv[1:]: __import__(name)\nprint('ok')"
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, *sorted(HEAVY_MODULES)], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
