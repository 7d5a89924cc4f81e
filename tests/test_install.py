"""Packaging: the archives `python -m build` makes, and every install route.

Each route installs into a fresh virtualenv of the interpreter under test
(PYNS_BOOT_TEST_PYTHON), shows the hook active there in a real child
interpreter that joins a real namespace, then uninstalls and checks that
every file is gone again, pyns_boot.pth included.  Source installs use an
unpacked copy of the sdist, so they also prove the sdist is complete (and an
editable build writes its extension into that copy, not into the repo).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Callable, Iterator

import pytest
from nsutil import REPO, Holder, Venv, clean_env, make_venv, probe, rmtree, run_python

# The cp38-abi3 wheel serves 3.8-3.17 through the .pth line alone; pyns_boot.start
# (in the sdist) is shipped only by a wheel built for 3.18+ (setup.py, test_pep829).
STARTUP_FILES = ("pyns_boot.pth",)
# The C helper sits at the root, beside the .pth; the package imports it by the same name.
EXTENSION = "_pyns_boot.abi3.so"
# scripts/test.sh alone builds a plain linux_x86_64 wheel with the host's compiler; CI tests the
# manylinux2014 wheel of `nox -s dist` (scripts/release.py), given as PYNS_BOOT_WHEEL.
WHEEL_TAGS = ("cp38-abi3-linux_x86_64", "cp38-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64")
# setuptools >= 77 (Python 3.9+) puts the license under licenses/, older ones beside METADATA.
DIST_INFO_FILES = {"METADATA", "WHEEL", "RECORD", "top_level.txt", "entry_points.txt", "licenses/LICENSE", "LICENSE"}
BUILD_TIMEOUT = 600


def package_files() -> set[str]:
    """What the wheel must hold of the package: its modules, stubs, marker, the extension."""
    names = {p.name for p in (REPO / "pyns_boot").iterdir() if p.is_file() and p.suffix in (".py", ".pyi")}
    names |= {"py.typed"}
    return {"pyns_boot/" + n for n in names} | {EXTENSION}


def version() -> str:
    for line in (REPO / "pyns_boot" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise AssertionError("no __version__ in pyns_boot/__init__.py")


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=str(cwd) if cwd else None,
        timeout=BUILD_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result


# ---------------------------------------------------------------- archives


@pytest.fixture(scope="module")
def sdist(workdir: Path) -> Path:
    out = workdir / "sdist"
    run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(REPO)])
    (path,) = out.glob("pyns_boot-*.tar.gz")
    return path


@pytest.fixture
def unpacked_sdist(sdist: Path, workdir: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A source tree of this test's own, unpacked from the sdist."""
    base = workdir / ("src-" + request.node.name.replace("[", "-").replace("]", ""))
    base.mkdir()
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):  # 3.12, and security releases of 3.8-3.11
            archive.extractall(base, filter="data")
        else:
            archive.extractall(base)  # our own archive, just built
    (tree,) = base.iterdir()
    yield tree
    rmtree(base)


def wheel_tag(wheel: Path) -> str:
    """python-abi-platform of a wheel's file name (pyns_boot-VERSION-TAG.whl)."""
    return wheel.name[: -len(".whl")].split("-", 2)[2]


def wheel_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}


def dist_info() -> str:
    return f"pyns_boot-{version()}.dist-info/"


def test_wheel_holds_exactly_the_package_startup_files_and_metadata(wheel: Path) -> None:
    assert wheel.name in {f"pyns_boot-{version()}-{tag}.whl" for tag in WHEEL_TAGS}, wheel.name
    members = wheel_members(wheel)
    info = dist_info()
    metadata_files = {n[len(info) :] for n in members if n.startswith(info)}
    assert metadata_files <= DIST_INFO_FILES, metadata_files - DIST_INFO_FILES
    assert {"METADATA", "WHEEL", "RECORD"} <= metadata_files
    script = f"pyns_boot-{version()}.data/scripts/pyns-boot"
    assert {n for n in members if not n.startswith(info)} == set(STARTUP_FILES) | package_files() | {script}
    for name in STARTUP_FILES:
        assert members[name] == (REPO / name).read_bytes(), name
    assert members[script] == (REPO / "bin" / "pyns-boot").read_bytes()  # #!python: pip writes the path
    licenses = [n for n in metadata_files if n.endswith("LICENSE")]
    assert len(licenses) == 1
    assert members[info + licenses[0]] == (REPO / "LICENSE").read_bytes()


