"""The start-up hook: runs once per process, before any user code.

The common case never comes here: ``pyns_boot.pth`` calls the C helper's
``_pyns_boot.run()``, which joins, removes the variables and applies the
failure policy by itself.  :func:`run` is the start-up path for the rest:
a gons_mnt join (keep importing from the original root), a C helper that
does not load or is not the one this version installs (the policy still
applies), an interpreter whose subinterpreters C cannot tell apart, and a
``pyns_boot.start`` naming ``pyns_boot.hook:run`` that this version did not
install (refused under the policy: on 3.15-3.17 it silences the .pth line).
:func:`start` is the PEP 829 entry point of the wheels that ship a .start
file (docs/python-versions.md: from Python 3.18 on).  It is still start-up
code of every such process (tests/test_startup_imports.py).
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _pyns_boot import Report

POLICY_VARIABLE = "PYNS_BOOT_ON_ERROR"
KEEP_IMPORTS_VARIABLE = "PYNS_BOOT_KEEP_IMPORTS"
POLICIES = ("exit", "warn", "ignore")
EXIT_STATUS = 125

# The C helper's table (_pyns_boot.VARIABLES and ORDER_VARIABLE), and
# the names pyns_boot.pth looks up; tests check the three agree.  The .pth
# line looks each name up in os.environ's dict of byte keys (C-level, ten
# hash lookups whatever the size of the environment; one bytes constant
# split at run time, cheaper to compile than a tuple of ten), and only then
# compiles and runs the rest (docs/python-versions.md, Idle cost).
TRIGGER_VARIABLES = (
    "gons_cgroup",
    "gons_ipc",
    "gons_mnt",
    "gons_net",
    "gons_pid",
    "gons_time",
    "gons_user",
    "gons_uts",
    "gons_order",
    "gons_netns",  # pyns_boot._finish: /run/netns/NAME the way ip netns exec joins it
)
# pyns_boot._finish.VARIABLES: the steps around the joins (gons_netns, the
# working directory, the ids).  The C helper's run() hands these to run().
FINISH_VARIABLES = ("gons_netns", "PYNS_BOOT_WD", "PYNS_BOOT_SETGID", "PYNS_BOOT_SETUID")

# The C helper's one file name (setup.py); a "_pyns_boot.abi3-<platform>.so"
# beside it was left by an older build made with 3.15+, which 3.15 loads first.
HELPER_FILE = "_pyns_boot.abi3.so"
START_FILE = "pyns_boot.start"

# What this process's hook did, for pyns_boot.status().
ran = False
load_error = None  # type: str | None
policy = None  # type: str | None
# After a mnt join: "/proc/self/fd/N" while imports read the original root
# (pyns_boot._oldroot), or why that could not be done.
imports_root = None  # type: str | None
imports_error = None  # type: str | None
# A step of pyns_boot._finish that failed after the joins (working directory, ids, ip netns exec view).
finish_error = None  # type: str | None


def run() -> None:
    """Join the namespaces the gons_* variables name; act once per process."""
    global ran, load_error, finish_error
    if ran or os.environ.keys().isdisjoint(TRIGGER_VARIABLES):
        return
    if not in_main_interpreter():
        # site.py runs the .pth again in every subinterpreter: namespaces
        # belong to the process, which its main interpreter set up.
        return
    ran = True
    stray = stray_start_file(sys._getframe(1))
    if stray is not None:
        apply_policy(stray)  # under warn: join anyway, once, from here
    try:
        import _pyns_boot
    except ImportError as error:
        load_error = "pyns_boot: cannot load the C helper _pyns_boot: %s" % error
        apply_policy(load_error)
        return
    stale = stale_helper(getattr(_pyns_boot, "__file__", None) or "")
    if stale is not None:
        load_error = stale
        apply_policy(load_error)
        return
    mnt_path = os.environ.get("gons_mnt")
    keep_imports = False
    if mnt_path:
        setting = os.environ.get(KEEP_IMPORTS_VARIABLE, "")
        if setting not in ("", "0", "1"):
            load_error = 'pyns_boot: %s="%s" is not understood (expected 1 or 0); no namespace was joined' % (
                KEEP_IMPORTS_VARIABLE,
                setting,
            )
            apply_policy(load_error)
            return
        keep_imports = setting != "0"
    plan = None
    if any(os.environ.get(name) for name in FINISH_VARIABLES):
        from pyns_boot import _finish

        plan = _finish.Plan()
        load_error = _finish.prepare(plan)
        if load_error is not None:
            _finish.remove_variables()
            apply_policy(load_error)
            return
    report = _pyns_boot.boot(keep_imports)
    if report is None:  # another interpreter of this process acted already
        return
    for name in TRIGGER_VARIABLES + FINISH_VARIABLES:
        os.environ.pop(name, None)
    old_root = _pyns_boot.take_old_root() if keep_imports else None
    if not report["ok"]:
        report_failure(report)
    else:
        note_policy()
    if old_root is not None:
        keep_importing(old_root, str(mnt_path))
    if plan is not None:
        if not report["ok"]:
            _finish.discard(plan)
            return
        finish_error = _finish.finish(plan, _pyns_boot)
        if finish_error is not None:
            apply_policy(finish_error)


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
    from pyns_boot import __version__

    return (
        "pyns_boot: %s calls pyns_boot.hook:run, but pyns_boot %s installs no such entry (the file was left "
        "behind by an older install, or written by hand); on Python 3.15-3.17 it also stops the pyns_boot.pth "
        "beside it from running the C helper. Remove it (rm %s), or reinstall pyns_boot; "
        "PYNS_BOOT_ON_ERROR=warn joins anyway" % (where, __version__, where)
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


def keep_importing(fds: "tuple[int, int]", mnt_path: str) -> None:
    """After the mnt join: import from the original root through fds[0].

    fds[1], on the original mount namespace, stays open with it: it keeps
    the mounts below that root attached (see _pyns_boot.take_old_root)."""
    global imports_root, imports_error
    fd = fds[0]
    root = "/proc/self/fd/%d" % fd
    try:
        os.stat(root + "/")
    except OSError as error:
        for kept in fds:
            os.close(kept)
        reason = why_unreachable(error)
        imports_error = (
            'pyns_boot: joined gons_mnt "%s", but the interpreter cannot keep importing from its own '
            "installation: %s is not reachable there (%s); %sset %s=0 to import from the target's "
            "filesystem instead" % (mnt_path, root, reason, _pid_way_out(mnt_path, reason), KEEP_IMPORTS_VARIABLE)
        )
        apply_policy(imports_error)
        return
    package = sys.modules["pyns_boot"]
    package.__path__[:] = [root + p if p.startswith("/") else p for p in package.__path__]
    try:
        from pyns_boot import _oldroot

        _oldroot.activate(fd, mnt_path, fds[1])
    except Exception as error:
        imports_error = 'pyns_boot: joined gons_mnt "%s", but cannot keep importing from the original root %s: %s' % (
            mnt_path,
            root,
            unreadable_installation(list(package.__path__), root) or error,
        )
        apply_policy(imports_error)
        return
    imports_root = root


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


def report_failure(report: "Report") -> None:
    """A failed join (a report of the C helper): its message and one hint, under the policy.

    Also the C helper's run() calls it on a failure."""
    message = str(report["message"])
    try:
        from pyns_boot import _hints

        hint = _hints.for_report(report)
    except Exception:  # a hint must never hide the failure itself
        hint = None
    apply_policy(message if hint is None else message + "\n" + _hints.HINT_PREFIX + hint)


