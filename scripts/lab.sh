#!/usr/bin/env bash
# The lab: a real container runtime (podman + runc) and real newer interpreters (Debian sid: python3.14,
# python3.15), from Debian's packages only. .ci/run calls "setup"; the container tests use the image.
#
#   scripts/lab.sh setup     podman + runc + debootstrap; a Debian sid root filesystem
#                                              (python3.14, python3.15 with -venv/-dev, gcc) cached in
#                                              $LAB_DIR (default /var/cache/pyns-lab/sid), imported as the
#                                              podman image localhost/pyns-lab:sid
#   scripts/lab.sh run NAME [podman run args...] [-- CMD...]
#                                              start a detached container (default CMD: sleep infinity);
#                                              prints its host PID
#   scripts/lab.sh chroot CMD...
#                                              run CMD inside the sid root filesystem, in a private mount
#                                              namespace with /proc /dev /sys bound (e.g. python3.15 -m venv /opt/v)
#   scripts/lab.sh clean     remove the lab's containers (the image and rootfs stay cached)
#
# The test suite on real 3.14/3.15, in a privileged container (own mount namespace with / a mount point,
# so unshare, user namespaces and netns work inside; host network for pip):
#   podman --runtime /usr/sbin/runc run --rm --privileged --network host -v "$PWD:/src" -w /src \
#       localhost/pyns-lab:sid env PYTHON=python3.15 PYNS_BOOT_TEST_VENV=/opt/venv315 scripts/test.sh
#
# Facts about this machine that the script works around (measured):
# - root lacks CAP_SYS_RESOURCE, so podman's default rlimits make the OCI runtime fail
#   ("setrlimit RLIMIT_NPROC: Operation not permitted"): a containers.conf.d drop-in sets default_ulimits = [].
# - cgroups are v1+v2 hybrid; crun refuses that ("cgroups in hybrid mode not supported"): runc is used.
# - the sid root filesystem has glibc and shared libraries newer than the host's (Debian 12): a host
#   interpreter joined to its mount namespace must not load the container's libssl, libsqlite3, ...
set -euo pipefail
LAB_DIR=${LAB_DIR:-/var/cache/pyns-lab/sid}
IMAGE=localhost/pyns-lab:sid
MIRROR=${LAB_MIRROR:-http://deb.debian.org/debian}
PODMAN=(podman --runtime /usr/sbin/runc)

need_tools() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    [ -x /usr/sbin/runc ] || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    mkdir -p /etc/containers/containers.conf.d
    printf '[containers]\ndefault_ulimits = []\n' > /etc/containers/containers.conf.d/pyns-lab.conf
}

setup() {
    need_tools
    if [ ! -x "$LAB_DIR/usr/bin/python3.15" ]; then
        rm -rf "$LAB_DIR.partial"
        mkdir -p "$(dirname "$LAB_DIR")"
        debootstrap --variant=minbase \
            --include=python3.14,python3.14-venv,python3.14-dev,python3.15,python3.15-venv,python3.15-dev,gcc,libc6-dev,procps,iproute2,strace,valgrind \
            sid "$LAB_DIR.partial" "$MIRROR" >"$(dirname "$LAB_DIR")/debootstrap.log" 2>&1 \
            || { tail -20 "$(dirname "$LAB_DIR")/debootstrap.log" >&2; exit 1; }
        # the host's CA bundle: pip inside the lab reaches the package index the way the host does
        cp /etc/ssl/certs/ca-certificates.crt "$LAB_DIR.partial/etc/ssl/certs/ca-certificates.crt"
        mv "$LAB_DIR.partial" "$LAB_DIR"
    fi
    if ! podman image exists "$IMAGE"; then
        tar -C "$LAB_DIR" --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./run -c . \
            | podman import -q - "$IMAGE" >/dev/null
    fi
    echo "rootfs: $LAB_DIR ($(chroot "$LAB_DIR" python3.15 -V), $(chroot "$LAB_DIR" python3.14 -V)); image: $IMAGE"
}

run() {
    local name=$1; shift
    local args=() cmd=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then shift; cmd=("$@"); break; fi
        args+=("$1"); shift
    done
    [ ${#cmd[@]} -gt 0 ] || cmd=(sleep infinity)
    "${PODMAN[@]}" run -d --name "$name" --label pyns-lab=1 "${args[@]}" "$IMAGE" "${cmd[@]}" >/dev/null
    podman inspect -f '{{.State.Pid}}' "$name"
}

in_chroot() {
    unshare -m --propagation private bash -c '
        set -e; r=$1; shift
        for d in proc dev sys; do mount --rbind "/$d" "$r/$d"; done
        exec chroot "$r" "$@"' lab "$LAB_DIR" "$@"
}

clean() {
    podman ps -aq --filter label=pyns-lab=1 | xargs -r podman rm -f -t 0 >/dev/null
}

case "${1:-}" in
    setup) setup ;;
    run) shift; run "$@" ;;
    chroot) shift; in_chroot "$@" ;;
    clean) clean ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
esac
