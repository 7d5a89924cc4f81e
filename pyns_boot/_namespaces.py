"""Namespaces: an immutable specification of where a process should run.

It names one reference per namespace type plus an optional order, and
renders itself as the gons_* variables, so that

    subprocess.run([sys.executable, "app.py"], env={**os.environ, **spec.to_env()})

starts a child in those namespaces through the start-up hook.  Not on the
start-up path.
"""

from __future__ import annotations

import os

import _pyns_boot

from pyns_boot._errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Iterator, Mapping, Union

    PathArg = Union[str, "os.PathLike[str]", None]

TYPES: tuple[str, ...] = _pyns_boot.TYPES
ORDER_VARIABLE: str = _pyns_boot.ORDER_VARIABLE
VARIABLE_PREFIX = "gons_"
NETNS_DIR = "/run/netns"
#: A named network namespace joined the way ``ip netns exec NAME`` does (pyns_boot._after_joins).
NETNS_VARIABLE = "gons_netns"


def check_netns_name(name: str) -> str:
    """name, or ValueError when it cannot be a name of ip netns."""
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"invalid network namespace name {name!r} (as in: ip netns add NAME)")
    return name


def _path(type_name: str, value: PathArg) -> str | None:
    if value is None:
        return None
    path = os.fspath(value)
    if not isinstance(path, str):
        raise TypeError(f"{type_name}: a namespace reference must be a str path, not {type(path).__name__}")
    if "\0" in path:
        raise ValueError(f"{type_name}: a namespace reference cannot contain a NUL character: {path!r}")
    return path or None


