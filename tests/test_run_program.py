"""pyns-boot run runs a real program from this side in one interpreter (issue 21, parts 1 and 2).

The target is a holder whose mount namespace hides the interpreter, the venv
and the scripts (tests/test_foreign_mnt.py's fixtures), so a program that
runs at all was read on this side.  The container cases run the same against
a real podman container of the lab image (own pid, mnt, net, uts, ipc).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cliutil import pyns_boot
from containers import LabContainer
from nsutil import CHILD_TIMEOUT, EXIT_STATUS, Holder, Venv, as_user, clean_env, fresh_cwd, run_python
from test_foreign_mnt import base_prefix, mnt_venv, target  # noqa: F401  (fixtures)

APP = """\
import json, os, sys
import helper_module
main = sys.modules["__main__"]
print("APP " + json.dumps({
    "argv": sys.argv, "file": __file__, "path0": sys.path[0], "greeting": helper_module.GREETING,
    "helper": helper_module.__file__, "target_file": os.path.exists(os.environ["TARGET_FILE"]),
    "main_is_module": main.__dict__ is globals(), "spec": repr(main.__spec__), "package": main.__package__,
    "loader": type(main.__loader__).__name__, "name": __name__,
}))
"""
ERROR_PROGRAM = """\
import helper_module


def fails():
    raise ValueError("boom from the program")


fails()
"""
TOOL_MODULE = """\
import json, os, sys


def main():
    print("TOOL " + json.dumps({"argv": sys.argv, "target_file": os.path.exists(os.environ["TARGET_FILE"])}))
    return 3
