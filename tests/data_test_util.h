/* Helpers for the data-layer tests: temp dirs, file bytes, stderr capture, the suite runner. */
#ifndef OCLSEG_DATA_TEST_UTIL_H
#define OCLSEG_DATA_TEST_UTIL_H

#include <check.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh directory under $TMPDIR (or /tmp); the caller removes it with tu_rmtree. */
static inline char *tu_mkdtemp(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/oclseg-test-XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    ck_assert_msg(dir != NULL, "mkdtemp failed");
    return strdup(dir);
}

/* Removes a directory tree (depth first; no symlinks are followed). */
static inline void tu_rmtree_path(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                char child[4400];
                if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child)
                    continue;
                tu_rmtree_path(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static inline void tu_rmtree(char *dir) {
    if (!dir) return;
    tu_rmtree_path(dir);
    free(dir);
}

/* "dir/name" in a static rotating buffer (8 slots, enough for one expression). */
static inline const char *tu_path(const char *dir, const char *name) {
    static char slots[8][4096];
    static int next;
    char *p = slots[next++ & 7];
    if (snprintf(p, 4096, "%s/%s", dir, name) >= 4096) ck_abort_msg("path too long");
    return p;
}

static inline void tu_mkdir(const char *path) {
    ck_assert_msg(mkdir(path, 0755) == 0, "cannot create %s", path);
}

static inline void tu_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert(fwrite(data, 1, size, f) == size);
    fclose(f);
}

/* Reads a whole file (malloc'd; size in *size). */
static inline unsigned char *tu_read(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    ck_assert(buf != NULL);
    ck_assert(fread(buf, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return buf;
}

/* stderr capture: everything written to stderr between begin and end is returned by end
 * (static buffer) and also echoed to the real stderr, so logs still show it. */
static int tu_saved_stderr = -1;
static FILE *tu_capture_file;

static inline void tu_capture_begin(void) {
    fflush(stderr);
    tu_capture_file = tmpfile();
    ck_assert(tu_capture_file != NULL);
    tu_saved_stderr = dup(2);
    dup2(fileno(tu_capture_file), 2);
}

static inline const char *tu_capture_end(void) {
    static char text[16384];
    fflush(stderr);
    dup2(tu_saved_stderr, 2);
    close(tu_saved_stderr);
    rewind(tu_capture_file);
    size_t n = fread(text, 1, sizeof text - 1, tu_capture_file);
    text[n] = '\0';
    fclose(tu_capture_file);
    fputs(text, stderr);
    return text;
}

/* Asserts that `text` contains `needle`. */
#define tu_assert_contains(text, needle)                                                        \
    ck_assert_msg(strstr((text), (needle)) != NULL, "expected \"%s\" in message:\n%s", (needle), \
                  (text))

/* Runs a suite (fork mode as CK_FORK says) and returns the process exit code. */
static inline int tu_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

#endif
