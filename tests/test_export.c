/* Tests oclseg export: the ONNX file re-parses with protobuf-c and holds the expected graph
 * (node counts from the layer list, topological order, folded BatchNorm against a double
 * reference, metadata), and bad inputs fail with no file left behind. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/onnx.pb-c.h"
#include "harness.h"
#include "oclseg/env.h"
#include "oclseg/util.h"
#include "oclseg/export.h"
#include "oclseg/runtime.h"
#include "oclseg/safetensors.h"
#include "oclseg/weights.h"

static char root[64], weights[128];
static const char *config = "{\"size\": 32, \"note\": \"test config\"}\n";
static float fold_ref_w0, fold_ref_b0; /* encoder.0.0 (output channel 0): W[0] and bias, folded */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A size-32 model with random weights and non-trivial BatchNorm statistics (so folding shows),
 * saved with a config.json beside it; keeps a double-precision fold of one conv's first value. */
static void setup(void) {
    harness_mkdtemp(root, sizeof root, "export");
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.size = 32;
    cfg.max_batch = 1;
    oclseg_model *m;
    ck_assert_int_eq(oclseg_model_create(harness_ctx(0), &cfg, &m), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_init_random(m, 7), OCLSEG_OK);
    float *buf = malloc(oclseg_model_max_param_numel(m) * sizeof *buf);
    double v[4] = {0};
    const char *bn[4] = {"encoder.0.1.weight", "encoder.0.1.bias", "encoder.0.1.running_mean",
                         "encoder.0.1.running_var"};
    for (int i = 0; i < m->param_count; i++) { /* gamma, beta, mean in [-1, 1), var in [0.5, 2) */
        const oclseg_param *p = &m->params[i];
        if (p->ndim != 1 || strncmp(p->name, "encoder.", 8) != 0) continue;
        int is_var = strstr(p->name, "running_var") != NULL;
        harness_fill_uniform(buf, oclseg_param_numel(p), is_var ? 0.5f : -1.0f, is_var ? 2.0f : 1.0f,
                             100 + (uint64_t)i);
        ck_assert_int_eq(oclseg_model_write_param(m, i, buf), OCLSEG_OK);
        for (int k = 0; k < 4; k++)
            if (strcmp(p->name, bn[k]) == 0) v[k] = buf[0];
    }
    ck_assert_int_eq(oclseg_model_read_param(m, oclseg_model_find_param(m, "encoder.0.0.weight"), buf),
                     OCLSEG_OK);
    double scale = v[0] / sqrt(v[3] + (double)1e-5f);
    fold_ref_w0 = (float)(buf[0] * scale);
    fold_ref_b0 = (float)(v[1] - v[2] * scale);
    free(buf);
    snprintf(weights, sizeof weights, "%s/weights.safetensors", root);
    ck_assert_int_eq(oclseg_weights_save(m, weights), OCLSEG_OK);
    oclseg_model_free(m);
    char path[160];
    snprintf(path, sizeof path, "%s/config.json", root);
    write_text(path, config);
}

static void teardown(void) { harness_sh("rm -rf %s", root); }

static Onnx__ModelProto *load_onnx(const char *path) {
    char *bytes;
    size_t n;
    ck_assert_msg(oclseg_read_file(path, 0, &bytes, &n) == OCLSEG_OK, "%s was not written", path);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, n, (const uint8_t *)bytes);
    free(bytes);
    ck_assert_msg(mp != NULL, "%s does not parse as an ONNX ModelProto", path);
    return mp;
}

static int count_op(const Onnx__GraphProto *g, const char *op) {
    int n = 0;
    for (size_t i = 0; i < g->n_node; i++) n += strcmp(g->node[i]->op_type, op) == 0;
    return n;
}

static const char *meta(const Onnx__ModelProto *mp, const char *key) {
    for (size_t i = 0; i < mp->n_metadata_props; i++)
        if (strcmp(mp->metadata_props[i]->key, key) == 0) return mp->metadata_props[i]->value;
    return NULL;
}

static const Onnx__TensorProto *initializer(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (strcmp(g->initializer[i]->name, name) == 0) return g->initializer[i];
    return NULL;
}

/* Every node input is the graph input, an initializer or an earlier node's output ("" = an
 * omitted optional input); every initializer holds as many floats as its dims say. */
