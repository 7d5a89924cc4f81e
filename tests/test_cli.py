"""pyns-boot status, env and run: real venvs, real namespaces, real child interpreters."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
from cliutil import clear_command, pyns_boot
from nsutil import (
    CHILD_TIMEOUT,
    EXIT_STATUS,
    HANG_TIMEOUT,
    PROBE,
    Holder,
    NamedNetns,
    Venv,
    as_user,
    clean_env,
    fresh_cwd,
    own_links,
    parse_probe,
    world_readable_dir,
)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


# ---------------------------------------------------------------- help and usage


def test_help_of_every_subcommand_reads_like_nsenter(hook_venv: Venv) -> None:
    top = pyns_boot(hook_venv, "--help")
    assert top.returncode == 0 and top.stderr == ""
    for command in ("status", "env", "run", "doctor"):
        assert command in top.stdout
    assert "nsenter -t 4242 -n -u python app.py" in top.stdout
    env_help = pyns_boot(hook_venv, "env", "--help")
    assert env_help.returncode == 0

    def listed(text: str, short: str, *longs: str) -> bool:
        # "-n [PATH], --net [PATH]" before Python 3.13, "-n, --net [PATH]" from 3.13 on
        pattern = re.escape(short) + r"( \S+)?, " + r"( \S+)?, ".join(re.escape(x) for x in longs)
        return re.search(pattern, text) is not None

    for short, *longs in (
        ("-t", "--target PID"),
        ("-a", "--all"),
        ("-n", "--net [PATH]"),
        ("-u", "--uts [PATH]"),
        ("-m", "--mnt", "--mount [PATH]"),
        ("-U", "--user [PATH]"),
        ("-C", "--cgroup [PATH]"),
        ("-T", "--time [PATH]"),
        ("-i", "--ipc [PATH]"),
        ("-p", "--pid [PATH]"),
    ):
        assert listed(env_help.stdout, short, *longs), (short, longs)
    run_help = pyns_boot(hook_venv, "run", "--help")
    assert run_help.returncode == 0
    # -m is the mount namespace in run too, as in nsenter; a module runs after --
    assert listed(run_help.stdout, "-m", "--mnt", "--mount [PATH]") and "-- -m MODULE" in run_help.stdout
    for short, *longs in (("-w", "--wd [DIR]"), ("-S", "--setuid UID"), ("-G", "--setgid GID")):
        assert listed(run_help.stdout, short, *longs) and listed(env_help.stdout, short, *longs), short
    for command in ("status", "doctor"):
        result = pyns_boot(hook_venv, command, "--help")
        assert result.returncode == 0 and "--json" in result.stdout
    # python -m pyns_boot is the same command
    assert pyns_boot(hook_venv, "env", "--help", module=True).stdout == env_help.stdout
    version = pyns_boot(hook_venv, "--version")
    assert version.returncode == 0 and version.stdout.startswith("pyns-boot 0.")


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "the following arguments are required: COMMAND"),
        (("env",), "name at least one namespace"),
        (("env", "-t", "1"), "-t 1 names a process, but no namespace"),
        (("env", "--net"), "--net without a PATH needs a target process"),
        (("env", "--all"), "--all needs a target process: add -t PID"),
        (("env", "--netns", "blue", "--net", "/run/netns/red"), "--netns and --net name the same namespace"),
        (("env", "--netns", "a/b"), "is not a network namespace name"),
        (("env", "-t", "notapid", "--net"), "invalid int value: 'notapid'"),
        (("env", "--nett", "/x"), "unrecognized arguments: --nett"),
        (("env", "--net", "/proc/self/ns/net", "--order", "net,bogus"), 'unknown namespace type "bogus" in gons_order'),
        (("env", "--net", "/proc/self/ns/net", "--order", "NET"), 'unknown namespace type "NET" in gons_order'),
        (
            ("env", "--net", "/proc/self/ns/net", "--order", "uts"),
            'gons_net is set to "/proc/self/ns/net", but net is not listed in gons_order "uts"',
        ),
        (("env", "--net", "/proc/self/ns/net", "--format", "xml"), "invalid choice: 'xml'"),
        (("run", "--net", "/proc/self/ns/net"), "no program"),
        (("run", "-t", "1", "--uts", "app.py"), "--uts took 'app.py' as its PATH: put -- before the program"),
        (("run", "-t", "1", "--all", "app.py"), "put -- before the program"),
        (("run", "--net", "/proc/self/ns/net", "-m", "--", "x.py"), "--mnt without a PATH needs a target process"),
        (("run", "--net", "/proc/self/ns/net", "--", "-m"), "-- -m takes a module name"),
        (("run", "--net", "/proc/self/ns/net", "--", "-m", "-x"), "-- -m takes a module name"),
        (
            ("run", "--net", "/proc/self/ns/net", "-m", "http.server"),
            "-m is the mount namespace (as in nsenter) and 'http.server' is no such file: to run a module, "
            "pyns-boot run [OPTIONS] -- -m http.server [ARGS]",
        ),
        (("run", "--net", "/proc/self/ns/net", "-w", "--", "x.py"), "-w/--wd without DIR means the working directory"),
        (("env", "--net", "/proc/self/ns/net", "-S", "-1"), "take a non-negative id"),
        (("run", "--net", "/proc/self/ns/net", "-c"), "-c takes the program's code"),
        (("bogus",), "invalid choice: 'bogus'"),
    ],
)
def test_usage_errors_exit_2_on_stderr(hook_venv: Venv, args: tuple[str, ...], message: str) -> None:
    result = pyns_boot(hook_venv, *args)
    assert result.returncode == 2, result
    assert message in result.stderr and result.stdout == ""


# ---------------------------------------------------------------- status


def test_status_without_variables(hook_venv: Venv) -> None:
    result = pyns_boot(hook_venv, "status")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines()[0] == "state:   inactive (the hook did not run)"
    data = json.loads(pyns_boot(hook_venv, "status", "--json").stdout)
    assert data["state"] == "inactive" and data["ok"] is True


def test_status_shows_the_switch_of_this_process(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net", "uts"))
    env = {"gons_net": h.ref("net"), "gons_uts": "/proc/self/ns/uts"}
    result = pyns_boot(hook_venv, "status", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "state:   succeeded"
    assert "  net     joined          {} (opened early)".format(h.ref("net")) in lines
    assert "  uts     already joined  /proc/self/ns/uts (opened early)" in lines
    data = json.loads(pyns_boot(hook_venv, "status", "--json", env=env).stdout)
    assert data["state"] == "succeeded" and data["namespaces"]["net"]["outcome"] == "joined"


def test_status_of_a_failed_hook(hook_venv: Venv) -> None:
    env = {"gons_net": "/etc/hostname"}
    # Under the default policy the hook stops every other program; pyns-boot carries on to report it.
    reported = pyns_boot(hook_venv, "status", env=env)
    assert reported.returncode == 1
    assert 'invalid gons_net reference "/etc/hostname"' in reported.stderr
    assert "the pyns-boot command carries on" in reported.stderr
    assert "state:   failed" in reported.stdout and "policy:  warn" in reported.stdout
    result = pyns_boot(hook_venv, "status", "--json", env={**env, "PYNS_BOOT_ON_ERROR": "warn"})
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["state"] == "failed" and data["failed"] == "net" and data["errno_name"] == "EINVAL"


def test_status_under_dash_S_is_not_run(hook_venv: Venv) -> None:
    env = {"gons_net": "/proc/self/ns/net", "PYTHONPATH": str(hook_venv.site_packages)}
    result = pyns_boot(hook_venv, "status", env=env, module=True, python_args=["-S"])
    assert result.returncode == 1
    assert "state:   not_run (the hook did not run)" in result.stdout
    assert "the interpreter was started with -S" in result.stdout


# ---------------------------------------------------------------- env


def test_env_eval_in_sh_moves_the_next_python(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net", "uts"))
    command = str(hook_venv.path / "bin" / "pyns-boot")
    script = f'eval "$({command} env -t {h.pid} --net --uts)" && exec {hook_venv.python} -c "$PROBE"'
    # Left over in the shell: with gons_order=ipc the new gons_net would be refused (not listed); the output
    # unsets them.  (pyns-boot itself starts with them: it is a Python of this environment too.)
    env = clean_env(PROBE=PROBE, gons_order="ipc", gons_ipc="/proc/self/ns/ipc")
    result = subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=fresh_cwd()
    )
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert report["links"]["net"] == h.link("net") and report["links"]["uts"] == h.link("uts")
    assert report["links"]["ipc"] == own_links()["ipc"]
    assert report["status"]["state"] == "succeeded" and report["status"]["namespaces"]["uts"]["outcome"] == "joined"
    assert report["env"] == {}


def test_env_shell_output_is_quoted(hook_venv: Venv, holder: Callable[..., Holder], tmp_path: Path) -> None:
    h = holder(("net",))
    awkward = tmp_path / "it's a $HOME; `x`\nnet"
    awkward.symlink_to(h.ref("net"))
    result = pyns_boot(hook_venv, "env", "--net", str(awkward))
    assert result.returncode == 0, result.stderr
    assert f"export gons_net={shlex.quote(str(awkward))}" in result.stdout
    shell = subprocess.run(
        ["sh", "-c", f'eval "$1" && exec {hook_venv.python} -c "$PROBE"', "sh", result.stdout],
        env=clean_env(PROBE=PROBE),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )
    assert shell.returncode == 0, shell.stderr
    assert parse_probe(shell.stdout)["links"]["net"] == h.link("net")
    # KEY=VALUE lines cannot hold a newline: refused, not cut short
    lines = pyns_boot(hook_venv, "env", "--net", str(awkward), "--format", "env")
    assert lines.returncode == 1 and "holds a newline" in lines.stderr and lines.stdout == ""


def test_env_formats_and_named_netns(hook_venv: Venv, netns: NamedNetns) -> None:
    as_json = pyns_boot(hook_venv, "env", "--netns", netns.name, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"gons_netns": netns.name}
    lines = pyns_boot(hook_venv, "env", "--netns", netns.name, "-f", "env", "--order", "net")
    assert lines.stdout.splitlines() == ["gons_netns=" + netns.name, "gons_order=net"]
    # KEY=VALUE lines, as env(1) or docker --env-file take them
    pairs = dict(line.split("=", 1) for line in lines.stdout.splitlines())
    child = subprocess.run(
        ["env", *("{}={}".format(*kv) for kv in pairs.items()), hook_venv.python, "-c", PROBE],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )
    assert child.returncode == 0, child.stderr
    assert parse_probe(child.stdout)["links"]["net"] == netns.link()


def test_env_all_is_every_namespace_that_differs(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net", "uts", "pid"))
    result = pyns_boot(hook_venv, "env", "-t", str(h.pid), "--all", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {f"gons_{t}": h.ref(t) for t in ("net", "pid", "uts")}
    # an explicit path overrides the target's
    mixed = pyns_boot(hook_venv, "env", "-t", str(h.pid), "-a", "--uts", "/proc/self/ns/uts", "--json")
    assert json.loads(mixed.stdout)["gons_uts"] == "/proc/self/ns/uts"
    # a process in all our namespaces: nothing to join
    same = subprocess.Popen(["sleep", "60"])
    try:
        shared = pyns_boot(hook_venv, "env", "-t", str(same.pid), "--all", "--json")
    finally:
        same.kill()
        same.wait()
    assert shared.returncode == 0 and json.loads(shared.stdout) == {}


def test_env_unknown_pid(hook_venv: Venv) -> None:
    pid = dead_pid()
    for args in (("env", "-t", str(pid), "--net"), ("env", "-t", str(pid), "--all")):
        result = pyns_boot(hook_venv, *args)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr == f"pyns-boot: no process with pid {pid}\n"


def test_env_and_run_zombie_target(hook_venv: Venv) -> None:
    zombie = subprocess.Popen(["true"])  # exits; not reaped until wait()
    try:
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)
        message = f"pyns-boot: process {zombie.pid} has exited (a zombie: it has no namespaces left)\n"
        for args in (("env", "-t", str(zombie.pid), "--net"), ("env", "-t", str(zombie.pid), "--all")):
            result = pyns_boot(hook_venv, *args)
            assert result.returncode == 1 and result.stdout == "" and result.stderr == message
        result = pyns_boot(hook_venv, "run", "-t", str(zombie.pid), "--net", "-c", "print('user code ran')")
        assert result.returncode == 1 and result.stdout == "" and result.stderr == message
    finally:
        zombie.wait()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: "/etc/hostname", "not a namespace reference (it is a regular file)"),
        (lambda d: str(d), "not a namespace reference (it is a directory)"),
        (lambda d: str(d / "missing"), "No such file or directory"),
        (lambda d: "/dev/null", "not a namespace reference (it is a character device)"),
        (lambda d: "/proc/self/ns/uts", "it is a namespace of type uts, not net"),
    ],
)
def test_env_path_that_is_not_a_network_namespace(
    hook_venv: Venv, tmp_path: Path, make: Callable[[Path], str], message: str
) -> None:
    path = make(tmp_path)
    result = pyns_boot(hook_venv, "env", "--net", path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f'pyns-boot: invalid -n/--net reference "{path}": {message}\n'


def test_env_fifo_does_not_hang(hook_venv: Venv, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = pyns_boot(hook_venv, "env", "--uts", str(fifo), timeout=HANG_TIMEOUT)
    assert result.returncode == 1
    assert (
        result.stderr == f'pyns-boot: invalid -u/--uts reference "{fifo}": not a namespace reference (it is a FIFO)\n'
    )


def test_env_no_check_and_late_references(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("mnt",))
    # net is opened after the mnt switch: it exists only inside, so it is not checked here
    args = ("env", "--mnt", h.ref("mnt"), "--net", "/run/inside/net", "--order", "!mnt,net", "--json")
    result = pyns_boot(hook_venv, *args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["gons_net"] == "/run/inside/net"
    # marked early: resolved (and checked) here
    early = pyns_boot(hook_venv, "env", "--mnt", h.ref("mnt"), "--net", "/run/inside/net", "--order", "!mnt,!net")
    assert early.returncode == 1 and "No such file or directory" in early.stderr
    unchecked = pyns_boot(hook_venv, "env", "--net", "/etc/hostname", "--no-check", "--json")
    assert unchecked.returncode == 0 and json.loads(unchecked.stdout) == {"gons_net": "/etc/hostname"}


def test_env_permission_denied(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net",))
    result = pyns_boot(hook_venv, "env", "-t", str(h.pid), "--net", wrapper=as_user())
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(
        'pyns-boot: invalid -n/--net reference "{}": Permission denied'.format(h.ref("net"))
    )
    assert f"needs ptrace access to process {h.pid}" in result.stderr
    result = pyns_boot(hook_venv, "env", "-t", str(h.pid), "--all", wrapper=as_user())
    assert result.returncode == 1 and result.stdout == ""
    assert "Permission denied" in result.stderr and f"needs ptrace access to process {h.pid}" in result.stderr


# ---------------------------------------------------------------- run


SCRIPT = PROBE + "\nimport sys\nprint('ARGS ' + json.dumps(sys.argv[1:]))\nsys.exit(int(sys.argv[1]))\n"


def _args(stdout: str) -> list[str]:
    for line in stdout.splitlines():
        if line.startswith("ARGS "):
            args: list[str] = json.loads(line[5:])
            return args
    raise AssertionError(stdout)


def test_run_script_in_the_targets_namespaces(hook_venv: Venv, holder: Callable[..., Holder], tmp_path: Path) -> None:
    h = holder(("net", "uts"))
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    result = pyns_boot(hook_venv, "run", "-t", str(h.pid), "-n", "-u", "--", str(script), "0", "--verbose", "-m")
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert report["links"]["net"] == h.link("net") and report["links"]["uts"] == h.link("uts")
    assert report["status"]["state"] == "succeeded" and report["env"] == {}
    assert report["prefix"] == str(hook_venv.path)
    assert _args(result.stdout) == ["0", "--verbose", "-m"]


def test_run_passes_the_exit_status_through(hook_venv: Venv, netns: NamedNetns, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    result = pyns_boot(hook_venv, "run", "--netns", netns.name, "--", str(script), "42")
    assert result.returncode == 42 and parse_probe(result.stdout)["links"]["net"] == netns.link()
    failing = tmp_path / "fails.py"
    failing.write_text("raise RuntimeError('the script failed')\n")
    result = pyns_boot(hook_venv, "run", "--netns", netns.name, "--", str(failing))
    assert result.returncode == 1 and "RuntimeError: the script failed" in result.stderr
    missing = pyns_boot(hook_venv, "run", "--netns", netns.name, "--", str(tmp_path / "missing.py"))
    assert missing.returncode == 2 and "No such file or directory" in missing.stderr


def test_run_module_and_code(hook_venv: Venv, holder: Callable[..., Holder], tmp_path: Path) -> None:
    h = holder(("uts",), setup="hostname pyns-cli-test")
    (tmp_path / "whereami_mod.py").write_text(SCRIPT)
    # -m finds the module in the working directory, as python -m does
    result = pyns_boot(
        hook_venv, "run", "-t", str(h.pid), "--uts", "--", "-m", "whereami_mod", "3", "x", cwd=str(tmp_path)
    )
    assert result.returncode == 3, result.stderr
    assert parse_probe(result.stdout)["links"]["uts"] == h.link("uts") and _args(result.stdout) == ["3", "x"]
    code = "import socket, sys; print(socket.gethostname(), sys.argv[1:]); sys.exit(5)"
    result = pyns_boot(hook_venv, "run", "-t", str(h.pid), "-u", "-c", code, "a", "-c")
    assert result.returncode == 5 and result.stdout == "pyns-cli-test ['a', '-c']\n"


@pytest.mark.parametrize("module", [False, True], ids=["pyns-boot", "python-m-pyns_boot"])
def test_run_hook_refusal_is_125(hook_venv: Venv, module: bool) -> None:
    args = ("run", "--net", "/etc/hostname", "--no-check", "-c", "print('user code ran')")
    result = pyns_boot(hook_venv, *args, module=module)
    assert result.returncode == EXIT_STATUS and result.stdout == ""
    assert 'pyns_boot: invalid gons_net reference "/etc/hostname"' in result.stderr


def test_run_unknown_pid_and_bad_reference(hook_venv: Venv) -> None:
    pid = dead_pid()
    result = pyns_boot(hook_venv, "run", "-t", str(pid), "--net", "-c", "print('user code ran')")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"pyns-boot: no process with pid {pid}\n"
    result = pyns_boot(hook_venv, "run", "--net", "/proc/self/ns/ipc", "-c", "print('user code ran')")
    assert result.returncode == 1 and result.stdout == ""
    assert "it is a namespace of type ipc, not net" in result.stderr


def test_run_permission_denied(hook_venv: Venv, holder: Callable[..., Holder], netns: NamedNetns) -> None:
    h = holder(("net",))
    code = "print('user code ran')"
    result = pyns_boot(hook_venv, "run", "-t", str(h.pid), "--net", "-c", code, wrapper=as_user())
    assert result.returncode == 1 and "Permission denied" in result.stderr and result.stdout == ""
    # a bind-mounted reference opens for anyone; joining it is refused by the kernel, in the hook
    result = pyns_boot(hook_venv, "run", "--netns", netns.name, "-c", code, wrapper=as_user())
    assert result.returncode == EXIT_STATUS and result.stdout == ""
    joined = f'cannot join gons_netns using reference "{netns.name}" ({netns.path}): Operation not permitted'
    assert joined in result.stderr


PAUSE_PTH = "import os; 'gons_net' in os.environ and os.read(os.open(os.environ['PAUSE_FIFO'], os.O_RDONLY), 1)\n"


def test_run_target_exits_before_the_hook_joins(fresh_hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    """The target dies after pyns-boot read its namespaces and exec'd: the hook says so, status 125.

    Deterministic: a .pth that sorts before pyns_boot.pth blocks the exec'd
    interpreter (only it has gons_net) on a FIFO until the target is gone.  An
    interpreter option (-X utf8) takes run's route through a fresh interpreter.
    """
    (fresh_hook_venv.site_packages / "00pause.pth").write_text(PAUSE_PTH)
    fifo = Path(world_readable_dir("pyns-boot-fifo-")) / "pause"
    os.mkfifo(fifo)
    h = holder(("net",))
    command = [str(fresh_hook_venv.path / "bin" / "pyns-boot"), "run", "-t", str(h.pid), "--net", "--", "-X", "utf8"]
    command += ["-c", "print('ran')"]
    process = subprocess.Popen(
        command, env=clean_env(PAUSE_FIFO=str(fifo)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:  # a writer opens once the paused interpreter has opened the FIFO for reading
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.01)
        ref = h.ref("net")
        h.stop()
        while os.path.exists(f"/proc/{h.pid}"):
            time.sleep(0.01)
        os.write(writer, b"x")
        os.close(writer)
        out, err = process.communicate(timeout=CHILD_TIMEOUT)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.communicate()
        fifo.unlink()
        fifo.parent.rmdir()
    assert process.returncode == EXIT_STATUS and out == ""
    assert err == (
        f'pyns_boot: invalid gons_net reference "{ref}": No such file or directory\n'
        f"pyns_boot: hint: process {h.pid} has exited (a stale gons_net?): {clear_command(fresh_hook_venv)} unsets "
        "gons_net and every other pyns_boot variable, or set PYNS_BOOT_ON_ERROR=warn to start anyway\n"
    )
