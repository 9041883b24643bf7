/* oclseg's main: dispatches to a subcommand; the only place (with tools) that exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "oclseg/env.h"
#include "oclseg/dist.h"
#include "oclseg/runtime.h"

static const cli_command commands[] = {
    {"devices", "list every OpenCL platform and device", cmd_devices},
    {"train", "train the segmentation network", cmd_train},
    {"eval", "metrics of a weights file on a data split (original resolution)", cmd_eval},
    {"predict", "mask and overlay PNGs for images", cmd_predict},
    {"synth", "write the synthetic ISIC-layout data set", cmd_synth},
    {"bench", "time the training step on one or all devices", cmd_bench},
    {"export", "the trained network as an ONNX file (inference graph)", cmd_export},
    {"tune", "find faster CLBlast GEMM parameters for a device (kept per device)", cmd_tune},
};
static const int command_count = sizeof commands / sizeof commands[0];

static void usage(FILE *out) {
    fprintf(out, "usage: oclseg <command> [options]   (oclseg <command> --help for details)\n\n"
                 "commands:\n");
    for (int i = 0; i < command_count; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("oclseg " OCLSEG_VERSION "\n");
        return 0;
    }
    for (int i = 0; i < command_count; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        /* Only these join an MPI job (tune re-executes oclseg in child processes that must not). */
        int dist = strcmp(argv[1], "train") == 0 || strcmp(argv[1], "devices") == 0 ||
                   strcmp(argv[1], "bench") == 0;
        if (dist && oclseg_dist_init(&argc, &argv) != OCLSEG_OK) return 1;
        int rc = commands[i].run(argc - 1, argv + 1);
        /* Every OpenCL object we created must be released by now, also after errors.
         * OCLSEG_CHECK_CL_LEAKS=1 (tests) turns a leak into a failing exit status. */
        if (oclseg_cl_check_released() != OCLSEG_OK) {
            if (oclseg_env_get()->check_cl_leaks && rc == 0) rc = 70;
        }
        if (dist) oclseg_dist_finalize();
        return rc;
    }
    fprintf(stderr, "oclseg: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