class Namespaces:
    """One namespace reference per type, plus an optional gons_order.

    Immutable and hashable.  Build it from keyword paths, a process id
    (:meth:`of_pid`), a container (:meth:`of_container`), a named network namespace (:meth:`netns`) or gons_*
    variables (:meth:`from_env`); render it with :meth:`to_env`.
    """

    __slots__ = ("_netns", "_order", "_paths")

    _paths: tuple[str | None, ...]
    _order: str | None
    _netns: str | None

    def __init__(
        self,
        *,
        cgroup: PathArg = None,
        ipc: PathArg = None,
        mnt: PathArg = None,
        net: PathArg = None,
        pid: PathArg = None,
        time: PathArg = None,
        user: PathArg = None,
        uts: PathArg = None,
        order: str | Iterable[str] | None = None,
        netns: str | None = None,
    ) -> None:
        given = {
            "cgroup": cgroup,
            "ipc": ipc,
            "mnt": mnt,
            "net": net,
            "pid": pid,
            "time": time,
            "user": user,
            "uts": uts,
        }
        if netns is not None:
            if net is not None:
                raise ValueError(f"netns={netns!r} and net={net!r} name the same namespace: give one of them")
            if mnt is not None:
                raise ValueError(
                    f"netns={netns!r} gives the workers a private copy of this mount namespace (as ip netns exec "
                    "does) and "
                    f"cannot be combined with mnt={mnt!r}: use net={os.path.join(NETNS_DIR, netns)!r}"
                )
            given["net"] = os.path.join(NETNS_DIR, check_netns_name(netns))
        paths = tuple(_path(t, given[t]) for t in TYPES)
        if order is not None and not isinstance(order, str):
            order = ",".join(order)
        order = order or None
        if order is not None:
            _pyns_boot.plan(order, paths)  # ValueError: the hook's message
        object.__setattr__(self, "_paths", paths)
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_netns", netns)

    # -- constructors ------------------------------------------------------

    @classmethod
    def of_pid(cls, pid: int, *types: str, order: str | Iterable[str] | None = None) -> Namespaces:
        """The namespaces of a running process: /proc/PID/ns/TYPE.

        With no types: every type the process (and the kernel) has.  Raises
        ProcessLookupError when the process does not exist.
        """
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ValueError(f"pid must be a positive int, not {pid!r}")
        base = f"/proc/{pid}/ns"
        if not os.path.isdir(f"/proc/{pid}"):
            raise ProcessLookupError(3, f"no process with pid {pid}")
        for t in types:
            if t not in TYPES:
                raise ValueError("unknown namespace type {!r} (known: {})".format(t, ", ".join(TYPES)))
        wanted = types or tuple(t for t in TYPES if os.path.lexists(os.path.join(base, t)))
        return cls(order=order, **{t: os.path.join(base, t) for t in wanted})

    @classmethod
    def of_container(
        cls,
        name: str,
        *types: str,
        order: str | Iterable[str] | None = None,
        engine: str | None = None,
        containerd_namespace: str | None = None,
    ) -> Namespaces:
        """The namespaces of a running container, found by name, ID or ID prefix.

        Asks podman, docker, nerdctl, crictl, containerd (ctr), LXC (lxc-info)
        and machinectl (those installed; or only ``engine``, one of them) for
        the host PID of the container's first process, then as :meth:`of_pid`.
        containerd is asked in ``containerd_namespace`` (default:
        $CONTAINERD_NAMESPACE, else k8s.io, then default).  A name that several
        engines know picks the running container.  Raises
        pyns_boot.ContainerError (a LookupError) when no engine knows the name,
        none is installed, the container is not running or two running
        containers have the name.
        """
        from pyns_boot import _containers

        container = _containers.resolve(name, [engine] if engine else None, containerd_namespace)
        try:
            return cls.of_pid(container.pid, *types, order=order)
        except ProcessLookupError:
            raise ContainerError(
                "not-running", f"{container.describe()} exited after it was looked up (pid {container.pid})"
            ) from None

    @classmethod
    def netns(cls, name: str) -> Namespaces:
        """A named network namespace, as made by ``ip netns add NAME``, joined as ``ip netns exec NAME`` does:
        in a private mount namespace with /etc/netns/NAME/* over /etc and a /sys of the namespace
        (``Namespaces(net="/run/netns/NAME")`` joins the network namespace alone)."""
        return cls(netns=name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Namespaces:
        """From gons_* variables (os.environ by default); empty values count as unset."""
        env = os.environ if environ is None else environ
        paths = {t: env.get(VARIABLE_PREFIX + t) or None for t in TYPES}
        netns = env.get(NETNS_VARIABLE) if paths["net"] is None else None  # only without gons_net
        return cls(order=env.get(ORDER_VARIABLE) or None, netns=netns or None, **paths)

    # -- views -------------------------------------------------------------

    def to_env(self) -> dict[str, str]:
        """The gons_* variables that make the hook join these namespaces."""
        env = {VARIABLE_PREFIX + t: p for t, p in zip(TYPES, self._paths) if p is not None}
        if self._netns is not None:
            del env[VARIABLE_PREFIX + "net"]
            env[NETNS_VARIABLE] = self._netns
        if self._order is not None:
            env[ORDER_VARIABLE] = self._order
        return env

    @property
    def order(self) -> str | None:
        return self._order

    @property
    def netns_name(self) -> str | None:
        """The name of a named network namespace joined as ip netns exec does (Namespaces.netns), else None."""
        return self._netns

    @property
    def paths(self) -> dict[str, str]:
        """The requested types and their references, in table order."""
        return {t: p for t, p in zip(TYPES, self._paths) if p is not None}

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.paths)

    def get(self, ns_type: str) -> str | None:
        if ns_type not in TYPES:
            raise ValueError(f"unknown namespace type {ns_type!r}")
        return self._paths[TYPES.index(ns_type)]

    def replace(self, **changes: PathArg | str | Iterable[str]) -> Namespaces:
        """A copy with some references (or the order) changed; None removes one."""
        values: dict[str, object] = dict(self.paths)
        values["order"] = self._order
        if self._netns is not None and "net" not in changes:
            del values["net"]
            values["netns"] = self._netns
        values.update(changes)
        return type(self)(**values)  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return any(p is not None for p in self._paths)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.paths.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Namespaces):
            return NotImplemented
        return (self._paths, self._order, self._netns) == (other._paths, other._order, other._netns)

    def __hash__(self) -> int:
        return hash((self._paths, self._order, self._netns))

    def __repr__(self) -> str:
        args = ["{}={!r}".format(*item) for item in self.paths.items() if not (item[0] == "net" and self._netns)]
        if self._netns is not None:
            args.append(f"netns={self._netns!r}")
        if self._order is not None:
            args.append(f"order={self._order!r}")
        return "Namespaces({})".format(", ".join(args))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Namespaces is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Namespaces is immutable")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.paths, self._order, self._netns))


def steps(spec: Namespaces) -> tuple[tuple[str, bool], ...]:
    """The hook's steps for spec: (type, early) in the effective order (the default when spec has none)."""
    return _pyns_boot.plan(spec._order, spec._paths)


def _rebuild(paths: dict[str, str], order: str | None, netns: str | None = None) -> Namespaces:
    if netns is not None:
        paths = {t: p for t, p in paths.items() if t != "net"}
    return Namespaces(order=order, netns=netns, **paths)
