"""The other container engines for the tests (issue 22): docker, containerd, LXC, systemd-nspawn.

All of them are Debian's own packages (scripts/lab.sh setup installs them)
and run the lab's Debian sid root filesystem ($LAB_DIR):

- ``EngineDaemons``: the lab's containerd and dockerd (``scripts/lab.sh engines
  start|stop``), on sockets of their own (DOCKER_HOST, CONTAINERD_ADDRESS are
  set for the session); the test session starts them when they are not
  running and stops what it started.
- ``CtrContainer``: a containerd container made with ``ctr run`` in a
  containerd namespace (k8s.io, default).
- ``LxcContainer``: an LXC container in the default lxcpath (/var/lib/lxc),
  its root an overlay on the cached root filesystem, no network device.
- ``NspawnContainer``: ``systemd-nspawn --volatile=overlay --register=no``
  (no machined here: no systemd as PID 1), found by its leader's PID.

Without the tools (a developer's machine, the lab container of the 3.14/3.15
sessions) the tests skip with the way out; PYNS_BOOT_REQUIRE_LAB=1 makes that
a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Sequence

from containers import NAME_PREFIX, TIMEOUT

REPO = Path(__file__).resolve().parent.parent.parent
LAB_SH = str(REPO / "scripts" / "lab.sh")
LAB_DIR = os.environ.get("LAB_DIR", "/var/cache/pyns-lab/sid")
CTR_IMAGE = "docker.io/library/pyns-lab:sid"
LXC_PATH = "/var/lib/lxc"
#: Where the engines keep what they mount: a mount under one of these left after the stop is a leak.
ENGINE_PATHS = (
    "/var/cache/pyns-lab/engines",
    "/run/pyns-lab",
    "/var/lib/docker",
    "/run/docker",
    "/var/lib/containerd",
    "/run/containerd",
    LXC_PATH,
    LAB_DIR,
)


def _run(
    argv: Sequence[str], check: bool = True, timeout: float = TIMEOUT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=timeout,
        check=check,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def tools_missing(*tools: str) -> str | None:
    """Why these engines cannot run here, or None."""
    if os.geteuid() != 0:
        return "the container engines need root"
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return "{} not installed: run scripts/lab.sh setup (as root) for these container tests".format(
            ", ".join(missing)
        )
    if not os.path.exists(os.path.join(LAB_DIR, "usr", "bin", "python3.15")):
        return f"no lab root filesystem {LAB_DIR}: run scripts/lab.sh setup (as root)"
    return None


def lab_env() -> dict[str, str]:
    """DOCKER_HOST and CONTAINERD_ADDRESS of the lab's daemons (scripts/lab.sh engines env)."""
    out = _run(["bash", LAB_SH, "engines", "env"]).stdout
    return dict(word.split("=", 1) for word in out.split() if "=" in word)


class EngineDaemons:
    """The lab's containerd and dockerd: started when they do not answer, stopped if this session started them."""

    def __init__(self) -> None:
        self.env = lab_env()
        self.owned = False
        #: host_state() before this session started the daemons (None: they were running before it).
        self.before: dict[str, list[str]] | None = None

    def answering(self) -> bool:
        env = {**os.environ, **self.env}
        docker = _run(["docker", "version", "--format", "{{.Server.Version}}"], check=False, env=env)
        ctr = _run(["ctr", "--connect-timeout", "5s", "version"], check=False, env=env)
        return docker.returncode == 0 and ctr.returncode == 0

    def start(self) -> None:
        if self.answering():
            return
        result = _run(["bash", LAB_SH, "engines", "start"], check=False, timeout=600)
        if result.returncode != 0:
            raise RuntimeError("scripts/lab.sh engines start failed: " + (result.stderr.strip() or result.stdout))
        self.owned = True

    def stop(self) -> None:
        if self.owned:
            _run(["bash", LAB_SH, "engines", "stop"], timeout=300)
            self.owned = False


# ---------------------------------------------------------------- containerd (ctr)


