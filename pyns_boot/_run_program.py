"""``pyns-boot run``'s program, run in this very process after the joins: its rarer forms and its errors.

As ``coverage run`` runs a program, ``pyns-boot run`` does not start a
second interpreter: it reads the program on this side (before any join),
sets the gons_* variables in its own environment, lets the start-up hook act
on them in this process (the same C and Python code as at an interpreter's
start, the failure policy included), then runs the program as ``__main__``.
What the program can tell apart from a ``python`` start is listed in
docs/cli.md ("One interpreter").

The common forms (-c CODE, -m MODULE, a Python script here) and the run
itself are pyns_boot._run_fast's, which the command loads first: this
module adds what the command line of pyns_boot.cli may hold besides: the
interpreter named first (``-- python app.py``), a console script of this
environment by name, a directory or zip file with ``__main__``, a script
that is only in the target's mount namespace (read after the joins), and
the one-line errors for a program that cannot run.

A program given with interpreter options (``-- -X dev app.py``, ``-u``,
``-W``, ``-I``, ...) or read from stdin needs a fresh interpreter:
:func:`parse` returns None for it and the command execs one, as before.
"""

import os
import sys

from pyns_boot import _run_fast

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, Sequence

    from pyns_boot._run_fast import Program

#: python's exit status for a script it cannot open (and for usage errors).
CANNOT_OPEN = 2


class ProgramError(Exception):
    """The program cannot be run: one line for stderr, and python's exit status for it (2 also for a
    command line that names no program python would run)."""

    def __init__(self, message: str, status: int = CANNOT_OPEN) -> None:
        super().__init__(message)
        self.status = status


def parse(program: "Sequence[str]") -> "Program | None":
    """The program of ``run``'s command line, or None when it needs a fresh interpreter.

    ``-c CODE``, ``-m MODULE``, ``script.py``, a directory or zip file with
    ``__main__.py``, and ``NAME`` (a console script of this environment) run
    here (pyns_boot._run_fast.parse); so does each of them after ``python``
    (this environment's interpreter, by name or path).  Interpreter options
    and stdin go to a fresh interpreter (None), and so does an incomplete -c
    or -m (for the command line's usage error).  Raises ProgramError for
    another interpreter.
    """
    program = list(program)
    if program and _run_fast.names_an_interpreter(program[0]):
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
        return _run_fast.parse(program, after_interpreter=True)
    return _run_fast.parse(program)


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

    Sets program.source, filename, path0 and path_kind (the common cases:
    pyns_boot._run_fast.prepare).  A path that is not here is left to be
    opened after the joins when they switch the mount namespace
    (mnt_joined), as python started there would open it; else it raises
    ProgramError, as python would fail.  Nothing is imported here that the
    program would not load itself, but sysconfig to find a console script by
    name.
    """
    if _run_fast.prepare(program, mnt_joined):
        return
    if program.kind == "module":
        raise ProgramError("-- -m takes a module name, as python -m does")
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
            program.read_later = read_after_the_joins
            return
        raise ProgramError(_cannot_open(path, "No such file or directory", mnt_joined))
    _read_path(program, path)


def _read_path(program: "Program", path: str) -> None:
    """A script, a directory or zip file with __main__, read or checked here."""
    safe_path = sys.flags.isolated or getattr(sys.flags, "safe_path", False)
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
    if _run_fast.is_zip(source):
        program.path_kind = "importer"
        program.path0 = absolute
        return
    what = _run_fast.not_python(source)
    if what is not None:
        raise ProgramError(
            f"{path} is not a Python program ({what}): pyns-boot run runs Python programs; "
            "for any other program use nsenter(1) with the same options"
        )
    program.source = source
    if not safe_path:
        program.path0 = os.path.dirname(os.path.realpath(path))


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


# ---- after the joins ----


def read_after_the_joins(program: "Program") -> None:
    """A script that is not on this side: python started in the target's mount namespace opens it there.
    Exits with python's status for it when it is not there either, or cannot run."""
    try:
        if not os.path.lexists(program.filename):
            raise ProgramError(_cannot_open(program.filename, "No such file or directory", True))
        _read_path(program, program.filename)
    except ProgramError as error:
        exit_with(error)
    if program.path0 is not None and sys.path:
        sys.path[0] = program.path0


def exit_with(error: "ProgramError") -> "NoReturn":
    sys.stderr.write(f"pyns-boot run: {error}\n")
    sys.stderr.flush()
    sys.exit(error.status)
