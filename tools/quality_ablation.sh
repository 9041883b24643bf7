#!/bin/bash
# The recipe ablation of docs/quality.md: one training run per configuration (each option of
# --recipe best on its own, the seed recipe and the whole best recipe), then the inference options
# on/off for the best-recipe model, and a table of validation and test Jaccard from final.csv.
# Usage: tools/quality_ablation.sh DATA_DIR [OUT_DIR]   (env: SIZE=64 EPOCHS=2 DEVICE=pocl)
set -euo pipefail
data=${1:?usage: tools/quality_ablation.sh DATA_DIR [OUT_DIR]}
out=${2:-runs/ablation}
size=${SIZE:-64}
epochs=${EPOCHS:-2}
device=${DEVICE:-pocl}
bin=${OCLSEG:-build/oclseg}
mkdir -p "$out"
common=(--data "$data" --size "$size" --epochs "$epochs" --device "$device" --quiet)
run() {
    local name=$1
    shift
    [ -f "$out/$name/final.csv" ] && return 0 # done before: keep (the script can be re-run)
    local t0=$SECONDS
    # --overwrite: an earlier attempt that stopped before final.csv is redone
    "$bin" train "${common[@]}" --out "$out/$name" --overwrite "$@"
    echo "$name $((SECONDS - t0))" >> "$out/wall_seconds.txt"
}
run seed
run aug --aug-dihedral --aug-affine 20,0.1,0.05 --aug-color 0.15,0.15,0.15,0.02
run bce+dice --loss bce+dice
run onecycle+adamw --schedule onecycle --lr 2e-3 --weight-decay 1e-4 --decoupled-wd
run best --recipe best
# inference options on the best-recipe model, test split at the original resolution
weights=$out/best/best.safetensors
threshold=$(awk -F, '$1 == "val" {print $3}' "$out/best/final.csv")
ev() {
    local name=$1
    shift
    echo "== $name"
    # each row starts from the plain settings: the weights' metadata would otherwise supply the
    # recipe's threshold, TTA and post-processing
    "$bin" eval --data "$data" --split test --weights "$weights" --size "$size" \
        --device "$device" --out "$out/eval-$name.csv" \
        --threshold 0.5 --tta none --no-largest-component --no-fill-holes "$@" | grep -E 'JA|AC'
}
ev plain
ev threshold --threshold "$threshold"
ev threshold+tta --threshold "$threshold" --tta flips
ev threshold+post --threshold "$threshold" --largest-component --fill-holes
ev all --threshold "$threshold" --tta flips --largest-component --fill-holes
echo
printf '%-16s %8s %8s %8s %8s\n' run val_JA test_JA test_thrJA seconds
for d in "$out"/*/; do
    n=$(basename "$d")
    [ -f "$d/final.csv" ] || continue
    awk -F, -v n="$n" -v s="$(awk -v n="$n" '$1 == n {print $2}' "$out/wall_seconds.txt")" \
        '$1 == "val" {v = $7} $1 == "test" {t = $7; r = $12} END {printf "%-16s %8.4f %8.4f %8.4f %8s\n", n, v, t, r, s}' \
        "$d/final.csv"
done
