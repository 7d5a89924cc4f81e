"""A host Python inside every namespace of a real podman or docker container (issues 11, 22), containers by name.

Each test runs against podman and against docker (the fixtures lab_container and make_container are
parametrized over both; docker is the lab's dockerd, tests/support/engines.py).
The containers come from the lab image (scripts/lab.sh setup): Debian sid,
its glibc and libraries newer than the host's.  Inside, a process must see
the container's hostname, files, network interfaces and pid namespace,
while its extension modules keep the host's libraries (same versions, same
files: device and inode in /proc/self/maps).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import container_probe
import pytest
from cliutil import pyns_boot
from containers import NAME_PREFIX, NOBODY, OCI_RUNTIME, TINY_OS_RELEASE, LabContainer, RootlessContainer
from nsutil import EXIT_STATUS, Venv, as_user, make_venv, rmtree, run_python

from pyns_boot import ContainerError, NamespaceExecutor, Namespaces, call_in
from pyns_boot._call_in import _close_shared_server

CONTAINER_TYPES = ("ipc", "mnt", "net", "pid", "uts")
PROBE_CODE = Path(container_probe.__file__).read_text()
CALL_TIMEOUT = 60


def parse(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, (result.returncode, result.stderr)
    for line in result.stdout.splitlines():
        if line.startswith("PROBE "):
            facts: dict[str, Any] = json.loads(line[len("PROBE ") :])
            return facts
    raise AssertionError(f"no probe report: {result.stdout!r} {result.stderr!r}")


@pytest.fixture(scope="module")
def host_facts(hook_venv: Venv) -> dict[str, Any]:
    """The probe on the host, by the same interpreter: the libraries the container runs must match."""
    facts = parse(run_python(hook_venv.python, PROBE_CODE))
    assert isinstance(facts["imports"], dict), facts["imports"]
    assert "sid" not in facts["os_release"]
    return facts


@pytest.fixture
def shared_server() -> Iterator[None]:
    _close_shared_server()
    yield
    _close_shared_server()


def assert_inside(facts: dict[str, Any], container: LabContainer, host: dict[str, Any]) -> None:
    """Everything of the container's, the libraries of the host's."""
    assert facts["hostname"] == container.hostname
    assert facts["os_release"] == container.os_release()
    assert "sid" in facts["os_release"]
    assert facts["interfaces"] == container.interfaces()
    for t in CONTAINER_TYPES:
        assert facts["links"][t] == os.readlink(container.ref(t)), t
    # The pid namespace: /proc/self resolves, the container's init is pid 1, our pid is one of its own.
    assert facts["proc_self"] == str(facts["pid"])
    assert facts["init"] == "sleep"
    assert facts["pid"] < 1000
    # ssl, sqlite3, ctypes, lzma, decimal, hashlib imported and used, with the host's libraries.
    assert facts["imports"] == host["imports"]
    for name, identity in facts["libraries"].items():
        assert identity == host["libraries"].get(name), (name, facts["libraries"], host["libraries"])
    assert "libssl.so.3" in facts["libraries"] or "libssl.so.3" not in host["libraries"]
    # A started program is the container's.
    assert facts["cat"] == container.os_release()


# ---------------------------------------------------------------- into the container


def test_hook_with_gons_variables_by_hand(
    hook_venv: Venv, lab_container: LabContainer, host_facts: dict[str, Any]
) -> None:
    facts = parse(run_python(hook_venv.python, PROBE_CODE, env=lab_container.env()))
    assert_inside(facts, lab_container, host_facts)


def test_cli_run_target_all(hook_venv: Venv, lab_container: LabContainer, host_facts: dict[str, Any]) -> None:
    facts = parse(pyns_boot(hook_venv, "run", "-t", lab_container.pid, "--all", "-c", PROBE_CODE))
    assert_inside(facts, lab_container, host_facts)


def test_cli_run_container_by_name(hook_venv: Venv, lab_container: LabContainer, host_facts: dict[str, Any]) -> None:
    facts = parse(pyns_boot(hook_venv, "run", "--container", lab_container.name, "-c", PROBE_CODE))
    assert_inside(facts, lab_container, host_facts)


def test_call_in_of_pid(lab_container: LabContainer, shared_server: None) -> None:
    facts = call_in(Namespaces.of_pid(lab_container.host_pid), container_probe.facts, timeout=CALL_TIMEOUT)
    assert_inside(facts, lab_container, container_probe.facts())


def test_call_in_of_container_with_mnt_in_the_spec(lab_container: LabContainer, shared_server: None) -> None:
    spec = Namespaces.of_container(lab_container.name, *CONTAINER_TYPES)
    facts = call_in(spec, container_probe.facts, timeout=CALL_TIMEOUT)
    assert_inside(facts, lab_container, container_probe.facts())


def test_executor_of_container(lab_container: LabContainer) -> None:
    with NamespaceExecutor(Namespaces.of_container(lab_container.name), max_workers=1) as executor:
        first = executor.submit(container_probe.facts).result(timeout=CALL_TIMEOUT)
        again = executor.submit(container_probe.facts).result(timeout=CALL_TIMEOUT)
    host = container_probe.facts()
    assert_inside(first, lab_container, host)
    assert_inside(again, lab_container, host)


# ---------------------------------------------------------------- containers by name


def env_json(venv: Venv, *args: str, **kwargs: Any) -> dict[str, str]:
    result = pyns_boot(venv, "env", "--json", *args, **kwargs)
    assert result.returncode == 0, result.stderr
    value: dict[str, str] = json.loads(result.stdout)
    return value


def test_env_container_by_name_id_and_id_prefix(hook_venv: Venv, lab_container: LabContainer) -> None:
    expected = lab_container.env(CONTAINER_TYPES)  # root podman, docker: user, time, cgroup are the host's
    assert env_json(hook_venv, "--container", lab_container.name) == expected
    assert env_json(hook_venv, "--container", lab_container.id) == expected
    assert env_json(hook_venv, "--container", lab_container.id[:12], "--engine", lab_container.engine) == expected


def test_env_container_with_type_options(hook_venv: Venv, lab_container: LabContainer) -> None:
    assert env_json(hook_venv, "--container", lab_container.name, "--net", "--uts") == lab_container.env(("net", "uts"))


def test_of_container_is_of_pid(lab_container: LabContainer) -> None:
    assert Namespaces.of_container(lab_container.name) == Namespaces.of_pid(lab_container.host_pid)
    assert Namespaces.of_container(lab_container.id[:12], "net", engine=lab_container.engine) == Namespaces(
        net=lab_container.ref("net")
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """One line of message, and at most one hint line after it (pyns_boot._hints)."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("pyns_boot: hint: ")), result.stderr
    assert result.stdout == ""
    return result.stderr


