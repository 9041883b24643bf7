/* Per-device GEMM tuning files: parse/format (jansson), location, CLBlast overrides, the backend
 * per GEMM shape, status. */
#include "oclseg/env.h"
#include "oclseg/tuning.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>


#define TUNING_FORMAT "oclseg-gemm-tuning-2"
#define TUNING_FORMAT_1 "oclseg-gemm-tuning-1" /* parameters only; still read */

static const char *const kernel_names[OCLSEG_TUNING_KERNELS] = {"Xgemm", "XgemmDirect",
                                                                "GemmRoutine"};

/* CLBlast 1.5.3's parameter names per kernel (its database layout; OverrideParameters needs
 * all of them). Flags are 0/1; the rest divide sizes inside CLBlast and must be >= 1, except
 * the threshold XGEMM_MIN_INDIRECT_SIZE (>= 0). */
static const char *const xgemm_params[] = {"GEMMK", "KREG", "KWG",  "KWI", "MDIMA", "MDIMC",
                                           "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                           "STRM",  "STRN", "VWM",  "VWN", NULL};
static const char *const direct_params[] = {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD",
                                            "PADA", "PADB",   "VWMD",   "VWND",   "WGD", NULL};
static const char *const routine_params[] = {"XGEMM_MIN_INDIRECT_SIZE", NULL};
static const char *const *const kernel_params[OCLSEG_TUNING_KERNELS] = {xgemm_params, direct_params,
                                                                       routine_params};
static const char *const flag_params[] = {"GEMMK", "SA", "SB", "STRM", "STRN", "PADA", "PADB",
                                          NULL};

static int in_list(const char *const *list, const char *name) {
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], name) == 0) return 1;
    return 0;
}

static int fail(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errn, const char *fmt, ...) {
    if (err && errn) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errn, fmt, ap);
        va_end(ap);
    }
    return OCLSEG_ERR_FORMAT;
}

static int parse_kernel(json_t *obj, int ki, oclseg_clblast_params *p, char *err, size_t errn) {
    const char *kname = kernel_names[ki];
    if (!json_is_object(obj)) return fail(err, errn, "\"%s\" is not an object", kname);
    memset(p, 0, sizeof *p);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (!in_list(kernel_params[ki], key))
            return fail(err, errn, "\"%s\".\"%s\": not a CLBlast parameter of %s", kname, key, kname);
        if (!json_is_integer(v))
            return fail(err, errn, "\"%s\".\"%s\" is not an integer", kname, key);
        json_int_t x = json_integer_value(v);
        if (x < 0 || x >= (1 << 20))
            return fail(err, errn, "\"%s\".\"%s\" = %lld is out of range", kname, key, (long long)x);
        if (in_list(flag_params, key) && x > 1)
            return fail(err, errn, "\"%s\".\"%s\" = %lld must be 0 or 1", kname, key, (long long)x);
        if (!in_list(flag_params, key) && ki != 2 && x == 0)
            return fail(err, errn, "\"%s\".\"%s\" must be >= 1", kname, key);
        snprintf(p->names[p->count], OCLSEG_TUNE_NAME_LEN, "%s", key);
        p->values[p->count++] = (size_t)x;
    }
    for (int i = 0; kernel_params[ki][i]; i++)
        if (!json_object_get(obj, kernel_params[ki][i]))
            return fail(err, errn, "\"%s\".\"%s\" is missing", kname, kernel_params[ki][i]);
    return OCLSEG_OK;
}

static int parse_params(json_t *obj, oclseg_tuning *out, char *err, size_t errn) {
    if (!json_is_object(obj)) return fail(err, errn, "\"parameters\" is not an object");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ki = -1;
        for (int i = 0; i < OCLSEG_TUNING_KERNELS; i++)
            if (strcmp(key, kernel_names[i]) == 0) ki = i;
        if (ki < 0) return fail(err, errn, "\"%s\": not a tunable CLBlast kernel", key);
        TRY(parse_kernel(v, ki, &out->params[ki], err, errn));
        out->has[ki] = 1;
    }
    return OCLSEG_OK;
}

