"""pyns-boot run's fast path: the common command lines without argparse, to the same result.

`pyns-boot run` runs the program in its own process, so what the command
imports is start-up time of every program it runs; argparse, json, shlex and
textwrap (all of which import re) are left out for the command lines that
the fast path reads (pyns_boot._run_fast), and so is pyns_boot.cli itself for
the commonest ones.  It must read them exactly as the parser does, and leave
every other command line to the parser.
"""

from __future__ import annotations

import subprocess
from typing import Callable

import pytest
from nsutil import Holder, Venv, clean_env

from pyns_boot._run_fast import fast_run_args as _fast_run_args
from pyns_boot._run_fast import split_run_argv
from pyns_boot.cli import build_parser

FAST = [
    ["-t", "42", "--all"],
    ["--target", "42", "-a"],
    ["-t", "42", "--net", "--uts", "-i"],
    ["-t", "42", "-n", "-u", "--mnt", "--mount", "-p", "-C", "-T", "-U", "--ipc", "--time", "--user", "--cgroup"],
    ["--container", "web"],
    ["--container", "web", "--engine", "podman", "--net"],
    ["--container", "web", "--engine", "lxc"],
    ["--no-check", "-t", "7", "--net"],
    ["-t", "42", "--all", "--no-check", "--uts"],
    ["--netns", "blue"],
    [],
]
SLOW = [
    ["-t", "42", "--net", "/run/netns/blue"],  # a PATH
    ["--net=/run/netns/blue"],
    ["--target=42", "--all"],
    ["-t42", "--all"],
    ["-nu", "-t", "42"],  # combined short options
    ["--tar", "42", "--all"],  # an abbreviation
    ["--order", "!mnt,net", "-t", "1", "--net"],
    ["-h"],
    ["--help"],
    ["-t", "-5", "--net"],
    ["-t", "x", "--net"],
    ["--engine", "rkt", "--container", "web"],  # not an engine
    ["--container", "web", "-v"],
    ["--container", "web", "--containerd-namespace", "k8s.io"],
    ["--container", "--net"],
    ["script.py"],
    ["--bogus"],
]


@pytest.mark.unit
@pytest.mark.parametrize("argv", FAST, ids=" ".join)
def test_fast_path_reads_what_the_parser_reads(argv: list[str]) -> None:
    fast = _fast_run_args(argv)
    assert fast is not None
    assert vars(fast) == vars(build_parser().parse_args(["run", *argv]))


@pytest.mark.unit
@pytest.mark.parametrize("argv", SLOW, ids=" ".join)
def test_other_command_lines_go_to_the_parser(argv: list[str]) -> None:
    assert _fast_run_args(argv) is None


@pytest.mark.unit
def test_program_split_first() -> None:
    options, program = split_run_argv(["-t", "1", "--net", "-c", "pass", "--all"])
    assert (options, program) == (["-t", "1", "--net"], ["-c", "pass", "--all"])
    assert _fast_run_args(options) is not None


def first_interpreter_imports(venv: Venv, *args: str) -> set[str]:
    """What pyns-boot ARGS imports, the program's own imports included (it runs in the same process)."""
    result = subprocess.run(
        [venv.python, "-X", "importtime", "-m", "pyns_boot", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}


def test_run_imports_neither_argparse_nor_re(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net", "uts"))
    imported = first_interpreter_imports(hook_venv, "run", "-t", str(h.pid), "--all", "-c", "pass")
    assert "pyns_boot._run_fast" in imported and "pyns_boot._run_program" in imported
    avoided = imported & {
        *("argparse", "re", "json", "shlex", "textwrap", "subprocess"),
        *("pyns_boot.cli", "pyns_boot._cli_namespaces", "pyns_boot._errors", "pyns_boot._doctor"),
    }
    assert not avoided, avoided


def test_run_through_argparse_imports_no_doctor(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    # A PATH and --order take the parser's path: run still needs nothing of the doctor (pyns_boot._sitedirs).
    h = holder(("net", "uts"))
    imported = first_interpreter_imports(hook_venv, "run", "--net", h.ref("net"), "--order", "net", "--", "-c", "pass")
    assert {"argparse", "pyns_boot._cli_namespaces", "pyns_boot.cli", "pyns_boot._sitedirs"} <= imported
    assert not imported & {"pyns_boot._doctor", "pyns_boot._startup_order", "subprocess"}, imported


def test_usage_error_in_the_fast_path_is_the_parsers(hook_venv: Venv) -> None:
    # -t without type options: the fast path reads it, the spec refuses it, exit 2 with the usage message.
    result = subprocess.run(
        [str(hook_venv.path / "bin" / "pyns-boot"), "run", "-t", "1", "-c", "pass"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("pyns-boot run: error: -t 1 names a process, but no namespace")
