/* Subcommand entry points of the oclseg command line (one file per subcommand). */
#ifndef OCLSEG_CLI_H
#define OCLSEG_CLI_H

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

#endif
