#!/usr/bin/env bash
# An arm64 Debian root filesystem with its own python3, run on this x86_64 machine through Debian's
# qemu-user-static (binfmt_misc): the aarch64 wheel is installed there and joins a real namespace.
#
#   scripts/arm64-lab.sh preflight             only the tools: exits 1, saying why, where this machine cannot run
#                                              arm64 binaries (no binfmt_misc, no qemu-aarch64 entry)
#   scripts/arm64-lab.sh setup                 qemu-user-static + debootstrap (apt); binfmt_misc mounted;
#                                              Debian bookworm arm64 (minbase, python3, python3-venv)
#                                              cached in $ARM64_LAB_DIR (default /var/cache/pyns-lab/arm64)
#   scripts/arm64-lab.sh chroot CMD...         run CMD in that rootfs (private mount namespace, /proc /dev
#                                              /sys bound), e.g. scripts/arm64-lab.sh chroot python3 -c ...
#   scripts/arm64-lab.sh check WHEEL           a fresh venv in the rootfs, WHEEL installed there
#                                              (pip --no-deps --no-index), then an arm64 python started with
#                                              gons_uts naming a UTS namespace held on the host: it must
#                                              report that namespace's hostname and status "succeeded"
#
# qemu-user translates the instructions: setns(2), unshare(2) and /proc go to the host kernel, so the
# namespace joined is a real one; only the nsfs ioctls (NS_GET_NSTYPE) fail with ENOSYS, and the C core
# then reads the type from /proc/self/fd (tests/test_qemu_user.py). Facts measured on the CI machine (Debian 12, 2 cores): see
# docs/development.md, "Building release artifacts".
set -euo pipefail
ARM64_LAB_DIR=${ARM64_LAB_DIR:-/var/cache/pyns-lab/arm64}
MIRROR=${LAB_MIRROR:-http://deb.debian.org/debian}
SUITE=${ARM64_LAB_SUITE:-bookworm}

need_tools() {
    local missing=()
    [ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v update-binfmts >/dev/null || missing+=(binfmt-support)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
            || { echo "arm64-lab: cannot mount binfmt_misc (needs root in the initial namespaces)" >&2; exit 1; }
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
    fi
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
        || { echo "arm64-lab: no qemu-aarch64 binfmt_misc entry (update-binfmts --import qemu-aarch64 failed)" >&2; exit 1; }
}

setup() {
    need_tools
    if [ ! -x "$ARM64_LAB_DIR/usr/bin/python3" ]; then
        local partial=$ARM64_LAB_DIR.partial log
        log=$(dirname "$ARM64_LAB_DIR")/arm64-debootstrap.log
        rm -rf "$partial"
        mkdir -p "$(dirname "$ARM64_LAB_DIR")"
        debootstrap --arch=arm64 --foreign --variant=minbase --include=python3,python3-venv \
            "$SUITE" "$partial" "$MIRROR" >"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
        # The F flag of Debian's binfmt entry makes the kernel keep the interpreter open, so the
        # chroot needs no copy of it; the copy serves kernels or entries without that flag.
        cp /usr/bin/qemu-aarch64-static "$partial/usr/bin/"
        chroot "$partial" /debootstrap/debootstrap --second-stage >>"$log" 2>&1 \
            || { tail -20 "$log" >&2; exit 1; }
        mv "$partial" "$ARM64_LAB_DIR"
    fi
    echo "rootfs: $ARM64_LAB_DIR ($(in_chroot uname -m), $(in_chroot python3 -V))"
}

in_chroot() {
    unshare -m --propagation private bash -c '
        set -e; r=$1; shift
        for d in proc dev sys; do mount --rbind "/$d" "$r/$d"; done
        exec chroot "$r" "$@"' arm64-lab "$ARM64_LAB_DIR" "$@"
}

# A fresh venv in the rootfs, the wheel installed, one namespace joined.
check() {
    local wheel=$1 name
    [ -f "$wheel" ] || { echo "arm64-lab: no wheel $wheel" >&2; exit 1; }
    name=$(basename "$wheel")
    work=$(mktemp -d "$ARM64_LAB_DIR/tmp/pyns-wheels-check.XXXXXX")
    holder=""
    cleanup() {
        if [ -n "$holder" ]; then kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true; fi
        rm -rf "$work"
    }
    trap cleanup EXIT
    local inside=/tmp/$(basename "$work")
    cp "$wheel" "$work/$name"
    in_chroot python3 -m venv "$inside/venv"
    in_chroot "$inside/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-index \
        "$inside/$name"
    # The holder: a process of the host in a new UTS namespace with a hostname of its own.
    local hostname=pyns-wheels-arm64
    unshare --uts sh -c "hostname $hostname; exec sleep 600" &
    holder=$!
    local i
    for i in $(seq 50); do
        [ "$(readlink "/proc/$holder/ns/uts")" != "$(readlink /proc/self/ns/uts)" ] \
            && [ "$(nsenter -t "$holder" -u hostname)" = "$hostname" ] && break
        sleep 0.1
    done
    local out
    out=$(in_chroot env gons_uts="/proc/$holder/ns/uts" "$inside/venv/bin/python" -c '
import json, os, platform, socket, pyns_boot, _pyns_boot
print(json.dumps({"machine": platform.machine(), "hostname": socket.gethostname(),
                  "uts": os.readlink("/proc/self/ns/uts"), "status": pyns_boot.status().state,
                  "extension": os.path.basename(_pyns_boot.__file__)}))')
    echo "arm64-lab: $out"
    python3 - "$out" "$hostname" "$(readlink "/proc/$holder/ns/uts")" <<'EOF'
import json, sys
report, hostname, uts = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
expected = {"machine": "aarch64", "hostname": hostname, "uts": uts, "status": "succeeded",
            "extension": "_pyns_boot.abi3.so"}
wrong = {k: (report.get(k), v) for k, v in expected.items() if report.get(k) != v}
if wrong:
    sys.exit("arm64-lab: FAILED (got, expected): %s" % wrong)
print("arm64-lab: OK: the aarch64 wheel joined the UTS namespace of the holder")
EOF
}

case "${1:-}" in
    preflight) need_tools; echo "arm64-lab: qemu-aarch64 via binfmt_misc is available" ;;
    setup) setup ;;
    chroot) shift; in_chroot "$@" ;;
    check) shift; need_tools; check "$@" ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
esac
