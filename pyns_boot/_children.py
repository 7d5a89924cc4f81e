"""Child interpreters after a mnt join with keep-imports: they run inside the target as this interpreter.

Loaded by pyns_boot._keep_imports (through the old root) when the program first
starts a child of ``sys.executable`` or imports ``_posixsubprocess``.  Such a
child cannot start from the target's filesystem (neither the interpreter nor
its libraries are there), so it starts from the mount namespace the process
had before the join (``_keep_imports.namespace_fd``, kept open for this and for
the mounts below the old root; handed over by ``attach``):

- ``_posixsubprocess.fork_exec`` (subprocess, multiprocessing's spawn and
  forkserver start methods, its resource tracker and fork server) is
  wrapped: for the interpreter it runs in a short-lived thread that entered
  that namespace (``_pyns_boot.call_in_mount_namespace``), so the child
  starts there, with no Python code between fork and exec; its ``cwd`` is
  checked here and reached again by the child after its joins.  With a
  caller's ``preexec_fn`` (Python code in the child anyway) the child
  enters it itself, after that function ran in the target.
  ``os.exec*`` of the interpreter execs from such a thread
  (``_pyns_boot.exec_in_mount_namespace``): a failed exec leaves the
  process as it was.
- The child gets three inherited descriptors: the target's mount namespace
  K (``gons_mnt=/proc/self/fd/K``) and the parent's old root N and old
  mount namespace M under the same numbers (``PYNS_BOOT_OLD_ROOT_FDS=N,M,K``),
  plus ``PYNS_BOOT_WD``, the working directory it would have had (a
  relative script path is made absolute against it).  Its own start-up
  hook joins the target again with keep-imports, adopts N and M (so
  the ``/proc/self/fd/N/...`` paths multiprocessing hands over mean the same
  there), closes K and removes the variables.  Every other namespace the
  child inherits (pid, net, uts, ipc, ...).
- When that thread cannot enter the old namespace (a joined user namespace
  has no rights over it: EPERM), the start fails at the call with one error
  that says why, before any fork.
- multiprocessing's fork server and resource tracker, started this way,
  are stopped and reaped at exit after multiprocessing's own exit handler,
  so that a container whose init does not reap keeps no zombie of them.
"""

import errno
import os
import sys

import _pyns_boot

from pyns_boot._after_joins import WD_VARIABLE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

OLD_ROOT_FDS_VARIABLE = "PYNS_BOOT_OLD_ROOT_FDS"  # read by the child's C helper (_variables.c)

# _posixsubprocess.fork_exec takes its arguments by position only, and their
# number tells the versions apart: 17 on 3.8, 21 on 3.9-3.10 (gid,
# extra_groups, uid, umask), 23 on 3.11-3.13 (process_group before them,
# allow_vfork last), 22 from 3.14 on (no allow_vfork).  The first six (args,
# executable_list, close_fds, pass_fds, cwd, env) are the same everywhere;
# the ids the child would take (gid, extra_groups, uid) and preexec_fn move.
_ID_INDEXES = {17: (), 21: (16, 17, 18), 22: (17, 18, 19), 23: (17, 18, 19)}
_PREEXEC_INDEX = {17: 16, 21: 20, 22: 21, 23: 21}

_original_fork_exec: "Callable[..., int] | None" = None


class Kept:
    """What pyns_boot._keep_imports keeps, handed over by it (attach) before every use."""

    root = ""  # "/proc/self/fd/N"
    namespace_fd = -1
    mnt_path: "str | None" = None
    own_names: "Callable[[], tuple[str | None, ...]]" = tuple


kept = Kept()


def attach(
    root: str, namespace_fd: int, mnt_path: "str | None", own_names: "Callable[[], tuple[str | None, ...]]"
) -> None:
    kept.root, kept.namespace_fd, kept.mnt_path, kept.own_names = root, namespace_fd, mnt_path, own_names


#: Whether a child was started from the old mount namespace (then multiprocessing's helpers were too).
started = False
_exit_handler_registered = False


def install() -> None:
    """Wrap _posixsubprocess.fork_exec (and subprocess's copy of it, 3.11+), once."""
    global _original_fork_exec
    import _posixsubprocess

    current = _posixsubprocess.fork_exec
    if getattr(current, "_pyns_boot_children", False):
        return
    _original_fork_exec = current
    _posixsubprocess.fork_exec = fork_exec
    prepare_subprocess()


def prepare_subprocess() -> None:
    """subprocess must start the interpreter through fork_exec: its copy (3.11+) and no posix_spawn."""
    subprocess = sys.modules.get("subprocess")
    if subprocess is None:
        return
    if getattr(subprocess, "_fork_exec", None) is not None and _original_fork_exec is not None:
        subprocess._fork_exec = fork_exec  # type: ignore[attr-defined]
    if getattr(subprocess, "_USE_POSIX_SPAWN", False):
        subprocess._USE_POSIX_SPAWN = False  # type: ignore[attr-defined]


