"""NamespaceExecutor: a concurrent.futures.Executor whose workers live in other namespaces.

Each executor has its own fork server (pyns_boot._worker_client._ForkServer);
one thread per worker slot sends calls to its worker and completes the
futures.  The public API of the workers, with call_in (pyns_boot._call_in),
which stays without concurrent.futures and threading.  Not on the start-up
path: loaded on first use of the public names.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import weakref
from concurrent.futures import Executor, Future

from pyns_boot._namespaces import Namespaces
from pyns_boot._worker_client import _encode_call, _ForkServer, _needs_main, _Worker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

__all__ = ["NamespaceExecutor"]

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
            raise TypeError(f"namespaces must be a pyns_boot.Namespaces, not {type(namespaces).__name__}")
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers <= 0:
            raise ValueError(f"max_workers must be a positive int, not {max_workers!r}")
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
        return f"NamespaceExecutor({self.namespaces!r}, max_workers={self.max_workers})"

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        payload = _encode_call(fn, args, kwargs)
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._queue.put((future, payload))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._slot, name=f"pyns_boot-executor-{len(self._threads)}", daemon=True
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


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's slot threads: it must not talk to the parent's servers."""
    for executor in list(_live_executors):
        server = executor._forget_after_fork()
        if server is not None:
            server._control.close()  # only this process's copy; the server is not our child


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
