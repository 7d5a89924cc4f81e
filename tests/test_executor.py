"""call_in and NamespaceExecutor: real namespaces, real worker processes."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import executor_targets as targets
import pytest
from nsutil import (
    CHILD_TIMEOUT,
    NOBODY,
    Holder,
    NamedNetns,
    Venv,
    as_user,
    clean_env,
    fresh_cwd,
    rmtree,
    world_readable_dir,
)

from pyns_boot import NamespaceError, NamespaceExecutor, Namespaces, RemoteError, RemoteTraceback, WorkerDied, call_in
from pyns_boot._call_in import _close_shared_server
from pyns_boot._worker_client import _encode_call, _ForkServer

GONE_WAIT = 10.0  # how long an exiting process may take to disappear (not a speed goal)


def fds() -> list[int]:
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


def wait_gone(pid: int) -> bool:
    """True once /proc/PID is gone (the process exited and was reaped)."""
    deadline = time.monotonic() + GONE_WAIT
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.02)
    return False


def wait_file(path: Path) -> str:
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text()


def children_of(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


@pytest.fixture
def shared_server() -> Iterator[None]:
    """Each test starts and ends without call_in's shared fork server."""
    _close_shared_server()
    yield
    _close_shared_server()


# ---------------------------------------------------------------- results and errors


def test_call_in_returns_result_from_inside_the_namespace(netns: NamedNetns, shared_server: None) -> None:
    spec = Namespaces.netns(netns.name)
    result = call_in(spec, targets.links, "net")
    assert result["net"] == netns.link() != os.readlink("/proc/self/ns/net")
    assert result["pid"] != os.getpid()
    assert call_in(spec, targets.add, 2, 3, scale=10) == 50  # positional and keyword arguments


def test_exception_crosses_over_with_remote_traceback(netns: NamedNetns, shared_server: None) -> None:
    with pytest.raises(targets.Custom) as info:
        call_in(Namespaces.netns(netns.name), targets.fail, 7)
    assert info.value.code == 7 and info.value.args == (7, "failed with 7")
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in fail" in cause.text and 'raise Custom(code, f"failed with {code}")' in cause.text


def test_exception_that_cannot_be_pickled_becomes_remote_error(netns: NamedNetns, shared_server: None) -> None:
    with pytest.raises(RemoteError, match="Local: a local exception class") as info:
        call_in(Namespaces.netns(netns.name), targets.unpicklable_error)
    assert isinstance(info.value.__cause__, RemoteTraceback) and "unpicklable_error" in info.value.__cause__.text


def test_result_that_cannot_be_pickled_is_a_clear_error(netns: NamedNetns, shared_server: None) -> None:
    with pytest.raises(TypeError, match="result of type lock cannot be pickled back"):
        call_in(Namespaces.netns(netns.name), targets.unpicklable_result)


def test_unpicklable_callable_is_refused_before_any_process(shared_server: None) -> None:
    def local() -> int:
        return 1

    for fn in (lambda: 1, local):
        with pytest.raises(TypeError, match="must be picklable"):
            call_in(Namespaces(), fn)
        with NamespaceExecutor(Namespaces()) as executor, pytest.raises(TypeError, match="must be picklable"):
            executor.submit(fn)
    with pytest.raises(TypeError, match=r"must be a pyns_boot\.Namespaces"):
        call_in("/run/netns/x", targets.add, 1)  # type: ignore[arg-type]


