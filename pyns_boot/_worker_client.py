"""The program's side of the workers: start a fork server, ask it for workers, hand calls to them.

A running program usually has threads, so it can never join mnt, user or
time namespaces itself, and fork() from it is unsafe.  The work runs in
workers forked by a fork server (pyns_boot._worker_server): a fresh,
single-threaded interpreter started with ``-I -S``.  Each worker joins the
requested namespaces with the C helper before it runs anything, then serves
calls over a socket (pyns_boot._worker_protocol).  The public API on top:
call_in (pyns_boot._call_in) and NamespaceExecutor (pyns_boot._executor).
See docs/workers.md ("How it works, and why this way") and
benchmarks/README.md for the measurements behind this choice.

Not on the start-up path: loaded on first use of the public names, and
light for the first call (tests/test_startup_imports.py): the executor and
the pickle fallback load what they need.
"""

from __future__ import annotations

import _socket
import _thread
import marshal
import os
import sys
import time
import types
from errno import EINVAL

from pyns_boot._errors import RemoteError, RemoteTraceback, WorkerDied
from pyns_boot._namespaces import Namespaces
from pyns_boot._worker_protocol import MARSHAL, PICKLE, decode, recv_frame, send_frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar, Union

    from _pyns_boot import Report

    from pyns_boot._worker_protocol import (
        CallReply,
        ControlReply,
        ForkRequest,
        KillRequest,
        MarshalCall,
        PickleCall,
        SetupReply,
        StatusRequest,
    )

    ControlRequest = Union[ForkRequest, StatusRequest, KillRequest]
    T = TypeVar("T")

# The fork server's start command: python -I -S -c BOOT CONTROL_FD PACKAGE_PARENT
BOOT = "import sys;sys.path.insert(0,sys.argv[2]);from pyns_boot._worker_server import serve;serve(int(sys.argv[1]))"
KEEP_IMPORTS_VARIABLE = "PYNS_BOOT_KEEP_IMPORTS"  # "0": after a mnt join, import from the target's filesystem
CONTROL_TIMEOUT = 30.0  # a request to the fork server never takes this long
SIGKILL = 9  # the signal module would import enum
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _describe_status(status: int | None) -> str:
    if status is None:
        return "its exit status is unknown"
    if os.WIFSIGNALED(status):
        import signal

        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"it was killed by signal {number} ({name})"
    if os.WIFEXITED(status):
        return f"it exited with status {os.WEXITSTATUS(status)}"
    return f"wait status {status}"


def _main_path() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str) or not os.path.isfile(path):
        return None
    # Objects of classes defined in the script come back as __mp_main__.NAME (as with multiprocessing).
    sys.modules.setdefault("__mp_main__", main)  # type: ignore[arg-type]
    return os.path.abspath(path)


def _importable_name(fn: Callable[..., Any]) -> tuple[str, str] | None:
    """(module, qualname) when a worker can find fn by importing it (not __main__)."""
    if not isinstance(fn, (types.FunctionType, types.BuiltinFunctionType)):
        return None
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str) or module_name == "__main__":
        return None
    if "<" in qualname:
        return None
    found: object = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return (module_name, qualname) if found is fn else None


