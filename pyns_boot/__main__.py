"""The pyns-boot command's entry: its script, and python -m pyns_boot.

run's common command lines go the fast path (pyns_boot._run_fast: few imports, since run's program
runs in this process); everything else, and any doubt, goes to pyns_boot.cli.
"""

import sys


def main() -> int:
    arguments = sys.argv[1:]
    if arguments[:1] == ["run"]:
        from pyns_boot import _run_fast

        status = _run_fast.run(arguments[1:])
        if status is not None:
            return status
    from pyns_boot import cli

    return cli.main(arguments)


if __name__ == "__main__":
    sys.exit(main())
