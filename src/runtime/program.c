/* Kernel programs: source lookup (embedded or OCLSEG_KERNEL_DIR), per-device defines, build with
 * log on failure, an on-disk binary cache keyed by source+options+device+driver, and launches. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oclseg/env.h"
#include "oclseg/runtime.h"
#include "oclseg/util.h"
#include "runtime/kernels_embedded.h"
#include "runtime/program_internal.h"

/* ---- per-device tuning table (CLBlast style: device -> vendor -> default) ---------------- */
typedef struct tuning_entry {
    const char *device_substr; /* NULL: any device */
    const char *vendor_substr; /* NULL: any vendor */
    const char *program;       /* NULL: every program */
    const char *defines;
} tuning_entry;

static const tuning_entry tuning_table[] = {
    /* Reductions use 256-wide work-groups where the hardware is wide, 64 elsewhere. */
    {NULL, "NVIDIA", NULL, "-DREDUCE_WG=256"},
    {NULL, "Advanced Micro Devices", NULL, "-DREDUCE_WG=256"},
    {NULL, NULL, NULL, "-DREDUCE_WG=64"},
};

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

const char *oclseg_device_defines(const oclseg_device_info *dev, const char *program_name) {
    const size_t n = sizeof tuning_table / sizeof tuning_table[0];
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < n; i++) {
            const tuning_entry *e = &tuning_table[i];
            if (e->program && strcmp(e->program, program_name) != 0) continue;
            if (pass == 0 && e->device_substr && contains(dev->name, e->device_substr)) return e->defines;
            if (pass == 1 && !e->device_substr && e->vendor_substr &&
                contains(dev->vendor, e->vendor_substr))
                return e->defines;
            if (pass == 2 && !e->device_substr && !e->vendor_substr) return e->defines;
        }
    }
    return "";
}

/* ---- sources ---------------------------------------------------------------------------- */
static char *read_text_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1))) {
            if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
                free(buf);
                buf = NULL;
            } else {
                buf[len] = '\0';
            }
        }
    }
    fclose(f);
    return buf;
}

/* The embedded copy of a file in cl/ ("eltwise" for eltwise.cl, "common.clh"), or NULL. */
static const char *embedded_source(const char *name) {
    for (const oclseg_embedded_kernel *k = oclseg_embedded_kernels; k->name; k++)
        if (strcmp(k->name, name) == 0) return k->source;
    return NULL;
}

/* Returns a malloc'd copy of cl/<file> (name + suffix): from OCLSEG_KERNEL_DIR if set, else
 * embedded. The shared header falls back to its embedded copy when the folder lacks it. `where`
 * gets the file actually read: its full path, or "cl/<file> (embedded)". */
static int load_file(const char *dir, const char *name, const char *suffix,
                     int embedded_fallback, char **out, char *where, size_t where_size) {
    if (*dir) {
        char path[OCLSEG_ENV_PATH + 64];
        snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
        *out = read_text_file(path);
        if (*out) {
            char *full = realpath(path, NULL);
            snprintf(where, where_size, "%s", full ? full : path);
            free(full);
            return OCLSEG_OK;
        }
        if (!embedded_fallback) {
            OCLSEG_ERROR("cannot read kernel source %s (OCLSEG_KERNEL_DIR=%s): %s", path, dir,
                         strerror(errno));
            return OCLSEG_ERR_NOT_FOUND;
        }
    }
    const char *text = embedded_source(name);
    if (!text) {
        OCLSEG_ERROR("no embedded kernel program named '%s'", name);
        return OCLSEG_ERR_NOT_FOUND;
    }
    snprintf(where, where_size, "cl/%s%s (embedded)", name, suffix);
    *out = strdup(text);
    return *out ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
}

/* A #line directive that makes the compiler's messages name `where` (a file read from
 * OCLSEG_KERNEL_DIR; embedded ones by their cl/ name); characters a C string would need
 * escaped are left out of the name. */
static void line_directive(const char *where, char *out, size_t size) {
    static const char embedded[] = " (embedded)";
    size_t len = strlen(where);
    if (len >= sizeof embedded - 1 && strcmp(where + len - (sizeof embedded - 1), embedded) == 0)
        len -= sizeof embedded - 1;
    char name[OCLSEG_ENV_PATH + 64];
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < sizeof name; i++)
        if (where[i] != '"' && where[i] != '\\' && (unsigned char)where[i] >= 0x20)
            name[n++] = where[i];
    name[n] = '\0';
    snprintf(out, size, "\n#line 1 \"%s\"\n", name);
}

