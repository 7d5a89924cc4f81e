"""Keep importing from the interpreter's own installation after a mnt join.

Loaded by the start-up hook only when gons_mnt was joined and the C helper
kept a descriptor N on the original root (``PYNS_BOOT_KEEP_IMPORTS`` is not
``0``).  Every path the import system knows (sys.path, the prefixes, the
``__path__`` of packages imported before the switch, the ``__file__`` of
modules imported before it, site.py's state for the .pth files still to come)
is rewritten from ``/X`` to ``/proc/self/fd/N/X``: the stock machinery (path
finders, zipimport, dlopen of extension modules, linecache, tracebacks,
inspect) then reads the old tree, while every other file operation of the
program sees the target's filesystem at ``/``.  An extension module loaded
from there gets the shared libraries it needs from there too
(pyns_boot._elfdeps, docs/foreign-libraries.md).

A second descriptor, on the original mount namespace, stays open with the
first: without it the kernel would detach the mounts below the old root once
the namespace had no process left.

Children started from ``sys.executable`` start from the original mount
namespace and join the target again (pyns_boot._children): an audit hook
loads that module when the program first needs it.
"""

import errno
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

# No "from __future__ import annotations": this module loads after the switch,
# before the standard library is reachable again; hence the quoted hints.

#: "/proc/self/fd/N" while active, None otherwise.
root = None  # type: str | None
#: The interpreter path children cannot be started from.
original_executable = None  # type: str | None
mnt_path = None  # type: str | None
#: The descriptor on the original mount namespace, kept open for good.
namespace_fd = -1

_CHILD_EVENTS = ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn")
# multiprocessing starts sys.executable through _posixsubprocess.fork_exec,
# which raises no audit event: pyns_boot._children wraps it when it is first
# imported, and registers its exit handler before multiprocessing's.
_WATCHED_IMPORTS = ("_posixsubprocess", "multiprocessing")
_in_hook = set()  # type: set[int]  # threads inside the hook's own imports


def remap(path: object) -> "Any":
    """'/X' -> root + '/X'; anything else (relative, non-str, done) unchanged."""
    if root is None or not isinstance(path, str) or not path.startswith("/") or path.startswith(root + "/"):
        return path
    return root + path


def activate(fd: int, joined_mnt: str, old_namespace_fd: int = -1) -> None:
    """Rewrite the interpreter's import state to reach the old root via fd."""
    global root, original_executable, mnt_path, namespace_fd
    root = "/proc/self/fd/%d" % fd
    mnt_path = joined_mnt
    namespace_fd = old_namespace_fd
    sys.path[:] = [remap(entry) for entry in sys.path]
    for name in ("prefix", "exec_prefix", "base_prefix", "base_exec_prefix"):
        setattr(sys, name, remap(getattr(sys, name)))
    sys.path_importer_cache.clear()
    for module in list(sys.modules.values()):
        try:
            _remap_module(module)
        except Exception:  # a module-level __getattr__ of a .pth-loaded module, say
            pass
    site = sys.modules.get("site")
    if site is not None:
        _remap_site(site)
    original_executable = sys.executable
    _load_libraries_from_old_root(os.environ.get("LD_LIBRARY_PATH"))
    sys.addaudithook(_watch_children)
    if "_posixsubprocess" in sys.modules:
        _children().install()
    if "multiprocessing" in sys.modules:  # imported before: its exit handler runs after ours
        _children().watch_multiprocessing()


def _load_libraries_from_old_root(library_path: "str | None") -> None:
    """Extension modules from the old root get their shared libraries from there too.

    Before one loads, pyns_boot._elfdeps dlopen()s what it needs, as the
    host's loader would find it (library_path: LD_LIBRARY_PATH as the loader
    read it at start), so the module binds to those by soname and not to the
    target's.  One function for the start-up hook and the executor's workers."""
    loader_class = sys.modules["_frozen_importlib_external"].ExtensionFileLoader
    create_module = loader_class.create_module
    if getattr(create_module, "_pyns_boot_preloads", False):
        return

    def create_module_after_its_libraries(self: "Any", spec: "Any") -> "Any":
        origin = spec.origin
        if root is not None and isinstance(origin, str) and origin.startswith(root + "/"):
            from pyns_boot import _elfdeps

            _elfdeps.preload_needed(root, origin[len(root) :], spec.name, library_path, original_executable)
        return create_module(self, spec)

    create_module_after_its_libraries._pyns_boot_preloads = True  # type: ignore[attr-defined]
    create_module_after_its_libraries.__doc__ = create_module.__doc__
    loader_class.create_module = create_module_after_its_libraries


