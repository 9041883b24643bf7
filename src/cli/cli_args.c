/* Option value parsing shared by the subcommands: integers and numbers checked, with a message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "oclseg/data.h"

int cli_parse_int(const char *cmd, const char *name, const char *value, long min, long max,
                  int *out) {
    char *end;
    errno = 0;
    long x = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno || x < min || x > max) {
        fprintf(stderr, "oclseg %s: %s must be an integer in [%ld, %ld] (got '%s')\n", cmd, name,
                min, max, value);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cli_parse_size(const char *cmd, const char *name, const char *value, size_t min,
                   size_t *out) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(value, &end, 10);
    if (*value == '\0' || *value == '-' || *end != '\0' || errno || x < min) {
        fprintf(stderr, "oclseg %s: %s must be an integer >= %zu (got '%s')\n", cmd, name, min,
                value);
        return -1;
    }
    *out = (size_t)x;
    return 0;
}

int cli_parse_image_size(const char *cmd, const char *value, int *out) {
    char *end;
    errno = 0;
    long x = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno || x < 32 || x > OCLSEG_MAX_IMAGE_SIZE ||
        x % 32) {
        fprintf(stderr, "oclseg %s: --size must be a multiple of 32 in [32, %d] (got '%s')\n",
                cmd, OCLSEG_MAX_IMAGE_SIZE, value);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cli_parse_double(const char *cmd, const char *name, const char *value, double min, double max,
                     double *out) {
    char *end;
    double x = strtod(value, &end);
    if (*value == '\0' || *end != '\0' || !(x >= min && x <= max)) {
        fprintf(stderr, "oclseg %s: %s must be a number in [%g, %g] (got '%s')\n", cmd, name, min,
                max, value);
        return -1;
    }
    *out = x;
    return 0;
}
