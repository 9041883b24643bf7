/* Model state dicts and training checkpoints as safetensors: validated all-or-nothing loading,
 * atomic saving, PyTorch key names (torchvision's features.* mapped to encoder.*). */
#include "oclseg/weights.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/layers.h"
#include "oclseg/safetensors.h"

/* The key under which model entry `name` is stored in a file of the given kind. */
static void file_key(const char *name, oclseg_weights_source source, const char *prefix,
                     char *out, size_t size) {
    if (source == OCLSEG_WEIGHTS_TORCHVISION && strncmp(name, "encoder.", 8) == 0)
        snprintf(out, size, "%sfeatures.%s", prefix ? prefix : "", name + 8);
    else snprintf(out, size, "%s%s", prefix ? prefix : "", name);
}

/* The num_batches_tracked key of BatchNorm layer l. */
static void bn_count_key(const oclseg_model *m, const oclseg_layer *l, char *out, size_t size) {
    const char *mean = m->params[l->buf_mean].name;
    snprintf(out, size, "%.*s.num_batches_tracked", (int)(strrchr(mean, '.') - mean), mean);
}

static void shape_str(const oclseg_st_tensor *t, char *out, size_t size) {
    size_t len = (size_t)snprintf(out, size, "(");
    for (int d = 0; d < t->ndim && len < size; d++)
        len += (size_t)snprintf(out + len, size - len, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (len < size) snprintf(out + len, size - len, ")");
}

/* A tensor holding NaN or Inf is an error naming it: such weights give empty masks or NaN
 * scores without any other sign. */
static int check_finite(const oclseg_st_file *f, const oclseg_st_tensor *t) {
    for (size_t i = 0; i < t->numel; i++) {
        double v;
        if (t->dtype == OCLSEG_ST_F32) {
            float x;
            memcpy(&x, t->data + 4 * i, 4);
            v = x;
        } else {
            memcpy(&v, t->data + 8 * i, 8);
        }
        if (!isfinite(v)) {
            OCLSEG_ERROR("%s: tensor '%s' holds %s at element %zu of %zu: the weights are "
                         "damaged (a diverged training?) and are not used", f->path, t->name,
                         isnan(v) ? "NaN" : "Inf", i, t->numel);
            return OCLSEG_ERR_FORMAT;
        }
    }
    return OCLSEG_OK;
}

/* Checks that the file entry for parameter p exists with p's shape and a float dtype. */
static int check_param(const oclseg_st_file *f, const oclseg_param *p, const char *key) {
    const oclseg_st_tensor *t = oclseg_st_find(f, key);
    int dims[4] = {p->n, p->c, p->h, p->w};
    char expected[96], found[96];
    if (p->ndim == 1) snprintf(expected, sizeof expected, "(%d)", p->n);
    else snprintf(expected, sizeof expected, "(%d, %d, %d, %d)", p->n, p->c, p->h, p->w);
    if (!t) {
        OCLSEG_ERROR("%s: missing key '%s' (expected shape %s)", f->path, key, expected);
        return OCLSEG_ERR_NOT_FOUND;
    }
    int ok = t->ndim == p->ndim && (t->dtype == OCLSEG_ST_F32 || t->dtype == OCLSEG_ST_F64);
    for (int d = 0; ok && d < t->ndim; d++) ok = t->shape[d] == dims[d];
    if (!ok) {
        shape_str(t, found, sizeof found);
        OCLSEG_ERROR("%s: key '%s' has shape %s %s, expected %s F32", f->path, key, found,
                     oclseg_st_dtype_name(t->dtype), expected);
        return OCLSEG_ERR_FORMAT;
    }
    return check_finite(f, t);
}

static int is_known_key(const oclseg_model *m, const char *key, oclseg_weights_source source,
                        const char *prefix) {
    char k[256];
    for (int i = 0; i < m->param_count; i++) {
        file_key(m->params[i].name, source, prefix, k, sizeof k);
        if (strcmp(k, key) == 0) return 1;
    }
    for (int i = 0; i < m->layer_count; i++) {
        if (m->layers[i].kind != LAYER_BATCHNORM) continue;
        char name[160];
        bn_count_key(m, &m->layers[i], name, sizeof name);
        file_key(name, source, prefix, k, sizeof k);
        if (strcmp(k, key) == 0) return 1;
    }
    return 0;
}

int oclseg_weights_load(oclseg_model *m, const char *path, oclseg_weights_source source,
                        const char *prefix) {
    oclseg_st_file *f;
    TRY(oclseg_st_load(path, &f));
    int st = OCLSEG_OK;
    char key[256];
    /* 1. validate everything: missing keys, shapes, dtypes, unexpected keys */
    for (int i = 0; i < m->param_count && st == OCLSEG_OK; i++) {
        const oclseg_param *p = &m->params[i];
        if (source == OCLSEG_WEIGHTS_TORCHVISION && !p->in_encoder) continue;
        file_key(p->name, source, prefix, key, sizeof key);
        st = check_param(f, p, key);
    }
    for (int i = 0; i < f->count && st == OCLSEG_OK; i++) {
        const char *name = f->tensors[i].name;
        size_t plen = prefix ? strlen(prefix) : 0;
        if (plen && strncmp(name, prefix, plen) != 0) continue; /* other sections of the file */
        if (strncmp(name + plen, "optimizer.", 10) == 0) continue; /* checkpoint's optimizer state */
        if (source == OCLSEG_WEIGHTS_TORCHVISION && strncmp(name + plen, "classifier.", 11) == 0)
            continue;
        if (!is_known_key(m, name, source, prefix)) {
            OCLSEG_ERROR("%s: unexpected key '%s' (not part of the model%s)", path, name,
                         source == OCLSEG_WEIGHTS_TORCHVISION
                             ? "; expected torchvision mobilenet_v2 features.* keys"
                             : "");
            st = OCLSEG_ERR_FORMAT;
        }
    }
    int64_t *counts = calloc((size_t)m->bn_count + 1, sizeof *counts);
    if (!counts) st = OCLSEG_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < m->layer_count && st == OCLSEG_OK; i++) {
        const oclseg_layer *l = &m->layers[i];
        if (l->kind != LAYER_BATCHNORM) continue;
        char name[160];
        bn_count_key(m, l, name, sizeof name);
        file_key(name, source, prefix, key, sizeof key);
        if (oclseg_st_find(f, key)) st = oclseg_st_read_i64(f, key, &counts[l->bn_index], 1);
        /* num_batches_tracked is optional (older exports omit it) */
    }
    /* 2. only now write to the device */
    size_t maxp = oclseg_model_max_param_numel(m);
    float *buf = st == OCLSEG_OK ? malloc(maxp * sizeof *buf) : NULL;
    if (st == OCLSEG_OK && !buf) st = OCLSEG_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < m->param_count && st == OCLSEG_OK; i++) {
        const oclseg_param *p = &m->params[i];
        if (source == OCLSEG_WEIGHTS_TORCHVISION && !p->in_encoder) continue;
        file_key(p->name, source, prefix, key, sizeof key);
        st = oclseg_st_read_f32(f, key, buf, oclseg_param_numel(p));
        if (st == OCLSEG_OK) st = oclseg_model_write_param(m, i, buf);
    }
    if (st == OCLSEG_OK)
        for (int i = 0; i < m->layer_count; i++)
            if (m->layers[i].kind == LAYER_BATCHNORM &&
                (source == OCLSEG_WEIGHTS_FULL || m->layers[i].in_encoder))
                m->bn_batches[m->layers[i].bn_index] = counts[m->layers[i].bn_index];
    free(buf);
    free(counts);
    oclseg_st_free(f);
    return st;
}

