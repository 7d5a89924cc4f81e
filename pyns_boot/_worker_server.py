"""The fork server and its workers: the far side of call_in and NamespaceExecutor.

The program's side (pyns_boot._worker_client, class _Process) starts the
server as a fresh interpreter,

    python -I -S -c BOOT CONTROL_FD PACKAGE_PARENT

(BOOT imports this module and calls serve()), so it is single-threaded by
construction, whatever the program is (a program that imports from its
original root after a gons_mnt join forks it instead: see
pyns_boot._worker_client._fork_server).  For each worker it forks a child;
the child joins the requested namespaces with ``_pyns_boot.apply`` before
it runs anything else (mnt, user and time need a single-threaded process),
forks once more into a joined pid namespace (the worker becomes the C
supervisor of its child, which serves the calls from inside it), reports
the outcome and then serves calls.  The messages and their records:
pyns_boot._worker_protocol.

Start-up cost is the point (tests/test_startup_imports.py): only built-in and C modules (marshal, _socket,
_signal), this module, the protocol, pyns_boot._errors and the C helper
load here; ``socket``, ``pickle`` and ``signal`` would pull in enum, re,
functools and collections and slow the cold start down by more than the
whole site.py.  _pickle loads in a worker only when a call or result is not
plain data.

Lifetimes: the server exits when its control socket reaches EOF (the parent
closed it or died) and SIGKILLs the workers it still has; a worker exits
when its own socket reaches EOF.  The server reaps its workers (SIGCHLD), so
neither leaves a zombie behind.
"""

import _signal  # type: ignore[import-not-found]  # (no stubs) signal would import enum
import _socket
import io
import marshal
import os
import sys
import time

from pyns_boot._errors import RemoteError
from pyns_boot._worker_protocol import MARSHAL, PeerClosed, encode, read_frame, recv_frame, send_frame, write_frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from _pyns_boot import Report

    from pyns_boot._worker_protocol import CallReply, ControlReply, ForkRequest, SetupReply

STATUS_KEEP = 1024  # exit statuses kept for "status" requests
STATUS_WAIT = 2.0  # how long a "status" request waits for an exiting worker

# ---------------------------------------------------------------- server


