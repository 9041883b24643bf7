/* `oclseg bench`: times the training step (and its parts) on one or all devices, with a
 * per-kernel profile, achieved GFLOP/s, peak device memory, and optional JSON output. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <clblast_c.h>

#include "cli/bench_report.h"
#include "cli/cli.h"
#include "oclseg/dist.h"
#include "oclseg/trainer.h"
#include "oclseg/tuning.h"

typedef struct bench_options {
    const char *device;
    int batch, size, steps, frozen, all;
    const char *json_path;
    const char *report_dir; /* --report DIR */
} bench_options;

typedef struct bench_result {
    oclseg_device_info info;
    double step_ms, step_sync_ms, forward_ms, backward_ms, optim_ms, images_per_s, gflops;
    double flops_fwd, flops_bwd;
    size_t peak_bytes;
    char (*kernel_names)[48];
    double *kernel_ms;
    int kernel_count;
    double profiled_ms;
    double sgemm_gflops; /* a large square SGEMM (n = 1024) on the same device: the ceiling */
    int gemm_tuned;      /* CLBlast ran with a tuning file's parameters (oclseg tune) */
    double launches, clblast_calls, enqueue_ms, clblast_ms; /* per pipelined step, host side */
    double blocking_calls; /* CLBlast calls per step that wait for the queue */
    char gemm_tuning[4200];
} bench_result;

double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: oclseg bench [--device D|all] [--batch 16] [--size 128] [--steps 20]\n"
            "                    [--freeze-encoder] [--json FILE] [--report DIR [RESULT.json...]]\n\n"
            "Times a full training step (forward + BCE loss + backward + NAdam) on random data\n"
            "after two warm-up steps: the median per-step time of steps enqueued back to back as\n"
            "training runs them (windows of 5 steps when --steps >= 10), the median of steps\n"
            "waited for one by one, and the medians of forward, backward and optimizer alone;\n"
            "images/s, achieved\n"
            "GFLOP/s (convolution FLOPs counted analytically), peak device memory, and the 15\n"
            "most expensive kernels of one profiled step. --device all measures every device.\n"
            "--report DIR measures each device in both modes (fine-tune, then frozen encoder) and\n"
            "writes DIR/report.md with PNG charts (gnuplot) and DIR/bench.json; given RESULT.json\n"
            "files (bench --json output from any machines, tools/bench_pytorch.py peers) it\n"
            "measures nothing and reports those.\n"

            "Under mpirun/srun: each rank's step on its share of the global --batch with the\n"
            "gradient sum, per-rank and aggregate images/s, the time in the sum, the all-reduce\n"
            "bandwidth and the scaling efficiency against one rank training the batch alone.\n");
}

/* GFLOP/s of a 1024^3 SGEMM through CLBlast (median of 5 after a warm-up): the practical
 * ceiling the achieved training GFLOP/s is compared with. */
static int sgemm_peak(oclseg_ctx *ctx, double *gflops) {
    const size_t n = 1024, bytes = n * n * sizeof(float);
    cl_mem a = NULL, b = NULL, c = NULL;
    double samples[5];
    int st;
    TRY_GOTO(oclseg_buffer_create(ctx, bytes, "SGEMM benchmark A", &a), st, done);
    TRY_GOTO(oclseg_buffer_create(ctx, bytes, "SGEMM benchmark B", &b), st, done);
    TRY_GOTO(oclseg_buffer_create(ctx, bytes, "SGEMM benchmark C", &c), st, done);
    TRY_GOTO(oclseg_fill_f32(ctx, a, 0, n * n, 0.5f), st, done);
    TRY_GOTO(oclseg_fill_f32(ctx, b, 0, n * n, 0.25f), st, done);
    for (int i = -1; i < 5; i++) {
        double t0 = bench_now_ms();
        int err = (int)CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, n,
                                    n, n, 1.0f, a, 0, n, b, 0, n, 0.0f, c, 0, n, &ctx->queue, NULL);
        if (err != 0) {
            OCLSEG_ERROR("CLBlastSgemm (1024^3 benchmark) failed: CLBlast status %d", err);
            st = OCLSEG_ERR_CLBLAST;
            goto done;
        }
        TRY_GOTO(oclseg_finish(ctx), st, done);
        if (i >= 0) samples[i] = bench_now_ms() - t0;
    }
    *gflops = 2.0 * n * n * n / (bench_median(samples, 5) / 1e3) / 1e9;
