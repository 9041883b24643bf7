/* The layer kinds of the network and their one table (src/model/layers.c): name, in-place flag,
 * forward, backward, FLOPs and ONNX emitter of each kind. Private to src/model and src/export. */
#ifndef OCLSEG_MODEL_LAYERS_H
#define OCLSEG_MODEL_LAYERS_H

#include <stdint.h>

#include "oclseg/model.h"

/* Adding a kind: a name here, its entry in layers.c (every column; the static_assert there and
 * test_model's layer_table_complete fail otherwise), its ONNX emitter in src/export/onnx.c, and
 * its use in model.c's builder. */
typedef enum oclseg_layer_kind {
    LAYER_CONV,      /* conv2d, groups 1 (stem 3x3 s2, pointwise 1x1), no bias (param2 -1) or
                        with bias param2 (the skip decoder's 1x1 head) */
    LAYER_DEPTHWISE, /* 3x3 depthwise, pad 1, stride 1/2 */
    LAYER_BATCHNORM,
    LAYER_RELU6,     /* in place */
    LAYER_RELU,      /* in place */
    LAYER_ADD,       /* residual: out = in + in2 */
    LAYER_CONVT,     /* conv_transpose2d k4 s2 p1 + bias */
    LAYER_DROPOUT,
    LAYER_UPSAMPLE,  /* bilinear to the output's size (the input size; skip-bilinear: x2) */
    LAYER_CONCAT,    /* channels: out = cat(in, in2) (the skip decoder's joins) */
    LAYER_COUNT
} oclseg_layer_kind;

struct oclseg_layer {
    oclseg_layer_kind kind;
    int in, in2, out;          /* activation ids (in2: second ADD / CONCAT input) */
    int param, param2;         /* weight / bias (BN: gamma / beta) ids into model->params, or -1 */
    int buf_mean, buf_var;     /* BN running stats ids into model->params, or -1 */
    int bn_index;              /* BN: index into model->bn_batches (num_batches_tracked) */
    int stride;
    int in_encoder;
    size_t save_off;           /* BN: offset of save_mean, save_invstd (C each) in model->bn_save */
};

/* What one forward or backward over a batch reads besides the layer: the caller's oclseg_pass
 * (checked, resolved once per pass by oclseg_model_forward/backward) and the model. */
typedef struct layer_pass {
    oclseg_model *m;
    int n;                     /* images in the batch */
    int train;                 /* forward: batch statistics (outside a frozen encoder), dropout */
    int frozen_encoder;
    uint64_t dropout_seed, step;
    int image_offset;          /* the batch's first image in the global batch (dropout masks) */
    const int *bn_sync_counts; /* --sync-bn on several ranks: images per rank; NULL: local BN */
} layer_pass;

/* The layers' view of `pass` on model m (model_forward.c). */
layer_pass layer_pass_of(oclseg_model *m, const oclseg_pass *pass);

struct onnx_export; /* src/export/onnx.c: the graph being built */

typedef struct layer_kind_ops {
    const char *name;          /* in messages: "layer 12 (depthwise conv encoder.2.conv.1.0)" */
    int in_place;              /* the output is the input's activation (the builder checks) */
    /* Runs layer i; *layers = 2 when it also ran layer i + 1 (a fused activation), else 1. */
    int (*forward)(const layer_pass *p, int i, int *layers);
    /* Layer i's parameter gradients into the gradient arena and its input gradient into dx (NULL
     * when not wanted); in-place kinds get dx = NULL and update the output gradient in place. */
    int (*backward)(const layer_pass *p, int i, oclseg_tensor *dx);
    /* Forward FLOPs (2 per multiply-add) on n images; 0 for memory-bound kinds. */
    double (*flops)(const oclseg_model *m, const oclseg_layer *l, int n);
    /* Layer i's ONNX nodes (eval mode); *layers = 2 when they also cover layer i + 1. Defined in
     * src/export/onnx.c: the one place this table names code above src/model, so that a kind
     * cannot be added without deciding its export. src/model never calls it. */
    int (*emit_onnx)(struct onnx_export *s, int i, int *layers);
} layer_kind_ops;

extern const layer_kind_ops layer_kinds[];

/* The ONNX emitters of the table (src/export/onnx.c). */
int onnx_emit_conv_bn(struct onnx_export *s, int i, int *layers);
int onnx_emit_unfolded_batchnorm(struct onnx_export *s, int i, int *layers);
int onnx_emit_relu6(struct onnx_export *s, int i, int *layers);
int onnx_emit_relu(struct onnx_export *s, int i, int *layers);
int onnx_emit_add(struct onnx_export *s, int i, int *layers);
int onnx_emit_convt(struct onnx_export *s, int i, int *layers);
int onnx_emit_dropout(struct onnx_export *s, int i, int *layers);
int onnx_emit_upsample(struct onnx_export *s, int i, int *layers);
int onnx_emit_concat(struct onnx_export *s, int i, int *layers);

#endif
