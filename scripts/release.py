"""The release artifacts: an sdist and, built from it, the manylinux2014 abi3 wheels.

    nox -s dist                       # the usual way (noxfile.py calls main())
    python scripts/release.py [OUT]   # the same, with this interpreter's tools

The C compiler is zig (the `ziglang` package on PyPI, pinned in
requirements-dev.txt) targeting glibc 2.17, so one x86_64 machine builds both
wheels without a container image; docs/development.md, "Building release
artifacts", says why.  Each step checks its result and stops with a
ReleaseError that says what is wrong and what to do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
ZIG_VERSION = "0.17.1"  # keep in step with requirements-dev.txt
ZIG_INSTALL = f"pip install ziglang=={ZIG_VERSION} (it is in requirements-dev.txt)"
ALLOW_DIRTY = "PYNS_BOOT_DIST_ALLOW_DIRTY"
GLIBC = (2, 17)
ARCHES = ("x86_64", "aarch64")
# ELF e_machine of each architecture (the ELF specification's EM_X86_64, EM_AARCH64).
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}
EXTENSION = "_pyns_boot.abi3.so"


class ReleaseError(Exception):
    """A release step cannot go on; the message says why and what to do."""


def platform_tag(arch: str) -> str:
    return "manylinux_{}_{}_{}.manylinux2014_{}".format(*GLIBC, arch, arch)


def wheel_tag(arch: str) -> str:
    return "cp38-abi3-" + platform_tag(arch)


# ---------------------------------------------------------------- checks before a build


def find_zig(python: str = sys.executable, path: str | None = None) -> list[str]:
    """The command that runs zig ZIG_VERSION: `python -m ziglang`, else `zig` on path.

    Raises ReleaseError naming what to install when there is none, or only
    another version (a different zig may link other glibc stubs)."""
    path = os.environ.get("PATH", "") if path is None else path
    candidates: list[list[str]] = []
    probe = subprocess.run(
        [python, "-c", "import ziglang"], capture_output=True, text=True, env={"PATH": path}, check=False
    )
    if probe.returncode == 0:
        candidates.append([python, "-m", "ziglang"])
    on_path = shutil.which("zig", path=path)
    if on_path:
        candidates.append([on_path])
    if not candidates:
        raise ReleaseError(
            f"no C compiler for the release wheels: zig {ZIG_VERSION} is neither importable by {python} (ziglang) "
            "nor on PATH.\n"
            f"Install it: {ZIG_INSTALL}"
        )
    found = []
    for command in candidates:
        try:
            out = subprocess.run(
                [*command, "version"], capture_output=True, text=True, env={"PATH": path}, timeout=120, check=False
            )
        except OSError as error:
            found.append("{}: {}".format(" ".join(command), error))
            continue
        version = out.stdout.strip()
        if out.returncode == 0 and version == ZIG_VERSION:
            return command
        found.append("{}: {}".format(" ".join(command), version or f"exit {out.returncode} {out.stderr.strip()}"))
    raise ReleaseError(
        "the release wheels need zig {}; found only: {}.\nInstall it: {}".format(
            ZIG_VERSION, "; ".join(found), ZIG_INSTALL
        )
    )


def check_clean_tree(root: Path = ROOT, environ: dict[str, str] | None = None) -> str | None:
    """Refuse a work tree with uncommitted or untracked files (they would go into the sdist
    without being in any commit), unless PYNS_BOOT_DIST_ALLOW_DIRTY=1.  Returns a warning
    for an allowed dirty tree, else None."""
    environ = dict(os.environ) if environ is None else environ
    allowed = environ.get(ALLOW_DIRTY) == "1"
    way_out = f"commit or stash them (or set {ALLOW_DIRTY}=1 for a build that is not for upload)"
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        problem = f"cannot check the work tree {root} for uncommitted files (git: {error})"
    else:
        if out.returncode != 0:
            problem = f"cannot check the work tree {root} for uncommitted files: {out.stderr.strip()}"
        elif out.stdout.strip():
            lines = out.stdout.rstrip("\n").splitlines()
            shown = "\n  ".join(lines[:20]) + (f"\n  ... {len(lines) - 20} more" if len(lines) > 20 else "")
            problem = f"the work tree {root} is not clean; the sdist would hold files no commit has:\n  {shown}"
        else:
            return None
    if not allowed:
        raise ReleaseError(f"{problem}\nRefusing to build release artifacts: {way_out}")
    return f"{problem}\n{ALLOW_DIRTY}=1: building anyway; do not upload these artifacts."


def python_include(python: str) -> Path:
    """The C headers of the interpreter that builds (the extension uses only the limited API)."""
    out = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    include = Path(out.stdout.strip())
    if include.name == "python3.8":
        raise ReleaseError(
            f"{python} is Python 3.8, whose Python.h includes <crypt.h>, which zig's C library headers lack: "
            "run nox -s dist with Python 3.9 or newer (the wheel still serves 3.8: abi3)"
        )
    if not (include / "Python.h").is_file():
        raise ReleaseError(
            "{} has no C headers (no {}): install its development package (Debian: python3-dev)".format(
                python, include / "Python.h"
            )
        )
    return include


def multiarch_overlay(include: Path, arch: str, scratch: Path) -> list[str]:
    """Debian's pyconfig.h only picks <ARCH-linux-gnu/python3.X/pyconfig.h>; the host has
    just its own.  For another target, an include dir that offers the host's under the
    target's name (the limited API uses nothing of pyconfig.h that differs between
    x86_64 and aarch64, both LP64 little-endian Linux).  [] for an interpreter with a
    plain pyconfig.h (pyenv, python.org builds)."""
    text = (include / "pyconfig.h").read_text()
    match = re.search(r"#\s*include <x86_64-linux-gnu/(python[^/]+)/pyconfig.h>", text)
    if not match or arch == "x86_64":
        return []
    host = Path("/usr/include/x86_64-linux-gnu") / match.group(1) / "pyconfig.h"
    target = scratch / "include" / (f"{arch}-linux-gnu") / match.group(1) / "pyconfig.h"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(host, target)
    return ["-I{}".format(scratch / "include")]


# ---------------------------------------------------------------- building


def run(args: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        list(args), cwd=str(cwd) if cwd else None, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ReleaseError(
            "failed (exit {}): {}\n{}\n{}".format(
                result.returncode, " ".join(args), result.stdout[-4000:], result.stderr[-4000:]
            )
        )
    return result.stdout


def build_sdist(out: Path, python: str = sys.executable) -> Path:
    run([python, "-m", "build", "--sdist", "--outdir", str(out), str(ROOT)])
    (sdist,) = out.glob("pyns_boot-*.tar.gz")
    return sdist


def unpack(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(into, filter="data")
        else:
            archive.extractall(into)  # our own archive, just built
    (tree,) = into.iterdir()
    return tree


def build_wheel(tree: Path, arch: str, zig: list[str], out: Path, python: str = sys.executable) -> Path:
    """One manylinux2014 wheel of the unpacked sdist `tree`, compiled by zig for glibc 2.17 on arch."""
    scratch = Path(tempfile.mkdtemp(prefix=f"pyns-dist-{arch}-"))
    try:
        include = python_include(python)
        cc = [*zig, "cc", "-target", "{}-linux-gnu.{}.{}".format(arch, *GLIBC)]
        # -ldl: glibc 2.17 keeps dlsym/dlopen in libdl.so.2 (libc from 2.34 on); harmless where unused.
        env = dict(os.environ)
        env.update(
            CC=" ".join(cc),
            LDSHARED=" ".join([*cc, "-shared"]),
            LDFLAGS="-ldl",
            CFLAGS=" ".join(multiarch_overlay(include, arch, scratch)),
            PYNS_BOOT_WERROR="1",  # setup.py: a warning fails the release build
        )
        built = scratch / "wheel"
        run([python, "-m", "build", "--wheel", "--outdir", str(built), str(tree)], env=env)
        (wheel,) = built.glob("pyns_boot-*-cp38-abi3-linux_*.whl")
        run([python, "-m", "wheel", "tags", "--remove", "--platform-tag", platform_tag(arch), str(wheel)])
        # wheel tags writes the platform tags sorted (manylinux2014_... first); the file is named
        # in auditwheel's order, newest-style tag first, as on the package index.  Same tag set.
        (tagged,) = built.glob("pyns_boot-*-cp38-abi3-*manylinux*.whl")
        name = tagged.name.split("-cp38-abi3-")[0] + f"-{wheel_tag(arch)}.whl"
        target = out / name
        shutil.move(str(tagged), str(target))
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------- checks of the artifacts


def glibc_versions(library: Path) -> set[tuple[int, ...]]:
    """The GLIBC_x.y versions that the library's undefined symbols need (pyelftools, which auditwheel brings)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    versions: set[tuple[int, ...]] = set()
    with open(library, "rb") as stream:
        for section in ELFFile(stream).iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for _, auxiliaries in section.iter_versions():
                    for aux in auxiliaries:
                        match = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)+)", aux.name)
                        if match:
                            versions.add(tuple(int(p) for p in match.group(1).split(".")))
    return versions


