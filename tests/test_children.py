"""Child interpreters of a program inside a target mount namespace that does not hold the interpreter (issue 21, 3).

The program joins the target with gons_* (keep-imports), then starts
children of sys.executable every way a program does: subprocess, os.execv,
multiprocessing with the spawn and forkserver start methods, the default
one (forkserver from 3.14 on) through a bare Pool() and
ProcessPoolExecutor().  Each child must run inside the target's namespaces
as the same interpreter, importing from the host's installation through the
parent's descriptor number; nothing may be left in the target afterwards.

Targets: an unshare-made one (own pid, mnt, net, uts and ipc namespaces, the
interpreter's installation and the venvs hidden under a tmpfs; runs
everywhere, the lab container included) and a podman container of the lab
image (tests/support/containers.py), when podman is here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cliutil import pyns_boot
from containers import LabContainer
from nsutil import CHILD_TIMEOUT, Holder, Venv, clean_env, make_venv, rmtree
from test_foreign_mnt import TARGET_TEXT, base_prefix, hiding_setup  # noqa: F401 (base_prefix: a fixture)

TYPES = ("ipc", "mnt", "net", "pid", "uts")

PROBE_MODULE = r"""
import json, os, sys

TARGET_FILE = os.environ.get("PYNS_CHILDREN_TARGET_FILE", "/nonexistent")


def open_descriptors():
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink("/proc/self/fd/" + name)
        except OSError:  # the directory listing's own descriptor, closed by now
            pass
    return fds


def facts(_=None):
    import decimal  # a module no process loaded before: it comes through the old root
    import pyns_boot

    status = pyns_boot.status()
    try:
        target = open(TARGET_FILE).read().strip()
    except OSError as error:
        target = "error: %s" % error
    fds = open_descriptors()
    return {
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "links": {t: os.readlink("/proc/self/ns/" + t) for t in ("ipc", "mnt", "net", "pid", "uts")},
        "target": target,
        "executable": sys.executable,
        "decimal": decimal.__file__,
        "imports_root": status.imports_root,
        "keeps_imports": status.keeps_imports,
        "env": sorted(k for k in os.environ if k.startswith(("gons_", "PYNS_BOOT_")) and k != "PYNS_BOOT_WERROR"),
        "mnt_fds": sorted(link for link in fds.values() if link.startswith("mnt:")),
        "fds": sorted(fds),
        "main": getattr(sys.modules["__main__"], "__file__", None),
    }


if __name__ == "__main__":
    print((sys.argv[1] if len(sys.argv) > 1 else "FACTS") + " " + json.dumps(facts()), flush=True)
"""

MAIN_MODULE = r"""
import concurrent.futures, json, multiprocessing, os, subprocess, sys
import pyns_children_probe as probe