"""
PARITY = (
    "import json, sys; print('PARITY ' + json.dumps({'flags': list(sys.flags), 'orig_argv': "
    "getattr(sys, 'orig_argv', None), 'argv': sys.argv, 'path0': sys.path[0], 'main': sorted(vars(sys.modules["
    "'__main__']))}))"
)


def line_of(stdout: str, marker: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith(marker + " "):
            value: dict[str, Any] = json.loads(line[len(marker) + 1 :])
            return value
    raise AssertionError(f"no {marker} line in {stdout!r}")


@pytest.fixture(scope="module")
def scripts(workdir: Path, mnt_venv: Venv) -> Iterator[Path]:  # noqa: F811
    """A script directory below the work directory (hidden in the target): app.py beside its module."""
    directory = workdir / "run-program-scripts"
    directory.mkdir(exist_ok=True)
    (directory / "helper_module.py").write_text("GREETING = 'hello from beside the script'\n")
    (directory / "app.py").write_text(APP)
    (directory / "fails.py").write_text(ERROR_PROGRAM)
    (directory / "not_a_package").mkdir(exist_ok=True)
    (directory / "ls-copy").write_bytes(Path("/bin/ls").read_bytes())
    (directory / "shell.sh").write_text("#!/bin/sh\necho hi\n")
    with zipfile.ZipFile(directory / "app.pyz", "w") as archive:
        archive.writestr("__main__.py", "import sys\nprint('ZIPAPP', sys.argv[1:])\n")
    yield directory


@pytest.fixture(scope="module")
def tool_venv(mnt_venv: Venv, workdir: Path) -> Venv:  # noqa: F811
    """mnt_venv with a console script pyns-tinytool, installed by pip from a wheel with an entry point."""
    wheel = workdir / "pyns_tinytool-1.0-py3-none-any.whl"
    dist = "pyns_tinytool-1.0.dist-info"
    files = {
        "pyns_tinytool.py": TOOL_MODULE,
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: pyns-tinytool\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[console_scripts]\npyns-tinytool = pyns_tinytool:main\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(f"{dist}/RECORD", "".join(f"{name},,\n" for name in [*files, f"{dist}/RECORD"]))
    mnt_venv.pip("install", "--no-deps", "--no-index", str(wheel))
    assert (mnt_venv.path / "bin" / "pyns-tinytool").exists()
    return mnt_venv


def run(
    venv: Venv, *args: str, cwd: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return pyns_boot(venv, "run", *args, cwd=cwd, env={"TARGET_FILE": "", **(env or {})})


def target_env(workdir: Path) -> dict[str, str]:
    return {"TARGET_FILE": str(workdir / "target" / "file")}


# ---------------------------------------------------------------- the program comes from this side


@pytest.mark.parametrize("given", ["relative", "absolute"])
def test_script_runs_in_a_mount_namespace_without_it(
    target: Holder,  # noqa: F811
    mnt_venv: Venv,  # noqa: F811
    scripts: Path,
    workdir: Path,
    given: str,
) -> None:
    script = "app.py" if given == "relative" else str(scripts / "app.py")
    result = run(
        mnt_venv, "--mnt", target.ref("mnt"), "--", script, "an arg", cwd=str(scripts), env=target_env(workdir)
    )
    assert result.returncode == 0, result.stderr
    out = line_of(result.stdout, "APP")
    assert out["argv"] == [script, "an arg"]  # as given
    # __file__ as python sets it: as given on 3.8, absolute from 3.9 on (the path on this side)
    assert out["file"] == (script if sys.version_info < (3, 9) and given == "relative" else str(scripts / "app.py"))
    assert out["target_file"]  # the program sees the target's files
    assert out["greeting"] == "hello from beside the script"
    # sys.path[0]: the script's directory on this side, reached as the installation is
    assert out["path0"].startswith("/proc/self/fd/") and out["path0"].endswith(str(scripts))
    assert out["helper"].endswith(str(scripts / "helper_module.py"))
    assert (out["name"], out["spec"], out["package"], out["loader"]) == ("__main__", "None", None, "SourceFileLoader")
    assert out["main_is_module"]


def test_dash_m_finds_the_module_in_the_current_directory(
    target: Holder,  # noqa: F811
    mnt_venv: Venv,  # noqa: F811
    scripts: Path,
    workdir: Path,
) -> None:
    result = run(
        mnt_venv, "--mnt", target.ref("mnt"), "--", "-m", "app", "x", cwd=str(scripts), env=target_env(workdir)
    )
    assert result.returncode == 0, result.stderr
    out = line_of(result.stdout, "APP")
    assert out["argv"][1:] == ["x"] and out["argv"][0].endswith(str(scripts / "app.py"))
    assert out["target_file"] and out["greeting"] == "hello from beside the script"
    assert "ModuleSpec(name='app'" in out["spec"]


def test_console_script_of_the_environment_by_name(
    target: Holder,  # noqa: F811
    tool_venv: Venv,
    workdir: Path,
) -> None:
    result = run(tool_venv, "--mnt", target.ref("mnt"), "--", "pyns-tinytool", "a", env=target_env(workdir))
    assert result.returncode == 3, result.stderr  # the entry point's return value, as from the console script
    out = line_of(result.stdout, "TOOL")
    assert out == {"argv": [str(tool_venv.path / "bin" / "pyns-tinytool"), "a"], "target_file": True}


def test_zipapp_runs_from_this_side(target: Holder, mnt_venv: Venv, scripts: Path) -> None:  # noqa: F811
    result = run(mnt_venv, "--mnt", target.ref("mnt"), "--", str(scripts / "app.pyz"), "z")
    assert result.returncode == 0, result.stderr
    assert "ZIPAPP ['z']" in result.stdout


def test_script_that_is_only_in_the_target(target: Holder, mnt_venv: Venv, workdir: Path) -> None:  # noqa: F811
    only_there = workdir / "target" / "only_there.py"
    subprocess.run(
        ["nsenter", "-t", str(target.pid), "-m", "sh", "-c", f"echo 'print(\"FROM THE TARGET\")' > {only_there}"],
        check=True,
        timeout=CHILD_TIMEOUT,
    )
    assert not only_there.exists()
    result = run(mnt_venv, "--mnt", target.ref("mnt"), "--", str(only_there))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "FROM THE TARGET"


def test_python_before_the_program_is_understood(
    target: Holder,  # noqa: F811
    mnt_venv: Venv,  # noqa: F811
    scripts: Path,
    workdir: Path,
) -> None:
    for python in ("python", mnt_venv.python):
        result = run(
            mnt_venv, "--mnt", target.ref("mnt"), "--", python, "app.py", cwd=str(scripts), env=target_env(workdir)
        )
        assert result.returncode == 0, (python, result.stderr)
        assert line_of(result.stdout, "APP")["argv"] == ["app.py"]


def test_another_interpreter_before_the_program_gets_a_hint(mnt_venv: Venv, target: Holder) -> None:  # noqa: F811
    other = f"python3.{sys.version_info[1] + 1}"
    result = run(mnt_venv, "--mnt", target.ref("mnt"), "--", other, "app.py")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "give the program without it" in result.stderr, result.stderr
    assert other in result.stderr and mnt_venv.python in result.stderr


def test_hook_route_names_the_way_that_works(
    target: Holder,  # noqa: F811
    mnt_venv: Venv,  # noqa: F811
    scripts: Path,
) -> None:
    # gons_mnt=... python app.py: python opens app.py after site.py, in the target: one line, before it does.
    result = subprocess.run(
        [mnt_venv.python, "app.py"],
        env=clean_env(gons_mnt=target.ref("mnt"), TARGET_FILE=""),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd=str(scripts),
    )
    assert result.returncode == 2 and result.stdout == ""
    opened = "app.py" if sys.version_info < (3, 9) else scripts / "app.py"  # 3.9+: made absolute at its start
    assert result.stderr == (
        f'pyns_boot: python opens the script {opened} after joining gons_mnt "{target.ref("mnt")}", '
        f"where there is no such file; run it with: pyns-boot run --mnt {target.ref('mnt')} -- app.py (it reads "
        "the script on this side before the joins)\n"
    )


# ---------------------------------------------------------------- bad input


def test_script_neither_here_nor_in_the_target(mnt_venv: Venv, target: Holder) -> None:  # noqa: F811
    cwd = fresh_cwd()
    result = run(mnt_venv, "--mnt", target.ref("mnt"), "--", "nosuch.py", cwd=cwd)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"can't open file '{cwd}/nosuch.py'" in result.stderr
    assert "here, nor in the target's mount namespace" in result.stderr


def test_script_not_here_without_a_mnt_join(mnt_venv: Venv, holder: Callable[..., Holder]) -> None:  # noqa: F811
    h = holder(("uts",))
    result = run(mnt_venv, "-t", str(h.pid), "--uts", "--", "/nonexistent/tool.py")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "can't open file '/nonexistent/tool.py': No such file or directory (pyns-boot run" in result.stderr


@pytest.mark.parametrize(
    ("name", "status", "says"),
    [
        ("not_a_package", 1, "can't find '__main__' module in"),
        ("ls-copy", 2, "is not a Python program (an ELF executable)"),
        ("shell.sh", 2, "is not a Python program (a script for /bin/sh)"),
    ],
)
def test_path_that_is_not_a_program(
    mnt_venv: Venv,  # noqa: F811
    target: Holder,  # noqa: F811
    scripts: Path,
    name: str,
    status: int,
    says: str,
) -> None:
    result = run(mnt_venv, "--mnt", target.ref("mnt"), "--", str(scripts / name))
    assert result.returncode == status, result.stderr
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr


def test_unreadable_script(mnt_venv: Venv, workdir: Path) -> None:  # noqa: F811
    directory = workdir / "run-program-unreadable"
    directory.mkdir(exist_ok=True)
    os.chmod(directory, 0o755)
    secret = directory / "secret.py"
    secret.write_text("print('read')\n")
    os.chmod(secret, 0o600)  # root's: the user nobody cannot read it
    command = [str(mnt_venv.path / "bin" / "pyns-boot"), "run", "--net", "/proc/self/ns/net", "--", str(secret)]
    result = subprocess.run(
        [*as_user(), *command], env=clean_env(), capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd="/"
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"pyns-boot run: can't open file '{secret}': Permission")


# ---------------------------------------------------------------- as from a python start


def test_uncaught_exception_shows_the_program_only(
    mnt_venv: Venv,  # noqa: F811
    target: Holder,  # noqa: F811
    scripts: Path,
) -> None:
    result = run(mnt_venv, "--mnt", target.ref("mnt"), "--", str(scripts / "fails.py"))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1] == f'  File "{scripts / "fails.py"}", line 8, in <module>'
    assert "fails()" in lines[2]  # the source line, read through the kept root
    assert lines[-1] == "ValueError: boom from the program"
    assert "pyns_boot" not in result.stderr


def test_exit_status_and_signal_pass_through(mnt_venv: Venv, holder: Callable[..., Holder]) -> None:  # noqa: F811
    h = holder(("uts",))
    assert run(mnt_venv, "-t", str(h.pid), "--uts", "-c", "import sys; sys.exit(7)").returncode == 7
    interrupted = run(mnt_venv, "-t", str(h.pid), "--uts", "-c", "raise KeyboardInterrupt")
    assert interrupted.returncode == -signal.SIGINT  # as python: it dies of SIGINT
    assert interrupted.stderr.splitlines()[-1] == "KeyboardInterrupt"


def test_what_the_program_sees_is_a_python_start(mnt_venv: Venv, holder: Callable[..., Holder]) -> None:  # noqa: F811
    h = holder(("uts",))
    via_run = run(mnt_venv, "-t", str(h.pid), "--uts", "-c", PARITY, "arg")
    plain = run_python(mnt_venv.python, PARITY, args=["arg"])
    assert via_run.returncode == 0 and plain.returncode == 0, (via_run.stderr, plain.stderr)
    ours, theirs = line_of(via_run.stdout, "PARITY"), line_of(plain.stdout, "PARITY")
    assert ours["flags"] == theirs["flags"]
    assert ours["argv"] == theirs["argv"] == ["-c", "arg"]
    assert ours["path0"] == theirs["path0"] == ""
    assert ours["main"] == theirs["main"]
    if theirs["orig_argv"] is not None:
        assert ours["orig_argv"] == [mnt_venv.python, "-c", PARITY, "arg"] == theirs["orig_argv"]


def execs(argv: list[str], tmp_path: Path) -> list[str]:
    """The programs argv executed (strace -f), in order."""
    log = tmp_path / "execve.log"
    result = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", str(log), *argv],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )
    assert result.returncode == 0, result.stderr
    return [line.split('execve("', 1)[1].split('"', 1)[0] for line in log.read_text().splitlines() if "execve(" in line]


def test_one_interpreter(mnt_venv: Venv, holder: Callable[..., Holder], tmp_path: Path) -> None:  # noqa: F811
    h = holder(("net", "uts", "pid"))
    command = str(mnt_venv.path / "bin" / "pyns-boot")
    for options in (["-t", str(h.pid), "-n", "-u"], ["-t", str(h.pid), "--all"], ["--uts", h.ref("uts")]):
        assert execs([command, "run", *options, "-c", "pass"], tmp_path) == [command], options


def test_interpreter_options_start_a_fresh_interpreter(
    mnt_venv: Venv,  # noqa: F811
    holder: Callable[..., Holder],
    tmp_path: Path,
) -> None:
    h = holder(("uts",))
    command = str(mnt_venv.path / "bin" / "pyns-boot")
    argv = [command, "run", "-t", str(h.pid), "--uts", "--", "-X", "dev", "-c", "import sys; print(sys.flags.dev_mode)"]
    assert execs(argv, tmp_path) == [command, mnt_venv.python]
    result = run(mnt_venv, "-t", str(h.pid), "--uts", "--", "-X", "dev", "-c", "import sys; print(sys.flags.dev_mode)")
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr


def test_a_failed_join_stops_the_program_as_the_hook_does(mnt_venv: Venv, tmp_path: Path) -> None:  # noqa: F811
    not_a_namespace = tmp_path / "plain-file"
    not_a_namespace.write_text("")
    result = run(mnt_venv, "--no-check", "--net", str(not_a_namespace), "-c", "print('ran')")
    assert result.returncode == EXIT_STATUS and "ran" not in result.stdout
    assert result.stderr.startswith(f'pyns_boot: invalid gons_net reference "{not_a_namespace}"'), result.stderr
    assert "carries on" not in result.stderr


# ---------------------------------------------------------------- a real container


def processes_in(container: LabContainer) -> list[str]:
    """The commands of every process in the container's pid namespace (read from the host: any engine)."""
    theirs = os.stat(container.ref("pid"))
    names = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{entry}/ns/pid")
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue  # gone meanwhile
        if (ns.st_dev, ns.st_ino) == (theirs.st_dev, theirs.st_ino):
            names.append(comm)
    return sorted(names)


