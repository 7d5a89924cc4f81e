"""Load an extension module's shared libraries from the original root first.

After a mnt join with keep-imports (pyns_boot._oldroot), an extension module
comes from the original root through ``/proc/self/fd/N``, but the dynamic
loader looks for the libraries it names (``DT_NEEDED``: libssl.so.3, ...) in
the mount namespace the process is in now: the target's, whose libraries may
need a newer glibc than the one loaded.  Before such a module is loaded,
:func:`preload_needed` finds those libraries as the host's loader would
(ld.so(8): ``DT_RPATH`` of the object and its loaders when it has no
``DT_RUNPATH``, ``LD_LIBRARY_PATH`` as it was at start, ``DT_RUNPATH``, the
original root's ``/etc/ld.so.cache``, the default directories), reads each
one's own needs, and dlopen()s them through the old root, leaves first.  The
loader then matches the module's ``DT_NEEDED`` by soname against what is
already loaded (glibc elf/dl-load.c, _dl_map_object) and binds to the host's
libraries.  A library the host does not have either is the ImportError the
host gives.

Not followed: the glibc-hwcaps and legacy hwcaps subdirectories of a search
directory (the library in the directory itself is taken) and ld.so.cache
entries for a hwcaps level when a baseline entry exists.  Loaded only when a
mnt join with keep-imports happened; it imports nothing (``struct`` may
itself be an extension module).
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Literal, Optional, Tuple

# elf.h
_PT_LOAD = 1
_PT_DYNAMIC = 2
_DT_NEEDED = 1
_DT_STRTAB = 5
_DT_STRSZ = 10
_DT_SONAME = 14
_DT_RPATH = 15
_DT_RUNPATH = 29
_DT_FLAGS_1 = 0x6FFFFFFB
_DF_1_NODEFLIB = 0x800
# sysdeps/generic/dl-cache.h
_CACHE_MAGIC_OLD = b"ld.so-1.7.0"
_CACHE_MAGIC_NEW = b"glibc-ld.so.cache1.1"
_CACHE_HEADER_NEW = 48  # magic, version, nlibs, len_strings, flags, padding, extension_offset, unused
_CACHE_ENTRY_NEW = 24  # int32 flags, uint32 key, uint32 value, uint32 osversion, uint64 hwcap
_CACHE_TYPE_ELF = (1, 3)  # FLAG_ELF, FLAG_ELF_LIBC6 (the arch bits are checked on the file itself)
_MAX_SYMLINKS = 40
_AT_PLATFORM = 15


class Elf:
    """What the loader reads from a shared object's dynamic section."""

    __slots__ = ("ident", "needed", "nodeflib", "rpath", "runpath")

    def __init__(
        self, ident: "Tuple[int, int, int]", needed: "List[str]", rpath: "List[str]", runpath: "Optional[List[str]]"
    ) -> None:
        self.ident = ident  # (class, data, machine): what must match between loader and library
        self.needed = needed
        self.rpath = rpath
        self.runpath = runpath  # None without DT_RUNPATH (then DT_RPATH applies)
        self.nodeflib = False


