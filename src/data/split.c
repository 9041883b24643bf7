/* Validation split: a deterministic (seeded) subset of the training set held out for model
 * selection, so that the test set is only used once, for the selected model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/data.h"

/* A new dataset holding samples idx[0..count) of ds (copies of pixels, names and mask info). */
static int dataset_subset(const oclseg_dataset *ds, const int *idx, int count,
                          oclseg_dataset **out) {
    const size_t s2 = (size_t)ds->size * ds->size;
    oclseg_dataset *sub = calloc(1, sizeof *sub);
    if (!sub) return OCLSEG_ERR_OUT_OF_MEMORY;
    sub->size = ds->size;
    sub->images = malloc((size_t)(count ? count : 1) * s2 * 3);
    sub->masks = malloc((size_t)(count ? count : 1) * s2);
    sub->samples = calloc((size_t)(count ? count : 1), sizeof *sub->samples);
    if (!sub->images || !sub->masks || !sub->samples) {
        oclseg_dataset_free(sub);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    for (int i = 0; i < count; i++) {
        const int j = idx[i];
        memcpy(sub->images + (size_t)i * s2 * 3, ds->images + (size_t)j * s2 * 3, s2 * 3);
        memcpy(sub->masks + (size_t)i * s2, ds->masks + (size_t)j * s2, s2);
        const oclseg_sample *s = &ds->samples[j];
        oclseg_sample *d = &sub->samples[i];
        d->orig_width = s->orig_width;
        d->orig_height = s->orig_height;
        d->mask = s->mask; /* encoding and foreground: what the data health reports */
        d->id = strdup(s->id);
        d->image_path = strdup(s->image_path);
        d->mask_path = strdup(s->mask_path);
        sub->count = i + 1;
        if (!d->id || !d->image_path || !d->mask_path) {
            oclseg_dataset_free(sub);
            return OCLSEG_ERR_OUT_OF_MEMORY;
        }
    }
    *out = sub;
    return OCLSEG_OK;
}

static int cmp_int(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int oclseg_val_count(int n, double fraction) {
    if (n < 2 || !(fraction > 0.0)) return 0;
    int v = (int)lround(fraction * n);
    if (v < 1) v = 1;
    if (v > n - 1) v = n - 1;
    return v;
}

int oclseg_dataset_split(const oclseg_dataset *ds, double fraction, uint64_t seed,
                         oclseg_dataset **train, oclseg_dataset **val) {
    *train = *val = NULL;
    if (!ds || !(fraction >= 0.0 && fraction < 1.0)) {
        OCLSEG_ERROR("validation fraction %g must be in [0, 1)", fraction);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const int n = ds->count, n_val = oclseg_val_count(n, fraction);
    int *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) return OCLSEG_ERR_OUT_OF_MEMORY;
    /* a permutation of its own: salted so that it differs from every epoch's shuffle */
    int st = oclseg_shuffle(perm, n, oclseg_mix64(seed ^ 0x76616c6964617465ULL), 0);
    if (st == OCLSEG_OK) {
        /* both parts keep the file order */
        qsort(perm, (size_t)n_val, sizeof *perm, cmp_int);
        qsort(perm + n_val, (size_t)(n - n_val), sizeof *perm, cmp_int);
        st = dataset_subset(ds, perm + n_val, n - n_val, train);
    }
    if (st == OCLSEG_OK && n_val > 0) st = dataset_subset(ds, perm, n_val, val);
    free(perm);
    if (st != OCLSEG_OK) {
        oclseg_dataset_free(*train);
        oclseg_dataset_free(*val);
        *train = *val = NULL;
    }
    return st;
}
