"""One short hint for a failed namespace reference: what the message alone cannot say.

The one home of these hints, for the start-up hook (C and Python paths),
the command line and call_in.  Failure paths only: it may look at the
system (/run/netns, /proc, the reference's owning user namespace).
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys

from pyns_boot import _policy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

    from _pyns_boot import Report

NETNS_DIR = "/run/netns"
NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1)
CAP_SYS_ADMIN = 21
CAP_SYS_CHROOT = 18
HINT_PREFIX = "pyns_boot: hint: "
MAX_LISTED = 8
#: How the caller named the reference: a variable (the hook), an option (the CLI) or Namespaces (call_in).
ENVIRONMENT, COMMAND, API = "environment", "command", "api"
#: The variable that names a network namespace by its name (pyns_boot._after_joins turns it into gons_net).
NETNS_VARIABLE = "gons_netns"
#: The characters a word of a shell command may hold unquoted.
_SHELL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def hint(
    ns_type: str | None,
    path: str | None,
    error: int | None,
    joining: bool,
    context: str = ENVIRONMENT,
    names: Mapping[str, str] | None = None,
) -> str | None:
    """The hint for a failure on the reference ``path`` of ``ns_type``, or None.

    joining: the error came from setns() (else from opening the reference).
    context: ENVIRONMENT adds the way out of a stale variable.
    names: how the caller spelled what it was given, where that differs from the context's
    own names (see name()): the command's options ("user": "-U/--user"), or "net":
    "gons_netns" when gons_netns named the namespace.
    """
    if ns_type is None or not path or not error:
        return None
    names = names or {}
    if error in (errno.ENOENT, errno.ESRCH, errno.ENOTDIR):
        return _missing(ns_type, path, context, names)
    if error in (errno.EPERM, errno.EACCES):
        return _access(ns_type, path, joining, context, names)
    return None


def for_report(report: Report, context: str = ENVIRONMENT, netns: str | None = None) -> str | None:
    """The hint for a failed report of the C helper (report(), apply()), or None.

    netns: the name gons_netns gave (the report then names gons_net, its path)."""
    failed, message = report["failed"], report["message"]
    path = report["namespaces"][failed]["path"] if failed in report["namespaces"] else None
    joining = isinstance(message, str) and message.startswith("pyns_boot: cannot join ")
    names = {"net": NETNS_VARIABLE} if netns is not None and context == ENVIRONMENT else None
    return hint(failed, path, report["errno"], joining, context, names)


def message_as_given(report: Report, netns: str | None) -> str | None:
    """The report's message, naming gons_netns and its value when gons_netns named the namespace that failed."""
    message, path = report["message"], "%s/%s" % (NETNS_DIR, netns)
    if netns is None or message is None or report["failed"] != "net":
        return message
    return renamed(message, "gons_net", path, NETNS_VARIABLE, '"%s" (%s)' % (netns, path))


def renamed(message: str, variable: str, path: str, given: str, value: str) -> str:
    """message with the C helper's 'VARIABLE [using ]reference "PATH"' said as the user gave it:
    'GIVEN [using ]reference VALUE'."""
    for words in ("reference", "using reference"):
        said = '%s %s "%s"' % (variable, words, path)
        if said in message:
            return message.replace(said, "%s %s %s" % (given, words, value), 1)
    return message


def name(key: str, context: str, names: Mapping[str, str] | None = None) -> str:
    """How the caller names key (a namespace type, "order" or "netns"): gons_user, --user, user."""
    if names and key in names:
        return names[key]
    return {ENVIRONMENT: "gons_%s", COMMAND: "--%s", API: "%s"}[context] % key


def way_out(variable: str) -> str:
    """How to start again when a steering variable cannot be honoured: clear them all (a stale shell sets
    several: pyns-boot env), or, where the policy is exit, start anyway."""
    text = "%s unsets %s and every other pyns_boot variable" % (clear_command(), variable)
    if _policy.offers_warn():
        text += ", or set %s=warn to start anyway" % _policy.VARIABLE
    return text


def clear_command() -> str:
    """The one command that clears every variable pyns-boot env sets, with this environment's pyns-boot:
    by its name when PATH finds that one, else by its path, else as python -m pyns_boot."""
    executable = sys.executable or ""
    own = os.path.join(os.path.dirname(executable), "pyns-boot")
    found = _on_path("pyns-boot")
    if found is not None and (not os.path.exists(own) or _same_file(found, own)):
        command = "pyns-boot"
    elif os.path.exists(own):
        command = _shell_word(own)
    else:
        command = "%s -m pyns_boot" % _shell_word(executable or "python3")
    return 'eval "$(%s env --clear)"' % command


def _on_path(program: str) -> str | None:
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _shell_word(word: str) -> str:
    if word and all(c in _SHELL_SAFE for c in word):
        return word
    return "'%s'" % word.replace("'", "'\\''")


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


def _option(ns_type: str, context: str, names: Mapping[str, str]) -> str:
    return name(ns_type, context, names) + (" " if context == COMMAND else "=")


def _netns_form(netns: str, context: str) -> str:
    return {
        ENVIRONMENT: "gons_net=%s/%s (or %s=%s)" % (NETNS_DIR, netns, NETNS_VARIABLE, netns),
        COMMAND: "--netns %s" % netns,
        API: "Namespaces.netns(%r)" % netns,
    }[context]


def _missing(ns_type: str, path: str, context: str, names: Mapping[str, str]) -> str | None:
    variable = name(ns_type, context, names)
    pid = exited_process(path)
    if pid is not None:
        text = "process %d has exited" % pid
        return text + (" (a stale %s?): %s" % (variable, way_out(variable)) if context == ENVIRONMENT else "")
    netns = None
    if "/" not in path:
        netns = path
    elif os.path.dirname(path) == NETNS_DIR:
        netns = os.path.basename(path)
    if ns_type == "net" and netns:
        if "/" not in path and os.path.exists(os.path.join(NETNS_DIR, netns)):
            return "a reference is a path: the network namespace %r is %s/%s: %s" % (
                netns,
                NETNS_DIR,
                netns,
                _netns_form(netns, context),
            )
        existing = netns_names()
        listed = ", ".join(existing[:MAX_LISTED]) if existing else "none (make one with: ip netns add %s)" % netns
        if len(existing) > MAX_LISTED:
            listed += " and %d more (ip netns list)" % (len(existing) - MAX_LISTED)
        text = "no network namespace named %r; existing: %s" % (netns, listed)
        return text + ("; " + way_out(variable) if context == ENVIRONMENT else "")
    if not path.startswith("/"):
        return "a reference is a path such as /proc/PID/ns/%s or a bind-mounted namespace file: %s/proc/PID/ns/%s" % (
            ns_type,
            _option(ns_type, context, names),
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


def _access(ns_type: str, path: str, joining: bool, context: str, names: Mapping[str, str]) -> str | None:
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
    user = _option("user", context, names) + ("..." if context != COMMAND else "PATH")
    if ns_type != "user":
        owner = _owner(path)
        own = os.stat("/proc/self/ns/user").st_ino
        if owner is not None and not owner[0]:
            order = _option("order", context, names)
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