def _remap_module(module: "Any") -> None:
    package_path = getattr(module, "__path__", None)
    if type(package_path) is list:  # a _NamespacePath follows sys.path by itself
        package_path[:] = [remap(entry) for entry in package_path]
    for name in ("__file__", "__cached__"):
        value = getattr(module, name, None)
        if isinstance(value, str):
            try:
                setattr(module, name, remap(value))
            except (AttributeError, TypeError):
                pass
    spec = getattr(module, "__spec__", None)
    if spec is not None and getattr(spec, "has_location", False):
        spec.origin = remap(spec.origin)
        cached = spec.cached
        if isinstance(cached, str):
            spec.cached = remap(cached)
    # linecache asks the loader for the source of a frame's module: a file
    # loader reads from its .path.
    loader: "Any" = getattr(module, "__loader__", None)
    loader_path = getattr(loader, "path", None)
    if isinstance(loader_path, str):
        try:
            loader.path = remap(loader_path)
        except (AttributeError, TypeError):
            pass


def _remap_site(site: "Any") -> None:
    """site.py is in the middle of its work: the .pth files after ours and the
    site directories still to come must be read from the old root too.  The
    wrappers go again before sitecustomize runs: a directory the program adds
    later is taken literally, as a sys.path entry it adds is."""
    prefixes = getattr(site, "PREFIXES", None)
    if type(prefixes) is list:
        prefixes[:] = [remap(prefix) for prefix in prefixes]
    originals = {}
    # addpackage: the .pth files still to come in the directory being read;
    # makepath: every directory a .pth line names and every site directory.
    for name, wrap in (("addpackage", _remapping_first_argument), ("makepath", _remapping_joined_path)):
        original = getattr(site, name, None)
        if callable(original) and not getattr(original, "_pyns_boot_remaps", False):
            originals[name] = original
            setattr(site, name, wrap(original))
    customize = getattr(site, "execsitecustomize", None)
    if originals and callable(customize):

        def execsitecustomize() -> None:
            for name, original in originals.items():
                setattr(site, name, original)
            site.execsitecustomize = customize
            # site's known_paths held the old spellings: a directory it read
            # again (a venv's site-packages) was appended a second time.
            seen: "set[object]" = set()
            kept = []
            for entry in sys.path:
                if entry not in seen or not (isinstance(entry, str) and entry.startswith(str(root) + "/")):
                    kept.append(entry)
                seen.add(entry)
            sys.path[:] = kept
            customize()

        site.execsitecustomize = execsitecustomize


def _remapping_first_argument(function: "Callable[..., Any]") -> "Callable[..., Any]":
    def wrapper(sitedir: "Any", *args: "Any", **kwargs: "Any") -> "Any":
        return function(remap(sitedir), *args, **kwargs)

    wrapper._pyns_boot_remaps = True  # type: ignore[attr-defined]
    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def _remapping_joined_path(function: "Callable[..., Any]") -> "Callable[..., Any]":
    def wrapper(*paths: str) -> "Any":
        return function(remap(os.path.join(*paths)))

    wrapper._pyns_boot_remaps = True  # type: ignore[attr-defined]
    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def _watch_children(event: str, args: "tuple[Any, ...]") -> None:
    if event == "import":
        if args[0] not in _WATCHED_IMPORTS:
            return
        import _thread

        thread = _thread.get_ident()
        if thread in _in_hook:
            return
        _in_hook.add(thread)
        try:
            children = _children()
            if args[0] == "_posixsubprocess":
                children.install()
            else:
                children.watch_multiprocessing()
        finally:
            _in_hook.discard(thread)
        return
    if event not in _CHILD_EVENTS:
        return
    executable = args[0]
    if event == "subprocess.Popen" and executable is None:
        argv = args[1]
        if isinstance(argv, (str, bytes, os.PathLike)):
            executable = argv
        elif argv:
            executable = argv[0]
    try:
        program = os.fsdecode(executable) if executable is not None else None
    except TypeError:
        return
    if program is None or program not in _own_interpreter_names():
        return
    if event == "subprocess.Popen":
        children = _children()
        children.install()
        children.prepare_subprocess()
    elif event == "os.exec":
        _children().exec_from_old_namespace(args[0], args[1], args[2])
    else:
        raise OSError(
            errno.ENOTSUP,
            'pyns_boot: cannot start a child interpreter from sys.executable %s with %s inside gons_mnt "%s": '
            "a child starts from the mount namespace the process had before the join, which this call cannot do "
            "(see docs/foreign-mounts.md of pyns_boot; use subprocess or multiprocessing instead)"
            % (program, event, mnt_path),
        )


def _children() -> "Any":
    from pyns_boot import _children

    _children.attach(str(root), namespace_fd, mnt_path, _own_interpreter_names)
    return _children


def _own_interpreter_names() -> "tuple[str | None, ...]":
    return (
        original_executable,
        sys.executable,
        getattr(sys, "_base_executable", None),
        remap(original_executable),
    )
