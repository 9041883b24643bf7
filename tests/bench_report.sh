#!/usr/bin/env bash
# `oclseg bench --report` (meson test 'bench_report'): a report from the committed result files
# of two machines plus a PyTorch peer (tools/compare_bench --report), a measured one on the
# first device with tiny shapes, a malformed result file rejected with its name, and names in
# result files that try to run gnuplot code.
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
# every field of a measurement (src/app/bench.c) reaches the JSON (src/cli/cmd_bench.c)
for k in device vendor platform driver clblast build batch size frozen_encoder steps step_ms \
         step_sync_ms forward_ms backward_ms optimizer_ms images_per_s gflop_per_step gflops \
         sgemm_1024_gflops peak_device_bytes kernels gemm_tuned gemm_tuning gemm_own_kernels \
         gemm_tuning_shapes_own gemm_tuning_shapes_clblast kernel_launches_per_step \
         clblast_calls_per_step enqueue_ms_per_step clblast_enqueue_ms_per_step \
         clblast_blocking_calls_per_step; do
    [ "$(grep -c "\"$k\":" "$work/b/bench.json")" = 2 ] ||
        { echo "FAIL: bench.json lacks '$k' in one of the modes"; exit 1; }
done
# --decoder: the skip model's step is measured (more FLOPs than the seed model's) and named
"$bin" bench --device 0:0 --size 32 --batch 2 --steps 1 --json "$work/seed.json" >/dev/null
"$bin" bench --device 0:0 --size 32 --batch 2 --steps 1 --decoder skip --json "$work/skip.json" \
    >/dev/null
grep -q '"decoder": "seed"' "$work/seed.json" && grep -q '"decoder": "skip"' "$work/skip.json" ||
    { echo "FAIL: bench --json does not name the decoder"; exit 1; }
flops() { sed -n 's/.*"gflop_per_step": \([0-9.e+-]*\).*/\1/p' "$1" | head -1; }
awk -v a="$(flops "$work/seed.json")" -v b="$(flops "$work/skip.json")" 'BEGIN { exit !(b > a * 1.2) }' ||
    { echo "FAIL: bench --decoder skip measured $(flops "$work/skip.json") GFLOP/step, the seed model $(flops "$work/seed.json")"; exit 1; }
# bad input
echo '{"device": "x"}' > "$work/bad.json"
if "$bin" bench --report "$work/c" "$work/bad.json" 2> "$work/err.txt"; then
    echo "FAIL: a result without step_ms was accepted"; exit 1
fi
grep -q "bad.json: entry 0 has no numeric 'step_ms'" "$work/err.txt"
# hostile result files ("from other machines"): a kernel name that ends gnuplot's data block
# and calls system(), a label that closes a quoted title; nothing runs, the report is written
marker="$work/MARKER"
for m in 0 1; do
    cat > "$work/evil$m.json" <<EOF
{"device": "d$m", "platform": "p", "driver": "1", "label": "dev$m' . system('touch $marker') . '",
 "frozen_encoder": $([ $m = 1 ] && echo true || echo false), "batch": 2, "size": 32,
 "step_ms": 10, "forward_ms": 3, "backward_ms": 5, "optimizer_ms": 1, "images_per_s": 200,
 "gflops": 5, "sgemm_1024_gflops": 50, "peak_device_bytes": 1048576,
 "kernels": [{"name": "x\" 1\nEOD\nsystem(\"touch $marker\")\n\$d << EOD\n\"y", "ms": 1.5},
             {"name": "k2", "ms": 0.5}]}
EOF
done
"$bin" bench --report "$work/evil" "$work/evil0.json" "$work/evil1.json" >/dev/null 2>&1 || true
[ ! -e "$marker" ] || { echo "FAIL: a name in a result file ran as gnuplot code"; exit 1; }
for f in report.md images_per_s.png step_split.png kernels_0.png kernels_1.png; do
    [ -s "$work/evil/$f" ] || { echo "FAIL: hostile names: $f not written"; exit 1; }
done
echo PASS
