/* Test harness implementation: device contexts, guarded buffers, references and comparisons,
 * child processes (spawn, wait, children) and checkpoint steps. */
#include "harness.h"
#include "oclseg/safetensors.h"
#include "oclseg/weights.h"

#include <math.h>
#include <stdarg.h>
#include <signal.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GUARD_LEAD 17   /* odd, so tensors start at an unaligned offset */
#define GUARD_TRAIL 64
static const uint32_t SENTINEL = 0x7f8badc0u; /* a signalling-NaN pattern nothing computes */
static const uint32_t POISON = 0x7fc0dead;    /* a quiet NaN: unwritten outputs fail compares */

static oclseg_device_info *devices;
static oclseg_ctx **contexts;
static int device_count = -1;

/* Called from harness_run, not atexit: OpenCL implementations (Oclgrind) tear down their own
 * state in exit handlers, and releasing objects after that corrupts their heap. */
static int release_contexts(void) {
    int leaks = 0;
    for (int i = 0; i < device_count; i++) {
        /* The shared scratch workspace and the GEMM packing buffer belong to the context (freed
         * with it), not a leak. */
        size_t scratch = contexts[i] && contexts[i]->scratch ? 1 : 0;
        if (contexts[i] && contexts[i]->gemm_pack) scratch++;
        if (contexts[i] && contexts[i]->live_buffers != scratch) {
            fprintf(stderr, "%zu device buffers leaked on %s\n",
                    contexts[i]->live_buffers - scratch, devices[i].name);
            leaks++;
        }
        oclseg_ctx_free(contexts[i]);
    }
    free(contexts);
    free(devices);
    contexts = NULL;
    devices = NULL;
    device_count = -1;
    return leaks;
}

static void init_devices(void) {
    if (device_count >= 0) return;
    const char *want = getenv("OCLSEG_TEST_DEVICE");
    if (want && *want) {
        devices = calloc(1, sizeof *devices);
        if (!devices || oclseg_device_choose(want, devices) != OCLSEG_OK) {
            fprintf(stderr, "OCLSEG_TEST_DEVICE=%s matches no device\n", want);
            exit(1);
        }
        device_count = 1;
    } else if (oclseg_devices_list(&devices, &device_count) != OCLSEG_OK || device_count == 0) {
        fprintf(stderr, "no OpenCL device to test on (install pocl-opencl-icd)\n");
        exit(1);
    }
    contexts = calloc((size_t)device_count, sizeof *contexts);
}

int harness_device_count(void) {
    init_devices();
    return device_count;
}

oclseg_ctx *harness_ctx(int i) {
    init_devices();
    ck_assert_int_lt(i, device_count);
    if (!contexts[i]) {
        int st = oclseg_ctx_create_for(&contexts[i], &devices[i], 0);
        ck_assert_msg(st == OCLSEG_OK, "cannot create a context on %s", devices[i].name);
    }
    return contexts[i];
}

const char *harness_device_name(int i) {
    init_devices();
    return devices[i].name;
}

int harness_small(void) {
    const char *s = getenv("OCLSEG_TEST_SMALL");
    return s && strcmp(s, "1") == 0;
}

int harness_no_gemm(void) {
    const char *s = getenv("OCLSEG_TEST_NO_GEMM");
    return s && strcmp(s, "1") == 0;
}

static void fill_pattern(float *dst, size_t n, uint32_t pattern) {
    for (size_t i = 0; i < n; i++) memcpy(&dst[i], &pattern, sizeof pattern);
}

hbuf hb_create(oclseg_ctx *ctx, size_t n) {
    hbuf b = {ctx, NULL, n, GUARD_LEAD, GUARD_TRAIL};
    size_t total = b.lead + n + b.trail;
    int st = oclseg_buffer_create(ctx, total * sizeof(float), "a test buffer", &b.buf);
    ck_assert_msg(st == OCLSEG_OK, "buffer allocation failed");
    float *host = malloc(total * sizeof(float));
    ck_assert_ptr_nonnull(host);
    fill_pattern(host, b.lead, SENTINEL);
    fill_pattern(host + b.lead, n, POISON);
    fill_pattern(host + b.lead + n, b.trail, SENTINEL);
    ck_assert_int_eq(oclseg_write(ctx, b.buf, 0, total * sizeof(float), host), OCLSEG_OK);
    free(host);
    return b;
}

void hb_free(hbuf *b) {
    if (b->buf) oclseg_buffer_free(b->ctx, b->buf);
    b->buf = NULL;
}

oclseg_tensor hb_tensor(const hbuf *b, int n, int c, int h, int w) {
    ck_assert_uint_eq((size_t)n * c * h * w, b->n);
    return oclseg_tensor_view(b->buf, b->lead, n, c, h, w);
}

