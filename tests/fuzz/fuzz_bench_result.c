/* libFuzzer target: the bench-result JSON reader of `oclseg bench --report DIR a.json b.json`
 * (bench_report_load, src/cli/bench_report.c), which reads result files from other machines.
 * The input is written to a temporary file (named "...frozen...", so the PyTorch-peer rule that
 * reads the file name runs too) and loaded twice into one run list: the reader either accepts
 * the file, appending only objects with a numeric step_ms (and a boolean frozen_encoder on
 * every peer), the same entries both times, or rejects it with OCLSEG_ERR_FORMAT. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/bench_report.h"
#include "oclseg/status.h"

#define REQUIRE(cond)                                                                         \
    do {                                                                                      \
        if (!(cond)) __builtin_trap();                                                        \
    } while (0)

/* Checks every run appended from index `from` on. */
static void check_runs(const json_t *runs, size_t from) {
    for (size_t i = from; i < json_array_size(runs); i++) {
        const json_t *r = json_array_get(runs, i);
        REQUIRE(json_is_object(r));
        REQUIRE(json_is_number(json_object_get(r, "step_ms")));
        if (json_object_get(r, "framework"))
            REQUIRE(json_object_get(r, "frozen_encoder") != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *tmp = getenv("TMPDIR");
    char path[4200];
    snprintf(path, sizeof path, "%s/bench_frozen_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    FILE *f = fdopen(fd, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(data, 1, size, f) == size);
    REQUIRE(fclose(f) == 0);
    json_t *runs = json_array();
    REQUIRE(runs != NULL);
    int st = bench_report_load(path, runs);
    REQUIRE(st == OCLSEG_OK || st == OCLSEG_ERR_FORMAT);
    const size_t first = json_array_size(runs);
    check_runs(runs, 0);
    if (st == OCLSEG_OK) { /* a second load appends the same entries again */
        REQUIRE(bench_report_load(path, runs) == OCLSEG_OK);
        REQUIRE(json_array_size(runs) == 2 * first);
        check_runs(runs, first);
        for (size_t i = 0; i < first; i++)
            REQUIRE(json_equal(json_array_get(runs, i), json_array_get(runs, first + i)));
    }
    json_decref(runs);
    unlink(path);
    return 0;
}
