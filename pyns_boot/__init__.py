"""pyns_boot: every Python process of an environment starts inside the Linux
namespaces that the gons_* environment variables name.

Usage, in the shell (the hook joins while the interpreter starts)::

    gons_net=/run/netns/blue gons_uts=/proc/4242/ns/uts python app.py
    pyns-boot run --netns blue -c 'import socket; print(socket.if_nameindex())'

and from code::

    import socket
    import pyns_boot

    status = pyns_boot.status()        # what the start-up hook did here
    if not status.ok:
        print(status.error, status.hint)
    pyns_boot.check()                  # or raise pyns_boot.NamespaceError

    spec = pyns_boot.Namespaces.netns("blue")          # as ip netns exec blue
    print(pyns_boot.call_in(spec, socket.if_nameindex, timeout=10))

Variables: gons_net, gons_uts, gons_ipc, gons_mnt, gons_pid, gons_user,
gons_cgroup, gons_time (a namespace path each), gons_netns (a name under
/run/netns), gons_order, PYNS_BOOT_ON_ERROR (exit, warn, ignore).  See
README.md and docs/ in the project.

The common start-up imports nothing of this package: pyns_boot.pth calls the
C helper's _pyns_boot.run(), which joins and applies the policy by itself.
The rare paths import it (pyns_boot.hook, or pyns_boot._policy): a failed
join, a gons_mnt join, gons_netns and the PYNS_BOOT_WD/SETGID/SETUID steps,
a C helper that does not load, a PYNS_BOOT_ON_ERROR value not understood.
So the public names below load lazily: only code that uses them pays for
them.
"""

__version__ = "0.1.0"

__all__ = [
    "Container",
    "ContainerError",
    "NamespaceError",
    "NamespaceExecutor",
    "NamespaceState",
    "Namespaces",
    "RemoteError",
    "RemoteTraceback",
    "Status",
    "WorkerDied",
    "call_in",
    "check",
    "find_container",
    "status",
]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyns_boot._call_in import call_in
    from pyns_boot._containers import Container, find_container
    from pyns_boot._errors import ContainerError, NamespaceError, RemoteError, RemoteTraceback, WorkerDied
    from pyns_boot._executor import NamespaceExecutor
    from pyns_boot._namespaces import Namespaces
    from pyns_boot._status import NamespaceState, Status, check, status

_LAZY_MODULES = {
    "Container": "pyns_boot._containers",
    "ContainerError": "pyns_boot._errors",
    "NamespaceExecutor": "pyns_boot._executor",
    "RemoteError": "pyns_boot._errors",
    "RemoteTraceback": "pyns_boot._errors",
    "WorkerDied": "pyns_boot._errors",
    "call_in": "pyns_boot._call_in",
    "Namespaces": "pyns_boot._namespaces",
    "NamespaceError": "pyns_boot._errors",
    "NamespaceState": "pyns_boot._status",
    "Status": "pyns_boot._status",
    "check": "pyns_boot._status",
    "find_container": "pyns_boot._containers",
    "status": "pyns_boot._status",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY_MODULES.get(name)
    if module_name is None:
        raise AttributeError("module 'pyns_boot' has no attribute %r" % name)
    value = getattr(__import__(module_name, fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> "list[str]":
    return sorted(set(globals()) | set(__all__))
