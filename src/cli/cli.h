/* Subcommand entry points of the oclseg command line (one file per subcommand). */
#ifndef OCLSEG_CLI_H
#define OCLSEG_CLI_H

#include <stddef.h>

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* returns the process exit code */
} cli_command;

int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* `oclseg bench` under mpirun (src/cli/cmd_bench_dist.c), and cmd_bench.c's helpers it shares:
 * a monotonic clock in ms, the median of n samples (sorts them). */
double bench_now_ms(void);
double bench_median(double *v, int n);
int bench_dist(const char *device, int batch, int size, int steps, int frozen);

/* Validated option values: 0, or -1 after printing "oclseg CMD: NAME must be ... (got 'V')". */
int cli_parse_int(const char *cmd, const char *name, const char *value, long min, long max,
                  int *out);
int cli_parse_size(const char *cmd, const char *name, const char *value, size_t min, size_t *out);
int cli_parse_double(const char *cmd, const char *name, const char *value, double min, double max,
                     double *out);

#endif
