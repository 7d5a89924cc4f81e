"""Real namespaces, real virtualenvs, real interpreters for the tests.

Nothing here mocks the kernel: holders are processes made with unshare(1),
venvs are made with the virtualenv package, and children are real Python
interpreters started with the gons_* variables set.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parent.parent.parent
TYPES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
UNSHARE_FLAGS = {
    "cgroup": ["--cgroup"],
    "ipc": ["--ipc"],
    "mnt": ["--mount"],
    "net": ["--net"],
    "pid": ["--pid"],
    "time": ["--time"],
    "user": ["--user", "--map-root-user"],
    "uts": ["--uts"],
}
# What a child compares to tell which namespace it is in (see spec, point 7).
SELF_LINKS: dict[str, tuple[str, ...]] = {t: (t,) for t in TYPES}
SELF_LINKS["pid"] = ("pid_for_children",)
SELF_LINKS["time"] = ("time", "time_for_children")

NOBODY = 65534
EXIT_STATUS = 125
CHILD_TIMEOUT = 60
# For a child that could hang on bad input (a FIFO opened without O_NONBLOCK): a healthy run takes
# well under a second even on a loaded machine, and a hang fails in seconds, not in CHILD_TIMEOUT.
HANG_TIMEOUT = 10


def test_python() -> str:
    """The interpreter the venvs are made from (the matrix sets it)."""
    return os.environ.get("PYNS_BOOT_TEST_PYTHON") or sys.executable


# ---------------------------------------------------------------- venvs


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = str(path / "bin" / "python")

    @property
    def site_packages(self) -> Path:
        out = subprocess.run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        )
        return Path(out.stdout.strip())

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-m", "pip", "--disable-pip-version-check", "-q", *args],
            check=True,
            capture_output=True,
            text=True,
            env=clean_env(),
        )


def make_venv(path: Path, python: str | None = None, copies: bool = False, system_site: bool = False) -> Venv:
    args = [sys.executable, "-m", "virtualenv", "-q", "-p", python or test_python(), "--no-setuptools", "--no-wheel"]
    # the pip bundled with virtualenv for that Python: an hour after its periodic update (on by default)
    # virtualenv seeds the newest pip it found, which no longer runs on 3.8 (pip 26: list[str] at import)
    args += ["--pip", "embed", "--no-periodic-update"]
    if copies:
        args.append("--copies")
    if system_site:  # the interpreter's own site-packages and the user site, as with pip install --user
        args.append("--system-site-packages")
    subprocess.run([*args, str(path)], check=True, capture_output=True, text=True, env=clean_env())
    return Venv(path)


def world_readable_dir(prefix: str) -> Path:
    """A directory that an unprivileged child can reach (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def build_wheel(out_dir: Path) -> Path:
    given = os.environ.get("PYNS_BOOT_WHEEL")
    if given:
        return Path(given)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out_dir), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out_dir.glob("pyns_boot-*.whl")
    return wheel


# ---------------------------------------------------------------- children

_cwd_parent: list[str] = []


def fresh_cwd() -> str:
    """A new empty directory (0755, below /tmp) for one child to run in.

    Not "/" and not the test process's cwd: "-c" and "-m" put the cwd first on
    sys.path, so any _pyns_boot*.so or pyns_boot/ there would shadow the build
    under test for every import after start-up.  Removed at the end of the
    session (remove_cwds), or when the test process exits.
    """
    if not _cwd_parent:
        _cwd_parent.append(tempfile.mkdtemp(prefix="pyns-boot-cwd-", dir="/tmp"))
        os.chmod(_cwd_parent[0], 0o755)
        atexit.register(remove_cwds)
    path = tempfile.mkdtemp(dir=_cwd_parent[0])
    os.chmod(path, 0o755)
    return path


def remove_cwds() -> None:
    """Remove the directories fresh_cwd() made (a later call makes new ones)."""
    while _cwd_parent:
        shutil.rmtree(_cwd_parent.pop(), ignore_errors=True)


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without anything that steers the hook.

    PYNS_BOOT_WERROR stays: the builds the tests make (sdist routes, editable installs) keep
    warnings as errors when the run does (setup.py)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith(("gons_", "PYNS_BOOT_", "PYTHON")) or k == "PYNS_BOOT_WERROR") and k != "VIRTUAL_ENV"
    }
    env.update(extra)
    return env


PROBE = r"""
import json, os, sys
loaded_at_start = sorted(m for m in sys.modules if m == "pyns_boot" or m.startswith("pyns_boot."))
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
links = {}
for name in ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"):
    try:
        links[name] = os.readlink("/proc/self/ns/" + name)
    except OSError as error:
        links[name] = "error: %s" % error
out = {
    "version": sys.version,
    "prefix": sys.prefix,
    "loaded_at_start": loaded_at_start,
    "fds": fds,
    "links": links,
    "env": {k: v for k, v in os.environ.items() if k.startswith("gons_")},
    "cwd": os.getcwd(),
    "uid": os.getuid(),
}
try:
    import pyns_boot
except ImportError:
    out["status"] = None
else:
    out["status"] = pyns_boot.status().as_dict()
print("PROBE " + json.dumps(out))
"""


