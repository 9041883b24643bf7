#!/usr/bin/env python3
"""Lists the failed tests of a meson test log that failed only because LeakSanitizer itself crashed.

LeakSanitizer's stop-the-world tracer sometimes segfaults at process exit ("Tracer caught signal
11 ... LeakSanitizer has encountered a fatal error"): a known, intermittent fault of the sanitizer
runtime, not a leak report (google/sanitizers#1353). tools/check.sh --sanitize reruns such a test
once. Every other failure is real: a leak report, an ASan or UBSan error, a failed check, a
timeout, or a crash signature together with any of those.

    lsan_tracer_crashes.py BUILDDIR/meson-logs/testlog.json

Prints one test name per line and exits 0 when every failure is such a crash; prints the other
failures and exits 1 when any failure is not.
"""
import json
import sys

CRASH = ("Tracer caught signal", "LeakSanitizer has encountered a fatal error")
REAL = (
    "ERROR: LeakSanitizer: detected memory leaks",
    "ERROR: AddressSanitizer",
    "runtime error:",
    "device buffers leaked",
    "OpenCL objects still alive at exit",
)


def check_failed(output):
    """Check's summary line says whether every test body passed ('Failures: 0, Errors: 0')."""
    for line in output.splitlines():
        if "%: Checks:" in line:
            if "Failures: 0, Errors: 0" not in line:
                return True
    return False


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    crashes, real = [], []
    with open(sys.argv[1], encoding="utf-8", errors="replace") as log:
        for line in log:
            line = line.strip()
            if not line:
                continue
            entry = json.loads(line)
            if entry.get("result") in ("OK", "SKIP", "EXPECTEDFAIL"):
                continue
            output = (entry.get("stdout") or "") + "\n" + (entry.get("stderr") or "")
            only_crash = (entry.get("result") == "FAIL" and all(s in output for s in CRASH)
                          and not any(s in output for s in REAL) and not check_failed(output))
            # "oclseg:host / test_cli" -> "test_cli", the form `meson test NAME` takes
            (crashes if only_crash else real).append(entry["name"].split(" / ")[-1])
    if real:
        print("failed for real: " + " ".join(real), file=sys.stderr)
        return 1
    for name in crashes:
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
