"""python -m pyns_boot: the pyns-boot command line."""

import sys

from pyns_boot._run_fast import main

sys.exit(main())
