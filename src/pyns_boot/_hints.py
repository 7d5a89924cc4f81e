"""One short hint for a failed namespace reference: what the message alone cannot say.

The one home of these hints, for the start-up hook (C and Python paths),
the command line and call_in.  Failure paths only: it may look at the
system (/run/netns, /proc, the reference's owning user namespace).
"""

from __future__ import annotations

import errno
import fcntl
import os

from pyns_boot._policy import VARIABLE as POLICY_VARIABLE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _pyns_boot import Report

NETNS_DIR = "/run/netns"
NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1)
CAP_SYS_ADMIN = 21
CAP_SYS_CHROOT = 18
HINT_PREFIX = "pyns_boot: hint: "
MAX_LISTED = 8
#: How the caller named the reference: a variable (the hook), an option (the CLI) or Namespaces (call_in).
ENVIRONMENT, COMMAND, API = "environment", "command", "api"


def hint(
    ns_type: str | None, path: str | None, error: int | None, joining: bool, context: str = ENVIRONMENT
) -> str | None:
    """The hint for a failure on the reference ``path`` of ``ns_type``, or None.

    joining: the error came from setns() (else from opening the reference).
    context: ENVIRONMENT adds the way out of a stale variable.
    """
    if ns_type is None or not path or not error:
        return None
    if error in (errno.ENOENT, errno.ESRCH, errno.ENOTDIR):
        return _missing(ns_type, path, context)
    if error in (errno.EPERM, errno.EACCES):
        return _access(ns_type, path, joining, context)
    return None


def for_report(report: Report, context: str = ENVIRONMENT) -> str | None:
    """The hint for a failed report of the C helper (boot(), apply()), or None."""
    failed, message = report["failed"], report["message"]
    path = report["namespaces"][failed]["path"] if failed in report["namespaces"] else None
    joining = isinstance(message, str) and message.startswith("pyns_boot: cannot join ")
    return hint(failed, path, report["errno"], joining, context)


def way_out(ns_type: str) -> str:
    """How to start again when a gons_* variable cannot be honoured."""
    return "unset gons_%s, or set %s=warn to start anyway" % (ns_type, POLICY_VARIABLE)


def exited_process(path: str) -> int | None:
    """The pid of a /proc/PID/... reference whose process no longer exists."""
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "" and parts[1] == "proc" and parts[2].isdigit():
        pid = int(parts[2])
        try:
            with open("/proc/%d/stat" % pid, "rb") as file:
                state = file.read().rpartition(b")")[2].split()[:1]
        except OSError:
            return pid
        if state in ([b"Z"], [b"X"]):  # exited, not yet reaped: no namespaces left
            return pid
    return None


def netns_names() -> list[str]:
    """The named network namespaces (ip netns list), sorted."""
    try:
        return sorted(name for name in os.listdir(NETNS_DIR) if not name.startswith("."))
    except OSError:
        return []


def _option(ns_type: str, context: str) -> str:
    return {ENVIRONMENT: "gons_%s=" % ns_type, COMMAND: "--%s " % ns_type, API: "%s=" % ns_type}[context]


def _netns_form(name: str, context: str) -> str:
    return {
        ENVIRONMENT: "gons_net=%s/%s (or gons_netns=%s)" % (NETNS_DIR, name, name),
        COMMAND: "--netns %s" % name,
        API: "Namespaces.netns(%r)" % name,
    }[context]


