/* The prefetching batch loader: a ring of prefetch + 1 batch buffers; worker threads take the
 * images of queued batches one at a time, oldest batch first, so every image's bytes are those
 * oclseg_dataset_batch gives whatever the thread count or timing. */
#include "oclseg/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data_internal.h"
#include "oclseg/util.h"

typedef enum slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_TAKEN } slot_state;

typedef struct loader_slot {
    float *images, *masks;
    int *indices;
    oclseg_augment *aug;
    int has_aug;
    int count;
    int next;       /* the next image a worker starts */
    int unfinished; /* images started or not whose work is not done */
    int status;     /* the first failing image's error (by image order) */
    int failed_at;  /* its image (count: none) */
    slot_state state;
} loader_slot;

struct oclseg_loader {
    const oclseg_dataset *ds;
    oclseg_loader_options o;
    loader_slot *slots;
    int nslots;
    int head;   /* the oldest queued (or taken) slot */
    int queued; /* queued, not taken */
    int taken;  /* the slot in use by the caller, -1: none */
    pthread_mutex_t lock;
    pthread_cond_t work; /* workers: an image to start, or quit */
    pthread_cond_t done; /* the caller: a batch finished */
    int quit;
    pthread_t *threads;
    int started;
    float lut[3][256];
    uint8_t *main_scratch; /* threads == 0: the caller's scratch */
};

int oclseg_loader_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n > 4 ? 4 : (int)n;
}

static size_t plane_of(const oclseg_loader *l) { return (size_t)l->ds->size * l->ds->size; }

/* Image b of slot s (no lock held); records its status under the lock. */
static void assemble(oclseg_loader *l, loader_slot *s, int b, uint8_t *scratch) {
    const size_t plane = plane_of(l);
    int st = data_sample_assemble(l->ds, s->indices[b], s->has_aug ? &s->aug[b] : NULL, l->lut,
                                  scratch, s->images + (size_t)b * 3 * plane,
                                  s->masks + (size_t)b * plane);
    pthread_mutex_lock(&l->lock);
    if (st != OCLSEG_OK && b < s->failed_at) {
        s->status = st;
        s->failed_at = b;
    }
    if (--s->unfinished == 0) pthread_cond_broadcast(&l->done);
    pthread_mutex_unlock(&l->lock);
}

/* The oldest queued slot with an image not started (under the lock), or NULL. */
static loader_slot *next_work(oclseg_loader *l) {
    for (int k = 0; k < l->nslots; k++) {
        loader_slot *s = &l->slots[(l->head + k) % l->nslots];
        if (s->state == SLOT_QUEUED && s->next < s->count) return s;
    }
    return NULL;
}

