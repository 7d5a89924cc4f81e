"""The Python side of the start-up hook.

The C helper's ``_pyns_boot.run()`` (pyns_boot/_startup.c), which
``pyns_boot.pth`` calls, decides and joins; it calls :func:`after_joins`
once, after the joins, when Python has work: a failure to word with its
hint under the policy, imports to keep after a gons_mnt join
(pyns_boot._keep_imports), the steps after the joins (pyns_boot._after_joins:
the working directory, the ids; C made the view of ip netns exec), a policy
value not understood.  :func:`run` serves only a C helper that does not load or
is a stale file (the policy still applies), and a ``pyns_boot.start`` naming
``pyns_boot.hook:run`` that this version did not install.  :func:`start` is
the PEP 829 entry point of the wheels that ship a .start file
(docs/python-versions.md: from Python 3.18 on).

C imports this module before the joins whenever Python has steps to take:
after a mnt join the package may be out of reach until imports are kept, so
what after_joins() needs first is imported then, at the top.
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _pyns_boot import Report, Steps

KEEP_IMPORTS_VARIABLE = "PYNS_BOOT_KEEP_IMPORTS"

# The names the .pth line and this hook's fallback look up, without the C
# helper: copies of _pyns_boot.VARIABLES, ORDER_VARIABLE and
# AFTER_JOINS_VARIABLES that tests/test_startup_files.py checks against it
# (and the .pth literal against TRIGGER_VARIABLES).  The .pth line looks
# each name up in os.environ's dict of byte keys (ten hash lookups whatever
# the size of the environment) before it runs anything (docs/python-versions.md).
NAMESPACE_VARIABLES = (
    "gons_cgroup",
    "gons_ipc",
    "gons_mnt",
    "gons_net",
    "gons_pid",
    "gons_time",
    "gons_user",
    "gons_uts",
)
TRIGGER_VARIABLES = (*NAMESPACE_VARIABLES, "gons_order", "gons_netns")
AFTER_JOINS_VARIABLES = ("gons_netns", "PYNS_BOOT_WD", "PYNS_BOOT_SETGID", "PYNS_BOOT_SETUID")

# The C helper's one file name (setup.py); a "_pyns_boot.abi3-<platform>.so"
# beside it was left by an older build made with 3.15+, which 3.15 loads first.
HELPER_FILE = "_pyns_boot.abi3.so"
START_FILE = "pyns_boot.start"

if not os.environ.keys().isdisjoint(TRIGGER_VARIABLES):
    # Imported while a variable is set: by the C helper's run() before its joins (or by start() on its way
    # there).  after_joins() needs these once a mnt join may have taken the package out of reach, before imports
    # are kept; an idle start through PEP 829's .start entry loads neither.
    from pyns_boot import _hook_record, _policy  # noqa: F401


def after_joins(report: "Report", steps: "Steps") -> None:
    """What Python does after the C helper's joins (the one name C calls; its signature is tested)."""
    from pyns_boot import _hook_record as record
    from pyns_boot import _policy

    record.netns = steps["netns"]
    old_root = steps["old_root"]
    if steps["inherited"] is not None:
        old_root = adopt_old_root(steps["inherited"], old_root)
    mnt = report["namespaces"]["mnt"]
    imports_failure = keep_importing(old_root, str(mnt["path"])) if old_root is not None else None
    if not report["ok"]:
        if steps["wd_fd"] >= 0:
            os.close(steps["wd_fd"])
        report_failure(report, steps["threads"])
    else:
        _policy.note()
    if imports_failure is not None:
        _policy.apply(imports_failure)
    if not report["ok"]:
        return
    if any(steps[step] is not None for step in ("wd", "gid", "uid")):
        from pyns_boot import _after_joins

        record.after_joins_error = _after_joins.take(steps)
        if record.after_joins_error is not None:
            _policy.apply(record.after_joins_error)
    if mnt["outcome"] == "joined":
        refuse_script_out_of_reach(steps["cwd"], report)


