"""Typed surface of the C helper pyns_boot._setns."""

from typing import Optional, Sequence, Tuple, Union

# (type, path or None, outcome, opened early)
Entry = Tuple[str, Optional[str], str, int]
# (ok, message, errno (0 on success), failed type, effective order, entries in TYPES order)
Report = Tuple[bool, Optional[str], int, Optional[str], str, Tuple[Entry, ...]]

TYPES: Tuple[str, ...]
VARIABLES: Tuple[str, ...]
ORDER_VARIABLE: str
DEFAULT_ORDER: str

def boot() -> Optional[Report]: ...
def report() -> Optional[Report]: ...
def apply(order: Optional[Union[str, bytes]], paths: Sequence[Optional[Union[str, bytes]]]) -> Report: ...
