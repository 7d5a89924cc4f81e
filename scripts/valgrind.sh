#!/usr/bin/env bash
# valgrind memcheck over the hook (run as root).
#   scripts/valgrind.sh core     the C core driver (tests/c/core_driver.c) on every scenario
#                                of scripts/hardening-lib.sh and every allocation failure:
#                                no error and no leak of any kind, at all
#   scripts/valgrind.sh python   a venv interpreter (PYTHONMALLOC=malloc) started under
#                                valgrind with gons_* set: real joins and failing ones; no
#                                error or leak through pyns_boot's extension, and no invalid
#                                access anywhere (scripts/valgrind-check.py)
#   scripts/valgrind.sh          both
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/hardening-lib.sh
mode=${1:-all}
work=$(mktemp -d /tmp/pyns-valgrind.XXXXXX)
trap 'stop_holders; rm -rf "$work"' EXIT
memcheck=(valgrind -q --tool=memcheck --leak-check=full --track-origins=yes --xml=yes --suppressions=scripts/valgrind.supp)

run_core() {
    gcc -g -O0 -std=gnu11 -Wall -Wextra -Werror -Wl,--wrap=malloc,--wrap=strdup,--wrap=strndup \
        tests/c/core_driver.c pyns_boot/_order.c pyns_boot/_reference.c pyns_boot/_setns.c \
        -o "$work/core_driver"
    mkdir "$work/core-logs"
    make_world
    run_scenarios "$work/core_driver" "${memcheck[@]}" --show-leak-kinds=all \
        --xml-file="$work/core-logs/%p.xml"
    python3 scripts/valgrind-check.py strict "$work"/core-logs/*.xml
}

# python_run EXPECTED_EXIT VAR=VALUE...: one interpreter under memcheck.
python_run() {
    local expected=$1 rc=0 out
    shift
    out=$(env "$@" PYTHONMALLOC=malloc "${memcheck[@]}" --show-leak-kinds=definite \
        --xml-file="$work/python-logs/%p.xml" "$python" -c "$python_code" 2>&1) || rc=$?
    if [ "$rc" != "$expected" ]; then
        printf 'exit %s, expected %s: %s\n%s\n' "$rc" "$expected" "$*" "${out:0:4000}" >&2
        return 1
    fi
    python_runs=$((python_runs + 1))
}

# command_run EXPECTED_EXIT ARGS...: pyns-boot run ARGS under memcheck.
command_run() {
    local expected=$1 rc=0 out
    shift
    out=$(PYTHONMALLOC=malloc "${memcheck[@]}" --show-leak-kinds=definite \
        --xml-file="$work/python-logs/%p.xml" "$python" "$work/venv/bin/pyns-boot" run "$@" 2>&1) || rc=$?
    if [ "$rc" != "$expected" ]; then
        printf 'exit %s, expected %s: pyns-boot run %s\n%s\n' "$rc" "$expected" "$*" "${out:0:4000}" >&2
        return 1
    fi
    python_runs=$((python_runs + 1))
}

run_python() {
    local wheel
    wheel=$(build_wheel "$work/wheel" "-g -O0" "")
    python3 -m venv "$work/venv"
    "$work/venv/bin/python" -m pip install -q --no-deps "$wheel"
    python=$work/venv/bin/python
    python_code='import os, pyns_boot; s = pyns_boot.status(); print(s.state, s.error, sorted(os.listdir("/proc/self/fd")))'
    python_runs=0
    mkdir "$work/python-logs"
    make_world
    local h=/proc/$H/ns w=PYNS_BOOT_ON_ERROR=warn
    python_run 0 "gons_net=$h/net" "gons_uts=$h/uts" "gons_ipc=$h/ipc" "gons_cgroup=$h/cgroup" "gons_time=$h/time"
    python_run 0 "gons_pid=$h/pid_for_children"
    python_run 0 gons_order=mnt,net "gons_mnt=$h/mnt" "gons_net=$h/net"
    python_run 0 "gons_net=$NETNS" gons_uts=/proc/self/ns/uts
    python_run 0 $w "gons_user=/proc/$U/ns/user" "gons_net=$NETNS"
    python_run 0 $w gons_net=/nonexistent
    python_run 0 $w "gons_net=$FIFO" "gons_uts=$SOCKET"
    python_run 0 $w gons_uts=/proc/self/ns/net
    python_run 0 $w gons_order=net,NET
    python_run 0 $w gons_order=uts "gons_net=$NETNS"
    python_run 0 $w "gons_net=$LONG"
    python_run 0 PYNS_BOOT_ON_ERROR=warning gons_uts=/proc/self/ns/uts
    python_run 125 gons_net=/nonexistent
    python_run 125 gons_order=!!net
    # pyns-boot run's C path (_run_command.c, _run_code.c): joined and run, the program's endings, declined
    command_run 0 -t "$H" -n -u -c 'import os; print(sorted(os.listdir("/proc/self/fd")))' a
    command_run 0 --netns "${NETNS#/run/netns/}" -c pass
    command_run 3 -t "$H" --all -c 'raise SystemExit(3)'
    command_run 1 -t "$H" --uts -c 'raise ValueError(1)'
    command_run 1 -t "$H" --uts -c 'x = ('
    command_run 0 -t "$H" --uts -- -c pass "$(printf 'caf\351')"
    command_run 1 -t 999999999 --uts -c pass
    echo "python: $python_runs interpreters under memcheck"
    python3 scripts/valgrind-check.py ours "$work"/python-logs/*.xml
}

case $mode in
core) run_core ;;
python) run_python ;;
all)
    run_core
    run_python
    ;;
*)
    echo "usage: $0 [core|python|all]" >&2
    exit 2
    ;;
esac
