"""python -m pyns_boot: the pyns-boot command (its entry is pyns_boot._run_fast.main, which its script calls)."""

import sys

from pyns_boot._run_fast import main

if __name__ == "__main__":
    sys.exit(main())
