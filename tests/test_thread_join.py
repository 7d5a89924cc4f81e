"""_pyns_boot.apply() in a thread of a threaded process (the join call_in's workers make, from any thread).

setns moves the calling thread alone, so membership is judged by that thread's namespaces
(/proc/thread-self/ns), not the main thread's (/proc/self/ns); and only the types the kernel joins
for whole processes (mnt, user, time) are refused while other threads exist.  At start-up every type
is refused then (tests/test_bad_input.py, the thread rows): other threads would stay behind.
"""

from __future__ import annotations

import json
import subprocess
from typing import Callable

from nsutil import CHILD_TIMEOUT, Holder, Venv, clean_env, fresh_cwd

CODE = r"""
import json, os, sys, threading
import _pyns_boot

holder_pid = int(sys.argv[1])
net = _pyns_boot.TYPES.index("net")
mnt = _pyns_boot.TYPES.index("mnt")


def paths(ns_type, pid):
    return tuple(("/proc/%d/ns/%s" % (pid, t)) if t == ns_type else None for t in _pyns_boot.TYPES)


out = {}


def in_thread():
    there = _pyns_boot.apply(None, paths("net", holder_pid))
    out["there"] = [there["ok"], [there["namespaces"]["net"]["outcome"]]]
    out["thread_after_there"] = os.readlink("/proc/thread-self/ns/net")
    # back to the namespace of the main thread, which this thread has left
    back = _pyns_boot.apply(None, paths("net", os.getpid()))
    out["back"] = [back["ok"], [back["namespaces"]["net"]["outcome"]]]
    out["thread_after_back"] = os.readlink("/proc/thread-self/ns/net")
    mnt_report = _pyns_boot.apply(None, paths("mnt", holder_pid))
    out["mnt"] = [mnt_report["ok"], mnt_report["message"]]


thread = threading.Thread(target=in_thread)
thread.start()
thread.join()
out["main"] = os.readlink("/proc/self/ns/net")
print(json.dumps(out))
"""


def test_a_thread_joins_for_itself_and_back(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net", "mnt"))
    result = subprocess.run(
        [hook_venv.python, "-c", CODE, str(h.pid)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["there"] == [True, ["joined"]]
    assert out["thread_after_there"] == h.link("net")
    # the main thread never moved: going back is a join of this thread, not "already_joined"
    assert out["back"] == [True, ["joined"]]
    assert out["thread_after_back"] == out["main"] != h.link("net")
    ok, message = out["mnt"]
    assert not ok and "2 threads" in message and "single-threaded" in message, message