def check_wheel(wheel: Path, arch: str, python: str = sys.executable) -> str:
    """The wheel's tag, its extension's ELF machine and glibc symbol versions, and auditwheel's verdict."""
    if not wheel.name.endswith(f"-{wheel_tag(arch)}.whl"):
        raise ReleaseError(f"{wheel.name}: expected the tag {wheel_tag(arch)}")
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as tmp:
        if EXTENSION not in archive.namelist():
            raise ReleaseError(f"{wheel.name} holds no {EXTENSION}")
        (wheel_file,) = [n for n in archive.namelist() if n.endswith(".dist-info/WHEEL")]
        tags = sorted(
            line[len("Tag: ") :] for line in archive.read(wheel_file).decode().splitlines() if line.startswith("Tag: ")
        )
        expected_tags = sorted("cp38-abi3-" + t for t in platform_tag(arch).split("."))
        if tags != expected_tags:
            raise ReleaseError(f"{wheel.name}: WHEEL says Tag {tags}, expected {expected_tags}")
        library = Path(archive.extract(EXTENSION, tmp))
        header = library.read_bytes()[:20]
        machine = int.from_bytes(header[18:20], "little")
        if header[:4] != b"\x7fELF" or machine != ELF_MACHINE[arch]:
            raise ReleaseError(f"{wheel.name}: {EXTENSION} is not an {arch} ELF file (e_machine {machine})")
        newest = max(glibc_versions(library))
        if newest > GLIBC:
            raise ReleaseError(
                "{}: {} needs GLIBC_{}, newer than {}.{}".format(
                    wheel.name, EXTENSION, ".".join(map(str, newest)), *GLIBC
                )
            )
    shown = run([python, "-m", "auditwheel", "show", str(wheel)])
    verdict = " ".join(shown.split())
    expected = f'consistent with the following platform tag: "manylinux_2_17_{arch}"'
    if expected not in verdict:
        raise ReleaseError(f"auditwheel show {wheel.name} does not say {expected}:\n{shown}")
    return "{}: ELF {}, newest symbol GLIBC_{}; auditwheel: manylinux_2_17 (manylinux2014)".format(
        wheel.name,
        arch,
        ".".join(map(str, newest)),
    )


