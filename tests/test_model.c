/* Tests the model's structure against torchvision's mobilenet_v2 state dict (key names, counts,
 * parameter totals measured with PyTorch 1.13) and that a forward/backward runs finite. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "oclseg/model.h"

/* From PyTorch: LesionSegNet().state_dict() has 320 keys (52 of them num_batches_tracked),
 * 8,123,585 parameter floats and 34,112 running-statistic floats. */
START_TEST(structure_matches_pytorch) {
    oclseg_ctx *ctx = harness_ctx(0);
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.max_batch = 1;
    cfg.size = 32;
    oclseg_model *m;
    ck_assert_int_eq(oclseg_model_create(ctx, &cfg, &m), OCLSEG_OK);
    ck_assert_int_eq(m->param_count + m->bn_count, 320);
    ck_assert_int_eq(m->bn_count, 52);
    ck_assert_uint_eq(m->param_floats, 8123585);
    ck_assert_uint_eq(m->buffer_floats, 34112);
    static const char *keys[] = {"encoder.0.0.weight", "encoder.1.conv.0.0.weight",
                                 "encoder.1.conv.1.weight", "encoder.1.conv.2.running_var",
                                 "encoder.2.conv.0.0.weight", "encoder.2.conv.1.0.weight",
                                 "encoder.2.conv.2.weight", "encoder.2.conv.3.bias",
                                 "encoder.17.conv.3.running_mean", "encoder.18.0.weight",
                                 "encoder.18.1.bias", "decoder.0.weight", "decoder.3.bias",
                                 "decoder.5.weight", "decoder.7.bias"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(oclseg_model_find_param(m, keys[i]) >= 0, "missing key %s", keys[i]);
    const oclseg_param *p = &m->params[oclseg_model_find_param(m, "encoder.2.conv.1.0.weight")];
    ck_assert(p->n == 96 && p->c == 1 && p->h == 3 && p->w == 3); /* depthwise (96, 1, 3, 3) */
    p = &m->params[oclseg_model_find_param(m, "decoder.0.weight")];
    ck_assert(p->n == 1280 && p->c == 256 && p->h == 4 && p->w == 4);
    /* decoder parameters come last, contiguously: frozen mode optimizes that range only */
    ck_assert_uint_eq(m->decoder_param_off, 8123585 - 5899713);
    oclseg_model_free(m);
}
END_TEST

/* A reduced model runs forward + backward in both modes with finite logits and gradients. */
START_TEST(forward_backward_finite) {
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        oclseg_model_config cfg = {0.25f, 32, {16, 8, 8}, 32, 2, 0.5f};
        oclseg_model *m;
        ck_assert_int_eq(oclseg_model_create(ctx, &cfg, &m), OCLSEG_OK);
        ck_assert_int_eq(oclseg_model_init_random(m, 1), OCLSEG_OK);
        size_t in_count = 2 * 3 * 32 * 32, out_count = 2 * 32 * 32;
        float *x = malloc(in_count * sizeof *x), *y = malloc(out_count * sizeof *y);
        harness_fill_uniform(x, in_count, -2, 2, 7);
        oclseg_tensor in = oclseg_model_input(m, 2);
        ck_assert_int_eq(oclseg_tensor_write(ctx, &in, x), OCLSEG_OK);
        for (int frozen = 0; frozen < 2; frozen++) {
            ck_assert_int_eq(oclseg_model_forward(m, 2, 1, frozen, 3, 0), OCLSEG_OK);
            oclseg_tensor logits = oclseg_model_logits(m, 2), g = oclseg_model_logits_grad(m, 2);
            ck_assert_int_eq(oclseg_tensor_read(ctx, &logits, y), OCLSEG_OK);
            for (size_t i = 0; i < out_count; i++) ck_assert(isfinite(y[i]));
            for (size_t i = 0; i < out_count; i++) y[i] = 1e-3f * (float)((i % 7) - 3);
            ck_assert_int_eq(oclseg_tensor_write(ctx, &g, y), OCLSEG_OK);
            ck_assert_int_eq(oclseg_model_backward(m, 2, frozen, 3, 0), OCLSEG_OK);
            int idx = oclseg_model_find_param(m, "decoder.0.weight");
            size_t count = oclseg_param_numel(&m->params[idx]);
            float *gw = malloc(count * sizeof *gw);
            ck_assert_int_eq(oclseg_model_read_grad(m, idx, gw), OCLSEG_OK);
            double norm = 0;
            for (size_t i = 0; i < count; i++) {
                ck_assert(isfinite(gw[i]));
                norm += gw[i] * (double)gw[i];
            }
            ck_assert(norm > 0);
            free(gw);
        }
        free(x);
        free(y);
        oclseg_model_free(m);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, structure_matches_pytorch);
    tcase_add_test(tc, forward_backward_finite);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