done:
    oclseg_buffer_free(ctx, a);
    oclseg_buffer_free(ctx, b);
    oclseg_buffer_free(ctx, c);
    return st;
}

/* Runs the benchmark on one device. */
static int bench_device(const oclseg_device_info *dev, const bench_options *o, bench_result *r) {
    memset(r, 0, sizeof *r);
    r->info = *dev;
    oclseg_ctx *ctx = NULL;
    oclseg_model *m = NULL;
    oclseg_trainer *t = NULL;
    float *images = NULL, *masks = NULL;
    double *samples = NULL;
    int st;
    /* timings on a queue without profiling (event profiling costs time on some drivers) */
    TRY_GOTO(oclseg_ctx_create_for(&ctx, dev, 0), st, done);
    r->gemm_tuned = oclseg_tuning_status(ctx, r->gemm_tuning, sizeof r->gemm_tuning);
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.size = o->size;
    cfg.max_batch = o->batch;
    TRY_GOTO(oclseg_model_create(ctx, &cfg, &m), st, done);
    TRY_GOTO(oclseg_model_init_random(m, 1), st, done);
    oclseg_trainer_config tc = {.frozen_encoder = o->frozen, .seed = 1};
    oclseg_optim_config_default(&tc.optim, OCLSEG_OPT_NADAM);
    TRY_GOTO(oclseg_trainer_create(m, &tc, &t), st, done);
    size_t s2 = (size_t)o->size * o->size;
    images = malloc((size_t)o->batch * 3 * s2 * sizeof *images);
    masks = malloc((size_t)o->batch * s2 * sizeof *masks);
    samples = malloc((size_t)o->steps * sizeof *samples);
    if (!images || !masks || !samples) {
        st = OCLSEG_ERR_OUT_OF_MEMORY;
        goto done;
    }
    uint64_t rng = 12345;
    for (size_t i = 0; i < (size_t)o->batch * 3 * s2; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        images[i] = (float)((rng >> 40) / 16777216.0 * 4.0 - 2.0);
    }
    for (size_t i = 0; i < (size_t)o->batch * s2; i++) masks[i] = (float)((i / 37) % 2);
    float losses[OCLSEG_LOSS_RING];
    int64_t first;
    int count;
    for (int i = 0; i < 2; i++) TRY_GOTO(oclseg_trainer_step(t, images, masks, o->batch), st, done);
    TRY_GOTO(oclseg_finish(ctx), st, done);
    /* full steps as training runs them: enqueued back to back, one wait per window of steps
     * (the host prepares the next step while the device runs this one) */
    const int window = o->steps >= 10 ? 5 : 1, windows = o->steps / window;
    const oclseg_enqueue_stats before = ctx->enqueued;
    for (int i = 0; i < windows; i++) {
        double t0 = bench_now_ms();
        for (int k = 0; k < window; k++)
            TRY_GOTO(oclseg_trainer_step(t, images, masks, o->batch), st, done);
        TRY_GOTO(oclseg_trainer_drain_losses(t, losses, &first, &count), st, done);
        samples[i] = (bench_now_ms() - t0) / window;
    }
    r->step_ms = bench_median(samples, windows);
    const double steps_run = (double)windows * window;
    r->launches = (double)(ctx->enqueued.kernels - before.kernels) / steps_run;
    r->clblast_calls = (double)(ctx->enqueued.clblast_calls - before.clblast_calls) / steps_run;
    r->enqueue_ms = (ctx->enqueued.enqueue_s - before.enqueue_s) * 1e3 / steps_run;
    r->clblast_ms = (ctx->enqueued.clblast_s - before.clblast_s) * 1e3 / steps_run;
    r->blocking_calls =
        (double)(ctx->enqueued.clblast_blocking - before.clblast_blocking) / steps_run;
    /* and each step waited for alone (latency: includes every launch's host overhead) */
    for (int i = 0; i < o->steps; i++) {
        double t0 = bench_now_ms();
        TRY_GOTO(oclseg_trainer_step(t, images, masks, o->batch), st, done);
        TRY_GOTO(oclseg_finish(ctx), st, done);
        samples[i] = bench_now_ms() - t0;
        TRY_GOTO(oclseg_trainer_drain_losses(t, losses, &first, &count), st, done);
    }
    r->step_sync_ms = bench_median(samples, o->steps);
    /* the parts, each timed alone */
    oclseg_tensor logits = oclseg_model_logits(m, o->batch), dl = oclseg_model_logits_grad(m, o->batch);
    for (int part = 0; part < 3; part++) {
        for (int i = 0; i < o->steps; i++) {
            double t0 = bench_now_ms();
            if (part == 0) {
                TRY_GOTO(oclseg_model_forward(m, o->batch, 1, o->frozen, 1, 99), st, done);
            } else if (part == 1) {
                TRY_GOTO(oclseg_model_backward(m, o->batch, o->frozen, 1, 99), st, done);
            } else {
                size_t off = o->frozen ? m->decoder_param_off : 0;
                oclseg_optim_host_state hs = t->opt;
                TRY_GOTO(op_optimizer_step(ctx, &tc.optim, &hs, m->params_buf, m->grads_buf,
                                           m->state1_buf, m->state2_buf, off, m->param_floats - off),
                         st, done);
            }
            TRY_GOTO(oclseg_finish(ctx), st, done);
            samples[i] = bench_now_ms() - t0;
        }
        double med = bench_median(samples, o->steps);
        if (part == 0) r->forward_ms = med;
        else if (part == 1) r->backward_ms = med;
        else r->optim_ms = med;
    }
    (void)logits;
    (void)dl;
    oclseg_model_flops(m, o->batch, o->frozen, &r->flops_fwd, &r->flops_bwd);
    r->peak_bytes = ctx->peak_bytes;
    TRY_GOTO(sgemm_peak(ctx, &r->sgemm_gflops), st, done);
    /* one profiled step, on a fresh context whose queue has profiling enabled */
    oclseg_trainer_free(t);
    oclseg_model_free(m);
    oclseg_ctx_free(ctx);
    t = NULL;
    m = NULL;
    ctx = NULL;
    TRY_GOTO(oclseg_ctx_create_for(&ctx, dev, 1), st, done);
    TRY_GOTO(oclseg_model_create(ctx, &cfg, &m), st, done);
    TRY_GOTO(oclseg_model_init_random(m, 1), st, done);
    TRY_GOTO(oclseg_trainer_create(m, &tc, &t), st, done);
    TRY_GOTO(oclseg_trainer_step(t, images, masks, o->batch), st, done);
    TRY_GOTO(oclseg_finish(ctx), st, done);
    oclseg_prof_reset(ctx);
    TRY_GOTO(oclseg_trainer_step(t, images, masks, o->batch), st, done);
    TRY_GOTO(oclseg_prof_collect(ctx, &r->kernel_names, &r->kernel_ms, &r->kernel_count), st, done);
    for (int i = 0; i < r->kernel_count; i++) r->profiled_ms += r->kernel_ms[i];
    TRY_GOTO(oclseg_trainer_drain_losses(t, losses, &first, &count), st, done);
    r->images_per_s = o->batch / (r->step_ms / 1e3);
    r->gflops = (r->flops_fwd + r->flops_bwd) / (r->step_ms / 1e3) / 1e9;
done:
    free(images);
    free(masks);
    free(samples);
    oclseg_trainer_free(t);
    oclseg_model_free(m);
    oclseg_ctx_free(ctx);
    return st;
}

