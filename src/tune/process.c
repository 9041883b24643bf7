/* Tuner child processes: spawn `oclseg tune <hidden options>`, wait with a timeout, say why it failed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "oclseg/status.h"
#include "oclseg/util.h"
#include "tune/tune_internal.h"

extern char **environ;

#define MAX_CHILD_ARGS 32

int tune_spawn(const char *exe, char *const args[], const char *log, double timeout_s, char *why,
               size_t whyn, double *took) {
    char *argv[MAX_CHILD_ARGS];
    int argc = 0;
    argv[argc++] = "oclseg";
    argv[argc++] = "tune";
    for (int i = 0; args[i]; i++) {
        if (argc == MAX_CHILD_ARGS - 1) {
            snprintf(why, whyn, "too many child arguments");
            return OCLSEG_ERR_INVALID_ARG;
        }
        argv[argc++] = args[i];
    }
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    double t0 = oclseg_now_s();
    int err = posix_spawn(&pid, exe ? exe : "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    *took = 0;
    if (err != 0) {
        snprintf(why, whyn, "cannot start a child process: %s", strerror(err));
        return OCLSEG_ERR_IO;
    }
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            snprintf(why, whyn, "waitpid failed: %s", strerror(errno));
            return OCLSEG_ERR_IO;
        }
        if (oclseg_now_s() - t0 > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            *took = oclseg_now_s() - t0;
            snprintf(why, whyn, "timed out after %.0f s (killed)", timeout_s);
            return OCLSEG_ERR_INTERRUPTED;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    *took = oclseg_now_s() - t0;
    if (WIFSIGNALED(status)) {
        snprintf(why, whyn, "crashed (signal %d: %s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
        return OCLSEG_ERR_UNSUPPORTED;
    }
    if (WEXITSTATUS(status) != 0) {
        snprintf(why, whyn, "exited with status %d", WEXITSTATUS(status));
        return OCLSEG_ERR_UNSUPPORTED;
    }
    return OCLSEG_OK;
}
