/* Data of a training run: the ISIC splits or generic pairs (the synthetic set generated on first
 * use), the data health line, and the validation split held out of the training set. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "app/fit_internal.h"
#include "oclseg/dist.h"

static int dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int load_pairs(const oclseg_fit_options *o, const oclseg_pair_list *pairs,
                      oclseg_dataset **out) {
    oclseg_dataset_options dopts = {.size = o->size, .threads = o->threads,
                                    .skip_bad = o->skip_bad, .mask_threshold = o->mask_threshold};
    return oclseg_dataset_load_shared(pairs, &dopts, out);
}

/* Both ISIC splits, scanned and checked for shared ids before any image is decoded. */
static int load_splits(const oclseg_fit_options *o, const char *root, fit_data *d) {
    oclseg_pair_list train = {0}, test = {0};
    int st = oclseg_isic_scan(root, OCLSEG_SPLIT_TRAIN, o->skip_bad, &train);
    if (st == OCLSEG_OK) st = oclseg_isic_scan(root, OCLSEG_SPLIT_TEST, o->skip_bad, &test);
    if (st == OCLSEG_OK) st = oclseg_pairs_check_disjoint(&train, &test, root, o->allow_overlap);
    if (st == OCLSEG_OK) st = load_pairs(o, &train, &d->train);
    if (st == OCLSEG_OK) st = load_pairs(o, &test, &d->test);
    oclseg_pair_list_free(&train);
    oclseg_pair_list_free(&test);
    return st;
}

/* The one-line data health report of the loaded splits; all-empty masks are an error. */
static int report_health(const oclseg_fit_options *o, const fit_data *d) {
    const oclseg_dataset *sets[2] = {d->train, d->test};
    const char *names[2] = {"train", "test"};
    char line[2048] = "data:";
    for (int k = 0; k < 2; k++) {
        if (!sets[k]) continue;
        char part[1024];
        int st = oclseg_data_health_report(sets[k], names[k], part, sizeof part);
        size_t used = strlen(line);
        snprintf(line + used, sizeof line - used, "%s %s", k ? ";" : "", part);
        if (st != OCLSEG_OK) {
            fprintf(stderr, "%s\n", line);
            return st;
        }
    }
    if (!o->quiet) printf("%s\n", line);
    return OCLSEG_OK;
}

/* Holds out the validation part of d->train (deterministic from the seed). */
static int split_val(const oclseg_fit_options *o, fit_data *d) {
    if (!(o->val_fraction > 0.0)) return OCLSEG_OK;
    oclseg_dataset *all = d->train, *train = NULL;
    int st = oclseg_dataset_split(all, o->val_fraction, o->seed, &train, &d->val);
    if (st != OCLSEG_OK) return st;
    if (!d->val) {
        oclseg_dataset_free(train);
        OCLSEG_ERROR("--val-fraction %g: %d training images are too few to hold any out",
                     o->val_fraction, all->count);
        return OCLSEG_ERR_INVALID_ARG;
    }
    oclseg_dataset_free(all);
    d->train = train;
    TRY(oclseg_dataset_share(d->train)); /* the split made private copies: one per host again */
    return oclseg_dataset_share(d->val);
}

static int load_data_all(const oclseg_fit_options *o, fit_data *d) {
    memset(d, 0, sizeof *d);
    if (o->images_dir || o->masks_dir) {
        if (!o->images_dir || !o->masks_dir) {
            OCLSEG_ERROR("--images and --masks go together");
            return OCLSEG_ERR_INVALID_ARG;
        }
        oclseg_pair_list pairs = {0};
        TRY(oclseg_pairs_scan(o->images_dir, o->masks_dir, o->mask_suffix, o->skip_bad, &pairs));
        int st = load_pairs(o, &pairs, &d->train);
        oclseg_pair_list_free(&pairs);
        return st == OCLSEG_OK ? report_health(o, d) : st;
    }
    const char *root = o->data_dir;
    if (!root) {
        root = OCLSEG_SYNTH_DIR;
        char probe[4096];
        snprintf(probe, sizeof probe, "%s/ISBI2016_ISIC_Part1_Test_GroundTruth", root);
        if (!dir_exists(probe) && oclseg_dist_rank() == 0) { /* rank 0 writes, the others wait */
            if (!o->quiet)
                printf("no --data given: generating the synthetic set in %s (900 train, 379 test)\n",
                       root);
            TRY(oclseg_synth_write(root, 900, 379, 1));
        }
        TRY(oclseg_dist_barrier());
    }
    TRY(load_splits(o, root, d));
    return report_health(o, d);
}

int fit_load_data(const oclseg_fit_options *o, fit_data *d) {
    TRY(load_data_all(o, d));
    return split_val(o, d);
}
