/* Data health of a loaded split: mask encodings seen, empty masks, foreground fraction, warnings. */
#include <stdio.h>
#include <string.h>

#include "data/data_internal.h"
#include "oclseg/data.h"

void oclseg_data_health_compute(const oclseg_dataset *ds, oclseg_data_health *h) {
    memset(h, 0, sizeof *h);
    h->pairs = ds->count;
    double fg_sum = 0;
    for (int i = 0; i < ds->count; i++) {
        const oclseg_mask_info *m = &ds->samples[i].mask;
        fg_sum += m->foreground_fraction;
        if (m->foreground_fraction <= 0) h->empty++;
        char desc[48];
        oclseg_mask_describe(m, desc, sizeof desc);
        int k = 0;
        while (k < h->encodings && strcmp(h->encoding[k], desc) != 0) k++;
        if (k == h->encodings) {
            if (k == OCLSEG_HEALTH_MAX_ENCODINGS) {
                h->other_encodings++;
                continue;
            }
            snprintf(h->encoding[k], sizeof h->encoding[k], "%s", desc);
            h->encodings++;
        }
        h->encoding_count[k]++;
    }
    h->mean_foreground = ds->count ? fg_sum / ds->count : 0;
}

void oclseg_data_health_format(const oclseg_data_health *h, const char *split, char *buf,
                               size_t size) {
    size_t used = 0;
#define APPEND(...)                                                                   \
    do {                                                                              \
        int w_ = snprintf(buf + used, used < size ? size - used : 0, __VA_ARGS__);    \
        if (w_ > 0) used += (size_t)w_;                                               \
    } while (0)
    if (size) buf[0] = '\0';
    APPEND("%s %d pairs (", split, h->pairs);
    for (int k = 0; k < h->encodings; k++)
        APPEND("%s%s: %d", k ? ", " : "", h->encoding[k], h->encoding_count[k]);
    if (h->other_encodings) APPEND(", other: %d", h->other_encodings);
    APPEND("), %.1f%% empty, mean foreground %.1f%%",
           h->pairs ? 100.0 * h->empty / h->pairs : 0.0, 100.0 * h->mean_foreground);
#undef APPEND
}

/* Names up to three samples for which pick(i) holds: "ISIC_1 (0.0%), ISIC_7 (0.0%)". */
static void examples(const oclseg_dataset *ds, int (*pick)(const oclseg_sample *), char *buf,
                     size_t size) {
    size_t used = 0;
    int listed = 0, total = 0;
    buf[0] = '\0';
    for (int i = 0; i < ds->count; i++) {
        const oclseg_sample *s = &ds->samples[i];
        if (!pick(s)) continue;
        total++;
        if (listed < 3 && used < size) {
            int w = snprintf(buf + used, size - used, "%s%s (%.1f%%)", listed ? ", " : "",
                             s->mask_path, 100.0 * s->mask.foreground_fraction);
            if (w > 0) used += (size_t)w;
            listed++;
        }
    }
    if (total > listed && used < size) snprintf(buf + used, size - used, ", ...");
}

static int is_empty(const oclseg_sample *s) { return s->mask.foreground_fraction <= 0; }
static int is_small(const oclseg_sample *s) {
    return s->mask.foreground_fraction < OCLSEG_HEALTH_MIN_FOREGROUND;
}
static int is_large(const oclseg_sample *s) {
    return s->mask.foreground_fraction > OCLSEG_HEALTH_MAX_FOREGROUND;
}

int oclseg_data_health_check(const oclseg_dataset *ds, const oclseg_data_health *h,
                             const char *split) {
    char ex[1024];
    if (h->pairs > 0 && h->empty == h->pairs) {
        examples(ds, is_empty, ex, sizeof ex);
        OCLSEG_ERROR("%s: every one of the %d masks is empty (no lesion pixel), e.g. %s. Check the "
                     "mask folder and encoding; for masks whose lesion value is unusual pass "
                     "--mask-threshold T (value >= T is lesion)", split, h->pairs, ex);
        return OCLSEG_ERR_FORMAT;
    }
    if (h->empty > OCLSEG_HEALTH_MAX_EMPTY * h->pairs) {
        examples(ds, is_empty, ex, sizeof ex);
        data_warn("%s: %d of %d masks (%.1f%%) are empty, more than %.0f%%: %s", split, h->empty,
                  h->pairs, 100.0 * h->empty / h->pairs, 100 * OCLSEG_HEALTH_MAX_EMPTY, ex);
    }
    if (h->mean_foreground < OCLSEG_HEALTH_MIN_FOREGROUND) {
        examples(ds, is_small, ex, sizeof ex);
        data_warn("%s: the mean lesion fraction is %.2f%%, below %.1f%%: %s", split,
                  100 * h->mean_foreground, 100 * OCLSEG_HEALTH_MIN_FOREGROUND, ex);
    } else if (h->mean_foreground > OCLSEG_HEALTH_MAX_FOREGROUND) {
        examples(ds, is_large, ex, sizeof ex);
        data_warn("%s: the mean lesion fraction is %.1f%%, above %.0f%% (inverted masks?): %s",
                  split, 100 * h->mean_foreground, 100 * OCLSEG_HEALTH_MAX_FOREGROUND, ex);
    }
    return OCLSEG_OK;
}

int oclseg_data_health_report(const oclseg_dataset *ds, const char *split, char *line,
                              size_t size) {
    oclseg_data_health h;
    oclseg_data_health_compute(ds, &h);
    oclseg_data_health_format(&h, split, line, size);
    return oclseg_data_health_check(ds, &h, split);
}
