"""What the start-up hook did in this process: pyns_boot.status() and check().

Not on the start-up path: loaded on first use of the public names, and
cheap to import (tests/test_startup_imports.py).  Annotations are quoted
instead of ``from __future__ import annotations``, which imports the
__future__ module at run time (a quarter of that cost).
"""

import errno as errno_module
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import MappingProxyType, ModuleType
    from typing import Any, Final, Literal, Mapping

    from _pyns_boot import Report

    State = Literal["inactive", "succeeded", "failed", "not_run"]
else:
    MappingProxyType = type(type.__dict__)  # types.MappingProxyType: importing types costs more than status()

#: Values of Status.state.
INACTIVE: "Final" = "inactive"  # nothing was asked (no gons_* variable, or only valid gons_order)
SUCCEEDED: "Final" = "succeeded"  # every requested namespace joined or already joined
FAILED: "Final" = "failed"  # the hook ran and stopped at an error
NOT_RUN: "Final" = "not_run"  # gons_* variables are set, but the hook never ran

#: The values of NamespaceState.outcome this module tells apart (the C helper's words; the other one is "failed").
NOT_REQUESTED = "not_requested"
NOT_REACHED = "not_reached"
JOINED = "joined"
ALREADY_JOINED = "already_joined"


class _Frozen:
    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)


class NamespaceState(_Frozen):
    """One namespace type: what was requested and what became of it."""

    __slots__ = ("early", "outcome", "path", "type", "variable")

    type: str
    variable: str
    path: "str | None"
    outcome: str
    early: bool

    def __init__(self, type: str, path: "str | None", outcome: str, early: bool) -> None:
        self._set(type=type, variable="gons_" + type, path=path, outcome=outcome, early=early)

    @property
    def requested(self) -> bool:
        return self.path is not None

    def as_dict(self) -> "dict[str, Any]":
        return {
            "variable": self.variable,
            "path": self.path,
            "outcome": self.outcome,
            "early": self.early,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NamespaceState):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> "tuple[str, str | None, str, bool]":
        return (self.type, self.path, self.outcome, self.early)

    def __repr__(self) -> str:
        return "NamespaceState(type={!r}, path={!r}, outcome={!r}, early={!r})".format(*self._key())


