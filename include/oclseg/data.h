/* Host-side data layer: image decode/encode, resizing, ISIC folder scanning, the preloaded
 * dataset with batch assembly and flip augmentation, shuffling, and synthetic ISIC-like data. */
#ifndef OCLSEG_DATA_H
#define OCLSEG_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "oclseg/status.h"

/* ---- images --------------------------------------------------------------------------------- */

/* An 8-bit image, pixels interleaved row-major (HWC): pixel (x, y) channel c is at
 * pixels[(y * width + x) * channels + c]. channels is 1 (gray) or 3 (RGB). */
typedef struct oclseg_image {
    int width, height, channels;
    uint8_t *pixels;
} oclseg_image;

/* Decompression-bomb guards: files whose header claims more are rejected before any
 * allocation for the pixels; so are files too small to code the pixels their header claims
 * (PNG: deflate expands at most 1032:1; JPEG: at most 2048 pixels per byte). */
#define OCLSEG_IMAGE_MAX_SIDE 30000
#define OCLSEG_IMAGE_MAX_PIXELS 200000000LL

/* Allocates a zeroed width x height x channels image (channels 1 or 3). */
int oclseg_image_create(oclseg_image *img, int width, int height, int channels);
/* Frees the pixels and zeroes the struct (safe on a zeroed struct). */
void oclseg_image_free(oclseg_image *img);

/* Decodes a PNG or JPEG file (detected from its first bytes, not its name) to `channels`
 * (1: gray, 3: RGB). PNG: gray, gray+alpha, RGB, RGBA, palette, 1-16 bit (alpha is dropped,
 * 16-bit keeps the high byte). JPEG: gray, YCbCr/RGB, CMYK/YCCK (Adobe inverted or not).
 * Color to gray uses ITU-R 601 luma (as PIL's convert('L')). Truncated or corrupt files and
 * absurd dimensions give OCLSEG_ERR_FORMAT with a message naming the file; an unreadable file
 * OCLSEG_ERR_IO. */
int oclseg_image_load(const char *path, int channels, oclseg_image *out);
/* The same from bytes in memory; `name` is used in messages. */
int oclseg_image_decode(const void *data, size_t size, const char *name, int channels,
                        oclseg_image *out);
/* Writes an 8-bit gray or RGB PNG. */
int oclseg_image_save_png(const char *path, const oclseg_image *img);
/* Encodes an 8-bit gray or RGB PNG into a malloc'ed buffer (*data, *size), for speed: zlib level
 * 1 with run-length matching, gray unfiltered, RGB with the Sub filter (OpenCV's imwrite
 * defaults). The same pixels give the same bytes. */
int oclseg_png_encode_fast(const oclseg_image *img, uint8_t **data, size_t *size);
/* Writes a baseline JPEG (quality 1..100, 4:2:0 for RGB). Output bytes are deterministic. */
int oclseg_image_save_jpeg(const char *path, const oclseg_image *img, int quality);

/* ---- resizing --------------------------------------------------------------------------------- */

/* Antialiased bilinear resize, the algorithm of PIL's Image.resize(size, BILINEAR): a triangle
 * filter whose support is scaled by the shrink factor (plain bilinear with half-pixel centres
 * when enlarging), separable, horizontal pass first with a rounded 8-bit intermediate, fixed-point
 * weights (22 fraction bits), round to nearest and clamp. `dst` is allocated. */
int oclseg_resize_bilinear(const oclseg_image *src, int out_width, int out_height,
                           oclseg_image *dst);
/* Nearest-neighbour resize with PIL's NEAREST semantics: src = floor((dst + 0.5) * scale). */
int oclseg_resize_nearest(const oclseg_image *src, int out_width, int out_height,
                          oclseg_image *dst);
/* In place: every value >= 128 becomes 1, every other value 0. */
void oclseg_mask_binarize(oclseg_image *mask);

/* ---- masks ------------------------------------------------------------------------------------ */

/* How a ground-truth file encodes lesion (1) and background (0). oclseg_mask_load recognises
 * these without being told; anything else is an error naming the file and the values found,
 * unless a threshold is given. */
