"""Session fixtures: the built wheel, venvs with and without pyns_boot, holders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest
from nsutil import Holder, NamedNetns, Venv, build_wheel, make_venv, rmtree, world_readable_dir


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError("the pyns_boot tests create namespaces and must run as root")


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
