"""pyns-boot doctor: can the start-up hook work for this interpreter, and why not.

Every check yields a Finding with a level (ok, info, warning, error) and,
for anything but ok, a concrete fix.  An error means the hook cannot act
(exit status 1).  Does not load the C helper except to check that it loads.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys

from pyns_boot import _policy
from pyns_boot._hints import CAP_SYS_ADMIN, capabilities
from pyns_boot._sitedirs import PTH, hook_dir, site_dirs
from pyns_boot.hook import NAMESPACE_VARIABLES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

START = "pyns_boot.start"
START_LINE = "pyns_boot.hook:start"  # the entry of the wheels for 3.18+
OLD_START_LINE = "pyns_boot.hook:run"  # the entry of 0.1.0's .start file
TYPES = tuple(variable[len("gons_") :] for variable in NAMESPACE_VARIABLES)  # the C table, without loading it
MEASURE_TIMEOUT = 30
SLOW_MS = 50.0
MANY_MODULES = 50
HEAVY_MODULES = frozenset(
    ("numpy", "pandas", "scipy", "torch", "tensorflow", "jax", "matplotlib", "sklearn", "cv2", "grpc", "IPython")
)
THREAD_MODULES = frozenset(("threading", "_thread", "concurrent", "multiprocessing", "asyncio"))

OK = "ok"
INFO = "info"
WARNING = "warning"
ERROR = "error"


class Finding:
    __slots__ = ("check", "fix", "level", "message")

    def __init__(self, check: str, level: str, message: str, fix: str | None = None) -> None:
        self.check = check
        self.level = level
        self.message = message
        self.fix = fix

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level, "message": self.message, "fix": self.fix}


def _reinstall() -> str:
    return "reinstall pyns_boot into this interpreter: {} -m pip install --force-reinstall pyns_boot".format(
        sys.executable or "python"
    )


# ---------------------------------------------------------------- site directories


# site_dirs, pth_names, hook_dir and hook_blocker live in pyns_boot._sitedirs (pyns-boot run needs them
# without this module's imports).


# ---------------------------------------------------------------- checks


def check_no_site() -> Finding:
    if sys.flags.no_site:
        return Finding(
            "site",
            ERROR,
            "this interpreter was started with -S: site.py does not run, so no .pth file and no hook",
            "start Python without -S (and without PYTHONNOSITE-style wrappers that add it)",
        )
    return Finding("site", OK, "site.py runs at start-up (no -S)")


def check_pth(dirs: list[str], directory: str | None) -> Finding:
    """directory: the site directory whose pyns_boot.pth acts (hook_dir), or None."""
    if directory is None:
        where = ", ".join(dirs) or "(none)"
        return Finding(
            "pth", ERROR, f"{PTH} is in none of the site directories this interpreter reads: {where}", _reinstall()
        )
    path = os.path.join(directory, PTH)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        return Finding("pth", ERROR, f"{path} cannot be read: {error}", _reinstall())
    if not any(line.startswith(("import ", "import\t")) and "pyns_boot.hook" in line for line in text.splitlines()):
        return Finding(
            "pth",
            ERROR,
            f"{path} has no import line that runs the hook (the C helper's _pyns_boot.run(), or "
            "pyns_boot.hook.run() "
            "when the helper cannot load)",
            _reinstall(),
        )
    return Finding("pth", OK, f"{path} is at the root of a site directory of this interpreter")


def check_package(directory: str | None) -> Finding:
    import pyns_boot

    package_dir = os.path.dirname(os.path.abspath(pyns_boot.__file__ or ""))
    where = os.path.dirname(package_dir)
    editable = _editable_source()
    if editable is not None and os.path.realpath(where) == os.path.realpath(editable):
        return Finding("package", OK, f"pyns_boot {pyns_boot.__version__} from {package_dir} (editable install)")
    if directory is not None and os.path.realpath(where) != os.path.realpath(directory):
        return Finding(
            "package",
            WARNING,
            f"this command imported pyns_boot from {package_dir}, but the hook's .pth is in {directory}",
            "run pyns-boot from a directory that does not shadow the installed package (not the source tree), "
            "or unset PYTHONPATH",
        )
    return Finding("package", OK, f"pyns_boot {pyns_boot.__version__} from {package_dir}")


def _editable_source() -> str | None:
    """The source directory of an editable install (pip install -e, PEP 610 direct_url.json), else None."""
    try:
        from importlib import metadata

        text = metadata.distribution("pyns_boot").read_text("direct_url.json")
        info = json.loads(text) if text else {}
    except Exception:  # not installed as a distribution, or unreadable metadata
        return None
    url = info.get("url", "") if isinstance(info, dict) else ""
    if not (info.get("dir_info") or {}).get("editable") or not url.startswith("file://"):
        return None
    from urllib.parse import unquote

    return unquote(url[len("file://") :])


def check_extension() -> Finding:
    try:
        import _pyns_boot
    except ImportError as error:
        return Finding(
            "extension",
            ERROR,
            f"the C helper _pyns_boot does not load: {error}",
            _reinstall() + " (a wheel built for this Python and platform)",
        )
    from importlib.machinery import PathFinder

    from pyns_boot.hook import HELPER_FILE, stale_helper

    # What `import _pyns_boot` loads in a fresh process (pyns_boot.status(), call_in), which may not be the file
    # loaded here: the command's script and the .pth line load the helper by its path.
    spec = PathFinder.find_spec("_pyns_boot")
    loaded = (spec.origin if spec is not None else None) or getattr(_pyns_boot, "__file__", None) or ""
    refusal = stale_helper(loaded)
    if refusal is not None:
        return Finding("extension", ERROR, refusal[len("pyns_boot: ") :], f"rm {loaded}")
    directory = os.path.dirname(loaded)
    others = sorted(n for n in _listdir(directory) if n.startswith("_pyns_boot.abi3") and n != HELPER_FILE)
    if others:
        paths = " ".join(os.path.join(directory, n) for n in others)
        return Finding(
            "extension",
            WARNING,
            f"the C helper loads: {loaded}; beside it {paths}, left behind by an older install, which Python 3.15 "
            "and later "
            "would load instead",
            f"rm {paths}",
        )
    return Finding("extension", OK, f"the C helper loads: {loaded}")


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def check_start(dirs: list[str]) -> list[Finding]:
    """Every pyns_boot.start of the site directories, judged for this interpreter (docs/python-versions.md)."""
    version = sys.version_info[:2]
    python = "Python {}.{}".format(*version)
    paths = [os.path.join(d, START) for d in dirs if os.path.isfile(os.path.join(d, START))]
    if not paths:
        if version >= (3, 18):
            return [
                Finding(
                    "start",
                    ERROR,
                    f"no {START}: {python} ignores the import line of {PTH}",
                    _reinstall() + " (the wheel built for 3.18 and later, tagged cp318-abi3, ships it)",
                )
            ]
        return [Finding("start", OK, f"no {START}: this Python runs the import line of {PTH}")]
    return [_judge_start(path, version, python) for path in paths]


def _judge_start(path: str, version: tuple[int, int], python: str) -> Finding:
    from pyns_boot import __version__
    from pyns_boot._startup_order import start_entries

    entries = start_entries(path)
    remove = f"rm {path}"
    if entries == [START_LINE]:
        if version >= (3, 18):
            return Finding("start", OK, f"{path} names {START_LINE}")
        if version < (3, 15):
            return Finding("start", INFO, f"{path} is not read by {python}", remove)
        return Finding(
            "start",
            WARNING,
            f"{path} makes {python} skip the import line of {PTH} and call {START_LINE} instead: the "
            "hook works, but "
            "every process imports pkgutil for it (1.75x the instructions of an idle start on 3.15.2)",
            remove + f" (pyns_boot {__version__} installs no .start file for Python 3.8-3.17)",
        )
    what = (
        "names {}".format(", ".join(entries))
        if entries
        else "names no entry"
        if entries is not None
        else "is unreadable"
    )
    if entries == [OLD_START_LINE]:
        effect = "with gons_* variables set, the hook refuses to start the program (exit 125)"
    else:
        effect = "with gons_* variables set, no namespace is joined and no error is raised by pyns_boot"
    if version < (3, 15):
        return Finding(
            "start",
            WARNING,
            f"{path} {what}, which pyns_boot {__version__} does not install: {python} ignores it, but on "
            "3.15 and later "
            "it stops the hook",
            remove,
        )
    return Finding(
        "start",
        ERROR,
        f"{path} {what}, which pyns_boot {__version__} does not install (left behind by an older "
        "install, or written by "
        f"hand): {python} skips the import line of {PTH} for it; {effect}",
        remove,
    )


def _static_imports(text: str) -> list[str]:
    """Modules that the import lines of a .pth file name (site.py executes only those lines)."""
    names: list[str] = []
    for line in text.splitlines():
        if not line.startswith(("import ", "import\t")):
            continue
        try:
            tree = ast.parse(line)
        except SyntaxError:
            names.append("(unparsable line)")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                    names.append(node.args[0].value)
    return list(dict.fromkeys(names))


MEASURE = r"""
import json, os, site, sys, time
def threads():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0
known = set()
out = []
for directory, name in json.loads(sys.argv[1]):
    if directory not in sys.path:
        sys.path.append(directory)
    before, count = set(sys.modules), threads()
    start = time.perf_counter()
    if name.endswith(".pth"):
        site.addpackage(directory, name, known)
    else:  # a .start file (3.15+): what site.py does with it
        state = site.StartupState(known)
        state._read_start_file(directory, name)
        state.process()
    ms = (time.perf_counter() - start) * 1000
    new = sorted(set(sys.modules) - before)
    out.append({"path": os.path.join(directory, name), "ms": ms, "threads": threads() - count, "modules": new})
