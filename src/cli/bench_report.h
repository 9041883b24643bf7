/* The cross-device comparison report of `oclseg bench --report DIR`: report.md and gnuplot
 * charts from bench results (oclseg bench JSON objects, and tools/bench_pytorch.py peers). */
#ifndef OCLSEG_BENCH_REPORT_H
#define OCLSEG_BENCH_REPORT_H

#include <jansson.h>

/* Appends the results of a JSON file (one object or an array of them) to `runs`. A PyTorch
 * peer without "frozen_encoder" counts as frozen when its file name contains "frozen". */
int bench_report_load(const char *path, json_t *runs);
/* Writes DIR/report.md, DIR/images_per_s.png, DIR/step_split.png, DIR/gflops.png,
 * DIR/memory.png and DIR/kernels_<k>.png (one per oclseg run) for the runs. */
int bench_report_write(json_t *runs, const char *dir);

#endif
