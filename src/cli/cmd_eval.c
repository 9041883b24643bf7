/* `oclseg eval`: metrics of a weights file on a data split, at each mask's original resolution. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "oclseg/evaluate.h"
#include "oclseg/infer.h"
#include "oclseg/metrics.h"
#include "oclseg/ordered_pool.h"
#include "oclseg/safetensors.h"
#include "oclseg/session.h"

typedef struct eval_options {
    const char *data, *images, *masks, *suffix, *weights, *device, *out, *save_masks;
    int test_split, size, batch, skip_bad, force_size, allow_overlap, threads;
    double mask_threshold;
    oclseg_predict_options predict;
} eval_options;

static void usage(FILE *f) {
    fprintf(f, "usage: oclseg eval (--data DIR [--split test|train] | --images DIR --masks DIR\n"
               "                   [--mask-suffix S]) --weights F [--size 128] [--batch 16]\n"
               "                   [--device D] [--out CSV] [--skip-bad] [--mask-threshold T]\n"
               "                   [--tta flips] [--threshold 0.5] [--largest-component]\n"
               "                   [--fill-holes] [--force-size] [--save-masks DIR]\n"
               "                   [--allow-overlap] [--threads N]\n\n"
               "Prints AC, DI, JA, SE, SP (mean over images) and pooled Dice/IoU, computed at each\n"
               "mask's original resolution (probabilities upsampled, then thresholded and\n"
               "post-processed), ISIC 2018's thresholded Jaccard (per-image JA < 0.65 counts as 0)\n"
               "and the per-image JA distribution (quantiles, histogram), plus the BCE loss at\n"
               "--size; writes one CSV row per image (default: eval_<split>.csv next to the\n"
               "weights file; RFC 4180 quoting; written whole at the end, or not at all). Masks\n"
               "are read as by train (see --mask-threshold there): the encoding is recognised,\n"
               "and a data health line is printed first. With --data, an image id also in the\n"
               "other split is an error naming it (a warning with --allow-overlap).\n"
               "  --save-masks DIR   also write each scored mask as DIR/<id>_mask.png (0/255 at the\n"
               "                     mask's resolution): what predict writes for the image\n"
               "  --threads N        worker threads that read the masks, upsample, threshold,\n"
               "                     score and write masks while the device runs (1..64;\n"
               "                     default 0: one per CPU, up to 16); the same results for any N\n"
               CLI_PREDICT_USAGE);
}

/* The per-image CSV, held in memory as each image is scored and written whole (atomically) at
 * the end: a failed write leaves no partial file. */
typedef struct csv_writer {
    char *text;
    size_t len, cap;
    const oclseg_dataset *ds;
} csv_writer;

static int csv_append(csv_writer *w, const char *s, size_t n) {
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (w->len + n + 1 > cap) cap *= 2;
        char *grown = realloc(w->text, cap);
        if (!grown) return OCLSEG_ERR_OUT_OF_MEMORY;
        w->text = grown;
        w->cap = cap;
    }
    memcpy(w->text + w->len, s, n);
    w->len += n;
    w->text[w->len] = '\0';
    return OCLSEG_OK;
}

/* RFC 4180: a field holding a comma, a double quote, CR or LF is quoted, its quotes doubled. */
static int csv_field(csv_writer *w, const char *s) {
    if (!s[strcspn(s, ",\"\r\n")]) return csv_append(w, s, strlen(s));
    TRY(csv_append(w, "\"", 1));
    for (const char *q; (q = strchr(s, '"')); s = q + 1) {
        TRY(csv_append(w, s, (size_t)(q - s)));
        TRY(csv_append(w, "\"\"", 2));
    }
    TRY(csv_append(w, s, strlen(s)));
    return csv_append(w, "\"", 1);
}

static int write_row(void *user, int index, const oclseg_confusion *c) {
    csv_writer *w = user;
    const oclseg_sample *s = &w->ds->samples[index];
    oclseg_scores sc = oclseg_scores_from_confusion(c);
    char numbers[256];
    int n = snprintf(numbers, sizeof numbers, ",%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f\n", s->orig_width,
                     s->orig_height, sc.accuracy, sc.dice, sc.jaccard, sc.sensitivity,
                     sc.specificity);
    TRY(csv_field(w, s->id));
    return csv_append(w, numbers, (size_t)n);
}

/* A CSV path in a folder that cannot be written to is refused before the evaluation. */
static int check_csv_folder(const char *csv_path) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", csv_path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    else snprintf(dir, sizeof dir, ".");
    if (access(dir, W_OK) == 0) return OCLSEG_OK;
    fprintf(stderr, "oclseg eval: cannot write %s: folder %s: %s\n", csv_path, dir,
            strerror(errno));
    return OCLSEG_ERR_IO;
}

