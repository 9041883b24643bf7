#!/usr/bin/env bash
# Installs oclseg's Debian build, test and runtime dependencies (idempotent; quiet when present).
# Usage: tools/install-deps.sh [--golden] [--fuzz]
#   --golden adds python3-torch/torchvision for tools/make_golden.py and the PyTorch peer
#            benchmark, with libopenblas0-pthread (else torch runs on the reference BLAS)
#   --fuzz adds clang and its libFuzzer runtime for tools/fuzz.sh
set -euo pipefail
pkgs=(build-essential meson ninja-build pkg-config python3
      ocl-icd-opencl-dev opencl-c-headers libclblast-dev libpng-dev libjpeg62-turbo-dev
      libjansson-dev check pocl-opencl-icd mesa-opencl-icd oclgrind clinfo gnuplot-nox
      libprotobuf-c-dev protobuf-c-compiler libonnx-dev
      python3-numpy python3-onnx python3-opencv man-db
      libopenmpi-dev openmpi-bin)
for opt in "$@"; do
    case $opt in
        --golden) pkgs+=(python3-torch python3-torchvision libopenblas0-pthread) ;;
        --fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
        *) echo "install-deps.sh: unknown option $opt" >&2; exit 2 ;;
    esac
done
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