class _Server:
    def __init__(self, control: "Any") -> None:
        self.control = control
        self.live = set()  # type: set[int]
        self.statuses = {}  # type: dict[int, int]

    def reap(self, *_ignored: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.live.discard(pid)
            self.statuses[pid] = status
            if len(self.statuses) > STATUS_KEEP:
                del self.statuses[next(iter(self.statuses))]

    def serve(self) -> None:
        while True:
            try:
                frame, fd = recv_frame(self.control, want_fd=True)
            except (PeerClosed, ConnectionError):
                break
            request = marshal.loads(frame)
            try:
                reply = self.handle(request, fd)
            except Exception as error:  # a bad request must not end the server
                reply = {"error": "%s: %s" % (type(error).__name__, error)}
            finally:
                if fd >= 0:
                    os.close(fd)
            send_frame(self.control, marshal.dumps(reply))  # type: ignore[arg-type]  # a TypedDict is a dict
        self.stop()

    def handle(self, request: "Any", fd: int) -> "ControlReply":
        command = request["request"]
        if command == "fork":
            if fd < 0:
                return {"error": "fork request without a socket"}
            fork: "ForkRequest" = request
            sys.path[:] = fork["sys_path"]
            if fork["needs_main"] and fork["main_path"] is not None:
                _preload_main(fork["main_path"])
            if (
                fork["keep_imports"]
                and "mnt" in fork["paths"]
                and not {"pyns_boot._keep_imports", "pyns_boot.hook"} <= set(sys.modules)
            ):
                try:  # loaded here, before any worker joins a mount namespace where they may not exist
                    from pyns_boot import _keep_imports, hook  # noqa: F401
                except ImportError:
                    pass
            pid = os.fork()
            if pid == 0:
                self.control.close()
                _worker(fd, fork)  # never returns
            self.live.add(pid)
            return {"pid": pid}
        if command == "status":
            return {"status": self.wait_status(request["pid"])}
        if command == "kill":
            pid = request["pid"]
            if pid in self.live:
                try:
                    os.kill(pid, _signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return {"pid": pid}
        return {"error": "unknown request %r" % (command,)}

    def wait_status(self, pid: int) -> "int | None":
        """The worker's wait status, waiting a little for one that is exiting."""
        deadline = time.monotonic() + STATUS_WAIT
        while pid in self.live and time.monotonic() < deadline:
            self.reap()
            if pid in self.live:
                time.sleep(0.002)
        return self.statuses.pop(pid, None)

    def stop(self) -> None:
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        for pid in self.live:
            try:
                os.kill(pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in list(self.live):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _kept_descriptors(control_fd: int) -> "set[int]":
    """The control socket, and in a server forked from a program that keeps imports, its old-root descriptors."""
    keep = {control_fd}
    kept = sys.modules.get("pyns_boot._keep_imports")
    root = getattr(kept, "root", None)
    if root is not None:
        keep.add(int(root.rsplit("/", 1)[1]))
        keep.add(getattr(kept, "namespace_fd", -1))
    return keep


def _close_inherited(keep: "set[int]") -> None:
    """Close what posix_spawn (or the fork) let through: workers hold only their own descriptors."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        low = 3
        for fd in sorted(keep):
            if fd >= low:
                os.closerange(low, fd)
                low = fd + 1
        os.closerange(low, os.sysconf("SC_OPEN_MAX"))
        return
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def serve(control_fd: int) -> None:
    """Entry point of the fork server process."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # the parent decides; EOF ends us
    _close_inherited(_kept_descriptors(control_fd))
    control = _socket.socket(fileno=control_fd)
    # Every worker needs it, and after a mnt join it may not be reachable any more.
    import _pyns_boot  # noqa: F401

    server = _Server(control)
    _signal.signal(_signal.SIGCHLD, server.reap)
    server.serve()


# ---------------------------------------------------------------- worker


def _netns_view(report: "Report", netns: str) -> "Report":
    """After joining /run/netns/NAME: the view of ip netns exec NAME (a failure turns the report into one)."""
    import _pyns_boot

    try:
        for failure in _pyns_boot.netns_view(netns):
            os.write(2, os.fsencode("pyns_boot: netns %s: %s\n" % (netns, failure)))
    except OSError as error:
        return _failed(report, error.errno, str(error.strerror), "net")
    return report


def _worker(fd: int, fork: "ForkRequest") -> None:
    code = 0
    set_up = False
    try:
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        report = _set_up(fork)
        reply: "SetupReply" = {"outcome": "joined" if report["ok"] else "join_failed", "report": report}
        write_frame(fd, encode(reply))
        set_up = True
        if report["ok"]:
            _serve_calls(fd, fork["main_path"], fork["one_shot"])
    except (PeerClosed, BrokenPipeError, ConnectionError):
        pass
    except BaseException as error:
        code = 70
        if not set_up:  # the caller gets the reason, not a bare exit status
            try:
                failed: "SetupReply" = {
                    "outcome": "setup_failed",
                    "error": "%s: %s" % (type(error).__name__, error),
                    "traceback": _format_exception(error),
                }
                write_frame(fd, encode(failed))
            except BaseException:
                pass
    finally:
        os._exit(code)


def _open_above_stdio(path: str, flags: int) -> int:
    """os.open, never on 0-2: a program that closed stdio and later dup2s
    /dev/null onto 0-2 would replace a kept descriptor there."""
    fd = os.open(path, flags)
    if fd > 2:
        return fd
    import fcntl

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


def _set_up(fork: "ForkRequest") -> "Report":
    """Join (a named netns with the view of ip netns exec); enter a joined pid namespace (fork: the worker
    lives inside it); keep importing after a mnt join.

    Returns the report of _pyns_boot.apply, made a failure when a later step failed."""
    import _pyns_boot

    paths = fork["paths"]
    mnt_path = paths.get("mnt")
    keeps_imports = fork["keep_imports"] and {"pyns_boot._keep_imports", "pyns_boot.hook"} <= sys.modules.keys()
    old_root = -1
    if mnt_path is not None and keeps_imports and getattr(sys.modules["pyns_boot._keep_imports"], "root", None) is None:
        old_root = _open_above_stdio("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        report = _pyns_boot.apply(fork["order"], [paths.get(t) for t in _pyns_boot.TYPES])
        if report["ok"] and fork["netns"] is not None:
            report = _netns_view(report, fork["netns"])
        outcomes = {t: entry["outcome"] for t, entry in report["namespaces"].items()}
        if report["ok"] and outcomes.get("pid") == "joined":
            try:
                _pyns_boot.enter_pid(paths["pid"])
            except OSError as error:
                return _failed(report, error.errno, str(error.strerror), "pid")
        if report["ok"] and outcomes.get("mnt") == "joined" and keeps_imports:
            hook = sys.modules["pyns_boot.hook"]
            fd, old_root = old_root, -1  # switch_imports keeps it, or closes it
            failure = hook.switch_imports(fd, str(mnt_path), worker_pid_way_out=_pid_way_out(str(mnt_path), paths))
            if failure is not None:
                return _failed(report, failure[0], failure[1], "mnt")
        return report
    finally:
        if old_root >= 0:
            os.close(old_root)


def _failed(report: "Report", error_errno: "int | None", message: str, failed: str) -> "Report":
    return {**report, "ok": False, "message": message, "errno": error_errno or 0, "failed": failed}


def _pid_way_out(mnt_path: str, paths: "dict[str, str]") -> str:
    """When the target's /proc belongs to another pid namespace: the way out in the terms of Namespaces.

    (The start-up hook's own names the gons_pid and PYNS_BOOT_PID variables instead.)"""
    if "pid" in paths:
        return "make pid name the pid namespace that /proc belongs to, or "
    hook = sys.modules["pyns_boot.hook"]
    return "add pid=%s to the Namespaces (the target's pid namespace) so that the worker lives inside it, or " % (
        hook.sibling_pid_path(mnt_path)
    )


def _serve_calls(fd: int, main_path: "str | None", one_shot: bool) -> None:
    while True:
        frame = read_frame(fd)
        try:
            fn, args, kwargs = _decode_call(frame, main_path)
            reply: "CallReply" = {"result": fn(*args, **kwargs)}
        except BaseException as error:
            reply = {"error": error, "traceback": _format_exception(error)}
        del frame
        write_frame(fd, _encode_reply(reply))
        del reply
        if one_shot:
            return


def _decode_call(frame: bytes, main_path: "str | None") -> "tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]":
    """The callable and its arguments: a MarshalCall names the callable, a PickleCall holds it."""
    if frame[:1] == MARSHAL:
        call = marshal.loads(memoryview(frame)[1:])
        module_name = call["module"]
        __import__(module_name)
        fn: "Any" = sys.modules[module_name]
        for part in call["qualname"].split("."):
            fn = getattr(fn, part)
        return fn, call["args"], call["kwargs"]
    call = _unpickler_class(main_path)(io.BytesIO(memoryview(frame)[1:])).load()
    return call["fn"], call["args"], call["kwargs"]


def _encode_reply(reply: "CallReply") -> bytes:
    try:
        return encode(reply)
    except BaseException as error:
        if "result" in reply:
            text = _format_exception(error)
            kind = type(reply["result"]).__name__
            replacement = TypeError("the result of type %s cannot be pickled back to the caller: %s" % (kind, error))
            return encode({"error": replacement, "traceback": text})
        # the exception itself does not pickle: send its type and text instead
        substitute = RemoteError("%s: %s" % (type(reply["error"]).__name__, reply["error"]))
        return encode({"error": substitute, "traceback": reply["traceback"]})


def _format_exception(error: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _unpickler_class(main_path: "str | None") -> "Any":
    import _pickle

    class Unpickler(_pickle.Unpickler):
        def find_class(self, module: str, name: str) -> "Any":
            if module in ("__main__", "__mp_main__"):
                return getattr(_load_main(main_path, name), name)
            return super().find_class(module, name)

    return Unpickler


def _preload_main(main_path: str) -> None:
    """Load the caller's script once here, so that each worker need not (multiprocessing's forkserver does too).

    When that fails the worker tries again and reports the error with the call.
    """
    if "__mp_main__" in sys.modules:
        return
    try:
        _load_main(main_path, "")
    except BaseException:
        sys.modules.pop("__mp_main__", None)


def _load_main(main_path: "str | None", name: str) -> "Any":
    """The caller's __main__ script, run once here as __mp_main__ (as multiprocessing's spawn does)."""
    module = sys.modules.get("__mp_main__")
    if module is not None:
        return module
    if main_path is None:
        raise AttributeError(
            "cannot load __main__.%s in the worker: the caller's __main__ has no file (an interactive session or "
            "python -c); define the callable in an importable module" % name
        )
    import runpy
    import types

    kept = sys.modules.get("pyns_boot._keep_imports")
    if kept is not None:
        main_path = kept.remap(main_path)
    module = types.ModuleType("__mp_main__")
    module.__dict__.update(runpy.run_path(str(main_path), run_name="__mp_main__"))
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module
    return module