@pytest.mark.parametrize("how", ["container", "target"])
def test_script_with_its_module_runs_in_a_container(
    hook_venv: Venv, lab_container: LabContainer, tmp_path: Path, how: str
) -> None:
    (tmp_path / "helper_module.py").write_text("GREETING = 'hello from beside the script'\n")
    (tmp_path / "app.py").write_text(APP)
    os.chmod(tmp_path, 0o755)
    by_name = ["--container", lab_container.name, "--engine", lab_container.engine]  # one engine asked: less load
    where = by_name if how == "container" else ["-t", lab_container.pid, "--all"]
    result = run(hook_venv, *where, "--", "app.py", "1", cwd=str(tmp_path), env={"TARGET_FILE": "/etc/os-release"})
    assert result.returncode == 0, result.stderr
    out = line_of(result.stdout, "APP")
    assert out["argv"] == ["app.py", "1"] and out["greeting"] == "hello from beside the script"
    assert out["path0"].endswith(str(tmp_path)) and out["path0"].startswith("/proc/self/fd/")
    module = run(hook_venv, *where, "--", "-m", "app", cwd=str(tmp_path), env={"TARGET_FILE": "/etc/os-release"})
    assert module.returncode == 0, module.stderr
    assert line_of(module.stdout, "APP")["greeting"] == "hello from beside the script"
    hostname = run(hook_venv, *where, "-c", "import socket; print(socket.gethostname())")
    assert hostname.returncode == 0 and hostname.stdout.strip() == lab_container.hostname, hostname
    assert processes_in(lab_container) == ["sleep"]  # nothing left behind


