"""python -m pyns_boot: the pyns-boot command, as its script starts it (src/bin/pyns-boot)."""

import sys

from pyns_boot import _run_fast

if __name__ == "__main__":
    status = _run_fast.main()
    if status is None:
        from pyns_boot import cli

        status = cli.main()
    sys.exit(status)
