/* Dropout (Philox4x32-10 counter-based mask): host side of cl/dropout.cl and the host mask. */
#include <stdio.h>
#include <stdlib.h>

#include "oclseg/ops.h"
#include "runtime/kargs.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* The same Philox4x32-10 as cl/dropout.cl: ctr[4] in, out[4] out. */
static void philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        const uint64_t prod0 = (uint64_t)PHILOX_M0 * c0, prod1 = (uint64_t)PHILOX_M1 * c2;
        const uint32_t hi0 = (uint32_t)(prod0 >> 32), lo0 = (uint32_t)prod0;
        const uint32_t hi1 = (uint32_t)(prod1 >> 32), lo1 = (uint32_t)prod1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void op_dropout_mask_host(size_t count, float p, uint64_t seed, uint64_t step, uint8_t *keep) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (size_t first = 0; first < count; first += 4) {
        const uint64_t group = first / 4;
        const uint32_t ctr[4] = {(uint32_t)group, (uint32_t)(group >> 32), (uint32_t)step,
                                 (uint32_t)(step >> 32)};
        uint32_t words[4];
        philox4x32_10(ctr, key, words);
        for (size_t j = 0; j < 4 && first + j < count; j++) {
            const float u = (float)(words[j] >> 8) * 0x1.0p-24f; /* exact, as on the device */
            keep[first + j] = u >= p;
        }
    }
}

/* The double a user most likely meant by float f: its shortest decimal form that reads back as
 * f (0.9f -> 0.9, not 0.89999997615814209), so 1 - p rounds as PyTorch's double arithmetic does. */
static double float_as_typed_double(float f) {
    char text[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)f);
        const double d = strtod(text, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

/* Runs dropout_apply (x -> y) for the forward, or (dy -> dx) for the backward. */
static int run_dropout(oclseg_ctx *ctx, const char *what, const oclseg_tensor *x,
                       oclseg_tensor *y, float p, uint64_t seed, uint64_t step, size_t first) {
    if (!oclseg_tensor_same_shape(x, y)) {
        OCLSEG_ERROR("%s: shape mismatch in (%d,%d,%d,%d) vs out (%d,%d,%d,%d)", what, x->n, x->c,
                     x->h, x->w, y->n, y->c, y->h, y->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (!(p >= 0.0f && p <= 1.0f)) {
        OCLSEG_ERROR("%s: dropout probability %g is not in [0, 1]", what, (double)p);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const size_t numel = oclseg_tensor_numel(x);
    if (first % 4 != 0 || first + numel > UINT32_MAX) {
        OCLSEG_ERROR("%s: first element %zu must be a multiple of 4 and the masked range fit 32 "
                     "bits", what, first);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (x->off + numel > UINT32_MAX || y->off + numel > UINT32_MAX) {
        OCLSEG_ERROR("%s: tensor of %zu floats at offsets %zu/%zu exceeds 32-bit indexing", what,
                     numel, x->off, y->off);
        return OCLSEG_ERR_INVALID_ARG;
    }
    /* PyTorch: noise = mask / (1 - p) in the tensor's dtype, i.e. 1.0f / (float)(1 - p) with
     * 1 - p computed in double from the Python float p; p == 1 drops everything (noise 0). */
    const float keep_prob = (float)(1.0 - float_as_typed_double(p));
    const float scale = p < 1.0f ? 1.0f / keep_prob : 0.0f;
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "dropout", NULL, "dropout_apply", &k));
    cl_uint n = (cl_uint)numel;
    cl_uint seed_lo = (cl_uint)seed, seed_hi = (cl_uint)(seed >> 32);
    cl_uint step_lo = (cl_uint)step, step_hi = (cl_uint)(step >> 32);
    cl_uint group_off = (cl_uint)(first / 4);
    kargs a = karg_begin(k);
    karg_tensor(&a, x);
    karg_tensor(&a, y);
    karg_u32(&a, n);
    karg_f32(&a, p);
    karg_f32(&a, scale);
    karg_u32(&a, seed_lo);
    karg_u32(&a, seed_hi);
    karg_u32(&a, step_lo);
    karg_u32(&a, step_hi);
    karg_u32(&a, group_off);
    TRY(karg_end(&a));
    size_t global = (numel + 3) / 4; /* one work-item per Philox call (4 elements) */
    return oclseg_launch(ctx, k, 1, &global, NULL);
}

int op_dropout_forward(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y, float p,
                       uint64_t seed, uint64_t step) {
    return run_dropout(ctx, "dropout forward", x, y, p, seed, step, 0);
}

int op_dropout_backward(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *dx, float p,
                        uint64_t seed, uint64_t step) {
    return run_dropout(ctx, "dropout backward", dy, dx, p, seed, step, 0);
}

int op_dropout_forward_at(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y, float p,
                          uint64_t seed, uint64_t step, size_t first) {
    return run_dropout(ctx, "dropout forward", x, y, p, seed, step, first);
}

int op_dropout_backward_at(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *dx, float p,
                           uint64_t seed, uint64_t step, size_t first) {
    return run_dropout(ctx, "dropout backward", dy, dx, p, seed, step, first);
}
