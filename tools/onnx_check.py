#!/usr/bin/env python3
"""Checks an `oclseg export` against independent runtimes: exports the weights twice (ReLU6 as
Clip, the default, and as Relu - Relu for OpenCV <= 4.6), runs the ONNX checker (full check) and
strict shape inference on both, checks that the two graphs differ only in the ReLU6 form (same
initializers, same nodes otherwise), then runs OpenCV DNN (Relu form) and a float64 NumPy
evaluator (Clip form) on images and compares their probabilities with `oclseg predict --probs`
(and, with --torch, with PyTorch's eval forward of tools/make_golden.py's LesionSegNet on the
same weights).

usage: /usr/bin/python3 tools/onnx_check.py --oclseg BIN --weights W --size S --work DIR
           [--max-prob-diff 1e-4] [--min-mask-agree 0.999] [--torch] [--json OUT] IMAGE|DIR...
Exit status: 0 pass, 1 a check failed, 77 python3-onnx or python3-opencv missing (skip)."""
import argparse
import json
import os
import subprocess
import sys

try:
    import cv2
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError as e:  # a skip, not a failure: CI installs them (tools/install-deps.sh)
    print(f"SKIP: {e.name} is not installed for {sys.executable} "
          "(Debian: apt-get install python3-onnx python3-opencv python3-numpy)")
    sys.exit(77)

TOOLS = os.path.dirname(os.path.abspath(__file__))


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def export(args, path, relu6):
    cmd = [args.oclseg, "export", "--weights", args.weights, "--onnx", path, "--size",
           str(args.size), "--sigmoid", "--relu6", relu6, "--batch", "dynamic"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    out = inferred.graph.output[0].type.tensor_type.shape.dim
    shape = [d.dim_param or d.dim_value for d in out]
    if shape != ["N", 1, args.size, args.size]:
        fail(f"{path}: output shape {shape}, expected [N, 1, {args.size}, {args.size}]")
    return model


def check_same_graph(clip, relu):
    """The two exports hold the same weights and the same nodes but for the ReLU6 form."""
    a = {t.name: numpy_helper.to_array(t) for t in clip.graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in relu.graph.initializer}
    a.pop("relu6.min", None)
    if a.keys() != b.keys() or any(not np.array_equal(a[k], b[k]) for k in a):
        fail("the Clip and Relu exports hold different initializers")
    ops_a = []
    for n in clip.graph.node:
        ops_a += ["Relu", "Sub", "Relu", "Sub"] if n.op_type == "Clip" else [n.op_type]
    ops_b = [n.op_type for n in relu.graph.node]
    if ops_a != ops_b:
        fail("the Clip and Relu exports differ in more than the ReLU6 form")
    return sum(n.op_type == "Clip" for n in clip.graph.node)


def run_numpy(model, x):
    """A float64 NumPy evaluator for the ops oclseg exports (an outside reference for the default
    Clip form, which OpenCV 4.6 cannot load): Conv, ConvTranspose, Clip, Relu, Add, Sub, Resize
    (linear, half_pixel), Concat (the skip decoder's), Sigmoid."""
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    env[model.graph.input[0].name] = x.astype(np.float64)

    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return list(a.ints) if a.ints else (a.s.decode() if a.s else a.i)
        return default

    def taps(xp, k, stride, ho, wo):
        for i in range(k):
            for j in range(k):
                yield i, j, xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]

    def conv(node, x, w, b):
        stride, pad, group = attr(node, "strides")[0], attr(node, "pads")[0], attr(node, "group", 1)
        k = w.shape[2]
        ho = (x.shape[2] + 2 * pad - k) // stride + 1
        wo = (x.shape[3] + 2 * pad - k) // stride + 1
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        y = np.zeros((x.shape[0], w.shape[0], ho, wo))
        for i, j, t in taps(xp, k, stride, ho, wo):
            if group == 1:
                y += np.tensordot(t, w[:, :, i, j], axes=([1], [1])).transpose(0, 3, 1, 2)
            else:  # depthwise: group == channels
                y += t * w[None, :, 0, i, j, None, None]
        return y + b[None, :, None, None]

    def conv_transpose(node, x, w, b):
        stride, pad, k = attr(node, "strides")[0], attr(node, "pads")[0], w.shape[2]
        n, _, h, wd = x.shape
        full = np.zeros((n, w.shape[1], (h - 1) * stride + k, (wd - 1) * stride + k))
        for i in range(k):
            for j in range(k):
                full[:, :, i:i + stride * h:stride, j:j + stride * wd:stride] += np.tensordot(
                    x, w[:, :, i, j], axes=([1], [0])).transpose(0, 3, 1, 2)
        ho, wo = (h - 1) * stride - 2 * pad + k, (wd - 1) * stride - 2 * pad + k
        return full[:, :, pad:pad + ho, pad:pad + wo] + b[None, :, None, None]

    def resize(node, x, scales):
        assert attr(node, "mode") == "linear"
        assert attr(node, "coordinate_transformation_mode") == "half_pixel"
        for axis in (2, 3):
            n_in = x.shape[axis]
            n_out = int(np.floor(n_in * scales[axis]))
            src = np.clip((np.arange(n_out) + 0.5) / scales[axis] - 0.5, 0, n_in - 1)
            i0 = np.floor(src).astype(int)
            i1 = np.minimum(i0 + 1, n_in - 1)
            lam = (src - i0).reshape([-1 if a == axis else 1 for a in range(4)])
            x = np.take(x, i0, axis=axis) * (1 - lam) + np.take(x, i1, axis=axis) * lam
        return x

    for node in model.graph.node:
        a = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Conv":
            y = conv(node, *a)
        elif op == "ConvTranspose":
            y = conv_transpose(node, *a)
        elif op == "Clip":
            y = np.minimum(np.maximum(a[0], a[1]), a[2])
        elif op == "Relu":
            y = np.maximum(a[0], 0)
        elif op == "Add":
            y = a[0] + a[1]
        elif op == "Sub":
            y = a[0] - a[1]
        elif op == "Resize":
            y = resize(node, a[0], a[2])
        elif op == "Concat":
            y = np.concatenate(a, axis=attr(node, "axis"))
        elif op == "Sigmoid":
            y = 1 / (1 + np.exp(-a[0]))
        else:
            fail(f"run_numpy: no evaluator for {op}")
        env[node.output[0]] = y
    return env[model.graph.output[0].name]


