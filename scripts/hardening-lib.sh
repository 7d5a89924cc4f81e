# Shared by scripts/sanitize.sh and scripts/valgrind.sh (sourced, not run).
# Real namespaces for the C core driver (tests/c/core_driver.c) and the list
# of scenarios it runs: every join rule and every kind of bad input.

holders=()

# start_holder VAR unshare-flags...: a sleeping process in fresh namespaces;
# VAR receives its pid (the process inside the namespaces).
start_holder() {
    local var=$1
    shift
    unshare "$@" --fork --kill-child sleep 100000 &
    local outer=$! inner=""
    for _ in $(seq 200); do
        inner=$(cat "/proc/$outer/task/$outer/children" 2>/dev/null | awk '{print $1}')
        [ -n "$inner" ] && break
        sleep 0.02
    done
    [ -n "$inner" ] || { echo "holder did not start: $*" >&2; exit 1; }
    holders+=("$outer")
    printf -v "$var" '%s' "$inner"
}

stop_holders() {
    local pid
    for pid in "${holders[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true # unshare --fork ignores SIGTERM
        wait "$pid" 2>/dev/null || true
    done
    [ -z "${netns_name:-}" ] || ip netns delete "$netns_name" 2>/dev/null || true
    [ -z "${scratch:-}" ] || rm -rf "$scratch"
}

# make_world: holders, a named netns and odd files; sets H (net uts ipc mnt
# pid cgroup time), U (user), NETNS (path), FIFO, SOCKET, DANGLING, LONG,
# DEADPID, ZOMBIEPID.
make_world() {
    [ -z "${H:-}" ] || return 0
    start_holder H --net --uts --ipc --mount --pid --cgroup --time
    start_holder U --user --map-root-user
    netns_name=pyns-hardening-$$
    ip netns add "$netns_name"
    NETNS=/run/netns/$netns_name
    scratch=$(mktemp -d /tmp/pyns-hardening.XXXXXX)
    FIFO=$scratch/fifo
    mkfifo "$FIFO"
    SOCKET=$scratch/socket
    python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$SOCKET"
    DANGLING=$scratch/dangling
    ln -s "$scratch/nothing" "$DANGLING"
    LONG=/$(head -c 65535 /dev/zero | tr '\0' a)
    start_dead_pid_holders
}

# Two processes whose pid namespace for children lost its init: DEADPID
# (init reaped) and ZOMBIEPID (init a zombie nobody reaps).
start_dead_pid_holders() {
    unshare --pid sh -c 'sh -c : & wait; exec sleep 100000' &
    DEADPID=$!
    unshare --pid sh -c '(exit 0) & exec sleep 100000' &
    ZOMBIEPID=$!
    holders+=("$DEADPID" "$ZOMBIEPID")
    local pid
    for pid in "$DEADPID" "$ZOMBIEPID"; do
        for _ in $(seq 200); do
            [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ] && break
            sleep 0.02
        done
    done
    sleep 0.1 # the zombie's init has exited by now
}

# scenarios: one per line, "expected-substring|ORDER|CGROUP|IPC|MNT|NET|PID|TIME|USER|UTS"
# ("-" unset).  Printed after make_world, so the variables are filled in.
scenarios() {
    local h=/proc/$H/ns
    cat <<LIST
net joined !|-|-|-|-|$h/net|-|-|-|-
uts joined |uts,net|-|-|-|$h/net|-|-|-|$h/uts
errno 0|-|$h/cgroup|$h/ipc|$h/mnt|$h/net|-|$h/time|-|$h/uts
pid joined|-|-|-|-|-|$h/pid_for_children|-|-|-
mnt joined |mnt,net|-|-|$h/mnt|/proc/$H/ns/net|-|-|-|-
net already_joined|-|-|-|-|/proc/self/ns/net|-|-|-|-
user already_joined|-|-|-|-|-|-|-|/proc/self/ns/user|-
user joined|-|-|-|-|-|-|-|/proc/$U/ns/user|-
errno 1|-|-|-|-|$NETNS|-|-|/proc/$U/ns/user|-
net joined|-|-|-|-|$NETNS|-|-|-|-
unknown namespace type "NET"|net,NET|-|-|-|-|-|-|-|-
unknown namespace type "!net"|!!net|-|-|-|-|-|-|-|-
unknown namespace type ""|net,!|-|-|-|-|-|-|-|-
duplicate namespace type net|net,uts,net|-|-|-|-|-|-|-|-
is not listed|uts|-|-|-|$NETNS|-|-|-|-
No such file or directory|-|-|-|-|/nonexistent|-|-|-|-
No such file or directory|-|-|-|-|$DANGLING|-|-|-|-
it is a directory|-|-|-|-|/tmp|-|-|-|-
it is a FIFO|-|-|-|-|$FIFO|-|-|-|-
No such device or address|-|-|-|-|$SOCKET|-|-|-|-
it is a character device|-|-|-|-|/dev/zero|-|-|-|-
not uts|-|-|-|-|-|-|-|-|/proc/self/ns/net
not user|-|$NETNS|$NETNS|$NETNS|$NETNS|$NETNS|$NETNS|$NETNS|$NETNS
File name too long|-|-|-|-|$LONG|-|-|-|-
mnt already_joined|-|-|-|/proc/self/ns/mnt|-|-|-|-|-
its process 1 (init) has exited, and|-|-|-|-|-|/proc/$DEADPID/ns/pid_for_children|-|-|-
a zombie its parent has not reaped|-|-|-|-|-|/proc/$ZOMBIEPID/ns/pid_for_children|-|-|-
LIST
}

