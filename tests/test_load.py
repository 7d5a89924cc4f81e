"""Load: 500 interpreters with the hook, as many at a time as the machine takes.

Each child is a plain start of the venv interpreter (site, hence the hook, active)
with a tiny ``-c`` that prints its namespace links.  The targets are holders (net,
uts and ipc namespaces, named by /proc/PID/ns paths) and a named network namespace
(a bind mount).  Every child must end up exactly where it was told; with the
default policy and a broken reference in a fraction of them, exactly those exit
125 with their message and none of the others is affected.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence

import pytest
from nsutil import EXIT_STATUS, Holder, NamedNetns, Venv, clean_env, fresh_cwd

CHILDREN = 500
# A bounded pool: child start-up is mostly CPU, so a few per core keeps every
# core busy without piling up hundreds of processes.
WORKERS = 4 * (os.cpu_count() or 1)
CHILD_TIMEOUT = 60
LINKS = ("net", "uts", "ipc")
CODE = f"import os; print(' '.join(os.readlink('/proc/self/ns/' + t) for t in {LINKS!r}))"
BROKEN_EVERY = 7  # in the second run, every 7th child gets a broken reference


class Target:
    """Where a child is sent: its gons_* variables and the links it must end with."""

    def __init__(self, env: dict[str, str], links: tuple[str, ...]) -> None:
        self.env = env
        self.links = links


@pytest.fixture(scope="module")
def targets() -> Iterator[list[Target]]:
    holders = [Holder(("net", "uts", "ipc")) for _ in range(3)]
    netns = NamedNetns()
    own = tuple(os.readlink("/proc/self/ns/" + t) for t in LINKS)
    try:
        made = [Target({"gons_" + t: h.ref(t) for t in LINKS}, tuple(h.link(t) for t in LINKS)) for h in holders]
        # Only net: uts and ipc stay the parent's.
        made.append(Target({"gons_net": netns.path}, (netns.link(), *own[1:])))
        # Explicit order, late opening, one already-joined namespace (ours).
        h = holders[0]
        made.append(
            Target(
                {
                    "gons_order": "uts,!net,ipc",
                    "gons_uts": h.ref("uts"),
                    "gons_net": netns.path,
                    "gons_ipc": h.ref("ipc"),
                },
                (netns.link(), h.link("uts"), h.link("ipc")),
            )
        )
        made.append(
            Target({"gons_net": "/proc/self/ns/net", "gons_uts": h.ref("uts")}, (own[0], h.link("uts"), own[2]))
        )
        yield made
    finally:
        for holder in holders:
            holder.stop()
        netns.delete()


def start_all(python: str, envs: Sequence[dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    def one(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, "-c", CODE],
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            cwd=fresh_cwd(),
            stdin=subprocess.DEVNULL,
        )

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(one, envs))


def check_all(
    results: Sequence[subprocess.CompletedProcess[str]],
    expected: Callable[[int], tuple[int, str, str]],
) -> None:
    wrong = []
    for index, result in enumerate(results):
        outcome = (result.returncode, result.stdout, result.stderr)
        if outcome != expected(index):
            wrong.append((index, outcome, expected(index)))
    assert wrong == [], f"{len(wrong)} of {len(results)} children went wrong, first: {wrong[:3]!r}"


def test_every_child_ends_where_it_was_told(hook_venv: Venv, targets: list[Target]) -> None:
    envs = [targets[i % len(targets)].env for i in range(CHILDREN)]
    results = start_all(hook_venv.python, envs)

    def expected(index: int) -> tuple[int, str, str]:
        return (0, " ".join(targets[index % len(targets)].links) + "\n", "")

    check_all(results, expected)


def test_broken_references_fail_alone(hook_venv: Venv, targets: list[Target]) -> None:
    def broken(index: int) -> bool:
        return index % BROKEN_EVERY == 3

    def env_of(index: int) -> dict[str, str]:
        env = dict(targets[index % len(targets)].env)
        if broken(index):
            # alternately a missing path and a reference of the wrong type
            env["gons_ipc"] = f"/nonexistent/{index}" if index % 2 else "/proc/self/ns/net"
            if "gons_order" in env:
                env["gons_order"] += ",ipc" if "ipc" not in env["gons_order"] else ""
        return env

    envs = [env_of(i) for i in range(CHILDREN)]
    results = start_all(hook_venv.python, envs)

    def expected(index: int) -> tuple[int, str, str]:
        if not broken(index):
            return (0, " ".join(targets[index % len(targets)].links) + "\n", "")
        path = envs[index]["gons_ipc"]
        reason = "No such file or directory" if index % 2 else "it is a namespace of type net, not ipc"
        return (EXIT_STATUS, "", f'pyns_boot: invalid gons_ipc reference "{path}": {reason}\n')

    check_all(results, expected)
    assert sum(r.returncode == EXIT_STATUS for r in results) == len([i for i in range(CHILDREN) if broken(i)])
