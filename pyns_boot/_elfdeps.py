"""Load an extension module's shared libraries from the original root first.

After a mnt join with keep-imports (pyns_boot._keep_imports), an extension module
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
    from typing import Dict, Iterator, List, Literal, Optional, Tuple

# elf.h
_PT_LOAD = 1
_PT_DYNAMIC = 2
_PT_INTERP = 3
_DT_NEEDED = 1
_DT_STRTAB = 5
_DT_STRSZ = 10
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

    __slots__ = ("ident", "interp", "needed", "nodeflib", "rpath", "runpath")

    def __init__(
        self, ident: "Tuple[int, int, int]", needed: "List[str]", rpath: "List[str]", runpath: "Optional[List[str]]"
    ) -> None:
        self.ident = ident  # (class, data, machine): what must match between loader and library
        self.needed = needed
        self.rpath = rpath
        self.runpath = runpath  # None without DT_RUNPATH (then DT_RPATH applies)
        self.nodeflib = False
        self.interp: "Optional[str]" = None  # PT_INTERP: the dynamic loader of an executable


def read_elf(path: str, dir_fd: "Optional[int]" = None) -> "Optional[Elf]":
    """The dynamic section of the ELF file at path; None if it is not one (or has none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return _read_elf(fd)
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)


def _words(data: bytes, size: int, order: "Literal['little', 'big']") -> "List[int]":
    """data as unsigned integers of size bytes in the given byte order."""
    usable = len(data) - len(data) % size
    if order == sys.byteorder:
        return memoryview(data)[:usable].cast("Q" if size == 8 else "I" if size == 4 else "H").tolist()
    return [int.from_bytes(data[at : at + size], order) for at in range(0, usable, size)]


