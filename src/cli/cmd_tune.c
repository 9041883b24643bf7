/* `oclseg tune`: options and printing around oclseg_tune (src/tune/), plus its hidden child modes
 * (--record, --tuner, --trial, --own). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "oclseg/status.h"
#include "oclseg/stop.h"
#include "oclseg/tune.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: oclseg tune [--device D] [--budget SECONDS] [--batch 16] [--size 128]\n"
            "                   [--repeats 3] [--trial-timeout SECONDS]\n\n"
            "Tunes GEMM for one device: records the GEMM shapes of one training step (batch,\n"
            "size as for train), runs CLBlast's own tuners (XgemmDirect, Xgemm) on representative\n"
            "sizes with a search fraction fitted to --budget (default 300 s), adds hand-picked\n"
            "conservative sets, and tries every candidate in a separate process: all recorded\n"
            "shapes must give exactly the results of CLBlast's defaults (a crash, timeout or wrong\n"
            "result rejects it); their time is weighted by call counts. The fastest is kept if\n"
            "faster than the defaults by 3%%. Then every shape is timed on CLBlast (kept\n"
            "parameters) and on oclseg's own kernels (validated the same way, per shape) and\n"
            "gets the faster backend (the device's default unless the other is 25%% faster).\n"
            "Both go to the device's tuning file ($OCLSEG_TUNING_DIR, else\n"
            "$XDG_CACHE_HOME/oclseg/tuning, else ~/.cache/oclseg/tuning) when they differ from\n"
            "the defaults; every later context on that device applies it (OCLSEG_NO_TUNING=1\n"
            "disables that, OCLSEG_GEMM=own|clblast overrides the backends).\n");
}

static void print_line(void *user, const char *line) {
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

/* The hidden options with which oclseg_tune runs this binary as its child processes. */
typedef struct child_options {
    const char *record, *trial, *tuner, *shapes, *result;
    int own;
    size_t m, n, k;
    double fraction;
} child_options;

static int run_child(const oclseg_tune_options *o, const child_options *c) {
    int st;
    oclseg_tune_child_init();
    if (c->record) {
        st = oclseg_tune_child_record(o->device, o->batch, o->size, c->record);
    } else if (c->trial || c->own) {
        if (!c->shapes || !c->result) return 2;
        st = c->own ? oclseg_tune_child_own(o->device, c->shapes, c->result, o->repeats)
                    : oclseg_tune_child_trial(o->device, c->trial, c->shapes, c->result, o->repeats);
    } else {
        if (!c->result || !c->m || !c->n || !c->k || c->fraction <= 0) return 2;
        st = oclseg_tune_child_tuner(o->device, c->tuner, c->m, c->n, c->k, c->fraction, c->result);
    }
    return st == OCLSEG_OK ? 0 : 1;
}

static void print_report(const oclseg_tune_report *r) {
    printf("%d candidates tried (%d rejected) in %.0f s\n", r->candidates, r->rejected, r->seconds);
    if (!r->params_chosen)
        printf("CLBlast's defaults stay (best candidate: %s, %.1f ms vs %.1f ms)\n", r->best,
               r->best_ms, r->baseline_ms);
    else
        printf("chosen: %s, %.1f ms vs %.1f ms with the defaults (%.2fx); 1024^3 SGEMM %.1f -> "
               "%.1f GFLOP/s\n", r->best, r->best_ms, r->baseline_ms, r->baseline_ms / r->best_ms,
               r->baseline_gflops, r->best_gflops);
    if (r->backend_own + r->backend_clblast > 0)
        printf("backends: %d shapes on the own kernels, %d on CLBlast (own rejected for %d); "
               "weighted GEMM time of one step %.1f ms -> %.1f ms (device default: %s)\n",
               r->backend_own, r->backend_clblast, r->own_rejected, r->default_backends_ms,
               r->chosen_backends_ms, r->default_backend);
    if (r->written)
        printf("wrote %s\n", r->path);
    else
        printf("no tuning file: CLBlast's defaults and the device's backend (%s) for every shape "
               "stay\n", r->default_backend);
}

int cmd_tune(int argc, char **argv) {
    oclseg_tune_options o;
    oclseg_tune_options_default(&o);
    child_options c = {0};
    enum { O_TRIAL = 1000, O_SHAPES, O_RESULT, O_RECORD, O_TUNER, O_M, O_N, O_K, O_FRACTION, O_OWN };
    static const struct option opts[] = {
        {"device", required_argument, 0, 'd'},  {"budget", required_argument, 0, 'B'},
        {"batch", required_argument, 0, 'b'},   {"size", required_argument, 0, 's'},
        {"repeats", required_argument, 0, 'r'}, {"trial-timeout", required_argument, 0, 'T'},
        {"help", no_argument, 0, 'h'},          {"trial", required_argument, 0, O_TRIAL},
        {"shapes", required_argument, 0, O_SHAPES}, {"result", required_argument, 0, O_RESULT},
        {"record", required_argument, 0, O_RECORD}, {"tuner", required_argument, 0, O_TUNER},
        {"m", required_argument, 0, O_M},       {"n", required_argument, 0, O_N},
        {"k", required_argument, 0, O_K},       {"fraction", required_argument, 0, O_FRACTION},
        {"own", no_argument, 0, O_OWN},         {0, 0, 0, 0}};
    int opt, bad = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': o.device = optarg; break;
        case 'B': bad |= cli_parse_double("tune", "--budget", optarg, 1, 1e6, &o.budget_s); break;
        case 'b': bad |= cli_parse_int("tune", "--batch", optarg, 1, 4096, &o.batch); break;
        case 's': bad |= cli_parse_image_size("tune", optarg, &o.size); break;
        case 'r': bad |= cli_parse_int("tune", "--repeats", optarg, 1, 16, &o.repeats); break;
        case 'T':
            bad |= cli_parse_double("tune", "--trial-timeout", optarg, 1, 1e6, &o.trial_timeout_s);
            break;
        case O_TRIAL: c.trial = optarg; break;
        case O_SHAPES: c.shapes = optarg; break;
        case O_RESULT: c.result = optarg; break;
        case O_RECORD: c.record = optarg; break;
        case O_TUNER: c.tuner = optarg; break;
        case O_OWN: c.own = 1; break;
        case O_M: bad |= cli_parse_size("tune", "--m", optarg, 1, &c.m); break;
        case O_N: bad |= cli_parse_size("tune", "--n", optarg, 1, &c.n); break;
        case O_K: bad |= cli_parse_size("tune", "--k", optarg, 1, &c.k); break;
        case O_FRACTION:
            bad |= cli_parse_double("tune", "--fraction", optarg, 1e-9, 1, &c.fraction);
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bad) return 2;
    if (o.size % 32) {
        fprintf(stderr, "oclseg tune: --size must be a multiple of 32 (got %d)\n", o.size);
        return 2;
    }
    if (c.record || c.trial || c.tuner || c.own) return run_child(&o, &c);
    o.progress = print_line;
    oclseg_tune_report r;
    int st = oclseg_tune(&o, &r);
    if (st == OCLSEG_ERR_INTERRUPTED) {
        fprintf(stderr, "oclseg tune: stopped by %s: the running trial was killed, no tuning "
                        "file written\n", oclseg_stop_signal_name());
        return oclseg_stop_exit_status(); /* 130, 143 */
    }
    if (st != OCLSEG_OK) return 1;
    print_report(&r);
    return 0;
}