#: What each engine's client says of a name it does not know.
NOT_KNOWN = {"podman": "podman: inspecting object: no such container", "docker": "docker: No such container"}


@pytest.fixture(params=("podman", "docker"))
def engine(request: pytest.FixtureRequest) -> str:
    """podman, docker: the engine (running) whose answer a test checks."""
    request.getfixturevalue("lab" if request.param == "podman" else "engine_daemons")
    return str(request.param)


@pytest.mark.parametrize("command", ["run", "env"])
def test_unknown_container(hook_venv: Venv, engine: str, command: str) -> None:
    name = NAME_PREFIX + "no-such-container"
    args = ["--container", name, *(["-c", "pass"] if command == "run" else [])]
    message = assert_one_line_error(pyns_boot(hook_venv, command, *args))
    assert f"no container {name!r}" in message
    assert NOT_KNOWN[engine] in message
    assert "-t PID" in message  # the way out
    message = assert_one_line_error(pyns_boot(hook_venv, command, "--engine", engine, *args))
    assert f"no container {name!r}: {NOT_KNOWN[engine]}" in message


def test_unknown_container_from_python(engine: str) -> None:
    with pytest.raises(ContainerError, match=rf"no container .*{NOT_KNOWN[engine]}") as caught:
        Namespaces.of_container(NAME_PREFIX + "no-such-container")
    assert caught.value.reason == "unknown"
    assert isinstance(caught.value, LookupError)


