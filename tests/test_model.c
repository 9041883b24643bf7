/* Tests the model's structure against torchvision's mobilenet_v2 state dict (key names, counts,
 * parameter totals measured with PyTorch 1.13), that a forward/backward runs finite, that the
 * table of layer kinds is complete, and that only training allocates gradients and optimizer
 * state. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/layers.h"
#include "oclseg/model.h"
#include "oclseg/session.h"

/* The default architecture at 32x32 for one image, on the first device (no weights), with the
 * seed or the skip decoder. */
static oclseg_model *default_model_32_with(oclseg_decoder_kind decoder) {
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.max_batch = 1;
    cfg.size = 32;
    cfg.decoder_kind = decoder;
    oclseg_model *m;
    ck_assert_int_eq(oclseg_model_create(harness_ctx(0), &cfg, &m), OCLSEG_OK);
    return m;
}

static oclseg_model *default_model_32(void) { return default_model_32_with(OCLSEG_DECODER_SEED); }

/* From PyTorch: LesionSegNet().state_dict() has 320 keys (52 of them num_batches_tracked),
 * 8,123,585 parameter floats and 34,112 running-statistic floats. */
START_TEST(structure_matches_pytorch) {
    oclseg_model *m = default_model_32();
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

/* The skip decoder, from PyTorch (tools/make_golden.py's LesionSegNet(decoder_kind="skip")):
 * 349 keys (57 num_batches_tracked), 8,410,337 parameter floats (6,186,465 in the decoder) and
 * 35,104 running-statistic floats; stage s joins the encoder's map at stride 16 >> s. */
START_TEST(skip_structure_matches_pytorch) {
    oclseg_model *m = default_model_32_with(OCLSEG_DECODER_SKIP);
    ck_assert_int_eq(m->param_count + m->bn_count, 349);
    ck_assert_int_eq(m->bn_count, 57);
    ck_assert_uint_eq(m->param_floats, 8410337);
    ck_assert_uint_eq(m->buffer_floats, 35104);
    ck_assert_uint_eq(m->decoder_param_off, 8410337 - 6186465);
    static const struct { const char *key; int n, c, h, w; } shapes[] = {
        {"decoder.0.0.weight", 1280, 256, 4, 4}, {"decoder.0.1.running_var", 256, 1, 1, 1},
        {"decoder.1.0.weight", 256 + 96, 128, 4, 4}, {"decoder.2.0.weight", 128 + 32, 64, 4, 4},
        {"decoder.3.0.weight", 64 + 24, 32, 4, 4}, {"decoder.4.0.weight", 32 + 16, 16, 4, 4},
        {"decoder.4.1.bias", 16, 1, 1, 1}, {"decoder.5.weight", 1, 16, 1, 1},
        {"decoder.5.bias", 1, 1, 1, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int id = oclseg_model_find_param(m, shapes[i].key);
        ck_assert_msg(id >= 0, "missing key %s", shapes[i].key);
        const oclseg_param *p = &m->params[id];
        ck_assert_msg(p->n == shapes[i].n && p->c == shapes[i].c && p->h == shapes[i].h &&
                      p->w == shapes[i].w, "%s: (%d,%d,%d,%d)", shapes[i].key, p->n, p->c, p->h,
                      p->w);
    }
    /* the joins: four concats, each of a decoder map and an encoder map of the same size */
    int joins = 0;
    for (int i = 0; i < m->layer_count; i++) {
        const oclseg_layer *l = &m->layers[i];
        if (l->kind != LAYER_CONCAT) continue;
        const oclseg_activation *a = &m->acts[l->in], *e = &m->acts[l->in2];
        ck_assert_int_eq(e->h, 32 >> (4 - joins));
        ck_assert(a->h == e->h && a->w == e->w && m->acts[l->out].c == a->c + e->c);
        ck_assert(l->in2 <= m->layers[m->encoder_layer_count].in); /* an encoder map */
        joins++;
    }
    ck_assert_int_eq(joins, 4);
    const oclseg_activation *logits = &m->acts[m->logits_act];
    ck_assert(logits->c == 1 && logits->h == 32 && logits->w == 32);
    oclseg_model_free(m);
}
END_TEST

/* The skip-bilinear decoder, from PyTorch (make_golden.py's decoder_kind="skip-bilinear"): 344
 * keys (the five transposed convolutions' biases are gone), 5,703,921 parameter floats
 * (3,480,049 in the decoder); each stage is a bilinear x2 upsampling of the stage's input, then a
 * 3x3 convolution (pad 1, no bias) of it. */
START_TEST(skip_bilinear_structure_matches_pytorch) {
    oclseg_model *m = default_model_32_with(OCLSEG_DECODER_SKIP_BILINEAR);
    ck_assert_int_eq(m->param_count + m->bn_count, 344);
    ck_assert_int_eq(m->bn_count, 57);
    ck_assert_uint_eq(m->param_floats, 5703921);
    ck_assert_uint_eq(m->buffer_floats, 35104);
    ck_assert_uint_eq(m->decoder_param_off, 5703921 - 3480049);
    static const struct { const char *key; int n, c; } shapes[] = {
        {"decoder.0.0.weight", 256, 1280}, {"decoder.1.0.weight", 128, 256 + 96},
        {"decoder.2.0.weight", 64, 128 + 32}, {"decoder.3.0.weight", 32, 64 + 24},
        {"decoder.4.0.weight", 16, 32 + 16}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int id = oclseg_model_find_param(m, shapes[i].key);
        ck_assert_msg(id >= 0, "missing key %s", shapes[i].key);
        const oclseg_param *p = &m->params[id];
        ck_assert_msg(p->n == shapes[i].n && p->c == shapes[i].c && p->h == 3 && p->w == 3,
                      "%s: (%d,%d,%d,%d)", shapes[i].key, p->n, p->c, p->h, p->w);
    }
    ck_assert_int_lt(oclseg_model_find_param(m, "decoder.0.0.bias"), 0);
    int stages = 0;
    for (int i = m->encoder_layer_count; i < m->layer_count; i++) {
        const oclseg_layer *l = &m->layers[i];
        if (l->kind != LAYER_UPSAMPLE) continue;
        const oclseg_activation *a = &m->acts[l->in], *y = &m->acts[l->out];
        ck_assert(y->c == a->c && y->h == 2 * a->h && y->w == 2 * a->w);
        const oclseg_layer *conv = &m->layers[i + 1];
        ck_assert(conv->kind == LAYER_CONV && conv->in == l->out && conv->stride == 1 &&
                  conv->param2 < 0 && m->params[conv->param].h == 3);
        stages++;
    }
    ck_assert_int_eq(stages, 5);
    oclseg_model_free(m);
}
END_TEST

/* A reduced model (any decoder) runs forward + backward in both modes with finite logits and
 * gradients. */
START_TEST(forward_backward_finite) {
    enum { KINDS = OCLSEG_DECODER_COUNT };
    for (int d = 0; d < KINDS * harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d / KINDS);
        oclseg_model_config cfg = {0.25f, 32, {16, 8, 8}, 32, 2, 0.5f,
                                   (oclseg_decoder_kind)(d % KINDS)};
        oclseg_model *m;
        ck_assert_int_eq(oclseg_model_create(ctx, &cfg, &m), OCLSEG_OK);
        ck_assert_int_eq(oclseg_model_init_random(m, 1), OCLSEG_OK);
        ck_assert_int_eq(oclseg_model_enable_training(m), OCLSEG_OK);
        size_t in_count = 2 * 3 * 32 * 32, out_count = 2 * 32 * 32;
        float *x = malloc(in_count * sizeof *x), *y = malloc(out_count * sizeof *y);
        harness_fill_uniform(x, in_count, -2, 2, 7);
        oclseg_tensor in = oclseg_model_input(m, 2);
        ck_assert_int_eq(oclseg_tensor_write(ctx, &in, x), OCLSEG_OK);
        for (int frozen = 0; frozen < 2; frozen++) {
            const oclseg_pass pass = {.n = 2, .train = 1, .frozen_encoder = frozen,
                                      .dropout_seed = 3};
            ck_assert_int_eq(oclseg_model_forward(m, &pass), OCLSEG_OK);
            oclseg_tensor logits = oclseg_model_logits(m, 2), g = oclseg_model_logits_grad(m, 2);
            ck_assert_int_eq(oclseg_tensor_read(ctx, &logits, y), OCLSEG_OK);
            for (size_t i = 0; i < out_count; i++) ck_assert(isfinite(y[i]));
            for (size_t i = 0; i < out_count; i++) y[i] = 1e-3f * (float)((i % 7) - 3);
            ck_assert_int_eq(oclseg_tensor_write(ctx, &g, y), OCLSEG_OK);
            ck_assert_int_eq(oclseg_model_backward(m, &pass), OCLSEG_OK);
            int idx = oclseg_model_find_param(m, d % KINDS ? "decoder.0.0.weight" : "decoder.0.weight");
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

/* Every kind has every column of the table, a unique name, and the model uses every kind (so
 * the golden, training and export tests run each entry) with its in-place flag. */
START_TEST(layer_table_complete) {
    for (int k = 0; k < LAYER_COUNT; k++) {
        const layer_kind_ops *kind = &layer_kinds[k];
        ck_assert_msg(kind->name && kind->name[0], "layer kind %d has no name", k);
        ck_assert_msg(kind->forward && kind->backward && kind->flops && kind->emit_onnx,
                      "layer kind %d (%s) lacks a forward, backward, FLOPs or ONNX emitter", k,
                      kind->name);
        for (int j = 0; j < k; j++)
            ck_assert_msg(strcmp(kind->name, layer_kinds[j].name) != 0, "two kinds named %s",
                          kind->name);
    }
    int used[LAYER_COUNT] = {0};
    for (int d = 0; d < OCLSEG_DECODER_COUNT; d++) {
        oclseg_model *m = default_model_32_with((oclseg_decoder_kind)d);
        for (int i = 0; i < m->layer_count; i++) {
            const oclseg_layer *l = &m->layers[i];
            ck_assert(l->kind >= 0 && l->kind < LAYER_COUNT);
            used[l->kind]++;
            ck_assert_int_eq(layer_kinds[l->kind].in_place, l->in == l->out);
        }
        oclseg_model_free(m);
    }
    for (int k = 0; k < LAYER_COUNT; k++)
        ck_assert_msg(used[k] > 0, "no decoder uses layer kind %s", layer_kinds[k].name);
}
END_TEST

/* A model session (predict, export) and an evaluation session allocate no gradients, optimizer
 * state or activation gradients; a training forward or a backward on them is an error, not a
 * crash; a training session (or oclseg_model_enable_training) has them, zeroed. */
START_TEST(only_training_allocates_gradients) {
    oclseg_ctx *ctx = harness_ctx(0);
    const oclseg_session_mode modes[3] = {OCLSEG_SESSION_MODEL, OCLSEG_SESSION_EVAL,
                                          OCLSEG_SESSION_TRAIN};
    size_t peak[3], param_bytes = 0;
    for (int i = 0; i < 3; i++) {
        oclseg_session_options so;
        oclseg_session_options_synthetic_training(&so, 32, 2, 0);
        so.dev = &ctx->info;
        so.mode = modes[i];
        oclseg_session *ses;
        ck_assert_int_eq(oclseg_session_create(&so, &ses), OCLSEG_OK);
        const oclseg_model *m = ses->model;
        const int training = modes[i] == OCLSEG_SESSION_TRAIN;
        const cl_mem arenas[6] = {m->grads_buf, m->state_bufs[0], m->state_bufs[1],
                                  m->bn_save_buf, m->grads_act_buf, m->grad_tmp_buf};
        for (int a = 0; a < 6; a++)
            ck_assert_msg((arenas[a] != NULL) == training, "mode %d: training arena %d %s", i, a,
                          training ? "missing" : "allocated");
        ck_assert_int_eq(m->grad_ready != NULL, training);
        peak[i] = ses->ctx->peak_bytes;
        param_bytes = m->param_floats * sizeof(float);
        oclseg_session_free(ses);
    }
    /* device memory: at least the gradients and the two optimizer states fewer */
    for (int i = 0; i < 2; i++)
        ck_assert_msg(peak[i] + 3 * param_bytes <= peak[2], "mode %d: %zu device bytes, "
                      "training %zu", i, peak[i], peak[2]);
    printf("device bytes at peak: model session %zu, eval %zu, training %zu\n", peak[0], peak[1],
           peak[2]);
    oclseg_model_config cfg = {0.25f, 32, {16, 8, 8}, 32, 2, 0.5f, OCLSEG_DECODER_SEED};
    oclseg_model *m;
    ck_assert_int_eq(oclseg_model_create(ctx, &cfg, &m), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_init_random(m, 1), OCLSEG_OK);
    const int bias = oclseg_model_find_param(m, "decoder.7.bias"); /* one float, trained */
    const oclseg_pass eval = {.n = 2, .dropout_seed = 3};
    const oclseg_pass train = {.n = 2, .train = 1, .dropout_seed = 3};
    ck_assert_int_eq(oclseg_model_forward(m, &eval), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_forward(m, &train), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_model_backward(m, &train), OCLSEG_ERR_INVALID_ARG);
    float one;
    ck_assert_int_eq(oclseg_model_read_grad(m, bias, &one), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_model_enable_training(m), OCLSEG_OK);
    const cl_mem grads = m->grads_buf;
    ck_assert_int_eq(oclseg_model_enable_training(m), OCLSEG_OK); /* once */
    ck_assert(grads && m->grads_buf == grads);
    ck_assert_int_eq(oclseg_model_read_grad(m, bias, &one), OCLSEG_OK);
    ck_assert(one == 0.0f);
    ck_assert_int_eq(oclseg_model_forward(m, &train), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_backward(m, &train), OCLSEG_OK);
    oclseg_model_free(m);
}
END_TEST

/* A pass is checked where it enters the model, and a backward runs only on the activations of
 * a training forward of the same pass (the old loose arguments let a backward of another batch
 * size, step or mode read the last forward's activations: a silent wrong gradient). */
START_TEST(backward_needs_its_forward_pass) {
    oclseg_ctx *ctx = harness_ctx(0);
    oclseg_model_config cfg = {0.25f, 32, {16, 8, 8}, 32, 2, 0.5f, OCLSEG_DECODER_SEED};
    oclseg_model *m;
    ck_assert_int_eq(oclseg_model_create(ctx, &cfg, &m), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_init_random(m, 1), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_enable_training(m), OCLSEG_OK);
    const oclseg_pass train = {.n = 2, .train = 1, .dropout_seed = 3, .step = 5};
    ck_assert_int_eq(oclseg_model_backward(m, &train), OCLSEG_ERR_INVALID_ARG); /* no forward */
    ck_assert_int_eq(oclseg_model_forward(m, &train), OCLSEG_OK);
    oclseg_pass other = train;
    other.n = 1;
    ck_assert_int_eq(oclseg_model_backward(m, &other), OCLSEG_ERR_INVALID_ARG);
    other = train;
    other.step = 6;
    ck_assert_int_eq(oclseg_model_backward(m, &other), OCLSEG_ERR_INVALID_ARG);
    other = train;
    other.image_offset = 1;
    ck_assert_int_eq(oclseg_model_backward(m, &other), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_model_backward(m, &train), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_backward(m, &train), OCLSEG_OK); /* the activations stay */
    /* an evaluation forward replaces the activations */
    const oclseg_pass eval = oclseg_pass_eval(2);
    ck_assert_int_eq(oclseg_model_forward(m, &eval), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_backward(m, &train), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_model_backward(m, &eval), OCLSEG_ERR_INVALID_ARG);
    /* passes that do not fit: the model's batch, a negative offset, counts that give this rank
     * (rank 0 of a group of one) another batch; a forward refused for its pass changes nothing */
    other = train;
    other.n = 3;
    ck_assert_int_eq(oclseg_model_forward(m, &other), OCLSEG_ERR_INVALID_ARG);
    other = train;
    other.image_offset = -1;
    ck_assert_int_eq(oclseg_model_forward(m, &other), OCLSEG_ERR_INVALID_ARG);
    const int counts[1] = {1};
    other = train;
    other.rank_counts = counts;
    ck_assert_int_eq(oclseg_model_forward(m, &other), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_model_forward(m, &train), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_forward(m, &other), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_model_backward(m, &train), OCLSEG_OK); /* refused before any work */
    oclseg_model_free(m);
}
END_TEST

/* A training session allocates exactly the state arenas its optimizer's table row names (NAdam,
 * Adam, AdamW 2, SGD 1, SGD without momentum 0, Lion 1), and its device peak shrinks by a whole
 * parameter arena per state fewer; an invalid optimizer configuration fails the session. */
START_TEST(optimizer_state_by_need) {
    oclseg_ctx *ctx = harness_ctx(0);
    size_t nadam_peak = 0;
    for (int k = 0; k <= OCLSEG_OPT_COUNT; k++) { /* OCLSEG_OPT_COUNT: SGD without momentum */
        oclseg_session_options so;
        oclseg_session_options_synthetic_training(&so, 32, 2, 0);
        so.dev = &ctx->info;
        oclseg_optim_config_default(&so.train.optim, k < OCLSEG_OPT_COUNT ? k : OCLSEG_OPT_SGD);
        if (k == OCLSEG_OPT_COUNT) so.train.optim.momentum = 0.0f;
        const int want = k == OCLSEG_OPT_COUNT ? 0 : oclseg_optimizer_get(k)->state_count;
        oclseg_session *ses;
        ck_assert_int_eq(oclseg_session_create(&so, &ses), OCLSEG_OK);
        const oclseg_model *m = ses->model;
        ck_assert_int_eq(m->state_count, want);
        for (int s = 0; s < OCLSEG_OPTIM_MAX_STATES; s++)
            ck_assert_msg((m->state_bufs[s] != NULL) == (s < want), "optimizer %d: state %d", k, s);
        const size_t peak = ses->ctx->peak_bytes, arena = m->param_floats * sizeof(float);
        if (k == OCLSEG_OPT_NADAM) nadam_peak = peak;
        else
            ck_assert_msg(peak + (size_t)(2 - want) * arena <= nadam_peak, "optimizer %d: peak %zu "
                          "bytes, NAdam's %zu, arena %zu", k, peak, nadam_peak, arena);
        /* arenas once allocated stay: another optimizer's count is refused */
        oclseg_optim_config other;
        oclseg_optim_config_default(&other, want == 2 ? OCLSEG_OPT_SGD : OCLSEG_OPT_ADAM);
        if (want > 0)
            ck_assert_int_eq(oclseg_model_enable_optimizer(ses->model, &other),
                             OCLSEG_ERR_INVALID_ARG);
        oclseg_session_free(ses);
    }
    oclseg_session_options so;
    oclseg_session_options_synthetic_training(&so, 32, 2, 0);
    so.dev = &ctx->info;
    oclseg_optim_config_default(&so.train.optim, OCLSEG_OPT_SGD);
    so.train.optim.decoupled_wd = 1;
    oclseg_session *ses = NULL;
    ck_assert_int_eq(oclseg_session_create(&so, &ses), OCLSEG_ERR_INVALID_ARG);
    ck_assert_ptr_null(ses);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, structure_matches_pytorch);
    tcase_add_test(tc, skip_structure_matches_pytorch);
    tcase_add_test(tc, skip_bilinear_structure_matches_pytorch);
    tcase_add_test(tc, forward_backward_finite);
    tcase_add_test(tc, layer_table_complete);
    tcase_add_test(tc, only_training_allocates_gradients);
    tcase_add_test(tc, backward_needs_its_forward_pass);
    tcase_add_test(tc, optimizer_state_by_need);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
