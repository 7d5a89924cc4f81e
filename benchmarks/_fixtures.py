"""What the start-up benchmark measures against: the wheel, three venvs per
interpreter and processes that hold fresh namespaces.

Everything is real: the wheel is built from the source tree, the venvs are
made with ``python -m venv`` and the holders with unshare(1).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# One holder implementation for tests and benchmarks.
sys.path.insert(0, str(REPO / "tests" / "support"))
import nsutil as nsutil  # noqa: E402  (re-exported: the benchmarks use _fixtures.nsutil)

TYPES = nsutil.TYPES
MIN_VERSION = (3, 8)


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a set-up command; on failure show what it printed."""
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise SystemExit("benchmark set-up failed: {}\n{}{}".format(" ".join(args), result.stdout, result.stderr))
    return result  # type: ignore[no-any-return]


def version_of(python: str) -> str:
    return run([python, "-c", "import platform; print(platform.python_version())"]).stdout.strip()


def default_pythons() -> list[str]:
    """The oldest and the newest supported CPython that pyenv has, else this one."""
    found = all_pythons()
    return found if len(found) == 1 else [found[0], found[-1]]


def all_pythons() -> list[str]:
    """Every supported CPython that pyenv has (oldest first), else this one."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found: list[tuple[tuple[int, ...], str]] = []
    if root.is_dir():
        for entry in root.iterdir():
            match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", entry.name)
            binary = entry / "bin" / "python3"
            if match and binary.exists():
                version = tuple(int(part) for part in match.groups())
                if version[:2] >= MIN_VERSION:
                    found.append((version, str(binary)))
    if not found:
        return [sys.executable]
    found.sort()
    return [binary for _, binary in found]


def build_wheel(out_dir: Path, source: Path) -> Path:
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    run([*pip, "wheel", "--no-deps", "-w", str(out_dir), str(source)])
    (wheel,) = out_dir.glob("pyns_boot-*.whl")
    return wheel


class Venvs:
    """Three venvs of one interpreter that differ only in pyns_boot.

    ``plain``: nothing installed.  ``hook``: the wheel installed.  ``floor``:
    the wheel installed, with the one line of pyns_boot.pth commented out:
    what reading any .pth file costs, the floor for the hook's idle cost.
    The venvs are made without pip, so pyns_boot.pth is the only .pth file.
    """

    def __init__(self, base_python: str, wheel: Path, workdir: Path) -> None:
        self.version = version_of(base_python)
        self.dirs = {}
        for kind in ("plain", "floor", "hook"):
            path = workdir / (f"py{self.version}-{kind}")
            run([base_python, "-m", "venv", "--without-pip", str(path)])
            if kind != "plain":
                pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
                run([*pip, "--python", str(path / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)])
            self.dirs[kind] = path
        (pth,) = self.site_packages("floor").glob("pyns_boot.pth")
        pth.write_text("".join("#" + line for line in pth.read_text().splitlines(keepends=True)))

    def python(self, kind: str) -> str:
        return str(self.dirs[kind] / "bin" / "python")

    def site_packages(self, kind: str) -> Path:
        (path,) = (self.dirs[kind] / "lib").glob("python*/site-packages")
        return path


class Holder(nsutil.Holder):
    """The test suite's namespace holder (tests/support/nsutil.py), plus its gons_* variables."""

    def env(self) -> dict[str, str]:
        return {"gons_" + t: self.ref(t) for t in self.types}


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: nothing that steers Python or the hook."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def tool(name: str) -> str | None:
    return shutil.which(name)
