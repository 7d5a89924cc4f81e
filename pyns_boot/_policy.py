"""The failure policy (PYNS_BOOT_ON_ERROR) and the one writer of the start-up's messages.

The one home of the policy: its values and default, the exit status, the
complaint about a value that is not understood, the exception for the
pyns-boot command, and the bounded write to stderr.  Start-up code of the
rare paths (a failure, a mistyped value, the Python hook): it imports
os and sys (loaded by then) and pyns_boot._hook_record, where it records
the policy it applied.

Callers: pyns_boot.hook (the failures of the Python start-up path, and
report_failure(), which the C helper's run() calls on a failed join), the
C helper's run() after a successful join when the value is not understood
(note()), pyns_boot._status (status().policy_error), pyns_boot._doctor and
pyns_boot._hints.

The C helper keeps what its success path needs without importing anything:
it tells exit, warn and ignore apart (status().policy) and calls note() only
for another value.  Its last resort, when the pyns_boot package cannot be
imported after a failed join, writes the join's message and exits with
EXIT_STATUS unless the value is exactly warn or ignore (docs/hardening.md).
tests/test_policy.py runs the policy on both start-up paths and checks that
they agree.
"""

import os
import sys

VARIABLE = "PYNS_BOOT_ON_ERROR"
POLICIES = ("exit", "warn", "ignore")
DEFAULT = "exit"
CHOICES = ", ".join(POLICIES[:-1]) + " or " + POLICIES[-1]  # "exit, warn or ignore"
EXIT_STATUS = 125
# A message waits at most this long for room on stderr (the C helper's
# STDERR_TIMEOUT_MS): a full pipe nobody reads must not hang the start.
STDERR_TIMEOUT = 1.0
PIPE_BUF = 4096
CARRIES_ON = "pyns_boot: the pyns-boot command carries on (as with %s=warn) to report this" % VARIABLE


def resolve(value: str) -> str:
    """The policy a value of the variable means: any value not understood acts as the default."""
    return value if value in POLICIES else DEFAULT


def complaint(value: str) -> "str | None":
    """The one-line complaint about a value, or None when it is understood (unset or empty: the default)."""
    if value in POLICIES or value == "":
        return None
    return 'pyns_boot: %s="%s" is not understood (expected %s); acting as %s' % (VARIABLE, value, CHOICES, DEFAULT)


def offers_warn() -> bool:
    """True when "set PYNS_BOOT_ON_ERROR=warn" is a way out worth naming: the policy in force is exit."""
    return resolve(os.environ.get(VARIABLE, "")) == DEFAULT


def note() -> None:
    """After a successful join: record the policy, and say it when its value is not understood."""
    value = os.environ.get(VARIABLE, "")
    _record(resolve(value))
    text = complaint(value)
    if text is not None:
        write_stderr(text + "\n")


def apply(message: str) -> None:
    """Report a failure as the policy asks: exit (the default), warn, ignore.

    The pyns-boot command itself never exits here: it carries on (as with
    warn) so that it can report the failure and the way out."""
    value = os.environ.get(VARIABLE, "")
    policy = resolve(value)
    if policy == "ignore":
        _record(policy)
        return
    text = complaint(value)
    if text is not None:
        message += "\n" + text
    if policy == "exit" and not program_started():
        arguments = command_arguments()
        if arguments is not None:
            policy = "warn"
            message += "\n" + CARRIES_ON
            if is_clearing(arguments):
                _record(policy)  # the way out itself: its output is all the user asked for
                return
    _record(policy)
    write_stderr(message + "\n")
    if policy == "exit":
        os._exit(EXIT_STATUS)


def _record(policy: str) -> None:
    from pyns_boot import _hook_record

    _hook_record.policy = policy


def program_started() -> bool:
    """pyns-boot run has let the hook act for the program it runs in its own process (a failure is the
    program's: the policy applies as at a python start)."""
    return bool(getattr(sys.modules.get("_pyns_boot"), "program_started", False))


def is_clearing(arguments: "list[bytes]") -> bool:
    """True for `pyns-boot env --clear`, the way out of a stale shell (pyns_boot._hints.clear_command)."""
    return arguments[:1] == [b"env"] and b"--clear" in arguments[1:]


def command_arguments() -> "list[bytes] | None":
    """The pyns-boot command's own arguments (["env", "--clear"]), or None in any other program: its
    script, or python -m pyns_boot."""
    kind, value, rest = command_line_program()
    if kind == "-m" and value in (b"pyns_boot", b"pyns_boot.cli"):
        return rest
    if kind == "script" and os.path.basename(value) == b"pyns-boot":
        return rest
    return None


def command_line_program() -> "tuple[str, bytes, list[bytes]]":
    """What this interpreter's command line runs and its arguments: ("-c", CODE, ARGS), ("-m", MODULE,
    ARGS), ("script", PATH as given, ARGS), or ("", b"", []) for stdin, the prompt or an unreadable
    command line.

    sys.argv does not exist yet while site.py runs, so this reads
    /proc/self/cmdline: the interpreter's options, then the script or -m."""
    try:
        with open("/proc/self/cmdline", "rb") as file:
            arguments = file.read().split(b"\0")[1:]
    except OSError:
        return "", b"", []
    if arguments[-1:] == [b""]:
        del arguments[-1]  # the terminating NUL
    with_value = (b"-W", b"-X", b"--check-hash-based-pycs")
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if argument in (b"-m", b"-c") or (argument.startswith((b"-m", b"-c")) and argument[:2] != b"--"):
            rest = index + (1 if argument[2:] else 2)
            value = argument[2:] or (arguments[index + 1] if index + 1 < len(arguments) else b"")
            return argument[:2].decode(), value, arguments[rest:]
        if argument == b"--" or not argument.startswith(b"-") or argument == b"-":
            if argument == b"--":
                index += 1
            script = arguments[index] if index < len(arguments) else b""
            return ("script", script, arguments[index + 1 :]) if script not in (b"", b"-") else ("", b"", [])
        index += 2 if argument in with_value else 1
    return "", b"", []


def write_stderr(text: str) -> bool:
    """Write text to fd 2 as the bytes it came from (a non-UTF-8 path appears
    as given), after whatever sys.stderr holds buffered; bounded in time.
    The C helper's write_stderr when it is loaded, else _write_bounded.
    True when all of it got out."""
    try:
        sys.stderr.flush()
    except Exception:  # no usable sys.stderr this early
        pass
    data = os.fsencode(text)
    # getattr: a stale helper left by an older install (hook.stale_helper) has no write_stderr
    write = getattr(sys.modules.get("_pyns_boot"), "write_stderr", None)
    if write is not None:
        return bool(write(data))
    return _write_bounded(data)


def _write_bounded(data: bytes) -> bool:
    """The C helper's write_bounded, for when it did not load (no switch
    happened then, so select imports from the usual place): wait for room,
    write at most PIPE_BUF bytes at a time, give up after STDERR_TIMEOUT."""
    import select
    import time

    deadline = time.monotonic() + STDERR_TIMEOUT
    poller = select.poll()
    poller.register(2, select.POLLOUT)
    try:
        while data:
            left = deadline - time.monotonic()
            events = poller.poll(max(0, int(left * 1000)))
            if not events or not events[0][1] & select.POLLOUT:
                return False
            try:
                written = os.write(2, data[:PIPE_BUF])
            except BlockingIOError:
                continue
            if written <= 0:
                return False
            data = data[written:]
    except OSError:
        return False
    return True
