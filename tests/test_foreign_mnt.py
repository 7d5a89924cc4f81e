"""A program joins a mount namespace that does not hold its interpreter, and keeps importing.

The holder's mount namespace has a tmpfs over the interpreter's installation
(sys.base_prefix of PYNS_BOOT_TEST_PYTHON; its standard library for a /usr
interpreter such as Debian's python3.15) and over the session's work
directory (the venvs), and a file that exists only there.  The children join
it with gons_mnt and import modules they had not loaded yet.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from nsutil import CHILD_TIMEOUT, EXIT_STATUS, Holder, Venv, clean_env, fresh_cwd, make_venv, rmtree, run_python
from nsutil import test_python as interpreter_under_test

TARGET_TEXT = "only in the target namespace"
TINY_PACKAGE = {
    "pyns_tinypkg/__init__.py": "VALUE = 42\n",
    "pyns_tinypkg/sub.py": "from pyns_tinypkg import VALUE\n\n\ndef double():\n    return 2 * VALUE\n",
    "pyns_tinypkg/main.py": (
        "import json\nimport sys\n\nfrom pyns_tinypkg import sub\n\n"
        'print("MAIN " + json.dumps({"file": __file__, "double": sub.double(), "argv": sys.argv[1:]}))\n'
    ),
}


@pytest.fixture(scope="module")
def base_prefix() -> str:
    """What the holder hides: the interpreter's installation (sys.base_prefix), or, for an
    interpreter of the system (Debian's /usr/bin/python3.X, whose prefix also holds the
    holder's own tools), the directory of its standard library and lib-dynload."""
    code = "import os, sys, sysconfig; print(sys.base_prefix); print(os.path.realpath(sysconfig.get_path('stdlib')))"
    out = subprocess.run([interpreter_under_test(), "-S", "-c", code], check=True, capture_output=True, text=True)
    prefix, stdlib = out.stdout.split()
    return stdlib if prefix in ("/", "/usr", "/usr/local") else prefix


@pytest.fixture(scope="module")
def mnt_venv(workdir: Path, wheel: Path) -> Iterator[Venv]:
    """pyns_boot plus a tiny package in site-packages, and a script directory."""
    venv = make_venv(workdir / "foreign-mnt-venv")
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    site = venv.site_packages
    for name, text in TINY_PACKAGE.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    # a .pth file that site.py reads after pyns_boot.pth, naming a directory outside site-packages
    extra = workdir / "foreign-mnt-extra"
    extra.mkdir(exist_ok=True)
    (extra / "pyns_extra_mod.py").write_text("WHERE = 'extra'\n")
    (site / "zz_pyns_extra.pth").write_text(str(extra) + "\n")
    scripts = workdir / "foreign-mnt-scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "helper_module.py").write_text("GREETING = 'hello from beside the script'\n")
    (scripts / "app.py").write_text(
        "import json, helper_module\n"
        'print("APP " + json.dumps({"file": __file__, "greeting": helper_module.GREETING}))\n'
    )
    yield venv
    rmtree(venv.path)
    rmtree(scripts)
    rmtree(extra)


def hiding_setup(workdir: Path, base_prefix: str, proc: str = "keep") -> str:
    """Shell code for the holder: hide the installation and the venvs, add a target-only file."""
    lines = [
        "set -e",
        f"mount -t tmpfs pyns-hide {shlex.quote(base_prefix)}",
        f"mount -t tmpfs pyns-hide {shlex.quote(str(workdir))}",
        "mkdir {}".format(shlex.quote(str(workdir / "target"))),
        "echo {} > {}".format(shlex.quote(TARGET_TEXT), shlex.quote(str(workdir / "target" / "file"))),
    ]
    if proc == "remove":
        lines.append("umount -l /proc")
    elif proc == "own-pid-namespace":
        lines.append("mount -t proc proc /proc")
    return "\n".join(lines)


@pytest.fixture
def target(holder: Callable[..., Holder], workdir: Path, base_prefix: str, mnt_venv: Venv) -> Holder:
    h: Holder = holder(("mnt",), hiding_setup(workdir, base_prefix))
    hidden = subprocess.run(
        ["nsenter", "-t", str(h.pid), "-m", "--", "test", "-e", mnt_venv.python],
        timeout=CHILD_TIMEOUT,
    )
    assert hidden.returncode == 1, "the venv must not be visible in the target"
    return h


PROGRAM = r"""
import os, sys
before = set(sys.modules)
import json, email.message, decimal, fcntl, inspect, sqlite3, traceback
import pyns_tinypkg.sub
import pyns_extra_mod, site
message = email.message.EmailMessage()
message["Subject"] = "hi"
connection = sqlite3.connect(":memory:")
answer = connection.execute("select 6 * 7").fetchone()[0]
try:
    json.loads("{")
except ValueError:
    trace = traceback.format_exc()
import pyns_boot
status = pyns_boot.status()
print("RESULT " + json.dumps({
    "newly_loaded": sorted({"json", "email.message", "decimal", "_decimal", "sqlite3", "_sqlite3",
                            "pyns_tinypkg"} - before),
    "files": {name: getattr(sys.modules.get(name), "__file__", None)
              for name in ("json", "email.message", "_decimal", "_sqlite3", "pyns_tinypkg.sub", "os",
                           "pyns_extra_mod")},
    "site_functions_restored": not any(getattr(getattr(site, name), "_pyns_boot_remaps", False)
                                       for name in ("makepath", "addpackage", "execsitecustomize")),
    "sys_path": sys.path,
    "subject": message["Subject"],
    "sqlite": answer,
    "decimal": str(decimal.Decimal(1) / decimal.Decimal(8)),
    "double": pyns_tinypkg.sub.double(),
    "source": inspect.getsource(json.loads).splitlines()[0],
    "trace": trace,
    "target_file": open(sys.argv[1]).read().strip(),
    "venv_visible": os.path.exists(sys.argv[2]),
    "cwd": os.getcwd(),
    "status": status.as_dict(),
    "fd_flags": fcntl.fcntl(int(status.imports_root.rsplit("/", 1)[1]), fcntl.F_GETFD),
}))
"""


def result_of(stdout: str, marker: str = "RESULT ") -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith(marker):
            report: dict[str, Any] = json.loads(line[len(marker) :])
            return report
    raise AssertionError(f"no {marker!r} line in {stdout!r}")


def run_argv(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command line (not only "-c" code) with a timeout, outside the source tree."""
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=fresh_cwd())


def test_c_program_imports_from_its_own_installation(target: Holder, mnt_venv: Venv, workdir: Path) -> None:
    result = run_python(
        mnt_venv.python,
        PROGRAM,
        {"gons_mnt": target.ref("mnt")},
        args=[str(workdir / "target" / "file"), mnt_venv.python],
    )
    assert result.returncode == 0, result.stderr
    out = result_of(result.stdout)
    root = out["status"]["imports_root"]
    assert root is not None and root.startswith("/proc/self/fd/")
    assert out["status"]["keeps_imports"] is True and out["status"]["imports_error"] is None
    assert out["status"]["namespaces"]["mnt"]["outcome"] == "joined"
    # the modules were not loaded before the switch, and came from the old root
    expected = ["json", "email.message", "decimal", "_decimal", "sqlite3", "_sqlite3", "pyns_tinypkg"]
    assert out["newly_loaded"] == sorted(expected)
    for name, file in out["files"].items():
        assert file is not None and file.startswith(root + "/"), (name, file)
    assert out["files"]["_sqlite3"].endswith(".so") and out["files"]["_decimal"].endswith(".so")
    assert out["files"]["pyns_tinypkg.sub"] == root + str(mnt_venv.site_packages / "pyns_tinypkg" / "sub.py")
    assert (out["subject"], out["sqlite"], out["decimal"], out["double"]) == ("hi", 42, "0.125", 84)
    # __file__, tracebacks and inspect keep working
    assert out["source"] == "def loads(s, *, cls=None, object_hook=None, parse_float=None,"
    assert f'File "{root}/' in out["trace"] and "return _default_decoder.decode(s)" in out["trace"]
    # while the program's own file operations see the target
    assert out["target_file"] == TARGET_TEXT
    assert out["venv_visible"] is False and out["cwd"] == "/"
    # site.py's later .pth files were read too; its functions are its own again
    assert out["files"]["pyns_extra_mod"] == root + str(workdir / "foreign-mnt-extra" / "pyns_extra_mod.py")
    assert out["site_functions_restored"] is True
    assert len(out["sys_path"]) == len(set(out["sys_path"])), out["sys_path"]
    assert out["fd_flags"] & 1, "the old-root descriptor must be close-on-exec"


def test_dash_m_runs_a_module_of_the_venv(target: Holder, mnt_venv: Venv) -> None:
    result = run_argv(
        [mnt_venv.python, "-m", "pyns_tinypkg.main", "an-argument"], clean_env(gons_mnt=target.ref("mnt"))
    )
    assert result.returncode == 0, result.stderr
    out = result_of(result.stdout, "MAIN ")
    assert out["file"].startswith("/proc/self/fd/") and out["file"].endswith("/pyns_tinypkg/main.py")
    assert out["double"] == 84 and out["argv"] == ["an-argument"]


def test_script_directory_through_pythonpath_and_dash_m(target: Holder, mnt_venv: Venv, workdir: Path) -> None:
    scripts = workdir / "foreign-mnt-scripts"
    env = clean_env(gons_mnt=target.ref("mnt"), PYTHONPATH=str(scripts))
    result = run_argv([mnt_venv.python, "-m", "app"], env)
    assert result.returncode == 0, result.stderr
    out = result_of(result.stdout, "APP ")
    assert out["file"].startswith("/proc/self/fd/") and out["file"].endswith(str(scripts / "app.py"))
    assert out["greeting"] == "hello from beside the script"


def test_mounts_of_a_namespace_left_by_its_last_process(target: Holder, mnt_venv: Venv, workdir: Path) -> None:
    # The interpreter starts alone in a private mount namespace, whose bind
    # mount holds the program.  Once the process has left that namespace,
    # only the descriptor the C helper keeps on it holds the mount in place.
    mountpoint = workdir / "foreign-mnt-mountpoint"
    mountpoint.mkdir(exist_ok=True)
    scripts = workdir / "foreign-mnt-scripts"
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind "$1" "$2" && shift 2 && exec "$@"',
        "sh",
    ]
    result = run_argv(
        [*wrapper, str(scripts), str(mountpoint), mnt_venv.python, "-m", "app"],
        clean_env(gons_mnt=target.ref("mnt"), PYTHONPATH=str(mountpoint)),
    )
    assert result.returncode == 0, result.stderr
    out = result_of(result.stdout, "APP ")
    assert out["file"].endswith(str(mountpoint / "app.py")) and out["greeting"] == "hello from beside the script"


def test_script_given_by_path_stops_with_the_way_that_works(target: Holder, mnt_venv: Venv, workdir: Path) -> None:
    # CPython opens the script after site.py, so after the switch, where it is not: the hook says so in one
    # line with the way that works (pyns-boot run reads it before the joins: tests/test_run_program.py).
    script = workdir / "foreign-mnt-scripts" / "app.py"
    result = run_argv([mnt_venv.python, str(script)], clean_env(gons_mnt=target.ref("mnt")))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result
    assert result.stderr.startswith(f"pyns_boot: python opens the script {script} after joining gons_mnt"), result
    assert f"run it with: pyns-boot run --mnt {target.ref('mnt')} -- {script}" in result.stderr


CHILDREN = r"""
import json, multiprocessing, subprocess, sys

def child(queue):
    import json
    queue.put(json.__file__)

if __name__ == "__main__":
    out = {}
    out["subprocess"] = subprocess.run(
        [sys.executable, "-c", "import json; print(json.__file__)"], capture_output=True, text=True
    ).stdout.strip()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    out["fork_child_imported"] = queue.get(timeout=30)
    process.join()
    out["ls"] = subprocess.run(["ls", sys.argv[1]], capture_output=True, text=True).stdout.strip()
    print("RESULT " + json.dumps(out))
"""


def test_children_import_from_the_installation_too(target: Holder, mnt_venv: Venv, workdir: Path) -> None:
    # A child of sys.executable starts from the original mount namespace and joins the
    # target again (tests/test_children.py has every way to start one); a forked one
    # inherits the descriptor; other programs run from the target.
    result = run_python(
        mnt_venv.python,
        CHILDREN.replace('if __name__ == "__main__":', "if True:"),
        {"gons_mnt": target.ref("mnt")},
        args=[str(workdir / "target")],
    )
    assert result.returncode == 0, result.stderr
    out = result_of(result.stdout)
    assert out["subprocess"].startswith("/proc/self/fd/") and out["subprocess"].endswith("/json/__init__.py"), out
    assert out["fork_child_imported"].startswith("/proc/self/fd/")
    assert out["ls"] == "file", "other tools run from the target's filesystem"


def test_opt_out_imports_from_the_target(holder: Callable[..., Holder], mnt_venv: Venv, workdir: Path) -> None:
    # A target that holds the same tree (no tmpfs over it): with the opt-out,
    # the program imports the target's files at their own paths.
    h = holder(("mnt",), f"mount -t tmpfs pyns-target /mnt && echo {shlex.quote(TARGET_TEXT)} > /mnt/file")
    code = (
        "import json, sys, pyns_boot; s = pyns_boot.status()\n"
        "print('RESULT ' + json.dumps({'file': json.__file__, 'keeps': s.keeps_imports, 'root': s.imports_root,\n"
        "    'target': open('/mnt/file').read().strip(), 'loaded': 'pyns_boot._keep_imports' in sys.modules}))"
    )
    result = run_python(mnt_venv.python, code, {"gons_mnt": h.ref("mnt"), "PYNS_BOOT_KEEP_IMPORTS": "0"})
    assert result.returncode == 0, result.stderr
    out = result_of(result.stdout)
    assert not out["file"].startswith("/proc/") and out["keeps"] is False and out["root"] is None
    assert out["target"] == TARGET_TEXT and out["loaded"] is False


def test_opt_out_with_the_installation_hidden_fails_visibly(target: Holder, mnt_venv: Venv) -> None:
    result = run_python(mnt_venv.python, "import json", {"gons_mnt": target.ref("mnt"), "PYNS_BOOT_KEEP_IMPORTS": "0"})
    assert result.returncode != 0 and "No module named" in result.stderr, result


def test_keep_imports_value_is_checked(target: Holder, mnt_venv: Venv) -> None:
    result = run_python(
        mnt_venv.python, "print('ran')", {"gons_mnt": target.ref("mnt"), "PYNS_BOOT_KEEP_IMPORTS": "yes"}
    )
    assert result.returncode == EXIT_STATUS and "ran" not in result.stdout
    assert 'PYNS_BOOT_KEEP_IMPORTS="yes" is not understood (expected 1 or 0)' in result.stderr


def test_target_without_proc_is_a_clear_error(
    holder: Callable[..., Holder], workdir: Path, base_prefix: str, mnt_venv: Venv
) -> None:
    h = holder(("mnt",), hiding_setup(workdir, base_prefix, proc="remove"))
    result = run_python(mnt_venv.python, "print('ran')", {"gons_mnt": h.ref("mnt")})
    assert result.returncode == EXIT_STATUS and "ran" not in result.stdout
    assert result.stderr.startswith('pyns_boot: joined gons_mnt "{}"'.format(h.ref("mnt"))), result.stderr
    assert "is not reachable there (/proc is not mounted in the target mount namespace)" in result.stderr
    assert "PYNS_BOOT_KEEP_IMPORTS=0" in result.stderr


def test_target_proc_of_another_pid_namespace(
    holder: Callable[..., Holder], workdir: Path, base_prefix: str, mnt_venv: Venv
) -> None:
    h = holder(("mnt", "pid"), hiding_setup(workdir, base_prefix, proc="own-pid-namespace"))
    env = {"gons_mnt": h.ref("mnt")}
    result = run_python(mnt_venv.python, "print('ran')", env)
    assert result.returncode == EXIT_STATUS and "ran" not in result.stdout
    assert "belongs to a pid namespace this process is not a member of" in result.stderr, result.stderr
    assert "; add gons_pid={} (the target's pid namespace) to run the program inside it, or ".format(h.ref("pid")) in (
        result.stderr
    )
    assert result.stderr.count("\n") == 1
    # The way out the message gives: gons_pid, and the program itself runs inside that pid namespace.
    code = (
        "import json, os, pyns_boot; s = pyns_boot.status()\n"
        "print('RESULT ' + json.dumps({{'pid': os.getpid(), 'json': json.__file__, 'mode': s.pid_mode,\n"
        "    'target': open({!r}).read()}}))".format(str(workdir / "target" / "file"))
    )
    inside = run_python(mnt_venv.python, code, {**env, "gons_pid": h.ref("pid")})
    assert inside.returncode == 0, inside.stderr
    out = result_of(inside.stdout)
    assert out["json"].startswith("/proc/self/fd/") and 1 < out["pid"] < 1000 and out["mode"] == "entered"
    assert out["target"].strip() == TARGET_TEXT
    # PYNS_BOOT_PID=children keeps the program outside: the message names that setting.
    children = run_python(
        mnt_venv.python, "print('ran')", {**env, "gons_pid": h.ref("pid"), "PYNS_BOOT_PID": "children"}
    )
    assert children.returncode == EXIT_STATUS and "ran" not in children.stdout
    assert 'unset PYNS_BOOT_PID (it is "children": only children enter' in children.stderr, children.stderr


def test_old_root_is_not_kept_when_not_joined(mnt_venv: Venv) -> None:
    code = (
        "import json, os, sys, pyns_boot; s = pyns_boot.status()\n"
        "print('RESULT ' + json.dumps({'fds': sorted(os.listdir('/proc/self/fd')), 'keeps': s.keeps_imports,\n"
        "    'outcome': s.namespaces['mnt'].outcome, 'loaded': 'pyns_boot._keep_imports' in sys.modules}))"
    )
    baseline = result_of(run_python(mnt_venv.python, code).stdout)
    already = result_of(run_python(mnt_venv.python, code, {"gons_mnt": "/proc/self/ns/mnt"}).stdout)
    failed = result_of(
        run_python(mnt_venv.python, code, {"gons_mnt": "/etc/hostname", "PYNS_BOOT_ON_ERROR": "ignore"}).stdout
    )
    assert already["outcome"] == "already_joined" and failed["outcome"] == "failed"
    for out in (already, failed):
        assert out["fds"] == baseline["fds"] and out["keeps"] is False and out["loaded"] is False


def test_idle_and_other_types_do_not_load_the_module(mnt_venv: Venv, holder: Callable[..., Holder]) -> None:
    code = "import sys; print('RESULT %d' % ('pyns_boot._keep_imports' in sys.modules))"
    h = holder(("uts",))
    for env in ({}, {"gons_uts": h.ref("uts")}):
        result = run_python(mnt_venv.python, code, env)
        assert result.returncode == 0 and "RESULT 0" in result.stdout, (env, result)
