"""Build the C helper and place the startup files at the root of the wheel.

Everything declarative lives in pyproject.toml; this file holds only what
setuptools cannot express there: the abi3 extension and the two files that
must land at the root of site-packages (pyns_boot.pth, pyns_boot.start).
"""

from __future__ import annotations

import os
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

STARTUP_FILES = ("pyns_boot.pth", "pyns_boot.start")

# A free-threaded CPython (3.13t) cannot use the limited API; such a build
# gets a version-specific extension that declares Py_mod_gil instead.
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
LIMITED_API = not FREE_THREADED

C_FLAGS = [
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wformat=2",
    "-fno-strict-aliasing",
]
C_FLAGS += os.environ.get("PYNS_BOOT_EXTRA_CFLAGS", "").split()
LINK_FLAGS = os.environ.get("PYNS_BOOT_EXTRA_LDFLAGS", "").split()


class build_py_with_startup_files(build_py):
    """Copy the startup files next to the package, at the root of the wheel.

    An editable install (pip/uv install -e, PEP 660) packs into its wheel only
    the import hook setuptools writes and what lands in the unpacked wheel
    (install_lib); build_lib is thrown away.  The startup files must be real
    files at the root of site-packages in that case too, so they go there.
    """

    def _startup_dir(self) -> str:
        if getattr(self, "editable_mode", False):
            return str(self.get_finalized_command("install").install_lib)
        return str(self.build_lib)

    def run(self) -> None:
        super().run()
        target = self._startup_dir()
        for name in STARTUP_FILES:
            self.copy_file(name, os.path.join(target, name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if getattr(self, "editable_mode", False):
            return outputs  # written straight into the wheel, not into build_lib
        return outputs + [os.path.join(self.build_lib, n) for n in STARTUP_FILES]


setup(
    ext_modules=[
        # Top-level, beside pyns_boot.pth: the start-up line imports it without
        # the package; pyns_boot/_setns.py re-exports it as pyns_boot._setns.
        Extension(
            "_pyns_boot",
            sources=["pyns_boot/_setns.c", "pyns_boot/_setns_core.c", "pyns_boot/_pid_entry.c"],
            depends=["pyns_boot/_setns_core.h", "pyns_boot/_pid_entry.h"],
            py_limited_api=LIMITED_API,
            define_macros=[("Py_LIMITED_API", "0x03080000")] if LIMITED_API else [],
            extra_compile_args=C_FLAGS,
            extra_link_args=LINK_FLAGS,
        )
    ],
    cmdclass={"build_py": build_py_with_startup_files},
    options={"bdist_wheel": {"py_limited_api": "cp38"}} if LIMITED_API else {},
)
