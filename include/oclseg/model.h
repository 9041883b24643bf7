/* The segmentation network (MobileNetV2 encoder + transposed-conv decoder + bilinear upsampling):
 * built from a layer list, one parameter arena (params, grads and optimizer state share a
 * layout), forward/backward on an oclseg_ctx. */
#ifndef OCLSEG_MODEL_H
#define OCLSEG_MODEL_H

#include <stdint.h>

#include "oclseg/ops.h"

/* The decoder after the MobileNetV2 encoder (--decoder). */
typedef enum oclseg_decoder_kind {
    OCLSEG_DECODER_SEED = 0, /* four transposed convs from the stride-32 map + bilinear resize */
    OCLSEG_DECODER_SKIP = 1, /* five transposed conv + BN + ReLU stages, each joined with the
                                encoder's map of the same stride (16, 8, 4, 2), a 1x1 head */
    OCLSEG_DECODER_SKIP_BILINEAR = 2, /* the same, each stage bilinear x2 + 3x3 conv (no bias)
                                         instead of the transposed conv */
    OCLSEG_DECODER_COUNT
} oclseg_decoder_kind;

/* The decoders' names as --decoder, config.json and the weights' metadata spell them, indexed by
 * oclseg_decoder_kind, NULL-terminated ("seed", "skip", "skip-bilinear"). */
extern const char *const oclseg_decoder_names[OCLSEG_DECODER_COUNT + 1];

/* The kind called `name`: OCLSEG_OK, or OCLSEG_ERR_INVALID_ARG (nothing printed) when none is. */
int oclseg_decoder_parse(const char *name, oclseg_decoder_kind *out);

typedef struct oclseg_model_config {
    float width_mult;  /* encoder width multiplier (1.0: torchvision's mobilenet_v2) */
    int last_channel;  /* channels of the encoder's last 1x1 conv (1280 at width 1.0) */
    int decoder[3];    /* channels of the first three transposed convs (256, 128, 64) */
    int size;          /* input height = width, a multiple of 32 (128) */
    int max_batch;     /* activations are allocated for this many images (16) */
    float dropout;     /* dropout after the first decoder ReLU (0.5) */
    oclseg_decoder_kind decoder_kind; /* OCLSEG_DECODER_SEED */
} oclseg_model_config;

void oclseg_model_config_default(oclseg_model_config *cfg);

/* One layer of the list (its kind, activations, parameters): private to src/model and the ONNX
 * export (src/model/layers.h). */
typedef struct oclseg_layer oclseg_layer;

/* A named tensor of the state dict: a parameter (trainable, in the arena) or a buffer
 * (BatchNorm running statistics, in the buffer arena). */
typedef struct oclseg_param {
    char name[96];    /* PyTorch state-dict key, e.g. "encoder.3.conv.1.1.weight" */
    int n, c, h, w;   /* shape as (N, C, H, W); vectors are (C, 1, 1, 1) */
    int ndim;         /* PyTorch's number of dims (4 for conv weights, 1 for vectors) */
    size_t off;       /* float offset in the params arena (or buffers arena) */
    int is_buffer;    /* running_mean / running_var */
    int in_encoder;
} oclseg_param;

typedef struct oclseg_activation {
    int c, h, w;               /* per-image shape; batch is the current batch */
    size_t off;                /* float offset in the activation arena (per max_batch) */
    size_t grad_off;           /* float offset in the activation-gradient arena */
    int has_grad;              /* 0 for activations no gradient flows to */
} oclseg_activation;

/* What a weights file says about itself beyond its tensors (safetensors __metadata__, string
 * values as in PyTorch's files): the input size it was trained at, the decision threshold chosen
 * on validation, the recipe's inference options. A zero field: not recorded (older files,
 * torchvision exports). */
typedef struct oclseg_weights_meta {
    int input_size;    /* "input_size": 32..8192, a multiple of 32 */
    float threshold;   /* "threshold": in (0, 1) */
    int has_options;   /* any of "tta" (flips|none), "largest_component", "fill_holes" (0|1) */
    int tta_flips, largest_component, fill_holes;
    oclseg_decoder_kind decoder_kind; /* "decoder_kind": "skip" (written for it alone; absent:
                                         the seed decoder) */
} oclseg_weights_meta;

