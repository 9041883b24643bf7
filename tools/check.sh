#!/usr/bin/env bash
# THE test command: installs dependencies if missing, configures, builds and runs every suite:
# op tests on PoCL and Mesa rusticl (llvmpipe), op tests under Oclgrind, and the host suites.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
builddir=${BUILDDIR:-build}
if [ -f "$builddir/build.ninja" ]; then
    meson setup --reconfigure "$builddir" >/dev/null
else
    meson setup "$builddir" >/dev/null
fi
meson compile -C "$builddir"
# Every op test runs on every visible device: PoCL (CPU) and rusticl on llvmpipe.
export RUSTICL_ENABLE=llvmpipe
# A fresh kernel-binary cache per run keeps the cache itself under test.
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$(mktemp -d)}
echo "devices under test:"
"$builddir/oclseg" devices | grep -E '^[0-9]+:[0-9]+'
meson test -C "$builddir" --print-errorlogs --num-processes 2 "$@"
