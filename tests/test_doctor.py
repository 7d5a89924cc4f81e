"""pyns-boot doctor on real venvs: healthy, broken in each way it must explain, and as another user."""

from __future__ import annotations

import json
import platform
from typing import Any, Callable

from cliutil import pyns_boot
from nsutil import EXIT_STATUS, Holder, Venv, as_user, run_python


def doctor(venv: Venv, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    result = pyns_boot(venv, "doctor", "--json", **kwargs)
    assert result.returncode in (0, 1), result
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["ok"] is (result.returncode == 0)
    return result.returncode, report


def findings(report: dict[str, Any], check: str) -> list[dict[str, Any]]:
    found = [f for f in report["findings"] if f["check"] == check]
    assert found, (check, report)
    for f in found:
        assert f["level"] in ("ok", "info", "warning", "error")
        assert f["level"] == "ok" or f["level"] == "info" or f["fix"], f  # every problem comes with a fix
    return found


def finding(report: dict[str, Any], check: str) -> dict[str, Any]:
    (only,) = findings(report, check)
    return only


def test_healthy_venv(hook_venv: Venv) -> None:
    status, report = doctor(hook_venv)
    assert status == 0 and report["python"] == str(hook_venv.path / "bin" / "python")
    site_packages = str(hook_venv.site_packages)
    for check in ("site", "pth", "package", "extension", "start", "kernel", "secure-mode", "privileges", "userns"):
        assert finding(report, check)["level"] == "ok", finding(report, check)
    assert site_packages + "/pyns_boot.pth" in finding(report, "pth")["message"]
    assert "cgroup, ipc, mnt, net, pid, time, user, uts" in finding(report, "kernel")["message"]
    assert "CAP_SYS_ADMIN" in finding(report, "privileges")["message"]
    text = pyns_boot(hook_venv, "doctor")
    assert text.returncode == 0 and text.stdout.splitlines()[-1] == "the hook can work here"


def test_pth_deleted(fresh_hook_venv: Venv) -> None:
    (fresh_hook_venv.site_packages / "pyns_boot.pth").unlink()
    status, report = doctor(fresh_hook_venv)
    assert status == 1
    pth = finding(report, "pth")
    assert pth["level"] == "error" and "pyns_boot.pth is in none of the site directories" in pth["message"]
    assert str(fresh_hook_venv.site_packages) in pth["message"]
    assert pth["fix"].endswith("-m pip install --force-reinstall pyns_boot")
    text = pyns_boot(fresh_hook_venv, "doctor")
    assert text.returncode == 1 and "the hook cannot work here" in text.stdout
    # run refuses instead of starting the program in the wrong namespaces
    result = pyns_boot(fresh_hook_venv, "run", "--net", "/proc/self/ns/net", "-c", "print('user code ran')")
    assert result.returncode == 1 and result.stdout == ""
    assert "pyns_boot.pth is not in a site-packages directory" in result.stderr and "pyns-boot doctor" in result.stderr


def test_pth_without_the_hook_line(fresh_hook_venv: Venv) -> None:
    (fresh_hook_venv.site_packages / "pyns_boot.pth").write_text("# emptied\n")
    status, report = doctor(fresh_hook_venv)
    expected = "has no import line that runs the hook (the C helper's _pyns_boot.run(), or pyns_boot.hook.run() when"
    assert status == 1 and expected in finding(report, "pth")["message"]


def test_extension_removed(fresh_hook_venv: Venv) -> None:
    (extension,) = fresh_hook_venv.site_packages.glob("_pyns_boot*.so")
    extension.unlink()
    status, report = doctor(fresh_hook_venv)
    assert status == 1
    ext = finding(report, "extension")
    assert ext["level"] == "error" and "the C helper _pyns_boot does not load" in ext["message"]
    assert "wheel built for this Python" in ext["fix"]
    assert finding(report, "pth")["level"] == "ok"
    result = pyns_boot(fresh_hook_venv, "run", "--net", "/proc/self/ns/net", "-c", "print('user code ran')")
    assert result.returncode == 1 and "the C helper _pyns_boot does not load" in result.stderr


def python_minor(venv: Venv) -> int:
    return int(run_python(venv.python, "import sys; print(sys.version_info[1])").stdout)


def test_start_file_of_an_older_install(fresh_hook_venv: Venv) -> None:
    start = fresh_hook_venv.site_packages / "pyns_boot.start"
    start.write_text("pyns_boot.hook:run\n")
    status, report = doctor(fresh_hook_venv)
    found = finding(report, "start")
    assert str(start) in found["message"] and found["fix"] == f"rm {start}"
    assert "names pyns_boot.hook:run, which pyns_boot" in found["message"]
    if python_minor(fresh_hook_venv) >= 15:
        assert (
            status == 1 and found["level"] == "error" and "skips the import line of pyns_boot.pth" in found["message"]
        )
    else:
        assert status == 0 and found["level"] == "warning" and "ignores it" in found["message"]


def test_start_file_of_the_318_wheel(fresh_hook_venv: Venv) -> None:
    start = fresh_hook_venv.site_packages / "pyns_boot.start"
    start.write_text("pyns_boot.hook:start\n")
    status, report = doctor(fresh_hook_venv)
    found = finding(report, "start")
    assert status == 0 and found["fix"].startswith(f"rm {start}")
    minor = python_minor(fresh_hook_venv)
    assert found["level"] == ("warning" if minor >= 15 else "info"), found
    if minor >= 15:
        assert "every process imports pkgutil" in found["message"]


def test_stale_helper_beside_the_good_one(fresh_hook_venv: Venv) -> None:
    site = fresh_hook_venv.site_packages
    stale = site / (f"_pyns_boot.abi3-{platform.machine()}-linux-gnu.so")
    stale.write_bytes((site / "_pyns_boot.abi3.so").read_bytes())
    status, report = doctor(fresh_hook_venv)
    ext = finding(report, "extension")
    assert str(stale) in ext["message"] and ext["fix"] == f"rm {stale}"
    if python_minor(fresh_hook_venv) >= 15:  # 3.15 loads it first
        assert status == 1 and ext["level"] == "error" and "no namespace was joined" in ext["message"]
    else:
        assert status == 0 and ext["level"] == "warning" and "Python 3.15 and later would load" in ext["message"]


def test_dash_S(hook_venv: Venv) -> None:
    env = {"PYTHONPATH": str(hook_venv.site_packages)}  # so that -S still finds the package
    result = pyns_boot(hook_venv, "doctor", "--json", env=env, module=True, python_args=["-S"])
    assert result.returncode == 1
    site = finding(json.loads(result.stdout), "site")
    assert site["level"] == "error" and "started with -S" in site["message"] and "without -S" in site["fix"]


THREAD_PTH = "import threading, time; threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
SLOW_PTH = "import time; time.sleep(0.2)\n"
LIGHT_PTH = "import os\n"
PATH_PTH = "/nonexistent/dir\n"
AFTER_PTH = "import threading; threading.Thread(target=lambda: None).start()\n"


def test_pth_files_that_run_before_ours(fresh_hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    site_packages = fresh_hook_venv.site_packages
    for name, text in (
        ("00thread.pth", THREAD_PTH),
        ("01slow.pth", SLOW_PTH),
        ("02light.pth", LIGHT_PTH),
        ("03path.pth", PATH_PTH),
        ("zz-after.pth", AFTER_PTH),
    ):
        (site_packages / name).write_text(text)
    status, report = doctor(fresh_hook_venv)
    assert status == 0  # the hook works, with warnings
    order = {f["message"].split()[0]: f for f in findings(report, "pth-order")}
    ours = {str(site_packages / n) for n in ("00thread.pth", "01slow.pth", "02light.pth")}
    assert ours <= set(order) and str(site_packages / "zz-after.pth") not in order
    for path in set(order) - ours:  # what the venv brings: _virtualenv.pth sorts before pyns_boot.pth
        assert order[path]["level"] == "info" and path < str(site_packages / "pyns_boot.pth"), order[path]
    thread = order[str(site_packages / "00thread.pth")]
    assert thread["level"] == "warning" and "starts 1 thread(s)" in thread["message"]
    assert (
        "imports threading, time" in thread["message"]
        and "refuses every join while other threads exist" in thread["fix"]
    )
    slow = order[str(site_packages / "01slow.pth")]
    assert slow["level"] == "warning" and "imports a lot" in slow["message"]
    light = order[str(site_packages / "02light.pth")]
    assert light["level"] == "info" and "imports os; measured: 0 new modules" in light["message"]
    assert "no thread" in light["message"]
    if python_minor(fresh_hook_venv) < 15:
        assert order[str(site_packages / "03path.pth")]["level"] == "info"
    else:  # 3.15 applies every path line first: a .pth without an import line runs no code among them
        assert str(site_packages / "03path.pth") not in order
    # what the warning is about: the mount namespace cannot be joined any more
    h = holder(("mnt",))
    result = pyns_boot(fresh_hook_venv, "run", "--mnt", h.ref("mnt"), "-c", "print('user code ran')")
    assert result.returncode == EXIT_STATUS and "the process has 2 threads" in result.stderr


def test_unprivileged_user(hook_venv: Venv) -> None:
    status, report = doctor(hook_venv, wrapper=as_user())
    assert status == 0
    privileges = finding(report, "privileges")
    assert privileges["level"] == "warning" and "no CAP_SYS_ADMIN (uid 65534)" in privileges["message"]
    assert "gons_user" in privileges["fix"]
    assert finding(report, "userns")["level"] in ("ok", "warning")


def test_hook_status_and_policy_in_the_report(hook_venv: Venv) -> None:
    env = {"gons_uts": "/proc/self/ns/net", "PYNS_BOOT_ON_ERROR": "warn"}
    status, report = doctor(hook_venv, env=env)
    assert status == 0
    hook = finding(report, "status")
    assert hook["level"] == "warning" and "it is a namespace of type net, not uts" in hook["message"]
    status, report = doctor(hook_venv, env={"PYNS_BOOT_ON_ERROR": "loud"})
    policy = finding(report, "policy")
    assert (policy["level"], policy["message"], policy["fix"]) == (
        "warning",
        'pyns_boot: PYNS_BOOT_ON_ERROR="loud" is not understood (expected exit, warn or ignore); acting as exit',
        "set PYNS_BOOT_ON_ERROR to exit, warn or ignore",
    )


def test_315_with_a_start_entry_every_import_line_runs_first(fresh_hook_venv: Venv) -> None:
    """3.15's site.py: a .pth sorted after ours still runs before a .start entry (only the model differs before)."""
    site_packages = fresh_hook_venv.site_packages
    (site_packages / "zz-after.pth").write_text(THREAD_PTH)
    (site_packages / "pyns_boot.start").write_text("pyns_boot.hook:start\n")
    status, report = doctor(fresh_hook_venv)
    assert status == 0  # the hook works, with warnings
    order = {f["message"].split()[0]: f for f in findings(report, "pth-order")}
    after = str(site_packages / "zz-after.pth")
    if python_minor(fresh_hook_venv) >= 15:
        assert after in order and "runs before pyns_boot.start and starts 1 thread(s)" in order[after]["message"]
        assert order[after]["level"] == "warning"
    else:
        assert after not in order