typedef enum oclseg_mask_encoding {
    OCLSEG_MASK_EMPTY,      /* every value 0: no lesion */
    OCLSEG_MASK_BINARY,     /* 0 and the largest value of the bit depth: 0/255, 0/65535, 0/3 */
    OCLSEG_MASK_LABELS_01,  /* 0/1 labels in an 8- or 16-bit file */
    OCLSEG_MASK_ONE_BIT,    /* a 1-bit (boolean) PNG */
    OCLSEG_MASK_PALETTE_01, /* a palette PNG whose indices 0/1 are the labels (any colours) */
    OCLSEG_MASK_TWO_LEVEL,  /* 0 and one other value v: v is lesion (e.g. 0/255 in 16 bits) */
    OCLSEG_MASK_LOSSY,      /* a JPEG: values around 0 and 255 (compression noise), >= 128 */
    OCLSEG_MASK_THRESHOLD,  /* the caller's threshold: value >= T is lesion */
} oclseg_mask_encoding;

typedef struct oclseg_mask_info {
    oclseg_mask_encoding encoding;
    int bit_depth;             /* of the stored values (a palette's colours: 8) */
    int rgb;                   /* stored as RGB with equal channels */
    int palette;               /* stored as a palette PNG */
    unsigned foreground_value; /* BINARY / TWO_LEVEL: the lesion value; LABELS/1-bit/palette: 1 */
    double threshold;          /* THRESHOLD: T */
    double foreground_fraction; /* lesion pixels / all pixels, at the file's resolution */
} oclseg_mask_info;

/* Decodes a mask file (PNG or JPEG) to a 1-channel image of 0/1 values at its own resolution.
 * threshold <= 0: the encoding is recognised from the values (see oclseg_mask_encoding): RGB
 * files must have equal channels, palette files are taken by index when the indices are 0/1 and
 * by colour otherwise; several labels or grey levels across the range are OCLSEG_ERR_FORMAT with
 * a message naming the file and the values. threshold > 0: a value >= threshold (in the file's
 * own units, e.g. 0..65535 for 16 bits; for a colour or palette file, any channel of the
 * colour) is lesion. */
int oclseg_mask_load(const char *path, double threshold, oclseg_image *out,
                     oclseg_mask_info *info);
/* The same from bytes in memory; `name` is used in messages. */
int oclseg_mask_decode(const void *data, size_t size, const char *name, double threshold,
                       oclseg_image *out, oclseg_mask_info *info);
/* A short name of the encoding ("0/1 labels") and a full description ("palette 0/255 16-bit"). */
const char *oclseg_mask_encoding_name(oclseg_mask_encoding e);
void oclseg_mask_describe(const oclseg_mask_info *info, char *buf, size_t size);

/* ---- folder scanning ---------------------------------------------------------------------------- */

/* One image/mask pair, matched by id. */
typedef struct oclseg_pair {
    char *id;         /* e.g. "ISIC_0000000" */
    char *image_path; /* full paths */
    char *mask_path;
} oclseg_pair;

typedef struct oclseg_pair_list {
    oclseg_pair *items; /* sorted by image file name */
    int count;
    int skipped; /* unmatched files dropped because skip_bad was set */
} oclseg_pair_list;

typedef enum oclseg_split { OCLSEG_SPLIT_TRAIN = 0, OCLSEG_SPLIT_TEST = 1 } oclseg_split;

/* Default mask suffix of the generic layout (matched case-insensitively, so
 * "_Segmentation.png" is found too). */
#define OCLSEG_DEFAULT_MASK_SUFFIX "_segmentation.png"

/* ISIC 2016 Part 1 layout under data_dir: "*Training_Data" + "*Training_GroundTruth" (train) or
 * "*Test_Data" + "*Test_GroundTruth" (test), images <id>.jpg, masks <id>_Segmentation.png.
 * Errors (before any training): missing or ambiguous split folder, empty folder, image without
 * mask, mask without image (the first 5 names and the count are listed). With skip_bad,
 * unmatched files are dropped with one warning and counted in out->skipped. */
int oclseg_isic_scan(const char *data_dir, oclseg_split split, int skip_bad,
                     oclseg_pair_list *out);
