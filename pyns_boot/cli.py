"""pyns-boot: the command line (also ``python -m pyns_boot``), past run's fast path (pyns_boot._run_fast).

Exit status: 0 ok, 1 the command's subject failed (no such process, not a
namespace, permission denied, the hook cannot work), 2 usage error.  ``run``
runs the program in this process after the joins (pyns_boot._run_program) or,
for interpreter options, replaces itself with a fresh interpreter; either way
the program's status passes through (125 when the start-up hook refuses to
start it).  Errors go to stderr, data to stdout.
"""

from __future__ import annotations

import os
import sys

from pyns_boot import __version__, _run_fast
from pyns_boot._errors import CommandError, ContainerError, UsageError
from pyns_boot._run_fast import CONTAINER_ENGINES, FROM_TARGET, TYPE_OPTIONS, fast_run_args, split_run_argv

# argparse, json, shlex and textwrap (all of them import re) load on use: `pyns-boot run` runs the program
# in this process, so everything imported first is start-up time of that program (pyns_boot._run_fast).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Sequence

    from pyns_boot._namespaces import Namespaces

PROG = "pyns-boot"

DESCRIPTION = """\
Start Python programs of this environment inside Linux namespaces, like
nsenter(1) does for any program, through pyns_boot's start-up hook and its
gons_* environment variables.  The namespaces are joined by the new
interpreter itself, before any user code runs."""

EPILOG = """\
examples:
  pyns-boot run -t 4242 -n -u -- app.py --port 80     # nsenter -t 4242 -n -u python app.py --port 80
  pyns-boot run --netns blue -- -m http.server 8000   # ip netns exec blue python -m http.server 8000
  pyns-boot run -t 4242 -m -n -w -- app.py            # nsenter -t 4242 -m -n -w python app.py
  pyns-boot run --container web -- tool.py            # every namespace of the podman/docker container web
  eval "$(pyns-boot env -t 4242 --net)"               # this shell's pythons then start in that netns
  pyns-boot env -t 4242 --all --json
  pyns-boot status                                    # what the hook did in this process
  pyns-boot doctor                                    # why the hook does (not) act here

exit status: 0 ok, 1 failure (no such process, not a namespace, permission
denied, the hook cannot work), 2 usage error; run: the program's own status
(125: the start-up hook refused to start it)."""


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            self.print_usage(sys.stderr)
            self.exit(2, f"{self.prog}: error: {message}\n")

    return _Parser


def _formatter(prog: str) -> argparse.HelpFormatter:
    import argparse

    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _wrap(text: str) -> str:
    import textwrap

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
        "--container",
        metavar="NAME",
        help="the running container NAME (name, ID or ID prefix), found with podman, docker, nerdctl, crictl, "
        "containerd (ctr), lxc (lxc-info) or machinectl: like -t with its first process; without type options, "
        "--all.  A name several engines know: the running container",
    )
    group.add_argument(
        "--engine",
        choices=CONTAINER_ENGINES,
        help="ask only this engine about --container (default: each of them that is installed, at once)",
    )
    group.add_argument(
        "--containerd-namespace",
        metavar="NS",
        help="containerd's namespace for --container (default: $CONTAINERD_NAMESPACE, else k8s.io, then default)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say on stderr which engine answered for --container, and its PID",
    )
    group.add_argument(
        "-a",
        "--all",
        action="store_true",
        help="every namespace of the target that differs from this process's (pid: compared with our pid_for_children)",
    )
    for ns_type, flags, what in TYPE_OPTIONS:
        group.add_argument(
            *flags,
            dest=ns_type,
            nargs="?",
            const=FROM_TARGET,
            metavar="PATH",
            help=f"{what} (gons_{ns_type})",
        )
    group.add_argument(
        "--netns",
        metavar="NAME",
        help="the named network namespace /run/netns/NAME, as ip netns exec NAME joins it: /etc/netns/NAME/* over "
        "/etc and a /sys of the namespace, in a private mount namespace (gons_netns)",
    )
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
    after = parser.add_argument_group("after the joins (as nsenter)")
    after.add_argument(
        "-w",
        "--wd",
        nargs="?",
        const=FROM_TARGET,
        metavar="DIR",
        help="the working directory: DIR as seen after the joins, or without DIR the -t process's "
        "(PYNS_BOOT_WD; after a mnt join the program otherwise starts in the target's /)",
    )
    after.add_argument("-S", "--setuid", metavar="UID", type=int, help="the user id (PYNS_BOOT_SETUID)")
    after.add_argument("-G", "--setgid", metavar="GID", type=int, help="the group id (PYNS_BOOT_SETGID)")


