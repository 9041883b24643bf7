/* ONNX export: walks the model's layer list as the eval-mode forward runs it and emits the same
 * graph (Conv with BatchNorm folded in, Clip for ReLU6, Add, ConvTranspose (the skip decoder's
 * with its BatchNorm folded in), Relu, Resize, Concat) through
 * each kind's emitter (the table in src/model/layers.c names them), metadata for preprocessing,
 * and writes the packed ModelProto atomically. */
#include "oclseg/export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export/onnx_internal.h"
#include "model/layers.h"
#include "oclseg/data.h"
#include "oclseg/infer.h"
#include "oclseg/runtime.h"
#include "oclseg/safetensors.h"
#include "oclseg/session.h"
#include "oclseg/util.h"
#include "oclseg/weights.h"

#define BN_EPS 1e-5f /* model.c's BatchNorm epsilon (PyTorch's default) */

typedef char tensor_name[96];

typedef struct onnx_export {
    oclseg_model *m;
    const oclseg_onnx_options *o;
    onnx_graph_builder b;
    tensor_name *names; /* ONNX tensor currently holding each activation */
    float *w, *vec[4];  /* host staging: a weight, and gamma/beta/mean/var */
} export_state;

/* "encoder.0.0.weight" -> "encoder.0.0.bias" (the folded bias of that conv). */
static void bias_name(const char *weight, char *out, size_t size) {
    snprintf(out, size, "%s", weight);
    char *dot = strrchr(out, '.');
    if (dot) snprintf(dot, size - (size_t)(dot - out), ".bias");
}

/* Conv/depthwise layer `l` followed by BatchNorm `bn`: one Conv with
 * W' = W * gamma / sqrt(var + eps) and B = beta - mean * gamma / sqrt(var + eps), in double. */
static int emit_conv_bn(export_state *s, const oclseg_layer *l, const oclseg_layer *bn) {
    oclseg_model *m = s->m;
    const oclseg_param *wp = &m->params[l->param];
    const int cout = wp->n, k = wp->h, depthwise = l->kind == LAYER_DEPTHWISE;
    const size_t per_out = oclseg_param_numel(wp) / (size_t)cout;
    TRY(oclseg_model_read_param(m, l->param, s->w));
    const int ids[4] = {bn->param, bn->param2, bn->buf_mean, bn->buf_var};
    for (int i = 0; i < 4; i++) TRY(oclseg_model_read_param(m, ids[i], s->vec[i]));
    float *bias = s->vec[1]; /* beta, overwritten by the folded bias */
    for (int o = 0; o < cout; o++) {
        double scale = (double)s->vec[0][o] / sqrt((double)s->vec[3][o] + (double)BN_EPS);
        for (size_t j = 0; j < per_out; j++)
            s->w[(size_t)o * per_out + j] = (float)(s->w[(size_t)o * per_out + j] * scale);
        bias[o] = (float)((double)s->vec[1][o] - (double)s->vec[2][o] * scale);
    }
    char bname[128];
    bias_name(wp->name, bname, sizeof bname);
    const int64_t wdims[4] = {wp->n, wp->c, wp->h, wp->w}, bdims[1] = {cout};
    TRY(onnx_add_initializer(&s->b, wp->name, wdims, 4, s->w));
    TRY(onnx_add_initializer(&s->b, bname, bdims, 1, bias));
    const char *in[3] = {s->names[l->in], wp->name, bname};
    Onnx__NodeProto *n = onnx_add_node(&s->b, "Conv", in, 3, NULL);
    if (!n) return OCLSEG_ERR_OUT_OF_MEMORY;
    const int64_t kk[2] = {k, k}, st[2] = {l->stride, l->stride};
    const int64_t pads[4] = {k / 2, k / 2, k / 2, k / 2};
    TRY(onnx_attr_ints(&s->b, n, "kernel_shape", kk, 2));
    TRY(onnx_attr_ints(&s->b, n, "strides", st, 2));
    TRY(onnx_attr_ints(&s->b, n, "pads", pads, 4));
    TRY(onnx_attr_int(&s->b, n, "group", depthwise ? cout : 1));
    snprintf(s->names[bn->out], sizeof s->names[0], "%s", n->output[0]);
    return OCLSEG_OK;
}

