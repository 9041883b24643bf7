/* `oclseg predict`: a mask PNG at the original resolution and an overlay PNG for each image. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/predict_inputs.h"
#include "oclseg/infer.h"
#include "oclseg/weights.h"

/* Whether every byte of the file can be read: a failed prediction of a readable file failed in
 * writing its outputs or on the device, not on the image. */
static int file_readable(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0; /* a fifo would block */
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[65536];
    while (fread(buf, 1, sizeof buf, f) == sizeof buf) {
    }
    const int ok = !ferror(f);
    fclose(f);
    return ok;
}

/* A failure that is the image's own (corrupt, truncated, missing, unreadable): the others are
 * predicted all the same. Any other failure (writing, the device, memory) stops the run. */
static int is_unreadable_image(int status, const char *path) {
    return status == OCLSEG_ERR_FORMAT || status == OCLSEG_ERR_NOT_FOUND ||
           (status == OCLSEG_ERR_IO && !file_readable(path));
}

typedef struct predict_tally {
    const predict_inputs *in;
    int done, failed;
    char names[512]; /* the first unreadable images, for the summary */
} predict_tally;

/* Counts image i (in input order): an unreadable one is named and the run goes on; any other
 * failure stops it. */
static int tally_image(void *user, int i, int st) {
    predict_tally *t = user;
    if (st == OCLSEG_OK) {
        t->done++;
    } else if (is_unreadable_image(st, t->in->paths[i])) {
        size_t used = strlen(t->names);
        if (t->failed++ < 5)
            snprintf(t->names + used, sizeof t->names - used, "%s%s", used ? ", " : "",
                     t->in->paths[i]);
    } else {
        return st;
    }
    return OCLSEG_OK;
}

/* --timing: where the time went, per image. */
static void print_timing(const oclseg_predict_stats *s, int total) {
    const int n = total > 0 ? total : 1;
    printf("timing: %d images, %d worker thread%s, device batch %d: %.1f ms per image (wall)\n",
           total, s->threads, s->threads == 1 ? "" : "s", s->batch, 1e3 * s->wall_s / n);
    for (int k = 0; k < OCLSEG_PREDICT_STAGES; k++)
        printf("  %-18s %8.1f ms per image%s\n", oclseg_predict_stage_names[k],
               1e3 * s->seconds[k] / n, k == 2 ? " (device, main thread)" : " (thread time)");
}

/* The summary line and the exit status: non-zero when an image failed (unless --skip-bad, and
 * one image at least was predicted) or the run stopped. */
static int report(const predict_tally *t, int total, const char *out, int st, int skip_bad) {
    printf("%d image%s predicted into %s, %d %s\n", t->done, t->done == 1 ? "" : "s", out,
           t->failed, skip_bad ? "unreadable skipped (--skip-bad)" : "failed");
    if (t->failed)
        fprintf(stderr, "oclseg predict: %s %d unreadable image%s: %s%s\n",
                skip_bad ? "skipped" : "could not predict", t->failed, t->failed == 1 ? "" : "s",
                t->names, t->failed > 5 ? ", ..." : "");
    if (st != OCLSEG_OK) {
        fprintf(stderr, "oclseg predict: stopped after %d of %d images by the error above\n",
                t->done + t->failed, total);
        return 1;
    }
    if (skip_bad && t->done == 0) {
        fprintf(stderr, "oclseg predict: no image could be predicted\n");
        return 1;
    }
    return t->failed && !skip_bad ? 1 : 0;
}

int cli_predict_option(const char *cmd, int c, const char *arg, oclseg_predict_options *o) {
    switch (c - CLI_PREDICT_OPT) {
    case 0:
        if (strcmp(arg, "flips") != 0 && strcmp(arg, "none") != 0) {
            fprintf(stderr, "oclseg %s: --tta must be flips or none\n", cmd);
            return -1;
        }
        o->tta_flips = strcmp(arg, "flips") == 0;
        return 1;
    case 1: {
        char *end;
        double t = strtod(arg, &end);
        if (*arg == '\0' || *end != '\0' || !(t > 0.0 && t < 1.0)) {
            fprintf(stderr, "oclseg %s: --threshold must be a number in (0, 1) (got '%s')\n", cmd,
                    arg);
            return -1;
        }
        o->threshold = (float)t;
        return 1;
    }
    case 2: o->largest_component = 1; return 1;
    case 3: o->fill_holes = 1; return 1;
    case 4: o->largest_component = 0; return 1;
    case 5: o->fill_holes = 0; return 1;
    default: return 0;
    }
}

