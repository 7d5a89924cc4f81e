"""Containers by name: find a container's host PID through its own engine.

``resolve(NAME)`` asks each container engine whose tool is installed --
podman, docker, nerdctl, crictl (their ``inspect``), containerd (``ctr``),
LXC (``lxc-info``), systemd-nspawn through machined (``machinectl``) --
about NAME (a name, an ID or an ID prefix), all of them at once, and
returns the PID of the container's first process as the host sees it.  Its
namespaces are then the /proc/PID/ns/* of any other process
(Namespaces.of_pid, pyns-boot -t PID).

Name rules: a name that several engines know picks the one *running*
container; it is ambiguous only between running containers (the message
lists each with the ``--engine`` that picks it).

Imported only by ``pyns-boot run/env --container`` and
``Namespaces.of_container``: never at interpreter start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from pyns_boot._errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Sequence

#: The engines asked (all at once; listed in this order).
RUNTIMES: tuple[str, ...] = ("podman", "docker", "nerdctl", "crictl", "containerd", "lxc", "machinectl")
#: The tool each engine is asked with, where it is not the engine's name.
TOOLS = {"containerd": "ctr", "lxc": "lxc-info"}
#: containerd's namespaces asked without CONTAINERD_NAMESPACE or a namespace given: a Kubernetes node's, then ctr's.
CONTAINERD_NAMESPACES = ("k8s.io", "default")
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
#: Seconds one tool may take to answer (a daemon that hangs must not hang us); PYNS_BOOT_CONTAINER_TIMEOUT.
TIMEOUT = 15.0
TIMEOUT_VARIABLE = "PYNS_BOOT_CONTAINER_TIMEOUT"
# podman, docker and nerdctl share docker's template language.
_FORMAT = "{{.State.Pid}} {{.State.Running}} {{.State.Status}} {{.Id}} {{.Name}}"


class Container:
    """What one engine said about a container (``runtime``: the engine that answered)."""

    __slots__ = ("id", "name", "namespace", "note", "pid", "running", "runtime", "status")

    def __init__(
        self,
        runtime: str,
        id: str,
        name: str,
        pid: int,
        running: bool,
        status: str,
        namespace: str = "",
    ) -> None:
        self.runtime = runtime
        self.id = id
        self.name = name
        self.pid = pid
        self.running = running
        self.status = status
        #: containerd's namespace (k8s.io, default, ...), else "".
        self.namespace = namespace
        #: What else had the name (not running), said by ``pyns-boot run -v``; "" when nothing.
        self.note = ""

    @property
    def engine(self) -> str:
        return self.runtime

    def describe(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        short = f" ({self.id[:12]})" if self.id and self.id != self.name else ""
        return f"{self.runtime} container {self.name or self.id[:12]}{short}{where}"

    def pick(self) -> str:
        """The options that ask only this container's engine."""
        where = f" --containerd-namespace {self.namespace}" if self.namespace else ""
        return f"--engine {self.runtime}{where}"

    def start_command(self) -> str:
        name = self.name or self.id
        if self.runtime == "containerd":
            start = f"ctr -n {self.namespace} task start -d {name}"
            # a task that ran and stopped is deleted before the container can have a new one
            return start if self.status == "no task" else f"ctr -n {self.namespace} task delete {name}; {start}"
        if self.runtime == "lxc":
            return f"lxc-start -n {name}"
        if self.runtime == "machinectl":
            return f"machinectl start {name}"
        if self.runtime == "crictl":
            return f"crictl start {name}"
        return f"{self.runtime} start {name}"

    def __repr__(self) -> str:
        where = f", namespace={self.namespace!r}" if self.namespace else ""
        return (
            f"Container({self.runtime!r}, id={self.id[:12]!r}, name={self.name!r}, pid={self.pid}, "
            f"status={self.status!r}{where})"
        )


