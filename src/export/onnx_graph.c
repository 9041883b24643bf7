/* Constructors of ONNX graph pieces (protobuf-c messages) owned by one allocation pool. */
#include "export/onnx_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/status.h"

void *onnx_alloc(onnx_pool *p, size_t size) {
    if (p->failed) return NULL;
    if (p->count == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        void **grown = realloc(p->ptrs, cap * sizeof *grown);
        if (!grown) {
            p->failed = 1;
            return NULL;
        }
        p->ptrs = grown;
        p->cap = cap;
    }
    void *mem = calloc(1, size ? size : 1);
    if (!mem) {
        p->failed = 1;
        return NULL;
    }
    p->ptrs[p->count++] = mem;
    return mem;
}

char *onnx_strdup(onnx_pool *p, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = onnx_alloc(p, n);
    if (d) memcpy(d, s, n);
    return d;
}

void onnx_pool_free(onnx_pool *p) {
    for (size_t i = 0; i < p->count; i++) free(p->ptrs[i]);
    free(p->ptrs);
    memset(p, 0, sizeof *p);
}

int onnx_builder_init(onnx_graph_builder *b, onnx_pool *pool, size_t node_cap, size_t init_cap) {
    memset(b, 0, sizeof *b);
    b->pool = pool;
    b->graph = onnx_alloc(pool, sizeof *b->graph);
    if (!b->graph) return OCLSEG_ERR_OUT_OF_MEMORY;
    onnx__graph_proto__init(b->graph);
    b->graph->node = onnx_alloc(pool, node_cap * sizeof *b->graph->node);
    b->graph->initializer = onnx_alloc(pool, init_cap * sizeof *b->graph->initializer);
    b->node_cap = node_cap;
    b->init_cap = init_cap;
    return pool->failed ? OCLSEG_ERR_OUT_OF_MEMORY : OCLSEG_OK;
}

int onnx_add_initializer(onnx_graph_builder *b, const char *name, const int64_t *dims, int ndim,
                         const float *data) {
    Onnx__GraphProto *g = b->graph;
    if (g->n_initializer == b->init_cap) {
        OCLSEG_ERROR("onnx export: more initializers than planned (%zu)", b->init_cap);
        return OCLSEG_ERR_INTERNAL;
    }
    Onnx__TensorProto *t = onnx_alloc(b->pool, sizeof *t);
    if (!t) return OCLSEG_ERR_OUT_OF_MEMORY;
    onnx__tensor_proto__init(t);
    size_t numel = 1;
    t->dims = onnx_alloc(b->pool, (size_t)(ndim ? ndim : 1) * sizeof *t->dims);
    t->n_dims = (size_t)ndim;
    for (int i = 0; i < ndim && t->dims; i++) {
        t->dims[i] = dims[i];
        numel *= (size_t)dims[i];
    }
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->name = onnx_strdup(b->pool, name);
    /* float_data (packed by protobuf-c in little-endian wire order on any host), not raw_data */
    t->float_data = onnx_alloc(b->pool, numel * sizeof *t->float_data);
    if (b->pool->failed) return OCLSEG_ERR_OUT_OF_MEMORY;
    memcpy(t->float_data, data, numel * sizeof *data);
    t->n_float_data = numel;
    g->initializer[g->n_initializer++] = t;
    return OCLSEG_OK;
}

