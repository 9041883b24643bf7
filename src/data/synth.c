/* Synthetic dermoscopy-like images with exact lesion masks, written in the ISIC 2016 layout. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data_internal.h"
#include "oclseg/data.h"
#include "oclseg/util.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- randomness: splitmix64 stream per image, hashed lattice for value noise ----------------- */

typedef struct rng {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r) {
    r->state += 0x9e3779b97f4a7c15ULL;
    return oclseg_mix64(r->state);
}

static double rng_uniform(rng *r, double lo, double hi) {
    return lo + (hi - lo) * (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static int rng_int(rng *r, int lo, int hi) { /* inclusive */
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static double lattice(uint64_t key, int ix, int iy) {
    uint64_t h = oclseg_mix64(key ^ oclseg_mix64(((uint64_t)(uint32_t)ix << 32) | (uint32_t)iy));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

static double smooth(double t) { return t * t * (3.0 - 2.0 * t); }

/* Value noise with its lattice precomputed over the image (the same values as value_noise,
 * looked up instead of hashed per pixel). */
typedef struct noise_grid {
    int nx, ny;
    double inv_scale;
    double *v;
} noise_grid;

static int grid_init(noise_grid *g, uint64_t key, double scale, int w, int h) {
    g->inv_scale = 1.0 / scale;
    g->nx = (int)(w / scale) + 3;
    g->ny = (int)(h / scale) + 3;
    g->v = malloc(sizeof(double) * (size_t)g->nx * (size_t)g->ny);
    if (!g->v) return OCLSEG_ERR_OUT_OF_MEMORY;
    for (int j = 0; j < g->ny; j++)
        for (int i = 0; i < g->nx; i++) g->v[(size_t)j * g->nx + i] = lattice(key, i, j);
    return OCLSEG_OK;
}

static double grid_sample(const noise_grid *g, double x, double y) {
    x *= g->inv_scale;
    y *= g->inv_scale;
    int ix = (int)x, iy = (int)y; /* x, y >= 0 */
    double tx = smooth(x - ix), ty = smooth(y - iy);
    const double *r0 = g->v + (size_t)iy * g->nx + ix, *r1 = r0 + g->nx;
    double top = r0[0] + (r0[1] - r0[0]) * tx, bottom = r1[0] + (r1[1] - r1[0]) * tx;
    return top + (bottom - top) * ty;
}

/* Two-octave fractal value noise in [0, 1): period `scale` pixels plus half of that. */
typedef struct fbm_field {
    noise_grid coarse, fine;
} fbm_field;

static int fbm_init(fbm_field *f, uint64_t key, double scale, int w, int h) {
    memset(f, 0, sizeof *f);
    int st = grid_init(&f->coarse, key, scale, w, h);
    if (st == OCLSEG_OK) st = grid_init(&f->fine, key ^ 0x5bd1e995ULL, scale / 2, w, h);
    return st;
}

static void fbm_free(fbm_field *f) {
    free(f->coarse.v);
    free(f->fine.v);
}

static double fbm_sample(const fbm_field *f, double x, double y) {
    return (2.0 * grid_sample(&f->coarse, x, y) + grid_sample(&f->fine, x, y)) / 3.0;
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static void lerp3(double *dst, const double *to, double t) {
    for (int c = 0; c < 3; c++) dst[c] += (to[c] - dst[c]) * t;
}

/* ---- one image ------------------------------------------------------------------------------ */

#define ANGLE_STEPS 1024
#define MAX_HARMONICS 6

typedef struct scene {
    int w, h;
    double skin[3], lesion_light[3], lesion_dark[3], blue_gray[3], hair[3], dark_frame[3];
    double cx, cy, r0, rot, stretch; /* lesion centre, base radius, ellipse rotation/stretch */
    double cos_rot, sin_rot;
    double radius[ANGLE_STEPS];      /* lesion radius by angle (before stretching) */
    double contrast, edge_width, blotch_level, center_dark;
    int vignette;
    double vx, vy, vr, vsoft;
    uint64_t key_skin, key_red, key_var, key_blotch, key_pixel;
} scene;

static void make_scene(uint64_t seed, int index, scene *s) {
    rng r = {oclseg_mix64(seed ^ oclseg_mix64(0x5eed0000ULL + (uint64_t)index))};
    memset(s, 0, sizeof *s);
    s->w = rng_int(&r, 160, 320);
    double aspect = rng_uniform(&r, 0.7, 1.4); /* width / height */
    s->h = (int)clampd(floor(s->w / aspect + 0.5), 120, 420);

    /* skin: light to tanned, slight hue variation */
    double tone = rng_uniform(&r, 0.0, 1.0);
    s->skin[0] = 232 - 55 * tone + rng_uniform(&r, -8, 8);
    s->skin[1] = 192 - 70 * tone + rng_uniform(&r, -10, 8);
    s->skin[2] = 172 - 75 * tone + rng_uniform(&r, -10, 10);

    /* lesion colours: light brown to dark brown, blue-gray regression areas */
    double darkness = rng_uniform(&r, 0.0, 1.0);
    s->lesion_light[0] = 175 - 40 * darkness;
    s->lesion_light[1] = 115 - 35 * darkness;
    s->lesion_light[2] = 80 - 30 * darkness;
    s->lesion_dark[0] = 95 - 45 * darkness;
    s->lesion_dark[1] = 60 - 30 * darkness;
    s->lesion_dark[2] = 45 - 20 * darkness;
    s->blue_gray[0] = rng_uniform(&r, 95, 130);
    s->blue_gray[1] = s->blue_gray[0] + rng_uniform(&r, 0, 10);
    s->blue_gray[2] = s->blue_gray[0] + rng_uniform(&r, 15, 35);
    /* about a third of the lesions are faint: close to the skin tone */
    s->contrast = rng_uniform(&r, 0.0, 1.0) < 0.35 ? rng_uniform(&r, 0.18, 0.4)
                                                    : rng_uniform(&r, 0.45, 1.0);
    s->edge_width = rng_uniform(&r, 1.0, 6.0);
    s->blotch_level = rng_uniform(&r, 0.55, 0.9); /* higher: fewer blue-gray blotches */
    s->center_dark = rng_uniform(&r, 0.0, 0.5);

    /* lesion shape: irregular border from a few random harmonics */
    double m = s->w < s->h ? s->w : s->h;
    s->r0 = m * rng_uniform(&r, 0.13, 0.36);
    s->cx = s->w * (0.5 + rng_uniform(&r, -0.12, 0.12));
    s->cy = s->h * (0.5 + rng_uniform(&r, -0.12, 0.12));
    s->rot = rng_uniform(&r, 0, M_PI);
    s->stretch = rng_uniform(&r, 0.75, 1.3);
    s->cos_rot = cos(s->rot);
    s->sin_rot = sin(s->rot);
    double amp[MAX_HARMONICS], phase[MAX_HARMONICS];
    int harmonics = rng_int(&r, 2, MAX_HARMONICS);
    for (int k = 0; k < harmonics; k++) {
        amp[k] = rng_uniform(&r, 0.0, 0.28) / (1.0 + 0.5 * k);
        phase[k] = rng_uniform(&r, 0, 2 * M_PI);
    }
    for (int a = 0; a < ANGLE_STEPS; a++) {
        double theta = 2 * M_PI * a / ANGLE_STEPS, f = 1.0;
        for (int k = 0; k < harmonics; k++) f += amp[k] * cos((k + 2) * theta + phase[k]);
        s->radius[a] = s->r0 * clampd(f, 0.45, 1.6);
    }

    /* dermatoscope vignette: dark outside a circle (most images) */
    s->vignette = rng_uniform(&r, 0, 1) < 0.7;
    s->vx = s->w * (0.5 + rng_uniform(&r, -0.06, 0.06));
    s->vy = s->h * (0.5 + rng_uniform(&r, -0.06, 0.06));
    s->vr = 0.5 * sqrt((double)s->w * s->w + (double)s->h * s->h) * rng_uniform(&r, 0.62, 0.95);
    s->vsoft = rng_uniform(&r, 3, 20);
    double frame = rng_uniform(&r, 8, 45);
    s->dark_frame[0] = frame + 6;
    s->dark_frame[1] = frame;
    s->dark_frame[2] = frame;
    s->hair[0] = rng_uniform(&r, 25, 70);
    s->hair[1] = s->hair[0] * rng_uniform(&r, 0.7, 0.9);
    s->hair[2] = s->hair[1] * rng_uniform(&r, 0.75, 0.95);

    s->key_skin = rng_next(&r);
    s->key_red = rng_next(&r);
    s->key_var = rng_next(&r);
    s->key_blotch = rng_next(&r);
    s->key_pixel = rng_next(&r);
}

/* Signed distance-like margin of (x, y) to the lesion border: > 0 inside, in pixels. */
static double lesion_margin(const scene *s, double x, double y) {
    double dx = x - s->cx, dy = y - s->cy;
    const double c = s->cos_rot, sn = s->sin_rot;
    double u = (dx * c + dy * sn) / s->stretch, v = (-dx * sn + dy * c) * s->stretch;
    double rho = sqrt(u * u + v * v);
    double theta = atan2(v, u);
    if (theta < 0) theta += 2 * M_PI;
    double pos = theta / (2 * M_PI) * ANGLE_STEPS;
    int a0 = (int)pos % ANGLE_STEPS, a1 = (a0 + 1) % ANGLE_STEPS;
    double t = pos - floor(pos);
    double radius = s->radius[a0] + (s->radius[a1] - s->radius[a0]) * t;
    return radius - rho;
}

/* Draws a thick antialiased stroke (max-coverage into cov) through the points of a quadratic
 * Bezier curve. */
static void stroke_bezier(float *cov, int w, int h, const double p[3][2], double thickness) {
    double len = hypot(p[1][0] - p[0][0], p[1][1] - p[0][1]) + hypot(p[2][0] - p[1][0], p[2][1] - p[1][1]);
    int steps = (int)(len * 2) + 2;
    double rad = thickness * 0.5;
    for (int i = 0; i <= steps; i++) {
        double t = (double)i / steps, a = (1 - t) * (1 - t), b = 2 * (1 - t) * t, c = t * t;
        double x = a * p[0][0] + b * p[1][0] + c * p[2][0];
        double y = a * p[0][1] + b * p[1][1] + c * p[2][1];
        int x0 = (int)floor(x - rad - 1), x1 = (int)ceil(x + rad + 1);
        int y0 = (int)floor(y - rad - 1), y1 = (int)ceil(y + rad + 1);
        for (int yy = y0 < 0 ? 0 : y0; yy <= y1 && yy < h; yy++)
            for (int xx = x0 < 0 ? 0 : x0; xx <= x1 && xx < w; xx++) {
                double ddx = xx + 0.5 - x, ddy = yy + 0.5 - y, d2 = ddx * ddx + ddy * ddy;
                if (d2 >= (rad + 0.5) * (rad + 0.5)) continue;
                float k = (float)clampd(rad - sqrt(d2) + 0.5, 0, 1);
                if (k > cov[(size_t)yy * w + xx]) cov[(size_t)yy * w + xx] = k;
            }
    }
}

/* Long (~120 lines): the per-pixel compositing order of the scene (skin, lesion, hairs, bubbles,
 * ruler, vignette) is the byte-exact output contract; kept as one readable sequence. */
int oclseg_synth_render(uint64_t seed, int index, oclseg_image *image, oclseg_image *mask) {
    if (!image || !mask || index < 0) return OCLSEG_ERR_INVALID_ARG;
    scene s;
    make_scene(seed, index, &s);
    const int w = s.w, h = s.h;
    TRY(oclseg_image_create(image, w, h, 3));
    int status = oclseg_image_create(mask, w, h, 1);
    float *cov = status == OCLSEG_OK ? calloc((size_t)w * h, sizeof(float)) : NULL;
    if (!cov) {
        oclseg_image_free(image);
        oclseg_image_free(mask);
        if (status == OCLSEG_OK) OCLSEG_ERROR("out of memory rendering a synthetic image");
        return status == OCLSEG_OK ? OCLSEG_ERR_OUT_OF_MEMORY : status;
    }
    rng r = {oclseg_mix64(seed ^ 0xa11ce5ULL ^ oclseg_mix64((uint64_t)index))};
    fbm_field f_skin, f_red, f_var, f_blotch;
    status = fbm_init(&f_skin, s.key_skin, 40.0, w, h);
    if (status == OCLSEG_OK) status = fbm_init(&f_red, s.key_red, 70.0, w, h);
    if (status == OCLSEG_OK) status = fbm_init(&f_var, s.key_var, 12.0 + s.r0 * 0.15, w, h);
    if (status == OCLSEG_OK) status = fbm_init(&f_blotch, s.key_blotch, 9.0 + s.r0 * 0.1, w, h);
    if (status != OCLSEG_OK) {
        OCLSEG_ERROR("out of memory rendering a synthetic image");
        fbm_free(&f_skin);
        fbm_free(&f_red);
        fbm_free(&f_var);
        fbm_free(&f_blotch);
        free(cov);
        oclseg_image_free(image);
        oclseg_image_free(mask);
        return status;
    }

    /* hairs: dark thin curved lines across the image (over the lesion too) */
    int hairs = rng_uniform(&r, 0, 1) < 0.35 ? 0 : rng_int(&r, 1, 14);
    for (int i = 0; i < hairs; i++) {
        double p[3][2];
        double ang = rng_uniform(&r, 0, 2 * M_PI), half = 0.5 * rng_uniform(&r, 0.4, 1.3) * (w + h) / 2;
        double mx = rng_uniform(&r, 0, w), my = rng_uniform(&r, 0, h);
        p[0][0] = mx - cos(ang) * half;
        p[0][1] = my - sin(ang) * half;
        p[2][0] = mx + cos(ang) * half;
        p[2][1] = my + sin(ang) * half;
        p[1][0] = mx + rng_uniform(&r, -0.3, 0.3) * half;
        p[1][1] = my + rng_uniform(&r, -0.3, 0.3) * half;
        stroke_bezier(cov, w, h, (const double(*)[2])p, rng_uniform(&r, 1.0, 2.6));
    }
    /* ruler marks: short ticks along one side */
    if (rng_uniform(&r, 0, 1) < 0.2) {
        double y = h * rng_uniform(&r, 0.04, 0.12), spacing = rng_uniform(&r, 7, 12);
        for (double x = rng_uniform(&r, 5, 20); x < w * 0.9; x += spacing) {
            double len = ((int)(x / spacing) % 5 == 0) ? 12 : 6;
            double p[3][2] = {{x, y}, {x, y + len / 2}, {x, y + len}};
            stroke_bezier(cov, w, h, (const double(*)[2])p, 1.2);
        }
    }
    /* bubbles: bright rings with a slightly lighter inside */
    int bubbles = rng_uniform(&r, 0, 1) < 0.3 ? rng_int(&r, 1, 3) : 0;
    double bx[3], by[3], br[3];
    for (int i = 0; i < bubbles; i++) {
        bx[i] = rng_uniform(&r, 0, w);
        by[i] = rng_uniform(&r, 0, h);
        br[i] = rng_uniform(&r, 4, 18);
    }

    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const double px = x + 0.5, py = y + 0.5;
            double col[3];
            /* skin with low-frequency texture and reddish patches */
            double tex = fbm_sample(&f_skin, px, py) - 0.5;
            double red = fbm_sample(&f_red, px, py);
            for (int c = 0; c < 3; c++) col[c] = s.skin[c] * (1.0 + 0.16 * tex);
            double erythema = clampd((red - 0.55) * 2.0, 0, 1) * 0.5;
            col[1] -= 25 * erythema;
            col[2] -= 18 * erythema;

            /* lesion: exact mask from the border; the image has a soft edge */
            double margin = lesion_margin(&s, px, py);
            mask->pixels[(size_t)y * w + x] = margin > 0 ? 255 : 0;
            double alpha = clampd(margin / s.edge_width + 0.5, 0, 1);
            if (alpha > 0) {
                double var = fbm_sample(&f_var, px, py);
                double lcol[3] = {s.lesion_light[0], s.lesion_light[1], s.lesion_light[2]};
                double depth = clampd(margin / s.r0, 0, 1); /* 0 at the border, ~1 at centre */
                lerp3(lcol, s.lesion_dark, clampd(var * 1.3 - 0.2 + s.center_dark * depth, 0, 1));
                double blotch = fbm_sample(&f_blotch, px, py);
                if (blotch > s.blotch_level)
                    lerp3(lcol, s.blue_gray, clampd((blotch - s.blotch_level) * 6, 0, 0.85));
                lerp3(col, lcol, alpha * s.contrast);
            }
            /* bubbles */
            for (int i = 0; i < bubbles; i++) {
                double d = hypot(px - bx[i], py - by[i]);
                double ring = clampd(1.3 - fabs(d - br[i]), 0, 1);
                double white[3] = {250, 250, 250};
                if (d < br[i]) lerp3(col, white, 0.08);
                lerp3(col, white, 0.6 * ring);
            }
            /* hair and ruler coverage */
            double k = cov[(size_t)y * w + x];
            if (k > 0) lerp3(col, s.hair, 0.9 * k);
            /* dermatoscope vignette */
            if (s.vignette) {
                double d = sqrt((px - s.vx) * (px - s.vx) + (py - s.vy) * (py - s.vy));
                double v = clampd((d - s.vr) / s.vsoft + 0.5, 0, 1);
                if (v > 0) lerp3(col, s.dark_frame, smooth(v));
            }
            /* sensor noise: +-3 from a per-pixel hash */
            double noise = lattice(s.key_pixel, x, y) * 6.0 - 3.0;
            uint8_t *out = image->pixels + ((size_t)y * w + x) * 3;
            for (int c = 0; c < 3; c++) out[c] = (uint8_t)clampd(floor(col[c] + noise + 0.5), 0, 255);
        }
    free(cov);
    fbm_free(&f_skin);
    fbm_free(&f_red);
    fbm_free(&f_var);
    fbm_free(&f_blotch);
    return OCLSEG_OK;
}

/* ---- writing the layout ------------------------------------------------------------------------- */

static const char *const split_dirs[2][2] = {
    {"ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"},
    {"ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"},
};

typedef struct write_job {
    const char *out_dir;
    int n_train, total;
    uint64_t seed;
    pthread_mutex_t lock;
    int next, status; /* under lock: next index to take, first error */
} write_job;

/* Renders and writes image i and its mask. */
static int write_one(const write_job *job, int i) {
    const int split = i < job->n_train ? 0 : 1;
    char path[4600];
    oclseg_image image, mask;
    TRY(oclseg_synth_render(job->seed, i, &image, &mask));
    snprintf(path, sizeof path, "%s/%s/ISIC_%07d.jpg", job->out_dir, split_dirs[split][0], i);
    int status = oclseg_image_save_jpeg(path, &image, 90);
    if (status == OCLSEG_OK) {
        snprintf(path, sizeof path, "%s/%s/ISIC_%07d_Segmentation.png", job->out_dir,
                 split_dirs[split][1], i);
        status = oclseg_image_save_png(path, &mask);
    }
    oclseg_image_free(&image);
    oclseg_image_free(&mask);
    return status;
}

static void *write_worker(void *arg) {
    write_job *job = arg;
    for (;;) {
        pthread_mutex_lock(&job->lock);
        int i = job->status == OCLSEG_OK ? job->next++ : job->total;
        pthread_mutex_unlock(&job->lock);
        if (i >= job->total) return NULL;
        int status = write_one(job, i);
        if (status != OCLSEG_OK) {
            pthread_mutex_lock(&job->lock);
            if (job->status == OCLSEG_OK) job->status = status;
            pthread_mutex_unlock(&job->lock);
        }
    }
}

int oclseg_synth_write(const char *out_dir, int n_train, int n_test, uint64_t seed) {
    if (!out_dir || n_train < 0 || n_test < 0) {
        OCLSEG_ERROR("oclseg_synth_write: invalid arguments");
        return OCLSEG_ERR_INVALID_ARG;
    }
    char path[4600];
    for (int split = 0; split < 2; split++)
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/%s", out_dir, split_dirs[split][k]);
            if (oclseg_mkdir_p(path) != OCLSEG_OK) {
                OCLSEG_ERROR("cannot create folder %s: %s", path, strerror(errno));
                return OCLSEG_ERR_IO;
            }
        }
    /* ids: training 0 .. n_train-1, test n_train .. n_train+n_test-1 (unique across splits).
     * Every file depends only on (seed, id), so the threads do not change the bytes. */
    write_job job = {.out_dir = out_dir, .n_train = n_train, .total = n_train + n_test,
                     .seed = seed, .next = 0, .status = OCLSEG_OK};
    pthread_mutex_init(&job.lock, NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
    pthread_t threads[8];
    int started = 0;
    for (; started < n_threads; started++)
        if (pthread_create(&threads[started], NULL, write_worker, &job) != 0) break;
    if (started == 0) write_worker(&job);
    for (int t = 0; t < started; t++) pthread_join(threads[t], NULL);
    pthread_mutex_destroy(&job.lock);
    return job.status;
}
