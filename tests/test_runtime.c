/* Tests the runtime: device enumeration/choice, kernel build errors, the binary cache (hit,
 * corrupt entry rebuilt), launch rounding, and buffer accounting with the fault hook. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/env.h"

START_TEST(devices_enumerate_and_choose) {
    oclseg_device_info *devs = NULL;
    int count = 0;
    ck_assert_int_eq(oclseg_devices_list(&devs, &count), OCLSEG_OK);
    ck_assert_int_gt(count, 0);
    char spec[32];
    snprintf(spec, sizeof spec, "%d:%d", devs[0].platform_index, devs[0].device_index);
    oclseg_device_info chosen;
    ck_assert_int_eq(oclseg_device_choose(spec, &chosen), OCLSEG_OK);
    ck_assert_str_eq(chosen.name, devs[0].name);
    ck_assert_int_eq(oclseg_device_choose("99:99", &chosen), OCLSEG_ERR_NO_DEVICE);
    ck_assert_int_eq(oclseg_device_choose("no-such-device-xyz", &chosen), OCLSEG_ERR_NO_DEVICE);
    /* a substring of the platform name, in another case, selects that platform's device */
    char lower[64];
    snprintf(lower, sizeof lower, "%.6s", devs[0].platform_name);
    for (char *p = lower; *p; p++) *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    ck_assert_int_eq(oclseg_device_choose(lower, &chosen), OCLSEG_OK);
    free(devs);
}
END_TEST

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".bin") && !strstr(e->d_name, ".tmp")) n++;
    closedir(d);
    return n;
}

/* Builds with an empty cache, then from the cache, then after corrupting every entry. */
START_TEST(binary_cache_roundtrip_and_corruption) {
    char tmpl[4096];
    harness_mkdtemp(tmpl, sizeof tmpl, "cache");
    setenv("XDG_CACHE_HOME", tmpl, 1);
    oclseg_env_reload(); /* the switches are read once */
    char dir[4096];
    oclseg_cache_dir(dir, sizeof dir);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_device_info info = harness_ctx(d)->info;
        for (int round = 0; round < 3; round++) {
            oclseg_ctx *ctx;
            ck_assert_int_eq(oclseg_ctx_create_for(&ctx, &info, 0), OCLSEG_OK);
            cl_kernel k;
            ck_assert_int_eq(oclseg_kernel_get(ctx, "eltwise", NULL, "relu_forward", &k), OCLSEG_OK);
            float x[3] = {-1, 2, -3}, y[3];
            double r[3] = {0, 2, 0};
            hbuf bx = hb_from(ctx, x, 3), by = hb_create(ctx, 3);
            oclseg_tensor tx = hb_tensor(&bx, 1, 1, 1, 3), ty = hb_tensor(&by, 1, 1, 1, 3);
            ck_assert_int_eq(op_relu_forward(ctx, &tx, &ty), OCLSEG_OK);
            hb_download(&by, y, "relu via cache");
            harness_compare("relu via cache", y, r, 3, 0, 0);
            hb_free(&bx);
            hb_free(&by);
            ck_assert_uint_eq(ctx->live_buffers, 0);
            oclseg_ctx_free(ctx);
            ck_assert_int_ge(count_files(dir), 1);
            if (round == 1) { /* corrupt every cached binary: must be rebuilt, never trusted */
                DIR *dd = opendir(dir);
                struct dirent *e;
                while ((e = readdir(dd))) {
                    if (!strstr(e->d_name, ".bin")) continue;
                    char path[8192];
                    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                    FILE *f = fopen(path, "r+b");
                    fseek(f, 48, SEEK_SET);
                    fputc(0x5a, f);
                    fputc(0xa5, f);
                    fclose(f);
                }
                closedir(dd);
            }
        }
    }
    unsetenv("XDG_CACHE_HOME");
    oclseg_env_reload(); /* the switches are read once */
}
END_TEST