def test_missing_script_in_a_container_leaves_nothing(hook_venv: Venv, lab_container: LabContainer) -> None:
    result = run(
        hook_venv, "--container", lab_container.name, "--engine", lab_container.engine, "--", "/nonexistent/tool.py"
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "can't open file '/nonexistent/tool.py'" in result.stderr
    assert processes_in(lab_container) == ["sleep"]


def test_recipes_of_the_container_docs(hook_venv: Venv, lab_container: LabContainer, tmp_path: Path) -> None:
    """docs/containers.md's podman recipes that run a script, word for word (web: the lab container)."""
    recipes = [
        line.strip()
        for line in (Path(__file__).parent.parent / "docs" / "containers.md").read_text().splitlines()
        if line.startswith("pyns-boot run ")
        and "-- tool.py" in line
        and "web" in line
        and not any(word in line for word in ("docker", "crictl", "nerdctl", "sudo", "--engine"))
    ]
    assert len(recipes) >= 2, recipes
    (tmp_path / "tool.py").write_text("import socket; print('TOOL', socket.gethostname())\n")
    os.chmod(tmp_path, 0o755)
    env = clean_env(PATH=f"{hook_venv.path / 'bin'}:{os.environ['PATH']}")
    for recipe in recipes:
        command = recipe.split(" # ", 1)[0].replace("web", lab_container.name)
        result = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=tmp_path
        )
        assert result.returncode == 0, (recipe, result.stderr)
        assert result.stdout.strip() == f"TOOL {lab_container.hostname}", recipe