class _Unanswered(Exception):
    """The tool did not say anything about the name (not known, or it failed): the brief reason."""

    @property
    def ambiguous(self) -> bool:
        # podman: "more than one result for container ID 1"; docker: "multiple IDs found with provided prefix"
        text = str(self).lower()
        return "more than one" in text or "multiple" in text


def resolve(name: str, runtimes: Sequence[str] | None = None, containerd_namespace: str | None = None) -> Container:
    """The one running container that NAME names; raises ContainerError.

    ``runtimes`` limits the engines asked (default: all of RUNTIMES whose tool
    is on PATH).  ``containerd_namespace`` (default: $CONTAINERD_NAMESPACE,
    else k8s.io and then default) is where containerd is asked.  Several
    containers of that name: the running one; two running ones are ambiguous.
    """
    if not isinstance(name, str) or not name or name.startswith("-") or "\0" in name or "\n" in name:
        raise ContainerError("bad-name", f"{name!r} is not a container name or ID")
    wanted = tuple(runtimes) if runtimes else RUNTIMES
    for runtime in wanted:
        if runtime not in RUNTIMES:
            raise ValueError("unknown container engine {!r} (known: {})".format(runtime, ", ".join(RUNTIMES)))
    namespace = containerd_namespace or os.environ.get("CONTAINERD_NAMESPACE") or None
    asks: list[tuple[str, Callable[[], list[Container]]]] = []
    for runtime in wanted:
        executable = shutil.which(TOOLS.get(runtime, runtime))
        if executable is not None:
            asks.append((runtime, _asker(runtime, executable, name, namespace)))
    if not asks:
        raise ContainerError(
            "no-runtime",
            "cannot look up container {!r}: none of {} is installed (on PATH); "
            "give the container's process instead: -t PID (Namespaces.of_pid(PID))".format(
                name, ", ".join(_tool_names(wanted))
            ),
        )
    answers = _ask_all(asks)
    found: list[Container] = []
    tried: list[str] = []
    ambiguous: list[str] = []
    for runtime, answer in answers:
        if isinstance(answer, _Unanswered):
            tried.append(f"{runtime}: {answer}")
            if answer.ambiguous:
                ambiguous.append(tried[-1])
        else:
            found.extend(answer)
    # Two tools may see the same container (nerdctl and crictl share containerd): the same running pid.
    running = list({c.pid: c for c in found if c.running and c.pid > 0}.values())
    if len(running) > 1 or (running and ambiguous):
        listed = [f"{c.describe()} (pid {c.pid}; {c.pick()})" for c in running] + ambiguous
        raise ContainerError(
            "ambiguous",
            "container name {!r} is ambiguous: {}; pick one with the option given, or give a longer ID".format(
                name, ", ".join(listed)
            ),
        )
    if ambiguous:
        raise ContainerError(
            "ambiguous",
            "container name {!r} is ambiguous: {}; give more of the ID, or the name".format(name, "; ".join(ambiguous)),
        )
    if running:
        container = running[0]
        others = [c for c in found if c is not container and c.pid != container.pid]
        if others:
            container.note = "also named {!r}, not running: {}".format(
                name, ", ".join(f"{c.describe()} ({c.status or 'unknown'})" for c in others)
            )
        return container
    if not found:
        raise ContainerError(
            "unknown",
            "no container {!r}: {}; give a name or ID that one of them knows (--engine to ask one), "
            "or the container's process: -t PID".format(name, "; ".join(tried)),
        )
    container = found[0]
    also = "".join(f"; {c.describe()} is not running either" for c in found[1:])
    raise ContainerError(
        "not-running",
        "{} is not running (status: {}): it has no namespaces to join; start it first ({}){}".format(
            container.describe(), container.status or "unknown", container.start_command(), also
        ),
    )


def find_container(name: str, engine: str | None = None, containerd_namespace: str | None = None) -> Container:
    """The running container NAME names, and which engine answered: a Container (``.engine``, ``.id``,
    ``.name``, ``.pid``, ``.status``, ``.namespace`` of containerd, ``.note``: what else had the name).

    The lookup of ``Namespaces.of_container`` (``engine``: ask only that one); raises pyns_boot.ContainerError.
    """
    return resolve(name, [engine] if engine else None, containerd_namespace)


