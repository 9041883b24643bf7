/* Prediction files of the application layer: masks, overlays and probability maps of images. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oclseg/infer.h"
#include "oclseg/env.h"
#include "oclseg/metrics.h"
#include "oclseg/ordered_pool.h"
#include "oclseg/safetensors.h"
#include "oclseg/util.h"

/* The overlay of rgb and mask into out (same size, RGB); `rows` (width * height bytes) and
 * `column` (width ints) are scratch. A lesion pixel is on the contour when a pixel within
 * `thick` (Chebyshev) of it is background or outside the image: when the square window around it
 * is not all lesion, found separably (a running count along each row, then along each column). */
static void overlay_into(const oclseg_image *rgb, const uint8_t *mask, uint8_t *out,
                         uint8_t *rows, int *column) {
    const int w = rgb->width, h = rgb->height;
    const int thick = w > 600 ? 3 : 1, side = 2 * thick + 1;
    for (int y = 0; y < h; y++) { /* rows[x]: mask[x - thick .. x + thick] all lesion */
        const uint8_t *m = mask + (size_t)y * w;
        uint8_t *o = rows + (size_t)y * w;
        int run = 0;
        for (int x = 0; x < thick && x < w; x++) run += m[x] != 0;
        for (int x = 0; x < w; x++) {
            if (x + thick < w) run += m[x + thick] != 0;
            if (x - thick - 1 >= 0) run -= m[x - thick - 1] != 0;
            o[x] = run == side;
        }
    }
    memset(column, 0, (size_t)w * sizeof *column); /* rows y - thick .. y + thick, summed */
    for (int y = 0; y < thick && y < h; y++)
        for (int x = 0; x < w; x++) column[x] += rows[(size_t)y * w + x];
    for (int y = 0; y < h; y++) {
        if (y + thick < h)
            for (int x = 0; x < w; x++) column[x] += rows[(size_t)(y + thick) * w + x];
        if (y - thick - 1 >= 0)
            for (int x = 0; x < w; x++) column[x] -= rows[(size_t)(y - thick - 1) * w + x];
        const uint8_t *m = mask + (size_t)y * w;
        const uint8_t *src = rgb->pixels + (size_t)y * w * 3;
        uint8_t *dst = out + (size_t)y * w * 3;
        memcpy(dst, src, (size_t)w * 3); /* background as it is; the lesion redrawn below */
        for (int x = 0; x < w; x++, src += 3, dst += 3) {
            if (!m[x]) {
                continue;
            } else if (column[x] != side) { /* bright green contour */
                dst[0] = 0;
                dst[1] = 255;
                dst[2] = 0;
            } else { /* light green tint */
                dst[0] = (uint8_t)(src[0] * 3 / 4);
                dst[1] = (uint8_t)((src[1] * 3 + 255) / 4);
                dst[2] = (uint8_t)(src[2] * 3 / 4);
            }
        }
    }
}

int oclseg_overlay(const oclseg_image *rgb, const oclseg_image *mask, oclseg_image *out) {
    const int w = rgb->width, h = rgb->height;
    TRY(oclseg_image_create(out, w, h, 3));
    uint8_t *rows = malloc((size_t)w * h);
    int *column = malloc((size_t)w * sizeof *column);
    if (!rows || !column) {
        free(rows);
        free(column);
        oclseg_image_free(out);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    overlay_into(rgb, mask->pixels, out->pixels, rows, column);
    free(rows);
    free(column);
    return OCLSEG_OK;
}

int oclseg_write_npy_f32(const char *path, const float *data, int height, int width) {
    static const uint16_t probe = 1;
    if (*(const unsigned char *)&probe != 1) {
        OCLSEG_ERROR("%s: .npy output is written little-endian only", path);
        return OCLSEG_ERR_UNSUPPORTED;
    }
    /* magic, version 1.0, header length, then the header dict padded with spaces and a newline
     * so that the data starts at a multiple of 64 bytes */
    char header[128];
    int len = snprintf(header, sizeof header,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", height,
                       width);
    int total = (10 + len + 1 + 63) / 64 * 64;
    size_t nbytes = (size_t)height * width * sizeof *data;
    unsigned char *buf = malloc((size_t)total + nbytes);
    if (!buf) return OCLSEG_ERR_OUT_OF_MEMORY;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)((total - 10) & 0xff);
    buf[9] = (unsigned char)((total - 10) >> 8);
    memset(buf + 10, ' ', (size_t)total - 10);
    memcpy(buf + 10, header, (size_t)len);
    buf[total - 1] = '\n';
    memcpy(buf + total, data, nbytes);
    int st = oclseg_write_output_atomic(path, buf, (size_t)total + nbytes);
    free(buf);
    return st;
}

