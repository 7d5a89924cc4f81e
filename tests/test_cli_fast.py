"""pyns-boot run's fast path: the common command lines without argparse, to the same result.

`pyns-boot run` runs the program in its own process, so what the command
imports is start-up time of every program it runs.  The common command lines
(-t PID with type options or --all, --netns NAME; -c CODE, -- script.py,
-- -m MODULE) load the C helper, which runs -c CODE itself (run_command()),
and for a script or module one module of the package, pyns_boot._run_fast;
pyns_boot.cli, argparse and the rest are left for every other command line.  The fast path must read the command
line exactly as the parser does, leave every other one to the parser, and
start the program exactly as the parser's path does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from cliutil import pyns_boot
from nsutil import Holder, Venv, clean_env, make_venv, run_python

from pyns_boot import _run_fast, _run_program
from pyns_boot._run_fast import fast_run_args as _fast_run_args
from pyns_boot._run_fast import split_run_argv
from pyns_boot.cli import build_parser

FAST = [
    ["-t", "42", "--all"],
    ["--target", "42", "-a"],
    ["-t", "42", "--net", "--uts", "-i"],
    ["-t", "42", "-n", "-u", "--mnt", "--mount", "-p", "-C", "-T", "-U", "--ipc", "--time", "--user", "--cgroup"],
    ["--container", "web"],
    ["--container", "web", "--engine", "podman", "--net"],
    ["--container", "web", "--engine", "lxc"],
    ["--no-check", "-t", "7", "--net"],
    ["-t", "42", "--all", "--no-check", "--uts"],
    ["--netns", "blue"],
    ["--netns", "blue", "--no-check"],
    ["-t", "42", "-m", "-n", "--all"],
    ["-a", "-t", "1", "--engine", "docker", "--container", "x"],
    ["-t", "4\u0662", "--net"],  # a digit that int() reads, as argparse's type=int does
    [],
]
SLOW = [
    ["-t", "42", "--net", "/run/netns/blue"],  # a PATH
    ["--net=/run/netns/blue"],
    ["--target=42", "--all"],
    ["-t42", "--all"],
    ["-nu", "-t", "42"],  # combined short options
    ["--tar", "42", "--all"],  # an abbreviation
    ["--order", "!mnt,net", "-t", "1", "--net"],
    ["-h"],
    ["--help"],
    ["-t", "-5", "--net"],
    ["-t", "x", "--net"],
    ["--engine", "rkt", "--container", "web"],  # not an engine
    ["--container", "web", "-v"],
    ["--container", "web", "--containerd-namespace", "k8s.io"],
    ["--container", "--net"],
    ["script.py"],
    ["--bogus"],
    ["-t"],  # no value
    ["--netns"],
    ["--netns", "-n"],  # an option where the value goes
    ["-t", "42", "--order", "net"],
    ["-t", "42", "-w", "--net"],
    ["-t", "42", "--net", "-v"],
    ["-t", "+42", "--net"],
    ["-an", "-t", "1"],
]


@pytest.mark.unit
@pytest.mark.parametrize("argv", FAST, ids=" ".join)
def test_fast_path_reads_what_the_parser_reads(argv: list[str]) -> None:
    fast = _fast_run_args(argv)
    assert fast is not None
    assert vars(fast) == vars(build_parser().parse_args(["run", *argv]))


@pytest.mark.unit
@pytest.mark.parametrize("argv", SLOW, ids=" ".join)
def test_other_command_lines_go_to_the_parser(argv: list[str]) -> None:
    assert _fast_run_args(argv) is None


@pytest.mark.unit
def test_program_split_first() -> None:
    options, program = split_run_argv(["-t", "1", "--net", "-c", "pass", "--all"])
    assert (options, program) == (["-t", "1", "--net"], ["-c", "pass", "--all"])
    assert _fast_run_args(options) is not None


def first_interpreter_imports(venv: Venv, *args: str, cwd: str = "/") -> set[str]:
    """What venv/bin/pyns-boot ARGS imports, the program's own imports included (it runs in the same
    process): the installed script, as a user starts it (python -X importtime SCRIPT ARGS)."""
    result = subprocess.run(
        [venv.python, "-X", "importtime", str(venv.path / "bin" / "pyns-boot"), *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}


PROGRAMS = {
    "code": ["-c", "pass"],
    "script": ["--", "tool.py", "x"],
    "module": ["--", "-m", "tool", "x"],
}


@pytest.mark.parametrize("form", sorted(PROGRAMS))
@pytest.mark.parametrize("options", [["--all"], ["-n", "-u"]], ids=" ".join)
def test_common_run_loads_one_module_of_the_package(
    hook_venv: Venv, holder: Callable[..., Holder], tmp_path: Path, form: str, options: list[str]
) -> None:
    h = holder(("net", "uts"))
    (tmp_path / "tool.py").write_text("pass\n")
    os.chmod(tmp_path, 0o755)
    imported = first_interpreter_imports(
        hook_venv, "run", "-t", str(h.pid), *options, *PROGRAMS[form], cwd=str(tmp_path)
    )
    # the C helper loads from its file, as pyns_boot.pth loads it (the script; _run_fast.helper): -X importtime,
    # which reports the import system's searches, does not list it.  -c CODE runs from the helper's
    # run_command() alone; a script or module through pyns_boot._run_fast.
    ours = {m for m in imported if "pyns_boot" in m}
    assert ours == (set() if form == "code" else {"pyns_boot", "pyns_boot._run_fast"})
    avoided = imported & {"argparse", "re", "json", "shlex", "textwrap", "subprocess", "shutil", "sysconfig"}
    assert not avoided, avoided


def test_netns_run_imports_no_argparse(hook_venv: Venv) -> None:
    # --netns NAME takes the fast path too (the hook's own Python steps for gons_netns aside).
    netns = f"pyns-runfast-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        imported = first_interpreter_imports(hook_venv, "run", "--netns", netns, "-c", "pass")
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)
    assert not {m for m in imported if "pyns_boot" in m}  # -c CODE: the C helper's run_command() alone
    assert not imported & {"argparse", "re"}


def test_run_through_argparse_imports_no_doctor(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    # A PATH and --order take the parser's path: run still needs nothing of the doctor (pyns_boot._sitedirs).
    h = holder(("net", "uts"))
    imported = first_interpreter_imports(hook_venv, "run", "--net", h.ref("net"), "--order", "net", "--", "-c", "pass")
    assert {"argparse", "pyns_boot._cli_namespaces", "pyns_boot.cli", "pyns_boot._sitedirs"} <= imported
    assert not imported & {"pyns_boot._doctor", "pyns_boot._startup_order", "subprocess"}, imported


def test_usage_error_in_the_fast_path_is_the_parsers(hook_venv: Venv) -> None:
    # -t without type options: the fast path reads it, the spec refuses it, exit 2 with the usage message.
    result = subprocess.run(
        [str(hook_venv.path / "bin" / "pyns-boot"), "run", "-t", "1", "-c", "pass"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("pyns-boot run: error: -t 1 names a process, but no namespace")


# ---- the same program started by the fast path and by the parser's path ----

SEES = """import json, os, socket, sys
main = sys.modules["__main__"]
print("SEES " + json.dumps({
    "argv": sys.argv, "orig_argv": getattr(sys, "orig_argv", None), "path0": sys.path[0], "flags": list(sys.flags),
    "file": main.__dict__.get("__file__"), "main": sorted(vars(main)), "loader": type(main.__loader__).__name__,
    "name": __name__, "hostname": socket.gethostname(), "net": os.readlink("/proc/self/ns/net"),
    "steering": sorted(k for k in os.environ if k.startswith("gons_") or k == "PYNS_BOOT_WD"),
    "excepthook": sys.excepthook is sys.__excepthook__, "cli": "pyns_boot.cli" in sys.modules,
}))
"""


def sees(venv: Venv, cwd: Path, *args: str) -> dict[str, Any]:
    result = pyns_boot(venv, "run", *args, cwd=str(cwd))
    assert result.returncode == 7, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("SEES "))
    seen: dict[str, Any] = json.loads(line[5:])
    return seen


@pytest.mark.parametrize("form", ["code", "script", "module"])
def test_fast_path_starts_the_program_as_the_parsers_path(
    hook_venv: Venv, holder: Callable[..., Holder], tmp_path: Path, form: str
) -> None:
    h = holder(("net", "uts"), setup="hostname pyns-fast")
    (tmp_path / "sees.py").write_text(SEES + "sys.exit(7)\n")
    os.chmod(tmp_path, 0o755)
    program = {
        "code": ["-c", SEES + "sys.exit(7)", "a"],
        "script": ["--", "sees.py", "a"],
        "module": ["--", "-m", "sees", "a"],
    }[form]
    fast = sees(hook_venv, tmp_path, "-t", str(h.pid), "-n", "-u", *program)
    # the same namespaces by PATH: the parser's path (pyns_boot.cli), which starts the program the same way
    slow = sees(hook_venv, tmp_path, "--net", h.ref("net"), "--uts", h.ref("uts"), *program)
    assert (fast.pop("cli"), slow.pop("cli")) == (False, True)
    assert fast == slow
    assert (fast["hostname"], fast["net"]) == ("pyns-fast", h.link("net"))
    assert fast["steering"] == [] and not fast["excepthook"]  # the wrapper of docs/cli.md, both ways


# ---- -c CODE from the C helper (run_command): ends as python -c ends ----


@pytest.mark.parametrize(
    "code",
    [
        "x = (",
        "raise SystemExit('bye')",
        "import sys; sys.exit(3)",
        "import sys; sys.excepthook = lambda *a: print('own hook', file=sys.stderr); raise KeyError(1)",
        "import atexit, sys; atexit.register(lambda: print(sys.excepthook is sys.__excepthook__))",
    ],
    ids=["syntax-error", "exit-message", "exit-status", "own-excepthook", "hook-restored"],
)
def test_dash_c_ends_as_python_c_ends(hook_venv: Venv, holder: Callable[..., Holder], code: str) -> None:
    # status, stdout and stderr byte for byte: no frame of the command in a traceback, a SyntaxError shown as
    # python -c shows it, sys.excepthook back to the default once the program returned
    h = holder(("uts",))
    ours = pyns_boot(hook_venv, "run", "-t", str(h.pid), "--uts", "-c", code)
    theirs = run_python(hook_venv.python, code)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


@pytest.mark.parametrize(
    "options, in_c",
    [
        (["-t", "{pid}", "-n", "-u", "-c", "{code}"], True),
        (["--target", "{pid}", "--uts", "--", "-c", "{code}"], True),
        (["-t", "{pid}", "-a", "-c{code}"], True),
        (["--no-check", "-t", "{pid}", "--uts", "-c", "{code}"], False),
        (["--uts", "{uts}", "-c", "{code}"], False),
    ],
    ids=["short", "long", "all-glued", "no-check", "path"],
)
def test_which_command_lines_run_from_c(
    hook_venv: Venv, holder: Callable[..., Holder], options: list[str], in_c: bool
) -> None:
    # run_command() takes -t PID with type options or --all (or --netns NAME) and -c CODE, and nothing else;
    # whichever way, the program runs joined
    h = holder(("net", "uts"), setup="hostname pyns-which")
    code = "import socket, sys; print(socket.gethostname(), [m for m in sys.modules if m.startswith('pyns_boot')])"
    argv = [o.format(pid=h.pid, code=code, uts=h.ref("uts")) for o in options]
    result = pyns_boot(hook_venv, "run", *argv)
    assert result.returncode == 0, result.stderr
    hostname, modules = result.stdout.split(" ", 1)
    assert hostname == "pyns-which"
    assert (modules.strip() == "[]") is in_c, modules


INDENTED = "\n    import sys\n\n  \n    if sys:\n    \tprint('indented', sys.argv[1:])\n  "


@pytest.mark.parametrize("route", [[], ["--no-check"]], ids=["c", "python"])
def test_indented_code_as_python_c_takes_it(hook_venv: Venv, holder: Callable[..., Holder], route: list[str]) -> None:
    # 3.14+ python -c dedents CODE (3.8-3.13: IndentationError, the same both ways); so does run, from C
    # (run_command) and from pyns_boot._run_fast.run_prepared (--no-check goes there through pyns_boot.cli)
    h = holder(("uts",))
    ours = pyns_boot(hook_venv, "run", *route, "-t", str(h.pid), "--uts", "-c", INDENTED, "a")
    theirs = run_python(hook_venv.python, INDENTED, args=["a"])
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


@pytest.mark.unit
@pytest.mark.parametrize(
    "code, dedented",
    [
        ("  a\n    b\n  c", "a\n  b\nc"),
        ("\ta\n\t\tb\n", "a\n\tb\n"),
        ("    a\n  \n    b", "a\n\nb"),  # a line of blanks only becomes empty
        ("  x = 1  \n\n", "x = 1  \n\n"),
        ("  a\n\tb", "  a\n\tb"),  # no common margin: as given
        ("a\n  \nb", "a\n  \nb"),  # as given, its blank line too (textwrap.dedent would empty it)
        ("   \n  ", "   \n  "),  # blanks only: as given (textwrap.dedent: "\n")
        ("", ""),
    ],
)
def test_dedent_code_as_cpython_from_314(code: str, dedented: str) -> None:
    # CPython's _PyUnicode_Dedent (Objects/unicodeobject.c), which 3.14+ applies to python -c's CODE
    import _pyns_boot

    assert _pyns_boot.dedent_code(code) == (dedented if sys.version_info >= (3, 14) else code)


def test_dash_c_traceback_starts_at_the_program(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    # the frames python -c shows, no more (3.13+ python -c also shows their source lines: docs/cli.md)
    h = holder(("uts",))
    code = "def f():\n    raise ValueError('from the program')\nf()"
    ours = pyns_boot(hook_venv, "run", "-t", str(h.pid), "--uts", "-c", code)
    theirs = run_python(hook_venv.python, code)
    assert ours.returncode == theirs.returncode == 1
    frames = [line for line in theirs.stderr.splitlines() if not line.startswith("    ")]
    assert ours.stderr.splitlines() == frames
    assert frames[1:3] == ['  File "<string>", line 3, in <module>', '  File "<string>", line 2, in f']


def test_dash_c_with_an_argument_that_is_not_utf8(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    # run_command() reads the command line as os.fsencode() gives it: an argument that is not UTF-8 reaches the
    # program as python passes it
    h = holder(("uts",), setup="hostname pyns-notutf8")
    code = "import socket, sys; print(ascii(sys.argv), socket.gethostname(), 'pyns_boot._run_fast' in sys.modules)"
    result = pyns_boot(hook_venv, "run", "-t", str(h.pid), "--uts", "-c", code, "caf\udce9")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "['-c', 'caf\\udce9'] pyns-notutf8 False\n"


@pytest.mark.parametrize("installed_here_too", [False, True], ids=["elsewhere-only", "another-version-here"])
def test_command_of_another_installation(
    workdir: Path, wheel: Path, holder: Callable[..., Holder], tmp_path: Path, installed_here_too: bool
) -> None:
    # pip install --target (as a user site or dist-packages), its script run by a venv's python: the script takes
    # the helper under sys.prefix only when it is that installation's own script, so the command and its helper
    # are the package's on sys.path (pyns_boot.__main__.command), whatever the venv holds
    venv = make_venv(tmp_path / "venv")
    if installed_here_too:
        venv.pip("install", "--no-deps", "--no-index", str(wheel))
    target = tmp_path / "target"
    venv.pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel))
    h = holder(("uts",), setup="hostname pyns-elsewhere")
    code = "import socket, sys, _pyns_boot as h; print(socket.gethostname(), h.__file__, 'pyns_boot' in sys.modules)"
    result = subprocess.run(
        [venv.python, str(target / "bin" / "pyns-boot"), "run", "-t", str(h.pid), "--uts", "-c", code],
        env=clean_env(PYTHONPATH=str(target)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"pyns-elsewhere {target / '_pyns_boot.abi3.so'} True\n"


# ---- the program's command line: the fast path's forms are the full parser's ----


@pytest.mark.unit
@pytest.mark.parametrize(
    "program",
    [
        ["-c", "pass", "a"],
        ["-cpass"],
        ["-m", "http.server", "8000"],
        ["-mjson.tool"],
        ["app.py", "-v"],
        ["dir/app.py"],
        ["-c", "-m"],
        ["-m", "-c"],
    ],
)
def test_program_forms_read_alike(program: list[str]) -> None:
    fast = _run_fast.parse(program)
    assert fast is not None
    full = _run_program.parse(program)
    assert vars(fast) == vars(full)
    assert vars(_run_program.parse(["python", *program])) == vars(fast)


@pytest.mark.unit
@pytest.mark.parametrize(
    "program", [["python", "app.py"], [sys.executable, "-c", "1"], ["-X", "dev", "app.py"], ["-"], ["-c"], ["-m"]]
)
def test_other_programs_go_to_the_parser(program: list[str]) -> None:
    assert _run_fast.parse(program) is None
