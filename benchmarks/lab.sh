#!/usr/bin/env bash
# benchmarks/startup.py on Debian sid's python3.14 and python3.15, in a privileged container of the lab
# image (scripts/lab.sh setup first), against the wheel the host builds from this tree:
#   benchmarks/lab.sh [startup.py options]        e.g. --rounds 200 --markdown /out/FILE (/out: benchmarks/)
# BENCHMARK=line_cost.py (or start_file_cost.py) runs that script of benchmarks/ instead, with the same
# interpreters and wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
benchmark=${BENCHMARK:-startup.py}
[ -f "benchmarks/$benchmark" ] || { echo "BENCHMARK=$benchmark: no such script in benchmarks/" >&2; exit 2; }
work=$(mktemp -d /tmp/pyns-boot-bench-lab.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 -m pip -q --disable-pip-version-check wheel --no-deps -w "$work" .
wheel=$(basename "$work"/pyns_boot-*.whl)
podman --runtime /usr/sbin/runc run --rm --privileged --network host --name "pyns-boot-bench-lab-$$" \
    -v "$PWD:/src:ro" -v "$PWD/benchmarks:/out" -v "$work:/wheel:ro" -w /src localhost/pyns-lab:sid \
    sh -c 'b=$0 w=$1; shift; python3.15 -m venv /opt/bench && exec /opt/bench/bin/python "benchmarks/$b" \
        --python python3.14 --python python3.15 --wheel "/wheel/$w" "$@"' "$benchmark" "$wheel" "$@"
