/* libFuzzer target: the safetensors reader (oclseg_st_parse) on arbitrary bytes, then lookups and
 * typed reads of every tensor it accepted, with the reader's invariants checked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/safetensors.h"

/* A broken invariant is a bug in the reader: stop so the fuzzer records the input. */
#define REQUIRE(cond)                                                                         \
    do {                                                                                      \
        if (!(cond)) __builtin_trap();                                                        \
    } while (0)

static void read_every_way(const oclseg_st_file *f, const oclseg_st_tensor *t) {
    /* numel * dtype size == nbytes <= the input size, so these buffers stay small */
    size_t n = t->numel ? t->numel : 1;
    float *f32 = malloc(n * sizeof *f32);
    double *f64 = malloc(n * sizeof *f64);
    int64_t *i64 = malloc(n * sizeof *i64);
    if (f32 && f64 && i64) {
        int is_real = t->dtype == OCLSEG_ST_F32 || t->dtype == OCLSEG_ST_F64;
        int is_int = t->dtype == OCLSEG_ST_I64 || t->dtype == OCLSEG_ST_I32;
        REQUIRE((oclseg_st_read_f32(f, t->name, f32, t->numel) == OCLSEG_OK) == is_real);
        REQUIRE((oclseg_st_read_f64(f, t->name, f64, t->numel) == OCLSEG_OK) == is_real);
        REQUIRE((oclseg_st_read_i64(f, t->name, i64, t->numel) == OCLSEG_OK) == is_int);
        /* a wrong element count is refused without touching dst */
        REQUIRE(oclseg_st_read_f32(f, t->name, f32, t->numel + 1) == OCLSEG_ERR_FORMAT);
    }
    free(f32);
    free(f64);
    free(i64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    oclseg_st_file *f;
    if (oclseg_st_parse(data, size, "fuzz.safetensors", &f) != OCLSEG_OK) {
        REQUIRE(f == NULL);
        return 0;
    }
    REQUIRE(f->size == size && size >= 8);
    size_t covered = 0;
    for (int i = 0; i < f->count; i++) {
        const oclseg_st_tensor *t = &f->tensors[i];
        REQUIRE(t->name && oclseg_st_find(f, t->name) == t);
        REQUIRE(t->ndim >= 0 && t->ndim <= OCLSEG_ST_MAX_DIMS);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            REQUIRE(t->shape[d] >= 0);
            numel *= (size_t)t->shape[d];
        }
        REQUIRE(numel == t->numel);
        REQUIRE(t->nbytes == t->numel * oclseg_st_dtype_size(t->dtype));
        REQUIRE(t->data >= f->bytes + 8 && t->data + t->nbytes <= f->bytes + f->size);
        REQUIRE(strlen(oclseg_st_dtype_name(t->dtype)) > 0);
        /* every byte of the tensor is inside the copy (ASan checks the reads) */
        unsigned sum = 0;
        for (size_t b = 0; b < t->nbytes; b++) sum += t->data[b];
        (void)sum;
        covered += t->nbytes;
        read_every_way(f, t);
    }
    REQUIRE(covered <= f->size);
    for (int i = 0; i < f->meta_count; i++)
        REQUIRE(oclseg_st_metadata(f, f->meta_keys[i]) != NULL);
    REQUIRE(oclseg_st_find(f, "__metadata__") == NULL);
    oclseg_st_free(f);
    return 0;
}
