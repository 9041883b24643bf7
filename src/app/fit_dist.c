/* Data-parallel pieces of the training run: batch slices, the start-up consistency check, state
 * broadcast from rank 0, sharded evaluation, the debug parameter hash check. */
#include "app/fit_dist.h"
#include "oclseg/evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/dist.h"

void fit_dist_split(int n, int size, int *counts, int *starts) {
    int start = 0;
    for (int r = 0; r < size; r++) {
        counts[r] = n / size + (r < n % size);
        starts[r] = start;
        start += counts[r];
    }
}

void fit_dist_split_weighted(int n, int size, const double *speed, int *counts, int *starts) {
    double total = 0, *frac = malloc((size_t)size * sizeof *frac);
    for (int r = 0; r < size; r++) total += speed[r];
    if (!frac || !(total > 0)) {
        free(frac);
        fit_dist_split(n, size, counts, starts);
        return;
    }
    int base = n >= size ? 1 : 0, left = n - base * size;
    int given = 0;
    for (int r = 0; r < size; r++) {
        double q = left * (speed[r] / total);
        counts[r] = base + (int)q;
        frac[r] = q - (int)q;
        given += counts[r];
    }
    for (; given < n; given++) { /* largest remainder first, ties to the lower rank */
        int best = 0;
        for (int r = 1; r < size; r++)
            if (frac[r] > frac[best]) best = r;
        counts[best]++;
        frac[best] = -1.0;
    }
    for (int r = 0, start = 0; r < size; r++) {
        starts[r] = start;
        start += counts[r];
    }
    free(frac);
}

int fit_dist_measure_speed(const oclseg_ctx *ctx, int64_t step, int images, double seconds,
                           double *sum_images, double *sum_seconds, double *speed, int *ready) {
    const int size = oclseg_dist_size();
    *ready = 0;
    if (step >= 1 && step <= 3) {
        *sum_images += images;
        *sum_seconds += seconds;
    }
    if (step != 3) return OCLSEG_OK;
    double mine = *sum_seconds > 0 ? *sum_images / *sum_seconds : 1.0;
    TRY(oclseg_dist_allgather(&mine, sizeof mine, speed));
    const char *fake = ctx->env.has_balance_speeds ? ctx->env.balance_speeds : NULL;
    for (int r = 0; fake && r < size; r++) {
        speed[r] = atof(fake);
        fake = strchr(fake, ',');
        if (fake) fake++;
        if (!(speed[r] > 0)) speed[r] = 1.0;
    }
    *ready = 1;
    return OCLSEG_OK;
}

void fit_dist_my_slice(int n, int *lo, int *hi) {
    int size = oclseg_dist_size(), r = oclseg_dist_rank();
    *lo = r * (n / size) + (r < n % size ? r : n % size);
    *hi = *lo + n / size + (r < n % size);
}

/* The running binary's bytes: ranks must run the same build. */
static uint64_t hash_build(void) {
    uint64_t h = oclseg_fnv1a64(OCLSEG_FNV1A64_INIT, OCLSEG_BUILD_INFO, sizeof OCLSEG_BUILD_INFO);
    FILE *f = fopen("/proc/self/exe", "rb");
    if (!f) return h;
    unsigned char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) h = oclseg_fnv1a64(h, buf, got);
    fclose(f);
    return h;
}

/* Every option that changes what is trained (not the device, output directory or verbosity). */
static uint64_t hash_options(const oclseg_fit_options *o) {
    char text[1024];
    snprintf(text, sizeof text,
             "epochs=%d batch=%d size=%d eval_every=%d max_steps=%d lr=%a dropout=%a opt=%d "
             "frozen=%d seed=%llu shuffle=%d augment=%d skip_bad=%d sync_bn=%d init=%s "
             "pretrained=%s resume=%d mask_threshold=%a balance=%d",
             o->epochs, o->batch, o->size, o->eval_every, o->max_steps, (double)o->lr,
             (double)o->dropout, (int)o->optimizer, o->frozen_encoder,
             (unsigned long long)o->seed, o->shuffle, o->augment, o->skip_bad, o->sync_bn,
             o->init ? o->init : "", o->pretrained ? o->pretrained : "", o->resume != NULL,
             o->mask_threshold, o->balance);
    return oclseg_fnv1a64(OCLSEG_FNV1A64_INIT, text, strlen(text));
}