def twine_check(paths: Sequence[Path], python: str = sys.executable) -> None:
    run([python, "-m", "twine", "check", "--strict", *map(str, paths)])


# ---------------------------------------------------------------- all of it


def main(out: Path = ROOT / "dist", python: str = sys.executable, log: Callable[[str], None] = print) -> list[Path]:
    """The sdist and the two wheels into out (earlier pyns_boot artifacts there are removed)."""
    warning = check_clean_tree()
    if warning:
        log("WARNING: " + warning)
    zig = find_zig(python)
    log("zig {}: {}".format(ZIG_VERSION, " ".join(zig)))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("pyns_boot-*"):
        old.unlink()
    sdist = build_sdist(out, python)
    log(f"sdist: {sdist.name}")
    artifacts = [sdist]
    for arch in ARCHES:
        # A fresh tree per target: setuptools would take the other target's build/ as up to date.
        with tempfile.TemporaryDirectory(prefix="pyns-dist-") as tmp:
            wheel = build_wheel(unpack(sdist, Path(tmp)), arch, zig, out, python)
            log(check_wheel(wheel, arch, python))
            artifacts.append(wheel)
    twine_check(artifacts, python)
    log("twine check --strict: passed for {}".format(", ".join(p.name for p in artifacts)))
    return artifacts


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "dist")
    except ReleaseError as error:
        sys.exit(f"release: {error}")
