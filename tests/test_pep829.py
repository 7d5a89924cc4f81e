"""PEP 829: pyns_boot.start, the entry point that replaces the .pth import line.

No Python 3.15 can be installed here, so a real child interpreter does what
PEP 829's site.py does: start with -S (no .pth import line runs, as from
3.18 on, or as on 3.15-3.17 where a matching .start file suppresses it),
put site-packages on sys.path, read every *.start file there, resolve each
entry with pkgutil.resolve_name() in its pkg.mod:callable form and call it
with no arguments.  On 3.8-3.14 the file must cost nothing: nobody reads it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from typing import Callable

import nsutil
import pytest
from nsutil import PROBE, Holder, Venv, clean_env, fresh_cwd, parse_probe, run_python

ENTRY_FORM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")  # pkg.mod:callable, callable required

# What PEP 829's site.py does with .start files (after extending sys.path).
RUN_START_FILES = r"""
import os, pkgutil, sys
site_dir = sys.argv[1]
if site_dir not in sys.path:
    sys.path.append(site_dir)
for name in sorted(os.listdir(site_dir)):
    if not name.endswith(".start") or name.startswith("."):
        continue
    with open(os.path.join(site_dir, name), encoding="utf-8-sig") as start_file:
        for line in start_file:
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            if sys.version_info >= (3, 15):
                function = pkgutil.resolve_name(entry, strict=True)
            else:
                assert ":" in entry, entry  # what strict=True enforces
                function = pkgutil.resolve_name(entry)
            function()
"""

# The import line of pyns_boot.pth, executed as site.py (3.8-3.17) does.
RUN_PTH_IMPORT_LINES = r"""
with open(os.path.join(site_dir, "pyns_boot.pth"), encoding="utf-8-sig") as pth_file:
    for line in pth_file:
        if line.startswith(("import ", "import\t")):
            exec(line)
"""

SET_SECOND = 'os.environ["gons_uts"] = sys.argv[2]\n'


def needs_resolve_name() -> None:
    out = subprocess.run(
        [nsutil.test_python(), "-c", "import pkgutil; print(hasattr(pkgutil, 'resolve_name'))"],
        check=True,
        capture_output=True,
        text=True,
    )
    if out.stdout.strip() != "True":
        pytest.skip("pkgutil.resolve_name, which PEP 829 uses, appeared in Python 3.9")


def start_entries(venv: Venv) -> list[str]:
    text = (venv.site_packages / "pyns_boot.start").read_text(encoding="utf-8-sig")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_start_file_names_the_once_per_process_hook(hook_venv: Venv) -> None:
    entries = start_entries(hook_venv)
    assert entries == ["pyns_boot.hook:run"]
    assert all(ENTRY_FORM.match(e) for e in entries)


def test_start_entry_joins_when_pth_import_lines_are_ignored(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    needs_resolve_name()
    target = holder(["uts"])
    site = str(hook_venv.site_packages)
    result = run_python(
        hook_venv.python, RUN_START_FILES + PROBE, {"gons_uts": target.ref("uts")}, args=[site], python_args=["-S"]
    )
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert report["links"]["uts"] == target.link("uts")
    assert report["status"]["state"] == "succeeded"
    assert report["status"]["hook_ran"] is True
    assert report["env"] == {}


def test_start_entry_failure_applies_the_policy(hook_venv: Venv) -> None:
    needs_resolve_name()
    site = str(hook_venv.site_packages)
    result = run_python(
        hook_venv.python, RUN_START_FILES + PROBE, {"gons_uts": "/nonexistent"}, args=[site], python_args=["-S"]
    )
    assert result.returncode == 125
    assert "gons_uts" in result.stderr and "/nonexistent" in result.stderr


@pytest.mark.parametrize("first", ["pth", "start"])
def test_pth_and_start_together_act_once(hook_venv: Venv, holder: Callable[..., Holder], first: str) -> None:
    """Whichever of the two runs first acts; the other one is a no-op, even with new variables."""
    needs_resolve_name()
    one, two = holder(["uts"]), holder(["uts"])
    site = str(hook_venv.site_packages)
    if first == "pth":  # normal start: site.py runs the .pth line, then the .start entry is called
        code = "import os, sys\nsite_dir = sys.argv[1]\n" + SET_SECOND + RUN_START_FILES + PROBE
        python_args: list[str] = []
    else:  # -S: the .start entry, then the .pth import line
        code = RUN_START_FILES + SET_SECOND + RUN_PTH_IMPORT_LINES + PROBE
        python_args = ["-S"]
    result = run_python(
        hook_venv.python, code, {"gons_uts": one.ref("uts")}, args=[site, two.ref("uts")], python_args=python_args
    )
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert report["links"]["uts"] == one.link("uts")
    assert report["status"]["namespaces"]["uts"]["path"] == one.ref("uts")
    assert report["env"] == {"gons_uts": two.ref("uts")}  # set after the hook acted: left alone


def test_start_entry_without_variables_imports_only_the_hook(hook_venv: Venv) -> None:
    """From 3.15 every start calls the entry: with no gons_* it must stay this cheap."""
    needs_resolve_name()
    code = (
        "import sys\nbefore = set(sys.modules)\n"
        + RUN_START_FILES
        + "import pkgutil\nprint(sorted(m for m in set(sys.modules) - before if 'pyns' in m))\n"
    )
    result = run_python(hook_venv.python, code, args=[str(hook_venv.site_packages)], python_args=["-S"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['pyns_boot', 'pyns_boot.hook']"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("with_variables", [False, True])
def test_start_file_is_never_read_before_python_315(hook_venv: Venv, with_variables: bool) -> None:
    version = subprocess.run(
        [hook_venv.python, "-c", "import sys; print(sys.version_info >= (3, 15))"],
        check=True,
        capture_output=True,
        text=True,
    )
    if version.stdout.strip() == "True":
        pytest.skip("Python 3.15+ reads .start files by design")
    env = clean_env(**({"gons_uts": "/proc/self/ns/uts"} if with_variables else {}))
    result = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=%file", hook_venv.python, "-c", "pass"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=fresh_cwd(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    trace = result.stderr
    assert "pyns_boot.pth" in trace  # the trace does see site.py's reads
    assert "pyns_boot.start" not in trace


def test_start_entry_point_resolves_to_the_hook_in_this_process() -> None:
    """The test process has the wheel installed: the entry names hook.run itself."""
    if sys.version_info < (3, 9):
        pytest.skip("pkgutil.resolve_name, which PEP 829 uses, appeared in Python 3.9")
    import pkgutil

    from pyns_boot import hook

    assert pkgutil.resolve_name("pyns_boot.hook:run") is hook.run