def run() -> None:
    """The .pth line's fallback: the C helper did not load, or is not the file this version installs."""
    if os.environ.keys().isdisjoint(TRIGGER_VARIABLES):
        return
    from pyns_boot import _hook_record as record
    from pyns_boot import _policy

    if record.ran or not in_main_interpreter():
        # site.py runs the .pth again in every subinterpreter: namespaces
        # belong to the process, which its main interpreter set up.
        return
    record.ran = True
    stray = stray_start_file(sys._getframe(1))
    if stray is not None:
        _policy.apply(stray)  # under warn: join anyway, once, from here
    try:
        import _pyns_boot
    except ImportError as error:
        record.load_error = "pyns_boot: cannot load the C helper _pyns_boot: %s" % error
        _policy.apply(record.load_error)
        return
    stale = stale_helper(getattr(_pyns_boot, "__file__", None) or "")
    if stale is not None:
        record.load_error = stale
        _policy.apply(record.load_error)
        return
    _pyns_boot.run()


def refuse_script_out_of_reach(cwd: "str | None", report: "Report") -> None:
    """After a mnt join: python is about to open its script in the joined mount namespace.  When it is
    not there, say so in one line with the way that works, and stop with python's status for a file it
    cannot open."""
    from pyns_boot import _hook_record as record
    from pyns_boot import _policy

    kind, given, _ = _policy.command_line_program()
    if kind != "script" or _policy.program_started():
        return  # in pyns-boot run's own process its script is open already, and the program read
    path = os.fsdecode(given)
    # 3.9+ made the path absolute before site.py ran, from the working directory before the joins; 3.8
    # opens it as given, from the working directory the joins left.
    opened = os.path.join(cwd or "/", path) if sys.version_info >= (3, 9) else path
    if os.path.exists(opened):
        return
    here = record.imports_root  # the original root, while imports are kept
    if here is not None and not os.path.exists(here + os.path.join(cwd or "/", path)):
        return  # not on this side either: python says so itself
    options = " ".join(
        "--%s %s" % (ns_type, entry["path"]) for ns_type, entry in report["namespaces"].items() if entry["path"]
    )
    _policy.write_stderr(
        'pyns_boot: python opens the script %s after joining gons_mnt "%s", where there is no such file; '
        "run it with: pyns-boot run %s -- %s (it reads the script on this side before the joins)\n"
        % (os.path.normpath(opened), report["namespaces"]["mnt"]["path"], options, path)
    )
    os._exit(2)


def start() -> None:
    """The PEP 829 entry point (``pyns_boot.hook:start`` in pyns_boot.start).

    What the .pth line does, for interpreters that only call .start entries:
    with none of the variables set, return; else the C helper's run()."""
    if os.environ.keys().isdisjoint(TRIGGER_VARIABLES):
        return
    try:
        helper = __import__("_pyns_boot")  # _pyns_boot without its alias module
    except ImportError:
        run()
        return
    if stale_helper(helper.__file__ or "") is not None:
        run()  # reports it
        return
    helper.run()


def stray_start_file(caller: "object") -> "str | None":
    """The refusal when run() is called as an entry of a .start file.

    This version's .start (when a wheel ships one) names start(), never
    run(): a pyns_boot.start naming pyns_boot.hook:run was left behind by an
    older install, edited by hand or copied, and on Python 3.15-3.17 it
    suppresses the import line of the pyns_boot.pth beside it."""
    code = getattr(caller, "f_code", None)
    if getattr(code, "co_name", None) != "_execute_start_entrypoints":
        return None
    where = getattr(caller, "f_locals", {}).get("filename") or START_FILE
    from pyns_boot import __version__, _policy

    return (
        "pyns_boot: %s calls pyns_boot.hook:run, but pyns_boot %s installs no such entry (the file was left "
        "behind by an older install, or written by hand); on Python 3.15-3.17 it also stops the pyns_boot.pth "
        "beside it from running the C helper. Remove it (rm %s), or reinstall pyns_boot%s"
        % (where, __version__, where, "; PYNS_BOOT_ON_ERROR=warn joins anyway" if _policy.offers_warn() else "")
    )


def stale_helper(path: str) -> "str | None":
    """The refusal when the C helper loaded is not the file this version installs."""
    name = os.path.basename(path)
    if name == HELPER_FILE or not name.startswith("_pyns_boot.abi3"):
        return None  # ours, or a free-threaded build's own name
    return (
        "pyns_boot: the C helper loaded is %s, a file this version does not install (it installs %s beside it): "
        "left behind by an older install built with Python 3.15 or later, whose own suffix this interpreter tries "
        "first; no namespace was joined. Remove it (rm %s), or reinstall pyns_boot" % (path, HELPER_FILE, path)
    )