/* Writes guards and body in one write at offset 0: Oclgrind 21.10's uninitialised-value
 * tracking mis-tracks writes at a non-zero offset. */
void hb_upload(hbuf *b, const float *src) {
    size_t total = b->lead + b->n + b->trail;
    float *host = malloc(total * sizeof(float));
    ck_assert_ptr_nonnull(host);
    fill_pattern(host, b->lead, SENTINEL);
    memcpy(host + b->lead, src, b->n * sizeof(float));
    fill_pattern(host + b->lead + b->n, b->trail, SENTINEL);
    ck_assert_int_eq(oclseg_write(b->ctx, b->buf, 0, total * sizeof(float), host), OCLSEG_OK);
    free(host);
}

void hb_poison(hbuf *b) {
    float *host = malloc(b->n * sizeof(float) + 1);
    ck_assert_ptr_nonnull(host);
    fill_pattern(host, b->n, POISON);
    hb_upload(b, host);
    free(host);
}

hbuf hb_from(oclseg_ctx *ctx, const float *src, size_t n) {
    hbuf b = hb_create(ctx, n);
    hb_upload(&b, src);
    return b;
}

void hb_download(hbuf *b, float *dst, const char *what) {
    size_t total = b->lead + b->n + b->trail;
    float *host = malloc(total * sizeof(float));
    ck_assert_ptr_nonnull(host);
    ck_assert_int_eq(oclseg_read(b->ctx, b->buf, 0, total * sizeof(float), host), OCLSEG_OK);
    for (size_t i = 0; i < total; i++) {
        if (i >= b->lead && i < b->lead + b->n) continue;
        uint32_t bits;
        memcpy(&bits, &host[i], sizeof bits);
        ck_assert_msg(bits == SENTINEL, "%s: guard %s the buffer overwritten at %s%zu",
                      what, i < b->lead ? "before" : "after", i < b->lead ? "-" : "+",
                      i < b->lead ? b->lead - i : i - b->lead - b->n);
    }
    memcpy(dst, host + b->lead, b->n * sizeof(float));
    free(host);
}

void hb_check(hbuf *b, const double *ref, double atol, double rtol, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    float *got = malloc((b->n ? b->n : 1) * sizeof *got);
    ck_assert_ptr_nonnull(got);
    hb_download(b, got, what);
    harness_compare(what, got, ref, b->n, atol, rtol);
    free(got);
}

void harness_fill_uniform(float *dst, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        double u = (double)(s >> 11) / 9007199254740992.0;
        dst[i] = (float)(lo + (hi - lo) * u);
    }
}

double *harness_to_double(const float *src, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    ck_assert_ptr_nonnull(d);
    for (size_t i = 0; i < n; i++) d[i] = src[i];
    return d;
}

double harness_max_error(const float *got, const double *ref, size_t n, double atol, double rtol,
                         size_t *index, double *abs_err) {
    double worst = -1.0, worst_err = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        const double err = isfinite(got[i]) ? fabs((double)got[i] - ref[i]) : INFINITY;
        const double allowed = atol + rtol * fabs(ref[i]);
        const double ratio = err == 0.0 ? 0.0 : allowed > 0.0 ? err / allowed : INFINITY;
        if (ratio > worst) worst = ratio, worst_err = err, worst_i = i;
    }
    if (index) *index = worst_i;
    if (abs_err) *abs_err = worst_err;
    return worst < 0.0 ? 0.0 : worst;
}

/* The worst error of each harness_compare `what`, printed by harness_run. */
typedef struct worst_entry {
    char what[160];
    double ratio, err, atol, rtol;
    size_t index, n;
} worst_entry;
static worst_entry *worst_list;
static size_t worst_count, worst_cap;

static void record_worst(const char *what, double ratio, double err, size_t index, size_t n,
                         double atol, double rtol) {
    for (size_t i = 0; i < worst_count; i++) {
        if (strncmp(worst_list[i].what, what, sizeof worst_list[i].what - 1) != 0) continue;
        if (ratio > worst_list[i].ratio) {
            worst_list[i].ratio = ratio, worst_list[i].err = err, worst_list[i].index = index;
            worst_list[i].n = n, worst_list[i].atol = atol, worst_list[i].rtol = rtol;
        }
        return;
    }
    if (worst_count == worst_cap) {
        size_t cap = worst_cap ? 2 * worst_cap : 64;
        worst_entry *grown = realloc(worst_list, cap * sizeof *grown);
        if (!grown) return; /* a report line less, not a test failure */
        worst_list = grown, worst_cap = cap;
    }
    worst_entry *e = &worst_list[worst_count++];
    snprintf(e->what, sizeof e->what, "%s", what);
    e->ratio = ratio, e->err = err, e->index = index, e->n = n, e->atol = atol, e->rtol = rtol;
}