static void check_topology(const Onnx__GraphProto *g) {
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        size_t numel = 1;
        for (size_t d = 0; d < t->n_dims; d++) numel *= (size_t)t->dims[d];
        ck_assert_uint_eq(t->n_float_data, numel);
        for (size_t j = 0; j < i; j++) ck_assert_str_ne(t->name, g->initializer[j]->name);
    }
    for (size_t i = 0; i < g->n_node; i++) {
        for (size_t k = 0; k < g->node[i]->n_input; k++) {
            const char *in = g->node[i]->input[k];
            int found = in[0] == '\0' || strcmp(in, g->input[0]->name) == 0 || initializer(g, in);
            for (size_t j = 0; j < i && !found; j++) found = strcmp(in, g->node[j]->output[0]) == 0;
            ck_assert_msg(found, "node %zu (%s) reads '%s' before it is defined", i,
                          g->node[i]->op_type, in);
        }
    }
    ck_assert_str_eq(g->node[g->n_node - 1]->output[0], g->output[0]->name);
}

START_TEST(export_writes_the_inference_graph) {
    char path[160];
    snprintf(path, sizeof path, "%s/m.onnx", root);
    oclseg_onnx_options o = {0};
    ck_assert_int_eq(oclseg_export_onnx(weights, path, 32, NULL, &o), OCLSEG_OK);
    Onnx__ModelProto *mp = load_onnx(path);
    ck_assert_int_eq(mp->ir_version, OCLSEG_ONNX_IR_VERSION);
    ck_assert_uint_eq(mp->n_opset_import, 1);
    ck_assert_int_eq(mp->opset_import[0]->version, 13);
    const Onnx__GraphProto *g = mp->graph;
    /* MobileNetV2: 52 convolutions each with its BatchNorm, 35 of them followed by ReLU6,
     * 10 residual additions; the decoder's 4 transposed convs, 3 ReLUs, one Resize */
    ck_assert_int_eq(count_op(g, "Conv"), 52);
    ck_assert_int_eq(count_op(g, "Clip"), 35);
    ck_assert_int_eq(count_op(g, "Add"), 10);
    ck_assert_int_eq(count_op(g, "ConvTranspose"), 4);
    ck_assert_int_eq(count_op(g, "Relu"), 3);
    ck_assert_int_eq(count_op(g, "Resize"), 1);
    ck_assert_uint_eq(g->n_node, 105);
    ck_assert_uint_eq(g->n_initializer, 2 * 52 + 2 * 4 + 3);
    check_topology(g);
    const Onnx__TypeProto__Tensor *in = g->input[0]->type->tensor_type;
    ck_assert_str_eq(g->input[0]->name, "input");
    ck_assert_int_eq(in->shape->dim[0]->dim_value, 1);
    ck_assert_int_eq(in->shape->dim[1]->dim_value, 3);
    ck_assert_int_eq(in->shape->dim[3]->dim_value, 32);
    ck_assert_str_eq(g->output[0]->name, "logits");
    /* folding: fp32 product of two rounded values against the double reference, 2 ulp */
    const Onnx__TensorProto *w = initializer(g, "encoder.0.0.weight");
    const Onnx__TensorProto *b = initializer(g, "encoder.0.0.bias");
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(b);
    ck_assert_float_eq_tol(w->float_data[0], fold_ref_w0, 2.4e-7 * fabsf(fold_ref_w0));
    ck_assert_float_eq_tol(b->float_data[0], fold_ref_b0, 2.4e-7 * fabsf(fold_ref_b0) + 1e-7);
    ck_assert_str_eq(meta(mp, "oclseg.mean"), "0.485,0.456,0.406");
    ck_assert_str_eq(meta(mp, "oclseg.std"), "0.229,0.224,0.225");
    ck_assert_str_eq(meta(mp, "oclseg.input_size"), "32");
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx",
             (unsigned long long)oclseg_fnv1a64(OCLSEG_FNV1A64_INIT, config, strlen(config)));
    ck_assert_str_eq(meta(mp, "oclseg.training_config_fnv1a64"), hash);
    onnx__model_proto__free_unpacked(mp, NULL);
}
END_TEST

