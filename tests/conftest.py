"""Session fixtures: the built wheel, venvs with and without pyns_boot, holders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest
from containers import LabContainer, RootlessContainer, lab_missing, lab_required
from nsutil import Holder, NamedNetns, Venv, build_wheel, make_venv, rmtree, world_readable_dir

# tests/leakcheck.py: the session fails when it leaves files in /tmp, netns, mounts, veths, containers or
# processes behind (--leaks=warn on a machine shared with other jobs); pytester runs its throwaway sessions.
pytest_plugins = ["leakcheck", "pytester"]

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
    reason = lab_missing()
    if reason is not None:
        if lab_required():
            pytest.fail("PYNS_BOOT_REQUIRE_LAB=1, but " + reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def lab_container(lab: None) -> Iterator[LabContainer]:
    """One running container of the lab image, shared by a module's tests (do not stop it)."""
    container = LabContainer("shared")
    yield container
    container.remove()


@pytest.fixture
def make_container(lab: None) -> Iterator[Callable[..., LabContainer]]:
    """Factory: make_container(label, command=..., start=True) -> a container of this test's own (removed after)."""
    made: list[LabContainer] = []

    def make(label: str, command: tuple[str, ...] = ("sleep", "infinity"), start: bool = True) -> LabContainer:
        container = LabContainer(label, command, start)
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
