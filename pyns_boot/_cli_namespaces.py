"""The namespaces the options of ``pyns-boot env`` and ``run`` name, as a checked Namespaces.

A reference is checked the way the hook will use it, by the C helper's own
check (_pyns_boot.check_reference: opened with the hook's flags, on nsfs,
of the right type).  References the hook resolves only after a
mount-namespace switch (listed without ``!`` after ``mnt`` in the order)
cannot be checked from here and are passed on as given.
"""

from __future__ import annotations

import errno
import os

import _pyns_boot

from pyns_boot import _after_joins, _hints, _run_fast
from pyns_boot._errors import CommandError, UsageError
from pyns_boot._namespaces import NETNS_DIR, Namespaces, steps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Sequence


def build(
    target: int | None,
    from_target: Sequence[str],
    paths: Mapping[str, str],
    all_types: bool,
    netns: str | None,
    order: str | None,
    check: bool = True,
    options: Mapping[str, str] | None = None,
) -> Namespaces:
    """The Namespaces the options name; raises UsageError or CommandError.

    options: how the command spells its options, by type ("user": "-U/--user"), for its messages."""
    names = dict(options or {})
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
            instead = _after_joins.name_instead(netns, "--netns %s", "--net %s") if netns else "--netns NAME"
            raise UsageError(f"--netns {netns!r} is not a network namespace name (as in: ip netns add NAME): {instead}")
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
        wanted = differing_types(target, names) if all_types else from_target
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
    if netns is not None:
        del refs["net"]  # Namespaces makes it of netns
    try:
        spec = Namespaces(order=order, netns=netns, **refs)
    except ValueError as error:
        raise UsageError(str(error).replace("pyns_boot: ", "")) from None
    if check:
        if netns is not None:
            names["net"] = "--netns"
        for t in checkable(spec):
            check_reference(t, spec.paths[t], target, names, netns if t == "net" else None)
    return spec


def checkable(spec: Namespaces) -> list[str]:
    """The requested types whose reference is resolved in our mount namespace."""
    requested = spec.paths
    result = []
    after_mnt = False
    for name, early in steps(spec):
        if name in requested and (early or not after_mnt):
            result.append(name)
        if name == "mnt" and "mnt" in requested:
            after_mnt = True
    return result


def process_start(pid: int) -> str:
    """The start time of a process (pyns_boot._run_fast.process_start), or CommandError saying why not."""
    try:
        return _run_fast.process_start(pid)
    except FileNotFoundError:
        raise CommandError(f"no process with pid {pid}") from None
    except ProcessLookupError:
        raise CommandError(f"process {pid} has exited (a zombie: it has no namespaces left)") from None
    except OSError as error:
        raise CommandError(f"cannot read /proc/{pid}/stat: {error.strerror}") from None


def differing_types(pid: int, names: Mapping[str, str] | None = None) -> list[str]:
    """Every namespace type of the target that a join would change (pyns_boot._run_fast.differing_types), or
    CommandError with the hook's message for a reference that cannot be read."""
    try:
        return _run_fast.differing_types(pid)
    except OSError as error:
        path = error.filename if isinstance(error.filename, str) else f"/proc/{pid}/ns"
        if path.startswith(f"/proc/{pid}/ns/"):
            check_reference(os.path.basename(path), path, pid, names)  # CommandError with the hook's message
        raise CommandError(f"cannot read {path}: {error.strerror}") from None


def check_reference(
    ns_type: str,
    path: str,
    target: int | None = None,
    names: Mapping[str, str] | None = None,
    netns: str | None = None,
) -> None:
    """Raise CommandError unless path opens as a namespace of ns_type (the hook's check and message).

    names: the command's options by type (see build()); netns: the name --netns gave (path is its file)."""
    try:
        _pyns_boot.check_reference(ns_type, path)
    except OSError as error:
        raise CommandError(_reference_error(ns_type, path, error, target, names or {}, netns)) from None


def _reference_error(
    ns_type: str, path: str, error: OSError, target: int | None, names: Mapping[str, str], netns: str | None
) -> str:
    """The C helper's message without its "pyns_boot: " prefix, naming the option the user gave rather
    than the variable, with what the command line knows more."""
    option = _hints.name(ns_type, _hints.COMMAND, names)
    value = f'"{path}"' if netns is None else f'"{netns}" ({path})'
    text = _hints.renamed(str(error.strerror).replace("pyns_boot: ", "", 1), f"gons_{ns_type}", path, option, value)
    if target is not None and path.startswith(f"/proc/{target}/"):
        if error.errno == errno.ENOENT:
            if not os.path.exists(f"/proc/{target}"):
                return f"no process with pid {target} (it exited)"
            text += f" (process {target} has exited or its kernel has no {ns_type} namespaces)"
            return text
    hint = _hints.hint(ns_type, path, error.errno, False, _hints.COMMAND, names)
    if hint and ns_type == "mnt" and not path.startswith("/"):
        hint = f"-m is the mount namespace (as in nsenter); to run a module: pyns-boot run [OPTIONS] -- -m {path}"
    return text + "\npyns-boot: hint: " + hint if hint else text
