/* `oclseg export`: the trained network as an ONNX file (inference graph, opset 13). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "oclseg/export.h"
#include "oclseg/infer.h"

static void usage(FILE *out) {
    fprintf(out,
"usage: oclseg export --weights F --onnx OUT.onnx [--size 128] [--batch 1|dynamic]\n"
"                     [--sigmoid] [--relu6 clip|relu] [--device D] [--force-size]\n\n"
"Writes the eval-mode network as ONNX (opset %d): BatchNorm folded into the convolutions,\n"
"ReLU6 as Clip, transposed convolutions, bilinear Resize (half_pixel), dropout removed.\n"
"  --weights F      a full model state dict (weights.safetensors / best.safetensors)\n"
"  --onnx OUT       the file to write (atomically: never left half-written)\n"
"  --size S         input height = width, a multiple of 32 (default: the size trained at,\n"
"                   the weights' metadata input_size, else 128)\n"
"  --force-size     allow a --size other than the weights' recorded input_size\n"
"  --batch B        1 (default) or 'dynamic' (a symbolic batch dimension N)\n"
"  --sigmoid        output 'prob' (probabilities) instead of 'logits'\n"
"  --relu6 clip     ReLU6 as Clip(x, 0, 6) with min/max inputs (default; ONNX Runtime,\n"
"                   OpenCV >= 4.7, TensorRT)\n"
"  --relu6 relu     ReLU6 as Relu(x) - Relu(x - 6): for runtimes whose Clip takes only the\n"
"                   old attributes (OpenCV <= 4.6, Debian 12); equal to Clip for x <= 12\n"
"  --device D       OpenCL device used to load the weights (see oclseg devices)\n"
"Input 'input' is (N,3,S,S) float32 RGB normalised with the ImageNet mean/std stored in the\n"
"model's metadata_props (oclseg.mean, oclseg.std, oclseg.input_size, oclseg.threshold (the\n"
"weights' recorded threshold, else 0.5), oclseg.postprocess (their tta, largest_component,\n"
"fill_holes, if recorded),\n"
"oclseg.training_config_fnv1a64: hash of the config.json beside the weights, if any).\n",
            OCLSEG_ONNX_OPSET);
}

int cmd_export(int argc, char **argv) {
    const char *weights = NULL, *onnx = NULL, *device = NULL, *batch = "1", *relu6 = "clip";
    int size = 0, sigmoid = 0, force_size = 0;
    static const struct option opts[] = {{"weights", required_argument, 0, 'w'},
                                         {"onnx", required_argument, 0, 'o'},
                                         {"size", required_argument, 0, 's'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"sigmoid", no_argument, 0, 'g'},
                                         {"relu6", required_argument, 0, 'r'},
                                         {"device", required_argument, 0, 'd'},
                                         {"force-size", no_argument, 0, 'f'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'w': weights = optarg; break;
        case 'o': onnx = optarg; break;
        case 's':
            if (cli_parse_image_size("export", optarg, &size) != 0) return 2;
            break;
        case 'b': batch = optarg; break;
        case 'g': sigmoid = 1; break;
        case 'r': relu6 = optarg; break;
        case 'd': device = optarg; break;
        case 'f': force_size = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!weights || !onnx || optind < argc) {
        fprintf(stderr, "oclseg export: --weights F and --onnx OUT are required (no other "
                        "arguments)\n");
        return 2;
    }
    if (strcmp(batch, "1") != 0 && strcmp(batch, "dynamic") != 0) {
        fprintf(stderr, "oclseg export: --batch must be 1 or dynamic (got '%s')\n", batch);
        return 2;
    }
    if (strcmp(relu6, "clip") != 0 && strcmp(relu6, "relu") != 0) {
        fprintf(stderr, "oclseg export: --relu6 must be clip or relu (got '%s')\n", relu6);
        return 2;
    }
    oclseg_predict_options po; /* the recorded inference options, for the metadata */
    oclseg_predict_options_default(&po);
    cli_predict_unset(&po);
    cli_infer_options io = {&po, size, force_size};
    const int resolved = cli_predict_resolve("export", weights, &io);
    if (resolved) return resolved;
    size = io.size;
    oclseg_onnx_options o = {strcmp(batch, "dynamic") == 0, sigmoid, strcmp(relu6, "relu") == 0,
                             NULL, NULL, &po};
    int st = oclseg_export_onnx(weights, onnx, size, device, &o);
    if (st != OCLSEG_OK) {
        char why[160];
        fprintf(stderr, "oclseg export: %s not written: %s\n", onnx,
                oclseg_status_message(st, why, sizeof why));
        return 1;
    }
    printf("wrote %s (opset %d, input (%s,3,%d,%d), output %s)\n", onnx, OCLSEG_ONNX_OPSET,
           o.dynamic_batch ? "N" : "1", size, size, sigmoid ? "prob" : "logits");
    return 0;
}