static void print_distribution(const oclseg_jaccard_summary *j) {
    printf("  ISIC 2018 thresholded JA %.4f (%d of %d images below 0.65 count as 0)\n",
           j->thresholded, j->below_floor, j->count);
    printf("  per-image JA: min %.3f  p10 %.3f  p25 %.3f  median %.3f  p75 %.3f  p90 %.3f  "
           "max %.3f\n  JA histogram (0-0.1 ... 0.9-1.0):", j->min, j->p10, j->p25, j->median,
           j->p75, j->p90, j->max);
    for (int k = 0; k < 10; k++) printf(" %d", j->histogram[k]);
    printf("\n");
}

/* The per-image CSV's path: --out, or eval_<split>.csv next to the weights file. */
static void csv_path_for(const eval_options *o, char *path, size_t size) {
    if (o->out) {
        snprintf(path, size, "%s", o->out);
        return;
    }
    snprintf(path, size, "%s", o->weights);
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, size - (slash ? (size_t)(slash + 1 - path) : 0),
             "eval_%s.csv", o->images ? "pairs" : (o->test_split ? "test" : "train"));
}

/* The data set of the split (or pairs) with its health line. */
static int load_eval_data(const eval_options *o, oclseg_dataset **ds) {
    oclseg_pair_list pairs = {0};
    int st;
    if (o->images) st = oclseg_pairs_scan(o->images, o->masks, o->suffix, o->skip_bad, &pairs);
    else st = oclseg_isic_scan(o->data, o->test_split ? OCLSEG_SPLIT_TEST : OCLSEG_SPLIT_TRAIN,
                               o->skip_bad, &pairs);
    if (st == OCLSEG_OK && !o->images)
        st = oclseg_isic_check_disjoint(o->data, &pairs,
                                        o->test_split ? OCLSEG_SPLIT_TEST : OCLSEG_SPLIT_TRAIN,
                                        o->allow_overlap);
    oclseg_dataset_options dopts = {.size = o->size, .skip_bad = o->skip_bad,
                                    .mask_threshold = o->mask_threshold};
    if (st == OCLSEG_OK) st = oclseg_dataset_load(&pairs, &dopts, ds);
    oclseg_pair_list_free(&pairs);
    if (st != OCLSEG_OK) return st;
    char health[1024];
    st = oclseg_data_health_report(*ds, o->images ? "pairs" : (o->test_split ? "test" : "train"),
                                   health, sizeof health);
    printf("data: %s\n", health);
    return st;
}

static void print_summary(const eval_options *o, const oclseg_dataset *ds,
                          const oclseg_metrics *met, const oclseg_jaccard_summary *js,
                          double loss) {
    printf("%d images (%s), weights %s, at original resolution:\n", ds->count,
           o->images ? o->images : (o->test_split ? "test split" : "train split"), o->weights);
    printf("  AC %.4f  DI %.4f  JA %.4f  SE %.4f  SP %.4f   pooled Dice %.4f  pooled IoU %.4f\n",
           met->mean.accuracy, met->mean.dice, met->mean.jaccard, met->mean.sensitivity,
           met->mean.specificity, met->pooled_dice, met->pooled_iou);
    print_distribution(js);
    printf("  threshold %.2f%s%s%s\n", (double)o->predict.threshold,
           o->predict.tta_flips ? ", flip TTA" : "",
           o->predict.largest_component ? ", largest component" : "",
           o->predict.fill_holes ? ", holes filled" : "");
    printf("  BCE loss at %dx%d: %.4f\n", o->size, o->size, loss);
}

static int run_eval(const eval_options *o) {
    oclseg_dataset *ds = NULL;
    oclseg_infer *inf = NULL;
    oclseg_confusion *conf = NULL;
    csv_writer w = {0};
    char csv_path[4200];
    int st = load_eval_data(o, &ds);
    if (st != OCLSEG_OK) goto done;
    oclseg_session_options so; /* an evaluation-only trainer: no optimizer config */
    oclseg_session_options_default(&so);
    so.device = o->device;
    so.model.size = o->size;
    so.model.max_batch = o->batch;
    so.weights = o->weights;
    so.weights_source = OCLSEG_WEIGHTS_FULL;
    so.mode = OCLSEG_SESSION_EVAL;
    TRY_GOTO(oclseg_infer_create_session(&so, &inf), st, done);
    conf = calloc((size_t)ds->count + 1, sizeof *conf);
    if (!conf) {
        st = OCLSEG_ERR_OUT_OF_MEMORY;
        goto done;
    }
    csv_path_for(o, csv_path, sizeof csv_path);
    TRY_GOTO(check_csv_folder(csv_path), st, done);
    w.ds = ds;
    static const char header[] = "id,width,height,AC,DI,JA,SE,SP\n";
    TRY_GOTO(csv_append(&w, header, sizeof header - 1), st, done);
    oclseg_eval_options eo;
    oclseg_eval_options_default(&eo);
    eo.batch = o->batch;
    eo.threads = o->threads > 0 ? o->threads : oclseg_default_threads();
    eo.score_at = OCLSEG_SCORE_ORIGINAL;
    eo.predict = o->predict;
    eo.inf = inf;
    eo.mask_threshold = o->mask_threshold;
    eo.on_image = write_row;
    eo.save_masks = o->save_masks;
    eo.user = &w;
    double loss_sum = 0;
    TRY_GOTO(oclseg_evaluate(inf->session->trainer, ds, &eo, &loss_sum, conf), st, done);
    oclseg_metrics met;
    oclseg_jaccard_summary js;
    TRY_GOTO(oclseg_metrics_compute(conf, ds->count, &met), st, done);
    TRY_GOTO(oclseg_jaccard_summary_compute(conf, ds->count, &js), st, done);
    print_summary(o, ds, &met, &js, loss_sum / ds->count);
    fflush(stdout); /* the summary first: a failed write below is the last word */
    st = oclseg_file_write_atomic(csv_path, w.text, w.len);
    if (st == OCLSEG_OK) printf("  per-image CSV: %s\n", csv_path);
    else fprintf(stderr, "oclseg eval: the per-image CSV %s was not written\n", csv_path);
done:
    free(w.text);
    free(conf);
    oclseg_infer_free(inf);
    oclseg_dataset_free(ds);
    return st;
}

