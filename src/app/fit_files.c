/* Run directory files of a training run: config.json text, atomic text files, CSV truncation
 * for resumes, curves.png (gnuplot). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
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
    static const char *opt_names[] = {"nadam", "adam", "sgd"};
    json_t *j = json_pack(
        "{s:s?, s:s?, s:s?, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:s, s:b, s:s?, s:s?, s:I, s:b, "
        "s:b, s:b, s:i, s:i, s:f, s:i, s:i, s:s, s:s, s:f, s:f, s:b, s:f, s:o}",
        "data", o->data_dir ? o->data_dir : (o->images_dir ? NULL : OCLSEG_SYNTH_DIR), "images",
        o->images_dir, "masks", o->masks_dir, "epochs", o->epochs, "batch", o->batch, "size",
        o->size, "eval_every", o->eval_every, "max_steps", o->max_steps, "lr", (double)o->lr,
        "dropout", (double)o->dropout, "optimizer", opt_names[o->optimizer], "freeze_encoder",
        o->frozen_encoder, "pretrained", o->pretrained, "init", o->init, "seed",
        (json_int_t)o->seed, "shuffle", o->shuffle, "augment", o->augment, "skip_bad",
        o->skip_bad, "train_images", d->train->count, "test_images", d->test ? d->test->count : 0,
        "val_fraction", o->val_fraction, "val_images", d->val ? d->val->count : 0, "patience",
        o->patience, "loss", (const char *[]){"bce", "dice", "bce+dice"}[o->loss], "schedule",
        (const char *[]){"constant", "cosine", "onecycle"}[o->schedule], "warmup",
        (double)o->warmup, "weight_decay", (double)o->weight_decay, "decoupled_wd",
        o->decoupled_wd, "clip_norm", (double)o->clip_norm, "augmentation",
        json_pack("{s:b, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "flips", o->aug.flips,
                  "dihedral", o->aug.dihedral, "rotate_deg", (double)o->aug.rotate_deg, "scale",
                  (double)o->aug.scale, "translate", (double)o->aug.translate, "crop_min",
                  (double)o->aug.crop_min, "brightness", (double)o->aug.brightness, "contrast",
                  (double)o->aug.contrast, "saturation", (double)o->aug.saturation, "hue",
                  (double)o->aug.hue));
    json_object_set_new(j, "predict",
                        json_pack("{s:b, s:b, s:b}", "tta_flips", o->predict.tta_flips,
                                  "largest_component", o->predict.largest_component,
                                  "fill_holes", o->predict.fill_holes));
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
    json_object_set_new(j, "mask_threshold",
                        o->mask_threshold > 0 ? json_real(o->mask_threshold) : json_null());
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
    if (o->sync_bn) json_object_set_new(j, "sync_bn", json_true());
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

/* Draws curves.png (loss, Dice, Jaccard per epoch) from metrics.csv with gnuplot. */
void fit_plot_curves(const char *dir) {
    /* Without gnuplot the shell exits at once and writing the script would raise SIGPIPE, which
     * kills the run (seen under load): ignored while the pipe is open, EPIPE instead. */
    struct sigaction ignore, old_pipe;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, &old_pipe);
    FILE *g = popen("gnuplot 2>/dev/null", "w");
    if (!g) {
        sigaction(SIGPIPE, &old_pipe, NULL);
        return;
    }
    fprintf(g,
            "set terminal pngcairo size 1000,420 font ',10' noenhanced\n"
            "set output '%s/curves.png'\nset datafile separator ','\n"
            "set key autotitle columnhead\nset grid\nset xlabel 'epoch'\n"
            "set multiplot layout 1,2\nset title 'loss (train: the training loss; validation: BCE)'\n"
            "plot '%s/metrics.csv' using 1:2 with linespoints title 'train', "
            "'' using 1:3 with linespoints title 'validation'\n"
            "set title 'validation metrics (mean per image)'\nset yrange [0:1]\n"
            "plot '%s/metrics.csv' using 1:5 with linespoints title 'Dice', "
            "'' using 1:6 with linespoints title 'Jaccard'\nunset multiplot\n",
            dir, dir, dir);
    struct stat st;
    const int failed = pclose(g) != 0;
    sigaction(SIGPIPE, &old_pipe, NULL);
    if (failed && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        fprintf(stderr, "oclseg: warning: gnuplot failed; curves.png not drawn (install gnuplot-nox)\n");
}