/* The graph's output name when act is the logits ("logits", unless a Sigmoid follows), else
 * NULL (a fresh name). */
static const char *output_name(const export_state *s, int act) {
    return act == s->m->logits_act && !s->o->sigmoid ? "logits" : NULL;
}

/* Whether layer i + 1 is a BatchNorm of layer i's output (folded into layer i). */
static int batchnorm_follows(const oclseg_model *m, int i) {
    return i + 1 < m->layer_count && m->layers[i + 1].kind == LAYER_BATCHNORM &&
           m->layers[i + 1].in == m->layers[i].out;
}

/* A conv with its own bias and no BatchNorm (the skip decoder's 1x1 head). */
static int emit_conv_bias(export_state *s, const oclseg_layer *l) {
    oclseg_model *m = s->m;
    const oclseg_param *wp = &m->params[l->param], *bp = &m->params[l->param2];
    TRY(oclseg_model_read_param(m, l->param, s->w));
    TRY(oclseg_model_read_param(m, l->param2, s->vec[0]));
    const int64_t wdims[4] = {wp->n, wp->c, wp->h, wp->w}, bdims[1] = {bp->n};
    TRY(onnx_add_initializer(&s->b, wp->name, wdims, 4, s->w));
    TRY(onnx_add_initializer(&s->b, bp->name, bdims, 1, s->vec[0]));
    const char *in[3] = {s->names[l->in], wp->name, bp->name};
    Onnx__NodeProto *n = onnx_add_node(&s->b, "Conv", in, 3, output_name(s, l->out));
    if (!n) return OCLSEG_ERR_OUT_OF_MEMORY;
    const int k = wp->h;
    const int64_t kk[2] = {k, k}, st[2] = {l->stride, l->stride};
    const int64_t pads[4] = {k / 2, k / 2, k / 2, k / 2};
    TRY(onnx_attr_ints(&s->b, n, "kernel_shape", kk, 2));
    TRY(onnx_attr_ints(&s->b, n, "strides", st, 2));
    TRY(onnx_attr_ints(&s->b, n, "pads", pads, 4));
    snprintf(s->names[l->out], sizeof s->names[0], "%s", n->output[0]);
    return OCLSEG_OK;
}

/* Conv and depthwise layers: with the BatchNorm that follows them folded in (a conv with a bias
 * of its own has none). */
int onnx_emit_conv_bn(export_state *s, int i, int *layers) {
    const oclseg_model *m = s->m;
    if (m->layers[i].kind == LAYER_CONV && m->layers[i].param2 >= 0 && !batchnorm_follows(m, i)) {
        *layers = 1;
        return emit_conv_bias(s, &m->layers[i]);
    }
    if (!batchnorm_follows(m, i)) {
        OCLSEG_ERROR("onnx export: layer %d (%s) is not followed by its BatchNorm", i,
                     layer_kinds[m->layers[i].kind].name);
        return OCLSEG_ERR_UNSUPPORTED;
    }
    *layers = 2;
    return emit_conv_bn(s, &m->layers[i], &m->layers[i + 1]);
}

/* A BatchNorm is exported folded into the convolution before it (onnx_emit_conv_bn). */
int onnx_emit_unfolded_batchnorm(export_state *s, int i, int *layers) {
    (void)s, (void)layers;
    OCLSEG_ERROR("onnx export: layer %d (batchnorm) does not follow a convolution it can be "
                 "folded into", i);
    return OCLSEG_ERR_UNSUPPORTED;
}

/* The BatchNorm `bn` after transposed conv `l` folded into its weight (Cin, Cout, k, k) and bias
 * (s->vec[0]): W' = W * scale[o], B' = (B - mean) * scale + beta, scale = gamma / sqrt(var + eps),
 * in double. */
