"""The pyns-boot command where the C helper's command() is not at hand: python -m pyns_boot, and its script
(bin/pyns-boot) with a helper that is not where the script looks (a user site, dist-packages), stale or not
loading.  command() takes the steps of the helper's command() past its own (_run_command.c)."""

import sys

from pyns_boot import _run_fast


def command() -> "int | None":
    """The pyns-boot command's exit status: pyns_boot._run_fast.main() (run's common command lines), else
    pyns_boot.cli.main()."""
    status = _run_fast.main()
    if status is None:
        from pyns_boot import cli

        status = cli.main()
    return status


if __name__ == "__main__":
    sys.exit(command())