def build_parser() -> argparse.ArgumentParser:
    parser = _parser_class()(prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=_formatter)
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
            "namespaces.  The shell format first unsets the gons_* variables it does not set.  --clear prints "
            "only the unset line, for every variable the hook acts on: the way out of a shell whose target is gone."
        ),
        epilog='examples:\n  eval "$(pyns-boot env -t 4242 --net --uts)"\n  pyns-boot env --netns blue --format env '
        "> netns.env\n  pyns-boot env -t 4242 --mnt --net /run/netns/inner --order '!mnt,net'\n"
        '  eval "$(pyns-boot env --clear)"                  # back to no namespace switch',
        formatter_class=_formatter,
    )
    env.add_argument(
        "--clear",
        action="store_true",
        help="print `unset` of every variable the hook acts on (gons_*, gons_order, gons_netns, PYNS_BOOT_WD, "
        "PYNS_BOOT_SETUID, PYNS_BOOT_SETGID) and nothing else: eval it to leave a stale shell",
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
        usage="%(prog)s [OPTIONS] (-- script.py | -- -m MODULE | -c CODE) [ARGS ...]",
        description=_wrap(
            "Run a Python program of this environment in the namespaces, as  {} [ARGS]  would run it there: "
            "the start-up hook joins them in this process, then the program runs here (no second interpreter).  "
            "A script is read on this side before the joins, and its directory stays importable, mnt included; "
            "-- -m MODULE finds MODULE from the current directory as python -m does; -- NAME runs the console "
            "script NAME of this environment.  Interpreter options (-- -X dev app.py, -u, -W ...) start a fresh "
            "interpreter instead.  The program's exit status passes through; 125 means the hook refused (the "
            "message says why).  -m is the mount namespace, as in nsenter: run a module with  -- -m MODULE.  "
            "With a pid namespace this process stays outside as the supervisor and the program runs in its "
            "child, as with nsenter --pid.".format(os.path.basename(sys.executable or "python"))
        ),
        epilog="examples:\n  pyns-boot run -t 4242 --net --uts -- app.py --verbose\n"
        "  pyns-boot run --netns blue -- -m http.server 8000\n"
        "  pyns-boot run -t 4242 -m -w -- app.py              # in the target's mounts and working directory\n"
        "  pyns-boot run -t 4242 --all -c 'import socket; print(socket.gethostname())'",
        formatter_class=_formatter,
    )
    _add_namespace_options(run, for_run=True)
    program = run.add_argument_group("program (like python)")
    program.add_argument("-c", dest="code", metavar="CODE", help="run a program passed as a string")
    program.add_argument(
        "script", nargs="?", metavar="-- script.py | -- -m MODULE", help="run a script file or a module (after --)"
    )

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


def _error(message: str) -> int:
    sys.stderr.write(f"{PROG}: {message}\n")
    return 1


def _resolve_container(args: argparse.Namespace) -> None:
    """--container NAME: becomes -t with the container's PID (and --all without type options)."""
    namespace = getattr(args, "containerd_namespace", None)
    if args.container is None:
        if args.engine is not None:
            raise UsageError(f"--engine {args.engine} needs --container NAME")
        if namespace is not None:
            raise UsageError("--containerd-namespace needs --container NAME")
        return
    if args.target is not None:
        raise UsageError("--container and -t both name the target: give one of them")
    if namespace is not None and args.engine not in (None, "containerd"):
        raise UsageError(f"--containerd-namespace is containerd's, not {args.engine}'s")
    from pyns_boot import _containers

    try:
        container = _containers.resolve(args.container, [args.engine] if args.engine else None, namespace)
    except ContainerError as error:
        raise CommandError(str(error)) from None
    if getattr(args, "verbose", False):
        sys.stderr.write(f"{PROG}: {args.container}: {container.describe()}, pid {container.pid}\n")
        if container.note:
            sys.stderr.write(f"{PROG}: {container.note}\n")
    args.target = container.pid
    if not any(getattr(args, t) == FROM_TARGET for t, _, _ in TYPE_OPTIONS):
        args.all = True