/* Generic layout: images (*.jpg, *.jpeg, *.png) in images_dir, masks <id><mask_suffix> in
 * masks_dir (NULL suffix: OCLSEG_DEFAULT_MASK_SUFFIX). Same checks as oclseg_isic_scan. */
int oclseg_pairs_scan(const char *images_dir, const char *masks_dir, const char *mask_suffix,
                      int skip_bad, oclseg_pair_list *out);
void oclseg_pair_list_free(oclseg_pair_list *list);
/* An image id in both the training and the test split (named with `where`, e.g. the data
 * folder) is an error naming the first 5 and the count (OCLSEG_ERR_FORMAT); with allow_overlap a
 * warning. */
int oclseg_pairs_check_disjoint(const oclseg_pair_list *train, const oclseg_pair_list *test,
                                const char *where, int allow_overlap);
/* The same check for one split's pairs of an ISIC-layout data_dir against the image ids of its
 * other split's image folder (none there: nothing to check). */
int oclseg_isic_check_disjoint(const char *data_dir, const oclseg_pair_list *pairs,
                               oclseg_split split, int allow_overlap);

/* ---- preloaded dataset -------------------------------------------------------------------------- */

typedef struct oclseg_sample {
    char *id, *image_path, *mask_path;
    int orig_width, orig_height; /* of the original image (and mask) */
    oclseg_mask_info mask;       /* how its mask file was encoded; foreground at full size */
} oclseg_sample;

/* Every pair decoded once and resized to size x size; only the small tensors are kept. */
typedef struct oclseg_dataset {
    int count;
    int size;            /* S */
    uint8_t *images;     /* count x S x S x 3, RGB HWC */
    uint8_t *masks;      /* count x S x S, values 0/1 */
    oclseg_sample *samples;
    int skipped;         /* pairs dropped as bad (skip_bad) */
    void *mapping;       /* non-NULL: images and masks lie in this read-only shared file
                          * mapping (oclseg_dataset_load_shared), unmapped by _free */
    size_t mapping_bytes;
} oclseg_dataset;

#define OCLSEG_DEFAULT_IMAGE_SIZE 128
/* The largest image side (--size) the data set, and so every command, accepts. */
#define OCLSEG_MAX_IMAGE_SIZE 4096

typedef struct oclseg_dataset_options {
    int size;     /* output side; 0: OCLSEG_DEFAULT_IMAGE_SIZE */
    int threads;  /* decoding threads; 0: the number of online CPUs (at most 16) */
    int skip_bad; /* a corrupt file or a size mismatch: warn and drop instead of failing */
    double mask_threshold; /* > 0: value >= T is lesion; 0: recognise the encoding */
} oclseg_dataset_options;

/* Decodes and resizes every pair (images bilinear as above, masks by oclseg_mask_load then nearest), in
 * parallel, each thread holding one full-size image and mask at a time; sample order is the
 * pair order whatever the thread count. A mask whose size differs from its image is an error
 * naming both files. opts may be NULL (defaults). */
int oclseg_dataset_load(const oclseg_pair_list *pairs, const oclseg_dataset_options *opts,
                        oclseg_dataset **out);
/* The same under mpirun: the ranks on one host decode a share each (contiguous ranges) into one
 * temporary file (in $TMPDIR, else /tmp; removed once every rank mapped it) that each maps
 * read-only as its images and masks, so the host's page cache holds one copy. A rank that cannot
 * see the file (another host: checked by a random token in its header) decodes every pair itself.
 * A pair that fails on any rank fails every rank (each names the file). Collective: every rank
 * calls it with the same pairs and options. A group of one (or OCLSEG_SHARED_DATA=0): exactly
 * oclseg_dataset_load. Byte-identical data whatever the path. */
int oclseg_dataset_load_shared(const oclseg_pair_list *pairs, const oclseg_dataset_options *opts,
                               oclseg_dataset **out);
/* Under mpirun: moves ds's pixels (identical on every rank, e.g. a validation split's parts)
 * into one file per host that every rank maps read-only: rank 0 writes it, the others keep
 * their own copy unless it is byte-equal. Collective; a no-op in a group of one. */
