/* Views into a model's arenas, shared by model.c, model_forward.c and model_backward.c. */
#ifndef OCLSEG_MODEL_INTERNAL_H
#define OCLSEG_MODEL_INTERNAL_H

#include "oclseg/dist.h"
#include "oclseg/env.h"
#include "oclseg/model.h"

/* Activation `id` (or its gradient) for a batch of n. */
oclseg_tensor model_act_view(const oclseg_model *m, int id, int n);
oclseg_tensor model_grad_view(const oclseg_model *m, int id, int n);
/* Parameter `id` in arena `base` (params, grads or optimizer state; buffers: the buffer arena). */
oclseg_tensor model_param_view(const oclseg_model *m, cl_mem base, int id);

/* --sync-bn during a data-parallel training step. */
static inline int model_bn_sync(const oclseg_model *m) {
    return m->sync_bn && m->rank_counts && oclseg_dist_size() > 1;
}

/* Whether BatchNorm layer i runs fused with the in-place ReLU6 that follows it (forward: one
 * bn_apply pass; backward: the ReLU6 mask inside the BatchNorm's passes). OCLSEG_NO_FUSION=1
 * (benchmarks' A/B) runs them as separate layers. */
static inline int model_bn_relu6_fused(const oclseg_model *m, int i) {
    const oclseg_layer *l = &m->layers[i], *next = i + 1 < m->layer_count ? l + 1 : NULL;
    return !oclseg_env_get()->no_fusion && l->kind == LAYER_BATCHNORM && next &&
           next->kind == LAYER_RELU6 && next->in == l->out && next->out == l->out;
}

/* First element of this batch's dropout mask: a data-parallel rank whose images start at image
 * dropout_image_offset of the global batch draws the mask they have there. */
static inline size_t model_dropout_first(const oclseg_model *m, const oclseg_tensor *x) {
    return (size_t)m->dropout_image_offset * (size_t)x->c * (size_t)x->h * (size_t)x->w;
}

#endif
