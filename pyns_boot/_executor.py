"""Run Python callables in other namespaces: call_in() and NamespaceExecutor.

A running program usually has threads, so it can never join mnt, user or
time namespaces itself, and fork() from it is unsafe.  The work runs in
workers forked by a fork server (pyns_boot._forkserver): a fresh,
single-threaded interpreter started with ``-I -S``.  Each worker joins the
requested namespaces with the C helper before it runs anything, then serves
pickled calls over a socket.  See the README section "Running callables in
other namespaces" for the measurements behind this choice.

Not on the start-up path: loaded on first use of the public names.
"""

from __future__ import annotations

import atexit
import errno
import marshal
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import weakref
from concurrent.futures import Executor, Future

from pyns_boot import _forkserver
from pyns_boot._namespaces import TYPES, Namespaces

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

__all__ = ["NamespaceExecutor", "RemoteTraceback", "WorkerDied", "call_in"]

BOOT = "import sys;sys.path.insert(0,sys.argv[2]);from pyns_boot._forkserver import serve;serve(int(sys.argv[1]))"
KEEP_IMPORTS_VARIABLE = "PYNS_BOOT_KEEP_IMPORTS"  # "0": after a mnt join, import from the target's filesystem
CONTROL_TIMEOUT = 30.0  # a request to the fork server never takes this long
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerDied(RuntimeError):
    """The worker process (or its fork server) died before it returned a result."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker; set as the __cause__ of the re-raised exception."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n" + self.text.rstrip("\n")


def _describe_status(status: int | None) -> str:
    if status is None:
        return "its exit status is unknown"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "signal %d" % number
        return "it was killed by signal %d (%s)" % (number, name)
    if os.WIFEXITED(status):
        return "it exited with status %d" % os.WEXITSTATUS(status)
    return "wait status %d" % status


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
        raise TypeError("fn must be callable, not %s" % type(fn).__name__)
    name = _importable_name(fn)
    if name is not None:
        try:
            return _forkserver.MARSHAL + marshal.dumps((*name, args, kwargs))
        except ValueError:
            pass
    try:
        return _forkserver.PICKLE + pickle.dumps((fn, args, kwargs), pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise TypeError(
            "cannot send %r to a worker process: the callable and its arguments must be picklable "
            "(a module-level function, not a lambda, a local function or a bound method of an unpicklable object): %s"
            % (fn, error)
        ) from error


def _needs_main(payload: bytes) -> bool:
    """Whether the call refers to the caller's __main__ (the server then loads the script once)."""
    return payload[:1] == _forkserver.PICKLE and b"__main__" in payload


# ---------------------------------------------------------------- fork server


