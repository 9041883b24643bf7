#!/usr/bin/env bash
# ONNX export checked by other runtimes (meson test 'onnx_opencv'): trains a small model (with the
# seed and with the skip decoder) for a few steps on synthetic data (trained weights give real
# lesion/background contrast; random ones would give probabilities near 0.5 everywhere), exports
# it, and runs tools/onnx_check.py: ONNX
# checker (full) and strict shape inference, OpenCV DNN against `oclseg predict --probs` on
# synthetic images plus, when present, four real ISIC images from ../shared/data/isic-real-256.
# Exit 77 (skip) when /usr/bin/python3 lacks onnx or cv2 (tools/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${OCLSEG_BIN:?OCLSEG_BIN must name the oclseg binary}
py=/usr/bin/python3
if ! "$py" -c 'import onnx, cv2, numpy' 2>/dev/null; then
    echo "SKIP: $py cannot import onnx, cv2 and numpy (apt-get install python3-onnx python3-opencv)"
    exit 77
fi
work=$(mktemp -d /tmp/oclseg-onnx-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin" synth --out "$work/data" --train 48 --test 6 --seed 5 >/dev/null
images=("$work/data/ISBI2016_ISIC_Part1_Test_Data")
real=../shared/data/isic-real-256/ISBI2016_ISIC_Part1_Test_Data
if [ -d "$real" ]; then
    mapfile -t some < <(ls "$real"/*.jpg | head -4)
    images+=("${some[@]}")
else
    echo "note: $real absent; synthetic images only"
fi
# Tolerance 1e-4 on probabilities: both sides are float32 with different summation orders
# (CLBlast/im2col vs OpenCV's convolutions) and OpenCV runs the BatchNorm-folded weights; the
# measured difference is ~1e-7 (docs/deployment.md). A half-pixel error in the Resize alone
# gives 0.1, an unfolded BatchNorm bias 0.4.
# Every decoder: the skip decoders add Concat, ConvTranspose or Resize + Conv with BatchNorm folded in
# (predict builds it from the weights' metadata "decoder").
for decoder in seed skip skip-bilinear; do
    "$bin" train --data "$work/data" --out "$work/run-$decoder" --size 64 --batch 8 --epochs 100 \
        --max-steps 24 --lr 3e-3 --eval-every 100 --quiet --decoder "$decoder" >/dev/null
    echo "decoder $decoder:"
    "$py" tools/onnx_check.py --oclseg "$bin" --weights "$work/run-$decoder/weights.safetensors" \
        --size 64 --work "$work/check-$decoder" --max-prob-diff 1e-4 --min-mask-agree 0.999 \
        "${images[@]}"
done
