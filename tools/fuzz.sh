#!/usr/bin/env bash
# Fuzzing with libFuzzer: builds the targets in tests/fuzz (clang, ASan + UBSan, build-fuzz/) and
# runs each for SECONDS (default 60) on a temporary copy of its seed corpus plus its regression
# inputs (the repository's corpus is never grown). Exits non-zero on any crash, leak, timeout,
# out-of-memory or sanitizer report and prints the reproducer's path.
#
#   tools/fuzz.sh [SECONDS] [TARGET...]     TARGET: safetensors image scan config tuning
#                                           bench_result (default: all)
#
# A reproducer replays with   build-fuzz/tests/fuzz/fuzz_TARGET FILE
# (or with the plain build's  build/tests/fuzz/fuzz_replay_TARGET FILE). Once fixed, copy it
# into tests/fuzz/regressions/TARGET/ so the host suite replays it on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors image scan config tuning bench_result)
tools/install-deps.sh --fuzz
builddir=${BUILDDIR:-build-fuzz}
# The library has one C++ file (the CLBlast tuner shim), so the targets link with the C++
# compiler: both must be clang's for -fsanitize=fuzzer. A build folder set up otherwise is redone.
if [ -f "$builddir/build.ninja" ] && ! grep -q 'clang++' "$builddir/meson-info/intro-compilers.json" 2>/dev/null; then
    rm -rf "$builddir"
fi
if [ ! -f "$builddir/build.ninja" ]; then
    CC=${FUZZ_CC:-clang} CXX=${FUZZ_CXX:-clang++} meson setup "$builddir" -Dfuzz=true \
        -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized >/dev/null
fi
meson compile -C "$builddir" -j "${FUZZ_JOBS:-2}" "${targets[@]/#/fuzz_}"

# Largest input per target: a few KB of safetensors header, checkpoint metadata or file-name
# list; images up to 32 KB (enough for small multi-scan JPEGs and 16-bit PNGs).
max_len() {
    case $1 in
        image) echo 32768 ;;
        scan) echo 4096 ;;
        *) echo 8192 ;;
    esac
}

export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# corpus copies and fuzz_scan's folders live in memory when /dev/shm is there
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tmp"
export TMPDIR=$work/tmp
artifacts="$builddir/fuzz-artifacts"
logs="$builddir/fuzz-logs"
mkdir -p "$artifacts" "$logs"
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "$artifacts/$t"
    cp -r "tests/fuzz/corpus/$t/." "$work/$t/"
    log="$logs/$t.log"
    echo "== fuzz_$t: ${seconds}s (log: $log)"
    # stderr of the target (the library's error messages) is closed; libFuzzer and the
    # sanitizers report on a duplicate of it, into the log
    status=0
    "$builddir/tests/fuzz/fuzz_$t" "$work/$t" "tests/fuzz/regressions/$t" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$t")" \
        -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$artifacts/$t/" \
        >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+ +DONE|^Done [0-9]+ runs' "$log" || true
    if [ $status -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
        failed=1
        echo "fuzz_$t FAILED (exit $status):"
        grep -E 'ERROR:|SUMMARY:|runtime error:|Test unit written to' "$log" | head -20
        for f in $(grep -oE 'Test unit written to .*' "$log" | sed 's/Test unit written to //'); do
            echo "reproducer: $f   (replay: $builddir/tests/fuzz/fuzz_$t $f)"
        done
    fi
done
if [ $failed -ne 0 ]; then
    echo "fuzzing found problems (logs in $logs, inputs in $artifacts)"
    exit 1
fi
echo "fuzzing: no crash, leak, timeout or sanitizer report in ${#targets[@]} target(s)"
