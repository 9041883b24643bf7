/* Training augmentation beyond flips, deterministic from (seed, epoch, sample): 90-degree
 * rotations/transposes, random affine (rotation, scale, translation), random resized crop
 * (one inverse mapping, images bilinear and masks nearest), and colour jitter. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "oclseg/data.h"

static const double PI = 3.14159265358979323846;

/* Uniform double in [0, 1) from a splitmix64 stream. */
static double uniform01(uint64_t *state) {
    *state += 0x9e3779b97f4a7c15ULL;
    return (double)(oclseg_mix64(*state) >> 11) * (1.0 / 9007199254740992.0);
}

static double uniform(uint64_t *state, double lo, double hi) {
    return lo + (hi - lo) * uniform01(state);
}

int oclseg_augment_config_active(const oclseg_augment_config *c) {
    return c && (c->dihedral || c->rotate_deg > 0 || c->scale > 0 || c->translate > 0 ||
                 c->crop_min > 0 || c->brightness > 0 || c->contrast > 0 || c->saturation > 0 ||
                 c->hue > 0);
}

oclseg_augment oclseg_augment_draw_config(const oclseg_augment_config *c, uint64_t seed,
                                          int epoch, int sample_index) {
    oclseg_augment a = oclseg_augment_draw(seed, epoch, sample_index); /* the seed recipe's flips */
    if (!c->flips) a.flip_h = a.flip_v = 0;
    uint64_t counter = ((uint64_t)(uint32_t)epoch << 32) | (uint32_t)sample_index;
    uint64_t state = oclseg_mix64(seed ^ oclseg_mix64(counter ^ 0x6175676d656e74ULL));
    if (c->dihedral) a.transpose = uniform01(&state) < 0.5;
    double angle = c->rotate_deg > 0 ? uniform(&state, -c->rotate_deg, c->rotate_deg) : 0.0;
    double scale = c->scale > 0 ? uniform(&state, 1.0 - c->scale, 1.0 + c->scale) : 1.0;
    double tx = c->translate > 0 ? uniform(&state, -c->translate, c->translate) : 0.0;
    double ty = c->translate > 0 ? uniform(&state, -c->translate, c->translate) : 0.0;
    /* random resized crop (torchvision's RandomResizedCrop ranges): area share in
     * [crop_min, 1], aspect log-uniform in [3/4, 4/3], sides clipped to the image */
    double cw = 1.0, ch = 1.0, cx = 0.0, cy = 0.0;
    if (c->crop_min > 0) {
        const double area = uniform(&state, c->crop_min, 1.0);
        const double aspect = exp(uniform(&state, log(3.0 / 4.0), log(4.0 / 3.0)));
        cw = fmin(1.0, sqrt(area * aspect));
        ch = fmin(1.0, sqrt(area / aspect));
        cx = uniform(&state, -(1.0 - cw), 1.0 - cw);
        cy = uniform(&state, -(1.0 - ch), 1.0 - ch);
    }
    /* source (normalised, [-1, 1]) = crop(rotate(u) / scale + t): a 2x3 matrix */
    const double co = cos(angle * PI / 180.0) / scale, si = sin(angle * PI / 180.0) / scale;
    a.warp = c->rotate_deg > 0 || c->scale > 0 || c->translate > 0 || c->crop_min > 0;
    a.m[0] = (float)(cw * co);
    a.m[1] = (float)(-cw * si);
    a.m[2] = (float)(cx + cw * tx);
    a.m[3] = (float)(ch * si);
    a.m[4] = (float)(ch * co);
    a.m[5] = (float)(cy + ch * ty);
    a.colour = c->brightness > 0 || c->contrast > 0 || c->saturation > 0 || c->hue > 0;
    a.brightness = (float)(c->brightness > 0 ? uniform(&state, 1 - c->brightness, 1 + c->brightness) : 1);
    a.contrast = (float)(c->contrast > 0 ? uniform(&state, 1 - c->contrast, 1 + c->contrast) : 1);
    a.saturation = (float)(c->saturation > 0 ? uniform(&state, 1 - c->saturation, 1 + c->saturation) : 1);
    a.hue = (float)(c->hue > 0 ? uniform(&state, -c->hue, c->hue) : 0);
    return a;
}

/* Rotates an RGB colour (0..255 floats) around the gray axis by the angle whose cosine and
 * sine are c and s (a hue shift; the luma-preserving YIQ rotation). */
static inline void hue_rotate(float *rgb, double c, double s) {
    const double y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
    const double i = 0.596 * rgb[0] - 0.274 * rgb[1] - 0.322 * rgb[2];
    const double q = 0.211 * rgb[0] - 0.523 * rgb[1] + 0.312 * rgb[2];
    const double i2 = i * c - q * s, q2 = i * s + q * c;
    rgb[0] = (float)(y + 0.956 * i2 + 0.621 * q2);
    rgb[1] = (float)(y - 0.272 * i2 - 0.647 * q2);
    rgb[2] = (float)(y - 1.106 * i2 + 1.703 * q2);
}

