/* The safetensors file format: a validating reader and an atomic writer (plus atomic file
 * replacement and whole-file reading for any file). Header JSON is parsed and written with jansson. */
#ifndef OCLSEG_SAFETENSORS_H
#define OCLSEG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "oclseg/status.h"

typedef enum oclseg_st_dtype {
    OCLSEG_ST_F32, OCLSEG_ST_F64, OCLSEG_ST_F16, OCLSEG_ST_BF16, OCLSEG_ST_I64, OCLSEG_ST_I32,
    OCLSEG_ST_I16, OCLSEG_ST_I8, OCLSEG_ST_U8, OCLSEG_ST_BOOL,
} oclseg_st_dtype;

#define OCLSEG_ST_MAX_DIMS 8
#define OCLSEG_ST_MAX_HEADER (100u << 20) /* 100 MiB of JSON is more than any real file has */

typedef struct oclseg_st_tensor {
    char *name;
    oclseg_st_dtype dtype;
    int ndim;
    int64_t shape[OCLSEG_ST_MAX_DIMS];
    size_t numel;
    const unsigned char *data; /* little-endian raw bytes inside the loaded file */
    size_t nbytes;
} oclseg_st_tensor;

typedef struct oclseg_st_file {
    char *path;
    unsigned char *bytes; /* the whole file */
    size_t size;
    oclseg_st_tensor *tensors; /* in file order */
    int count;
    char **meta_keys, **meta_values; /* __metadata__ */
    int meta_count;
} oclseg_st_file;

const char *oclseg_st_dtype_name(oclseg_st_dtype dtype);
size_t oclseg_st_dtype_size(oclseg_st_dtype dtype);

/* Reads and validates a whole file: header length against the file size, JSON syntax, every
 * entry's dtype/shape/data_offsets (types, known dtype, no overflow, size = numel * dtype size,
 * inside the data area, no overlap, the data area covered exactly), duplicate names. Any problem
 * is OCLSEG_ERR_FORMAT with a message naming the file and the key. */
int oclseg_st_load(const char *path, oclseg_st_file **out);
/* The same checks on `size` bytes in memory (copied; `name` is used as the path in messages). */
int oclseg_st_parse(const void *bytes, size_t size, const char *name, oclseg_st_file **out);
void oclseg_st_free(oclseg_st_file *f);
const oclseg_st_tensor *oclseg_st_find(const oclseg_st_file *f, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *oclseg_st_metadata(const oclseg_st_file *f, const char *key);
/* Copies a tensor of exactly `count` elements converting from F32/F64 (or I64 from I64/I32).
 * A missing name is OCLSEG_ERR_NOT_FOUND, a wrong count or dtype OCLSEG_ERR_FORMAT. */
int oclseg_st_read_f32(const oclseg_st_file *f, const char *name, float *dst, size_t count);
int oclseg_st_read_f64(const oclseg_st_file *f, const char *name, double *dst, size_t count);
int oclseg_st_read_i64(const oclseg_st_file *f, const char *name, int64_t *dst, size_t count);

/* Writer: collect tensors (data copied) and metadata, then write atomically. */
typedef struct oclseg_st_writer oclseg_st_writer;
int oclseg_st_writer_create(oclseg_st_writer **out);
int oclseg_st_writer_add(oclseg_st_writer *w, const char *name, oclseg_st_dtype dtype, int ndim,
                         const int64_t *shape, const void *data);
int oclseg_st_writer_meta(oclseg_st_writer *w, const char *key, const char *value);
int oclseg_st_writer_write(oclseg_st_writer *w, const char *path);
void oclseg_st_writer_free(oclseg_st_writer *w);

/* Replaces `path` with `data` atomically: a temporary file in the same directory, written,
 * flushed and fsync'ed, renamed over the target, then the directory fsync'ed. On any failure the
 * temporary is removed and an existing `path` is untouched. Env OCLSEG_FAULT_WRITE=1 makes the
 * write fail halfway (tests). */
int oclseg_file_write_atomic(const char *path, const void *data, size_t size);
/* The same without the fsyncs and without clearing dead writers' temporaries first: a reader
 * still never sees a partial file, but a crash of the machine may lose the new file (for outputs
 * that can be made again, written by the thousand: predict's masks and overlays). */
int oclseg_file_write_replace(const char *path, const void *data, size_t size);

#endif
