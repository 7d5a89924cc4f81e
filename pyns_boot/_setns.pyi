"""Typed surface of the C helper pyns_boot._setns."""

from typing import Sequence

# (type, path or None, outcome, opened early)
Entry = tuple[str, str | None, str, int]
# (ok, message, errno (0 on success), failed type, effective order, entries in TYPES order)
Report = tuple[bool, str | None, int, str | None, str, tuple[Entry, ...]]

TYPES: tuple[str, ...]
VARIABLES: tuple[str, ...]
ORDER_VARIABLE: str
DEFAULT_ORDER: str

def boot(keep_old_root: bool = False) -> Report | None: ...
def take_old_root() -> tuple[int, int] | None: ...
def report() -> Report | None: ...
def apply(order: str | bytes | None, paths: Sequence[str | bytes | None]) -> Report: ...
def parse_order(order: str | bytes) -> tuple[tuple[str, bool], ...]: ...
