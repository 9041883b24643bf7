/* `oclseg train`: parses the training options and runs oclseg_fit. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "oclseg/dist.h"
#include "oclseg/fit.h"
#include "oclseg/stop.h"

#define RECIPE_BEST                                                                          \
    "--aug-dihedral --aug-affine 20,0.1,0.05 --aug-color 0.15,0.15,0.15,0.02 --loss bce+dice "  \
    "--schedule onecycle --lr 2e-3 --weight-decay 1e-4 --decoupled-wd --tta flips "           \
    "--largest-component --fill-holes --decoder skip"

static void usage(FILE *out) {
    char optimizers[1024];
    oclseg_fit_optimizer_list(optimizers, sizeof optimizers, "\n                       ", 1);
    fprintf(out,
"usage: oclseg train [--data DIR | --images DIR --masks DIR [--mask-suffix S]] [--out RUN]\n"
"                    [--overwrite] [--device D] [--epochs 25] [--batch 16] [--lr LR]\n"
"                    [--optimizer nadam] [--freeze-encoder] [--pretrained F]\n"
"                    [--init F] [--dropout 0.5] [--size 128] [--seed 1] [--no-shuffle]\n"
"                    [--no-augment] [--max-steps N] [--resume CKPT] [--eval-every 1]\n"
"                    [--skip-bad] [--mask-threshold T] [--threads N] [--check-numerics]\n"
"                    [--loader-threads N] [--prefetch P]\n"
"                    [--sync-bn] [--balance] [--quiet] [--allow-overlap]\n"
"                    [--val-fraction 0.1] [--patience 0] [--tta flips]\n"
"                    [--largest-component] [--fill-holes] [--loss bce|dice|bce+dice]\n"
"                    [--schedule constant|cosine|onecycle] [--warmup 0.05]\n"
"                    [--weight-decay W] [--decoupled-wd] [--clip-norm 0]\n"
"                    [--aug-dihedral] [--aug-affine DEG,SCALE,SHIFT]\n"
"                    [--aug-color B,C,S,H] [--aug-crop MIN_AREA] [--recipe seed|best]\n"
"                    [--config RUN/config.json] [--decoder seed|skip|skip-bilinear]\n\n"
"Trains the MobileNetV2-encoder segmentation network with BCEWithLogits loss.\n"
"  --data DIR         ISIC 2016 Part 1 layout (*Training_Data, *Training_GroundTruth,\n"
"                     *Test_Data, *Test_GroundTruth); default: the synthetic set in\n"
"                     " OCLSEG_SYNTH_DIR " (generated on first use)\n"
"  --optimizer O      nadam (default), or another of the table below (torch.optim's formulas)\n"
"  --lr LR            learning rate (the schedule's maximum), --weight-decay W: when not\n"
"                     given, the optimizer's own defaults:%s\n"
"  --freeze-encoder   model 1: encoder weights and BatchNorm statistics frozen (eval-mode BN),\n"
"                     only the decoder trains; default is model 2 (everything fine-tuned)\n"
"  --pretrained F     torchvision mobilenet_v2 state dict (safetensors) for the encoder\n"
"  --init F           a full model state dict replacing the whole initialisation\n"
"  --resume CKPT      continue a run from its checkpoint.safetensors (bit-identical losses):\n"
"                     the checkpoint's recorded options are the run's (data, size, batch,\n"
"                     recipe, seed, ...); only --epochs (constant schedule), --max-steps,\n"
"                     --eval-every, --device, --threads, --loader-threads, --prefetch, --quiet,\n"
"                     --check-numerics may change;\n"
"                     another option with another value is an error (--init/--pretrained too)\n"
"  --config F         start a new run with the options recorded in a run's config.json\n"
"                     (later options override them and are recorded)\n"
"  --out RUN          the run directory (default runs/<date-time>, -2, -3, ... when taken);\n"
"                     locked while the run lasts (RUN/.lock: a second training is refused);\n"
"                     a directory holding another run is refused unless --resume continues it\n"
"  --overwrite        replace the run RUN holds: its files are deleted first\n"
"  --max-steps N      stop after N steps in total (writes the checkpoint; an epoch ending\n"
"                     there is evaluated first); applies to this invocation only\n"
"  --allow-overlap    an image id in both the training and the test split is a warning\n"
"                     (default: an error naming the ids, before any training)\n"
"  --mask-threshold T mask value >= T is lesion (in the file's own units); default:\n"
"                     recognise the encoding (0/255, 0/1 labels, 1-bit, 16-bit, palette\n"
"                     indices 0/1, RGB with equal channels, JPEG) and refuse anything else\n"
"  --val-fraction F   hold out this share of the training set (deterministic from --seed) to\n"
"                     select the best epoch (best.safetensors), the decision threshold and the\n"
"                     early stop; the test set is scored once, for the selected model\n"
"                     (final.csv). 0: no validation, best.safetensors = last epoch\n"
"  --loss L           bce (default), dice (1 - mean per-image soft Dice of the probabilities)\n"
"                     or bce+dice (their sum)\n"
"  --schedule S       learning rate over all steps: constant (default); cosine (linear warm-up\n"
"                     over --warmup of the steps, then cosine to 0); onecycle (PyTorch's\n"
"                     OneCycleLR, max --lr, 30%% up from lr/25, then down to lr/25e4)\n"
"  --weight-decay W   L2 weight decay (coupled as in torch.optim unless --decoupled-wd:\n"
"                     AdamW-style p *= 1 - lr*W for adam/nadam; adamw: always decoupled)\n"
"  --clip-norm N      clip the gradients to global L2 norm N before each step (0: off)\n"
"  --decoder D        seed (default: four transposed convs from the encoder's last map, then a\n"
"                     bilinear resize) or skip (U-Net style: each transposed conv + BN + ReLU\n"
"                     stage joined with the encoder's map at strides 16, 8, 4, 2, a 1x1 head\n"
"                     at full resolution; README \"The skip decoder\") or skip-bilinear (the\n"
"                     same, each stage's transposed conv replaced by bilinear x2 + 3x3 conv).\n"
"                     Recorded in the weights: eval, predict and export build the same\n"
"                     network\n"
"  --aug-dihedral     also transposes: with the flips, all 8 rotations/reflections by 90 deg\n"
"  --aug-affine R,Z,T rotation in +-R degrees, zoom in [1-Z, 1+Z], shift in +-T of the\n"
"                     half-side (images bilinear, masks nearest, edges replicated)\n"
"  --aug-color B,C,S,H  brightness, contrast, saturation factors in [1-x, 1+x], hue turn in +-H\n"
"  --aug-crop A       random resized crop of area share in [A, 1], aspect 3/4..4/3\n"
"  --recipe R         seed (the defaults) or best: " RECIPE_BEST "\n"
"                     (applied first: later options override it)\n"
"  --loader-threads N threads that augment and normalise the next batches while the device\n"
"                     runs a step (default: min(CPUs, 4); 0: in the training thread, no\n"
"                     prefetch); the batches are the same bytes whatever N\n"
"  --prefetch P       batches assembled ahead of the step (default 2)\n"
"  --patience N       early stop after N epochs without a better validation Jaccard (0: off)\n"
"  --tta flips        final report: probabilities averaged over the 4 flips\n"
"  --largest-component, --fill-holes  final report: post-process the masks\n"
"  --check-numerics   debug: after every forward and backward find the first layer holding\n"
"                     a NaN/Inf and stop there (slow: waits for the device each step).\n"
"                     Without it every step's loss and gradients are still checked.\n"
"Data parallel (mpirun -np N oclseg train ...): --batch is the global batch, split over the\n"
"ranks; gradients are averaged deterministically; rank 0 writes the run directory.\n"
"  --device A,B,...   one device per node-local rank; --device auto: GPUs round-robin\n"
"  --sync-bn          BatchNorm statistics over the global batch (default: per rank)\n"
"  --balance          after 3 steps, split each global batch in proportion to rank speed\n"
"  OCLSEG_DIST_CHECK=1 compares a hash of the parameters across ranks after every step\n"
"Outputs in RUN (default runs/<date-time>): config.json, steps.csv, metrics.csv,\n"
"weights.safetensors, best.safetensors, checkpoint.safetensors, final.csv, curves.png.\n"
"Ctrl-C (SIGINT) or SIGTERM (kill, systemd, Slurm's --signal=TERM@60) finishes the current\n"
"step, writes the checkpoint, prints how to resume and exits with 130 / 143; under mpirun the\n"
"ranks stop at the same step (a signal on any rank).\n", optimizers);
}

/* Parses "a,b,c" into n floats, each in [0, max]. */
static int parse_floats(const char *name, const char *v, int n, double max, float *out) {
    const char *p = v;
    for (int i = 0; i < n; i++) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || !(x >= 0 && x <= max) || (i + 1 < n ? *end != ',' : *end != '\0')) {
            fprintf(stderr, "oclseg train: %s needs %d comma-separated numbers in [0, %g] (got "
                    "'%s')\n", name, n, max, v);
            return -1;
        }
        out[i] = (float)x;
        p = end + 1;
    }
    return 0;
}

