/* Views into a model's arenas, shared by model.c, model_forward.c and model_backward.c. */
#ifndef OCLSEG_MODEL_INTERNAL_H
#define OCLSEG_MODEL_INTERNAL_H

#include "oclseg/dist.h"
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

/* First element of this batch's dropout mask: a data-parallel rank whose images start at image
 * dropout_image_offset of the global batch draws the mask they have there. */
static inline size_t model_dropout_first(const oclseg_model *m, const oclseg_tensor *x) {
    return (size_t)m->dropout_image_offset * (size_t)x->c * (size_t)x->h * (size_t)x->w;
}

#endif