def main(workdir):
    report = {"parent": probe.facts(), "default_method": multiprocessing.get_start_method()}
    child = subprocess.run(
        [sys.executable, "-m", "pyns_children_probe"], cwd=workdir, capture_output=True, text=True
    )
    report["subprocess"] = json.loads(child.stdout.split(" ", 1)[1]) if child.returncode == 0 else child.stderr
    with open(probe.TARGET_FILE) as f:
        expected = f.read()

    def in_target():  # a caller's preexec_fn runs in the target, in cwd
        with open(probe.TARGET_FILE) as f:
            if f.read() != expected or os.getcwd() != workdir:
                raise RuntimeError("preexec_fn ran outside the target")

    child = subprocess.run(
        [sys.executable, "-m", "pyns_children_probe"], cwd=workdir, preexec_fn=in_target, capture_output=True, text=True
    )
    report["preexec"] = json.loads(child.stdout.split(" ", 1)[1]) if child.returncode == 0 else child.stderr
    for method in ("spawn", "forkserver"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            report[method] = pool.map(probe.facts, range(2))
    with multiprocessing.Pool() as pool:
        report["pool"] = pool.map(probe.facts, range(2))
    with concurrent.futures.ProcessPoolExecutor() as executor:
        report["executor"] = list(executor.map(probe.facts, range(2)))
    report["spawnv_status"] = os.spawnv(
        os.P_WAIT, sys.executable, [sys.executable, "-m", "pyns_children_probe", "SPAWNV"]
    )
    print("RESULT " + json.dumps(report), flush=True)
    os.chdir(workdir)
    os.execv(sys.executable, [sys.executable, "-m", "pyns_children_probe", "EXEC"])


if __name__ == "__main__":
    main(sys.argv[1])
"""


@pytest.fixture(scope="module")
def children_venv(workdir: Path, wheel: Path) -> Iterator[Venv]:
    venv = make_venv(workdir / "children-venv")
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    (venv.site_packages / "pyns_children_probe.py").write_text(PROBE_MODULE)
    (venv.site_packages / "pyns_children_main.py").write_text(MAIN_MODULE)
    yield venv
    rmtree(venv.path)


@pytest.fixture
def target(holder: Callable[..., Holder], workdir: Path, base_prefix: str, children_venv: Venv) -> Holder:  # noqa: F811
    h: Holder = holder(TYPES, hiding_setup(workdir, base_prefix, proc="own-pid-namespace"))
    hidden = subprocess.run(["nsenter", "-t", str(h.pid), "-m", "--", "test", "-e", children_venv.python])
    assert hidden.returncode == 1, "the venv must not be visible in the target"
    return h


_SCRATCH: list[str] = []


@pytest.fixture(autouse=True)
def scratch_tmpdir() -> Iterator[str]:
    """TMPDIR of the programs (scratch()): a directory of this test, visible in the unshare targets (they share
    /tmp), so that what a killed program leaves (multiprocessing's pymp-* directories) goes with the test.
    Not set in this process's environment: the lab's engines, started on first use, would inherit it."""
    _SCRATCH[:] = [tempfile.mkdtemp(prefix="pyns-children-tmp-")]
    yield _SCRATCH[0]
    shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)


def scratch(env: dict[str, str]) -> dict[str, str]:
    """env and the test's TMPDIR."""
    return {"TMPDIR": _SCRATCH[0], **env}


def run_program(venv: Venv, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv.python, "-m", "pyns_children_main", *args],
        env=clean_env(**scratch(env)),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT * 4,
        cwd="/",
        stdin=subprocess.DEVNULL,
    )


def lines(stdout: str, marker: str) -> list[Any]:
    return [json.loads(line[len(marker) + 1 :]) for line in stdout.splitlines() if line.startswith(marker + " ")]


def processes_inside(pid: int | str) -> list[str]:
    """ps in the target's pid and mount namespaces (its own /proc): 'PID STAT COMMAND' lines, ps itself left out."""
    out = subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-p", "--", "ps", "-eo", "pid=,stat=,comm="],
        capture_output=True,
        text=True,
        check=True,
        timeout=CHILD_TIMEOUT,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.split()[2:] != ["ps"]]


def container_processes(container: LabContainer) -> list[str]:
    """ps inside a container of any engine: 'PID STAT COMMAND' lines, ps itself left out."""
    done = container.tool("exec", container.name, "ps", "-eo", "pid=,stat=,comm=", check=False)
    assert done.returncode == 0, (done.returncode, done.stderr)
    out = done.stdout
    return [line.strip() for line in out.splitlines() if line.strip() and line.split()[2:] != ["ps"]]