def adopt_old_root(inherited: str, fresh: "tuple[int, int] | None") -> "tuple[int, int] | None":
    """A child started by pyns_boot._children: keep importing through the parent's descriptor numbers.

    The paths the parent hands over (multiprocessing's sys.path and main
    path) name /proc/self/fd/N; the child started from the same mount
    namespace, so N and M are what it opened itself (fresh), which it
    closes.  K, the target's namespace, was joined: closed too.  A
    descriptor is closed only when it is what the variable says (a value
    set by hand changes nothing)."""
    try:
        root_fd, namespace_fd, target_fd = (int(part) for part in inherited.split(","))
    except ValueError:
        return fresh
    given = (root_fd, namespace_fd)
    taken = set(fresh or ())
    if len({root_fd, namespace_fd, target_fd}) < 3 or taken & {root_fd, namespace_fd, target_fd}:
        return fresh  # not what pyns_boot sets: the numbers were free, or repeat
    nsfs = _namespace_device()
    closing = [target_fd] if _is_namespace(target_fd, nsfs) else []
    kept = fresh
    if fresh is None:  # not joined, or no keep-imports: the parent's descriptors are of no use
        closing += [fd for fd, ok in zip(given, (_is_directory(root_fd), _is_namespace(namespace_fd, nsfs))) if ok]
    elif _same(root_fd, fresh[0]) and _same(namespace_fd, fresh[1]):
        closing += list(fresh)
        kept = given
        for fd in given:
            os.set_inheritable(fd, False)
    for fd in closing:
        os.close(fd)
    return kept


def _namespace_device() -> "int | None":
    try:
        return os.stat("/proc/self/ns/mnt").st_dev
    except OSError:
        return None


def _is_namespace(fd: int, device: "int | None") -> bool:
    try:
        return device is not None and fd > 2 and os.fstat(fd).st_dev == device
    except OSError:
        return False


def _is_directory(fd: int) -> bool:
    import stat

    try:
        return fd > 2 and stat.S_ISDIR(os.fstat(fd).st_mode)
    except OSError:
        return False


def _same(fd: int, other: int) -> bool:
    try:
        a, b = os.fstat(fd), os.fstat(other)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def keep_importing(fds: "tuple[int, int]", mnt_path: str) -> "str | None":
    """After the mnt join: import from the original root through fds[0]; None, or why that cannot be done.

    fds[1], on the original mount namespace, stays open with it: it keeps
    the mounts below that root attached (_setns.c, ns_report.old_mnt_fd)."""
    from pyns_boot import _hook_record as record

    failure = switch_imports(fds[0], mnt_path, fds[1])
    if failure is not None:
        record.imports_error = failure[1]
        return record.imports_error
    record.imports_root = "/proc/self/fd/%d" % fds[0]
    return None


def switch_imports(
    fd: int, mnt_path: str, namespace_fd: int = -1, worker_pid_way_out: "str | None" = None
) -> "tuple[int, str] | None":
    """Keep importing from the interpreter's installation after a mnt join: the start-up hook's and the workers'.

    fd is a descriptor on the original root, namespace_fd (or -1) one on the
    original mount namespace that stays open with it.  Rewrites the package's
    __path__ (so that pyns_boot._keep_imports loads through fd) and activates
    pyns_boot._keep_imports.  Returns None, or (errno, message) when imports
    cannot go through fd; the descriptors are closed when the root is out of
    reach.  In a worker (pyns_boot._worker_server), worker_pid_way_out is
    the way out of a /proc of another pid namespace in the worker's terms
    (its Namespaces, not gons_pid), and a switch its fork server inherited
    (fd -1) is only checked for reachability.

    It lives here, not in pyns_boot._keep_imports: that module loads through fd,
    and when fd is out of reach the message must be made without it."""
    active = getattr(sys.modules.get("pyns_boot._keep_imports"), "root", None)
    root = active if active is not None else "/proc/self/fd/%d" % fd
    joined = ('joined gons_mnt "%s"' if worker_pid_way_out is None else 'the worker joined mnt "%s"') % mnt_path
    try:
        os.stat(root + "/")
    except OSError as error:
        for kept in (fd, namespace_fd):
            if kept >= 0:
                os.close(kept)
        reason = why_unreachable(error)
        if worker_pid_way_out is None:
            whose, where = "the interpreter cannot keep importing from its own", ""
            way_out = _pid_way_out(mnt_path, reason)
        else:
            whose, where = "cannot keep importing from the caller's", " in the caller"
            way_out = worker_pid_way_out if reason == OTHER_PID_NAMESPACE else ""
        return error.errno or 0, (
            "pyns_boot: %s, but %s installation: %s is not reachable there (%s); %sset %s=0%s to import from the "
            "target's filesystem instead" % (joined, whose, root, reason, way_out, KEEP_IMPORTS_VARIABLE, where)
        )
    if active is not None:
        return None
    package = sys.modules["pyns_boot"]
    package.__path__[:] = [root + p if p.startswith("/") else p for p in package.__path__]
    try:
        from pyns_boot import _keep_imports

        _keep_imports.activate(fd, mnt_path, namespace_fd)
    except Exception as error:
        why = unreadable_installation(list(package.__path__), root) or error
        message = "pyns_boot: %s, but cannot keep importing from the original root %s: %s" % (joined, root, why)
        return getattr(error, "errno", None) or 0, message
    return None