def read_elf(path: str) -> "Optional[Elf]":
    """The dynamic section of the ELF file at path; None if it is not one (or has none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_elf(fd)
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)


def _read_elf(fd: int) -> "Optional[Elf]":
    header = os.pread(fd, 64, 0)
    if len(header) < 52 or header[:4] != b"\x7fELF" or header[4] not in (1, 2) or header[5] not in (1, 2):
        return None
    wide = header[4] == 2
    order: "Literal['little', 'big']" = "little" if header[5] == 1 else "big"

    def number(data: bytes, offset: int, size: int) -> int:
        return int.from_bytes(data[offset : offset + size], order)

    word = 8 if wide else 4
    machine = number(header, 18, 2)
    if wide:
        phoff, phentsize, phnum = number(header, 32, 8), number(header, 54, 2), number(header, 56, 2)
    else:
        phoff, phentsize, phnum = number(header, 28, 4), number(header, 42, 2), number(header, 44, 2)
    table = os.pread(fd, phentsize * phnum, phoff)
    loads = []  # (vaddr, filesz, offset)
    dynamic = None  # (offset, filesz)
    for start in range(0, len(table) - phentsize + 1, phentsize):
        p_type = number(table, start, 4)
        if wide:
            offset, vaddr, filesz = (
                number(table, start + 8, 8),
                number(table, start + 16, 8),
                number(table, start + 32, 8),
            )
        else:
            offset, vaddr, filesz = (
                number(table, start + 4, 4),
                number(table, start + 8, 4),
                number(table, start + 16, 4),
            )
        if p_type == _PT_LOAD:
            loads.append((vaddr, filesz, offset))
        elif p_type == _PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return None
    section = os.pread(fd, dynamic[1], dynamic[0])
    entries = []
    strtab = strsz = None
    nodeflib = False
    for start in range(0, len(section) - 2 * word + 1, 2 * word):
        tag, value = number(section, start, word), number(section, start + word, word)
        if tag == 0:
            break
        if tag == _DT_STRTAB:
            strtab = value
        elif tag == _DT_STRSZ:
            strsz = value
        elif tag == _DT_FLAGS_1:
            nodeflib = bool(value & _DF_1_NODEFLIB)
        elif tag in (_DT_NEEDED, _DT_RPATH, _DT_RUNPATH):
            entries.append((tag, value))
    if strtab is None or strsz is None:
        return None
    strings_at = next(
        (offset + strtab - vaddr for vaddr, filesz, offset in loads if vaddr <= strtab < vaddr + filesz), None
    )
    if strings_at is None:
        return None
    strings = os.pread(fd, strsz, strings_at)

    def string(at: int) -> str:
        return os.fsdecode(strings[at : strings.index(b"\0", at)])

    needed: "List[str]" = []
    rpath: "List[str]" = []
    runpath: "Optional[List[str]]" = None
    for tag, value in entries:
        if tag == _DT_NEEDED:
            needed.append(string(value))
        elif tag == _DT_RPATH:
            rpath.extend(string(value).split(":"))
        else:
            runpath = (runpath or []) + string(value).split(":")
    if runpath is not None:
        rpath = []  # both given: the loader ignores DT_RPATH (get-dynamic-info.h)
    elf = Elf((header[4], header[5], machine), needed, rpath, runpath)
    elf.nodeflib = nodeflib
    return elf


class _Missing(Exception):
    """A needed library the original root does not have."""


class Library:
    """A shared object as the loader would find it: by path (host spelling), with its dynamic section."""

    __slots__ = ("elf", "path", "real")

    def __init__(self, path: str, real: str, elf: Elf) -> None:
        self.path = path  # as found: its directory is $ORIGIN
        self.real = real  # symlinks resolved inside the original root
        self.elf = elf


class HostLoader:
    """Resolve and preload libraries as the host's ld.so would, through the original root."""

    def __init__(self, root: str, library_path: "Optional[str]", executable: "Optional[str]") -> None:
        self.root = root
        self.library_path = _directories(library_path)
        self.executable = executable
        self.done: "set[str]" = set()  # needed names resolved and loaded by this process
        self._cache: "Optional[Dict[str, List[str]]]" = None
        self._main_rpath: "Optional[Tuple[Library, List[str]]]" = None
        self._platform: "Optional[str]" = None
        multiarch = getattr(sys.implementation, "_multiarch", None)
        self.lib = "lib/" + multiarch if multiarch else ("lib64" if sys.maxsize > 2**32 else "lib")
        defaults = ["/lib/" + multiarch, "/usr/lib/" + multiarch] if multiarch else []
        if not multiarch and sys.maxsize > 2**32:
            defaults += ["/lib64", "/usr/lib64"]
        self.default_dirs = [*defaults, "/lib", "/usr/lib"]

    # ------------------------------------------------------------ files

    def resolve(self, path: str) -> "Optional[str]":
        """path (absolute, host spelling) with every symlink resolved inside the original root, or None if missing.

        The kernel would resolve an absolute symlink under root + path against
        the process's root, which is the target's now."""
        pending = [part for part in reversed(path.split("/")) if part]
        done = ""
        hops = 0
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                done = done[: done.rfind("/")]
                continue
            candidate = done + "/" + part
            try:
                target = os.readlink(self.root + candidate)
            except OSError as error:
                if error.errno == 22:  # EINVAL: not a symlink
                    done = candidate
                    continue
                return None
            hops += 1
            if hops > _MAX_SYMLINKS:
                return None
            if target.startswith("/"):
                done = ""
            pending.extend(part for part in reversed(target.split("/")) if part)
        return done or "/"

    def library_at(self, path: str, ident: "Tuple[int, int, int]") -> "Optional[Library]":
        """The library at path if it exists there and matches ident (the loader skips another class or machine)."""
        real = self.resolve(path)
        if real is None:
            return None
        elf = read_elf(self.root + real)
        if elf is None or elf.ident != ident:
            return None
        return Library(path, real, elf)

    # ------------------------------------------------------------ search order

    def find(self, name: str, loader: Library, chain: "List[Library]") -> "Optional[Library]":
        """ld.so(8) order for a name without a slash, needed by loader (chain: the loaders above it)."""
        ident = loader.elf.ident
        for directory in self._search_directories(loader, chain):
            found = self.library_at(directory.rstrip("/") + "/" + name, ident)
            if found is not None:
                return found
        if loader.elf.nodeflib:
            return None
        for path in self.cache().get(name, ()):
            found = self.library_at(path, ident)
            if found is not None:
                return found
        for directory in self.default_dirs:
            found = self.library_at(directory + "/" + name, ident)
            if found is not None:
                return found
        return None

    def _search_directories(self, loader: Library, chain: "List[Library]") -> "List[str]":
        directories: "List[str]" = []
        if loader.elf.runpath is None:
            # the loader's DT_RPATH, then its loader's, on up; then the executable's
            for obj in [loader, *reversed(chain)]:
                directories += self._expand(obj.elf.rpath, obj)
            main = self.main_rpath()
            if main is not None:
                directories += self._expand(main[1], main[0])
        directories += self.library_path
        if loader.elf.runpath is not None:
            directories += self._expand(loader.elf.runpath, loader)
        return directories

    def _expand(self, entries: "List[str]", obj: Library) -> "List[str]":
        """$ORIGIN, $LIB, $PLATFORM (also as ${...}); relative and empty entries are left out."""
        expanded = []
        for entry in entries:
            if "$" in entry:
                origin = obj.path[: obj.path.rfind("/")] or "/"
                for token, value in (("ORIGIN", origin), ("LIB", self.lib)):
                    entry = entry.replace("${%s}" % token, value).replace("$" + token, value)
                if "PLATFORM" in entry:
                    entry = entry.replace("${PLATFORM}", self.platform()).replace("$PLATFORM", self.platform())
            if entry.startswith("/"):
                expanded.append(entry)
        return expanded

    def main_rpath(self) -> "Optional[Tuple[Library, List[str]]]":
        """The executable's DT_RPATH (ld.so searches it for every object without DT_RUNPATH)."""
        if self._main_rpath is None and self.executable:
            real = self.resolve(self.executable)
            elf = read_elf(self.root + real) if real else None
            if real and elf is not None and elf.runpath is None and elf.rpath:
                self._main_rpath = (Library(real, real, elf), elf.rpath)
            self.executable = None
        return self._main_rpath

    def platform(self) -> str:
        """AT_PLATFORM (what $PLATFORM expands to), read through the original root's /proc."""
        if self._platform is None:
            self._platform = os.uname().machine
            word = 8 if sys.maxsize > 2**32 else 4
            try:
                with open(self.root + "/proc/self/auxv", "rb") as auxv:
                    data = auxv.read()
                for at in range(0, len(data) - 2 * word + 1, 2 * word):
                    if int.from_bytes(data[at : at + word], sys.byteorder) == _AT_PLATFORM:
                        address = int.from_bytes(data[at + word : at + 2 * word], sys.byteorder)
                        with open(self.root + "/proc/self/mem", "rb", buffering=0) as memory:
                            memory.seek(address)
                            text = memory.read(256)
                        self._platform = os.fsdecode(text[: text.index(b"\0")])
                        break
            except (OSError, ValueError):
                pass
        return self._platform

    def cache(self) -> "Dict[str, List[str]]":
        """The original root's /etc/ld.so.cache: name -> paths (baseline entries first)."""
        if self._cache is None:
            real = self.resolve("/etc/ld.so.cache")
            try:
                with open(self.root + (real or "/etc/ld.so.cache"), "rb") as file:
                    self._cache = parse_ld_so_cache(file.read())
            except OSError:
                self._cache = {}
        return self._cache

    # ------------------------------------------------------------ loading

    def preload(self, path: str, module: str, flags: int) -> None:
        """Load what the extension module at root + path needs, leaves first, before the module itself."""
        elf = read_elf(self.root + path)
        if elf is None or elf.ident[:2] != _NATIVE:
            return  # not for this process: the normal loader says why
        pending = [name for name in elf.needed if name not in self.done]
        if not pending:
            return
        from pyns_boot._setns import loaded, preload

        have = {name[name.rfind("/") + 1 :] for name in loaded()}
        self.done |= have  # loaded for good: CPython never unloads an extension module
        order: "List[Tuple[str, Library]]" = []
        try:
            self._collect(Library(path, path, elf), [], set(), order)
        except _Missing as missing:  # what the loader says on the host
            raise ImportError(
                "%s: cannot open shared object file: No such file or directory" % missing,
                name=module,
                path=self.root + path,
            ) from None
        for name, library in order:
            error = preload(self.root + library.real, flags)
            if error is not None:
                raise ImportError(error, name=module, path=self.root + path)
            self.done.add(name)

    def _collect(
        self, obj: Library, chain: "List[Library]", seen: "set[str]", order: "List[Tuple[str, Library]]"
    ) -> None:
        for name in obj.elf.needed:
            if name in self.done or name in seen:
                continue
            seen.add(name)
            if "/" in name:
                if not name.startswith("/"):
                    continue  # relative to the working directory: the loader's business
                library = self.library_at(name, obj.elf.ident)
            else:
                library = self.find(name, obj, chain)
            if library is None:
                raise _Missing(name)
            self._collect(library, [*chain, obj], seen, order)
            order.append((name, library))