/* floor(v + 0.5) clamped to 0..255 without a libm call: clamping first, then truncating, gives
 * the same byte (below 0 and from 255 up both ends agree; in between truncation is floor). */
static inline uint8_t round_clamp_f(float v) {
    float t = v + 0.5f;
    t = t < 0.0f ? 0.0f : t;
    t = t > 255.0f ? 255.0f : t;
    return (uint8_t)(int)t;
}

/* Colour jitter in place on S*S RGB pixels: brightness (scale), contrast (around the image's
 * mean luma), saturation (around each pixel's luma), hue rotation; rounded and clamped. The
 * hue's cosine and sine are taken once per image (the same values the per-pixel form took). */
static void colour_jitter(uint8_t *rgb, size_t pixels, const oclseg_augment *a) {
    if (!a->colour) return;
    double mean = 0.0;
    for (size_t i = 0; i < pixels; i++)
        mean += 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
    mean = mean / (double)pixels * a->brightness;
    const double turn = a->hue, hc = cos(2 * PI * turn), hs = sin(2 * PI * turn);
    const int hue = a->hue != 0.0f;
    const float brightness = a->brightness, saturation = a->saturation;
    const double contrast = a->contrast;
    for (size_t i = 0; i < pixels; i++) {
        float v[3];
        for (int c = 0; c < 3; c++) v[c] = rgb[3 * i + c] * brightness;
        for (int c = 0; c < 3; c++) v[c] = (float)(mean + (v[c] - mean) * contrast);
        const float luma = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
        for (int c = 0; c < 3; c++) v[c] = luma + (v[c] - luma) * saturation;
        if (hue) hue_rotate(v, hc, hs);
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = round_clamp_f(v[c]);
    }
}

/* The largest S the row tables of oclseg_augment_apply hold on the stack. */
enum { ROW_MAX = OCLSEG_MAX_IMAGE_SIZE };

/* Long (~60 lines): the row tables, then one branch-free loop over the row's pixels. Every value
 * is computed by the same double expressions as the per-pixel form it replaced (the same bytes;
 * the build has no FP contraction), with the flips and transpose resolved per row. */
void oclseg_augment_apply(const uint8_t *rgb, const uint8_t *mask, int size,
                          const oclseg_augment *a, uint8_t *out_rgb, uint8_t *out_mask) {
    const int S = size;
    static _Thread_local double centre[ROW_MAX], us[ROW_MAX], vs[ROW_MAX];
    /* output pixel centres in [-1, 1] */
    for (int x = 0; x < S; x++) centre[x] = (x + 0.5) * 2.0 / S - 1.0;
    const double m0 = a->m[0], m1 = a->m[1], m2 = a->m[2], m3 = a->m[3], m4 = a->m[4],
                 m5 = a->m[5];
    const double hi = S - 1;
    for (int y = 0; y < S; y++) {
        /* the dihedral part (flips, transpose) of this row: u and v of each pixel */
        for (int x = 0; x < S; x++) {
            const double u = a->flip_h ? -centre[x] : centre[x];
            const double v = a->flip_v ? -centre[y] : centre[y];
            us[x] = a->transpose ? v : u;
            vs[x] = a->transpose ? u : v;
        }
        if (a->warp)
            for (int x = 0; x < S; x++) {
                const double u = us[x], v = vs[x];
                us[x] = m0 * u + m1 * v + m2;
                vs[x] = m3 * u + m4 * v + m5;
            }
        uint8_t *orow = out_rgb + (size_t)y * S * 3;
        uint8_t *mrow = out_mask ? out_mask + (size_t)y * S : NULL;
        for (int x = 0; x < S; x++) {
            /* source pixel coordinates, clamped to the image (edge replication) */
            double fx = (us[x] + 1.0) * S / 2.0 - 0.5, fy = (vs[x] + 1.0) * S / 2.0 - 0.5;
            fx = fx < 0 ? 0 : fx;
            fx = fx > hi ? hi : fx;
            fy = fy < 0 ? 0 : fy;
            fy = fy > hi ? hi : fy;
            const int x0 = (int)fx, y0 = (int)fy;
            const int dx = x0 + 1 < S, dy = y0 + 1 < S; /* 0 at the last column/row */
            const double wx = fx - x0, wy = fy - y0;
            const uint8_t *p00 = rgb + ((size_t)y0 * S + x0) * 3;
            const uint8_t *p01 = p00 + 3 * dx, *p10 = p00 + (size_t)3 * S * dy;
            const uint8_t *p11 = p10 + 3 * dx;
            for (int c = 0; c < 3; c++) {
                const double top = p00[c] * (1 - wx) + p01[c] * wx;
                const double bot = p10[c] * (1 - wx) + p11[c] * wx;
                /* >= 0, so truncation is the floor */
                orow[3 * x + c] = (uint8_t)(int)(top * (1 - wy) + bot * wy + 0.5);
            }
            if (mask && mrow) {
                const int nx = (int)(fx + 0.5), ny = (int)(fy + 0.5);
                mrow[x] = mask[(size_t)ny * S + nx];
            }
        }
    }
    colour_jitter(out_rgb, (size_t)S * S, a);
}
