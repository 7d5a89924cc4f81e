#!/usr/bin/env bash
# A Python program inside a mount namespace that does not hold its interpreter.
#   examples/foreign_mount.sh [python]          (run as root from a clone)
# Builds pyns_boot into a fresh venv, makes a "container" mount namespace in
# which the interpreter's installation and the venv are hidden under empty
# tmpfs mounts and /srv holds a file of its own, and runs programs in it with
# gons_mnt.  Everything is removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-python3}
[ "$(id -u)" = 0 ] || { echo "foreign_mount: run as root (it creates namespaces)" >&2; exit 1; }

work=$(mktemp -d /tmp/pyns-boot-foreign.XXXXXX)
holder=
cleanup() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A venv with pyns_boot"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$repo"
base=$("$work/venv/bin/python" -c 'import sys; print(sys.base_prefix)')
case "$base" in /|/usr|/usr/local)
    echo "foreign_mount: $python lives in $base; hiding it would hide the shell too: pass a pyenv or"
    echo "self-built interpreter (e.g. examples/foreign_mount.sh /root/.pyenv/versions/3.12.1/bin/python3)" >&2
    exit 1;;
esac
mkdir "$work/app"
cat > "$work/app/report.py" <<'EOF'
import json, sqlite3, sys, pyns_boot
status = pyns_boot.status()
print("keeps imports:", status.keeps_imports, "through", status.imports_root)
print("json from     ", json.__file__)
print("_sqlite3 from ", sys.modules["_sqlite3"].__file__)
print("/srv holds    ", sorted(__import__("os").listdir("/srv")))
print("release file  ", open("/srv/release").read().strip())
EOF

step "The container: $base and $work hidden, /srv/release only in there"
unshare --mount --propagation private --fork --kill-child sh -c "
    mount -t tmpfs hide '$base'; mount -t tmpfs hide '$work'
    mount -t tmpfs srv /srv; echo 'container 1.0' > /srv/release
    exec sleep 600" &
unshare_pid=$!
for _ in $(seq 100); do
    holder=$(cat /proc/$unshare_pid/task/$unshare_pid/children 2>/dev/null | awk '{print $1}')
    [ -n "$holder" ] && nsenter -t "$holder" -m test -e /srv/release 2>/dev/null && break
    sleep 0.05
done
printf '$ nsenter -t %s -m ls %s\n' "$holder" "$work"; nsenter -t "$holder" -m ls -A "$work"; echo "(empty)"

step "-m with the program's directory on PYTHONPATH, in the container"
printf '$ gons_mnt=/proc/%s/ns/mnt PYTHONPATH=%s python -m report\n' "$holder" "$work/app"
gons_mnt=/proc/$holder/ns/mnt PYTHONPATH=$work/app "$work/venv/bin/python" -m report

step "A child from sys.executable cannot start there, and says why"
gons_mnt=/proc/$holder/ns/mnt "$work/venv/bin/python" -c '
import subprocess, sys
try:
    subprocess.run([sys.executable, "-V"])
except OSError as error:
    print(error)
print("other tools are the container'\''s:", subprocess.run(["cat", "/srv/release"], capture_output=True, text=True).stdout.strip())'

step "The opt-out: PYNS_BOOT_KEEP_IMPORTS=0 imports the container's files, and there are none"
set +e
PYNS_BOOT_KEEP_IMPORTS=0 gons_mnt=/proc/$holder/ns/mnt "$work/venv/bin/python" -c 'import json' 2>&1 | tail -n 1
set -e
