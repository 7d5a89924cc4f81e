"""``run``'s common command lines, read without argparse and started with few imports.

``pyns-boot run`` runs its program in this process (pyns_boot._run_program),
so everything imported before the program starts is start-up time of that
program.  The command's entry (pyns_boot.__main__) calls :func:`run`: for the common command
lines (``run -t PID`` with type options or ``--all``, and ``-c CODE``,
``-- script.py`` or ``-- -m MODULE``) it builds the gons_* variables here,
importing only pyns_boot._run_program and the C helper, and starts the
program; everything else, and any doubt (a reference that does not check,
a process that is gone), goes to pyns_boot.cli, whose argparse is the one
authority on the command line and whose messages say what is wrong.  It
imports no other module of the package: no ``from __future__``, quoted
annotations (tests/test_startup_imports.py).
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Sequence

#: The tools --container asks (pyns_boot._containers.RUNTIMES; not imported here to keep start-up cheap).
CONTAINER_ENGINES = ("podman", "docker", "nerdctl", "crictl", "containerd", "lxc", "machinectl")
#: The value of a type option given without a PATH: the namespace of the -t process.
FROM_TARGET = "\0target"
# nsenter's short options, the same in env and run (-m is the mount
# namespace: run a module with  run ... -- -m MODULE).
TYPE_OPTIONS = (
    ("cgroup", ("-C", "--cgroup"), "the cgroup namespace"),
    ("ipc", ("-i", "--ipc"), "the IPC namespace"),
    ("mnt", ("-m", "--mnt", "--mount"), "the mount namespace"),
    ("net", ("-n", "--net"), "the network namespace"),
    (
        "pid",
        ("-p", "--pid"),
        "the PID namespace (the program runs inside it; PYNS_BOOT_PID=children: only its children)",
    ),
    ("time", ("-T", "--time"), "the time namespace"),
    ("user", ("-U", "--user"), "the user namespace"),
    ("uts", ("-u", "--uts"), "the UTS namespace (hostname)"),
)  # type: tuple[tuple[str, tuple[str, ...], str], ...]

#: run's options that the fast path reads: name -> attribute (and whether it takes a value).
_FAST_FLAGS = {"-a": "all", "--all": "all", "--no-check": "check"}
_FAST_VALUES = {
    "-t": "target",
    "--target": "target",
    "--container": "container",
    "--engine": "engine",
    "--netns": "netns",
}


class RunArgs:
    """run's options as argparse's Namespace holds them (attributes only)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def run(arguments: "Sequence[str]") -> "int | None":
    """``pyns-boot run ARGUMENTS`` when it is a common command line (its program's status); None: for
    pyns_boot.cli."""
    options, program = split_run_argv(arguments)
    args = fast_run_args(options)
    return None if args is None else run_common(args, program)


def split_run_argv(argv: "Sequence[str]") -> "tuple[list[str], list[str]]":
    """Split ``run``'s arguments into its options and what goes to the interpreter.

    The program starts at the first ``--`` (dropped) or ``-c`` (kept, with
    everything after it, as python would get it).  ``-m`` is the mount
    namespace, as in nsenter: a module runs with ``-- -m MODULE``.
    """
    for i, arg in enumerate(argv):
        if arg == "--":
            return list(argv[:i]), list(argv[i + 1 :])
        if arg == "-c" or (arg[:2] == "-c" and not arg.startswith("--")):
            return list(argv[:i]), list(argv[i:])
    return list(argv), []


def fast_run_args(options: "Sequence[str]") -> "argparse.Namespace | None":
    """run's options parsed without argparse, for the common command lines only; None: ask argparse.

    Takes -t/--target PID, -a/--all, --container NAME, --engine TOOL, --netns NAME, --no-check and the
    type options without a PATH (--net, -n, ...): the same attributes that the parser makes of them.  Anything else
    (a PATH, --order, --netns, -h, an unknown or abbreviated option, a usage error) goes to argparse,
    which stays the one authority on the command line; this only skips importing it.
    """
    values = {t: None for t, _, _ in TYPE_OPTIONS}  # type: dict[str, object]
    values.update(
        command="run",
        target=None,
        all=False,
        container=None,
        engine=None,
        containerd_namespace=None,
        verbose=False,
        netns=None,
        order=None,
        check=True,
    )
    values.update(script=None, code=None, wd=None, setuid=None, setgid=None)
    type_flags = {flag: t for t, flags, _ in TYPE_OPTIONS for flag in flags}
    i = 0
    while i < len(options):
        option = options[i]
        if option in _FAST_FLAGS:
            values[_FAST_FLAGS[option]] = option != "--no-check"
        elif option in type_flags and (i + 1 == len(options) or options[i + 1].startswith("-")):
            values[type_flags[option]] = FROM_TARGET
        elif option in _FAST_VALUES and i + 1 < len(options) and not options[i + 1].startswith("-"):
            value = options[i + 1]  # type: object
            if option in ("-t", "--target"):
                if not options[i + 1].isdigit():
                    return None
                value = int(options[i + 1])
            elif option == "--engine" and value not in CONTAINER_ENGINES:
                return None
            values[_FAST_VALUES[option]] = value
            i += 1
        else:
            return None
        i += 1
    return RunArgs(**values)  # type: ignore[return-value]


