/* Safe output files and plots: destinations that are not regular files or are symbolic links
 * are refused, outputs are opened without following links, temporaries are created exclusively,
 * and gnuplot runs fixed scripts that receive paths and titles only as ARG1..ARGn strings. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oclseg/status.h"
#include "oclseg/env.h"
#include "oclseg/util.h"

extern char **environ;

int oclseg_output_check(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return OCLSEG_OK; /* does not exist yet (or unreadable: open says) */
    if (S_ISLNK(st.st_mode)) {
        OCLSEG_ERROR("%s is a symbolic link: refusing to write through it (remove it or name "
                     "another output)", path);
        return OCLSEG_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        OCLSEG_ERROR("%s exists and is not a regular file (%s): refusing to replace it", path,
                     S_ISDIR(st.st_mode)    ? "a directory"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISFIFO(st.st_mode) ? "a fifo"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "a special file");
        return OCLSEG_ERR_IO;
    }
    return OCLSEG_OK;
}

/* oclseg_output_open, or with append the file kept and written at its end (O_APPEND). */
static int output_open(const char *path, int append) {
    if (oclseg_output_check(path) != OCLSEG_OK) return -1;
    /* O_NOFOLLOW: a link planted after the check is not followed; O_NONBLOCK: nor does a fifo
     * planted there block the open (it is refused below). */
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
                            (append ? O_APPEND : 0), 0644);
    if (fd < 0) {
        if (errno == ELOOP) (void)oclseg_output_check(path);
        else OCLSEG_ERROR("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        OCLSEG_ERROR("%s is not a regular file: refusing to write it", path);
        return -1;
    }
    if ((!append && ftruncate(fd, 0) != 0) || fcntl(fd, F_SETFL, append ? O_APPEND : 0) != 0) {
        OCLSEG_ERROR("cannot write %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int oclseg_output_open(const char *path) { return output_open(path, 0); }

static FILE *output_fopen(const char *path, int append) {
    int fd = output_open(path, append);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, append ? "ab" : "wb");
    if (!f) {
        OCLSEG_ERROR("cannot write %s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

FILE *oclseg_output_fopen(const char *path) { return output_fopen(path, 0); }

FILE *oclseg_output_fappend(const char *path) { return output_fopen(path, 1); }

int oclseg_temp_create(char *tmp, size_t size, const char *prefix) {
    static _Thread_local unsigned long counter; /* O_EXCL settles any collision */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long seed = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 20) ^
                         (unsigned long)(size_t)&ts;
    for (int attempt = 0; attempt < 100; attempt++) {
        seed = seed * 6364136223846793005ul + 1442695040888963407ul + ++counter;
        if (snprintf(tmp, size, "%s%06lx", prefix, (seed >> 24) & 0xffffff) >= (int)size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

void oclseg_plot_text(char *dst, size_t size, const char *src) {
    size_t n = 0;
    for (; src && *src && n + 1 < size; src++) {
        unsigned char c = (unsigned char)*src;
        dst[n++] = c < 0x20 || c == 0x7f ? '?' : c == '"' ? '\'' : c == '\\' ? '/' : (char)c;
    }
    if (size) dst[n] = '\0';
}

/* Writes text to a new temporary file under $TMPDIR (or /tmp) that is unlinked as soon as it
 * exists: the returned descriptor (close-on-exec, at offset 0) is its only name, so a process
 * killed at any moment (SIGKILL included) leaves nothing behind. -1 on failure. */
static int write_temp(const char *what, const char *text) {
    const char *tmpdir = oclseg_env_get()->tmpdir;
    char prefix[OCLSEG_ENV_PATH + 32], path[OCLSEG_PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s/oclseg-%s-", tmpdir && *tmpdir ? tmpdir : "/tmp", what);
    int fd = oclseg_temp_create(path, sizeof path, prefix);
    if (fd < 0) return -1;
    unlink(path);
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    if (done != len || lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The descriptors gnuplot gets its script and data on (/dev/fd/N opens the unlinked file anew,
 * from its start, each time gnuplot reads it). */
enum { GNUPLOT_SCRIPT_FD = 3, GNUPLOT_DATA_FD = 4 };

int oclseg_gnuplot(const char *script, const char *data, int argc, const char *const *args,
                   int quiet) {
    if (argc < 0 || argc > 8) return -1;
    const int script_fd = write_temp("plot", script);
    if (script_fd < 0) return -1;
    const int data_fd = data ? write_temp("plotdata", data) : -1;
    if (data && data_fd < 0) {
        close(script_fd);
        return -1;
    }
    char script_path[32], data_path[32] = "";
    snprintf(script_path, sizeof script_path, "/dev/fd/%d", GNUPLOT_SCRIPT_FD);
    if (data) snprintf(data_path, sizeof data_path, "/dev/fd/%d", GNUPLOT_DATA_FD);
    /* gnuplot -c SCRIPT ARG1..: ARG1 the data file, ARG2.. the caller's strings; no shell. */
    const char *argv[12] = {"gnuplot", "-c", script_path, data_path};
    for (int i = 0; i < argc; i++) argv[4 + i] = args[i];
    /* args[0] is the output folder: gnuplot runs a file name that starts with '<' (and writes
     * 'set output' to a command for '|') through the shell, so a relative one gets "./" */
    char folder[OCLSEG_PATH_MAX + 2];
    if (argc > 0 && args[0][0] != '/') {
        snprintf(folder, sizeof folder, "./%s", args[0]);
        argv[4] = folder;
    }
    argv[4 + argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (quiet) posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    /* dup2 clears close-on-exec on the child's copy; the originals stay closed in the child */
    posix_spawn_file_actions_adddup2(&fa, script_fd, GNUPLOT_SCRIPT_FD);
    if (data) posix_spawn_file_actions_adddup2(&fa, data_fd, GNUPLOT_DATA_FD);
    pid_t pid;
    int err = posix_spawnp(&pid, "gnuplot", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = -1;
    if (err == 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    close(script_fd);
    if (data) close(data_fd);
    return err == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
