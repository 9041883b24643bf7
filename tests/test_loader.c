/* The prefetching loader: the same bytes as oclseg_dataset_batch whatever the thread count and
 * prefetch depth; an error in a worker reaches the take of its batch; batches in flight are
 * dropped and the threads joined on cancel and free. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/data.h"
#include "oclseg/loader.h"

enum { N = 10, S = 48, B = 4, STEPS = 24 };

/* A data set of N random S x S images (bytes from a fixed seed) and 0/1 masks. */
static oclseg_dataset *random_dataset(void) {
    oclseg_dataset *ds = calloc(1, sizeof *ds);
    ck_assert_ptr_nonnull(ds);
    ds->count = N;
    ds->size = S;
    ds->images = malloc((size_t)N * S * S * 3);
    ds->masks = malloc((size_t)N * S * S);
    ds->samples = calloc(N, sizeof *ds->samples);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < (size_t)N * S * S * 3; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ds->images[i] = (uint8_t)x;
        if (i < (size_t)N * S * S) ds->masks[i] = (uint8_t)(x >> 40) & 1;
    }
    return ds;
}

/* The indices and augmentations (the best recipe's kinds) of batch `step`. */
static void batch_of(int step, int *idx, oclseg_augment *aug) {
    const oclseg_augment_config c = {.flips = 1, .dihedral = 1, .rotate_deg = 20, .scale = 0.1f,
                                     .translate = 0.05f, .crop_min = 0.5f, .brightness = 0.15f,
                                     .contrast = 0.15f, .saturation = 0.15f, .hue = 0.02f};
    for (int b = 0; b < B; b++) {
        idx[b] = (step * 3 + b * 7) % N;
        aug[b] = oclseg_augment_draw_config(&c, 5, step / 3, idx[b]);
    }
}

START_TEST(same_bytes_whatever_the_threads) {
    oclseg_dataset *ds = random_dataset();
    const size_t img = (size_t)B * 3 * S * S, msk = (size_t)B * S * S;
    float *ref_i = malloc(STEPS * img * sizeof(float)), *ref_m = malloc(STEPS * msk * sizeof(float));
    int idx[B];
    oclseg_augment aug[B];
    for (int s = 0; s < STEPS; s++) {
        batch_of(s, idx, aug);
        ck_assert_int_eq(oclseg_dataset_batch(ds, idx, B, aug, ref_i + s * img, ref_m + s * msk),
                         OCLSEG_OK);
    }
    const int threads[] = {0, 1, 2, 4}, prefetch[] = {1, 3};
    for (int t = 0; t < 4; t++)
        for (int p = 0; p < 2; p++) {
            oclseg_loader_options o = {.threads = threads[t], .prefetch = prefetch[p], .max_batch = B};
            oclseg_loader *l = NULL;
            ck_assert_int_eq(oclseg_loader_create(ds, &o, &l), OCLSEG_OK);
            int submitted = 0;
            for (int s = 0; s < STEPS; s++) {
                while (submitted < STEPS && oclseg_loader_room(l) > 0) {
                    batch_of(submitted++, idx, aug);
                    ck_assert_int_eq(oclseg_loader_submit(l, idx, B, aug), OCLSEG_OK);
                }
                const float *im, *mk;
                int count;
                double waited;
                ck_assert_int_eq(oclseg_loader_take(l, &im, &mk, &count, &waited), OCLSEG_OK);
                ck_assert_int_eq(count, B);
                ck_assert_msg(memcmp(im, ref_i + s * img, img * sizeof(float)) == 0 &&
                                  memcmp(mk, ref_m + s * msk, msk * sizeof(float)) == 0,
                              "batch %d differs with %d threads, prefetch %d", s, threads[t],
                              prefetch[p]);
            }
            oclseg_loader_free(l);
        }
    free(ref_i);
    free(ref_m);
    oclseg_dataset_free(ds);
}
END_TEST

