"""Session fixtures: the built wheel, venvs with and without pyns_boot, holders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest
from containers import LabContainer, RootlessContainer, lab_missing, lab_required
from engines import CtrContainer, EngineDaemons, LxcContainer, host_state, tools_missing
from nsutil import Holder, NamedNetns, Venv, build_wheel, make_venv, rmtree, world_readable_dir

# tests/support/leakcheck.py: the session fails when it leaves files in /tmp, netns, mounts, veths, containers or
# processes behind (--leaks=warn on a machine shared with other jobs); pytester runs its throwaway sessions.
pytest_plugins = ["leakcheck", "pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """The suite tests the wheel scripts/test.sh installed, never the clone's pyns_boot/ (tests/test_loaded_from.py).

    `python -m pytest` from the clone, or PYTHONPATH=., would import the tree's package without its C helper and
    test something no user runs: stop before anything is collected."""
    import importlib.util

    spec = importlib.util.find_spec("pyns_boot")
    origin = os.path.realpath(spec.origin) if spec is not None and spec.origin else ""
    if origin.startswith(str(Path(__file__).resolve().parent.parent / "pyns_boot") + os.sep):
        raise pytest.UsageError(
            f"pyns_boot would be imported from the source tree ({origin}), not the installed wheel: run the tests "
            "with scripts/test.sh (or the test venv's bin/pytest), not `python -m pytest` from the clone"
        )


# The unit layer: tests marked @pytest.mark.unit need no kernel privilege and run as any user
# (scripts/test.sh -m unit; .ci/run runs them as nobody).  These fixtures make namespaces, holders,
# venvs with the wheel or containers: a unit test that reaches one of them is refused at collection.
UNIT = "unit"
ROOT_FIXTURES = frozenset(
    {
        "workdir",
        "wheel",
        "hook_venv",
        "plain_venv",
        "fresh_hook_venv",
        "holder",
        "netns",
        "lab",
        "lab_container",
        "make_container",
        "rootless_container",
        "engine_daemons",
        "make_ctr",
        "make_lxc",
    }
)
NEED_ROOT = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker(UNIT) is not None:
            needs = sorted(ROOT_FIXTURES.intersection(getattr(item, "fixturenames", ())))
            if needs:
                raise pytest.UsageError(
                    "{} is marked unit but uses the fixture(s) {}, which need root".format(
                        item.nodeid, ", ".join(needs)
                    )
                )
    if os.geteuid() == 0:
        return
    # Not root: the unit tests only; the others create namespaces.  Said once, in the header and the summary.
    kept = [item for item in items if item.get_closest_marker(UNIT) is not None]
    deselected = [item for item in items if item.get_closest_marker(UNIT) is None]
    config.stash[NEED_ROOT] = len(deselected)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str | None:
    if os.geteuid() == 0:
        return None
    return f"pyns_boot: not root (uid {os.geteuid()}): only the unit tests run (-m unit); the others need root"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    need_root = config.stash.get(NEED_ROOT, 0)
    if need_root:
        terminalreporter.write_line(
            (
                f"pyns_boot: {need_root} tests were deselected because they need root (they create namespaces): "
                "run scripts/test.sh as root for the whole suite"
            ),
            yellow=True,
        )


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = world_readable_dir("pyns-boot-test-")
    yield path
    rmtree(path)


@pytest.fixture(scope="session")
def wheel(workdir: Path) -> Path:
    out = workdir / "wheel"
    out.mkdir()
    return build_wheel(out)


@pytest.fixture(scope="session")
def hook_venv(workdir: Path, wheel: Path) -> Venv:
    """A venv with pyns_boot installed from the wheel (shared: do not modify)."""
    venv = make_venv(workdir / "hook-venv")
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    return venv


@pytest.fixture(scope="session")
def plain_venv(workdir: Path) -> Venv:
    """A venv without pyns_boot (shared: do not modify)."""
    return make_venv(workdir / "plain-venv")


@pytest.fixture
def fresh_hook_venv(workdir: Path, wheel: Path, request: pytest.FixtureRequest) -> Iterator[Venv]:
    """A venv of this test's own, with pyns_boot installed: free to modify."""
    path = workdir / ("venv-" + request.node.name.replace("[", "-").replace("]", "").replace("/", "-"))
    venv = make_venv(path)
    venv.pip("install", "--no-deps", "--no-index", str(wheel))
    yield venv
    rmtree(path)