def list_images(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, f) for f in os.listdir(p)
                          if f.lower().endswith((".jpg", ".jpeg", ".png")))
        else:
            out.append(p)
    return out


def prepare_inputs(images, size, folder):
    """Each image resized to size x size (INTER_AREA) as PNG: oclseg's own resize is then the
    identity, so both runtimes see the same pixels."""
    os.makedirs(folder, exist_ok=True)
    ids = []
    for i, path in enumerate(images):
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            fail(f"cannot read {path}")
        if bgr.shape[:2] != (size, size):
            bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
        ident = f"img{i:03d}"
        cv2.imwrite(os.path.join(folder, ident + ".png"), bgr)
        ids.append(ident)
    return ids


def normalise(png, mean, std):
    rgb = cv2.cvtColor(cv2.imread(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    x = rgb.astype(np.float32) / np.float32(255.0)
    x = (x - mean) / std  # float32 throughout, as oclseg's lookup table computes it
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def torch_probs(weights, batch):
    import torch
    sys.path.insert(0, TOOLS)
    import make_golden
    import safetensors_io
    net = make_golden.LesionSegNet()
    state = {k: torch.from_numpy(np.array(v)) for k, v in safetensors_io.load(weights)[0].items()}
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        return torch.sigmoid(net(torch.from_numpy(batch))).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oclseg", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--work", required=True)
    ap.add_argument("--max-prob-diff", type=float, default=1e-4)
    ap.add_argument("--min-mask-agree", type=float, default=0.999)
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    clip = export(args, os.path.join(args.work, "model.onnx"), "clip")
    relu_path = os.path.join(args.work, "model_relu.onnx")
    relu = export(args, relu_path, "relu")
    clips = check_same_graph(clip, relu)
    meta = {p.key: p.value for p in clip.metadata_props}
    mean = np.array([float(v) for v in meta["oclseg.mean"].split(",")], np.float32)
    std = np.array([float(v) for v in meta["oclseg.std"].split(",")], np.float32)
    if int(meta["oclseg.input_size"]) != args.size:
        fail(f"metadata input_size {meta['oclseg.input_size']} != {args.size}")

    images = list_images(args.images)
    in_dir, pred_dir = os.path.join(args.work, "in"), os.path.join(args.work, "pred")
    ids = prepare_inputs(images, args.size, in_dir)
    subprocess.run([args.oclseg, "predict", "--weights", args.weights, "--size", str(args.size),
                    "--tta", "none", "--probs", "--out", pred_dir, in_dir],  # the plain network
                   check=True, stdout=subprocess.DEVNULL)
    batch = np.concatenate([normalise(os.path.join(in_dir, i + ".png"), mean, std) for i in ids])
    ours = np.stack([np.load(os.path.join(pred_dir, i + "_prob.npy")) for i in ids])[:, None]

    net = cv2.dnn.readNetFromONNX(relu_path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.setInput(batch)
    cv = net.forward()
    res = {"images": len(ids), "size": args.size, "relu6_clip_nodes": clips,
           "opencv_version": cv2.__version__, "onnx_version": onnx.__version__}

    def compare(name, a, b):
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        agree = float(np.mean((a > 0.5) == (b > 0.5)))
        res[name] = {"max_abs_prob_diff": float(diff.max()), "mean_abs_prob_diff": float(diff.mean()),
                     "mask_agreement": agree, "lesion_fraction": float(np.mean(b > 0.5))}
        print(f"{name}: {len(ids)} images {args.size}x{args.size}: max |dp| {diff.max():.3g}, "
              f"mean |dp| {diff.mean():.3g}, masks agree on {100 * agree:.4f}% of pixels "
              f"(lesion {100 * np.mean(b > 0.5):.1f}%)")
        return diff.max(), agree

    worst, agree = compare("opencv_vs_oclseg", cv, ours)
    ref = run_numpy(clip, batch)  # the default (Clip) export, evaluated in float64
    ref_worst, ref_agree = compare("numpy_clip_graph_vs_oclseg", ref, ours)
    worst, agree = max(worst, ref_worst), min(agree, ref_agree)
    if args.torch:
        tp = torch_probs(args.weights, batch)
        compare("pytorch_vs_oclseg", tp, ours)
        compare("pytorch_vs_opencv", tp, cv)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    if not (worst <= args.max_prob_diff):
        fail(f"ONNX and oclseg probabilities differ by {worst:.3g} > {args.max_prob_diff}")
    if agree < args.min_mask_agree:
        fail(f"masks agree on {100 * agree:.4f}% < {100 * args.min_mask_agree:.2f}%")
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