static int get_string(json_t *root, const char *key, char *dst, size_t n, char *err, size_t errn) {
    json_t *v = json_object_get(root, key);
    if (!json_is_string(v)) return fail(err, errn, "\"%s\" is missing or not a string", key);
    snprintf(dst, n, "%s", json_string_value(v));
    return OCLSEG_OK;
}

int oclseg_gemm_shape_same(const oclseg_gemm_shape *a, const oclseg_gemm_shape *b) {
    return a->trans_a == b->trans_a && a->trans_b == b->trans_b && a->batched == b->batched &&
           a->sum == b->sum && a->batch == b->batch && a->m == b->m && a->n == b->n &&
           a->k == b->k && a->beta == b->beta;
}

void oclseg_gemm_shape_name(const oclseg_gemm_shape *s, char *out, size_t n) {
    char batch[24];
    if (!s->batched) snprintf(batch, sizeof batch, "single");
    else snprintf(batch, sizeof batch, "%s%d", s->sum ? "sum" : "b", s->batch);
    snprintf(out, n, "%c%c %-7s %zux%zux%zu beta %g", s->trans_a ? 't' : 'n',
             s->trans_b ? 't' : 'n', batch, s->m, s->n, s->k, (double)s->beta);
}

/* One "backends" entry: every key known, flags 0/1, sizes >= 1, beta 0 or 1, a known backend. */
static int parse_backend(json_t *o, size_t i, oclseg_gemm_backend_choice *c, char *err,
                         size_t errn) {
    static const char *const keys[] = {"trans_a", "trans_b", "batched", "sum", "batch", "m", "n",
                                       "k", "beta", "backend", NULL};
    if (!json_is_object(o)) return fail(err, errn, "\"backends\"[%zu] is not an object", i);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) if (!in_list(keys, key))
        return fail(err, errn, "\"backends\"[%zu].\"%s\": not a shape field", i, key);
    json_int_t x[8] = {0}; /* trans_a, trans_b, batched, sum, batch, m, n, k */
    for (int f = 0; f < 8; f++) {
        v = json_object_get(o, keys[f]);
        if (!v && f == 3) continue; /* "sum" may be left out (0) */
        if (!json_is_integer(v))
            return fail(err, errn, "\"backends\"[%zu].\"%s\" is missing or not an integer", i,
                        keys[f]);
        x[f] = json_integer_value(v);
        const int flag_bad = f < 4 && x[f] != 0 && x[f] != 1;
        const int size_bad = f >= 4 && (x[f] < 1 || x[f] >= ((json_int_t)1 << 31));
        if (flag_bad || size_bad)
            return fail(err, errn, "\"backends\"[%zu].\"%s\" = %lld is out of range", i, keys[f],
                        (long long)x[f]);
    }
    v = json_object_get(o, "beta");
    if (!json_is_number(v) || (json_number_value(v) != 0.0 && json_number_value(v) != 1.0))
        return fail(err, errn, "\"backends\"[%zu].\"beta\" is missing or not 0 or 1", i);
    const char *b = json_string_value(json_object_get(o, "backend"));
    if (!b || (strcmp(b, "own") != 0 && strcmp(b, "clblast") != 0))
        return fail(err, errn, "\"backends\"[%zu].\"backend\" is missing or not \"own\" or "
                    "\"clblast\"", i);
    c->shape = (oclseg_gemm_shape){(int)x[0], (int)x[1], (int)x[2], (int)x[4], (size_t)x[5],
                                   (size_t)x[6], (size_t)x[7], (float)json_number_value(v), 0,
                                   (int)x[3]};
    c->backend = strcmp(b, "own") == 0 ? OCLSEG_GEMM_OWN : OCLSEG_GEMM_CLBLAST;
    return OCLSEG_OK;
}