sys.stdout.write("\nMEASURE " + json.dumps(out) + "\n")
"""


def _measure(plan: list[list[str]]) -> tuple[list[dict[str, Any]] | None, str]:
    """Run the given [directory, .pth or .start name] in a child (-S, then as site.py would) and measure each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("gons_")}
    try:
        result = subprocess.run(
            [sys.executable, "-S", "-c", MEASURE, json.dumps(plan)],
            env=env,
            capture_output=True,
            text=True,
            timeout=MEASURE_TIMEOUT,
            stdin=subprocess.DEVNULL,
            cwd="/",
        )
    except subprocess.TimeoutExpired:
        return None, f"they did not finish within {MEASURE_TIMEOUT} s"
    except OSError as error:
        return None, f"cannot start {sys.executable}: {error.strerror}"
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("MEASURE "):
            measured: list[dict[str, Any]] = json.loads(line[len("MEASURE ") :])
            return measured, ""
    return None, f"the measuring child failed (status {result.returncode}): {result.stderr.strip()[-300:]}"


def check_earlier_pth(dirs: list[str], directory: str | None) -> list[Finding]:
    """What site.py of this version runs before the hook (pyns_boot._startup_order), measured in a child."""
    from pyns_boot._startup_order import before_hook

    if directory is None:
        return []
    hook_file, earlier = before_hook(dirs)
    if hook_file is None:
        return []
    hook_name = os.path.basename(hook_file)
    if not earlier:
        return [Finding("pth-order", OK, f"no other .pth or .start file runs before {hook_file}")]
    plan = [[d, n] for d, n in earlier]
    measured, failure = _measure(plan)
    by_path = {m["path"]: m for m in measured or []}
    findings = []
    for d, name in earlier:
        path = os.path.join(d, name)
        try:
            with open(path, encoding="utf-8", errors="replace") as file:
                text = file.read()
        except OSError:
            text = ""
        static = _static_imports(text) if name.endswith(".pth") else _start_modules(text)
        findings.append(_judge_pth(path, static, by_path.get(path), failure, hook_name))
    return findings