/* A default-width model at 32x32 (batch 1) with `decoder`, randomly initialised (seed 9). */
static oclseg_model *random_model_32(oclseg_decoder_kind decoder) {
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.size = 32;
    cfg.max_batch = 1;
    cfg.decoder_kind = decoder;
    oclseg_model *m;
    ck_assert_int_eq(oclseg_model_create(harness_ctx(0), &cfg, &m), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_init_random(m, 9), OCLSEG_OK);
    return m;
}

/* Saves m (then frees it) as ROOT/NAME.safetensors, exports that to ROOT/NAME.onnx at 32x32 with
 * the default options (export builds the network the weights' metadata names) and parses it. */
static Onnx__ModelProto *export_model(oclseg_model *m, const char *name) {
    char weights_path[160], path[160];
    snprintf(weights_path, sizeof weights_path, "%s/%s.safetensors", root, name);
    ck_assert_int_eq(oclseg_weights_save(m, weights_path), OCLSEG_OK);
    oclseg_model_free(m);
    snprintf(path, sizeof path, "%s/%s.onnx", root, name);
    oclseg_onnx_options o = {0};
    ck_assert_int_eq(oclseg_export_onnx(weights_path, path, 32, NULL, &o), OCLSEG_OK);
    return load_onnx(path);
}

/* The skip decoder (weights whose metadata says "decoder": "skip"; export builds that network
 * from it): five ConvTranspose with their BatchNorm folded in (against a double reference),
 * four Concat joining the encoder's maps, five Relu, the 1x1 head Conv with its own bias
 * writing "logits", no Resize. */
START_TEST(skip_decoder_graph) {
    oclseg_model *m = random_model_32(OCLSEG_DECODER_SKIP);
    float *buf = malloc(oclseg_model_max_param_numel(m) * sizeof *buf);
    const char *bn[4] = {"decoder.1.1.weight", "decoder.1.1.bias", "decoder.1.1.running_mean",
                         "decoder.1.1.running_var"};
    double v[4];
    for (int k = 0; k < 4; k++) { /* gamma, beta, mean in [-1, 1), var in [0.5, 2) */
        const int id = oclseg_model_find_param(m, bn[k]);
        ck_assert_int_ge(id, 0);
        harness_fill_uniform(buf, oclseg_param_numel(&m->params[id]), k == 3 ? 0.5f : -1.0f,
                             k == 3 ? 2.0f : 1.0f, 200 + (uint64_t)k);
        ck_assert_int_eq(oclseg_model_write_param(m, id, buf), OCLSEG_OK);
        v[k] = buf[0];
    }
    ck_assert_int_eq(oclseg_model_read_param(m, oclseg_model_find_param(m, "decoder.1.0.weight"),
                                             buf), OCLSEG_OK);
    const double scale = v[0] / sqrt(v[3] + (double)1e-5f);
    const float ref_w0 = (float)(buf[0] * scale); /* [cin 0, cout 0, 0, 0] */
    ck_assert_int_eq(oclseg_model_read_param(m, oclseg_model_find_param(m, "decoder.1.0.bias"),
                                             buf), OCLSEG_OK);
    const float ref_b0 = (float)((buf[0] - v[2]) * scale + v[1]);
    free(buf);
    Onnx__ModelProto *mp = export_model(m, "skip");
    const Onnx__GraphProto *g = mp->graph;
    ck_assert_int_eq(count_op(g, "Conv"), 52 + 1);
    ck_assert_int_eq(count_op(g, "Clip"), 35);
    ck_assert_int_eq(count_op(g, "Add"), 10);
    ck_assert_int_eq(count_op(g, "ConvTranspose"), 5);
    ck_assert_int_eq(count_op(g, "Relu"), 5);
    ck_assert_int_eq(count_op(g, "Concat"), 4);
    ck_assert_int_eq(count_op(g, "Resize"), 0);
    ck_assert_uint_eq(g->n_node, 52 + 35 + 10 + 5 + 5 + 4 + 1);
    ck_assert_uint_eq(g->n_initializer, 2 * 53 + 2 * 5 + 2);
    check_topology(g);
    ck_assert_str_eq(g->output[0]->name, "logits");
    ck_assert_str_eq(g->node[g->n_node - 1]->op_type, "Conv");
    const Onnx__TensorProto *w = initializer(g, "decoder.1.0.weight");
    const Onnx__TensorProto *b = initializer(g, "decoder.1.0.bias");
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(b);
    ck_assert_float_eq_tol(w->float_data[0], ref_w0, 2.4e-7 * fabsf(ref_w0));
    ck_assert_float_eq_tol(b->float_data[0], ref_b0, 4.8e-7 * fabsf(ref_b0) + 1e-7);
    ck_assert_ptr_nonnull(strstr(meta(mp, "oclseg.architecture"), "(skip)"));
    onnx__model_proto__free_unpacked(mp, NULL);
}
END_TEST