/* Everything one forward or backward reads besides the model's own state (its layers, parameters
 * and activations): the caller builds one per pass; the model keeps no per-step input. */
typedef struct oclseg_pass {
    int n;                   /* images in the batch (1..cfg.max_batch), in oclseg_model_input */
    int train;               /* BatchNorm batch statistics (running stats updated) and dropout on */
    int frozen_encoder;      /* the encoder runs in eval mode (running stats, never updated) even
                                when train; the backward does no encoder work */
    uint64_t dropout_seed;   /* dropout's counter-based RNG: (dropout_seed, step) select the mask */
    uint64_t step;
    int image_offset;        /* the batch's first image in the global batch: a data-parallel rank
                                draws the dropout mask those images have there (0: one process) */
    const int *rank_counts;  /* data parallel: images on each rank of oclseg_dist (oclseg_dist_size
                                entries; this rank's must be n); NULL: this process's batch alone */
    int sync_bn;             /* with rank_counts on several ranks: BatchNorm batch statistics over
                                the global batch (collectives: every rank runs the same passes) */
} oclseg_pass;

/* An evaluation-mode pass over n images (inference, evaluation). */
oclseg_pass oclseg_pass_eval(int n);

/* The model's fields are the library's own (OCLSEG_INTERNALS: src/ and tests/, meson.build):
 * the command line sees an opaque type and uses the functions below. */
#ifdef OCLSEG_INTERNALS
typedef struct oclseg_model {
    oclseg_ctx *ctx;
    oclseg_model_config cfg;
    oclseg_layer *layers;
    int layer_count, encoder_layer_count;
    oclseg_param *params;      /* parameters first (encoder, then decoder), then buffers */
    int param_count;
    size_t param_floats;       /* size of the params/grads/state arenas */
    size_t decoder_param_off;  /* first decoder parameter (frozen mode optimizes from here) */
    size_t buffer_floats;
    int64_t *bn_batches;       /* num_batches_tracked per BatchNorm (host) */
    oclseg_weights_meta meta;  /* written into saved weights and checkpoints (input_size is
                                  always cfg.size) */
    int bn_count;
    oclseg_activation *acts;   /* acts[0] = input (N, 3, S, S) */
    int act_count;
    int logits_act;            /* (N, 1, S, S) */
    /* grads_buf, bn_save_buf, grads_act_buf, grad_tmp_buf and grad_ready are NULL until
     * oclseg_model_enable_training (a training session's trainer calls it), state_bufs until
     * oclseg_model_enable_optimizer */
    cl_mem params_buf, grads_buf;              /* (param_floats) each */
    cl_mem state_bufs[OCLSEG_OPTIM_MAX_STATES]; /* (param_floats) each: the optimizer's state
                                                  arenas, state_count of them (the rest NULL) */
    int state_count;
    cl_mem buffers_buf;        /* (buffer_floats): BN running stats */
    cl_mem bn_save_buf;        /* save_mean/save_invstd for every BN */
    size_t bn_save_floats;
    cl_mem acts_buf, grads_act_buf;
    size_t acts_floats, grads_act_floats;
    cl_mem grad_tmp_buf;       /* (largest activation): a second gradient being accumulated */
    cl_mem probs_buf;          /* (max_batch, 1, S, S): evaluation's probabilities */
    size_t grad_tmp_floats;
    unsigned char *grad_ready; /* per activation, during backward */
    cl_mem check_buf;          /* (2 * layer_count + 2) finiteness flags (--check-numerics) */
    /* the last forward's pass (written by oclseg_model_forward only): a backward must repeat a
     * training forward's pass, as it reads that forward's activations */
    oclseg_pass forward_pass;
    int forward_ran;
} oclseg_model;
#else
typedef struct oclseg_model oclseg_model;
#endif

/* Builds the layer list and allocates what inference needs (parameters, running statistics,
 * activations); training needs oclseg_model_enable_training as well. */
