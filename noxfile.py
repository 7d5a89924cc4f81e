"""The interpreter matrix and the quality gates.

    nox                               # lint, build the wheel, tests on every CPython found
    nox -s tests-3.8 tests-3.13       # some interpreters only (the wheel is built first)
    nox -s tests-3.12 -- -k subinterp # pytest arguments after --
    nox -s lint
    nox -s dist                       # the release artifacts into dist/ (scripts/release.py)

`build` makes the sdist and, from it, the one cp38-abi3 wheel (python -m
build).  Each `tests-3.X` session runs the README's test command,
scripts/test.sh, with a test venv of that interpreter, the throwaway venvs
of the tests made from it too (PYNS_BOOT_TEST_PYTHON), against that wheel
(PYNS_BOOT_WHEEL).  Interpreters are looked for among CPython 3.8-3.13 on
PATH and in pyenv's versions directory; only those found get a session.
`tests-3.14` and `tests-3.15` run the suite on Debian sid's interpreters in
a privileged container of the lab image (scripts/lab.sh setup first).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import nox

nox.needs_version = ">=2024.3.2"
# setup.py: C compiler warnings are errors in every build the sessions make (the wheel, the tests' builds,
# the release wheels); PYNS_BOOT_WERROR=0 in the environment turns that off.
os.environ.setdefault("PYNS_BOOT_WERROR", "1")
nox.options.sessions = ["lint", "build", "tests"]

ROOT = Path(__file__).resolve().parent
DIST = ROOT / ".nox" / "_dist"
VERSIONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


def _version_of(python: str) -> str | None:
    """'3.X' for a working, GIL-enabled CPython at that path, else None."""
    code = (
        "import sys, sysconfig; print('%d.%d' % sys.version_info[:2], sys.implementation.name,"
        " bool(sysconfig.get_config_var('Py_GIL_DISABLED')))"
    )
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    fields = out.stdout.split()
    if out.returncode != 0 or len(fields) != 3 or fields[1:] != ["cpython", "False"]:
        return None
    return fields[0]


def _patch_key(path: str) -> tuple[int, ...]:
    match = re.search(r"/versions/(\d+)\.(\d+)\.(\d+)/", path)
    return tuple(int(g) for g in match.groups()) if match else (0,)


def find_interpreters() -> dict[str, str]:
    """{'3.X': path} for each CPython 3.8-3.13 on PATH or installed by pyenv (newest patch release)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found: dict[str, str] = {}
    for version in VERSIONS:
        candidates = sorted(
            (str(p) for p in (pyenv_root / "versions").glob(f"{version}.*/bin/python{version}")),
            key=_patch_key,
            reverse=True,
        )
        on_path = shutil.which("python" + version)
        if on_path:
            candidates.append(on_path)  # may be a pyenv shim that refuses: checked below
        for candidate in candidates:
            if _version_of(candidate) == version:
                found[version] = candidate
                break
    return found


INTERPRETERS = find_interpreters()


def _expose(interpreters: dict[str, str]) -> None:
    """Put exactly the interpreters found first on PATH, as python3.X, for nox to find."""
    links = ROOT / ".nox" / "_interpreters"
    links.mkdir(parents=True, exist_ok=True)
    for version, path in interpreters.items():
        link = links / ("python" + version)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path)
    os.environ["PATH"] = str(links) + os.pathsep + os.environ.get("PATH", "")


_expose(INTERPRETERS)


