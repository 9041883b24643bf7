#!/usr/bin/env bash
# The main job on the built-in default: installs dependencies, builds, generates the synthetic
# ISIC-like data set, trains model 1 (frozen encoder) and model 2 (fine-tuned) on the default
# OpenCL device, and prints a side-by-side table. Sized to finish in under 15 minutes on a 2-core
# CPU with PoCL: 64x64 inputs and DEMO_EPOCHS (default 5) epochs per model. The full recipe
# (128x128, 25 epochs, batch 16) is: build/oclseg train [--freeze-encoder] --data DIR
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build >/dev/null
epochs=${DEMO_EPOCHS:-5}
size=${DEMO_SIZE:-64}
data=${DEMO_DATA:-datasets/synth}
if [ ! -d "$data/ISBI2016_ISIC_Part1_Test_GroundTruth" ]; then
    build/oclseg synth --out "$data" --train 900 --test 379 --seed 1
fi
build/oclseg devices | grep -E '^[0-9]+:[0-9]+' | grep default || true
stamp=$(date +%Y%m%d-%H%M%S)
for model in 1 2; do
    flags=""
    [ "$model" = 1 ] && flags="--freeze-encoder"
    echo "== model $model ($([ "$model" = 1 ] && echo 'frozen encoder' || echo 'fine-tuned encoder')): $epochs epochs at ${size}x${size}"
    build/oclseg train --data "$data" --out "runs/demo-$stamp-model$model" --epochs "$epochs" \
        --size "$size" --batch 16 $flags
done
python3 - "runs/demo-$stamp" <<'PY'
import csv, sys
base = sys.argv[1]
rows = {}
for m in (1, 2):
    with open(f"{base}-model{m}/metrics.csv") as f:
        data = list(csv.DictReader(f))
    with open(f"{base}-model{m}/final.csv") as f:
        test = [r for r in csv.DictReader(f) if r["split"] == "test"][0]
    test["train_loss"] = data[int(test["epoch"]) - 1]["train_loss"]
    secs = sum(float(r["seconds"]) for r in data) / len(data)
    rows[m] = (test, secs)
print()
print(f"test-set results of the epoch selected on validation (metrics at the training size; mean over images)")
print(f"{'':22s} {'model 1 (frozen)':>18s} {'model 2 (fine-tuned)':>21s}")
for key, label in [("epoch", "selected epoch"), ("train_loss", "train loss"), ("loss", "test loss"),
                   ("AC", "accuracy AC"), ("DI", "Dice DI"), ("JA", "Jaccard JA"),
                   ("SE", "sensitivity SE"), ("SP", "specificity SP"),
                   ("thresholded_JA", "ISIC 2018 thr. JA")]:
    print(f"{label:22s} {float(rows[1][0][key]):18.4f} {float(rows[2][0][key]):21.4f}")
print(f"{'time per epoch (s)':22s} {rows[1][1]:18.1f} {rows[2][1]:21.1f}")
print(f"\nrun directories: {base}-model1, {base}-model2 (curves.png, metrics.csv, weights)")
PY
