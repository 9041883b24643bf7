/* A run directory belongs to one run: unique default names, the lock held for the run's lifetime
 * (flock on RUN/.lock, "pid host"), refusal of a directory that holds another run (unless
 * --resume continues it or --overwrite replaces it), and the release at the end. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/fit_internal.h"
#include "oclseg/dist.h"

#define LOCK_NAME ".lock"

/* What a training run writes into its directory: one of them present means the directory holds
 * a run (--overwrite removes exactly these). */
static const char *const RUN_FILES[] = {"config.json", "checkpoint.safetensors", "steps.csv",
                                        "metrics.csv", "weights.safetensors", "best.safetensors",
                                        "final.csv", "curves.png", "predictions"};
enum { RUN_FILE_COUNT = sizeof RUN_FILES / sizeof RUN_FILES[0] };

static void path_in(const char *dir, const char *name, char *out, size_t size) {
    snprintf(out, size, "%s/%s", dir, name);
}

/* The first run file present in dir, or NULL. */
static const char *run_file_in(const char *dir) {
    char path[OCLSEG_PATH_MAX + 32];
    for (int i = 0; i < RUN_FILE_COUNT; i++) {
        path_in(dir, RUN_FILES[i], path, sizeof path);
        if (access(path, F_OK) == 0) return RUN_FILES[i];
    }
    return NULL;
}