def _encode_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {type(fn).__name__}")
    name = _importable_name(fn)
    if name is not None:
        named: MarshalCall = {"module": name[0], "qualname": name[1], "args": args, "kwargs": kwargs}
        try:
            return MARSHAL + marshal.dumps(named)  # type: ignore[arg-type]  # a TypedDict is a dict
        except ValueError:
            pass
    import pickle

    held: PickleCall = {"fn": fn, "args": args, "kwargs": kwargs}
    try:
        return PICKLE + pickle.dumps(held, pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise TypeError(
            f"cannot send {fn!r} to a worker process: the callable and its arguments must be picklable "
            "(a module-level function, not a lambda, a local function or a bound method of an unpicklable object): "
            f"{error}"
        ) from error


def _needs_main(payload: bytes) -> bool:
    """Whether the call refers to the caller's __main__ (the server then loads the script once)."""
    return payload[:1] == PICKLE and b"__main__" in payload


# ---------------------------------------------------------------- fork server


class _Process:
    """The fork server process: started with posix_spawn (safe in a multithreaded program, and no subprocess import)."""

    def __init__(self, control_fd: int) -> None:
        self.status: int | None = None
        if getattr(sys.modules.get("pyns_boot._keep_imports"), "root", None) is not None:
            self.pid = _fork_server(control_fd)
            return
        target = 3 if control_fd != 3 else 4  # the server's descriptor: dup2 clears close-on-exec there only
        argv = [sys.executable, "-I", "-S", "-c", BOOT, str(target), PACKAGE_PARENT]
        actions = [
            (os.POSIX_SPAWN_DUP2, control_fd, target),
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        ]
        self.pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions)

    def poll(self) -> int | None:
        """The wait status once the process has ended (and been reaped), else None."""
        if self.status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else
                pid, status = self.pid, 0
            if pid == self.pid:
                self.status = status
        return self.status

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, SIGKILL)
            while self.poll() is None:
                time.sleep(0.001)


def _fork_server(control_fd: int) -> int:
    """The fork server of a program that joined gons_mnt and imports from its original root.

    sys.executable cannot start there (the target does not hold the
    interpreter, and a new process would not inherit the old-root descriptor
    its imports go through), so the server is forked instead: it inherits
    that descriptor and the import state, and has one thread, as a started
    server has."""
    import warnings

    from pyns_boot import _worker_server  # before the fork: loaded once, through the original root

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a multithreaded process
        pid = os.fork()
    if pid != 0:
        return pid
    try:
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        except OSError:
            pass
        _worker_server.serve(control_fd)
    finally:
        os._exit(0)


def _hand_over_socket(hand_over: Callable[[int], T]) -> tuple[_socket.socket, T]:
    """A connected pair of sockets: hand_over(fd) passes one end to another process (it is closed here whatever
    happens); returns the other end and what hand_over returned."""
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        return ours, hand_over(theirs.fileno())
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()


