#!/usr/bin/env bash
# Runs the same workload (batch 16, 128x128, fine-tune, NAdam) with Debian's PyTorch on the CPU
# and with `oclseg bench` on PoCL, alternating ROUNDS times in one run, and prints both medians
# and the ratio oclseg/PyTorch (<= 1.0: oclseg is no slower), with the BLAS PyTorch ran on (it
# refuses the reference BLAS) and the SGEMM ceiling measured through it.
# Usage: tools/bench_vs_pytorch.sh [ROUNDS=3] [STEPS=5] [extra oclseg bench args...]
# (--freeze-encoder among them is passed to the PyTorch side too: the frozen-encoder step)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-5}
shift $(( $# > 2 ? 2 : $# )) || true
[ -x build/oclseg ] || { meson setup build >/dev/null && meson compile -C build >/dev/null; }
pt_args=()
for a in "$@"; do [ "$a" = --freeze-encoder ] && pt_args+=(--freeze-encoder); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$rounds"); do
    build/oclseg bench --device "${OCLSEG_BENCH_DEVICE:-Portable}" --steps "$steps" --json "$tmp/ocl$r.json" "$@" >/dev/null
    # OpenBLAS at its best: the machine-wide OPENBLAS_CORETYPE (set on some hosts for old builds)
    # would force older kernels; bench_pytorch.py records the core type actually used
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/bench_pytorch.py --steps "$steps" "${pt_args[@]}" > "$tmp/pt$r.json"
    echo "round $r: oclseg $(python3 -c "import json;print(round(json.load(open('$tmp/ocl$r.json'))[0]['step_ms'],1))") ms, pytorch $(python3 -c "import json;print(round(json.load(open('$tmp/pt$r.json'))['step_ms'],1))") ms"
done
python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
ocl = [json.load(open(f"{tmp}/ocl{r}.json"))[0]["step_ms"] for r in range(1, rounds + 1)]
pt = [json.load(open(f"{tmp}/pt{r}.json"))["step_ms"] for r in range(1, rounds + 1)]
o, p = statistics.median(ocl), statistics.median(pt)
print(f"median training step: oclseg {o:.1f} ms, PyTorch {p:.1f} ms, ratio oclseg/PyTorch {o / p:.2f}")
last = json.load(open(f"{tmp}/pt{rounds}.json"))
blas = last.get("blas") or {}
ceil = [json.load(open(f"{tmp}/pt{r}.json"))["sgemm_ceiling"]["gflops"] for r in range(1, rounds + 1)]
print(f"PyTorch BLAS: {blas.get('kind')} ({blas.get('config', ', '.join(blas.get('libraries', [])))}), "
      f"core {blas.get('core')}, {last['threads']} threads; 1024^3 SGEMM median {statistics.median(ceil):.1f} GFLOP/s")
PY
