"""Judge valgrind memcheck XML logs: used by scripts/valgrind.sh.

    python3 scripts/valgrind-check.py strict LOG...   every error counts (the C core driver)
    python3 scripts/valgrind-check.py ours LOG...     Python runs: an error counts when any of
                                                      its stacks (origin included) passes through
                                                      pyns_boot's extension; invalid reads, writes
                                                      and frees count wherever they are

CPython itself leaks at exit and triggers a few uninitialised-value reports of its
own (measured: 4 with `python -c pass`, no pyns_boot involved); those are counted
and printed, not judged.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

ALWAYS = ("InvalidRead", "InvalidWrite", "InvalidFree", "MismatchedFree", "Overlap", "InvalidMemPool")


def ours(error: ET.Element) -> bool:
    for frame in error.iter("frame"):
        obj = frame.findtext("obj") or ""
        fn = frame.findtext("fn") or ""
        source = frame.findtext("file") or ""
        if (
            "_setns" in obj
            or "_pyns_boot" in obj
            or fn.startswith(("ns_", "setns_"))
            or source.startswith(("_setns", "_order", "_reference"))
        ):
            return True
    return False


def main(mode: str, logs: list[str]) -> int:
    bad = 0
    other = 0
    for log in logs:
        # valgrind copies the command line's bytes as they are: a non-UTF-8 argument makes invalid XML
        with open(log, "rb") as file:
            root = ET.fromstring(file.read().decode("utf-8", "replace"))
        for error in root.iter("error"):
            kind = error.findtext("kind") or ""
            if mode == "strict" or kind in ALWAYS or ours(error):
                bad += 1
                what = error.findtext("what") or error.findtext("xwhat/text") or ""
                print(f"{log}: {kind} {what}", file=sys.stderr)
                for frame in list(error.iter("frame"))[:12]:
                    print(
                        "    {} {}:{} ({})".format(
                            frame.findtext("fn"), frame.findtext("file"), frame.findtext("line"), frame.findtext("obj")
                        ),
                        file=sys.stderr,
                    )
            else:
                other += 1
    print(f"valgrind: {len(logs)} log(s), {bad} error(s) of ours, {other} of CPython's own not judged")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