def the_wheel() -> Path:
    given = os.environ.get("PYNS_BOOT_WHEEL")
    if given:
        return Path(given).resolve()
    wheels = sorted(DIST.glob("pyns_boot-*-cp38-abi3-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {DIST} (run the build session): {wheels}")
    return wheels[0]


@nox.session(python=False)
def build(session: nox.Session) -> None:
    """The sdist, then the cp38-abi3 wheel built from it, into .nox/_dist."""
    if os.environ.get("PYNS_BOOT_WHEEL"):
        session.log("PYNS_BOOT_WHEEL is set: using {}".format(os.environ["PYNS_BOOT_WHEEL"]))
        return
    shutil.rmtree(DIST, ignore_errors=True)
    session.run(sys.executable, "-m", "build", "--outdir", str(DIST), str(ROOT))
    session.log("built {}".format(", ".join(p.name for p in sorted(DIST.iterdir()))))


@nox.session(python=list(INTERPRETERS), venv_backend="venv", requires=["build"])
def tests(session: nox.Session) -> None:
    """The whole suite on one interpreter, against the one wheel."""
    python = INTERPRETERS[str(session.python)]
    session.run(
        str(ROOT / "scripts" / "test.sh"),
        *session.posargs,
        env={
            "PYNS_BOOT_TEST_VENV": str(session.virtualenv.location),  # the session's venv of that interpreter
            "PYNS_BOOT_TEST_PYTHON": python,
            "PYNS_BOOT_WHEEL": str(the_wheel()),
        },
        external=True,
    )


# CPython 3.14 and 3.15 come from Debian sid in the lab image (scripts/lab.sh setup): their
# sessions run scripts/test.sh inside a privileged container of it, the work tree bind-mounted,
# against the same wheel.  The container's CA bundle is the host's (lab.sh copies it): uv, which
# does not read pip's configuration, finds it through SSL_CERT_FILE.
LAB_VERSIONS = ("3.14", "3.15")
LAB_IMAGE = os.environ.get("PYNS_BOOT_LAB_IMAGE", "localhost/pyns-lab:sid")
PODMAN = ("podman", "--runtime", "/usr/sbin/runc")


def lab_command(version: str, wheel: Path, posargs: list[str]) -> list[str]:
    """podman run ... scripts/test.sh: the suite on the lab's python<version>."""
    return [
        *PODMAN,
        *(
            "run",
            "--rm",
            "--privileged",
            "--network",
            "host",
            "--name",
            f"pyns-boot-tests-{version}-{os.getpid()}",
        ),
        *("-e", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        *("-v", f"{ROOT}:/src", "-w", "/src", "-v", f"{wheel.parent}:/wheels:ro"),
        *(LAB_IMAGE, "env", "PYTHON=python" + version, "PYNS_BOOT_TEST_VENV=/opt/venv" + version.replace(".", "")),
        *("PYNS_BOOT_WHEEL=/wheels/" + wheel.name, "scripts/test.sh", *posargs),
    ]


def _lab_session(version: str) -> None:
    @nox.session(name="tests-" + version, python=False, requires=["build"])
    def lab_tests(session: nox.Session) -> None:
        """The whole suite on Debian sid's CPython, in a privileged container of the lab image."""
        if shutil.which("podman") is None or subprocess.run(["podman", "image", "exists", LAB_IMAGE]).returncode:
            session.error(f"no podman or no image {LAB_IMAGE}: run scripts/lab.sh setup first")
        session.run(*lab_command(version, the_wheel(), list(session.posargs)), external=True)


for _version in LAB_VERSIONS:
    _lab_session(_version)


def _release() -> ModuleType:
    """scripts/release.py, which builds and checks the release artifacts."""
    spec = importlib.util.spec_from_file_location("release", ROOT / "scripts" / "release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@nox.session(python=False)
def dist(session: nox.Session) -> None:
    """The release artifacts into dist/: the sdist, then from it the manylinux2014 abi3 wheels
    for x86_64 and aarch64 (zig cc, glibc 2.17), each checked (auditwheel show, twine check).
    Refuses a work tree with uncommitted files unless PYNS_BOOT_DIST_ALLOW_DIRTY=1."""
    release = _release()
    try:
        release.main(ROOT / "dist", sys.executable, session.log)
    except release.ReleaseError as error:
        session.error(str(error))


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, mypy --strict of the package, the tests, the benchmarks and
    the scripts (configured in pyproject.toml; .pre-commit-config.yaml runs the same)."""
    session.run(sys.executable, "-m", "ruff", "check", ".")
    session.run(sys.executable, "-m", "ruff", "format", "--check", ".")
    session.run(sys.executable, "-m", "mypy")


@nox.session(python=False)
def interpreters(session: nox.Session) -> None:
    """List the interpreters the matrix found."""
    for version in VERSIONS:
        session.log("{!s:<5} {}".format(version, INTERPRETERS.get(version, "not found")))
    for version in LAB_VERSIONS:
        session.log(f"{version!s:<5} python{version} in the lab image {LAB_IMAGE} (session tests-{version})")
