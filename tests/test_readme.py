"""The README's claims about status() and a failed start, run as written.

The table of states ("What `status().state` says") is read from README.md and each row's command
line is run: its variables, its interpreter (`python`: a venv with pyns_boot installed;
`/usr/bin/python3`: an interpreter without it) and its options, with app.py printing the state.
The example of a failed start is run the same way: a target that has exited.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Callable

import pytest
from nsutil import CHILD_TIMEOUT, EXIT_STATUS, REPO, Holder, NamedNetns, Venv, clean_env, fresh_cwd, wait_gone

README = REPO / "README.md"
TABLE_HEAD = "| started as | `status().state` |"
STATES = ("inactive", "succeeded", "failed", "not_run")
APP = """\
import sys
try:
    import pyns_boot
except ImportError:  # python -S: site-packages is not on sys.path
    sys.path.append({site!r})
    import pyns_boot
print(pyns_boot.status().state)
"""


def state_table() -> list[tuple[str, str]]:
    """(command line, state) for each row of the README's table of states."""
    lines = README.read_text().splitlines()
    assert lines.count(TABLE_HEAD) == 1, f"README.md has no (or two) tables headed {TABLE_HEAD}"
    rows = []
    for line in lines[lines.index(TABLE_HEAD) + 2 :]:
        if not line.startswith("|"):
            break
        found = re.fullmatch(r"\| `([^`]+)` \| `([a-z_]+)`.*\|", line)
        assert found is not None, f"a row of the README's table of states that this test cannot read: {line}"
        rows.append((found.group(1), found.group(2)))
    return rows


ROWS = state_table()


@pytest.mark.unit
def test_the_table_covers_every_state() -> None:
    assert {state for _, state in ROWS} == set(STATES)
    assert ("python -S app.py", "inactive") in ROWS  # the claim the README once got wrong


@pytest.mark.parametrize(("command", "state"), ROWS, ids=[command for command, _ in ROWS])
def test_state_table_row(
    command: str, state: str, hook_venv: Venv, plain_venv: Venv, netns: NamedNetns, tmp_path: Path
) -> None:
    site = str(hook_venv.site_packages)
    words = {
        "/run/netns/blue": netns.path,
        "/run/netns/nosuch": "/run/netns/pyns-test-nosuch-" + uuid.uuid4().hex[:8],
        "/venv/lib/python3.X/site-packages": site,
    }
    interpreters = {"python": hook_venv.python, "/usr/bin/python3": plain_venv.python}
    app = tmp_path / "app.py"
    app.write_text(APP.format(site=site))
    env: dict[str, str] = {}
    argv = shlex.split(command)
    while "=" in argv[0]:
        name, _, value = argv.pop(0).partition("=")
        env[name] = words.get(value, value)
    assert argv[0] in interpreters and argv[-1] == "app.py", f"a command this test cannot run: {command}"
    argv = [interpreters[argv[0]], *argv[1:-1], str(app)]
    result = subprocess.run(
        argv, env=clean_env(**env), capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=fresh_cwd()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == state + "\n", result.stderr
    if state == "failed":  # and without warn, as the row says: status 125 before app.py runs
        del env["PYNS_BOOT_ON_ERROR"]
        refused = subprocess.run(
            argv, env=clean_env(**env), capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=fresh_cwd()
        )
        assert (refused.returncode, refused.stdout) == (EXIT_STATUS, "")


def test_the_example_of_a_failed_start(hook_venv: Venv, holder: Callable[..., Holder]) -> None:
    """The README's two lines, with pyns-boot on PATH as in an activated venv, and the target's pid."""
    text = README.read_text()
    start = text.index("**When a join fails**")
    example = [line.strip() for line in text[start:].splitlines() if line.startswith("    pyns_boot: ")][:2]
    assert len(example) == 2 and example[1].startswith("pyns_boot: hint: "), example
    h = holder(("net",))
    env = {"gons_net": h.ref("net"), "PATH": "{}:{}".format(hook_venv.path / "bin", os.environ.get("PATH", ""))}
    h.stop()
    assert wait_gone(h.pid)
    result = subprocess.run(
        [hook_venv.python, "-c", "pass"], env=clean_env(**env), capture_output=True, text=True, timeout=CHILD_TIMEOUT,
        cwd=fresh_cwd(),
    )  # fmt: skip
    assert result.returncode == EXIT_STATUS
    assert result.stderr.splitlines() == [line.replace("32321", str(h.pid)) for line in example]
