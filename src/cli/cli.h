/* Subcommand entry points of the oclseg command line (one file per subcommand). */
#ifndef OCLSEG_CLI_H
#define OCLSEG_CLI_H

#include <stddef.h>

#include "oclseg/model.h" /* oclseg_decoder_kind */

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* returns the process exit code */
} cli_command;

/* The inference options shared by eval and predict (long options, codes CLI_PREDICT_OPT..+3):
 * --tta flips|none, --threshold T, --largest-component, --fill-holes. */
#define CLI_PREDICT_OPT 400
#define CLI_PREDICT_OPTIONS                                                                   \
    {"tta", required_argument, 0, CLI_PREDICT_OPT},                                           \
        {"threshold", required_argument, 0, CLI_PREDICT_OPT + 1},                             \
        {"largest-component", no_argument, 0, CLI_PREDICT_OPT + 2},                           \
        {"fill-holes", no_argument, 0, CLI_PREDICT_OPT + 3},                                  \
        {"no-largest-component", no_argument, 0, CLI_PREDICT_OPT + 4},                        \
        {"no-fill-holes", no_argument, 0, CLI_PREDICT_OPT + 5},                               \
        {"force-size", no_argument, 0, CLI_PREDICT_OPT + 6}
#define CLI_PREDICT_USAGE                                                                     \
    "  --tta flips        average the probabilities of the 4 flips of each image\n"          \
    "  --threshold T      mask = probability > T (default: the threshold training picked on\n"\
    "                     the validation set, recorded in best.safetensors; else 0.5)\n"                                        \
    "  --largest-component  keep only the largest 8-connected lesion region\n"              \
    "  --fill-holes       fill background regions enclosed by the lesion\n"                 \
    "  --no-largest-component, --no-fill-holes  turn off what the weights' metadata asks for\n"\
    "  --force-size       allow a --size other than the input_size the weights were trained\n"\
    "                     at (recorded in their metadata)\n"                                   \
    "Defaults come from the weights' metadata (input_size, threshold, tta,\n"                  \
    "largest_component, fill_holes), else 128 / 0.5 / none / off / off.\n"
struct oclseg_predict_options;
/* Handles option code c (with its argument); returns 1 if it was one of the above, 0 if not,
 * -1 on a bad value (message printed, prefixed with cmd). */
int cli_predict_option(const char *cmd, int c, const char *arg, struct oclseg_predict_options *o);
/* eval's and predict's options before parsing: every inference option "not given", so that
 * cli_predict_resolve can tell a default from a choice. */
typedef struct cli_infer_options {
    struct oclseg_predict_options *predict; /* fields -1 until given */
    int size;                               /* 0 until given */
    int force_size;
} cli_infer_options;
void cli_predict_unset(struct oclseg_predict_options *o);
/* Reads the weights' metadata and fills what was not given from it (else the defaults: 128,
 * 0.5, no TTA, no post-processing); a --size other than the recorded input_size is an error
 * naming both unless --force-size. Prints the settings taken from the file. 0 or an exit code. */
int cli_predict_resolve(const char *cmd, const char *weights, cli_infer_options *io);

/* The augmentation and the decoder of `oclseg train --recipe NAME` (seed or best); -1 for another
 * name. */
struct oclseg_augment_config;
int cli_recipe_options(const char *recipe, struct oclseg_augment_config *aug,
                       oclseg_decoder_kind *decoder);

int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* `oclseg bench` under mpirun (src/cli/cmd_bench_dist.c; the measurement: oclseg_bench_dist). */
struct oclseg_bench_options;
int bench_dist(const char *device, const struct oclseg_bench_options *run);

/* Validated option values: 0, or -1 after printing "oclseg CMD: NAME must be ... (got 'V')". */
int cli_parse_int(const char *cmd, const char *name, const char *value, long min, long max,
                  int *out);
int cli_parse_size(const char *cmd, const char *name, const char *value, size_t min, size_t *out);
/* --size: a multiple of 32 in [32, OCLSEG_MAX_IMAGE_SIZE]; 0, or -1 after "oclseg CMD: --size
 * must be a multiple of 32 in [32, 4096] (got 'V')". */
int cli_parse_image_size(const char *cmd, const char *value, int *out);
int cli_parse_double(const char *cmd, const char *name, const char *value, double min, double max,
                     double *out);

#endif