static int parse_backends(json_t *arr, oclseg_tuning *out, char *err, size_t errn) {
    if (!arr) return OCLSEG_OK;
    if (!json_is_array(arr)) return fail(err, errn, "\"backends\" is not an array");
    if (json_array_size(arr) > OCLSEG_TUNING_MAX_BACKENDS)
        return fail(err, errn, "\"backends\" has more than %d entries", OCLSEG_TUNING_MAX_BACKENDS);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        oclseg_gemm_backend_choice *c = &out->backends[i];
        TRY(parse_backend(json_array_get(arr, i), i, c, err, errn));
        for (size_t j = 0; j < i; j++)
            if (oclseg_gemm_shape_same(&out->backends[j].shape, &c->shape))
                return fail(err, errn, "\"backends\"[%zu]: the same shape as [%zu]", i, j);
        out->nbackends = (int)i + 1;
    }
    return OCLSEG_OK;
}

/* The key fields, parameters, timings and (format 2) backends of a whole file. */
static int parse_file(json_t *root, oclseg_tuning *out, char *err, size_t errn) {
    const char *fmt = json_string_value(json_object_get(root, "format"));
    const int v1 = fmt && strcmp(fmt, TUNING_FORMAT_1) == 0;
    if (!fmt || (!v1 && strcmp(fmt, TUNING_FORMAT) != 0))
        return fail(err, errn, "\"format\" is not \"%s\" or \"%s\"", TUNING_FORMAT,
                    TUNING_FORMAT_1);
    TRY(get_string(root, "device", out->device, sizeof out->device, err, errn));
    TRY(get_string(root, "driver", out->driver, sizeof out->driver, err, errn));
    TRY(get_string(root, "platform_version", out->platform_version, sizeof out->platform_version,
                   err, errn));
    TRY(get_string(root, "clblast", out->clblast, sizeof out->clblast, err, errn));
    json_t *p = json_object_get(root, "parameters");
    if (!p) return fail(err, errn, "\"parameters\" is missing");
    TRY(parse_params(p, out, err, errn));
    json_t *b = json_object_get(root, "baseline_ms"), *t = json_object_get(root, "tuned_ms");
    if ((b && !json_is_number(b)) || (t && !json_is_number(t)))
        return fail(err, errn, "\"baseline_ms\"/\"tuned_ms\" is not a number");
    out->baseline_ms = b ? json_number_value(b) : 0;
    out->tuned_ms = t ? json_number_value(t) : 0;
    return v1 ? OCLSEG_OK : parse_backends(json_object_get(root, "backends"), out, err, errn);
}

int oclseg_tuning_parse(const char *json, size_t len, int params_only, oclseg_tuning *out,
                        char *err, size_t errn) {
    memset(out, 0, sizeof *out);
    if (err && errn) err[0] = '\0';
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return fail(err, errn, "not JSON (line %d: %s)", jerr.line, jerr.text);
    int st = OCLSEG_OK;
    if (!json_is_object(root)) {
        st = fail(err, errn, "the top level is not an object");
    } else if (params_only) {
        st = parse_params(root, out, err, errn);
    } else {
        st = parse_file(root, out, err, errn);
    }
    json_decref(root);
    return st;
}

static json_t *backend_json(const oclseg_gemm_backend_choice *c) {
    const oclseg_gemm_shape *s = &c->shape;
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:f, s:s}", "trans_a", s->trans_a,
                     "trans_b", s->trans_b, "batched", s->batched, "sum", s->sum, "batch",
                     s->batch, "m", (json_int_t)s->m, "n", (json_int_t)s->n, "k",
                     (json_int_t)s->k, "beta", (double)s->beta, "backend",
                     c->backend == OCLSEG_GEMM_OWN ? "own" : "clblast");
}

/* text with the placeholder `mark` replaced by the backends, one compact entry per line
 * (malloc'd; frees text). */