int oclseg_write_output_atomic(const char *path, const void *data, size_t size) {
    return oclseg_file_write_replace(path, data, size);
}

int oclseg_write_png_atomic(const char *path, const oclseg_image *img) {
    uint8_t *png = NULL;
    size_t size = 0;
    int st = oclseg_png_encode_fast(img, &png, &size);
    if (st == OCLSEG_OK) st = oclseg_write_output_atomic(path, png, size);
    free(png);
    return st;
}

/* "dir/ISIC_0001.jpg" -> "ISIC_0001" */
static void file_id(const char *path, char *out, size_t size) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, size, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
}

/* ---- the stages of one image ---------------------------------------------------------------- */

enum { STAGE_DECODE, STAGE_RESIZE, STAGE_INFER, STAGE_MASK, STAGE_OVERLAY, STAGE_ENCODE };
const char *const oclseg_predict_stage_names[OCLSEG_PREDICT_STAGES] = {
    "decode", "resize", "inference", "upsample+mask", "overlay", "PNG encode+write"};

/* One image on its way: decoded and resized (input), run (probs), written. */
typedef struct predict_job {
    const char *path;
    int state, status;
    int width, height;
    oclseg_image rgb;   /* full resolution, kept for the overlay */
    float *input;       /* (3, S, S) normalised */
    float *probs;       /* (S, S) */
    double seconds[OCLSEG_PREDICT_STAGES];
    char messages[2048]; /* its error messages, printed in input order */
} predict_job;

/* A worker's buffers for the full-resolution stages, kept from image to image. */
typedef struct finish_scratch {
    size_t pixels; /* what the buffers hold: pixels, and columns of a row */
    int columns;
    uint8_t *mask, *overlay, *rows;
    int *column;
    float *prob_full;
} finish_scratch;

static void scratch_free(finish_scratch *s) {
    free(s->mask);
    free(s->overlay);
    free(s->rows);
    free(s->column);
    free(s->prob_full);
    memset(s, 0, sizeof *s);
}

static int scratch_reserve(finish_scratch *s, int width, int height, int probs) {
    size_t n = (size_t)width * height;
    if (n > s->pixels || width > s->columns || (probs && !s->prob_full)) {
        if (n < s->pixels) n = s->pixels; /* the largest image and the widest row so far */
        if (width < s->columns) width = s->columns;
        scratch_free(s);
        s->mask = malloc(n);
        s->overlay = malloc(3 * n);
        s->rows = malloc(n);
        s->column = malloc((size_t)width * sizeof *s->column);
        s->prob_full = probs ? malloc(n * sizeof *s->prob_full) : NULL;
        if (!s->mask || !s->overlay || !s->rows || !s->column || (probs && !s->prob_full)) {
            scratch_free(s);
            return OCLSEG_ERR_OUT_OF_MEMORY;
        }
        s->pixels = n;
        s->columns = width;
    }
    return OCLSEG_OK;
}

/* Reads, decodes and resizes job->path into job->input (S x S, normalised); the full image is
 * kept in job->rgb when keep_rgb (for the overlay). */
