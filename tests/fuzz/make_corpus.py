#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small valid files
and edge cases. Deterministic; needs only python3 and, for the JPEG seeds, cc with libjpeg
(a small libjpeg program is compiled in a temporary folder). Run from anywhere:
    python3 tests/fuzz/make_corpus.py"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


# ---- safetensors ------------------------------------------------------------------------------
DTYPE_SIZE = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U8": 1, "BOOL": 1}


def st_file(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, bytes) written in order."""
    header, blobs, offset = {}, [], 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    return st_raw(json.dumps(header, separators=(",", ":")).encode(), b"".join(blobs), pad)


def st_raw(header_bytes, data=b"", pad=True, length=None):
    if pad:
        header_bytes += b" " * (-len(header_bytes) % 8)
    n = len(header_bytes) if length is None else length
    return struct.pack("<Q", n) + header_bytes + data


def seq(count, fmt):
    return b"".join(struct.pack("<" + fmt, i + 1) for i in range(count))


def safetensors_seeds():
    t = "safetensors"
    valid = st_file([("a.weight", "F32", [2, 3], seq(6, "f")), ("a.num_batches_tracked", "I64", [], seq(1, "q")),
                     ("b", "F64", [4], seq(4, "d")), ("empty", "F32", [0, 5], b"")],
                    {"format": "oclseg-weights", "architecture": "1;1280;256,128,64"})
    write(t, "valid_mixed.safetensors", valid)
    write(t, "valid_every_dtype.safetensors", st_file(
        [("t_" + d.lower(), d, [1, 3], bytes(range(3 * s))) for d, s in DTYPE_SIZE.items()]))
    write(t, "valid_i32_scalar.safetensors", st_file([("x", "I32", [], seq(1, "i"))]))
    write(t, "empty_header.safetensors", st_raw(b"{}"))
    write(t, "metadata_only.safetensors", st_file([], {"k": "v", "": ""}))
    write(t, "unpadded.safetensors", st_file([("x", "U8", [3], b"abc")], pad=False))
    write(t, "truncated.safetensors", valid[:len(valid) - 5])
    write(t, "short.safetensors", b"\x10\x00\x00")
    write(t, "header_len_zero.safetensors", st_raw(b"{}", length=0))
    write(t, "header_len_past_end.safetensors", st_raw(b"{}", length=1 << 40))
    write(t, "header_len_huge.safetensors", b"\xff" * 8 + b"{}")
    big = lambda shape, offs: st_raw(json.dumps({"x": {"dtype": "F32", "shape": shape,
                                                         "data_offsets": offs}}).encode(), b"\0" * 8)
    write(t, "shape_overflows_int64.safetensors", big([2 ** 62, 2 ** 62, 16], [0, 8]))
    write(t, "shape_overflows_size.safetensors", big([2 ** 31, 2 ** 31, 2 ** 31], [0, 8]))
    write(t, "shape_int64_max.safetensors", big([2 ** 63 - 1, 2], [0, 8]))
    write(t, "shape_zero_times_huge.safetensors", big([0, 2 ** 63 - 1], [0, 0]))
    write(t, "shape_negative.safetensors", big([-1, -8], [0, 8]))
    write(t, "shape_too_big_for_int64.safetensors", big([2 ** 64 + 2], [0, 8]))
    write(t, "shape_float.safetensors", big([2.0], [0, 8]))
    write(t, "nine_dims.safetensors", big([1] * 9, [0, 4]))
    write(t, "offsets_negative.safetensors", big([2], [-8, 0]))
    write(t, "offsets_reversed.safetensors", big([2], [8, 0]))
    write(t, "offsets_past_end.safetensors", big([2], [0, 2 ** 63 - 1]))
    write(t, "offsets_three.safetensors", big([2], [0, 8, 8]))
    write(t, "size_mismatch.safetensors", big([3], [0, 8]))
    write(t, "overlap.safetensors", st_raw(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                           b'"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8))
    write(t, "gap.safetensors", st_raw(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8))
    write(t, "trailing_bytes.safetensors", st_raw(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0" * 8))
    write(t, "unknown_dtype.safetensors", st_raw(b'{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', b"\0"))
    write(t, "duplicate_key.safetensors", st_raw(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"\0\0"))
    write(t, "not_object.safetensors", st_raw(b'[1,2,3]'))
    write(t, "entry_not_object.safetensors", st_raw(b'{"a":7}'))
    write(t, "metadata_not_string.safetensors", st_raw(b'{"__metadata__":{"a":1}}'))
    write(t, "metadata_not_object.safetensors", st_raw(b'{"__metadata__":"x"}'))
    write(t, "bad_json.safetensors", st_raw(b'{"a":{"dtype":"U8",'))
    write(t, "nul_in_name.safetensors", st_raw(b'{"a\\u0000b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"))


# ---- PNG --------------------------------------------------------------------------------------
def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, color_type, depth, rows=None, extra=b"", interlace=0, ihdr=None):
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    bits = channels * depth
    rowbytes = (width * bits + 7) // 8
    if rows is None:
        raw = b""
        for y in range(height):
            raw += b"\0" + bytes(((x * 37 + y * 91) & 0xff) for x in range(rowbytes))
        if interlace:  # all seven Adam7 passes with the same bytes (pass sizes computed)
            raw = b""
            passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
            for x0, y0, dx, dy in passes:
                pw, ph = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
                if pw <= 0 or ph <= 0:
                    continue
                for y in range(ph):
                    raw += b"\0" + bytes(((x * 13 + y) & 0xff) for x in range((pw * bits + 7) // 8))
        rows = zlib.compress(raw, 9)
    if ihdr is None:
        ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, interlace)
    plte = b""
    if color_type == 3:
        plte = png_chunk(b"PLTE", bytes((i * 7) & 0xff for i in range(3 * (1 << depth))))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + plte + extra +
            png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b""))


def png_seeds():
    t = "image"
    for ct, depths in {0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]}.items():
        for d in depths:
            write(t, "png_ct%d_%dbit.png" % (ct, d), png(5, 3, ct, d))
    write(t, "png_ct2_interlaced.png", png(9, 9, 2, 8, interlace=1))
    write(t, "png_palette_trns.png", png(4, 2, 3, 8, extra=png_chunk(b"tRNS", b"\x00\x80")))
    write(t, "png_gray_trns.png", png(4, 2, 0, 8, extra=png_chunk(b"tRNS", b"\x00\x07")))
    write(t, "png_gray2_trns.png", png(4, 2, 0, 2, extra=png_chunk(b"tRNS", b"\x00\x01")))
    write(t, "png_rgb_trns.png", png(4, 2, 2, 8, extra=png_chunk(b"tRNS", b"\x00\x01\x00\x02\x00\x03")))
    write(t, "png_palette4_trns.png", png(4, 2, 3, 4, extra=png_chunk(b"tRNS", b"\x00\x80\xff")))
    write(t, "png_gray16_trns.png", png(4, 2, 0, 16, extra=png_chunk(b"tRNS", b"\x01\x07")))
    write(t, "png_1x1.png", png(1, 1, 0, 8))
    good = png(6, 4, 2, 8)
    write(t, "png_truncated.png", good[:len(good) - 20])
    write(t, "png_bad_crc.png", good[:40] + bytes([good[40] ^ 0xff]) + good[41:])
    write(t, "png_100000x100000.png", png(1, 1, 0, 8, ihdr=struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)))
    write(t, "png_30000x30000.png", png(1, 1, 0, 8, ihdr=struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)))
    write(t, "png_0x5.png", png(1, 1, 0, 8, ihdr=struct.pack(">IIBBBBB", 0, 5, 8, 0, 0, 0, 0)))
    write(t, "png_missing_idat_data.png", png(8, 8, 2, 8, rows=zlib.compress(b"\0" * 10)))
    write(t, "png_signature_only.png", b"\x89PNG\r\n\x1a\n")
    write(t, "not_an_image.txt", "neither PNG nor JPEG")


# ---- JPEG ---------------------------------------------------------------------------------------
JPEG_WRITER = r"""
/* Writes small JPEG seeds with libjpeg: argv[1] is the output folder. */
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
static void write_jpeg(const char *dir, const char *name, int w, int h, int comps,
                       J_COLOR_SPACE in, J_COLOR_SPACE out, int progressive, int restart,
                       int arith, int subsample) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) exit(1);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = w; c.image_height = h; c.input_components = comps; c.in_color_space = in;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, out);
    jpeg_set_quality(&c, 60, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    c.restart_in_rows = restart;
    c.arith_code = arith;
    if (!subsample) for (int i = 0; i < c.num_components; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    unsigned char row[64 * 4];
    while (c.next_scanline < c.image_height) {
        for (int i = 0; i < w * comps; i++) row[i] = (unsigned char)(i * 29 + c.next_scanline * 53);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}
int main(int argc, char **argv) {
    const char *d = argv[1];
    (void)argc;
    write_jpeg(d, "jpeg_gray.jpg", 9, 7, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, 0, 0, 1);
    write_jpeg(d, "jpeg_rgb_420.jpg", 17, 11, 3, JCS_RGB, JCS_YCbCr, 0, 0, 0, 1);
    write_jpeg(d, "jpeg_rgb_444.jpg", 8, 8, 3, JCS_RGB, JCS_YCbCr, 0, 0, 0, 0);
    write_jpeg(d, "jpeg_rgb_colorspace.jpg", 8, 8, 3, JCS_RGB, JCS_RGB, 0, 0, 0, 0);
    write_jpeg(d, "jpeg_cmyk.jpg", 8, 8, 4, JCS_CMYK, JCS_CMYK, 0, 0, 0, 0);
    write_jpeg(d, "jpeg_ycck.jpg", 8, 8, 4, JCS_CMYK, JCS_YCCK, 0, 0, 0, 0);
    write_jpeg(d, "jpeg_progressive.jpg", 16, 16, 3, JCS_RGB, JCS_YCbCr, 1, 0, 0, 1);
    write_jpeg(d, "jpeg_restart.jpg", 16, 24, 3, JCS_RGB, JCS_YCbCr, 0, 1, 0, 1);
    write_jpeg(d, "jpeg_arithmetic.jpg", 8, 8, 3, JCS_RGB, JCS_YCbCr, 0, 0, 1, 1);
    write_jpeg(d, "jpeg_1x1.jpg", 1, 1, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, 0, 0, 1);
    return 0;
}
"""


def set_jpeg_size(data, width, height):
    """Rewrites the dimensions in the first SOFn marker."""
    i = 2
    while i + 4 <= len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xc0 <= marker <= 0xcf and marker not in (0xc4, 0xc8, 0xcc):
            return data[:i + 5] + struct.pack(">HH", height, width) + data[i + 9:]
        i += 2 + length
    raise ValueError("no SOF marker")


def jpeg_seeds():
    t = "image"
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "w.c")
        with open(src, "w") as f:
            f.write(JPEG_WRITER)
        exe = os.path.join(tmp, "w")
        subprocess.check_call([os.environ.get("CC", "cc"), "-O1", "-o", exe, src, "-ljpeg"])
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        subprocess.check_call([exe, out])
        for name in sorted(os.listdir(out)):
            with open(os.path.join(out, name), "rb") as f:
                write(t, name, f.read())
        with open(os.path.join(out, "jpeg_rgb_420.jpg"), "rb") as f:
            rgb = f.read()
        with open(os.path.join(out, "jpeg_progressive.jpg"), "rb") as f:
            prog = f.read()
    finally:
        shutil.rmtree(tmp)
    write(t, "jpeg_truncated.jpg", rgb[:len(rgb) * 2 // 3])
    write(t, "jpeg_progressive_truncated.jpg", prog[:len(prog) * 2 // 3])
    write(t, "jpeg_header_only.jpg", rgb[:rgb.index(b"\xff\xda")])
    write(t, "jpeg_65500x65500.jpg", set_jpeg_size(rgb, 65500, 65500))  # JPEG sides are 16-bit
    write(t, "jpeg_20000x20000.jpg", set_jpeg_size(rgb, 20000, 20000))  # > the pixel limit
    write(t, "jpeg_14000x14000.jpg", set_jpeg_size(rgb, 14000, 14000))  # too many for its bytes
    # 1500x1500 needs 1099 bytes by the file-size guard: a comment pads the truncated file past it
    padded = rgb[:2] + b"\xff\xfe" + struct.pack(">H", 1202) + b"x" * 1200 + rgb[2:]
    write(t, "jpeg_1500x1500_truncated.jpg", set_jpeg_size(padded, 1500, 1500))
    write(t, "jpeg_0x8.jpg", set_jpeg_size(rgb, 0, 8))
    write(t, "jpeg_soi_only.jpg", b"\xff\xd8\xff")


# ---- scan ---------------------------------------------------------------------------------------
def scan_seeds():
    t = "scan"
    write(t, "isic_pairs.txt", "IISIC_0000000.jpg\nMISIC_0000000_Segmentation.png\n"
                               "IISIC_0000001.jpg\nMISIC_0000001_Segmentation.png\n")
    write(t, "unmatched.txt", "IISIC_0000000.jpg\nMISIC_0000001_Segmentation.png\nIISIC_2.png\n")
    write(t, "duplicate_ids.txt", "Ia.jpg\nIa.png\nMa_Segmentation.png\nMa_segmentation.png\n")
    write(t, "odd_names.txt", "I .jpg\nM _Segmentation.png\nI..jpg\nM._Segmentation.png\n"
                              "I\xc3\xa9\xe2\x98\x83.JPG\nM\xc3\xa9\xe2\x98\x83_SEGMENTATION.PNG\n"
                              "Ino_extension\nI.hidden.jpg\nIa%s%n.jpg\nMa%s%n_Segmentation.png\n"
                              "I_Segmentation.png\nM_Segmentation.png\nIx_superpixels.png\n")
    write(t, "dirs_and_links.txt", "Dsub.jpg\nLlink.jpg\nMlink_Segmentation.png\nMsub_Segmentation.png\n"
                                   "TX_Training_Data\nFY_Test_Data\nTZ_Test_Data\nTZ_Test_GroundTruth\n")
    write(t, "custom_suffix.txt", "S_m.png\nIa.jpg\nMa_m.png\nIb.jpeg\nMb_M.PNG\n")
    write(t, "suffix_is_extension.txt", "S.png\nIa.png\nMa.png\n")
    write(t, "long_name.txt", "I" + "x" * 196 + ".jpg\nM" + "x" * 196 + "_Segmentation.png\n")
    write(t, "empty.txt", "")


# ---- checkpoint metadata ------------------------------------------------------------------------
def config_meta(**over):
    meta = {"format": "oclseg-checkpoint", "version": "1", "trainer_step": "30", "optimizer_step": "30",
            "mu_product": "0.0123456789", "epoch": "2", "step_in_epoch": "4", "best_jaccard": "0.61",
            "best_epoch": "1", "epoch_loss_sum": "1.25", "epoch_loss_count": "4",
            "frozen_encoder": "0", "optimizer": "0",
            "config": json.dumps({"batch": 16, "epochs": 25, "lr": 0.001, "size": 128})}
    meta.update(over)
    return json.dumps({k: v for k, v in meta.items() if v is not None}, indent=1)


def config_seeds():
    t = "config"
    write(t, "valid.json", config_meta())
    write(t, "valid_first_run.json", config_meta(trainer_step="0", optimizer_step="0", epoch="0",
                                                  step_in_epoch="0", best_jaccard="-1", frozen_encoder="1"))
    write(t, "no_config.json", config_meta(config=None))
    write(t, "missing_epoch.json", config_meta(epoch=None))
    write(t, "wrong_format.json", config_meta(format="oclseg-weights"))
    write(t, "not_a_number.json", config_meta(trainer_step="12abc"))
    write(t, "hex_and_exponent.json", config_meta(trainer_step="0x10", optimizer_step="1e3"))
    write(t, "negative.json", config_meta(epoch="-1"))
    write(t, "fraction.json", config_meta(step_in_epoch="2.5"))
    write(t, "number_not_string.json", '{"format":"oclseg-checkpoint","epoch":3}')
    write(t, "not_object.json", '["format"]')
    write(t, "empty.json", "{}")
    # the recorded configuration (oclseg_fit_options_parse): every option, and bad keys
    full = {"augment": True, "augmentation": {"brightness": 0.1, "contrast": 0.0, "crop_min": 0.0,
            "dihedral": True, "flips": True, "hue": 0.02, "rotate_deg": 20.0, "saturation": 0.0,
            "scale": 0.1, "translate": 0.05}, "balance": False, "batch": 2, "check_numerics": False,
            "clip_norm": 0.0, "data": "d", "data_health": {"train": "train 6 pairs"},
            "decoupled_wd": True, "device": {"name": "cpu"}, "device_option": None, "dropout": 0.5,
            "epochs": 3, "eval_every": 1, "freeze_encoder": False, "images": None, "init": None,
            "loss": "bce+dice", "lr": 0.002, "mask_suffix": None, "mask_threshold": None,
            "masks": None, "max_steps": 0, "model": {"width_mult": 1.0}, "optimizer": "nadam",
            "patience": 2, "predict": {"fill_holes": True, "largest_component": True,
            "tta_flips": True}, "pretrained": None, "schedule": "onecycle", "seed": 3,
            "shuffle": True, "size": 32, "skip_bad": False, "sync_bn": False, "test_images": 4,
            "threads": 0, "train_images": 6, "val_fraction": 0.25, "val_images": 2,
            "versions": {"oclseg": "x"}, "warmup": 0.05, "weight_decay": 0.0001}
    write(t, "full_config.json", config_meta(config=json.dumps(full, indent=2)))
    write(t, "config_unknown_key.json", config_meta(config=json.dumps(dict(full, batchsize=2))))
    write(t, "config_bad_type.json", config_meta(config=json.dumps(dict(full, size="32"))))
    write(t, "config_bad_enum.json", config_meta(config=json.dumps(dict(full, loss="focal"))))
    write(t, "config_size_33.json", config_meta(config=json.dumps(dict(full, size=33))))


# ---- bench results (oclseg bench --json, tools/bench_pytorch.py peers) -------------------------
def bench_run(**over):
    run = {"device": "pthread-skylake-avx512-AMD EPYC", "vendor": "AuthenticAMD",
           "platform": "Portable Computing Language", "driver": "3.1+debian", "clblast": "1.5.3",
           "build": "gcc 12.2.0 release", "batch": 16, "size": 128, "frozen_encoder": False,
           "steps": 5, "step_ms": 1781.58, "step_sync_ms": 1831.97, "forward_ms": 549.03,
           "backward_ms": 1274.92, "optimizer_ms": 8.10, "images_per_s": 8.98,
           "gflop_per_step": 23.87, "gflops": 13.40, "sgemm_1024_gflops": 30.45,
           "peak_device_bytes": 763067156,
           "kernels": [{"name": "CLBlast sgemm", "ms": 1210.08},
                       {"name": "depthwise_dw_partial", "ms": 103.55}]}
    run.update(over)
    return {k: v for k, v in run.items() if v is not None}


def bench_result_seeds():
    t = "bench_result"
    peer = {"framework": "pytorch 2.11.0+cu130", "device": "cuda", "threads": 16, "batch": 16,
            "size": 128, "step_ms": 5.05, "images_per_s": 3170.8}
    write(t, "oclseg_run.json", json.dumps([bench_run()], indent=1))
    write(t, "single_object.json", json.dumps(bench_run(frozen_encoder=True)))
    write(t, "two_runs.json", json.dumps([bench_run(), bench_run(device="llvmpipe (LLVM 15.0.6, 256 bits)",
                                                                  platform="rusticl")]))
    write(t, "pytorch_peer.json", json.dumps(peer))
    write(t, "peer_with_frozen.json", json.dumps(dict(peer, frozen_encoder=True)))
    write(t, "label_and_odd_strings.json",
          json.dumps([bench_run(label="x\" 1\nEOD\nsystem(\"true\")\n$d << EOD\n\"y",
                                device="\u00e9\u4e2d" * 20, kernels=[{"name": "k" * 300, "ms": -1}])]))
    write(t, "huge_numbers.json", json.dumps([bench_run(step_ms=1e308, batch=2 ** 62, size=-5)]))
    write(t, "missing_step_ms.json", json.dumps([bench_run(step_ms=None)]))
    write(t, "step_ms_string.json", json.dumps([bench_run(step_ms="12")]))
    write(t, "entry_not_object.json", "[1, 2]")
    write(t, "empty_array.json", "[]")
    write(t, "not_json.json", "step_ms: 12\n")
    write(t, "truncated.json", json.dumps([bench_run()])[:200])
    write(t, "kernels_not_list.json", json.dumps([bench_run(kernels={"name": "x"})]))


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    safetensors_seeds()
    png_seeds()
    jpeg_seeds()
    scan_seeds()
    config_seeds()
    bench_result_seeds()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    print("wrote %d files, %d bytes under %s" % (sum(len(fs) for _, _, fs in os.walk(CORPUS)), total, CORPUS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