void cli_predict_unset(oclseg_predict_options *o) {
    o->tta_flips = o->largest_component = o->fill_holes = -1;
    o->threshold = -1.0f;
}

int cli_predict_resolve(const char *cmd, const char *weights, cli_infer_options *io) {
    oclseg_weights_meta meta;
    if (oclseg_weights_meta_read(weights, &meta) != OCLSEG_OK) return 1;
    oclseg_predict_options *o = io->predict;
    if (meta.input_size && io->size && io->size != meta.input_size && !io->force_size) {
        fprintf(stderr, "oclseg %s: --size %d differs from the size %s was trained at (%d, its "
                        "metadata input_size): use --size %d, or add --force-size to run at %d "
                        "anyway\n", cmd, io->size, weights, meta.input_size, meta.input_size,
                io->size);
        return 2;
    }
    char taken[256] = "";
    size_t len = 0;
#define TAKE(field, cond, value, ...)                                                          \
    if (field < 0) {                                                                           \
        field = value;                                                                         \
        if (cond) len += (size_t)snprintf(taken + len, sizeof taken - len, __VA_ARGS__);       \
    }
    if (!io->size) {
        io->size = meta.input_size ? meta.input_size : 128;
        if (meta.input_size) len += (size_t)snprintf(taken, sizeof taken, " size %d", io->size);
    }
    TAKE(o->threshold, meta.threshold > 0, meta.threshold > 0 ? meta.threshold : 0.5f,
         " threshold %.2f", (double)meta.threshold);
    TAKE(o->tta_flips, meta.has_options, meta.tta_flips, " tta %s",
         meta.tta_flips ? "flips" : "none");
    TAKE(o->largest_component, meta.has_options, meta.largest_component, " largest-component %s",
         meta.largest_component ? "on" : "off");
    TAKE(o->fill_holes, meta.has_options, meta.fill_holes, " fill-holes %s",
         meta.fill_holes ? "on" : "off");
#undef TAKE
    if (len) printf("from the metadata of %s:%s\n", weights, taken);
    return 0;
}

