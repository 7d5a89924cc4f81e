#!/usr/bin/env bash
# The benchmark suite, from a fresh clone (as root: it makes and joins namespaces).
#   benchmarks/run.sh [startup.py options]     e.g. --rounds 400 --markdown FILE
# 1-3: start-up cost of the hook (idle, active vs nsenter, import+status) on the
#      oldest and newest pyenv CPython (benchmarks/startup.py), and what each part of the
#      .pth line and each step of an active start costs in instructions (benchmarks/line_cost.py,
#      when valgrind is installed);
# 4:   the executor (benchmarks/bench_executor.py) and the mnt import mode
#      (benchmarks/foreign_mnt.py), run from a venv that has the wheel;
# 5:   the pid entry, fork + supervisor against PYNS_BOOT_PID=children
#      (benchmarks/pid_entry.py).
# 6:   extension-module imports after a mnt join into the lab container vs the host
#      (benchmarks/foreign_imports.py; needs scripts/lab.sh setup).
# Each part prints its markdown tables.  PYTHON chooses the driving interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
work=$(mktemp -d /tmp/pyns-boot-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
pip=("$python" -m pip -q --disable-pip-version-check)
"${pip[@]}" wheel --no-deps -w "$work/wheel" .
wheel=$(echo "$work"/wheel/pyns_boot-*.whl)

"$python" benchmarks/startup.py --wheel "$wheel" "$@"
if command -v valgrind >/dev/null; then
    echo
    "$python" benchmarks/line_cost.py --wheel "$wheel"
fi

if [ -f benchmarks/bench_executor.py ]; then
    "$python" -m venv "$work/venv"
    "$work/venv/bin/python" -m pip -q --disable-pip-version-check install --no-deps --no-index "$wheel"
    echo
    "$work/venv/bin/python" benchmarks/bench_executor.py
fi
if [ -f benchmarks/foreign_mnt.py ]; then
    echo
    "$python" benchmarks/foreign_mnt.py
fi
if [ -f benchmarks/pid_entry.py ]; then
    echo
    "$python" benchmarks/pid_entry.py --wheel "$wheel"
fi
if [ -f benchmarks/foreign_imports.py ] && podman image exists localhost/pyns-lab:sid 2>/dev/null; then
    echo
    "$python" benchmarks/foreign_imports.py --fifo
fi
