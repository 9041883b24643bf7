/* Helpers shared by the data layer's source files (not part of the public API). */
#ifndef OCLSEG_DATA_INTERNAL_H
#define OCLSEG_DATA_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>

/* Prints "oclseg: warning: <message>" to stderr (for problems skipped with skip_bad). */
static inline void __attribute__((format(printf, 1, 2))) data_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "oclseg: warning: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Creates a directory and its parents (like mkdir -p); returns 0 or -1 with errno set. */
int data_mkdir_p(const char *path);

#endif
