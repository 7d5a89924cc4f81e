"""Subinterpreters: site.py runs pyns_boot.pth again inside each one.

Namespaces belong to the process, which its main interpreter set up at
start-up: a subinterpreter must not switch them (the process may have
threads by then), must not kill the process through the failure policy, and
importing the C helper there works (legacy, shared GIL) or fails with
CPython's clear ImportError (isolated, own GIL: 3.12+).

Subinterpreters are made with the private modules the interpreters
themselves ship: _xxsubinterpreters (3.8-3.12), _interpreters (3.13+).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any, Callable

from nsutil import Holder, Venv, run_python

# Runs in the main interpreter of the child: makes one subinterpreter per
# configuration and runs SUB_CODE in it.  Prints one JSON line per
# subinterpreter, then one for the main interpreter.
MAIN_CODE = r"""
import json, os, sys
after = sys.argv[1]
configs = sys.argv[2].split(",")
if after:
    os.environ["gons_uts"] = after   # as if the program set it for its children
try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters

SUB_CODE = '''
import json, os, sys
out = {"hook_loaded": "_pyns_boot" in sys.modules or "pyns_boot.hook" in sys.modules, "site": "site" in sys.modules,
       "uts": os.readlink("/proc/self/ns/uts"), "gons_uts": os.environ.get("gons_uts")}
try:
    import _pyns_boot
except ImportError as error:
    out["import_error"] = str(error)
else:
    report = _pyns_boot.report()
    out["report_ok"] = None if report is None else bool(report["ok"])
print("SUB " + CONFIG + " " + json.dumps(out), flush=True)
'''

def new_interpreter(config):
    if hasattr(interpreters, "new_config"):  # 3.13+
        return interpreters.create(interpreters.new_config(config))
    if sys.version_info >= (3, 12):
        return interpreters.create(isolated=(config == "isolated"))
    return interpreters.create()  # 3.8-3.11: legacy only

for config in configs:
    interp = new_interpreter(config)
    code = "CONFIG = %r\n" % config + SUB_CODE
    if hasattr(interpreters, "exec"):
        failure = interpreters.exec(interp, code)
        assert failure is None, failure
    else:
        interpreters.run_string(interp, code)
    interpreters.destroy(interp)

import pyns_boot
print("MAIN " + json.dumps({"uts": os.readlink("/proc/self/ns/uts"), "status": pyns_boot.status().as_dict()}))
"""


def configs_for(venv: Venv) -> list[str]:
    out = subprocess.run(
        [venv.python, "-c", "import sys; print(sys.version_info >= (3, 12))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return ["legacy", "isolated"] if out.stdout.strip() == "True" else ["legacy"]


def run_subinterpreters(
    venv: Venv, env: dict[str, str], set_after_start: str, configs: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    result = run_python(venv.python, MAIN_CODE, env, args=[set_after_start, ",".join(configs)])
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    subs: dict[str, dict[str, Any]] = {}
    main: dict[str, Any] = {}
    for line in result.stdout.splitlines():
        if line.startswith("SUB "):
            _, config, payload = line.split(" ", 2)
            subs[config] = json.loads(payload)
        elif line.startswith("MAIN "):
            main = json.loads(line[len("MAIN ") :])
    assert set(subs) == set(configs), result.stdout
    assert main, result.stdout
    return subs, main


def check_import(config: str, sub: dict[str, Any]) -> None:
    if config == "legacy":
        assert "import_error" not in sub, sub
    elif "import_error" in sub:
        # CPython's own message for a module without per-interpreter-GIL support.
        assert "_pyns_boot" in sub["import_error"]
        assert "subinterpreters" in sub["import_error"]


def test_subinterpreter_after_a_join_keeps_the_namespaces(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    first, second = holder(["uts"]), holder(["uts"])
    configs = configs_for(hook_venv)
    subs, main = run_subinterpreters(hook_venv, {"gons_uts": first.ref("uts")}, second.ref("uts"), configs)
    assert main["uts"] == first.link("uts")
    assert main["status"]["state"] == "succeeded"
    for config, sub in subs.items():
        assert sub["site"], f"site.py did not run in the {config} subinterpreter"
        assert sub["gons_uts"] == second.ref("uts")
        assert sub["hook_loaded"], f"the .pth line did not run in the {config} subinterpreter"
        assert sub["uts"] == first.link("uts"), config  # not moved into second
        check_import(config, sub)
        if "import_error" not in sub:
            assert sub["report_ok"] is True  # the process's one boot, seen from the subinterpreter


def test_subinterpreter_does_not_act_for_variables_set_later(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    """No gons_* at start; the program sets one, then makes subinterpreters."""
    target = holder(["uts"])
    configs = configs_for(hook_venv)
    own = subprocess.run(["readlink", "/proc/self/ns/uts"], check=True, capture_output=True, text=True).stdout.strip()
    subs, main = run_subinterpreters(hook_venv, {}, target.ref("uts"), configs)
    assert main["uts"] == own
    assert main["status"]["hook_ran"] is False
    for config, sub in subs.items():
        assert sub["hook_loaded"], config
        assert sub["uts"] == own, config
        check_import(config, sub)
        if "import_error" not in sub:
            assert sub["report_ok"] is None  # boot() never ran in this process


def test_failure_policy_does_not_fire_in_a_subinterpreter(hook_venv: Venv) -> None:
    """A bad gons_* value seen only by a subinterpreter must not exit the process with 125."""
    configs = configs_for(hook_venv)
    subs, main = run_subinterpreters(hook_venv, {}, "/nonexistent/ns/uts", configs)
    assert set(subs) == set(configs)
    assert main["status"]["hook_ran"] is False


def test_main_interpreter_is_recognised(hook_venv: Venv) -> None:
    code = "from pyns_boot import hook; print(hook.in_main_interpreter())"
    result = run_python(hook_venv.python, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