/* Checkpoint key of the optimizer's state s for parameter p: optimizer.<state key>.<name>. */
static void state_key(const oclseg_optimizer_desc *opt, int s, const oclseg_param *p, char *key,
                      size_t size) {
    snprintf(key, size, "optimizer.%s.%s", opt->state_keys[s], p->name);
}

/* Adds the state dict (and the state arenas of optimizer `opt` unless NULL) to a writer. */
static int add_state(oclseg_model *m, oclseg_st_writer *w, const oclseg_optimizer_desc *opt) {
    size_t maxp = oclseg_model_max_param_numel(m);
    float *buf = malloc(maxp * sizeof *buf);
    if (!buf) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = OCLSEG_OK;
    for (int i = 0; i < m->param_count && st == OCLSEG_OK; i++) {
        const oclseg_param *p = &m->params[i];
        int64_t shape[4] = {p->n, p->c, p->h, p->w};
        st = oclseg_model_read_param(m, i, buf);
        if (st == OCLSEG_OK) st = oclseg_st_writer_add(w, p->name, OCLSEG_ST_F32, p->ndim, shape, buf);
        if (!opt || p->is_buffer) continue;
        for (int s = 0; s < m->state_count && st == OCLSEG_OK; s++) {
            char key[160];
            state_key(opt, s, p, key, sizeof key);
            oclseg_tensor t = oclseg_tensor_view(m->state_bufs[s], p->off, p->n, p->c, p->h, p->w);
            st = oclseg_tensor_read(m->ctx, &t, buf);
            if (st == OCLSEG_OK) st = oclseg_st_writer_add(w, key, OCLSEG_ST_F32, p->ndim, shape, buf);
        }
    }
    for (int i = 0; i < m->layer_count && st == OCLSEG_OK; i++) {
        if (m->layers[i].kind != LAYER_BATCHNORM) continue;
        char key[160];
        bn_count_key(m, &m->layers[i], key, sizeof key);
        st = oclseg_st_writer_add(w, key, OCLSEG_ST_I64, 0, NULL, &m->bn_batches[m->layers[i].bn_index]);
    }
    free(buf);
    return st;
}