# ---------------------------------------------------------------- the command line, read as python reads it


@pytest.mark.unit
@pytest.mark.parametrize(
    ("program", "kind", "value", "argv"),
    [
        (["-c", "pass", "a"], "code", "pass", ["-c", "a"]),
        (["-cpass"], "code", "pass", ["-c"]),
        (["-m", "http.server", "8000"], "module", "http.server", ["-m", "8000"]),
        (["app.py", "-v"], "path", "app.py", ["app.py", "-v"]),
        (["python", "app.py"], "path", "app.py", ["app.py"]),
        ([f"python{sys.version_info[0]}.{sys.version_info[1]}", "-m", "x"], "module", "x", ["-m"]),
        ([sys.executable, "-c", "1"], "code", "1", ["-c"]),
    ],
)
def test_program_forms(program: list[str], kind: str, value: str, argv: list[str]) -> None:
    from pyns_boot import _run_program

    parsed = _run_program.parse(program)
    assert parsed is not None
    assert (parsed.kind, parsed.value, parsed.args) == (kind, value, argv)
    without_python = (
        program[1:] if program[0] in ("python", sys.executable) or program[0].startswith("python3") else program
    )
    assert parsed.orig_argv == [sys.executable, *without_python]


@pytest.mark.unit
@pytest.mark.parametrize(
    "program", [["-X", "dev", "app.py"], ["-u", "-c", "1"], ["-"], ["-I", "app.py"], ["-c"], ["-m"]]
)
def test_programs_for_a_fresh_interpreter(program: list[str]) -> None:
    from pyns_boot import _run_program

    assert _run_program.parse(program) is None
