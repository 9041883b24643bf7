/* ONNX export of the inference graph (eval mode: BatchNorm folded into the convolutions, dropout
 * gone) with protobuf-c and Debian's onnx.proto. */
#ifndef OCLSEG_EXPORT_H
#define OCLSEG_EXPORT_H

#include "oclseg/model.h"

#define OCLSEG_ONNX_OPSET 13
#define OCLSEG_ONNX_IR_VERSION 7 /* the IR of ONNX 1.8, the first release with opset 13 */

typedef struct oclseg_onnx_options {
    int dynamic_batch;         /* batch dimension "N" (any batch) instead of 1 */
    int sigmoid;               /* output "prob" = sigmoid(logits) instead of "logits" */
    int relu6_as_relu;         /* ReLU6 as Relu(x) - Relu(x - 6) instead of Clip(x, 0, 6), for
                                  runtimes whose Clip takes only attributes (OpenCV <= 4.6).
                                  Equal to Clip for x <= 12, within half an ulp of x above */
    const char *config_json;   /* the training run's config.json text for the metadata hash, or
                                  NULL ("unknown") */
    const char *source;        /* what the weights came from (metadata "oclseg.weights"), or NULL */
    const struct oclseg_predict_options *predict; /* threshold and post-processing for the
                                  metadata (oclseg.threshold, oclseg.postprocess), or NULL: 0.5 */
} oclseg_onnx_options;

/* Serialises the model's eval-mode forward as an ONNX ModelProto (opset 13) into a malloc'd
 * buffer. Reads the parameters and running statistics from the device. */
int oclseg_onnx_serialize(oclseg_model *m, const oclseg_onnx_options *o, unsigned char **out,
                          size_t *size);

/* Loads `weights` (a full state dict: an architecture mismatch or a missing tensor is an error
 * naming the file and key) into a model of input size `size` on `device`, and writes the ONNX
 * file atomically: on any error no file (and no partial temporary) is left at `onnx_path`.
 * The training config hashed into the metadata is <dir of weights>/config.json when present. */
int oclseg_export_onnx(const char *weights, const char *onnx_path, int size, const char *device,
                       const oclseg_onnx_options *o);

#endif