/* Writes meta's recorded fields (the input size always: m's; the decoder when it is not the
 * seed's, so that a seed model's files stay as they were) as __metadata__ strings. */
static int add_weights_meta(oclseg_st_writer *w, const oclseg_weights_meta *meta, int size,
                            oclseg_decoder_kind decoder) {
    char v[64];
    snprintf(v, sizeof v, "%d", size);
    int st = oclseg_st_writer_meta(w, "input_size", v);
    if (st == OCLSEG_OK && decoder != OCLSEG_DECODER_SEED)
        st = oclseg_st_writer_meta(w, "decoder_kind", oclseg_decoder_names[decoder]);
    if (st == OCLSEG_OK && meta->threshold > 0) {
        for (int digits = 1; digits <= 9; digits++) { /* the shortest text of the same float */
            snprintf(v, sizeof v, "%.*g", digits, (double)meta->threshold);
            if ((float)strtod(v, NULL) == meta->threshold) break;
        }
        st = oclseg_st_writer_meta(w, "threshold", v);
    }
    if (st != OCLSEG_OK || !meta->has_options) return st;
    st = oclseg_st_writer_meta(w, "tta", meta->tta_flips ? "flips" : "none");
    if (st == OCLSEG_OK)
        st = oclseg_st_writer_meta(w, "largest_component", meta->largest_component ? "1" : "0");
    if (st == OCLSEG_OK) st = oclseg_st_writer_meta(w, "fill_holes", meta->fill_holes ? "1" : "0");
    return st;
}

static int meta_error(const oclseg_st_file *f, const char *key, const char *v, const char *want) {
    OCLSEG_ERROR("%s: metadata '%s' = '%s' is not %s", f->path, key, v, want);
    return OCLSEG_ERR_FORMAT;
}

/* "0" or "1" into *out (left as is when the key is absent; *seen set when present). */
static int meta_flag(const oclseg_st_file *f, const char *key, int *out, int *seen) {
    const char *v = oclseg_st_metadata(f, key);
    if (!v) return OCLSEG_OK;
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) return meta_error(f, key, v, "0 or 1");
    *out = v[0] == '1';
    *seen = 1;
    return OCLSEG_OK;
}