int oclseg_dataset_share(oclseg_dataset *ds);
void oclseg_dataset_free(oclseg_dataset *ds);

/* Data health of one split, from the masks at their original resolution. */
#define OCLSEG_HEALTH_MAX_ENCODINGS 8
typedef struct oclseg_data_health {
    int pairs;
    int empty;                     /* masks without lesion pixels */
    double mean_foreground;        /* mean over masks of the lesion fraction */
    int encodings;                 /* distinct encoding descriptions seen (at most the max) */
    char encoding[OCLSEG_HEALTH_MAX_ENCODINGS][48];
    int encoding_count[OCLSEG_HEALTH_MAX_ENCODINGS];
    int other_encodings;           /* masks whose description did not fit in the table */
} oclseg_data_health;

/* Thresholds of the warnings (fractions). */
#define OCLSEG_HEALTH_MAX_EMPTY 0.20
#define OCLSEG_HEALTH_MIN_FOREGROUND 0.005
#define OCLSEG_HEALTH_MAX_FOREGROUND 0.95

void oclseg_data_health_compute(const oclseg_dataset *ds, oclseg_data_health *h);
/* "train 806 pairs (0/255: 806), 0.0% empty, mean foreground 23.4%" */
void oclseg_data_health_format(const oclseg_data_health *h, const char *split, char *buf,
                               size_t size);
/* Warnings (to stderr, naming up to 3 example files) for more than 20% empty masks or a mean
 * foreground fraction outside [0.5%, 95%]; every mask empty is OCLSEG_ERR_FORMAT with a message
 * that names the split and suggests the usual causes. */
int oclseg_data_health_check(const oclseg_dataset *ds, const oclseg_data_health *h,
                             const char *split);
/* compute + format into line + check: what train and eval run before they start. */
int oclseg_data_health_report(const oclseg_dataset *ds, const char *split, char *line,
                              size_t size);

/* The augmentation of one sample of a batch (zero-initialised = none; the seed recipe draws
 * only the flips). */
typedef struct oclseg_augment {
    uint8_t flip_h;    /* mirror left-right */
    uint8_t flip_v;    /* mirror top-bottom */
    uint8_t transpose; /* swap x and y (with the flips: the 8 rotations/reflections by 90 deg) */
    uint8_t warp;      /* apply m: source = m * (u, v, 1) in [-1, 1] coordinates */
    uint8_t colour;    /* apply the colour jitter below */
    float m[6];        /* 2x3 affine (rotation, scale, translation, resized crop) */
    float brightness, contrast, saturation, hue; /* colour jitter factors (1, 1, 1, 0: none) */
} oclseg_augment;

/* Augmentation strengths (zeroed: none). */
typedef struct oclseg_augment_config {
    int flips;          /* left-right and top-bottom flips, p = 0.5 each (the seed recipe) */
    int dihedral;       /* plus transposes (p = 0.5): all 90-degree rotations and reflections */
    float rotate_deg;   /* rotation uniform in [-rotate_deg, rotate_deg] degrees */
    float scale;        /* zoom uniform in [1 - scale, 1 + scale] */
    float translate;    /* shift uniform in [-translate, translate] of the half-side, per axis */
    float crop_min;     /* random resized crop: area share in [crop_min, 1], aspect 3/4..4/3 */
    float brightness, contrast, saturation; /* factors uniform in [1 - x, 1 + x] */
    float hue;          /* hue turn uniform in [-hue, hue] (0.5 = half the colour wheel) */
} oclseg_augment_config;

/* True if c does more than nothing. */
int oclseg_augment_config_active(const oclseg_augment_config *c);
/* Draws one sample's augmentation for c: the flips are oclseg_augment_draw's (so flips alone
 * are the seed recipe bit for bit), everything else from a second counter-based stream of
 * (seed, epoch, sample_index). */
oclseg_augment oclseg_augment_draw_config(const oclseg_augment_config *c, uint64_t seed,
                                          int epoch, int sample_index);
