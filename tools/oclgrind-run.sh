#!/usr/bin/env bash
# Runs one test binary under Oclgrind's checks and fails on any error report in its log.
set -u
log=$(mktemp)
trap 'rm -f "$log"' EXIT
oclgrind --check-api --data-races --uninitialized --log "$log" "$@"
rc=$?
if [ -s "$log" ]; then
    echo "Oclgrind reported problems while running $*:" >&2
    cat "$log" >&2
    [ "$rc" -eq 0 ] && rc=1
fi
exit "$rc"