def test_no_container_runtime_installed(hook_venv: Venv, tmp_path: Path) -> None:
    # The CLI with a PATH that holds no podman, docker, nerdctl or crictl.
    message = assert_one_line_error(
        pyns_boot(hook_venv, "run", "--container", "web", "-c", "pass", env={"PATH": str(tmp_path)})
    )
    assert (
        "none of podman, docker, nerdctl, crictl, containerd (ctr), lxc (lxc-info), machinectl is installed" in message
    )
    assert "-t PID" in message
    message = assert_one_line_error(
        pyns_boot(hook_venv, "env", "--container", "web", "--engine", "docker", env={"PATH": str(tmp_path)})
    )
    assert "none of docker is installed" in message


@pytest.mark.parametrize("how", ["created", "exited"])
def test_container_not_running(
    hook_venv: Venv, make_container: Callable[..., LabContainer], how: str, tmp_path: Path
) -> None:
    if how == "created":
        container = make_container("created", start=False)
    else:
        container = make_container("exited", command=("true",))
        container.tool("wait", container.name)
    message = assert_one_line_error(pyns_boot(hook_venv, "run", "--container", container.name, "-c", "pass"))
    assert f"{container.engine} container {container.name} ({container.id[:12]}) is not running (status: {how})" in (
        message
    )
    assert f"{container.engine} start {container.name}" in message
    with pytest.raises(ContainerError, match="not running") as caught:
        Namespaces.of_container(container.name)
    assert caught.value.reason == "not-running"


def test_ambiguous_id_prefix(hook_venv: Venv, make_container: Callable[..., LabContainer]) -> None:
    # Created (not started) containers until two of ours share the first hex digit of their IDs.
    seen: dict[str, LabContainer] = {}
    for i in range(17):
        container = make_container(f"ambiguous{i}", start=False)
        if container.id[0] in seen:
            break
        seen[container.id[0]] = container
    prefix = container.id[0]
    message = assert_one_line_error(pyns_boot(hook_venv, "env", "--container", prefix))
    assert f"container name {prefix!r} is ambiguous" in message
    assert f"{container.engine}: " in message
    with pytest.raises(ContainerError, match="ambiguous"):
        Namespaces.of_container(prefix)


def test_container_and_target_together_is_a_usage_error(hook_venv: Venv) -> None:
    result = pyns_boot(hook_venv, "run", "--container", "web", "-t", "1", "-c", "pass")
    assert result.returncode == 2
    assert "give one of them" in result.stderr
    result = pyns_boot(hook_venv, "env", "--engine", "podman", "-t", "1", "--net")
    assert result.returncode == 2
    assert "needs --container" in result.stderr
    result = pyns_boot(hook_venv, "env", "--containerd-namespace", "k8s.io", "-t", "1", "--net")
    assert result.returncode == 2
    assert "--containerd-namespace needs --container NAME" in result.stderr
    result = pyns_boot(hook_venv, "env", "--container", "web", "--engine", "docker", "--containerd-namespace", "k8s.io")
    assert result.returncode == 2
    assert "--containerd-namespace is containerd's, not docker's" in result.stderr


# ---------------------------------------------------------------- the container exits during start-up

# The real engine's client, but the container is killed right after it answered
# the inspect: the CLI has the PID of a container that is gone.
KILLING_TOOL = r"""#!/bin/sh
out=$({real} "$@") || { status=$?; printf '%s\n' "$out"; exit $status; }
printf '%s\n' "$out"
case "$*" in
*inspect*)
    {real} {kill} {name} >/dev/null 2>&1
    {real} wait {name} >/dev/null 2>&1 ;;
esac
"""


def killing_tool_path(tmp_path: Path, container: LabContainer) -> str:
    import shutil

    real = shutil.which(container.engine)
    assert real is not None
    kill = f"--runtime {OCI_RUNTIME} kill" if container.engine == "podman" else "kill"
    tool = tmp_path / "bin" / container.engine
    tool.parent.mkdir()
    tool.write_text(KILLING_TOOL.replace("{real}", real).replace("{kill}", kill).replace("{name}", container.name))
    tool.chmod(0o755)
    return "{}:{}".format(tool.parent, os.environ.get("PATH", "/usr/bin:/bin"))


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}"):
        assert time.monotonic() < deadline, f"pid {pid} still there"
        time.sleep(0.05)


def test_container_exits_between_lookup_and_join_cli(
    hook_venv: Venv, make_container: Callable[..., LabContainer], tmp_path: Path
) -> None:
    container = make_container("exits")
    path = killing_tool_path(tmp_path, container)
    result = pyns_boot(hook_venv, "run", "--container", container.name, "-c", "pass", env={"PATH": path})
    message = assert_one_line_error(result)
    assert f"container {container.name} exited after it was looked up (pid {container.pid})" in message