static char *splice_backends(char *text, const char *mark, const oclseg_tuning *t) {
    char *at = text ? strstr(text, mark) : NULL;
    size_t cap = strlen(text ? text : "") + 8 + (size_t)t->nbackends * 200, len = 0;
    char *out = at ? malloc(cap) : NULL;
    if (!out) {
        free(text);
        return NULL;
    }
    len += (size_t)snprintf(out, cap, "%.*s\"backends\": [", (int)(at - text), text);
    for (int i = 0; i < t->nbackends && out; i++) {
        json_t *e = backend_json(&t->backends[i]);
        char *line = e ? json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(e);
        if (line && len + strlen(line) + 16 < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s\n    %s", i ? "," : "", line);
        else
            free(out), out = NULL;
        free(line);
    }
    if (out) snprintf(out + len, cap - len, "\n  ]%s", at + strlen(mark));
    free(text);
    return out;
}

char *oclseg_tuning_format(const oclseg_tuning *t, int params_only) {
    json_t *params = json_object();
    for (int ki = 0; ki < OCLSEG_TUNING_KERNELS; ki++) {
        if (!t->has[ki]) continue;
        json_t *k = json_object();
        for (int i = 0; i < t->params[ki].count; i++)
            json_object_set_new(k, t->params[ki].names[i],
                                json_integer((json_int_t)t->params[ki].values[i]));
        json_object_set_new(params, kernel_names[ki], k);
    }
    json_t *root = params;
    if (!params_only)
        root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:o}", "format", TUNING_FORMAT,
                         "device", t->device, "driver", t->driver, "platform_version",
                         t->platform_version, "clblast", t->clblast, "baseline_ms", t->baseline_ms,
                         "tuned_ms", t->tuned_ms, "parameters", params);
    if (!root) return NULL;
    /* the backends go in as one line each: a placeholder string, replaced in the text (a string
     * value cannot contain its unescaped quotes) */
    const int with_backends = !params_only && t->nbackends > 0;
    if (with_backends) json_object_set_new(root, "backends", json_string("@"));
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    return with_backends ? splice_backends(s, "\"backends\": \"@\"", t) : s;
}

void oclseg_tuning_dir(char *out, size_t n) {
    const oclseg_env *env = oclseg_env_get();
    if (env->tuning_dir[0]) snprintf(out, n, "%s", env->tuning_dir);
    else if (env->xdg_cache_home[0]) snprintf(out, n, "%s/oclseg/tuning", env->xdg_cache_home);
    else snprintf(out, n, "%s/.cache/oclseg/tuning", env->home[0] ? env->home : "/tmp");
}

void oclseg_tuning_key(const oclseg_device_info *dev, oclseg_tuning *t) {
    snprintf(t->device, sizeof t->device, "%s", dev->name);
    snprintf(t->driver, sizeof t->driver, "%s", dev->driver_version);
    snprintf(t->platform_version, sizeof t->platform_version, "%s", dev->platform_version);
    snprintf(t->clblast, sizeof t->clblast, "%s", OCLSEG_CLBLAST_VERSION);
}

void oclseg_tuning_path(const oclseg_device_info *dev, char *out, size_t n) {
    oclseg_tuning key;
    oclseg_tuning_key(dev, &key);
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the key fields, NUL-separated */
    const char *parts[] = {key.device, key.driver, key.platform_version, key.clblast};
    for (int i = 0; i < 4; i++)
        for (const char *c = parts[i];; c++) {
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
            if (!*c) break;
        }
    char name[48];
    size_t j = 0;
    for (const char *c = dev->name; *c && j < sizeof name - 1; c++) {
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9');
        if (ok) name[j++] = *c;
        else if (j > 0 && name[j - 1] != '-') name[j++] = '-';
    }
    name[j] = '\0';
    char dir[3800];
    oclseg_tuning_dir(dir, sizeof dir);
    snprintf(out, n, "%s/%s-%016llx.json", dir, name, (unsigned long long)h);
}

int oclseg_tuning_apply_params(cl_device_id device, const oclseg_tuning *t) {
    for (int ki = 0; ki < OCLSEG_TUNING_KERNELS; ki++) {
        if (!t->has[ki]) continue;
        const oclseg_clblast_params *p = &t->params[ki];
        const char *names[OCLSEG_TUNE_MAX_PARAMS];
        for (int i = 0; i < p->count; i++) names[i] = p->names[i];
        int err = (int)CLBlastOverrideParameters(device, kernel_names[ki], CLBlastPrecisionSingle,
                                                 (size_t)p->count, names, p->values);
        if (err != 0) {
            OCLSEG_ERROR("CLBlastOverrideParameters(%s) failed: CLBlast status %d",
                         kernel_names[ki], err);
            return OCLSEG_ERR_CLBLAST;
        }
    }
    return OCLSEG_OK;
}

