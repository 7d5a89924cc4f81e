"""pyns_boot.Namespaces: the specification type, and a child started from it."""

from __future__ import annotations

import os
import pickle
import subprocess
from typing import Callable

import _pyns_boot
import pytest
from nsutil import TYPES, Holder, NamedNetns, Venv, probe

from pyns_boot import Namespaces


@pytest.mark.unit
def test_keyword_paths_render_as_gons_variables() -> None:
    spec = Namespaces(net="/run/netns/blue", uts="/proc/42/ns/uts", order="!uts,net")
    assert spec.to_env() == {"gons_net": "/run/netns/blue", "gons_uts": "/proc/42/ns/uts", "gons_order": "!uts,net"}
    assert spec.types == ("net", "uts") and spec.get("net") == "/run/netns/blue" and spec.get("mnt") is None
    assert Namespaces.from_env(spec.to_env()) == spec


@pytest.mark.unit
def test_immutable_hashable_picklable() -> None:
    a = Namespaces(net="/run/netns/a")
    assert a == Namespaces(net="/run/netns/a") and hash(a) == hash(Namespaces(net="/run/netns/a"))
    assert len({a, Namespaces(net="/run/netns/a"), Namespaces(net="/run/netns/b")}) == 2
    with pytest.raises(AttributeError):
        a.net = "x"
    assert pickle.loads(pickle.dumps(a)) == a
    assert a.replace(uts="/proc/1/ns/uts", net=None) == Namespaces(uts="/proc/1/ns/uts")


@pytest.mark.unit
def test_types_match_the_c_table() -> None:
    assert tuple(Namespaces.of_pid(os.getpid()).paths) == _pyns_boot.TYPES == TYPES


def test_of_pid_all_and_chosen(holder: Callable[..., Holder]) -> None:
    h = holder(("net",))
    spec = Namespaces.of_pid(h.pid)
    assert spec.paths == {t: f"/proc/{h.pid}/ns/{t}" for t in TYPES}
    assert Namespaces.of_pid(h.pid, "net", "uts").types == ("net", "uts")
    with pytest.raises(ValueError, match="unknown namespace type 'NET'"):
        Namespaces.of_pid(h.pid, "NET")


@pytest.mark.unit
def test_of_pid_missing_process() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    with pytest.raises(ProcessLookupError):
        Namespaces.of_pid(dead.pid)


@pytest.mark.unit
def test_netns_name() -> None:
    blue = Namespaces.netns("blue")
    # joined as ip netns exec does (gons_netns); the path is what the join opens
    assert blue.to_env() == {"gons_netns": "blue"} and blue.paths == {"net": "/run/netns/blue"}
    assert blue.netns_name == "blue" and repr(blue) == "Namespaces(netns='blue')"
    assert blue != Namespaces(net="/run/netns/blue") and Namespaces.from_env(blue.to_env()) == blue
    assert pickle.loads(pickle.dumps(blue)) == blue and blue.replace(uts="/proc/1/ns/uts").netns_name == "blue"
    assert blue.replace(net="/run/netns/red").to_env() == {"gons_net": "/run/netns/red"}
    with pytest.raises(ValueError, match="name the same namespace"):
        Namespaces(netns="blue", net="/run/netns/red")
    for bad in ("", "a/b", "..", "."):
        with pytest.raises(ValueError):
            Namespaces.netns(bad)


@pytest.mark.unit
def test_order_is_validated_like_the_hook() -> None:
    with pytest.raises(ValueError, match='unknown namespace type "NET" in gons_order'):
        Namespaces(net="/x", order="NET")
    with pytest.raises(ValueError, match="duplicate namespace type net in gons_order"):
        Namespaces(net="/x", order=["net", "!net"])
    with pytest.raises(ValueError) as unlisted:
        Namespaces(net="/x", order="uts")
    assert str(unlisted.value) == 'pyns_boot: gons_net is set to "/x", but net is not listed in gons_order "uts"'
    assert Namespaces(net="/x", order=["!net", "uts"]).order == "!net,uts"


@pytest.mark.unit
def test_from_env_empty_values_are_unset() -> None:
    assert not Namespaces.from_env({"gons_net": "", "gons_order": "", "PATH": "/bin"})


def test_child_started_from_spec(hook_venv: Venv, holder: Callable[..., Holder], netns: NamedNetns) -> None:
    h = holder(("uts",))
    spec = Namespaces.of_pid(h.pid, "uts").replace(net=netns.path)
    report = probe(hook_venv.python, spec.to_env())
    assert report["links"]["uts"] == h.link("uts") and report["links"]["net"] == netns.link()