static int fold_convt_bn(export_state *s, const oclseg_layer *l, const oclseg_layer *bn) {
    oclseg_model *m = s->m;
    const oclseg_param *wp = &m->params[l->param];
    const int ids[3] = {bn->param, bn->buf_mean, bn->buf_var}; /* gamma, mean, var */
    for (int k = 0; k < 3; k++) TRY(oclseg_model_read_param(m, ids[k], s->vec[1 + k]));
    float *gamma = s->vec[1], *mean = s->vec[2], *var = s->vec[3];
    const size_t plane = (size_t)wp->h * wp->w;
    for (int o = 0; o < wp->c; o++) {
        const double scale = (double)gamma[o] / sqrt((double)var[o] + (double)BN_EPS);
        for (int ci = 0; ci < wp->n; ci++)
            for (size_t j = 0; j < plane; j++) {
                float *w = &s->w[((size_t)ci * wp->c + o) * plane + j];
                *w = (float)(*w * scale);
            }
        s->vec[0][o] = (float)(((double)s->vec[0][o] - mean[o]) * scale);
    }
    TRY(oclseg_model_read_param(m, bn->param2, s->vec[1])); /* beta */
    for (int o = 0; o < wp->c; o++) s->vec[0][o] = (float)((double)s->vec[0][o] + s->vec[1][o]);
    return OCLSEG_OK;
}

/* ConvTranspose2d k4 s2 p1 with bias: the PyTorch weight layout (Cin, Cout, 4, 4) is ONNX's. A
 * BatchNorm after it (the skip decoder's) is folded in. */
int onnx_emit_convt(export_state *s, int i, int *layers) {
    oclseg_model *m = s->m;
    const oclseg_layer *l = &m->layers[i];
    const int fold = batchnorm_follows(m, i);
    *layers = fold ? 2 : 1;
    const oclseg_param *wp = &m->params[l->param], *bp = &m->params[l->param2];
    TRY(oclseg_model_read_param(m, l->param, s->w));
    TRY(oclseg_model_read_param(m, l->param2, s->vec[0]));
    if (fold) TRY(fold_convt_bn(s, l, l + 1));
    const int64_t wdims[4] = {wp->n, wp->c, wp->h, wp->w}, bdims[1] = {bp->n};
    TRY(onnx_add_initializer(&s->b, wp->name, wdims, 4, s->w));
    TRY(onnx_add_initializer(&s->b, bp->name, bdims, 1, s->vec[0]));
    const char *in[3] = {s->names[l->in], wp->name, bp->name};
    Onnx__NodeProto *n = onnx_add_node(&s->b, "ConvTranspose", in, 3, NULL);
    if (!n) return OCLSEG_ERR_OUT_OF_MEMORY;
    const int64_t kk[2] = {wp->h, wp->w}, st[2] = {l->stride, l->stride}, pads[4] = {1, 1, 1, 1};
    TRY(onnx_attr_ints(&s->b, n, "kernel_shape", kk, 2));
    TRY(onnx_attr_ints(&s->b, n, "strides", st, 2));
    TRY(onnx_attr_ints(&s->b, n, "pads", pads, 4));
    snprintf(s->names[fold ? l[1].out : l->out], sizeof s->names[0], "%s", n->output[0]);
    return OCLSEG_OK;
}

/* Channel concatenation, in then in2 (torch.cat dim=1). */
int onnx_emit_concat(export_state *s, int i, int *layers) {
    const oclseg_layer *l = &s->m->layers[i];
    const char *in[2] = {s->names[l->in], s->names[l->in2]};
    Onnx__NodeProto *n = onnx_add_node(&s->b, "Concat", in, 2, NULL);
    if (!n) return OCLSEG_ERR_OUT_OF_MEMORY;
    TRY(onnx_attr_int(&s->b, n, "axis", 1));
    snprintf(s->names[l->out], sizeof s->names[0], "%s", n->output[0]);
    *layers = 1;
    return OCLSEG_OK;
}