static void print_result(const bench_result *r, const bench_options *o) {
    printf("device %s (%s, driver %s)\n", r->info.name, r->info.platform_name,
           r->info.driver_version);
    printf("  batch %d, %dx%d, %s, NAdam: median of %d steps\n", o->batch, o->size, o->size,
           o->frozen ? "frozen encoder" : "fine-tune", o->steps);
    printf("  step %.1f ms pipelined (%.1f ms waited for alone; forward %.1f, backward %.1f, "
           "optimizer %.1f)  %.1f images/s\n",
           r->step_ms, r->step_sync_ms, r->forward_ms, r->backward_ms, r->optim_ms, r->images_per_s);
    printf("  %.2f GFLOP per step (forward %.2f, backward %.2f): %.1f GFLOP/s achieved\n",
           (r->flops_fwd + r->flops_bwd) / 1e9, r->flops_fwd / 1e9, r->flops_bwd / 1e9, r->gflops);
    printf("  per step the host enqueues %.0f kernels + %.0f CLBlast GEMM calls (%.0f of them wait "
           "for the queue), %.1f ms inside the enqueue calls (%.1f ms of it in CLBlast)\n",
           r->launches, r->clblast_calls, r->blocking_calls, r->enqueue_ms, r->clblast_ms);
    printf("  GEMM parameters: %s\n", r->gemm_tuning);
    printf("  large SGEMM (1024^3, CLBlast) on this device: %.1f GFLOP/s (%s); the training step "
           "achieves %.0f%% of it\n", r->sgemm_gflops, r->gemm_tuned ? "tuned ceiling" : "untuned",
           100.0 * r->gflops / r->sgemm_gflops);
    printf("  peak device memory %.1f MiB\n", r->peak_bytes / 1048576.0);
    printf("  top kernels of one profiled step (device time %.1f ms):\n", r->profiled_ms);
    for (int i = 0; i < r->kernel_count && i < 15; i++)
        printf("    %-32s %8.2f ms %5.1f%%\n", r->kernel_names[i], r->kernel_ms[i],
               100.0 * r->kernel_ms[i] / (r->profiled_ms > 0 ? r->profiled_ms : 1));
}

