"""pyns-boot: the command line (also ``python -m pyns_boot``).

Exit status: 0 ok, 1 the command's subject failed (no such process, not a
namespace, permission denied, the hook cannot work), 2 usage error.  ``run``
replaces itself with the program, whose status passes through (125 when the
start-up hook refuses to start it).  Errors go to stderr, data to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import textwrap

from pyns_boot import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

    from pyns_boot._namespaces import Namespaces

PROG = "pyns-boot"
#: The value of a type option given without a PATH: the namespace of the -t process.
FROM_TARGET = "\0target"
# nsenter's short options; -m is the mount namespace in env (as nsenter) but
# the module in run (as python), where the mount namespace is --mnt/--mount.
TYPE_OPTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("cgroup", ("-C", "--cgroup"), "the cgroup namespace"),
    ("ipc", ("-i", "--ipc"), "the IPC namespace"),
    ("mnt", ("-m", "--mnt", "--mount"), "the mount namespace"),
    ("net", ("-n", "--net"), "the network namespace"),
    ("pid", ("-p", "--pid"), "the PID namespace of the program's children (setns moves only those)"),
    ("time", ("-T", "--time"), "the time namespace"),
    ("user", ("-U", "--user"), "the user namespace"),
    ("uts", ("-u", "--uts"), "the UTS namespace (hostname)"),
)

DESCRIPTION = """\
Start Python programs of this environment inside Linux namespaces, like
nsenter(1) does for any program, through pyns_boot's start-up hook and its
gons_* environment variables.  The namespaces are joined by the new
interpreter itself, before any user code runs."""

EPILOG = """\
examples:
  pyns-boot run -t 4242 -n -u -- app.py --port 80     # nsenter -t 4242 -n -u python app.py --port 80
  pyns-boot run --netns blue -m http.server 8000      # nsenter --net=/run/netns/blue python -m http.server 8000
  eval "$(pyns-boot env -t 4242 --net)"               # this shell's pythons then start in that netns
  pyns-boot env -t 4242 --all --json
  pyns-boot status                                    # what the hook did in this process
  pyns-boot doctor                                    # why the hook does (not) act here

exit status: 0 ok, 1 failure (no such process, not a namespace, permission
denied, the hook cannot work), 2 usage error; run: the program's own status
(125: the start-up hook refused to start it)."""


class UsageError(Exception):
    """The command line is wrong (exit status 2)."""


class CommandError(Exception):
    """The command's subject failed: no such process, not a namespace, ... (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _wrap(text: str) -> str:
    # Descriptions are wrapped here because the raw formatter keeps the examples' line breaks.
    return textwrap.fill(text, 79)


