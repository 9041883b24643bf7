#!/usr/bin/python3
"""PyTorch peer benchmark: the same training step as `oclseg bench` (LesionSegNet, BCEWithLogits,
NAdam lr 1e-3, random data), median over steps, on the CPU or a CUDA device. Prints JSON."""
import argparse
import json
import os
import statistics
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--freeze-encoder", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="CPU threads (default: every core; Debian's torch otherwise uses 1 here)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
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
                      "step_ms": med, "images_per_s": args.batch / med * 1e3}))


if __name__ == "__main__":
    main()
