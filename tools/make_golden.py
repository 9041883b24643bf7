#!/usr/bin/python3
"""Writes PyTorch reference values for oclseg's whole-model test (tests/test_golden.c).

Run with Debian's python3-torch/python3-torchvision (tools/install-deps.sh --golden):
    /usr/bin/python3 tools/make_golden.py                  # small: tests/data/golden_small.safetensors

The small configuration (width 0.25, last channel 64, decoder 32,16,8, 96x96, batch 4) keeps the
file under 5 MB. It is not 64x64 batch 2: there the deepest BatchNorms normalise over 2*2*2 = 8
values per channel and the network is chaotic at the rounding level (measured: a ReLU6 input of
9e-6 on PoCL against <= 0 in PyTorch flipped one mask and moved every upstream gradient 100x
further from the float64 reference than float32 PyTorch was). At 96x96 batch 4 (36 values per
channel) a correct float32 implementation lands at 1-2x float32 PyTorch's own error.
    /usr/bin/python3 tools/make_golden.py --full --out /tmp/golden_full.safetensors
The skip decoder (--decoder skip; README "The skip decoder"), the same small configuration:
    /usr/bin/python3 tools/make_golden.py --decoder-kind skip --out tests/data/golden_skip_small.safetensors
    /usr/bin/python3 tools/make_golden.py --decoder-kind skip-bilinear --out tests/data/golden_skip_bilinear_small.safetensors

File layout (safetensors; __metadata__ format "oclseg-golden", version "1", plus width_mult,
last_channel, decoder "a,b,c", decoder_kind "seed"|"skip"|"skip-bilinear", size, batch, torch version):
  init.<key>                 the initial state dict (F32; num_batches_tracked I64), LesionSegNet keys
  input (N,3,S,S), target (N,1,S,S)     F32 (the float64 run uses exactly these values)
  <mode>.logits (N,1,S,S)    forward output of step 1
  <mode>.losses (3)          BCEWithLogits loss of steps 1..3
  <mode>.grad.<param>        every trainable parameter's gradient at step 1
  <mode>.step3.<key>         every state-dict entry after 3 NAdam steps (I64 counters)
                             (references computed in float64, stored rounded to F32 for size)
  f32err.<name>              max |float32 PyTorch - float64 PyTorch| over tensor <name> (F64 scalar),
                             the worst of --f32-runs float32 runs (inputs perturbed by ~1 ulp)
with <mode> = finetune (everything trains, BatchNorm in training mode) or frozen (encoder in eval
mode with requires_grad False: BatchNorm uses and keeps its running statistics; only the decoder
trains). Dropout is 0. NAdam lr 1e-3, betas (0.9, 0.999), eps 1e-8, momentum_decay 4e-3; the same
batch at each step. The reference is computed in float64 (model.double()); float32 PyTorch's own
error is stored per tensor so the C test can judge our float32 error relative to it.
"""
import argparse
import copy
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops.misc import Conv2dNormActivation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402  (tools/safetensors_io.py)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def skip_widths(decoder):
    """The skip decoder's five stage widths: decoder[0..2], then decoder[2] / 2 and / 4."""
    d0, d1, d2 = decoder
    return [d0, d1, d2, max(d2 // 2, 1), max(d2 // 4, 1)]


class BilinearConv(nn.Conv2d):
    """Bilinear x2 upsampling, then a 3x3 convolution (padding 1, no bias): one module, so that its
    weight is decoder.s.0.weight like the transposed convolution it replaces."""

    def __init__(self, cin, cout):
        super().__init__(cin, cout, 3, padding=1, bias=False)

    def forward(self, x):
        return super().forward(F.interpolate(x, scale_factor=2, mode="bilinear",
                                             align_corners=False))


class LesionSegNet(nn.Module):
    """decoder_kind "seed": decoder.{0,3,5,7} ConvTranspose2d k4 s2 p1 (ReLU between, Dropout after
    the first), then a bilinear resize to the input size. decoder_kind "skip": decoder.s for
    s = 0..4 is Sequential(ConvTranspose2d k4 s2 p1, BatchNorm2d, ReLU[, Dropout for s = 0]);
    after stages 0..3 the output is concatenated (dim 1, decoder first) with the encoder's map at
    stride 16, 8, 4, 2 (the last encoder block at that resolution: features 13, 6, 3, 1 at width
    1); decoder.5 is a 1x1 Conv2d head with bias, at full resolution. decoder_kind
    "skip-bilinear": the same, with each decoder.s.0 a bilinear x2 upsampling (align_corners
    False) followed by a 3x3 Conv2d (padding 1, no bias) instead of the transposed convolution."""

    def __init__(self, width_mult=1.0, last_channel=1280, decoder=(256, 128, 64), dropout=0.5,
                 decoder_kind="seed"):
        super().__init__()
        self.decoder_kind = decoder_kind
        self.encoder = torchvision.models.mobilenet_v2(width_mult=width_mult).features
        if self.encoder[18][0].out_channels != last_channel:
            cin = self.encoder[18][0].in_channels
            self.encoder[18] = Conv2dNormActivation(cin, last_channel, kernel_size=1,
                                                    norm_layer=nn.BatchNorm2d,
                                                    activation_layer=nn.ReLU6)
            nn.init.kaiming_normal_(self.encoder[18][0].weight, mode="fan_out")
        if decoder_kind in ("skip", "skip-bilinear"):
            self.decoder = self.make_skip_decoder(last_channel, decoder, dropout)
            return
        d0, d1, d2 = decoder
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(last_channel, d0, 4, stride=2, padding=1), nn.ReLU(), nn.Dropout(dropout),
            nn.ConvTranspose2d(d0, d1, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(d1, d2, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(d2, 1, 4, stride=2, padding=1))

    def skip_maps(self, x):
        """The encoder's output and its last map at each stride 2, 4, 8, 16."""
        size, maps = x.shape[-1], {}
        for layer in self.encoder:
            x = layer(x)
            maps[size // x.shape[-1]] = x  # a later block at the same stride replaces it
        return x, maps

    def make_skip_decoder(self, last_channel, decoder, dropout):
        self.encoder.eval()  # the channel counts only: no BatchNorm statistics updated
        with torch.no_grad():
            _, maps = self.skip_maps(torch.zeros(1, 3, 64, 64))
        self.encoder.train()
        widths, stages, cin = skip_widths(decoder), [], last_channel
        for s, c in enumerate(widths):
            up = (BilinearConv(cin, c) if self.decoder_kind == "skip-bilinear"
                  else nn.ConvTranspose2d(cin, c, 4, stride=2, padding=1))
            layers = [up, nn.BatchNorm2d(c), nn.ReLU()]
            if s == 0:
                layers.append(nn.Dropout(dropout))
            stages.append(nn.Sequential(*layers))
            cin = c + (maps[16 >> s].shape[1] if s < 4 else 0)
        return nn.ModuleList(stages + [nn.Conv2d(widths[4], 1, 1)])

    def forward(self, x):
        if self.decoder_kind != "seed":
            y, maps = self.skip_maps(x)
            for s in range(5):
                y = self.decoder[s](y)
                if s < 4:
                    y = torch.cat([y, maps[16 >> s]], dim=1)
            return self.decoder[5](y)
        return F.interpolate(self.decoder(self.encoder(x)), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)


def perturb_batchnorm(model, gen):
    """Non-trivial BN affine parameters and running statistics, so eval-mode BN is really tested."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))


def run(model, x, y, frozen):
    """Three NAdam steps on (x, y); returns logits and grads of step 1, the losses, the state."""
    model.train()
    params = [p for p in model.parameters()]
    if frozen:
        model.encoder.eval()
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        params = list(model.decoder.parameters())
    opt = torch.optim.NAdam(params, lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    losses, logits0, grads0 = [], None, None
    for step in range(3):
        opt.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        if step == 0:
            logits0 = logits.detach().clone()
            grads0 = {k: p.grad.detach().clone() for k, p in model.named_parameters()
                      if p.grad is not None}
        opt.step()
        losses.append(loss.detach().clone())
    return logits0, grads0, torch.stack(losses), {k: v.detach().clone() for k, v in model.state_dict().items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width-mult", type=float, default=0.25)
    ap.add_argument("--last-channel", type=int, default=64)
    ap.add_argument("--decoder", default="32,16,8")
    ap.add_argument("--decoder-kind", choices=("seed", "skip", "skip-bilinear"),
                    default="seed")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--full", action="store_true", help="the default model: width 1, 1280, "
                    "256,128,64, 128x128, batch 4")
    ap.add_argument("--out", default=os.path.join(REPO, "tests/data/golden_small.safetensors"))
    ap.add_argument("--f32-runs", type=int, default=4, help="float32 runs (1 + perturbed) "
                    "whose worst error is stored as float32 PyTorch's own error")
    args = ap.parse_args()
    if args.full:
        args.width_mult, args.last_channel, args.decoder, args.size, args.batch = 1.0, 1280, "256,128,64", 128, 4
    decoder = tuple(int(v) for v in args.decoder.split(","))
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = LesionSegNet(args.width_mult, args.last_channel, decoder, dropout=0.0,
                         decoder_kind=args.decoder_kind)
    perturb_batchnorm(model, gen)
    n, s = args.batch, args.size
    x = torch.randn(n, 3, s, s, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    y = torch.zeros(n, 1, s, s)
    for i in range(n):  # a smooth blob per image, off-centre
        cy, cx, r = s * (0.4 + 0.1 * i), s * (0.55 - 0.1 * i), s * (0.25 + 0.05 * i)
        y[i, 0] = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).float()

    tensors = {"input": x.numpy(), "target": y.numpy()}
    for k, v in model.state_dict().items():
        tensors["init." + k] = v.numpy().astype(np.int64 if v.dtype == torch.int64 else np.float32)
    print(f"{'tensor':58s} {'max|ref|':>10s} {'f32 err':>10s}")
    for mode in ("finetune", "frozen"):
        ref = run(copy.deepcopy(model).double(), x.double(), y.double(), mode == "frozen")
        # float32 PyTorch's own error, taken as the worst of several float32 runs whose input
        # differs by about one ulp: training-mode BatchNorm makes the network chaotic at the
        # rounding level (an activation a few 1e-6 from a ReLU kink flips its mask in one run
        # and not another), and a single float32 run underestimates that spread.
        f32_runs = []
        for k in range(args.f32_runs):
            xk = x.float()
            if k:
                noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(100 + k))
                xk = xk * (1 + 2.0 ** -23 * noise)
            f32_runs.append(run(copy.deepcopy(model).float(), xk, y.float(), mode == "frozen"))
        f32 = f32_runs[0]
        def pick(run_result, part, key=None):
            return run_result[part] if key is None else run_result[part][key]
        named = {f"{mode}.logits": (0, None), f"{mode}.losses": (2, None)}
        for k in ref[1]:
            named[f"{mode}.grad.{k}"] = (1, k)
        for k in ref[3]:
            named[f"{mode}.step3.{k}"] = (3, k)
        for name, (part, key) in named.items():
            r = pick(ref, part, key)
            if r.dtype == torch.int64:
                tensors[name] = r.numpy().astype(np.int64)
                continue
            # float64 reference rounded to F32 for size (< 5 MB): a relative change of at most
            # 6e-8, far below every tolerance in tests/test_golden.c
            tensors[name] = r.numpy().astype(np.float32)
            err = max((pick(f, part, key).double() - r).abs().max().item() if r.numel() else 0.0
                      for f in f32_runs)
            tensors["f32err." + name] = np.array(err, dtype=np.float64)
            if not name.split(".")[1] in ("step3",) or "running" in name or "decoder.0" in name:
                print(f"{name:58s} {r.abs().max().item():10.3g} {err:10.3g}")
    meta = {"format": "oclseg-golden", "version": "1", "width_mult": args.width_mult,
            "last_channel": args.last_channel, "decoder": ",".join(map(str, decoder)),
            "decoder_kind": args.decoder_kind,
            "size": s, "batch": n, "torch": torch.__version__, "dropout": 0,
            "reference": "float64 PyTorch rounded to F32; f32err.* = max |float32 PyTorch - reference|"}
    safetensors_io.save(args.out, tensors, meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
