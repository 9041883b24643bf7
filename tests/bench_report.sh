#!/usr/bin/env bash
# `oclseg bench --report` (meson test 'bench_report'): a report from the committed result files
# of two machines plus a PyTorch peer (tools/compare_bench --report), a measured one on the
# first device with tiny shapes, and a malformed result file rejected with its name.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${OCLSEG_BIN:?OCLSEG_BIN must name the oclseg binary}
work=$(mktemp -d /tmp/oclseg-report-XXXXXX)
trap 'rm -rf "$work"' EXIT
r=docs/results
OCLSEG_BIN=$bin tools/compare_bench --report "$work/a" $r/bench_h100_finetune_7.json \
    $r/bench_h100_frozen_6.json $r/bench_pocl_finetune.json $r/bench_pocl_frozen.json \
    $r/pytorch_cuda_finetune_7.json $r/pytorch_cuda_frozen_6.json >/dev/null
for f in report.md images_per_s.png step_split.png gflops.png memory.png kernels_0.png \
         kernels_3.png; do
    [ -s "$work/a/$f" ] || { echo "FAIL: $f missing or empty"; exit 1; }
    case $f in *.png) head -c 8 "$work/a/$f" | od -An -c | grep -q 'P   N   G' ||
                          { echo "FAIL: $f is not a PNG"; exit 1; } ;; esac
done
grep -q '| H100 80GB HBM3 | NVIDIA CUDA 580.159.04 | fine-tune | 16, 128 | 23.9 |' "$work/a/report.md"
grep -q '| PyTorch 2.11 cuda (peer) | pytorch 2.11.0+cu130  | frozen | 16, 128 | 5.0 |' \
    "$work/a/report.md"
grep -q '| PoCL CPU (AMD EPYC) |.*| frozen |' "$work/a/report.md"
# measured: both modes on the first device, tiny shapes
"$bin" bench --device 0:0 --size 32 --batch 2 --steps 2 --report "$work/b" >/dev/null
[ "$(grep -c '| fine-tune |\|| frozen |' "$work/b/report.md")" = 2 ] ||
    { echo "FAIL: measured report lacks one of the modes"; exit 1; }
[ -s "$work/b/images_per_s.png" ] && [ -s "$work/b/bench.json" ]
# bad input
echo '{"device": "x"}' > "$work/bad.json"
if "$bin" bench --report "$work/c" "$work/bad.json" 2> "$work/err.txt"; then
    echo "FAIL: a result without step_ms was accepted"; exit 1
fi
grep -q "bad.json: entry 0 has no numeric 'step_ms'" "$work/err.txt"
echo PASS