def only_init_left(pid: int | str) -> list[str]:
    """The processes inside once the program's children had time to end (waits while any is still running)."""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
        left = processes_inside(pid)
        running = [line for line in left[1:] if not line.split()[1].startswith("Z")]
        if not running or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def check_children(stdout: str, links: dict[str, str], venv: Venv, wd: str, target_text: str) -> None:
    [out] = lines(stdout, "RESULT")
    [exec_facts] = lines(stdout, "EXEC")
    [spawnv_facts] = lines(stdout, "SPAWNV")
    parent = out["parent"]
    root = parent["imports_root"]
    assert root is not None and root.startswith("/proc/self/fd/"), parent
    host_mnt = os.readlink("/proc/self/ns/mnt")
    children = [
        ("subprocess", out["subprocess"]),
        ("preexec", out["preexec"]),
        ("exec", exec_facts),
        ("spawnv", spawnv_facts),
    ]
    assert out["spawnv_status"] == 0
    for kind in ("spawn", "forkserver", "pool", "executor"):
        assert len(out[kind]) == 2, (kind, out[kind])
        children += [(kind, facts) for facts in out[kind]]
    for kind, facts in [("parent", parent), *children]:
        assert isinstance(facts, dict), (kind, facts)
        assert facts["links"] == links, (kind, facts["links"], links)
        assert facts["target"] == target_text, (kind, facts)
        assert facts["executable"] == venv.python, (kind, facts)
        # keep-imports, through the parent's descriptor number (multiprocessing's paths name it)
        assert facts["keeps_imports"] is True and facts["imports_root"] == root, (kind, facts)
        assert facts["decimal"].startswith(root + "/"), (kind, facts)
        assert facts["env"] == [], (kind, facts["env"])
        # one mount namespace descriptor: the old one; the target's was closed after the join
        assert facts["mnt_fds"] == [host_mnt], (kind, facts["mnt_fds"], host_mnt)
        assert facts["pid"] < 1000, (kind, facts)
    assert len({facts["pid"] for _, facts in children}) >= 6
    assert out["preexec"]["cwd"] == wd
    assert out["subprocess"]["cwd"] == wd and exec_facts["cwd"] == wd and spawnv_facts["cwd"] == "/"
    assert exec_facts["pid"] == parent["pid"], "os.execv replaces the program"
    # the subprocess child (close_fds) holds stdio, the old root and the old namespace, nothing else
    assert len(set(out["subprocess"]["fds"]) - {0, 1, 2, int(root.rsplit("/", 1)[1])}) == 1, out["subprocess"]
    for kind in ("spawn", "forkserver"):
        for facts in out[kind]:
            assert facts["cwd"] == "/" and facts["main"] is not None and facts["main"].startswith(root + "/"), facts


def test_children_run_inside_an_unshare_target(target: Holder, children_venv: Venv, workdir: Path) -> None:
    wd = str(workdir / "target")
    env = {t: target.ref(t[5:]) for t in ("gons_" + t for t in TYPES)}
    env["PYNS_CHILDREN_TARGET_FILE"] = str(workdir / "target" / "file")
    result = run_program(children_venv, env, wd)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
    check_children(result.stdout, {t: target.link(t) for t in TYPES}, children_venv, wd, TARGET_TEXT)
    left = only_init_left(target.pid)
    assert len(left) == 1 and left[0].split()[0] == "1", left


def test_children_run_inside_a_container(make_container: Callable[..., LabContainer], children_venv: Venv) -> None:
    container = make_container("children")
    wd = "/var/tmp"
    env = container.env(TYPES)
    env["PYNS_CHILDREN_TARGET_FILE"] = "/etc/os-release"
    result = run_program(children_venv, env, wd)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    os_release = container.os_release().strip()
    assert "sid" in os_release
    links = {t: os.readlink(container.ref(t)) for t in TYPES}
    check_children(result.stdout, links, children_venv, wd, os_release)
    left = container_processes(container)
    assert len(left) == 1 and left[0].split()[0] == "1", left


def test_children_through_pyns_boot_run_container(
    make_container: Callable[..., LabContainer], children_venv: Venv
) -> None:
    # The command's way in (`pyns-boot run --container NAME -- -m MODULE`) reaches the same keep-imports state.
    container = make_container("children-cli")
    result = pyns_boot(
        children_venv,
        "run",
        "--container",
        container.name,
        "--",
        "-m",
        "pyns_children_main",
        "/var/tmp",
        env=scratch({"PYNS_CHILDREN_TARGET_FILE": "/etc/os-release"}),
        timeout=CHILD_TIMEOUT * 4,
    )
    assert result.returncode == 0, result.stderr
    links = {t: os.readlink(container.ref(t)) for t in TYPES}
    check_children(result.stdout, links, children_venv, "/var/tmp", container.os_release().strip())
    left = container_processes(container)
    assert len(left) == 1 and left[0].split()[0] == "1", left


