/* Tests the safetensors reader/writer: round trips, a file written by the Python tools, every
 * malformed header rejected with OCLSEG_ERR_FORMAT, and atomic replacement under write faults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/env.h"
#include "oclseg/safetensors.h"

static char dir[64];

static void setup(void) {
    harness_mkdtemp(dir, sizeof dir, "st");
}

/* Each test runs in a forked child (Check's default): it removes its own directory. */
static void teardown(void) { harness_rmtree(dir); }

/* Writes an 8-byte length + the given header text (padded) + `data_len` zero bytes. */
static void write_raw(const char *path, const char *header, size_t data_len, long long claimed_len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned long long len = claimed_len >= 0 ? (unsigned long long)claimed_len : strlen(header);
    for (int i = 0; i < 8; i++) fputc((int)((len >> (8 * i)) & 0xff), f);
    fputs(header, f);
    for (size_t i = 0; i < data_len; i++) fputc(0, f);
    fclose(f);
}

START_TEST(round_trip) {
    char path[128];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    oclseg_st_writer *w;
    ck_assert_int_eq(oclseg_st_writer_create(&w), OCLSEG_OK);
    float f32[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
    double f64[2] = {0.1, -1e300};
    int64_t i64[3] = {1, -1, 1LL << 40}, scalar = 42;
    int64_t s23[2] = {2, 3}, s2[1] = {2}, s3[1] = {3}, s0[2] = {0, 5};
    ck_assert_int_eq(oclseg_st_writer_add(w, "w.f32", OCLSEG_ST_F32, 2, s23, f32), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_writer_add(w, "w.f64", OCLSEG_ST_F64, 1, s2, f64), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_writer_add(w, "w.i64", OCLSEG_ST_I64, 1, s3, i64), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_writer_add(w, "scalar", OCLSEG_ST_I64, 0, NULL, &scalar), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_writer_add(w, "empty", OCLSEG_ST_F32, 2, s0, f32), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_writer_meta(w, "format", "test"), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_writer_write(w, path), OCLSEG_OK);
    oclseg_st_writer_free(w);
    oclseg_st_file *f;
    ck_assert_int_eq(oclseg_st_load(path, &f), OCLSEG_OK);
    ck_assert_int_eq(f->count, 5);
    ck_assert_str_eq(oclseg_st_metadata(f, "format"), "test");
    float g32[6];
    double g64[6];
    int64_t gi[3];
    ck_assert_int_eq(oclseg_st_read_f32(f, "w.f32", g32, 6), OCLSEG_OK);
    ck_assert_mem_eq(g32, f32, sizeof f32);
    ck_assert_int_eq(oclseg_st_read_f64(f, "w.f64", g64, 2), OCLSEG_OK);
    ck_assert(g64[0] == 0.1 && g64[1] == -1e300);
    ck_assert_int_eq(oclseg_st_read_f64(f, "w.f32", g64, 6), OCLSEG_OK); /* widening */
    ck_assert(g64[2] == 3.5);
    ck_assert_int_eq(oclseg_st_read_i64(f, "w.i64", gi, 3), OCLSEG_OK);
    ck_assert(gi[2] == 1LL << 40);
    ck_assert_int_eq(oclseg_st_read_i64(f, "scalar", gi, 1), OCLSEG_OK);
    ck_assert(gi[0] == 42);
    const oclseg_st_tensor *t = oclseg_st_find(f, "w.f32");
    ck_assert(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    ck_assert_int_eq(oclseg_st_read_f32(f, "w.f32", g32, 5), OCLSEG_ERR_FORMAT);   /* count */
    ck_assert_int_eq(oclseg_st_read_f32(f, "w.i64", g32, 3), OCLSEG_ERR_FORMAT);   /* dtype */
    ck_assert_int_eq(oclseg_st_read_f32(f, "missing", g32, 1), OCLSEG_ERR_NOT_FOUND);
    oclseg_st_free(f);
}
END_TEST

/* oclseg_st_parse: the same reader on bytes in memory, which it copies. */
START_TEST(parse_from_memory) {
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    oclseg_st_writer *w;
    ck_assert_int_eq(oclseg_st_writer_create(&w), OCLSEG_OK);
    float v[3] = {1, 2, 3};
    int64_t s3[1] = {3};
    ck_assert_int_eq(oclseg_st_writer_add(w, "v", OCLSEG_ST_F32, 1, s3, v), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_writer_meta(w, "format", "mem"), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_writer_write(w, path), OCLSEG_OK);
    oclseg_st_writer_free(w);
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    unsigned char bytes[512];
    size_t n = fread(bytes, 1, sizeof bytes, fp);
    fclose(fp);
    ck_assert(n > 8 && n < sizeof bytes);
    oclseg_st_file *f;
    ck_assert_int_eq(oclseg_st_parse(bytes, n, "in-memory", &f), OCLSEG_OK);
    memset(bytes, 0, sizeof bytes); /* the parsed file keeps its own copy */
    ck_assert_str_eq(f->path, "in-memory");
    ck_assert_str_eq(oclseg_st_metadata(f, "format"), "mem");
    float g[3];
    ck_assert_int_eq(oclseg_st_read_f32(f, "v", g, 3), OCLSEG_OK);
    ck_assert_mem_eq(g, v, sizeof v);
    oclseg_st_free(f);
    ck_assert_int_eq(oclseg_st_parse(bytes, 7, "short", &f), OCLSEG_ERR_FORMAT);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(oclseg_st_parse(NULL, 0, NULL, &f), OCLSEG_ERR_FORMAT);
    ck_assert_ptr_null(f);
}
END_TEST

/* The committed golden file was written by tools/safetensors_io.py (Python side). */
START_TEST(reads_python_written_file) {
    oclseg_st_file *f;
    ck_assert_int_eq(oclseg_st_load("tests/data/golden_small.safetensors", &f), OCLSEG_OK);
    ck_assert_str_eq(oclseg_st_metadata(f, "format"), "oclseg-golden");
    const oclseg_st_tensor *t = oclseg_st_find(f, "init.encoder.0.0.weight");
    ck_assert(t && t->dtype == OCLSEG_ST_F32 && t->ndim == 4 && t->shape[0] == 8 && t->shape[1] == 3);
    t = oclseg_st_find(f, "init.encoder.0.1.num_batches_tracked");
    ck_assert(t && t->dtype == OCLSEG_ST_I64 && t->ndim == 0);
    oclseg_st_free(f);
}
END_TEST

START_TEST(malformed_files_rejected) {
    static const struct {
        const char *what, *header;
        size_t data;
        long long claimed;
    } cases[] = {
        {"header length larger than the file", "{}", 0, 1 << 20},
        {"header length zero", "{}", 0, 0},
        {"invalid JSON", "{\"a\": {\"dtype\": \"F32\",", 0, -1},
        {"header not an object", "[1, 2]", 0, -1},
        {"offsets out of range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, -1},
        {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, -1},
        {"gap / trailing bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, -1},
        {"shape/size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1},
        {"unknown dtype", "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16, -1},
        {"element count overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                                   "\"data_offsets\":[0,0]}}", 0, -1},
        {"negative dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, -1},
        {"duplicate key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1},
        {"wrong JSON types", "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1},
        {"shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, -1},
        {"offsets not a pair", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, -1},
        {"metadata value not a string", "{\"__metadata__\":{\"k\":1}}", 0, -1},
    };
    char path[128];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw(path, cases[i].header, cases[i].data, cases[i].claimed);
        oclseg_st_file *f = NULL;
        int st = oclseg_st_load(path, &f);
        ck_assert_msg(st == OCLSEG_ERR_FORMAT, "%s: got %d", cases[i].what, st);
        ck_assert_ptr_null(f);
    }
    /* truncated: fewer than 8 bytes */
    FILE *fp = fopen(path, "wb");
    fputs("abc", fp);
    fclose(fp);
    oclseg_st_file *f = NULL;
    ck_assert_int_eq(oclseg_st_load(path, &f), OCLSEG_ERR_FORMAT);
    /* a valid file cut short in its data area */
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, -1);
    ck_assert_int_eq(oclseg_st_load(path, &f), OCLSEG_OK);
    oclseg_st_free(f);
    ck_assert_int_eq(truncate(path, 8 + 57 + 10), 0);
    ck_assert_int_eq(oclseg_st_load(path, &f), OCLSEG_ERR_FORMAT);
    /* missing file */
    ck_assert_int_eq(oclseg_st_load("/nonexistent/x.safetensors", &f), OCLSEG_ERR_IO);
}
END_TEST

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*len + 1);
    ck_assert_uint_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* A write that fails halfway (injected) or cannot create its temporary leaves the old file
 * byte-identical and no temporary behind. */
START_TEST(atomic_write_keeps_old_file) {
    char path[128];
    snprintf(path, sizeof path, "%s/ckpt.bin", dir);
    const char old_data[] = "the previous good checkpoint";
    ck_assert_int_eq(oclseg_file_write_atomic(path, old_data, sizeof old_data), OCLSEG_OK);
    char big[4096];
    memset(big, 'x', sizeof big);
    setenv("OCLSEG_FAULT_WRITE", "1", 1);
    oclseg_env_reload(); /* the switches are read once */
    ck_assert_int_eq(oclseg_file_write_atomic(path, big, sizeof big), OCLSEG_ERR_IO);
    unsetenv("OCLSEG_FAULT_WRITE");
    oclseg_env_reload(); /* the switches are read once */
    size_t len;
    char *now = slurp(path, &len);
    ck_assert_uint_eq(len, sizeof old_data);
    ck_assert_mem_eq(now, old_data, len);
    free(now);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    ck_assert_int_ne(access(tmp, F_OK), 0);
    /* unwritable target directory */
    ck_assert_int_eq(oclseg_file_write_atomic("/nonexistent-dir/x.bin", big, 10), OCLSEG_ERR_IO);
    /* a successful write replaces the content */
    ck_assert_int_eq(oclseg_file_write_atomic(path, big, sizeof big), OCLSEG_OK);
    now = slurp(path, &len);
    ck_assert_uint_eq(len, sizeof big);
    free(now);
}
END_TEST

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, parse_from_memory);
    tcase_add_test(tc, reads_python_written_file);
    tcase_add_test(tc, malformed_files_rejected);
    tcase_add_test(tc, atomic_write_keeps_old_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