def test_wheel_metadata(wheel: Path) -> None:
    members = wheel_members(wheel)
    info = dist_info()
    wheel_file = members[info + "WHEEL"].decode()
    assert "Root-Is-Purelib: false" in wheel_file
    # One Tag line per platform tag of the file name (manylinux_2_17_x86_64.manylinux2014_x86_64: two).
    python_abi, platforms = wheel_tag(wheel).rsplit("-", 1)
    tags = sorted(line for line in wheel_file.splitlines() if line.startswith("Tag: "))
    assert tags == sorted(f"Tag: {python_abi}-{p}" for p in platforms.split(".")), tags
    metadata = HeaderParser().parsestr(members[info + "METADATA"].decode())
    assert metadata["Name"] == "pyns_boot"
    assert metadata["Version"] == version()
    assert metadata["Requires-Python"] == ">=3.8"
    # No runtime dependency: every Requires-Dist belongs to an extra.
    for requirement in metadata.get_all("Requires-Dist") or []:
        assert "extra ==" in requirement, requirement
    assert metadata.get_all("Project-URL"), "no project URLs"
    classifiers = metadata.get_all("Classifier") or []
    for minor in range(8, 16):  # 3.14 and 3.15: the suite runs on Debian sid's (noxfile, tests-3.14/3.15)
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Programming Language :: Python :: Implementation :: CPython" in classifiers
    assert not [c for c in classifiers if "OS Independent" in c or "PyPy" in c]
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    assert isinstance(description, str) and description.strip() == (REPO / "README.md").read_text().strip()
    assert metadata["Keywords"]
    assert "Typing :: Typed" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers


def test_wheel_record_covers_every_file(wheel: Path) -> None:
    members = wheel_members(wheel)
    info = dist_info()
    record = {}
    for line in members[info + "RECORD"].decode().splitlines():
        name, digest, size = line.rsplit(",", 2)
        record[name] = (digest, size)
    assert set(record) == set(members)
    for name, data in members.items():
        if name == info + "RECORD":
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert record[name] == ("sha256=" + digest, str(len(data))), name


def test_sdist_holds_the_sources_and_nothing_built(sdist: Path) -> None:
    assert sdist.name == f"pyns_boot-{version()}.tar.gz"
    prefix = f"pyns_boot-{version()}/"
    with tarfile.open(sdist) as archive:
        names = {m.name[len(prefix) :] for m in archive.getmembers() if m.isfile()}
    required = {
        "PKG-INFO",
        "pyproject.toml",
        "setup.py",
        "MANIFEST.in",
        "requirements-test.txt",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "pyns_boot.pth",
        "pyns_boot.start",
        "pyns_boot/_pyns_boot.c",
        "pyns_boot/_setns.c",
        "pyns_boot/_setns.h",
        "pyns_boot/_order.c",
        "pyns_boot/_reference.c",
        "pyns_boot/_setns_internal.h",
        "stubs/_pyns_boot.pyi",
        "pyns_boot/py.typed",
        "tests/conftest.py",
        "tests/support/nsutil.py",
        "docs/env-interface.md",
        "docs/cli.md",
        "docs/workers.md",
        "docs/foreign-mounts.md",
        "docs/limits.md",
        "docs/hardening.md",
        "docs/development.md",
        "benchmarks/README.md",
    }
    required |= {n for n in package_files() if n.endswith(".py")}
    required |= {f"pyns_boot/{p.name}" for p in (REPO / "pyns_boot").glob("*.[ch]")}  # every C source and header
    assert required <= names, required - names
    for name in names:
        parts = name.split("/")
        assert not name.endswith((".so", ".pyc", ".o")), name
        assert "__pycache__" not in parts, name
        assert not {".git", ".nox", "build", "dist", ".venv-test"} & set(parts[:1]), name


def metadata_fields(members: dict[str, bytes]) -> dict[str, list[str]]:
    metadata = HeaderParser().parsestr(members[dist_info() + "METADATA"].decode())
    fields = ("Name", "Version", "Requires-Python", "Requires-Dist", "Classifier", "Project-URL", "Summary")
    return {field: sorted(metadata.get_all(field) or []) for field in fields}