CWD_PROGRAM = r"""
import json, os, subprocess, sys

CHILD = (
    "import json, os, sys\n"
    "with open(sys.argv[-1]) as f:\n"
    "    data = f.read()\n"
    "main = sys.modules['__main__']\n"
    "print(json.dumps({'cwd': os.getcwd(), 'argv0': sys.argv[0], 'file': getattr(main, '__file__', None),\n"
    "                  'path0': sys.path[0], 'data': data}), flush=True)\n"
)


def run(*args, **options):
    child = subprocess.run([sys.executable, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, **options)
    return json.loads(child.stdout) if child.returncode == 0 else child.stderr.strip().splitlines()[-1:]


base = os.path.join(sys.argv[1], "pyns-cwd")
sub = os.path.join(base, "sub")
os.makedirs(sub, exist_ok=True)
for name, text in (("child.py", CHILD), ("pyns_cwd_module.py", CHILD), ("data.txt", "DATA")):
    with open(os.path.join(sub, name), "w") as f:
        f.write(text)
if not os.path.islink(os.path.join(base, "link")):
    os.symlink("sub", os.path.join(base, "link"))
os.chdir(base)
out = {
    "script, cwd=": run("child.py", "data.txt", cwd=sub),
    "./script, relative cwd=": run("./child.py", "data.txt", cwd="sub"),
    "script, cwd= through a link": run("child.py", "data.txt", cwd=os.path.join(base, "link")),
    "script after options": run("-uB", "-X", "utf8", "-W", "ignore", "--", "child.py", "data.txt", cwd=sub),
    "script, preexec_fn": run("child.py", "data.txt", cwd=sub, preexec_fn=os.getpid),
    "script, the program's cwd": run("sub/child.py", "sub/data.txt"),
    "-m, cwd=": run("-m", "pyns_cwd_module", "data.txt", cwd=sub),
    "-c, cwd=": run("-c", CHILD, "data.txt", cwd=sub),
}
os.chdir("sub")
out["-m, the program's cwd"] = run("-m", "pyns_cwd_module", "data.txt")
print("RESULT " + json.dumps(out), flush=True)
os.execv(sys.executable, [sys.executable, "child.py", "data.txt"])
"""