def test_callable_defined_in_the_main_script(netns: NamedNetns, tmp_path: Path) -> None:
    script = tmp_path / "main_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            from pyns_boot import Namespaces, NamespaceExecutor, call_in

            class Box:
                def __init__(self, value):
                    self.value = value

            def where():
                return Box(os.readlink("/proc/self/ns/net"))

            if __name__ == "__main__":
                spec = Namespaces.netns(sys.argv[1])
                print(call_in(spec, where).value)
                with NamespaceExecutor(spec, max_workers=1) as executor:
                    print(executor.submit(where).result().value)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script), netns.name],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env=clean_env(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [netns.link(), netns.link()]


# ---------------------------------------------------------------- joins


def test_multithreaded_parent_joins_mnt_user_and_time(holder: Callable[..., Holder]) -> None:
    mount_point = tempfile.mkdtemp(prefix="pyns-exec-mnt-")
    try:
        h = holder(
            ("user", "mnt", "time"),
            setup=f"mount -t tmpfs pyns-exec {mount_point} && echo only-in-holder > {mount_point}/marker",
        )
        stop = threading.Event()
        threads = [threading.Thread(target=stop.wait) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            assert targets.thread_count() >= 4  # the parent could never join mnt, user or time itself
            spec = Namespaces(user=h.ref("user"), mnt=h.ref("mnt"), time=h.ref("time"))
            with NamespaceExecutor(spec, max_workers=2) as executor:
                results = list(executor.map(targets.read_file, [mount_point + "/marker"] * 4))
                assert executor.submit(targets.thread_count).result() == 1
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        for result in results:
            assert result["text"] == "only-in-holder\n"
            for ns_type in ("mnt", "user", "time"):
                assert result[ns_type] == h.link(ns_type) != os.readlink("/proc/self/ns/" + ns_type), ns_type
        assert len({r["pid"] for r in results}) <= 2  # warm workers are reused
        assert not os.path.exists(mount_point + "/marker")  # the mount exists only in the holder
    finally:
        os.rmdir(mount_point)


def test_mnt_join_keeps_importing_from_the_callers_tree(
    holder: Callable[..., Holder], monkeypatch: pytest.MonkeyPatch, shared_server: None
) -> None:
    tests_dir = str(Path(targets.__file__).parent)
    h = holder(("mnt",), setup=f"mount -t tmpfs pyns-exec {tests_dir}")  # hides this directory in the target
    spec = Namespaces(mnt=h.ref("mnt"))
    # The worker imports executor_targets after the join, from the caller's filesystem (as the hook does).
    result = call_in(spec, targets.listdir, tests_dir)
    assert result["entries"] == [] and result["mnt"] == h.link("mnt")
    with NamespaceExecutor(spec, max_workers=1) as executor:
        assert executor.submit(targets.listdir, tests_dir).result()["entries"] == []
    monkeypatch.setenv("PYNS_BOOT_KEEP_IMPORTS", "0")  # imports read the target's filesystem, as asked
    with pytest.raises(ModuleNotFoundError, match="executor_targets"):
        call_in(spec, targets.listdir, tests_dir)


def test_call_in_from_many_threads(shared_server: None) -> None:
    nets = [NamedNetns(), NamedNetns()]
    try:
        expected = [ns.link() for ns in nets]
        specs = [Namespaces.netns(ns.name) for ns in nets]
        results: dict[int, str] = {}

        def run(i: int) -> None:
            results[i] = call_in(specs[i % 2], targets.links, "net")["net"]

        threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == {i: expected[i % 2] for i in range(12)}
    finally:
        for ns in nets:
            ns.delete()


def test_path_that_vanished_before_the_call(shared_server: None) -> None:
    ns = NamedNetns()
    spec = Namespaces.netns(ns.name)
    ns.delete()
    with pytest.raises(NamespaceError) as info:
        call_in(spec, targets.links, "net")
    assert info.value.errno == errno.ENOENT and info.value.failed == "net"
    message, hint = str(info.value).splitlines()
    assert message == f'pyns_boot: invalid gons_net reference "{ns.path}": No such file or directory'
    assert hint.startswith(f"pyns_boot: hint: no network namespace named '{ns.name}'; existing: ")
    assert info.value.status is not None and info.value.status.hint == hint[len("pyns_boot: hint: ") :]
    with NamespaceExecutor(spec, max_workers=1) as executor:
        error = executor.submit(targets.links, "net").exception(timeout=CHILD_TIMEOUT)
    assert isinstance(error, NamespaceError) and error.errno == errno.ENOENT and ns.path in str(error)


def test_process_that_vanished_before_the_call(shared_server: None) -> None:
    h = Holder(("net",))
    spec = Namespaces.of_pid(h.pid, "net")
    h.stop()
    assert wait_gone(h.pid)
    with pytest.raises(NamespaceError, match=f"/proc/{h.pid}/ns/net") as info:
        call_in(spec, targets.links, "net")
    assert info.value.errno == errno.ENOENT and info.value.failed == "net"


# ---------------------------------------------------------------- crashes and timeouts


def test_worker_killed_mid_call_then_the_executor_recovers(netns: NamedNetns, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with NamespaceExecutor(Namespaces.netns(netns.name), max_workers=1) as executor:
        future = executor.submit(targets.sleep_in, str(pid_file), 600)
        worker = int(wait_file(pid_file))
        os.kill(worker, signal.SIGKILL)
        error = future.exception(timeout=CHILD_TIMEOUT)
        assert isinstance(error, WorkerDied)
        assert f"worker process {worker}" in str(error) and "killed by signal 9 (SIGKILL)" in str(error)
        assert f"netns={netns.name!r}" in str(error)
        again = executor.submit(targets.links, "net").result(timeout=CHILD_TIMEOUT)
        assert again["net"] == netns.link() and again["pid"] != worker


def test_fork_server_killed_then_the_executor_recovers(netns: NamedNetns) -> None:
    with NamespaceExecutor(Namespaces.netns(netns.name), max_workers=1) as executor:
        first = executor.submit(targets.links, "net").result(timeout=CHILD_TIMEOUT)
        assert executor._server is not None
        server = executor._server.process.pid
        os.kill(server, signal.SIGKILL)
        # The warm worker does not need its server: it keeps serving.
        assert executor.submit(targets.links, "net").result(timeout=CHILD_TIMEOUT)["pid"] == first["pid"]
        os.kill(first["pid"], signal.SIGKILL)
        error = executor.submit(targets.links, "net").exception(timeout=CHILD_TIMEOUT)
        assert isinstance(error, WorkerDied) and "worker process {}".format(first["pid"]) in str(error)
        # A new server and a new worker.
        third = executor.submit(targets.links, "net").result(timeout=CHILD_TIMEOUT)
        assert third["net"] == netns.link() and third["pid"] != first["pid"]
        assert executor._server is not None and executor._server.process.pid != server
    assert wait_gone(server)  # our child: reaped, no zombie


def test_fork_server_answers_requests_by_name_and_survives_bad_ones() -> None:
    # The control records of pyns_boot._worker_protocol, against a real fork server process.
    server = _ForkServer()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # A process that is not one of its workers: no status, and it is not killed.
        assert server.request({"request": "status", "pid": stranger.pid}) == {"status": None}
        assert server.request({"request": "kill", "pid": stranger.pid}) == {"pid": stranger.pid}
        assert stranger.poll() is None
        with pytest.raises(RuntimeError, match=r"^pyns_boot fork server: unknown request 'bogus'$"):
            server.request({"request": "bogus", "pid": 1})
        with pytest.raises(RuntimeError, match=r"^pyns_boot fork server: fork request without a socket$"):
            server.request({"request": "fork"})  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match=r"^pyns_boot fork server: KeyError: 'request'$"):
            server.request({"pid": 1})  # type: ignore[arg-type]
        assert server.alive
        worker = server.fork(Namespaces(), one_shot=True)
        try:
            assert worker.call(_encode_call(targets.add, (1, 1), {"scale": 3})) == 6
        finally:
            worker.close()
    finally:
        stranger.kill()
        stranger.wait()
        server.close()


def test_call_in_worker_that_dies(netns: NamedNetns, shared_server: None) -> None:
    with pytest.raises(WorkerDied, match=r"killed by signal 9 \(SIGKILL\)"):
        call_in(Namespaces.netns(netns.name), targets.kill_self)
    assert call_in(Namespaces.netns(netns.name), targets.add, 1, 1) == 2  # the shared server still serves


def test_call_in_timeout_kills_the_worker(netns: NamedNetns, tmp_path: Path, shared_server: None) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(TimeoutError, match="did not finish in time"):
        call_in(Namespaces.netns(netns.name), targets.sleep_in, str(pid_file), 600, timeout=1.0)
    assert wait_gone(int(pid_file.read_text()))


# ---------------------------------------------------------------- lifetimes


def test_shutdown_leaves_no_processes_and_no_descriptors(netns: NamedNetns, tmp_path: Path) -> None:
    before = fds()
    executor = NamespaceExecutor(Namespaces.netns(netns.name), max_workers=2)
    futures = [executor.submit(targets.sleep_in, str(tmp_path / f"pid-{i}"), 0.2) for i in range(4)]
    workers = {f.result(timeout=CHILD_TIMEOUT) for f in futures}
    assert executor._server is not None
    server = executor._server.process.pid
    assert set(children_of(server)) == workers and len(workers) == 2
    executor.shutdown(wait=True)
    assert fds() == before
    for pid in (server, *workers):
        assert wait_gone(pid), pid
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(targets.add, 1)


def test_call_in_reaps_its_worker_and_leaks_nothing(netns: NamedNetns, shared_server: None) -> None:
    call_in(Namespaces.netns(netns.name), targets.add, 1)  # the shared server: one descriptor, kept
    before = fds()
    for _ in range(3):
        worker = call_in(Namespaces.netns(netns.name), targets.links, "net")["pid"]
        assert wait_gone(worker)  # reaped by the fork server: no zombie
    assert fds() == before


def test_workers_hold_only_their_connection(netns: NamedNetns, shared_server: None) -> None:
    for links_seen in (
        call_in(Namespaces.netns(netns.name), targets.open_fds),
        NamespaceExecutor(Namespaces.netns(netns.name), max_workers=1).submit(targets.open_fds).result(),
    ):
        # stdin, stdout, stderr, the socket to the caller, and the descriptor listing /proc/self/fd
        assert len(links_seen) == 5, links_seen
        assert links_seen[0] == "/dev/null" and sum(link.startswith("socket:") for link in links_seen) == 1


def test_workers_die_with_the_parent(netns: NamedNetns, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(targets.__file__).parent)!r})
        import executor_targets
        from pyns_boot import Namespaces, NamespaceExecutor
        executor = NamespaceExecutor(Namespaces.netns(sys.argv[1]), max_workers=1)
        executor.submit(executor_targets.sleep_in, sys.argv[2], 600)
        import time
        while executor._server is None:
            time.sleep(0.01)
        print(executor._server.process.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, netns.name, str(pid_file)],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=str(tmp_path),  # not the source tree: "-c" puts the cwd first on sys.path
    )
    try:
        assert parent.stdout is not None
        server = int(parent.stdout.readline())
        worker = int(wait_file(pid_file))
        parent.kill()
        parent.wait()
        assert wait_gone(server) and wait_gone(worker)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