/* 1 when a and b name the same existing directory (however spelled). */
static int same_directory(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The directory of a checkpoint path ("." for a bare file name). */
static void checkpoint_dir(const char *ckpt, char *out, size_t size) {
    snprintf(out, size, "%s", ckpt);
    char *slash = strrchr(out, '/');
    if (slash == out) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(out, size, ".");
}

/* runs/<date-time>, or runs/<date-time>-2, -3, ... when that exists: mkdir's EEXIST decides, so
 * two runs started in the same second get different directories. */
static int create_default_dir(char *dir, size_t size) {
    if (oclseg_mkdir_p("runs") != OCLSEG_OK) {
        OCLSEG_ERROR("cannot create the directory runs: %s", strerror(errno));
        return OCLSEG_ERR_IO;
    }
    char base[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(base, sizeof base, "runs/%Y%m%d-%H%M%S", &tm);
    for (int k = 1; k <= 1000; k++) {
        if (k == 1) snprintf(dir, size, "%s", base);
        else snprintf(dir, size, "%s-%d", base, k);
        if (mkdir(dir, 0755) == 0) return OCLSEG_OK;
        if (errno != EEXIST) {
            OCLSEG_ERROR("cannot create the run directory %s: %s", dir, strerror(errno));
            return OCLSEG_ERR_IO;
        }
    }
    OCLSEG_ERROR("cannot create a run directory: %s-2 ... -1000 all exist; pass --out", base);
    return OCLSEG_ERR_IO;
}

/* "pid host" of the lock's holder into who (waits up to ~1 s for a holder that has just taken
 * the lock and not yet written it). */
static void read_holder(const char *path, char *who, size_t size) {
    snprintf(who, size, "unknown pid and host");
    for (int attempt = 0; attempt < 20; attempt++) {
        char text[320] = "";
        FILE *f = fopen(path, "r");
        if (f) {
            size_t got = fread(text, 1, sizeof text - 1, f);
            text[got] = '\0';
            fclose(f);
        }
        long pid = 0;
        char host[256];
        if (sscanf(text, "%ld %255s", &pid, host) == 2) {
            snprintf(who, size, "pid %ld on %s", pid, host);
            return;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Takes the run's lock: flock on dir/.lock (released when the process ends, however it ends),
 * then "pid host" written into it. A lock held by another process is an error naming it. The
 * file may be removed by a holder that ends while this process opens it: the lock is taken on
 * the file the path names at that moment (else retried). */
static int lock_dir(fit_run *r) {
    char path[OCLSEG_PATH_MAX + 16];
    path_in(r->dir, LOCK_NAME, path, sizeof path);
    for (int attempt = 0; attempt < 10; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            OCLSEG_ERROR("cannot create the lock file %s: %s", path, strerror(errno));
            return OCLSEG_ERR_IO;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            close(fd);
            if (err != EWOULDBLOCK) {
                OCLSEG_ERROR("cannot lock %s: %s", path, strerror(err));
                return OCLSEG_ERR_IO;
            }
            char who[320];
            read_holder(path, who, sizeof who);
            OCLSEG_ERROR("the run directory %s is in use by another training (%s; lock file "
                         "%s): wait for it to end, or choose another --out", r->dir, who, path);
            return OCLSEG_ERR_INVALID_ARG;
        }
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino) {
            char text[320];
            int len = snprintf(text, sizeof text, "%ld %s\n", (long)getpid(), oclseg_dist_host());
            if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len) {
                OCLSEG_ERROR("cannot write %s: %s", path, strerror(errno));
                close(fd);
                return OCLSEG_ERR_IO;
            }
            r->lock_fd = fd;
            return OCLSEG_OK;
        }
        close(fd);
    }
    OCLSEG_ERROR("cannot lock %s: the file keeps being replaced", path);
    return OCLSEG_ERR_IO;
}

/* --overwrite: the previous run's files (RUN_FILES; predictions/ and the files in it). */
static int remove_run_files(const char *dir) {
    char path[OCLSEG_PATH_MAX + 32];
    for (int i = 0; i < RUN_FILE_COUNT; i++) {
        path_in(dir, RUN_FILES[i], path, sizeof path);
        struct stat sb;
        if (lstat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode) ? oclseg_remove_flat_dir(path) == OCLSEG_OK : unlink(path) == 0)
            continue;
        OCLSEG_ERROR("--overwrite: cannot remove %s: %s", path, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    return OCLSEG_OK;
}

/* Rank 0: the directory's name (--out, the --resume checkpoint's directory, or a new
 * runs/<date-time>), created, locked, and checked to hold no other run. */
static int claim(fit_run *r) {
    const oclseg_fit_options *o = r->o;
    char resume_dir[OCLSEG_PATH_MAX] = "";
    if (o->resume) checkpoint_dir(o->resume, resume_dir, sizeof resume_dir);
    if (o->out_dir || o->resume) {
        snprintf(r->dir, sizeof r->dir, "%s", o->out_dir ? o->out_dir : resume_dir);
        struct stat sb;
        r->created_dir = stat(r->dir, &sb) != 0;
        if (oclseg_mkdir_p(r->dir) != OCLSEG_OK) {
            OCLSEG_ERROR("cannot create the run directory %s: %s", r->dir, strerror(errno));
            return OCLSEG_ERR_IO;
        }
    } else {
        TRY(create_default_dir(r->dir, sizeof r->dir));
        r->created_dir = 1;
    }
    TRY(lock_dir(r));
    const int continues = o->resume && same_directory(resume_dir, r->dir);
    if (continues && o->overwrite) {
        OCLSEG_ERROR("--overwrite with --resume %s would delete the run it continues (%s); leave "
                     "--overwrite out", o->resume, r->dir);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const char *found = continues ? NULL : run_file_in(r->dir);
    if (found && !o->overwrite) {
        char ckpt[OCLSEG_PATH_MAX + 32], resume_hint[OCLSEG_PATH_MAX + 64] = "";
        path_in(r->dir, "checkpoint.safetensors", ckpt, sizeof ckpt);
        if (access(ckpt, F_OK) == 0)
            snprintf(resume_hint, sizeof resume_hint, ", --resume %s to continue it,", ckpt);
        OCLSEG_ERROR("the run directory %s already holds a run (%s): pass --overwrite to replace "
                     "it%s or choose another --out", r->dir, found, resume_hint);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (found) {
        TRY(remove_run_files(r->dir));
        if (!o->quiet) printf("--overwrite: removed the previous run's files from %s\n", r->dir);
    }
    return OCLSEG_OK;
}

int fit_claim_run_dir(fit_run *r) {
    int st = oclseg_dist_rank() == 0 ? claim(r) : OCLSEG_OK;
    /* every rank learns the name, or the refusal (rank 0 printed why) */
    int shared = st;
    TRY(oclseg_dist_bcast(&shared, sizeof shared, 0));
    TRY(oclseg_dist_bcast(r->dir, sizeof r->dir, 0));
    return shared;
}

void fit_release_run_dir(fit_run *r, int st) {
    if (r->lock_fd < 0) return;
    char path[OCLSEG_PATH_MAX + 16];
    path_in(r->dir, LOCK_NAME, path, sizeof path);
    unlink(path); /* while held: a process that opened the old file retries on the new one */
    /* a directory this run created and wrote nothing into goes too (e.g. a refused resume) */
    if (st != OCLSEG_OK && r->created_dir && !run_file_in(r->dir)) rmdir(r->dir);
    close(r->lock_fd);
    r->lock_fd = -1;
}
