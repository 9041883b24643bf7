/* Builds the MobileNetV2 + decoder (seed, skip or skip-bilinear) layer list, allocates the arenas, initialises
 * and reads the parameters, counts FLOPs (forward: model_forward.c, backward: model_backward.c). */
#include "oclseg/model.h"
#include "model/model_internal.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const oclseg_decoder_names[OCLSEG_DECODER_COUNT + 1] = {
    [OCLSEG_DECODER_SEED] = "seed",
    [OCLSEG_DECODER_SKIP] = "skip",
    [OCLSEG_DECODER_SKIP_BILINEAR] = "skip-bilinear",
    [OCLSEG_DECODER_COUNT] = NULL,
};
static_assert(OCLSEG_DECODER_COUNT == 3, "a new decoder kind needs its name above and its builder");

int oclseg_decoder_parse(const char *name, oclseg_decoder_kind *out) {
    for (int k = 0; k < OCLSEG_DECODER_COUNT; k++)
        if (name && strcmp(name, oclseg_decoder_names[k]) == 0) {
            *out = (oclseg_decoder_kind)k;
            return OCLSEG_OK;
        }
    return OCLSEG_ERR_INVALID_ARG;
}

void oclseg_model_config_default(oclseg_model_config *cfg) {
    cfg->width_mult = 1.0f;
    cfg->last_channel = 1280;
    cfg->decoder[0] = 256;
    cfg->decoder[1] = 128;
    cfg->decoder[2] = 64;
    cfg->size = 128;
    cfg->max_batch = 16;
    cfg->dropout = 0.5f;
    cfg->decoder_kind = OCLSEG_DECODER_SEED;
}

size_t oclseg_param_numel(const oclseg_param *p) {
    return (size_t)p->n * (size_t)p->c * (size_t)p->h * (size_t)p->w;
}

size_t oclseg_model_max_param_numel(const oclseg_model *m) {
    size_t largest = 0;
    for (int i = 0; i < m->param_count; i++)
        if (oclseg_param_numel(&m->params[i]) > largest) largest = oclseg_param_numel(&m->params[i]);
    return largest;
}

size_t oclseg_model_trained_offset(const oclseg_model *m, int frozen_encoder) {
    return frozen_encoder ? m->decoder_param_off : 0;
}

/* torchvision's _make_divisible(v, 8). */
static int make_divisible(double v, int divisor) {
    int new_v = (int)(v + divisor / 2.0) / divisor * divisor;
    if (new_v < divisor) new_v = divisor;
    if (new_v < 0.9 * v) new_v += divisor;
    return new_v;
}

/* ---- builder ---------------------------------------------------------------------------- */
typedef struct builder {
    oclseg_model *m;
    int cap_layers, cap_params, cap_acts;
    int in_encoder;
    int failed; /* 0, or the status that stopped the build */
    int skip[5]; /* the encoder's last map at stride 2^k (k = 1..4), for the skip decoder */
} builder;

static int add_act(builder *b, int c, int h, int w) {
    oclseg_model *m = b->m;
    if (m->act_count == b->cap_acts) {
        b->cap_acts = b->cap_acts ? 2 * b->cap_acts : 64;
        void *p = realloc(m->acts, (size_t)b->cap_acts * sizeof *m->acts);
        if (!p) { b->failed = OCLSEG_ERR_OUT_OF_MEMORY; return 0; }
        m->acts = p;
    }
    oclseg_activation *a = &m->acts[m->act_count];
    memset(a, 0, sizeof *a);
    a->c = c;
    a->h = h;
    a->w = w;
    return m->act_count++;
}

