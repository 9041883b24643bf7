/* `oclseg bench`: its options, and the text, table and JSON of what src/app/bench.c measures on
 * one or all devices (the training step and its parts, a per-kernel profile, achieved GFLOP/s,
 * peak device memory). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_report.h"
#include "cli/cli.h"
#include "oclseg/bench.h"
#include "oclseg/bench_loader.h"
#include "oclseg/loader.h"
#include "oclseg/dist.h"

typedef struct bench_options {
    const char *device;
    int batch, size, steps, frozen, all;
    oclseg_decoder_kind decoder; /* --decoder */
    const char *json_path;
    const char *report_dir; /* --report DIR */
    int loader, loader_threads; /* --loader, --loader-threads N */
    const char *recipe;         /* --recipe (with --loader) */
} bench_options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: oclseg bench [--device D|all] [--batch 16] [--size 128] [--steps 20]\n"
            "                    [--freeze-encoder] [--decoder seed|skip|skip-bilinear]\n"
            "                    [--json FILE] [--report DIR [RESULT.json...]]\n"
            "                    [--loader [--recipe seed|best] [--loader-threads N]]\n\n"
            "Times a full training step (forward + BCE loss + backward + NAdam) on random data\n"
            "after two warm-up steps: the median per-step time of steps enqueued back to back as\n"
            "training runs them (windows of 5 steps when --steps >= 10), the median of steps\n"
            "waited for one by one, and the medians of forward, backward and optimizer alone;\n"
            "images/s, achieved GFLOP/s (convolution FLOPs counted analytically), kernel launches\n"
            "and host enqueue time per step, peak device memory, and the 15 most expensive\n"
            "kernels of one profiled step (--json lists every kernel). --device all measures\n"
            "every device. --decoder measures the model with that decoder (train --decoder).\n"
            "--report DIR measures each device in both modes (fine-tune, then frozen encoder) and\n"
            "writes DIR/report.md with PNG charts (gnuplot) and DIR/bench.json; given RESULT.json\n"
            "files (bench --json output from any machines, tools/bench_pytorch.py peers) it\n"
            "measures nothing and reports those.\n"

            "Under mpirun/srun: each rank's step on its share of the global --batch with the\n"
            "gradient sum, per-rank and aggregate images/s, the time in the sum, the all-reduce\n"
            "bandwidth and the scaling efficiency against one rank training the batch alone.\n"
            "--loader: then batch assembly alone (the training loader: augmentation and\n"
            "normalisation) in images/s with 0 (the step's thread), 1, 2, 4 ... N loader threads\n"
            "(default min(CPUs, 4)), augmentation off and that of --recipe (default seed: the\n"
            "flips), next to the step's images/s (of the recipe's model: best has the skip\n"
            "decoder, unless --decoder says otherwise): which of the two bounds training.\n");
}

static void print_result(const oclseg_bench_result *r, const bench_options *o) {
    printf("device %s (%s, driver %s)\n", r->info.name, r->info.platform_name,
           r->info.driver_version);
    printf("  batch %d, %dx%d, %s, %s decoder, NAdam: median of %d steps\n", o->batch, o->size,
           o->size, o->frozen ? "frozen encoder" : "fine-tune", oclseg_decoder_names[o->decoder],
           o->steps);
    printf("  step %.1f ms pipelined (%.1f ms waited for alone; forward %.1f, backward %.1f, "
           "optimizer %.1f)  %.1f images/s\n",
           r->step_ms, r->step_sync_ms, r->forward_ms, r->backward_ms, r->optim_ms, r->images_per_s);
    printf("  %.2f GFLOP per step (forward %.2f, backward %.2f): %.1f GFLOP/s achieved\n",
           (r->flops_fwd + r->flops_bwd) / 1e9, r->flops_fwd / 1e9, r->flops_bwd / 1e9, r->gflops);
    printf("  per step the host enqueues %.0f kernels + %.0f CLBlast GEMM calls (%.0f of them wait "
           "for the queue), %.1f ms inside the enqueue calls (%.1f ms of it in CLBlast)\n",
           r->launches, r->clblast_calls, r->blocking_calls, r->enqueue_ms, r->clblast_ms);
    if (r->gemm_file_own + r->gemm_file_clblast > 0)
        printf("  GEMM: the tuning file sends %d shapes to oclseg's own kernels and %d to CLBlast "
               "(other shapes: %s); CLBlast parameters: %s\n", r->gemm_file_own,
               r->gemm_file_clblast, r->gemm_own ? "own kernels" : "CLBlast", r->gemm_tuning);
    else if (r->gemm_own)
        printf("  GEMM: oclseg's own kernels (cl/gemm.cl; OCLSEG_GEMM=clblast for CLBlast)\n");
    else
        printf("  GEMM: CLBlast, parameters: %s\n", r->gemm_tuning);
    const char *ceiling = r->gemm_ceiling_own ? "as used" : r->gemm_tuned ? "tuned ceiling"
                                                                          : "untuned";
    printf("  large SGEMM (1024^3, %s) on this device: %.1f GFLOP/s (%s); the training step "
           "achieves %.0f%% of it\n", r->gemm_ceiling_own ? "own kernels" : "CLBlast",
           r->sgemm_gflops, ceiling, 100.0 * r->gflops / r->sgemm_gflops);
    printf("  peak device memory %.1f MiB\n", r->peak_bytes / 1048576.0);
    printf("  top kernels of one profiled step (device time %.1f ms):\n", r->profiled_ms);
    for (int i = 0; i < r->kernel_count && i < 15; i++)
        printf("    %-32s %8.2f ms %5.1f%%\n", r->kernel_names[i], r->kernel_ms[i],
               100.0 * r->kernel_ms[i] / (r->profiled_ms > 0 ? r->profiled_ms : 1));
}