def _add_namespace_options(parser: argparse.ArgumentParser, for_run: bool) -> None:
    group = parser.add_argument_group(
        "namespaces",
        _wrap(
            "Each type option takes an optional PATH (a /proc/PID/ns/TYPE file or a bind-mounted one such as "
            "/run/netns/NAME); without it, the namespace of the -t process."
        ),
    )
    group.add_argument("-t", "--target", metavar="PID", type=int, help="the process whose namespaces to join")
    group.add_argument(
        "-a",
        "--all",
        action="store_true",
        help="every namespace of the target that differs from this process's (pid: compared with our pid_for_children)",
    )
    for ns_type, flags, what in TYPE_OPTIONS:
        names = [f for f in flags if not (for_run and f == "-m")]
        group.add_argument(
            *names,
            dest=ns_type,
            nargs="?",
            const=FROM_TARGET,
            metavar="PATH",
            help="%s (gons_%s)" % (what, ns_type),
        )
    group.add_argument("--netns", metavar="NAME", help="the named network namespace /run/netns/NAME (ip netns)")
    group.add_argument(
        "--order",
        metavar="ORDER",
        help="gons_order: the sequence of joins, e.g. '!mnt,net' "
        "(default !user,!mnt,!cgroup,!ipc,!net,!pid,!time,!uts)",
    )
    group.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="do not open the references to check that they are namespaces of their type",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=_formatter)
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    status = commands.add_parser(
        "status",
        help="what the start-up hook did in this process",
        description=_wrap(
            "Show what pyns_boot's start-up hook did in this very process: set gons_* variables to see "
            "a switch, e.g.  gons_net=/run/netns/blue pyns-boot status.  A failing hook stops the process with status "
            "125 before this command runs, unless PYNS_BOOT_ON_ERROR=warn.  Exit status 1 when the status is not ok."
        ),
        formatter_class=_formatter,
    )
    status.add_argument("--json", action="store_true", help="print pyns_boot.status().as_dict() as JSON")

    env = commands.add_parser(
        "env",
        help="print the gons_* variables for a target",
        description=_wrap(
            "Print the gons_* variables that make every Python of this environment start in the given "
            "namespaces.  The shell format first unsets the gons_* variables it does not set."
        ),
        epilog='examples:\n  eval "$(pyns-boot env -t 4242 --net --uts)"\n  pyns-boot env --netns blue --format env '
        "> netns.env\n  pyns-boot env -t 4242 --mnt --net /run/netns/inner --order '!mnt,net'",
        formatter_class=_formatter,
    )
    _add_namespace_options(env, for_run=False)
    fmt = env.add_argument_group("output")
    fmt.add_argument(
        "-f",
        "--format",
        choices=("shell", "env", "json"),
        default="shell",
        help="shell: export lines for eval (default); env: KEY=VALUE lines, values verbatim (docker --env-file); "
        "json: an object (docs/cli.md: which values each format can carry)",
    )
    fmt.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")

    run = commands.add_parser(
        "run",
        help="run a Python program in the namespaces",
        usage="%(prog)s [NAMESPACE OPTIONS] (-- script.py | -m MODULE | -c CODE) [ARGS ...]",
        description=_wrap(
            "Replace this process with  %s [ARGS]  (this environment's interpreter) with the gons_* "
            "variables set: its start-up hook joins the namespaces before the program runs.  The program's exit status "
            "passes through; 125 means the hook refused (the message says why).  Everything after --, -m or -c goes to "
            "the interpreter unchanged.  Here -m is python's module option: the mount namespace is --mnt/--mount."
            % os.path.basename(sys.executable or "python")
        ),
        epilog="examples:\n  pyns-boot run -t 4242 --net --uts -- app.py --verbose\n"
        "  pyns-boot run --netns blue -m http.server 8000\n"
        "  pyns-boot run -t 4242 --all -c 'import socket; print(socket.gethostname())'",
        formatter_class=_formatter,
    )
    _add_namespace_options(run, for_run=True)
    program = run.add_argument_group("program (like python)")
    program.add_argument("-m", dest="module", metavar="MODULE", help="run a library module as a script")
    program.add_argument("-c", dest="code", metavar="CODE", help="run a program passed as a string")
    program.add_argument("script", nargs="?", metavar="-- script.py", help="run a script file (after --)")

    doctor = commands.add_parser(
        "doctor",
        help="check that the hook can work in this environment",
        description=_wrap(
            "Check this interpreter and environment: the .pth trigger, the C helper, the .start file, "
            ".pth files that run before ours, -S, the kernel's namespace types and the user's privileges.  Each "
            "problem comes with a fix.  Exit status 1 when the hook cannot work."
        ),
        formatter_class=_formatter,
    )
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    return parser