def _tool_names(engines: Sequence[str]) -> list[str]:
    return [engine if engine not in TOOLS else f"{engine} ({TOOLS[engine]})" for engine in engines]


def _ask_all(
    asks: list[tuple[str, Callable[[], list[Container]]]],
) -> list[tuple[str, list[Container] | _Unanswered]]:
    """Every engine at once (each is a process that waits for its daemon): the slowest one's time, not the sum."""
    results: dict[str, list[Container] | _Unanswered] = {}

    def one(runtime: str, ask: Callable[[], list[Container]]) -> None:
        try:
            results[runtime] = ask()
        except _Unanswered as error:
            results[runtime] = error
        except Exception as error:  # reported as that engine's answer, not a crash of the lookup
            results[runtime] = _Unanswered(f"{type(error).__name__}: {error}")

    if len(asks) == 1:
        one(*asks[0])
    else:
        import threading

        threads = [threading.Thread(target=one, args=ask, daemon=True) for ask in asks[1:]]
        for thread in threads:
            thread.start()
        one(*asks[0])
        for thread in threads:
            thread.join()
    return [(runtime, results[runtime]) for runtime, _ in asks]


def _asker(runtime: str, executable: str, name: str, namespace: str | None) -> Callable[[], list[Container]]:
    if runtime == "crictl":
        return lambda: _ask_crictl(executable, name)
    if runtime == "containerd":
        return lambda: _ask_containerd(executable, name, namespace)
    if runtime == "lxc":
        return lambda: _ask_lxc(executable, name)
    if runtime == "machinectl":
        return lambda: _ask_machinectl(executable, name)
    return lambda: _ask_inspect(runtime, executable, name)


def _ask_inspect(runtime: str, executable: str, name: str) -> list[Container]:
    out = _run([executable, "container", "inspect", "--format", _FORMAT, name])
    result = []
    for line in out.splitlines():
        fields = line.split(None, 4)
        if len(fields) < 4 or not fields[0].lstrip("-").isdigit():
            raise _Unanswered(f"unexpected answer {_brief(line)!r}")
        result.append(
            Container(
                runtime,
                id=fields[3],
                name=fields[4].lstrip("/") if len(fields) > 4 else "",
                pid=int(fields[0]),
                running=fields[1] == "true",
                status=fields[2],
            )
        )
    if not result:
        raise _Unanswered("no answer")
    return result


def _ask_crictl(executable: str, name: str) -> list[Container]:
    # crictl ps --name is a regular expression: list all, match exactly here.
    listing = _json(_run([executable, "ps", "-a", "-o", "json"]))
    matches = []
    entries = listing.get("containers")
    for entry in entries if isinstance(entries, list) else []:
        cid = str(_field(entry, "id") or "")
        cname = str(_field(entry, "metadata", "name") or "")
        if name in (cid, cname) or cid.startswith(name):
            matches.append((cid, cname))
    if not matches:
        raise _Unanswered("no such container")
    result = []
    for cid, cname in matches:
        info = _json(_run([executable, "inspect", "-o", "json", cid]))
        state = str(_field(info, "status", "state") or "")
        pid = _field(info, "info", "pid")
        status = state.replace("CONTAINER_", "").lower()
        result.append(
            Container("crictl", cid, cname, pid if isinstance(pid, int) else 0, state == "CONTAINER_RUNNING", status)
        )
    return result