static json_t *result_json(const oclseg_bench_result *r, const bench_options *o) {
    json_t *kernels = json_array(); /* every kernel of the profiled step, costliest first */
    for (int i = 0; i < r->kernel_count; i++)
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
    json_object_set_new(j, "decoder", json_string(oclseg_decoder_names[o->decoder]));
    json_object_set_new(j, "gemm_own_kernels", json_boolean(r->gemm_own));
    json_object_set_new(j, "gemm_tuning_shapes_own", json_integer(r->gemm_file_own));
    json_object_set_new(j, "gemm_tuning_shapes_clblast", json_integer(r->gemm_file_clblast));
    json_object_set_new(j, "kernel_launches_per_step", json_real(r->launches));
    json_object_set_new(j, "clblast_calls_per_step", json_real(r->clblast_calls));
    json_object_set_new(j, "enqueue_ms_per_step", json_real(r->enqueue_ms));
    json_object_set_new(j, "clblast_enqueue_ms_per_step", json_real(r->clblast_ms));
    json_object_set_new(j, "clblast_blocking_calls_per_step", json_real(r->blocking_calls));
    return j;
}

/* --report DIR RESULT.json...: the report over existing results, nothing measured. */
static int report_only(const char *dir, int count, char **files) {
    json_t *runs = json_array();
    int st = OCLSEG_OK;
    for (int i = 0; i < count && st == OCLSEG_OK; i++) st = bench_report_load(files[i], runs);
    if (st == OCLSEG_OK) st = bench_report_write(runs, dir);
    json_decref(runs);
    if (st == OCLSEG_OK) printf("wrote %s/report.md\n", dir);
    return st == OCLSEG_OK ? 0 : 1;
}