static void print_worst(void) {
    if (worst_count == 0) return;
    printf("worst error per comparison (|err| / (atol + rtol*|ref|); 1 = at the tolerance):\n");
    for (size_t i = 0; i < worst_count; i++) {
        const worst_entry *e = &worst_list[i];
        printf("  %-8.3g %s: |err| %.3g at %zu of %zu (atol %.3g, rtol %.3g)\n", e->ratio, e->what,
               e->err, e->index, e->n, e->atol, e->rtol);
    }
    free(worst_list);
    worst_list = NULL;
    worst_count = worst_cap = 0;
}

void harness_compare(const char *what, const float *got, const double *ref, size_t n,
                     double atol, double rtol) {
    size_t worst_i = 0;
    double worst_err = 0.0;
    const double worst = harness_max_error(got, ref, n, atol, rtol, &worst_i, &worst_err);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(got[i]), "%s: element %zu is not finite (%g; reference %.9g)", what,
                      i, (double)got[i], ref[i]);
        double err = fabs((double)got[i] - ref[i]);
        double allowed = atol + rtol * fabs(ref[i]);
        ck_assert_msg(err <= allowed,
                      "%s: element %zu = %.9g, reference %.9g, |err| %.3g > atol %.3g + rtol "
                      "%.3g*|ref| (worst: element %zu, |err| %.3g, %.3g x the tolerance)",
                      what, i, (double)got[i], ref[i], err, atol, rtol, worst_i, worst_err, worst);
    }
    record_worst(what, worst, worst_err, worst_i, n, atol, rtol);
}

/* ---- per-case arena ------------------------------------------------------------------------ */
static void *arena_keep(void ***list, size_t *count, size_t *cap, void *p) {
    ck_assert_ptr_nonnull(p);
    if (*count == *cap) {
        size_t grown_cap = *cap ? 2 * *cap : 16;
        void **grown = realloc(*list, grown_cap * sizeof *grown);
        ck_assert_ptr_nonnull(grown);
        *list = grown, *cap = grown_cap;
    }
    (*list)[(*count)++] = p;
    return p;
}

float *ha_floats(harness_arena *a, size_t n) {
    return arena_keep(&a->host, &a->host_count, &a->host_cap, calloc(n ? n : 1, sizeof(float)));
}

double *ha_doubles(harness_arena *a, size_t n) {
    return arena_keep(&a->host, &a->host_count, &a->host_cap, calloc(n ? n : 1, sizeof(double)));
}

void *ha_bytes(harness_arena *a, size_t n) {
    return arena_keep(&a->host, &a->host_count, &a->host_cap, calloc(n ? n : 1, 1));
}

float *ha_uniform(harness_arena *a, size_t n, float lo, float hi, uint64_t seed) {
    float *v = ha_floats(a, n);
    harness_fill_uniform(v, n, lo, hi, seed);
    return v;
}

double *ha_widen(harness_arena *a, const float *src, size_t n) {
    return arena_keep(&a->host, &a->host_count, &a->host_cap, harness_to_double(src, n));
}

hbuf *ha_buf(harness_arena *a, oclseg_ctx *ctx, size_t n) {
    hbuf *b = malloc(sizeof *b);
    ck_assert_ptr_nonnull(b);
    *b = hb_create(ctx, n);
    return arena_keep(&a->bufs, &a->buf_count, &a->buf_cap, b);
}

hbuf *ha_buf_from(harness_arena *a, oclseg_ctx *ctx, const float *src, size_t n) {
    hbuf *b = ha_buf(a, ctx, n);
    hb_upload(b, src);
    return b;
}

void ha_free(harness_arena *a) {
    for (size_t i = 0; i < a->host_count; i++) free(a->host[i]);
    for (size_t i = 0; i < a->buf_count; i++) {
        hb_free((hbuf *)a->bufs[i]);
        free(a->bufs[i]);
    }
    free(a->host);
    free(a->bufs);
    memset(a, 0, sizeof *a);
}

/* ---- finite differences ---------------------------------------------------------------------- */
void harness_check_fd(const char *what, harness_loss_fn loss, void *user,
                      const harness_fd_arg *args, size_t arg_count, double h, double atol,
                      double rtol) {
    for (size_t k = 0; k < arg_count; k++) {
        const harness_fd_arg *arg = &args[k];
        for (size_t i = 0; i < arg->n; i++) {
            const double saved = arg->value[i];
            arg->value[i] = saved + h;
            const double plus = loss(user);
            arg->value[i] = saved - h;
            const double minus = loss(user);
            arg->value[i] = saved;
            const double fd = (plus - minus) / (2.0 * h), analytic = arg->grad[i];
            ck_assert_msg(fabs(fd - analytic) <= atol + rtol * fabs(fd),
                          "%s: reference %s[%zu] = %.12g, finite difference %.12g", what,
                          arg->name, i, analytic, fd);
        }
    }
}

