"""The reference descriptors are O_CLOEXEC: a program another thread starts mid-join holds none.

The hook's own join runs before any thread exists, and each descriptor is
closed before the join returns, so O_CLOEXEC matters only where a join runs
while other threads of the process go on: ``_pyns_boot.apply`` releases
the GIL for the whole sequence (open early, check, setns, close).  call_in and
NamespaceExecutor reach it only in a worker forked from the single-threaded
fork server, before the worker runs anything else, so they cannot show it.

Here one thread joins in a loop while the main thread starts programs with
posix_spawn, which copies the descriptor table at that instant; each program
(ls -l /proc/self/fd) lists what survived its exec.  Without O_CLOEXEC some of
them list a ``net:[...]`` (etc.) descriptor.
"""

from __future__ import annotations

import json
import subprocess
from typing import Callable

from nsutil import CHILD_TIMEOUT, Holder, Venv, clean_env, fresh_cwd

JOINED_TYPES = ("cgroup", "ipc", "net", "uts")  # the types a thread of a threaded process may join
SPAWNS = 150

CODE = r"""
import json, os, re, sys, threading, time
import _pyns_boot

holder_pid, spawns = int(sys.argv[1]), int(sys.argv[2])
joined = sys.argv[3].split(",")
order = ",".join("!" + t for t in joined)  # all opened early: all open at once
targets = [
    [("/proc/%d/ns/%s" % (pid, t)) if t in joined else None for t in _pyns_boot.TYPES]
    for pid in (holder_pid, os.getpid())
]
NS_LINK = re.compile(r"-> (cgroup|ipc|mnt|net|pid|time|user|uts):\[")
stop = threading.Event()
joins = [0]
errors = []


def join_loop():
    while not stop.is_set():
        report = _pyns_boot.apply(order, targets[joins[0] % 2])
        if not report["ok"]:
            errors.append(report["message"])
            return
        joins[0] += 1


def listing():
    # what a program started now keeps after its exec
    read_end, write_end = os.pipe()
    pid = os.posix_spawn("/bin/ls", ["ls", "-l", "/proc/self/fd/"], dict(os.environ),
                         file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1)])
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


# The detector works: a namespace descriptor without O_CLOEXEC shows up.
planted = os.open("/proc/self/ns/net", os.O_RDONLY)
os.set_inheritable(planted, True)
control = bool(NS_LINK.search(listing()))
os.close(planted)
clean_before = not NS_LINK.search(listing())

thread = threading.Thread(target=join_loop)
thread.start()
leaked = []
started = 0
joins_at_first_spawn = None
while started < spawns and thread.is_alive():
    text = listing()
    started += 1
    if joins_at_first_spawn is None:
        joins_at_first_spawn = joins[0]
    leaked += [line for line in text.splitlines() if NS_LINK.search(line)]
stop.set()
thread.join()
print(json.dumps({"control": control, "clean_before": clean_before, "started": started, "joins": joins[0],
                  "joins_at_first_spawn": joins_at_first_spawn, "errors": errors, "leaked": leaked[:5],
                  "leaked_count": len(leaked)}))
"""


def test_programs_started_during_joins_inherit_no_reference(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(JOINED_TYPES)
    result = subprocess.run(
        [hook_venv.python, "-c", CODE, str(h.pid), str(SPAWNS), ",".join(JOINED_TYPES)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == []
    # the check can fail: an inherited namespace descriptor is seen, and none is there before the joins
    assert report["control"] is True and report["clean_before"] is True
    # the two loops overlapped: every program started while joins were running
    assert report["started"] == SPAWNS and report["joins"] > report["joins_at_first_spawn"], report
    assert report["leaked_count"] == 0, report["leaked"]
