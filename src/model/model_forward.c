/* The forward pass over the layer list (each kind's own work: src/model/layers.c), and the
 * --check-numerics search for the first NaN/Inf. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "oclseg/dist.h"
#include "oclseg/model.h"

/* ---- forward --------------------------------------------------------------------------------- */

oclseg_pass oclseg_pass_eval(int n) {
    return (oclseg_pass){.n = n, .train = 0, .frozen_encoder = 1};
}

layer_pass layer_pass_of(oclseg_model *m, const oclseg_pass *pass) {
    const int several = pass->rank_counts && oclseg_dist_size() > 1;
    return (layer_pass){m, pass->n, pass->train, pass->frozen_encoder, pass->dropout_seed,
                        pass->step, pass->image_offset,
                        several && pass->sync_bn ? pass->rank_counts : NULL};
}

/* OCLSEG_OK when the pass fits the model and the process group (see oclseg_pass). */
static int check_pass(const oclseg_model *m, const oclseg_pass *pass) {
    if (pass->n <= 0 || pass->n > m->cfg.max_batch) {
        OCLSEG_ERROR("batch of %d images does not fit the model's batch %d", pass->n,
                     m->cfg.max_batch);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (pass->image_offset < 0) {
        OCLSEG_ERROR("a pass's image offset in the global batch is %d (negative)",
                     pass->image_offset);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (pass->rank_counts && pass->rank_counts[oclseg_dist_rank()] != pass->n) {
        OCLSEG_ERROR("a data-parallel pass gives rank %d %d images but its batch has %d",
                     oclseg_dist_rank(), pass->rank_counts[oclseg_dist_rank()], pass->n);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

int oclseg_model_forward(oclseg_model *m, const oclseg_pass *pass) {
    TRY(check_pass(m, pass));
    if (pass->train) TRY(model_require_training(m, "a training forward"));
    const layer_pass p = layer_pass_of(m, pass);
    m->forward_ran = 0; /* the activations change from here on */
    for (int i = 0; i < m->layer_count;) {
        int layers = 1;
        TRY(layer_kinds[m->layers[i].kind].forward(&p, i, &layers));
        i += layers;
    }
    m->forward_pass = *pass;
    m->forward_ran = 1;
    return OCLSEG_OK;
}

/* ---- numerics debugging ---------------------------------------------------------------------- */
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
    snprintf(out, size, "layer %d (%s %s%s)", i, layer_kinds[l->kind].name,
             named == i ? "" : "after ", module);
}

/* Enqueues a finiteness check of `count` floats of buf at off into flag slot `slot`. */
static int check_range(oclseg_model *m, cl_mem buf, size_t off, size_t count, int slot) {
    return op_check_finite(m->ctx, buf, off, count, m->check_buf, (size_t)slot);
}

int oclseg_model_locate_nonfinite(oclseg_model *m, const oclseg_pass *pass, int backward,
                                  char *where, size_t size) {
    if (backward) TRY(model_require_training(m, "the backward's numerics check"));
    TRY(check_pass(m, pass));
    const int n = pass->n, frozen_encoder = pass->frozen_encoder;
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