def fork_exec(*args: "Any") -> int:
    """_posixsubprocess.fork_exec, for a child of the interpreter started from the old mount namespace."""
    original = _original_fork_exec
    assert original is not None
    if len(args) < 6 or not _names_own_interpreter(args[1]):
        return original(*args)
    arguments = list(args)
    _checked(arguments)
    preexec_index = _PREEXEC_INDEX[len(arguments)]
    caller_preexec = arguments[preexec_index]
    # The working directory, resolved here: the child reaches it again after its joins.
    wd = _working_directory(arguments[4])
    if caller_preexec is None:
        arguments[4] = None
    target = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        arguments[0] = _with_absolute_script(arguments[0], wd)
        arguments[1] = [_unmapped(entry) for entry in arguments[1]]
        arguments[3] = tuple(sorted(set(arguments[3]) | set(_inherited(target))))
        arguments[5] = _child_environment(arguments[5], wd, target)
        if caller_preexec is None:
            # Forked from a thread in the old namespace: no Python code runs in
            # the child before exec (a preexec_fn would run the at-fork hooks,
            # and 3.15's resource tracker closes its descriptor in one).
            entered, pid = _pyns_boot.call_in_mount_namespace(kept.namespace_fd, original, tuple(arguments))
        else:
            # The caller's preexec_fn runs in the child as without pyns_boot (in
            # the target, after cwd), then the child enters the old namespace.
            entered, pid = _entered_by_the_child(original, arguments, preexec_index, caller_preexec)
    finally:
        os.close(target)
    if not entered:
        raise _error(os.fsdecode(args[1][0]), _why_not_entered(pid), pid)
    _note_started()
    return pid


def _entered_by_the_child(
    original: "Callable[..., int]", arguments: "list[Any]", index: int, caller_preexec: "Callable[[], Any]"
) -> "tuple[bool, int]":
    namespace_fd = kept.namespace_fd
    enter = _pyns_boot.enter_mount_namespace
    # Whether the child could: tried in a thread first, so that a failure is
    # this call's error and not a SubprocessError from the child.
    entered, failure = _pyns_boot.call_in_mount_namespace(namespace_fd, int, ())
    if not entered:
        return False, failure

    def preexec() -> None:
        caller_preexec()
        enter(namespace_fd)

    arguments[index] = preexec
    return True, original(*arguments)


fork_exec._pyns_boot_children = True  # type: ignore[attr-defined]


def _note_started() -> None:
    global started
    started = True


def _names_own_interpreter(executable_list: "Sequence[Any]") -> bool:
    """One path, the interpreter's (a name looked up in PATH means the target's program of that name)."""
    if not executable_list or len(executable_list) != 1:
        return False
    try:
        return os.fsdecode(executable_list[0]) in kept.own_names()
    except TypeError:
        return False


def _checked(args: "list[Any]") -> None:
    """Raises when the child cannot be started this way."""
    count = len(args)
    program = os.fsdecode(args[1][0])
    if count not in _ID_INDEXES:
        raise _error(
            program,
            f"this Python's _posixsubprocess.fork_exec takes {count} arguments, a form pyns_boot does not know",
            errno.ENOSYS,
        )
    for position, what in zip(_ID_INDEXES[count], ("group", "extra_groups", "user")):
        if args[position] is not None:
            raise _error(
                program,
                f"the child would change its {what} before exec, and then could not enter that namespace and the "
                "target's again (pass no user, group or extra_groups; start it with them from outside)",
                errno.EPERM,
            )


def _inherited(target: int) -> "tuple[int, int, int]":
    return int(kept.root.rsplit("/", 1)[1]), kept.namespace_fd, target


def _unmapped(entry: "Any") -> bytes:
    """/proc/self/fd/N/X -> /X: the child resolves it in the old namespace."""
    path = os.fsencode(entry)
    root = os.fsencode(kept.root)
    return path[len(root) :] if root and path.startswith(root + b"/") else path


def _working_directory(cwd: "Any") -> "bytes | None":
    """The working directory the child would have had (it reaches it again after its joins)."""
    try:
        here = os.getcwd()
    except OSError:
        here = None
    if cwd is None:
        return None if here is None else os.fsencode(here)
    path = os.fsencode(cwd)
    try:  # the error the child's chdir would give, from the parent
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise OSError(error.errno, error.strerror, os.fsdecode(cwd)) from None
    try:  # the path the child's getcwd() would give there (links resolved)
        resolved = os.readlink(b"/proc/self/fd/%d" % fd)
    except OSError:
        resolved = b""
    finally:
        os.close(fd)
    if resolved.startswith(b"/"):
        return resolved
    if path.startswith(b"/"):
        return path
    return None if here is None else os.path.join(os.fsencode(here), path)


