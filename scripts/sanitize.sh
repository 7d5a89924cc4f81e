#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer over the hook (run as root).
#   scripts/sanitize.sh core            the C core without Python: tests/c/core_driver.c
#                                       on every scenario of scripts/hardening-lib.sh, with
#                                       leak detection, and every allocation failing in turn
#   scripts/sanitize.sh suite [pytest args]
#                                       the extension built with ASan+UBSan (gcc), the test
#                                       suite run against it with libasan preloaded
#   scripts/sanitize.sh                 both (suite: the whole suite)
# Clean means: every run passes and no sanitizer wrote a report.  Any report
# (ASan, UBSan, LeakSanitizer) lands in a log directory that must stay empty.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/hardening-lib.sh
mode=${1:-all}
[ $# -gt 0 ] && shift
sanitize=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
logs=$(mktemp -d /tmp/pyns-sanitize-logs.XXXXXX)
build=$(mktemp -d /tmp/pyns-sanitize-build.XXXXXX)
trap 'stop_holders; rm -rf "$build"; rmdir "$logs" 2>/dev/null || true' EXIT # logs stay only when not empty

check_logs() {
    if compgen -G "$logs/*" >/dev/null; then
        echo "sanitizer reports in $logs:" >&2
        head -c 20000 "$logs"/* >&2
        exit 1
    fi
}

run_core() {
    gcc -g -O1 -std=gnu11 -Wall -Wextra -Werror "${sanitize[@]}" \
        -Wl,--wrap=malloc,--wrap=strdup,--wrap=strndup \
        tests/c/core_driver.c pyns_boot/_order.c pyns_boot/_reference.c pyns_boot/_setns.c \
        -o "$build/core_driver"
    make_world
    ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan:exitcode=86" \
        UBSAN_OPTIONS="print_stacktrace=1:log_path=$logs/ubsan" \
        run_scenarios "$build/core_driver"
    check_logs
}

run_suite() {
    local libasan venv=${PYNS_BOOT_SANITIZE_VENV:-/tmp/pyns-boot-sanitize-venv}
    libasan=$(gcc -print-file-name=libasan.so)
    [ -e "$libasan" ] || { echo "no libasan.so for gcc" >&2; exit 1; }
    local wheel
    wheel=$(build_wheel "$build" "-g ${sanitize[*]}" "${sanitize[*]}")
    unzip -p "$wheel" '_pyns_boot*.so' >"$build/_pyns_boot.so"
    nm -D "$build/_pyns_boot.so" | grep __asan_init >/dev/null || { echo "the wheel is not instrumented" >&2; exit 1; }
    # CPython itself leaks at exit by design: leaks are checked on the core
    # (mode core) and by scripts/valgrind.sh, not in every interpreter.
    # A set-group-ID interpreter ignores LD_PRELOAD, so the secure-execution
    # tests cannot load an ASan build: they are deselected here.
    local args=("$@")
    [ ${#args[@]} -gt 0 ] || args=(tests -p no:cacheprovider)
    PYNS_BOOT_TEST_VENV=$venv PYNS_BOOT_WHEEL=$wheel \
        LD_PRELOAD="$libasan" \
        ASAN_OPTIONS="detect_leaks=0:log_path=$logs/asan:exitcode=86" \
        UBSAN_OPTIONS="print_stacktrace=1:log_path=$logs/ubsan" \
        scripts/test.sh -q -k "not secure" "${args[@]}"
    check_logs
    echo "suite: clean under ASan+UBSan"
}

case $mode in
core) run_core ;;
suite) run_suite "$@" ;;
all)
    run_core
    run_suite "$@"
    ;;
*)
    echo "usage: $0 [core|suite [pytest args]|all]" >&2
    exit 2
    ;;
esac
