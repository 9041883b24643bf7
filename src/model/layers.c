/* The table of layer kinds: forward, backward and FLOPs of each kind (the ONNX emitters are in
 * src/export/onnx.c), the only place that tells one kind from another in a pass. */
#include "model/layers.h"

#include <assert.h>

#include "model/model_internal.h"

#define BN_EPS 1e-5f      /* PyTorch's defaults (src/export/onnx.c folds with the same eps) */
#define BN_MOMENTUM 0.1f

/* ---- what several kinds share --------------------------------------------------------------- */

/* Whether layer i + 1 is a `kind` applied in place to layer i's output, run inside layer i's
 * passes. OCLSEG_NO_FUSION=1 (benchmarks' A/B) runs them as separate layers. */
static int fused_with_next(const oclseg_model *m, int i, oclseg_layer_kind kind) {
    const oclseg_layer *l = &m->layers[i], *next = i + 1 < m->layer_count ? l + 1 : NULL;
    return !m->ctx->env.no_fusion && next && next->kind == kind && next->in == l->out &&
           next->out == l->out;
}

/* BatchNorm layer i with the ReLU6 that follows it (forward: one bn_apply pass; backward: the
 * ReLU6 mask inside the BatchNorm's passes). */
static int bn_relu6_fused(const oclseg_model *m, int i) {
    return m->layers[i].kind == LAYER_BATCHNORM && fused_with_next(m, i, LAYER_RELU6);
}

/* First element of this batch's dropout mask: a data-parallel rank whose images start at image
 * image_offset of the global batch draws the mask they have there. */
static size_t dropout_first(const layer_pass *p, const oclseg_tensor *x) {
    return (size_t)p->image_offset * (size_t)x->c * (size_t)x->h * (size_t)x->w;
}

static oclseg_tensor param(const oclseg_model *m, int id) {
    return model_param_view(m, m->params_buf, id);
}

static oclseg_tensor grad(const oclseg_model *m, int id) {
    return model_param_view(m, m->grads_buf, id);
}

static oclseg_tensor in_act(const layer_pass *p, int i) {
    return model_act_view(p->m, p->m->layers[i].in, p->n);
}

static oclseg_tensor out_act(const layer_pass *p, int i) {
    return model_act_view(p->m, p->m->layers[i].out, p->n);
}

static oclseg_tensor out_grad(const layer_pass *p, int i) {
    return model_grad_view(p->m, p->m->layers[i].out, p->n);
}

static int copy_tensor(oclseg_ctx *ctx, const oclseg_tensor *src, oclseg_tensor *dst) {
    CL_CHECK(clEnqueueCopyBuffer(ctx->queue, src->buf, dst->buf, src->off * sizeof(float),
                                 dst->off * sizeof(float), oclseg_tensor_numel(src) * sizeof(float),
                                 0, NULL, NULL));
    return OCLSEG_OK;
}

/* ---- convolution (groups 1), no bias (or a bias: the skip decoder's head) -------------------- */
static oclseg_conv_params conv_geometry(const oclseg_model *m, const oclseg_layer *l) {
    int pad = m->params[l->param].h / 2;
    return (oclseg_conv_params){l->stride, l->stride, pad, pad};
}

static int conv_forward(const layer_pass *p, int i, int *layers) {
    const oclseg_layer *l = &p->m->layers[i];
    oclseg_tensor x = in_act(p, i), y = out_act(p, i), w = param(p->m, l->param);
    oclseg_tensor b = l->param2 >= 0 ? param(p->m, l->param2) : w;
    *layers = 1;
    return op_conv2d_forward(p->m->ctx, &x, &w, l->param2 >= 0 ? &b : NULL, &y,
                             conv_geometry(p->m, l));
}

static int conv_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    const oclseg_layer *l = &p->m->layers[i];
    oclseg_tensor x = in_act(p, i), dy = out_grad(p, i);
    oclseg_tensor w = param(p->m, l->param), dw = grad(p->m, l->param);
    oclseg_tensor db = l->param2 >= 0 ? grad(p->m, l->param2) : dw;
    return op_conv2d_backward(p->m->ctx, &x, &w, &dy, dx, &dw, l->param2 >= 0 ? &db : NULL,
                              conv_geometry(p->m, l));
}

