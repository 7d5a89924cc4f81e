"""After a mnt join into a real container, extension modules bind to the host's shared libraries.

The target is a podman container of the lab image (Debian sid: a newer glibc,
OpenSSL, SQLite, zlib than the host's Debian 12).  The children are host
interpreters started inside its pid namespace with nsenter --pid (so that the
container's /proc resolves /proc/self) and joining its mount namespace with
gons_mnt.  Without pyns_boot._elfdeps, ``import ssl`` there fails with
"version `GLIBC_2.38' not found (required by .../libssl.so.3)".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from containers import LabContainer
from nsutil import CHILD_TIMEOUT, Venv, clean_env, make_venv, rmtree, run_python
from nsutil import test_python as interpreter_under_test

CONTAINER_LIB = "/usr/lib/x86_64-linux-gnu"

# Every module the issue names, and the others that load a shared library of their own.
MODULES = ("ssl", "sqlite3", "ctypes", "lzma", "decimal", "hashlib", "bz2", "zlib", "uuid", "readline", "curses")

PROGRAM = r"""
import json, os, subprocess, sys
out = {"imported": [], "failed": {}}
for name in %r:
    try:
        __import__(name)
    except ImportError as error:
        out["failed"][name] = str(error)
    else:
        out["imported"].append(name)
m = sys.modules
out["versions"] = {
    "ssl": getattr(m.get("ssl"), "OPENSSL_VERSION", None),
    "sqlite3": getattr(m.get("sqlite3"), "sqlite_version", None),
    "zlib": getattr(m.get("zlib"), "ZLIB_RUNTIME_VERSION", None),
    "decimal": getattr(m.get("decimal"), "__libmpdec_version__", None),
}
if "ctypes" in m:
    import ctypes
    out["ctypes_getpid"] = ctypes.CDLL(None).getpid() == os.getpid()
if "hashlib" in m:
    import hashlib
    out["sha256"] = hashlib.sha256(b"pyns").hexdigest()
# shared objects mapped, by file name: the device and inode they came from
out["maps"] = {}
with open("/proc/self/maps") as maps:
    for line in maps:
        fields = line.split()
        if len(fields) >= 6 and ".so" in fields[5]:
            out["maps"][fields[5].rsplit("/", 1)[1]] = [fields[3], int(fields[4])]
out["os_release"] = open("/etc/os-release").read()
out["cat"] = subprocess.run(["cat", "/etc/os-release"], capture_output=True, text=True).stdout
print("RESULT " + json.dumps(out))
"""


def result_of(stdout: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            report: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return report
    raise AssertionError(f"no RESULT line in {stdout!r}")


class Container(LabContainer):
    """A running container of the lab image (tests/support/containers.py), and what these tests do in it."""

    def __init__(self) -> None:
        super().__init__("libs")

    def shell(self, script: str, stdin: bytes | None = None) -> str:
        """Run script in the container's mount namespace (the container's own sh and tools)."""
        out = subprocess.run(
            ["nsenter", "-t", self.pid, "-m", "-p", "--", "sh", "-c", script],
            input=stdin,
            check=True,
            capture_output=True,
            timeout=CHILD_TIMEOUT,
        )
        return out.stdout.decode()

    def install(self, source: Path, target: str) -> None:
        self.shell(f"cat > {target} && chmod 755 {target}", source.read_bytes())

    def run_joined(
        self, python: str, code: str, env: dict[str, str] | None = None, entry: str = "nsenter"
    ) -> subprocess.CompletedProcess[str]:
        """python -c code joining the container's mount namespace with gons_mnt, inside its pid namespace:
        started there by nsenter --pid (entry "nsenter"), or entering it itself with gons_pid ("gons_pid")."""
        full = {"gons_mnt": self.ref("mnt"), **(env or {})}
        if entry == "gons_pid":
            full["gons_pid"] = self.ref("pid")
            return run_python(python, code, full)
        return run_python(python, code, full, wrapper=["nsenter", "-t", self.pid, "--pid", "--"])


@pytest.fixture(scope="module")
def container(lab: None) -> Iterator[Container]:  # lab: skips without the lab, fails in CI (PYNS_BOOT_REQUIRE_LAB=1)
    made = Container()
    yield made
    made.remove()


@pytest.fixture(scope="module")
def libs_venv(workdir: Path, wheel: Path) -> Iterator[Venv]:
    venv = make_venv(workdir / "foreign-libs-venv")
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    yield venv
    rmtree(venv.path)


def has_pid_entry(venv: Venv) -> bool:
    """Whether this build puts the program itself into gons_pid's namespace (issue 11, item 1)."""
    code = "import pyns_boot; print(hasattr(pyns_boot.status(), 'pid_mode'))"
    return run_python(venv.python, code).stdout.strip() == "True"