/* The skip-bilinear decoder: each stage a Resize (its own scales initializer, x2) and a 3x3 Conv
 * with its BatchNorm folded in (the Conv had no bias: the folded one is new), the four Concat,
 * five Relu and the 1x1 head writing "logits"; no ConvTranspose. */
START_TEST(skip_bilinear_decoder_graph) {
    oclseg_model *m = random_model_32(OCLSEG_DECODER_SKIP_BILINEAR);
    Onnx__ModelProto *mp = export_model(m, "skip_bilinear");
    const Onnx__GraphProto *g = mp->graph;
    ck_assert_int_eq(count_op(g, "Conv"), 52 + 5 + 1);
    ck_assert_int_eq(count_op(g, "ConvTranspose"), 0);
    ck_assert_int_eq(count_op(g, "Resize"), 5);
    ck_assert_int_eq(count_op(g, "Relu"), 5);
    ck_assert_int_eq(count_op(g, "Concat"), 4);
    ck_assert_uint_eq(g->n_node, 52 + 35 + 10 + 5 + 5 + 5 + 4 + 1);
    ck_assert_uint_eq(g->n_initializer, 2 * 58 + 5 + 2);
    ck_assert_ptr_nonnull(initializer(g, "decoder.3.0.bias")); /* the folded BatchNorm's */
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (strcmp(n->op_type, "Resize") != 0) continue;
        const Onnx__TensorProto *sc = initializer(g, n->input[2]);
        ck_assert_ptr_nonnull(sc);
        ck_assert(sc->n_float_data == 4 && sc->float_data[2] == 2.0f && sc->float_data[3] == 2.0f);
    }
    check_topology(g);
    ck_assert_str_eq(g->output[0]->name, "logits");
    ck_assert_ptr_nonnull(strstr(meta(mp, "oclseg.architecture"), "(skip-bilinear)"));
    onnx__model_proto__free_unpacked(mp, NULL);
}
END_TEST

START_TEST(dynamic_batch_sigmoid_and_relu_form) {
    char path[160];
    snprintf(path, sizeof path, "%s/d.onnx", root);
    oclseg_onnx_options o = {.dynamic_batch = 1, .sigmoid = 1, .relu6_as_relu = 1};
    ck_assert_int_eq(oclseg_export_onnx(weights, path, 64, NULL, &o), OCLSEG_OK);
    Onnx__ModelProto *mp = load_onnx(path);
    const Onnx__GraphProto *g = mp->graph;
    const Onnx__TensorShapeProto *s = g->input[0]->type->tensor_type->shape;
    ck_assert_int_eq(s->dim[0]->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM);
    ck_assert_str_eq(s->dim[0]->dim_param, "N");
    ck_assert_int_eq(s->dim[2]->dim_value, 64);
    ck_assert_str_eq(g->output[0]->name, "prob");
    ck_assert_str_eq(g->node[g->n_node - 1]->op_type, "Sigmoid");
    ck_assert_int_eq(count_op(g, "Clip"), 0);
    ck_assert_int_eq(count_op(g, "Sub"), 2 * 35);
    ck_assert_int_eq(count_op(g, "Relu"), 3 + 2 * 35);
    check_topology(g);
    onnx__model_proto__free_unpacked(mp, NULL);
}
END_TEST

/* Nothing but the files the fixture made (no output, no temporary). */
static void assert_dir_clean(void) {
    DIR *d = opendir(root);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        ck_assert_msg(!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "weights.safetensors") ||
                          !strcmp(n, "config.json") || !strcmp(n, "err.txt") ||
                          !strcmp(n, "partial.safetensors"),
                      "unexpected file %s/%s left behind", root, n);
    }
    closedir(d);
}