/* A program's source: cl/common.clh, then cl/<name>.cl (from line 1 again, under its file name,
 * for the build log), as one malloc'd string: the binary cache's key covers both. `where` gets
 * the .cl file actually read (see load_file). */
static int load_source(const oclseg_ctx *ctx, const char *name, char **out, char *where,
                       size_t where_size) {
    const char *dir = ctx->env.kernel_dir;
    char *header = NULL, *body = NULL, header_where[OCLSEG_ENV_PATH + 64];
    TRY(load_file(dir, "common.clh", "", 1, &header, header_where, sizeof header_where));
    int st = load_file(dir, name, ".cl", 0, &body, where, where_size);
    if (st == OCLSEG_OK) {
        char header_line[OCLSEG_ENV_PATH + 96], body_line[OCLSEG_ENV_PATH + 96];
        line_directive(header_where, header_line, sizeof header_line);
        line_directive(where, body_line, sizeof body_line);
        size_t size = strlen(header_line) + strlen(header) + strlen(body_line) + strlen(body) + 1;
        *out = malloc(size);
        if (*out) snprintf(*out, size, "%s%s%s%s", header_line + 1, header, body_line, body);
        else st = OCLSEG_ERR_OUT_OF_MEMORY;
    }
    free(header);
    free(body);
    return st;
}

/* ---- binary cache ----------------------------------------------------------------------- */
uint64_t oclseg_fnv1a64(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Set when the cache folder turned out not to be writable (oclseg_cache_prepare). */
static int cache_unwritable;

/* The kernel cache folder under the switches `env` ("" when off or not writable). */
static void cache_dir_for(const oclseg_env *env, char *out, size_t size) {
    if (env->cache_off || cache_unwritable) {
        out[0] = '\0';
        return;
    }
    if (*env->xdg_cache_home) snprintf(out, size, "%s/oclseg", env->xdg_cache_home);
    else if (*env->home) snprintf(out, size, "%s/.cache/oclseg", env->home);
    else out[0] = '\0';
}

void oclseg_cache_dir(char *out, size_t size) { cache_dir_for(oclseg_env_get(), out, size); }

/* Removes a folder tree without following links (the private PoCL cache at exit). */
static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char child[OCLSEG_PATH_MAX];
            struct stat st;
            if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child)
                continue;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(child);
            else unlink(child);
        }
        closedir(d);
    }
    rmdir(path);
}

static char private_pocl_cache[64];
static pid_t private_pocl_cache_owner;

/* (only in the process that made it: a forked child's exit must not remove it) */
static void remove_private_pocl_cache(void) {
    if (getpid() == private_pocl_cache_owner) remove_tree(private_pocl_cache);
}

void oclseg_cache_prepare(void) {
    static int prepared;
    if (prepared) return;
    prepared = 1;
    const oclseg_env *env = oclseg_env_get();
    char root[OCLSEG_ENV_PATH + 16];
    if (*env->xdg_cache_home) snprintf(root, sizeof root, "%s", env->xdg_cache_home);
    else if (*env->home) snprintf(root, sizeof root, "%s/.cache", env->home);
    else return;
    if (oclseg_mkdir_p(root) == OCLSEG_OK && access(root, W_OK) == 0) return;
    const char *why = strerror(errno);
    cache_unwritable = 1;
    if (!env->cache_off)
        fprintf(stderr, "oclseg: warning: the kernel cache folder %s is not writable (%s): "
                        "running without the kernel cache (kernels are compiled on every run; "
                        "point XDG_CACHE_HOME at a writable folder)\n", root, why);
    /* PoCL finds no device at all when it cannot create its own cache under the same root:
     * it gets a private folder for this run instead, removed at exit */
    if (env->pocl_cache_dir_set) return;
    snprintf(private_pocl_cache, sizeof private_pocl_cache, "%s/oclseg-pocl-XXXXXX", P_tmpdir);
    if (!mkdtemp(private_pocl_cache)) return;
    private_pocl_cache_owner = getpid();
    setenv("POCL_CACHE_DIR", private_pocl_cache, 1);
    setenv("MESA_SHADER_CACHE_DISABLE", "true", 0); /* Mesa's would only warn */
    atexit(remove_private_pocl_cache);
}

