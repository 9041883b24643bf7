/* `oclseg bench --report DIR`: report.md plus PNG charts drawn by gnuplot (images/s per device
 * and mode, the step split into forward/backward/optimizer, achieved GFLOP/s against each
 * device's own SGEMM ceiling, peak memory, top kernels) from bench JSON of any machines. */
#include "cli/bench_report.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "oclseg/status.h"
#include "oclseg/util.h"

#define MAX_RUNS 64

typedef struct run {
    char label[64]; /* short device name for the charts */
    int frozen, peer, batch, size;
    double step, fwd, bwd, opt, ips, gflops, sgemm, peak_mib;
    const json_t *j;
} run;

static double num(const json_t *j, const char *key) {
    const json_t *v = json_object_get(j, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *str(const json_t *j, const char *key) {
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

int bench_report_load(const char *path, json_t *runs) {
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) {
        OCLSEG_ERROR("%s: not JSON (%s, line %d)", path, err.text, err.line);
        return OCLSEG_ERR_FORMAT;
    }
    json_t *list = json_is_array(j) ? j : json_pack("[O]", j);
    size_t i;
    json_t *r;
    int st = OCLSEG_OK;
    json_array_foreach(list, i, r) {
        if (!json_is_object(r) || !json_is_number(json_object_get(r, "step_ms"))) {
            OCLSEG_ERROR("%s: entry %zu has no numeric 'step_ms' (not a bench result)", path, i);
            st = OCLSEG_ERR_FORMAT;
            break;
        }
        if (json_object_get(r, "framework") && !json_object_get(r, "frozen_encoder")) {
            const char *base = strrchr(path, '/');
            json_object_set_new(r, "frozen_encoder",
                                json_boolean(strstr(base ? base : path, "frozen") != NULL));
        }
        json_array_append(runs, r);
    }
    if (list != j) json_decref(list);
    json_decref(j);
    return st;
}

/* "pthread-skylake-avx512-AMD EPYC" on PoCL -> "PoCL CPU (AMD EPYC)"; rusticl's llvmpipe ->
 * "rusticl llvmpipe"; PyTorch peers -> "PyTorch 2.11 cuda (peer)"; a "label" key wins. */
static void make_label(const json_t *j, char *out, size_t size) {
    const char *name = str(j, "device"), *platform = str(j, "platform");
    if (*str(j, "label")) {
        snprintf(out, size, "%s", str(j, "label"));
    } else if (json_object_get(j, "framework")) {
        char ver[16] = "";
        sscanf(str(j, "framework"), "pytorch %15[0-9.]", ver);
        char *dot = strchr(ver, '.');
        if (dot && (dot = strchr(dot + 1, '.'))) *dot = '\0';
        snprintf(out, size, "PyTorch %s %s (peer)", ver, name);
    } else if (strstr(platform, "Portable Computing Language")) {
        const char *last = strrchr(name, '-');
        snprintf(out, size, "PoCL CPU (%s)", last ? last + 1 : name);
    } else if (strstr(platform, "rusticl") && strstr(name, "llvmpipe")) {
        snprintf(out, size, "rusticl llvmpipe");
    } else {
        snprintf(out, size, "%s", strncmp(name, "NVIDIA ", 7) == 0 ? name + 7 : name);
    }
    if (strlen(out) > 26) snprintf(out + 23, size - 23, "...");
    char safe[64];
    oclseg_plot_text(safe, sizeof safe, out); /* a data-file field and one table cell */
    snprintf(out, size, "%s", safe);
}

static int collect(json_t *runs, run *r, int *count) {
    size_t i;
    json_t *j;
    *count = 0;
    json_array_foreach(runs, i, j) {
        if (*count == MAX_RUNS) {
            OCLSEG_ERROR("bench report: more than %d results", MAX_RUNS);
            return OCLSEG_ERR_INVALID_ARG;
        }
        run *x = &r[(*count)++];
        memset(x, 0, sizeof *x);
        x->j = j;
        make_label(j, x->label, sizeof x->label);
        x->frozen = json_is_true(json_object_get(j, "frozen_encoder"));
        x->peer = json_object_get(j, "framework") != NULL;
        x->batch = (int)num(j, "batch");
        x->size = (int)num(j, "size");
        x->step = num(j, "step_ms");
        x->fwd = num(j, "forward_ms");
        x->bwd = num(j, "backward_ms");
        x->opt = num(j, "optimizer_ms");
        x->ips = num(j, "images_per_s");
        x->gflops = num(j, "gflops");
        x->sgemm = num(j, "sgemm_1024_gflops");
        x->peak_mib = num(j, "peak_device_bytes") / 1048576.0;
    }
    return OCLSEG_OK;
}

/* Distinct labels in first-seen order, oclseg devices before peers. */
static int labels_of(const run *r, int n, const char **labels) {
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (r[i].peer != pass) continue;
            int seen = 0;
            for (int j = 0; j < k && !seen; j++) seen = strcmp(labels[j], r[i].label) == 0;
            if (!seen) labels[k++] = r[i].label;
        }
    return k;
}

/* The value of the last run with this label and mode, or NaN. */
static double value_of(const run *r, int n, const char *label, int frozen, size_t field) {
    double v = NAN;
    for (int i = 0; i < n; i++)
        if (r[i].frozen == frozen && strcmp(r[i].label, label) == 0)
            v = *(const double *)((const char *)&r[i] + field);
    return v;
}

/* One chart: gnuplot code (fixed text and numbers only) and its data (labels, sanitized by
 * oclseg_plot_text), run as `gnuplot -c` with ARG1 the data file, ARG2 the report directory,
 * ARG3 the PNG's name and ARG4.. the caller's titles, so no name from a result file is code. */
typedef struct chart {
    FILE *code, *data;
    char *code_text, *data_text;
    size_t code_len, data_len;
} chart;

static int chart_open(chart *c, int width, int height) {
    memset(c, 0, sizeof *c);
    c->code = open_memstream(&c->code_text, &c->code_len);
    c->data = open_memstream(&c->data_text, &c->data_len);
    if (!c->code || !c->data) {
        if (c->code) fclose(c->code), free(c->code_text);
        if (c->data) fclose(c->data), free(c->data_text);
        OCLSEG_ERROR("out of memory drawing a chart");
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    fprintf(c->code, "set terminal pngcairo size %d,%d font 'sans,11' noenhanced\n"
                     "set output ARG2.'/'.ARG3\nset grid ytics\nset border 3\n"
                     "set tics nomirror\nset datafile missing 'NaN'\nset key top left\n",
            width, height);
    return OCLSEG_OK;
}

/* Runs the chart's gnuplot (titles: up to two strings, ARG4 and ARG5) and frees it. */
static int chart_draw(chart *c, const char *dir, const char *file, const char *title,
                      const char *ylabel) {
    fclose(c->code);
    fclose(c->data);
    char png[4200];
    snprintf(png, sizeof png, "%s/%s", dir, file);
    const char *args[4] = {dir, file, title ? title : "", ylabel ? ylabel : ""};
    int st = oclseg_output_check(png);
    if (st == OCLSEG_OK && oclseg_gnuplot(c->code_text, c->data_text, 4, args, 0) != 0) {
        OCLSEG_ERROR("gnuplot failed drawing %s (install gnuplot-nox)", file);
        st = OCLSEG_ERR_IO;
    }
    free(c->code_text);
    free(c->data_text);
    return st;
}

/* Fine-tune and frozen bars side by side per device, values printed on the bars; a log axis
 * when the largest value is over 50x the smallest (a CPU next to a GPU). */
static int clustered_chart(const run *r, int n, const char *dir, const char *file,
                           const char *title, const char *ylabel, size_t field, int peers) {
    const char *labels[MAX_RUNS];
    int k = labels_of(r, n, labels);
    double lo = INFINITY, hi = 0;
    chart c;
    TRY(chart_open(&c, 260 + 150 * k, 520));
    int rows = 0;
    for (int i = 0; i < k; i++) {
        double v[2];
        int peer = 0;
        for (int m = 0; m < 2; m++) {
            v[m] = value_of(r, n, labels[i], m, field);
            if (v[m] > 0) lo = fmin(lo, v[m]), hi = fmax(hi, v[m]);
        }
        for (int j = 0; j < n; j++) peer |= r[j].peer && strcmp(r[j].label, labels[i]) == 0;
        if (peer && !peers) continue;
        fprintf(c.data, "\"%s\" %.6g %.6g\n", labels[i], v[0], v[1]);
        rows++;
    }
    int logy = hi > 50 * lo;
    fprintf(c.code, "set title ARG4\nset ylabel ARG5\n%s\nset yrange [%g:%g]\n"
               "set style data histogram\nset style histogram clustered gap 1\n"
               "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset xtics scale 0\n"
               "set xrange [-0.6:%d.6]\n"
               "plot ARG1 using 2:xtic(1) title 'fine-tune (whole network)' lc rgb '#3b75af', "
               "'' using 3 title 'frozen encoder (decoder only)' lc rgb '#ef8636', "
               "'' using ($0-1.0/6):2:(sprintf('%%.4g',$2)) with labels offset 0,0.7 notitle, "
               "'' using ($0+1.0/6):3:(sprintf('%%.4g',$3)) with labels offset 0,0.7 notitle\n",
            logy ? "set logscale y" : "unset logscale y", logy ? lo / 2 : 0,
            logy ? hi * 4 : hi * 1.25, rows - 1);
    return chart_draw(&c, dir, file, title, ylabel);
}

/* Per oclseg run: forward / backward / optimizer as shares of their sum (devices differ by
 * 100x in absolute time), with the absolute step time in the tick label. */
static int step_split_chart(const run *r, int n, const char *dir) {
    int bars = 0;
    for (int i = 0; i < n; i++) bars += !r[i].peer && r[i].fwd > 0;
    chart c;
    TRY(chart_open(&c, 260 + 175 * bars, 600));
    for (int i = 0; i < n; i++) {
        if (r[i].peer || !(r[i].fwd > 0)) continue;
        double sum = r[i].fwd + r[i].bwd + r[i].opt;
        fprintf(c.data, "\"%s\\n%s\\n%.1f ms/step\" %.4f %.4f %.4f\n", r[i].label,
                r[i].frozen ? "frozen" : "fine-tune", r[i].step, 100 * r[i].fwd / sum,
                100 * r[i].bwd / sum, 100 * r[i].opt / sum);
    }
    fprintf(c.code,
               "set title 'Where a training step goes (forward, backward, optimizer; each timed "
               "alone)'\nset ylabel '%% of forward + backward + optimizer time'\n"
               "set yrange [0:118]\nset ytics 0,20,100\nset key top center horizontal\n"
               "set bmargin 5\nset xrange [-0.6:%d.6]\n"
               "set style data histogram\nset style histogram rowstacked\n"
               "set style fill solid 0.85 border -1\nset boxwidth 0.6\nset xtics scale 0\n"
               "plot ARG1 using 2:xtic(1) title 'forward' lc rgb '#3b75af', "
               "'' using 3 title 'backward' lc rgb '#ef8636', "
               "'' using 4 title 'optimizer (NAdam)' lc rgb '#519e3e', "
               "'' using 0:($2/2):(sprintf('%%.0f%%%%',$2)) with labels notitle, "
               "'' using 0:($2+$3/2):(sprintf('%%.0f%%%%',$3)) with labels notitle\n",
            bars - 1);
    return chart_draw(&c, dir, "step_split.png", NULL, NULL);
}

/* Per oclseg run: achieved training GFLOP/s as a share of the device's own 1024^3 SGEMM. */
static int gflops_chart(const run *r, int n, const char *dir) {
    int bars = 0;
    double hi = 0;
    for (int i = 0; i < n; i++)
        if (!r[i].peer && r[i].sgemm > 0) bars++, hi = fmax(hi, 100 * r[i].gflops / r[i].sgemm);
    chart c;
    TRY(chart_open(&c, 260 + 175 * bars, 560));
    for (int i = 0; i < n; i++)
        if (!r[i].peer && r[i].sgemm > 0)
            fprintf(c.data, "\"%s\\n%s\" %.4f \"%.0f of %.0f\\nGFLOP/s\"\n", r[i].label,
                    r[i].frozen ? "frozen" : "fine-tune", 100 * r[i].gflops / r[i].sgemm,
                    r[i].gflops, r[i].sgemm);
    fprintf(c.code,
               "set title \"Training GFLOP/s against each device's own SGEMM ceiling\"\n"
               "set ylabel '%% of the SGEMM ceiling (CLBlast 1024^3)'\nset bmargin 4\n"
               "set yrange [0:%g]\nset style fill solid 0.85 border -1\nset boxwidth 0.6\n"
               "set xtics scale 0\nset xrange [-0.6:%d.6]\n"
               "plot ARG1 using 0:2:xtic(1) with boxes lc rgb '#3b75af' notitle, "
               "'' using 0:2:3 with labels offset 0,1.6 notitle\n",
            hi * 1.35 + 1, bars - 1);
    return chart_draw(&c, dir, "gflops.png", NULL, NULL);
}

/* The top kernels of one profiled step as horizontal bars (ms), one chart per oclseg run. */
static int kernel_chart(const run *x, int index, const char *dir, char *file, size_t fsize) {
    const json_t *kernels = json_object_get(x->j, "kernels");
    size_t count = json_array_size(kernels);
    if (count > 10) count = 10;
    snprintf(file, fsize, "kernels_%d.png", index);
    chart c;
    TRY(chart_open(&c, 900, 120 + 34 * (int)count));
    double hi = 0;
    for (size_t i = count; i-- > 0;) { /* largest at the top */
        const json_t *kj = json_array_get(kernels, i);
        double ms = num(kj, "ms");
        hi = fmax(hi, ms);
        char name[128];
        oclseg_plot_text(name, sizeof name, str(kj, "name"));
        fprintf(c.data, "\"%s\" %.6g\n", name, ms);
    }
    char title[sizeof x->label + 64];
    snprintf(title, sizeof title, "%.63s, %s: top kernels of one profiled step", x->label,
             x->frozen ? "frozen encoder" : "fine-tune");
    fprintf(c.code, "set title ARG4\n"
               "set xlabel 'device time per step (ms)'\nset grid xtics noytics\n"
               "set xrange [0:%g]\nset yrange [-0.6:%zu.6]\nset style fill solid 0.85 border -1\n"
               "plot ARG1 using ($2/2):0:($2/2):(0.35):ytic(1) with boxxyerror lc rgb '#3b75af' "
               "notitle, '' using 2:0:(sprintf(' %%.2f',$2)) with labels left notitle\n",
            hi * 1.2, count - 1);
    return chart_draw(&c, dir, file, title, NULL);
}

static void markdown_table(FILE *f, const run *r, int n) {
    fprintf(f, "| device | platform / driver | mode | batch, size | step ms | forward / backward "
               "/ optimizer ms | images/s | GFLOP/s | SGEMM ceiling GFLOP/s | peak MiB |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const run *x = &r[i];
        char parts[64] = "-", gf[32] = "-", ceil[32] = "-", mem[32] = "-";
        if (x->fwd > 0) snprintf(parts, sizeof parts, "%.1f / %.1f / %.1f", x->fwd, x->bwd, x->opt);
        if (x->gflops > 0) snprintf(gf, sizeof gf, "%.0f", x->gflops);
        if (x->sgemm > 0) snprintf(ceil, sizeof ceil, "%.0f", x->sgemm);
        if (x->peak_mib > 0) snprintf(mem, sizeof mem, "%.0f", x->peak_mib);
        char platform[128], driver[64]; /* one table row: no control characters */
        oclseg_plot_text(platform, sizeof platform,
                         x->peer ? str(x->j, "framework") : str(x->j, "platform"));
        oclseg_plot_text(driver, sizeof driver, x->peer ? "" : str(x->j, "driver"));
        fprintf(f, "| %s | %s %s | %s | %d, %d | %.1f | %s | %.1f | %s | %s | %s |\n", x->label,
                platform, driver, x->frozen ? "frozen" : "fine-tune", x->batch,
                x->size, x->step, parts, x->ips, gf, ceil, mem);
    }
}

static int write_markdown(const run *r, int n, const char *dir, char files[][32], int nk) {
    char path[4200];
    snprintf(path, sizeof path, "%s/report.md", dir);
    FILE *f = oclseg_output_fopen(path); /* not through a link, nor into a device */
    if (!f) return OCLSEG_ERR_IO;
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(f, "# oclseg device comparison\n\nGenerated %s by `oclseg bench --report` from %d "
               "result%s. A training step is forward + BCE loss + backward + NAdam on random data "
               "(median of steps run back to back); images/s = batch / step time. GFLOP/s counts "
               "convolution FLOPs analytically; each device's ceiling is a 1024^3 SGEMM through "
               "CLBlast on that device. Peers (PyTorch, `tools/bench_pytorch.py`) run the same "
               "network and step.\n\n", date, n, n == 1 ? "" : "s");
    markdown_table(f, r, n);
    fprintf(f, "\n## Throughput\n\n![images per second](images_per_s.png)\n\n"
               "## Step split\n\n![forward, backward, optimizer](step_split.png)\n\n"
               "Forward, backward and optimizer are each timed alone (waited for), so their sum "
               "exceeds the pipelined step time a little.\n\n"
               "## Achieved GFLOP/s against the SGEMM ceiling\n\n![GFLOP/s](gflops.png)\n\n"
               "## Peak device memory\n\n![peak memory](memory.png)\n\n## Top kernels\n\n");
    int k = 0;
    for (int i = 0; i < n && k < nk; i++) {
        if (r[i].peer || !json_array_size(json_object_get(r[i].j, "kernels"))) continue;
        fprintf(f, "### %s, %s\n\n![kernels](%s)\n\n", r[i].label,
                r[i].frozen ? "frozen encoder" : "fine-tune", files[k++]);
    }
    return fclose(f) == 0 ? OCLSEG_OK : OCLSEG_ERR_IO;
}

int bench_report_write(json_t *runs, const char *dir) {
    static run r[MAX_RUNS];
    int n;
    TRY(collect(runs, r, &n));
    if (n == 0) {
        OCLSEG_ERROR("bench report: no results to report");
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        OCLSEG_ERROR("cannot create %s: %s", dir, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    char unit[96];
    snprintf(unit, sizeof unit, "images/s (training, batch %d, %dx%d)", r[0].batch, r[0].size,
             r[0].size);
    TRY(clustered_chart(r, n, dir, "images_per_s.png", "Training throughput per device", unit,
                        offsetof(run, ips), 1));
    TRY(step_split_chart(r, n, dir));
    TRY(gflops_chart(r, n, dir));
    TRY(clustered_chart(r, n, dir, "memory.png", "Peak device memory of a training step",
                        "MiB allocated on the device", offsetof(run, peak_mib), 0));
    static char files[MAX_RUNS][32];
    int nk = 0;
    for (int i = 0; i < n; i++)
        if (!r[i].peer && json_array_size(json_object_get(r[i].j, "kernels")))
            TRY(kernel_chart(&r[i], i, dir, files[nk++], sizeof files[0]));
    return write_markdown(r, n, dir, files, nk);
}