int oclseg_model_create(oclseg_ctx *ctx, const oclseg_model_config *cfg, oclseg_model **out);
/* Allocates (once; zeroed) what training adds: parameter gradients, BatchNorm saved statistics,
 * activation gradients (the optimizer state: oclseg_model_enable_optimizer). oclseg_trainer_create does it for a training trainer;
 * a training forward, a backward and oclseg_model_read_grad fail with OCLSEG_ERR_INVALID_ARG
 * without it. */
int oclseg_model_enable_training(oclseg_model *m);
/* Allocates (once; zeroed) the optimizer's state arenas: oclseg_optim_state_count(cfg) of them,
 * each param_floats (exactly as many as that optimizer needs; none for SGD without momentum).
 * Arenas once allocated stay: a later call with another count is an error. */
int oclseg_model_enable_optimizer(oclseg_model *m, const oclseg_optim_config *cfg);
void oclseg_model_free(oclseg_model *m);

/* Index of a state-dict key, or -1. */
int oclseg_model_find_param(const oclseg_model *m, const char *name);
/* PyTorch's default initialisation (kaiming-normal fan_out convs, BN 1/0, ConvTranspose2d's
 * default), drawn from a host RNG seeded by `seed`, then uploaded. */
int oclseg_model_init_random(oclseg_model *m, uint64_t seed);

/* Views of the model input (N, 3, S, S) and output logits (N, 1, S, S) for a batch of n. */
oclseg_tensor oclseg_model_input(const oclseg_model *m, int n);
oclseg_tensor oclseg_model_logits(const oclseg_model *m, int n);
/* The gradient buffer of the logits: the loss writes d(loss)/d(logits) here (training only). */
oclseg_tensor oclseg_model_logits_grad(const oclseg_model *m, int n);
/* Where evaluation and inference put sigmoid(logits) (N, 1, S, S): a buffer of its own, so an
 * inference model, which has no gradients, has it too. */
oclseg_tensor oclseg_model_probs(const oclseg_model *m, int n);

/* Forward over the pass's batch, already written to oclseg_model_input (see oclseg_pass).
 * OCLSEG_ERR_INVALID_ARG for a batch that does not fit, a negative image_offset, rank_counts
 * that do not give this rank n images, or a training pass without the training arenas. */
int oclseg_model_forward(oclseg_model *m, const oclseg_pass *pass);
/* Backward from the logits gradient: writes every parameter gradient (decoder only when
 * frozen_encoder: no encoder work at all). The last forward must have been a training forward
 * with the same pass (else OCLSEG_ERR_INVALID_ARG: its activations are not this pass's). */
int oclseg_model_backward(oclseg_model *m, const oclseg_pass *pass);

/* First trained float of the parameter arena: the decoder's first parameter when the encoder
 * is frozen, else 0 (the trained range is [offset, param_floats)). */
size_t oclseg_model_trained_offset(const oclseg_model *m, int frozen_encoder);

/* Host copies of one parameter/buffer (count = numel). */
int oclseg_model_read_param(oclseg_model *m, int index, float *dst);
int oclseg_model_write_param(oclseg_model *m, int index, const float *src);
int oclseg_model_read_grad(oclseg_model *m, int index, float *dst);
size_t oclseg_param_numel(const oclseg_param *p);
/* Elements of the largest parameter/buffer (the size of a host staging buffer for any of them). */
size_t oclseg_model_max_param_numel(const oclseg_model *m);

/* Debug aid (--check-numerics; blocking): after a forward (backward = 0) or a backward
 * (backward = 1) of `pass`, finds the first place in execution order holding a NaN/Inf: a
 * layer's parameters or output in the forward, a layer's parameter or input gradients in the
 * backward. Returns 1 and describes it in `where` ("layer 12 (conv encoder.2.conv.0.0) output"),
 * 0 when all is finite, or a negative status. */
int oclseg_model_locate_nonfinite(oclseg_model *m, const oclseg_pass *pass, int backward,
                                  char *where, size_t size);

/* Multiply-add FLOPs (2 per MAC) of convolutions for a batch of n: forward, and backward (input
 * and weight gradients; encoder excluded when frozen). Elementwise layers are not counted. */
void oclseg_model_flops(const oclseg_model *m, int n, int frozen_encoder, double *forward,
                        double *backward);

#endif