class Status(_Frozen):
    """The outcome of the start-up hook in this process (see pyns_boot.status())."""

    __slots__ = (
        "errno",
        "error",
        "failed",
        "hint",
        "hook_ran",
        "imports_error",
        "imports_root",
        "namespaces",
        "order",
        "pid_mode",
        "policy",
        "policy_error",
        "state",
    )

    #: "inactive", "succeeded", "failed" or "not_run".
    state: "State"
    hook_ran: bool
    error: "str | None"
    errno: "int | None"
    failed: "str | None"
    order: "str | None"
    policy: "str | None"
    namespaces: "Mapping[str, NamespaceState]"
    #: "/proc/self/fd/N" while the interpreter imports from its own
    #: installation after a mnt join (PYNS_BOOT_KEEP_IMPORTS), else None.
    imports_root: "str | None"
    #: Why it could not keep importing from there (the target has no usable /proc).
    imports_error: "str | None"
    #: After gons_pid was joined: "entered" (the hook forked: this process lives in
    #: that pid namespace, its parent is the supervisor), "member" (it lived there
    #: already), "children" (PYNS_BOOT_PID=children: only its children land there),
    #: "failed" (it could not enter); None when gons_pid was not joined.
    pid_mode: "str | None"
    #: The complaint about a PYNS_BOOT_ON_ERROR value that is not understood (it acts as exit), else None.
    policy_error: "str | None"
    #: One short hint on the failure (a stale variable, a netns name, a missing capability...), else None.
    hint: "str | None"

    def __init__(
        self,
        state: "State",
        hook_ran: bool,
        namespaces: "Mapping[str, NamespaceState]",
        error: "str | None" = None,
        errno: "int | None" = None,
        failed: "str | None" = None,
        order: "str | None" = None,
        policy: "str | None" = None,
        imports_root: "str | None" = None,
        imports_error: "str | None" = None,
        pid_mode: "str | None" = None,
        policy_error: "str | None" = None,
        hint: "str | None" = None,
    ) -> None:
        self._set(
            policy_error=policy_error,
            hint=hint,
            state=state,
            hook_ran=hook_ran,
            error=error,
            errno=errno,
            failed=failed,
            order=order,
            policy=policy,
            imports_root=imports_root,
            imports_error=imports_error,
            pid_mode=pid_mode,
            namespaces=MappingProxyType(dict(namespaces)),
        )

    @property
    def ok(self) -> bool:
        """True unless something failed or the hook did not run when asked to."""
        return self.state in (INACTIVE, SUCCEEDED)

    @property
    def joined(self) -> "tuple[str, ...]":
        """The types this process switched into."""
        return tuple(t for t, ns in self.namespaces.items() if ns.outcome == JOINED)

    @property
    def already_joined(self) -> "tuple[str, ...]":
        """The types whose requested namespace the process was a member of already."""
        return tuple(t for t, ns in self.namespaces.items() if ns.outcome == ALREADY_JOINED)

    @property
    def keeps_imports(self) -> bool:
        """True when imports read the original installation after a mnt join."""
        return self.imports_root is not None

    @property
    def errno_name(self) -> "str | None":
        return None if self.errno is None else errno_module.errorcode.get(self.errno)

    def as_dict(self) -> "dict[str, Any]":
        """A plain dict of builtins, ready for json.dumps and logs."""
        return {
            "state": self.state,
            "ok": self.ok,
            "hook_ran": self.hook_ran,
            "error": self.error,
            "errno": self.errno,
            "errno_name": self.errno_name,
            "failed": self.failed,
            "order": self.order,
            "policy": self.policy,
            "policy_error": self.policy_error,
            "hint": self.hint,
            "keeps_imports": self.keeps_imports,
            "imports_root": self.imports_root,
            "imports_error": self.imports_error,
            "pid_mode": self.pid_mode,
            "namespaces": {t: ns.as_dict() for t, ns in self.namespaces.items()},
        }

    def raise_for_error(self) -> None:
        """Raise NamespaceError when not ok."""
        if not self.ok:
            from pyns_boot._errors import NamespaceError  # here: status() alone stays one module import

            raise NamespaceError(self.errno, self.error or self.state, failed=self.failed, status=self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Status):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash((self.state, self.error, self.errno, tuple(self.namespaces.values())))

    def __repr__(self) -> str:
        requested = ", ".join(f"{t}={ns.outcome}" for t, ns in self.namespaces.items() if ns.requested)
        text = f"Status(state={self.state!r}, ok={self.ok!r}, hook_ran={self.hook_ran!r}"
        if requested:
            text += ", " + requested
        if self.error is not None:
            text += f", error={self.error!r}"
        return text + ")"


# The variable's name only: what its values mean is pyns_boot._policy's, loaded when a value may not be understood.
POLICY_VARIABLE = "PYNS_BOOT_ON_ERROR"


def status() -> "Status":
    """What the start-up hook did in this process (gathered by _gather())."""
    result = _gather(sys.modules.get("pyns_boot._hook_record"))
    value = os.environ.get(POLICY_VARIABLE)
    if value and value != result.policy:  # the policy the hook applied is a value understood: nothing to ask
        from pyns_boot import _policy

        result._set(policy_error=_policy.complaint(value))
    return result