static json_t *result_json(const bench_result *r, const bench_options *o) {
    json_t *kernels = json_array();
    for (int i = 0; i < r->kernel_count && i < 15; i++)
        json_array_append_new(kernels, json_pack("{s:s, s:f}", "name", r->kernel_names[i], "ms",
                                                 r->kernel_ms[i]));
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:b, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
        "s:f, s:I, s:o, s:b, s:s}",
        "device", r->info.name, "vendor", r->info.vendor, "platform", r->info.platform_name,
        "driver", r->info.driver_version, "clblast", OCLSEG_CLBLAST_VERSION, "build",
        OCLSEG_BUILD_INFO, "batch", o->batch, "size", o->size, "frozen_encoder", o->frozen,
        "steps", o->steps, "step_ms", r->step_ms, "step_sync_ms", r->step_sync_ms, "forward_ms", r->forward_ms, "backward_ms",
        r->backward_ms, "optimizer_ms", r->optim_ms, "images_per_s", r->images_per_s,
        "gflop_per_step", (r->flops_fwd + r->flops_bwd) / 1e9, "gflops", r->gflops,
        "sgemm_1024_gflops", r->sgemm_gflops,
        "peak_device_bytes", (json_int_t)r->peak_bytes, "kernels", kernels, "gemm_tuned",
        r->gemm_tuned, "gemm_tuning", r->gemm_tuning);
    json_object_set_new(j, "kernel_launches_per_step", json_real(r->launches));
    json_object_set_new(j, "clblast_calls_per_step", json_real(r->clblast_calls));
    json_object_set_new(j, "enqueue_ms_per_step", json_real(r->enqueue_ms));
    json_object_set_new(j, "clblast_enqueue_ms_per_step", json_real(r->clblast_ms));
    json_object_set_new(j, "clblast_blocking_calls_per_step", json_real(r->blocking_calls));
    return j;
}

