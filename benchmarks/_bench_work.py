"""The work every benchmark variant does: name the network namespace and its interfaces.

A module of its own, importable by the workers (the benchmark script is on
sys.path), with no imports beyond os so that loading it costs nothing.
"""

import os

CODE = """
import os
link = os.readlink("/proc/self/ns/net")
with open("/proc/self/net/dev") as f:
    names = [line.split(":")[0].strip() for line in f.readlines()[2:]]
print(link, *names)
"""


def net_info() -> "tuple[str, list[str]]":
    """What CODE prints, as a value."""
    link = os.readlink("/proc/self/ns/net")
    with open("/proc/self/net/dev") as f:
        names = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    return link, names
