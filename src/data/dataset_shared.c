/* The data set under mpirun: the ranks on one host decode a share each into one temporary file
 * that every rank maps read-only as its images and masks (one copy per host in the page cache).
 * Its creator holds a lock on it while it has a name: the files of killed creators are removed
 * by the next run's creator. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/data_internal.h"
#include "oclseg/data.h"
#include "oclseg/dist.h"
#include "oclseg/env.h"

#define SHARED_MAGIC "OCLSEGDS"
#define SHARED_PAGE 4096u

/* What rank 0 announces: the file (path[0] == 0: none, every rank decodes alone), its token
 * and what it holds (pairs_hash: a rank given other pairs or options decodes alone). */
typedef struct shared_note {
    char path[4096];
    uint64_t token[2];
    uint64_t pairs_hash;
} shared_note;

/* The file's first page. */
typedef struct shared_header {
    char magic[8];
    uint64_t token[2];
    int32_t count, size;
} shared_header;

/* One per pair, written by the rank that decoded it (done 0: nobody did). */
typedef struct shared_record {
    int32_t done, status, orig_width, orig_height;
    oclseg_mask_info mask;
} shared_record;

/* Layout: header page, records (rounded up to a page), images, masks. */
typedef struct shared_layout {
    size_t records, images, masks, bytes;
} shared_layout;

static shared_layout layout_of(int n, int S) {
    shared_layout l;
    const size_t page = SHARED_PAGE, px = (size_t)n * S * S;
    l.records = page;
    l.images = l.records + ((size_t)n * sizeof(shared_record) + page - 1) / page * page;
    l.masks = l.images + px * 3;
    l.bytes = l.masks + px;
    return l;
}

/* Continues h over the characters of text and its terminating zero. */
static uint64_t hash_text(uint64_t h, const char *text) {
    do h = oclseg_mix64(h ^ (unsigned char)*text);
    while (*text++);
    return h;
}

/* The pairs' ids and paths and the options that change the decoded pixels. */
static uint64_t hash_pairs(const oclseg_pair_list *pairs, const oclseg_dataset_options *o) {
    char text[128];
    snprintf(text, sizeof text, "n=%d size=%d threshold=%a skip_bad=%d", pairs->count, o->size,
             o->mask_threshold, o->skip_bad);
    uint64_t h = hash_text(0, text);
    for (int i = 0; i < pairs->count; i++) {
        h = hash_text(h, pairs->items[i].id);
        h = hash_text(h, pairs->items[i].image_path);
        h = hash_text(h, pairs->items[i].mask_path);
    }
    return h;
}

static void random_token(uint64_t token[2]) {
    if (getrandom(token, 2 * sizeof *token, 0) == (ssize_t)(2 * sizeof *token)) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    token[0] = oclseg_mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32));
    token[1] = oclseg_mix64(token[0] ^ (uint64_t)ts.tv_sec);
}

#define SHARED_PREFIX "oclseg-data-"

