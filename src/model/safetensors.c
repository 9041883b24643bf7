/* safetensors reader (validating everything before use) and writer (atomic), via jansson. */
#include "oclseg/env.h"
#include "oclseg/safetensors.h"
#include "oclseg/util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {{"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                   {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};

const char *oclseg_st_dtype_name(oclseg_st_dtype dtype) { return dtype_table[dtype].name; }
size_t oclseg_st_dtype_size(oclseg_st_dtype dtype) { return dtype_table[dtype].size; }

static int dtype_parse(const char *s, oclseg_st_dtype *out) {
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (strcmp(s, dtype_table[i].name) == 0) {
            *out = (oclseg_st_dtype)i;
            return 1;
        }
    return 0;
}

void oclseg_st_free(oclseg_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->count; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->meta_count; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->tensors);
    free(f->bytes);
    free(f->path);
    free(f);
}

#define FORMAT_ERROR(f, ...)                                                                  \
    do {                                                                                      \
        char msg_[512];                                                                       \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                             \
        OCLSEG_ERROR("%s: not a valid safetensors file: %s", (f)->path, msg_);                \
        return OCLSEG_ERR_FORMAT;                                                             \
    } while (0)

static int read_whole_file(oclseg_st_file *f) {
    char *bytes;
    TRY(oclseg_read_file(f->path, 0, &bytes, &f->size));
    f->bytes = (unsigned char *)bytes;
    return OCLSEG_OK;
}

typedef struct span {
    size_t begin, end;
    int index;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return (x->begin > y->begin) - (x->begin < y->begin);
    return (x->end > y->end) - (x->end < y->end); /* empty tensors first */
}

static int parse_entry(oclseg_st_file *f, const char *key, json_t *v, size_t data_size,
                       oclseg_st_tensor *t) {
    if (!json_is_object(v)) FORMAT_ERROR(f, "entry '%s' is not an object", key);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt)) FORMAT_ERROR(f, "entry '%s': dtype missing or not a string", key);
    if (!dtype_parse(json_string_value(dt), &t->dtype))
        FORMAT_ERROR(f, "entry '%s': unknown dtype '%s'", key, json_string_value(dt));
    if (!json_is_array(shape)) FORMAT_ERROR(f, "entry '%s': shape missing or not an array", key);
    if (json_array_size(shape) > OCLSEG_ST_MAX_DIMS)
        FORMAT_ERROR(f, "entry '%s': %zu dimensions (at most %d)", key, json_array_size(shape),
                     OCLSEG_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *dim = json_array_get(shape, (size_t)d);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0)
            FORMAT_ERROR(f, "entry '%s': shape[%d] is not a non-negative integer", key, d);
        t->shape[d] = json_integer_value(dim);
        if (t->shape[d] != 0 && numel > SIZE_MAX / 16 / (size_t)t->shape[d])
            FORMAT_ERROR(f, "entry '%s': element count overflows", key);
        numel *= (size_t)t->shape[d];
    }
    t->numel = numel;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)))
        FORMAT_ERROR(f, "entry '%s': data_offsets must be [begin, end] integers", key);
    json_int_t b = json_integer_value(json_array_get(offs, 0)),
               e = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || e < b || (uint64_t)e > data_size)
        FORMAT_ERROR(f, "entry '%s': data_offsets [%lld, %lld] outside the data area (%zu bytes)",
                     key, (long long)b, (long long)e, data_size);
    t->nbytes = (size_t)(e - b);
    if (t->nbytes != numel * oclseg_st_dtype_size(t->dtype))
        FORMAT_ERROR(f, "entry '%s': %zu bytes for %zu elements of %s", key, t->nbytes, numel,
                     oclseg_st_dtype_name(t->dtype));
    t->data = (const unsigned char *)(uintptr_t)b; /* relative for now; fixed up by the caller */
    t->name = strdup(key);
    return t->name ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
}

static int parse_metadata(oclseg_st_file *f, json_t *meta) {
    if (!json_is_object(meta)) FORMAT_ERROR(f, "__metadata__ is not an object");
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n + 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n + 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) return OCLSEG_ERR_OUT_OF_MEMORY;
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v)) FORMAT_ERROR(f, "__metadata__ value of '%s' is not a string", k);
        f->meta_keys[f->meta_count] = strdup(k);
        f->meta_values[f->meta_count] = strdup(json_string_value(v));
        if (!f->meta_keys[f->meta_count] || !f->meta_values[f->meta_count])
            return OCLSEG_ERR_OUT_OF_MEMORY;
        f->meta_count++;
    }
    return OCLSEG_OK;
}