def unreadable_installation(paths: "list[str]", root: str) -> "str | None":
    """Why the package's own directory (below root) cannot be read after the joins (a user namespace), or None."""
    for path in paths:
        if not os.access(path, os.R_OK | os.X_OK):
            path = path[len(root) :] if path.startswith(root + "/") else path
            return (
                "%s is not readable with the joined namespaces' rights (permission denied: in a joined user "
                "namespace, files of users it does not map are readable only through their permission bits for "
                "others); make the interpreter's installation readable to others (chmod -R o+rX), install it where "
                "the container's user can read it, or set PYNS_BOOT_KEEP_IMPORTS=0" % path
            )
    return None


OTHER_PID_NAMESPACE = "the target's /proc belongs to a pid namespace this process is not a member of"


def why_unreachable(error: OSError) -> str:
    try:
        os.lstat("/proc/self")
    except OSError:
        return "/proc is not mounted in the target mount namespace"
    try:
        os.stat("/proc/self")
    except OSError:
        return OTHER_PID_NAMESPACE
    return error.strerror or str(error)


def _pid_way_out(mnt_path: str, reason: str) -> str:
    """The first way out of a /proc of another pid namespace: run the program inside it (gons_pid)."""
    if reason != OTHER_PID_NAMESPACE:
        return ""
    mode = sys.modules["_pyns_boot"].pid_mode() if "_pyns_boot" in sys.modules else None
    if mode == "children":
        return 'unset PYNS_BOOT_PID (it is "children": only children enter gons_pid\'s namespace) or '
    if mode is not None:
        return "make gons_pid name the pid namespace that /proc belongs to, or "
    return "add gons_pid=%s (the target's pid namespace) to run the program inside it, or " % sibling_pid_path(mnt_path)


def sibling_pid_path(mnt_path: str) -> str:
    """/proc/PID/ns/mnt -> /proc/PID/ns/pid; else a placeholder."""
    parts = mnt_path.split("/")
    return "/".join([*parts[:-1], "pid"]) if parts[-2:-1] == ["ns"] else "/proc/PID/ns/pid"


def report_failure(report: "Report", threads: int = 0) -> None:
    """A failed join (a report of the C helper): its message and one hint, under the policy.

    threads: the thread count when a join was refused for other threads; the message then says
    which .pth files ran before this one (pyns_boot._sitedirs.threads_note)."""
    from pyns_boot import _hook_record as record
    from pyns_boot import _policy

    message = str(report["message"])
    try:
        from pyns_boot import _hints

        if threads:
            from pyns_boot import _sitedirs

            record.threads_note = _sitedirs.threads_note()
        message = str(_hints.message_as_given(report, record.netns)) + (record.threads_note or "")
        hint = _hints.for_report(report, _hints.ENVIRONMENT, record.netns)
    except Exception:  # a hint must never hide the failure itself
        hint = None
    _policy.apply(message if hint is None else message + "\n" + _hints.HINT_PREFIX + hint)


def in_main_interpreter() -> bool:
    """False in a subinterpreter (the C helper when loaded; else 3.12+: _thread; 3.8-3.11: _xxsubinterpreters)."""
    helper = sys.modules.get("_pyns_boot")
    if helper is not None:
        answer = helper.in_main_interpreter()  # None when C cannot tell
        if answer is not None:
            return bool(answer)
    import _thread

    is_main = getattr(_thread, "_is_main_interpreter", None)
    if is_main is not None:
        return bool(is_main())
    try:
        interpreters = __import__("_xxsubinterpreters")
    except ImportError:  # built without it: Python code cannot make subinterpreters
        return True
    return bool(interpreters.get_current() == interpreters.get_main())
