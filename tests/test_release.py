"""The checks of `nox -s dist` (scripts/release.py) that stop a bad release build early.

Real parts only: a real interpreter without ziglang, a PATH without zig or with
a zig of another version (a program that answers `zig version` like one), real
git work trees.  The build itself (zig cc, auditwheel, twine) runs in
`nox -s dist`, which .ci/run calls before the tests.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from nsutil import REPO, Venv


def load_release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release", REPO / "scripts" / "release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = load_release()
INSTALL = f"pip install ziglang=={release.ZIG_VERSION}"


def fake_zig(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    zig = directory / "zig"
    zig.write_text(f'#!/bin/sh\n[ "$1" = version ] && echo {version}\n')
    zig.chmod(0o755)
    return zig


def test_no_zig_at_all_names_what_to_install(plain_venv: Venv, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(release.ReleaseError) as caught:
        release.find_zig(plain_venv.python, str(empty))
    message = str(caught.value)
    assert "no C compiler for the release wheels" in message
    assert plain_venv.python in message
    assert INSTALL in message


def test_zig_of_another_version_names_the_one_needed(plain_venv: Venv, tmp_path: Path) -> None:
    zig = fake_zig(tmp_path / "bin", "0.11.0")
    with pytest.raises(release.ReleaseError) as caught:
        release.find_zig(plain_venv.python, f"{zig.parent}:/usr/bin:/bin")
    message = str(caught.value)
    assert f"need zig {release.ZIG_VERSION}" in message
    assert f"{zig}: 0.11.0" in message
    assert INSTALL in message


def test_zig_of_the_pinned_version_on_path_is_taken(plain_venv: Venv, tmp_path: Path) -> None:
    zig = fake_zig(tmp_path / "bin", release.ZIG_VERSION)
    assert release.find_zig(plain_venv.python, f"{zig.parent}:/usr/bin:/bin") == [str(zig)]


@pytest.mark.unit
def test_pinned_zig_agrees_with_requirements_dev() -> None:
    pins = [
        line.split("==")[1].strip()
        for line in (REPO / "requirements-dev.txt").read_text().splitlines()
        if line.startswith("ziglang==")
    ]
    assert pins == [release.ZIG_VERSION]


@pytest.mark.unit
def test_pre_commit_pins_agree_with_requirements_dev() -> None:
    """.pre-commit-config.yaml judges a commit with the ruff and mypy that CI runs."""
    dev = (REPO / "requirements-dev.txt").read_text()
    hooks = (REPO / ".pre-commit-config.yaml").read_text()
    for tool in ("ruff", "mypy"):
        (pinned,) = re.findall(rf"^{tool}==(\S+)$", dev, re.MULTILINE)
        used = re.findall(rf'"{tool}==([^"]+)"', hooks)
        assert used and set(used) == {pinned}, (tool, pinned, used)


needs_git = pytest.mark.skipif(
    shutil.which("git") is None,
    reason="git is not installed (the lab image of the 3.14/3.15 sessions has none); the host sessions run these",
)


def git(tree: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    path = tmp_path / "tree"
    path.mkdir()
    git(path, "init", "-q")
    (path / "setup.py").write_text("pass\n")
    git(path, "add", "setup.py")
    git(path, "commit", "-q", "-m", "one")
    return path


@pytest.mark.unit
@needs_git
def test_clean_tree_passes(tree: Path) -> None:
    assert release.check_clean_tree(tree, {}) is None


@pytest.mark.unit
@needs_git
@pytest.mark.parametrize("change", ["modified", "untracked"])
def test_dirty_tree_is_refused_naming_the_files_and_the_override(tree: Path, change: str) -> None:
    if change == "modified":
        (tree / "setup.py").write_text("changed\n")
        shown = " M setup.py"
    else:
        (tree / "sub").mkdir()
        (tree / "sub" / "new.py").write_text("\n")
        shown = "?? sub/new.py"
    with pytest.raises(release.ReleaseError) as caught:
        release.check_clean_tree(tree, {})
    message = str(caught.value)
    assert "is not clean" in message and str(tree) in message
    assert shown in message.splitlines()[1]
    assert "commit or stash" in message and f"{release.ALLOW_DIRTY}=1" in message

    warning = release.check_clean_tree(tree, {release.ALLOW_DIRTY: "1"})
    assert warning is not None and shown in warning and "do not upload" in warning


@pytest.mark.unit
def test_not_a_git_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(release.ReleaseError) as caught:
        release.check_clean_tree(tmp_path, {})
    assert f"cannot check the work tree {tmp_path}" in str(caught.value)
    assert release.ALLOW_DIRTY in str(caught.value)


@pytest.mark.unit
def test_tags_name_the_manylinux2014_platforms() -> None:
    assert release.wheel_tag("x86_64") == "cp38-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64"
    assert release.wheel_tag("aarch64") == "cp38-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64"