static double conv_flops(const oclseg_model *m, const oclseg_layer *l, int n) {
    const oclseg_activation *in = &m->acts[l->in], *out = &m->acts[l->out];
    const oclseg_param *w = &m->params[l->param];
    return 2.0 * n * out->c * out->h * out->w * (double)in->c * w->h * w->w;
}

/* ---- 3x3 depthwise convolution -------------------------------------------------------------- */
static int depthwise_forward(const layer_pass *p, int i, int *layers) {
    const oclseg_layer *l = &p->m->layers[i];
    oclseg_tensor x = in_act(p, i), y = out_act(p, i), w = param(p->m, l->param);
    *layers = 1;
    return op_depthwise_forward(p->m->ctx, &x, &w, &y, l->stride);
}

static int depthwise_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    const oclseg_layer *l = &p->m->layers[i];
    oclseg_tensor x = in_act(p, i), dy = out_grad(p, i);
    oclseg_tensor w = param(p->m, l->param), dw = grad(p->m, l->param);
    return op_depthwise_backward(p->m->ctx, &x, &w, &dy, dx, &dw, l->stride);
}

static double depthwise_flops(const oclseg_model *m, const oclseg_layer *l, int n) {
    const oclseg_activation *out = &m->acts[l->out];
    return 2.0 * n * out->c * out->h * out->w * 9.0;
}

/* ---- BatchNorm (with the in-place ReLU6 after it fused) ------------------------------------- */
static void bn_saved(const oclseg_model *m, const oclseg_layer *l, int channels,
                     oclseg_tensor *mean, oclseg_tensor *invstd) {
    *mean = oclseg_tensor_view(m->bn_save_buf, l->save_off, channels, 1, 1, 1);
    *invstd = oclseg_tensor_view(m->bn_save_buf, l->save_off + (size_t)channels, channels, 1, 1, 1);
}

static int batchnorm_forward(const layer_pass *p, int i, int *layers) {
    oclseg_model *m = p->m;
    const oclseg_layer *l = &m->layers[i];
    oclseg_tensor x = in_act(p, i), y = out_act(p, i);
    oclseg_tensor g = param(m, l->param), b = param(m, l->param2);
    oclseg_tensor rm = param(m, l->buf_mean), rv = param(m, l->buf_var);
    const int relu6 = bn_relu6_fused(m, i);
    *layers = relu6 ? 2 : 1; /* the ReLU6 layer is done too */
    if (p->train && !(p->frozen_encoder && l->in_encoder)) { /* batch statistics */
        oclseg_tensor sm, si;
        bn_saved(m, l, g.n, &sm, &si);
        op_bn_sync sync = {p->bn_sync_counts};
        TRY(op_batchnorm_forward_train_sync(m->ctx, &x, &g, &b, &rm, &rv, &y, &sm, &si,
                                            BN_MOMENTUM, BN_EPS, relu6,
                                            p->bn_sync_counts ? &sync : NULL));
        m->bn_batches[l->bn_index]++;
        return OCLSEG_OK;
    }
    return op_batchnorm_forward_eval_act(m->ctx, &x, &g, &b, &rm, &rv, &y, BN_EPS, relu6);
}

static int batchnorm_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    const oclseg_model *m = p->m;
    const oclseg_layer *l = &m->layers[i];
    oclseg_tensor x = in_act(p, i), dy = out_grad(p, i);
    oclseg_tensor g = param(m, l->param), b = param(m, l->param2);
    oclseg_tensor dg = grad(m, l->param), db = grad(m, l->param2);
    oclseg_tensor sm, si;
    bn_saved(m, l, g.n, &sm, &si);
    op_bn_sync sync = {p->bn_sync_counts};
    return op_batchnorm_backward_train_sync(m->ctx, &x, &dy, &g, &b, &sm, &si, dx, &dg, &db,
                                            bn_relu6_fused(m, i), p->bn_sync_counts ? &sync : NULL);
}

/* ---- in-place activations ------------------------------------------------------------------- */
static int relu6_forward(const layer_pass *p, int i, int *layers) {
    oclseg_tensor x = in_act(p, i), y = out_act(p, i);
    *layers = 1;
    return op_relu6_forward(p->m->ctx, &x, &y);
}