def _ask_containerd(executable: str, name: str, namespace: str | None) -> list[Container]:
    """containerd by container ID (or a prefix of one), in each namespace asked; the task says the PID."""
    address = os.environ.get("CONTAINERD_ADDRESS") or CONTAINERD_SOCKET
    if not os.path.exists(address):
        # ctr would wait 10 s for a socket that is not there
        raise _Unanswered(
            f"no containerd socket {address} (containerd is not running; CONTAINERD_ADDRESS names another socket)"
        )
    ctr = [executable, "--connect-timeout", "5s", "--address", address]
    result: list[Container] = []
    namespaces = (namespace,) if namespace else CONTAINERD_NAMESPACES
    for ns in namespaces:
        ids = _run([*ctr, "--namespace", ns, "containers", "list", "--quiet"]).split()
        matches = [i for i in ids if i == name] or [i for i in ids if i.startswith(name)]
        if len(matches) > 1:
            raise _Unanswered("more than one container in namespace {} starts with {}: {}".format(
                ns, name, ", ".join(matches)))  # fmt: skip
        if not matches:
            continue
        tasks = {}
        for line in _run([*ctr, "--namespace", ns, "tasks", "list"]).splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[1].isdigit():
                tasks[fields[0]] = (int(fields[1]), fields[2])
        pid, status = tasks.get(matches[0], (0, "NO TASK"))
        # a paused task still has its namespaces (as docker's paused containers are "running")
        alive = status in ("RUNNING", "PAUSED") and pid > 0
        result.append(Container("containerd", matches[0], matches[0], pid, alive, status.lower(), namespace=ns))
    if not result:
        raise _Unanswered("no container {} in namespace {}".format(name, " or ".join(namespaces)))
    return result


def _ask_lxc(executable: str, name: str) -> list[Container]:
    out = _run([executable, "--name", name, "--state", "--pid", "--no-humanize"])
    facts = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    state = facts.get("State", "").strip()
    pid = facts.get("PID", "").strip()
    if not state:
        raise _Unanswered(f"unexpected answer {_brief(out)!r}")
    return [
        Container(
            "lxc", name, name, int(pid) if pid.isdigit() else 0, state == "RUNNING" and pid.isdigit(), state.lower()
        )
    ]


def _ask_machinectl(executable: str, name: str) -> list[Container]:
    if not os.path.isdir("/run/systemd/system"):
        # machinectl asks systemd-machined over D-Bus: without systemd as PID 1 neither runs.
        raise _Unanswered(
            "systemd-machined is not running (systemd is not PID 1 here), so systemd-nspawn containers "
            "have no names; give the container's leader: -t PID"
        )
    out = _run([executable, "show", "--property=Leader", "--property=State", "--", name])
    facts = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    leader = facts.get("Leader", "")
    state = facts.get("State", "")
    pid = int(leader) if leader.isdigit() else 0
    return [Container("machinectl", name, name, pid, pid > 0 and state == "running", state or "unknown")]


def _timeout() -> float:
    try:
        value = float(os.environ.get(TIMEOUT_VARIABLE) or TIMEOUT)
    except ValueError:
        return TIMEOUT
    return value if value > 0 else TIMEOUT


def _run(argv: list[str]) -> str:
    timeout = _timeout()
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _Unanswered(f"no answer within {timeout:g} s ({TIMEOUT_VARIABLE} sets the limit)") from None
    except OSError as error:
        raise _Unanswered(f"cannot run {argv[0]}: {error.strerror}") from None
    if done.returncode != 0:
        raise _Unanswered(_brief(done.stderr.decode("utf-8", "replace")) or f"exit status {done.returncode}")
    return done.stdout.decode("utf-8", "replace")


def _json(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        raise _Unanswered(f"unexpected answer {_brief(text)!r}") from None
    if not isinstance(value, dict):
        raise _Unanswered(f"unexpected answer {_brief(text)!r}")
    return value


def _field(value: object, *keys: str) -> object:
    """value[k1][k2]... of decoded JSON, None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _brief(text: str, limit: int = 160) -> str:
    """The first non-empty line of a tool's error output, without its 'Error: ' prefix."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            for prefix in ("Error: ", "error: ", "Error response from daemon: ", "ctr: "):
                if line.startswith(prefix):
                    line = line[len(prefix) :]
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""
