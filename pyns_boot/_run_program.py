"""``pyns-boot run``'s program, run in this very process after the joins.

As ``coverage run`` runs a program, ``pyns-boot run`` does not start a
second interpreter: it reads the program on this side (:func:`prepare`,
before any join), sets the gons_* variables in its own environment, lets
the start-up hook act on them in this process (the same C and Python code
as at an interpreter's start, the failure policy included), then runs the
program as ``__main__`` (:func:`run_prepared`).  What the program can tell
apart from a ``python`` start is listed in docs/cli.md ("One interpreter").

A program given with interpreter options (``-- -X dev app.py``, ``-u``,
``-W``, ``-I``, ...) or read from stdin needs a fresh interpreter:
:func:`parse` returns None for it and the command execs one, as before.
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType, TracebackType
    from typing import Any, Callable, NoReturn, Sequence

#: python's exit status for a script it cannot open (and for usage errors).
CANNOT_OPEN = 2
#: True from the moment start_here() lets the hook act for the program: a failure is then the program's
#: (pyns_boot._policy applies the policy as at a python start, not the command's carrying on).
program_started = False


class ProgramError(Exception):
    """The program cannot be run: one line for stderr, and python's exit status for it (2 also for a
    command line that names no program python would run)."""

    def __init__(self, message: str, status: int = CANNOT_OPEN) -> None:
        super().__init__(message)
        self.status = status


class Program:
    """What the command line asked to run, as python's own command line would say it.

    kind: "code" (-c), "module" (-m), "path" (a script, a directory or a zip
    file), "command" (a console script of this environment, by name).
    """

    def __init__(self, kind: str, value: str, args: "Sequence[str]") -> None:
        self.kind = kind
        self.value = value
        self.args = list(args)
        #: What python's own command line would have been (sys.orig_argv).
        self.orig_argv: list[str] = []
        #: A script's source, read on this side before the joins (None: read it after them).
        self.source: bytes | None = None
        #: The file python would open: for a script the path as python makes it (absolute from 3.9 on).
        self.filename = value
        #: sys.path[0] as python would set it, before the joins (None: leave sys.path alone).
        self.path0: str | None = None
        #: "script" or "importer" (a directory or zip file with __main__) once a path is resolved.
        self.path_kind = "script"
        #: Not on this side: opened after the joins, in the target's mount namespace.
        self.read_later = False


def parse(program: "Sequence[str]") -> "Program | None":
    """The program of ``run``'s command line, or None when it needs a fresh interpreter.

    ``-c CODE``, ``-m MODULE``, ``script.py``, a directory or zip file with
    ``__main__.py``, and ``NAME`` (a console script of this environment) run
    here; so does each of them after ``python`` (this environment's
    interpreter, by name or path).  Interpreter options and stdin go to a
    fresh interpreter (None), and so does an incomplete -c or -m (for the
    command line's usage error).  Raises ProgramError for another
    interpreter.
    """
    program = list(program)
    if program and _names_an_interpreter(program[0]):
        if not _is_this_interpreter(program[0]):
            raise ProgramError(
                f"{program[0]!r}: pyns-boot run runs the program with this environment's interpreter "
                f"{sys.executable}; give the program without it (pyns-boot run [OPTIONS] -- "
                f"{' '.join(program[1:2]) or 'script.py'} "
                "...), or install pyns_boot into the environment of that interpreter and use its pyns-boot"
            )
        program = program[1:]
        if not program:
            raise ProgramError("no program after the interpreter: give -- script.py [ARGS], -- -m MODULE or -c CODE")
    first = program[0]
    if first in ("-c", "-m") and len(program) < 2:
        return None
    if first == "-c" or (first.startswith("-c") and not first.startswith("--")):
        code, args = (first[2:], program[1:]) if len(first) > 2 else (program[1], program[2:])
        found = Program("code", code, ["-c", *args])
    elif first == "-m" or (first.startswith("-m") and not first.startswith("--")):
        module, args = (first[2:], program[1:]) if len(first) > 2 else (program[1], program[2:])
        found = Program("module", module, ["-m", *args])
    elif first.startswith("-"):
        return None  # interpreter options, or - (stdin): a fresh interpreter
    else:
        found = Program("path", first, program)
    found.orig_argv = [sys.executable, *program]
    return found


def _names_an_interpreter(word: str) -> bool:
    name = os.path.basename(word)
    return (name.startswith("python") and name[6:].replace(".", "").isdigit()) or name == "python"


def _is_this_interpreter(word: str) -> bool:
    """python, python3, python3.X of this version, or a path to this interpreter."""
    if "/" not in word:
        major, minor = sys.version_info[:2]
        if word in ("python", f"python{major}", f"python{major}.{minor}"):
            return True
        import shutil

        found = shutil.which(word)
        return found is not None and os.path.realpath(found) == os.path.realpath(sys.executable)
    return os.path.realpath(word) == os.path.realpath(sys.executable)


# ---- before the joins: read what runs from this side ----


def prepare(program: "Program", mnt_joined: bool) -> None:
    """Resolve the program on this side, before any join: read a script, find a console script.

    Sets program.source, filename, path0 and path_kind.  A path that is not
    here is left to be opened after the joins when they switch the mount
    namespace (mnt_joined), as python started there would open it; else it
    raises ProgramError, as python would fail.  Nothing is imported here that
    the program would not load itself (runpy for -m, as python -m does), but
    sysconfig to find a console script by name.
    """
    safe_path = bool(sys.flags.isolated or getattr(sys.flags, "safe_path", False))
    if program.kind == "code":
        program.path0 = None if safe_path else ""
        return
    if program.kind == "module":
        if not program.value or program.value.startswith("-"):
            raise ProgramError("-- -m takes a module name, as python -m does")
        program.path0 = None if safe_path else os.getcwd()
        import runpy  # noqa: F401  (loaded by python -m too; here before the joins)

        return
    path = program.value
    if not os.path.lexists(path) and "/" not in path:
        script = _environment_command(path)
        if script is not None:
            program.kind = "command"
            program.value = program.args[0] = program.filename = script
            program.orig_argv = [sys.executable, *program.args]
            path = script
    if not os.path.lexists(path):
        if mnt_joined:
            # Not here: opened after the joins, as python started in the target would open it (from 3.9 on
            # by the absolute path it makes at its start, here).
            program.filename = os.path.abspath(path)
            program.read_later = True
            return
        raise ProgramError(_cannot_open(path, "No such file or directory", mnt_joined))
    _read_path(program, path, safe_path)


def _read_path(program: "Program", path: str, safe_path: bool) -> None:
    """A script, a directory or zip file with __main__, read or checked here."""
    absolute = os.path.abspath(path)
    program.filename = path if sys.version_info < (3, 9) else absolute  # what __file__ becomes
    if os.path.isdir(path):
        if not any(os.path.exists(os.path.join(path, "__main__" + s)) for s in (".py", ".pyc")):
            raise ProgramError(f"can't find '__main__' module in {absolute!r}", status=1)
        program.path_kind = "importer"
        program.path0 = absolute
        return
    try:
        with open(path, "rb") as file:
            source = file.read()
    except OSError as error:
        raise ProgramError(_cannot_open(path, error.strerror or str(error), False)) from None
    if _is_zip(source):
        program.path_kind = "importer"
        program.path0 = absolute
        return
    what = _not_python(source)
    if what is not None:
        raise ProgramError(
            f"{path} is not a Python program ({what}): pyns-boot run runs Python programs; "
            "for any other program use nsenter(1) with the same options"
        )
    program.source = source
    if not safe_path:
        program.path0 = os.path.dirname(os.path.realpath(path))


#: pip's console script for a long interpreter path: /bin/sh runs the exec line, python reads a string.
_PIP_TRAMPOLINE = b"'''exec' "


def _not_python(source: bytes) -> "str | None":
    """What a file that is surely not Python source is ("an ELF executable", ...), or None."""
    if source.startswith(b"\x7fELF"):
        return "an ELF executable"
    if b"\0" in source[:1024]:
        return "a binary file"
    if source.startswith(b"#!"):
        first, _, rest = source.partition(b"\n")
        if b"python" not in first and not rest.startswith(_PIP_TRAMPOLINE):
            return "a script for " + os.fsdecode(first[2:].strip().split(b" ")[0] or b"?")
    return None


def _is_zip(data: bytes) -> bool:
    """A zip archive (a zipapp may start with a #! line): its end-of-central-directory record."""
    return b"PK\x05\x06" in data[-65557:]


def _cannot_open(path: str, reason: str, looked_in_target: bool) -> str:
    where = " here, nor in the target's mount namespace" if looked_in_target else ""
    return (
        f"can't open file {os.path.abspath(path)!r}: {reason}{where} (pyns-boot run reads a script from this side "
        "before the joins: give its path here, -- -m MODULE, or a console script of this environment by name)"
    )


def _environment_command(name: str) -> "str | None":
    """The file of this environment's console script NAME (its bin directory), or None."""
    for directory in _command_directories():
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _command_directories() -> "list[str]":
    """Where this environment's console scripts live: beside sys.executable (unresolved, as a venv's
    bin/), and the scripts directory of its install scheme."""
    directories = [os.path.dirname(sys.executable)]
    import sysconfig

    scripts = sysconfig.get_path("scripts")
    if scripts and scripts not in directories:
        directories.append(scripts)
    return directories


# ---- the joins, here ----


def can_join_here(wait: float = 0.0) -> bool:
    """The start-up hook can act for the program in this process: it has not acted here yet (it acts once per
    process; a pyns-boot started with gons_* set used that once), and no other thread runs (one that a .pth
    file started: a fresh interpreter's hook runs before the .pth files that sort after pyns_boot.pth, and
    mnt, user and time joins need a single thread).  Else run starts a fresh interpreter.

    wait: seconds to give threads that are ending (the container lookup's, joined, whose kernel threads can
    outlive the join for a moment) to be gone."""
    import _pyns_boot

    if _pyns_boot.report() is not None or getattr(sys.modules.get("pyns_boot._hook_record"), "ran", False):
        return False
    import time

    deadline = time.monotonic() + wait
    while True:
        try:
            if len(os.listdir("/proc/self/task")) == 1:
                return True
        except OSError:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


def start_here(program: "Program", variables: "dict[str, str]") -> int:
    """Join in this process, through the start-up hook's own code and failure policy, then run the program.

    variables: the gons_* (and after-the-joins) variables to act on; every other steering variable is
    removed first, as the command removes them from a started interpreter's environment.  With gons_pid
    this process stays outside as the supervisor and the program runs in its child (only that returns).
    """
    import _pyns_boot

    global program_started
    for name in (*_pyns_boot.VARIABLES, _pyns_boot.ORDER_VARIABLE, *_pyns_boot.AFTER_JOINS_VARIABLES):
        os.environ.pop(name, None)
    os.environ.update(variables)
    set_path0(program)
    program_started = True  # a failure now stops the program (125), as at a python start (pyns_boot._policy)
    sys.stdout.flush()
    sys.stderr.flush()
    _pyns_boot.run()
    try:
        run_prepared(program)
    except ProgramError as error:
        exit_with(error)
    return 0


# ---- after the joins: run it as __main__ ----


def run_prepared(program: "Program") -> None:
    """Run the program as python would run it as __main__, in this process.

    Returns when the program returns; SystemExit and any other exception
    propagate as from a python start (tracebacks shown without this
    command's own frames).
    """
    command_main = sys.modules["__main__"].__dict__
    _trim_tracebacks_of(command_main)
    sys.argv[:] = program.args
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = program.orig_argv
    if program.read_later:
        _read_after_the_joins(program)
    main = _fresh_main(command_main)
    if program.kind == "module":
        import runpy

        sys.argv[0] = "-m"
        runpy._run_module_as_main(program.value, alter_argv=True)  # type: ignore[attr-defined]
        return
    if program.path_kind == "importer":
        import runpy

        runpy._run_module_as_main("__main__", alter_argv=False)  # type: ignore[attr-defined]
        return
    if program.kind == "code":
        # exec of a string compiles it as python -c does ("<string>", no future flags: this module has none),
        # without builtin compile()'s first-use cost (_pyns_boot.compile_program says which)
        exec(program.value, main.__dict__)
        return
    main.__file__ = program.filename
    main.__cached__ = None
    loader_class = sys.modules["_frozen_importlib_external"].SourceFileLoader
    main.__loader__ = loader_class("__main__", _reachable(program.filename))
    exec(_compile_script(program), main.__dict__)


def _read_after_the_joins(program: "Program") -> None:
    """A script that is not on this side: python started in the target's mount namespace opens it there."""
    safe_path = bool(sys.flags.isolated or getattr(sys.flags, "safe_path", False))
    if not os.path.lexists(program.filename):
        raise ProgramError(_cannot_open(program.filename, "No such file or directory", True))
    _read_path(program, program.filename, safe_path)
    if program.path0 is not None and sys.path:
        sys.path[0] = program.path0


def set_path0(program: "Program") -> None:
    """Before the joins: sys.path[0] as python sets it for the program, in place of this command's
    (its console script's directory); a mnt join with keep-imports then remaps it with the rest."""
    safe_path = bool(sys.flags.isolated or getattr(sys.flags, "safe_path", False))
    if not safe_path and sys.path:
        sys.path[0] = program.path0 if program.path0 is not None else ""


def _reachable(path: str) -> str:
    """path as the program's imports reach it after the joins (through the kept root after a mnt join)."""
    kept = sys.modules.get("pyns_boot._keep_imports")
    remap: Callable[[str], str] | None = getattr(kept, "remap", None)
    return remap(os.path.abspath(path)) if remap is not None else path


def _compile_script(program: "Program") -> "CodeType":
    """The script compiled as python compiles the script it runs (not with builtin compile(): see
    _pyns_boot.compile_program); a NUL in it is python's SyntaxError."""
    import _pyns_boot

    assert program.source is not None
    if b"\0" in program.source:
        raise SyntaxError("source code cannot contain null bytes", (program.filename, 0, 0, ""))
    return _pyns_boot.compile_program(program.source, program.filename)


def _fresh_main(command_main: "dict[str, object]") -> "Any":
    """A new, empty __main__ in sys.modules, as the interpreter makes it: what it put into this command's
    own __main__ (__builtins__, and __annotations__ where this version adds it) and no more."""
    main = type(sys)("__main__")
    main.__builtins__ = command_main["__builtins__"]  # type: ignore[attr-defined]
    if "__annotations__" in command_main:
        main.__annotations__ = {}
    main.__loader__ = sys.modules["_frozen_importlib"].BuiltinImporter
    sys.modules["__main__"] = main
    return main


def _trim_tracebacks_of(command_main: "dict[str, object]") -> None:
    """An uncaught exception's traceback starts at the program, not at this command's frames (its script's
    module, command_main, and pyns_boot's modules) that run it."""
    original = sys.excepthook

    def excepthook(kind: "type[BaseException]", value: "BaseException", tb: "TracebackType | None") -> None:
        while tb is not None and (
            tb.tb_frame.f_globals is command_main or str(tb.tb_frame.f_globals.get("__name__")).startswith("pyns_boot")
        ):
            tb = tb.tb_next
        original(kind, value.with_traceback(tb) if tb is not None else value, tb)

    sys.excepthook = excepthook


def exit_with(error: "ProgramError") -> "NoReturn":
    sys.stderr.write(f"pyns-boot run: {error}\n")
    sys.stderr.flush()
    sys.exit(error.status)