int cmd_eval(int argc, char **argv) {
    eval_options o = {.test_split = 1, .batch = 16};
    oclseg_predict_options_default(&o.predict);
    cli_predict_unset(&o.predict);
    enum { O_DATA = 256, O_IMAGES, O_MASKS, O_SUFFIX, O_WEIGHTS, O_SPLIT, O_SIZE, O_BATCH,
           O_DEVICE, O_OUT, O_SKIP, O_MASKTHR, O_SAVE_MASKS, O_OVERLAP, O_THREADS };
    static const struct option opts[] = {
        {"data", required_argument, 0, O_DATA}, {"images", required_argument, 0, O_IMAGES},
        {"masks", required_argument, 0, O_MASKS}, {"mask-suffix", required_argument, 0, O_SUFFIX},
        {"weights", required_argument, 0, O_WEIGHTS}, {"split", required_argument, 0, O_SPLIT},
        {"size", required_argument, 0, O_SIZE}, {"batch", required_argument, 0, O_BATCH},
        {"device", required_argument, 0, O_DEVICE}, {"out", required_argument, 0, O_OUT},
        {"skip-bad", no_argument, 0, O_SKIP}, {"mask-threshold", required_argument, 0, O_MASKTHR},
        {"save-masks", required_argument, 0, O_SAVE_MASKS},
        {"allow-overlap", no_argument, 0, O_OVERLAP}, {"threads", required_argument, 0, O_THREADS},
        {"help", no_argument, 0, 'h'},
        CLI_PREDICT_OPTIONS, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const int handled = cli_predict_option("eval", c, optarg, &o.predict);
        if (handled < 0) return 2;
        if (handled) continue;
        switch (c) {
        case O_DATA: o.data = optarg; break;
        case O_IMAGES: o.images = optarg; break;
        case O_MASKS: o.masks = optarg; break;
        case O_SUFFIX: o.suffix = optarg; break;
        case O_WEIGHTS: o.weights = optarg; break;
        case O_SPLIT:
            if (strcmp(optarg, "test") && strcmp(optarg, "train")) {
                fprintf(stderr, "oclseg eval: --split must be test or train\n");
                return 2;
            }
            o.test_split = strcmp(optarg, "test") == 0;
            break;
        case O_SIZE:
            if (cli_parse_image_size("eval", optarg, &o.size) != 0) return 2;
            break;
        case O_BATCH:
            if (cli_parse_int("eval", "--batch", optarg, 1, 4096, &o.batch) != 0) return 2;
            break;
        case O_DEVICE: o.device = optarg; break;
        case O_OUT: o.out = optarg; break;
        case O_SKIP: o.skip_bad = 1; break;
        case O_SAVE_MASKS: o.save_masks = optarg; break;
        case CLI_PREDICT_OPT + 6: o.force_size = 1; break;
        case O_OVERLAP: o.allow_overlap = 1; break;
        case O_THREADS:
            if (cli_parse_int("eval", "--threads", optarg, 0, 64, &o.threads) != 0) return 2;
            break;
        case O_MASKTHR:
            if (cli_parse_double("eval", "--mask-threshold", optarg, 1e-6, 65535,
                                 &o.mask_threshold) != 0)
                return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!o.weights || (!o.data && !(o.images && o.masks)) || o.size < 0 || o.size % 32 ||
        o.batch <= 0) {
        usage(stderr);
        return 2;
    }
    cli_infer_options io = {&o.predict, o.size, o.force_size};
    const int resolved = cli_predict_resolve("eval", o.weights, &io);
    if (resolved) return resolved;
    o.size = io.size;
    if (o.save_masks && mkdir(o.save_masks, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "oclseg eval: cannot create --save-masks %s: %s\n", o.save_masks,
                strerror(errno));
        return 1;
    }
    return run_eval(&o) == OCLSEG_OK ? 0 : 1;
}
