/* `oclseg eval`: metrics of a weights file on a data split, at each mask's original resolution. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "oclseg/infer.h"
#include "oclseg/metrics.h"
#include "oclseg/trainer.h"

typedef struct eval_options {
    const char *data, *images, *masks, *suffix, *weights, *device, *out;
    int test_split, size, batch, skip_bad;
    double mask_threshold;
    oclseg_predict_options predict;
} eval_options;

static void usage(FILE *f) {
    fprintf(f, "usage: oclseg eval (--data DIR [--split test|train] | --images DIR --masks DIR\n"
               "                   [--mask-suffix S]) --weights F [--size 128] [--batch 16]\n"
               "                   [--device D] [--out CSV] [--skip-bad] [--mask-threshold T]\n"
               "                   [--tta flips] [--threshold 0.5] [--largest-component]\n"
               "                   [--fill-holes]\n\n"
               "Prints AC, DI, JA, SE, SP (mean over images) and pooled Dice/IoU, computed at each\n"
               "mask's original resolution (probabilities upsampled, then thresholded and\n"
               "post-processed), ISIC 2018's thresholded Jaccard (per-image JA < 0.65 counts as 0)\n"
               "and the per-image JA distribution (quantiles, histogram), plus the BCE loss at\n"
               "--size; writes one CSV row per image (default: eval_<split>.csv next to the\n"
               "weights file). Masks are read as by train (see --mask-threshold there): the\n"
               "encoding is recognised, and a data health line is printed first.\n" CLI_PREDICT_USAGE);
}

/* Per-image confusion at the original resolution of sample i from its probabilities at S,
 * thresholded and post-processed as po says. */
static int score_original(const oclseg_sample *s, const float *probs, int size,
                          double mask_threshold, const oclseg_predict_options *po,
                          oclseg_confusion *c) {
    oclseg_image mask = {0};
    oclseg_mask_info info;
    TRY(oclseg_mask_load(s->mask_path, mask_threshold, &mask, &info));
    const size_t n = (size_t)mask.width * mask.height;
    float *full = malloc(n * sizeof *full);
    uint8_t *pred = malloc(n);
    int st = full && pred ? oclseg_upsample_bilinear_f32(probs, size, size, full, mask.width,
                                                          mask.height)
                          : OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) st = oclseg_probs_to_mask(full, mask.width, mask.height, po, pred);
    if (st == OCLSEG_OK) {
        st = oclseg_confusion_count_masks(pred, mask.pixels, n, c);
    }
    free(full);
    free(pred);
    oclseg_image_free(&mask);
    return st;
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