@pytest.mark.parametrize("entry", ["nsenter", "gons_pid"])
def test_extension_modules_bind_to_the_host_libraries(container: Container, libs_venv: Venv, entry: str) -> None:
    if entry == "gons_pid" and not has_pid_entry(libs_venv):
        pytest.skip("this build has no pid entry (status().pid_mode): gons_pid moves only children")
    code = PROGRAM % (MODULES,)
    host = run_python(libs_venv.python, code)
    assert host.returncode == 0, host.stderr
    on_host = result_of(host.stdout)
    inside = container.run_joined(libs_venv.python, code, entry=entry)
    assert inside.returncode == 0, inside.stderr
    joined = result_of(inside.stdout)
    # every module the host imports imports inside too (the six at least), with the host's libraries
    for name in ("ssl", "sqlite3", "ctypes", "lzma", "decimal", "hashlib"):
        assert name in on_host["imported"], (name, on_host["failed"])
    assert joined["imported"] == on_host["imported"], joined["failed"]
    assert joined["versions"] == on_host["versions"]
    assert joined["ctypes_getpid"] is True and joined["sha256"] == on_host["sha256"]
    theirs = container.shell(
        "python3.14 -c 'import ssl, sqlite3; print(ssl.OPENSSL_VERSION); print(sqlite3.sqlite_version)'"
    ).splitlines()
    assert theirs != [joined["versions"]["ssl"], joined["versions"]["sqlite3"]], "the image must differ from the host"
    # each shared object is the very file the host process maps (device and inode), libssl & co. included
    for name, where in on_host["maps"].items():
        assert joined["maps"].get(name) == where, (name, joined["maps"].get(name), where)
    for library in ("libssl.so.3", "libcrypto.so.3", "libsqlite3.so.0", "libffi.so.8", "liblzma.so.5", "libz.so.1"):
        stat = os.stat(os.path.join(CONTAINER_LIB, library))  # the host's copy, seen from the test
        mapped = [where for name, where in joined["maps"].items() if name.startswith(library)]
        assert [where[1] for where in mapped] == [stat.st_ino], (library, mapped)
    # while the program's files and the programs it starts are the container's
    container_release = container.shell("cat /etc/os-release")
    assert joined["os_release"] == container_release == joined["cat"]
    assert "sid" in container_release and container_release != Path("/etc/os-release").read_text()


# ---------------------------------------------------------------- libraries built here

EXTENSION = r"""
#define Py_LIMITED_API 0x03080000
#include <Python.h>
const char *%(call)s(void);
static PyObject *chain(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyUnicode_FromString(%(call)s());
}
static PyMethodDef methods[] = {{"chain", chain, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, "%(name)s", NULL, -1, methods,
                                        NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_%(name)s(void) { return PyModule_Create(&definition); }
"""

LIBRARY = r"""
%(declare)s
const char *%(function)s(void)
{
    static char text[200];
    snprintf(text, sizeof text, "%(label)s%(then)s", %(next)s);
    return text;
}
"""


