"""pyns_boot._elfdeps reads ELF dynamic sections and ld.so.cache as the loader does.

Checked against binutils (readelf -d) and glibc (ldconfig -p) on real files:
the host's libraries, 32-bit objects linked with ld -m elf_i386, ELF files of
both classes and byte orders written here, and caches in the new and in the
old+new ("compat") format written by ldconfig.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from pyns_boot import _elfdeps

HOST_LIBRARIES = ("libssl.so.3", "libsqlite3.so.0", "libreadline.so.8", "libz.so.1", "libc.so.6")
MACHINE = {"little": 62, "big": 43}  # x86-64; SPARC v9 (big endian)

pytestmark = pytest.mark.unit  # parsing files: no privilege needed


def readelf_dynamic(path: Path | str) -> tuple[list[str], list[str], list[str] | None]:
    """(needed, rpath, runpath) as binutils reads them."""
    out = subprocess.run(["readelf", "-d", "-W", str(path)], check=True, capture_output=True, text=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)
    rpath = re.findall(r"\(RPATH\)\s+Library rpath: \[(.*)\]", out)
    runpath = re.findall(r"\(RUNPATH\)\s+Library runpath: \[(.*)\]", out)
    return (
        needed,
        [] if runpath else [entry for value in rpath for entry in value.split(":")],
        [entry for value in runpath for entry in value.split(":")] if runpath else None,
    )


def parsed(path: Path | str) -> tuple[list[str], list[str], list[str] | None]:
    elf = _elfdeps.read_elf(str(path))
    assert elf is not None, path
    return elf.needed, elf.rpath, elf.runpath


@pytest.fixture(scope="module")
def readelf() -> None:
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) is not installed")


@pytest.mark.parametrize("name", HOST_LIBRARIES)
def test_host_libraries_as_readelf_reads_them(readelf: None, name: str) -> None:
    path = os.path.realpath("/usr/lib/x86_64-linux-gnu/" + name)
    if not os.path.exists(path):
        pytest.skip(f"the host has no {name}")
    assert parsed(path) == readelf_dynamic(path)


def test_32_bit_objects_linked_by_ld(readelf: None, tmp_path: Path) -> None:
    (tmp_path / "empty.s").write_text(".text\n")
    subprocess.run(["as", "--32", "-o", str(tmp_path / "empty.o"), str(tmp_path / "empty.s")], check=True)
    link = ["ld", "-m", "elf_i386", "-shared", str(tmp_path / "empty.o")]
    subprocess.run([*link, "-soname", "libdep32.so.1", "-o", str(tmp_path / "libdep32.so.1")], check=True)
    for dtags, origin in (("--enable-new-dtags", "$ORIGIN/../lib:/opt/x"), ("--disable-new-dtags", "/opt/$LIB")):
        output = tmp_path / (f"libtop32{dtags}.so")
        subprocess.run(
            [*link, "-o", str(output), "--no-as-needed", str(tmp_path / "libdep32.so.1"), dtags, "-rpath", origin],
            check=True,
        )
        elf = _elfdeps.read_elf(str(output))
        assert elf is not None and elf.ident == (1, 1, 3)  # ELFCLASS32, little endian, EM_386
        assert parsed(output) == readelf_dynamic(output)
        assert elf.needed == ["libdep32.so.1"]
        assert (elf.runpath if dtags == "--enable-new-dtags" else elf.rpath) == origin.split(":")


def write_elf(path: Path, wide: bool, order: str, needed: list[str], runpath: str | None, rpath: str | None) -> None:
    """A minimal shared object: ELF header, PT_LOAD over the whole file, PT_DYNAMIC, .dynstr, .dynamic."""
    byteorder: Literal["little", "big"] = "little" if order == "little" else "big"
    word = 8 if wide else 4

    def n(value: int, size: int) -> bytes:
        return value.to_bytes(size, byteorder)

    strings = b"\0"
    offsets = {}
    for text in [*needed, runpath or "", rpath or ""]:
        if text and text not in offsets:
            offsets[text] = len(strings)
            strings += text.encode() + b"\0"
    ehsize, phentsize = (64, 56) if wide else (52, 32)
    strtab_at = ehsize + 2 * phentsize
    dynamic_at = strtab_at + len(strings) + (-len(strings)) % 8
    entries = [(1, offsets[name]) for name in needed]
    if runpath:
        entries.append((29, offsets[runpath]))
    if rpath:
        entries.append((15, offsets[rpath]))
    entries += [(5, strtab_at), (10, len(strings)), (0, 0)]
    dynamic = b"".join(n(tag, word) + n(value, word) for tag, value in entries)
    size = dynamic_at + len(dynamic)
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if order == "little" else 2, 1]) + bytes(9)
    header = ident + n(3, 2) + n(MACHINE[order], 2) + n(1, 4)  # ET_DYN, machine, EV_CURRENT
    if wide:
        header += n(0, 8) + n(ehsize, 8) + n(0, 8) + n(0, 4)  # entry, phoff, shoff, flags
    else:
        header += n(0, 4) + n(ehsize, 4) + n(0, 4) + n(0, 4)
    header += n(ehsize, 2) + n(phentsize, 2) + n(2, 2) + n(0, 2) + n(0, 2) + n(0, 2)

    def program_header(p_type: int, offset: int, filesz: int) -> bytes:
        if wide:  # type, flags, offset, vaddr, paddr, filesz, memsz, align
            return n(p_type, 4) + n(6, 4) + n(offset, 8) * 3 + n(filesz, 8) * 2 + n(8, 8)
        return n(p_type, 4) + n(offset, 4) * 3 + n(filesz, 4) * 2 + n(6, 4) + n(8, 4)

    body = header + program_header(1, 0, size) + program_header(2, dynamic_at, len(dynamic))
    body += strings + bytes(dynamic_at - strtab_at - len(strings)) + dynamic
    path.write_bytes(body)


@pytest.mark.parametrize("wide", [True, False], ids=["64-bit", "32-bit"])
@pytest.mark.parametrize("order", ["little", "big"])
def test_both_classes_and_byte_orders(readelf: None, tmp_path: Path, wide: bool, order: str) -> None:
    path = tmp_path / "libsynthetic.so"
    for runpath, rpath in (("$ORIGIN/lib:/opt/a", None), (None, "/opt/r1:/opt/r2"), ("/opt/run", "/opt/ignored")):
        write_elf(path, wide, order, ["liba.so.1", "libb.so.2"], runpath, rpath)
        assert parsed(path) == readelf_dynamic(path)  # readelf agrees: the file is what it says
        elf = _elfdeps.read_elf(str(path))
        assert elf is not None
        assert elf.ident == (2 if wide else 1, 1 if order == "little" else 2, MACHINE[order])
        assert elf.needed == ["liba.so.1", "libb.so.2"]
        assert elf.runpath == (runpath.split(":") if runpath else None)
        assert elf.rpath == ([] if runpath else str(rpath).split(":"))


def test_not_an_elf_file(tmp_path: Path) -> None:
    (tmp_path / "text.so").write_text("INPUT(-lfoo)\n")  # a linker script, as libc.so is
    assert _elfdeps.read_elf(str(tmp_path / "text.so")) is None
    assert _elfdeps.read_elf(str(tmp_path / "absent.so")) is None


def ldconfig_entries(cache: Path) -> dict[str, list[str]]:
    """name -> paths of the x86-64 (or untagged) libc6 entries, as glibc's ldconfig -p lists them."""
    out = subprocess.run(["ldconfig", "-p", "-C", str(cache)], check=True, capture_output=True, text=True).stdout
    found: dict[str, list[str]] = {}
    for name, tags, path in re.findall(r"^\s+(\S+) \(([^)]*)\) => (\S+)$", out, re.MULTILINE):
        if "hwcap" not in tags:
            found.setdefault(name, []).append(path)
    return found


