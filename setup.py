"""Build the C helper and place the startup files at the root of the wheel.

Everything declarative lives in pyproject.toml; this file holds only what
setuptools cannot express there: the abi3 extension and the two files that
must land at the root of site-packages (pyns_boot.pth; pyns_boot.start only
in a wheel for 3.18+), and the helper's one file name.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

# The oldest CPython a wheel is for (its cp3X-abi3 tag).  The default, cp38,
# serves 3.8-3.17: all run the import line of pyns_boot.pth, so that wheel has
# no pyns_boot.start (on 3.15-3.17 its mere presence would silence the line
# and make every process import pkgutil to call the entry instead).  Python
# 3.18 ignores import lines (PEP 829): a wheel built with
# PYNS_BOOT_ABI3_FLOOR=cp318 (the default when 3.18+ builds it, from the sdist
# too) is tagged cp318-abi3, which pip prefers there, and ships the .start
# file.  bdist_wheel refuses that tag on older interpreters.
# docs/python-versions.md has the plan.
ABI3_FLOOR = os.environ.get("PYNS_BOOT_ABI3_FLOOR") or ("cp318" if sys.version_info >= (3, 18) else "cp38")
if ABI3_FLOOR not in ("cp38", "cp318"):
    raise SystemExit(f"PYNS_BOOT_ABI3_FLOOR={ABI3_FLOOR}: expected cp38 or cp318")
STARTUP_FILES = ("pyns_boot.pth", "pyns_boot.start") if ABI3_FLOOR == "cp318" else ("pyns_boot.pth",)

# A free-threaded CPython (3.13t) cannot use the limited API; such a build
# gets a version-specific extension that declares Py_mod_gil instead.
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
LIMITED_API = not FREE_THREADED

C_FLAGS = [
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wformat=2",
    "-fno-strict-aliasing",
    # Only PyInit__pyns_boot leaves the helper: the calls between its files bind at link time, and the
    # loader has no symbols of ours to relocate at every hooked start (docs/development.md, Layout).
    "-fvisibility=hidden",
]
# Warnings are errors where the project builds (PYNS_BOOT_WERROR=1: .ci/run, noxfile.py, scripts/test.sh,
# the release wheels of scripts/release.py); someone building the sdist with a newer compiler sees them as
# warnings and still gets the extension.
WERROR = os.environ.get("PYNS_BOOT_WERROR", "")
if WERROR not in ("", "0", "1"):
    raise SystemExit(f"PYNS_BOOT_WERROR={WERROR}: expected 1 (warnings are errors) or 0")
if WERROR == "1":
    C_FLAGS.append("-Werror")
C_FLAGS += os.environ.get("PYNS_BOOT_EXTRA_CFLAGS", "").split()
LINK_FLAGS = os.environ.get("PYNS_BOOT_EXTRA_LDFLAGS", "").split()


# The one file name of the C helper in every cp38-abi3 wheel, whoever builds it.
# setuptools takes the first abi3 suffix of the building interpreter: 3.15
# lists ".abi3-x86_64-linux-gnu.so" before ".abi3.so", and 3.8-3.14 do not
# know that suffix, so a wheel built by 3.15 would not load there.
HELPER = "_pyns_boot"
HELPER_FILE = HELPER + ".abi3.so"


class build_ext_one_name(build_ext):
    """Name the limited-API helper _pyns_boot.abi3.so, the suffix every CPython 3.x on Linux loads."""

    def get_ext_filename(self, fullname: str) -> str:
        if LIMITED_API and fullname == HELPER:
            return HELPER_FILE
        return str(super().get_ext_filename(fullname))

    def run(self) -> None:
        super().run()
        # A build directory reused from an older build may hold the helper under
        # another name (_pyns_boot.abi3-x86_64-linux-gnu.so): bdist_wheel would
        # pack it too, and 3.15 would load it first.
        built = os.path.abspath(self.get_ext_fullpath(HELPER))
        directory = os.path.dirname(built)
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if name.startswith(HELPER + ".") and name.endswith(".so") and path != built:
                os.remove(path)


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
        # build_lib outlives the source tree's history: a module removed or renamed since the last build
        # would still be packed into the wheel (setuptools copies, never prunes).  Start from an empty package.
        if not getattr(self, "editable_mode", False):
            shutil.rmtree(os.path.join(str(self.build_lib), "pyns_boot"), ignore_errors=True)
        super().run()
        target = self._startup_dir()
        for name in STARTUP_FILES:
            self.copy_file(name, os.path.join(target, name))
        stale = os.path.join(target, "pyns_boot.start")  # from an older build or a cp318 one
        if "pyns_boot.start" not in STARTUP_FILES and os.path.exists(stale):
            os.remove(stale)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if getattr(self, "editable_mode", False):
            return outputs  # written straight into the wheel, not into build_lib
        return outputs + [os.path.join(self.build_lib, n) for n in STARTUP_FILES]


# setuptools has no module of its own for it on every version (3.8's takes distutils' through its shim).
build_scripts = Distribution().get_command_class("build_scripts")


class build_scripts_for_the_installer(build_scripts):  # type: ignore[valid-type,misc]
    """bin/pyns-boot keeps its #!python line for the installer, which writes its own interpreter there.

    setuptools' editable builds would write the interpreter of their temporary build environment
    instead (bdist_wheel alone asks for #!python), and uv installs that line as it is."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.executable = "python"


setup(
    ext_modules=[
        # Top-level, beside pyns_boot.pth: the start-up line imports it without
        # the package, and the rest of the code imports it under the same name.
        Extension(
            HELPER,
            sources=[
                "pyns_boot/_pyns_boot.c",
                "pyns_boot/_startup.c",
                "pyns_boot/_variables.c",
                "pyns_boot/_policy.c",
                "pyns_boot/_netns_view.c",
                "pyns_boot/_preload.c",
                "pyns_boot/_setns.c",
                "pyns_boot/_order.c",
                "pyns_boot/_reference.c",
                "pyns_boot/_pid_entry.c",
                "pyns_boot/_host_exec.c",
                "pyns_boot/_run_command.c",
                "pyns_boot/_run_code.c",
            ],
            depends=[
                "pyns_boot/_module.h",
                "pyns_boot/_startup.h",
                "pyns_boot/_setns.h",
                "pyns_boot/_setns_internal.h",
                "pyns_boot/_pid_entry.h",
                "pyns_boot/_host_exec.h",
            ],
            py_limited_api=LIMITED_API,
            define_macros=[("Py_LIMITED_API", "0x03080000")] if LIMITED_API else [],
            extra_compile_args=C_FLAGS,
            extra_link_args=LINK_FLAGS,
        )
    ],
    # pyns-boot: a script of its own (bin/pyns-boot says why it is not an entry point)
    scripts=["bin/pyns-boot"],
    cmdclass={
        "build_ext": build_ext_one_name,
        "build_py": build_py_with_startup_files,
        "build_scripts": build_scripts_for_the_installer,
    },
    options={"bdist_wheel": {"py_limited_api": ABI3_FLOOR}} if LIMITED_API else {},
)