class _ForkServer:
    """One fork server process and the control socket to it (thread-safe)."""

    def __init__(self) -> None:
        if not sys.executable:
            raise RuntimeError("cannot start a fork server: sys.executable is not set")
        self._lock = _thread.allocate_lock()
        self._control, self.process = _hand_over_socket(_Process)
        self._control.settimeout(CONTROL_TIMEOUT)
        self._closed = False

    @property
    def alive(self) -> bool:
        return not self._closed and self.process.poll() is None

    def _receive(self) -> ControlReply:
        try:
            frame, _ = recv_frame(self._control)
        except (EOFError, OSError) as error:
            self._closed = True
            status = self.process.poll()
            raise WorkerDied(
                "the pyns_boot fork server (pid {}) is gone: {}".format(
                    self.process.pid, "its connection closed" if status is None else _describe_status(status)
                )
            ) from error
        reply: ControlReply = marshal.loads(frame)
        return reply

    def request(self, request: ControlRequest, fd: int = -1) -> ControlReply:
        with self._lock:
            if self._closed:
                raise WorkerDied(f"the pyns_boot fork server (pid {self.process.pid}) is closed")
            try:
                send_frame(self._control, marshal.dumps(request), fd)  # type: ignore[arg-type]  # a TypedDict is a dict
            except OSError as error:
                self._closed = True
                raise WorkerDied(f"the pyns_boot fork server (pid {self.process.pid}) is gone: {error}") from error
            reply = self._receive()
        if "error" in reply:
            raise RuntimeError("pyns_boot fork server: {}".format(reply["error"]))
        return reply

    def fork(self, namespaces: Namespaces, one_shot: bool, needs_main: bool = False) -> _Worker:
        request: ForkRequest = {
            "request": "fork",
            "order": namespaces.order,
            "paths": namespaces.paths,
            "netns": namespaces.netns_name,
            "main_path": _main_path(),
            "needs_main": needs_main,
            "one_shot": one_shot,
            "sys_path": [p for p in sys.path if isinstance(p, str)],
            "keep_imports": os.environ.get(KEEP_IMPORTS_VARIABLE) != "0",
        }
        ours, reply = _hand_over_socket(lambda fd: self.request(request, fd))
        return _Worker(self, reply["pid"], ours, namespaces)

    def status(self, pid: int) -> int | None:
        try:
            return self.request({"request": "status", "pid": pid}).get("status")
        except (WorkerDied, OSError):
            return None

    def kill(self, pid: int) -> None:
        try:
            self.request({"request": "kill", "pid": pid})
        except (WorkerDied, OSError):
            # The server is gone and cannot say whether pid is still its worker; the worker, an
            # orphan now, is not reaped by us either: kill it directly.
            try:
                os.kill(pid, SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        """End the server: EOF on its control socket makes it kill its workers and exit; reap it."""
        with self._lock:
            self._closed = True
            self._control.close()
        if not self.process.wait(CONTROL_TIMEOUT):
            self.process.kill()


# ---------------------------------------------------------------- worker


class _Worker:
    """The parent's end of one worker process."""

    def __init__(self, server: _ForkServer, pid: int, conn: _socket.socket, namespaces: Namespaces) -> None:
        self.server = server
        self.pid = pid
        self.conn = conn
        self.namespaces = namespaces
        self.joined = False
        self.usable = True

    def call(self, payload: bytes, deadline: float | None = None, what: str = "the call") -> Any:
        try:
            send_frame(self.conn, payload)
        except OSError:
            pass  # a dead worker: the receive below says why
        if not self.joined:
            set_up: SetupReply = self._receive(deadline, what)
            if set_up["outcome"] == "setup_failed":
                self.usable = False
                raise WorkerDied(
                    "the worker process {} could not set up in {!r}: {}".format(
                        self.pid, self.namespaces, set_up["error"]
                    )
                ) from RemoteTraceback(set_up["traceback"])
            if set_up["outcome"] != "joined":
                self.usable = False
                raise _join_error(set_up["report"], self.namespaces)
            self.joined = True
        reply: CallReply = self._receive(deadline, what)
        if "error" not in reply:
            return reply["result"]
        error = reply["error"]
        error.__cause__ = RemoteTraceback(reply["traceback"])
        raise error

    def _receive(self, deadline: float | None, what: str) -> Any:
        """The worker's next reply: its SetupReply, then a CallReply per call."""
        try:
            self.conn.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            frame, _ = recv_frame(self.conn)
        except _socket.timeout:
            self.usable = False
            self.server.kill(self.pid)
            raise TimeoutError(
                f"{what} did not finish in time in {self.namespaces!r}; its worker process {self.pid} was killed",
            ) from None
        except (EOFError, OSError) as error:
            self.usable = False
            status = _describe_status(self.server.status(self.pid))
            raise WorkerDied(
                f"the worker process {self.pid} in {self.namespaces!r} died during {what}: {status}"
            ) from error
        try:
            return decode(frame)
        except Exception as error:
            text = f"{type(error).__name__}: {error}"
            return {"error": RemoteError("the worker's reply cannot be unpickled here: " + text), "traceback": text}

    def close(self) -> None:
        self.conn.close()


def _join_error(report: Report, namespaces: Namespaces) -> Exception:
    from pyns_boot import _hints
    from pyns_boot._errors import NamespaceError
    from pyns_boot._status import _from_report

    status = _from_report(report, None)
    message = status.error or f"pyns_boot: cannot join {namespaces!r}"
    hint = _hints.for_report(report, _hints.API)
    if hint:
        status._set(hint=hint)
        message += "\n" + _hints.HINT_PREFIX + hint
    return NamespaceError(status.errno or EINVAL, message, failed=status.failed, status=status)