Onnx__NodeProto *onnx_add_node(onnx_graph_builder *b, const char *op, const char *const *inputs,
                               int n_inputs, const char *out) {
    Onnx__GraphProto *g = b->graph;
    if (g->n_node == b->node_cap) {
        OCLSEG_ERROR("onnx export: more nodes than planned (%zu)", b->node_cap);
        return NULL;
    }
    Onnx__NodeProto *n = onnx_alloc(b->pool, sizeof *n);
    if (!n) return NULL;
    onnx__node_proto__init(n);
    char name[48];
    snprintf(name, sizeof name, "%s_%zu", op, g->n_node);
    n->name = onnx_strdup(b->pool, name);
    n->op_type = onnx_strdup(b->pool, op);
    n->input = onnx_alloc(b->pool, (size_t)n_inputs * sizeof *n->input);
    for (int i = 0; i < n_inputs && n->input; i++) n->input[i] = onnx_strdup(b->pool, inputs[i]);
    n->n_input = (size_t)n_inputs;
    n->output = onnx_alloc(b->pool, sizeof *n->output);
    if (!out) {
        snprintf(name, sizeof name, "t%d", b->next_tensor++);
        out = name;
    }
    if (n->output) n->output[0] = onnx_strdup(b->pool, out);
    n->n_output = 1;
    n->attribute = onnx_alloc(b->pool, 4 * sizeof *n->attribute); /* no op here has more */
    if (b->pool->failed) return NULL;
    g->node[g->n_node++] = n;
    return n;
}

static Onnx__AttributeProto *new_attr(onnx_graph_builder *b, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    if (n->n_attribute == 4) return NULL;
    Onnx__AttributeProto *a = onnx_alloc(b->pool, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = onnx_strdup(b->pool, name);
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

int onnx_attr_ints(onnx_graph_builder *b, Onnx__NodeProto *n, const char *name,
                   const int64_t *v, int count) {
    Onnx__AttributeProto *a = new_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a || !(a->ints = onnx_alloc(b->pool, (size_t)count * sizeof *a->ints)))
        return OCLSEG_ERR_OUT_OF_MEMORY;
    memcpy(a->ints, v, (size_t)count * sizeof *v);
    a->n_ints = (size_t)count;
    return b->pool->failed ? OCLSEG_ERR_OUT_OF_MEMORY : OCLSEG_OK;
}

int onnx_attr_int(onnx_graph_builder *b, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = new_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (!a) return OCLSEG_ERR_OUT_OF_MEMORY;
    a->has_i = 1;
    a->i = v;
    return b->pool->failed ? OCLSEG_ERR_OUT_OF_MEMORY : OCLSEG_OK;
}

int onnx_attr_string(onnx_graph_builder *b, Onnx__NodeProto *n, const char *name,
                     const char *v) {
    Onnx__AttributeProto *a = new_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *copy = onnx_strdup(b->pool, v);
    if (!a || !copy) return OCLSEG_ERR_OUT_OF_MEMORY;
    a->has_s = 1;
    a->s.data = (uint8_t *)copy;
    a->s.len = strlen(v);
    return OCLSEG_OK;
}

static Onnx__TensorShapeProto__Dimension *new_dim(onnx_pool *p, int64_t value) {
    Onnx__TensorShapeProto__Dimension *d = onnx_alloc(p, sizeof *d);
    if (!d) return NULL;
    onnx__tensor_shape_proto__dimension__init(d);
    if (value > 0) {
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d->dim_value = value;
    } else {
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
        d->dim_param = onnx_strdup(p, "N");
    }
    return d;
}

Onnx__ValueInfoProto *onnx_value_info(onnx_graph_builder *b, const char *name, int batch, int c,
                                      int h, int w) {
    onnx_pool *p = b->pool;
    Onnx__ValueInfoProto *vi = onnx_alloc(p, sizeof *vi);
    Onnx__TypeProto *type = onnx_alloc(p, sizeof *type);
    Onnx__TypeProto__Tensor *tt = onnx_alloc(p, sizeof *tt);
    Onnx__TensorShapeProto *shape = onnx_alloc(p, sizeof *shape);
    Onnx__TensorShapeProto__Dimension **dims = onnx_alloc(p, 4 * sizeof *dims);
    if (p->failed) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(type);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(shape);
    const int64_t v[4] = {batch, c, h, w};
    for (int i = 0; i < 4; i++) dims[i] = new_dim(p, v[i]);
    shape->dim = dims;
    shape->n_dim = 4;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shape;
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    vi->type = type;
    vi->name = onnx_strdup(p, name);
    return p->failed ? NULL : vi;
}