def _with_absolute_script(argv: "Sequence[Any]", wd: "bytes | None") -> "list[Any]":
    """argv with a relative script path made absolute against wd, as the interpreter (3.9+) makes it.

    The child starts in the old namespace, where its working directory is
    not wd yet: from 3.9 on the interpreter makes the script's path absolute
    (__file__) before its start-up hook runs.  3.8 opens it as given, after."""
    arguments = list(argv)
    if wd is None or sys.version_info < (3, 9):
        return arguments
    index = 1
    while index < len(arguments):
        # CPython's options (Python/getopt.c): -c and -m end them (no script),
        # -W and -X take a value (in the same argument or the next one).
        arg = os.fsencode(arguments[index])
        if arg == b"--":
            index += 1
            break
        if not arg.startswith(b"-") or arg == b"-":
            break
        if arg == b"--check-hash-based-pycs":
            index += 1
        elif not arg.startswith(b"--"):
            for position in range(1, len(arg)):
                letter = arg[position : position + 1]
                if letter in (b"c", b"m"):
                    return arguments
                if letter in (b"W", b"X"):
                    if position == len(arg) - 1:
                        index += 1
                    break
        index += 1
    if index < len(arguments):
        script = os.fsencode(arguments[index])
        if script == b"-" or script.startswith(b"/"):
            return arguments
        # _Py_abspath: the working directory, "/" and the path ("" and "." are the directory itself)
        arguments[index] = wd if script in (b"", b".") else wd + b"/" + script
    return arguments


def _child_environment(env: "Sequence[bytes] | None", wd: "bytes | None", target: int) -> "list[bytes]":
    entries = list(env) if env is not None else [key + b"=" + value for key, value in os.environb.items()]
    names = {entry.split(b"=", 1)[0] for entry in entries}
    if b"gons_mnt" in names:
        # The caller names a mount namespace for the child itself: it joins that one.
        entries = [entry for entry in entries if not entry.startswith(OLD_ROOT_FDS_VARIABLE.encode() + b"=")]
    else:
        entries = [entry for entry in entries if entry.split(b"=", 1)[0] != OLD_ROOT_FDS_VARIABLE.encode()]
        entries.append(b"gons_mnt=/proc/self/fd/%d" % target)
        entries.append(OLD_ROOT_FDS_VARIABLE.encode() + b"=%d,%d,%d" % _inherited(target))
    if wd is not None and WD_VARIABLE.encode() not in names:
        entries.append(WD_VARIABLE.encode() + b"=" + wd)
    return entries


def _why_not_entered(failure: int) -> str:
    reason = os.strerror(failure)
    if failure == errno.EPERM:
        reason += (
            " (this process lacks CAP_SYS_ADMIN over that namespace: after a join of a user namespace, or "
            "without root, it cannot go back)"
        )
    return "it starts from the mount namespace the process had before the join, and cannot enter it: " + reason


def _error(program: str, reason: str, error_errno: int) -> OSError:
    return OSError(
        error_errno,
        f"pyns_boot: cannot start a child interpreter from sys.executable {program} inside gons_mnt "
        f'"{kept.mnt_path}": {reason} (see docs/foreign-mounts.md of pyns_boot; start it from outside with the '
        "gons_* variables instead, or use the fork start method)",
    )


def exec_from_old_namespace(path: "Any", argv: "Sequence[Any]", env: "Any") -> None:
    """os.exec* of the interpreter (its audit event): exec from the old mount namespace; raise on failure."""
    program = os.fsdecode(path)
    entries = None if env is None else [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
    # The exec closes the program's ends of their pipes: they would end as
    # zombies nobody waits for (the new image does not know them).  Not while
    # processes of multiprocessing still run: they hold the tracker's pipe too,
    # and waiting for it would wait for them.
    if not _multiprocessing_children():
        stop_multiprocessing_helpers()
    target = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        wd = _working_directory(None)
        environment = _child_environment(entries, wd, target)
        step, failure = _pyns_boot.exec_in_mount_namespace(
            kept.namespace_fd,
            _unmapped(path),
            [os.fsencode(arg) for arg in _with_absolute_script(argv, wd)],
            environment,
            list(_inherited(target)),
        )
    finally:
        os.close(target)
    if step == 0:
        raise _error(program, _why_not_entered(failure), failure)
    raise OSError(failure, os.strerror(failure), program)


def _multiprocessing_children() -> bool:
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None:
        return False
    try:
        return bool(multiprocessing.active_children())
    except Exception:  # a forked child's copy of the parent's records, say
        return True


def watch_multiprocessing() -> None:
    """Before multiprocessing registers its exit handler: ours runs after it (atexit runs the last first)."""
    global _exit_handler_registered
    if _exit_handler_registered:
        return
    _exit_handler_registered = True
    import atexit

    atexit.register(stop_multiprocessing_helpers)


def stop_multiprocessing_helpers() -> None:
    """Stop and reap the fork server and the resource tracker once this module started children (them too).

    They end when the program's end of their pipe closes, which is at its
    exit: orphans then, and zombies in a container whose init does not reap."""
    for module_name, attribute, pid_attribute in (
        ("multiprocessing.forkserver", "_forkserver", "_forkserver_pid"),
        ("multiprocessing.resource_tracker", "_resource_tracker", "_pid"),
    ):
        helper = getattr(sys.modules.get(module_name), attribute, None)
        if not started or helper is None or getattr(helper, pid_attribute, None) is None:
            continue
        try:
            helper._stop()
        except Exception:
            pass