def test_sdist_rebuilds_the_same_wheel(sdist: Path, wheel: Path, workdir: Path) -> None:
    out = workdir / "wheel-from-sdist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(sdist)])
    (rebuilt,) = out.glob("pyns_boot-*.whl")
    # pip builds with the host's compiler: the same wheel but for its platform tag (linux_x86_64)
    assert wheel_tag(rebuilt) == WHEEL_TAGS[0]
    assert rebuilt.name[: -len(WHEEL_TAGS[0] + ".whl")] == wheel.name[: -len(wheel_tag(wheel) + ".whl")]
    ours, theirs = wheel_members(wheel), wheel_members(rebuilt)
    info = dist_info()
    ours_files = {n for n in ours if not n.startswith(info)}
    assert ours_files == {n for n in theirs if not n.startswith(info)}
    # The compiled extension may differ in build paths; every other file of
    # the package is byte for byte the same.  The dist-info layout depends on
    # the setuptools release the build interpreter gets (the license moved
    # to licenses/ in 77, which needs Python 3.9): its content must agree.
    for name in ours_files:
        if not name.endswith(".so"):
            assert ours[name] == theirs[name], name
    assert metadata_fields(ours) == metadata_fields(theirs)


# ---------------------------------------------------------------- install routes


def uv(venv: Venv, *args: str) -> list[str]:
    """uv ARGS --python VENV, its temporary files (uv-setuptools-*.lock, which it keeps) beside the venv."""
    tmp = venv.path.with_name(venv.path.name + "-tmp")  # below workdir, which the session removes
    tmp.mkdir(exist_ok=True)
    return ["env", f"TMPDIR={tmp}", sys.executable, "-m", "uv", *args, "--python", venv.python]


def pip_cmd(venv: Venv, *args: str) -> list[str]:
    return [venv.python, "-m", "pip", "--disable-pip-version-check", "-q", *args]


ROUTES: dict[str, tuple[Callable[[Venv, Path, Path], list[str]], str, bool]] = {
    # name: (install command from (venv, wheel, source tree), the tool that uninstalls, editable)
    "pip-wheel": (lambda v, w, s: pip_cmd(v, "install", "--no-deps", str(w)), "pip", False),
    "pip-source": (lambda v, w, s: pip_cmd(v, "install", str(s)), "pip", False),
    "pip-editable": (lambda v, w, s: pip_cmd(v, "install", "-e", str(s)), "pip", True),
    "uv-wheel": (lambda v, w, s: uv(v, "pip", "install", str(w)), "uv", False),
    "uv-source": (lambda v, w, s: uv(v, "pip", "install", str(s)), "uv", False),
    "uv-editable": (lambda v, w, s: uv(v, "pip", "install", "-e", str(s)), "uv", True),
}


def snapshot(venv: Venv) -> set[str]:
    """Every path of the venv, except bytecode of other packages (pip's own runs write it)
    and uv's lock file of the environment (.lock at its root)."""
    paths = set()
    for path in venv.path.rglob("*"):
        relative = str(path.relative_to(venv.path))
        if ("__pycache__" in relative and "pyns" not in relative) or relative == ".lock":
            continue
        paths.add(relative)
    return paths


def orphan_bytecode(path: Path) -> bool:
    if path.is_dir():
        return path.name == "__pycache__" and all(orphan_bytecode(p) for p in path.iterdir())
    if path.parent.name != "__pycache__" or path.suffix != ".pyc":
        return False
    module = path.name.split(".", 1)[0]
    return "pyns" in module and not (path.parent.parent / (module + ".py")).exists()


