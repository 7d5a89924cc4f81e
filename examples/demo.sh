#!/usr/bin/env bash
# pyns_boot end to end, on throwaway namespaces: run as root from a clone.
#   examples/demo.sh [python]
# Builds pyns_boot into a fresh venv, creates a named network namespace and a
# UTS namespace with its own hostname, and runs an unmodified script in them.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-python3}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates namespaces)" >&2; exit 1; }

work=$(mktemp -d /tmp/pyns-boot-demo.XXXXXX)
netns=pyns-demo-$$
holder=
cleanup() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null || true
    ip netns delete "$netns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Two venvs: one with pyns_boot installed, one without"
"$python" -m venv "$work/with" && "$python" -m venv "$work/without"
"$work/with/bin/python" -m pip install -q --disable-pip-version-check "$repo"
ls "$work/with/lib/"python3*/site-packages/ | grep pyns_boot

step "Throwaway namespaces: netns $netns (lo + a veth), a UTS namespace with hostname pyns-demo"
ip netns add "$netns"
ip -n "$netns" link add demo0 type veth peer name demo1
unshare --uts --fork --kill-child sh -c 'hostname pyns-demo; exec sleep 600' &
unshare_pid=$!
for _ in $(seq 100); do
    holder=$(cat /proc/$unshare_pid/task/$unshare_pid/children 2>/dev/null | awk '{print $1}')
    [ -n "$holder" ] && [ "$(readlink /proc/$holder/ns/uts)" != "$(readlink /proc/self/ns/uts)" ] && break
    sleep 0.05
done
sleep 0.1

export gons_net=/run/netns/$netns gons_uts=/proc/$holder/ns/uts

step "The unmodified script, without pyns_boot: variables ignored"
show "$work/without/bin/python" "$repo/examples/whereami.py"

step "The same script, same variables, venv with pyns_boot: already inside"
show "$work/with/bin/python" "$repo/examples/whereami.py"

step "Application code asking what happened"
show "$work/with/bin/python" "$repo/examples/status_check.py"

step "A bad reference: exit status 125, the script never runs"
set +e
gons_net=/etc/hostname "$work/with/bin/python" "$repo/examples/whereami.py"
echo "exit status: $?"
step "... or carry on with a warning: PYNS_BOOT_ON_ERROR=warn"
gons_net=/etc/hostname PYNS_BOOT_ON_ERROR=warn "$work/with/bin/python" -c 'print("the program ran")'
set -e
step "Back to a plain shell: one command unsets every variable the hook acts on"
eval "$("$work/with/bin/pyns-boot" env --clear)"
env | grep -E '^(gons_|PYNS_BOOT_(WD|SET))' || echo "no gons_* variable left"

step "Done: namespaces and venvs are removed on exit"