/* The text written to stderr while fn runs. */
static void capture_stderr_begin(int *saved, char *path) {
    fflush(stderr);
    *saved = dup(2);
    strcpy(path, "/tmp/oclseg-loader-err-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    close(fd);
}
static void capture_stderr_end(int saved, const char *path, char *text, size_t size) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(text, 1, size - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    unlink(path);
}

/* A bad sample in the second of three queued batches: the first batch is fine, the second's
 * take returns the error (its message names the index), the third is dropped by free (no hang:
 * the test's timeout would catch one). */
START_TEST(worker_error_reaches_its_batch) {
    oclseg_dataset *ds = random_dataset();
    const int threads[] = {0, 1, 3};
    for (int t = 0; t < 3; t++) {
        oclseg_loader_options o = {.threads = threads[t], .prefetch = 3, .max_batch = B};
        oclseg_loader *l = NULL;
        ck_assert_int_eq(oclseg_loader_create(ds, &o, &l), OCLSEG_OK);
        int good[B] = {0, 1, 2, 3}, bad[B] = {4, 5, N + 7, 6};
        const float *im, *mk;
        int count;
        char path[64], text[4096];
        int saved;
        capture_stderr_begin(&saved, path);
        ck_assert_int_eq(oclseg_loader_submit(l, good, B, NULL), OCLSEG_OK);
        ck_assert_int_eq(oclseg_loader_take(l, &im, &mk, &count, NULL), OCLSEG_OK);
        ck_assert_int_eq(oclseg_loader_submit(l, bad, B, NULL), OCLSEG_OK);
        int third = threads[t] > 0 ? oclseg_loader_submit(l, good, B, NULL) : OCLSEG_OK;
        int st = oclseg_loader_take(l, &im, &mk, &count, NULL);
        capture_stderr_end(saved, path, text, sizeof text);
        ck_assert_int_eq(third, OCLSEG_OK);
        ck_assert_int_eq(st, OCLSEG_ERR_INVALID_ARG);
        ck_assert_msg(strstr(text, "sample index 17 outside 0..9") != NULL, "message: %s", text);
        oclseg_loader_free(l);
    }
    oclseg_dataset_free(ds);
}
END_TEST

/* Freed with every slot queued and work in progress (prefetch 4, 4 threads): the threads are
 * joined and nothing leaks (ASan); a full queue refuses another batch with a message. */
START_TEST(free_with_batches_in_flight) {
    oclseg_dataset *ds = random_dataset();
    for (int round = 0; round < 20; round++) {
        oclseg_loader_options o = {.threads = 4, .prefetch = 4, .max_batch = B};
        oclseg_loader *l = NULL;
        ck_assert_int_eq(oclseg_loader_create(ds, &o, &l), OCLSEG_OK);
        int idx[B];
        oclseg_augment aug[B];
        for (int s = 0; s < 4; s++) {
            batch_of(s, idx, aug);
            ck_assert_int_eq(oclseg_loader_submit(l, idx, B, aug), OCLSEG_OK);
        }
        ck_assert_int_eq(oclseg_loader_room(l), 0);
        if (round == 0) {
            char path[64], text[1024];
            int saved;
            capture_stderr_begin(&saved, path);
            int st = oclseg_loader_submit(l, idx, B, aug);
            capture_stderr_end(saved, path, text, sizeof text);
            ck_assert_int_eq(st, OCLSEG_ERR_INVALID_ARG);
            ck_assert_ptr_nonnull(strstr(text, "4 batches queued already"));
        }
        if (round % 2) oclseg_loader_cancel(l);
        oclseg_loader_free(l);
    }
    oclseg_dataset_free(ds);
}
END_TEST

/* ---- the per-pixel augmentation as it was before the row form (the reference) ---- */
static const double REF_PI = 3.14159265358979323846;
/* Rotates an RGB colour (0..255 floats) around the gray axis by `turn` of a full turn (a hue
 * shift; the luma-preserving YIQ rotation). */
static void ref_hue_rotate(float *rgb, double turn) {
    const double y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
    const double i = 0.596 * rgb[0] - 0.274 * rgb[1] - 0.322 * rgb[2];
    const double q = 0.211 * rgb[0] - 0.523 * rgb[1] + 0.312 * rgb[2];
    const double c = cos(2 * REF_PI * turn), s = sin(2 * REF_PI * turn);
    const double i2 = i * c - q * s, q2 = i * s + q * c;
    rgb[0] = (float)(y + 0.956 * i2 + 0.621 * q2);
    rgb[1] = (float)(y - 0.272 * i2 - 0.647 * q2);
    rgb[2] = (float)(y - 1.106 * i2 + 1.703 * q2);
}

/* Colour jitter in place on S*S RGB pixels: brightness (scale), contrast (around the image's
 * mean luma), saturation (around each pixel's luma), hue rotation; rounded and clamped. */
static void ref_colour_jitter(uint8_t *rgb, size_t pixels, const oclseg_augment *a) {
    if (!a->colour) return;
    double mean = 0.0;
    for (size_t i = 0; i < pixels; i++)
        mean += 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
    mean = mean / (double)pixels * a->brightness;
    for (size_t i = 0; i < pixels; i++) {
        float v[3];
        for (int c = 0; c < 3; c++) v[c] = rgb[3 * i + c] * a->brightness;
        for (int c = 0; c < 3; c++) v[c] = (float)(mean + (v[c] - mean) * a->contrast);
        const float luma = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
        for (int c = 0; c < 3; c++) v[c] = luma + (v[c] - luma) * a->saturation;
        if (a->hue != 0.0f) ref_hue_rotate(v, a->hue);
        for (int c = 0; c < 3; c++) {
            const float r = floorf(v[c] + 0.5f);
            rgb[3 * i + c] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
        }
    }
}

static void ref_augment_apply(const uint8_t *rgb, const uint8_t *mask, int size,
                          const oclseg_augment *a, uint8_t *out_rgb, uint8_t *out_mask) {
    const int S = size;
    for (int y = 0; y < S; y++) {
        for (int x = 0; x < S; x++) {
            /* output pixel centre in [-1, 1], then the dihedral part (flips, transpose) */
            double u = (x + 0.5) * 2.0 / S - 1.0, v = (y + 0.5) * 2.0 / S - 1.0;
            if (a->flip_h) u = -u;
            if (a->flip_v) v = -v;
            if (a->transpose) {
                const double t = u;
                u = v;
                v = t;
            }
            double su = u, sv = v;
            if (a->warp) {
                su = a->m[0] * u + a->m[1] * v + a->m[2];
                sv = a->m[3] * u + a->m[4] * v + a->m[5];
            }
            /* source pixel coordinates, clamped to the image (edge replication) */
            double fx = (su + 1.0) * S / 2.0 - 0.5, fy = (sv + 1.0) * S / 2.0 - 0.5;
            fx = fx < 0 ? 0 : fx > S - 1 ? S - 1 : fx;
            fy = fy < 0 ? 0 : fy > S - 1 ? S - 1 : fy;
            const int x0 = (int)fx, y0 = (int)fy;
            const int x1 = x0 + 1 < S ? x0 + 1 : x0, y1 = y0 + 1 < S ? y0 + 1 : y0;
            const double wx = fx - x0, wy = fy - y0;
            const size_t o = (size_t)y * S + x;
            for (int c = 0; c < 3; c++) {
                const double top = rgb[((size_t)y0 * S + x0) * 3 + c] * (1 - wx) +
                                   rgb[((size_t)y0 * S + x1) * 3 + c] * wx;
                const double bot = rgb[((size_t)y1 * S + x0) * 3 + c] * (1 - wx) +
                                   rgb[((size_t)y1 * S + x1) * 3 + c] * wx;
                out_rgb[o * 3 + c] = (uint8_t)floor(top * (1 - wy) + bot * wy + 0.5);
            }
            if (mask && out_mask) {
                const int nx = (int)floor(fx + 0.5), ny = (int)floor(fy + 0.5);
                out_mask[o] = mask[(size_t)ny * S + nx];
            }
        }
    }
    ref_colour_jitter(out_rgb, (size_t)S * S, a);
}

/* The row form of oclseg_augment_apply gives the bytes of the per-pixel form it replaced, for
 * random augmentations of every kind at several sizes (odd ones too). */
START_TEST(augment_rows_equal_the_per_pixel_form) {
    const int sizes[] = {32, 33, 64, 128};
    const oclseg_augment_config c = {.flips = 1, .dihedral = 1, .rotate_deg = 30, .scale = 0.3f,
                                     .translate = 0.2f, .crop_min = 0.3f, .brightness = 0.4f,
                                     .contrast = 0.4f, .saturation = 0.4f, .hue = 0.3f};
    for (int k = 0; k < 4; k++) {
        const int n = sizes[k];
        const size_t px = (size_t)n * n;
        uint8_t *rgb = malloc(px * 3), *msk = malloc(px), *o1 = malloc(px * 4), *o2 = malloc(px * 4);
        uint64_t x = 12345 + (uint64_t)n;
        for (size_t i = 0; i < px * 3; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            rgb[i] = (uint8_t)(x >> 20);
            if (i < px) msk[i] = (uint8_t)(x >> 50) & 1;
        }
        for (int sample = 0; sample < 64; sample++) {
            oclseg_augment a = oclseg_augment_draw_config(&c, 9, k, sample);
            if (sample == 1) a.hue = 0; /* the path without hue */
            if (sample == 2) a.warp = 0;
            memset(o1, 0xAA, px * 4);
            memset(o2, 0x55, px * 4);
            ref_augment_apply(rgb, msk, n, &a, o1, o1 + px * 3);
            oclseg_augment_apply(rgb, msk, n, &a, o2, o2 + px * 3);
            ck_assert_msg(memcmp(o1, o2, px * 4) == 0, "size %d sample %d differs", n, sample);
        }
        free(rgb), free(msk), free(o1), free(o2);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, same_bytes_whatever_the_threads);
    tcase_add_test(tc, worker_error_reaches_its_batch);
    tcase_add_test(tc, free_with_batches_in_flight);
    tcase_add_test(tc, augment_rows_equal_the_per_pixel_form);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
