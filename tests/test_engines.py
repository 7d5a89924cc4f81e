"""containerd, LXC, systemd-nspawn, names several engines know, engine faults, the daemons' traces (issue 22).

Real engines only: the lab's containerd and dockerd (scripts/lab.sh engines start, tests/support/engines.py),
Debian's LXC and systemd-nspawn on overlays of the lab's Debian sid root filesystem, podman.
tests/test_containers.py runs the podman tests against docker too.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import container_probe
import pytest
from cliutil import pyns_boot
from containers import NAME_PREFIX, LabContainer
from engines import LAB_DIR, CtrContainer, EngineDaemons, LxcContainer, NspawnContainer, host_state, tools_missing
from nsutil import Venv, clean_env, run_python
from test_containers import PROBE_CODE, assert_inside, assert_one_line_error, env_json, parse

from pyns_boot import ContainerError, Namespaces, call_in, find_container

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "containers.md"


@pytest.fixture(scope="module")
def host_facts(hook_venv: Venv) -> dict[str, Any]:
    return parse(run_python(hook_venv.python, PROBE_CODE))


def lookup(venv: Venv, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return pyns_boot(venv, "env", "--json", "--container", *args, **kwargs)


# ---------------------------------------------------------------- containerd (the Kubernetes node's runtime)


@pytest.mark.parametrize("namespace", ["k8s.io", "default"])
def test_containerd_by_id(
    hook_venv: Venv, make_ctr: Callable[..., CtrContainer], host_facts: dict[str, Any], namespace: str
) -> None:
    container = make_ctr("ctr", namespace)
    facts = parse(pyns_boot(hook_venv, "run", "--container", container.id, "-c", PROBE_CODE))
    assert_inside(facts, container, host_facts)  # type: ignore[arg-type]
    expected = container.env()
    assert env_json(hook_venv, "--container", container.id) == expected
    assert env_json(hook_venv, "--container", container.id[:-3], "--engine", "containerd") == expected  # prefix
    assert env_json(hook_venv, "--container", container.id, "--containerd-namespace", namespace) == expected
    assert env_json(hook_venv, "--container", container.id, env={"CONTAINERD_NAMESPACE": namespace}) == expected
    assert Namespaces.of_container(container.id, engine="containerd") == Namespaces.of_pid(container.host_pid)
    other = "default" if namespace == "k8s.io" else "k8s.io"
    message = assert_one_line_error(lookup(hook_venv, container.id, "--containerd-namespace", other))
    assert f"containerd: no container {container.id} in namespace {other}" in message


def test_containerd_call_in(make_ctr: Callable[..., CtrContainer]) -> None:
    container = make_ctr("ctr-call", "k8s.io")
    facts = call_in(Namespaces.of_container(container.id), container_probe.facts, timeout=60)
    assert_inside(facts, container, container_probe.facts())  # type: ignore[arg-type]


def test_containerd_same_id_in_two_namespaces(hook_venv: Venv, make_ctr: Callable[..., CtrContainer]) -> None:
    cid = f"{NAME_PREFIX}twice-{uuid.uuid4().hex[:8]}"
    node = make_ctr("", "k8s.io", cid)
    plain = make_ctr("", "default", cid)
    message = assert_one_line_error(lookup(hook_venv, cid))
    assert f"container name {cid!r} is ambiguous" in message
    assert f"(pid {node.pid}; --engine containerd --containerd-namespace k8s.io)" in message
    assert f"(pid {plain.pid}; --engine containerd --containerd-namespace default)" in message
    with pytest.raises(ContainerError, match="ambiguous") as caught:
        Namespaces.of_container(cid)
    assert caught.value.reason == "ambiguous"
    assert env_json(hook_venv, "--container", cid, "--containerd-namespace", "default") == plain.env()
    assert Namespaces.of_container(cid, containerd_namespace="k8s.io") == Namespaces.of_pid(node.host_pid)
    # The node's task stops: the running one in default wins, and -v says which and what else had the name.
    node.stop()
    result = pyns_boot(hook_venv, "run", "-v", "--container", cid, "-c", "import os; print(os.getpid())")
    assert result.returncode == 0, result.stderr
    assert f"pyns-boot: {cid}: containerd container {cid} in namespace default, pid {plain.pid}" in result.stderr
    assert f"not running: containerd container {cid} in namespace k8s.io (stopped)" in result.stderr
    found = find_container(cid)
    assert (found.engine, found.namespace, found.pid) == ("containerd", "default", plain.host_pid)


@pytest.mark.parametrize("how", ["no task", "stopped"])
def test_containerd_task_not_running(hook_venv: Venv, make_ctr: Callable[..., CtrContainer], how: str) -> None:
    if how == "no task":
        container = make_ctr("created", "k8s.io", start=False)
    else:
        container = make_ctr("stopped", "k8s.io")
        container.stop()
    message = assert_one_line_error(pyns_boot(hook_venv, "run", "--container", container.id, "-c", "pass"))
    assert f"containerd container {container.id} in namespace k8s.io is not running (status: {how})" in message
    assert f"task start -d {container.id}" in message
    with pytest.raises(ContainerError, match="not running") as caught:
        Namespaces.of_container(container.id, engine="containerd")
    assert caught.value.reason == "not-running"


def test_containerd_socket_absent(hook_venv: Venv, engine_daemons: EngineDaemons, tmp_path: Path) -> None:
    absent = str(tmp_path / "containerd.sock")
    message = assert_one_line_error(
        lookup(hook_venv, "web", "--engine", "containerd", env={"CONTAINERD_ADDRESS": absent})
    )
    assert f"no container 'web': containerd: no containerd socket {absent} (containerd is not running" in message
    assert "-t PID" in message


# ---------------------------------------------------------------- LXC


def test_lxc_by_name(hook_venv: Venv, make_lxc: Callable[..., LxcContainer], host_facts: dict[str, Any]) -> None:
    container = make_lxc("lxc")
    facts = parse(pyns_boot(hook_venv, "run", "--container", container.name, "-c", PROBE_CODE))
    assert_inside(facts, container, host_facts)  # type: ignore[arg-type]
    assert env_json(hook_venv, "--container", container.name) == container.env()  # LXC: its own cgroup namespace too
    assert env_json(hook_venv, "--container", container.name, "--engine", "lxc", "--net") == container.env(("net",))
    assert Namespaces.of_container(container.name, engine="lxc") == Namespaces.of_pid(container.host_pid)


def test_lxc_stopped(hook_venv: Venv, make_lxc: Callable[..., LxcContainer]) -> None:
    container = make_lxc("lxc-stopped")
    container.stop()
    message = assert_one_line_error(pyns_boot(hook_venv, "run", "--container", container.name, "-c", "pass"))
    assert f"lxc container {container.name} is not running (status: stopped)" in message
    assert f"lxc-start -n {container.name}" in message
    with pytest.raises(ContainerError, match="not running") as caught:
        Namespaces.of_container(container.name, engine="lxc")
    assert caught.value.reason == "not-running"


# ---------------------------------------------------------------- systemd-nspawn (no machined here)


@pytest.fixture
def nspawn() -> Iterator[NspawnContainer]:
    from conftest import skip_or_fail

    skip_or_fail(tools_missing("systemd-nspawn"))
    container = NspawnContainer("nspawn")
    yield container
    container.remove()


def test_nspawn_by_leader_pid(hook_venv: Venv, nspawn: NspawnContainer) -> None:
    code = (
        "import json, os, socket; print('PROBE ' + json.dumps({'hostname': socket.gethostname(), 'pid': os.getpid(),"
        " 'init': open('/proc/1/comm').read().strip(), 'os_release': open('/etc/os-release').read(),"
        " 'ns': {t: os.readlink('/proc/self/ns/' + t) for t in ('cgroup', 'ipc', 'mnt', 'net', 'pid', 'uts')}}))"
    )
    variables = env_json(hook_venv, "-t", nspawn.pid, "--all")
    assert variables == nspawn.env()  # its own cgroup namespace too
    facts = parse(pyns_boot(hook_venv, "run", "-t", nspawn.pid, "--all", "-c", code))
    assert facts["hostname"] == nspawn.hostname
    assert "sid" in facts["os_release"]
    assert facts["init"] == "(sd-stubinit)"  # --as-pid2: nspawn's stub init is PID 1, sleep is PID 2
    assert 2 < facts["pid"] < 1000
    assert facts["ns"] == {t: os.readlink(nspawn.ref(t)) for t in nspawn.types}


def test_machinectl_without_machined(hook_venv: Venv) -> None:
    from conftest import skip_or_fail

    skip_or_fail(tools_missing("machinectl"))
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs as PID 1 here: machined can be asked")
    message = assert_one_line_error(
        pyns_boot(hook_venv, "run", "--container", "web", "--engine", "machinectl", "-c", "pass")
    )
    assert "no container 'web': machinectl: systemd-machined is not running (systemd is not PID 1 here)" in message
    assert "give the container's leader: -t PID" in message
    with pytest.raises(ContainerError, match="systemd-machined is not running") as caught:
        Namespaces.of_container("web", engine="machinectl")
    assert caught.value.reason == "unknown"


# ---------------------------------------------------------------- a name several engines know


@pytest.fixture
def podman_and_docker(lab: None, engine_daemons: EngineDaemons) -> Iterator[Callable[..., LabContainer]]:
    made: list[LabContainer] = []

    def make(engine: str, name: str, command: tuple[str, ...] = ("sleep", "infinity")) -> LabContainer:
        made.append(LabContainer("", command, engine=engine, name=name))
        return made[-1]

    yield make
    for container in made:
        container.remove()


def test_same_name_the_running_one_wins(hook_venv: Venv, podman_and_docker: Callable[..., LabContainer]) -> None:
    name = f"{NAME_PREFIX}dk-{uuid.uuid4().hex[:8]}"
    exited = podman_and_docker("podman", name)
    exited.stop()
    exited.tool("wait", name)
    running = podman_and_docker("docker", name)
    result = pyns_boot(hook_venv, "run", "-v", "--container", name, "-c", "import socket; print(socket.gethostname())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == running.hostname
    assert f"pyns-boot: {name}: docker container {name} ({running.id[:12]}), pid {running.pid}" in result.stderr
    assert f"also named {name!r}, not running: podman container {name} ({exited.id[:12]}) (exited)" in result.stderr
    assert Namespaces.of_container(name) == Namespaces.of_pid(running.host_pid)
    found = find_container(name)
    assert (found.engine, found.id, found.name, found.pid, found.status) == (
        "docker",
        running.id,
        name,
        running.host_pid,
        "running",
    )
    assert found.note == f"also named {name!r}, not running: podman container {name} ({exited.id[:12]}) (exited)"
    # Both running: ambiguous, each with the --engine that picks it.
    exited.tool("start", name)
    pid = exited.inspect("{{.State.Pid}}")
    message = assert_one_line_error(lookup(hook_venv, name))
    assert f"container name {name!r} is ambiguous" in message
    assert f"podman container {name} ({exited.id[:12]}) (pid {pid}; --engine podman)" in message
    assert f"docker container {name} ({running.id[:12]}) (pid {running.pid}; --engine docker)" in message
    with pytest.raises(ContainerError, match="ambiguous"):
        Namespaces.of_container(name)
    assert env_json(hook_venv, "--container", name, "--engine", "docker") == running.env()
    assert Namespaces.of_container(name, engine="podman") == Namespaces.of_pid(int(pid))


# ---------------------------------------------------------------- engine faults


def test_dockerd_not_running(hook_venv: Venv, lab_container: LabContainer, tmp_path: Path) -> None:
    # docker's own error, and the other engines still answer (the podman container is found).
    absent = f"unix://{tmp_path}/docker.sock"
    message = assert_one_line_error(lookup(hook_venv, "web", "--engine", "docker", env={"DOCKER_HOST": absent}))
    assert f"no container 'web': docker: Cannot connect to the Docker daemon at {absent}" in message
    assert "-t PID" in message
    if lab_container.engine == "podman":
        assert env_json(hook_venv, "--container", lab_container.name, env={"DOCKER_HOST": absent}) == (
            lab_container.env(lab_container.types)
        )


@pytest.fixture
def silent_socket(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts connections and never answers: a daemon that hangs."""
    path = str(tmp_path / "hung.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_engine_that_hangs_is_bounded(
    hook_venv: Venv, engine_daemons: EngineDaemons, silent_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real docker client and ctr, each talking to a daemon that never answers: the lookup ends, one line.
    env = {"DOCKER_HOST": "unix://" + silent_socket, "PYNS_BOOT_CONTAINER_TIMEOUT": "2"}
    message = assert_one_line_error(lookup(hook_venv, "web", "--engine", "docker", env=env))
    assert "no container 'web': docker: no answer within 2 s (PYNS_BOOT_CONTAINER_TIMEOUT sets the limit)" in message
    env = {"CONTAINERD_ADDRESS": silent_socket, "PYNS_BOOT_CONTAINER_TIMEOUT": "2"}
    message = assert_one_line_error(lookup(hook_venv, "web", "--engine", "containerd", env=env))
    assert "no container 'web': containerd: " in message and "-t PID" in message
    monkeypatch.setenv("DOCKER_HOST", "unix://" + silent_socket)
    monkeypatch.setenv("PYNS_BOOT_CONTAINER_TIMEOUT", "2")
    with pytest.raises(ContainerError, match="docker: no answer within 2 s") as caught:
        Namespaces.of_container("web")
    assert caught.value.reason == "unknown"
    # nothing of the killed clients is left
    left = subprocess.run(["pgrep", "-f", silent_socket], capture_output=True, text=True).stdout.split()
    assert left == []


# ---------------------------------------------------------------- the docs' recipes, as written

RECIPE = re.compile(r"<!-- recipe: (\w+) -->\n```sh\n(.*?)```", re.S)


def recipes() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in RECIPE.finditer(DOCS.read_text())}