/* A kernel that does not compile gives OCLSEG_ERR_BUILD (the log goes to stderr). */
START_TEST(build_failure_is_reported) {
    char tmpl[4096];
    harness_mkdtemp(tmpl, sizeof tmpl, "kdir");
    char path[4200];
    snprintf(path, sizeof path, "%s/eltwise.cl", tmpl);
    FILE *f = fopen(path, "w");
    fputs("__kernel void relu_forward(__global float *x) { x[0] = undefined_name; }\n", f);
    fclose(f);
    setenv("OCLSEG_KERNEL_DIR", tmpl, 1);
    setenv("OCLSEG_CACHE", "0", 1);
    oclseg_env_reload(); /* the switches are read once */
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx;
        oclseg_device_info info = harness_ctx(d)->info;
        ck_assert_int_eq(oclseg_ctx_create_for(&ctx, &info, 0), OCLSEG_OK);
        cl_kernel k;
        ck_assert_int_eq(oclseg_kernel_get(ctx, "eltwise", NULL, "relu_forward", &k), OCLSEG_ERR_BUILD);
        ck_assert_int_eq(oclseg_kernel_get(ctx, "no_such_program", NULL, "x", &k), OCLSEG_ERR_NOT_FOUND);
        oclseg_ctx_free(ctx);
    }
    unsetenv("OCLSEG_KERNEL_DIR");
    unsetenv("OCLSEG_CACHE");
    oclseg_env_reload(); /* the switches are read once */
    remove(path);
    rmdir(tmpl);
}
END_TEST

/* Element counts that are not multiples of any work-group size (1, prime, > 1 group). */
START_TEST(launch_rounds_global_size) {
    static const size_t sizes[] = {1, 3, 257, 4099};
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
            double *r = malloc(n * sizeof *r);
            harness_fill_uniform(x, n, -1, 1, n);
            for (size_t i = 0; i < n; i++) r[i] = x[i] > 0 ? x[i] : 0;
            hbuf bx = hb_from(ctx, x, n), by = hb_create(ctx, n);
            oclseg_tensor tx = hb_tensor(&bx, 1, 1, 1, (int)n), ty = hb_tensor(&by, 1, 1, 1, (int)n);
            ck_assert_int_eq(op_relu_forward(ctx, &tx, &ty), OCLSEG_OK);
            hb_download(&by, y, "relu rounding");
            harness_compare("relu rounding", y, r, n, 0, 0);
            hb_free(&bx);
            hb_free(&by);
            free(x);
            free(y);
            free(r);
        }
    }
}
END_TEST

/* The switch is read into a context when it is created: a context made before it keeps
 * allocating, one made after it fails its first allocation. */
START_TEST(allocation_fault_is_reported) {
    oclseg_ctx *ctx = harness_ctx(0);
    size_t live = ctx->live_buffers;
    setenv("OCLSEG_FAULT_ALLOC", "1", 1); /* counter is process-wide: next allocation fails */
    oclseg_env_reload(); /* the switches are read once */
    oclseg_ctx *armed = NULL;
    ck_assert_int_eq(oclseg_ctx_create_for(&armed, &ctx->info, 0), OCLSEG_OK);
    unsetenv("OCLSEG_FAULT_ALLOC");
    oclseg_env_reload(); /* the switches are read once */
    cl_mem m = NULL;
    ck_assert_int_eq(oclseg_buffer_create(ctx, 1024, "an earlier context's buffer", &m), OCLSEG_OK);
    oclseg_buffer_free(ctx, m);
    m = NULL;
    int st = oclseg_buffer_create(armed, 1024, "a test buffer", &m);
    ck_assert_int_eq(st, CL_MEM_OBJECT_ALLOCATION_FAILURE);
    ck_assert_ptr_null(m);
    ck_assert_uint_eq(armed->live_buffers, 0);
    oclseg_ctx_free(armed);
    ck_assert_uint_eq(ctx->live_buffers, live);
    /* larger than the device allows in one allocation */
    st = oclseg_buffer_create(ctx, (size_t)ctx->info.max_alloc + 4096, "a huge buffer", &m);
    ck_assert_int_eq(st, OCLSEG_ERR_OUT_OF_MEMORY);
}
END_TEST

/* Every create is counted and every release uncounted: a fresh context with a program, a
 * kernel and buffers brings the live counts up by exactly those, and freeing it (and the
 * buffers) brings them back to where they were. */
/* The trainer's upload staging: mapped CL_MEM_ALLOC_HOST_PTR memory written by the host is what a
 * non-blocking upload from it delivers (the buffer stays mapped while the device reads from the
 * pointer), and its free releases what its create counted. */