@pytest.fixture
def holder() -> Iterator[Callable[..., Holder]]:
    """Factory: holder(types, setup='', prefix=()) -> Holder, stopped at teardown."""
    made: list[Holder] = []

    def make(types: tuple[str, ...] | list[str], setup: str = "", prefix: tuple[str, ...] | list[str] = ()) -> Holder:
        h = Holder(types, setup, prefix)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


@pytest.fixture
def netns() -> Iterator[NamedNetns]:
    ns = NamedNetns()
    yield ns
    ns.delete()


@pytest.fixture(scope="session")
def lab() -> None:
    """The container lab (podman, runc, the sid image): skip without it, unless PYNS_BOOT_REQUIRE_LAB=1 (CI)."""
    skip_or_fail(lab_missing())


def skip_or_fail(reason: str | None) -> None:
    """Skip a lab test that cannot run here, with the way out; under PYNS_BOOT_REQUIRE_LAB=1 (CI) fail it."""
    if reason is not None:
        if lab_required():
            pytest.fail("PYNS_BOOT_REQUIRE_LAB=1, but " + reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def engine_daemons() -> Iterator[EngineDaemons]:
    """The lab's containerd and dockerd (scripts/lab.sh engines start), DOCKER_HOST and CONTAINERD_ADDRESS set
    for the session; stopped at its end when this session started them (``.before``: the host before)."""
    skip_or_fail(tools_missing("dockerd", "containerd", "ctr", "docker"))
    daemons = EngineDaemons()
    saved = {k: os.environ.get(k) for k in daemons.env}
    os.environ.update(daemons.env)
    if not daemons.answering():
        daemons.before = host_state()
    daemons.start()
    yield daemons
    daemons.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


#: The engines that run the lab image's OCI containers with the same command line (podman's and docker's).
OCI_ENGINES = ("podman", "docker")


def _engine_ready(request: pytest.FixtureRequest, engine: str) -> None:
    request.getfixturevalue("lab" if engine == "podman" else "engine_daemons")


@pytest.fixture(scope="module", params=OCI_ENGINES)
def lab_container(request: pytest.FixtureRequest) -> Iterator[LabContainer]:
    """One running container of the lab image, shared by a module's tests (do not stop it): podman's, docker's."""
    _engine_ready(request, request.param)
    container = LabContainer("shared", engine=request.param)
    yield container
    container.remove()


@pytest.fixture(params=OCI_ENGINES)
def make_container(request: pytest.FixtureRequest) -> Iterator[Callable[..., LabContainer]]:
    """Factory: make_container(label, command=..., start=True) -> a container of this test's own (removed after),
    of podman and of docker (the test runs once for each)."""
    _engine_ready(request, request.param)
    made: list[LabContainer] = []

    def make(label: str, command: tuple[str, ...] = ("sleep", "infinity"), start: bool = True) -> LabContainer:
        container = LabContainer(label, command, start, engine=request.param)
        made.append(container)
        return container

    yield make
    for container in made:
        container.remove()


@pytest.fixture
def make_ctr(engine_daemons: EngineDaemons) -> Iterator[Callable[..., CtrContainer]]:
    """Factory: make_ctr(label, namespace, cid=None, start=True) -> a containerd container (removed after)."""
    made: list[CtrContainer] = []

    def make(label: str, namespace: str, cid: str | None = None, start: bool = True) -> CtrContainer:
        container = CtrContainer(label, namespace, cid, start)
        made.append(container)
        return container

    yield make
    for container in made:
        container.remove()


@pytest.fixture
def make_lxc() -> Iterator[Callable[..., LxcContainer]]:
    """Factory: make_lxc(label, start=True) -> an LXC container (destroyed after)."""
    skip_or_fail(tools_missing("lxc-start", "lxc-info"))
    made: list[LxcContainer] = []

    def make(label: str, start: bool = True) -> LxcContainer:
        container = LxcContainer(label, start)
        made.append(container)
        return container

    yield make
    for container in made:
        container.remove()


@pytest.fixture(scope="module")
def rootless_container(lab: None) -> Iterator[RootlessContainer]:
    """A container of rootless podman run by the user nobody (its own user namespace), shared by a module."""
    path = world_readable_dir("pyns-test-rootless-")
    container = RootlessContainer(str(path))
    yield container
    container.remove()
    rmtree(path)