def _read_elf(fd: int) -> "Optional[Elf]":
    header = os.pread(fd, 4096, 0)  # the program headers follow the ELF header, as a rule
    if len(header) < 52 or header[:4] != b"\x7fELF" or header[4] not in (1, 2) or header[5] not in (1, 2):
        return None
    wide = header[4] == 2
    order: "Literal['little', 'big']" = "little" if header[5] == 1 else "big"
    word = 8 if wide else 4
    machine = int.from_bytes(header[18:20], order)
    if wide:
        phoff = int.from_bytes(header[32:40], order)
        phentsize, phnum = int.from_bytes(header[54:56], order), int.from_bytes(header[56:58], order)
    else:
        phoff = int.from_bytes(header[28:32], order)
        phentsize, phnum = int.from_bytes(header[42:44], order), int.from_bytes(header[44:46], order)
    if phentsize < (56 if wide else 32):
        return None
    table = header[phoff : phoff + phentsize * phnum]
    if len(table) < phentsize * phnum:
        table = os.pread(fd, phentsize * phnum, phoff)
    # one list of words for the whole table: in both classes a header's words 0, 1, 2 and 4 are
    # type (64-bit: with the flags), offset, vaddr and filesz
    words = _words(table, word, order)
    stride = phentsize // word
    type_shift = 32 if wide and order == "big" else 0
    loads = []  # (vaddr, filesz, offset)
    dynamic = interp = None  # (offset, filesz)
    for start in range(0, stride * phnum, stride):
        p_type = (words[start] >> type_shift) & 0xFFFFFFFF
        if p_type == _PT_LOAD:
            loads.append((words[start + 2], words[start + 4], words[start + 1]))
        elif p_type == _PT_DYNAMIC:
            dynamic = (words[start + 1], words[start + 4])
        elif p_type == _PT_INTERP:
            interp = (words[start + 1], words[start + 4])
    if dynamic is None:
        return None
    pairs = _words(os.pread(fd, dynamic[1], dynamic[0]), word, order)
    tags, values = pairs[0::2], pairs[1::2]
    if 0 in tags:  # DT_NULL ends the section
        end = tags.index(0)
        tags, values = tags[:end], values[:end]
    info = dict(zip(tags, values))  # the single-valued tags
    strtab, strsz = info.get(_DT_STRTAB), info.get(_DT_STRSZ)
    if strtab is None or strsz is None:
        return None
    entries = [(tag, value) for tag, value in zip(tags, values) if tag in (_DT_NEEDED, _DT_RPATH, _DT_RUNPATH)]
    strings_at = next(
        (offset + strtab - vaddr for vaddr, filesz, offset in loads if vaddr <= strtab < vaddr + filesz), None
    )
    if strings_at is None:
        return None
    # only the span holding the strings wanted (a big library's table has every symbol name)
    first = min((value for _, value in entries), default=0)
    last = max((value for _, value in entries), default=0)
    strings = os.pread(fd, min(strsz, last + 4096) - first, strings_at + first)

    def string(at: int) -> str:
        at -= first
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
    elf.nodeflib = bool(info.get(_DT_FLAGS_1, 0) & _DF_1_NODEFLIB)
    if interp is not None:
        elf.interp = os.fsdecode(os.pread(fd, interp[1], interp[0]).split(b"\0", 1)[0])
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
        self.fd = int(root[root.rfind("/") + 1 :])  # root is /proc/self/fd/N
        self._directories: "Dict[str, str]" = {}
        self.library_path = _directories(library_path)
        self.executable = executable
        self.done: "set[str]" = set()  # needed names resolved and loaded by this process
        self._cache: "Optional[LdSoCache]" = None
        self._main: "Optional[Library]" = None
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

        Through root + path the kernel would resolve an absolute symlink
        against the process's root, which is the target's now.  Directories
        are resolved once (most candidates share a few)."""
        cut = path.rfind("/")
        directory = self._directories.get(path[:cut])
        if directory is None:
            directory = self._walk(path[:cut], 0)
            if directory is None:
                return None
            self._directories[path[:cut]] = directory
        directory = directory.rstrip("/")
        return self._walk(directory + path[cut:], 0, len(directory))

    def _walk(self, path: str, hops: int, resolved: int = 0) -> "Optional[str]":
        """Resolve path component by component (path[:resolved] is resolved already)."""
        pending = [part for part in reversed(path[resolved:].split("/")) if part]
        done = path[:resolved]
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                done = done[: done.rfind("/")]
                continue
            candidate = done + "/" + part
            try:
                target = os.readlink(candidate[1:], dir_fd=self.fd)
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
        elf = read_elf(real[1:], self.fd)
        if elf is None or elf.ident != ident:
            return None
        return Library(path, real, elf)

    # ------------------------------------------------------------ search order

    def find(self, name: str, loader: Library, chain: "List[Library]") -> "Optional[Library]":
        """ld.so(8) order for a name without a slash, needed by loader (chain: the loaders above it)."""
        for path in self._candidates(name, loader, chain):
            found = self.library_at(path, loader.elf.ident)
            if found is not None:
                return found
        return None

    def _candidates(self, name: str, loader: Library, chain: "List[Library]") -> "Iterator[str]":
        """The paths find() tries, in order, made only as far as it gets (the ld.so.cache is read on demand)."""
        for directory in self._search_directories(loader, chain):
            yield directory.rstrip("/") + "/" + name
        if not loader.elf.nodeflib:
            yield from self.cache().paths(name)
            for directory in self.default_dirs:
                yield directory + "/" + name

    def _search_directories(self, loader: Library, chain: "List[Library]") -> "List[str]":
        directories: "List[str]" = []
        if loader.elf.runpath is None:
            # the loader's DT_RPATH, then its loader's, on up; then the executable's
            for obj in [loader, *reversed(chain)]:
                directories += self._expand(obj.elf.rpath, obj)
            main = self.main()
            if main is not None:
                directories += self._expand(main.elf.rpath, main)
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

    def main(self) -> "Optional[Library]":
        """The executable (its DT_RPATH counts for every object without DT_RUNPATH; PT_INTERP is the loader)."""
        if self._main is None and self.executable:
            real = self.resolve(self.executable)
            elf = read_elf(real[1:], self.fd) if real else None
            if real and elf is not None:
                self._main = Library(real, real, elf)
            self.executable = None
        return self._main

    def platform(self) -> str:
        """What $PLATFORM expands to: the host loader's dl_platform (ld.so --list-diagnostics, glibc 2.33
        and later; on x86-64 before 2.37 "haswell" or "xeon_phi" from the CPU), else AT_PLATFORM."""
        if self._platform is None:
            self._platform = self._loader_platform() or self._auxv_platform() or os.uname().machine
        return self._platform

    def _loader_platform(self) -> "Optional[str]":
        main = self.main()
        interp = self.resolve(main.elf.interp) if main is not None and main.elf.interp else None
        if interp is None:
            return None
        output = b""
        reader, writer = os.pipe()
        try:
            actions = [(os.POSIX_SPAWN_DUP2, writer, 1), (os.POSIX_SPAWN_DUP2, writer, 2)]
            pid = os.posix_spawn(self.root + interp, [interp, "--list-diagnostics"], {}, file_actions=actions)
            os.close(writer)
            writer = -1
            while True:
                chunk = os.read(reader, 65536)
                if not chunk:
                    break
                output += chunk
            os.waitpid(pid, 0)
        except OSError:
            return None
        finally:
            os.close(reader)
            if writer >= 0:
                os.close(writer)
        for line in output.splitlines():
            if line.startswith(b'dl_platform="') and line.endswith(b'"'):
                return os.fsdecode(line[13:-1])
        return None

    def _auxv_platform(self) -> "Optional[str]":
        """AT_PLATFORM as the kernel gave it, read through the original root's /proc."""
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
                    return os.fsdecode(text[: text.index(b"\0")])
        except (OSError, ValueError):
            pass
        return None

    def cache(self) -> "LdSoCache":
        """The original root's /etc/ld.so.cache (empty if it has none)."""
        if self._cache is None:
            data = b""
            real = self.resolve("/etc/ld.so.cache")
            if real is not None:
                try:
                    fd = os.open(real[1:], os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
                    try:
                        data = os.read(fd, os.fstat(fd).st_size)
                    finally:
                        os.close(fd)
                except OSError:
                    pass
            self._cache = LdSoCache(data)
        return self._cache

    # ------------------------------------------------------------ loading

    def preload(self, path: str, module: str, flags: int) -> None:
        """Load what the extension module at root + path needs, leaves first, before the module itself."""
        elf = read_elf(path[1:], self.fd)
        if elf is None or elf.ident[:2] != _NATIVE:
            return  # not for this process: the normal loader says why
        pending = [name for name in elf.needed if name not in self.done]
        if not pending:
            return
        from _pyns_boot import loaded, preload

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


class LdSoCache:
    """glibc's ld.so.cache (the new format, alone or after the old one), looked up by library name.

    Entries of another ELF class or machine are returned too: the caller
    checks the file itself, as the loader does.  Baseline entries come
    before hwcaps ones."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.start = 0
        self.words: "List[int]" = []
        self.first: "Dict[int, int]" = {}  # string offset -> first entry with that key
        if data.startswith(_CACHE_MAGIC_OLD):
            count = int.from_bytes(data[12:16], sys.byteorder)
            self.start = (16 + 12 * count + 7) & ~7  # old entries: int flags, key, value; then aligned to 8
        if data[self.start : self.start + len(_CACHE_MAGIC_NEW)] != _CACHE_MAGIC_NEW:
            return
        count = int.from_bytes(data[self.start + 20 : self.start + 24], sys.byteorder)
        table = self.start + _CACHE_HEADER_NEW
        if table + count * _CACHE_ENTRY_NEW > len(data):
            return
        # per entry six native words: flags, key, value, osversion, hwcap (two)
        self.words = memoryview(data)[table : table + count * _CACHE_ENTRY_NEW].cast("I").tolist()
        keys = self.words[1::6]
        self.first = dict(zip(reversed(keys), range(count - 1, -1, -1)))

    def paths(self, name: str) -> "List[str]":
        needle = os.fsencode(name) + b"\0"
        baseline: "List[str]" = []
        hwcaps: "List[str]" = []
        words = self.words
        at = self.data.find(needle, self.start)
        while at >= 0:
            # a key may be the tail of a longer string (ldconfig merges suffixes)
            entry = self.first.get(at - self.start)
            while entry is not None and 6 * entry < len(words) and words[6 * entry + 1] == at - self.start:
                flags, value = words[6 * entry], words[6 * entry + 2]
                if flags & 0xFF in _CACHE_TYPE_ELF:  # FLAG_TYPE_MASK
                    (hwcaps if words[6 * entry + 4] or words[6 * entry + 5] else baseline).append(self._string(value))
                entry += 1
            at = self.data.find(needle, at + 1)
        return baseline + hwcaps

    def _string(self, offset: int) -> str:
        at = self.start + offset
        return os.fsdecode(self.data[at : self.data.index(b"\0", at)])


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