/* The fixture's weights with `name` left out, or (new_c > 0) with its second dimension changed
 * to new_c (what a model of another width or decoder has), written to `dst`. */
static void write_variant(const char *dst, const char *name, int new_c) {
    oclseg_st_file *f;
    ck_assert_int_eq(oclseg_st_load(weights, &f), OCLSEG_OK);
    oclseg_st_writer *w;
    ck_assert_int_eq(oclseg_st_writer_create(&w), OCLSEG_OK);
    float *zeros = calloc(1 << 22, sizeof *zeros);
    for (int i = 0; i < f->count; i++) {
        const oclseg_st_tensor *t = &f->tensors[i];
        if (strcmp(t->name, name) != 0) {
            ck_assert_int_eq(oclseg_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data),
                             OCLSEG_OK);
        } else if (new_c > 0) {
            int64_t shape[4] = {t->shape[0], new_c, t->shape[2], t->shape[3]};
            ck_assert_int_le(shape[0] * new_c * shape[2] * shape[3], 1 << 22);
            ck_assert_int_eq(oclseg_st_writer_add(w, t->name, t->dtype, 4, shape, zeros), OCLSEG_OK);
        }
    }
    ck_assert_int_eq(oclseg_st_writer_write(w, dst), OCLSEG_OK);
    oclseg_st_writer_free(w);
    oclseg_st_free(f);
    free(zeros);
}

START_TEST(bad_inputs_leave_no_file) {
    char path[160], partial[160];
    snprintf(path, sizeof path, "%s/x.onnx", root);
    snprintf(partial, sizeof partial, "%s/partial.safetensors", root);
    oclseg_onnx_options o = {0};
    /* another architecture: a decoder of 128 channels first instead of 256 */
    write_variant(partial, "decoder.0.weight", 128);
    ck_assert_int_eq(oclseg_export_onnx(partial, path, 32, NULL, &o), OCLSEG_ERR_FORMAT);
    assert_dir_clean();
    /* a state dict missing a tensor */
    write_variant(partial, "encoder.5.conv.1.1.running_var", 0);
    ck_assert_int_eq(oclseg_export_onnx(partial, path, 32, NULL, &o), OCLSEG_ERR_NOT_FOUND);
    /* an output directory that does not exist, and a write failing halfway */
    ck_assert_int_eq(oclseg_export_onnx(weights, "/nonexistent-dir/x.onnx", 32, NULL, &o),
                     OCLSEG_ERR_IO);
    setenv("OCLSEG_FAULT_WRITE", "1", 1);
    oclseg_env_reload(); /* the switches are read once */
    int st = oclseg_export_onnx(weights, path, 32, NULL, &o);
    unsetenv("OCLSEG_FAULT_WRITE");
    oclseg_env_reload(); /* the switches are read once */
    ck_assert_int_eq(st, OCLSEG_ERR_IO);
    assert_dir_clean();
    /* the command line names the problem */
    const char *bin = getenv("OCLSEG_BIN");
    ck_assert_int_ne(harness_sh("%s export --weights %s --onnx %s 2> %s/err.txt", bin, partial,
                                path, root), 0);
    ck_assert_int_eq(harness_sh("grep -q \"partial.safetensors: missing key "
                                "'encoder.5.conv.1.1.running_var'\" %s/err.txt", root), 0);
    ck_assert_int_ne(harness_sh("%s export --weights %s --onnx %s --size 33 2> /dev/null", bin,
                                weights, path), 0);
    ck_assert_int_ne(harness_sh("%s export --weights %s --onnx %s --batch 4 2> /dev/null", bin,
                                weights, path), 0);
    assert_dir_clean();
}
END_TEST

int main(void) {
    Suite *s = suite_create("export");
    TCase *tc = tcase_create("export");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, export_writes_the_inference_graph);
    tcase_add_test(tc, skip_decoder_graph);
    tcase_add_test(tc, skip_bilinear_decoder_graph);
    tcase_add_test(tc, dynamic_batch_sigmoid_and_relu_form);
    tcase_add_test(tc, bad_inputs_leave_no_file);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