static int add_param(builder *b, const char *name, int ndim, int n, int c, int h, int w,
                     int is_buffer) {
    oclseg_model *m = b->m;
    if (m->param_count == b->cap_params) {
        b->cap_params = b->cap_params ? 2 * b->cap_params : 128;
        void *p = realloc(m->params, (size_t)b->cap_params * sizeof *m->params);
        if (!p) { b->failed = OCLSEG_ERR_OUT_OF_MEMORY; return -1; }
        m->params = p;
    }
    oclseg_param *p = &m->params[m->param_count];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->n = n;
    p->c = c;
    p->h = h;
    p->w = w;
    p->is_buffer = is_buffer;
    p->in_encoder = b->in_encoder;
    return m->param_count++;
}

static oclseg_layer *add_layer(builder *b, oclseg_layer_kind kind, int in, int out) {
    oclseg_model *m = b->m;
    if (m->layer_count == b->cap_layers) {
        b->cap_layers = b->cap_layers ? 2 * b->cap_layers : 128;
        void *p = realloc(m->layers, (size_t)b->cap_layers * sizeof *m->layers);
        if (!p) {
            b->failed = OCLSEG_ERR_OUT_OF_MEMORY;
            static oclseg_layer dummy;
            return &dummy;
        }
        m->layers = p;
    }
    if (layer_kinds[kind].in_place != (in == out)) { /* the backward relies on the flag */
        const layer_kind_ops *k = &layer_kinds[kind];
        OCLSEG_ERROR("model builder: layer %d (%s) %s in place", m->layer_count, k->name,
                     k->in_place ? "must run" : "cannot run");
        b->failed = OCLSEG_ERR_INTERNAL;
    }
    oclseg_layer *l = &m->layers[m->layer_count++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in = in;
    l->in2 = -1;
    l->out = out;
    l->param = l->param2 = l->buf_mean = l->buf_var = -1;
    l->stride = 1;
    l->in_encoder = b->in_encoder;
    return l;
}

/* conv (k x k, stride, groups 1 or depthwise) + BatchNorm [+ ReLU6]; returns the output act. */
static int conv_bn(builder *b, const char *prefix_conv, const char *prefix_bn, int in, int cout,
                   int k, int stride, int depthwise, int relu6) {
    oclseg_model *m = b->m;
    const oclseg_activation *a = &m->acts[in];
    int cin = a->c;
    int ho = (a->h + 2 * (k / 2) - k) / stride + 1, wo = (a->w + 2 * (k / 2) - k) / stride + 1;
    char name[128];
    snprintf(name, sizeof name, "%s.weight", prefix_conv);
    int wid = add_param(b, name, 4, cout, depthwise ? 1 : cin, k, k, 0);
    int conv_out = add_act(b, cout, ho, wo);
    oclseg_layer *l = add_layer(b, depthwise ? LAYER_DEPTHWISE : LAYER_CONV, in, conv_out);
    l->param = wid;
    l->stride = stride;
    int bn_out = add_act(b, cout, ho, wo);
    snprintf(name, sizeof name, "%s.weight", prefix_bn);
    int gamma = add_param(b, name, 1, cout, 1, 1, 1, 0);
    snprintf(name, sizeof name, "%s.bias", prefix_bn);
    int beta = add_param(b, name, 1, cout, 1, 1, 1, 0);
    snprintf(name, sizeof name, "%s.running_mean", prefix_bn);
    int rm = add_param(b, name, 1, cout, 1, 1, 1, 1);
    snprintf(name, sizeof name, "%s.running_var", prefix_bn);
    int rv = add_param(b, name, 1, cout, 1, 1, 1, 1);
    l = add_layer(b, LAYER_BATCHNORM, conv_out, bn_out);
    l->param = gamma;
    l->param2 = beta;
    l->buf_mean = rm;
    l->buf_var = rv;
    l->bn_index = m->bn_count++;
    if (relu6) add_layer(b, LAYER_RELU6, bn_out, bn_out);
    return bn_out;
}

/* Records act as the encoder's map at its stride (a later one of the same stride replaces it). */
static void note_skip(builder *b, int act) {
    const int h = b->m->acts[act].h;
    for (int k = 1; k <= 4; k++)
        if (h << k == b->m->cfg.size) b->skip[k] = act;
}

static void build_encoder(builder *b, int *act) {
    const oclseg_model_config *cfg = &b->m->cfg;
    static const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                       {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int input_channel = make_divisible(32 * cfg->width_mult, 8);
    *act = conv_bn(b, "encoder.0.0", "encoder.0.1", *act, input_channel, 3, 2, 0, 1);
    note_skip(b, *act);
    int index = 1;
    char pc[96], pb[96];
    for (int s = 0; s < 7; s++) {
        int t = settings[s][0], out_c = make_divisible(settings[s][1] * cfg->width_mult, 8);
        for (int i = 0; i < settings[s][2]; i++, index++) {
            int stride = i == 0 ? settings[s][3] : 1;
            int hidden = (int)lround(input_channel * (double)t);
            int block_in = *act, x = *act, part = 0;
            if (t != 1) {
                snprintf(pc, sizeof pc, "encoder.%d.conv.%d.0", index, part);
                snprintf(pb, sizeof pb, "encoder.%d.conv.%d.1", index, part);
                x = conv_bn(b, pc, pb, x, hidden, 1, 1, 0, 1);
                part++;
            }
            snprintf(pc, sizeof pc, "encoder.%d.conv.%d.0", index, part);
            snprintf(pb, sizeof pb, "encoder.%d.conv.%d.1", index, part);
            x = conv_bn(b, pc, pb, x, hidden, 3, stride, 1, 1);
            part++;
            snprintf(pc, sizeof pc, "encoder.%d.conv.%d", index, part);
            snprintf(pb, sizeof pb, "encoder.%d.conv.%d", index, part + 1);
            x = conv_bn(b, pc, pb, x, out_c, 1, 1, 0, 0);
            if (stride == 1 && input_channel == out_c) {
                const oclseg_activation *a = &b->m->acts[x];
                int sum = add_act(b, a->c, a->h, a->w);
                oclseg_layer *l = add_layer(b, LAYER_ADD, x, sum);
                l->in2 = block_in;
                x = sum;
            }
            *act = x;
            note_skip(b, x);
            input_channel = out_c;
        }
    }
    snprintf(pc, sizeof pc, "encoder.%d.0", index);
    snprintf(pb, sizeof pb, "encoder.%d.1", index);
    *act = conv_bn(b, pc, pb, *act, cfg->last_channel, 1, 1, 0, 1);
}

/* A stride-2 transposed convolution (k4, with bias) named PREFIX.weight / PREFIX.bias from
 * activation `in` (cin channels) to a new (cout, h, w) activation, returned. */
static int add_convt_x2(builder *b, const char *prefix, int in, int cin, int cout, int h, int w) {
    char name[96];
    snprintf(name, sizeof name, "%s.weight", prefix);
    int wid = add_param(b, name, 4, cin, cout, 4, 4, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    int bid = add_param(b, name, 1, cout, 1, 1, 1, 0);
    int out = add_act(b, cout, h, w);
    oclseg_layer *l = add_layer(b, LAYER_CONVT, in, out);
    l->param = wid;
    l->param2 = bid;
    l->stride = 2;
    return out;
}

static void build_decoder(builder *b, int *act) {
    const oclseg_model_config *cfg = &b->m->cfg;
    const int channels[4] = {cfg->decoder[0], cfg->decoder[1], cfg->decoder[2], 1};
    const int keys[4] = {0, 3, 5, 7};
    b->in_encoder = 0;
    b->m->encoder_layer_count = b->m->layer_count;
    for (int i = 0; i < 4; i++) {
        const oclseg_activation *a = &b->m->acts[*act];
        int cin = a->c, h = a->h * 2, w = a->w * 2;
        char name[64];
        snprintf(name, sizeof name, "decoder.%d", keys[i]);
        int out = add_convt_x2(b, name, *act, cin, channels[i], h, w);
        *act = out;
        if (i < 3) add_layer(b, LAYER_RELU, out, out);
        if (i == 0) {
            int dropped = add_act(b, channels[i], h, w);
            add_layer(b, LAYER_DROPOUT, out, dropped);
            *act = dropped;
        }
    }
    int up = add_act(b, 1, b->m->cfg.size, b->m->cfg.size);
    add_layer(b, LAYER_UPSAMPLE, *act, up);
    *act = up;
}

/* A BatchNorm2d named `prefix` over act `in`; returns its output act. */
static int add_batchnorm(builder *b, const char *prefix, int in) {
    oclseg_model *m = b->m;
    const int c = m->acts[in].c, out = add_act(b, c, m->acts[in].h, m->acts[in].w);
    const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    int ids[4];
    for (int k = 0; k < 4; k++) {
        char name[96];
        snprintf(name, sizeof name, "%.60s.%s", prefix, suffix[k]);
        ids[k] = add_param(b, name, 1, c, 1, 1, 1, k >= 2);
    }
    oclseg_layer *l = add_layer(b, LAYER_BATCHNORM, in, out);
    l->param = ids[0];
    l->param2 = ids[1];
    l->buf_mean = ids[2];
    l->buf_var = ids[3];
    l->bn_index = m->bn_count++;
    return out;
}

/* A stride-1 3x3 convolution (pad 1, no bias: a BatchNorm follows) named PREFIX.weight, shape
 * (cout, cin, 3, 3), from a bilinear x2 upsampling of activation `in` (cin channels) to (h, w);
 * returns the convolution's output (cout, h, w). */
static int add_bilinear_conv_x2(builder *b, const char *prefix, int in, int cin, int cout, int h,
                                int w) {
    char name[96];
    snprintf(name, sizeof name, "%.80s.weight", prefix);
    int wid = add_param(b, name, 4, cout, cin, 3, 3, 0);
    int up = add_act(b, cin, h, w);
    add_layer(b, LAYER_UPSAMPLE, in, up);
    int out = add_act(b, cout, h, w);
    oclseg_layer *l = add_layer(b, LAYER_CONV, up, out);
    l->param = wid;
    l->stride = 1;
    return out;
}

/* The skip decoders (README "The skip decoder"): stage s = 0..4 is decoder.s = ConvTranspose2d
 * k4 s2 p1 (bias) -> BatchNorm2d -> ReLU [-> Dropout, stage 0] at stride 2^(4-s), joined
 * (s < 4) by cat((stage output, encoder map at that stride), dim=1); decoder.5 is the 1x1 Conv2d
 * head (bias) at full resolution. Stage widths: decoder[0..2], then decoder[2]/2, decoder[2]/4.
 * skip-bilinear: each stage's decoder.s.0 is a bilinear x2 upsampling (align_corners False)
 * followed by a 3x3 Conv2d (pad 1, no bias) instead of the transposed convolution. */
static void build_skip_decoder(builder *b, int *act) {
    oclseg_model *m = b->m;
    const int d2 = m->cfg.decoder[2];
    const int channels[5] = {m->cfg.decoder[0], m->cfg.decoder[1], d2, d2 / 2 > 0 ? d2 / 2 : 1,
                             d2 / 4 > 0 ? d2 / 4 : 1};
    b->in_encoder = 0;
    m->encoder_layer_count = m->layer_count;
    char name[96];
    for (int s = 0; s < 5; s++) {
        const oclseg_activation *a = &m->acts[*act];
        const int cin = a->c, h = a->h * 2, w = a->w * 2;
        snprintf(name, sizeof name, "decoder.%d.0", s);
        int up = m->cfg.decoder_kind == OCLSEG_DECODER_SKIP_BILINEAR
                     ? add_bilinear_conv_x2(b, name, *act, cin, channels[s], h, w)
                     : add_convt_x2(b, name, *act, cin, channels[s], h, w);
        snprintf(name, sizeof name, "decoder.%d.1", s);
        *act = add_batchnorm(b, name, up);
        add_layer(b, LAYER_RELU, *act, *act);
        if (s == 0) {
            int dropped = add_act(b, channels[s], h, w);
            add_layer(b, LAYER_DROPOUT, *act, dropped);
            *act = dropped;
        }
        if (s == 4) break;
        const int skip = b->skip[4 - s];
        const oclseg_activation *e = &m->acts[skip];
        int joined = add_act(b, channels[s] + e->c, h, w);
        oclseg_layer *l = add_layer(b, LAYER_CONCAT, *act, joined);
        l->in2 = skip;
        *act = joined;
    }
    int wid = add_param(b, "decoder.5.weight", 4, 1, channels[4], 1, 1, 0);
    int bid = add_param(b, "decoder.5.bias", 1, 1, 1, 1, 1, 0);
    int logits = add_act(b, 1, m->cfg.size, m->cfg.size);
    oclseg_layer *l = add_layer(b, LAYER_CONV, *act, logits);
    l->param = wid;
    l->param2 = bid;
    *act = logits;
}

/* What oclseg_model_enable_training allocated (NULLs afterwards). */
static void free_training(oclseg_model *m) {
    cl_mem *bufs[] = {&m->grads_buf, &m->state_bufs[0], &m->state_bufs[1], &m->bn_save_buf,
                      &m->grads_act_buf, &m->grad_tmp_buf};
    static_assert(OCLSEG_OPTIM_MAX_STATES == 2, "free every state arena");
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        oclseg_buffer_free(m->ctx, *bufs[i]);
        *bufs[i] = NULL;
    }
    free(m->grad_ready);
    m->grad_ready = NULL;
    m->state_count = 0;
}

/* Lays out parameters (encoder then decoder; the builder adds them in that order), buffers,
 * activations and their gradients, then allocates what inference needs: parameters, running
 * statistics, activations (training adds the rest: oclseg_model_enable_training). */
static int allocate(oclseg_model *m) {
    size_t poff = 0, boff = 0;
    m->decoder_param_off = (size_t)-1;
    for (int i = 0; i < m->param_count; i++) {
        oclseg_param *p = &m->params[i];
        if (p->is_buffer) {
            p->off = boff;
            boff += oclseg_param_numel(p);
        } else {
            if (!p->in_encoder && m->decoder_param_off == (size_t)-1) m->decoder_param_off = poff;
            p->off = poff;
            poff += oclseg_param_numel(p);
        }
    }
    m->param_floats = poff;
    m->buffer_floats = boff;
    size_t nb = (size_t)m->cfg.max_batch, aoff = 0, goff = 0, soff = 0, largest = 0;
    /* gradients flow to every activation except the input */
    for (int i = 0; i < m->act_count; i++) {
        oclseg_activation *a = &m->acts[i];
        size_t sz = nb * a->c * a->h * a->w;
        a->off = aoff;
        aoff += sz;
        a->has_grad = i != 0;
        if (sz > largest) largest = sz;
        a->grad_off = goff;
        if (a->has_grad) goff += sz;
    }
    for (int i = 0; i < m->layer_count; i++) {
        oclseg_layer *l = &m->layers[i];
        if (l->kind != LAYER_BATCHNORM) continue;
        l->save_off = soff;
        soff += 2 * (size_t)m->acts[l->out].c;
    }
    m->acts_floats = aoff;
    m->grads_act_floats = goff;
    m->bn_save_floats = soff;
    m->grad_tmp_floats = largest;
    m->bn_batches = calloc((size_t)m->bn_count + 1, sizeof *m->bn_batches);
    if (!m->bn_batches) return OCLSEG_ERR_OUT_OF_MEMORY;
    oclseg_ctx *ctx = m->ctx;
    TRY(oclseg_buffer_create(ctx, m->param_floats * sizeof(float), "model parameters",
                             &m->params_buf));
    TRY(oclseg_buffer_create(ctx, m->buffer_floats * sizeof(float), "BatchNorm running statistics",
                             &m->buffers_buf));
    TRY(oclseg_buffer_create(ctx, m->acts_floats * sizeof(float), "activations", &m->acts_buf));
    const oclseg_activation *logits = &m->acts[m->logits_act];
    TRY(oclseg_buffer_create(ctx, nb * logits->c * logits->h * logits->w * sizeof(float),
                             "probabilities", &m->probs_buf));
    return OCLSEG_OK;
}

int oclseg_model_enable_training(oclseg_model *m) {
    if (m->grads_buf) return OCLSEG_OK;
    m->grad_ready = calloc((size_t)m->act_count, 1);
    if (!m->grad_ready) return OCLSEG_ERR_OUT_OF_MEMORY;
    oclseg_ctx *ctx = m->ctx;
    size_t pb = m->param_floats * sizeof(float);
    int st = OCLSEG_OK;
    TRY_GOTO(oclseg_buffer_create(ctx, pb, "parameter gradients", &m->grads_buf), st, fail);
    TRY_GOTO(oclseg_buffer_create(ctx, m->bn_save_floats * sizeof(float),
                                  "BatchNorm saved statistics", &m->bn_save_buf), st, fail);
    TRY_GOTO(oclseg_buffer_create(ctx, m->grads_act_floats * sizeof(float),
                                  "activation gradients", &m->grads_act_buf), st, fail);
    TRY_GOTO(oclseg_buffer_create(ctx, m->grad_tmp_floats * sizeof(float),
                                  "gradient accumulation temporary", &m->grad_tmp_buf), st, fail);
    TRY_GOTO(oclseg_fill_f32(ctx, m->grads_buf, 0, m->param_floats, 0.0f), st, fail);
    return OCLSEG_OK;
fail:
    free_training(m);
    return st;
}

int oclseg_model_enable_optimizer(oclseg_model *m, const oclseg_optim_config *cfg) {
    const oclseg_optimizer_desc *d = oclseg_optimizer_get(cfg->kind);
    const int n = oclseg_optim_state_count(cfg);
    TRY(model_require_training(m, "the optimizer state"));
    if (!d) {
        OCLSEG_ERROR("optimizer state: unknown optimizer kind %d", (int)cfg->kind);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (m->state_count == n && (n == 0 || m->state_bufs[0])) return OCLSEG_OK;
    if (m->state_bufs[0]) {
        OCLSEG_ERROR("optimizer state: the model holds %d state arenas, %s needs %d",
                     m->state_count, d->name, n);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const size_t pb = m->param_floats * sizeof(float);
    int st = OCLSEG_OK;
    for (int s = 0; s < n && st == OCLSEG_OK; s++) {
        char what[64];
        snprintf(what, sizeof what, "optimizer state (%s)", d->state_keys[s]);
        st = oclseg_buffer_create(m->ctx, pb, what, &m->state_bufs[s]);
        if (st == OCLSEG_OK) st = oclseg_fill_f32(m->ctx, m->state_bufs[s], 0, m->param_floats, 0.0f);
    }
    if (st != OCLSEG_OK) {
        for (int s = 0; s < n; s++) {
            oclseg_buffer_free(m->ctx, m->state_bufs[s]);
            m->state_bufs[s] = NULL;
        }
        return st;
    }
    m->state_count = n;
    return OCLSEG_OK;
}

int model_require_training(const oclseg_model *m, const char *what) {
    if (m->grads_buf) return OCLSEG_OK;
    OCLSEG_ERROR("%s needs the model's training arenas (gradients, optimizer state), which an "
                 "inference model does not allocate (oclseg_model_enable_training)", what);
    return OCLSEG_ERR_INVALID_ARG;
}

int oclseg_model_create(oclseg_ctx *ctx, const oclseg_model_config *cfg, oclseg_model **out) {
    *out = NULL;
    if (cfg->size <= 0 || cfg->size % 32 != 0 || cfg->max_batch <= 0 || cfg->width_mult <= 0 ||
        cfg->last_channel <= 0 || cfg->decoder[0] <= 0 || cfg->decoder[1] <= 0 ||
        cfg->decoder[2] <= 0 || cfg->dropout < 0 || cfg->dropout >= 1 ||
        (int)cfg->decoder_kind < 0 || cfg->decoder_kind >= OCLSEG_DECODER_COUNT) {
        OCLSEG_ERROR("invalid model configuration: size %d must be a positive multiple of 32, "
                     "batch %d > 0, dropout %g in [0, 1), decoder kind %d in [0, %d)",
                     cfg->size, cfg->max_batch, (double)cfg->dropout, (int)cfg->decoder_kind,
                     (int)OCLSEG_DECODER_COUNT);
        return OCLSEG_ERR_INVALID_ARG;
    }
    oclseg_model *m = calloc(1, sizeof *m);
    if (!m) return OCLSEG_ERR_OUT_OF_MEMORY;
    m->ctx = ctx;
    m->cfg = *cfg;
    builder b = {m, 0, 0, 0, 1, 0, {0}};
    int act = add_act(&b, 3, cfg->size, cfg->size);
    build_encoder(&b, &act);
    if (cfg->decoder_kind == OCLSEG_DECODER_SEED) build_decoder(&b, &act);
    else build_skip_decoder(&b, &act);
    m->logits_act = act;
    int st = b.failed ? b.failed : allocate(m);
    if (st != OCLSEG_OK) {
        oclseg_model_free(m);
        return st;
    }
    *out = m;
    return OCLSEG_OK;
}

void oclseg_model_free(oclseg_model *m) {
    if (!m) return;
    oclseg_ctx *ctx = m->ctx;
    free_training(m);
    oclseg_buffer_free(ctx, m->params_buf);
    oclseg_buffer_free(ctx, m->buffers_buf);
    oclseg_buffer_free(ctx, m->acts_buf);
    oclseg_buffer_free(ctx, m->probs_buf);
    oclseg_buffer_free(ctx, m->check_buf);
    free(m->layers);
    free(m->params);
    free(m->acts);
    free(m->bn_batches);
    free(m);
}

int oclseg_model_find_param(const oclseg_model *m, const char *name) {
    for (int i = 0; i < m->param_count; i++)
        if (strcmp(m->params[i].name, name) == 0) return i;
    return -1;
}

/* ---- views ------------------------------------------------------------------------------- */
oclseg_tensor model_act_view(const oclseg_model *m, int id, int n) {
    const oclseg_activation *a = &m->acts[id];
    return oclseg_tensor_view(m->acts_buf, a->off, n, a->c, a->h, a->w);
}

oclseg_tensor model_grad_view(const oclseg_model *m, int id, int n) {
    const oclseg_activation *a = &m->acts[id];
    return oclseg_tensor_view(m->grads_act_buf, a->grad_off, n, a->c, a->h, a->w);
}

oclseg_tensor model_param_view(const oclseg_model *m, cl_mem base, int id) {
    const oclseg_param *p = &m->params[id];
    return oclseg_tensor_view(p->is_buffer ? m->buffers_buf : base, p->off, p->n, p->c, p->h, p->w);
}

oclseg_tensor oclseg_model_input(const oclseg_model *m, int n) { return model_act_view(m, 0, n); }
oclseg_tensor oclseg_model_logits(const oclseg_model *m, int n) {
    return model_act_view(m, m->logits_act, n);
}
oclseg_tensor oclseg_model_logits_grad(const oclseg_model *m, int n) {
    return model_grad_view(m, m->logits_act, n);
}
oclseg_tensor oclseg_model_probs(const oclseg_model *m, int n) {
    const oclseg_activation *a = &m->acts[m->logits_act];
    return oclseg_tensor_view(m->probs_buf, 0, n, a->c, a->h, a->w);
}

/* ---- initialisation ------------------------------------------------------------------------ */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return ((splitmix64(s) >> 11) + 0.5) / 9007199254740992.0; }

static double normal(uint64_t *s) {
    return sqrt(-2.0 * log(uniform01(s))) * cos(6.283185307179586 * uniform01(s));
}

int oclseg_model_init_random(oclseg_model *m, uint64_t seed) {
    uint64_t rng = seed;
    float *host = malloc(oclseg_model_max_param_numel(m) * sizeof *host);
    if (!host) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = OCLSEG_OK;
    for (int i = 0; i < m->param_count && st == OCLSEG_OK; i++) {
        const oclseg_param *p = &m->params[i];
        size_t count = oclseg_param_numel(p);
        const char *suffix = strrchr(p->name, '.');
        /* the decoder's (transposed) convolutions and their biases keep PyTorch's default; its
         * BatchNorms (the skip decoder's) are 1/0 like the encoder's */
        int is_convt = strncmp(p->name, "decoder.", 8) == 0 &&
                       (p->ndim == 4 || (i > 0 && m->params[i - 1].ndim == 4));
        if (p->ndim == 4 && !is_convt) {
            /* kaiming_normal_(mode="fan_out"): fan_out = size(0) * kh * kw */
            double std = sqrt(2.0 / ((double)p->n * p->h * p->w));
            for (size_t k = 0; k < count; k++) host[k] = (float)(std * normal(&rng));
        } else if (is_convt) {
            /* ConvTranspose2d default: kaiming_uniform_(a=sqrt(5)) and bias U(-b, b), both with
             * b = 1/sqrt(fan_in), fan_in = weight.size(1) * kh * kw = Cout * 16 (the skip
             * decoder's 1x1 Conv2d head likewise: fan_in = Cin). */
            int wid = p->ndim == 4 ? i : i - 1; /* the bias follows its weight */
            const oclseg_param *w = &m->params[wid];
            double bound = 1.0 / sqrt((double)w->c * w->h * w->w);
            for (size_t k = 0; k < count; k++) host[k] = (float)(bound * (2 * uniform01(&rng) - 1));
        } else if (strcmp(suffix, ".weight") == 0 || strcmp(suffix, ".running_var") == 0) {
            for (size_t k = 0; k < count; k++) host[k] = 1.0f;
        } else {
            for (size_t k = 0; k < count; k++) host[k] = 0.0f;
        }
        st = oclseg_model_write_param(m, i, host);
    }
    free(host);
    for (int i = 0; i < m->bn_count; i++) m->bn_batches[i] = 0;
    return st;
}

int oclseg_model_read_param(oclseg_model *m, int index, float *dst) {
    oclseg_tensor t = model_param_view(m, m->params_buf, index);
    return oclseg_tensor_read(m->ctx, &t, dst);
}

int oclseg_model_write_param(oclseg_model *m, int index, const float *src) {
    oclseg_tensor t = model_param_view(m, m->params_buf, index);
    return oclseg_tensor_write(m->ctx, &t, src);
}

int oclseg_model_read_grad(oclseg_model *m, int index, float *dst) {
    if (m->params[index].is_buffer) return OCLSEG_ERR_INVALID_ARG;
    TRY(model_require_training(m, "reading a gradient"));
    oclseg_tensor t = model_param_view(m, m->grads_buf, index);
    return oclseg_tensor_read(m->ctx, &t, dst);
}

/* ---- analytic cost --------------------------------------------------------------------------- */
void oclseg_model_flops(const oclseg_model *m, int n, int frozen_encoder, double *forward,
                        double *backward) {
    double fwd = 0, bwd = 0;
    for (int i = 0; i < m->layer_count; i++) {
        const oclseg_layer *l = &m->layers[i];
        const double f = layer_kinds[l->kind].flops(m, l, n);
        int dx = !(frozen_encoder && i <= m->encoder_layer_count) && l->in != 0;
        int dw = !(frozen_encoder && l->in_encoder);
        fwd += f;
        if (!(frozen_encoder && l->in_encoder)) bwd += f * (dx + dw);
    }
    *forward = fwd;
    *backward = bwd;
}