def _missing(ns_type: str, path: str, context: str) -> str | None:
    pid = exited_process(path)
    if pid is not None:
        text = "process %d has exited" % pid
        return text + (" (a stale variable?): " + way_out(ns_type) if context == ENVIRONMENT else "")
    name = None
    if "/" not in path:
        name = path
    elif os.path.dirname(path) == NETNS_DIR:
        name = os.path.basename(path)
    if ns_type == "net" and name:
        if "/" not in path and os.path.exists(os.path.join(NETNS_DIR, name)):
            return "a reference is a path: the network namespace %r is %s/%s: %s" % (
                name,
                NETNS_DIR,
                name,
                _netns_form(name, context),
            )
        names = netns_names()
        listed = ", ".join(names[:MAX_LISTED]) if names else "none (make one with: ip netns add %s)" % name
        if len(names) > MAX_LISTED:
            listed += " and %d more (ip netns list)" % (len(names) - MAX_LISTED)
        text = "no network namespace named %r; existing: %s" % (name, listed)
        return text + ("; " + way_out(ns_type) if context == ENVIRONMENT else "")
    if not path.startswith("/"):
        return "a reference is a path such as /proc/PID/ns/%s or a bind-mounted namespace file: %s/proc/PID/ns/%s" % (
            ns_type,
            _option(ns_type, context),
            ns_type,
        )
    return None


def _owner(path: str) -> tuple[int, int] | None:
    """(owner's inode, 1 if it is this process's user namespace) or None when it cannot be told."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
    except OSError as error:
        # EPERM: the owner lies outside this process's user namespace tree.
        return (0, 0) if error.errno == errno.EPERM else None
    finally:
        os.close(fd)
    try:
        inode = os.fstat(owner).st_ino
    finally:
        os.close(owner)
    own = os.stat("/proc/self/ns/user").st_ino
    return inode, int(inode == own)


def capabilities() -> int:
    """This process's effective capabilities (CapEff), -1 when they cannot be read."""
    try:
        with open("/proc/self/status") as file:
            for text in file:
                if text.startswith("CapEff:"):
                    return int(text.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return -1


def _needed(ns_type: str) -> str:
    if ns_type == "mnt":
        return (
            "CAP_SYS_ADMIN and CAP_SYS_CHROOT in this process's user namespace and CAP_SYS_ADMIN in the one owning it"
        )
    if ns_type == "user":
        return "CAP_SYS_ADMIN in the target user namespace (only a descendant of this process's can be joined)"
    return "CAP_SYS_ADMIN in this process's user namespace and in the one owning it"


def _access(ns_type: str, path: str, joining: bool, context: str) -> str | None:
    if not joining:
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit():
            if os.geteuid() == 0:
                return (
                    "even root needs ptrace access to process %s: it runs in a user namespace this one does not "
                    "own, or a security module (Yama, SELinux, AppArmor) refuses it" % parts[2]
                )
            return (
                "reading another user's namespaces needs ptrace access to process %s: run as its owner or root"
                % parts[2]
            )
        return None
    user = _option("user", context) + ("..." if context != COMMAND else "PATH (-U)")
    if ns_type != "user":
        owner = _owner(path)
        own = os.stat("/proc/self/ns/user").st_ino
        if owner is not None and not owner[0]:
            order = {ENVIRONMENT: "gons_order=", COMMAND: "--order ", API: "order="}[context]
            return (
                "that %s namespace belongs to a user namespace above this process's user:[%d], where it has no "
                "CAP_SYS_ADMIN: join it before the user namespace (%s%s,user)" % (ns_type, own, order, ns_type)
            )
        if owner is not None and not owner[1]:
            return (
                "that %s namespace belongs to user namespace user:[%d]; this process is in user:[%d] and has no "
                "CAP_SYS_ADMIN there: join the user namespace that owns it first (%s)" % (ns_type, owner[0], own, user)
            )
    effective = capabilities()
    missing = [
        name
        for bit, name in ((CAP_SYS_ADMIN, "CAP_SYS_ADMIN"), (CAP_SYS_CHROOT, "CAP_SYS_CHROOT"))
        if effective >= 0 and not effective >> bit & 1 and (name == "CAP_SYS_ADMIN" or ns_type == "mnt")
    ]
    if missing or os.geteuid() != 0:
        return "joining a %s namespace needs %s; this process runs as uid %d%s: run it as root" % (
            ns_type,
            _needed(ns_type),
            os.geteuid(),
            " without %s" % " and ".join(missing) if missing else "",
        )
    return None
