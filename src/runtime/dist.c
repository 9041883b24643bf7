/* The data-parallel process group: Open MPI when built with it (OCLSEG_HAVE_MPI) and started by
 * a launcher, else a group of one. All floating-point arithmetic across ranks happens here, in a
 * fixed order; MPI only moves bytes. */
#include "oclseg/env.h"
#include "oclseg/dist.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oclseg/status.h"
#include "oclseg/util.h"

#ifdef OCLSEG_HAVE_MPI
#include <mpi.h>
#endif

static struct {
    int ready, mpi, rank, size, local_rank, local_size;
    char host[256];
    double comm_seconds, add_seconds;
    uint64_t bytes_sent;
    double timeout_s;
    float *scratch;
    size_t scratch_floats;
} g = {0, 0, 0, 1, 0, 1, "", 0, 0, 0, 600, NULL, 0};

int oclseg_dist_built_with_mpi(void) {
#ifdef OCLSEG_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int oclseg_dist_init(int *argc, char ***argv) {
    if (g.ready) return OCLSEG_OK;
    g.ready = 1;
    if (gethostname(g.host, sizeof g.host) != 0) snprintf(g.host, sizeof g.host, "?");
    g.host[sizeof g.host - 1] = '\0';
    if (oclseg_env_get()->dist_timeout_s > 0) g.timeout_s = oclseg_env_get()->dist_timeout_s;
#ifdef OCLSEG_HAVE_MPI
    /* started by a launcher? (Open MPI's mpirun, PMIx or PMI-2 launchers such as srun) */
    if (!oclseg_env_get()->mpi_launched) return OCLSEG_OK;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        OCLSEG_ERROR("MPI_Init failed");
        return OCLSEG_ERR_INTERNAL;
    }
    g.mpi = 1;
    /* errors come back as codes (a dead peer), not as an abort inside MPI */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g.size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &g.local_rank);
    MPI_Comm_size(local, &g.local_size);
    MPI_Comm_free(&local);
#else
    (void)argc;
    (void)argv;
    (void)launched;
#endif
    return OCLSEG_OK;
}

void oclseg_dist_finalize(void) {
    free(g.scratch);
    g.scratch = NULL;
    g.scratch_floats = 0;
#ifdef OCLSEG_HAVE_MPI
    if (g.mpi) MPI_Finalize();
#endif
    g.mpi = 0;
}

int oclseg_dist_rank(void) { return g.rank; }
int oclseg_dist_size(void) { return g.size; }
int oclseg_dist_local_rank(void) { return g.local_rank; }
int oclseg_dist_local_size(void) { return g.local_size; }
const char *oclseg_dist_host(void) {
    if (!g.host[0] && gethostname(g.host, sizeof g.host) != 0) snprintf(g.host, sizeof g.host, "?");
    return g.host;
}
double oclseg_dist_comm_seconds(void) { return g.comm_seconds; }
double oclseg_dist_add_seconds(void) { return g.add_seconds; }
uint64_t oclseg_dist_bytes_sent(void) { return g.bytes_sent; }

void oclseg_dist_abort(int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "oclseg: rank %d of %d on %s: %s\n", g.rank, g.size, oclseg_dist_host(), msg);
    fflush(stderr);
#ifdef OCLSEG_HAVE_MPI
    if (g.mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

#ifdef OCLSEG_HAVE_MPI
/* Waits for a non-blocking collective, polling with growing sleeps (the ranks share cores with
 * the OpenCL driver's threads, so no busy wait), and stops every rank when it has not completed
 * after OCLSEG_DIST_TIMEOUT seconds (default 600): a rank hung or died. */
static int wait_request(MPI_Request *req, const char *what) {
    double start = oclseg_now_s();
    long sleep_ns = 2000;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char err[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(rc, err, &len);
            oclseg_dist_abort(75, "%s failed: %s (another rank died?)", what, err);
        }
        if (done) return OCLSEG_OK;
        double waited = oclseg_now_s() - start;
        if (waited > g.timeout_s)
            oclseg_dist_abort(75, "%s: no answer from the other ranks for %.0f s "
                                  "(OCLSEG_DIST_TIMEOUT): a rank hung or died; stopping all ranks",
                              what, waited);
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 1000000) sleep_ns += sleep_ns / 4;
    }
}

static int segment(size_t count, int r, size_t *start) {
    size_t a = count * (size_t)r / (size_t)g.size, b = count * (size_t)(r + 1) / (size_t)g.size;
    *start = a;
    return (int)(b - a);
}
#endif

/* Reduce-scatter + all-gather written out by hand: rank r owns segment r of the buffer; an
 * all-to-all moves every rank's copy of segment r to rank r, which adds the copies itself in
 * rank order 0..N-1; an all-gather returns the sums. MPI_Alltoallv and MPI_Allgatherv only copy
 * bytes, so whatever algorithm Open MPI's tuned/han/... components pick for them (by message
 * size, rank count or network) cannot change a single bit of the result. MPI_Allreduce with
 * MPI_SUM on floats would not give that guarantee: its association order follows the chosen
 * algorithm (recursive doubling, ring, ...), which may differ between message sizes, rank
 * counts and versions. Each element is summed exactly once, by its owner, so all ranks get the
 * same bits. */
