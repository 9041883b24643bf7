/* The backward pass over the layer list: parameter gradients into the gradient arena,
 * activation gradients in place or accumulated through a scratch temporary. Each kind's own
 * gradients: src/model/layers.c. */
#include <string.h>

#include "model/model_internal.h"
#include "oclseg/model.h"

int model_grad_target(oclseg_model *m, int id, int n, oclseg_tensor *out, int *needs_add) {
    *out = model_grad_view(m, id, n);
    *needs_add = m->grad_ready[id];
    if (*needs_add) /* not the shared scratch: the op writing dx uses that as workspace */
        *out = oclseg_tensor_view(m->grad_tmp_buf, 0, out->n, out->c, out->h, out->w);
    return OCLSEG_OK;
}

int model_accumulate_grad(oclseg_model *m, int id, int n, const oclseg_tensor *written,
                          int needs_add) {
    if (needs_add) {
        oclseg_tensor g = model_grad_view(m, id, n);
        TRY(op_add(m->ctx, &g, written, &g));
    }
    m->grad_ready[id] = 1;
    return OCLSEG_OK;
}

/* Whether two passes are the same (every field). */
static int same_pass(const oclseg_pass *a, const oclseg_pass *b) {
    return a->n == b->n && a->train == b->train && a->frozen_encoder == b->frozen_encoder &&
           a->dropout_seed == b->dropout_seed && a->step == b->step &&
           a->image_offset == b->image_offset && a->rank_counts == b->rank_counts &&
           a->sync_bn == b->sync_bn;
}

int oclseg_model_backward(oclseg_model *m, const oclseg_pass *p) {
    TRY(model_require_training(m, "backward"));
    if (!p->train || !m->forward_ran || !m->forward_pass.train || !same_pass(p, &m->forward_pass)) {
        OCLSEG_ERROR("a backward must follow a training forward of the same pass (the last "
                     "forward was %s)", !m->forward_ran ? "none or failed"
                     : !m->forward_pass.train ? "in eval mode" : "a different pass");
        return OCLSEG_ERR_INVALID_ARG;
    }
    const layer_pass pass = layer_pass_of(m, p);
    const int n = p->n, frozen_encoder = p->frozen_encoder;
    memset(m->grad_ready, 0, (size_t)m->act_count);
    m->grad_ready[m->logits_act] = 1;
    int first = frozen_encoder ? m->encoder_layer_count : 0;
    for (int i = m->layer_count - 1; i >= first; i--) {
        const oclseg_layer *l = &m->layers[i];
        const layer_kind_ops *kind = &layer_kinds[l->kind];
        if (kind->in_place) { /* the output gradient is updated in place */
            TRY(kind->backward(&pass, i, NULL));
            continue;
        }
        /* the first layer of a frozen decoder's input (encoder output) needs no dx */
        int want_dx = m->acts[l->in].has_grad && !(frozen_encoder && i == first);
        /* without parameters and without dx there is nothing to compute (skip-bilinear's first
         * stage upsamples the frozen encoder's output) */
        if (!want_dx && l->param < 0) continue;
        oclseg_tensor dx_store, *dx = NULL;
        int needs_add = 0;
        if (want_dx) {
            TRY(model_grad_target(m, l->in, n, &dx_store, &needs_add));
            dx = &dx_store;
        }
        TRY(kind->backward(&pass, i, dx));
        if (dx) TRY(model_accumulate_grad(m, l->in, n, dx, needs_add));
    }
    return OCLSEG_OK;
}