static int decode_stage(predict_job *job, int size, int keep_rgb) {
    struct stat sb; /* a fifo or device is not opened: reading it could block */
    if (stat(job->path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        OCLSEG_ERROR("%s: not a regular file", job->path);
        return OCLSEG_ERR_IO;
    }
    double t0 = oclseg_now_s();
    TRY(oclseg_image_load(job->path, 3, &job->rgb));
    double t1 = oclseg_now_s();
    job->seconds[STAGE_DECODE] += t1 - t0;
    job->width = job->rgb.width;
    job->height = job->rgb.height;
    oclseg_image small = {0};
    TRY(oclseg_resize_bilinear(&job->rgb, size, size, &small));
    if (!job->input && !(job->input = malloc((size_t)3 * size * size * sizeof *job->input))) {
        oclseg_image_free(&small);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    oclseg_image_normalize(small.pixels, size, size, job->input);
    oclseg_image_free(&small);
    if (!keep_rgb) oclseg_image_free(&job->rgb);
    job->seconds[STAGE_RESIZE] += oclseg_now_s() - t1;
    return OCLSEG_OK;
}

/* What the full-resolution stages write. */
typedef struct finish_options {
    const char *out_dir;
    const oclseg_predict_options *predict;
    int size, overlay, probs;
} finish_options;

/* The mask (and overlay, probabilities) of a job whose probs are in: written to out_dir. */
static int finish_stage(predict_job *job, const finish_options *fo, finish_scratch *s) {
    const int w = job->width, h = job->height;
    TRY(scratch_reserve(s, w, h, fo->probs));
    double t0 = oclseg_now_s();
    /* as eval scores it (evaluate.c) */
    TRY(oclseg_probs_to_mask_at(job->probs, fo->size, w, h, fo->predict,
                                fo->probs ? s->prob_full : NULL, s->mask));
    for (size_t i = 0; i < (size_t)w * h; i++) s->mask[i] = s->mask[i] ? 255 : 0;
    double t1 = oclseg_now_s();
    job->seconds[STAGE_MASK] += t1 - t0;
    char id[256], path[OCLSEG_PATH_MAX + 300];
    file_id(job->path, id, sizeof id);
    oclseg_image mask = {.width = w, .height = h, .channels = 1, .pixels = s->mask};
    snprintf(path, sizeof path, "%s/%s_mask.png", fo->out_dir, id);
    int st = oclseg_write_png_atomic(path, &mask);
    double t2 = oclseg_now_s();
    job->seconds[STAGE_ENCODE] += t2 - t1;
    if (st == OCLSEG_OK && fo->overlay) {
        overlay_into(&job->rgb, s->mask, s->overlay, s->rows, s->column);
        double t3 = oclseg_now_s();
        job->seconds[STAGE_OVERLAY] += t3 - t2;
        oclseg_image over = {.width = w, .height = h, .channels = 3, .pixels = s->overlay};
        snprintf(path, sizeof path, "%s/%s_overlay.png", fo->out_dir, id);
        st = oclseg_write_png_atomic(path, &over);
        job->seconds[STAGE_ENCODE] += oclseg_now_s() - t3;
    }
    if (st == OCLSEG_OK && fo->probs) {
        snprintf(path, sizeof path, "%s/%s_prob.npy", fo->out_dir, id);
        st = oclseg_write_npy_f32(path, s->prob_full, h, w);
    }
    return st;
}

static void job_release(predict_job *job) {
    oclseg_image_free(&job->rgb);
    free(job->input);
    free(job->probs);
    job->input = job->probs = NULL;
}

int oclseg_predict_file(oclseg_infer *inf, const char *image_path, const char *out_dir,
                        const oclseg_predict_options *o) {
    oclseg_predict_options defaults;
    oclseg_predict_options_default(&defaults);
    if (!o) o = &defaults;
    const int size = inf->model->cfg.size;
    predict_job job = {.path = image_path};
    finish_scratch scratch = {0};
    const finish_options fo = {out_dir, o, size, 1, inf->write_probs};
    int st = decode_stage(&job, size, 1);
    if (st == OCLSEG_OK) st = oclseg_infer_batch_tta(inf, job.input, 1, o->tta_flips, inf->probs);
    job.probs = inf->probs;
    if (st == OCLSEG_OK) st = finish_stage(&job, &fo, &scratch);
    job.probs = NULL;
    job_release(&job);
    scratch_free(&scratch);
    return st;
}

/* ---- the pipeline: worker threads around batched device inference ---------------------------- */

enum {
    JOB_WAITING,   /* not started (or outside the window) */
    JOB_DECODING,  /* a worker decodes it */
    JOB_DECODED,   /* input ready for the device */
    JOB_INFERRING, /* in the device batch */
    JOB_INFERRED,  /* probabilities ready */
    JOB_FINISHING, /* a worker writes its outputs */
    JOB_DONE,      /* finished (status says how) */
    JOB_DROPPED,   /* never finished: the run stopped */
};

typedef struct pipeline {
    pthread_mutex_t lock;
    pthread_cond_t work, changed; /* workers wait for work, the main thread for progress */
    predict_job *jobs;
    int count;
    int window_end;  /* jobs below it may be decoded */
    int next_decode; /* the next job to decode */
    int busy;        /* jobs in a worker's hands */
    int stopping, quit;
    int size, keep_rgb;
    finish_options fo;
} pipeline;

/* The lowest job ready to be finished, or -1. */
static int next_to_finish(const pipeline *p, int from) {
    for (int i = from; i < p->window_end; i++)
        if (p->jobs[i].state == JOB_INFERRED) return i;
    return -1;
}

static void *worker_main(void *arg) {
    pipeline *p = arg;
    finish_scratch scratch = {0};
    int from = 0; /* jobs below it are done (the window only moves forward) */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (from < p->count && p->jobs[from].state >= JOB_DONE) from++;
        const int fin = next_to_finish(p, from);
        const int dec = !p->stopping && p->next_decode < p->window_end ? p->next_decode : -1;
        if (fin < 0 && dec < 0) {
            if (p->quit) break;
            pthread_cond_wait(&p->work, &p->lock);
            continue;
        }
        predict_job *job = &p->jobs[fin >= 0 ? fin : dec];
        if (fin >= 0) job->state = JOB_FINISHING;
        else job->state = JOB_DECODING, p->next_decode++;
        p->busy++;
        pthread_mutex_unlock(&p->lock);
        oclseg_log_capture(job->messages, sizeof job->messages);
        int st = fin >= 0 ? finish_stage(job, &p->fo, &scratch)
                          : decode_stage(job, p->size, p->keep_rgb);
        oclseg_log_capture(NULL, 0);
        if (fin >= 0) oclseg_image_free(&job->rgb); /* the large buffers go early */
        pthread_mutex_lock(&p->lock);
        p->busy--;
        job->status = st;
        job->state = fin >= 0 || st != OCLSEG_OK ? JOB_DONE : JOB_DECODED;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    scratch_free(&scratch);
    return NULL;
}

/* The next batch: up to `batch` decoded jobs from *next on, once every job up to the last of
 * them is decoded or failed (so a batch never depends on timing). Returns how many (0: not
 * ready yet; -1: no job left to run); their indices into idx; *next moves past them. */
static int take_batch(pipeline *p, int *next, int batch, int *idx) {
    int n = 0, i = *next;
    for (; i < p->count && n < batch; i++) {
        const int state = p->jobs[i].state;
        if (state == JOB_DONE) continue; /* failed to decode */
        if (state != JOB_DECODED) return 0;
        idx[n++] = i;
    }
    if (n == 0) {
        if (i >= p->count) *next = p->count;
        return i >= p->count ? -1 : 0;
    }
    *next = i;
    return n;
}

void oclseg_predict_run_options_default(oclseg_predict_run_options *o) {
    memset(o, 0, sizeof *o);
    oclseg_predict_options_default(&o->predict);
    o->out_dir = "predictions";
    o->batch = 1;
    o->overlay = 1;
}

/* Runs one batch on the device (main thread, lock not held) and hands its jobs to the workers. */
static int run_batch(oclseg_infer *inf, pipeline *p, const int *idx, int n, int tta,
                     float *images, oclseg_predict_stats *stats) {
    const size_t s2 = (size_t)p->size * p->size;
    for (int k = 0; k < n; k++)
        memcpy(images + (size_t)k * 3 * s2, p->jobs[idx[k]].input, 3 * s2 * sizeof *images);
    double t0 = oclseg_now_s();
    int st = oclseg_infer_batch_tta(inf, images, n, tta, inf->probs);
    stats->seconds[STAGE_INFER] += oclseg_now_s() - t0;
    for (int k = 0; st == OCLSEG_OK && k < n; k++) {
        predict_job *job = &p->jobs[idx[k]];
        if (!(job->probs = malloc(s2 * sizeof *job->probs))) st = OCLSEG_ERR_OUT_OF_MEMORY;
        else memcpy(job->probs, inf->probs + (size_t)k * s2, s2 * sizeof *job->probs);
    }
    return st;
}

/* Reports the finished jobs at the head in input order; returns the status that stops the run
 * (the first non-OK return of on_image). */
static int report_ready(pipeline *p, int *next, const oclseg_predict_run_options *o,
                        oclseg_predict_stats *stats, int window) {
    int stop = OCLSEG_OK;
    while (*next < p->count && p->jobs[*next].state >= JOB_DONE) {
        predict_job *job = &p->jobs[*next];
        if (job->state == JOB_DONE) {
            pthread_mutex_unlock(&p->lock);
            if (job->messages[0]) fputs(job->messages, stderr);
            for (int s = 0; s < OCLSEG_PREDICT_STAGES; s++) stats->seconds[s] += job->seconds[s];
            stats->images += job->status == OCLSEG_OK;
            int st = o->on_image ? o->on_image(o->user, *next, job->status) : job->status;
            pthread_mutex_lock(&p->lock);
            if (st != OCLSEG_OK && stop == OCLSEG_OK && !p->stopping) stop = st;
        }
        job_release(job);
        ++*next;
        if (!p->stopping && !stop)
            p->window_end = *next + window < p->count ? *next + window : p->count;
    }
    return stop;
}

int oclseg_predict_files(oclseg_infer *inf, const char *const *paths, int count,
                         const oclseg_predict_run_options *o, oclseg_predict_stats *stats) {
    memset(stats, 0, sizeof *stats);
    const int size = inf->model->cfg.size, tta = o->predict.tta_flips;
    const int batch = o->batch < 1 ? 1 : o->batch > inf->model->cfg.max_batch
                                             ? inf->model->cfg.max_batch : o->batch;
    int threads = o->threads > 0 ? o->threads : oclseg_default_threads();
    if (threads > count) threads = count < 1 ? 1 : count;
    const int window = 2 * batch + 2 * threads; /* images in memory at once */
    (void)oclseg_env_get(); /* read once, before the threads */
    pipeline p = {.count = count, .size = size, .keep_rgb = o->overlay,
                  .fo = {o->out_dir, &o->predict, size, o->overlay, inf->write_probs}};
    p.window_end = window < count ? window : count;
    const double t_start = oclseg_now_s();
    p.jobs = calloc((size_t)count + 1, sizeof *p.jobs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    int *idx = malloc((size_t)batch * sizeof *idx);
    float *images = malloc((size_t)batch * 3 * size * size * sizeof *images);
    if (!p.jobs || !tid || !idx || !images) {
        free(p.jobs);
        free(tid);
        free(idx);
        free(images);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    for (int i = 0; i < count; i++) p.jobs[i].path = paths[i];
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.work, NULL);
    pthread_cond_init(&p.changed, NULL);
    int started = 0, st = OCLSEG_OK;
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, worker_main, &p) != 0) break;
    if (started == 0) {
        OCLSEG_ERROR("predict: cannot start a worker thread");
        st = OCLSEG_ERR_OUT_OF_MEMORY;
        p.stopping = 1;
    }
    int next_infer = 0, next_report = 0;
    pthread_mutex_lock(&p.lock);
    pthread_cond_broadcast(&p.work);
    while (next_report < count) {
        int stop = report_ready(&p, &next_report, o, stats, window);
        if (stop != OCLSEG_OK) st = stop, p.stopping = 1;
        if (next_report >= count) break;
        const int n = p.stopping ? -1 : take_batch(&p, &next_infer, batch, idx);
        if (n > 0) {
            for (int k = 0; k < n; k++) p.jobs[idx[k]].state = JOB_INFERRING;
            pthread_mutex_unlock(&p.lock);
            int bst = run_batch(inf, &p, idx, n, tta, images, stats);
            pthread_mutex_lock(&p.lock);
            for (int k = 0; k < n; k++) p.jobs[idx[k]].state = bst == OCLSEG_OK ? JOB_INFERRED
                                                                             : JOB_DROPPED;
            if (bst != OCLSEG_OK) st = bst, p.stopping = 1;
            pthread_cond_broadcast(&p.work);
            continue;
        }
        if (p.stopping && p.busy == 0) { /* what no worker holds will not finish */
            for (int i = next_report; i < count; i++)
                if (p.jobs[i].state < JOB_DONE && p.jobs[i].state != JOB_INFERRED)
                    p.jobs[i].state = JOB_DROPPED;
            if (next_to_finish(&p, next_report) < 0) {
                report_ready(&p, &next_report, o, stats, window);
                for (int i = next_report; i < count; i++) p.jobs[i].state = JOB_DROPPED;
                report_ready(&p, &next_report, o, stats, window);
                break;
            }
            pthread_cond_broadcast(&p.work);
        }
        pthread_cond_wait(&p.changed, &p.lock);
    }
    p.quit = 1;
    pthread_cond_broadcast(&p.work);
    pthread_mutex_unlock(&p.lock);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    for (int i = 0; i < count; i++) job_release(&p.jobs[i]);
    pthread_mutex_destroy(&p.lock);
    pthread_cond_destroy(&p.work);
    pthread_cond_destroy(&p.changed);
    stats->threads = started;
    stats->batch = batch;
    stats->wall_s = oclseg_now_s() - t_start;
    free(p.jobs);
    free(tid);
    free(idx);
    free(images);
    return st;
}
