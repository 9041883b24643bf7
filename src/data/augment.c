/* Training augmentation beyond flips, deterministic from (seed, epoch, sample): 90-degree
 * rotations/transposes, random affine (rotation, scale, translation), random resized crop
 * (one inverse mapping, images bilinear and masks nearest), and colour jitter. */
#include <math.h>
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

/* Rotates an RGB colour (0..255 floats) around the gray axis by `turn` of a full turn (a hue
 * shift; the luma-preserving YIQ rotation). */
static void hue_rotate(float *rgb, double turn) {
    const double y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
    const double i = 0.596 * rgb[0] - 0.274 * rgb[1] - 0.322 * rgb[2];
    const double q = 0.211 * rgb[0] - 0.523 * rgb[1] + 0.312 * rgb[2];
    const double c = cos(2 * PI * turn), s = sin(2 * PI * turn);
    const double i2 = i * c - q * s, q2 = i * s + q * c;
    rgb[0] = (float)(y + 0.956 * i2 + 0.621 * q2);
    rgb[1] = (float)(y - 0.272 * i2 - 0.647 * q2);
    rgb[2] = (float)(y - 1.106 * i2 + 1.703 * q2);
}

/* Colour jitter in place on S*S RGB pixels: brightness (scale), contrast (around the image's
 * mean luma), saturation (around each pixel's luma), hue rotation; rounded and clamped. */
static void colour_jitter(uint8_t *rgb, size_t pixels, const oclseg_augment *a) {
    if (!a->colour) return;
    double mean = 0.0;
    for (size_t i = 0; i < pixels; i++)
        mean += 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
    mean = mean / (double)pixels * a->brightness;
    for (size_t i = 0; i < pixels; i++) {
        float v[3];
        for (int c = 0; c < 3; c++) v[c] = rgb[3 * i + c] * a->brightness;
        for (int c = 0; c < 3; c++) v[c] = (float)(mean + (v[c] - mean) * a->contrast);
        const float luma = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
        for (int c = 0; c < 3; c++) v[c] = luma + (v[c] - luma) * a->saturation;
        if (a->hue != 0.0f) hue_rotate(v, a->hue);
        for (int c = 0; c < 3; c++) {
            const float r = floorf(v[c] + 0.5f);
            rgb[3 * i + c] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
        }
    }
}

void oclseg_augment_apply(const uint8_t *rgb, const uint8_t *mask, int size,
                          const oclseg_augment *a, uint8_t *out_rgb, uint8_t *out_mask) {
    const int S = size;
    for (int y = 0; y < S; y++) {
        for (int x = 0; x < S; x++) {
            /* output pixel centre in [-1, 1], then the dihedral part (flips, transpose) */
            double u = (x + 0.5) * 2.0 / S - 1.0, v = (y + 0.5) * 2.0 / S - 1.0;
            if (a->flip_h) u = -u;
            if (a->flip_v) v = -v;
            if (a->transpose) {
                const double t = u;
                u = v;
                v = t;
            }
            double su = u, sv = v;
            if (a->warp) {
                su = a->m[0] * u + a->m[1] * v + a->m[2];
                sv = a->m[3] * u + a->m[4] * v + a->m[5];
            }
            /* source pixel coordinates, clamped to the image (edge replication) */
            double fx = (su + 1.0) * S / 2.0 - 0.5, fy = (sv + 1.0) * S / 2.0 - 0.5;
            fx = fx < 0 ? 0 : fx > S - 1 ? S - 1 : fx;
            fy = fy < 0 ? 0 : fy > S - 1 ? S - 1 : fy;
            const int x0 = (int)fx, y0 = (int)fy;
            const int x1 = x0 + 1 < S ? x0 + 1 : x0, y1 = y0 + 1 < S ? y0 + 1 : y0;
            const double wx = fx - x0, wy = fy - y0;
            const size_t o = (size_t)y * S + x;
            for (int c = 0; c < 3; c++) {
                const double top = rgb[((size_t)y0 * S + x0) * 3 + c] * (1 - wx) +
                                   rgb[((size_t)y0 * S + x1) * 3 + c] * wx;
                const double bot = rgb[((size_t)y1 * S + x0) * 3 + c] * (1 - wx) +
                                   rgb[((size_t)y1 * S + x1) * 3 + c] * wx;
                out_rgb[o * 3 + c] = (uint8_t)floor(top * (1 - wy) + bot * wy + 0.5);
            }
            if (mask && out_mask) {
                const int nx = (int)floor(fx + 0.5), ny = (int)floor(fy + 0.5);
                out_mask[o] = mask[(size_t)ny * S + nx];
            }
        }
    }
    colour_jitter(out_rgb, (size_t)S * S, a);
}