def relative_paths_seen(base: str, result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """CWD_PROGRAM's children's facts (base written as BASE), the os.execv child's under "exec"."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    stdout = result.stdout.replace(base, "BASE")
    [out] = lines(stdout, "RESULT")
    out["exec"] = json.loads(stdout.splitlines()[-1])
    return dict(out)


def check_relative_paths(venv: Venv, run: Callable[[str], subprocess.CompletedProcess[str]], base: str) -> None:
    # What a plain child started there sees, with the same program and files outside any target.
    (venv.site_packages / "pyns_children_cwd.py").write_text(CWD_PROGRAM)
    plain_base = tempfile.mkdtemp(prefix="pyns-children-plain-")
    try:
        plain = relative_paths_seen(
            plain_base,
            subprocess.run(
                [venv.python, "-m", "pyns_children_cwd", plain_base],
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT * 2,
                cwd="/",
                stdin=subprocess.DEVNULL,
            ),
        )
    finally:
        shutil.rmtree(plain_base)
    inside = relative_paths_seen(base, run(base))
    assert plain["script, cwd="]["cwd"] == "BASE/pyns-cwd/sub", plain
    assert set(inside) == set(plain) and len(plain) == 10, (inside, plain)
    for kind, facts in plain.items():
        seen = inside[kind]
        assert isinstance(seen, dict), (kind, seen)
        assert seen["data"] == "DATA" and seen["cwd"] == facts["cwd"], (kind, seen, facts)
        if facts["argv0"] != seen["argv0"]:
            # A script path the child gets made absolute against the working directory, as the
            # interpreter (3.9+) makes its __file__: sys.argv[0] is that path where it is the one given.
            assert sys.version_info >= (3, 9), (kind, seen, facts)
            assert not facts["argv0"].startswith("/") and seen["argv0"] == facts["file"], (kind, seen, facts)
            seen["argv0"] = facts["argv0"]
        assert seen == facts, (kind, seen, facts)


def test_relative_paths_of_children_in_an_unshare_target(target: Holder, children_venv: Venv, workdir: Path) -> None:
    def run(base: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [children_venv.python, "-m", "pyns_children_cwd", base],
            env=clean_env(**scratch({"gons_" + t: target.ref(t) for t in TYPES})),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT * 2,
            cwd="/",
            stdin=subprocess.DEVNULL,
        )

    check_relative_paths(children_venv, run, str(workdir / "target"))
    left = only_init_left(target.pid)
    assert len(left) == 1 and left[0].split()[0] == "1", left


def test_relative_paths_of_children_through_pyns_boot_run_container(
    make_container: Callable[..., LabContainer], children_venv: Venv
) -> None:
    container = make_container("children-cwd")

    def run(base: str) -> subprocess.CompletedProcess[str]:
        return pyns_boot(
            children_venv,
            "run",
            "--container",
            container.name,
            "--",
            "-m",
            "pyns_children_cwd",
            base,
            env=scratch({}),
            timeout=CHILD_TIMEOUT * 2,
        )

    check_relative_paths(children_venv, run, "/var/tmp")
    left = container_processes(container)
    assert len(left) == 1 and left[0].split()[0] == "1", left


SCRIPT_FORMS = [
    ["child.py", "arg"],
    ["./child.py"],
    ["sub/../child.py"],
    ["-u", "-B", "child.py"],
    ["-uB", "child.py"],
    ["-W", "ignore", "child.py"],
    ["-Wignore", "child.py"],
    ["-uX", "utf8", "child.py"],
    ["-Xutf8", "-X", "dev", "child.py"],
    ["--check-hash-based-pycs", "never", "child.py"],
    ["-B", "--", "child.py"],
]
NO_SCRIPT_FORMS = [["-c", "pass", "child.py"], ["-uc", "pass"], ["-m", "child", "child.py"], ["-Bm", "child"], ["-"]]


@pytest.mark.unit
@pytest.mark.parametrize("form", SCRIPT_FORMS + NO_SCRIPT_FORMS, ids=" ".join)
def test_which_argument_is_the_script(form: list[str]) -> None:
    # The interpreter itself tells: started from elsewhere with the argument pyns_boot made absolute, a child
    # runs the same file (the same __file__) as one started in the directory with the one given.
    from pyns_boot._children import _with_absolute_script

    here = os.path.realpath(tempfile.mkdtemp(prefix="pyns-children-script-"))
    try:
        os.mkdir(os.path.join(here, "sub"))
        Path(here, "child.py").write_text("import json, sys\nprint(json.dumps(sys.modules['__main__'].__file__))\n")
        made = _with_absolute_script([sys.executable, *form], os.fsencode(here))
        if form in NO_SCRIPT_FORMS or sys.version_info < (3, 9):
            assert made == [sys.executable, *form]
            return
        [index] = [i for i, (a, b) in enumerate(zip(made, [sys.executable, *form])) if a != b]
        assert made[index] == os.fsencode(here + "/" + form[index - 1]), made

        def main_file(argv: list[Any], cwd: str) -> str:
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=CHILD_TIMEOUT, input="")
            assert done.returncode == 0, done.stderr
            return str(json.loads(done.stdout.splitlines()[-1]))

        assert main_file(made, "/") == main_file([sys.executable, *form], here)
    finally:
        shutil.rmtree(here)


USER_NAMESPACE_PROGRAM = r"""
import json, multiprocessing, os, subprocess, sys
errors = {}
try:
    subprocess.run([sys.executable, "-c", "pass"])
except OSError as error:
    errors["subprocess"] = [error.errno, str(error)]
for method in ("spawn", "forkserver"):
    try:
        with multiprocessing.get_context(method).Pool(1) as pool:
            pool.map(abs, [1])
    except OSError as error:
        errors[method] = [error.errno, str(error), type(error).__name__]
try:
    os.execv(sys.executable, [sys.executable, "-c", "print('EXECUTED')"])
except OSError as error:
    errors["exec"] = [error.errno, str(error)]
errors["still_here"] = os.getpid()
print("RESULT " + json.dumps(errors), flush=True)
"""


def test_a_joined_user_namespace_fails_at_the_call(
    holder: Callable[..., Holder],
    workdir: Path,
    base_prefix: str,  # noqa: F811
    children_venv: Venv,
) -> None:
    # The program joins a user namespace too: it has no rights over the host's
    # mount namespace, where its children would have to start.
    h = holder(("user", *TYPES), hiding_setup(workdir, base_prefix, proc="own-pid-namespace"))
    env = {"gons_" + t: h.ref(t) for t in ("user", *TYPES)}
    result = subprocess.run(
        [children_venv.python, "-c", USER_NAMESPACE_PROGRAM],
        env=clean_env(**scratch(env)),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT * 2,
        cwd="/",
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert "BrokenPipeError" not in result.stderr and "EXECUTED" not in result.stdout, result
    [out] = lines(result.stdout, "RESULT")
    for kind in ("subprocess", "spawn", "forkserver", "exec"):
        number, message = out[kind][:2]
        assert number == 1, (kind, out[kind])  # EPERM
        assert message.startswith("[Errno 1] pyns_boot: cannot start a child interpreter from sys.executable "), message
        assert 'inside gons_mnt "{}"'.format(h.ref("mnt")) in message
        assert "cannot enter it: Operation not permitted (this process lacks CAP_SYS_ADMIN" in message, message
        assert "docs/foreign-mounts.md" in message
    assert out["spawn"][2] == "PermissionError"
    left = only_init_left(h.pid)
    assert len(left) == 1 and left[0].split()[0] == "1", left


REFUSALS_PROGRAM = r"""
import json, os, subprocess, sys
out = {}
try:
    subprocess.run([sys.executable, "-c", "pass"], cwd="/nonexistent-dir")
except OSError as error:
    out["cwd"] = [type(error).__name__, error.errno, error.filename]
try:
    os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], os.environ)