int cmd_predict(int argc, char **argv) {
    const char *weights = NULL, *out = "predictions", *device = NULL;
    int probs = 0, skip_bad = 0, timing = 0;
    oclseg_predict_run_options ro;
    oclseg_predict_run_options_default(&ro);
    enum { O_THREADS = 300, O_BATCH, O_NO_OVERLAY, O_TIMING };
    static const struct option opts[] = {{"weights", required_argument, 0, 'w'},
                                         {"out", required_argument, 0, 'o'},
                                         {"size", required_argument, 0, 's'},
                                         {"device", required_argument, 0, 'd'},
                                         {"probs", no_argument, 0, 'p'},
                                         {"skip-bad", no_argument, 0, 'b'},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"batch", required_argument, 0, O_BATCH},
                                         {"no-overlay", no_argument, 0, O_NO_OVERLAY},
                                         {"timing", no_argument, 0, O_TIMING},
                                         {"help", no_argument, 0, 'h'},
                                         CLI_PREDICT_OPTIONS,
                                         {0, 0, 0, 0}};
    oclseg_predict_options po;
    oclseg_predict_options_default(&po);
    cli_predict_unset(&po);
    cli_infer_options io = {&po, 0, 0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const int handled = cli_predict_option("predict", c, optarg, &po);
        if (handled < 0) return 2;
        if (handled) continue;
        switch (c) {
        case 'w': weights = optarg; break;
        case 'o': out = optarg; break;
        case 's':
            if (cli_parse_image_size("predict", optarg, &io.size) != 0) return 2;
            break;
        case CLI_PREDICT_OPT + 6: io.force_size = 1; break;
        case 'd': device = optarg; break;
        case 'p': probs = 1; break;
        case 'b': skip_bad = 1; break;
        case O_THREADS:
            if (cli_parse_int("predict", "--threads", optarg, 0, 64, &ro.threads) != 0) return 2;
            break;
        case O_BATCH:
            if (cli_parse_int("predict", "--batch", optarg, 1, 256, &ro.batch) != 0) return 2;
            break;
        case O_NO_OVERLAY: ro.overlay = 0; break;
        case O_TIMING: timing = 1; break;
        case 'h':
            printf("usage: oclseg predict --weights F [--out DIR] [--size 128] [--device D] [--probs]\n"
                   "                      [--skip-bad] [--threads N] [--batch 1] [--no-overlay]\n"
                   "                      [--timing] [--tta flips] [--threshold 0.5]\n"
                   "                      [--largest-component] [--fill-holes] IMAGE|DIR...\n\nFor each image (or each .jpg/.jpeg/.png in a directory) "
                   "writes DIR/<id>_mask.png (0/255 at the\nimage's original resolution: the "
                   "probabilities are upsampled before thresholding)\nand "
                   "DIR/<id>_overlay.png (the image with the lesion contour in green): the masks\n"
                   "eval scores (eval --save-masks). --size defaults to the size the weights were\n"
                   "trained at (their metadata). --probs also writes DIR/<id>_prob.npy: "
                   "the\nprobabilities (float32, original resolution) as a NumPy array.\n\n"
                   "In a directory, files named like these outputs (*_mask.png, *_overlay.png) are\n"
                   "skipped with a note. Two inputs with one <id> (a/x.jpg b/x.jpg) are refused before\n"
                   "any work. An unreadable image is named and the others are predicted; the exit\n"
                   "status is then 1 (0 with --skip-bad, if any image was predicted).\n"
                   "  --skip-bad         skip unreadable images (named) without failing the run\n"
                   "  --threads N        worker threads that decode, resize, threshold and write\n"
                   "                     PNGs while the device runs (1..64; default 0: one per\n"
                   "                     CPU, up to 16); the outputs are the same bytes for any N\n"
                   "  --batch B          images per device batch (default 1, at most 256; larger\n"
                   "                     helps GPUs; about 2B+2N images wait decoded in memory)\n"
                   "  --no-overlay       write no <id>_overlay.png (masks only: faster)\n"
                   "  --timing           print the time per image of each stage\n"
                   CLI_PREDICT_USAGE);
            return 0;
        default: return 2;
        }
    }
    if (!weights || optind >= argc) {
        fprintf(stderr, "oclseg predict: --weights F and at least one IMAGE or DIR are required\n");
        return 2;
    }
    const int resolved = cli_predict_resolve("predict", weights, &io);
    if (resolved) return resolved;
    predict_inputs in;
    int st = predict_inputs_collect(argv + optind, argc - optind, &in);
    if (st == OCLSEG_OK) st = predict_inputs_check_outputs(&in, out);
    if (st != OCLSEG_OK) {
        predict_inputs_free(&in);
        return st == OCLSEG_ERR_INVALID_ARG ? 2 : 1;
    }
    const int size = io.size;
    oclseg_infer *inf = NULL;
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "oclseg predict: cannot create %s: %s\n", out, strerror(errno));
        st = OCLSEG_ERR_IO;
    }
    if (st == OCLSEG_OK) st = oclseg_infer_create(weights, device, size, ro.batch, &inf);
    if (st != OCLSEG_OK) {
        predict_inputs_free(&in);
        return 1;
    }
    inf->write_probs = probs;
    predict_tally tally = {.in = &in};
    ro.out_dir = out;
    ro.predict = po;
    ro.on_image = tally_image;
    ro.user = &tally;
    oclseg_predict_stats stats;
    st = oclseg_predict_files(inf, (const char *const *)in.paths, in.count, &ro, &stats);
    oclseg_infer_free(inf);
    if (timing) print_timing(&stats, in.count);
    const int code = report(&tally, in.count, out, st, skip_bad);
    predict_inputs_free(&in);
    return code;
}