static int relu6_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    (void)dx;
    if (i > 0 && bn_relu6_fused(p->m, i - 1)) return OCLSEG_OK; /* in the BatchNorm's passes */
    oclseg_tensor y = out_act(p, i), dy = out_grad(p, i);
    return op_relu6_backward(p->m->ctx, &y, &dy, &dy);
}

static int relu_forward(const layer_pass *p, int i, int *layers) {
    oclseg_tensor x = in_act(p, i), y = out_act(p, i);
    *layers = 1;
    return op_relu_forward(p->m->ctx, &x, &y);
}

/* Not fused into the transposed convolution's backward: the mask is read from the output. */
static int relu_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    (void)dx;
    oclseg_tensor y = out_act(p, i), dy = out_grad(p, i);
    return op_relu_backward(p->m->ctx, &y, &dy, &dy);
}

/* ---- residual add: out = in + in2 ----------------------------------------------------------- */
static int add_forward(const layer_pass *p, int i, int *layers) {
    oclseg_tensor x = in_act(p, i), y = out_act(p, i);
    oclseg_tensor x2 = model_act_view(p->m, p->m->layers[i].in2, p->n);
    *layers = 1;
    return op_add(p->m->ctx, &x, &x2, &y);
}

/* Both inputs receive dy. */
static int add_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    oclseg_model *m = p->m;
    const int in2 = m->layers[i].in2;
    oclseg_tensor dy = out_grad(p, i), dx2;
    if (dx) TRY(copy_tensor(m->ctx, &dy, dx));
    int needs_add2;
    TRY(model_grad_target(m, in2, p->n, &dx2, &needs_add2));
    TRY(copy_tensor(m->ctx, &dy, &dx2));
    return model_accumulate_grad(m, in2, p->n, &dx2, needs_add2);
}

/* ---- transposed convolution k4 s2 p1 + bias (with the in-place ReLU after it fused) --------- */
static int convt_forward(const layer_pass *p, int i, int *layers) {
    const oclseg_model *m = p->m;
    const oclseg_layer *l = &m->layers[i];
    oclseg_tensor x = in_act(p, i), y = out_act(p, i);
    oclseg_tensor w = param(m, l->param), b = param(m, l->param2);
    const int relu = fused_with_next(m, i, LAYER_RELU); /* into the col2im pass */
    *layers = relu ? 2 : 1;
    return op_conv_transpose2d_forward_act(m->ctx, &x, &w, &b, &y, l->stride, 1, relu);
}

static int convt_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    const oclseg_model *m = p->m;
    const oclseg_layer *l = &m->layers[i];
    oclseg_tensor x = in_act(p, i), dy = out_grad(p, i);
    oclseg_tensor w = param(m, l->param), dw = grad(m, l->param), db = grad(m, l->param2);
    return op_conv_transpose2d_backward(m->ctx, &x, &w, &dy, dx, &dw, &db, l->stride, 1);
}

static double convt_flops(const oclseg_model *m, const oclseg_layer *l, int n) {
    const oclseg_activation *in = &m->acts[l->in], *out = &m->acts[l->out];
    return 2.0 * n * in->c * in->h * in->w * (double)out->c * 16.0;
}

/* ---- dropout (identity in eval mode) -------------------------------------------------------- */
static int dropout_forward(const layer_pass *p, int i, int *layers) {
    const oclseg_model *m = p->m;
    oclseg_tensor x = in_act(p, i), y = out_act(p, i);
    *layers = 1;
    return op_dropout_forward_at(m->ctx, &x, &y, p->train ? m->cfg.dropout : 0.0f,
                                 p->dropout_seed, p->step, dropout_first(p, &x));
}

static int dropout_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    const oclseg_model *m = p->m;
    oclseg_tensor dy = out_grad(p, i);
    return op_dropout_backward_at(m->ctx, &dy, dx, m->cfg.dropout, p->dropout_seed, p->step,
                                  dropout_first(p, &dy));
}

/* ---- bilinear upsampling to the output's size -------------------------------------------------- */
static int upsample_forward(const layer_pass *p, int i, int *layers) {
    oclseg_tensor x = in_act(p, i), y = out_act(p, i);
    *layers = 1;
    return op_upsample_bilinear_forward(p->m->ctx, &x, &y);
}

static int upsample_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    oclseg_tensor dy = out_grad(p, i);
    return op_upsample_bilinear_backward(p->m->ctx, &dy, dx);
}