int oclseg_weights_meta_parse(const oclseg_st_file *f, oclseg_weights_meta *out) {
    memset(out, 0, sizeof *out);
    const char *v = oclseg_st_metadata(f, "input_size");
    char *end;
    if (v) {
        long size = strtol(v, &end, 10);
        if (end == v || *end != '\0' || size < 32 || size > 8192 || size % 32)
            return meta_error(f, "input_size", v, "a multiple of 32 in [32, 8192]");
        out->input_size = (int)size;
    }
    if ((v = oclseg_st_metadata(f, "decoder_kind")) != NULL) {
        if (oclseg_decoder_parse(v, &out->decoder_kind) != OCLSEG_OK)
            return meta_error(f, "decoder_kind", v, "seed, skip or skip-bilinear");
    }
    if ((v = oclseg_st_metadata(f, "threshold")) != NULL) {
        double t = strtod(v, &end);
        if (end == v || *end != '\0' || !(t > 0.0 && t < 1.0))
            return meta_error(f, "threshold", v, "a number in (0, 1)");
        out->threshold = (float)t;
    }
    if ((v = oclseg_st_metadata(f, "tta")) != NULL) {
        if (strcmp(v, "flips") != 0 && strcmp(v, "none") != 0)
            return meta_error(f, "tta", v, "flips or none");
        out->tta_flips = strcmp(v, "flips") == 0;
        out->has_options = 1;
    }
    TRY(meta_flag(f, "largest_component", &out->largest_component, &out->has_options));
    return meta_flag(f, "fill_holes", &out->fill_holes, &out->has_options);
}

int oclseg_weights_meta_read(const char *path, oclseg_weights_meta *out) {
    memset(out, 0, sizeof *out);
    oclseg_st_file *f;
    TRY(oclseg_st_load(path, &f));
    int st = oclseg_weights_meta_parse(f, out);
    oclseg_st_free(f);
    return st;
}