# What PEP 829 says 3.18's site.py does: the interpreter's own site.py (3.15+) with the one
# statement that records a .pth import line removed, run as start-up runs it; with -S.
SIMULATED_318_SITE = r"""
import os, sys
source_path = os.path.join(os.path.dirname(os.__file__), "site.py")
with open(source_path, encoding="utf-8") as source_file:
    source = source_file.read()
RECORD = "self._importexecs.setdefault(filename, []).append(line)"
assert source.count(RECORD) == 1, "not a PEP 829 site.py"
source = source.replace(RECORD, "pass  # 3.18: import lines in .pth files are ignored")
site = type(sys)("site")
site.__file__ = source_path
sys.modules["site"] = site
exec(compile(source, source_path, "exec"), site.__dict__)
site.main()
"""


def run_python(
    python: str,
    code: str = PROBE,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    wrapper: Sequence[str] = (),
    python_args: Sequence[str] = (),
    cwd: str | None = None,
    timeout: float = CHILD_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    full_env = clean_env(**dict(env or {}))
    return subprocess.run(
        [*wrapper, python, *python_args, "-c", code, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or fresh_cwd(),
        stdin=subprocess.DEVNULL,
    )


def probe(python: str, env: Mapping[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run the probe; it must succeed and print its report."""
    result = run_python(python, PROBE, env, **kwargs)
    assert result.returncode == 0, (result.returncode, result.stderr)
    return parse_probe(result.stdout)


def parse_probe(stdout: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith("PROBE "):
            report: dict[str, Any] = json.loads(line[len("PROBE ") :])
            return report
    raise AssertionError(f"the probe printed no report: {stdout!r}")


def own_links() -> dict[str, str]:
    return {name: os.readlink("/proc/self/ns/" + name) for name in os.listdir("/proc/self/ns")}


# ---------------------------------------------------------------- unprivileged

# An interpreter below a directory others cannot traverse (pyenv's, below
# root's 0700 home) is out of an unprivileged child's reach: it would
# silently load another libpython.  In a private mount namespace that
# directory is replaced by a 0755 tmpfs holding only the way to the
# interpreter.  An interpreter others reach (Debian's /usr/bin/python3.X)
# needs nothing.
_AS_USER_SCRIPT = r"""
set -e
if [ -n "$PYNS_TEST_HIDDEN" ]; then
    stash=$(mktemp -d)
    mount --bind "$PYNS_TEST_KEEP" "$stash"
    mount -t tmpfs -o mode=0755 pyns-boot-test "$PYNS_TEST_HIDDEN"
    mkdir -p "$PYNS_TEST_KEEP"
    mount --bind "$stash" "$PYNS_TEST_KEEP"
    umount "$stash"
    rmdir "$stash"
fi
exec setpriv --reuid=$PYNS_TEST_UID --regid=$PYNS_TEST_UID --clear-groups -- "$@"
"""


def _untraversable_ancestor(path: str) -> tuple[str, str] | None:
    """(the first directory on the way to path that others cannot traverse, its child on that way)."""
    parts = Path(os.path.realpath(path)).parts
    for depth in range(1, len(parts) - 1):
        directory = Path(*parts[:depth])
        if not os.stat(directory).st_mode & 0o001:
            return str(directory), str(Path(*parts[: depth + 1]))
    return None


def as_user(uid: int = NOBODY) -> list[str]:
    """A command prefix that runs the rest as uid, with the interpreter under test reachable."""
    base = subprocess.run(
        [test_python(), "-S", "-c", "import sys; print(sys.base_prefix)"], check=True, capture_output=True, text=True
    ).stdout.strip()
    hidden, keep = _untraversable_ancestor(base) or ("", "")
    return [
        "env",
        f"PYNS_TEST_UID={uid}",
        "PYNS_TEST_HIDDEN=" + hidden,
        "PYNS_TEST_KEEP=" + keep,
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        _AS_USER_SCRIPT,
        "as-user",
    ]


# ---------------------------------------------------------------- holders


class Holder:
    """A process that sits in fresh namespaces of the given types.

    ``setup`` is shell code run inside before the holder reports ready (for
    example mounts that exist only in its mount namespace).
    """

    def __init__(self, types: Iterable[str], setup: str = "", prefix: Sequence[str] = ()) -> None:
        self.types = tuple(types)
        flags = [flag for t in self.types for flag in UNSHARE_FLAGS[t]]
        script = (setup + "\n" if setup else "") + "echo ready\nexec sleep 1000000"
        self.process = subprocess.Popen(
            [*prefix, "unshare", *flags, "--fork", "--kill-child", "sh", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise RuntimeError(f"holder {self.types} did not start: {err}")
        self.pid = self._inner_pid()

    def _inner_pid(self) -> int:
        # unshare (maybe below a wrapper) forked the shell: the deepest
        # descendant is the process sitting in the new namespaces.
        pid = self.process.pid
        deadline = time.monotonic() + 10
        while True:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                pid = int(children[0])
                continue
            if pid != self.process.pid:
                return pid
            if time.monotonic() > deadline:
                raise RuntimeError("holder has no child")
            time.sleep(0.01)

    def ref(self, ns_type: str) -> str:
        return f"/proc/{self.pid}/ns/{ns_type}"

    def link(self, ns_type: str) -> str:
        return os.readlink(self.ref(ns_type))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=10)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_gone(pid: int, timeout: float = CHILD_TIMEOUT) -> bool:
    """Wait until /proc/PID is gone (a killed holder is reaped by init a moment after its parent)."""
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class NamedNetns:
    """A named network namespace (/run/netns/NAME) made with ip netns."""

    def __init__(self) -> None:
        self.name = "pyns-test-" + uuid.uuid4().hex[:8]
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.path = "/run/netns/" + self.name

    def link(self) -> str:
        out = subprocess.run(
            ["ip", "netns", "exec", self.name, "readlink", "/proc/self/ns/net"],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
