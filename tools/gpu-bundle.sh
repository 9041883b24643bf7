#!/usr/bin/env bash
# Packs the built binaries and the shared libraries a bare GPU machine lacks (CLBlast, the OpenCL
# ICD loader, libpng/libjpeg/jansson) into gpu-bundle/, plus an ICD file naming NVIDIA's driver.
# On the GPU machine: source gpu-bundle/env.sh, then run gpu-bundle/bin/oclseg or the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build}
out=gpu-bundle
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/icd"
cp "$builddir/oclseg" "$out/bin/"
for t in "$builddir"/tests/test_*; do [ -x "$t" ] && [ -f "$t" ] && cp "$t" "$out/bin/"; done
# Every non-glibc library the binaries link, resolved on this machine.
for bin in "$out"/bin/*; do ldd "$bin"; done | awk '/=> \//{print $3}' | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
        libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libgcc_s.so*) ;;
        *) cp -L "$lib" "$out/lib/" ;;
    esac
done
echo "libnvidia-opencl.so.1" > "$out/icd/nvidia.icd"
cat > "$out/env.sh" <<'ENV'
# Source on the GPU machine: use the bundled libraries and NVIDIA's OpenCL driver.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nv=$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl.so.1/{print $NF; exit}')
[ -z "$nv" ] && nv=$(ls /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 2>/dev/null | head -1)
[ -n "$nv" ] && echo "$nv" > "$here/icd/nvidia.icd"
export OCL_ICD_VENDORS="$here/icd"
ENV
du -sh "$out"
