"""The start-up hook's steps around the joins that nsenter and ip netns exec users expect.

Loaded by pyns_boot.hook only when one of these variables is set (all are
removed from the environment once acted on, like the gons_* variables):

    gons_netns=NAME        join /run/netns/NAME with the view of `ip netns exec NAME`
    PYNS_BOOT_WD=DIR       working directory after the joins (nsenter -w): DIR is
                           resolved after the joins, !DIR before them (kept open)
    PYNS_BOOT_SETGID=GID   group id after the joins (nsenter -G)
    PYNS_BOOT_SETUID=UID   user id after the joins (nsenter -S)

prepare() runs before the joins, finish() after a successful join; both
return an error message for the failure policy, or None.
"""

import os

NETNS_VARIABLE = "gons_netns"
WD_VARIABLE = "PYNS_BOOT_WD"
SETGID_VARIABLE = "PYNS_BOOT_SETGID"
SETUID_VARIABLE = "PYNS_BOOT_SETUID"
VARIABLES = (NETNS_VARIABLE, WD_VARIABLE, SETGID_VARIABLE, SETUID_VARIABLE)
NETNS_DIR = "/run/netns"


class Plan:
    """What the variables ask for, read before the joins."""

    def __init__(self) -> None:
        self.netns: "str | None" = None
        self.wd: "str | None" = None
        self.wd_fd = -1
        self.gid: "int | None" = None
        self.uid: "int | None" = None


def prepare(plan: Plan) -> "str | None":
    """Read and check the variables; turn gons_netns into gons_net; open an early working directory."""
    env = os.environ
    netns = env.get(NETNS_VARIABLE) or None
    if netns is not None:
        if "/" in netns or netns in (".", ".."):
            return 'pyns_boot: gons_netns="%s" is not a network namespace name (as in: ip netns add NAME): %s' % (
                netns,
                name_instead(netns, "gons_netns=%s", "gons_net=%s"),
            )
        if env.get("gons_net"):
            return 'pyns_boot: gons_netns="%s" and gons_net="%s" name the same namespace: set one of them' % (
                netns,
                env["gons_net"],
            )
        if env.get("gons_mnt"):
            return (
                'pyns_boot: gons_netns="%s" makes a private copy of this mount namespace (as ip netns exec does) and '
                'cannot be combined with gons_mnt="%s": use gons_net=%s/%s' % (netns, env["gons_mnt"], NETNS_DIR, netns)
            )
        order = env.get("gons_order")
        if order and "net" not in order.replace("!", " ").replace(",", " ").split():
            return 'pyns_boot: gons_netns is set to "%s", but net is not listed in gons_order "%s"' % (netns, order)
        env["gons_net"] = "%s/%s" % (NETNS_DIR, netns)  # also in the C environment, where boot() reads it
        plan.netns = netns
    for variable in (SETGID_VARIABLE, SETUID_VARIABLE):
        value = env.get(variable) or None
        if value is None:
            continue
        if not value.isdigit() or int(value) > 0xFFFFFFFE:
            return 'pyns_boot: %s="%s" is not understood (expected a numeric id)' % (variable, value)
        setattr(plan, "gid" if variable == SETGID_VARIABLE else "uid", int(value))
    wd = env.get(WD_VARIABLE) or None
    if wd is not None and wd.startswith("!"):
        try:
            plan.wd_fd = os.open(wd[1:], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            return 'pyns_boot: cannot open %s="%s" before the joins: %s' % (WD_VARIABLE, wd, error.strerror)
    plan.wd = wd
    return None


def name_instead(value: str, by_name: str, by_path: str) -> str:
    """What to give instead of a netns "name" that is a path: the name of a /run/netns/NAME path
    (by_name % NAME), else the path itself where paths go (by_path % value): the hook's and the command's."""
    head, _, tail = value.rstrip("/").rpartition("/")
    if os.path.normpath(head or "/") == NETNS_DIR and tail not in ("", ".", ".."):
        return by_name % tail
    if value.startswith("/"):
        return by_path % value
    return "a name is a file name in %s (ip netns list)" % NETNS_DIR


def remove_variables() -> None:
    for name in VARIABLES:
        os.environ.pop(name, None)


def discard(plan: Plan) -> None:
    """The joins failed: nothing to finish; close what prepare() opened."""
    if plan.wd_fd >= 0:
        os.close(plan.wd_fd)
        plan.wd_fd = -1


def finish(plan: Plan, helper: object) -> "str | None":
    """After the joins: the ip netns exec view, then as nsenter: the working directory, the group, the user."""
    try:
        return _steps(plan, helper)
    finally:
        discard(plan)


def _steps(plan: Plan, helper: object) -> "str | None":
    if plan.netns is not None:
        try:
            failures = helper.netns_view(plan.netns)  # type: ignore[attr-defined]
        except OSError as error:
            return str(error.strerror)
        for failure in failures:
            os.write(2, os.fsencode("pyns_boot: gons_netns=%s: %s\n" % (plan.netns, failure)))
    if plan.wd is not None:
        try:
            if plan.wd_fd >= 0:
                os.fchdir(plan.wd_fd)
            else:
                os.chdir(plan.wd)
        except OSError as error:
            return 'pyns_boot: cannot change to the working directory %s="%s" after the joins: %s' % (
                WD_VARIABLE,
                plan.wd,
                error.strerror,
            )
    if plan.gid is not None:
        try:
            os.setgroups([])
        except OSError:
            pass  # not allowed in a user namespace whose setgroups is "deny": nsenter goes on too
        try:
            os.setgid(plan.gid)
        except OSError as error:
            return "pyns_boot: cannot set the group id to %d (%s): %s" % (plan.gid, SETGID_VARIABLE, error.strerror)
    if plan.uid is not None:
        try:
            os.setuid(plan.uid)
        except OSError as error:
            return "pyns_boot: cannot set the user id to %d (%s): %s" % (plan.uid, SETUID_VARIABLE, error.strerror)
    return None