static char *read_small_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 17; /* tuning files are < 40 KiB (256 backends); anything longer is not one */
    char *buf = malloc(cap);
    *len = buf ? fread(buf, 1, cap, f) : 0;
    fclose(f);
    return buf;
}

/* A copy of the file's per-shape backends for the dispatch in src/ops/gemm.c. */
static void keep_backends(oclseg_ctx *ctx, const oclseg_tuning *t) {
    if (t->nbackends == 0) return;
    ctx->gemm_choices = malloc((size_t)t->nbackends * sizeof *ctx->gemm_choices);
    if (!ctx->gemm_choices) {
        fprintf(stderr, "oclseg: warning: out of memory for the tuning file's %d GEMM backends; "
                        "using the device's backend for every shape\n", t->nbackends);
        return;
    }
    memcpy(ctx->gemm_choices, t->backends, (size_t)t->nbackends * sizeof *ctx->gemm_choices);
    ctx->gemm_choice_count = t->nbackends;
}

void oclseg_tuning_apply(oclseg_ctx *ctx) {
    ctx->tuning_applied = 0;
    if (ctx->env.no_tuning) {
        snprintf(ctx->tuning_desc, sizeof ctx->tuning_desc,
                 "CLBlast defaults (OCLSEG_NO_TUNING=1)");
        return;
    }
    char path[4096];
    oclseg_tuning_path(&ctx->info, path, sizeof path);
    size_t len = 0;
    char *text = read_small_file(path, &len);
    if (!text) {
        snprintf(ctx->tuning_desc, sizeof ctx->tuning_desc, "CLBlast defaults (no %s)", path);
        return;
    }
    oclseg_tuning t, key;
    char err[256];
    int st = oclseg_tuning_parse(text, len, 0, &t, err, sizeof err);
    free(text);
    if (st == OCLSEG_OK) {
        oclseg_tuning_key(&ctx->info, &key);
        if (strcmp(t.device, key.device) || strcmp(t.driver, key.driver) ||
            strcmp(t.platform_version, key.platform_version) || strcmp(t.clblast, key.clblast)) {
            snprintf(err, sizeof err, "made for another device, driver or CLBlast version");
            st = OCLSEG_ERR_FORMAT;
        }
    }
    if (st == OCLSEG_OK) st = oclseg_tuning_apply_params(ctx->info.device, &t);
    if (st != OCLSEG_OK) {
        fprintf(stderr, "oclseg: warning: ignoring GEMM tuning file %s: %s; using CLBlast defaults "
                        "and the device's GEMM backend\n",
                path, st == OCLSEG_ERR_FORMAT ? err : "CLBlast rejected its parameters");
        snprintf(ctx->tuning_desc, sizeof ctx->tuning_desc, "CLBlast defaults (%s ignored)", path);
        return;
    }
    keep_backends(ctx, &t);
    ctx->tuning_applied = t.has[0] || t.has[1] || t.has[2];
    snprintf(ctx->tuning_desc, sizeof ctx->tuning_desc, "%s (%s)",
             ctx->tuning_applied ? "tuned" : "CLBlast defaults; per-shape backends only", path);
}

int oclseg_tuning_status(const oclseg_ctx *ctx, char *desc, size_t n) {
    if (desc && n) snprintf(desc, n, "%s", ctx->tuning_desc[0] ? ctx->tuning_desc : "CLBlast defaults");
    return ctx->tuning_applied;
}

int oclseg_tuning_backend(const oclseg_ctx *ctx, const oclseg_gemm_shape *s) {
    for (int i = 0; i < ctx->gemm_choice_count; i++)
        if (oclseg_gemm_shape_same(&ctx->gemm_choices[i].shape, s))
            return ctx->gemm_choices[i].backend;
    return OCLSEG_GEMM_AUTO;
}

int oclseg_tuning_backend_counts(const oclseg_ctx *ctx, int *own, int *clblast) {
    *own = *clblast = 0;
    for (int i = 0; i < ctx->gemm_choice_count; i++)
        ++*(ctx->gemm_choices[i].backend == OCLSEG_GEMM_OWN ? own : clblast);
    return ctx->gemm_choice_count;
}
