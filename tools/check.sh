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
# All three implementations side by side: Oclgrind ships an ICD library that Debian does not
# register (registering it would make the simulator a default device); list it explicitly.
icd_dir=$(mktemp -d)
cp /etc/OpenCL/vendors/*.icd "$icd_dir"/
echo /usr/lib/oclgrind/liboclgrind-rt-icd.so > "$icd_dir/oclgrind.icd"
echo "all OpenCL implementations on this machine (with Oclgrind's ICD):"
OCL_ICD_VENDORS=$icd_dir "$builddir/oclseg" devices | grep -E '^[0-9]+:[0-9]+'
rm -rf "$icd_dir"
meson test -C "$builddir" --print-errorlogs --num-processes 2 "$@"
