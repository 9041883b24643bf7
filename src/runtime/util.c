/* Small host utilities shared by every layer: directories (made, removed), whole-file reads,
 * monotonic time. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oclseg/status.h"
#include "oclseg/util.h"

int oclseg_mkdir_p(const char *path) {
    char tmp[OCLSEG_PATH_MAX];
    if (!path || !*path || snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = path && *path ? ENAMETOOLONG : ENOENT;
        return OCLSEG_ERR_IO;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return OCLSEG_ERR_IO;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return OCLSEG_ERR_IO;
    struct stat st;
    if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return OCLSEG_ERR_IO;
    }
    return OCLSEG_OK;
}

int oclseg_read_file(const char *path, size_t max_size, char **data, size_t *size) {
    *data = NULL;
    if (size) *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        OCLSEG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        OCLSEG_ERROR("%s: not a regular file", path);
        fclose(f);
        return OCLSEG_ERR_IO;
    }
    if (max_size && (unsigned long long)st.st_size > max_size) {
        OCLSEG_ERROR("%s: file too large (%lld bytes)", path, (long long)st.st_size);
        fclose(f);
        return OCLSEG_ERR_FORMAT;
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len + 1);
    if (!buf) {
        OCLSEG_ERROR("%s: out of memory reading %zu bytes", path, len);
        fclose(f);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    size_t got = fread(buf, 1, len, f);
    int bad = ferror(f) || got != len;
    fclose(f);
    if (bad) {
        OCLSEG_ERROR("%s: read error (%zu of %zu bytes)", path, got, len);
        free(buf);
        return OCLSEG_ERR_IO;
    }
    buf[len] = '\0';
    *data = buf;
    if (size) *size = len;
    return OCLSEG_OK;
}

double oclseg_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int oclseg_remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? OCLSEG_OK : OCLSEG_ERR_IO;
    char path[OCLSEG_PATH_MAX];
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path); /* a subdirectory stays: rmdir below then fails */
    }
    closedir(d);
    return rmdir(dir) == 0 ? OCLSEG_OK : OCLSEG_ERR_IO;
}
