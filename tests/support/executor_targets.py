"""Callables that tests/test_executor.py runs in worker processes (importable, module-level)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any


class Custom(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code


def links(*types: str) -> dict[str, Any]:
    return {"pid": os.getpid(), **{t: os.readlink("/proc/self/ns/" + t) for t in types}}


def read_file(path: str) -> dict[str, Any]:
    with open(path) as f:
        text = f.read()
    return {"text": text, **links("mnt", "user", "time", "net")}


def add(a: int, b: int = 0, *, scale: int = 1) -> int:
    return (a + b) * scale


def fail(code: int) -> None:
    raise Custom(code, f"failed with {code}")


def sleep_in(pid_file: str, seconds: float) -> int:
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(seconds)
    return os.getpid()


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable_result() -> object:
    return threading.Lock()


def unpicklable_error() -> None:
    class Local(Exception):
        pass

    raise Local("a local exception class")


def thread_count() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads line")


def listdir(path: str) -> dict[str, Any]:
    return {"entries": sorted(os.listdir(path)), **links("mnt")}


def open_fds() -> list[str]:
    fds = sorted(os.listdir("/proc/self/fd"), key=int)
    return [os.readlink("/proc/self/fd/" + fd) if os.path.exists("/proc/self/fd/" + fd) else "(listdir)" for fd in fds]


def own_pid_namespace() -> str:
    return os.readlink("/proc/self/ns/pid")


def hostname() -> str:
    return os.uname().nodename


def imported_from(name: str) -> str:
    """Import a module the worker has not loaded yet; where it came from."""
    import importlib

    return str(importlib.import_module(name).__file__)
