"""The start-up hook's steps after the joins that nsenter and ip netns exec users expect.

The C helper reads and checks the variables before the joins
(pyns_boot/_variables.c: gons_netns becomes the net join's path, !DIR is
opened then, the ids are parsed), removes them with the gons_* ones and,
after the joins, makes the view of ip netns exec for gons_netns
(pyns_boot/_netns_view.c); pyns_boot.hook.after_joins() hands the rest to
take() after a successful join:

    gons_netns=NAME        join /run/netns/NAME with the view of `ip netns exec NAME`
    PYNS_BOOT_WD=DIR       working directory after the joins (nsenter -w): DIR is
                           resolved after the joins, !DIR before them (kept open)
    PYNS_BOOT_SETGID=GID   group id after the joins (nsenter -G)
    PYNS_BOOT_SETUID=UID   user id after the joins (nsenter -S)
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _pyns_boot import Steps

NETNS_VARIABLE = "gons_netns"
WD_VARIABLE = "PYNS_BOOT_WD"
SETGID_VARIABLE = "PYNS_BOOT_SETGID"
SETUID_VARIABLE = "PYNS_BOOT_SETUID"
# _pyns_boot.AFTER_JOINS_VARIABLES (tests/test_startup_files.py checks this copy against it).
VARIABLES = (NETNS_VARIABLE, WD_VARIABLE, SETGID_VARIABLE, SETUID_VARIABLE)
NETNS_DIR = "/run/netns"


def name_instead(value: str, by_name: str, by_path: str) -> str:
    """What to give instead of a netns "name" that is a path: the name of a /run/netns/NAME path
    (by_name % NAME), else the path itself where paths go (by_path % value).  The rule is the C helper's
    (netns_name_of), which words the hook's own message; this is the pyns-boot command's."""
    import _pyns_boot

    name = _pyns_boot.netns_name_of(value)
    if name is not None:
        return by_name % name
    if value.startswith("/"):
        return by_path % value
    return "a name is a file name in %s (ip netns list)" % NETNS_DIR


def take(steps: "Steps") -> "str | None":
    """After the joins (and the view of ip netns exec, which C made): as nsenter, the working directory, the
    group, the user.
    None, or the message of the step that failed (the caller applies the policy)."""
    try:
        return _take(steps)
    finally:
        if steps["wd_fd"] >= 0:
            os.close(steps["wd_fd"])


def _take(steps: "Steps") -> "str | None":
    wd, gid, uid = steps["wd"], steps["gid"], steps["uid"]
    if wd is not None:
        try:
            if steps["wd_fd"] >= 0:
                os.fchdir(steps["wd_fd"])
            else:
                os.chdir(wd)
        except OSError as error:
            return 'pyns_boot: cannot change to the working directory %s="%s" after the joins: %s' % (
                WD_VARIABLE,
                wd,
                error.strerror,
            )
    if gid is not None:
        try:
            os.setgroups([])
        except OSError:
            pass  # not allowed in a user namespace whose setgroups is "deny": nsenter goes on too
        try:
            os.setgid(gid)
        except OSError as error:
            return "pyns_boot: cannot set the group id to %d (%s): %s" % (gid, SETGID_VARIABLE, error.strerror)
    if uid is not None:
        try:
            os.setuid(uid)
        except OSError as error:
            return "pyns_boot: cannot set the user id to %d (%s): %s" % (uid, SETUID_VARIABLE, error.strerror)
    return None
