/* The backward pass over the layer list: parameter gradients into the gradient arena,
 * activation gradients in place or accumulated through a scratch temporary. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "oclseg/dist.h"
#include "oclseg/model.h"

/* ---- backward -------------------------------------------------------------------------------- */
/* Gradient destination for activation `id`: its own gradient buffer if nothing was written there
 * yet in this backward, else a scratch temporary that accumulate_grad adds in afterwards. */
static int grad_target(oclseg_model *m, int id, int n, oclseg_tensor *out, int *needs_add) {
    *out = model_grad_view(m, id, n);
    *needs_add = m->grad_ready[id];
    if (*needs_add) /* not the shared scratch: the op writing dx uses that as workspace */
        *out = oclseg_tensor_view(m->grad_tmp_buf, 0, out->n, out->c, out->h, out->w);
    return OCLSEG_OK;
}

static int copy_tensor(oclseg_ctx *ctx, const oclseg_tensor *src, oclseg_tensor *dst) {
    CL_CHECK(clEnqueueCopyBuffer(ctx->queue, src->buf, dst->buf, src->off * sizeof(float),
                                 dst->off * sizeof(float), oclseg_tensor_numel(src) * sizeof(float),
                                 0, NULL, NULL));
    return OCLSEG_OK;
}

static int accumulate_grad(oclseg_model *m, int id, int n, const oclseg_tensor *written,
                           int needs_add) {
    if (needs_add) {
        oclseg_tensor g = model_grad_view(m, id, n);
        TRY(op_add(m->ctx, &g, written, &g));
    }
    m->grad_ready[id] = 1;
    return OCLSEG_OK;
}

int oclseg_model_backward(oclseg_model *m, int n, int frozen_encoder, uint64_t dropout_seed,
                          uint64_t step) {
    oclseg_ctx *ctx = m->ctx;
    memset(m->grad_ready, 0, (size_t)m->act_count);
    m->grad_ready[m->logits_act] = 1;
    int first = frozen_encoder ? m->encoder_layer_count : 0;
    for (int i = m->layer_count - 1; i >= first; i--) {
        const oclseg_layer *l = &m->layers[i];
        oclseg_tensor x = model_act_view(m, l->in, n), y = model_act_view(m, l->out, n);
        oclseg_tensor dy = model_grad_view(m, l->out, n);
        /* the first layer of a frozen decoder's input (encoder output) needs no dx */
        int want_dx = m->acts[l->in].has_grad && !(frozen_encoder && i == first);
        oclseg_tensor dx_store, *dx = NULL;
        int needs_add = 0;
        if (l->in == l->out) { /* in-place activation: gradient updated in place */
            if (i > 0 && model_bn_relu6_fused(m, i - 1)) continue; /* in the BatchNorm's passes */
            if (l->kind == LAYER_RELU6) TRY(op_relu6_backward(ctx, &y, &dy, &dy));
            else TRY(op_relu_backward(ctx, &y, &dy, &dy));
            continue;
        }
        if (want_dx) {
            TRY(grad_target(m, l->in, n, &dx_store, &needs_add));
            dx = &dx_store;
        }
        switch (l->kind) {
        case LAYER_CONV: {
            oclseg_tensor w = model_param_view(m, m->params_buf, l->param);
            oclseg_tensor dw = model_param_view(m, m->grads_buf, l->param);
            int pad = m->params[l->param].h / 2;
            oclseg_conv_params p = {l->stride, l->stride, pad, pad};
            TRY(op_conv2d_backward(ctx, &x, &w, &dy, dx, &dw, NULL, p));
            break;
        }
        case LAYER_DEPTHWISE: {
            oclseg_tensor w = model_param_view(m, m->params_buf, l->param);
            oclseg_tensor dw = model_param_view(m, m->grads_buf, l->param);
            TRY(op_depthwise_backward(ctx, &x, &w, &dy, dx, &dw, l->stride));
            break;
        }
        case LAYER_BATCHNORM: {
            oclseg_tensor g = model_param_view(m, m->params_buf, l->param);
            oclseg_tensor b = model_param_view(m, m->params_buf, l->param2);
            oclseg_tensor dg = model_param_view(m, m->grads_buf, l->param);
            oclseg_tensor db = model_param_view(m, m->grads_buf, l->param2);
            oclseg_tensor sm = oclseg_tensor_view(m->bn_save_buf, l->save_off, g.n, 1, 1, 1);
            oclseg_tensor si = oclseg_tensor_view(m->bn_save_buf, l->save_off + g.n, g.n, 1, 1, 1);
            op_bn_sync sync = {m->rank_counts};
            TRY(op_batchnorm_backward_train_sync(ctx, &x, &dy, &g, &b, &sm, &si, dx, &dg, &db,
                                                 model_bn_relu6_fused(m, i),
                                                 model_bn_sync(m) ? &sync : NULL));
            break;
        }
        case LAYER_ADD: { /* y = x + x2: both inputs receive dy */
            if (dx) TRY(copy_tensor(ctx, &dy, dx));
            oclseg_tensor dx2;
            int needs_add2;
            TRY(grad_target(m, l->in2, n, &dx2, &needs_add2));
            TRY(copy_tensor(ctx, &dy, &dx2));
            TRY(accumulate_grad(m, l->in2, n, &dx2, needs_add2));
            break;
        }
        case LAYER_CONVT: {
            oclseg_tensor w = model_param_view(m, m->params_buf, l->param);
            oclseg_tensor dw = model_param_view(m, m->grads_buf, l->param);
            oclseg_tensor db = model_param_view(m, m->grads_buf, l->param2);
            TRY(op_conv_transpose2d_backward(ctx, &x, &w, &dy, dx, &dw, &db, l->stride, 1));
            break;
        }
        case LAYER_DROPOUT:
            TRY(op_dropout_backward_at(ctx, &dy, dx, m->cfg.dropout, dropout_seed, step,
                                       model_dropout_first(m, &dy)));
            break;
        case LAYER_UPSAMPLE: TRY(op_upsample_bilinear_backward(ctx, &dy, dx)); break;
        case LAYER_RELU6:
        case LAYER_RELU: break; /* handled above (always in place) */
        }
        if (dx) TRY(accumulate_grad(m, l->in, n, dx, needs_add));
    }
    return OCLSEG_OK;
}

