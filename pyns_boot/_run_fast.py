"""The pyns-boot command's entry, and ``run``'s common path: no argparse, one module.

``pyns-boot run`` runs its program in this process, so everything the
command loads before the program starts is start-up time of that program:
this module is all of the package that the common command lines load
(``run -t PID`` with type options or ``--all``, ``--netns NAME``, and
``-c CODE``, ``-- script.py`` or ``-- -m MODULE``), the C helper aside.  It
holds the rules that those share with the rest of the command (the type
options, the program's forms, running it as ``__main__``) and few code
objects and no classes: each costs instructions to load at every start
(docs/cli.md, "One interpreter").  Everything else, and any doubt (a
reference that does not check, a process that is gone, a script that is not
a Python file here), goes to pyns_boot.cli, whose argparse is the one
authority on the command line and whose messages say what is wrong; its
program's rarer forms are pyns_boot._run_program's.  No ``from
__future__``: quoted annotations (tests/test_startup_imports.py).
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable, Sequence

    Program = Any  # a SimpleNamespace: parse() says which attributes
    Args = Any  # a SimpleNamespace with argparse's attributes for run

#: types.SimpleNamespace, without importing types.
_Namespace: "Callable[..., Any]" = type(sys.implementation)

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
_TYPE_FLAGS = {flag: t for t, flags, _ in TYPE_OPTIONS for flag in flags}


def main() -> "int | None":
    """The pyns-boot command's first step (its script's, and python -m pyns_boot's): ``run`` with a common
    command line, here (the program's status); None: everything else, for pyns_boot.cli.main(), which the
    caller imports (this module is below pyns_boot.cli, which builds on its rules)."""
    arguments = sys.argv[1:]
    return run(arguments[1:]) if arguments[:1] == ["run"] else None


def run(arguments: "Sequence[str]") -> "int | None":
    """``pyns-boot run ARGUMENTS`` when it is a common command line (the program's status); None: in doubt,
    for pyns_boot.cli to do (and to report what is wrong).

    The steps of cli.cmd_run, for -t PID with type options or --all, or --netns NAME alone."""
    options, words = split_run_argv(arguments)
    args = fast_run_args(options)
    if args is None or args.container is not None or not args.check or not words:
        return None
    program = parse(words)
    if program is None or not can_join_here():
        return None  # in doubt; or cli.py execs a fresh interpreter
    import _pyns_boot

    if not os.path.exists(os.path.join(os.path.dirname(_pyns_boot.__file__ or ""), "pyns_boot.pth")):
        return None  # not installed as the hook needs (pyns_boot._sitedirs.hook_blocker): cli.py says why
    target, name = args.target, args.netns
    types = [t for t, _, _ in TYPE_OPTIONS if getattr(args, t) == FROM_TARGET]
    variables = {}
    start = None
    try:
        if name is not None:
            # --netns NAME alone (pyns_boot._cli_namespaces has the rules, and the messages)
            if target is not None or args.all or types or not name or "/" in name or name in (".", ".."):
                return None
            _pyns_boot.check_reference("net", "/run/netns/" + name)
            variables["gons_netns"] = name
        elif target is not None and target > 0:
            start = process_start(target)
            for ns_type in differing_types(target) if args.all else types:
                path = f"/proc/{target}/ns/{ns_type}"
                _pyns_boot.check_reference(ns_type, path)  # as the hook will use it
                variables["gons_" + ns_type] = path
        if not variables or not prepare(program, "gons_mnt" in variables):
            return None
        if start is not None and process_start(target) != start:
            return None  # gone since its namespaces were read: cli.py says so
    except (OSError, ValueError, IndexError):
        return None
    return start_here(program, variables)


def split_run_argv(argv: "Sequence[str]") -> "tuple[list[str], list[str]]":
    """Split ``run``'s arguments into its options and what goes to the interpreter.

    The program starts at the first ``--`` (dropped) or ``-c`` (kept, with
    everything after it, as python would get it).  ``-m`` is the mount
    namespace, as in nsenter: a module runs with ``-- -m MODULE``.
    """
    for i, arg in enumerate(argv):
        if arg == "--":
            return list(argv[:i]), list(argv[i + 1 :])
        if arg[:2] == "-c":
            return list(argv[:i]), list(argv[i:])
    return list(argv), []


def fast_run_args(options: "Sequence[str]") -> "Args | None":
    """run's options parsed without argparse, for the common command lines only; None: ask argparse.

    Takes -t/--target PID, -a/--all, --container NAME, --engine TOOL, --netns NAME, --no-check and the
    type options without a PATH (--net, -n, ...): the same attributes that the parser makes of them.  Anything
    else (a PATH, --order, -h, an unknown or abbreviated option, a usage error) goes to argparse, which stays
    the one authority on the command line; this only skips importing it.
    """
    values = {
        "command": "run",
        "target": None,
        "all": False,
        "container": None,
        "engine": None,
        "containerd_namespace": None,
        "verbose": False,
        "netns": None,
        "order": None,
        "check": True,
        "script": None,
        "code": None,
        "wd": None,
        "setuid": None,
        "setgid": None,
    }  # type: dict[str, Any]
    for ns_type, _, _ in TYPE_OPTIONS:
        values[ns_type] = None
    count = len(options)
    i = 0
    while i < count:
        option = options[i]
        following = options[i + 1] if i + 1 < count else None
        if option in _FAST_FLAGS:
            values[_FAST_FLAGS[option]] = option != "--no-check"
        elif option in _TYPE_FLAGS and (following is None or following.startswith("-")):
            values[_TYPE_FLAGS[option]] = FROM_TARGET
        elif option in _FAST_VALUES and following is not None and not following.startswith("-"):
            if option in ("-t", "--target"):
                if not following.isdigit():
                    return None
                values["target"] = int(following)
            elif option == "--engine" and following not in CONTAINER_ENGINES:
                return None
            else:
                values[_FAST_VALUES[option]] = following
            i += 1
        else:
            return None
        i += 1
    return _Namespace(**values)


def process_start(pid: int) -> str:
    """The start time of a process (field 22 of /proc/PID/stat): tells it from a later one with the same pid.

    OSError when it cannot be read, ProcessLookupError for a zombie (it has no namespaces left)."""
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[:1] in ([b"Z"], [b"X"]):
        raise ProcessLookupError(pid)
    return fields[19].decode("ascii", "replace") if len(fields) > 19 else ""


def differing_types(pid: int) -> "list[str]":
    """Every namespace type of the target that a join would change in this process.

    The target's namespace of each type is compared with the links of this
    process that the hook compares it with (the C table's self_links: our
    pid_for_children for pid, both time links for time); a type differs when
    any of them does.  A type the kernel does not offer (no link) is left
    out; OSError when the target's link cannot be read.
    """
    import _pyns_boot

    result = []
    for kind in _pyns_boot.kinds():
        try:
            theirs = os.stat(f"/proc/{pid}/ns/{kind.name}")
            ours = [os.stat("/proc/self/ns/" + link) for link in kind.self_links]
        except FileNotFoundError:
            continue  # the kernel does not offer this type (or the process is gone: no types, for the caller)
        for own in ours:
            if (own.st_dev, own.st_ino) != (theirs.st_dev, theirs.st_ino):
                result.append(kind.name)
                break
    return result


# ---- the program: python's command line, read here ----


def names_an_interpreter(word: str) -> bool:
    """python, python3, python3.13 or a path to one: the program's first word names an interpreter (pyns-boot
    run -- python app.py; pyns_boot._run_program.parse takes it)."""
    name = word.rpartition("/")[2]
    return name == "python" or (name.startswith("python") and name[6:].replace(".", "").isdigit())


def parse(program: "Sequence[str]", after_interpreter: bool = False) -> "Program | None":
    """The program of python's command line ``python PROGRAM``: ``-c CODE``, ``-m MODULE`` or a script path
    (a file, a directory or zip file with ``__main__.py``, or a console script's name), each with its
    arguments; None when it needs a fresh interpreter (interpreter options, ``-`` for stdin, an incomplete -c
    or -m, for the command line's usage error) or names an interpreter first (pyns_boot._run_program.parse
    takes that, and passes what follows it with after_interpreter).

    A program: kind ("code", "module", "path", "command" once a console script is found), value, args
    (sys.argv), orig_argv (what python's own command line would have been), source (a script read on this
    side before the joins), filename (what python opens: absolute from 3.9 on), path0 (sys.path[0] as
    python sets it, None: leave it), path_kind ("script", or "importer": a directory or zip file), and
    read_later (not on this side: the function that opens it after the joins, in the target's mount namespace;
    None).
    """
    first = program[0]
    if first[:2] in ("-c", "-m"):
        if len(first) > 2:
            value, rest = first[2:], program[1:]
        elif len(program) > 1:
            value, rest = program[1], program[2:]
        else:
            return None
        kind, args = ("code" if first[1] == "c" else "module"), [first[:2], *rest]
    elif first.startswith("-") or (not after_interpreter and names_an_interpreter(first)):
        return None
    else:
        kind, value, args = "path", first, list(program)
    return _Namespace(
        kind=kind,
        value=value,
        args=args,
        orig_argv=[sys.executable, *program],
        source=None,
        filename=value,
        path0=None,
        path_kind="script",
        read_later=None,
    )


def prepare(program: "Program", mnt_joined: bool) -> bool:
    """Resolve the program on this side, before any join, in the common cases: -c CODE, -m MODULE, and a
    Python script that is a file here (read now).  False: another case, for pyns_boot._run_program.prepare
    (a console script by name, a directory or zip file, a path that is not here) or for its message (a
    file that is not readable, not Python).  Imports nothing the program would not load itself (runpy for
    -m, as python -m does)."""
    safe_path = sys.flags.isolated or getattr(sys.flags, "safe_path", False)
    kind = program.kind
    if kind == "code":
        program.path0 = None if safe_path else ""
        return True
    if kind == "module":
        if not program.value or program.value[0] == "-":
            return False
        program.path0 = None if safe_path else os.getcwd()
        import runpy  # noqa: F401  (loaded by python -m too; here before the joins)

        return True
    path = program.value
    try:
        with open(path, "rb") as file:
            source = file.read()
    except OSError:
        return False  # a directory, not here, not readable: _run_program knows which and what to say
    if is_zip(source) or not_python(source) is not None:
        return False
    program.source = source
    program.filename = path if sys.version_info < (3, 9) else os.path.abspath(path)  # what __file__ becomes
    if not safe_path:
        program.path0 = os.path.dirname(os.path.realpath(path))
    return True


#: pip's console script for a long interpreter path: /bin/sh runs the exec line, python reads a string.
_PIP_TRAMPOLINE = b"'''exec' "


def not_python(source: bytes) -> "str | None":
    """What a file that is surely not Python source is ("an ELF executable", ...), or None."""
    if source[:4] == b"\x7fELF":
        return "an ELF executable"
    if b"\0" in source[:1024]:
        return "a binary file"
    if source[:2] == b"#!":
        first, _, rest = source.partition(b"\n")
        if b"python" not in first and not rest.startswith(_PIP_TRAMPOLINE):
            return "a script for " + os.fsdecode(first[2:].strip().split(b" ")[0] or b"?")
    return None


def is_zip(data: bytes) -> bool:
    """A zip archive (a zipapp may start with a #! line): its end-of-central-directory record."""
    return b"PK\x05\x06" in data[-65557:]


# ---- the joins, here ----


def helper() -> "ModuleType":
    """The C helper, loaded as pyns_boot.pth loads it: from its file beside the package's directory, without a
    search of sys.path (which the command's imports pay for otherwise); by name where it is not there."""
    loaded = sys.modules.get("_pyns_boot")
    if loaded is not None:
        return loaded
    try:
        import _frozen_importlib_external as external

        path = os.path.dirname(os.path.dirname(__file__)) + "/_pyns_boot.abi3.so"
        return external._bootstrap._load(external.spec_from_file_location("_pyns_boot", path))  # type: ignore[attr-defined,no-any-return]
    except Exception:
        import _pyns_boot

        return _pyns_boot


def can_join_here(wait: float = 0.0) -> bool:
    """The start-up hook can act for the program in this process: it has not acted here yet (it acts once per
    process; a pyns-boot started with gons_* set used that once), and no other thread runs (one that a .pth
    file started: a fresh interpreter's hook runs before the .pth files that sort after pyns_boot.pth, and
    mnt, user and time joins need a single thread).  Else run starts a fresh interpreter.

    wait: seconds to give threads that are ending (the container lookup's, joined, whose kernel threads can
    outlive the join for a moment) to be gone."""
    _pyns_boot = helper()
    if _pyns_boot.report() is not None or getattr(sys.modules.get("pyns_boot._hook_record"), "ran", False):
        return False
    deadline = None
    while True:
        try:
            if len(os.listdir("/proc/self/task")) == 1:
                return True
        except OSError:
            return False
        import time

        if deadline is None:
            deadline = time.monotonic() + wait
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


def start_here(program: "Program", variables: "dict[str, str]") -> int:
    """Join in this process, through the start-up hook's own code and failure policy, then run the program.

    variables: the gons_* (and after-the-joins) variables to act on; every other steering variable is
    removed first, as the command removes them from a started interpreter's environment.  With gons_pid
    this process stays outside as the supervisor and the program runs in its child (only that returns).
    """
    import posix

    import _pyns_boot

    environ = os.environ
    for name in (*_pyns_boot.VARIABLES, _pyns_boot.ORDER_VARIABLE, *_pyns_boot.AFTER_JOINS_VARIABLES):
        # looked up in os.environ's dict of byte keys, as pyns_boot.pth does: `name in os.environ` raises and
        # catches a KeyError for each name that is not set
        if name.encode() in posix.environ:
            del environ[name]
    environ.update(variables)
    if not (sys.flags.isolated or getattr(sys.flags, "safe_path", False)) and sys.path:
        # sys.path[0] as python sets it for the program, in place of this command's (its script's directory);
        # a mnt join with keep-imports then remaps it with the rest
        sys.path[0] = program.path0 if program.path0 is not None else ""
    # a failure now stops the program (125), as at a python start (pyns_boot._policy; run_command sets it too)
    _pyns_boot.program_started = True
    sys.stdout.flush()
    sys.stderr.flush()
    _pyns_boot.run()
    run_prepared(program)
    return 0


# ---- after the joins: run it as __main__ ----


def run_prepared(program: "Program") -> None:
    """Run the program as python would run it as __main__, in this process.

    Returns when the program returns; SystemExit and any other exception
    propagate as from a python start (tracebacks shown without this
    command's own frames).
    """
    command_main = sys.modules["__main__"].__dict__
    original_hook = sys.excepthook

    def excepthook(kind: "type[BaseException]", value: "BaseException", tb: "Any") -> None:
        # An uncaught exception's traceback starts at the program, not at this command's frames (its script's
        # module, command_main, and pyns_boot's modules) that run it.
        while tb is not None and (
            tb.tb_frame.f_globals is command_main or str(tb.tb_frame.f_globals.get("__name__")).startswith("pyns_boot")
        ):
            tb = tb.tb_next
        original_hook(kind, value.with_traceback(tb), tb)  # tb None: a SyntaxError shows as python shows it

    sys.excepthook = excepthook
    sys.argv[:] = program.args
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = program.orig_argv
    if program.read_later is not None:
        program.read_later(program)  # pyns_boot._run_program's
    # A new, empty __main__ as the interpreter makes it: what it put into this command's own __main__
    # (__builtins__, and __annotations__ where this version adds it) and no more.
    main = type(sys)("__main__")
    main.__builtins__ = command_main["__builtins__"]  # type: ignore[attr-defined]
    if "__annotations__" in command_main:
        main.__annotations__ = {}
    main.__loader__ = sys.modules["_frozen_importlib"].BuiltinImporter
    sys.modules["__main__"] = main
    try:
        if program.kind == "module":
            import runpy

            sys.argv[0] = "-m"
            runpy._run_module_as_main(program.value, alter_argv=True)  # type: ignore[attr-defined]
        elif program.path_kind == "importer":
            import runpy

            runpy._run_module_as_main("__main__", alter_argv=False)  # type: ignore[attr-defined]
        elif program.kind == "code":
            # exec of a string compiles it as python -c does ("<string>", no future flags: this module has none),
            # without builtin compile()'s first-use cost (_pyns_boot.compile_program says which)
            dedent = getattr(helper(), "dedent_code", None)  # 3.14+ python -c dedents CODE; None: a stale helper
            exec(dedent(program.value) if dedent is not None else program.value, main.__dict__)
        else:
            import _pyns_boot

            source = program.source
            if b"\0" in source:
                raise SyntaxError("source code cannot contain null bytes", (program.filename, 0, 0, ""))
            main.__file__ = program.filename
            main.__cached__ = None  # type: ignore[attr-defined]
            # the path as the program's imports reach it after the joins (through the kept root after a mnt join)
            remap = getattr(sys.modules.get("pyns_boot._keep_imports"), "remap", None)
            reachable = remap(os.path.abspath(program.filename)) if remap is not None else program.filename
            main.__loader__ = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", reachable)
            # compiled as python compiles the script it runs (not with builtin compile(): see
            # _pyns_boot.compile_program)
            exec(_pyns_boot.compile_program(source, program.filename), main.__dict__)
    except SystemExit:
        if sys.excepthook is excepthook:
            sys.excepthook = original_hook
        raise
    # Not needed any more: a function of this module left as sys.excepthook keeps the module alive into the
    # interpreter's finalization, which then costs 0.5 M instructions more (callgrind, 3.13)
    if sys.excepthook is excepthook:
        sys.excepthook = original_hook
