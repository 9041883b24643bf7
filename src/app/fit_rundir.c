/* The run directory of a training run (claimed by fit_claim.c): resume from a checkpoint,
 * config.json, the CSV logs, checkpoints and the prediction overlays written at the end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/fit_dist.h"
#include "app/fit_internal.h"
#include "oclseg/dist.h"
#include "oclseg/safetensors.h"

void fit_path(const fit_run *r, const char *name, char *out, size_t size) {
    snprintf(out, size, "%s/%s", r->dir, name);
}

int fit_save_checkpoint(fit_run *r, const oclseg_run_position *pos) {
    if (oclseg_dist_rank() != 0) return OCLSEG_OK; /* rank 0 alone writes */
    char path[OCLSEG_PATH_MAX + 32];
    fit_path(r, "checkpoint.safetensors", path, sizeof path);
    return oclseg_checkpoint_save(r->trainer, pos, r->config_json, path);
}

int fit_write_predictions(fit_run *r, int count, float threshold) {
    const oclseg_dataset *ds = r->data.test ? r->data.test : r->data.train;
    char dir[OCLSEG_PATH_MAX + 32];
    fit_path(r, "predictions", dir, sizeof dir);
    if (oclseg_mkdir_p(dir) != OCLSEG_OK) {
        OCLSEG_ERROR("cannot create %s: %s", dir, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    oclseg_infer *inf;
    TRY(oclseg_infer_wrap(r->model, &inf));
    oclseg_predict_options po = r->o->predict; /* the recipe's TTA and post-processing */
    po.threshold = threshold;
    int st = OCLSEG_OK;
    for (int i = 0; i < ds->count && i < count && st == OCLSEG_OK; i++)
        st = oclseg_predict_file(inf, ds->samples[i].image_path, dir, &po);
    oclseg_infer_free(inf);
    return st;
}

/* steps.csv (truncated to the resumed step, or new with its header) and metrics.csv (truncated
 * to the resumed epoch, or its header). Rank 0 only. */
static int open_logs(fit_run *r, const oclseg_run_position *pos) {
    const oclseg_fit_options *o = r->o;
    char path[OCLSEG_PATH_MAX + 16];
    fit_path(r, "steps.csv", path, sizeof path);
    if (o->resume) TRY(fit_csv_truncate(path, r->trainer->step));
    /* never through a link planted at the name (a message names it) */
    r->steps_csv = o->resume ? oclseg_output_fappend(path) : oclseg_output_fopen(path);
    if (!r->steps_csv) return OCLSEG_ERR_IO;
    if (!o->resume && fprintf(r->steps_csv, "step,epoch,loss\n") < 0) {
        OCLSEG_ERROR("cannot write %s: %s", path, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    if (o->resume) {
        TRY(fit_csv_truncate(r->metrics_path, pos->epoch + 1));
        /* a run begun by an oclseg without the data_wait_s column goes on with its columns */
        FILE *f = fopen(r->metrics_path, "r");
        char head[512] = "";
        if (f && fgets(head, sizeof head, f) && !strstr(head, ",data_wait_s"))
            r->metrics_no_wait = 1;
        if (f) fclose(f);
        return OCLSEG_OK;
    }
    return fit_write_text_file(r->dir, "metrics.csv",
                               "epoch,train_loss,val_loss,val_AC,val_DI,val_JA,val_SE,val_SP,"
                               "val_pooled_dice,val_pooled_iou,seconds,data_wait_s\n");
}

/* Rank 0 alone writes; every rank loads the same state: rank 0 reads the checkpoint and sends
 * it to the others. */
int fit_open_run_dir(fit_run *r, oclseg_run_position *pos) {
    const oclseg_fit_options *o = r->o;
    const int writer = oclseg_dist_rank() == 0;
    if (o->resume && writer) {
        char *saved = NULL;
        int st = oclseg_checkpoint_load(r->trainer, o->resume, pos, &saved);
        free(saved);
        if (st != OCLSEG_OK) return st;
        if (!o->quiet)
            printf("resuming from %s at epoch %d, step %lld\n", o->resume, pos->epoch + 1,
                   (long long)r->trainer->step);
    }
    TRY(fit_dist_sync_state(r->trainer, pos));
    if (o->resume) TRY(fit_check_position(r, pos)); /* before anything is written */
    r->config_json = fit_config_json(o, r->ctx, r->model, &r->data);
    if (!r->config_json) return OCLSEG_ERR_OUT_OF_MEMORY;
    fit_path(r, "metrics.csv", r->metrics_path, sizeof r->metrics_path);
    if (!writer) return OCLSEG_OK;
    TRY(fit_write_text_file(r->dir, "config.json", r->config_json));
    return open_logs(r, pos);
}