static int parse_int(const char *name, const char *v, int min, int *out) {
    return cli_parse_int("train", name, v, min, 1000000000L, out);
}

static int parse_float(const char *name, const char *v, double min, double max, float *out) {
    double x;
    if (cli_parse_double("train", name, v, min, max, &x) != 0) return -1;
    *out = (float)x;
    return 0;
}

static int parse_args(int argc, char **argv, oclseg_fit_options *o, int *done);

/* The options of RECIPE_BEST, parsed as if given on the command line. */
static int apply_recipe_best(oclseg_fit_options *o) {
    char text[] = RECIPE_BEST;
    char *argv[64] = {"train"};
    int argc = 1;
    for (char *tok = strtok(text, " "); tok && argc < 63; tok = strtok(NULL, " ")) argv[argc++] = tok;
    int done = 0;
    return parse_args(argc, argv, o, &done);
}

int cli_recipe_options(const char *recipe, struct oclseg_augment_config *aug,
                       oclseg_decoder_kind *decoder) {
    oclseg_fit_options o;
    oclseg_fit_options_default(&o);
    if (strcmp(recipe, "best") == 0) {
        if (apply_recipe_best(&o) != 0) return -1;
    } else if (strcmp(recipe, "seed") != 0) {
        return -1;
    }
    *aug = o.aug;
    *decoder = o.decoder;
    return 0;
}

