/* Tuner files: the shapes file the record child writes and the trials read, JSON results. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/safetensors.h"
#include "oclseg/status.h"
#include "oclseg/util.h"
#include "tune/tune_internal.h"

int tune_dump_json(json_t *j, const char *path) {
    char *text = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
    json_decref(j);
    if (!text) {
        OCLSEG_ERROR("%s: cannot format the JSON result", path);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    int st = oclseg_file_write_atomic(path, text, strlen(text));
    free(text);
    return st;
}

int tune_shapes_save(const oclseg_gemm_shape *s, int count, int default_own, const char *path) {
    json_t *arr = json_array();
    for (int i = 0; i < count; i++)
        json_array_append_new(arr, json_pack("{s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:f, s:I}",
                                             "trans_a", s[i].trans_a, "trans_b", s[i].trans_b,
                                             "batched", s[i].batched, "sum", s[i].sum, "batch",
                                             s[i].batch, "m", (json_int_t)s[i].m, "n",
                                             (json_int_t)s[i].n, "k", (json_int_t)s[i].k, "beta",
                                             (double)s[i].beta, "calls", (json_int_t)s[i].calls));
    return tune_dump_json(json_pack("{s:o, s:b}", "shapes", arr, "device_default_own", default_own),
                          path);
}

int tune_shapes_load(const char *path, oclseg_gemm_shape **out, int *count, int *default_own) {
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e), *arr = json_object_get(root, "shapes");
    *out = NULL;
    *count = 0;
    if (default_own) *default_own = json_is_true(json_object_get(root, "device_default_own"));
    if (!root) {
        OCLSEG_ERROR("%s: cannot read a shapes file: %s (line %d)", path, e.text, e.line);
        return OCLSEG_ERR_FORMAT;
    }
    if (!json_is_array(arr)) {
        OCLSEG_ERROR("%s: not a shapes file (no \"shapes\" array)", path);
        json_decref(root);
        return OCLSEG_ERR_FORMAT;
    }
    size_t n = json_array_size(arr);
    *out = calloc(n + 1, sizeof **out);
    if (!*out) {
        json_decref(root);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        json_int_t m = 0, nn = 0, k = 0, calls = 0;
        double beta = 0;
        oclseg_gemm_shape *s = &(*out)[i];
        if (json_unpack(o, "{s:i, s:i, s:i, s?i, s:i, s:I, s:I, s:I, s:F, s:I}", "trans_a",
                        &s->trans_a, "trans_b", &s->trans_b, "batched", &s->batched, "sum",
                        &s->sum, "batch", &s->batch, "m", &m, "n", &nn, "k", &k, "beta", &beta,
                        "calls", &calls) != 0 ||
            m <= 0 || nn <= 0 || k <= 0 || s->batch <= 0 || (s->sum && !s->batched)) {
            OCLSEG_ERROR("%s: shape %zu is malformed", path, i);
            free(*out);
            *out = NULL;
            json_decref(root);
            return OCLSEG_ERR_FORMAT;
        }
        s->m = (size_t)m, s->n = (size_t)nn, s->k = (size_t)k, s->beta = (float)beta;
        s->calls = (long)calls;
    }
    *count = (int)n;
    json_decref(root);
    return OCLSEG_OK;
}