def ctr(*args: str, namespace: str = "default", check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ctr", "--connect-timeout", "5s", "--namespace", namespace, *args], check=check)


def set_hostname(pid: str, hostname: str) -> None:
    """The hostname in the UTS namespace of process PID (ctr run has no --hostname)."""
    _run(["nsenter", "-t", pid, "-u", "hostname", hostname])


class CtrContainer:
    """A containerd container (``ctr run -d``) of the lab image in a containerd namespace, no network device."""

    types = ("ipc", "mnt", "net", "pid", "uts")
    engine = "containerd"

    def __init__(self, label: str, namespace: str, cid: str | None = None, start: bool = True) -> None:
        tag = uuid.uuid4().hex[:8]
        self.namespace = namespace
        self.name = self.id = cid or f"{NAME_PREFIX}{label}-{tag}"
        self.hostname = "pyns-ctr-" + tag
        if start:
            ctr("run", "-d", "--label", "pyns-test=1", CTR_IMAGE, self.id, "sleep", "infinity", namespace=namespace)
            self.pid = self.task_pid()
            set_hostname(self.pid, self.hostname)
        else:
            ctr("containers", "create", "--label", "pyns-test=1", CTR_IMAGE, self.id, "sleep", "infinity",
                namespace=namespace)  # fmt: skip
            self.pid = "0"

    def task_pid(self) -> str:
        for line in ctr("tasks", "list", namespace=self.namespace).stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == self.id:
                return fields[1]
        raise RuntimeError(f"containerd container {self.id} has no task")

    @property
    def host_pid(self) -> int:
        return int(self.pid)

    def ref(self, ns_type: str) -> str:
        return f"/proc/{self.host_pid}/ns/{ns_type}"

    def env(self, types: Sequence[str] | None = None) -> dict[str, str]:
        return {"gons_" + t: self.ref(t) for t in (types or self.types)}

    def interfaces(self) -> list[str]:
        return interfaces(self.pid)

    def os_release(self) -> str:
        with open(f"/proc/{self.host_pid}/root/etc/os-release") as f:
            return f.read()

    def stop(self) -> None:
        """Kill the task and wait for it: the container stays, its task STOPPED."""
        ctr("tasks", "kill", "--signal", "KILL", self.id, namespace=self.namespace, check=False)
        wait_gone(self.host_pid)
        deadline = time.monotonic() + 30
        while "STOPPED" not in ctr("tasks", "list", namespace=self.namespace).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError(f"task {self.id} not STOPPED")
            time.sleep(0.1)

    def remove(self) -> None:
        ctr("tasks", "kill", "--signal", "KILL", self.id, namespace=self.namespace, check=False)
        deadline = time.monotonic() + 30
        while ctr("tasks", "delete", "--force", self.id, namespace=self.namespace, check=False).returncode != 0:
            if "not found" in ctr("tasks", "list", namespace=self.namespace, check=False).stdout or (
                self.id not in ctr("tasks", "list", namespace=self.namespace, check=False).stdout
            ):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        ctr("containers", "delete", self.id, namespace=self.namespace, check=False)


# ---------------------------------------------------------------- LXC

LXC_CONFIG = """\
lxc.uts.name = {hostname}
lxc.rootfs.path = overlay:{lower}:{upper}
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed
lxc.tty.max = 0
lxc.pty.max = 16
"""


class LxcContainer:
    """An LXC container (lxc-start -d -- sleep infinity) on an overlay of the lab's root filesystem.

    LXC gives it a cgroup namespace of its own too; ``lxc.net.0.type = empty``: a network namespace with lo only.
    """

    types = ("cgroup", "ipc", "mnt", "net", "pid", "uts")
    engine = "lxc"

    def __init__(self, label: str, start: bool = True) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name = self.id = f"{NAME_PREFIX}{label}-{tag}"
        self.hostname = "pyns-lxc-" + tag
        self.dir = os.path.join(LXC_PATH, self.name)
        os.makedirs(os.path.join(self.dir, "delta0"))
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(LXC_CONFIG.format(hostname=self.hostname, lower=LAB_DIR, upper=os.path.join(self.dir, "delta0")))
        self.pid = "0"
        if start:
            self.start()

    def start(self) -> None:
        log = os.path.join(self.dir, "start.log")
        result = _run(["lxc-start", "-n", self.name, "-d", "-l", "INFO", "-o", log, "--", "sleep", "infinity"], False)
        if result.returncode != 0:
            raise RuntimeError(f"lxc-start {self.name} failed: {result.stderr.strip()} (log {log})")
        self.pid = _run(["lxc-info", "-n", self.name, "-p", "-H"]).stdout.strip()
        if not self.pid.isdigit():
            raise RuntimeError(f"LXC container {self.name} did not start: pid {self.pid!r}")

    @property
    def host_pid(self) -> int:
        return int(self.pid)

    def ref(self, ns_type: str) -> str:
        return f"/proc/{self.host_pid}/ns/{ns_type}"

    def env(self, types: Sequence[str] | None = None) -> dict[str, str]:
        return {"gons_" + t: self.ref(t) for t in (types or self.types)}

    def interfaces(self) -> list[str]:
        return interfaces(self.pid)

    def os_release(self) -> str:
        with open(f"/proc/{self.host_pid}/root/etc/os-release") as f:
            return f.read()

    def stop(self) -> None:
        _run(["lxc-stop", "-n", self.name, "-k"], check=False)

    def remove(self) -> None:
        self.stop()
        _run(["lxc-destroy", "-n", self.name], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- systemd-nspawn


class NspawnContainer:
    """systemd-nspawn on a volatile overlay of the lab's root filesystem, found by its leader PID.

    With --as-pid2 the container's PID 1 is nspawn's stub init and ``sleep`` is PID 2.  No machined runs here
    (no systemd as PID 1): --register=no --keep-unit, and the container has no name that machinectl knows.
    """

    types = ("cgroup", "ipc", "mnt", "net", "pid", "uts")

    def __init__(self, label: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.hostname = "pyns-ns-" + tag
        self.process = subprocess.Popen(
            ["systemd-nspawn", "-q", "-D", LAB_DIR, "--volatile=overlay", "--register=no", "--keep-unit",
             "--private-network", "--hostname", self.hostname, "--as-pid2", "sleep", "infinity"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self.pid = leader_of(self.process)

    @property
    def host_pid(self) -> int:
        return int(self.pid)

    def ref(self, ns_type: str) -> str:
        return f"/proc/{self.host_pid}/ns/{ns_type}"

    def env(self, types: Sequence[str] | None = None) -> dict[str, str]:
        return {"gons_" + t: self.ref(t) for t in (types or self.types)}

    def remove(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def leader_of(nspawn: subprocess.Popen[bytes]) -> str:
    """The container's PID 1 on the host: the child of systemd-nspawn in a pid namespace of its own."""
    mine = os.readlink("/proc/self/ns/pid")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if nspawn.poll() is not None:
            error = nspawn.stderr.read().decode() if nspawn.stderr else ""
            raise RuntimeError(f"systemd-nspawn exited with {nspawn.returncode}: {error.strip()}")
        for child in children(nspawn.pid):
            try:
                if os.readlink(f"/proc/{child}/ns/pid") != mine and children(child):
                    return child  # its init, with sleep (pid 2) started
            except OSError:
                pass
        time.sleep(0.1)
    raise RuntimeError("systemd-nspawn started no container within 60 s")


def children(pid: int | str) -> list[str]:
    found: list[str] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(f.read().split())
    except OSError:
        pass
    return found


# ---------------------------------------------------------------- the host, before and after


def interfaces(pid: str) -> list[str]:
    out = _run(["nsenter", "-t", pid, "-n", "ip", "-o", "link", "show"]).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line)


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {pid} still there")
        time.sleep(0.05)


def _podman(text: str) -> bool:
    # podman's network (netavark: podman0, its veths, NETAVARK_* rules) belongs to the podman tests of this
    # and other sessions on the shared machine, not to the engines of this file.
    return any(word in text for word in ("podman", "NETAVARK", "CNI-", "netavark"))


def host_state() -> dict[str, list[str]]:
    """What a daemon could leave on the host: bridges (and what hangs on them), iptables rules, mounts."""
    links = json.loads(_run(["ip", "-j", "-d", "link", "show"]).stdout)
    bridges = {link["ifname"] for link in links if (link.get("linkinfo") or {}).get("info_kind") == "bridge"} - {
        link["ifname"] for link in links if _podman(link["ifname"])
    }
    network = sorted(
        "{} {} master={}".format(link["ifname"], (link.get("linkinfo") or {}).get("info_kind", ""), link.get("master"))
        for link in links
        if link["ifname"] in bridges
        or link.get("master") in bridges
        or link["ifname"].startswith(("docker", "lxc", "br-", "vb-", "ve-"))
    )
    rules = []
    for table in ("filter", "nat", "mangle", "raw"):
        out = _run(["iptables", "-t", table, "-S"], check=False).stdout
        rules += [f"{table}: {line}" for line in out.splitlines() if not _podman(line)]
    # other tests mount paths that are not UTF-8 at the same time
    with open("/proc/mounts", errors="surrogateescape") as f:
        mounts = sorted(line.strip() for line in f if any(path in line for path in ENGINE_PATHS))
    return {"links": network, "iptables": sorted(rules), "mounts": mounts}
