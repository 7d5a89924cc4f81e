"""One wheel for every interpreter, whoever builds it.

CPython 3.15 lists ".abi3-x86_64-linux-gnu.so" first among its extension
suffixes; setuptools names an abi3 extension after the first abi3 suffix of
the building interpreter, and 3.8-3.14 do not know that one.  setup.py names
the helper _pyns_boot.abi3.so whatever builds it.  Here the real Python 3.15
of the lab image (scripts/lab.sh setup) builds the wheel, and the
interpreter under test (3.8 in CI) installs it and joins through it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import nsutil
import pytest
from nsutil import REPO, Holder, make_venv, probe, rmtree, run_python, world_readable_dir

LAB_IMAGE = os.environ.get("PYNS_BOOT_LAB_IMAGE", "localhost/pyns-lab:sid")
PODMAN = ["podman", "--runtime", "/usr/sbin/runc"]
EXTENSION = "_pyns_boot.abi3.so"
SOURCES: tuple[str, ...] = (
    "pyns_boot",
    "bin",
    "stubs",
    "requirements-test.txt",
    "setup.py",
    "pyproject.toml",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
)
SOURCES += ("pyns_boot.pth", "pyns_boot.start")
BUILD_IN_LAB = (
    "set -e; mkdir /tmp/src; for f in {}; do cp -r /src/$f /tmp/src/; done; "
    "python3.15 -m venv /tmp/venv; /tmp/venv/bin/python -m pip -q --disable-pip-version-check "
    "wheel --no-deps -w /out /tmp/src; python3.15 -c 'import importlib.machinery as m; print(m.EXTENSION_SUFFIXES)'"
).format(" ".join(SOURCES))


def interpreter_minor(python: str) -> int:
    out = subprocess.run([python, "-c", "import sys; print(sys.version_info[1])"], capture_output=True, text=True)
    return int(out.stdout)


def lab_image_missing() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (run scripts/lab.sh setup; inside the lab container there is no older Python)"
    if subprocess.run(["podman", "image", "exists", LAB_IMAGE], capture_output=True).returncode != 0:
        return f"the lab image {LAB_IMAGE} does not exist: run scripts/lab.sh setup"
    return None


@pytest.fixture(scope="module")
def wheel_from_315() -> Iterator[Path]:
    if interpreter_minor(nsutil.test_python()) >= 15:
        pytest.skip("the point is an older interpreter installing 3.15's wheel; this one is 3.15+")
    missing = lab_image_missing()
    if missing:
        pytest.skip(missing)
    out = world_readable_dir("pyns-boot-py315-wheel-")
    result = subprocess.run(
        [
            *PODMAN,
            *("run", "--rm", "--network", "host", "-v", f"{REPO}:/src:ro", "-v", f"{out}:/out"),
            *(LAB_IMAGE, "sh", "-c", BUILD_IN_LAB),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'.abi3-x86_64-linux-gnu.so', '.abi3.so'" in result.stdout  # what made the old name
    (wheel,) = out.glob("pyns_boot-*.whl")
    yield wheel
    rmtree(out)


def test_wheel_built_by_315_holds_the_one_helper_name(wheel_from_315: Path) -> None:
    assert wheel_from_315.name.endswith("-cp38-abi3-linux_x86_64.whl")
    with zipfile.ZipFile(wheel_from_315) as archive:
        helpers = [n for n in archive.namelist() if n.startswith("_pyns_boot")]
        assert "pyns_boot.start" not in archive.namelist()
    assert helpers == [EXTENSION]


def test_wheel_built_by_315_joins_on_this_interpreter(
    wheel_from_315: Path, tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    venv = make_venv(tmp_path / "venv")
    venv.pip("install", "--no-deps", "--no-index", str(wheel_from_315))
    target = holder(["uts"])
    report = probe(venv.python, {"gons_uts": target.ref("uts")})
    assert (
        report["version"].split()[0]
        == subprocess.run(
            [nsutil.test_python(), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    assert report["links"]["uts"] == target.link("uts")
    assert report["status"]["state"] == "succeeded" and report["env"] == {}
    assert report["loaded_at_start"] == []  # the .pth line called the C helper, nothing of the package
    where = run_python(venv.python, "import _pyns_boot; print(_pyns_boot.__file__)")
    assert where.returncode == 0 and Path(where.stdout.strip()).name == EXTENSION, where