/* Bilinear, align_corners=False: cl/upsample.cl maps dst to src = (dst + 0.5) * in/out - 0.5
 * clamped at 0, which is ONNX's "half_pixel" (pytorch_half_pixel differs only for outputs of
 * size 1, never the case here). */
int onnx_emit_upsample(export_state *s, int i, int *layers) {
    const oclseg_layer *l = &s->m->layers[i];
    /* the last layer's output is the graph's "logits" (or the Sigmoid's input, a fresh name) */
    const char *out = output_name(s, l->out);
    *layers = 1;
    const oclseg_activation *a = &s->m->acts[l->in], *y = &s->m->acts[l->out];
    const float scales[4] = {1.0f, 1.0f, (float)y->h / (float)a->h, (float)y->w / (float)a->w};
    const int64_t dims[1] = {4};
    /* one initializer per Resize: the skip-bilinear decoder has several */
    char scales_name[48];
    snprintf(scales_name, sizeof scales_name, "upsample.%d.scales", i);
    TRY(onnx_add_initializer(&s->b, scales_name, dims, 1, scales));
    const char *in[3] = {s->names[l->in], "", scales_name};
    Onnx__NodeProto *n = onnx_add_node(&s->b, "Resize", in, 3, out);
    if (!n) return OCLSEG_ERR_OUT_OF_MEMORY;
    TRY(onnx_attr_string(&s->b, n, "mode", "linear"));
    TRY(onnx_attr_string(&s->b, n, "coordinate_transformation_mode", "half_pixel"));
    snprintf(s->names[l->out], sizeof s->names[0], "%s", n->output[0]);
    return OCLSEG_OK;
}

/* Relu(x) - Relu(x - 6): x - 6 and x - (x - 6) are exact for x in [3, 12] (Sterbenz), so this is
 * exactly min(max(x, 0), 6) up to x = 12 and within half an ulp of x beyond. */
static Onnx__NodeProto *emit_relu6_as_relu(export_state *s, const oclseg_layer *l) {
    const char *x = s->names[l->in];
    Onnx__NodeProto *pos = onnx_add_node(&s->b, "Relu", &x, 1, NULL);
    const char *shift_in[2] = {x, "relu6.max"};
    Onnx__NodeProto *shift = onnx_add_node(&s->b, "Sub", shift_in, 2, NULL);
    if (!pos || !shift) return NULL;
    const char *over_in = shift->output[0];
    Onnx__NodeProto *over = onnx_add_node(&s->b, "Relu", &over_in, 1, NULL);
    if (!over) return NULL;
    const char *diff_in[2] = {pos->output[0], over->output[0]};
    return onnx_add_node(&s->b, "Sub", diff_in, 2, NULL);
}

/* Node n (NULL: an allocation failed) now holds layer i's output. */
static int set_output(export_state *s, int i, const Onnx__NodeProto *n, int *layers) {
    if (!n) return OCLSEG_ERR_OUT_OF_MEMORY;
    snprintf(s->names[s->m->layers[i].out], sizeof s->names[0], "%s", n->output[0]);
    *layers = 1;
    return OCLSEG_OK;
}

/* ReLU6 as Clip with min/max inputs (opset >= 11), or --relu6 relu's four-node form. */
int onnx_emit_relu6(export_state *s, int i, int *layers) {
    const oclseg_layer *l = &s->m->layers[i];
    if (s->o->relu6_as_relu) return set_output(s, i, emit_relu6_as_relu(s, l), layers);
    const char *in[3] = {s->names[l->in], "relu6.min", "relu6.max"};
    return set_output(s, i, onnx_add_node(&s->b, "Clip", in, 3, NULL), layers);
}

int onnx_emit_relu(export_state *s, int i, int *layers) {
    const char *in[1] = {s->names[s->m->layers[i].in]};
    return set_output(s, i, onnx_add_node(&s->b, "Relu", in, 1, NULL), layers);
}

