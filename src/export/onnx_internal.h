/* Shared between the ONNX exporter's files: an allocation pool for protobuf-c messages and
 * constructors of graph pieces (every message and string is owned by the pool). */
#ifndef OCLSEG_ONNX_INTERNAL_H
#define OCLSEG_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "export/onnx.pb-c.h"

typedef struct onnx_pool {
    void **ptrs;
    size_t count, cap;
    int failed; /* an allocation failed: the result is unusable */
} onnx_pool;

void *onnx_alloc(onnx_pool *p, size_t size); /* zeroed; NULL (and p->failed) on failure */
char *onnx_strdup(onnx_pool *p, const char *s);
void onnx_pool_free(onnx_pool *p);

/* A graph under construction: node and initializer arrays sized up front. */
typedef struct onnx_graph_builder {
    onnx_pool *pool;
    Onnx__GraphProto *graph;
    size_t node_cap, init_cap;
    int next_tensor; /* for unique intermediate names */
} onnx_graph_builder;

int onnx_builder_init(onnx_graph_builder *b, onnx_pool *pool, size_t node_cap, size_t init_cap);
/* A float initializer (data copied) with the given dims. */
int onnx_add_initializer(onnx_graph_builder *b, const char *name, const int64_t *dims, int ndim,
                         const float *data);
/* A node; its output is `out` or, when NULL, a fresh name "t<k>". Returns the node (NULL on
 * allocation failure); inputs may be "" (an omitted optional input). */
Onnx__NodeProto *onnx_add_node(onnx_graph_builder *b, const char *op, const char *const *inputs,
                               int n_inputs, const char *out);
int onnx_attr_ints(onnx_graph_builder *b, Onnx__NodeProto *n, const char *name,
                   const int64_t *v, int count);
int onnx_attr_int(onnx_graph_builder *b, Onnx__NodeProto *n, const char *name, int64_t v);
int onnx_attr_string(onnx_graph_builder *b, Onnx__NodeProto *n, const char *name,
                     const char *v);
/* A float tensor value-info (graph input/output) of shape (batch, c, h, w); batch <= 0 means the
 * symbolic dimension "N". */
Onnx__ValueInfoProto *onnx_value_info(onnx_graph_builder *b, const char *name, int batch, int c,
                                      int h, int w);

#endif
