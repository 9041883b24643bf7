/* Worker threads that run numbered tasks in any order and hand their results back in task order
 * (each task's error messages captured and printed when it is taken): eval's host scoring,
 * pipelined with the device batches. */
#ifndef OCLSEG_ORDERED_POOL_H
#define OCLSEG_ORDERED_POOL_H

/* The worker threads a command uses by default: one per online CPU, at most 16. */
int oclseg_default_threads(void);

/* Task `index` of the caller's work; returns an oclseg_status. Runs on a worker thread (or in
 * the caller's, with 0 threads): tasks that run at once must not write shared state. */
typedef int (*oclseg_pool_task)(void *ctx, int index);

typedef struct oclseg_ordered_pool oclseg_ordered_pool;

/* A pool of `threads` workers (0: none; each task runs in the caller's thread when it is taken)
 * with room for `capacity` tasks released and not yet taken. */
int oclseg_ordered_pool_create(int threads, int capacity, oclseg_pool_task task, void *ctx,
                               oclseg_ordered_pool **out);

/* Tasks [0, end) may start (end grows; at most `capacity` beyond the next task to take). */
int oclseg_ordered_pool_release(oclseg_ordered_pool *p, int end);

/* Waits for the next task in order (0, 1, 2, ...; it must be released), prints its captured
 * messages on stderr and returns its status; *index says which it was. */
int oclseg_ordered_pool_take(oclseg_ordered_pool *p, int *index);

/* Tasks taken so far. */
int oclseg_ordered_pool_taken(const oclseg_ordered_pool *p);

/* Workers threads running (0 when the pool runs tasks in the caller's thread). */
int oclseg_ordered_pool_threads(const oclseg_ordered_pool *p);

/* Stops: released tasks not yet started are not run, running ones are waited for (their
 * results dropped); the threads joined and everything freed. NULL is fine. */
void oclseg_ordered_pool_free(oclseg_ordered_pool *p);

#endif