/* Applies a to one S x S sample: every output pixel centre is mapped (flips, transpose, then
 * the affine m) to a source position clamped to the image; the image is sampled bilinearly
 * (rounded), the mask (may be NULL) with the nearest pixel of the same position, so both stay
 * aligned; then the colour jitter (brightness, contrast around the mean luma, saturation
 * around each pixel's luma, hue rotation about the gray axis), rounded and clamped. */
void oclseg_augment_apply(const uint8_t *rgb, const uint8_t *mask, int size,
                          const oclseg_augment *a, uint8_t *out_rgb, uint8_t *out_mask);

/* Draws the flips of sample `sample_index` (its dataset index) in `epoch`, each with p = 0.5,
 * from a counter-based hash: h = mix(seed ^ mix(epoch << 32 | sample_index)) where mix is the
 * splitmix64 finalizer; flip_h = bit 63 of h, flip_v = bit 62. Same inputs, same flips,
 * independent of batch composition or order. */
oclseg_augment oclseg_augment_draw(uint64_t seed, int epoch, int sample_index);

/* ImageNet normalization applied to images: (value / 255 - mean[c]) / std[c]. */
extern const float oclseg_imagenet_mean[3];
extern const float oclseg_imagenet_std[3];

/* Assembles a batch of `count` samples: images (count, 3, S, S) normalized as above, masks
 * (count, 1, S, S) 0/1 floats (masks may be NULL). aug: NULL or one entry per sample, the
 * same flips applied to the image and its mask. */
int oclseg_dataset_batch(const oclseg_dataset *ds, const int *indices, int count,
                         const oclseg_augment *aug, float *images, float *masks);

/* Normalizes one S x S RGB HWC uint8 image into a (3, S, S) float tensor (as the batch does). */
void oclseg_image_normalize(const uint8_t *rgb_hwc, int width, int height, float *chw);

/* Deterministic permutation of 0..n-1 for (seed, epoch): Fisher-Yates (i from n-1 down to 1,
 * j uniform in [0, i] by rejection sampling, no modulo bias) driven by splitmix64 seeded with
 * seed ^ mix(epoch + 1). */
int oclseg_shuffle(int *perm, int n, uint64_t seed, int epoch);

/* The splitmix64 finalizer (a bijective 64-bit mixer) used by the two functions above. */
uint64_t oclseg_mix64(uint64_t x);

/* ---- validation split, post-processing ------------------------------------------------------ */

/* The number of validation images for n training images: round(fraction * n), at least 1 and
 * at most n - 1 when fraction > 0 and n >= 2, else 0. */
int oclseg_val_count(int n, double fraction);
/* Splits ds into train and validation parts (copies; ds is unchanged): oclseg_val_count(n,
 * fraction) samples chosen by a permutation deterministic from the seed (salted, so it differs
 * from every epoch's shuffle), both parts in the original order. *val is NULL when no sample is
 * held out. fraction must be in [0, 1). */
int oclseg_dataset_split(const oclseg_dataset *ds, double fraction, uint64_t seed,
                         oclseg_dataset **train, oclseg_dataset **val);

/* In place on a 0/non-0 mask (non-0 values become 1 where touched): with largest_component,
 * keeps only the largest 8-connected foreground component (the first in scan order among equal
 * sizes); with fill_holes, sets every background pixel not 4-connected to the image border
 * (a hole) to 1. Largest component first, then holes. */
int oclseg_mask_postprocess(uint8_t *mask, int width, int height, int largest_component,
                            int fill_holes);

/* ---- synthetic data ------------------------------------------------------------------------------ */

/* Writes n_train + n_test dermoscopy-like images and exact masks in the ISIC 2016 layout under
 * out_dir (created if needed): ISBI2016_ISIC_Part1_{Training,Test}_Data/ISIC_%07d.jpg and
 * ISBI2016_ISIC_Part1_{Training,Test}_GroundTruth/ISIC_%07d_Segmentation.png (0/255).
 * The same seed writes the same bytes. */
int oclseg_synth_write(const char *out_dir, int n_train, int n_test, uint64_t seed);

/* Renders one synthetic sample in memory (image RGB, mask 0/255 gray), as written above. */
int oclseg_synth_render(uint64_t seed, int index, oclseg_image *image, oclseg_image *mask);

#endif