# ---------------------------------------------------------------- unprivileged


def test_non_root_user_in_a_user_namespace_it_owns(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("user", "net", "uts"), prefix=as_user())
    directory = world_readable_dir("pyns-exec-user-")
    try:
        (directory / "user_targets.py").write_text(
            "import os\n\ndef where():\n    return os.getuid(), os.readlink('/proc/self/ns/net'), os.uname().nodename\n"
        )
        (directory / "main.py").write_text(
            textwrap.dedent(
                """
                import json, os, sys
                import user_targets
                from pyns_boot import Namespaces, NamespaceExecutor, call_in
                spec = Namespaces(user=sys.argv[1], net=sys.argv[2], uts=sys.argv[3])
                with NamespaceExecutor(spec, max_workers=1) as executor:
                    warm = executor.submit(user_targets.where).result()
                print(json.dumps({"uid": os.getuid(), "executor": warm, "call_in": call_in(spec, user_targets.where)}))
                """
            )
        )
        out = subprocess.run(
            [*as_user(), hook_venv.python, str(directory / "main.py"), h.ref("user"), h.ref("net"), h.ref("uts")],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            env=clean_env(),
            cwd=fresh_cwd(),
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["uid"] == NOBODY
        for key in ("executor", "call_in"):
            uid, net, _node = report[key]
            assert uid == 0 and net == h.link("net") != os.readlink("/proc/self/ns/net"), key
    finally:
        rmtree(directory)


# ---------------------------------------------------------------- start-up path


def test_the_hook_and_import_do_not_load_the_executor(hook_venv: Venv, netns: NamedNetns) -> None:
    code = "import sys, pyns_boot; print(sorted(m for m in sys.modules if 'pyns_boot' in m))"
    out = subprocess.run(
        [hook_venv.python, "-c", code],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env=clean_env(gons_net=netns.path),
        cwd=fresh_cwd(),
    )
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.strip()
    assert "'_pyns_boot'" in loaded  # the hook ran (the C helper, imported by the .pth line)
    for module in ("_call_in", "_executor", "_worker_client", "_worker_protocol", "_worker_server"):
        assert f"pyns_boot.{module}'" not in loaded, (module, loaded)
