/* Data-parallel process group: rank/size, deterministic gradient sums, broadcast, gather, abort
 * (Open MPI when built with it and started by mpirun/srun; otherwise a single process). */
#ifndef OCLSEG_DIST_H
#define OCLSEG_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Joins the process group when the process was started by an MPI launcher (mpirun, srun:
 * OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK in the environment); otherwise, or when built
 * without MPI (-Dmpi=disabled), it is a group of one and no MPI call is ever made. Idempotent. */
int oclseg_dist_init(int *argc, char ***argv);
/* Leaves the group (MPI_Finalize). */
void oclseg_dist_finalize(void);

int oclseg_dist_rank(void);
int oclseg_dist_size(void);
/* Rank among the ranks on this host (device choice) and their count. */
int oclseg_dist_local_rank(void);
int oclseg_dist_local_size(void);
/* This process's host name. */
const char *oclseg_dist_host(void);
/* 1 when built with MPI support (whether or not this run uses it). */
int oclseg_dist_built_with_mpi(void);

/* Deterministic weighted sum over ranks, in place: buf[i] = sum over r = 0..size-1, in that
 * order, of weights[r] * buf_r[i] (double accumulation, rounded to float once), bit-identical on
 * every rank and in every rerun. weights (size entries, identical on all ranks) may be NULL
 * (all 1); a weight of 0 skips that rank's values (which may then be anything). */
int oclseg_dist_sum(float *buf, size_t count, const double *weights);
/* Copies bytes from root to every rank. */
int oclseg_dist_bcast(void *buf, size_t bytes, int root);
/* recv (size * bytes) receives every rank's send (bytes), in rank order. */
int oclseg_dist_allgather(const void *send, size_t bytes, void *recv);
/* 1 on every rank when flag is non-zero on any rank. */
int oclseg_dist_any(int flag, int *out);
int oclseg_dist_barrier(void);
/* Prints "oclseg: rank R on HOST: <message>" and stops every rank (MPI_Abort), exit status
 * `code`. In a group of one it only prints and exits. */
void oclseg_dist_abort(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Seconds spent in oclseg_dist_sum so far (communication + the host-side sum) and bytes sent. */
double oclseg_dist_comm_seconds(void);
/* Of which the host-side additions alone. */
double oclseg_dist_add_seconds(void);
uint64_t oclseg_dist_bytes_sent(void);

#endif
