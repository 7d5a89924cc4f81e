#!/usr/bin/env bash
# The test suite, from a fresh clone: run as root (tests create namespaces).
#   scripts/test.sh [pytest arguments]
#   scripts/test.sh -m unit      the unit layer alone, in seconds, as any user (what a non-root run runs anyway)
# Makes .venv-test (or $PYNS_BOOT_TEST_VENV) with the test tools (requirements-test.txt), builds the wheel
# once, installs it there too (some tests import pyns_boot directly) and runs
# pytest.  The tests install the same wheel into throwaway virtualenvs and
# start real interpreters in real namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=${PYNS_BOOT_TEST_VENV:-.venv-test}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)
# setup.py: C compiler warnings are errors in the builds of the project's own runs (PYNS_BOOT_WERROR=0: warnings).
export PYNS_BOOT_WERROR=${PYNS_BOOT_WERROR-1}
"${pip[@]}" install -r requirements-test.txt
if [ -z "${PYNS_BOOT_WHEEL:-}" ]; then
    wheel_dir=$(mktemp -d /tmp/pyns-boot-wheel.XXXXXX)
    trap 'rm -rf "$wheel_dir"' EXIT
    "${pip[@]}" wheel --no-deps -w "$wheel_dir" .
    PYNS_BOOT_WHEEL=$(echo "$wheel_dir"/pyns_boot-*.whl)
    export PYNS_BOOT_WHEEL
fi
"${pip[@]}" install --force-reinstall --no-deps "$PYNS_BOOT_WHEEL"
# pytest runs the installed wheel: tests/conftest.py stops the run when pyns_boot would come from this tree.
"$venv/bin/pytest" "$@"