#define CACHE_MAGIC "OCLSEGK1"

typedef struct cache_key {
    uint64_t h1, h2; /* two independent hashes of the full key text */
    char dir[OCLSEG_ENV_PATH + 16]; /* the context's cache folder ("": no cache) */
    char path[4200];
} cache_key;

static void make_cache_key(const oclseg_ctx *ctx, const char *source, const char *options,
                           cache_key *key) {
    const char *parts[] = {CACHE_MAGIC,          ctx->info.platform_name,
                           ctx->info.platform_version, ctx->info.name,
                           ctx->info.driver_version, options,
                           source};
    key->h1 = OCLSEG_FNV1A64_INIT;
    key->h2 = 0x84222325cbf29ce4ULL;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t len = strlen(parts[i]);
        key->h1 = oclseg_fnv1a64(key->h1, parts[i], len + 1);
        key->h2 = oclseg_fnv1a64(key->h2 ^ (uint64_t)len, parts[i], len + 1);
    }
    cache_dir_for(&ctx->env, key->dir, sizeof key->dir);
    if (key->dir[0])
        snprintf(key->path, sizeof key->path, "%s/%016llx.bin", key->dir, (unsigned long long)key->h1);
    else key->path[0] = '\0';
}

/* File: magic(8) h1(8) h2(8) size(8) checksum(8) binary(size). Anything off -> not used. */
static unsigned char *cache_read(const cache_key *key, size_t *size) {
    if (!key->path[0]) return NULL;
    FILE *f = fopen(key->path, "rb");
    if (!f) return NULL;
    char magic[8];
    uint64_t h1, h2, len, sum;
    unsigned char *bin = NULL;
    if (fread(magic, 1, 8, f) == 8 && memcmp(magic, CACHE_MAGIC, 8) == 0 &&
        fread(&h1, 8, 1, f) == 1 && fread(&h2, 8, 1, f) == 1 && fread(&len, 8, 1, f) == 1 &&
        fread(&sum, 8, 1, f) == 1 && h1 == key->h1 && h2 == key->h2 && len > 0 &&
        len < (1ULL << 31) && (bin = malloc(len))) {
        if (fread(bin, 1, len, f) != len || oclseg_fnv1a64(OCLSEG_FNV1A64_INIT, bin, len) != sum ||
            fgetc(f) != EOF) {
            free(bin);
            bin = NULL;
        } else {
            *size = len;
        }
    }
    fclose(f);
    return bin;
}

static void cache_write(const cache_key *key, const unsigned char *bin, size_t size) {
    if (!key->path[0]) return;
    char tmp[4300];
    (void)oclseg_mkdir_p(key->dir); /* best effort: a cache that cannot be written is skipped */
    char prefix[4300];
    snprintf(prefix, sizeof prefix, "%s.tmp.%ld.", key->path, (long)getpid());
    int fd = oclseg_temp_create(tmp, sizeof tmp, prefix); /* O_EXCL: never through a link */
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        if (fd >= 0) close(fd), remove(tmp);
        return;
    }
    uint64_t len = size, sum = oclseg_fnv1a64(OCLSEG_FNV1A64_INIT, bin, size);
    int ok = fwrite(CACHE_MAGIC, 1, 8, f) == 8 && fwrite(&key->h1, 8, 1, f) == 1 &&
             fwrite(&key->h2, 8, 1, f) == 1 && fwrite(&len, 8, 1, f) == 1 &&
             fwrite(&sum, 8, 1, f) == 1 && fwrite(bin, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, key->path) != 0) remove(tmp); /* the cache is best effort */
}

/* ---- build -------------------------------------------------------------------------------- */
static void print_build_log(oclseg_ctx *ctx, cl_program prog, const char *where,
                            const char *options) {
    size_t len = 0;
    clGetProgramBuildInfo(prog, ctx->info.device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len);
    char *log = malloc(len + 1);
    if (log && clGetProgramBuildInfo(prog, ctx->info.device, CL_PROGRAM_BUILD_LOG, len, log,
                                     NULL) == CL_SUCCESS) {
        log[len] = '\0';
    } else if (log) {
        snprintf(log, len + 1, "%s", "");
    }
    fprintf(stderr,
            "oclseg: error: building kernel program %s failed on device '%s' (%s, driver "
            "%s)\n  options: %s\n  build log:\n%s\n",
            where, ctx->info.name, ctx->info.platform_name, ctx->info.driver_version, options,
            log ? log : "(no memory for the log)");
    free(log);
}