int onnx_emit_add(export_state *s, int i, int *layers) {
    const oclseg_layer *l = &s->m->layers[i];
    const char *in[2] = {s->names[l->in], s->names[l->in2]};
    return set_output(s, i, onnx_add_node(&s->b, "Add", in, 2, NULL), layers);
}

/* Identity in eval mode: the output is the input's tensor. */
int onnx_emit_dropout(export_state *s, int i, int *layers) {
    const oclseg_layer *l = &s->m->layers[i];
    if (l->out != l->in) memcpy(s->names[l->out], s->names[l->in], sizeof s->names[0]);
    *layers = 1;
    return OCLSEG_OK;
}

/* The layer list in execution order, as oclseg_model_forward runs it with train = 0. */
static int emit_layers(export_state *s, const oclseg_onnx_options *o) {
    oclseg_model *m = s->m;
    const float clip[2] = {0.0f, 6.0f};
    if (!o->relu6_as_relu) TRY(onnx_add_initializer(&s->b, "relu6.min", NULL, 0, &clip[0]));
    TRY(onnx_add_initializer(&s->b, "relu6.max", NULL, 0, &clip[1]));
    snprintf(s->names[0], sizeof s->names[0], "input");
    for (int i = 0; i < m->layer_count;) {
        int layers = 1;
        TRY(layer_kinds[m->layers[i].kind].emit_onnx(s, i, &layers));
        i += layers;
    }
    if (strcmp(s->names[m->logits_act], "logits") != 0 && !o->sigmoid) {
        OCLSEG_ERROR("onnx export: the model does not end in its upsampling layer or head");
        return OCLSEG_ERR_UNSUPPORTED;
    }
    if (o->sigmoid) {
        const char *in[1] = {s->names[m->logits_act]};
        if (!onnx_add_node(&s->b, "Sigmoid", in, 1, "prob")) return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    return OCLSEG_OK;
}

static int build_graph(export_state *s, const oclseg_onnx_options *o) {
    oclseg_model *m = s->m;
    const size_t maxp = oclseg_model_max_param_numel(m);
    s->names = calloc((size_t)m->act_count, sizeof *s->names);
    s->w = malloc(maxp * sizeof *s->w);
    for (int i = 0; i < 4; i++) s->vec[i] = malloc(maxp * sizeof *s->vec[i]);
    if (!s->names || !s->w || !s->vec[0] || !s->vec[1] || !s->vec[2] || !s->vec[3])
        return OCLSEG_ERR_OUT_OF_MEMORY;
    TRY(emit_layers(s, o));
    Onnx__GraphProto *g = s->b.graph;
    const int size = m->cfg.size, batch = o->dynamic_batch ? 0 : 1;
    g->name = onnx_strdup(s->b.pool, "oclseg_lesion_segnet");
    g->input = onnx_alloc(s->b.pool, sizeof *g->input);
    g->output = onnx_alloc(s->b.pool, sizeof *g->output);
    if (!g->input || !g->output) return OCLSEG_ERR_OUT_OF_MEMORY;
    g->input[0] = onnx_value_info(&s->b, "input", batch, 3, size, size);
    g->output[0] = onnx_value_info(&s->b, o->sigmoid ? "prob" : "logits", batch, 1, size, size);
    g->n_input = g->n_output = 1;
    return g->input[0] && g->output[0] ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
}

static int add_meta(onnx_pool *p, Onnx__ModelProto *mp, const char *key, const char *value) {
    Onnx__StringStringEntryProto *e = onnx_alloc(p, sizeof *e);
    if (!e) return OCLSEG_ERR_OUT_OF_MEMORY;
    onnx__string_string_entry_proto__init(e);
    e->key = onnx_strdup(p, key);
    e->value = onnx_strdup(p, value);
    mp->metadata_props[mp->n_metadata_props++] = e;
    return p->failed ? OCLSEG_ERR_OUT_OF_MEMORY : OCLSEG_OK;
}

/* What a consumer needs to prepare inputs and read outputs (metadata_props). */
static int add_metadata(onnx_pool *p, Onnx__ModelProto *mp, const oclseg_model *m,
                        const oclseg_onnx_options *o) {
    mp->metadata_props = onnx_alloc(p, 12 * sizeof *mp->metadata_props); /* 11 used */
    if (!mp->metadata_props) return OCLSEG_ERR_OUT_OF_MEMORY;
    char v[256];
    const float *mean = oclseg_imagenet_mean, *sd = oclseg_imagenet_std;
    snprintf(v, sizeof v, "%g,%g,%g", (double)mean[0], (double)mean[1], (double)mean[2]);
    TRY(add_meta(p, mp, "oclseg.mean", v));
    snprintf(v, sizeof v, "%g,%g,%g", (double)sd[0], (double)sd[1], (double)sd[2]);
    TRY(add_meta(p, mp, "oclseg.std", v));
    TRY(add_meta(p, mp, "oclseg.input",
                 "float32 NCHW RGB, x = (pixel / 255 - mean[c]) / std[c]; images resized to "
                 "input_size x input_size (bilinear, antialiased when shrinking)"));
    snprintf(v, sizeof v, "%d", m->cfg.size);
    TRY(add_meta(p, mp, "oclseg.input_size", v));
    TRY(add_meta(p, mp, "oclseg.output", o->sigmoid ? "prob: sigmoid probability of lesion"
                                                    : "logits: apply sigmoid for probability"));
    const double thr = o->predict ? (double)o->predict->threshold : 0.5;
    if (o->sigmoid) snprintf(v, sizeof v, "%g (lesion where prob > %g)", thr, thr);
    else snprintf(v, sizeof v, "%g on sigmoid(logits), i.e. lesion where logits > %g", thr,
                  log(thr / (1.0 - thr)) + 0.0); /* + 0.0: 0, not -0 */
    TRY(add_meta(p, mp, "oclseg.threshold", v));
    if (o->predict) {
        snprintf(v, sizeof v, "tta=%s largest_component=%d fill_holes=%d",
                 o->predict->tta_flips ? "flips" : "none", o->predict->largest_component,
                 o->predict->fill_holes);
        TRY(add_meta(p, mp, "oclseg.postprocess", v));
    }
    if (o->config_json) {
        uint64_t h = oclseg_fnv1a64(OCLSEG_FNV1A64_INIT, o->config_json, strlen(o->config_json));
        snprintf(v, sizeof v, "%016llx", (unsigned long long)h);
    } else {
        snprintf(v, sizeof v, "unknown");
    }
    TRY(add_meta(p, mp, "oclseg.training_config_fnv1a64", v));
    char kind[32] = "";
    if (m->cfg.decoder_kind != OCLSEG_DECODER_SEED)
        snprintf(kind, sizeof kind, " (%s)", oclseg_decoder_names[m->cfg.decoder_kind]);
    snprintf(v, sizeof v, "MobileNetV2 width %g, last %d, decoder %d,%d,%d%s; BatchNorm folded",
             (double)m->cfg.width_mult, m->cfg.last_channel, m->cfg.decoder[0],
             m->cfg.decoder[1], m->cfg.decoder[2], kind);
    TRY(add_meta(p, mp, "oclseg.architecture", v));
    TRY(add_meta(p, mp, "oclseg.relu6", o->relu6_as_relu ? "Relu(x) - Relu(x - 6)" : "Clip"));
    if (o->source) TRY(add_meta(p, mp, "oclseg.weights", o->source));
    return OCLSEG_OK;
}

static int build_model(onnx_pool *p, export_state *s, const oclseg_onnx_options *o,
                       Onnx__ModelProto *mp) {
    onnx__model_proto__init(mp);
    mp->has_ir_version = 1;
    mp->ir_version = OCLSEG_ONNX_IR_VERSION;
    mp->producer_name = onnx_strdup(p, "oclseg");
    mp->producer_version = onnx_strdup(p, OCLSEG_VERSION);
    mp->doc_string = onnx_strdup(p, "Skin-lesion segmentation (MobileNetV2 encoder, transposed-"
                                    "convolution decoder), exported by oclseg export");
    Onnx__OperatorSetIdProto *opset = onnx_alloc(p, sizeof *opset);
    mp->opset_import = onnx_alloc(p, sizeof *mp->opset_import);
    if (p->failed) return OCLSEG_ERR_OUT_OF_MEMORY;
    onnx__operator_set_id_proto__init(opset);
    opset->domain = onnx_strdup(p, "");
    opset->has_version = 1;
    opset->version = OCLSEG_ONNX_OPSET;
    mp->opset_import[0] = opset;
    mp->n_opset_import = 1;
    /* at most four nodes per layer (ReLU6 as Relu) plus the Sigmoid; two initializers per layer
     * plus relu6.min/max and the Resize scales */
    const size_t layers = (size_t)s->m->layer_count;
    TRY(onnx_builder_init(&s->b, p, 4 * layers + 1, 2 * layers + 3));
    TRY(build_graph(s, o));
    mp->graph = s->b.graph;
    return add_metadata(p, mp, s->m, o);
}

int oclseg_onnx_serialize(oclseg_model *m, const oclseg_onnx_options *o, unsigned char **out,
                          size_t *size) {
    *out = NULL;
    *size = 0;
    onnx_pool pool = {0};
    export_state s = {.m = m, .o = o};
    Onnx__ModelProto mp;
    int st = build_model(&pool, &s, o, &mp);
    if (st == OCLSEG_OK && pool.failed) st = OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) {
        size_t n = onnx__model_proto__get_packed_size(&mp);
        *out = malloc(n ? n : 1);
        if (!*out) st = OCLSEG_ERR_OUT_OF_MEMORY;
        else *size = onnx__model_proto__pack(&mp, *out);
        if (*out && *size != n) {
            OCLSEG_ERROR("onnx export: packed %zu bytes, expected %zu", *size, n);
            st = OCLSEG_ERR_INTERNAL;
        }
    }
    if (st != OCLSEG_OK) {
        if (st == OCLSEG_ERR_OUT_OF_MEMORY) OCLSEG_ERROR("onnx export: out of host memory");
        free(*out);
        *out = NULL;
        *size = 0;
    }
    free(s.names);
    free(s.w);
    for (int i = 0; i < 4; i++) free(s.vec[i]);
    onnx_pool_free(&pool);
    return st;
}

