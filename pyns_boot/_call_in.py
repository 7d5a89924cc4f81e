"""call_in(): run one callable in a fresh worker inside other namespaces, through one shared fork server.

The public API of the workers, with NamespaceExecutor (pyns_boot._executor,
which adds concurrent.futures and threading: a module of its own, so that
call_in does not pay for them).  The machinery is pyns_boot._worker_client.
Not on the start-up path: loaded on first use of pyns_boot.call_in.
"""

from __future__ import annotations

import _thread
import atexit
import os
import time

from pyns_boot._namespaces import Namespaces
from pyns_boot._worker_client import _encode_call, _ForkServer, _needs_main

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

__all__ = ["call_in"]

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