/* --config FILE of the command line (parse_args stores it). */
static const char *config_file;

/* The options a run starts from: --resume: those recorded in its checkpoint; --config: those
 * recorded in a run's config.json; else the defaults. `given` holds the command line alone. */
static int starting_options(const oclseg_fit_options *given, oclseg_fit_options *o,
                            oclseg_fit_record **rec) {
    oclseg_fit_options_default(o);
    *rec = NULL;
    if (given->resume && config_file) {
        fprintf(stderr, "oclseg train: --config and --resume go separately (a checkpoint carries "
                        "its run's configuration)\n");
        return 2;
    }
    if (given->resume && (given->init || given->pretrained)) {
        fprintf(stderr, "oclseg train: %s with --resume: a resumed run continues from its "
                        "checkpoint's weights (--init and --pretrained start a new run)\n",
                given->init ? "--init" : "--pretrained");
        return 2;
    }
    int st = OCLSEG_OK;
    if (given->resume) st = oclseg_fit_options_read_checkpoint(given->resume, o, rec);
    else if (config_file) st = oclseg_fit_options_read_config(config_file, o, rec);
    return st == OCLSEG_OK ? 0 : 1;
}

int cmd_train(int argc, char **argv) {
    oclseg_fit_options given, o;
    oclseg_fit_options_default(&given);
    int done = 0;
    /* the command line alone first: --help, bad values, --resume and --config */
    int rc = parse_args(argc, argv, &given, &done);
    if (rc != 0 || done) return rc;
    oclseg_fit_record *rec = NULL;
    rc = starting_options(&given, &o, &rec);
    if (rc != 0) return rc;
    /* --recipe first, so that every explicit option overrides it */
    for (int i = 1; i < argc; i++) {
        const char *r = NULL;
        if (strcmp(argv[i], "--recipe") == 0 && i + 1 < argc) r = argv[i + 1];
        else if (strncmp(argv[i], "--recipe=", 9) == 0) r = argv[i] + 9;
        if (!r) continue;
        if (strcmp(r, "best") == 0) {
            rc = apply_recipe_best(&o);
        } else if (strcmp(r, "seed") != 0) {
            fprintf(stderr, "oclseg train: --recipe must be seed or best\n");
            rc = 2;
        }
    }
    if (rc == 0) rc = parse_args(argc, argv, &o, &done);
    if (rc != 0) {
        oclseg_fit_record_free(rec);
        return rc;
    }
    if (oclseg_dist_rank() != 0) o.quiet = 1; /* rank 0 reports for the job */
    int st = oclseg_fit(&o);
    oclseg_fit_record_free(rec);
    if (st == OCLSEG_ERR_INTERRUPTED) return oclseg_stop_exit_status(); /* 130, 143 */
    return st == OCLSEG_OK ? 0 : 1;
}

/* Parses argv into *o (on top of what it holds); returns 0, or the exit code (2: bad usage);
 * *done is set when --help was answered. */