/* ---- channel concatenation: out = cat(in, in2) -------------------------------------------- */
static int concat_forward(const layer_pass *p, int i, int *layers) {
    oclseg_tensor x = in_act(p, i), y = out_act(p, i);
    oclseg_tensor x2 = model_act_view(p->m, p->m->layers[i].in2, p->n);
    *layers = 1;
    return op_concat_forward(p->m->ctx, &x, &x2, &y);
}

/* dy's first channels are in's gradient, the rest in2's. in2 is an encoder map that also feeds
 * the next encoder layer: its share is accumulated (model_accumulate_grad), and first, so that
 * the scratch temporary is free again when the caller accumulates dx. A frozen encoder's map
 * gets none. */
static int concat_backward(const layer_pass *p, int i, oclseg_tensor *dx) {
    oclseg_model *m = p->m;
    const int in2 = m->layers[i].in2;
    const int encoder_map = in2 <= m->layers[m->encoder_layer_count].in;
    oclseg_tensor dy = out_grad(p, i);
    if (m->acts[in2].has_grad && !(p->frozen_encoder && encoder_map)) {
        oclseg_tensor dx2;
        int needs_add2;
        TRY(model_grad_target(m, in2, p->n, &dx2, &needs_add2));
        TRY(op_concat_backward(m->ctx, &dy, NULL, &dx2));
        TRY(model_accumulate_grad(m, in2, p->n, &dx2, needs_add2));
    }
    return dx ? op_concat_backward(m->ctx, &dy, dx, NULL) : OCLSEG_OK;
}

/* Elementwise and resampling kinds are memory-bound: their FLOPs are not counted. */
static double no_flops(const oclseg_model *m, const oclseg_layer *l, int n) {
    (void)m, (void)l, (void)n;
    return 0.0;
}

/* ---- the table ------------------------------------------------------------------------------ */
const layer_kind_ops layer_kinds[] = {
    [LAYER_CONV] = {.name = "conv", .in_place = 0, .forward = conv_forward,
                    .backward = conv_backward, .flops = conv_flops,
                    .emit_onnx = onnx_emit_conv_bn},
    [LAYER_DEPTHWISE] = {.name = "depthwise conv", .in_place = 0, .forward = depthwise_forward,
                         .backward = depthwise_backward, .flops = depthwise_flops,
                         .emit_onnx = onnx_emit_conv_bn},
    [LAYER_BATCHNORM] = {.name = "batchnorm", .in_place = 0, .forward = batchnorm_forward,
                         .backward = batchnorm_backward, .flops = no_flops,
                         .emit_onnx = onnx_emit_unfolded_batchnorm},
    [LAYER_RELU6] = {.name = "relu6", .in_place = 1, .forward = relu6_forward,
                     .backward = relu6_backward, .flops = no_flops, .emit_onnx = onnx_emit_relu6},
    [LAYER_RELU] = {.name = "relu", .in_place = 1, .forward = relu_forward,
                    .backward = relu_backward, .flops = no_flops, .emit_onnx = onnx_emit_relu},
    [LAYER_ADD] = {.name = "residual add", .in_place = 0, .forward = add_forward,
                   .backward = add_backward, .flops = no_flops, .emit_onnx = onnx_emit_add},
    [LAYER_CONVT] = {.name = "conv_transpose", .in_place = 0, .forward = convt_forward,
                     .backward = convt_backward, .flops = convt_flops,
                     .emit_onnx = onnx_emit_convt},
    [LAYER_DROPOUT] = {.name = "dropout", .in_place = 0, .forward = dropout_forward,
                       .backward = dropout_backward, .flops = no_flops,
                       .emit_onnx = onnx_emit_dropout},
    [LAYER_UPSAMPLE] = {.name = "upsample", .in_place = 0, .forward = upsample_forward,
                        .backward = upsample_backward, .flops = no_flops,
                        .emit_onnx = onnx_emit_upsample},
    [LAYER_CONCAT] = {.name = "concat", .in_place = 0, .forward = concat_forward,
                      .backward = concat_backward, .flops = no_flops,
                      .emit_onnx = onnx_emit_concat},
};
static_assert(sizeof layer_kinds / sizeof layer_kinds[0] == LAYER_COUNT,
              "layer_kinds needs one entry per oclseg_layer_kind");
