#!/usr/bin/env bash
# THE test command: installs dependencies if missing, configures, builds and runs every suite:
# op tests on PoCL and Mesa rusticl (llvmpipe), op tests under Oclgrind, and the host suites.
#
#   tools/check.sh             the full suite (what CI runs first)
#   tools/check.sh --sanitize  AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer build
#                              (build-asan/): host suites and op suites on PoCL (see below)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
# Every test's temporary files go under one fresh folder: a suite that passes must leave no
# oclseg-* entry there (harness_run removes its directories; see tests/harness.h), so a test that
# forgets its files fails here instead of filling /tmp run after run.
test_tmp=$(mktemp -d "${TMPDIR:-/tmp}/oclseg-check-XXXXXX")
mkdir "$test_tmp/tmp" "$test_tmp/cache"
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$test_tmp/cache}
export TMPDIR=$test_tmp/tmp
run_tests() {
    local rc=0
    meson test "$@" || rc=$?
    local left
    left=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 -name 'oclseg-*' | head -20)
    if [ -n "$left" ]; then
        echo "tests left temporary files behind (kept in $test_tmp):" >&2
        echo "$left" >&2
        [ "$rc" -ne 0 ] || rc=1
    fi
    [ "$rc" -ne 0 ] || rm -rf "$test_tmp"
    return "$rc"
}
if [ "${1:-}" = "--sanitize" ]; then
    shift
    builddir=${BUILDDIR:-build-asan}
    [ -f "$builddir/build.ninja" ] ||
        meson setup "$builddir" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
    meson compile -C "$builddir"
    # Only PoCL is visible: Mesa rusticl deadlocks inside the unwinder under ASan (its queue
    # thread blocks in _Unwind_Backtrace while ASan unwinds a malloc), and Oclgrind is a
    # simulator we already run in the plain build. Leaks the drivers make once per process are
    # suppressed by library (tools/lsan.supp); our own cl_* objects are counted instead.
    icd_dir=$(mktemp -d)
    trap 'rm -rf "$icd_dir"' EXIT
    cp /etc/OpenCL/vendors/pocl.icd "$icd_dir"/
    export OCL_ICD_VENDORS=$icd_dir
    export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:abort_on_error=0
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    export LSAN_OPTIONS=suppressions=$PWD/tools/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0
    # Device code runs in PoCL's JIT, not under ASan: the small shapes exercise the same host
    # paths at a fraction of the time. The 'scripts' suite (ONNX/OpenCV comparison, bench
    # report, install) checks numerics, charts and packaging; see tests/meson.build.
    export OCLSEG_TEST_SMALL=1
    # 'mpi' (test_dist) is left out too: Open MPI's own start-up allocations are never freed,
    # so LeakSanitizer fails every rank at exit; the dist module's host code runs in the plain suite.
    # 'end-to-end' (test_runs, test_weights_meta, test_rundir): whole runs chained or raced, see
    # tests/meson.build.
    if run_tests -C "$builddir" --print-errorlogs --num-processes 2 --suite ops --suite host \
        --no-suite clblast-tuning --no-suite scripts --no-suite mpi --no-suite end-to-end \
        --timeout-multiplier 3 "$@"; then
        exit 0
    fi
    # LeakSanitizer's own tracer sometimes segfaults at exit (google/sanitizers#1353): no leak
    # report, the test body passed. Such a test, and only such, is rerun once and must pass then;
    # any other failure (a leak, an ASan/UBSan error, a failed check) fails here.
    crashed=$(python3 tools/lsan_tracer_crashes.py "$builddir/meson-logs/testlog.json" | tr "\n" " ") ||
        exit 1
    [ -n "$crashed" ] || exit 1
    echo "LeakSanitizer's tracer crashed (not a leak report) in: $crashed; rerunning once" >&2
    # shellcheck disable=SC2086 # one test name per word
    run_tests -C "$builddir" --no-rebuild --print-errorlogs --timeout-multiplier 3 $crashed
    exit
fi
builddir=${BUILDDIR:-build}
if [ -f "$builddir/build.ninja" ]; then
    meson setup --reconfigure "$builddir" >/dev/null
else
    meson setup "$builddir" >/dev/null
fi
meson compile -C "$builddir"
# Every op test runs on every visible device: PoCL (CPU) and rusticl on llvmpipe.
export RUSTICL_ENABLE=llvmpipe
# A fresh kernel-binary cache per run (set above) keeps the cache itself under test.
echo "devices under test:"
"$builddir/oclseg" devices | grep -E '^[0-9]+:[0-9]+'
# All three implementations side by side: Oclgrind ships an ICD library that Debian does not
# register (registering it would make the simulator a default device); list it explicitly.
icd_dir=$(mktemp -d "$test_tmp/icd-XXXXXX")
cp /etc/OpenCL/vendors/*.icd "$icd_dir"/
echo /usr/lib/oclgrind/liboclgrind-rt-icd.so > "$icd_dir/oclgrind.icd"
echo "all OpenCL implementations on this machine (with Oclgrind's ICD):"
OCL_ICD_VENDORS=$icd_dir "$builddir/oclseg" devices | grep -E '^[0-9]+:[0-9]+'
rm -rf "$icd_dir"
run_tests -C "$builddir" --print-errorlogs --num-processes 2 "$@"
