"""What users of ip netns exec and nsenter expect: --netns / gons_netns / Namespaces.netns side by side with
`ip netns exec`, and nsenter's -w, -S, -G after the joins.  Real named namespaces, real /etc/netns files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
from cliutil import pyns_boot
from nsutil import CHILD_TIMEOUT, EXIT_STATUS, NOBODY, Holder, Venv, as_user, run_python

# What a program in the namespace sees: the DNS configuration, the interfaces, its mount namespace.
VIEW = (
    "import json, os; print(json.dumps({'resolv': open('/etc/resolv.conf').read(), "
    "'hosts': open('/etc/hosts').read(), 'net': sorted(os.listdir('/sys/class/net')), "
    "'mnt': os.readlink('/proc/self/ns/mnt'), 'netns': os.readlink('/proc/self/ns/net')}))"
)


class EtcNetns:
    """A named netns with a veth pair inside and /etc/netns/NAME/{resolv.conf,hosts}; removed afterwards."""

    def __init__(self) -> None:
        self.name = "newcomer-" + uuid.uuid4().hex[:8]
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(
            ["ip", "-n", self.name, "link", "add", "nc-a", "type", "veth", "peer", "name", "nc-b"], check=True
        )
        self.etc = Path("/etc/netns") / self.name
        self.etc.mkdir(parents=True)
        (self.etc / "resolv.conf").write_text(f"nameserver 192.0.2.53\nsearch {self.name}.example\n")
        (self.etc / "hosts").write_text(f"192.0.2.1 only-in-{self.name}\n")

    def ip_netns_exec(self, *command: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *command], check=True, capture_output=True, text=True
        ).stdout

    def close(self) -> None:
        shutil.rmtree(self.etc, ignore_errors=True)
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


@pytest.fixture
def etc_netns() -> Iterator[EtcNetns]:
    ns = EtcNetns()
    yield ns
    ns.close()


def reference_view(ns: EtcNetns) -> dict[str, object]:
    return {
        "resolv": ns.ip_netns_exec("cat", "/etc/resolv.conf"),
        "hosts": ns.ip_netns_exec("cat", "/etc/hosts"),
        "net": sorted(ns.ip_netns_exec("ls", "/sys/class/net").split()),
        "netns": ns.ip_netns_exec("readlink", "/proc/self/ns/net").strip(),
    }


def host_files() -> dict[str, str]:
    return {name: Path("/etc", name).read_text() for name in ("resolv.conf", "hosts")}


def check_view(out: str, ns: EtcNetns) -> None:
    view = json.loads(out)
    expected = reference_view(ns)
    assert {k: view[k] for k in expected} == expected
    assert view["net"] == ["lo", "nc-a", "nc-b"] and "192.0.2.53" in str(view["resolv"])
    # a private mount namespace of its own, not the host's
    assert view["mnt"] != os.readlink("/proc/self/ns/mnt")


def test_cli_netns_reads_the_same_as_ip_netns_exec(hook_venv: Venv, etc_netns: EtcNetns) -> None:
    before = host_files()
    result = pyns_boot(hook_venv, "run", "--netns", etc_netns.name, "-c", VIEW)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    check_view(result.stdout, etc_netns)
    assert host_files() == before  # the host's files stay untouched
    assert sorted(os.listdir("/sys/class/net")) != ["lo", "nc-a", "nc-b"]


def test_variable_form_gons_netns(hook_venv: Venv, etc_netns: EtcNetns) -> None:
    result = run_python(hook_venv.python, VIEW, {"gons_netns": etc_netns.name})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    check_view(result.stdout, etc_netns)
    status = run_python(
        hook_venv.python,
        "import os, pyns_boot; s = pyns_boot.status(); print(s.namespaces['net'].path, s.state, "
        "os.environ.get('gons_netns'))",
        {"gons_netns": etc_netns.name},
    )
    assert status.stdout.split() == ["/run/netns/" + etc_netns.name, "succeeded", "None"]


def test_call_in_namespaces_netns(hook_venv: Venv, etc_netns: EtcNetns, tmp_path: Path) -> None:
    code = (
        "import json, os, pyns_boot\n"
        "def view():\n"
        "    return {'resolv': open('/etc/resolv.conf').read(), 'hosts': open('/etc/hosts').read(),\n"
        "            'net': sorted(os.listdir('/sys/class/net')), 'mnt': os.readlink('/proc/self/ns/mnt'),\n"
        "            'netns': os.readlink('/proc/self/ns/net')}\n"
        "if __name__ == '__main__':\n"
        f"    print(json.dumps(pyns_boot.call_in(pyns_boot.Namespaces.netns({etc_netns.name!r}), view, timeout=30)))\n"
    )
    script = tmp_path / "view.py"  # a worker loads callables of __main__ from its file
    script.write_text(code)
    result = subprocess.run(
        [hook_venv.python, str(script)], capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    check_view(result.stdout, etc_netns)


def test_netns_without_etc_files_shows_the_hosts(hook_venv: Venv, etc_netns: EtcNetns) -> None:
    shutil.rmtree(etc_netns.etc)
    result = pyns_boot(hook_venv, "run", "--netns", etc_netns.name, "-c", VIEW)
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["resolv"] == Path("/etc/resolv.conf").read_text() == etc_netns.ip_netns_exec("cat", "/etc/resolv.conf")
    assert view["net"] == ["lo", "nc-a", "nc-b"]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"gons_netns": "a/b"}, 'pyns_boot: gons_netns="a/b" is not a network namespace name'),
        ({"gons_netns": "x", "gons_net": "/proc/self/ns/net"}, "name the same namespace: set one of them"),
        ({"gons_netns": "x", "gons_mnt": "/proc/self/ns/mnt"}, "cannot be combined with gons_mnt"),
        ({"gons_netns": "x", "gons_order": "uts"}, 'net is not listed in gons_order "uts"'),
    ],
)
def test_gons_netns_bad_input(hook_venv: Venv, env: dict[str, str], message: str) -> None:
    result = run_python(hook_venv.python, "print('ran')", env)
    assert result.returncode == EXIT_STATUS and result.stdout == ""
    assert message in result.stderr and result.stderr.count("\n") == 1


# ---------------------------------------------------------------- nsenter's -w, -S, -G


@pytest.fixture
def mnt_holder(holder: Callable[..., Holder]) -> Holder:
    """A mount namespace with a directory that exists only there; the holder works in it."""
    return holder(("mnt",), setup="mount -t tmpfs newcomer-wd /mnt && mkdir -p /mnt/only-here/sub && cd /mnt/only-here")


def test_wd_default_is_the_targets_after_a_mnt_join(hook_venv: Venv, mnt_holder: Holder) -> None:
    code = "import os; print(os.getcwd(), sorted(os.listdir('..')))"
    result = pyns_boot(hook_venv, "run", "-t", str(mnt_holder.pid), "-m", "-w", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1) == ["/mnt/only-here", "['only-here']\n"]
    # without -w: the target's / (the kernel's choice after a mnt join)
    result = pyns_boot(hook_venv, "run", "-t", str(mnt_holder.pid), "-m", "-c", "import os; print(os.getcwd())")
    assert result.stdout == "/\n"


def test_wd_dir_is_resolved_after_the_joins(hook_venv: Venv, mnt_holder: Holder) -> None:
    code = "import os; print(os.getcwd())"
    result = pyns_boot(hook_venv, "run", "-t", str(mnt_holder.pid), "-m", "--wd", "/mnt/only-here/sub", "-c", code)
    assert result.returncode == 0 and result.stdout == "/mnt/only-here/sub\n", result.stderr
    missing = pyns_boot(hook_venv, "run", "-t", str(mnt_holder.pid), "-m", "-w", "/nowhere", "-c", code)
    assert missing.returncode == EXIT_STATUS and missing.stdout == ""
    assert missing.stderr == (
        'pyns_boot: cannot change to the working directory PYNS_BOOT_WD="/nowhere" after the joins: '
        "No such file or directory\n"
    )


def test_setuid_setgid_after_the_joins(hook_venv: Venv, holder: Callable[..., Holder], tmp_path: Path) -> None:
    h = holder(("uts",))
    code = "import os; print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())"
    # as_user(0): still root, but the interpreter under test is reachable for nobody after -S (a pyenv build
    # under /root is not: the program would fail on its first lazy import)
    result = pyns_boot(
        hook_venv,
        "run",
        "-t",
        str(h.pid),
        "-u",
        "-S",
        str(NOBODY),
        "-G",
        str(NOBODY),
        "-w",
        "/tmp",
        "-c",
        code,
        wrapper=as_user(0),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{NOBODY} {NOBODY} {NOBODY} []\n"
    env = pyns_boot(hook_venv, "env", "-t", str(h.pid), "-u", "-S", "0", "-G", "0", "-w", "--json")
    assert json.loads(env.stdout) == {
        "gons_uts": h.ref("uts"),
        "PYNS_BOOT_WD": f"!/proc/{h.pid}/cwd",
        "PYNS_BOOT_SETGID": "0",
        "PYNS_BOOT_SETUID": "0",
    }


def test_bad_setuid_value_is_refused_before_any_join(hook_venv: Venv) -> None:
    result = run_python(hook_venv.python, "print('ran')", {"gons_net": "/proc/self/ns/net", "PYNS_BOOT_SETUID": "x"})
    assert result.returncode == EXIT_STATUS
    assert result.stderr == 'pyns_boot: PYNS_BOOT_SETUID="x" is not understood (expected a numeric id)\n'


def test_run_drops_stale_steering_variables(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("uts",))
    env = {"PYNS_BOOT_WD": "/nowhere", "gons_netns": "missing"}
    code = "import os; print(os.getcwd())"
    result = subprocess.run(
        [str(hook_venv.path / "bin" / "pyns-boot"), "run", "-t", str(h.pid), "-u", "-c", code],
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("gons_", "PYNS_BOOT"))}, **env},
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd="/tmp",
    )
    # pyns-boot itself carries on past the hook's failure; its program gets neither variable
    assert result.returncode == 0 and result.stdout == "/tmp\n", result.stderr


@pytest.mark.parametrize("mnt_option", [["-m", "/proc/self/ns/mnt"], ["-t", "1", "--all"]])
@pytest.mark.parametrize("command", ["run", "env"])
def test_cli_refuses_netns_with_a_mount_namespace(hook_venv: Venv, command: str, mnt_option: list[str]) -> None:
    """The pair the hook would refuse at start (gons_netns makes a private copy of the mount namespace) is a
    usage error up front, in env as in run."""
    program = ["-c", "print('ran')"] if command == "run" else []
    result = pyns_boot(hook_venv, command, "--netns", "blue", *mnt_option, *program)
    assert result.returncode == 2 and result.stdout == "", result
    assert "--netns gives the program a private copy of this mount namespace" in result.stderr
    assert "use --net /run/netns/blue" in result.stderr


@pytest.mark.unit
def test_namespaces_refuses_netns_with_mnt() -> None:
    from pyns_boot import Namespaces

    with pytest.raises(ValueError, match="cannot be combined with mnt='/proc/self/ns/mnt': use net='/run/netns/blue'"):
        Namespaces(netns="blue", mnt="/proc/self/ns/mnt")