except OSError as error:
    out["posix_spawn"] = [error.errno, str(error)]
if sys.version_info >= (3, 9):
    try:
        subprocess.run([sys.executable, "-c", "pass"], user=65534)
    except OSError as error:
        out["user"] = [error.errno, str(error)]
print("RESULT " + json.dumps(out))
"""


def test_what_cannot_work_is_refused_at_the_call(target: Holder, children_venv: Venv) -> None:
    env = {"gons_" + t: target.ref(t) for t in TYPES}
    result = subprocess.run(
        [children_venv.python, "-c", REFUSALS_PROGRAM],
        env=clean_env(**scratch(env)),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    [out] = lines(result.stdout, "RESULT")
    assert out["cwd"] == ["FileNotFoundError", 2, "/nonexistent-dir"], out
    number, message = out["posix_spawn"]
    assert number == 95 and "with os.posix_spawn inside gons_mnt" in message and "use subprocess" in message, out
    if "user" in out:  # subprocess takes user= from Python 3.9 on
        number, message = out["user"]
        assert number == 1 and "would change its user before exec" in message, out
    assert len(only_init_left(target.pid)) == 1


KILLED_PROGRAM = r"""
import multiprocessing, os, sys, time
if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    pool = context.Pool(2)
    print("STARTING", os.getpid(), flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_program_killed_while_its_pool_starts(target: Holder, children_venv: Venv, workdir: Path, method: str) -> None:
    # SIGKILL to the program (inside the target's pid namespace) while its pool's workers start: they,
    # the fork server and the resource tracker end by themselves (their pipes close); nothing runs on.
    (children_venv.site_packages / f"pyns_children_killed_{method}.py").write_text(KILLED_PROGRAM)
    env = {"gons_" + t: target.ref(t) for t in TYPES}
    process = subprocess.Popen(
        [children_venv.python, "-m", f"pyns_children_killed_{method}", method],
        env=clean_env(**scratch(env)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("STARTING"), (first, process.stderr.read() if process.stderr else "")
        inner = int(first.split()[1])
        # kill it from inside the target's pid namespace, where its pid is inner
        subprocess.run(["nsenter", "-t", str(target.pid), "-p", "-m", "--", "kill", "-KILL", str(inner)], check=True)
        _, err = process.communicate(timeout=CHILD_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGKILL, (process.returncode, err)
    assert "Traceback" not in err, err
    left = only_init_left(target.pid)
    assert all(line.split()[1].startswith("Z") for line in left[1:]), left


LONG_POOL_PROGRAM = r"""
import multiprocessing, os, sys, time


def work(x):
    time.sleep(600)
    return x


if __name__ == "__main__":
    with multiprocessing.get_context(sys.argv[1]).Pool(2) as pool:
        result = pool.map_async(work, [1, 2])
        print("RUNNING", os.getpid(), flush=True)
        result.get()
"""


def test_container_ends_while_children_run(target: Holder, children_venv: Venv) -> None:
    # The target's init exits while the program's pool works: the kernel kills every process in
    # its pid namespace; the program's supervisor (outside) says why, once, and exits as killed.
    (children_venv.site_packages / "pyns_children_long_pool.py").write_text(LONG_POOL_PROGRAM)
    pid_link = target.link("pid")
    env = {"gons_" + t: target.ref(t) for t in TYPES}
    process = subprocess.Popen(
        [children_venv.python, "-m", "pyns_children_long_pool", "forkserver"],
        env=clean_env(**scratch(env)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("RUNNING"), (first, process.stderr.read() if process.stderr else "")
        os.kill(target.pid, signal.SIGKILL)
        _, err = process.communicate(timeout=CHILD_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGKILL, (process.returncode, err)
    assert err == (
        "pyns_boot: the program was killed: the pid namespace it ran in has ended "
        "(its init process exited: the container stopped)\n"
    ), err

    def left() -> list[str]:
        found = []
        for entry in os.listdir("/proc"):
            try:
                if entry.isdigit() and os.readlink(f"/proc/{entry}/ns/pid") == pid_link:
                    found.append(Path(f"/proc/{entry}/stat").read_text())
            except OSError:
                pass
        return found

    deadline = time.monotonic() + CHILD_TIMEOUT
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left() == [], "processes of the ended pid namespace are still there"


def test_old_root_variable_set_by_hand_is_harmless(target: Holder, children_venv: Venv) -> None:
    # PYNS_BOOT_OLD_ROOT_FDS names descriptors a child inherits from pyns_boot; set by hand (numbers
    # that are not open, or not the root and namespace the process opened itself) it changes nothing.
    code = (
        "import json, os, pyns_boot; s = pyns_boot.status()\n"
        "print('RESULT ' + json.dumps({'root': s.imports_root, 'keeps': s.keeps_imports,\n"
        "    'env': 'PYNS_BOOT_OLD_ROOT_FDS' in os.environ, 'json': json.__file__,\n"
        "    'fds': sorted(os.listdir('/proc/self/fd'))}))"
    )
    outs = []
    for value in ("", "7,8,9", "not,numbers,here", "0,1,2"):
        env = {"gons_mnt": target.ref("mnt"), "gons_pid": target.ref("pid")}
        if value:
            env["PYNS_BOOT_OLD_ROOT_FDS"] = value
        result = subprocess.run(
            [children_venv.python, "-c", code],
            env=clean_env(**scratch(env)),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            cwd="/",
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, (value, result.stderr)
        [out] = lines(result.stdout, "RESULT")
        assert out["keeps"] is True and out["env"] is False and out["json"].startswith(out["root"] + "/"), out
        outs.append(out)
    # the same descriptors as without the variable (stdio stays open: 0,1,2 are not taken over)
    assert all(out["fds"] == outs[0]["fds"] and out["root"] == outs[0]["root"] for out in outs), outs