def run_recipe(hook_venv: Venv, engine: str, name: str) -> subprocess.CompletedProcess[str]:
    """The recipe of docs/containers.md with the container named NAME, this venv's pyns-boot and python first on
    PATH, in bash -e."""
    text = re.sub(r"\bweb\b", name, recipes()[engine]).replace("/var/cache/pyns-lab/sid", LAB_DIR)
    env = clean_env(PATH="{}:{}".format(Path(hook_venv.python).parent, os.environ["PATH"]))
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", text], env=env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.unit
def test_every_engine_has_a_recipe() -> None:
    assert sorted(recipes()) == ["containerd", "docker", "lxc", "nspawn", "podman"]


RECIPE_CLEANUP = {
    "podman": ["podman", "rm", "-f", "-t", "0"],
    "docker": ["docker", "rm", "-f"],
    "lxc": ["lxc-destroy", "-f", "-n"],
}


@pytest.mark.parametrize("engine", ["podman", "docker", "containerd", "lxc", "nspawn"])
def test_recipe(hook_venv: Venv, engine: str, request: pytest.FixtureRequest) -> None:
    from conftest import skip_or_fail

    if engine == "podman":
        request.getfixturevalue("lab")
    elif engine in ("docker", "containerd"):
        request.getfixturevalue("engine_daemons")
    else:
        skip_or_fail(tools_missing("lxc-start" if engine == "lxc" else "systemd-nspawn"))
    name = f"{NAME_PREFIX}recipe-{uuid.uuid4().hex[:8]}"
    try:
        result = run_recipe(hook_venv, engine, name)
    finally:
        if engine in RECIPE_CLEANUP:
            subprocess.run([*RECIPE_CLEANUP[engine], name], capture_output=True, timeout=120)
        elif engine == "containerd":
            for args in (
                ["tasks", "kill", "-s", "KILL", name],
                ["tasks", "delete", "-f", name],
                ["containers", "rm", name],
            ):
                subprocess.run(["ctr", "-n", "k8s.io", *args], capture_output=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, (result.stdout, result.stderr)
    # Each recipe prints the hostname seen inside (the container's: its name) from each way in it shows; the
    # engines' own output is the new container's ID (run -d) and its name (rm -f).
    lines = [line for line in result.stdout.split() if not re.fullmatch("[0-9a-f]{64}", line)]
    assert set(lines) == {name}, result.stdout
    assert len(lines) >= recipes()[engine].count("print(socket.gethostname())"), result.stdout


# ---------------------------------------------------------------- what the daemons leave behind


def test_engines_leave_nothing_behind(
    engine_daemons: EngineDaemons,
    make_ctr: Callable[..., CtrContainer],
    make_lxc: Callable[..., LxcContainer],
    tmp_path: Path,
) -> None:
    """Started by this session with containers of each engine running, stopped: no bridge, no iptables rule, no
    mount of theirs is left (compared with the host before the session started them)."""
    from conftest import skip_or_fail

    if engine_daemons.before is None:
        skip_or_fail("the lab's dockerd and containerd ran before this test session: it cannot see what they add")
    before = engine_daemons.before
    assert before is not None
    stamp = tmp_path / "stamp"
    stamp.touch()
    docker = LabContainer("leak", engine="docker")
    make_ctr("leak", "k8s.io")
    lxc = make_lxc("leak")
    nspawn = None if tools_missing("systemd-nspawn") else NspawnContainer("leak")
    during = host_state()
    # the comparison sees the engines' mounts (docker's overlay2, containerd's task rootfs)
    assert len([line for line in during["mounts"] if "/pyns-lab/" in line]) > len(before["mounts"]), during
    lxc.remove()
    if nspawn is not None:
        nspawn.remove()
    try:
        engine_daemons.stop()  # docker's and containerd's containers still run: the stop ends them
        after = host_state()
    finally:
        engine_daemons.start()
        docker.remove()
    assert after == before
    # LXC and nspawn ran on overlays: the cached root filesystem is as it was
    changed = subprocess.run(
        ["find", LAB_DIR, "-xdev", "(", "-newer", str(stamp), "-o", "-cnewer", str(stamp), ")", "-print", "-quit"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    assert changed == ""
