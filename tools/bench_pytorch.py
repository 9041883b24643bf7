#!/usr/bin/python3
"""PyTorch peer benchmark: the same training step as `oclseg bench` (LesionSegNet, BCEWithLogits,
NAdam lr 1e-3, random data), median over steps, on the CPU or a CUDA device. Prints JSON.

On the CPU the peer must run on an optimised BLAS: Debian's torch is built with BLAS_INFO=generic
and calls whatever libblas.so.3 the alternatives system points at, which is the reference BLAS
(about 5 GFLOP/s) unless libopenblas0-pthread is installed. The JSON names the BLAS library
actually loaded, OpenBLAS's core type and threads, and the SGEMM ceiling measured in the same
process; with the reference BLAS the script refuses to report (exit 3) unless
--allow-reference-blas is given. OpenBLAS picks its kernels by OPENBLAS_CORETYPE: run with it
unset (tools/bench_vs_pytorch.sh does) so that it uses the best kernels for this CPU."""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class LesionSegNet(nn.Module):
    def __init__(self, dropout=0.5):
        super().__init__()
        self.encoder = torchvision.models.mobilenet_v2().features
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(1280, 256, 4, stride=2, padding=1), nn.ReLU(), nn.Dropout(dropout),
            nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1))

    def forward(self, x):
        return F.interpolate(self.decoder(self.encoder(x)), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)


def blas_info():
    """The BLAS/LAPACK libraries this process has loaded (after a matmul) and OpenBLAS's view."""
    torch.randn(64, 64) @ torch.randn(64, 64)
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f
                       if ("blas" in line.lower() or "mkl" in line.lower()) and "/" in line})
    info = {"libraries": libs, "torch_blas_info": "unknown"}
    for part in torch.__config__.show().replace("\n", ",").split(","):
        if "BLAS_INFO=" in part and "LAPACK" not in part:
            info["torch_blas_info"] = part.split("=", 1)[1].strip()
    openblas = [p for p in libs if "libopenblas" in os.path.basename(p)]
    if openblas:
        ob = ctypes.CDLL(openblas[0])
        ob.openblas_get_corename.restype = ctypes.c_char_p
        ob.openblas_get_config.restype = ctypes.c_char_p
        info.update(kind="openblas", core=ob.openblas_get_corename().decode(),
                    config=ob.openblas_get_config().decode(),
                    blas_threads=ob.openblas_get_num_threads())
    elif any("mkl" in os.path.basename(p) for p in libs):
        info["kind"] = "mkl"
    elif any(os.path.basename(p).startswith("libblas.so") for p in libs):
        # Debian's reference BLAS lives in .../blas/libblas.so.3 (netlib)
        info["kind"] = "reference"
    else:
        info["kind"] = "unknown"
    info["env"] = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    return info


def sgemm_gflops(n=1024, repeats=5):
    """Single-precision GEMM through the same BLAS (torch.mm on the CPU), median of repeats."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    c = a @ b
    err = ((c.double() - a.double() @ b.double()).abs().max() / (a.double() @ b.double()).abs().max()).item()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return {"n": n, "gflops": 2 * n ** 3 / statistics.median(times) / 1e9, "max_rel_error": err}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--freeze-encoder", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="CPU threads (default: every core; Debian's torch otherwise uses 1 here)")
    ap.add_argument("--allow-reference-blas", action="store_true",
                    help="report even when the reference BLAS is loaded (not a fair peer)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    blas = ceiling = None
    if args.device == "cpu":
        blas = blas_info()
        if blas["kind"] == "reference" and not args.allow_reference_blas:
            print("bench_pytorch.py: torch runs on the reference BLAS (%s): not an honest peer. "
                  "Install libopenblas0-pthread (tools/install-deps.sh --golden) or pass "
                  "--allow-reference-blas" % ", ".join(blas["libraries"]), file=sys.stderr)
            sys.exit(3)
        ceiling = sgemm_gflops()
    torch.manual_seed(1)
    dev = torch.device(args.device)
    model = LesionSegNet().to(dev).train()
    params = model.parameters()
    if args.freeze_encoder:
        model.encoder.eval()
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        params = model.decoder.parameters()
    opt = torch.optim.NAdam(params, lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    x = torch.randn(args.batch, 3, args.size, args.size, device=dev)
    y = (torch.rand(args.batch, 1, args.size, args.size, device=dev) > 0.5).float()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(2):
        step()
    sync()
    # as `oclseg bench`: steps back to back, one wait per window of 5 (when --steps >= 10)
    window = 5 if args.steps >= 10 else 1
    times = []
    for _ in range(args.steps // window):
        t0 = time.perf_counter()
        for _ in range(window):
            step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3 / window)
    med = statistics.median(times)
    print(json.dumps({"framework": "pytorch " + torch.__version__, "device": str(dev),
                      "threads": torch.get_num_threads(), "batch": args.batch, "size": args.size,
                      "step_ms": med, "images_per_s": args.batch / med * 1e3,
                      "freeze_encoder": args.freeze_encoder, "blas": blas,
                      "sgemm_ceiling": ceiling}))


if __name__ == "__main__":
    main()
