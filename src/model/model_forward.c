/* The forward pass over the layer list, and the --check-numerics search for the first NaN/Inf. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "oclseg/env.h"
#include "oclseg/dist.h"
#include "oclseg/model.h"

/* ---- forward --------------------------------------------------------------------------------- */

int oclseg_model_forward(oclseg_model *m, int n, int train, int frozen_encoder,
                         uint64_t dropout_seed, uint64_t step) {
    oclseg_ctx *ctx = m->ctx;
    if (n <= 0 || n > m->cfg.max_batch) {
        OCLSEG_ERROR("batch of %d images does not fit the model's batch %d", n, m->cfg.max_batch);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const float eps = 1e-5f, momentum = 0.1f;
    const int fuse = !oclseg_env_get()->no_fusion; /* OCLSEG_NO_FUSION=1: benchmarks' A/B */
    for (int i = 0; i < m->layer_count; i++) {
        const oclseg_layer *l = &m->layers[i];
        oclseg_tensor x = model_act_view(m, l->in, n), y = model_act_view(m, l->out, n);
        int batch_stats = train && !(frozen_encoder && l->in_encoder);
        switch (l->kind) {
        case LAYER_CONV: {
            oclseg_tensor w = model_param_view(m, m->params_buf, l->param);
            int pad = m->params[l->param].h / 2;
            oclseg_conv_params p = {l->stride, l->stride, pad, pad};
            TRY(op_conv2d_forward(ctx, &x, &w, NULL, &y, p));
            break;
        }
        case LAYER_DEPTHWISE: {
            oclseg_tensor w = model_param_view(m, m->params_buf, l->param);
            TRY(op_depthwise_forward(ctx, &x, &w, &y, l->stride));
            break;
        }
        case LAYER_BATCHNORM: {
            oclseg_tensor g = model_param_view(m, m->params_buf, l->param);
            oclseg_tensor b = model_param_view(m, m->params_buf, l->param2);
            oclseg_tensor rm = model_param_view(m, m->params_buf, l->buf_mean);
            oclseg_tensor rv = model_param_view(m, m->params_buf, l->buf_var);
            /* a ReLU6 applied in place to this output is fused into the BatchNorm pass */
            const int relu6 = model_bn_relu6_fused(m, i);
            if (batch_stats) {
                oclseg_tensor sm = oclseg_tensor_view(m->bn_save_buf, l->save_off, g.n, 1, 1, 1);
                oclseg_tensor si = oclseg_tensor_view(m->bn_save_buf, l->save_off + g.n, g.n, 1, 1, 1);
                op_bn_sync sync = {m->rank_counts};
                TRY(op_batchnorm_forward_train_sync(ctx, &x, &g, &b, &rm, &rv, &y, &sm, &si,
                                                    momentum, eps, relu6, model_bn_sync(m) ? &sync : NULL));
                m->bn_batches[l->bn_index]++;
            } else {
                TRY(op_batchnorm_forward_eval_act(ctx, &x, &g, &b, &rm, &rv, &y, eps, relu6));
            }
            if (relu6) i++; /* the ReLU6 layer is done */
            break;
        }
        case LAYER_RELU6: TRY(op_relu6_forward(ctx, &x, &y)); break;
        case LAYER_RELU: TRY(op_relu_forward(ctx, &x, &y)); break;
        case LAYER_ADD: {
            oclseg_tensor x2 = model_act_view(m, l->in2, n);
            TRY(op_add(ctx, &x, &x2, &y));
            break;
        }
        case LAYER_CONVT: {
            oclseg_tensor w = model_param_view(m, m->params_buf, l->param);
            oclseg_tensor b = model_param_view(m, m->params_buf, l->param2);
            /* a ReLU applied in place to this output is fused into the col2im pass */
            const oclseg_layer *next = i + 1 < m->layer_count ? &m->layers[i + 1] : NULL;
            int relu = fuse && next && next->kind == LAYER_RELU && next->in == l->out &&
                       next->out == l->out;
            TRY(op_conv_transpose2d_forward_act(ctx, &x, &w, &b, &y, l->stride, 1, relu));
            if (relu) i++; /* the ReLU layer is done */
            break;
        }
        case LAYER_DROPOUT:
            TRY(op_dropout_forward_at(ctx, &x, &y, train ? m->cfg.dropout : 0.0f, dropout_seed,
                                      step, model_dropout_first(m, &x)));
            break;
        case LAYER_UPSAMPLE: TRY(op_upsample_bilinear_forward(ctx, &x, &y)); break;
        }
    }
    return OCLSEG_OK;
}


/* ---- numerics debugging ---------------------------------------------------------------------- */
static const char *layer_kind_name(oclseg_layer_kind kind) {
    static const char *names[] = {"conv", "depthwise conv", "batchnorm", "relu6", "relu",
                                  "residual add", "conv_transpose", "dropout", "upsample"};
    return names[kind];
}

/* "layer 12 (conv encoder.2.conv.0.0)": the parameter's module name, or the nearest earlier
 * layer's for parameter-free layers ("relu6 after encoder.2.conv.0.1"). */
static void describe_layer(const oclseg_model *m, int i, char *out, size_t size) {
    const oclseg_layer *l = &m->layers[i];
    int named = i;
    while (named >= 0 && m->layers[named].param < 0) named--;
    char module[96] = "the input";
    if (named >= 0) {
        snprintf(module, sizeof module, "%s", m->params[m->layers[named].param].name);
        char *dot = strrchr(module, '.');
        if (dot) *dot = '\0'; /* drop ".weight" */
    }
    snprintf(out, size, "layer %d (%s %s%s)", i, layer_kind_name(l->kind),
             named == i ? "" : "after ", module);
}

/* Enqueues a finiteness check of `count` floats of buf at off into flag slot `slot`. */
static int check_range(oclseg_model *m, cl_mem buf, size_t off, size_t count, int slot) {
    return op_check_finite(m->ctx, buf, off, count, m->check_buf, (size_t)slot);
}

int oclseg_model_locate_nonfinite(oclseg_model *m, int n, int backward, int frozen_encoder,
                                  char *where, size_t size) {
    const size_t slots = 2 * (size_t)m->layer_count + 2;
    if (!m->check_buf)
        TRY(oclseg_buffer_create(m->ctx, slots * sizeof(float), "numerics check flags",
                                 &m->check_buf));
    TRY(oclseg_fill_f32(m->ctx, m->check_buf, 0, slots, 0.0f));
    int first = backward && frozen_encoder ? m->encoder_layer_count : 0;
    /* slot 2i: the layer's parameters (or their gradients); slot 2i+1: its output (or its input
     * gradient). Slot 2*layer_count: the model input (or the logits gradient). */
    const size_t in_numel = (size_t)n * 3 * m->acts[0].h * m->acts[0].w;
    if (!backward) TRY(check_range(m, m->acts_buf, m->acts[0].off, in_numel, 2 * m->layer_count));
    else {
        oclseg_tensor g = oclseg_model_logits_grad(m, n);
        TRY(check_range(m, g.buf, g.off, oclseg_tensor_numel(&g), 2 * m->layer_count));
    }
    for (int i = first; i < m->layer_count; i++) {
        const oclseg_layer *l = &m->layers[i];
        cl_mem pbuf = backward ? m->grads_buf : m->params_buf;
        if (l->param >= 0) {
            /* weight and bias/beta are adjacent in the arena: check both in one range */
            const oclseg_param *p = &m->params[l->param];
            size_t count = oclseg_param_numel(p);
            if (l->param2 >= 0 && m->params[l->param2].off == p->off + count)
                count += oclseg_param_numel(&m->params[l->param2]);
            TRY(check_range(m, pbuf, p->off, count, 2 * i));
        }
        int act = backward ? l->in : l->out;
        if (backward && (!m->acts[act].has_grad || (frozen_encoder && i == first))) continue;
        oclseg_tensor t = backward ? model_grad_view(m, act, n) : model_act_view(m, act, n);
        TRY(check_range(m, t.buf, t.off, oclseg_tensor_numel(&t), 2 * i + 1));
    }
    float *flags = malloc(slots * sizeof(float));
    if (!flags) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = oclseg_read(m->ctx, m->check_buf, 0, slots * sizeof(float), flags);
    int found = 0;
    char layer[160];
    if (st == OCLSEG_OK && flags[2 * m->layer_count] != 0.0f) {
        snprintf(where, size, backward ? "the loss gradient (d loss / d logits)" : "the input batch");
        found = 1;
    }
    /* execution order: forward from the first layer, backward from the last */
    for (int k = 0; st == OCLSEG_OK && !found && k < m->layer_count - first; k++) {
        int i = backward ? m->layer_count - 1 - k : first + k;
        const oclseg_layer *l = &m->layers[i];
        describe_layer(m, i, layer, sizeof layer);
        if (l->param >= 0 && flags[2 * i] != 0.0f) {
            snprintf(where, size, "%s %s", layer, backward ? "weight/bias gradients" : "weights/bias");
            found = 1;
        } else if (flags[2 * i + 1] != 0.0f) {
            snprintf(where, size, "%s %s", layer, backward ? "input gradient" : "output");
            found = 1;
        }
    }
    free(flags);
    return st != OCLSEG_OK ? st : found;
}