/* The summary table of several devices or modes. */
static void print_table(const oclseg_bench_result *results, int n, int modes, int first_mode) {
    printf("\n| device | mode | step ms | images/s | GFLOP/s | peak MiB |\n"
           "|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++)
        if (results[i].step_ms > 0)
            printf("| %s | %s | %.1f | %.1f | %.1f | %.0f |\n", results[i].info.name,
                   (modes == 2 ? i % 2 : first_mode) ? "frozen" : "fine-tune",
                   results[i].step_ms, results[i].images_per_s, results[i].gflops,
                   results[i].peak_bytes / 1048576.0);
}

/* ~85 lines: option parsing, then the devices x modes loop with its JSON and report outputs. */
int cmd_bench(int argc, char **argv) {
    bench_options o = {NULL, 16, 128, 20, 0, 0, OCLSEG_DECODER_SEED, NULL, NULL, 0, -1, "seed"};
    static const struct option opts[] = {
        {"device", required_argument, 0, 'd'}, {"batch", required_argument, 0, 'b'},
        {"size", required_argument, 0, 's'},   {"steps", required_argument, 0, 'n'},
        {"freeze-encoder", no_argument, 0, 'f'}, {"json", required_argument, 0, 'j'},
        {"report", required_argument, 0, 'r'}, {"loader", no_argument, 0, 'L'},
        {"loader-threads", required_argument, 0, 'T'}, {"recipe", required_argument, 0, 'R'},
        {"decoder", required_argument, 0, 'D'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c, bad = 0, decoder_given = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': o.device = optarg; break;
        case 'b': bad |= cli_parse_int("bench", "--batch", optarg, 1, 4096, &o.batch); break;
        case 's': bad |= cli_parse_image_size("bench", optarg, &o.size); break;
        case 'n': bad |= cli_parse_int("bench", "--steps", optarg, 1, 1000000, &o.steps); break;
        case 'f': o.frozen = 1; break;
        case 'j': o.json_path = optarg; break;
        case 'r': o.report_dir = optarg; break;
        case 'L': o.loader = 1; break;
        case 'T': bad |= cli_parse_int("bench", "--loader-threads", optarg, 0, 256, &o.loader_threads); break;
        case 'R': o.recipe = optarg; break;
        case 'D':
            decoder_given = 1;
            if (oclseg_decoder_parse(optarg, &o.decoder) != OCLSEG_OK) {
                fprintf(stderr, "oclseg bench: --decoder must be seed, skip or skip-bilinear\n");
                bad = 1;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    oclseg_bench_loader_options lo = {.size = o.size, .batch = o.batch, .recipe = o.recipe};
    oclseg_decoder_kind recipe_decoder = OCLSEG_DECODER_SEED;
    if (!bad && cli_recipe_options(o.recipe, &lo.aug, &recipe_decoder) != 0) {
        fprintf(stderr, "oclseg bench: --recipe must be seed or best, not '%s'\n", o.recipe);
        bad = 1;
    }
    if (!o.loader && (o.loader_threads >= 0 || strcmp(o.recipe, "seed") != 0)) {
        fprintf(stderr, "oclseg bench: --loader-threads and --recipe measure the loader: add "
                        "--loader\n");
        bad = 1;
    }
    if (bad) return 2;
    /* --loader --recipe best: the step it is compared with is the recipe's model's */
    if (!decoder_given) o.decoder = recipe_decoder;
    if (o.batch <= 0 || o.steps <= 0 || o.size <= 0 || o.size % 32) {
        fprintf(stderr, "oclseg bench: --batch and --steps must be positive, --size a multiple of 32\n");
        return 2;
    }
    if (o.report_dir && optind < argc) /* report over existing results, no measuring */
        return report_only(o.report_dir, argc - optind, argv + optind);
    if (optind < argc) {
        fprintf(stderr, "oclseg bench: result files are only read with --report DIR\n");
        return 2;
    }
    if (oclseg_dist_size() > 1) {
        const oclseg_bench_options run = {o.batch, o.size, o.steps, o.frozen, o.decoder};
        return bench_dist(o.device, &run);
    }
    oclseg_device_info *devs = NULL;
    int count = 0;
    if (oclseg_bench_devices(o.device, &devs, &count) != OCLSEG_OK) return 1;
    /* --report: both modes per device */
    const int modes = o.report_dir ? 2 : 1, first_mode = o.frozen;
    oclseg_bench_result *results = calloc((size_t)count * modes + 1, sizeof *results);
    json_t *all = json_array();
    int failures = 0;
    for (int i = 0; i < count * modes; i++) {
        o.frozen = modes == 2 ? i % 2 : first_mode;
        const oclseg_bench_options run = {o.batch, o.size, o.steps, o.frozen, o.decoder};
        if (oclseg_bench_device(&devs[i / modes], &run, &results[i]) != OCLSEG_OK) {
            fprintf(stderr, "oclseg bench: failed on %s\n", devs[i / modes].name);
            failures++;
            continue;
        }
        print_result(&results[i], &o);
        json_array_append_new(all, result_json(&results[i], &o));
    }
    if (count * modes > 1) print_table(results, count * modes, modes, first_mode);
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
    lo.max_threads = o.loader_threads >= 0 ? o.loader_threads : oclseg_loader_default_threads();
    lo.step_images_per_s = failures ? 0 : results[0].images_per_s;
    if (o.loader && oclseg_bench_loader(&lo) != OCLSEG_OK) failures++;
    for (int i = 0; i < count * modes; i++) oclseg_bench_result_release(&results[i]);
    free(results);
    free(devs);
    return failures ? 1 : 0;
}
