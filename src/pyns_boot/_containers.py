"""Containers by name: find a container's host PID through its own runtime.

``resolve(NAME)`` asks each container tool on PATH that is present --
podman, docker, nerdctl, crictl -- about NAME (a name, an ID or an ID
prefix) with its own ``inspect``, and returns the PID of the container's
first process as the host sees it.  Its namespaces are then the
/proc/PID/ns/* of any other process (Namespaces.of_pid, pyns-boot -t PID).

Imported only by ``pyns-boot run/env --container`` and
``Namespaces.of_container``: never at interpreter start-up.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from pyns_boot._errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

#: The tools asked, in this order.
RUNTIMES: tuple[str, ...] = ("podman", "docker", "nerdctl", "crictl")
#: Seconds one tool may take to answer (a daemon that hangs must not hang us).
TIMEOUT = 15.0
# podman, docker and nerdctl share docker's template language.
_FORMAT = "{{.State.Pid}} {{.State.Running}} {{.State.Status}} {{.Id}} {{.Name}}"


class Container:
    """What one runtime said about a container."""

    __slots__ = ("id", "name", "pid", "running", "runtime", "status")

    def __init__(self, runtime: str, id: str, name: str, pid: int, running: bool, status: str) -> None:
        self.runtime = runtime
        self.id = id
        self.name = name
        self.pid = pid
        self.running = running
        self.status = status

    def describe(self) -> str:
        return f"{self.runtime} container {self.name or self.id[:12]} ({self.id[:12]})"

    def __repr__(self) -> str:
        return (
            f"Container({self.runtime!r}, id={self.id[:12]!r}, name={self.name!r}, pid={self.pid}, "
            f"status={self.status!r})"
        )


class _Unanswered(Exception):
    """The tool did not say anything about the name (not known, or it failed): the brief reason."""

    @property
    def ambiguous(self) -> bool:
        # podman: "more than one result for container ID 1"; docker: "multiple IDs found with provided prefix"
        text = str(self).lower()
        return "more than one" in text or "multiple" in text


def resolve(name: str, runtimes: Sequence[str] | None = None) -> Container:
    """The one running container that NAME names; raises ContainerError.

    ``runtimes`` limits the tools asked (default: all of RUNTIMES that are
    on PATH).  A name two tools know as different containers is ambiguous.
    """
    if not isinstance(name, str) or not name or name.startswith("-") or "\0" in name or "\n" in name:
        raise ContainerError("bad-name", f"{name!r} is not a container name or ID")
    wanted = tuple(runtimes) if runtimes else RUNTIMES
    for runtime in wanted:
        if runtime not in RUNTIMES:
            raise ValueError("unknown container runtime {!r} (known: {})".format(runtime, ", ".join(RUNTIMES)))
    found: list[Container] = []
    tried: list[str] = []
    ambiguous: list[str] = []
    for runtime in wanted:
        executable = shutil.which(runtime)
        if executable is None:
            continue
        try:
            found.extend(_ask(runtime, executable, name))
        except _Unanswered as error:
            tried.append(f"{runtime}: {error}")
            if error.ambiguous:
                ambiguous.append(tried[-1])
    if ambiguous:
        raise ContainerError(
            "ambiguous",
            "container name {!r} is ambiguous: {}; give more of the ID, or the name".format(name, "; ".join(ambiguous)),
        )
    if not found:
        if not tried:
            raise ContainerError(
                "no-runtime",
                "cannot look up container {!r}: none of {} is installed (on PATH); "
                "give the container's process instead: -t PID (Namespaces.of_pid(PID))".format(name, ", ".join(wanted)),
            )
        raise ContainerError("unknown", "no container {!r}: {}".format(name, "; ".join(tried)))
    # Two tools may see the same container (nerdctl and crictl share containerd): the same running pid.
    distinct = {c.pid if c.running and c.pid > 0 else c.runtime + ":" + c.id: c for c in found}
    if len(distinct) > 1:
        raise ContainerError(
            "ambiguous",
            "container name {!r} is ambiguous: {}; give a longer ID or the tool (--engine, engine=)".format(
                name, ", ".join(c.describe() for c in distinct.values())
            ),
        )
    container = found[0]
    if not container.running or container.pid <= 0:
        raise ContainerError(
            "not-running",
            "{} is not running (status: {}): it has no namespaces to join; start it first ({} start {})".format(
                container.describe(), container.status or "unknown", container.runtime, name
            ),
        )
    return container


def _ask(runtime: str, executable: str, name: str) -> list[Container]:
    if runtime == "crictl":
        return _ask_crictl(executable, name)
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


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _Unanswered(f"no answer within {TIMEOUT:g} s") from None
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


def _brief(text: str, limit: int = 120) -> str:
    """The first non-empty line of a tool's error output, without its 'Error: ' prefix."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            for prefix in ("Error: ", "error: ", "Error response from daemon: "):
                if line.startswith(prefix):
                    line = line[len(prefix) :]
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""
