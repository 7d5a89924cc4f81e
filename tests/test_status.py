"""pyns_boot.status(), check() and NamespaceError, seen from application code."""

from __future__ import annotations

import errno
import json
from typing import Any, Callable

from nsutil import Holder, NamedNetns, Venv, run_python

STATUS_CODE = r"""
import errno, json, pyns_boot
s = pyns_boot.status()
try:
    checked = pyns_boot.check()
    raised = None
except pyns_boot.NamespaceError as error:
    checked = None
    raised = {"errno": error.errno, "str": str(error), "failed": error.failed,
              "is_oserror": isinstance(error, OSError), "status_is_s": error.status == s}
try:
    s.ok = True
    mutable = True
except AttributeError:
    mutable = False
print(json.dumps({"dict": s.as_dict(), "ok": s.ok, "raised": raised, "checked": checked is not None,
                  "mutable": mutable, "repr": repr(s), "joined": list(s.joined),
                  "already": list(s.already_joined), "hashable": hash(s) == hash(pyns_boot.status())}))
"""


def run_status(venv: Venv, env: dict[str, str], python_args: tuple[str, ...] = ()) -> dict[str, Any]:
    result = run_python(venv.python, STATUS_CODE, env, python_args=python_args)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_nothing_asked(hook_venv: Venv) -> None:
    out = run_status(hook_venv, {})
    assert out["dict"]["state"] == "inactive" and out["ok"] and out["raised"] is None and out["checked"]
    assert out["dict"]["hook_ran"] is False and out["dict"]["error"] is None
    assert set(out["dict"]["namespaces"]) == {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"}
    assert not out["mutable"] and out["hashable"]


def test_succeeded(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("net",))
    out = run_status(hook_venv, {"gons_net": h.ref("net"), "gons_uts": "/proc/self/ns/uts"})
    assert out["dict"]["state"] == "succeeded" and out["ok"] and out["checked"]
    assert out["joined"] == ["net"] and out["already"] == ["uts"]
    assert "net=joined" in out["repr"]


def test_failed_check_raises_oserror(hook_venv: Venv) -> None:
    out = run_status(hook_venv, {"gons_net": "/nonexistent", "PYNS_BOOT_ON_ERROR": "ignore"})
    assert out["dict"]["state"] == "failed" and not out["ok"]
    assert out["dict"]["errno"] == errno.ENOENT and out["dict"]["errno_name"] == "ENOENT"
    assert out["raised"] == {
        "errno": errno.ENOENT,
        "str": 'pyns_boot: invalid gons_net reference "/nonexistent": No such file or directory',
        "failed": "net",
        "is_oserror": True,
        "status_is_s": True,
    }


def test_variables_set_but_hook_never_ran_with_dash_S(hook_venv: Venv, netns: NamedNetns) -> None:
    code = f"import sys; sys.path.append({str(hook_venv.site_packages)!r}); " + STATUS_CODE.strip()
    result = run_python(hook_venv.python, code, {"gons_net": netns.path}, python_args=("-S",))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["dict"]["state"] == "not_run" and not out["ok"] and out["dict"]["hook_ran"] is False
    assert out["dict"]["namespaces"]["net"]["path"] == netns.path
    assert out["raised"]["errno"] is None
    assert out["raised"]["str"] == (
        "pyns_boot: gons_net is set, but the pyns_boot start-up hook did not run in this process (the interpreter "
        "was started with -S: site.py, which runs pyns_boot.pth, did not run)"
    )


def test_variables_set_but_pth_not_installed(fresh_hook_venv: Venv, netns: NamedNetns) -> None:
    (fresh_hook_venv.site_packages / "pyns_boot.pth").unlink()
    out = run_status(fresh_hook_venv, {"gons_net": netns.path})
    assert out["dict"]["state"] == "not_run" and not out["ok"]
    assert f"pyns_boot.pth is not installed in the site-packages of {fresh_hook_venv.path}" in out["dict"]["error"]


def test_as_dict_is_json_for_logs(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    h = holder(("uts",))
    out = run_status(hook_venv, {"gons_uts": h.ref("uts"), "gons_order": "uts"})
    d = out["dict"]
    assert d["order"] == "uts" and d["policy"] == "exit" and d["policy_error"] is None and d["hint"] is None
    assert d["namespaces"]["uts"] == {"variable": "gons_uts", "path": h.ref("uts"), "outcome": "joined", "early": False}
    json.dumps(d)


def test_broken_extension_is_reported_not_a_traceback(fresh_hook_venv: Venv) -> None:
    for so in fresh_hook_venv.site_packages.glob("_pyns_boot*.so"):
        so.unlink()
    result = run_python(fresh_hook_venv.python, "print('user code ran')", {"gons_net": "/run/netns/x"})
    assert result.returncode == 125 and result.stdout == ""
    assert result.stderr.startswith("pyns_boot: cannot load the C helper _pyns_boot: ")
    assert "Traceback" not in result.stderr


# ---- judged from the environment the process started with (issue 13, item 1)


def test_variable_set_by_the_program_is_not_a_missed_request(hook_venv: Venv, netns: NamedNetns) -> None:
    """A program that sets gons_* for its children: nothing was asked at start,
    so the status stays inactive and check() does not raise; the child it
    starts with that environment does join."""
    code = (
        "import os, subprocess, sys\n"
        f"os.environ['gons_net'] = {netns.path!r}\n" + STATUS_CODE.strip() + "\n"
        "child = subprocess.run([sys.executable, '-c', \"import os; print(os.readlink('/proc/self/ns/net'))\"],"
        " capture_output=True, text=True)\n"
        "print(child.stdout.strip())\n"
    )
    result = run_python(hook_venv.python, code)
    assert result.returncode == 0, result.stderr
    first, child_net = result.stdout.splitlines()
    out = json.loads(first)
    assert out["dict"]["state"] == "inactive" and out["ok"] and out["checked"] and out["raised"] is None
    assert out["dict"]["namespaces"]["net"]["path"] is None
    assert child_net == netns.link()


def test_variable_set_by_sitecustomize_is_not_a_missed_request(fresh_hook_venv: Venv) -> None:
    customize = fresh_hook_venv.site_packages / "sitecustomize.py"
    customize.write_text("import os\nos.environ['gons_net'] = '/run/netns/x'\n")
    out = run_status(fresh_hook_venv, {})
    assert out["dict"]["state"] == "inactive" and out["checked"] and out["raised"] is None


def test_variable_removed_by_the_program_still_counts(hook_venv: Venv, netns: NamedNetns) -> None:
    """The reverse: started with gons_net under -S, the program deletes it:
    the hook still did not run what was asked."""
    code = f"import os, sys; sys.path.append({str(hook_venv.site_packages)!r}); del os.environ['gons_net']; "
    result = run_python(hook_venv.python, code + STATUS_CODE.strip(), {"gons_net": netns.path}, python_args=("-S",))
    out = json.loads(result.stdout)
    assert out["dict"]["state"] == "not_run" and out["dict"]["namespaces"]["net"]["path"] == netns.path
    assert "the interpreter was started with -S" in out["dict"]["error"]


def test_hook_that_did_not_act_is_told_apart(fresh_hook_venv: Venv, netns: NamedNetns) -> None:
    """pyns_boot.pth is installed and site.py ran, but an earlier .pth file took
    the variable away: the message says so instead of blaming -S."""
    site = fresh_hook_venv.site_packages
    (site / "aaa_drop.pth").write_text("import os; os.environ.pop('gons_net', None)\n")
    out = run_status(fresh_hook_venv, {"gons_net": netns.path})
    assert out["dict"]["state"] == "not_run" and not out["ok"]
    assert out["dict"]["error"] == (
        "pyns_boot: gons_net is set, but the pyns_boot start-up hook did not run in this process (pyns_boot.pth in "
        f"{site} "
        "did not act: the variables were gone from os.environ when site.py reached it (an earlier .pth file removed "
        "them), or its line failed (see the start-up's stderr))"
    )
