#!/usr/bin/env bash
# A release wheel on the interpreters the host lacks: in the lab container (scripts/lab.sh, Debian sid),
# for each of python3.15 and python3.14, a fresh venv, the wheel installed there (pip --no-deps --no-index),
# and a child started with gons_uts naming a UTS namespace held on the host: it must report that
# namespace's hostname, its interpreter's version and status "succeeded".
#
#   scripts/lab-wheel.sh WHEEL      (needs `scripts/lab.sh setup` first: the image localhost/pyns-lab:sid)
set -euo pipefail
wheel=$(realpath "$1")
[ -f "$wheel" ] || { echo "lab-wheel: no wheel $1" >&2; exit 1; }
hostname=pyns-wheels-lab
unshare --uts sh -c "hostname $hostname; exec sleep 600" &
holder=$!
trap 'kill $holder 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    [ "$(nsenter -t "$holder" -u hostname 2>/dev/null)" = "$hostname" ] && break
    sleep 0.1
done
# --pid host: the holder's /proc/PID/ns/uts is visible in the container.
podman --runtime /usr/sbin/runc run --rm --privileged --network host --pid host \
    -v "$(dirname "$wheel"):/dist:ro" localhost/pyns-lab:sid sh -euc '
for minor in 15 14; do
    py=python3.$minor
    $py -m venv /tmp/venv
    /tmp/venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-index "/dist/$1"
    out=$(gons_uts=/proc/$2/ns/uts /tmp/venv/bin/python -c "import sys, socket, pyns_boot, _pyns_boot, os
print(\"%d.%d\" % sys.version_info[:2], socket.gethostname(), pyns_boot.status().state, os.path.basename(_pyns_boot.__file__))")
    echo "lab-wheel: $py: $out"
    [ "$out" = "3.$minor $3 succeeded _pyns_boot.abi3.so" ] || { echo "lab-wheel: FAILED on $py" >&2; exit 1; }
    rm -rf /tmp/venv
done' lab-wheel "$(basename "$wheel")" "$holder" "$hostname"
echo "lab-wheel: OK: $(basename "$wheel") joined the holder's UTS namespace on python3.15 and python3.14"
