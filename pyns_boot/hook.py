"""The start-up hook: runs once per process, before any user code.

``pyns_boot.pth`` (and, from Python 3.15 on, ``pyns_boot.start``) calls
:func:`run` while site.py initialises the interpreter.  It hands the
gons_* variables to the C helper, removes them from the environment and
applies the failure policy.  Everything here is on the start-up path of
every Python process of the environment: keep imports out of it.
"""

import os
import sys

POLICY_VARIABLE = "PYNS_BOOT_ON_ERROR"
POLICIES = ("exit", "warn", "ignore")
EXIT_STATUS = 125

# The same names as the guard in pyns_boot.pth; tests check both against
# the C helper's table (pyns_boot._setns.VARIABLES and ORDER_VARIABLE).
TRIGGER_VARIABLES = (
    "gons_cgroup",
    "gons_ipc",
    "gons_mnt",
    "gons_net",
    "gons_pid",
    "gons_time",
    "gons_user",
    "gons_uts",
    "gons_order",
)

# What this process's hook did, for pyns_boot.status().
ran = False
load_error = None  # type: str | None
policy = None  # type: str | None


def run() -> None:
    """Join the namespaces the gons_* variables name; act once per process."""
    global ran, load_error
    if ran or os.environ.keys().isdisjoint(TRIGGER_VARIABLES):
        return
    ran = True
    try:
        from pyns_boot import _setns
    except ImportError as error:
        load_error = "pyns_boot: cannot load the C helper pyns_boot._setns: %s" % error
        apply_policy(load_error)
        return
    report = _setns.boot()
    if report is None:  # another interpreter of this process acted already
        return
    for name in TRIGGER_VARIABLES:
        os.environ.pop(name, None)
    if not report[0]:
        apply_policy(str(report[1]))


def apply_policy(message: str) -> None:
    """Report a failure as PYNS_BOOT_ON_ERROR asks: exit (default), warn, ignore."""
    global policy
    value = os.environ.get(POLICY_VARIABLE, "")
    policy = value if value in POLICIES else "exit"
    if policy == "ignore":
        return
    if value not in POLICIES and value != "":
        message += '\npyns_boot: %s="%s" is not understood (expected exit, warn or ignore); acting as exit' % (
            POLICY_VARIABLE,
            value,
        )
    write_stderr(message + "\n")
    if policy == "exit":
        os._exit(EXIT_STATUS)


def write_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except Exception:  # no usable sys.stderr this early: fall back to fd 2
        try:
            os.write(2, text.encode("utf-8", "backslashreplace"))
        except OSError:
            pass