def split_run_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``run``'s arguments into its options and what goes to the interpreter.

    The program starts at the first ``--`` (dropped), ``-m`` or ``-c``
    (kept, with everything after them, as python would get them).
    """
    for i, arg in enumerate(argv):
        if arg == "--":
            return list(argv[:i]), list(argv[i + 1 :])
        if arg in ("-m", "-c") or (arg[:2] in ("-m", "-c") and not arg.startswith("--")):
            return list(argv[:i]), list(argv[i:])
    return list(argv), []


def _error(message: str) -> int:
    sys.stderr.write("%s: %s\n" % (PROG, message))
    return 1


def _namespaces(args: argparse.Namespace) -> Namespaces:
    # Imported on use: it loads the C helper, which doctor and status must not need.
    from pyns_boot import _cli_spec

    values = {ns_type: getattr(args, ns_type) for ns_type, _, _ in TYPE_OPTIONS}
    return _cli_spec.build(
        target=args.target,
        from_target=[t for t, value in values.items() if value == FROM_TARGET],
        paths={t: value for t, value in values.items() if value is not None and value != FROM_TARGET},
        all_types=args.all,
        netns=args.netns,
        order=args.order,
        check=args.check,
    )


def cmd_status(args: argparse.Namespace) -> int:
    from pyns_boot import status

    result = status()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0 if result.ok else 1
    print("state:   %s%s" % (result.state, "" if result.hook_ran else " (the hook did not run)"))
    if result.order:
        print("order:   %s" % result.order)
    if result.policy:
        print("policy:  %s" % result.policy)
    if result.error:
        print("error:   %s" % result.error)
    for ns_type, ns in result.namespaces.items():
        if ns.requested:
            early = " (opened early)" if ns.early else ""
            print("  %-7s %-15s %s%s" % (ns_type, ns.outcome.replace("_", " "), ns.path, early))
    return 0 if result.ok else 1


def cmd_env(args: argparse.Namespace) -> int:
    variables = _namespaces(args).to_env()
    try:
        output = format_env(variables, args.format)
    except CommandError as error:
        return _error(str(error))
    sys.stdout.flush()
    sys.stdout.buffer.write(output)
    return 0


def format_env(variables: dict[str, str], fmt: str) -> bytes:
    """The output of ``pyns-boot env`` in fmt (shell, env or json), as bytes.

    Values are paths as the command line gave them (non-UTF-8 bytes arrive
    as surrogate escapes) and leave as the same bytes.  shell: export lines
    for eval in any POSIX shell, every value representable.  env: KEY=VALUE
    lines read as docker's --env-file reads them (the value verbatim up to the
    end of the line, UTF-8 only).  json: one object of UTF-8 strings.  A value
    a format cannot carry raises CommandError naming the variable and the
    format that can.
    """
    if fmt == "json":
        for name, value in variables.items():
            if not _is_utf8(value):
                raise CommandError(_unrepresentable(name, value, "json", "is not valid UTF-8"))
        return (json.dumps(variables, indent=2) + "\n").encode("utf-8")
    if fmt == "env":
        for name, value in variables.items():
            why = _env_line_problem(value)
            if why:
                raise CommandError(_unrepresentable(name, value, "env", why))
        return b"".join(os.fsencode("%s=%s\n" % (name, value)) for name, value in variables.items())
    from pyns_boot._setns import ORDER_VARIABLE, VARIABLES

    lines = []
    unset = [name for name in (*VARIABLES, ORDER_VARIABLE) if name not in variables]
    if unset:
        lines.append("unset %s\n" % " ".join(unset))
    for name, value in variables.items():
        lines.append("export %s=%s\n" % (name, shlex.quote(value)))
    return os.fsencode("".join(lines))


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a surrogate escape: a byte that is not UTF-8
        return False
    return True


def _env_line_problem(value: str) -> str:
    """Why value cannot be a KEY=VALUE line of an env file, or ''."""
    if "\n" in value:
        return "holds a newline"
    if value.endswith("\r"):
        return "ends in a carriage return, which env-file readers drop"
    if not _is_utf8(value):
        return "is not valid UTF-8 (docker refuses such env files)"
    return ""


def _unrepresentable(name: str, value: str, fmt: str, why: str) -> str:
    return "%s=%s cannot be written in --format %s: the value %s; use --format shell (eval) instead" % (
        name,
        repr(value) if _is_utf8(value) else repr(os.fsencode(value))[1:],
        fmt,
        why,
    )


def cmd_run(args: argparse.Namespace, program: list[str]) -> int:
    if args.script is not None:
        raise UsageError("put -- before the program: pyns-boot run [OPTIONS] -- %s [ARGS]" % args.script)
    if not program:
        message = "no program: give -- script.py [ARGS], -m MODULE [ARGS] or -c CODE [ARGS]"
        taken = [(t, getattr(args, t)) for t, _, _ in TYPE_OPTIONS if getattr(args, t) not in (None, FROM_TARGET)]
        for ns_type, value in taken:
            if not value.startswith("/"):
                message += " (--%s took %r as its PATH: put -- before the program)" % (ns_type, value)
        raise UsageError(message)
    if program[0] == "-m" and (len(program) < 2 or program[1].startswith("-")):
        raise UsageError("-m takes a module name, as python -m does (the mount namespace is --mnt)")
    if program[0] == "-c" and len(program) < 2:
        raise UsageError("-c takes the program's code, as python -c does")
    executable = sys.executable
    if not executable:
        return _error("this interpreter does not know its executable (sys.executable is empty)")
    from pyns_boot import _doctor

    missing = _doctor.hook_blocker()
    if missing:
        return _error("run: %s; the program would not join the namespaces (see: pyns-boot doctor)" % missing)
    from pyns_boot import _cli_spec
    from pyns_boot._setns import ORDER_VARIABLE, VARIABLES

    start = None if args.target is None else _cli_spec.process_start(args.target)
    spec = _namespaces(args)
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != ORDER_VARIABLE}
    env.update(spec.to_env())
    if start is not None and _cli_spec.process_start(args.target) != start:
        # Gone (or its pid reused) since its namespaces were read: the paths would name another process.
        raise CommandError("process %d exited while its namespaces were read" % args.target)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(executable, [executable, *program], env)
    except OSError as error:
        return _error("run: cannot execute %s: %s" % (executable, error.strerror))
    return 1  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    """The pyns-boot command; returns the exit status (run does not return on success)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    program: list[str] = []
    if arguments and arguments[0] == "run":
        options, program = split_run_argv(arguments[1:])
        arguments = ["run", *options]
    args = parser.parse_args(arguments)
    try:
        if args.command == "status":
            return cmd_status(args)
        if args.command == "env":
            return cmd_env(args)
        if args.command == "run":
            return cmd_run(args, program)
        from pyns_boot import _doctor

        return _doctor.main(args.json)
    except UsageError as error:
        parser.exit(2, "%s %s: error: %s\n" % (PROG, args.command, error))
    except CommandError as error:
        return _error(str(error))


if __name__ == "__main__":
    sys.exit(main())