/* <dir of weights>/config.json, malloc'd, or NULL when there is none. */
static char *read_run_config(const char *weights) {
    char path[4200];
    const char *slash = strrchr(weights, '/');
    if (slash) snprintf(path, sizeof path, "%.*s/config.json", (int)(slash - weights), weights);
    else snprintf(path, sizeof path, "config.json");
    char *text = NULL;
    size_t n;
    if (access(path, R_OK) != 0 || oclseg_read_file(path, 0, &text, &n) != OCLSEG_OK) return NULL;
    return text;
}

int oclseg_export_onnx(const char *weights, const char *onnx_path, int size, const char *device,
                       const oclseg_onnx_options *o) {
    oclseg_session *ses = NULL;
    oclseg_session_options so;
    oclseg_session_options_default(&so);
    so.device = device;
    so.model.size = size;
    so.model.max_batch = 1;
    so.weights = weights;
    so.weights_source = OCLSEG_WEIGHTS_FULL;
    unsigned char *bytes = NULL;
    size_t n = 0;
    oclseg_onnx_options opts = *o;
    char *config = o->config_json ? NULL : read_run_config(weights);
    if (config) opts.config_json = config;
    if (!opts.source) opts.source = weights;
    int st = oclseg_session_create(&so, &ses);
    if (st == OCLSEG_OK) st = oclseg_onnx_serialize(ses->model, &opts, &bytes, &n);
    if (st == OCLSEG_OK) st = oclseg_file_write_atomic(onnx_path, bytes, n);
    free(bytes);
    free(config);
    oclseg_session_free(ses);
    return st;
}