/* ---- temporary directories ------------------------------------------------------------------ */
#define MAX_TEMP_DIRS 64
static char *temp_dirs[MAX_TEMP_DIRS];
static int temp_dir_count;

void harness_mkdtemp(char *dir, size_t size, const char *name) {
    const char *base = getenv("TMPDIR");
    int n = snprintf(dir, size, "%s/oclseg-%s-XXXXXX", base && *base ? base : "/tmp", name);
    ck_assert_msg(n > 0 && (size_t)n < size, "temporary directory name too long for %s", name);
    ck_assert_msg(mkdtemp(dir) != NULL, "cannot create %s", dir);
    if (temp_dir_count < MAX_TEMP_DIRS) temp_dirs[temp_dir_count++] = strdup(dir);
}

void harness_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700); /* tests make unreadable or unwritable folders */
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                size_t len = strlen(path) + strlen(e->d_name) + 2;
                char *child = malloc(len);
                if (!child) break;
                snprintf(child, len, "%s/%s", path, e->d_name);
                harness_rmtree(child);
                free(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void release_temp_dirs(int failed) {
    const char *keep = getenv("OCLSEG_KEEP_TEST_DIRS");
    const int keep_all = keep && *keep && strcmp(keep, "0") != 0;
    for (int i = 0; i < temp_dir_count; i++) {
        if (failed || keep_all)
            fprintf(stderr, "kept for inspection: %s\n", temp_dirs[i]);
        else
            harness_rmtree(temp_dirs[i]);
        free(temp_dirs[i]);
    }
    temp_dir_count = 0;
}

int harness_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    print_worst();
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (device_count >= 0 && release_contexts() != 0) failed++;
    release_temp_dirs(failed);
    return failed == 0 ? 0 : 1;
}

const char *harness_cli_dir(char *root, size_t size, const char *name) {
    const char *bin = getenv("OCLSEG_BIN");
    ck_assert_msg(bin != NULL, "OCLSEG_BIN is not set (run through meson test)");
    harness_mkdtemp(root, size, name);
    return bin;
}

int harness_sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
}

pid_t harness_spawn(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    snprintf(cmd, 6, "exec ");
    vsnprintf(cmd + 5, sizeof cmd - 5, fmt, ap);
    va_end(ap);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

long long harness_checkpoint_step(const char *path) {
    oclseg_st_file *f;
    ck_assert_int_eq(oclseg_st_load(path, &f), OCLSEG_OK);
    oclseg_checkpoint_meta meta;
    ck_assert_int_eq(oclseg_checkpoint_meta_parse(f, &meta), OCLSEG_OK);
    oclseg_st_free(f);
    return (long long)meta.trainer_step;
}

pid_t harness_child_of(pid_t parent) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "pgrep -n -P %d", (int)parent);
    FILE *p = popen(cmd, "r");
    int pid = -1;
    if (p) {
        if (fscanf(p, "%d", &pid) != 1) pid = -1;
        pclose(p);
    }
    return pid;
}

static double monotonic_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int harness_wait(pid_t pid, double limit_s) {
    for (double start = monotonic_s(); monotonic_s() - start < limit_s;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 256 + WTERMSIG(status);
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* Oclgrind 21.10's uninitialised-value checker keeps a released buffer's state for the next
 * buffer in the same slot, with the old size, and replaces it on every host write by one the size
 * of that write (tools/repro/oclgrind_stale_shadow.c): a scratch that grows can then read as
 * uninitialised where kernels wrote it. One host write over the whole buffer at offset 0 gives it
 * a state of the right size. */
void harness_grow_nan(oclseg_ctx *ctx, cl_mem *buf, size_t *have, size_t bytes) {
    ck_assert_int_eq(oclseg_buffer_grow(ctx, buf, have, bytes, "a test's grown buffer"), OCLSEG_OK);
    const size_t floats = (*have + sizeof(float) - 1) / sizeof(float);
    float *host = malloc(floats * sizeof(float));
    ck_assert_ptr_nonnull(host);
    fill_pattern(host, floats, POISON);
    ck_assert_int_eq(oclseg_write(ctx, *buf, 0, *have, host), OCLSEG_OK);
    free(host);
}

void harness_release_scratch(void) {
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        if (ctx->scratch) oclseg_buffer_free(ctx, ctx->scratch);
        ctx->scratch = NULL;
        ctx->scratch_bytes = 0;
    }
}
