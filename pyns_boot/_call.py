"""Run Python callables in other namespaces: call_in(), and the parent's side of the fork server.

A running program usually has threads, so it can never join mnt, user or
time namespaces itself, and fork() from it is unsafe.  The work runs in
workers forked by a fork server (pyns_boot._forkserver): a fresh,
single-threaded interpreter started with ``-I -S``.  Each worker joins the
requested namespaces with the C helper before it runs anything, then serves
pickled calls over a socket.  See docs/workers.md ("How it works, and why
this way") and benchmarks/README.md for the measurements behind this choice.

Not on the start-up path: loaded on first use of the public names, and
light for the first call (tests/test_startup_imports.py): the executor and
the pickle fallback load what they need.
"""

from __future__ import annotations

import _socket
import _thread
import atexit
import marshal
import os
import sys
import time
import types
from errno import EINVAL

from pyns_boot import _forkserver
from pyns_boot._errors import RemoteError, RemoteTraceback, WorkerDied
from pyns_boot._namespaces import TYPES, Namespaces

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    from _pyns_boot import Report

    T = TypeVar("T")

__all__ = ["RemoteTraceback", "WorkerDied", "call_in"]

BOOT = "import sys;sys.path.insert(0,sys.argv[2]);from pyns_boot._forkserver import serve;serve(int(sys.argv[1]))"
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
        try:
            return _forkserver.MARSHAL + marshal.dumps((*name, args, kwargs))
        except ValueError:
            pass
    import pickle

    try:
        return _forkserver.PICKLE + pickle.dumps((fn, args, kwargs), pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise TypeError(
            f"cannot send {fn!r} to a worker process: the callable and its arguments must be picklable "
            "(a module-level function, not a lambda, a local function or a bound method of an unpicklable object): "
            f"{error}"
        ) from error


def _needs_main(payload: bytes) -> bool:
    """Whether the call refers to the caller's __main__ (the server then loads the script once)."""
    return payload[:1] == _forkserver.PICKLE and b"__main__" in payload


# ---------------------------------------------------------------- fork server


class _Process:
    """The fork server process: started with posix_spawn (safe in a multithreaded program, and no subprocess import)."""

    def __init__(self, control_fd: int) -> None:
        self.status: int | None = None
        if getattr(sys.modules.get("pyns_boot._oldroot"), "root", None) is not None:
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
        _forkserver.serve(control_fd)
    finally:
        os._exit(0)


class _ForkServer:
    """One fork server process and the control socket to it (thread-safe)."""

    def __init__(self) -> None:
        if not sys.executable:
            raise RuntimeError("cannot start a fork server: sys.executable is not set")
        self._lock = _thread.allocate_lock()
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            self.process = _Process(theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._control = ours
        self._control.settimeout(CONTROL_TIMEOUT)
        self._closed = False

    @property
    def alive(self) -> bool:
        return not self._closed and self.process.poll() is None

    def _receive(self) -> tuple[Any, ...]:
        try:
            frame, _ = _forkserver.recv_frame(self._control)
        except (EOFError, OSError) as error:
            self._closed = True
            status = self.process.poll()
            raise WorkerDied(
                "the pyns_boot fork server (pid {}) is gone: {}".format(
                    self.process.pid, "its connection closed" if status is None else _describe_status(status)
                )
            ) from error
        reply: tuple[Any, ...] = marshal.loads(frame)
        return reply

    def request(self, *request: Any, fd: int = -1) -> tuple[Any, ...]:
        with self._lock:
            if self._closed:
                raise WorkerDied(f"the pyns_boot fork server (pid {self.process.pid}) is closed")
            try:
                _forkserver.send_frame(self._control, marshal.dumps(request), fd)
            except OSError as error:
                self._closed = True
                raise WorkerDied(f"the pyns_boot fork server (pid {self.process.pid}) is gone: {error}") from error
            reply = self._receive()
        if reply[0] == "error":
            raise RuntimeError(f"pyns_boot fork server: {reply[1]}")
        return reply

    def fork(self, namespaces: Namespaces, one_shot: bool, needs_main: bool = False) -> _Worker:
        paths = tuple(namespaces.get(t) for t in TYPES)
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            reply = self.request(
                "fork",
                namespaces.order,
                paths,
                _main_path(),
                one_shot,
                [p for p in sys.path if isinstance(p, str)],
                os.environ.get(KEEP_IMPORTS_VARIABLE) != "0",
                needs_main,
                namespaces.netns_name,
                fd=theirs.fileno(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return _Worker(self, reply[1], ours, namespaces)

    def status(self, pid: int) -> int | None:
        try:
            status: int | None = self.request("status", pid)[1]
            return status
        except (WorkerDied, OSError):
            return None

    def kill(self, pid: int) -> None:
        try:
            self.request("kill", pid)
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
            _forkserver.send_frame(self.conn, payload)
        except OSError:
            pass  # a dead worker: the receive below says why
        if not self.joined:
            kind, *details = self._receive(deadline, what)
            if kind == "setup_failed":
                self.usable = False
                raise WorkerDied(
                    f"the worker process {self.pid} could not set up in {self.namespaces!r}: {details[0]}"
                ) from RemoteTraceback(details[1])
            if kind != "joined":
                self.usable = False
                raise _join_error(details[0], self.namespaces)
            self.joined = True
        reply = self._receive(deadline, what)
        if reply[0] == "ok":
            return reply[1]
        error: BaseException = reply[1]
        error.__cause__ = RemoteTraceback(reply[2])
        raise error

    def _receive(self, deadline: float | None, what: str) -> tuple[Any, ...]:
        try:
            self.conn.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            frame, _ = _forkserver.recv_frame(self.conn)
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
            reply: tuple[Any, ...] = _forkserver.decode(frame)
        except Exception as error:
            text = f"{type(error).__name__}: {error}"
            reply = ("error", RemoteError("the worker's reply cannot be unpickled here: " + text), text)
        return reply

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


# ---------------------------------------------------------------- call_in

_shared_server: _ForkServer | None = None
_shared_lock = _thread.allocate_lock()


def _server() -> _ForkServer:
    global _shared_server
    with _shared_lock:
        if _shared_server is None or not _shared_server.alive:
            if _shared_server is not None:
                _shared_server.close()
            _shared_server = _ForkServer()
        return _shared_server


def _close_shared_server() -> None:
    global _shared_server
    with _shared_lock:
        if _shared_server is not None:
            _shared_server.close()
            _shared_server = None


def call_in(namespaces: Namespaces, fn: Callable[..., T], *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a fresh worker process inside ``namespaces``; return its result.

    fn, its arguments and its result must be picklable (fn a module-level
    function).  An exception raised by fn is raised here, its remote
    traceback attached as __cause__.  A failed join raises NamespaceError,
    a worker that dies raises WorkerDied, and ``timeout`` (seconds, for
    the whole call) raises TimeoutError after killing the worker.
    """
    if not isinstance(namespaces, Namespaces):
        raise TypeError(f"namespaces must be a pyns_boot.Namespaces, not {type(namespaces).__name__}")
    payload = _encode_call(fn, args, kwargs)
    deadline = None if timeout is None else time.monotonic() + timeout
    worker = _server().fork(namespaces, one_shot=True, needs_main=_needs_main(payload))
    try:
        result: T = worker.call(payload, deadline, "call_in({})".format(getattr(fn, "__qualname__", fn)))
        return result
    finally:
        worker.close()


def _after_fork_in_child() -> None:
    """A forked child must not talk to the parent's fork server (the server is not its child)."""
    global _shared_server, _shared_lock
    _shared_lock = _thread.allocate_lock()
    server, _shared_server = _shared_server, None
    if server is not None:
        server._control.close()  # only this process's copy


atexit.register(_close_shared_server)
os.register_at_fork(after_in_child=_after_fork_in_child)
