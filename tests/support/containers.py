"""Real podman and docker containers from the lab image (scripts/lab.sh setup) for the tests.

A LabContainer runs ``sleep infinity`` in localhost/pyns-lab:sid (Debian sid:
glibc and libraries newer than the host's) with its own pid, mount, net, uts
and ipc namespaces, a hostname of its own and a name starting with
``pyns-test-``.  Without podman or the image the container tests skip, with
the way out (scripts/lab.sh setup); PYNS_BOOT_REQUIRE_LAB=1 (set by .ci/run)
makes that a failure instead, so CI cannot pass by skipping them.
``LabContainer(..., engine="docker")`` is the same container run by the lab's
dockerd (tests/support/engines.py starts it), from the same root filesystem imported as
pyns-lab:sid, with ``--network none`` (the lab's dockerd makes no bridge).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from typing import Sequence

IMAGE = os.environ.get("PYNS_BOOT_LAB_IMAGE", "localhost/pyns-lab:sid")
REQUIRE_VARIABLE = "PYNS_BOOT_REQUIRE_LAB"
NAME_PREFIX = "pyns-test-"
# This machine's cgroups are hybrid: crun refuses them, runc works (scripts/lab.sh).
OCI_RUNTIME = os.environ.get("PYNS_BOOT_LAB_OCI_RUNTIME", "/usr/sbin/runc")
TIMEOUT = 120


DOCKER_IMAGE = "pyns-lab:sid"


def podman_argv(*args: str) -> list[str]:
    return ["podman", "--runtime", OCI_RUNTIME, *args]


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        podman_argv(*args), capture_output=True, text=True, timeout=TIMEOUT, check=check, stdin=subprocess.DEVNULL
    )


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The docker client, talking to the daemon DOCKER_HOST names (the lab's: tests/support/engines.py sets it)."""
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=TIMEOUT, check=check, stdin=subprocess.DEVNULL
    )


def engine_tool(engine: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return (docker if engine == "docker" else podman)(*args, check=check)


def lab_missing() -> str | None:
    """Why the container tests cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed: run scripts/lab.sh setup (as root) for the container tests"
    if not os.path.exists(OCI_RUNTIME):
        return f"the OCI runtime {OCI_RUNTIME} is missing: run scripts/lab.sh setup (as root)"
    if subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True, timeout=TIMEOUT).returncode != 0:
        return f"the lab image {IMAGE} does not exist: run scripts/lab.sh setup (as root, about a minute)"
    return None


def lab_required() -> bool:
    return os.environ.get(REQUIRE_VARIABLE) == "1"


class LabContainer:
    """A running (or created) podman (or docker) container of the lab image."""

    #: The namespaces the engine gives a container of its own by default (root podman, docker).
    types = ("ipc", "mnt", "net", "pid", "uts")

    def __init__(
        self,
        label: str,
        command: Sequence[str] = ("sleep", "infinity"),
        start: bool = True,
        engine: str = "podman",
        name: str | None = None,
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        self.engine = engine
        self.name = name or f"{NAME_PREFIX}{label}-{tag}"
        self.hostname = "pyns-ctr-" + tag
        image = [IMAGE] if engine == "podman" else ["--network", "none", DOCKER_IMAGE]
        args = ["--name", self.name, "--hostname", self.hostname, "--label", "pyns-test=1", *image, *command]
        if start:
            self.id = self.tool("run", "-d", *args).stdout.strip()
            self.pid = self.inspect("{{.State.Pid}}")
            if tuple(command) == ("sleep", "infinity") and (not self.pid.isdigit() or self.pid == "0"):
                self.remove()
                raise RuntimeError(f"container {self.name} did not start: pid {self.pid!r}")
        else:
            self.id = self.tool("create", *args).stdout.strip()
            self.pid = "0"

    def tool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The engine's own command line (podman --runtime ..., or docker)."""
        return engine_tool(self.engine, *args, check=check)

    @property
    def host_pid(self) -> int:
        return int(self.pid)

    def inspect(self, template: str) -> str:
        return self.tool("container", "inspect", "--format", template, self.name).stdout.strip()

    def ref(self, ns_type: str) -> str:
        return f"/proc/{self.host_pid}/ns/{ns_type}"

    def env(self, types: Sequence[str] = ("ipc", "mnt", "net", "pid", "uts")) -> dict[str, str]:
        """gons_* variables for the given types, by hand."""
        return {"gons_" + t: self.ref(t) for t in types}

    def interfaces(self) -> list[str]:
        """The network interfaces the container sees (asked with ip(8) inside its net namespace)."""
        out = subprocess.run(
            ["nsenter", "-t", self.pid, "-n", "ip", "-o", "link", "show"],
            capture_output=True,
            text=True,
            check=True,
            timeout=TIMEOUT,
        ).stdout
        return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line)

    def os_release(self) -> str:
        with open(f"/proc/{self.host_pid}/root/etc/os-release") as f:
            return f.read()

    def stop(self) -> None:
        self.tool("kill", self.name, check=False)

    def remove(self) -> None:
        self.tool("rm", "-f", *(["-t", "0"] if self.engine == "podman" else []), self.name, check=False)