static int get_binary(cl_program prog, unsigned char **bin, size_t *size) {
    *bin = NULL;
    CL_CHECK(clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof *size, size, NULL));
    if (*size == 0) return OCLSEG_ERR_UNSUPPORTED;
    *bin = malloc(*size);
    if (!*bin) return OCLSEG_ERR_OUT_OF_MEMORY;
    unsigned char *ptrs[1] = {*bin};
    cl_int err = clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof ptrs, ptrs, NULL);
    if (err != CL_SUCCESS) {
        free(*bin);
        *bin = NULL;
        return err;
    }
    return OCLSEG_OK;
}

static int build_program(oclseg_ctx *ctx, const char *name, const char *extra_defines,
                         cl_program *out) {
    char *source = NULL, where[OCLSEG_ENV_PATH + 64];
    TRY(load_source(ctx, name, &source, where, sizeof where));
    char options[2048];
    snprintf(options, sizeof options, "%s %s %s", ctx->cl_std,
             oclseg_device_defines(&ctx->info, name), extra_defines ? extra_defines : "");
    cache_key key;
    make_cache_key(ctx, source, options, &key);
    cl_int err;
    size_t bin_size = 0;
    unsigned char *bin = cache_read(&key, &bin_size);
    if (bin) {
        const unsigned char *bins[1] = {bin};
        cl_int bin_status;
        cl_program prog = clCreateProgramWithBinary(ctx->context, 1, &ctx->info.device, &bin_size,
                                                    bins, &bin_status, &err);
        free(bin);
        if (err == CL_SUCCESS) oclseg_cl_created(OCLSEG_CL_PROGRAM);
        if (err == CL_SUCCESS && bin_status == CL_SUCCESS &&
            clBuildProgram(prog, 1, &ctx->info.device, options, NULL, NULL) == CL_SUCCESS) {
            free(source);
            *out = prog;
            return OCLSEG_OK;
        }
        if (err == CL_SUCCESS) {
            clReleaseProgram(prog);
            oclseg_cl_released(OCLSEG_CL_PROGRAM);
        }
        remove(key.path); /* stale or corrupt: rebuild from source below */
    }
    const char *src = source;
    cl_program prog = clCreateProgramWithSource(ctx->context, 1, &src, NULL, &err);
    free(source);
    CL_CHECK(err);
    oclseg_cl_created(OCLSEG_CL_PROGRAM);
    err = clBuildProgram(prog, 1, &ctx->info.device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        print_build_log(ctx, prog, where, options);
        clReleaseProgram(prog);
        oclseg_cl_released(OCLSEG_CL_PROGRAM);
        return OCLSEG_ERR_BUILD;
    }
    if (key.path[0] && get_binary(prog, &bin, &bin_size) == OCLSEG_OK)
        cache_write(&key, bin, bin_size);
    free(bin);
    *out = prog;
    return OCLSEG_OK;
}

static char *join3(const char *a, const char *b, const char *c) {
    size_t len = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(len);
    if (s) snprintf(s, len, "%s|%s|%s", a, b, c);
    return s;
}