int cmd_bench(int argc, char **argv) {
    bench_options o = {NULL, 16, 128, 20, 0, 0, NULL, NULL};
    static const struct option opts[] = {
        {"device", required_argument, 0, 'd'}, {"batch", required_argument, 0, 'b'},
        {"size", required_argument, 0, 's'},   {"steps", required_argument, 0, 'n'},
        {"freeze-encoder", no_argument, 0, 'f'}, {"json", required_argument, 0, 'j'},
        {"report", required_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': o.device = optarg; break;
        case 'b': o.batch = atoi(optarg); break;
        case 's': o.size = atoi(optarg); break;
        case 'n': o.steps = atoi(optarg); break;
        case 'f': o.frozen = 1; break;
        case 'j': o.json_path = optarg; break;
        case 'r': o.report_dir = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o.batch <= 0 || o.steps <= 0 || o.size <= 0 || o.size % 32) {
        fprintf(stderr, "oclseg bench: --batch and --steps must be positive, --size a multiple of 32\n");
        return 2;
    }
    if (o.report_dir && optind < argc) { /* report over existing results, no measuring */
        json_t *runs = json_array();
        int st = OCLSEG_OK;
        for (int i = optind; i < argc && st == OCLSEG_OK; i++) st = bench_report_load(argv[i], runs);
        if (st == OCLSEG_OK) st = bench_report_write(runs, o.report_dir);
        json_decref(runs);
        if (st == OCLSEG_OK) printf("wrote %s/report.md\n", o.report_dir);
        return st == OCLSEG_OK ? 0 : 1;
    }
    if (optind < argc) {
        fprintf(stderr, "oclseg bench: result files are only read with --report DIR\n");
        return 2;
    }
    if (oclseg_dist_size() > 1) return bench_dist(o.device, o.batch, o.size, o.steps, o.frozen);
    oclseg_device_info *devs = NULL;
    int count = 0;
    if (o.device && strcmp(o.device, "all") == 0) {
        if (oclseg_devices_list(&devs, &count) != OCLSEG_OK) return 1;
    } else {
        devs = malloc(sizeof *devs);
        if (!devs || oclseg_device_choose(o.device, devs) != OCLSEG_OK) {
            free(devs);
            return 1;
        }
        count = 1;
    }
    /* --report: both modes per device */
    const int modes = o.report_dir ? 2 : 1, first_mode = o.frozen;
    bench_result *results = calloc((size_t)count * modes + 1, sizeof *results);
    json_t *all = json_array();
    int failures = 0;
    for (int i = 0; i < count * modes; i++) {
        o.frozen = modes == 2 ? i % 2 : first_mode;
        if (bench_device(&devs[i / modes], &o, &results[i]) != OCLSEG_OK) {
            fprintf(stderr, "oclseg bench: failed on %s\n", devs[i / modes].name);
            failures++;
            continue;
        }
        print_result(&results[i], &o);
        json_array_append_new(all, result_json(&results[i], &o));
    }
    if (count * modes > 1) {
        printf("\n| device | mode | step ms | images/s | GFLOP/s | peak MiB |\n"
               "|---|---|---|---|---|---|\n");
        for (int i = 0; i < count * modes; i++)
            if (results[i].step_ms > 0)
                printf("| %s | %s | %.1f | %.1f | %.1f | %.0f |\n", results[i].info.name,
                       (modes == 2 ? i % 2 : first_mode) ? "frozen" : "fine-tune",
                       results[i].step_ms, results[i].images_per_s, results[i].gflops,
                       results[i].peak_bytes / 1048576.0);
    }
    if (o.json_path && json_dump_file(all, o.json_path, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "oclseg bench: cannot write %s\n", o.json_path);
        failures++;
    }
    if (o.report_dir && json_array_size(all) > 0) {
        char path[4200];
        int st = bench_report_write(all, o.report_dir);
        snprintf(path, sizeof path, "%s/bench.json", o.report_dir);
        if (st == OCLSEG_OK && json_dump_file(all, path, JSON_INDENT(2)) != 0) st = OCLSEG_ERR_IO;
        if (st == OCLSEG_OK) printf("wrote %s/report.md\n", o.report_dir);
        else failures++;
    }
    json_decref(all);
    for (int i = 0; i < count * modes; i++) {
        free(results[i].kernel_names);
        free(results[i].kernel_ms);
    }
    free(results);
    free(devs);
    return failures ? 1 : 0;
}