def parse_ld_so_cache(data: bytes) -> "Dict[str, List[str]]":
    """glibc's ld.so.cache (new format, alone or after the old one): library name -> paths.

    Entries of another ELF class or machine stay in; the loader checks the
    file itself.  Baseline entries come before hwcaps ones."""
    start = 0
    if data.startswith(_CACHE_MAGIC_OLD):
        count = int.from_bytes(data[12:16], sys.byteorder)
        start = (16 + 12 * count + 7) & ~7  # old entries: int flags, key, value; then aligned to 8
    if data[start : start + len(_CACHE_MAGIC_NEW)] != _CACHE_MAGIC_NEW:
        return {}
    count = int.from_bytes(data[start + 20 : start + 24], sys.byteorder)
    table = start + _CACHE_HEADER_NEW
    if table + count * _CACHE_ENTRY_NEW > len(data):
        return {}
    baseline: "Dict[str, List[str]]" = {}
    hwcaps: "Dict[str, List[str]]" = {}

    def string(at: int) -> str:
        at += start
        return os.fsdecode(data[at : data.index(b"\0", at)])

    for at in range(table, table + count * _CACHE_ENTRY_NEW, _CACHE_ENTRY_NEW):
        if int.from_bytes(data[at : at + 4], sys.byteorder) & 0xFF not in _CACHE_TYPE_ELF:  # FLAG_TYPE_MASK
            continue
        key = int.from_bytes(data[at + 4 : at + 8], sys.byteorder)
        value = int.from_bytes(data[at + 8 : at + 12], sys.byteorder)
        hwcap = int.from_bytes(data[at + 16 : at + 24], sys.byteorder)
        (hwcaps if hwcap else baseline).setdefault(string(key), []).append(string(value))
    for name, paths in hwcaps.items():
        baseline.setdefault(name, []).extend(paths)
    return baseline


def _directories(value: "Optional[str]") -> "List[str]":
    """LD_LIBRARY_PATH's absolute directories (';' separates too; an empty or relative one is the loader's cwd)."""
    if not value:
        return []
    return [entry for entry in value.replace(";", ":").split(":") if entry.startswith("/")]


_NATIVE = (2 if sys.maxsize > 2**32 else 1, 1 if sys.byteorder == "little" else 2)
_loader = None  # type: Optional[HostLoader]


def preload_needed(
    root: str, path: str, module: str, library_path: "Optional[str]", executable: "Optional[str]"
) -> None:
    """Before the extension module at root + path (host spelling) loads: its libraries from the original root."""
    global _loader
    if _loader is None or _loader.root != root:
        _loader = HostLoader(root, library_path, executable)
    _loader.preload(path, module, sys.getdlopenflags())