static int parse(oclseg_st_file *f) {
    if (f->size < 8) FORMAT_ERROR(f, "only %zu bytes (the header length alone takes 8)", f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->bytes[i];
    if (hlen == 0 || hlen > f->size - 8 || hlen > OCLSEG_ST_MAX_HEADER)
        FORMAT_ERROR(f, "header length %llu does not fit a %zu-byte file",
                     (unsigned long long)hlen, f->size);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)f->bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) FORMAT_ERROR(f, "header JSON: %s (line %d column %d)", jerr.text, jerr.line, jerr.column);
    int st = OCLSEG_OK;
    size_t data_start = 8 + (size_t)hlen, data_size = f->size - data_start;
    span *spans = NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        FORMAT_ERROR(f, "header is not a JSON object");
    }
    size_t n = json_object_size(root);
    f->tensors = calloc(n + 1, sizeof *f->tensors);
    spans = calloc(n + 1, sizeof *spans);
    if (!f->tensors || !spans) {
        st = OCLSEG_ERR_OUT_OF_MEMORY;
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((st = parse_metadata(f, v)) != OCLSEG_OK) goto out;
            continue;
        }
        oclseg_st_tensor *t = &f->tensors[f->count];
        if ((st = parse_entry(f, key, v, data_size, t)) != OCLSEG_OK) goto out;
        spans[f->count] = (span){(size_t)(uintptr_t)t->data, (size_t)(uintptr_t)t->data + t->nbytes,
                                 f->count};
        t->data = f->bytes + data_start + (size_t)(uintptr_t)t->data;
        f->count++;
    }
    /* the tensors must tile the data area: sorted by begin, each starts where the last ended */
    qsort(spans, (size_t)f->count, sizeof *spans, cmp_span);
    size_t pos = 0;
    for (int i = 0; i < f->count; i++) {
        if (spans[i].begin != pos) {
            char msg[300];
            snprintf(msg, sizeof msg, "tensor '%s' starts at byte %zu of the data area, expected %zu (%s)",
                     f->tensors[spans[i].index].name, spans[i].begin, pos,
                     spans[i].begin < pos ? "overlap" : "gap");
            OCLSEG_ERROR("%s: not a valid safetensors file: %s", f->path, msg);
            st = OCLSEG_ERR_FORMAT;
            goto out;
        }
        pos = spans[i].end;
    }
    if (pos != data_size) {
        OCLSEG_ERROR("%s: not a valid safetensors file: %zu trailing bytes after the last tensor",
                     f->path, data_size - pos);
        st = OCLSEG_ERR_FORMAT;
    }
out:
    free(spans);
    json_decref(root);
    return st;
}

/* A zeroed file record named `name`, or NULL when out of memory. */
static oclseg_st_file *file_new(const char *name) {
    oclseg_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name))) {
        free(f);
        return NULL;
    }
    return f;
}

/* Parses f (bytes already in place); frees it on failure. */
static int finish_parse(oclseg_st_file *f, int st, oclseg_st_file **out) {
    if (st == OCLSEG_OK) st = parse(f);
    if (st != OCLSEG_OK) {
        oclseg_st_free(f);
        return st;
    }
    *out = f;
    return OCLSEG_OK;
}