@pytest.fixture
def route_venv(workdir: Path, request: pytest.FixtureRequest) -> Iterator[Venv]:
    path = workdir / ("route-" + request.node.name.replace("[", "-").replace("]", ""))
    venv = make_venv(path)
    yield venv
    rmtree(path)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_install_route_activates_the_hook_and_uninstall_removes_everything(
    route: str,
    route_venv: Venv,
    wheel: Path,
    unpacked_sdist: Path,
    holder: Callable[..., Holder],
) -> None:
    install, tool, editable = ROUTES[route]
    before = snapshot(route_venv)
    run(install(route_venv, wheel, unpacked_sdist))

    site = route_venv.site_packages
    for name in STARTUP_FILES:
        installed = site / name
        assert installed.is_file() and not installed.is_symlink(), name
        assert installed.read_bytes() == (REPO / name).read_bytes(), name
    assert not (site / "pyns_boot.start").exists()  # 3.15-3.17 would skip the .pth line for it

    target = holder(["uts"])
    report = probe(route_venv.python, {"gons_uts": target.ref("uts")})
    assert report["links"]["uts"] == target.link("uts")
    assert report["status"]["state"] == "succeeded"
    assert report["env"] == {}

    where = run_python(
        route_venv.python, "import pyns_boot, _pyns_boot as s; print(pyns_boot.__file__); print(s.__file__)"
    )
    assert where.returncode == 0, where.stderr
    package_file, extension_file = where.stdout.split()
    home = unpacked_sdist if editable else site
    assert os.path.realpath(package_file).startswith(os.path.realpath(home) + os.sep), (package_file, home)
    assert Path(extension_file).name == EXTENSION
    assert [p.name for p in Path(extension_file).parent.glob("_pyns_boot*")] == [EXTENSION]  # whoever built it
    assert Path(extension_file).parent == Path(package_file).parent.parent

    # The doctor sees no shadowing in any route, editable ones included (their package is the source tree).
    doctor = subprocess.run(
        [str(route_venv.path / "bin" / "pyns-boot"), "doctor", "--json"],
        capture_output=True,
        text=True,
        cwd="/",
        env=clean_env(),
        timeout=120,
    )
    (package,) = [f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "package"]
    assert package["level"] == "ok", package
    assert package["message"].endswith("(editable install)") == editable, package

    if tool == "pip":
        run(pip_cmd(route_venv, "uninstall", "-y", "pyns_boot"))
    else:
        run(uv(route_venv, "pip", "uninstall", "pyns_boot"))
    after = snapshot(route_venv)
    assert not before - after, sorted(before - after)
    left = sorted(after - before)
    if tool == "uv":
        # uv removes what RECORD lists; bytecode the interpreter wrote at run
        # time for the editable finder module stays as an orphan (no source
        # beside it, so nothing can import it).  pip removes it as well.
        left = [p for p in left if not orphan_bytecode(route_venv.path / p)]
    assert not left, left

    gone = probe(route_venv.python, {"gons_uts": target.ref("uts")})
    assert gone["status"] is None
    assert gone["links"]["uts"] != target.link("uts")


def test_pip_reinstall_over_an_editable_install_keeps_one_startup_file(
    route_venv: Venv, wheel: Path, unpacked_sdist: Path
) -> None:
    run(pip_cmd(route_venv, "install", "-e", str(unpacked_sdist)))
    run(pip_cmd(route_venv, "install", "--force-reinstall", "--no-deps", str(wheel)))
    site = route_venv.site_packages
    pth = sorted(p.name for p in site.glob("*.pth") if "pyns" in p.name)
    assert pth == ["pyns_boot.pth"]  # the editable finder's .pth went with the editable install
    run(pip_cmd(route_venv, "uninstall", "-y", "pyns_boot"))
    assert not [p for p in os.listdir(site) if "pyns" in p]


# ---------------------------------------------------------------- compiler warnings


@pytest.mark.parametrize("werror", ["1", "0", ""], ids=["PYNS_BOOT_WERROR=1", "PYNS_BOOT_WERROR=0", "unset"])
def test_compiler_warnings_fail_the_build_only_when_asked(unpacked_sdist: Path, tmp_path: Path, werror: str) -> None:
    """A user's compiler that warns about the C code (here a #warning forced into every file) must not break
    a build from the sdist; PYNS_BOOT_WERROR=1 (.ci/run, noxfile.py, scripts/test.sh, the release build)
    makes the same warning an error."""
    header = tmp_path / "warn.h"
    header.write_text('#warning "pyns_boot test: a compiler warning"\n')
    env = clean_env(PYNS_BOOT_EXTRA_CFLAGS=f"-include {header}")
    env.pop("PYNS_BOOT_WERROR", None)
    if werror:
        env["PYNS_BOOT_WERROR"] = werror
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "out"), str(unpacked_sdist)],
        capture_output=True,
        text=True,
        env=env,
        timeout=BUILD_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    built = list((tmp_path / "out").glob("pyns_boot-*.whl"))
    if werror == "1":
        assert result.returncode != 0 and built == [], output[-3000:]
        assert "error: #warning" in output and "-Werror" in output, output[-3000:]
    else:
        assert result.returncode == 0 and len(built) == 1, output[-3000:]
        assert "warning: #warning" in output and "-Werror" not in output, output[-3000:]
