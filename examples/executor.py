"""Look into network namespaces from a running, multithreaded program.

    python examples/executor.py            # two network namespaces of its own (as root; deleted at the end)
    python examples/executor.py PID ...    # the network namespaces of these processes (looks only)

Needs pyns_boot installed in the interpreter that runs it.  The callables
are defined here, in __main__: a worker loads this script as __mp_main__
(as multiprocessing's spawn does), hence the ``if __name__ == "__main__"``
guard.  Callables in an importable module are cheaper to send.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pyns_boot
from pyns_boot import NamespaceExecutor, Namespaces, call_in


def interfaces() -> tuple[str, list[str]]:
    return os.readlink("/proc/self/ns/net"), [name for _, name in socket.if_nameindex()]


def can_bind(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def failing() -> None:
    raise LookupError("raised inside the namespace")


def main() -> None:
    # Real programs have threads: this one could never join mnt, user or time
    # itself, and must not fork.  The workers come from a single-threaded
    # fork server instead.
    stop = threading.Event()
    heartbeat = threading.Thread(target=stop.wait, daemon=True)
    heartbeat.start()

    made: list[str] = []
    specs: list[Namespaces] = []
    if sys.argv[1:]:
        for pid in sys.argv[1:]:
            try:
                specs.append(Namespaces.of_pid(int(pid), "net"))
            except (ValueError, ProcessLookupError) as error:
                print(f"skipped {pid}: {error}", file=sys.stderr)
    else:
        # Namespaces of its own: never the machine's, whose ports it would bind.
        made = [f"pyns-example-{os.getpid()}-a", f"pyns-example-{os.getpid()}-b"]
        for name in made:
            subprocess.run(["ip", "netns", "add", name], check=True)
        specs = [Namespaces.netns(name) for name in made]
    try:
        print("this process:", interfaces()[0], "threads:", threading.active_count())
        # One-shot calls: a fresh worker per call, forked from a shared fork server.
        reachable = []
        for spec in specs:
            try:
                link, names = call_in(spec, interfaces, timeout=10)
            except pyns_boot.NamespaceError as error:  # e.g. PID 1 of another user namespace
                print("{!s:<40} cannot look in: {}".format(spec, str(error.strerror).replace("\n", "\n" + " " * 41)))
                continue
            reachable.append(spec)
            print("{!s:<40} {}  {}".format(spec, link, ", ".join(names)))
        if not made or not reachable:
            return  # the rest binds ports and raises on purpose: only in namespaces of its own

        # Many calls in one namespace: warm workers.
        with NamespaceExecutor(specs[0], max_workers=2) as executor:
            free = [port for port, ok in zip(range(8000, 8010), executor.map(can_bind, range(8000, 8010))) if ok]
            print(f"free ports in {specs[0]}: {free}")

        # Errors come back as exceptions, with the remote traceback as __cause__.
        try:
            call_in(specs[0], failing)
        except LookupError as error:
            print("raised there, caught here:", repr(error))
        try:
            call_in(Namespaces.netns("pyns-example-missing"), interfaces)
        except pyns_boot.NamespaceError as error:
            print("failed join:", error)
    finally:
        stop.set()
        for name in made:
            subprocess.run(["ip", "netns", "delete", name], check=False)


if __name__ == "__main__":
    main()
