/* The preloaded dataset: parallel decode + resize of every pair, batch assembly with ImageNet
 * normalization and flip augmentation, and the deterministic shuffle. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "data/data_internal.h"
#include "oclseg/data.h"

const float oclseg_imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
const float oclseg_imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* ---- loading --------------------------------------------------------------------------------- */

typedef struct load_job {
    const oclseg_pair_list *pairs;
    oclseg_dataset *ds;
    int skip_bad;
    double mask_threshold;
    int *sample_status; /* per pair: OCLSEG_OK or the error */
    pthread_mutex_t lock;
    int end;   /* pairs next .. end-1 are this job's */
    int next;  /* next pair to take (under lock) */
    int stop;  /* set on the first error when not skipping (under lock) */
} load_job;

/* Decodes, checks and resizes pair i into slot i. One full-size image is alive at a time: the
 * image is resized and freed before the mask is decoded. */
static int load_one(load_job *job, int i) {
    const oclseg_pair *p = &job->pairs->items[i];
    oclseg_dataset *ds = job->ds;
    const int S = ds->size;
    oclseg_image full, small;
    int status = oclseg_image_load(p->image_path, 3, &full);
    if (status != OCLSEG_OK) return status;
    const int width = full.width, height = full.height;
    status = oclseg_resize_bilinear(&full, S, S, &small);
    oclseg_image_free(&full);
    if (status != OCLSEG_OK) return status;
    memcpy(ds->images + (size_t)i * S * S * 3, small.pixels, (size_t)S * S * 3);
    oclseg_image_free(&small);

    TRY(oclseg_mask_load(p->mask_path, job->mask_threshold, &full, &ds->samples[i].mask));
    if (full.width != width || full.height != height) {
        OCLSEG_ERROR("mask %s is %dx%d but its image %s is %dx%d", p->mask_path, full.width,
                     full.height, p->image_path, width, height);
        oclseg_image_free(&full);
        return OCLSEG_ERR_FORMAT;
    }
    status = oclseg_resize_nearest(&full, S, S, &small);
    oclseg_image_free(&full);
    if (status != OCLSEG_OK) return status;
    memcpy(ds->masks + (size_t)i * S * S, small.pixels, (size_t)S * S);
    oclseg_image_free(&small);
    ds->samples[i].orig_width = width;
    ds->samples[i].orig_height = height;
    return OCLSEG_OK;
}

static void *load_worker(void *arg) {
    load_job *job = arg;
    for (;;) {
        pthread_mutex_lock(&job->lock);
        int i = job->stop ? job->end : job->next++;
        pthread_mutex_unlock(&job->lock);
        if (i >= job->end) break;
        int status = load_one(job, i);
        job->sample_status[i] = status;
        if (status != OCLSEG_OK && !job->skip_bad) {
            pthread_mutex_lock(&job->lock);
            job->stop = 1;
            pthread_mutex_unlock(&job->lock);
        }
    }
    return NULL;
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n > 16 ? 16 : (int)n;
}