def _start_modules(text: str) -> list[str]:
    """Modules that the entries of a .start file name (pkg.mod:callable)."""
    entries = (line.strip() for line in text.splitlines())
    return [e.split(":", 1)[0] for e in entries if e and not e.startswith("#")]


def _judge_pth(
    path: str, static: list[str], measured: dict[str, Any] | None, failure: str, hook_name: str = PTH
) -> Finding:
    fix_threads = (
        "the hook refuses every join while other threads exist (they would stay behind; mnt, user and time "
        f"cannot be joined at all then): remove the package that installs {os.path.basename(path)}, or rename it to "
        f"sort after {hook_name}"
    )
    imports = "imports {}".format(", ".join(static)) if static else "no import line"
    if measured is None:
        suspicious = sorted({m.split(".")[0] for m in static} & (THREAD_MODULES | HEAVY_MODULES))
        level = WARNING if suspicious else INFO
        message = f"{path} runs before {hook_name}: {imports} (not measured: {failure})"
        return Finding("pth-order", level, message, fix_threads if suspicious else None)
    modules = measured["modules"]
    tops = {m.split(".")[0] for m in modules}
    facts = "{}; measured: {} new modules, {:.1f} ms".format(imports, len(modules), measured["ms"])
    if measured["threads"] > 0:
        return Finding(
            "pth-order",
            WARNING,
            "{} runs before {} and starts {} thread(s): {}".format(path, hook_name, measured["threads"], facts),
            fix_threads,
        )
    heavy = sorted(tops & HEAVY_MODULES)
    if heavy or measured["ms"] >= SLOW_MS or len(modules) >= MANY_MODULES:
        what = "heavy modules ({})".format(", ".join(heavy)) if heavy else "a lot"
        return Finding(
            "pth-order",
            WARNING,
            f"{path} runs before {hook_name} and imports {what}: {facts}",
            "every Python start pays for it before the hook: remove that package from this environment, or make "
            "its .pth import lazily",
        )
    return Finding("pth-order", INFO, f"{path} runs before {hook_name}: {facts}, no thread")