# ---------------------------------------------------------------- rootless

NOBODY = 65534
# A root filesystem of the host's own sleep and cat with their libraries: small enough to import per test.
TINY_PROGRAMS = ("/usr/bin/sleep", "/usr/bin/cat")
TINY_OS_RELEASE = 'PRETTY_NAME="pyns rootless test"\n'


def _tiny_rootfs_tar(directory: str) -> str:
    root = os.path.join(directory, "rootfs")
    files = set(TINY_PROGRAMS)
    for program in TINY_PROGRAMS:
        out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
        files.update(word for word in out.split() if word.startswith("/"))
    for path in files:
        if path in TINY_PROGRAMS:
            target = os.path.join(root, "bin", os.path.basename(path))
        else:
            target = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(os.path.realpath(path), target)
    for name in ("etc", "proc", "dev", "sys", "tmp"):
        os.makedirs(os.path.join(root, name), exist_ok=True)
    with open(os.path.join(root, "etc", "os-release"), "w") as f:
        f.write(TINY_OS_RELEASE)
    tar = os.path.join(directory, "rootfs.tar")
    subprocess.run(["tar", "-C", root, "-cf", tar, "."], check=True)
    os.chmod(tar, 0o644)
    return tar


class RootlessContainer:
    """A container that rootless podman runs for the unprivileged user nobody: its own user namespace.

    nobody's podman keeps its storage in a temporary HOME of its own (single id mapping: nobody is root
    inside, no /etc/subuid needed); the image is a tiny root filesystem of the host's sleep and cat.
    Networking is --network none (rootless networking needs /dev/net/tun, which nobody cannot open here):
    still a network namespace of its own.
    """

    def __init__(self, workdir: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name = f"{NAME_PREFIX}rootless-{tag}"
        self.hostname = "pyns-rl-" + tag
        self.home = os.path.join(workdir, "rootless-home-" + tag)
        os.mkdir(self.home, 0o700)
        os.chown(self.home, NOBODY, NOBODY)
        tar = _tiny_rootfs_tar(workdir)
        image = "localhost/pyns-test-tiny:" + tag
        self.podman("import", "-q", tar, image)
        self.podman(
            "run", "-d", "--network", "none", "--name", self.name, "--hostname", self.hostname, image, "/bin/sleep",
            "infinity",
        )  # fmt: skip
        self.pid = self.podman("container", "inspect", "--format", "{{.State.Pid}}", self.name).stdout.strip()
        if not self.pid.isdigit() or self.pid == "0":
            self.remove()
            raise RuntimeError(f"rootless container {self.name} did not start: pid {self.pid!r}")

    @property
    def host_pid(self) -> int:
        return int(self.pid)

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "XDG_RUNTIME_DIR": os.path.join(self.home, "run")}
        as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
        os.chown(env["XDG_RUNTIME_DIR"], NOBODY, NOBODY)
        result = subprocess.run(
            [*as_nobody, *podman_argv(*args)],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError("rootless podman {} failed: {}".format(" ".join(args), result.stderr.strip()))
        return result

    def ref(self, ns_type: str) -> str:
        return f"/proc/{self.host_pid}/ns/{ns_type}"

    def env(self, types: Sequence[str] = ("user", "ipc", "mnt", "net", "pid", "uts")) -> dict[str, str]:
        return {"gons_" + t: self.ref(t) for t in types}

    def remove(self) -> None:
        self.podman("rm", "-f", "-t", "0", self.name, check=False)
        # rootless podman leaves a pause process that holds its user namespace: end it, then the storage.
        pause = os.path.join(self.home, "run", "libpod", "tmp", "pause.pid")
        try:
            with open(pause) as f:
                os.kill(int(f.read().strip()), 9)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.home, ignore_errors=True)
