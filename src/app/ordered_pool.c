/* Worker threads that run numbered tasks and hand their results back in task order. */
#include "oclseg/ordered_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "oclseg/status.h"

int oclseg_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

/* Task i's result, in slot i % capacity until it is taken. */
typedef struct pool_slot {
    int finished, status;
    char messages[2048];
} pool_slot;

struct oclseg_ordered_pool {
    pthread_mutex_t lock;
    pthread_cond_t work, finished; /* workers wait for released tasks, the caller for results */
    oclseg_pool_task task;
    void *ctx;
    int capacity;
    int released;   /* tasks [0, released) may start */
    int next_start; /* the next task a worker starts */
    int next_take;  /* the next task the caller takes (those below are taken, their slots free) */
    int stopping;
    pool_slot *slots;
    pthread_t *tid;
    int started;
};

static void *worker_main(void *arg) {
    oclseg_ordered_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->stopping) break;
        if (p->next_start >= p->released) {
            pthread_cond_wait(&p->work, &p->lock);
            continue;
        }
        const int index = p->next_start++;
        pool_slot *slot = &p->slots[index % p->capacity];
        pthread_mutex_unlock(&p->lock);
        oclseg_log_capture(slot->messages, sizeof slot->messages);
        const int st = p->task(p->ctx, index);
        oclseg_log_capture(NULL, 0);
        pthread_mutex_lock(&p->lock);
        slot->status = st;
        slot->finished = 1;
        pthread_cond_broadcast(&p->finished);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int oclseg_ordered_pool_create(int threads, int capacity, oclseg_pool_task task, void *ctx,
                               oclseg_ordered_pool **out) {
    *out = NULL;
    if (threads < 0 || capacity < 1 || !task) return OCLSEG_ERR_INVALID_ARG;
    oclseg_ordered_pool *p = calloc(1, sizeof *p);
    if (!p) return OCLSEG_ERR_OUT_OF_MEMORY;
    p->task = task;
    p->ctx = ctx;
    p->capacity = capacity;
    p->slots = threads ? calloc((size_t)capacity, sizeof *p->slots) : NULL;
    p->tid = threads ? calloc((size_t)threads, sizeof *p->tid) : NULL;
    if (threads && (!p->slots || !p->tid)) {
        free(p->slots);
        free(p->tid);
        free(p);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->finished, NULL);
    for (; p->started < threads; p->started++)
        if (pthread_create(&p->tid[p->started], NULL, worker_main, p) != 0) break;
    if (threads && p->started == 0) {
        OCLSEG_ERROR("cannot start a worker thread");
        oclseg_ordered_pool_free(p);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    *out = p;
    return OCLSEG_OK;
}

int oclseg_ordered_pool_release(oclseg_ordered_pool *p, int end) {
    pthread_mutex_lock(&p->lock);
    const int ok = end - p->next_take <= p->capacity;
    if (ok && end > p->released) {
        p->released = end;
        pthread_cond_broadcast(&p->work);
    }
    pthread_mutex_unlock(&p->lock);
    if (ok) return OCLSEG_OK;
    OCLSEG_ERROR("ordered pool: releasing task %d beyond the capacity %d", end - 1, p->capacity);
    return OCLSEG_ERR_INVALID_ARG;
}

int oclseg_ordered_pool_take(oclseg_ordered_pool *p, int *index) {
    pthread_mutex_lock(&p->lock);
    const int i = p->next_take;
    *index = i;
    if (i >= p->released) {
        pthread_mutex_unlock(&p->lock);
        OCLSEG_ERROR("ordered pool: task %d taken before it was released", i);
        return OCLSEG_ERR_INVALID_ARG;
    }
    p->next_take++;
    if (!p->started) { /* no workers: the task runs now, its messages printed as they come */
        pthread_mutex_unlock(&p->lock);
        return p->task(p->ctx, i);
    }
    pool_slot *slot = &p->slots[i % p->capacity];
    while (!slot->finished) pthread_cond_wait(&p->finished, &p->lock);
    const int st = slot->status;
    if (slot->messages[0]) fputs(slot->messages, stderr);
    slot->finished = 0;
    slot->messages[0] = '\0';
    pthread_mutex_unlock(&p->lock);
    return st;
}

int oclseg_ordered_pool_taken(const oclseg_ordered_pool *p) { return p->next_take; }

int oclseg_ordered_pool_threads(const oclseg_ordered_pool *p) { return p->started; }

void oclseg_ordered_pool_free(oclseg_ordered_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int t = 0; t < p->started; t++) pthread_join(p->tid[t], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->finished);
    free(p->slots);
    free(p->tid);
    free(p);
}