def test_container_exits_between_lookup_and_join_python(
    make_container: Callable[..., LabContainer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = make_container("exits")
    monkeypatch.setenv("PATH", killing_tool_path(tmp_path, container))
    with pytest.raises(ContainerError, match="exited after it was looked up") as caught:
        Namespaces.of_container(container.name)
    assert caught.value.reason == "not-running"


def test_container_exits_before_the_hook_joins(hook_venv: Venv, make_container: Callable[..., LabContainer]) -> None:
    # The variables name a running container; it is gone when the interpreter starts: 125, one line.
    container = make_container("exits")
    variables = env_json(hook_venv, "--container", container.name)
    container.remove()
    wait_gone(container.host_pid)
    result = run_python(hook_venv.python, "print('user code ran')", env=variables)
    message = assert_one_line_error(result, EXIT_STATUS)
    assert f"/proc/{container.pid}/ns/" in message
    assert "gons_" in message


def test_the_hook_does_not_load_the_container_lookup(hook_venv: Venv, lab_container: LabContainer) -> None:
    code = "import sys; print(' '.join(sorted(m for m in sys.modules if 'pyns_boot' in m)))"
    result = run_python(hook_venv.python, code, env=lab_container.env(("net", "uts")))
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "_pyns_boot" in loaded  # the hook ran (its C helper)
    assert "pyns_boot._containers" not in loaded


# ---------------------------------------------------------------- rootless podman: its user namespace first

WHERE_CODE = (
    "import json, os, socket; print('PROBE ' + json.dumps({'hostname': socket.gethostname(), 'uid': os.getuid(), "
    "'pid': os.getpid(), 'proc_self': os.readlink('/proc/self'), 'os_release': open('/etc/os-release').read()}))"
)


def assert_in_rootless(facts: dict[str, Any], container: RootlessContainer, uid: int) -> None:
    assert facts["hostname"] == container.hostname
    assert facts["os_release"] == TINY_OS_RELEASE
    assert facts["uid"] == uid
    assert facts["proc_self"] == str(facts["pid"])
    assert facts["pid"] < 1000


def test_rootless_container_from_root(hook_venv: Venv, rootless_container: RootlessContainer) -> None:
    # root is not mapped in nobody's user namespace: inside it is the overflow uid.
    variables = env_json(hook_venv, "-t", rootless_container.pid, "--all")
    assert variables == rootless_container.env()
    facts = parse(run_python(hook_venv.python, WHERE_CODE, env=variables))
    assert_in_rootless(facts, rootless_container, NOBODY)
    facts = parse(pyns_boot(hook_venv, "run", "-t", rootless_container.pid, "--all", "-c", WHERE_CODE))
    assert_in_rootless(facts, rootless_container, NOBODY)


def test_rootless_container_from_its_own_user(hook_venv: Venv, rootless_container: RootlessContainer) -> None:
    # nobody owns the container's user namespace: joining it first gives the rights for the others; inside, uid 0.
    result = run_python(hook_venv.python, WHERE_CODE, env=rootless_container.env(), wrapper=as_user(NOBODY))
    assert_in_rootless(parse(result), rootless_container, 0)


def test_rootless_container_whose_user_namespace_cannot_read_the_old_tree(
    workdir: Path, wheel: Path, rootless_container: RootlessContainer
) -> None:
    # The interpreter's environment belongs to a user the container does not map, mode 0700: root reads it on
    # the host (CAP_DAC_OVERRIDE), but has no such right in nobody's user namespace after the join.
    private = workdir / ("private-" + uuid.uuid4().hex[:8])
    private.mkdir(mode=0o700)
    venv = make_venv(private / "venv")
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    subprocess.run(["chown", "-R", "2000:2000", str(private)], check=True)
    try:
        result = run_python(venv.python, "print('user code ran')", env=rootless_container.env())
        message = assert_one_line_error(result, EXIT_STATUS)
        assert "gons_mnt" in message
        assert f": {private}/venv/" in message and "is not readable" in message and "permission denied" in message
        assert "PYNS_BOOT_KEEP_IMPORTS=0" in message  # a way out
    finally:
        rmtree(private)