int oclseg_kernel_get(oclseg_ctx *ctx, const char *program_name, const char *extra_defines,
                      const char *kernel_name, cl_kernel *out) {
    const char *defs = extra_defines ? extra_defines : "";
    char *kkey = join3(program_name, defs, kernel_name);
    if (!kkey) return OCLSEG_ERR_OUT_OF_MEMORY;
    for (oclseg_kernel_entry *k = ctx->kernels; k; k = k->next) {
        if (strcmp(k->key, kkey) == 0) {
            free(kkey);
            *out = k->kernel;
            return OCLSEG_OK;
        }
    }
    char *pkey = join3(program_name, defs, "");
    if (!pkey) {
        free(kkey);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    oclseg_program_entry *pe = ctx->programs;
    while (pe && strcmp(pe->key, pkey) != 0) pe = pe->next;
    int st = OCLSEG_OK;
    if (!pe) {
        cl_program prog;
        st = build_program(ctx, program_name, defs, &prog);
        if (st == OCLSEG_OK && !(pe = calloc(1, sizeof *pe))) {
            clReleaseProgram(prog);
            oclseg_cl_released(OCLSEG_CL_PROGRAM);
            st = OCLSEG_ERR_OUT_OF_MEMORY;
        }
        if (st != OCLSEG_OK) goto fail;
        pe->key = pkey;
        pkey = NULL;
        pe->program = prog;
        pe->next = ctx->programs;
        ctx->programs = pe;
    }
    cl_int err;
    cl_kernel kernel = clCreateKernel(pe->program, kernel_name, &err);
    if (err != CL_SUCCESS) {
        OCLSEG_ERROR("clCreateKernel(%s) in cl/%s.cl failed: %s", kernel_name, program_name,
                     oclseg_status_str(err));
        st = err;
        goto fail;
    }
    oclseg_cl_created(OCLSEG_CL_KERNEL);
    oclseg_kernel_entry *ke = calloc(1, sizeof *ke);
    if (!ke) {
        clReleaseKernel(kernel);
        oclseg_cl_released(OCLSEG_CL_KERNEL);
        st = OCLSEG_ERR_OUT_OF_MEMORY;
        goto fail;
    }
    ke->key = kkey;
    ke->kernel = kernel;
    err = clGetKernelWorkGroupInfo(kernel, ctx->info.device, CL_KERNEL_WORK_GROUP_SIZE,
                                   sizeof ke->wg_limit, &ke->wg_limit, NULL);
    if (err != CL_SUCCESS || ke->wg_limit == 0) ke->wg_limit = 1;
    ke->next = ctx->kernels;
    ctx->kernels = ke;
    free(pkey);
    *out = kernel;
    return OCLSEG_OK;
fail:
    free(kkey);
    free(pkey);
    return st;
}

void oclseg_programs_release(oclseg_ctx *ctx) {
    while (ctx->kernels) {
        oclseg_kernel_entry *k = ctx->kernels;
        ctx->kernels = k->next;
        clReleaseKernel(k->kernel);
        oclseg_cl_released(OCLSEG_CL_KERNEL);
        free(k->key);
        free(k);
    }
    while (ctx->programs) {
        oclseg_program_entry *p = ctx->programs;
        ctx->programs = p->next;
        clReleaseProgram(p->program);
        oclseg_cl_released(OCLSEG_CL_PROGRAM);
        free(p->key);
        free(p);
    }
}

size_t oclseg_kernel_wg_limit(oclseg_ctx *ctx, cl_kernel kernel) {
    for (oclseg_kernel_entry *k = ctx->kernels; k; k = k->next)
        if (k->kernel == kernel) return k->wg_limit;
    size_t limit = 1;
    clGetKernelWorkGroupInfo(kernel, ctx->info.device, CL_KERNEL_WORK_GROUP_SIZE, sizeof limit,
                             &limit, NULL);
    return limit ? limit : 1;
}

static size_t floor_pow2(size_t v) {
    size_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}

size_t oclseg_reduce_wg(oclseg_ctx *ctx, const char *program_name, cl_kernel kernel) {
    static const char key[] = "-DREDUCE_WG=";
    const char *at = strstr(oclseg_device_defines(&ctx->info, program_name), key);
    size_t wg = at ? (size_t)strtoul(at + strlen(key), NULL, 10) : 64;
    size_t limit = oclseg_kernel_wg_limit(ctx, kernel);
    if (limit > ctx->info.max_work_group_size) limit = ctx->info.max_work_group_size;
    return floor_pow2(wg < limit ? wg : limit);
}

static size_t groups_of(cl_uint dims, const size_t *g, const size_t *l) {
    size_t groups = 1;
    for (cl_uint i = 0; i < dims; i++) groups *= (g[i] + l[i] - 1) / l[i];
    return groups;
}

/* The work-group for a launch without one. GPUs: 256 items (16 along x, the contiguous axis,
 * the rest along y). CPU devices run a group's items in a loop on one core (vectorised along x)
 * and pay a scheduling cost per group, which at 256 items dominated BatchNorm's per-element
 * passes (bn_apply 117 -> 44-69 ms per step with 4096; docs/performance.md): up to 4096 items,
 * 256 along x, halved while that leaves fewer than 8 groups per compute unit. */
static void default_local(const oclseg_ctx *ctx, cl_uint dims, const size_t *g, size_t limit,
                          size_t *l) {
    const int cpu = (ctx->info.type & CL_DEVICE_TYPE_CPU) != 0;
    const size_t cap = cpu ? 4096 : 256, x_cap = cpu ? 256 : 16;
    const size_t budget = floor_pow2(limit < cap ? limit : cap);
    if (dims == 1) {
        l[0] = budget;
    } else {
        l[0] = budget >= x_cap ? x_cap : budget;
        l[1] = budget / l[0];
    }
    for (cl_uint i = 0; i < dims; i++) /* don't make groups larger than the problem */
        while (l[i] > 1 && l[i] / 2 >= g[i]) l[i] /= 2;
    const size_t min_groups = 8 * (size_t)(ctx->info.compute_units ? ctx->info.compute_units : 1);
    while (cpu && groups_of(dims, g, l) < min_groups) {
        cl_uint widest = 0; /* halve the longest side that is still > 1 */
        for (cl_uint i = 1; i < dims; i++)
            if (l[i] > l[widest]) widest = i;
        if (l[widest] == 1 || l[0] * l[1] * (dims > 2 ? l[2] : 1) <= 16) break;
        l[widest] /= 2;
    }
}

int oclseg_launch(oclseg_ctx *ctx, cl_kernel kernel, cl_uint dims, const size_t *global,
                  const size_t *local) {
    size_t g[3] = {1, 1, 1}, l[3] = {1, 1, 1};
    size_t limit = oclseg_kernel_wg_limit(ctx, kernel);
    if (limit > ctx->info.max_work_group_size) limit = ctx->info.max_work_group_size;
    if (dims < 1 || dims > 3) return OCLSEG_ERR_INVALID_ARG;
    for (cl_uint i = 0; i < dims; i++) {
        if (global[i] == 0) return OCLSEG_OK; /* nothing to do */
        g[i] = global[i];
    }
    if (local) {
        size_t total = 1;
        for (cl_uint i = 0; i < dims; i++) total *= (l[i] = local[i]);
        if (total > limit) {
            char name[128] = "?";
            clGetKernelInfo(kernel, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
            OCLSEG_ERROR("kernel %s needs a work-group of %zu items but the device allows %zu",
                         name, total, limit);
            return OCLSEG_ERR_UNSUPPORTED;
        }
    } else {
        default_local(ctx, dims, g, limit, l);
    }
    for (cl_uint i = 0; i < dims; i++) g[i] = (g[i] + l[i] - 1) / l[i] * l[i];
    cl_event *ev = NULL;
    char name[128] = "?";
    if (ctx->profiling) {
        clGetKernelInfo(kernel, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
        ev = oclseg_prof_slot(ctx, name);
    }
    /* Test hook: OCLSEG_FAULT_LAUNCH=N makes the N-th launch of the process fail as a device
     * out of resources would. */
    static long launch_counter;
    const long fault_at = ctx->env.fault_launch;
    cl_int err;
    if (fault_at > 0 && ++launch_counter == fault_at)
        err = CL_OUT_OF_RESOURCES;
    else {
        const double t0 = oclseg_now_s();
        err = clEnqueueNDRangeKernel(ctx->queue, kernel, dims, NULL, g, l, 0, NULL, ev);
        ctx->enqueued.enqueue_s += oclseg_now_s() - t0;
        ctx->enqueued.kernels += err == CL_SUCCESS;
    }
    if (err != CL_SUCCESS) {
        clGetKernelInfo(kernel, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
        int exhausted = err == CL_OUT_OF_RESOURCES || err == CL_MEM_OBJECT_ALLOCATION_FAILURE ||
                        err == CL_OUT_OF_HOST_MEMORY;
        char hint[160] = "";
        if (exhausted)
            snprintf(hint, sizeof hint, ": the device ran out of memory or resources (oclseg "
                     "holds %.1f MiB of device memory); try a smaller --batch or --size",
                     ctx->live_bytes / 1048576.0);
        OCLSEG_ERROR("enqueueing kernel %s (global %zux%zux%zu, local %zux%zux%zu) on '%s' "
                     "failed: %s%s", name, g[0], g[1], g[2], l[0], l[1], l[2], ctx->info.name,
                     oclseg_status_str(err), hint);
        return err;
    }
    return OCLSEG_OK;
}