def _namespaces(args: argparse.Namespace) -> Namespaces:
    # Imported on use: it loads the C helper, which doctor and status must not need.
    from pyns_boot import _cli_namespaces

    _resolve_container(args)
    values = {ns_type: getattr(args, ns_type) for ns_type, _, _ in TYPE_OPTIONS}
    return _cli_namespaces.build(
        target=args.target,
        from_target=[t for t, value in values.items() if value == FROM_TARGET],
        paths={t: value for t, value in values.items() if value is not None and value != FROM_TARGET},
        all_types=args.all,
        netns=args.netns,
        order=args.order,
        check=args.check,
        options=option_names(),
    )


def option_names() -> dict[str, str]:
    """How this command spells what a variable names elsewhere, for its messages: "user": "-U/--user"."""
    names = {ns_type: "/".join(flags[:2]) for ns_type, flags, _ in TYPE_OPTIONS}
    names.update(order="--order", netns="--netns")
    return names


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from pyns_boot import status

    result = status()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0 if result.ok else 1
    print("state:   {}{}".format(result.state, "" if result.hook_ran else " (the hook did not run)"))
    if result.order:
        print(f"order:   {result.order}")
    if result.policy:
        print(f"policy:  {result.policy}")
    if result.policy_error:
        print(f"warning: {result.policy_error}")
    if result.error:
        print(f"error:   {result.error}")
    if result.hint:
        print(f"hint:    {result.hint}")
    for ns_type, ns in result.namespaces.items():
        if ns.requested:
            early = " (opened early)" if ns.early else ""
            print("  {!s:<7} {!s:<15} {}{}".format(ns_type, ns.outcome.replace("_", " "), ns.path, early))
    return 0 if result.ok else 1


def cmd_env(args: argparse.Namespace) -> int:
    if args.clear:
        return _clear(args)
    variables = _namespaces(args).to_env()
    variables.update(_after_joins(args))
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
        import json

        for name, value in variables.items():
            if not _is_utf8(value):
                raise CommandError(_unrepresentable(name, value, "json", "is not valid UTF-8"))
        return (json.dumps(variables, indent=2) + "\n").encode("utf-8")
    if fmt == "env":
        for name, value in variables.items():
            why = _env_line_problem(value)
            if why:
                raise CommandError(_unrepresentable(name, value, "env", why))
        return b"".join(os.fsencode(f"{name}={value}\n") for name, value in variables.items())
    import shlex

    lines = []
    unset = [name for name in _steering_variables() if name not in variables]
    if unset:
        lines.append("unset {}\n".format(" ".join(unset)))
    for name, value in variables.items():
        lines.append(f"export {name}={shlex.quote(value)}\n")
    return os.fsencode("".join(lines))


def _clear(args: argparse.Namespace) -> int:
    """env --clear: the unset line of every steering variable, for eval; it takes no other option."""
    defaults = build_parser().parse_args(["env"])
    given = [
        name
        for name, value in vars(args).items()
        if name not in ("clear", "format", "command") and value != getattr(defaults, name, None)
    ]
    if given or args.format != "shell":
        raise UsageError("--clear takes no other option: it prints the unset line of every variable, for eval")
    sys.stdout.write("unset {}\n".format(" ".join(_steering_variables())))
    return 0


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
    return (
        f"{name}={repr(value) if _is_utf8(value) else repr(os.fsencode(value))[1:]} cannot be written in --format "
        f"{fmt}: the value {why}; use --format shell (eval) instead"
    )


