"""The start-up hook: runs once per process, before any user code.

The common case never comes here: ``pyns_boot.pth`` calls the C helper's
``_pyns_boot.run()``, which joins, removes the variables and applies the
failure policy by itself.  :func:`run` is the start-up path for the rest:
a gons_mnt join (keep importing from the original root), a C helper that
does not load (the policy still applies), an interpreter whose
subinterpreters C cannot tell apart, and the PEP 829 entry point
``pyns_boot.start`` (Python 3.15+).  It is still start-up code of every
such process: keep imports out of it.
"""

import os
import sys

POLICY_VARIABLE = "PYNS_BOOT_ON_ERROR"
KEEP_IMPORTS_VARIABLE = "PYNS_BOOT_KEEP_IMPORTS"
POLICIES = ("exit", "warn", "ignore")
EXIT_STATUS = 125

# The C helper's table (pyns_boot._setns.VARIABLES and ORDER_VARIABLE);
# tests check the two agree.  pyns_boot.pth only pre-filters: it calls
# run() when any variable name contains "gons_" (one substring search over
# os.environ's byte keys, cheap to compile and to run in every process),
# and run() decides with these exact names.
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
)

# What this process's hook did, for pyns_boot.status().
ran = False
load_error = None  # type: str | None
policy = None  # type: str | None
# After a mnt join: "/proc/self/fd/N" while imports read the original root
# (pyns_boot._oldroot), or why that could not be done.
imports_root = None  # type: str | None
imports_error = None  # type: str | None


def run() -> None:
    """Join the namespaces the gons_* variables name; act once per process."""
    global ran, load_error
    if ran or os.environ.keys().isdisjoint(TRIGGER_VARIABLES):
        return
    if not in_main_interpreter():
        # site.py runs the .pth again in every subinterpreter: namespaces
        # belong to the process, which its main interpreter set up.
        return
    ran = True
    try:
        from pyns_boot import _setns
    except ImportError as error:
        load_error = "pyns_boot: cannot load the C helper pyns_boot._setns: %s" % error
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
    report = _setns.boot(keep_imports)
    if report is None:  # another interpreter of this process acted already
        return
    for name in TRIGGER_VARIABLES:
        os.environ.pop(name, None)
    old_root = _setns.take_old_root() if keep_imports else None
    if not report[0]:
        apply_policy(str(report[1]))
    if old_root is not None:
        keep_importing(old_root, str(mnt_path))


def keep_importing(fds: "tuple[int, int]", mnt_path: str) -> None:
    """After the mnt join: import from the original root through fds[0].

    fds[1], on the original mount namespace, stays open with it: it keeps
    the mounts below that root attached (see _setns.take_old_root)."""
    global imports_root, imports_error
    fd = fds[0]
    root = "/proc/self/fd/%d" % fd
    try:
        os.stat(root + "/")
    except OSError as error:
        for kept in fds:
            os.close(kept)
        imports_error = (
            'pyns_boot: joined gons_mnt "%s", but the interpreter cannot keep importing from its own '
            "installation: %s is not reachable there (%s); set %s=0 to import from the target's "
            "filesystem instead" % (mnt_path, root, _why_unreachable(error), KEEP_IMPORTS_VARIABLE)
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
            error,
        )
        apply_policy(imports_error)
        return
    imports_root = root


def _why_unreachable(error: OSError) -> str:
    try:
        os.lstat("/proc/self")
    except OSError:
        return "/proc is not mounted in the target mount namespace"
    try:
        os.stat("/proc/self")
    except OSError:
        return "the target's /proc belongs to a pid namespace this process is not a member of"
    return error.strerror or str(error)


def apply_policy(message: str) -> None:
    """Report a failure as PYNS_BOOT_ON_ERROR asks: exit (default), warn, ignore."""
    global policy
    value = os.environ.get(POLICY_VARIABLE, "")
    policy = value if value in POLICIES else "exit"
    if policy == "ignore":
        return
    if value not in POLICIES and value != "":
        message += '\npyns_boot: %s="%s" is not understood (expected exit, warn or ignore); acting as exit' % (
            POLICY_VARIABLE,
            value,
        )
    write_stderr(message + "\n")
    if policy == "exit":
        os._exit(EXIT_STATUS)


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
    helper = sys.modules.get("_pyns_boot")
    if helper is not None:
        return bool(helper.write_stderr(data))
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
