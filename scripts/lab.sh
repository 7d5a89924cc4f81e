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
#   scripts/lab.sh engines start|stop|status|env
#                                              the other engines (issue 22), from Debian's docker.io, containerd,
#                                              lxc, systemd-container (setup installs them): "start" starts the
#                                              lab's own containerd and dockerd when they are not running, on
#                                              sockets and state of their own ($ENGINES_RUN, data under
#                                              $ENGINES_DIR), with no bridge, no iptables rule, no ip_forward;
#                                              it imports the lab image into docker (pyns-lab:sid) and
#                                              containerd (namespaces k8s.io and default) when missing.
#                                              "stop" stops only what "start" started, after the containers
#                                              named pyns-* (and unmounts what the daemons left); "env" prints
#                                              DOCKER_HOST=... CONTAINERD_ADDRESS=... for the clients. The tests
#                                              call start/stop themselves (tests/support/engines.py, tests/conftest.py).
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
ENGINES_DIR=${LAB_ENGINES_DIR:-$(dirname "$LAB_DIR")/engines}
ENGINES_RUN=${LAB_ENGINES_RUN:-/run/pyns-lab}
DOCKER_SOCK=$ENGINES_RUN/docker.sock
CONTAINERD_SOCK=$ENGINES_RUN/containerd/containerd.sock
ENGINE_IMAGE=pyns-lab:sid

need_tools() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    [ -x /usr/sbin/runc ] || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v containerd >/dev/null || missing+=(containerd)
    command -v lxc-start >/dev/null || missing+=(lxc)
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        # No service may start from a package's postinst (docker.io, lxc-net would make bridges and iptables
        # rules): policy-rc.d says no while apt runs, unless the machine has one of its own.
        local policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            policy=/usr/sbin/policy-rc.d
            printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        [ -z "$policy" ] || rm -f "$policy"
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
    engines_start
    engines_stop
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

# ---------------------------------------------------------------- docker, containerd (issue 22)

# The clients talk to the lab's daemons through these (the tests set them the same way).
engines_env() {
    echo "DOCKER_HOST=unix://$DOCKER_SOCK CONTAINERD_ADDRESS=$CONTAINERD_SOCK"
}

alive() {  # alive SOCKET CMD...: the daemon behind SOCKET answers CMD
    local sock=$1; shift
    [ -S "$sock" ] && timeout 10 "$@" >/dev/null 2>&1
}

wait_for() {  # wait_for WHAT PID LOG SOCKET CMD...
    local what=$1 pid=$2 log=$3; shift 3
    for _ in $(seq 600); do
        alive "$@" && return 0
        kill -0 "$pid" 2>/dev/null || { echo "lab: $what exited at start:" >&2; tail -5 "$log" >&2; return 1; }
        sleep 0.1
    done
    echo "lab: $what did not answer within 60 s (log: $log)" >&2
    return 1
}

engines_start() {
    command -v dockerd >/dev/null && command -v containerd >/dev/null \
        || { echo "lab: no dockerd/containerd: run scripts/lab.sh setup (as root)" >&2; return 1; }
    mkdir -p "$ENGINES_RUN/containerd" "$ENGINES_DIR"
    local ctr=(ctr --connect-timeout 5s -a "$CONTAINERD_SOCK") docker=(docker -H "unix://$DOCKER_SOCK")
    if ! alive "$CONTAINERD_SOCK" "${ctr[@]}" version; then
        # Its own root, state and socket (a system containerd, if any, is not touched); no CRI plugin (CNI,
        # pod networking): the tests run ctr containers without networking.
        cat > "$ENGINES_DIR/containerd.toml" <<EOF_TOML
version = 2
root = "$ENGINES_DIR/containerd"
state = "$ENGINES_RUN/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
EOF_TOML
        setsid containerd --config "$ENGINES_DIR/containerd.toml" --log-level warn \
            </dev/null >"$ENGINES_RUN/containerd.log" 2>&1 &
        echo "containerd $!" >> "$ENGINES_RUN/started"
        wait_for containerd $! "$ENGINES_RUN/containerd.log" "$CONTAINERD_SOCK" "${ctr[@]}" version
    fi
    if ! alive "$DOCKER_SOCK" "${docker[@]}" version; then
        # On the containerd above; no bridge, no iptables rule, no ip_forward: containers run with
        # --network none (a network namespace of their own with lo); its own data-root, exec-root, socket.
        echo '{}' > "$ENGINES_DIR/daemon.json"
        setsid dockerd --config-file "$ENGINES_DIR/daemon.json" --containerd "$CONTAINERD_SOCK" \
            --data-root "$ENGINES_DIR/docker" --exec-root "$ENGINES_RUN/docker" --pidfile "$ENGINES_RUN/docker.pid" \
            -H "unix://$DOCKER_SOCK" --bridge none --iptables=false --ip-forward=false --ip-masq=false \
            --userland-proxy=false --log-level warn </dev/null >"$ENGINES_RUN/dockerd.log" 2>&1 &
        echo "dockerd $!" >> "$ENGINES_RUN/started"
        wait_for dockerd $! "$ENGINES_RUN/dockerd.log" "$DOCKER_SOCK" "${docker[@]}" version
    fi
    if ! "${docker[@]}" image inspect "$ENGINE_IMAGE" >/dev/null 2>&1; then
        tar -C "$LAB_DIR" --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./run -c . \
            | "${docker[@]}" import - "$ENGINE_IMAGE" >/dev/null
    fi
    local ns archive=""
    for ns in k8s.io default; do
        if ! "${ctr[@]}" -n "$ns" image check "name==docker.io/library/$ENGINE_IMAGE" 2>/dev/null | grep -q complete; then
            if [ -z "$archive" ]; then
                archive=$ENGINES_DIR/image.tar
                "${docker[@]}" save -o "$archive" "$ENGINE_IMAGE"
            fi
            "${ctr[@]}" -n "$ns" image import "$archive" >/dev/null
        fi
    done
    [ -z "$archive" ] || rm -f "$archive"
}

