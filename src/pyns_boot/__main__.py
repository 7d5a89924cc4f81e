"""python -m pyns_boot: the pyns-boot command line."""

import sys

from pyns_boot.cli import main

sys.exit(main())