/* Sample ids and decoded pixels (what is trained on, wherever the files live). */
static uint64_t hash_data(uint64_t h, const oclseg_dataset *ds) {
    if (!ds) return oclseg_fnv1a64(h, "none", 4);
    size_t s2 = (size_t)ds->size * ds->size;
    h = oclseg_fnv1a64(h, &ds->count, sizeof ds->count);
    for (int i = 0; i < ds->count; i++)
        h = oclseg_fnv1a64(h, ds->samples[i].id, strlen(ds->samples[i].id) + 1);
    h = oclseg_fnv1a64(h, ds->images, (size_t)ds->count * s2 * 3);
    return oclseg_fnv1a64(h, ds->masks, (size_t)ds->count * s2);
}

int fit_dist_check_same(const oclseg_fit_options *o, const oclseg_dataset *train,
                        const oclseg_dataset *test) {
    const int size = oclseg_dist_size();
    if (size == 1) return OCLSEG_OK;
    uint64_t mine[3] = {hash_build(), hash_options(o),
                        hash_data(hash_data(OCLSEG_FNV1A64_INIT, train), test)};
    uint64_t *all = malloc((size_t)size * sizeof mine);
    if (!all) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = oclseg_dist_allgather(mine, sizeof mine, all);
    static const char *what[3] = {"binary (build)", "training options", "data set"};
    int bad = 0;
    for (int r = 1; st == OCLSEG_OK && r < size; r++)
        for (int k = 0; k < 3; k++)
            if (all[3 * r + k] != all[k]) {
                if (oclseg_dist_rank() == 0)
                    fprintf(stderr, "oclseg: error: rank %d differs from rank 0 in "
                                    "its %s (hash %016llx vs %016llx)\n", r, what[k],
                            (unsigned long long)all[3 * r + k], (unsigned long long)all[k]);
                bad = 1;
            }
    free(all);
    /* Rank 0 has printed what differs before any rank returns: a rank that exited first would
     * make the launcher kill rank 0 before its lines reach stderr. */
    if (st == OCLSEG_OK && bad) st = oclseg_dist_barrier();
    if (st == OCLSEG_OK && bad) {
        OCLSEG_ERROR("the ranks of this job disagree (see above): every rank must run the same "
                     "oclseg build with the same options on the same data; refusing to train");
        st = OCLSEG_ERR_INVALID_ARG;
    }
    return st;
}

int fit_dist_check_sync_bn(const oclseg_fit_options *o, int train_count) {
    const int size = oclseg_dist_size(), last = train_count % o->batch;
    if (o->batch >= size && (last == 0 || last >= size)) return OCLSEG_OK;
    OCLSEG_ERROR("--sync-bn with %d ranks needs at least %d images in every global batch: --batch "
                 "%d over %d training images leaves %d in the last one (choose --batch so that "
                 "it is >= %d and the remainder is 0 or >= %d)", size, size, o->batch,
                 train_count, last ? last : o->batch, size, size);
    return OCLSEG_ERR_INVALID_ARG;
}

/* Broadcasts `floats` floats of a device buffer from rank 0 (host staging in tmp). */
static int bcast_buffer(oclseg_ctx *ctx, cl_mem buf, size_t floats, float *tmp) {
    if (oclseg_dist_rank() == 0) TRY(oclseg_read(ctx, buf, 0, floats * sizeof(float), tmp));
    TRY(oclseg_dist_bcast(tmp, floats * sizeof(float), 0));
    if (oclseg_dist_rank() != 0) TRY(oclseg_write(ctx, buf, 0, floats * sizeof(float), tmp));
    return OCLSEG_OK;
}

int fit_dist_sync_buffers(oclseg_model *m) {
    if (oclseg_dist_size() == 1 || m->buffer_floats == 0) return OCLSEG_OK;
    float *tmp = malloc(m->buffer_floats * sizeof *tmp);
    if (!tmp) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = bcast_buffer(m->ctx, m->buffers_buf, m->buffer_floats, tmp);
    if (st == OCLSEG_OK)
        st = oclseg_dist_bcast(m->bn_batches, (size_t)m->bn_count * sizeof *m->bn_batches, 0);
    free(tmp);
    return st;
}