def check_kernel() -> Finding:
    try:
        present = set(os.listdir("/proc/self/ns"))
    except OSError as error:
        return Finding("kernel", ERROR, f"cannot list /proc/self/ns: {error.strerror}", "mount /proc")
    offered = [t for t in TYPES if t in present]
    missing = [t for t in TYPES if t not in present]
    if missing:
        return Finding(
            "kernel",
            INFO,
            "the kernel offers {}; not {}".format(", ".join(offered), ", ".join(missing)),
            "do not set {} (time namespaces need Linux 5.6)".format(", ".join("gons_" + t for t in missing)),
        )
    return Finding("kernel", OK, "the kernel offers every namespace type: {}".format(", ".join(offered)))


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None


#: The sysctls that turn unprivileged user namespaces off: (file, value that does it, message, fix), the first
#: that applies is said.
USERNS_SWITCHES = (
    (
        "/proc/sys/user/max_user_namespaces",
        "0",
        "user namespaces are disabled (user.max_user_namespaces = 0)",
        "sysctl -w user.max_user_namespaces=15000",
    ),
    (
        "/proc/sys/kernel/unprivileged_userns_clone",
        "0",
        "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)",
        "sysctl -w kernel.unprivileged_userns_clone=1",
    ),
    (
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "1",
        "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)",
        "allow this interpreter in an AppArmor profile, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
    ),
)


def check_privileges() -> list[Finding]:
    if max(capabilities(), 0) >> CAP_SYS_ADMIN & 1:  # unknown (-1): as without
        findings = [
            Finding("privileges", OK, "CAP_SYS_ADMIN: this user can join namespaces of any process it can open")
        ]
    else:
        findings = [
            Finding(
                "privileges",
                WARNING,
                (
                    f"no CAP_SYS_ADMIN (uid {os.getuid()}): only namespaces owned by a user namespace this user "
                    "created can be "
                    "joined, and /proc/PID/ns of other users' processes cannot even be opened"
                ),
                "join that user namespace first (set gons_user; the default order joins user first), or run as root",
            )
        ]
    for path, value, message, fix in USERNS_SWITCHES:
        if _read(path) == value:
            return [*findings, Finding("userns", WARNING, message, fix)]
    return [*findings, Finding("userns", OK, "unprivileged user namespaces are available")]


def check_secure_mode() -> Finding:
    executable = os.path.realpath(sys.executable or "")
    try:
        mode = os.stat(executable).st_mode
    except OSError as error:
        return Finding("secure-mode", INFO, f"cannot stat {executable}: {error.strerror}")
    special = []
    if mode & stat.S_ISUID:
        special.append("set-user-ID")
    if mode & stat.S_ISGID:
        special.append("set-group-ID")
    try:
        os.getxattr(executable, "security.capability")
        special.append("file capabilities")
    except OSError:
        pass
    if special:
        return Finding(
            "secure-mode",
            WARNING,
            "{} is {}: started by other users it runs in secure-execution mode, "
            "where the hook refuses the variables".format(executable, " and ".join(special)),
            "use an interpreter without set-ID bits or file capabilities; give privileges to the process instead",
        )
    return Finding("secure-mode", OK, f"{executable} has no set-ID bits or file capabilities")


def check_policy_and_status() -> list[Finding]:
    findings = []
    complaint = _policy.complaint(os.environ.get(_policy.VARIABLE, ""))
    if complaint is not None:
        findings.append(Finding("policy", WARNING, complaint, f"set {_policy.VARIABLE} to {_policy.CHOICES}"))
    from pyns_boot import status

    result = status()
    if result.state != "inactive":
        level = OK if result.ok else WARNING
        message = f"the hook in this process: {result.state}"
        if result.error:
            message += ": " + result.error
        findings.append(Finding("status", level, message, None if result.ok else result.hint or "see pyns-boot status"))
    return findings


def run_checks() -> list[Finding]:
    dirs = site_dirs()
    directory = hook_dir(dirs)
    findings = [check_no_site(), check_pth(dirs, directory), check_package(directory), check_extension()]
    findings += check_start(dirs)
    findings += check_earlier_pth(dirs, directory)
    findings += [check_kernel(), *check_privileges(), check_secure_mode()]
    findings += check_policy_and_status()
    return findings


def main(as_json: bool) -> int:
    findings = run_checks()
    ok = not any(f.level == ERROR for f in findings)
    if as_json:
        report = {
            "ok": ok,
            "python": sys.executable,
            "version": sys.version.split()[0],
            "prefix": sys.prefix,
            "findings": [f.as_dict() for f in findings],
        }
        print(json.dumps(report, indent=2))
    else:
        print(f"pyns-boot doctor: {sys.executable} (Python {sys.version.split()[0]})")
        for f in findings:
            print(f"  {f.level!s:<8} {f.check!s:<12} {f.message}")
            if f.fix and f.level != OK:
                print("  {!s:<8} {!s:<12} fix: {}".format("", "", f.fix))
        print("the hook can work here" if ok else "the hook cannot work here: fix the errors above")
    return 0 if ok else 1
