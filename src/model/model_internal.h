/* Views into a model's arenas, shared by model.c, layers.c, model_forward.c and model_backward.c. */
#ifndef OCLSEG_MODEL_INTERNAL_H
#define OCLSEG_MODEL_INTERNAL_H

#include "model/layers.h"
#include "oclseg/model.h"

/* Activation `id` (or its gradient) for a batch of n. */
oclseg_tensor model_act_view(const oclseg_model *m, int id, int n);
oclseg_tensor model_grad_view(const oclseg_model *m, int id, int n);
/* Parameter `id` in arena `base` (params, grads or optimizer state; buffers: the buffer arena). */
oclseg_tensor model_param_view(const oclseg_model *m, cl_mem base, int id);

/* OCLSEG_OK when the training arenas exist (oclseg_model_enable_training), else an error
 * naming `what` needed them. */
int model_require_training(const oclseg_model *m, const char *what);

/* Backward (model_backward.c): where a gradient of activation `id` is written, its own buffer if
 * nothing was written there yet in this backward, else a scratch temporary (*needs_add) that
 * model_accumulate_grad then adds in. */
int model_grad_target(oclseg_model *m, int id, int n, oclseg_tensor *out, int *needs_add);
int model_accumulate_grad(oclseg_model *m, int id, int n, const oclseg_tensor *written,
                          int needs_add);

#endif