def policy_error(value: str) -> "str | None":
    """The one-line complaint about a PYNS_BOOT_ON_ERROR value, or None when it is understood."""
    if value in POLICIES or value == "":
        return None
    return 'pyns_boot: %s="%s" is not understood (expected exit, warn or ignore); acting as exit' % (
        POLICY_VARIABLE,
        value,
    )


def note_policy() -> None:
    """After a successful join: record the policy, and say it when its value is not understood."""
    global policy
    value = os.environ.get(POLICY_VARIABLE, "")
    policy = value if value in POLICIES else "exit"
    complaint = policy_error(value)
    if complaint is not None:
        write_stderr(complaint + "\n")


def apply_policy(message: str) -> None:
    """Report a failure as PYNS_BOOT_ON_ERROR asks: exit (default), warn, ignore.

    The pyns-boot command itself never exits here: it carries on (as with
    warn) so that it can report the failure and the way out."""
    global policy
    value = os.environ.get(POLICY_VARIABLE, "")
    policy = value if value in POLICIES else "exit"
    if policy == "ignore":
        return
    complaint = policy_error(value)
    if complaint is not None:
        message += "\n" + complaint
    if policy == "exit" and is_pyns_boot_command():
        policy = "warn"
        message += "\npyns_boot: the pyns-boot command carries on (as with %s=warn) to report this" % POLICY_VARIABLE
    write_stderr(message + "\n")
    if policy == "exit":
        os._exit(EXIT_STATUS)