@pytest.mark.parametrize("kind", ["host", "compat", "sid"])
def test_ld_so_cache_as_ldconfig_lists_it(tmp_path: Path, kind: str) -> None:
    if shutil.which("ldconfig") is None:
        pytest.skip("no ldconfig")
    if kind == "host":
        cache = Path("/etc/ld.so.cache")
    elif kind == "compat":  # the old format followed by the new one
        cache = tmp_path / "compat.cache"
        subprocess.run(["ldconfig", "-C", str(cache), "-c", "compat"], check=True, capture_output=True)
        assert cache.read_bytes().startswith(b"ld.so-1.7.0")
    else:  # a newer glibc's (the lab's Debian sid root filesystem), read only
        cache = Path("/var/cache/pyns-lab/sid/etc/ld.so.cache")
        if not cache.exists():
            pytest.skip("the lab root filesystem is missing (scripts/lab.sh setup)")
    expected = ldconfig_entries(cache)
    assert len(expected) > 50
    parsed_cache = _elfdeps.LdSoCache(cache.read_bytes())
    for name, paths in expected.items():
        assert parsed_cache.paths(name)[: len(paths)] == paths, name
    assert parsed_cache.paths("libpyns-not-there.so.1") == []


def test_ld_so_cache_that_is_not_one() -> None:
    assert _elfdeps.LdSoCache(b"").paths("libc.so.6") == []
    assert _elfdeps.LdSoCache(b"glibc-ld.so.cache1.1" + bytes(8)).paths("libc.so.6") == []


def test_dynamic_string_tokens_as_the_loader_expands_them(tmp_path: Path) -> None:
    """$ORIGIN, ${LIB}, $PLATFORM: compared with the search path glibc prints (LD_DEBUG=libs)."""
    runpath = "$ORIGIN/o:/x/${LIB}/y:/z/$PLATFORM"
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    program = tmp_path / "tokens"
    subprocess.run(
        ["gcc", "-o", str(program), str(tmp_path / "main.c"), "-Wl,--enable-new-dtags,-rpath," + runpath, "-lz"],
        check=True,
    )
    debug = subprocess.run([str(program)], env={"LD_DEBUG": "libs"}, capture_output=True, text=True).stderr
    searched = re.search(r"search path=(\S+)\s+\(RUNPATH from file", debug)
    assert searched is not None, debug
    # the loader adds hwcaps subdirectories before each directory; the directories themselves, in order
    loader_dirs = [
        d
        for d in searched.group(1).split(":")
        if not any(d.startswith(o + "/") for o in searched.group(1).split(":") if o != d)
    ]
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        loader = _elfdeps.HostLoader(f"/proc/self/fd/{root}", None, sys.executable)
        elf = _elfdeps.read_elf(str(program))
        assert elf is not None and elf.runpath == runpath.split(":")
        expanded = loader._expand(elf.runpath, _elfdeps.Library(str(program), str(program), elf))
    finally:
        os.close(root)
    assert expanded == loader_dirs
