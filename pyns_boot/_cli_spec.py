"""Turn the namespace options of ``pyns-boot env`` and ``run`` into a checked Namespaces.

A reference is checked the way the hook will use it: opened with the hook's
flags, recognised as an nsfs file by its device, and asked for its type with
``NS_GET_NSTYPE``.  References the hook resolves only after a mount-namespace
switch (listed without ``!`` after ``mnt`` in the order) cannot be checked
from here and are passed on as given.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from _pyns_boot import DEFAULT_ORDER, TYPES, parse_order

from pyns_boot import _hints
from pyns_boot._errors import CommandError, UsageError
from pyns_boot._namespaces import NETNS_DIR, Namespaces

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Sequence

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)
CLONE_FLAGS = {
    0x00020000: "mnt",
    0x02000000: "cgroup",
    0x04000000: "uts",
    0x08000000: "ipc",
    0x10000000: "user",
    0x20000000: "pid",
    0x40000000: "net",
    0x00000080: "time",
}
OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY

#: The link of this process that a target's namespace of each type is compared with.
#: setns on pid moves only the namespace for children; on time it moves both.
SELF_LINK = {t: t for t in TYPES}
SELF_LINK["pid"] = "pid_for_children"


def build(
    target: int | None,
    from_target: Sequence[str],
    paths: Mapping[str, str],
    all_types: bool,
    netns: str | None,
    order: str | None,
    check: bool = True,
) -> Namespaces:
    """The Namespaces the options name; raises UsageError or CommandError."""
    refs: dict[str, str] = {}
    if netns is not None:
        if "net" in paths or "net" in from_target:
            raise UsageError("--netns and --net name the same namespace: give one of them")
        if "mnt" in paths or "mnt" in from_target or all_types:
            raise UsageError(
                "--netns gives the program a private copy of this mount namespace (as ip netns exec does) and "
                f"cannot be combined with -m/--mnt or --all: use --net {NETNS_DIR}/{netns}"
            )
        if not netns or "/" in netns or netns in (".", ".."):
            raise UsageError(f"--netns {netns!r} is not a network namespace name (as in: ip netns add NAME)")
        refs["net"] = os.path.join(NETNS_DIR, netns)  # checked as a path; joined as ip netns exec does
    if target is None:
        if from_target:
            flags = ", ".join("--" + t for t in from_target)
            raise UsageError(f"{flags} without a PATH needs a target process: add -t PID")
        if all_types:
            raise UsageError("--all needs a target process: add -t PID")
    else:
        if target <= 0:
            raise UsageError(f"-t/--target needs a positive process id, not {target}")
        if not from_target and not all_types:
            raise UsageError(
                f"-t {target} names a process, but no namespace: add type options such as --net --uts, or --all"
            )
        start = process_start(target)
        wanted = differing_types(target) if all_types else from_target
        for t in wanted:
            refs[t] = f"/proc/{target}/ns/{t}"
        if process_start(target) != start:
            raise CommandError(f"process {target} exited while its namespaces were read")
    for t, value in paths.items():
        if not value:
            raise UsageError(f"--{t} needs a non-empty PATH")
        refs[t] = value
    if not refs and not all_types:
        raise UsageError(
            "name at least one namespace: -t PID with --net, --uts ... or --all, --TYPE PATH, --netns NAME"
        )
    try:
        if netns is not None:
            del refs["net"]
            spec = Namespaces(order=order, netns=netns, **refs)
        else:
            spec = Namespaces(order=order, **refs)
    except ValueError as error:
        raise UsageError(str(error).replace("pyns_boot: ", "")) from None
    if check:
        for t in checkable(spec):
            check_reference(t, spec.paths[t], target)
    return spec


def checkable(spec: Namespaces) -> list[str]:
    """The requested types whose reference is resolved in our mount namespace."""
    requested = spec.paths
    result = []
    after_mnt = False
    for name, early in parse_order(spec.order or DEFAULT_ORDER):
        if name in requested and (early or not after_mnt):
            result.append(name)
        if name == "mnt" and "mnt" in requested:
            after_mnt = True
    return result


def process_start(pid: int) -> str:
    """The start time of a process (field 22 of /proc/PID/stat): tells it from a later one with the same pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise CommandError(f"no process with pid {pid}") from None
    except OSError as error:
        raise CommandError(f"cannot read /proc/{pid}/stat: {error.strerror}") from None
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[:1] in ([b"Z"], [b"X"]):
        raise CommandError(f"process {pid} has exited (a zombie: it has no namespaces left)")
    return fields[19].decode("ascii", "replace") if len(fields) > 19 else ""


def differing_types(pid: int) -> list[str]:
    """Every namespace type of the target that differs from this process's.

    The target's pid namespace is compared with our pid_for_children (what
    joining changes); every other type with our namespace of that type.
    """
    result = []
    for t in TYPES:
        theirs = f"/proc/{pid}/ns/{t}"
        ours = f"/proc/self/ns/{SELF_LINK[t]}"
        if not os.path.lexists(theirs) or not os.path.lexists(ours):
            continue  # the kernel does not offer this type
        try:
            their_stat = os.stat(theirs)
        except OSError as error:
            raise CommandError(_reference_error(t, theirs, error, pid)) from None
        own_stat = os.stat(ours)
        if (their_stat.st_dev, their_stat.st_ino) != (own_stat.st_dev, own_stat.st_ino):
            result.append(t)
    return result


def check_reference(ns_type: str, path: str, target: int | None = None) -> None:
    """Raise CommandError unless path opens as a namespace of ns_type."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as error:
        raise CommandError(_reference_error(ns_type, path, error, target)) from None
    try:
        info = os.fstat(fd)
        if info.st_dev != os.stat("/proc/self/ns/net").st_dev:
            raise CommandError(
                f'invalid gons_{ns_type} reference "{path}": not a namespace reference (it is {_kind(info)})'
            )
        try:
            flag = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError as error:
            raise CommandError(_reference_error(ns_type, path, error, target)) from None
        actual = CLONE_FLAGS.get(flag, f"unknown ({flag:#x})")
        if actual != ns_type:
            raise CommandError(
                f'invalid gons_{ns_type} reference "{path}": it is a namespace of type {actual}, not {ns_type}'
            )
    finally:
        os.close(fd)


def _reference_error(ns_type: str, path: str, error: OSError, target: int | None) -> str:
    text = f'invalid gons_{ns_type} reference "{path}": {error.strerror or error}'
    if target is not None and path.startswith(f"/proc/{target}/"):
        if error.errno == errno.ENOENT:
            if not os.path.exists(f"/proc/{target}"):
                return f"no process with pid {target} (it exited)"
            text += f" (process {target} has exited or its kernel has no {ns_type} namespaces)"
            return text
    hint = _hints.hint(ns_type, path, error.errno, False, _hints.COMMAND)
    if hint and ns_type == "mnt" and not path.startswith("/"):
        hint = f"-m is the mount namespace (as in nsenter); to run a module: pyns-boot run [OPTIONS] -- -m {path}"
    return text + "\npyns-boot: hint: " + hint if hint else text


def _kind(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, name in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not on nsfs"