static int run_eval(const eval_options *o) {
    oclseg_pair_list pairs = {0};
    oclseg_dataset *ds = NULL;
    oclseg_infer *inf = NULL;
    oclseg_trainer *t = NULL;
    float *images = NULL, *masks = NULL, *probs = NULL;
    uint32_t *counts = NULL;
    int *idx = NULL;
    oclseg_confusion *conf = NULL;
    FILE *csv = NULL;
    int st;
    if (o->images) st = oclseg_pairs_scan(o->images, o->masks, o->suffix, o->skip_bad, &pairs);
    else st = oclseg_isic_scan(o->data, o->test_split ? OCLSEG_SPLIT_TEST : OCLSEG_SPLIT_TRAIN,
                               o->skip_bad, &pairs);
    if (st != OCLSEG_OK) goto done;
    oclseg_dataset_options dopts = {.size = o->size, .skip_bad = o->skip_bad,
                                    .mask_threshold = o->mask_threshold};
    TRY_GOTO(oclseg_dataset_load(&pairs, &dopts, &ds), st, done);
    char health[1024];
    st = oclseg_data_health_report(ds, o->images ? "pairs" : (o->test_split ? "test" : "train"),
                                   health, sizeof health);
    printf("data: %s\n", health);
    if (st != OCLSEG_OK) goto done;
    TRY_GOTO(oclseg_infer_create(o->weights, o->device, o->size, o->batch, &inf), st, done);
    oclseg_trainer_config tc = {0};
    oclseg_optim_config_default(&tc.optim, OCLSEG_OPT_NADAM);
    TRY_GOTO(oclseg_trainer_create(inf->model, &tc, &t), st, done);
    size_t s2 = (size_t)o->size * o->size;
    images = malloc((size_t)o->batch * 3 * s2 * sizeof *images);
    masks = malloc((size_t)o->batch * s2 * sizeof *masks);
    probs = malloc((size_t)o->batch * s2 * sizeof *probs);
    counts = malloc((size_t)o->batch * 4 * sizeof *counts);
    idx = malloc((size_t)o->batch * sizeof *idx);
    conf = calloc((size_t)ds->count + 1, sizeof *conf);
    if (!images || !masks || !probs || !counts || !idx || !conf) {
        st = OCLSEG_ERR_OUT_OF_MEMORY;
        goto done;
    }
    char csv_path[4200];
    if (o->out) {
        snprintf(csv_path, sizeof csv_path, "%s", o->out);
    } else {
        snprintf(csv_path, sizeof csv_path, "%s", o->weights);
        char *slash = strrchr(csv_path, '/');
        snprintf(slash ? slash + 1 : csv_path, sizeof csv_path - (slash ? (size_t)(slash + 1 - csv_path) : 0),
                 "eval_%s.csv", o->images ? "pairs" : (o->test_split ? "test" : "train"));
    }
    csv = fopen(csv_path, "w");
    if (!csv) {
        fprintf(stderr, "oclseg eval: cannot write %s\n", csv_path);
        st = OCLSEG_ERR_IO;
        goto done;
    }
    fprintf(csv, "id,width,height,AC,DI,JA,SE,SP\n");
    double loss_sum = 0;
    for (int b0 = 0; b0 < ds->count; b0 += o->batch) {
        int n = ds->count - b0 < o->batch ? ds->count - b0 : o->batch;
        float loss;
        for (int i = 0; i < n; i++) idx[i] = b0 + i;
        TRY_GOTO(oclseg_dataset_batch(ds, idx, n, NULL, images, masks), st, done);
        TRY_GOTO(oclseg_trainer_eval_batch(t, images, masks, n, &loss, counts, probs), st, done);
        if (o->predict.tta_flips)
            TRY_GOTO(oclseg_infer_batch_tta(inf, images, n, 1, probs), st, done);
        loss_sum += (double)loss * n;
        for (int i = 0; i < n; i++) {
            const oclseg_sample *s = &ds->samples[b0 + i];
            TRY_GOTO(score_original(s, probs + (size_t)i * s2, o->size, o->mask_threshold,
                                    &o->predict, &conf[b0 + i]),
                     st, done);
            oclseg_scores sc = oclseg_scores_from_confusion(&conf[b0 + i]);
            fprintf(csv, "%s,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f\n", s->id, s->orig_width,
                    s->orig_height, sc.accuracy, sc.dice, sc.jaccard, sc.sensitivity,
                    sc.specificity);
        }
    }
    oclseg_metrics met;
    TRY_GOTO(oclseg_metrics_compute(conf, ds->count, &met), st, done);
    printf("%d images (%s), weights %s, at original resolution:\n", ds->count,
           o->images ? o->images : (o->test_split ? "test split" : "train split"), o->weights);
    printf("  AC %.4f  DI %.4f  JA %.4f  SE %.4f  SP %.4f   pooled Dice %.4f  pooled IoU %.4f\n",
           met.mean.accuracy, met.mean.dice, met.mean.jaccard, met.mean.sensitivity,
           met.mean.specificity, met.pooled_dice, met.pooled_iou);
    oclseg_jaccard_summary js;
    TRY_GOTO(oclseg_jaccard_summary_compute(conf, ds->count, &js), st, done);
    print_distribution(&js);
    printf("  threshold %.2f%s%s%s\n", (double)o->predict.threshold,
           o->predict.tta_flips ? ", flip TTA" : "",
           o->predict.largest_component ? ", largest component" : "",
           o->predict.fill_holes ? ", holes filled" : "");
    printf("  BCE loss at %dx%d: %.4f\n  per-image CSV: %s\n", o->size, o->size,
           loss_sum / ds->count, csv_path);
done:
    if (csv && fclose(csv) != 0 && st == OCLSEG_OK) st = OCLSEG_ERR_IO;
    free(images);
    free(masks);
    free(probs);
    free(counts);
    free(idx);
    free(conf);
    oclseg_trainer_free(t);
    oclseg_infer_free(inf);
    oclseg_dataset_free(ds);
    oclseg_pair_list_free(&pairs);
    return st;
}

int cmd_eval(int argc, char **argv) {
    eval_options o = {.test_split = 1, .size = 128, .batch = 16};
    oclseg_predict_options_default(&o.predict);
    enum { O_DATA = 256, O_IMAGES, O_MASKS, O_SUFFIX, O_WEIGHTS, O_SPLIT, O_SIZE, O_BATCH,
           O_DEVICE, O_OUT, O_SKIP, O_MASKTHR };
    static const struct option opts[] = {
        {"data", required_argument, 0, O_DATA}, {"images", required_argument, 0, O_IMAGES},
        {"masks", required_argument, 0, O_MASKS}, {"mask-suffix", required_argument, 0, O_SUFFIX},
        {"weights", required_argument, 0, O_WEIGHTS}, {"split", required_argument, 0, O_SPLIT},
        {"size", required_argument, 0, O_SIZE}, {"batch", required_argument, 0, O_BATCH},
        {"device", required_argument, 0, O_DEVICE}, {"out", required_argument, 0, O_OUT},
        {"skip-bad", no_argument, 0, O_SKIP}, {"mask-threshold", required_argument, 0, O_MASKTHR},
        {"help", no_argument, 0, 'h'}, CLI_PREDICT_OPTIONS, {0, 0, 0, 0}};
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
        case O_SIZE: o.size = atoi(optarg); break;
        case O_BATCH: o.batch = atoi(optarg); break;
        case O_DEVICE: o.device = optarg; break;
        case O_OUT: o.out = optarg; break;
        case O_SKIP: o.skip_bad = 1; break;
        case O_MASKTHR: {
            char *end;
            o.mask_threshold = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(o.mask_threshold > 0 &&
                                                      o.mask_threshold <= 65535)) {
                fprintf(stderr, "oclseg eval: --mask-threshold must be a number in (0, 65535] "
                                "(got '%s')\n", optarg);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!o.weights || (!o.data && !(o.images && o.masks)) || o.size <= 0 || o.size % 32 ||
        o.batch <= 0) {
        usage(stderr);
        return 2;
    }
    return run_eval(&o) == OCLSEG_OK ? 0 : 1;
}