def _after_joins(args: argparse.Namespace) -> dict[str, str]:
    """The PYNS_BOOT_* variables of -w, -S and -G (pyns_boot._after_joins)."""
    from pyns_boot import _after_joins

    variables = {}
    if args.wd == FROM_TARGET:
        if args.target is None:
            raise UsageError("-w/--wd without DIR means the working directory of the -t process: add -t PID or a DIR")
        variables[_after_joins.WD_VARIABLE] = f"!/proc/{args.target}/cwd"  # opened before the joins, as nsenter does
    elif args.wd is not None:
        if not args.wd:
            raise UsageError("-w/--wd needs a non-empty DIR")
        variables[_after_joins.WD_VARIABLE] = args.wd
    for variable, value in ((_after_joins.SETGID_VARIABLE, args.setgid), (_after_joins.SETUID_VARIABLE, args.setuid)):
        if value is not None:
            if value < 0:
                raise UsageError(f"-S/--setuid and -G/--setgid take a non-negative id, not {value}")
            variables[variable] = str(value)
    return variables


def _steering_variables() -> tuple[str, ...]:
    """Every variable the hook acts on: the gons_* of the contract, gons_order, and the steps after the joins."""
    from _pyns_boot import AFTER_JOINS_VARIABLES, TRIGGER_VARIABLES

    return tuple(dict.fromkeys((*TRIGGER_VARIABLES, *AFTER_JOINS_VARIABLES)))


def cmd_run(args: argparse.Namespace, program: list[str]) -> int:
    if args.mnt not in (None, FROM_TARGET) and not args.mnt.startswith("/") and not os.path.exists(args.mnt):
        raise UsageError(
            f"-m is the mount namespace (as in nsenter) and {args.mnt!r} is no such file: to run a module, "
            f"pyns-boot run [OPTIONS] -- -m {args.mnt} [ARGS]"
        )
    if args.script is not None:
        raise UsageError(f"put -- before the program: pyns-boot run [OPTIONS] -- {args.script} [ARGS]")
    if not program:
        message = "no program: give -- script.py [ARGS], -- -m MODULE [ARGS] or -c CODE [ARGS]"
        taken = [(t, getattr(args, t)) for t, _, _ in TYPE_OPTIONS if getattr(args, t) not in (None, FROM_TARGET)]
        for ns_type, value in taken:
            if not value.startswith("/"):
                message += f" (--{ns_type} took {value!r} as its PATH: put -- before the program)"
        raise UsageError(message)
    if program[0] == "-m" and (len(program) < 2 or program[1].startswith("-")):
        raise UsageError("-- -m takes a module name, as python -m does")
    if program[0] == "-c" and len(program) < 2:
        raise UsageError("-c takes the program's code, as python -c does")
    executable = sys.executable
    if not executable:
        return _error("this interpreter does not know its executable (sys.executable is empty)")
    # The program joins in this process through the hook's code, but a child interpreter it starts (and a
    # fresh interpreter for interpreter options) joins through the hook: refuse an environment without it.
    from pyns_boot._sitedirs import hook_blocker

    missing = hook_blocker()
    if missing:
        return _error(f"run: {missing}; the program would not join the namespaces (see: pyns-boot doctor)")
    from pyns_boot import _cli_namespaces, _run_program

    try:
        here = _run_program.parse(program) if _run_fast.can_join_here() else None
    except _run_program.ProgramError as error:
        raise UsageError(str(error)) from None
    start = None if args.target is None else _cli_namespaces.process_start(args.target)
    spec = _namespaces(args)
    variables = spec.to_env()
    variables.update(_after_joins(args))
    if here is not None and not _run_fast.can_join_here(wait=1.0):
        here = None  # a thread still runs after the container lookup: a fresh interpreter joins instead
    if here is not None:
        try:
            _run_program.prepare(here, mnt_joined=spec.get("mnt") is not None)
        except _run_program.ProgramError as error:
            _run_program.exit_with(error)
    if start is not None and _cli_namespaces.process_start(args.target) != start:
        # Gone (or its pid reused) since its namespaces were read: the paths would name another process.
        raise CommandError(f"process {args.target} exited while its namespaces were read")
    if here is not None:
        return _run_fast.start_here(here, variables)
    steering = _steering_variables()
    env = {k: v for k, v in os.environ.items() if k not in steering}
    env.update(variables)
    sys.stdout.flush()
    sys.stderr.flush()
    _enter_pid_namespace_first(spec, env)
    try:
        os.execve(executable, [executable, *program], env)
    except OSError as error:
        return _error(f"run: cannot execute {executable}: {error.strerror}")
    return 1  # not reached