def is_pyns_boot_command() -> bool:
    """True in the pyns-boot command: its console script, or python -m pyns_boot.

    sys.argv does not exist yet while site.py runs, so this reads
    /proc/self/cmdline: the interpreter's options, then the script or -m."""
    try:
        with open("/proc/self/cmdline", "rb") as file:
            arguments = file.read().split(b"\0")[1:]
    except OSError:
        return False
    with_value = (b"-W", b"-X", b"--check-hash-based-pycs")
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if argument in (b"-m", b"-c") or (argument.startswith((b"-m", b"-c")) and argument[:2] != b"--"):
            module = argument[2:] or (arguments[index + 1] if index + 1 < len(arguments) else b"")
            return argument[:2] == b"-m" and module in (b"pyns_boot", b"pyns_boot.cli")
        if argument == b"--" or not argument.startswith(b"-") or argument == b"-":
            if argument == b"--":
                index += 1
            script = arguments[index] if index < len(arguments) else b""
            return os.path.basename(script) == b"pyns-boot"
        index += 2 if argument in with_value else 1
    return False


# A failure message waits at most this long for room on stderr (the C
# helper's STDERR_TIMEOUT_MS): a full pipe nobody reads must not hang the start.
STDERR_TIMEOUT = 1.0
PIPE_BUF = 4096


def write_stderr(text: str) -> bool:
    """Write text to fd 2 as the bytes it came from (a non-UTF-8 path appears
    as given, as the C helper's run() writes it), after whatever sys.stderr
    holds buffered; bounded in time.  True when all of it got out."""
    try:
        sys.stderr.flush()
    except Exception:  # no usable sys.stderr this early
        pass
    data = os.fsencode(text)
    # getattr: a stale helper left by an older install (stale_helper) has no write_stderr
    write = getattr(sys.modules.get("_pyns_boot"), "write_stderr", None)
    if write is not None:
        return bool(write(data))
    return _write_bounded(data)


def _write_bounded(data: bytes) -> bool:
    """The C helper's write_bounded, for when it did not load (no switch
    happened then, so select imports from the usual place): wait for room,
    write at most PIPE_BUF bytes at a time, give up after STDERR_TIMEOUT."""
    import select
    import time

    deadline = time.monotonic() + STDERR_TIMEOUT
    poller = select.poll()
    poller.register(2, select.POLLOUT)
    try:
        while data:
            left = deadline - time.monotonic()
            events = poller.poll(max(0, int(left * 1000)))
            if not events or not events[0][1] & select.POLLOUT:
                return False
            try:
                written = os.write(2, data[:PIPE_BUF])
            except BlockingIOError:
                continue
            if written <= 0:
                return False
            data = data[written:]
    except OSError:
        return False
    return True


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