static void *worker(void *arg) {
    oclseg_loader *l = arg;
    uint8_t *scratch = malloc(plane_of(l) * 4);
    pthread_mutex_lock(&l->lock);
    for (;;) {
        loader_slot *s;
        while (!l->quit && !(s = next_work(l))) pthread_cond_wait(&l->work, &l->lock);
        if (l->quit) break;
        const int b = s->next++;
        pthread_mutex_unlock(&l->lock);
        if (scratch) {
            assemble(l, s, b, scratch);
        } else {
            OCLSEG_ERROR("out of memory for a loader thread's %d-pixel buffer", (int)plane_of(l));
            pthread_mutex_lock(&l->lock);
            if (b < s->failed_at) {
                s->status = OCLSEG_ERR_OUT_OF_MEMORY;
                s->failed_at = b;
            }
            if (--s->unfinished == 0) pthread_cond_broadcast(&l->done);
            pthread_mutex_unlock(&l->lock);
        }
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    free(scratch);
    return NULL;
}

int oclseg_loader_create(const oclseg_dataset *ds, const oclseg_loader_options *o,
                         oclseg_loader **out) {
    if (!ds || !o || !out || o->threads < 0 || o->prefetch < 1 || o->max_batch < 1) {
        OCLSEG_ERROR("oclseg_loader_create: invalid arguments (threads %d, prefetch %d, batch %d)",
                     o ? o->threads : 0, o ? o->prefetch : 0, o ? o->max_batch : 0);
        return OCLSEG_ERR_INVALID_ARG;
    }
    *out = NULL;
    oclseg_loader *l = calloc(1, sizeof *l);
    if (!l) return OCLSEG_ERR_OUT_OF_MEMORY;
    l->ds = ds;
    l->o = *o;
    l->taken = -1;
    l->nslots = o->threads > 0 ? o->prefetch + 1 : 2;
    data_normalize_lut(l->lut);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->done, NULL);
    const size_t plane = plane_of(l), B = (size_t)o->max_batch;
    int ok = (l->slots = calloc((size_t)l->nslots, sizeof *l->slots)) != NULL;
    for (int k = 0; ok && k < l->nslots; k++) {
        loader_slot *s = &l->slots[k];
        s->images = malloc(B * 3 * plane * sizeof(float));
        s->masks = malloc(B * plane * sizeof(float));
        s->indices = malloc(B * sizeof(int));
        s->aug = malloc(B * sizeof *s->aug);
        ok = s->images && s->masks && s->indices && s->aug;
    }
    if (ok && o->threads == 0) ok = (l->main_scratch = malloc(plane * 4)) != NULL;
    if (ok && o->threads > 0) ok = (l->threads = calloc((size_t)o->threads, sizeof(pthread_t))) != NULL;
    if (!ok) {
        OCLSEG_ERROR("out of memory for the loader's %d batches of %d images at %dx%d",
                     l->nslots, o->max_batch, ds->size, ds->size);
        oclseg_loader_free(l);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    for (; l->started < o->threads; l->started++)
        if (pthread_create(&l->threads[l->started], NULL, worker, l) != 0) break;
    if (l->started == 0 && o->threads > 0) {
        OCLSEG_ERROR("cannot start the loader's %d threads", o->threads);
        oclseg_loader_free(l);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    *out = l;
    return OCLSEG_OK;
}

/* Returns the taken slot to the ring (under the lock). */
static void release_taken(oclseg_loader *l) {
    if (l->taken < 0) return;
    l->slots[l->taken].state = SLOT_FREE;
    l->head = (l->head + 1) % l->nslots;
    l->taken = -1;
}

int oclseg_loader_submit(oclseg_loader *l, const int *indices, int count,
                         const oclseg_augment *aug) {
    if (!l || count < 0 || count > l->o.max_batch || (count > 0 && !indices)) {
        OCLSEG_ERROR("oclseg_loader_submit: invalid batch of %d images (at most %d)", count,
                     l ? l->o.max_batch : 0);
        return OCLSEG_ERR_INVALID_ARG;
    }
    pthread_mutex_lock(&l->lock);
    if (oclseg_loader_room(l) <= 0) {
        pthread_mutex_unlock(&l->lock);
        OCLSEG_ERROR("oclseg_loader_submit: %d batches queued already", l->queued);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const int used = l->queued + (l->taken >= 0);
    loader_slot *s = &l->slots[(l->head + used) % l->nslots];
    s->count = count;
    if (count > 0) memcpy(s->indices, indices, (size_t)count * sizeof(int));
    s->has_aug = aug != NULL;
    if (aug && count > 0) memcpy(s->aug, aug, (size_t)count * sizeof *aug);
    s->next = 0;
    s->unfinished = count;
    s->status = OCLSEG_OK;
    s->failed_at = count;
    s->state = SLOT_QUEUED;
    l->queued++;
    if (l->o.threads > 0) pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->lock);
    return OCLSEG_OK;
}

int oclseg_loader_queued(const oclseg_loader *l) { return l ? l->queued : 0; }

int oclseg_loader_room(const oclseg_loader *l) {
    return l ? (l->o.threads > 0 ? l->o.prefetch : 1) - l->queued : 0;
}

int oclseg_loader_take(oclseg_loader *l, const float **images, const float **masks, int *count,
                       double *waited_s) {
    if (waited_s) *waited_s = 0;
    pthread_mutex_lock(&l->lock);
    release_taken(l);
    if (l->queued == 0) {
        pthread_mutex_unlock(&l->lock);
        OCLSEG_ERROR("oclseg_loader_take: no batch queued");
        return OCLSEG_ERR_INVALID_ARG;
    }
    loader_slot *s = &l->slots[l->head];
    const double t0 = oclseg_now_s();
    if (l->o.threads == 0) { /* assembled here, now */
        pthread_mutex_unlock(&l->lock);
        for (int b = 0; b < s->count; b++) {
            s->next = b + 1;
            assemble(l, s, b, l->main_scratch);
        }
        pthread_mutex_lock(&l->lock);
    }
    while (s->unfinished > 0) pthread_cond_wait(&l->done, &l->lock);
    if (waited_s) *waited_s = oclseg_now_s() - t0;
    s->state = SLOT_TAKEN;
    l->taken = l->head;
    l->queued--;
    const int st = s->status;
    pthread_mutex_unlock(&l->lock);
    *images = s->images;
    *masks = s->masks;
    *count = s->count;
    return st;
}

void oclseg_loader_cancel(oclseg_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    release_taken(l);
    for (int k = 0; k < l->queued; k++) {
        loader_slot *s = &l->slots[(l->head + k) % l->nslots];
        s->unfinished -= s->count - s->next; /* never to be started */
        s->next = s->count;
    }
    for (int k = 0; k < l->queued; k++) {
        loader_slot *s = &l->slots[(l->head + k) % l->nslots];
        while (s->unfinished > 0) pthread_cond_wait(&l->done, &l->lock);
        s->state = SLOT_FREE;
    }
    l->head = (l->head + l->queued) % l->nslots;
    l->queued = 0;
    pthread_mutex_unlock(&l->lock);
}

void oclseg_loader_free(oclseg_loader *l) {
    if (!l) return;
    oclseg_loader_cancel(l);
    pthread_mutex_lock(&l->lock);
    l->quit = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->lock);
    for (int t = 0; t < l->started; t++) pthread_join(l->threads[t], NULL);
    free(l->threads);
    for (int k = 0; l->slots && k < l->nslots; k++) {
        free(l->slots[k].images);
        free(l->slots[k].masks);
        free(l->slots[k].indices);
        free(l->slots[k].aug);
    }
    free(l->slots);
    free(l->main_scratch);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->done);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