def _enter_pid_namespace_first(spec: Namespaces, env: dict[str, str]) -> None:
    """As nsenter --pid: join the pid namespace here and fork, so that the interpreter starts inside it.

    This process stays as the C supervisor the hook would have made (signals forwarded, the child's
    exit status); only the child returns, to exec the interpreter, whose hook then finds itself in
    the namespace already (status().pid_mode "member") and does not fork: the fork comes right
    before an exec, as nsenter's does, instead of in the started program.  Left to the hook when the
    join needs the hook's order (a user namespace first, a pid reference resolved after the mount
    switch), with PYNS_BOOT_PID set, and when anything here fails: the hook then reports it as it
    always does."""
    import _pyns_boot

    from pyns_boot._namespaces import steps

    path = spec.get("pid")
    if path is None or env.get("PYNS_BOOT_PID") or spec.get("user") is not None:
        return
    if spec.order and ("pid", True) not in steps(spec):
        return
    try:
        own, target = os.stat("/proc/self/ns/pid"), os.stat(path)
    except OSError:
        return
    if (own.st_dev, own.st_ino) == (target.st_dev, target.st_ino):
        return
    report = _pyns_boot.apply(None, [path if t == "pid" else None for t in _pyns_boot.TYPES])
    if not report["ok"]:
        return
    try:
        _pyns_boot.enter_pid(path)
    except OSError:
        return


def _refuse_after_partial_join(args: argparse.Namespace) -> None:
    """The hook failed in this very process (it carries on for pyns-boot): run and env must not build on
    namespaces it joined half-way; status and doctor report it."""
    command = args.command
    if command not in ("run", "env") or ("pyns_boot.hook" not in sys.modules and "_pyns_boot" not in sys.modules):
        return
    if getattr(args, "clear", False):
        return  # env --clear: the way out of this very state
    from pyns_boot import status

    result = status()
    if result.state == "failed" and result.joined:
        from pyns_boot._hints import clear_command

        raise CommandError(
            "the start-up hook of this pyns-boot process failed after joining {}: clear the variables (they belong "
            "to another program) with  {}  and try again".format(", ".join(result.joined), clear_command())
        )


def main(argv: Sequence[str] | None = None) -> int:
    """The pyns-boot command; returns the exit status (run does not return on success)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    program: list[str] = []
    args: argparse.Namespace | None = None
    if arguments and arguments[0] == "run":
        options, program = split_run_argv(arguments[1:])
        arguments = ["run", *options]
        args = fast_run_args(options)
    if args is None:
        args = build_parser().parse_args(arguments)
    try:
        _refuse_after_partial_join(args)
        if args.command == "status":
            return cmd_status(args)
        if args.command == "env":
            return cmd_env(args)
        if args.command == "run":
            return cmd_run(args, program)
        from pyns_boot import _doctor

        return _doctor.main(args.json)
    except UsageError as error:
        sys.stderr.write(f"{PROG} {args.command}: error: {error}\n")
        sys.exit(2)
    except CommandError as error:
        return _command_error(args, error)


def _command_error(args: argparse.Namespace, error: CommandError) -> int:
    if getattr(args, "container", None) and args.target is not None:
        # Found, then gone (or not readable): say which container the pid was.
        gone = "" if os.path.exists(f"/proc/{args.target}") else " exited after it was looked up"
        return _error(f"container {args.container}{gone} (pid {args.target}): {error}")
    return _error(str(error))


if __name__ == "__main__":
    sys.exit(main())