# run_scenarios DRIVER [wrapper...]: every scenario once; then, for a few,
# every allocation failing in turn.  Returns non-zero on the first failure.
run_scenarios() {
    local driver=$1
    shift
    local line expected fields out count=0 list
    list=$(scenarios)
    while IFS= read -r line; do
        expected=${line%%|*}
        IFS='|' read -r -a fields <<<"${line#*|}"
        # LeakSanitizer's tracer cannot stop a process that joined another
        # pid namespace (it hangs): that one scenario runs without it, its
        # leaks are checked by scripts/valgrind.sh.
        # valgrind does not know pidfd_open (ENOSYS): the zombie-init check
        # falls open there, as on a kernel without it.
        [[ " $* " != *valgrind* || $line != *zombie* ]] || continue
        local asan=${ASAN_OPTIONS:-}
        [[ $line != *pid_for_children* ]] || asan=${asan/detect_leaks=1/detect_leaks=0}
        if ! out=$(ASAN_OPTIONS=$asan "$@" "$driver" "${fields[@]}" 2>&1); then
            printf 'FAILED: %s\n%s\n' "${line:0:200}" "${out:0:4000}" >&2
            return 1
        fi
        if [[ $out != *"$expected"* ]]; then
            printf 'UNEXPECTED (wanted %s): %s\n%s\n' "$expected" "${line:0:200}" "${out:0:4000}" >&2
            return 1
        fi
        count=$((count + 1))
    done <<<"$list"
    echo "core: $count scenarios clean"
    local n total rc
    while IFS= read -r line; do
        IFS='|' read -r -a fields <<<"${line#*|}"
        total=$("$driver" "${fields[@]}" | awk '/^allocations/ {print $2}')
        for n in $(seq 1 "$total"); do
            rc=0
            out=$(PYNS_FAIL_ALLOC=$n "$@" "$driver" "${fields[@]}" 2>&1) || rc=$?
            if [ "$rc" != 2 ]; then
                printf 'FAILED at allocation %s of %s (exit %s): %s\n%s\n' "$n" "$total" "$rc" \
                    "${line:0:200}" "${out:0:4000}" >&2
                return 1
            fi
        done
        count=$((count + total))
    done < <(grep -E '^(errno 0|mnt joined|unknown namespace type "NET"|is not listed|not user|it is a FIFO)' <<<"$list")
    echo "core: every out-of-memory path clean ($count runs in all)"
}

# build_wheel OUT_DIR CFLAGS LDFLAGS: the wheel, built from a copy of the tree
# without build/ (setuptools would reuse an extension built there with other
# flags).  Prints the wheel's path.
build_wheel() {
    local out=$1 cflags=$2 ldflags=$3
    mkdir -p "$out/src"
    tar -c --exclude=./build --exclude=./dist --exclude=./.git --exclude='./.venv*' --exclude=./.nox \
        --exclude='*.egg-info' --exclude='*_cache' . | tar -x -C "$out/src"
    PYNS_BOOT_EXTRA_CFLAGS=$cflags PYNS_BOOT_EXTRA_LDFLAGS=$ldflags \
        python3 -m pip wheel -q --no-deps --no-cache-dir -w "$out" "$out/src" >&2
    rm -rf "$out/src"
    echo "$out"/pyns_boot-*.whl
}