def gcc(args: list[str]) -> None:
    result = subprocess.run(["gcc", "-Wall", "-Werror", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def build_library(directory: Path, name: str, label: str, needs: str | None = None, link: tuple[str, ...] = ()) -> Path:
    """lib<name>.so.1 whose function <name>() returns label, then what <needs>() returns."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / (name + ".c")
    source.write_text(
        "#include <stdio.h>\n"
        + LIBRARY
        % {
            "declare": f"const char *{needs}(void);" if needs else "",
            "function": name,
            "label": label,
            "then": " > %s" if needs else "%s",
            "next": f"{needs}()" if needs else '""',
        }
    )
    output = directory / (f"lib{name}.so.1")
    gcc(["-shared", "-fPIC", f"-Wl,-soname,lib{name}.so.1", "-o", str(output), str(source), *link])
    return output


def build_extension(directory: Path, name: str, call: str, link: tuple[str, ...]) -> None:
    include = subprocess.run(
        [interpreter_under_test(), "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not os.path.exists(os.path.join(include, "Python.h")):
        pytest.skip(f"no Python.h for {interpreter_under_test()} (its -dev package is not installed)")
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / (name + ".c")
    source.write_text(EXTENSION % {"name": name, "call": call})
    gcc(["-shared", "-fPIC", "-I", include, "-o", str(directory / (name + ".so")), str(source), *link])


@pytest.fixture(scope="module")
def built(workdir: Path, container: Container) -> Iterator[Path]:
    """Extension modules and libraries on the host; impostors of the same names in the container.

    pyns_libchain -> liblibs_a (RUNPATH $ORIGIN/../lib) -> liblibs_b (DT_RPATH, an absolute host
    directory) -> liblibs_c (LD_LIBRARY_PATH).  The container has its own liblibs_b and liblibs_c in
    its default directory, which its loader would take.  pyns_libmissing needs liblibs_gone, which
    only the container has."""
    base = workdir / "foreign-libs-built"
    rmtree(base)
    gone = build_library(base / "gone", "libs_gone", "gone")
    container.install(gone, CONTAINER_LIB + "/liblibs_gone.so.1")
    c = build_library(base / "ldpath", "libs_c", "C@host")
    b = build_library(base / "rpath", "libs_b", "B@host", "libs_c", ("-L", str(c.parent), "-l:liblibs_c.so.1"))
    link_b = ("-L", str(b.parent), "-l:liblibs_b.so.1", "-Wl,--disable-new-dtags,-rpath," + str(b.parent))
    build_library(base / "lib", "libs_a", "A@host", "libs_b", (*link_b, "-Wl,-rpath-link," + str(c.parent)))
    origin = ("-L", str(base / "lib"), "-l:liblibs_a.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
    build_extension(base / "mods", "pyns_libchain", "libs_a", (*origin, "-Wl,-rpath-link," + str(c.parent)))
    build_extension(base / "mods", "pyns_libmissing", "libs_gone", ("-L", str(gone.parent), "-l:liblibs_gone.so.1"))
    shutil.rmtree(base / "gone")  # the host has it no more
    for name, label in (("libs_c", "C@container"), ("libs_b", "B@container")):
        impostor = build_library(base / "impostors", name, label)
        container.install(impostor, f"{CONTAINER_LIB}/lib{name}.so.1")
    yield base
    rmtree(base)


CHAIN = r"""
import json, sys
try:
    import pyns_libchain
    chain = pyns_libchain.chain()
except ImportError as error:
    chain = "ImportError: %s" % error
try:
    import pyns_libmissing
    missing = "imported: " + pyns_libmissing.chain()
except ImportError as error:
    missing = "ImportError: %s" % error
print("RESULT " + json.dumps({"chain": chain, "missing": missing}))
"""


def test_runpath_rpath_origin_and_library_path_as_the_host_loader(
    built: Path, container: Container, libs_venv: Venv
) -> None:
    env = {"PYTHONPATH": str(built / "mods"), "LD_LIBRARY_PATH": str(built / "ldpath")}
    host = run_python(libs_venv.python, CHAIN, env)
    assert host.returncode == 0, host.stderr
    on_host = result_of(host.stdout)
    assert on_host["chain"] == "A@host > B@host > C@host"
    inside = container.run_joined(libs_venv.python, CHAIN, env)
    assert inside.returncode == 0, inside.stderr
    assert result_of(inside.stdout)["chain"] == on_host["chain"]


def test_a_library_the_host_lacks_is_the_hosts_import_error(built: Path, container: Container, libs_venv: Venv) -> None:
    env = {"PYTHONPATH": str(built / "mods"), "LD_LIBRARY_PATH": str(built / "ldpath")}
    on_host = result_of(run_python(libs_venv.python, CHAIN, env).stdout)
    assert on_host["missing"] == (
        "ImportError: liblibs_gone.so.1: cannot open shared object file: No such file or directory"
    )
    # the container has that library; the module still fails as on the host
    assert container.shell(f"test -e {CONTAINER_LIB}/liblibs_gone.so.1 && echo there").strip() == "there"
    inside = container.run_joined(libs_venv.python, CHAIN, env)
    assert inside.returncode == 0, inside.stderr
    assert result_of(inside.stdout)["missing"] == on_host["missing"]


def test_idle_and_plain_joins_do_not_load_the_module(container: Container, libs_venv: Venv) -> None:
    code = (
        "import ssl, sys, json; print('RESULT ' + json.dumps({'loaded': 'pyns_boot._elfdeps' in sys.modules, "
        "'ssl': ssl.OPENSSL_VERSION}))"
    )
    idle = run_python(libs_venv.python, code)
    assert idle.returncode == 0, idle.stderr
    assert result_of(idle.stdout)["loaded"] is False
    uts = run_python(libs_venv.python, code, {"gons_uts": container.ref("uts")})
    assert uts.returncode == 0, uts.stderr
    assert result_of(uts.stdout)["loaded"] is False
    joined = container.run_joined(libs_venv.python, code)
    assert joined.returncode == 0, joined.stderr
    assert result_of(joined.stdout) == {"loaded": True, "ssl": result_of(idle.stdout)["ssl"]}


def test_call_in_workers_preload_the_same_way(container: Container, libs_venv: Venv, workdir: Path) -> None:
    script = workdir / "foreign-libs-call.py"
    script.write_text(
        "import json, sys\n"
        "from pyns_boot import Namespaces, call_in\n\n\n"
        "def probe():\n"
        "    import ssl, sqlite3, lzma, subprocess\n"
        "    release = subprocess.run(['cat', '/etc/os-release'], capture_output=True, text=True).stdout\n"
        "    return [ssl.OPENSSL_VERSION, sqlite3.sqlite_version, 'sid' in release]\n\n\n"
        "if __name__ == '__main__':\n"
        "    here = probe()[:2]\n"
        "    there = call_in(Namespaces.of_pid(int(sys.argv[1]), 'mnt'), probe)\n"
        "    print('RESULT ' + json.dumps({'here': here, 'there': there}))\n"
    )
    result = subprocess.run(
        ["nsenter", "-t", container.pid, "--pid", "--", libs_venv.python, str(script), container.pid],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    out = result_of(result.stdout)
    assert out["there"] == [*out["here"], True]
