/* `oclseg train`: parses the training options and runs oclseg_fit. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "oclseg/fit.h"

static void usage(FILE *out) {
    fprintf(out,
"usage: oclseg train [--data DIR | --images DIR --masks DIR [--mask-suffix S]] [--out RUN]\n"
"                    [--device D] [--epochs 25] [--batch 16] [--lr 1e-3]\n"
"                    [--optimizer nadam|adam|sgd] [--freeze-encoder] [--pretrained F]\n"
"                    [--init F] [--dropout 0.5] [--size 128] [--seed 1] [--no-shuffle]\n"
"                    [--no-augment] [--max-steps N] [--resume CKPT] [--eval-every 1]\n"
"                    [--skip-bad] [--threads N] [--check-numerics] [--quiet]\n"
"                    [--val-fraction 0.1] [--patience 0] [--tta flips]\n"
"                    [--largest-component] [--fill-holes]\n\n"
"Trains the MobileNetV2-encoder segmentation network with BCEWithLogits loss.\n"
"  --data DIR         ISIC 2016 Part 1 layout (*Training_Data, *Training_GroundTruth,\n"
"                     *Test_Data, *Test_GroundTruth); default: the synthetic set in\n"
"                     " OCLSEG_SYNTH_DIR " (generated on first use)\n"
"  --freeze-encoder   model 1: encoder weights and BatchNorm statistics frozen (eval-mode BN),\n"
"                     only the decoder trains; default is model 2 (everything fine-tuned)\n"
"  --pretrained F     torchvision mobilenet_v2 state dict (safetensors) for the encoder\n"
"  --init F           a full model state dict replacing the whole initialisation\n"
"  --resume CKPT      continue a run from its checkpoint.safetensors (bit-identical losses)\n"
"  --max-steps N      stop after N steps in total (writes the checkpoint)\n"
"  --val-fraction F   hold out this share of the training set (deterministic from --seed) to\n"
"                     select the best epoch (best.safetensors), the decision threshold and the\n"
"                     early stop; the test set is scored once, for the selected model\n"
"                     (final.csv). 0: no validation, best.safetensors = last epoch\n"
"  --patience N       early stop after N epochs without a better validation Jaccard (0: off)\n"
"  --tta flips        final report: probabilities averaged over the 4 flips\n"
"  --largest-component, --fill-holes  final report: post-process the masks\n"
"  --check-numerics   debug: after every forward and backward find the first layer holding\n"
"                     a NaN/Inf and stop there (slow: waits for the device each step).\n"
"                     Without it every step's loss and gradients are still checked.\n"
"Outputs in RUN (default runs/<date-time>): config.json, steps.csv, metrics.csv,\n"
"weights.safetensors, best.safetensors, checkpoint.safetensors, final.csv, curves.png.\n"
"Ctrl-C finishes the current step, writes the checkpoint and prints how to resume.\n");
}

static int parse_int(const char *name, const char *v, int min, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < min || x > 1000000000L) {
        fprintf(stderr, "oclseg train: %s must be an integer >= %d (got '%s')\n", name, min, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_float(const char *name, const char *v, double min, double max, float *out) {
    char *end;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !(x >= min && x <= max)) {
        fprintf(stderr, "oclseg train: %s must be a number in [%g, %g] (got '%s')\n", name, min,
                max, v);
        return -1;
    }
    *out = (float)x;
    return 0;
}

int cmd_train(int argc, char **argv) {
    oclseg_fit_options o;
    oclseg_fit_options_default(&o);
    enum { O_DATA = 256, O_IMAGES, O_MASKS, O_SUFFIX, O_OUT, O_DEVICE, O_EPOCHS, O_BATCH, O_LR,
           O_OPT, O_FREEZE, O_PRETRAINED, O_INIT, O_DROPOUT, O_SIZE, O_SEED, O_NOSHUF, O_NOAUG,
           O_MAXSTEPS, O_RESUME, O_EVAL, O_QUIET, O_SKIPBAD, O_THREADS, O_CHECKNUM, O_VALFRAC,
           O_PATIENCE, O_TTA, O_LARGEST, O_FILL };
    static const struct option opts[] = {
        {"data", required_argument, 0, O_DATA}, {"images", required_argument, 0, O_IMAGES},
        {"masks", required_argument, 0, O_MASKS}, {"mask-suffix", required_argument, 0, O_SUFFIX},
        {"out", required_argument, 0, O_OUT}, {"device", required_argument, 0, O_DEVICE},
        {"epochs", required_argument, 0, O_EPOCHS}, {"batch", required_argument, 0, O_BATCH},
        {"lr", required_argument, 0, O_LR}, {"optimizer", required_argument, 0, O_OPT},
        {"freeze-encoder", no_argument, 0, O_FREEZE},
        {"pretrained", required_argument, 0, O_PRETRAINED}, {"init", required_argument, 0, O_INIT},
        {"dropout", required_argument, 0, O_DROPOUT}, {"size", required_argument, 0, O_SIZE},
        {"seed", required_argument, 0, O_SEED}, {"no-shuffle", no_argument, 0, O_NOSHUF},
        {"no-augment", no_argument, 0, O_NOAUG}, {"max-steps", required_argument, 0, O_MAXSTEPS},
        {"resume", required_argument, 0, O_RESUME}, {"eval-every", required_argument, 0, O_EVAL},
        {"quiet", no_argument, 0, O_QUIET}, {"skip-bad", no_argument, 0, O_SKIPBAD},
        {"check-numerics", no_argument, 0, O_CHECKNUM},
        {"threads", required_argument, 0, O_THREADS}, {"help", no_argument, 0, 'h'},
        {"val-fraction", required_argument, 0, O_VALFRAC},
        {"patience", required_argument, 0, O_PATIENCE}, {"tta", required_argument, 0, O_TTA},
        {"largest-component", no_argument, 0, O_LARGEST},
        {"fill-holes", no_argument, 0, O_FILL},
        {0, 0, 0, 0}};
    int c, seed = 1, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_DATA: o.data_dir = optarg; break;
        case O_IMAGES: o.images_dir = optarg; break;
        case O_MASKS: o.masks_dir = optarg; break;
        case O_SUFFIX: o.mask_suffix = optarg; break;
        case O_OUT: o.out_dir = optarg; break;
        case O_DEVICE: o.device = optarg; break;
        case O_EPOCHS: bad |= parse_int("--epochs", optarg, 1, &o.epochs); break;
        case O_BATCH: bad |= parse_int("--batch", optarg, 1, &o.batch); break;
        case O_LR: bad |= parse_float("--lr", optarg, 0, 10, &o.lr); break;
        case O_OPT:
            if (strcmp(optarg, "nadam") == 0) o.optimizer = OCLSEG_OPT_NADAM;
            else if (strcmp(optarg, "adam") == 0) o.optimizer = OCLSEG_OPT_ADAM;
            else if (strcmp(optarg, "sgd") == 0) o.optimizer = OCLSEG_OPT_SGD;
            else {
                fprintf(stderr, "oclseg train: --optimizer must be nadam, adam or sgd\n");
                bad = 1;
            }
            break;
        case O_FREEZE: o.frozen_encoder = 1; break;
        case O_PRETRAINED: o.pretrained = optarg; break;
        case O_INIT: o.init = optarg; break;
        case O_DROPOUT: bad |= parse_float("--dropout", optarg, 0, 0.99, &o.dropout); break;
        case O_SIZE:
            bad |= parse_int("--size", optarg, 32, &o.size);
            if (!bad && o.size % 32) {
                fprintf(stderr, "oclseg train: --size must be a multiple of 32 (got %d)\n", o.size);
                bad = 1;
            }
            break;
        case O_SEED: bad |= parse_int("--seed", optarg, 0, &seed); o.seed = (uint64_t)seed; break;
        case O_NOSHUF: o.shuffle = 0; break;
        case O_NOAUG: o.augment = 0; break;
        case O_MAXSTEPS: bad |= parse_int("--max-steps", optarg, 1, &o.max_steps); break;
        case O_RESUME: o.resume = optarg; break;
        case O_EVAL: bad |= parse_int("--eval-every", optarg, 1, &o.eval_every); break;
        case O_QUIET: o.quiet = 1; break;
        case O_SKIPBAD: o.skip_bad = 1; break;
        case O_CHECKNUM: o.check_numerics = 1; break;
        case O_THREADS: bad |= parse_int("--threads", optarg, 0, &o.threads); break;
        case O_VALFRAC: {
            float f = 0.0f;
            bad |= parse_float("--val-fraction", optarg, 0, 0.9, &f);
            o.val_fraction = f;
            break;
        }
        case O_PATIENCE: bad |= parse_int("--patience", optarg, 0, &o.patience); break;
        case O_TTA:
            if (strcmp(optarg, "flips") == 0) o.predict.tta_flips = 1;
            else if (strcmp(optarg, "none") == 0) o.predict.tta_flips = 0;
            else {
                fprintf(stderr, "oclseg train: --tta must be flips or none\n");
                bad = 1;
            }
            break;
        case O_LARGEST: o.predict.largest_component = 1; break;
        case O_FILL: o.predict.fill_holes = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bad) return 2;
    if (optind < argc) {
        fprintf(stderr, "oclseg train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    int st = oclseg_fit(&o);
    if (st == OCLSEG_ERR_INTERRUPTED) return 130;
    return st == OCLSEG_OK ? 0 : 1;
}
