#!/usr/bin/env bash
# `oclseg predict` against the same job done with OpenCV (tools/predict_opencv.py) on large
# JPEGs, alternating ROUNDS times in one run; prints ms per image (wall, and per stage), the
# medians and the ratio oclseg/OpenCV, and how many mask pixels the two agree on.
# Inputs: N images of ../shared/data/isic-real-256 (else synthetic ones) upscaled to WxH
# (default 3000x2000, ISIC 2017's originals are 3024x2016) and saved as JPEG quality 95. Model:
# WEIGHTS (default: 1 epoch of `oclseg train --size 128` on synthetic data), exported with
# `oclseg export --relu6 relu --sigmoid` for OpenCV.
# Usage: tools/bench_predict_vs_opencv.sh [ROUNDS=3] [N=20] [extra oclseg predict args...]
# Environment: OCLSEG_BIN=B (default build/oclseg), SHARED_DATA=D (default ../shared/data), WEIGHTS=F, SIZE=WxH, OUT_DIR=D (outputs; default a temporary folder, /dev/shm
# when it exists: the benchmark measures the programs, not the disk), BASELINE_BIN=B (also
# times another oclseg binary, e.g. a build of the previous commit, wall time only).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
count=${2:-20}
shift $(( $# > 2 ? 2 : $# )) || true
py=/usr/bin/python3
"$py" -c 'import cv2, numpy' 2>/dev/null || { echo "SKIP: $py lacks cv2/numpy"; exit 77; }
if [ -z "${OCLSEG_BIN:-}" ]; then
    [ -x build/oclseg ] || { meson setup build >/dev/null && meson compile -C build >/dev/null; }
fi
bin=$(realpath "${OCLSEG_BIN:-build/oclseg}")
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
work=$(mktemp -d "${OUT_DIR:-$base}/oclseg-bench-predict-XXXXXX")
trap 'rm -rf "$work"' EXIT
size=${SIZE:-3000x2000}
# the shared data beside the checkout (../shared), or beside its main checkout (a git worktree)
real=${SHARED_DATA:-../shared/data}/isic-real-256/ISBI2016_ISIC_Part1_Test_Data
main_dir=$(dirname "$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || echo .)")
[ -d "$real" ] || real=$main_dir/../shared/data/isic-real-256/ISBI2016_ISIC_Part1_Test_Data
src=$real
if [ ! -d "$real" ]; then
    echo "note: no ../shared/data/isic-real-256: synthetic images upscaled instead"
    "$bin" synth --out "$work/synth_src" --train 1 --test "$count" --seed 7 >/dev/null
    src="$work/synth_src/ISBI2016_ISIC_Part1_Test_Data"
fi
"$py" - "$src" "$work/in" "$count" "$size" <<'PY'
import cv2, os, sys
src, dst, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
w, h = (int(v) for v in size.split("x"))
os.makedirs(dst)
files = sorted(f for f in os.listdir(src) if f.lower().endswith(".jpg"))[:n]
for f in files:
    big = cv2.resize(cv2.imread(os.path.join(src, f)), (w, h), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(os.path.join(dst, f), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
print(f"{len(files)} images {w}x{h} from {src}")
PY
weights=${WEIGHTS:-}
if [ -z "$weights" ]; then
    "$bin" synth --out "$work/data" --train 32 --test 4 --seed 3 >/dev/null
    "$bin" train --data "$work/data" --out "$work/run" --epochs 1 --batch 8 --size 128 --quiet
    weights=$work/run/weights.safetensors
fi
"$bin" export --weights "$weights" --onnx "$work/model.onnx" --relu6 relu --sigmoid >/dev/null
ms() { "$py" -c "import sys; print(f'{(float(sys.argv[2]) - float(sys.argv[1])) * 1e3:.0f}')" "$@"; }
for r in $(seq "$rounds"); do
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$work/oclcpu$r.txt" \
        "$bin" predict --weights "$weights" --out "$work/o$r" --timing "$@" "$work/in" > "$work/ocl$r.txt"
    t1=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$work/cvcpu$r.txt" \
        "$py" tools/predict_opencv.py --onnx "$work/model.onnx" --out "$work/c$r" --timing \
        "$work/in" > "$work/cv$r.txt"
    t2=$(date +%s.%N)
    echo "$(ms "$t0" "$t1") $(ms "$t1" "$t2")" > "$work/wall$r.txt"
    line="round $r: oclseg $(ms "$t0" "$t1") ms, OpenCV $(ms "$t1" "$t2") ms"
    if [ -n "${BASELINE_BIN:-}" ]; then
        t3=$(date +%s.%N)
        "$BASELINE_BIN" predict --weights "$weights" --out "$work/b$r" "$work/in" > /dev/null
        t4=$(date +%s.%N)
        echo "$(ms "$t3" "$t4")" > "$work/base$r.txt"
        line="$line, baseline $(ms "$t3" "$t4") ms"
        [ "$r" -lt "$rounds" ] && rm -rf "$work/b$r"
    fi
    echo "$line (whole processes, $count images)"
    if [ "$r" -lt "$rounds" ]; then rm -rf "$work/o$r" "$work/c$r"; fi
done
"$py" - "$work" "$rounds" "$count" <<'PY'
import os, re, statistics, sys
import cv2, numpy as np
work, rounds, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med = statistics.median

def stages(path):
    out = {}
    for line in open(path):
        m = re.match(r"\s+(\S+(?: \S+)?)\s+([0-9.]+) ms per image", line)
        if m:
            out[m.group(1)] = float(m.group(2))
        m = re.search(r"([0-9.]+) ms per image \(wall\)", line)
        if m:
            out["in-process wall"] = float(m.group(1))
    return out

ocl = [stages(f"{work}/ocl{r}.txt") for r in range(1, rounds + 1)]
cv = [stages(f"{work}/cv{r}.txt") for r in range(1, rounds + 1)]
walls = [open(f"{work}/wall{r}.txt").read().split() for r in range(1, rounds + 1)]
print(f"median over {rounds} rounds, ms per image ({count} images):")
print(f"  {'stage':<20} {'oclseg':>9} {'OpenCV':>9}")
for k in ocl[0]:
    if k in cv[0]:
        print(f"  {k:<20} {med(o[k] for o in ocl):9.1f} {med(c[k] for c in cv):9.1f}")
wo = med(float(w[0]) for w in walls) / count
wc = med(float(w[1]) for w in walls) / count
print(f"  {'whole process':<20} {wo:9.1f} {wc:9.1f}   ratio oclseg/OpenCV {wo / wc:.2f}")
cpu = lambda name, r: sum(float(v) for v in open(f"{work}/{name}{r}.txt").read().split()[-2:])
co = med(cpu("oclcpu", r) for r in range(1, rounds + 1)) * 1e3 / count
cc = med(cpu("cvcpu", r) for r in range(1, rounds + 1)) * 1e3 / count
print(f"  {'CPU (user+sys)':<20} {co:9.1f} {cc:9.1f}   ratio oclseg/OpenCV {co / cc:.2f}")
if os.path.exists(f"{work}/base1.txt"):
    wb = med(float(open(f"{work}/base{r}.txt").read()) for r in range(1, rounds + 1)) / count
    print(f"  baseline binary      {wb:9.1f}             ratio oclseg/baseline {wo / wb:.2f}")
agree, n = 0.0, 0
for f in sorted(os.listdir(f"{work}/o{rounds}")):
    if f.endswith("_mask.png"):
        a = cv2.imread(f"{work}/o{rounds}/{f}", cv2.IMREAD_GRAYSCALE)
        b = cv2.imread(f"{work}/c{rounds}/{f}", cv2.IMREAD_GRAYSCALE)
        agree += float(np.mean(a == b)) if b is not None and a.shape == b.shape else 0.0
        n += 1
print(f"masks: oclseg and OpenCV agree on {100 * agree / max(n, 1):.4f}% of pixels ({n} masks)")
print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; {os.cpu_count()} CPUs")
PY