def _gather(record: "ModuleType | None") -> "Status":
    """The one place that puts together what the hook did: the Python side's
    record (pyns_boot._hook_record: loaded only when the start-up went through
    Python, else None) and the C helper's (report(), policy(), pid_mode())."""
    policy = getattr(record, "policy", None)
    load_error = getattr(record, "load_error", None)
    try:
        import _pyns_boot
    except ImportError as error:
        message = load_error or f"pyns_boot: cannot load the C helper _pyns_boot: {error}"
        return Status(FAILED, load_error is not None, {}, error=message, policy=policy)

    if policy is None:  # the common path: the C helper's run() acted without Python
        policy = _pyns_boot.policy()
    report = _pyns_boot.report()
    if report is not None:
        result = _from_report(
            report,
            policy,
            getattr(record, "imports_root", None),
            getattr(record, "imports_error", None),
            _pyns_boot.pid_mode(),
        )
        if not report["ok"]:
            from pyns_boot import _hints

            netns = getattr(record, "netns", None)  # named by gons_netns: say so, as the hook did
            said = str(_hints.message_as_given(report, netns)) + (getattr(record, "threads_note", None) or "")
            result._set(error=said, hint=_hints.for_report(report, netns=netns))
        after_joins_error = getattr(record, "after_joins_error", None)
        if after_joins_error is not None:  # joined, then a step after the joins failed (pyns_boot._after_joins)
            result._set(state=FAILED, error=after_joins_error)
        return result
    # Judged from the environment the process started with: a variable the
    # program (or sitecustomize) set later was never the hook's business.
    started = started_with((*_pyns_boot.VARIABLES, _pyns_boot.ORDER_VARIABLE))
    namespaces = _unrun_namespaces(_pyns_boot.TYPES, started)
    if load_error is not None:
        return Status(FAILED, True, namespaces, error=load_error, policy=policy)
    pending = [ns.variable for ns in namespaces.values() if ns.requested]
    if started.get(_pyns_boot.ORDER_VARIABLE):
        pending.append(_pyns_boot.ORDER_VARIABLE)
    if not pending:
        return Status(INACTIVE, False, namespaces)
    message = "pyns_boot: {} {} set, but the pyns_boot start-up hook did not run in this process ({})".format(
        ", ".join(pending),
        "is" if len(pending) == 1 else "are",
        _why_not_run(),
    )
    return Status(NOT_RUN, False, namespaces, error=message)


def started_with(names: "tuple[str, ...]") -> "dict[str, str]":
    """Those of names that the process's initial environment set, as the hook
    saw them at start: /proc/self/environ keeps the block execve gave the
    process (later setenv, unsetenv and os.environ changes leave it as it
    was); the first of duplicate entries counts, as getenv() finds it.
    Without a readable /proc (not mounted), os.environ stands in for it."""
    try:
        with open("/proc/self/environ", "rb") as file:
            block = file.read()
    except OSError:
        return {name: os.environ[name] for name in names if name in os.environ}
    wanted = {os.fsencode(name): name for name in names}
    found: "dict[str, str]" = {}
    for entry in block.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        name = wanted.get(key)
        if sep and name is not None and name not in found:
            found[name] = os.fsdecode(value)
    return found


def _why_not_run() -> str:
    """Why site.py did not run the hook, as far as this process can tell."""
    if sys.flags.no_site:
        return "the interpreter was started with -S: site.py, which runs pyns_boot.pth, did not run"
    from pyns_boot import _sitedirs

    dirs = _sitedirs.site_dirs()
    directory = _sitedirs.hook_dir(dirs)
    if directory is None:
        return "pyns_boot.pth is not installed in the site-packages of {} (site.py read: {})".format(
            sys.prefix,
            ", ".join(dirs) or "no directory",
        )
    return (
        f"pyns_boot.pth in {directory} did not act: the variables were gone from os.environ when site.py reached it "
        "(an earlier .pth file removed them), or its line failed (see the start-up's stderr)"
    )


def check() -> "Status":
    """Return the status, or raise NamespaceError when it is not ok."""
    result = status()
    result.raise_for_error()
    return result


def _unrun_namespaces(types: "tuple[str, ...]", started: "Mapping[str, str]") -> "dict[str, NamespaceState]":
    namespaces = {}
    for type_name in types:
        path = started.get("gons_" + type_name) or None
        namespaces[type_name] = NamespaceState(type_name, path, NOT_REACHED if path else NOT_REQUESTED, False)
    return namespaces


def _from_report(
    report: "Report",
    policy: "str | None",
    imports_root: "str | None" = None,
    imports_error: "str | None" = None,
    pid_mode: "str | None" = None,
) -> "Status":
    namespaces = {
        type_name: NamespaceState(type_name, entry["path"], entry["outcome"], entry["early"])
        for type_name, entry in report["namespaces"].items()
    }
    any_requested = any(ns.requested for ns in namespaces.values())
    state: "State" = FAILED if not report["ok"] else (SUCCEEDED if any_requested else INACTIVE)
    return Status(
        state,
        True,
        namespaces,
        error=report["message"],
        errno=report["errno"] or None,
        failed=report["failed"],
        order=report["order"],
        policy=policy,
        imports_root=imports_root,
        imports_error=imports_error,
        pid_mode=pid_mode,
    )
