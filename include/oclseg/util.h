/* Small host utilities shared by every layer: directories, whole-file reads, monotonic time. */
#ifndef OCLSEG_UTIL_H
#define OCLSEG_UTIL_H

#include <stddef.h>

/* Longest path the library builds (directories + file names). */
#define OCLSEG_PATH_MAX 4096

/* Creates a directory and its parents (mkdir -p, mode 0755). OCLSEG_OK, or OCLSEG_ERR_IO with
 * errno set (ENAMETOOLONG, ENOTDIR when a component is a file, or mkdir's error); no message. */
int oclseg_mkdir_p(const char *path);
/* Removes the files in dir, then dir (a directory of files, such as a work folder); OCLSEG_OK
 * (also when dir does not exist), or OCLSEG_ERR_IO with errno set (e.g. ENOTEMPTY when it holds
 * a subdirectory); no message. */
int oclseg_remove_flat_dir(const char *dir);
/* Reads a whole regular file into a malloc'ed buffer with a terminating NUL (not counted in
 * *size). OCLSEG_ERR_IO (message naming the file), OCLSEG_ERR_FORMAT for a file larger than
 * max_size (0: no limit) or OCLSEG_ERR_OUT_OF_MEMORY on failure. */
int oclseg_read_file(const char *path, size_t max_size, char **data, size_t *size);
/* Seconds of CLOCK_MONOTONIC. */
double oclseg_now_s(void);

#endif
