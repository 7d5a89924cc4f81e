"""A worker's exception arrives with the worker's traceback as its __cause__ (second, independent check).

tests/test_executor.py checks call_in; this goes through NamespaceExecutor's
futures, and checks the traceback is the worker's own: its frames, the
exception line, and that Python renders it as the direct cause.
"""

from __future__ import annotations

import traceback

import executor_targets as targets
from nsutil import CHILD_TIMEOUT, NamedNetns

from pyns_boot import NamespaceExecutor, Namespaces, RemoteTraceback


def test_executor_future_carries_the_workers_traceback(netns: NamedNetns) -> None:
    with NamespaceExecutor(Namespaces.netns(netns.name), max_workers=1) as executor:
        error = executor.submit(targets.fail, 11).exception(timeout=CHILD_TIMEOUT)
    assert isinstance(error, targets.Custom) and error.code == 11
    cause = error.__cause__
    assert isinstance(cause, RemoteTraceback), repr(cause)
    lines = cause.text.rstrip("\n").splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert any(line.strip().startswith('File "') and line.strip().endswith(", in fail") for line in lines), lines
    assert "executor_targets.Custom: (11, 'failed with 11')" in lines[-1]
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert "The above exception was the direct cause of the following exception" in rendered
    assert rendered.index("in fail") < rendered.index("direct cause")
