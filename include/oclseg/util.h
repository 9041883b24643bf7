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

#include <stdio.h>

/* Refuses (message naming it, OCLSEG_ERR_IO) an output path that exists and is a symbolic link
 * or not a regular file (a device, directory, fifo); OCLSEG_OK when it is absent or regular. */
int oclseg_output_check(const char *path);
/* Opens an output file for writing (created 0644 or truncated) after oclseg_output_check,
 * without following a symbolic link (O_NOFOLLOW) or blocking on a fifo: the fd, or -1 with a
 * message naming the file. */
int oclseg_output_open(const char *path);
/* oclseg_output_open as a FILE ("wb"), or NULL with a message. */
FILE *oclseg_output_fopen(const char *path);
/* As oclseg_output_fopen ("ab"), but an existing file is kept and written at its end: the logs a
 * run appends to (steps.csv, metrics.csv). NULL with a message naming the file. */
FILE *oclseg_output_fappend(const char *path);
/* Creates a new file named prefix + 6 random characters with O_CREAT|O_EXCL|O_NOFOLLOW (mode
 * 0644 less the umask); its name into tmp. The fd, or -1 with errno set; no message. */
int oclseg_temp_create(char *tmp, size_t size, const char *prefix);
/* Copies src into dst as text safe for a gnuplot data file and a one-line display: control
 * characters become '?', a double quote a single one and a backslash '/'. */
void oclseg_plot_text(char *dst, size_t size, const char *src);
/* Runs `gnuplot -c SCRIPT DATA ARG...` without a shell: script is fixed program text (no user-
 * or file-supplied string may be in it); data (or NULL: ARG1 is "") goes to a temporary file
 * whose path the script reads as ARG1; args[0..argc-1] (at most 8: paths, titles) arrive as the
 * string variables ARG2.. and never become code; args[0] is the output folder (a relative one
 * gets "./": gnuplot would run a file name starting with '<' as a command). stderr goes to /dev/null when quiet. 0 when
 * gnuplot ran and exited 0, -1 otherwise (no message). */
int oclseg_gnuplot(const char *script, const char *data, int argc, const char *const *args,
                   int quiet);

#endif
