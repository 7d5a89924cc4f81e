#!/usr/bin/env bash
# The test suite, from a fresh clone: run as root (tests create namespaces).
#   scripts/test.sh [pytest arguments]
# Makes .venv-test with the test tools (pytest, virtualenv), then runs pytest.
# The tests build the wheel, install it into throwaway virtualenvs and start
# real interpreters in real namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=.venv-test
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements-test.txt
exec "$venv/bin/python" -m pytest "$@"