int dataset_resolve_options(const oclseg_pair_list *pairs, const oclseg_dataset_options *opts,
                            oclseg_dataset_options *o) {
    if (!pairs || pairs->count <= 0) {
        OCLSEG_ERROR("oclseg_dataset_load: no pairs to load");
        return OCLSEG_ERR_INVALID_ARG;
    }
    memset(o, 0, sizeof *o);
    if (opts) *o = *opts;
    if (o->size == 0) o->size = OCLSEG_DEFAULT_IMAGE_SIZE;
    if (o->size < 1 || o->size > OCLSEG_MAX_IMAGE_SIZE || o->threads < 0) {
        OCLSEG_ERROR("oclseg_dataset_load: invalid size %d or thread count %d", o->size, o->threads);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (o->threads == 0) o->threads = default_threads();
    if (o->threads > pairs->count) o->threads = pairs->count;
    return OCLSEG_OK;
}

void dataset_decode_range(const oclseg_pair_list *pairs, const oclseg_dataset_options *o,
                          oclseg_dataset *ds, int lo, int hi, int *sample_status) {
    for (int i = lo; i < hi; i++) sample_status[i] = OCLSEG_ERR_INTERRUPTED; /* not reached */
    int threads_wanted = o->threads < hi - lo ? o->threads : hi - lo;
    if (threads_wanted < 1) return;
    pthread_t *threads = calloc((size_t)threads_wanted, sizeof(pthread_t));
    load_job job = {.pairs = pairs, .ds = ds, .skip_bad = o->skip_bad,
                    .mask_threshold = o->mask_threshold,
                    .sample_status = sample_status, .end = hi, .next = lo, .stop = 0};
    pthread_mutex_init(&job.lock, NULL);
    int started = 0;
    for (; threads && started < threads_wanted; started++)
        if (pthread_create(&threads[started], NULL, load_worker, &job) != 0) break;
    if (started == 0) load_worker(&job); /* no thread could start: do it here */
    for (int t = 0; t < started; t++) pthread_join(threads[t], NULL);
    pthread_mutex_destroy(&job.lock);
    free(threads);
}

int dataset_finish(oclseg_dataset *ds, const oclseg_pair_list *pairs, int skip_bad,
                   const int *sample_status) {
    /* Keep the good samples in pair order (deterministic whatever the thread timing). */
    const int n = pairs->count, S = ds->size;
    int status = OCLSEG_OK, kept = 0;
    for (int i = 0; i < n; i++) {
        if (sample_status[i] != OCLSEG_OK) {
            if (!skip_bad) {
                if (status == OCLSEG_OK && sample_status[i] != OCLSEG_ERR_INTERRUPTED)
                    status = sample_status[i];
                continue;
            }
            ds->skipped++;
            continue;
        }
        if (kept != i) {
            memmove(ds->images + (size_t)kept * S * S * 3, ds->images + (size_t)i * S * S * 3,
                    (size_t)S * S * 3);
            memmove(ds->masks + (size_t)kept * S * S, ds->masks + (size_t)i * S * S, (size_t)S * S);
        }
        oclseg_sample *s = &ds->samples[kept];
        s->orig_width = ds->samples[i].orig_width;
        s->orig_height = ds->samples[i].orig_height;
        s->mask = ds->samples[i].mask;
        s->id = strdup(pairs->items[i].id);
        s->image_path = strdup(pairs->items[i].image_path);
        s->mask_path = strdup(pairs->items[i].mask_path);
        ds->count = ++kept;
        if (!s->id || !s->image_path || !s->mask_path) status = OCLSEG_ERR_OUT_OF_MEMORY;
    }
    if (status == OCLSEG_OK && ds->skipped)
        data_warn("skipped %d of %d image/mask pairs that could not be loaded", ds->skipped, n);
    if (status == OCLSEG_OK && ds->count == 0) {
        OCLSEG_ERROR("none of the %d image/mask pairs could be loaded", n);
        status = OCLSEG_ERR_FORMAT;
    }
    return status;
}

int oclseg_dataset_load(const oclseg_pair_list *pairs, const oclseg_dataset_options *opts,
                        oclseg_dataset **out) {
    if (!out) return OCLSEG_ERR_INVALID_ARG;
    *out = NULL;
    oclseg_dataset_options o;
    TRY(dataset_resolve_options(pairs, opts, &o));
    const int n = pairs->count, S = o.size;
    oclseg_dataset *ds = calloc(1, sizeof *ds);
    int *sample_status = calloc((size_t)n, sizeof(int));
    if (ds) {
        ds->size = S;
        ds->images = malloc((size_t)n * S * S * 3);
        ds->masks = malloc((size_t)n * S * S);
        ds->samples = calloc((size_t)n, sizeof(oclseg_sample));
    }
    if (!ds || !sample_status || !ds->images || !ds->masks || !ds->samples) {
        OCLSEG_ERROR("out of memory for a dataset of %d images at %dx%d", n, S, S);
        free(sample_status);
        oclseg_dataset_free(ds);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    dataset_decode_range(pairs, &o, ds, 0, n, sample_status);
    int status = dataset_finish(ds, pairs, o.skip_bad, sample_status);
    free(sample_status);
    if (status != OCLSEG_OK) {
        oclseg_dataset_free(ds);
        return status;
    }
    *out = ds;
    return OCLSEG_OK;
}

void oclseg_dataset_free(oclseg_dataset *ds) {
    if (!ds) return;
    if (ds->samples) {
        for (int i = 0; i < ds->count; i++) {
            free(ds->samples[i].id);
            free(ds->samples[i].image_path);
            free(ds->samples[i].mask_path);
        }
    }
    free(ds->samples);
    if (ds->mapping) {
        munmap(ds->mapping, ds->mapping_bytes); /* images and masks lie in the shared file */
    } else {
        free(ds->images);
        free(ds->masks);
    }
    free(ds);
}

/* ---- hashing, augmentation, shuffling -------------------------------------------------------------- */

uint64_t oclseg_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

oclseg_augment oclseg_augment_draw(uint64_t seed, int epoch, int sample_index) {
    uint64_t counter = ((uint64_t)(uint32_t)epoch << 32) | (uint32_t)sample_index;
    uint64_t h = oclseg_mix64(seed ^ oclseg_mix64(counter));
    oclseg_augment a = {.flip_h = (uint8_t)(h >> 63), .flip_v = (uint8_t)((h >> 62) & 1)};
    return a;
}

/* splitmix64: state advances by the golden-ratio increment, output is mix64(state). */
static uint64_t splitmix64_next(uint64_t *state) {
    *state += 0x9e3779b97f4a7c15ULL;
    return oclseg_mix64(*state);
}

/* Uniform in [0, bound) without modulo bias: draws below 2^64 mod bound are rejected. */
static uint64_t uniform_below(uint64_t *state, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    uint64_t r;
    do r = splitmix64_next(state);
    while (r < threshold);
    return r % bound;
}

int oclseg_shuffle(int *perm, int n, uint64_t seed, int epoch) {
    if (!perm || n < 0) return OCLSEG_ERR_INVALID_ARG;
    uint64_t state = seed ^ oclseg_mix64((uint64_t)(int64_t)epoch + 1);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)uniform_below(&state, (uint64_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    return OCLSEG_OK;
}

/* ---- batches ----------------------------------------------------------------------------------- */

/* lut[c][v] = (v / 255 - mean[c]) / std[c], computed once per call (768 floats). */
void data_normalize_lut(float lut[3][256]) {
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v / 255.0f - oclseg_imagenet_mean[c]) / oclseg_imagenet_std[c];
}

void oclseg_image_normalize(const uint8_t *rgb_hwc, int width, int height, float *chw) {
    float lut[3][256];
    data_normalize_lut(lut);
    const size_t plane = (size_t)width * height;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) chw[c * plane + i] = lut[c][rgb_hwc[3 * i + c]];
}

/* Anything oclseg_augment_apply must do (the flips alone stay on the exact integer path). */
static int more_than_flips(const oclseg_augment *a) {
    return a->transpose || a->warp || a->colour;
}

int data_sample_assemble(const oclseg_dataset *ds, int index, const oclseg_augment *a,
                         const float lut[3][256], uint8_t *scratch, float *out_img,
                         float *out_msk) {
    if (index < 0 || index >= ds->count) {
        OCLSEG_ERROR("batch assembly: sample index %d outside 0..%d", index, ds->count - 1);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const int S = ds->size;
    const size_t plane = (size_t)S * S;
    const uint8_t *img = ds->images + (size_t)index * plane * 3;
    const uint8_t *msk = ds->masks + (size_t)index * plane;
    int fh = a ? a->flip_h : 0, fv = a ? a->flip_v : 0;
    if (a && more_than_flips(a)) {
        oclseg_augment_apply(img, msk, S, a, scratch, scratch + plane * 3);
        img = scratch;
        msk = scratch + plane * 3;
        fh = fv = 0;
    }
    for (int y = 0; y < S; y++) {
        const int sy = fv ? S - 1 - y : y;
        const uint8_t *irow = img + (size_t)sy * S * 3, *mrow = msk + (size_t)sy * S;
        float *o0 = out_img + (size_t)y * S, *o1 = o0 + plane, *o2 = o1 + plane;
        if (fh) {
            for (int x = 0; x < S; x++) {
                const int sx = S - 1 - x;
                o0[x] = lut[0][irow[3 * sx]];
                o1[x] = lut[1][irow[3 * sx + 1]];
                o2[x] = lut[2][irow[3 * sx + 2]];
            }
            if (out_msk)
                for (int x = 0; x < S; x++) out_msk[(size_t)y * S + x] = (float)mrow[S - 1 - x];
        } else {
            for (int x = 0; x < S; x++) {
                o0[x] = lut[0][irow[3 * x]];
                o1[x] = lut[1][irow[3 * x + 1]];
                o2[x] = lut[2][irow[3 * x + 2]];
            }
            if (out_msk)
                for (int x = 0; x < S; x++) out_msk[(size_t)y * S + x] = (float)mrow[x];
        }
    }
    return OCLSEG_OK;
}

int oclseg_dataset_batch(const oclseg_dataset *ds, const int *indices, int count,
                         const oclseg_augment *aug, float *images, float *masks) {
    if (!ds || !indices || count < 0 || !images) {
        OCLSEG_ERROR("oclseg_dataset_batch: invalid arguments");
        return OCLSEG_ERR_INVALID_ARG;
    }
    for (int b = 0; b < count; b++)
        if (indices[b] < 0 || indices[b] >= ds->count) {
            OCLSEG_ERROR("oclseg_dataset_batch: sample index %d outside 0..%d", indices[b],
                         ds->count - 1);
            return OCLSEG_ERR_INVALID_ARG;
        }
    float lut[3][256];
    data_normalize_lut(lut);
    const size_t plane = (size_t)ds->size * ds->size;
    uint8_t *scratch = NULL; /* S x S x 4: RGB + mask of a sample with more than flips */
    int st = OCLSEG_OK;
    for (int b = 0; b < count && st == OCLSEG_OK; b++) {
        if (aug && more_than_flips(&aug[b]) && !scratch && !(scratch = malloc(plane * 4)))
            return OCLSEG_ERR_OUT_OF_MEMORY;
        st = data_sample_assemble(ds, indices[b], aug ? &aug[b] : NULL, lut, scratch,
                                  images + (size_t)b * 3 * plane,
                                  masks ? masks + (size_t)b * plane : NULL);
    }
    free(scratch);
    return st;
}