int fit_dist_sync_state(oclseg_trainer *t, oclseg_run_position *pos) {
    if (oclseg_dist_size() == 1) return OCLSEG_OK;
    oclseg_model *m = t->model;
    float *tmp = malloc(m->param_floats * sizeof *tmp);
    if (!tmp) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = OCLSEG_OK;
    st = bcast_buffer(t->ctx, m->params_buf, m->param_floats, tmp);
    for (int i = 0; i < m->state_count && st == OCLSEG_OK; i++)
        st = bcast_buffer(t->ctx, m->state_bufs[i], m->param_floats, tmp);
    free(tmp);
    if (st == OCLSEG_OK) st = fit_dist_sync_buffers(m);
    struct { int64_t step, opt_step; double mu; oclseg_run_position pos; } s = {
        t->step, t->opt.step, t->opt.mu_product, *pos};
    if (st == OCLSEG_OK) st = oclseg_dist_bcast(&s, sizeof s, 0);
    if (st == OCLSEG_OK) {
        t->step = t->drained = s.step;
        t->opt.step = s.opt_step;
        t->opt.mu_product = s.mu;
        *pos = s.pos;
    }
    return st;
}

int fit_dist_devices_differ(const oclseg_ctx *ctx, int *differ) {
    *differ = 0;
    const int size = oclseg_dist_size();
    if (size == 1) return OCLSEG_OK;
    const oclseg_device_info *d = &ctx->info;
    const char *parts[] = {d->name, d->vendor, d->driver_version, d->platform_name,
                           d->platform_version, d->device_version, d->opencl_c_version};
    uint64_t h = OCLSEG_FNV1A64_INIT, *all = malloc((size_t)size * sizeof *all);
    if (!all) return OCLSEG_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        h = oclseg_fnv1a64(h, parts[i], strlen(parts[i]) + 1);
    int st = oclseg_dist_allgather(&h, sizeof h, all);
    for (int r = 1; st == OCLSEG_OK && r < size; r++) *differ |= all[r] != all[0];
    free(all);
    return st;
}

int fit_dist_describe(json_t *config, const oclseg_ctx *ctx) {
    const int size = oclseg_dist_size();
    enum { LINE = 768 };
    char mine[LINE];
    snprintf(mine, sizeof mine, "%s", oclseg_dist_host());
    snprintf(mine + 256, 256, "%s", ctx->info.name);
    snprintf(mine + 512, 256, "%s", ctx->info.platform_name);
    char *all = malloc((size_t)size * LINE);
    if (!all) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = oclseg_dist_allgather(mine, LINE, all);
    json_t *list = json_array();
    for (int r = 0; st == OCLSEG_OK && r < size; r++) {
        const char *e = all + (size_t)r * LINE;
        json_array_append_new(list, json_pack("{s:i, s:s, s:s, s:s}", "rank", r, "host", e,
                                              "device", e + 256, "platform", e + 512));
    }
    json_object_set_new(config, "ranks", json_integer(size));
    json_object_set_new(config, "rank_devices", list);
    free(all);
    return st;
}

int fit_dist_gather_eval(oclseg_confusion *conf, int count, double *loss_sum) {
    const int size = oclseg_dist_size();
    if (size == 1) return OCLSEG_OK;
    int *counts = malloc(2 * (size_t)size * sizeof(int));
    if (!counts) return OCLSEG_ERR_OUT_OF_MEMORY;
    int *starts = counts + size;
    fit_dist_split(count, size, counts, starts);
    const int rank = oclseg_dist_rank(), most = counts[0];
    /* each rank sends its slice padded to the largest, with its loss sum in front */
    size_t bytes = sizeof(double) + (size_t)most * sizeof(oclseg_confusion);
    unsigned char *send = calloc(1, bytes), *recv = malloc(bytes * (size_t)size);
    int st = send && recv ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) {
        memcpy(send, loss_sum, sizeof(double));
        memcpy(send + sizeof(double), conf + starts[rank], (size_t)counts[rank] * sizeof *conf);
        st = oclseg_dist_allgather(send, bytes, recv);
    }
    if (st == OCLSEG_OK) {
        double total = 0.0;
        for (int r = 0; r < size; r++) {
            double part;
            memcpy(&part, recv + (size_t)r * bytes, sizeof part);
            total += part;
            memcpy(conf + starts[r], recv + (size_t)r * bytes + sizeof(double),
                   (size_t)counts[r] * sizeof *conf);
        }
        *loss_sum = total;
    }
    free(send);
    free(recv);
    free(counts);
    return st;
}