START_TEST(host_buffer_uploads_what_was_written) {
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        const size_t live = ctx->live_buffers, n = 1037;
        cl_mem host_buf, dev_buf;
        void *host;
        ck_assert_int_eq(oclseg_host_buffer_create(ctx, n * sizeof(float), &host_buf, &host),
                         OCLSEG_OK);
        ck_assert_ptr_nonnull(host);
        float *h = host, back[1037];
        for (size_t i = 0; i < n; i++) h[i] = (float)i * 0.5f - 100.0f;
        ck_assert_int_eq(oclseg_buffer_create(ctx, n * sizeof(float), "test", &dev_buf), OCLSEG_OK);
        ck_assert_int_eq(clEnqueueWriteBuffer(ctx->queue, dev_buf, CL_FALSE, 0, n * sizeof(float),
                                              h, 0, NULL, NULL), CL_SUCCESS);
        ck_assert_int_eq(oclseg_read(ctx, dev_buf, 0, sizeof back, back), OCLSEG_OK);
        for (size_t i = 0; i < n; i++) ck_assert_float_eq(back[i], (float)i * 0.5f - 100.0f);
        oclseg_buffer_free(ctx, dev_buf);
        oclseg_host_buffer_free(ctx, host_buf, host);
        ck_assert_uint_eq(ctx->live_buffers, live);
    }
}
END_TEST

START_TEST(live_objects_are_counted_and_released) {
    oclseg_device_info *devs;
    int count;
    ck_assert_int_eq(oclseg_devices_list(&devs, &count), OCLSEG_OK);
    ck_assert_int_gt(count, 0);
    long base[OCLSEG_CL_KINDS];
    for (int k = 0; k < OCLSEG_CL_KINDS; k++) base[k] = oclseg_cl_live((oclseg_cl_kind)k);
    oclseg_ctx *ctx;
    ck_assert_int_eq(oclseg_ctx_create_for(&ctx, &devs[0], 0), OCLSEG_OK);
    ck_assert_int_eq(oclseg_cl_live(OCLSEG_CL_CONTEXT), base[OCLSEG_CL_CONTEXT] + 1);
    ck_assert_int_eq(oclseg_cl_live(OCLSEG_CL_QUEUE), base[OCLSEG_CL_QUEUE] + 1);
    cl_kernel k1, k2;
    ck_assert_int_eq(oclseg_kernel_get(ctx, "eltwise", NULL, "relu_forward", &k1), OCLSEG_OK);
    ck_assert_int_eq(oclseg_kernel_get(ctx, "eltwise", NULL, "add_forward", &k2), OCLSEG_OK);
    ck_assert_int_eq(oclseg_cl_live(OCLSEG_CL_PROGRAM), base[OCLSEG_CL_PROGRAM] + 1);
    ck_assert_int_eq(oclseg_cl_live(OCLSEG_CL_KERNEL), base[OCLSEG_CL_KERNEL] + 2);
    cl_mem a, b;
    ck_assert_int_eq(oclseg_buffer_create(ctx, 1000, "a", &a), OCLSEG_OK);
    ck_assert_int_eq(oclseg_buffer_create(ctx, 10, "b", &b), OCLSEG_OK);
    cl_mem s;
    ck_assert_int_eq(oclseg_scratch(ctx, 4096, &s), OCLSEG_OK);
    ck_assert_int_eq(oclseg_cl_live(OCLSEG_CL_MEM), base[OCLSEG_CL_MEM] + 3);
    oclseg_buffer_free(ctx, a);
    oclseg_buffer_free(ctx, b);
    oclseg_ctx_free(ctx); /* releases the scratch, kernels, program, queue and context */
    for (int k = 0; k < OCLSEG_CL_KINDS; k++)
        ck_assert_msg(oclseg_cl_live((oclseg_cl_kind)k) == base[k], "kind %d: %ld live, was %ld",
                      k, oclseg_cl_live((oclseg_cl_kind)k), base[k]);
    free(devs);
}
END_TEST

int main(void) {
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, devices_enumerate_and_choose);
    tcase_add_test(tc, launch_rounds_global_size);
    tcase_add_test(tc, build_failure_is_reported);
    tcase_add_test(tc, binary_cache_roundtrip_and_corruption);
    tcase_add_test(tc, allocation_fault_is_reported);
    tcase_add_test(tc, live_objects_are_counted_and_released);
    tcase_add_test(tc, host_buffer_uploads_what_was_written);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
