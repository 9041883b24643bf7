#!/usr/bin/python3
"""Exports torchvision's mobilenet_v2 state dict (keys features.*, classifier.*) as safetensors for
`oclseg train --pretrained FILE`.

    python3 tools/export_torchvision.py mobilenet_v2_imagenet.safetensors   # ImageNet weights
    python3 tools/export_torchvision.py --random untrained.safetensors       # offline, for tests

The ImageNet weights (weights="IMAGENET1K_V1") are downloaded by torchvision on first use, so that
needs internet access; --random needs nothing but torchvision.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402  (tools/safetensors_io.py)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output .safetensors path")
    ap.add_argument("--random", action="store_true", help="an untrained model (no download)")
    args = ap.parse_args()
    if args.random:
        torch.manual_seed(0)
        model = torchvision.models.mobilenet_v2()
    else:
        model = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")
    tensors = {}
    for key, value in model.state_dict().items():
        arr = value.detach().cpu().numpy()
        tensors[key] = arr.astype(np.int64 if value.dtype == torch.int64 else np.float32)
    meta = {"format": "torchvision-mobilenet_v2", "weights": "random" if args.random else "IMAGENET1K_V1",
            "torchvision": torchvision.__version__}
    safetensors_io.save(args.out, tensors, meta)
    print(f"wrote {len(tensors)} tensors to {args.out}")


if __name__ == "__main__":
    main()
