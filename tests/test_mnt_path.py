"""After a mnt join, pyns_boot.__path__ points into the original root (second, independent check).

tests/test_foreign_mnt.py runs whole programs in a target that hides the
interpreter and the venvs.  This checks the package path itself: the target
hides only the venv, the child imports a pyns_boot module it had not loaded
at start-up, and both pyns_boot.__path__ and that module's file are below
the hook's handle on the original root (status().imports_root).
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Callable

from nsutil import Holder, Venv, run_python

CODE = r"""
import json, os, sys
import pyns_boot
package_path = list(pyns_boot.__path__)
from pyns_boot import _namespaces  # not loaded at start-up
status = pyns_boot.status()
print(json.dumps({"path": package_path, "file": _namespaces.__file__, "imports_root": status.imports_root,
                  "state": status.state, "venv_visible": os.path.exists(sys.argv[1]),
                  "mnt": os.readlink("/proc/self/ns/mnt")}))
"""


def test_package_path_is_rewritten_to_the_original_root(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    site = str(hook_venv.site_packages)
    h = holder(("mnt",), setup=f"mount -t tmpfs pyns-boot-suite-hide {shlex.quote(str(hook_venv.path))}")
    result = run_python(hook_venv.python, CODE, {"gons_mnt": h.ref("mnt")}, args=[site])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["state"] == "succeeded" and out["mnt"] == h.link("mnt")
    assert out["venv_visible"] is False  # the original path leads nowhere in the target
    root = out["imports_root"]
    assert root is not None and root.startswith("/proc/self/fd/"), out
    assert out["path"] == [root + os.path.join(site, "pyns_boot")], out
    assert out["file"] == root + os.path.join(site, "pyns_boot", "_namespaces.py"), out