int oclseg_weights_meta_rewrite(const char *path, const oclseg_weights_meta *meta) {
    oclseg_st_file *f;
    TRY(oclseg_st_load(path, &f));
    oclseg_st_writer *w = NULL;
    int st = oclseg_st_writer_create(&w);
    for (int i = 0; i < f->meta_count && st == OCLSEG_OK; i++)
        st = oclseg_st_writer_meta(w, f->meta_keys[i], f->meta_values[i]);
    for (int i = 0; i < f->count && st == OCLSEG_OK; i++) {
        const oclseg_st_tensor *t = &f->tensors[i];
        st = oclseg_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    if (st == OCLSEG_OK) {
        oclseg_weights_meta old;
        st = oclseg_weights_meta_parse(f, &old);
        if (st == OCLSEG_OK)
            st = add_weights_meta(w, meta, meta->input_size ? meta->input_size : old.input_size,
                                  old.decoder_kind);
    }
    if (st == OCLSEG_OK) st = oclseg_st_writer_write(w, path);
    oclseg_st_writer_free(w);
    oclseg_st_free(f);
    return st;
}

int oclseg_weights_save(oclseg_model *m, const char *path) {
    oclseg_st_writer *w;
    TRY(oclseg_st_writer_create(&w));
    char cfg[160];
    snprintf(cfg, sizeof cfg, "%g;%d;%d,%d,%d", (double)m->cfg.width_mult, m->cfg.last_channel,
             m->cfg.decoder[0], m->cfg.decoder[1], m->cfg.decoder[2]);
    int st = oclseg_st_writer_meta(w, "format", "oclseg-weights");
    if (st == OCLSEG_OK) st = oclseg_st_writer_meta(w, "architecture", cfg);
    if (st == OCLSEG_OK) st = add_weights_meta(w, &m->meta, m->cfg.size, m->cfg.decoder_kind);
    if (st == OCLSEG_OK) st = add_state(m, w, NULL);
    if (st == OCLSEG_OK) st = oclseg_st_writer_write(w, path);
    oclseg_st_writer_free(w);
    return st;
}

int oclseg_checkpoint_save(oclseg_trainer *t, const oclseg_run_position *pos,
                           const char *config_json, const char *path) {
    oclseg_model *m = t->model;
    oclseg_st_writer *w;
    TRY(oclseg_st_writer_create(&w));
    char v[64];
    int st = oclseg_st_writer_meta(w, "format", "oclseg-checkpoint");
    if (st == OCLSEG_OK) st = oclseg_st_writer_meta(w, "version", "1");
#define META(key, fmt, value)                                                                 \
    if (st == OCLSEG_OK) {                                                                    \
        snprintf(v, sizeof v, fmt, value);                                                    \
        st = oclseg_st_writer_meta(w, key, v);                                                \
    }
    META("trainer_step", "%lld", (long long)t->step);
    META("optimizer_step", "%lld", (long long)t->opt.step);
    META("mu_product", "%.17g", t->opt.mu_product);
    META("epoch", "%d", pos->epoch);
    META("step_in_epoch", "%d", pos->step_in_epoch);
    META("best_jaccard", "%.17g", pos->best_jaccard);
    META("best_epoch", "%d", pos->best_epoch);
    META("epoch_loss_sum", "%.17g", pos->epoch_loss_sum);
    META("epoch_loss_count", "%lld", (long long)pos->epoch_loss_count);
    META("frozen_encoder", "%d", t->cfg.frozen_encoder);
    META("optimizer", "%d", (int)t->cfg.optim.kind);
#undef META
    if (st == OCLSEG_OK && config_json) st = oclseg_st_writer_meta(w, "config", config_json);
    if (st == OCLSEG_OK) st = add_weights_meta(w, &m->meta, m->cfg.size, m->cfg.decoder_kind);
    if (st == OCLSEG_OK) st = add_state(m, w, oclseg_optimizer_get(t->cfg.optim.kind));
    if (st == OCLSEG_OK) st = oclseg_st_writer_write(w, path);
    oclseg_st_writer_free(w);
    return st;
}

/* A __metadata__ number of the checkpoint in [lo, hi]; integral when `integral` is set. The
 * range check comes before any conversion to an integer type. */
static int meta_number(const oclseg_st_file *f, const char *key, double lo, double hi,
                       int integral, double *out) {
    const char *v = oclseg_st_metadata(f, key);
    char *end;
    if (!v || (*out = strtod(v, &end), *end != '\0' || end == v)) {
        OCLSEG_ERROR("%s: checkpoint metadata '%s' is missing or not a number", f->path, key);
        return OCLSEG_ERR_FORMAT;
    }
    if (!(*out >= lo && *out <= hi) || (integral && *out != floor(*out))) {
        OCLSEG_ERROR("%s: checkpoint metadata '%s' = '%s' is out of range", f->path, key, v);
        return OCLSEG_ERR_FORMAT;
    }
    return OCLSEG_OK;
}

int oclseg_checkpoint_meta_parse(const oclseg_st_file *f, oclseg_checkpoint_meta *out) {
    memset(out, 0, sizeof *out);
    const char *format = oclseg_st_metadata(f, "format");
    if (!format || strcmp(format, "oclseg-checkpoint") != 0) {
        OCLSEG_ERROR("%s is not an oclseg checkpoint (metadata format '%s')", f->path,
                     format ? format : "none");
        return OCLSEG_ERR_FORMAT;
    }
    const double max_count = 9007199254740992.0; /* 2^53: exact in a double and an int64 */
    double step, opt_step, mu, epoch, sie, best, best_epoch, loss_sum, loss_count, frozen, kind;
    TRY(meta_number(f, "trainer_step", 0, max_count, 1, &step));
    TRY(meta_number(f, "optimizer_step", 0, max_count, 1, &opt_step));
    TRY(meta_number(f, "mu_product", -DBL_MAX, DBL_MAX, 0, &mu));
    TRY(meta_number(f, "epoch", 0, INT_MAX, 1, &epoch));
    TRY(meta_number(f, "step_in_epoch", 0, INT_MAX, 1, &sie));
    TRY(meta_number(f, "best_jaccard", -DBL_MAX, DBL_MAX, 0, &best));
    if (!oclseg_st_metadata(f, "best_epoch")) {
        OCLSEG_ERROR("%s: written by an older oclseg (no best epoch or epoch losses recorded): "
                     "it cannot be resumed as the same run; start a new one (--init %s takes its "
                     "weights)", f->path, f->path);
        return OCLSEG_ERR_FORMAT;
    }
    TRY(meta_number(f, "best_epoch", 0, epoch, 1, &best_epoch));
    TRY(meta_number(f, "epoch_loss_sum", -DBL_MAX, DBL_MAX, 0, &loss_sum));
    TRY(meta_number(f, "epoch_loss_count", 0, max_count, 1, &loss_count));
    TRY(meta_number(f, "frozen_encoder", 0, 1, 1, &frozen));
    TRY(meta_number(f, "optimizer", 0, INT_MAX, 1, &kind));
    out->trainer_step = (int64_t)step;
    out->optimizer_step = (int64_t)opt_step;
    out->mu_product = mu;
    out->epoch = (int)epoch;
    out->step_in_epoch = (int)sie;
    out->best_jaccard = best;
    out->best_epoch = (int)best_epoch;
    out->epoch_loss_sum = loss_sum;
    out->epoch_loss_count = (int64_t)loss_count;
    out->frozen_encoder = (int)frozen;
    out->optimizer = (int)kind;
    out->config_json = oclseg_st_metadata(f, "config");
    return OCLSEG_OK;
}

int oclseg_checkpoint_load(oclseg_trainer *t, const char *path, oclseg_run_position *pos,
                           char **config_json) {
    oclseg_model *m = t->model;
    const oclseg_optimizer_desc *opt = oclseg_optimizer_get(t->cfg.optim.kind);
    if (config_json) *config_json = NULL;
    oclseg_st_file *f;
    TRY(oclseg_st_load(path, &f));
    oclseg_checkpoint_meta meta;
    int st = oclseg_checkpoint_meta_parse(f, &meta);
    if (st == OCLSEG_OK && (meta.frozen_encoder != t->cfg.frozen_encoder ||
                            meta.optimizer != (int)t->cfg.optim.kind)) {
        const oclseg_optimizer_desc *was = oclseg_optimizer_get(meta.optimizer);
        OCLSEG_ERROR("%s was written by a %s run with optimizer %s (this run: %s): resume with "
                     "the same --freeze-encoder/--optimizer options", path,
                     meta.frozen_encoder ? "frozen-encoder" : "fine-tune",
                     was ? was->name : "unknown to this oclseg", opt->name);
        st = OCLSEG_ERR_INVALID_ARG;
    }
    /* optimizer state: validate every entry before touching the device */
    for (int i = 0; i < m->param_count && st == OCLSEG_OK; i++) {
        const oclseg_param *p = &m->params[i];
        if (p->is_buffer) continue;
        for (int s = 0; s < m->state_count && st == OCLSEG_OK; s++) {
            char key[160];
            state_key(opt, s, p, key, sizeof key);
            st = check_param(f, p, key);
        }
    }
    oclseg_st_free(f);
    if (st == OCLSEG_OK) st = oclseg_weights_load(m, path, OCLSEG_WEIGHTS_FULL, NULL) == OCLSEG_OK
                                  ? OCLSEG_OK : OCLSEG_ERR_FORMAT;
    if (st != OCLSEG_OK) return st;
    TRY(oclseg_st_load(path, &f));
    size_t maxp = oclseg_model_max_param_numel(m);
    float *buf = malloc(maxp * sizeof *buf);
    if (!buf) st = OCLSEG_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < m->param_count && st == OCLSEG_OK; i++) {
        const oclseg_param *p = &m->params[i];
        if (p->is_buffer) continue;
        for (int s = 0; s < m->state_count && st == OCLSEG_OK; s++) {
            char key[160];
            state_key(opt, s, p, key, sizeof key);
            oclseg_tensor tv = oclseg_tensor_view(m->state_bufs[s], p->off, p->n, p->c, p->h, p->w);
            st = oclseg_st_read_f32(f, key, buf, oclseg_param_numel(p));
            if (st == OCLSEG_OK) st = oclseg_tensor_write(m->ctx, &tv, buf);
        }
    }
    if (st == OCLSEG_OK) {
        t->step = t->drained = meta.trainer_step;
        t->opt.step = meta.optimizer_step;
        t->opt.mu_product = meta.mu_product;
        pos->epoch = meta.epoch;
        pos->step_in_epoch = meta.step_in_epoch;
        pos->best_jaccard = meta.best_jaccard;
        pos->best_epoch = meta.best_epoch;
        pos->epoch_loss_sum = meta.epoch_loss_sum;
        pos->epoch_loss_count = meta.epoch_loss_count;
        const char *cfg = oclseg_st_metadata(f, "config");
        if (config_json && cfg) *config_json = strdup(cfg);
    }
    free(buf);
    oclseg_st_free(f);
    return st;
}