/* 1 when name is exactly what create_file names a file: oclseg-data-<pid>-<16 hex digits>.bin. */
static int is_shared_name(const char *name) {
    if (strncmp(name, SHARED_PREFIX, strlen(SHARED_PREFIX)) != 0) return 0;
    const char *p = name + strlen(SHARED_PREFIX), *digits = p;
    while (*p >= '0' && *p <= '9') p++;
    if (p == digits || p - digits > 10 || *p++ != '-') return 0;
    for (int i = 0; i < 16; i++, p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return strcmp(p, ".bin") == 0;
}

/* Removes the files in dir that a killed creator left (rank 0 SIGKILLed, or stopped by mpirun,
 * between creating its file and the barrier after which it unlinks it): a creator holds an
 * exclusive flock on its file while it has a name and the kernel drops the lock however the
 * process ends, so a file of ours (exact name, regular, not a link, our uid) whose lock can be
 * taken has no creator left. A lock is all that is asked: no pid or host to misread (pid reuse,
 * pid namespaces, a $TMPDIR shared by hosts). */
static void remove_stale_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat named, opened;
        if (!is_shared_name(e->d_name) ||
            fstatat(dirfd(d), e->d_name, &named, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(named.st_mode) || named.st_uid != geteuid())
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        /* the name still names the file checked, and nobody holds its lock */
        if (fstat(fd, &opened) == 0 && opened.st_dev == named.st_dev &&
            opened.st_ino == named.st_ino && flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
        close(fd);
    }
    closedir(d);
}

/* Rank 0: removes the files killed creators left, creates the file with its lock held (the
 * returned descriptor: remove_file releases it), reserves its space (a full disk fails here, not
 * as SIGBUS later) and writes the header. On failure note->path is empty (the ranks decode
 * alone), a warning says why and -1 is returned. */
static int create_file(int n, int S, shared_note *note) {
    const char *dir = oclseg_env_get()->tmpdir[0] ? oclseg_env_get()->tmpdir : "/tmp";
    remove_stale_files(dir);
    random_token(note->token);
    int len = snprintf(note->path, sizeof note->path, "%s/" SHARED_PREFIX "%d-%016llx.bin", dir,
                       (int)getpid(), (unsigned long long)note->token[0]);
    const shared_layout l = layout_of(n, S);
    int fd = len < 0 || (size_t)len >= sizeof note->path
                 ? (errno = ENAMETOOLONG, -1)
                 : open(note->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int err = fd < 0 ? errno : flock(fd, LOCK_EX | LOCK_NB) != 0 ? errno : 0;
    if (err == 0) err = posix_fallocate(fd, 0, (off_t)l.bytes);
    shared_header h = {.magic = SHARED_MAGIC, .token = {note->token[0], note->token[1]},
                       .count = n, .size = S};
    if (err == 0 && pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) err = errno ? errno : EIO;
    if (err == 0 && oclseg_env_get()->fault_shared_kill) raise(SIGKILL); /* test hook */
    if (err == 0) return fd;
    data_warn("cannot create the shared decoded data file %s (%s, %zu bytes): every rank decodes "
              "the whole data set", note->path, strerror(err), l.bytes);
    if (fd >= 0) {
        unlink(note->path);
        close(fd);
    }
    note->path[0] = '\0';
    return -1;
}

/* Rank 0, once every rank has mapped the file: its name goes (a run that stops later leaves
 * nothing behind), then its lock. */
static void remove_file(const shared_note *note, int held) {
    if (note->path[0]) unlink(note->path);
    if (held >= 0) close(held);
}

/* Maps the announced file read-write when its header carries the token (the same host) and
 * rank 0 decodes the same pairs the same way (pairs_hash: mine); NULL otherwise. */
static void *map_file(const shared_note *note, uint64_t pairs_hash, int n, int S, size_t bytes) {
    if (!note->path[0] || note->pairs_hash != pairs_hash) return NULL;
    int fd = open(note->path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return NULL; /* another host: no such file there */
    shared_header h;
    int same = pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
               memcmp(h.magic, SHARED_MAGIC, sizeof h.magic) == 0 &&
               h.token[0] == note->token[0] && h.token[1] == note->token[1] && h.count == n &&
               h.size == S && !oclseg_env_get()->fault_foreign_data;
    void *map = same ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    return map == MAP_FAILED ? NULL : map;
}

/* Copies the pixels out of the mapping into private memory (before dataset_finish moves them). */
static int make_private(oclseg_dataset *ds, int n) {
    const size_t px = (size_t)n * ds->size * ds->size;
    uint8_t *images = malloc(px * 3), *masks = malloc(px);
    if (!images || !masks) {
        free(images);
        free(masks);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    memcpy(images, ds->images, px * 3);
    memcpy(masks, ds->masks, px);
    munmap(ds->mapping, ds->mapping_bytes);
    ds->mapping = NULL;
    ds->images = images;
    ds->masks = masks;
    return OCLSEG_OK;
}

/* After every rank decoded its share: the statuses and sizes of all pairs from the records, a
 * message naming the first pair another rank failed on, and the mapping made read-only. */
static int read_records(oclseg_dataset *ds, const oclseg_pair_list *pairs, int skip_bad,
                        int lo, int hi, int *sample_status) {
    const shared_record *rec = (const shared_record *)((uint8_t *)ds->mapping + SHARED_PAGE);
    int named = 0, bad = 0;
    for (int i = 0; i < pairs->count; i++) {
        if (i >= lo && i < hi) {
            bad |= sample_status[i] != OCLSEG_OK;
            continue; /* decoded here */
        }
        sample_status[i] = rec[i].done ? rec[i].status : OCLSEG_ERR_INTERRUPTED;
        ds->samples[i].orig_width = rec[i].orig_width;
        ds->samples[i].orig_height = rec[i].orig_height;
        ds->samples[i].mask = rec[i].mask;
        bad |= sample_status[i] != OCLSEG_OK;
        if (sample_status[i] != OCLSEG_OK && sample_status[i] != OCLSEG_ERR_INTERRUPTED &&
            !skip_bad && !named++)
            OCLSEG_ERROR("image %s / mask %s could not be loaded (decoded by another rank of "
                         "this job, whose message names the cause)",
                         pairs->items[i].image_path, pairs->items[i].mask_path);
    }
    if (mprotect(ds->mapping, ds->mapping_bytes, PROT_READ) != 0) bad = 1; /* keep it private */
    return bad ? make_private(ds, pairs->count) : OCLSEG_OK;
}

/* Publishes this rank's share: its records (after its pixels, which the mapping already holds). */
static void write_records(oclseg_dataset *ds, int lo, int hi, const int *sample_status) {
    shared_record *rec = (shared_record *)((uint8_t *)ds->mapping + SHARED_PAGE);
    for (int i = lo; i < hi; i++) {
        rec[i].status = sample_status[i];
        rec[i].orig_width = ds->samples[i].orig_width;
        rec[i].orig_height = ds->samples[i].orig_height;
        rec[i].mask = ds->samples[i].mask;
        rec[i].done = 1;
    }
}

/* This rank's range among the ranks that share the file (all of them when it decodes alone). */
static void my_share(const int *shares, int n, int *lo, int *hi) {
    const int size = oclseg_dist_size(), me = oclseg_dist_rank();
    if (!shares[me]) {
        *lo = 0;
        *hi = n;
        return;
    }
    int members = 0, index = 0;
    for (int r = 0; r < size; r++) {
        if (r == me) index = members;
        members += shares[r] != 0;
    }
    *lo = (int)((int64_t)n * index / members);
    *hi = (int)((int64_t)n * (index + 1) / members);
}

/* Long (~70 lines): the collectives (announce, who shares, barrier, agreement) must run on every
 * rank in the same order whatever fails locally, so the steps share one path. */
int oclseg_dataset_load_shared(const oclseg_pair_list *pairs, const oclseg_dataset_options *opts,
                               oclseg_dataset **out) {
    if (oclseg_dist_size() == 1 || oclseg_env_get()->shared_data_off)
        return oclseg_dataset_load(pairs, opts, out);
    if (!out) return OCLSEG_ERR_INVALID_ARG;
    *out = NULL;
    oclseg_dataset_options o;
    TRY(dataset_resolve_options(pairs, opts, &o)); /* the same on every rank */
    const int n = pairs->count, S = o.size, size = oclseg_dist_size();
    const shared_layout l = layout_of(n, S);
    shared_note *note = calloc(1, sizeof *note);
    int *shares = calloc((size_t)size, sizeof *shares);
    int *sample_status = calloc((size_t)n, sizeof *sample_status);
    oclseg_dataset *ds = calloc(1, sizeof *ds);
    if (!note || !shares) /* a few bytes: without them this rank cannot take part */
        oclseg_dist_abort(1, "out of memory before loading the data set");
    int local = sample_status && ds ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    const uint64_t pairs_hash = hash_pairs(pairs, &o);
    note->pairs_hash = pairs_hash;
    const int held = oclseg_dist_rank() == 0 ? create_file(n, S, note) : -1;
    int st = oclseg_dist_bcast(note, sizeof *note, 0);
    int share = 0;
    if (st == OCLSEG_OK && local == OCLSEG_OK) {
        ds->size = S;
        ds->samples = calloc((size_t)n, sizeof *ds->samples);
        ds->mapping = map_file(note, pairs_hash, n, S, l.bytes);
        share = ds->mapping != NULL;
        if (share) {
            ds->mapping_bytes = l.bytes;
            ds->images = (uint8_t *)ds->mapping + l.images;
            ds->masks = (uint8_t *)ds->mapping + l.masks;
        } else {
            ds->images = malloc((size_t)n * S * S * 3);
            ds->masks = malloc((size_t)n * S * S);
        }
        if (!ds->samples || !ds->images || !ds->masks) local = OCLSEG_ERR_OUT_OF_MEMORY;
    }
    if (st == OCLSEG_OK) st = oclseg_dist_allgather(&share, sizeof share, shares);
    int lo = 0, hi = 0;
    if (st == OCLSEG_OK && local == OCLSEG_OK) {
        my_share(shares, n, &lo, &hi);
        dataset_decode_range(pairs, &o, ds, lo, hi, sample_status);
        if (share) write_records(ds, lo, hi, sample_status);
    }
    if (st == OCLSEG_OK) st = oclseg_dist_barrier(); /* every share written */
    if (oclseg_dist_rank() == 0) remove_file(note, held); /* mapped by all */
    int any_failed = 0;
    if (st == OCLSEG_OK) st = oclseg_dist_any(local != OCLSEG_OK, &any_failed);
    if (st == OCLSEG_OK && any_failed) {
        if (local != OCLSEG_OK)
            OCLSEG_ERROR("out of memory for a dataset of %d images at %dx%d", n, S, S);
        else
            OCLSEG_ERROR("another rank of this job could not load the data set (see its message)");
        st = local != OCLSEG_OK ? local : OCLSEG_ERR_INTERNAL;
    }
    if (st == OCLSEG_OK && share) st = read_records(ds, pairs, o.skip_bad, lo, hi, sample_status);
    if (st == OCLSEG_OK) st = dataset_finish(ds, pairs, o.skip_bad, sample_status);
    free(note);
    free(shares);
    free(sample_status);
    if (st != OCLSEG_OK) {
        oclseg_dataset_free(ds);
        return st;
    }
    *out = ds;
    return OCLSEG_OK;
}

int oclseg_dataset_share(oclseg_dataset *ds) {
    if (oclseg_dist_size() == 1 || oclseg_env_get()->shared_data_off) return OCLSEG_OK;
    const int n = ds->count, S = ds->size;
    const shared_layout l = layout_of(n, S);
    const size_t px = (size_t)n * S * S;
    shared_note *note = calloc(1, sizeof *note);
    if (!note) oclseg_dist_abort(1, "out of memory before sharing the data set");
    const int held = oclseg_dist_rank() == 0 ? create_file(n, S, note) : -1;
    int st = oclseg_dist_bcast(note, sizeof *note, 0);
    uint8_t *map = st == OCLSEG_OK ? map_file(note, note->pairs_hash, n, S, l.bytes) : NULL;
    if (map && oclseg_dist_rank() == 0) {
        memcpy(map + l.images, ds->images, px * 3);
        memcpy(map + l.masks, ds->masks, px);
    }
    if (st == OCLSEG_OK) st = oclseg_dist_barrier(); /* rank 0's copy written */
    if (oclseg_dist_rank() == 0) remove_file(note, held); /* mapped by all */
    free(note);
    /* a rank whose own copy differs (other data: the start-up check names it) keeps its own */
    if (map && st == OCLSEG_OK && !ds->mapping && memcmp(map + l.images, ds->images, px * 3) == 0 &&
        memcmp(map + l.masks, ds->masks, px) == 0 && mprotect(map, l.bytes, PROT_READ) == 0) {
        free(ds->images);
        free(ds->masks);
        ds->mapping = map;
        ds->mapping_bytes = l.bytes;
        ds->images = map + l.images;
        ds->masks = map + l.masks;
    } else if (map) {
        munmap(map, l.bytes);
    }
    return st;
}
