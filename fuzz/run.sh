#!/usr/bin/env bash
# Fuzz the pure planning part of the C core with libFuzzer (+ ASan, UBSan).
#   fuzz/run.sh [runs]     default 1000000 executions; needs clang
#                          (Debian: apt-get install clang)
# The seed corpus fuzz/corpus is read, not written: new inputs go to a
# scratch directory, crashes to fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-1000000}
out=$(mktemp -d /tmp/pyns-boot-fuzz.XXXXXX)
trap 'rm -rf "$out"; rmdir artifacts 2>/dev/null || true' EXIT # artifacts stay only when a crash was found
mkdir -p artifacts  # stays empty unless a crash is found
clang -g -O1 -std=gnu11 -Wall -Wextra -Werror \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    fuzz_plan.c ../pyns_boot/_order.c ../pyns_boot/_reference.c ../pyns_boot/_setns.c \
    -o "$out/fuzz_plan"
mkdir "$out/corpus"
"$out/fuzz_plan" -runs="$runs" -max_len=4096 -timeout=5 \
    -artifact_prefix=artifacts/ -print_final_stats=1 "$out/corpus" corpus