def run_common(args: "argparse.Namespace", program: "list[str]") -> "int | None":
    """Run the program of a common command line (-t PID with types or --all, or --netns NAME alone); None: not
    common, or in doubt, for pyns_boot.cli to do (and to report what is wrong)."""
    if args.container is not None or not args.check:
        return None
    import _pyns_boot

    from pyns_boot import _run_program

    if not _run_program.can_join_here():
        return None  # cli.py execs a fresh interpreter
    if not os.path.exists(os.path.join(os.path.dirname(_pyns_boot.__file__ or ""), "pyns_boot.pth")):
        return None  # not installed as the hook needs (pyns_boot._sitedirs.hook_blocker): cli.py says why

    try:
        parsed = _run_program.parse(program) if program else None
    except _run_program.ProgramError:
        return None
    if parsed is None:
        return None
    try:
        if args.netns is not None:
            variables, start = _netns_variables(args), None
        else:
            start = process_start(args.target) if args.target is not None and args.target > 0 else None
            variables = _target_variables(args)
    except (OSError, ValueError, IndexError):
        return None
    if not variables:
        return None
    try:
        _run_program.prepare(parsed, mnt_joined="gons_mnt" in variables)
        if start is not None and process_start(args.target) != start:
            return None  # gone since its namespaces were read: cli.py says so
    except _run_program.ProgramError as error:
        _run_program.exit_with(error)
    except OSError:
        return None
    return _run_program.start_here(parsed, variables)


def _target_variables(args: "argparse.Namespace") -> "dict[str, str]":
    """gons_* of -t PID with type options or --all, each checked as the hook will use it; {}: not this case."""
    import _pyns_boot

    target = args.target
    if target is None or target <= 0:
        return {}
    types = differing_types(target) if args.all else [t for t, _, _ in TYPE_OPTIONS if getattr(args, t) == FROM_TARGET]
    variables = {}
    for ns_type in types:
        path = f"/proc/{target}/ns/{ns_type}"
        _pyns_boot.check_reference(ns_type, path)  # OSError: cli.py says why
        variables["gons_" + ns_type] = path
    return variables


def _netns_variables(args: "argparse.Namespace") -> "dict[str, str]":
    """gons_netns of --netns NAME alone, checked; {}: not this case (pyns_boot._cli_namespaces has the rules)."""
    import _pyns_boot

    name = args.netns
    alone = args.target is None and not args.all and all(getattr(args, t) is None for t, _, _ in TYPE_OPTIONS)
    if not alone or not name or "/" in name or name in (".", ".."):
        return {}
    _pyns_boot.check_reference("net", "/run/netns/" + name)  # OSError: cli.py says why
    return {"gons_netns": name}


def process_start(pid: int) -> str:
    """The start time of a process (field 22 of /proc/PID/stat): tells it from a later one with the same pid.

    OSError when it cannot be read, ProcessLookupError for a zombie (it has no namespaces left)."""
    with open(f"/proc/{pid}/stat", "rb") as file:
        data = file.read()
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[:1] in ([b"Z"], [b"X"]):
        raise ProcessLookupError(pid)
    return fields[19].decode("ascii", "replace") if len(fields) > 19 else ""


def differing_types(pid: int) -> "list[str]":
    """Every namespace type of the target that a join would change in this process.

    The target's namespace of each type is compared with the links of this
    process that the hook compares it with (the C table's self_links: our
    pid_for_children for pid, both time links for time); a type differs when
    any of them does.  OSError when the target's link cannot be read.
    """
    import _pyns_boot

    result = []
    for kind in _pyns_boot.kinds():
        theirs = f"/proc/{pid}/ns/{kind.name}"
        ours = ["/proc/self/ns/" + link for link in kind.self_links]
        if not os.path.lexists(theirs) or not all(os.path.lexists(link) for link in ours):
            continue  # the kernel does not offer this type
        their_stat = os.stat(theirs)
        for link in ours:
            own_stat = os.stat(link)
            if (their_stat.st_dev, their_stat.st_ino) != (own_stat.st_dev, own_stat.st_ino):
                result.append(kind.name)
                break
    return result
