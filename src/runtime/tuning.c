/* Per-device GEMM tuning files: parse/format (jansson), location, CLBlast overrides, status. */
#include "oclseg/env.h"
#include "oclseg/tuning.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>


#define TUNING_FORMAT "oclseg-gemm-tuning-1"

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
        json_t *fmt = json_object_get(root, "format");
        if (!json_is_string(fmt) || strcmp(json_string_value(fmt), TUNING_FORMAT) != 0)
            st = fail(err, errn, "\"format\" is not \"%s\"", TUNING_FORMAT);
        if (st == OCLSEG_OK)
            st = get_string(root, "device", out->device, sizeof out->device, err, errn);
        if (st == OCLSEG_OK)
            st = get_string(root, "driver", out->driver, sizeof out->driver, err, errn);
        if (st == OCLSEG_OK)
            st = get_string(root, "platform_version", out->platform_version,
                            sizeof out->platform_version, err, errn);
        if (st == OCLSEG_OK)
            st = get_string(root, "clblast", out->clblast, sizeof out->clblast, err, errn);
        if (st == OCLSEG_OK) {
            json_t *p = json_object_get(root, "parameters");
            st = p ? parse_params(p, out, err, errn) : fail(err, errn, "\"parameters\" is missing");
        }
        json_t *b = json_object_get(root, "baseline_ms"), *t = json_object_get(root, "tuned_ms");
        if (st == OCLSEG_OK && ((b && !json_is_number(b)) || (t && !json_is_number(t))))
            st = fail(err, errn, "\"baseline_ms\"/\"tuned_ms\" is not a number");
        if (st == OCLSEG_OK) {
            out->baseline_ms = b ? json_number_value(b) : 0;
            out->tuned_ms = t ? json_number_value(t) : 0;
        }
    }
    json_decref(root);
    return st;
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
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    return s;
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
    size_t cap = 1 << 16; /* tuning files are < 2 KiB; anything longer is not one */
    char *buf = malloc(cap);
    *len = buf ? fread(buf, 1, cap, f) : 0;
    fclose(f);
    return buf;
}

void oclseg_tuning_apply(oclseg_ctx *ctx) {
    ctx->tuning_applied = 0;
    if (oclseg_env_get()->no_tuning) {
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
        fprintf(stderr, "oclseg: warning: ignoring GEMM tuning file %s: %s; using CLBlast defaults\n",
                path, st == OCLSEG_ERR_FORMAT ? err : "CLBlast rejected its parameters");
        snprintf(ctx->tuning_desc, sizeof ctx->tuning_desc, "CLBlast defaults (%s ignored)", path);
        return;
    }
    ctx->tuning_applied = 1;
    snprintf(ctx->tuning_desc, sizeof ctx->tuning_desc, "tuned (%s)", path);
}

int oclseg_tuning_status(const oclseg_ctx *ctx, char *desc, size_t n) {
    if (desc && n) snprintf(desc, n, "%s", ctx->tuning_desc[0] ? ctx->tuning_desc : "CLBlast defaults");
    return ctx->tuning_applied;
}
