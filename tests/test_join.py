"""The hook joins what the gons_* variables name, in real child interpreters."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from nsutil import SELF_LINKS, TYPES, Holder, NamedNetns, Venv, own_links, parse_probe, probe, run_python


def assert_in(report: dict[str, Any], holder: Holder, ns_type: str) -> None:
    target = holder.link(ns_type)
    for link in SELF_LINKS[ns_type]:
        assert report["links"][link] == target, (ns_type, link)


@pytest.mark.parametrize("ns_type", TYPES)
def test_each_type_alone(hook_venv: Venv, holder: Callable[..., Holder], ns_type: str) -> None:
    types = ("user", ns_type) if ns_type == "user" else (ns_type,)
    h = holder(types)
    before = own_links()
    report = probe(hook_venv.python, {"gons_" + ns_type: h.ref(ns_type)})

    assert_in(report, h, ns_type)
    for other in TYPES:  # nothing else moved
        if other != ns_type:
            for link in SELF_LINKS[other]:
                assert report["links"][link] == before[link], (other, link)
    status = report["status"]
    assert status["state"] == "succeeded" and status["ok"] and status["hook_ran"]
    assert status["namespaces"][ns_type] == {
        "variable": "gons_" + ns_type,
        "path": h.ref(ns_type),
        "outcome": "joined",
        "early": True,
    }
    assert report["env"] == {}, "the hook must remove the gons_* variables"


def test_all_types_in_default_order(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(TYPES)
    env = {"gons_" + t: h.ref(t) for t in TYPES}
    report = probe(hook_venv.python, env)
    for ns_type in TYPES:
        assert_in(report, h, ns_type)
    status = report["status"]
    assert status["ok"] and status["order"] == "!user,!mnt,!cgroup,!ipc,!net,!pid,!time,!uts"
    assert {t: ns["outcome"] for t, ns in status["namespaces"].items()} == {t: "joined" for t in TYPES}


def test_named_netns(hook_venv: Venv, netns: NamedNetns) -> None:
    report = probe(hook_venv.python, {"gons_net": netns.path})
    assert report["links"]["net"] == netns.link()


def test_explicit_order_and_unset_types_skipped(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net", "uts"))
    env = {"gons_order": " uts , ,net,ipc,", "gons_uts": h.ref("uts"), "gons_net": h.ref("net")}
    report = probe(hook_venv.python, env)
    assert_in(report, h, "net")
    assert_in(report, h, "uts")
    namespaces = report["status"]["namespaces"]
    assert namespaces["ipc"]["outcome"] == "not_requested"
    assert namespaces["uts"]["early"] is False and namespaces["net"]["early"] is False


def test_already_a_member_is_not_joined_again(hook_venv: Venv) -> None:
    # Joining one's own user namespace is EINVAL in the kernel: the hook must skip it.
    env = {t: "/proc/self/ns/" + n for t, n in (("gons_user", "user"), ("gons_net", "net"), ("gons_uts", "uts"))}
    report = probe(hook_venv.python, env)
    status = report["status"]
    assert status["ok"], status["error"]
    for ns_type in ("user", "net", "uts"):
        assert status["namespaces"][ns_type]["outcome"] == "already_joined"


def test_pid_already_member_compares_namespace_for_children(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    # /proc/self/ns/pid is our own pid namespace and also our namespace for
    # children: already joined.  A holder's pid namespace differs: joined.
    report = probe(hook_venv.python, {"gons_pid": "/proc/self/ns/pid"})
    assert report["status"]["namespaces"]["pid"]["outcome"] == "already_joined"


def test_mixed_joined_and_already_member(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net",))
    report = probe(hook_venv.python, {"gons_net": h.ref("net"), "gons_uts": f"/proc/{os.getpid()}/ns/uts"})
    outcomes = {t: ns["outcome"] for t, ns in report["status"]["namespaces"].items()}
    assert outcomes["net"] == "joined" and outcomes["uts"] == "already_joined"


CHILD = r"""
import json, os, subprocess, sys
child = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
print("CHILD " + json.dumps({"rc": child.returncode, "stdout": child.stdout, "stderr": child.stderr}))
"""


def test_python_child_of_switched_process_inherits_without_reapplying(
    hook_venv: Venv, holder: Callable[..., Holder]
) -> None:
    from nsutil import PROBE

    h = holder(("mnt", "net", "uts"))
    env = {"gons_mnt": h.ref("mnt"), "gons_net": h.ref("net"), "gons_uts": h.ref("uts")}
    result = run_python(hook_venv.python, f"PROBE = {PROBE!r}\n{CHILD}", env)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("CHILD "))
    child = json.loads(line[len("CHILD ") :])
    assert child["rc"] == 0 and child["stderr"] == ""
    report = parse_probe(child["stdout"])
    for ns_type in ("mnt", "net", "uts"):
        assert_in(report, h, ns_type)
    assert report["env"] == {}
    # net and uts are inherited, not re-applied; a child of the interpreter after a mnt join with
    # keep-imports starts from the original mount namespace and joins the target's again
    # (docs/foreign-mounts.md, Child interpreters: tests/test_children.py)
    namespaces = report["status"]["namespaces"]
    assert namespaces["net"]["outcome"] == namespaces["uts"]["outcome"] == "not_requested", namespaces
    assert namespaces["mnt"]["outcome"] == "joined" and report["status"]["keeps_imports"] is True, report


def test_bang_opens_in_original_mount_namespace(hook_venv: Venv, holder: Callable[..., Holder], tmp_path: Path) -> None:
    """A reference that exists only inside the target mount namespace."""
    inner = tmp_path / "inner"
    inner.mkdir()
    setup = f"mount -t tmpfs pyns-test {inner} && touch {inner}/uts && mount --bind /proc/self/ns/uts {inner}/uts"
    h = holder(("mnt", "uts"), setup=setup)
    inner_ref = str(inner / "uts")
    assert not os.path.exists(inner_ref)

    # Without "!", uts is opened after the mnt switch: found inside.
    report = probe(hook_venv.python, {"gons_order": "!mnt,uts", "gons_mnt": h.ref("mnt"), "gons_uts": inner_ref})
    assert_in(report, h, "uts")
    assert_in(report, h, "mnt")

    # With "!", it is opened before any switch, in our mount namespace: missing.
    result = run_python(
        hook_venv.python, env={"gons_order": "!mnt,!uts", "gons_mnt": h.ref("mnt"), "gons_uts": inner_ref}
    )
    assert result.returncode == 125
    assert result.stderr == f'pyns_boot: invalid gons_uts reference "{inner_ref}": No such file or directory\n'
    assert "PROBE" not in result.stdout


def test_relative_path_after_mount_switch_resolves_from_new_root(
    hook_venv: Venv, holder: Callable[..., Holder], tmp_path: Path
) -> None:
    h = holder(("mnt", "uts"))
    relative = f"proc/{h.pid}/ns/uts"  # relative to / after the mnt switch
    report = probe(
        hook_venv.python,
        {"gons_order": "mnt,uts", "gons_mnt": h.ref("mnt"), "gons_uts": relative},
        cwd=str(tmp_path),
    )
    assert_in(report, h, "uts")
    assert report["cwd"] == "/"


def test_venv_without_pyns_boot_is_unaffected(plain_venv: Venv, hook_venv: Venv, netns: NamedNetns) -> None:
    env = {"gons_net": netns.path}
    plain = probe(plain_venv.python, env)
    hooked = probe(hook_venv.python, env)
    assert plain["links"]["net"] == own_links()["net"] != netns.link()
    assert plain["env"] == env and plain["status"] is None
    assert hooked["links"]["net"] == netns.link()


def test_idle_path_imports_nothing(hook_venv: Venv) -> None:
    report = probe(hook_venv.python)
    assert report["loaded_at_start"] == []
    assert report["status"]["state"] == "inactive" and report["status"]["hook_ran"] is False


def test_idle_path_opens_no_pyns_boot_file(hook_venv: Venv) -> None:
    """strace: with no gons_* variable, nothing of pyns_boot is opened (the .pth itself aside)."""
    result = subprocess.run(
        ["strace", "-f", "-e", "trace=open,openat,stat,newfstatat,statx", hook_venv.python, "-c", "pass"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert result.returncode == 0, result.stderr
    touched = [line for line in result.stderr.splitlines() if "pyns_boot" in line]
    assert touched and all("pyns_boot.pth" in line for line in touched), touched


def test_empty_values_count_as_unset(hook_venv: Venv) -> None:
    report = probe(hook_venv.python, {"gons_net": "", "gons_order": ""})
    assert report["status"]["state"] == "inactive"
    assert report["links"]["net"] == own_links()["net"]


def test_order_alone_is_validated(hook_venv: Venv) -> None:
    ok = probe(hook_venv.python, {"gons_order": "net,uts"})
    assert ok["status"]["state"] == "inactive" and ok["status"]["hook_ran"] is True
    assert ok["env"] == {}
    bad = run_python(hook_venv.python, env={"gons_order": "net,bogus"})
    assert bad.returncode == 125
    assert bad.stderr == 'pyns_boot: unknown namespace type "bogus" in gons_order\n'


def test_hook_acts_once_in_a_venv(hook_venv: Venv, netns: NamedNetns) -> None:
    """site.py runs .pth lines twice in a venv: one warning, not two."""
    result = run_python(hook_venv.python, "print('ran')", {"gons_net": "/nonexistent", "PYNS_BOOT_ON_ERROR": "warn"})
    assert result.returncode == 0
    assert result.stderr.count("pyns_boot:") == 1
    assert result.stdout == "ran\n"


def test_removed_from_c_environment_too(hook_venv: Venv, netns: NamedNetns) -> None:
    """Children started through the C environment (not os.environ) see no gons_* either."""
    code = "import os; os.execvp('env', ['env'])"
    result = run_python(hook_venv.python, code, {"gons_net": netns.path, "gons_order": "net"})
    assert result.returncode == 0, result.stderr
    assert "PATH=" in result.stdout and "gons_" not in result.stdout