int oclseg_st_parse(const void *bytes, size_t size, const char *name, oclseg_st_file **out) {
    *out = NULL;
    if (!bytes && size) return OCLSEG_ERR_INVALID_ARG;
    oclseg_st_file *f = file_new(name ? name : "<memory>");
    if (!f) return OCLSEG_ERR_OUT_OF_MEMORY;
    f->size = size;
    f->bytes = malloc(size ? size : 1);
    if (!f->bytes) {
        OCLSEG_ERROR("%s: no memory for %zu bytes", f->path, size);
        oclseg_st_free(f);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    if (size) memcpy(f->bytes, bytes, size);
    return finish_parse(f, OCLSEG_OK, out);
}

int oclseg_st_load(const char *path, oclseg_st_file **out) {
    *out = NULL;
    oclseg_st_file *f = file_new(path);
    if (!f) return OCLSEG_ERR_OUT_OF_MEMORY;
    return finish_parse(f, read_whole_file(f), out);
}

const oclseg_st_tensor *oclseg_st_find(const oclseg_st_file *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *oclseg_st_metadata(const oclseg_st_file *f, const char *key) {
    for (int i = 0; i < f->meta_count; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

static int find_checked(const oclseg_st_file *f, const char *name, size_t count,
                        const oclseg_st_tensor **out) {
    *out = oclseg_st_find(f, name);
    if (!*out) {
        OCLSEG_ERROR("%s: no tensor named '%s'", f->path, name);
        return OCLSEG_ERR_NOT_FOUND;
    }
    if ((*out)->numel != count) {
        OCLSEG_ERROR("%s: tensor '%s' has %zu elements, expected %zu", f->path, name,
                     (*out)->numel, count);
        return OCLSEG_ERR_FORMAT;
    }
    return OCLSEG_OK;
}

/* Little-endian loads (memcpy: the data is not aligned). */
static double load_real(const oclseg_st_tensor *t, size_t i) {
    if (t->dtype == OCLSEG_ST_F32) {
        float v;
        memcpy(&v, t->data + 4 * i, 4);
        return v;
    }
    double v;
    memcpy(&v, t->data + 8 * i, 8);
    return v;
}

static int check_real(const oclseg_st_file *f, const oclseg_st_tensor *t) {
    if (t->dtype != OCLSEG_ST_F32 && t->dtype != OCLSEG_ST_F64) {
        OCLSEG_ERROR("%s: tensor '%s' is %s, expected F32 or F64", f->path, t->name,
                     oclseg_st_dtype_name(t->dtype));
        return OCLSEG_ERR_FORMAT;
    }
    return OCLSEG_OK;
}

int oclseg_st_read_f32(const oclseg_st_file *f, const char *name, float *dst, size_t count) {
    const oclseg_st_tensor *t;
    TRY(find_checked(f, name, count, &t));
    TRY(check_real(f, t));
    if (t->dtype == OCLSEG_ST_F32) memcpy(dst, t->data, count * 4);
    else for (size_t i = 0; i < count; i++) dst[i] = (float)load_real(t, i);
    return OCLSEG_OK;
}

int oclseg_st_read_f64(const oclseg_st_file *f, const char *name, double *dst, size_t count) {
    const oclseg_st_tensor *t;
    TRY(find_checked(f, name, count, &t));
    TRY(check_real(f, t));
    for (size_t i = 0; i < count; i++) dst[i] = load_real(t, i);
    return OCLSEG_OK;
}

int oclseg_st_read_i64(const oclseg_st_file *f, const char *name, int64_t *dst, size_t count) {
    const oclseg_st_tensor *t;
    TRY(find_checked(f, name, count, &t));
    if (t->dtype == OCLSEG_ST_I64) {
        memcpy(dst, t->data, count * 8);
    } else if (t->dtype == OCLSEG_ST_I32) {
        for (size_t i = 0; i < count; i++) {
            int32_t v;
            memcpy(&v, t->data + 4 * i, 4);
            dst[i] = v;
        }
    } else {
        OCLSEG_ERROR("%s: tensor '%s' is %s, expected I64", f->path, name,
                     oclseg_st_dtype_name(t->dtype));
        return OCLSEG_ERR_FORMAT;
    }
    return OCLSEG_OK;
}

/* ---- writer --------------------------------------------------------------------------------- */
typedef struct st_entry {
    char *name;
    oclseg_st_dtype dtype;
    int ndim;
    int64_t shape[OCLSEG_ST_MAX_DIMS];
    unsigned char *data;
    size_t nbytes;
} st_entry;

struct oclseg_st_writer {
    st_entry *entries;
    int count, cap;
    json_t *meta;
};

int oclseg_st_writer_create(oclseg_st_writer **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return OCLSEG_ERR_OUT_OF_MEMORY;
    (*out)->meta = json_object();
    return (*out)->meta ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
}

void oclseg_st_writer_free(oclseg_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->count; i++) {
        free(w->entries[i].name);
        free(w->entries[i].data);
    }
    free(w->entries);
    json_decref(w->meta);
    free(w);
}

int oclseg_st_writer_add(oclseg_st_writer *w, const char *name, oclseg_st_dtype dtype, int ndim,
                         const int64_t *shape, const void *data) {
    if (ndim < 0 || ndim > OCLSEG_ST_MAX_DIMS || strcmp(name, "__metadata__") == 0)
        return OCLSEG_ERR_INVALID_ARG;
    if (w->count == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        st_entry *e = realloc(w->entries, (size_t)cap * sizeof *e);
        if (!e) return OCLSEG_ERR_OUT_OF_MEMORY;
        w->entries = e;
        w->cap = cap;
    }
    st_entry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= (size_t)(e->shape[d] = shape[d]);
    e->ndim = ndim;
    e->dtype = dtype;
    e->nbytes = numel * oclseg_st_dtype_size(dtype);
    e->name = strdup(name);
    e->data = malloc(e->nbytes ? e->nbytes : 1);
    if (!e->name || !e->data) {
        free(e->name);
        free(e->data);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    memcpy(e->data, data, e->nbytes);
    w->count++;
    return OCLSEG_OK;
}

int oclseg_st_writer_meta(oclseg_st_writer *w, const char *key, const char *value) {
    return json_object_set_new(w->meta, key, json_string(value)) == 0 ? OCLSEG_OK
                                                                       : OCLSEG_ERR_OUT_OF_MEMORY;
}

int oclseg_st_writer_write(oclseg_st_writer *w, const char *path) {
    json_t *header = json_object();
    size_t offset = 0;
    for (int i = 0; header && i < w->count; i++) {
        const st_entry *e = &w->entries[i];
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer(e->shape[d]));
        json_object_set_new(header, e->name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", oclseg_st_dtype_name(e->dtype),
                                      "shape", shape, "data_offsets", (json_int_t)offset,
                                      (json_int_t)(offset + e->nbytes)));
        offset += e->nbytes;
    }
    if (header && json_object_size(w->meta)) json_object_set(header, "__metadata__", w->meta);
    char *text = header ? json_dumps(header, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(header);
    if (!text) return OCLSEG_ERR_OUT_OF_MEMORY;
    size_t hlen = strlen(text), padded = (hlen + 7) / 8 * 8; /* pad with spaces to 8 bytes */
    size_t total = 8 + padded + offset;
    unsigned char *buf = malloc(total);
    if (!buf) {
        free(text);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, text, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(text);
    size_t pos = 8 + padded;
    for (int i = 0; i < w->count; i++) {
        memcpy(buf + pos, w->entries[i].data, w->entries[i].nbytes);
        pos += w->entries[i].nbytes;
    }
    int st = oclseg_file_write_atomic(path, buf, total);
    free(buf);
    return st;
}

/* ---- atomic replacement ------------------------------------------------------------------------ */
/* Removes "<name>.tmp.<pid>.<random>" (and the older "<name>.tmp.<pid>") files in dir left by
 * writers that were killed (their process no longer exists), so a SIGKILL during a write does
 * not leave a checkpoint-sized file forever. */
static void remove_stale_temporaries(const char *dir, const char *name) {
    DIR *d = opendir(dir);
    if (!d) return;
    size_t len = strlen(name);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, name, len) != 0 || strncmp(e->d_name + len, ".tmp.", 5) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + len + 5, &end, 10);
        if ((*end != '\0' && *end != '.') || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its writer may still run */
        char stale[4200 + 256 + 2]; /* dir + "/" + d_name (at most 255) */
        snprintf(stale, sizeof stale, "%s/%s", dir, e->d_name);
        unlink(stale);
    }
    closedir(d);
}

/* The atomic write: durable = fsync the file and its folder and clear stale temporaries of dead
 * writers first (checkpoints, tuning files); 0 = temporary + rename only (prediction outputs,
 * thousands per run, that can be made again). */
static int write_atomic(const char *path, const void *data, size_t size, int durable) {
    char tmp[4200], dir[4200], prefix[4200];
    /* a link or a device at the destination is refused: rename would replace a device node
     * with a regular file, and the caller meant the file the link points to */
    if (oclseg_output_check(path) != OCLSEG_OK) return OCLSEG_ERR_IO;
    snprintf(prefix, sizeof prefix, "%s.tmp.%ld.", path, (long)getpid());
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    if (durable) remove_stale_temporaries(dir, slash ? path + (slash - dir) + 1 : path);
    /* a new file (O_EXCL, O_NOFOLLOW) with a name nobody can predict: a link planted at a
     * temporary's name is never written through */
    int fd = oclseg_temp_create(tmp, sizeof tmp, prefix);
    if (fd < 0) {
        OCLSEG_ERROR("cannot write %s: %s", tmp, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    size_t limit = oclseg_env_get()->fault_write ? size / 2 : size;
    const unsigned char *p = data;
    size_t done = 0;
    while (done < limit) {
        ssize_t n = write(fd, p + done, limit - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    int err = done != size ? (done < limit ? errno : ENOSPC) : 0;
    if (durable && !err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        OCLSEG_ERROR("writing %s failed: %s (the previous file, if any, is unchanged)", path,
                     strerror(err ? err : EIO));
        return OCLSEG_ERR_IO;
    }
    if (!durable) return OCLSEG_OK;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return OCLSEG_OK;
}

int oclseg_file_write_atomic(const char *path, const void *data, size_t size) {
    return write_atomic(path, data, size, 1);
}

int oclseg_file_write_replace(const char *path, const void *data, size_t size) {
    return write_atomic(path, data, size, 0);
}
