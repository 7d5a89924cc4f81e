"""pyns_boot._setns: the C helper, installed as the top-level module _pyns_boot.

The start-up line in pyns_boot.pth imports ``_pyns_boot`` directly, so a
process whose hook takes the common path never imports this package (see
benchmarks/README.md).  The rest of pyns_boot imports the same module object
under this name; its interface is _setns.pyi.
"""

import sys

sys.modules[__name__] = __import__("_pyns_boot")  # __import__: importlib would load on the executor's start-up
