#!/usr/bin/env python3
"""The OpenCV peer of `oclseg predict` (the comparison of issue 23 and tools/bench_predict_vs_opencv.sh):
the same job done with OpenCV at its defaults, on the ONNX file of `oclseg export --relu6 relu
--sigmoid` (OpenCV <= 4.6 cannot load ONNX Clip with min/max inputs).

For each image: cv2.imread (BGR), cv2.resize to the model size (INTER_AREA, OpenCV's
antialiased shrink; oclseg uses PIL's antialiased bilinear, so a few boundary pixels of the
masks may differ), ImageNet normalisation from the model's metadata_props, cv2.dnn (backend
OpenCV, target CPU), cv2.resize of the probabilities back to the original size (INTER_LINEAR:
half-pixel centres, as oclseg), mask = prob > threshold (0/255), the overlay as oclseg draws it
(lesion tinted green, contour = lesion pixels within 3 px (1 px for images at most 600 wide) of
background or the border), cv2.imwrite of <id>_mask.png and <id>_overlay.png.

OpenCV's defaults, as used here: cv2.setNumThreads is left alone (its parallel framework, e.g.
TBB, uses every CPU inside resize and the DNN layers); imread/imwrite run on the calling thread;
imwrite's PNG default is zlib level 1 (Z_BEST_SPEED), strategy Z_RLE, filter Sub. Images are
processed one after another, as a plain script would. --timing prints ms per image per stage.

usage: /usr/bin/python3 tools/predict_opencv.py --onnx MODEL.onnx --out DIR [--threshold T]
           [--no-overlay] [--timing] IMAGE|DIR...
Exit status: 0, 1 when an image could not be read, 77 without cv2/numpy."""
import argparse
import os
import sys
import time

try:
    import cv2
    import numpy as np
except ImportError as e:
    print(f"SKIP: {e.name} is not installed for {sys.executable}")
    sys.exit(77)


def metadata(path):
    """mean, std, input size and threshold from the export's metadata_props (python3-onnx), else
    the ImageNet values, 128 and 0.5."""
    meta = {}
    try:
        import onnx
        model = onnx.load(path, load_external_data=False)
        meta = {p.key: p.value for p in model.metadata_props}
    except ImportError:
        pass
    mean = [float(v) for v in meta.get("oclseg.mean", "0.485,0.456,0.406").split(",")]
    std = [float(v) for v in meta.get("oclseg.std", "0.229,0.224,0.225").split(",")]
    size = int(meta.get("oclseg.input_size", "128"))
    thr = float(meta.get("oclseg.threshold", "0.5").split()[0])  # "0.5 (lesion where ...)"
    post = meta.get("oclseg.postprocess", "")
    if any(k in post for k in ("tta=flips", "largest_component=1", "fill_holes=1")):
        print(f"predict_opencv: note: {path} asks for '{post}'; this peer does none of it")
    return np.array(mean, np.float32), np.array(std, np.float32), size, thr


def list_images(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, f) for f in os.listdir(p)
                          if f.lower().endswith((".jpg", ".jpeg", ".png"))
                          and not f.endswith(("_mask.png", "_overlay.png")))
        else:
            out.append(p)
    return out


def overlay(bgr, mask):
    """oclseg_overlay: tint 3/4 image + 1/4 green inside, green contour of `thick` pixels."""
    h, w = mask.shape
    thick = 3 if w > 600 else 1
    inside = mask != 0
    k = np.ones((2 * thick + 1, 2 * thick + 1), np.uint8)
    core = cv2.erode(mask, k, borderType=cv2.BORDER_CONSTANT, borderValue=0) != 0
    edge = inside & ~core
    out = bgr.copy()
    tint = core
    px = bgr[tint].astype(np.uint16)
    px = (px * 3) // 4
    px[:, 1] = (bgr[tint][:, 1].astype(np.uint16) * 3 + 255) // 4  # BGR: green is channel 1
    out[tint] = px.astype(np.uint8)
    out[edge] = (0, 255, 0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threshold", type=float)
    ap.add_argument("--no-overlay", action="store_true")
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()
    mean, std, size, thr = metadata(args.onnx)
    if args.threshold is not None:
        thr = args.threshold
    net = cv2.dnn.readNetFromONNX(args.onnx)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    os.makedirs(args.out, exist_ok=True)
    stages = ["decode", "resize", "inference", "upsample+mask", "overlay", "PNG encode+write"]
    spent = dict.fromkeys(stages, 0.0)
    done = failed = 0
    t_start = time.perf_counter()
    for path in list_images(args.images):
        t0 = time.perf_counter()
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        t1 = time.perf_counter()
        if bgr is None:
            print(f"predict_opencv: cannot read {path}", file=sys.stderr)
            failed += 1
            continue
        h, w = bgr.shape[:2]
        small = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32) / np.float32(255.0)
        x = np.ascontiguousarray(((rgb - mean) / std).transpose(2, 0, 1)[None])
        t2 = time.perf_counter()
        net.setInput(x)
        prob = net.forward()[0, 0]
        t3 = time.perf_counter()
        full = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        mask = np.where(full > thr, np.uint8(255), np.uint8(0))
        t4 = time.perf_counter()
        over = None if args.no_overlay else overlay(bgr, mask)
        t5 = time.perf_counter()
        ident = os.path.splitext(os.path.basename(path))[0]
        ok = cv2.imwrite(os.path.join(args.out, ident + "_mask.png"), mask)
        if over is not None:
            ok = cv2.imwrite(os.path.join(args.out, ident + "_overlay.png"), over) and ok
        t6 = time.perf_counter()
        if not ok:
            print(f"predict_opencv: cannot write the outputs of {path}", file=sys.stderr)
            return 1
        for name, dt in zip(stages, [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5]):
            spent[name] += dt
        done += 1
    wall = time.perf_counter() - t_start
    print(f"{done} images predicted into {args.out}, {failed} failed")
    if args.timing:
        n = max(done, 1)
        print(f"timing: {done} images, OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads: "
              f"{1e3 * wall / n:.1f} ms per image (wall)")
        for name in stages:
            print(f"  {name:<18} {1e3 * spent[name] / n:8.1f} ms per image")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