# The pid of the lab's own WHAT (dockerd, containerd): the one this script started, else one running with the
# lab's configuration file (left by a session that lost its record, e.g. two starting at once).
lab_daemon() {
    local what=$1 pid config
    pid=$(awk -v w="$what" '$1 == w {print $2}' "$ENGINES_RUN/started" 2>/dev/null | tail -1)
    if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(command -v "$what")" ]; then
        echo "$pid"
        return
    fi
    config=$([ "$what" = dockerd ] && echo "--config-file $ENGINES_DIR/daemon.json" || echo "--config $ENGINES_DIR/containerd.toml")
    pgrep -f -- "^$what $config" | head -1 || true
}

engines_stop() {
    [ -f "$ENGINES_RUN/started" ] || [ -n "$(lab_daemon dockerd)$(lab_daemon containerd)" ] || return 0
    local ctr=(ctr --connect-timeout 5s -a "$CONTAINERD_SOCK") ns id
    # containerd's shims outlive it: the lab's ctr containers go first.
    if alive "$CONTAINERD_SOCK" "${ctr[@]}" version; then
        for ns in k8s.io default; do
            for id in $("${ctr[@]}" -n "$ns" containers ls -q 2>/dev/null | grep '^pyns-' || true); do
                "${ctr[@]}" -n "$ns" task kill -s KILL "$id" >/dev/null 2>&1 || true
                "${ctr[@]}" -n "$ns" task delete -f "$id" >/dev/null 2>&1 || true
                "${ctr[@]}" -n "$ns" containers delete "$id" >/dev/null 2>&1 || true
            done
        done
    fi
    # docker's own stop of a running container waits 10 s for it: the lab's are killed first.
    local docker=(docker -H "unix://$DOCKER_SOCK")
    if alive "$DOCKER_SOCK" "${docker[@]}" version; then
        "${docker[@]}" ps -q --filter name=^pyns- | xargs -r "${docker[@]}" kill >/dev/null 2>&1 || true
    fi
    local what pid
    # dockerd first (it runs on containerd), then containerd: the reverse of the start.
    for what in dockerd containerd; do
        pid=$(lab_daemon "$what")  # only the lab's (a pid in the record may have been reused since)
        [ -n "$pid" ] || continue
        kill -TERM "$pid"
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -f "$ENGINES_RUN/started"
    # What they mounted under their own directories and did not unmount (deepest first).
    local mnt
    for mnt in $(awk '{print $2}' /proc/mounts | grep -E "^($ENGINES_RUN|$ENGINES_DIR)(/|$)" | sort -r || true); do
        umount -l "$mnt" 2>/dev/null || true
    done
}

engines_status() {
    local ctr=(ctr --connect-timeout 5s -a "$CONTAINERD_SOCK")
    alive "$CONTAINERD_SOCK" "${ctr[@]}" version && echo "containerd: running ($CONTAINERD_SOCK)" \
        || echo "containerd: not running"
    alive "$DOCKER_SOCK" docker -H "unix://$DOCKER_SOCK" version && echo "dockerd: running ($DOCKER_SOCK)" \
        || echo "dockerd: not running"
    [ ! -f "$ENGINES_RUN/started" ] || { echo "started by the lab:"; cat "$ENGINES_RUN/started"; }
}

clean() {
    podman ps -aq --filter label=pyns-lab=1 | xargs -r podman rm -f -t 0 >/dev/null
}

case "${1:-}" in
    setup) setup ;;
    run) shift; run "$@" ;;
    chroot) shift; in_chroot "$@" ;;
    clean) clean ;;
    engines)
        case "${2:-}" in
            start) engines_start; engines_env ;;
            stop) engines_stop ;;
            status) engines_status ;;
            env) engines_env ;;
            *) echo "usage: $0 engines start|stop|status|env" >&2; exit 2 ;;
        esac ;;
    *) sed -n '2,37p' "$0"; exit 2 ;;
esac
