"""The hook under qemu-user, the way the aarch64 wheel runs on an x86_64 host (scripts/arm64-lab.sh).

qemu-user passes setns(2) to the kernel but does not translate the nsfs ioctls:
NS_GET_NSTYPE fails with ENOSYS there (and with ENOTTY on kernels before 4.11).
The C core then reads the namespace type from the descriptor's /proc/self/fd
link.  Here the host's own interpreter runs under Debian's qemu-x86_64-static,
so that fallback path is taken on every run of the suite, not only in the
arm64 lab.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Callable

import pytest
from nsutil import CHILD_TIMEOUT, Holder, Venv, clean_env, fresh_cwd, probe, run_python

QEMU = shutil.which("qemu-x86_64-static")
pytestmark = pytest.mark.skipif(
    QEMU is None, reason="qemu-x86_64-static is not installed (Debian: apt-get install qemu-user-static)"
)


def test_joins_under_qemu_user(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    target = holder(["uts", "net"])
    report = probe(
        hook_venv.python,
        {"gons_uts": target.ref("uts"), "gons_net": target.ref("net")},
        wrapper=[str(QEMU)],
    )
    assert report["status"]["state"] == "succeeded", report["status"]
    assert report["links"]["uts"] == target.link("uts")
    assert report["links"]["net"] == target.link("net")


def test_wrong_type_is_named_under_qemu_user(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    target = holder(["net"])
    result = run_python(hook_venv.python, "pass", {"gons_uts": target.ref("net")}, wrapper=[str(QEMU)])
    assert result.returncode != 0
    expected = 'pyns_boot: invalid gons_uts reference "{}": it is a namespace of type net, not uts'.format(
        target.ref("net")
    )
    assert expected in result.stderr, result.stderr


def test_command_line_checks_references_under_qemu_user(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    # pyns-boot env checks with the hook's C check, so it takes the same fallback (it used NS_GET_NSTYPE alone).
    target = holder(["net", "uts"])
    command = [str(QEMU), hook_venv.python, "-m", "pyns_boot", "env", "--uts", target.ref("uts")]
    good = subprocess.run(
        command, env=clean_env(), cwd=fresh_cwd(), capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    assert good.returncode == 0 and good.stdout.endswith("\nexport gons_uts={}\n".format(target.ref("uts"))), good
    command[-1] = target.ref("net")
    wrong = subprocess.run(
        command, env=clean_env(), cwd=fresh_cwd(), capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    assert wrong.returncode == 1
    reason = "it is a namespace of type net, not uts"
    assert wrong.stderr == 'pyns-boot: invalid -u/--uts reference "{}": {}\n'.format(target.ref("net"), reason)