/* Long (~165 lines): one getopt switch over the ~45 training options, each case a line or two. */
static int parse_args(int argc, char **argv, oclseg_fit_options *out, int *done) {
    oclseg_fit_options o = *out;
    enum { O_DATA = 256, O_IMAGES, O_MASKS, O_SUFFIX, O_OUT, O_DEVICE, O_EPOCHS, O_BATCH, O_LR,
           O_OPT, O_FREEZE, O_PRETRAINED, O_INIT, O_DROPOUT, O_SIZE, O_SEED, O_NOSHUF, O_NOAUG,
           O_MAXSTEPS, O_RESUME, O_EVAL, O_QUIET, O_SKIPBAD, O_THREADS, O_LTHREADS, O_PREFETCH, O_CHECKNUM, O_MASKTHR,
           O_SYNCBN, O_BALANCE, O_VALFRAC, O_PATIENCE, O_TTA, O_LARGEST, O_FILL, O_LOSS, O_SCHED,
           O_WARMUP, O_WD, O_DECOUPLED, O_CLIP, O_AUGD, O_AUGA, O_AUGC, O_AUGCROP, O_RECIPE,
           O_OVERWRITE, O_CONFIG, O_OVERLAP, O_DECODER };
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
        {"check-numerics", no_argument, 0, O_CHECKNUM}, {"sync-bn", no_argument, 0, O_SYNCBN},
        {"balance", no_argument, 0, O_BALANCE}, {"allow-overlap", no_argument, 0, O_OVERLAP},
        {"mask-threshold", required_argument, 0, O_MASKTHR},
        {"threads", required_argument, 0, O_THREADS}, {"help", no_argument, 0, 'h'},
        {"loader-threads", required_argument, 0, O_LTHREADS},
        {"prefetch", required_argument, 0, O_PREFETCH},
        {"val-fraction", required_argument, 0, O_VALFRAC},
        {"patience", required_argument, 0, O_PATIENCE}, {"tta", required_argument, 0, O_TTA},
        {"largest-component", no_argument, 0, O_LARGEST},
        {"fill-holes", no_argument, 0, O_FILL}, {"loss", required_argument, 0, O_LOSS},
        {"schedule", required_argument, 0, O_SCHED}, {"warmup", required_argument, 0, O_WARMUP},
        {"weight-decay", required_argument, 0, O_WD},
        {"decoupled-wd", no_argument, 0, O_DECOUPLED},
        {"clip-norm", required_argument, 0, O_CLIP},
        {"aug-dihedral", no_argument, 0, O_AUGD}, {"aug-affine", required_argument, 0, O_AUGA},
        {"aug-color", required_argument, 0, O_AUGC}, {"aug-crop", required_argument, 0, O_AUGCROP},
        {"recipe", required_argument, 0, O_RECIPE}, {"config", required_argument, 0, O_CONFIG},
        {"overwrite", no_argument, 0, O_OVERWRITE},
        {"decoder", required_argument, 0, O_DECODER},
        {0, 0, 0, 0}};
    int c, seed = 1, bad = 0;
    float mask_threshold = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_DATA: o.data_dir = optarg; break;
        case O_IMAGES: o.images_dir = optarg; break;
        case O_MASKS: o.masks_dir = optarg; break;
        case O_SUFFIX: o.mask_suffix = optarg; break;
        case O_OUT: o.out_dir = optarg; break;
        case O_OVERWRITE: o.overwrite = 1; break;
        case O_DEVICE: o.device = optarg; break;
        case O_EPOCHS: bad |= parse_int("--epochs", optarg, 1, &o.epochs); break;
        case O_BATCH: bad |= parse_int("--batch", optarg, 1, &o.batch); break;
        case O_LR: bad |= parse_float("--lr", optarg, 0, 10, &o.lr); break;
        case O_OPT:
            if (oclseg_fit_optimizer_find(optarg) >= 0) {
                o.optimizer = (oclseg_optimizer_kind)oclseg_fit_optimizer_find(optarg);
            } else {
                char names[256];
                oclseg_fit_optimizer_list(names, sizeof names, ", ", 0);
                fprintf(stderr, "oclseg train: --optimizer must be one of %s (got '%s')\n", names,
                        optarg);
                bad = 1;
            }
            break;
        case O_FREEZE: o.frozen_encoder = 1; break;
        case O_PRETRAINED: o.pretrained = optarg; break;
        case O_INIT: o.init = optarg; break;
        case O_DROPOUT: bad |= parse_float("--dropout", optarg, 0, 0.99, &o.dropout); break;
        case O_SIZE:
            bad |= cli_parse_image_size("train", optarg, &o.size);
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
        case O_SYNCBN: o.sync_bn = 1; break;
        case O_BALANCE: o.balance = 1; break;
        case O_OVERLAP: o.allow_overlap = 1; break;
        case O_MASKTHR:
            bad |= parse_float("--mask-threshold", optarg, 1e-6, 65535, &mask_threshold);
            o.mask_threshold = mask_threshold;
            break;
        case O_THREADS: bad |= parse_int("--threads", optarg, 0, &o.threads); break;
        case O_LTHREADS: bad |= cli_parse_int("train", "--loader-threads", optarg, 0, 256, &o.loader_threads); break;
        case O_PREFETCH: bad |= cli_parse_int("train", "--prefetch", optarg, 1, 64, &o.prefetch); break;
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
        case O_LOSS:
            if (strcmp(optarg, "bce") == 0) o.loss = OCLSEG_LOSS_BCE;
            else if (strcmp(optarg, "dice") == 0) o.loss = OCLSEG_LOSS_DICE;
            else if (strcmp(optarg, "bce+dice") == 0) o.loss = OCLSEG_LOSS_BCE_DICE;
            else {
                fprintf(stderr, "oclseg train: --loss must be bce, dice or bce+dice\n");
                bad = 1;
            }
            break;
        case O_DECODER:
            if (oclseg_decoder_parse(optarg, &o.decoder) != OCLSEG_OK) {
                fprintf(stderr, "oclseg train: --decoder must be seed, skip or skip-bilinear\n");
                bad = 1;
            }
            break;
        case O_SCHED:
            if (strcmp(optarg, "constant") == 0) o.schedule = OCLSEG_SCHED_CONSTANT;
            else if (strcmp(optarg, "cosine") == 0) o.schedule = OCLSEG_SCHED_COSINE;
            else if (strcmp(optarg, "onecycle") == 0) o.schedule = OCLSEG_SCHED_ONECYCLE;
            else {
                fprintf(stderr, "oclseg train: --schedule must be constant, cosine or onecycle\n");
                bad = 1;
            }
            break;
        case O_WARMUP: bad |= parse_float("--warmup", optarg, 0, 0.9, &o.warmup); break;
        case O_WD: bad |= parse_float("--weight-decay", optarg, 0, 1, &o.weight_decay); break;
        case O_DECOUPLED: o.decoupled_wd = 1; break;
        case O_CLIP: bad |= parse_float("--clip-norm", optarg, 0, 1e6, &o.clip_norm); break;
        case O_AUGD: o.aug.dihedral = 1; break;
        case O_AUGA: {
            float v[3] = {0};
            bad |= parse_floats("--aug-affine", optarg, 3, 180, v);
            if (!bad && (v[1] >= 1 || v[2] > 1)) {
                fprintf(stderr, "oclseg train: --aug-affine zoom must be < 1 and shift <= 1\n");
                bad = 1;
            }
            o.aug.rotate_deg = v[0];
            o.aug.scale = v[1];
            o.aug.translate = v[2];
            break;
        }
        case O_AUGC: {
            float v[4] = {0};
            bad |= parse_floats("--aug-color", optarg, 4, 1, v);
            o.aug.brightness = v[0];
            o.aug.contrast = v[1];
            o.aug.saturation = v[2];
            o.aug.hue = v[3] > 0.5f ? 0.5f : v[3];
            break;
        }
        case O_AUGCROP: {
            float v = 0;
            bad |= parse_floats("--aug-crop", optarg, 1, 1, &v);
            o.aug.crop_min = v;
            break;
        }
        case O_RECIPE: break; /* applied before this loop */
        case O_CONFIG: config_file = optarg; break; /* read before this loop */
        case 'h': usage(stdout); *done = 1; return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bad) return 2;
    if (optind < argc) {
        fprintf(stderr, "oclseg train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    /* an error, not a warning: an early stop that can never happen is a setting the user
     * believes is in force, and a warning scrolls away before a long run */
    if (o.patience > 0 && o.val_fraction == 0) {
        fprintf(stderr, "oclseg train: --patience %d stops on the validation Jaccard, but "
                        "--val-fraction 0 holds out no validation split: drop --patience or "
                        "give --val-fraction a share above 0\n", o.patience);
        return 2;
    }
    *out = o;
    return 0;
}
