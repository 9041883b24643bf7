/* Run directory files of a training run: config.json text, atomic text files, CSV truncation
 * for resumes, curves.png (gnuplot). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/fit_dist.h"
#include "app/fit_internal.h"
#include "oclseg/dist.h"
#include "oclseg/safetensors.h"

char *fit_config_json(const oclseg_fit_options *o, const oclseg_ctx *ctx,
                              const oclseg_model *m, const fit_data *d) {
    json_t *j = fit_options_json(o);
    if (!j) return NULL;
    json_object_set_new(j, "train_images", json_integer(d->train->count));
    json_object_set_new(j, "val_images", json_integer(d->val ? d->val->count : 0));
    json_object_set_new(j, "test_images", json_integer(d->test ? d->test->count : 0));
    json_object_set_new(j, "model", json_pack("{s:f, s:i, s:[i,i,i], s:I, s:I}", "width_mult",
                                              (double)m->cfg.width_mult, "last_channel",
                                              m->cfg.last_channel, "decoder", m->cfg.decoder[0],
                                              m->cfg.decoder[1], m->cfg.decoder[2], "parameters",
                                              (json_int_t)m->param_floats, "buffers",
                                              (json_int_t)m->buffer_floats));
    json_object_set_new(j, "device",
                        json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", ctx->info.name, "vendor",
                                  ctx->info.vendor, "platform", ctx->info.platform_name, "driver",
                                  ctx->info.driver_version, "opencl_c", ctx->info.opencl_c_version));
    json_object_set_new(j, "versions", json_pack("{s:s, s:s, s:s}", "oclseg", OCLSEG_VERSION,
                                                 "clblast", OCLSEG_CLBLAST_VERSION, "build",
                                                 OCLSEG_BUILD_INFO));
    json_t *health = json_object();
    const oclseg_dataset *sets[3] = {d->train, d->val, d->test};
    const char *names[3] = {"train", "val", "test"};
    for (int k = 0; k < 3; k++) {
        if (!sets[k]) continue;
        oclseg_data_health h;
        char line[1024];
        oclseg_data_health_compute(sets[k], &h);
        oclseg_data_health_format(&h, names[k], line, sizeof line);
        json_object_set_new(health, names[k], json_string(line));
    }
    json_object_set_new(j, "data_health", health);
    if (oclseg_dist_size() > 1 && fit_dist_describe(j, ctx) != OCLSEG_OK) {
        json_decref(j);
        return NULL;
    }
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    return text;
}

int fit_write_text_file(const char *dir, const char *name, const char *text) {
    char path[8300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return oclseg_file_write_atomic(path, text, strlen(text));
}

/* Keeps the lines of a CSV whose first field is < limit (drops what a resumed run redoes). */
int fit_csv_truncate(const char *path, long long limit) {
    /* a link (live or dangling) is refused before it is read; the rewrite refuses it too */
    if (oclseg_output_check(path) != OCLSEG_OK) return OCLSEG_ERR_IO;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return OCLSEG_OK; /* nothing written yet */
        OCLSEG_ERROR("cannot read %s: %s", path, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    char line[512];
    size_t cap = 1 << 16, len = 0;
    char *keep = malloc(cap);
    int st = keep ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    while (st == OCLSEG_OK && fgets(line, sizeof line, f)) {
        char *end;
        long long v = strtoll(line, &end, 10);
        if (end != line && v >= limit) continue;
        size_t l = strlen(line);
        if (len + l + 1 > cap) {
            char *grown = realloc(keep, cap *= 2);
            if (!grown) {
                st = OCLSEG_ERR_OUT_OF_MEMORY;
                break;
            }
            keep = grown;
        }
        memcpy(keep + len, line, l);
        len += l;
    }
    if (st == OCLSEG_OK && ferror(f)) {
        OCLSEG_ERROR("cannot read %s", path);
        st = OCLSEG_ERR_IO;
    }
    fclose(f);
    if (st == OCLSEG_OK) st = oclseg_file_write_atomic(path, keep, len);
    else if (st == OCLSEG_ERR_OUT_OF_MEMORY) OCLSEG_ERROR("out of memory truncating %s", path);
    free(keep);
    return st;
}

/* 1 when some row of DIR/metrics.csv has validation columns (its 3rd field not empty). */
static int metrics_have_validation(const char *dir) {
    char path[OCLSEG_PATH_MAX + 16], line[1024];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int found = 0;
    if (fgets(line, sizeof line, f)) /* the header */
        while (!found && fgets(line, sizeof line, f)) {
            const char *c = strchr(line, ',');
            c = c ? strchr(c + 1, ',') : NULL;
            found = c && c[1] != ',' && c[1] != '\n' && c[1] != '\0';
        }
    fclose(f);
    return found;
}

/* Draws curves.png (loss, Dice, Jaccard per epoch) from metrics.csv with gnuplot. The run
 * directory reaches gnuplot only as the string ARG2 (never as code: any name plots); ARG3 is
 * "1" when some epoch was validated (else gnuplot would stop at validation columns with no
 * value: only the training loss is drawn). */
void fit_plot_curves(const char *dir) {
    static const char script[] =
        "set terminal pngcairo size 1000,420 font ',10' noenhanced\n"
        "set output ARG2.'/curves.png'\nmetrics = ARG2.'/metrics.csv'\n"
        "set datafile separator ','\n"
        "set key autotitle columnhead\nset grid\nset xlabel 'epoch'\n"
        "if (ARG3 eq '1') {\n"
        "set multiplot layout 1,2\nset title 'loss (train: the training loss; validation: BCE)'\n"
        "plot metrics using 1:2 with linespoints title 'train', "
        "'' using 1:3 with linespoints title 'validation'\n"
        "set title 'validation metrics (mean per image)'\nset yrange [0:1]\n"
        "plot metrics using 1:5 with linespoints title 'Dice', "
        "'' using 1:6 with linespoints title 'Jaccard'\nunset multiplot\n"
        "} else {\n"
        "set title 'training loss (no validation split)'\n"
        "plot metrics using 1:2 with linespoints title 'train'\n"
        "}\n";
    char png[OCLSEG_PATH_MAX + 16];
    snprintf(png, sizeof png, "%s/curves.png", dir);
    if (oclseg_output_check(png) != OCLSEG_OK) return;
    const char *args[2] = {dir, metrics_have_validation(dir) ? "1" : "0"};
    struct stat st;
    if (oclseg_gnuplot(script, NULL, 2, args, 1) != 0 && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        fprintf(stderr, "oclseg: warning: gnuplot failed; curves.png not drawn (install gnuplot-nox)\n");
}