class _ForkServer:
    """One fork server process and the control socket to it (thread-safe)."""

    def __init__(self) -> None:
        if not sys.executable:
            raise RuntimeError("cannot start a fork server: sys.executable is not set")
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", BOOT, str(theirs.fileno()), PACKAGE_PARENT],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
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
                "the pyns_boot fork server (pid %d) is gone: %s"
                % (self.process.pid, "its connection closed" if status is None else "exit status %s" % status)
            ) from error
        reply: tuple[Any, ...] = marshal.loads(frame)
        return reply

    def request(self, *request: Any, fd: int = -1) -> tuple[Any, ...]:
        with self._lock:
            if self._closed:
                raise WorkerDied("the pyns_boot fork server (pid %d) is closed" % self.process.pid)
            try:
                _forkserver.send_frame(self._control, marshal.dumps(request), fd)
            except OSError as error:
                self._closed = True
                raise WorkerDied(
                    "the pyns_boot fork server (pid %d) is gone: %s" % (self.process.pid, error)
                ) from error
            reply = self._receive()
        if reply[0] == "error":
            raise RuntimeError("pyns_boot fork server: %s" % reply[1])
        return reply

    def fork(self, namespaces: Namespaces, one_shot: bool, needs_main: bool = False) -> _Worker:
        paths = tuple(namespaces.get(t) for t in TYPES)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
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
            pass

    def close(self) -> None:
        """End the server: EOF on its control socket makes it kill its workers and exit; reap it."""
        with self._lock:
            self._closed = True
            self._control.close()
        try:
            self.process.wait(timeout=CONTROL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ---------------------------------------------------------------- worker


class _Worker:
    """The parent's end of one worker process."""

    def __init__(self, server: _ForkServer, pid: int, conn: socket.socket, namespaces: Namespaces) -> None:
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
            kind, report = self._receive(deadline, what)
            if kind != "joined":
                self.usable = False
                raise _join_error(report, self.namespaces)
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
        except socket.timeout:
            self.usable = False
            self.server.kill(self.pid)
            raise TimeoutError(
                "%s did not finish in time in %r; its worker process %d was killed" % (what, self.namespaces, self.pid),
            ) from None
        except (EOFError, OSError) as error:
            self.usable = False
            status = _describe_status(self.server.status(self.pid))
            raise WorkerDied(
                "the worker process %d in %r died during %s: %s" % (self.pid, self.namespaces, what, status)
            ) from error
        try:
            reply: tuple[Any, ...] = _forkserver.decode(frame)
        except Exception as error:
            text = "%s: %s" % (type(error).__name__, error)
            reply = ("error", _forkserver.RemoteError("the worker's reply cannot be unpickled here: " + text), text)
        return reply

    def close(self) -> None:
        self.conn.close()


def _join_error(report: tuple[Any, ...], namespaces: Namespaces) -> Exception:
    from pyns_boot._status import NamespaceError, _from_report

    status = _from_report(TYPES, report, None)
    message = status.error or "pyns_boot: cannot join %r" % (namespaces,)
    return NamespaceError(status.errno or errno.EINVAL, message, failed=status.failed, status=status)


# ---------------------------------------------------------------- call_in

_shared_server: _ForkServer | None = None
_shared_lock = threading.Lock()


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
        raise TypeError("namespaces must be a pyns_boot.Namespaces, not %s" % type(namespaces).__name__)
    payload = _encode_call(fn, args, kwargs)
    deadline = None if timeout is None else time.monotonic() + timeout
    worker = _server().fork(namespaces, one_shot=True, needs_main=_needs_main(payload))
    try:
        result: T = worker.call(payload, deadline, "call_in(%s)" % getattr(fn, "__qualname__", fn))
        return result
    finally:
        worker.close()


# ---------------------------------------------------------------- executor

_live_executors: weakref.WeakSet[NamespaceExecutor] = weakref.WeakSet()


class NamespaceExecutor(Executor):
    """A concurrent.futures.Executor whose worker processes live in ``namespaces``.

    Workers are forked from the executor's own single-threaded fork server
    and join before they run anything, so this works from a multithreaded
    program and for mnt, user and time.  Workers are started on demand (up
    to ``max_workers``) and reused; one that dies fails its call with
    WorkerDied and is replaced for the next.  A failed join fails the call
    with NamespaceError.
    """

    def __init__(self, namespaces: Namespaces, max_workers: int | None = None) -> None:
        if not isinstance(namespaces, Namespaces):
            raise TypeError("namespaces must be a pyns_boot.Namespaces, not %s" % type(namespaces).__name__)
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers <= 0:
            raise ValueError("max_workers must be a positive int, not %r" % (max_workers,))
        self.namespaces = namespaces
        self.max_workers = max_workers
        self._queue: queue.SimpleQueue[tuple[Future[Any], bytes] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._server: _ForkServer | None = None
        self._shutdown = False
        self._closed = threading.Event()
        _live_executors.add(self)

    def __repr__(self) -> str:
        return "NamespaceExecutor(%r, max_workers=%d)" % (self.namespaces, self.max_workers)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        payload = _encode_call(fn, args, kwargs)
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._queue.put((future, payload))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._slot, name="pyns_boot-executor-%d" % len(self._threads), daemon=True
                )
                self._threads.append(thread)
                self._running += 1
                thread.start()
        return future

    def _fork_server(self) -> _ForkServer:
        with self._lock:
            if self._server is None or not self._server.alive:
                if self._server is not None:
                    self._server.close()
                self._server = _ForkServer()
            return self._server

    def _slot(self) -> None:
        worker: _Worker | None = None
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                future, payload = item
                if not future.set_running_or_notify_cancel():
                    self._idle.release()
                    continue
                try:
                    if worker is None or not worker.usable:
                        if worker is not None:
                            worker.close()
                        worker = None
                        worker = self._fork_server().fork(self.namespaces, False, _needs_main(payload))
                    result = worker.call(payload)
                except BaseException as error:
                    future.set_exception(error)
                else:
                    future.set_result(result)
                del item, future, payload
                self._idle.release()
        finally:
            if worker is not None:
                worker.close()
            self._slot_done()

    def _slot_done(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0 and self._shutdown
            server, self._server = (self._server, None) if last else (None, self._server)
        if server is not None:
            server.close()
        if last:
            self._closed.set()

    def _forget_after_fork(self) -> _ForkServer | None:
        self._lock = threading.Lock()
        self._shutdown = True
        self._threads = []
        self._running = 0
        self._closed = threading.Event()
        self._closed.set()
        server, self._server = self._server, None
        return server

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if not self._shutdown:
                self._shutdown = True
                if cancel_futures:
                    while True:
                        try:
                            item = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if item is not None:
                            item[0].cancel()
                for _ in self._threads:
                    self._queue.put(None)
            if self._running == 0:
                server, self._server = self._server, None
                self._closed.set()
            else:
                server = None
        if server is not None:
            server.close()
        if wait:
            for thread in list(self._threads):
                thread.join()
            self._closed.wait()


def _at_exit() -> None:
    for executor in list(_live_executors):
        executor.shutdown(wait=True)
    _close_shared_server()


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's slot threads: it must not talk to the parent's servers."""
    global _shared_server, _shared_lock
    _shared_lock = threading.Lock()
    servers = [_shared_server] + [executor._forget_after_fork() for executor in list(_live_executors)]
    _shared_server = None
    for server in servers:
        if server is not None:
            server._control.close()  # only this process's copy; the server is not our child


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