int fit_dist_evaluate(oclseg_trainer *t, const oclseg_dataset *ds, int batch, double *mean_loss,
                      oclseg_metrics *metrics) {
    oclseg_confusion *conf = calloc((size_t)ds->count + 1, sizeof *conf);
    if (!conf) return OCLSEG_ERR_OUT_OF_MEMORY;
    /* sharded: this rank evaluates its slice [first, end); the slices are gathered below */
    oclseg_eval_options eo;
    oclseg_eval_options_default(&eo);
    eo.batch = batch;
    eo.score_at = OCLSEG_SCORE_DEVICE;
    fit_dist_my_slice(ds->count, &eo.first, &eo.end);
    double loss_sum = 0;
    int st = eo.first < eo.end ? oclseg_evaluate(t, ds, &eo, &loss_sum, conf) : OCLSEG_OK;
    if (st == OCLSEG_OK) st = fit_dist_gather_eval(conf, ds->count, &loss_sum);
    if (st == OCLSEG_OK) {
        *mean_loss = loss_sum / ds->count;
        st = oclseg_metrics_compute(conf, ds->count, metrics);
    }
    free(conf);
    return st;
}

int fit_dist_agree_stop(int *sig) {
    const int size = oclseg_dist_size();
    if (size == 1) return OCLSEG_OK;
    int any = 0;
    TRY(oclseg_dist_any(*sig != 0, &any));
    if (!any) {
        *sig = 0;
        return OCLSEG_OK;
    }
    int *all = malloc((size_t)size * sizeof *all); /* only when stopping: which signal */
    if (!all) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = oclseg_dist_allgather(sig, sizeof *sig, all);
    for (int r = size - 1; st == OCLSEG_OK && r >= 0; r--)
        if (all[r]) *sig = all[r];
    free(all);
    return st;
}

int fit_dist_check_params(oclseg_trainer *t, int64_t step) {
    const int size = oclseg_dist_size();
    if (size == 1 || !t->ctx->env.dist_check) return OCLSEG_OK;
    oclseg_model *m = t->model;
    size_t n = m->param_floats > m->buffer_floats ? m->param_floats : m->buffer_floats;
    float *tmp = malloc(n * sizeof *tmp);
    uint64_t *all = malloc((size_t)size * 2 * sizeof *all);
    int st = tmp && all ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    uint64_t h[2] = {OCLSEG_FNV1A64_INIT, OCLSEG_FNV1A64_INIT};
    if (st == OCLSEG_OK) st = oclseg_read(t->ctx, m->params_buf, 0, m->param_floats * 4, tmp);
    if (st == OCLSEG_OK) h[0] = oclseg_fnv1a64(h[0], tmp, m->param_floats * 4);
    if (st == OCLSEG_OK) st = oclseg_read(t->ctx, m->buffers_buf, 0, m->buffer_floats * 4, tmp);
    if (st == OCLSEG_OK) h[1] = oclseg_fnv1a64(h[1], tmp, m->buffer_floats * 4);
    if (st == OCLSEG_OK) st = oclseg_dist_allgather(h, sizeof h, all);
    int bad = 0;
    for (int r = 1; st == OCLSEG_OK && r < size; r++) /* running statistics agree with --sync-bn */
        bad |= all[2 * r] != all[0] || (t->cfg.sync_bn && all[2 * r + 1] != all[1]);
    if (st == OCLSEG_OK && !bad && oclseg_dist_rank() == 0)
        fprintf(stderr, "dist-check step %lld: parameters %016llx on all %d ranks, running "
                        "statistics %016llx (rank 0)\n", (long long)step,
                (unsigned long long)h[0], size, (unsigned long long)h[1]);
    free(tmp);
    free(all);
    if (bad)
        oclseg_dist_abort(76, "OCLSEG_DIST_CHECK: after step %lld the parameters differ between "
                              "ranks (this rank: %016llx)", (long long)step, (unsigned long long)h[0]);
    return st;
}