int oclseg_dist_sum(float *buf, size_t count, const double *weights) {
    if (g.size == 1 || count == 0) {
        if (weights && weights[0] != 1.0)
            for (size_t i = 0; i < count; i++) buf[i] = (float)(weights[0] * (double)buf[i]);
        return OCLSEG_OK;
    }
#ifdef OCLSEG_HAVE_MPI
    if (count > (size_t)INT_MAX) { /* MPI counts and displacements are int */
        OCLSEG_ERROR("gradient sum: %zu floats exceed MPI's int displacements", count);
        return OCLSEG_ERR_UNSUPPORTED;
    }
    double t0 = oclseg_now_s();
    size_t mine_start;
    int mine = segment(count, g.rank, &mine_start);
    size_t need = (size_t)mine * (size_t)g.size;
    if (need > g.scratch_floats) {
        float *grown = realloc(g.scratch, need * sizeof(float));
        if (!grown) return OCLSEG_ERR_OUT_OF_MEMORY;
        g.scratch = grown;
        g.scratch_floats = need;
    }
    int *scount = malloc(4 * (size_t)g.size * sizeof(int));
    if (!scount) return OCLSEG_ERR_OUT_OF_MEMORY;
    int *sdispl = scount + g.size, *rcount = sdispl + g.size, *rdispl = rcount + g.size;
    for (int r = 0; r < g.size; r++) {
        size_t start;
        scount[r] = segment(count, r, &start);
        sdispl[r] = (int)start;
        rcount[r] = mine;
        rdispl[r] = r * mine;
    }
    MPI_Request req;
    if (MPI_Ialltoallv(buf, scount, sdispl, MPI_FLOAT, g.scratch, rcount, rdispl, MPI_FLOAT,
                       MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        oclseg_dist_abort(75, "gradient all-to-all could not start");
    wait_request(&req, "gradient sum (all-to-all)");
    float *out = buf + mine_start;
    double t_add = oclseg_now_s();
    for (int i = 0; i < mine; i++) {
        double s = 0.0;
        for (int r = 0; r < g.size; r++) {
            double w = weights ? weights[r] : 1.0;
            if (w != 0.0) s += w * (double)g.scratch[(size_t)r * mine + i];
        }
        out[i] = (float)s;
    }
    g.add_seconds += oclseg_now_s() - t_add;
    for (int r = 0; r < g.size; r++) rcount[r] = scount[r];
    if (MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf, rcount, sdispl, MPI_FLOAT,
                        MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        oclseg_dist_abort(75, "gradient all-gather could not start");
    wait_request(&req, "gradient sum (all-gather)");
    g.bytes_sent += 2 * (count - (size_t)mine) * sizeof(float);
    free(scount);
    g.comm_seconds += oclseg_now_s() - t0;
    return OCLSEG_OK;
#else
    return OCLSEG_ERR_INTERNAL;
#endif
}

int oclseg_dist_bcast(void *buf, size_t bytes, int root) {
    if (g.size == 1) return OCLSEG_OK;
#ifdef OCLSEG_HAVE_MPI
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        MPI_Request req;
        if (MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
            oclseg_dist_abort(75, "broadcast could not start");
        wait_request(&req, "broadcast");
    }
    return OCLSEG_OK;
#else
    (void)buf;
    (void)bytes;
    (void)root;
    return OCLSEG_ERR_INTERNAL;
#endif
}

int oclseg_dist_allgather(const void *send, size_t bytes, void *recv) {
    if (g.size == 1) {
        memmove(recv, send, bytes);
        return OCLSEG_OK;
    }
#ifdef OCLSEG_HAVE_MPI
    if (bytes > (size_t)INT_MAX) {
        OCLSEG_ERROR("all-gather of %zu bytes per rank is too large", bytes);
        return OCLSEG_ERR_UNSUPPORTED;
    }
    MPI_Request req;
    if (MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD,
                       &req) != MPI_SUCCESS)
        oclseg_dist_abort(75, "all-gather could not start");
    return wait_request(&req, "all-gather");
#else
    return OCLSEG_ERR_INTERNAL;
#endif
}

int oclseg_dist_any(int flag, int *out) {
    *out = flag != 0;
    if (g.size == 1) return OCLSEG_OK;
    int *all = malloc((size_t)g.size * sizeof *all);
    if (!all) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = oclseg_dist_allgather(out, sizeof *out, all);
    for (int r = 0; st == OCLSEG_OK && r < g.size; r++) *out |= all[r];
    free(all);
    return st;
}

int oclseg_dist_barrier(void) {
    if (g.size == 1) return OCLSEG_OK;
#ifdef OCLSEG_HAVE_MPI
    MPI_Request req;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        oclseg_dist_abort(75, "barrier could not start");
    return wait_request(&req, "barrier");
#else
    return OCLSEG_ERR_INTERNAL;
#endif
}
