"""Application code that wants to know (or insist) where it runs.

gons_net=/run/netns/blue python examples/status_check.py [--json]
"""

import json
import sys

import pyns_boot

status = pyns_boot.status()
print("pyns_boot:", status)
if "--json" in sys.argv:
    print(json.dumps(status.as_dict(), indent=2))

# Fail hard (an OSError subclass with errno) when the hook failed, or when
# gons_* variables are set but the hook never ran in this process.
try:
    pyns_boot.check()
except pyns_boot.NamespaceError as error:
    print("not where we were told to be:", error, f"(errno {error.errno})", file=sys.stderr)
    sys.exit(1)
print("joined:", ", ".join(status.joined) or "-", "| already a member:", ", ".join(status.already_joined) or "-")
