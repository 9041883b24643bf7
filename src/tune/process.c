/* Tuner child processes: spawn `oclseg tune <hidden options>`, wait with a timeout (or until a
 * stop is requested), say why it failed; children end with their parent. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <time.h>

#include "oclseg/status.h"
#include "oclseg/stop.h"
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
    *took = 0;
    if (oclseg_stop_signal()) {
        snprintf(why, whyn, "not started: stopped by %s", oclseg_stop_signal_name());
        return OCLSEG_ERR_INTERRUPTED;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    double t0 = oclseg_now_s();
    int err = posix_spawn(&pid, exe ? exe : "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
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
        const int stop = oclseg_stop_signal();
        if (stop || oclseg_now_s() - t0 > timeout_s) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            *took = oclseg_now_s() - t0;
            if (stop)
                snprintf(why, whyn, "stopped by %s (child killed)", oclseg_stop_signal_name());
            else snprintf(why, whyn, "timed out after %.0f s (killed)", timeout_s);
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

void oclseg_tune_child_init(void) {
#ifdef __linux__
    /* a parent that dies without killing us (SIGKILL, crash) takes us along */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
}

const char *tune_log_note(const char *log, char *buf, size_t size) {
    snprintf(buf, size, "its log is empty");
    FILE *f = fopen(log, "r");
    if (!f) return buf;
    char line[512], last[512] = "";
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0]) snprintf(last, sizeof last, "%s", line);
    }
    fclose(f);
    if (last[0]) snprintf(buf, size, "its log ends: %s", last);
    return buf;
}
