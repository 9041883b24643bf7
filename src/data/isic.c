/* Dataset folder scanning: the ISIC 2016 Part 1 layout and a generic images/masks layout. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/data_internal.h"
#include "oclseg/data.h"

/* Problems are listed with at most this many file names, then "and N more". */
#define LIST_NAMES 5

typedef struct name_list {
    char **names;
    int count, capacity;
} name_list;

static void name_list_free(name_list *l) {
    for (int i = 0; i < l->count; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

static int name_list_add(name_list *l, const char *name) {
    if (l->count == l->capacity) {
        int cap = l->capacity ? 2 * l->capacity : 64;
        char **grown = realloc(l->names, sizeof(char *) * (size_t)cap);
        if (!grown) return OCLSEG_ERR_OUT_OF_MEMORY;
        l->names = grown;
        l->capacity = cap;
    }
    if (!(l->names[l->count] = strdup(name))) return OCLSEG_ERR_OUT_OF_MEMORY;
    l->count++;
    return OCLSEG_OK;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with_nocase(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir), m = strlen(name);
    char *p = malloc(n + m + 2);
    if (!p) return NULL;
    memcpy(p, dir, n);
    size_t k = n;
    if (n == 0 || dir[n - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, m + 1);
    return p;
}

/* Names (not paths) of the entries of `dir` that are regular files (want_dirs 0) or
 * directories (want_dirs 1), hidden ones excluded, sorted. */
static int list_dir(const char *dir, int want_dirs, name_list *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) {
        OCLSEG_ERROR("cannot open folder %s: %s", dir, strerror(errno));
        return errno == ENOENT || errno == ENOTDIR ? OCLSEG_ERR_NOT_FOUND : OCLSEG_ERR_IO;
    }
    int status = OCLSEG_OK;
    struct dirent *e;
    while (status == OCLSEG_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *path = join_path(dir, e->d_name);
        if (!path) {
            status = OCLSEG_ERR_OUT_OF_MEMORY;
            break;
        }
        struct stat st;
        int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        int is_file = stat(path, &st) == 0 && S_ISREG(st.st_mode);
        free(path);
        if (want_dirs ? is_dir : is_file) status = name_list_add(out, e->d_name);
    }
    closedir(d);
    if (status != OCLSEG_OK) {
        OCLSEG_ERROR("out of memory listing %s", dir);
        name_list_free(out);
        return status;
    }
    if (out->count) qsort(out->names, (size_t)out->count, sizeof(char *), compare_strings);
    return OCLSEG_OK;
}

/* "a, b, c, d, e and N more" */
static void format_names(char **names, int count, char *text, size_t size) {
    size_t len = 0;
    text[0] = '\0';
    for (int i = 0; i < count && i < LIST_NAMES && len < size; i++)
        len += (size_t)snprintf(text + len, size - len, "%s%s", i ? ", " : "", names[i]);
    if (count > LIST_NAMES && len < size)
        snprintf(text + len, size - len, " and %d more", count - LIST_NAMES);
}

/* Prints "<count> <what>: a, b, c, d, e and N more" through the error or warning channel. */
static void report_names(int as_warning, const char *what, char **names, int count) {
    char text[1024];
    format_names(names, count, text, sizeof text);
    if (as_warning) data_warn("skipping %d %s: %s", count, what, text);
    else OCLSEG_ERROR("%d %s: %s", count, what, text);
}

/* An image file: .jpg/.jpeg/.png, not a mask and not an ISIC 2017 superpixel map. */
static int is_image_name(const char *name, const char *mask_suffix) {
    if (ends_with_nocase(name, mask_suffix) || ends_with_nocase(name, "_superpixels.png")) return 0;
    return ends_with_nocase(name, ".jpg") || ends_with_nocase(name, ".jpeg") ||
           ends_with_nocase(name, ".png");
}

typedef struct keyed {
    char *id;   /* malloc'd */
    char *name; /* borrowed from a name_list */
    int matched;
} keyed;

static int compare_keyed(const void *a, const void *b) {
    return strcmp(((const keyed *)a)->id, ((const keyed *)b)->id);
}

static void keyed_free(keyed *k, int n) {
    if (!k) return;
    for (int i = 0; i < n; i++) free(k[i].id);
    free(k);
}

/* Builds id -> name entries, sorted by id. strip: characters to remove from the end. */
static int make_keyed(name_list *names, int (*keep)(const char *, const char *),
                      const char *mask_suffix, int strip_suffix, keyed **out, int *count) {
    *out = calloc((size_t)names->count + 1, sizeof(keyed));
    *count = 0;
    if (!*out) return OCLSEG_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < names->count; i++) {
        const char *name = names->names[i];
        if (!keep(name, mask_suffix)) continue;
        size_t len = strlen(name);
        size_t cut = strip_suffix ? strlen(mask_suffix) : (size_t)(strrchr(name, '.') - name);
        if (strip_suffix) cut = len - cut;
        keyed *k = &(*out)[(*count)++];
        k->name = names->names[i];
        if (!(k->id = strndup(name, cut))) return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    if (*count) qsort(*out, (size_t)*count, sizeof(keyed), compare_keyed);
    return OCLSEG_OK;
}

static int is_mask_name(const char *name, const char *mask_suffix) {
    return ends_with_nocase(name, mask_suffix) && strlen(name) > strlen(mask_suffix);
}

/* Two files with one id (a.jpg + a.png, or x_Segmentation.png + x_segmentation.png). */
static int check_duplicates(const keyed *k, int n, const char *dir) {
    for (int i = 1; i < n; i++)
        if (strcmp(k[i - 1].id, k[i].id) == 0) {
            OCLSEG_ERROR("two files for id %s in %s: %s and %s", k[i].id, dir, k[i - 1].name,
                         k[i].name);
            return OCLSEG_ERR_FORMAT;
        }
    return OCLSEG_OK;
}

/* Long (~115 lines): one pass of scan, key, sort, match and report over two name lists sharing
 * their cleanup path. */
int oclseg_pairs_scan(const char *images_dir, const char *masks_dir, const char *mask_suffix,
                      int skip_bad, oclseg_pair_list *out) {
    if (!images_dir || !masks_dir || !out) return OCLSEG_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (!mask_suffix || !*mask_suffix) mask_suffix = OCLSEG_DEFAULT_MASK_SUFFIX;
    name_list image_names = {0}, mask_names = {0};
    keyed *images = NULL, *masks = NULL;
    int n_images = 0, n_masks = 0;
    char **unmatched = NULL;
    int status;
    TRY_GOTO(list_dir(images_dir, 0, &image_names), status, done);
    TRY_GOTO(list_dir(masks_dir, 0, &mask_names), status, done);
    status = make_keyed(&image_names, is_image_name, mask_suffix, 0, &images, &n_images);
    if (status == OCLSEG_OK)
        status = make_keyed(&mask_names, is_mask_name, mask_suffix, 1, &masks, &n_masks);
    if (status != OCLSEG_OK) {
        OCLSEG_ERROR("out of memory scanning %s", images_dir);
        goto done;
    }
    if (n_images == 0) {
        OCLSEG_ERROR("no images (*.jpg, *.jpeg, *.png) in %s", images_dir);
        status = OCLSEG_ERR_NOT_FOUND;
        goto done;
    }
    if (n_masks == 0) {
        OCLSEG_ERROR("no masks (*%s) in %s", mask_suffix, masks_dir);
        status = OCLSEG_ERR_NOT_FOUND;
        goto done;
    }
    TRY_GOTO(check_duplicates(images, n_images, images_dir), status, done);
    TRY_GOTO(check_duplicates(masks, n_masks, masks_dir), status, done);

    /* Match by id; pairs come out in image file-name order. */
    out->items = calloc((size_t)n_images, sizeof(oclseg_pair));
    unmatched = malloc(sizeof(char *) * (size_t)(n_images > n_masks ? n_images : n_masks));
    if (!out->items || !unmatched) {
        status = OCLSEG_ERR_OUT_OF_MEMORY;
        OCLSEG_ERROR("out of memory scanning %s", images_dir);
        goto done;
    }
    int n_unmatched_images = 0, n_unmatched_masks = 0;
    for (int i = 0; i < image_names.count; i++) {
        const char *name = image_names.names[i];
        if (!is_image_name(name, mask_suffix)) continue;
        keyed key = {.id = NULL};
        /* the keyed entry of this name (ids are unique, so look it up by id) */
        size_t cut = (size_t)(strrchr(name, '.') - name);
        char *id = strndup(name, cut);
        if (!id) {
            status = OCLSEG_ERR_OUT_OF_MEMORY;
            goto done;
        }
        key.id = id;
        keyed *m = bsearch(&key, masks, (size_t)n_masks, sizeof(keyed), compare_keyed);
        if (!m) {
            unmatched[n_unmatched_images++] = image_names.names[i];
            free(id);
            continue;
        }
        m->matched = 1;
        oclseg_pair *p = &out->items[out->count++];
        p->id = id;
        p->image_path = join_path(images_dir, name);
        p->mask_path = join_path(masks_dir, m->name);
        if (!p->image_path || !p->mask_path) {
            status = OCLSEG_ERR_OUT_OF_MEMORY;
            goto done;
        }
    }
    char what[4200];
    if (n_unmatched_images) {
        snprintf(what, sizeof what, "images in %s without a mask (<id>%s) in %s", images_dir,
                 mask_suffix, masks_dir);
        report_names(skip_bad, what, unmatched, n_unmatched_images);
    }
    for (int i = 0; i < mask_names.count; i++) {
        /* masks in file-name order for the message */
        const char *name = mask_names.names[i];
        if (!is_mask_name(name, mask_suffix)) continue;
        keyed key = {.id = strndup(name, strlen(name) - strlen(mask_suffix))};
        if (!key.id) {
            status = OCLSEG_ERR_OUT_OF_MEMORY;
            goto done;
        }
        keyed *m = bsearch(&key, masks, (size_t)n_masks, sizeof(keyed), compare_keyed);
        free(key.id);
        if (m && !m->matched) unmatched[n_unmatched_masks++] = mask_names.names[i];
    }
    if (n_unmatched_masks) {
        snprintf(what, sizeof what, "masks in %s without an image in %s", masks_dir, images_dir);
        report_names(skip_bad, what, unmatched, n_unmatched_masks);
    }
    if ((n_unmatched_images || n_unmatched_masks) && !skip_bad) {
        OCLSEG_ERROR("every image needs exactly one mask (pass --skip-bad to skip unmatched "
                     "files)");
        status = OCLSEG_ERR_FORMAT;
        goto done;
    }
    out->skipped = n_unmatched_images + n_unmatched_masks;
    if (out->count == 0) {
        OCLSEG_ERROR("no image in %s has a mask in %s", images_dir, masks_dir);
        status = OCLSEG_ERR_NOT_FOUND;
        goto done;
    }
    status = OCLSEG_OK;
done:
    if (status != OCLSEG_OK) oclseg_pair_list_free(out);
    free(unmatched);
    keyed_free(images, n_images);
    keyed_free(masks, n_masks);
    name_list_free(&image_names);
    name_list_free(&mask_names);
    return status;
}

/* The one subfolder of data_dir whose name ends with `suffix` (case-insensitive). */
static int find_split_dir(const char *data_dir, const name_list *dirs, const char *suffix,
                          char **out) {
    *out = NULL;
    const char *found = NULL;
    for (int i = 0; i < dirs->count; i++) {
        if (!ends_with_nocase(dirs->names[i], suffix)) continue;
        if (found) {
            OCLSEG_ERROR("two folders in %s end with %s: %s and %s", data_dir, suffix, found,
                         dirs->names[i]);
            return OCLSEG_ERR_FORMAT;
        }
        found = dirs->names[i];
    }
    if (!found) {
        OCLSEG_ERROR("missing folder *%s in %s (expected the ISIC 2016 Part 1 layout: "
                     "ISBI2016_ISIC_Part1_%s)", suffix, data_dir, suffix);
        return OCLSEG_ERR_NOT_FOUND;
    }
    if (!(*out = join_path(data_dir, found))) return OCLSEG_ERR_OUT_OF_MEMORY;
    return OCLSEG_OK;
}

int oclseg_isic_scan(const char *data_dir, oclseg_split split, int skip_bad,
                     oclseg_pair_list *out) {
    if (!data_dir || !out || (split != OCLSEG_SPLIT_TRAIN && split != OCLSEG_SPLIT_TEST))
        return OCLSEG_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    name_list dirs;
    TRY(list_dir(data_dir, 1, &dirs));
    const char *data_suffix = split == OCLSEG_SPLIT_TRAIN ? "Training_Data" : "Test_Data";
    const char *truth_suffix = split == OCLSEG_SPLIT_TRAIN ? "Training_GroundTruth" : "Test_GroundTruth";
    char *images_dir = NULL, *masks_dir = NULL;
    int status = find_split_dir(data_dir, &dirs, data_suffix, &images_dir);
    if (status == OCLSEG_OK) status = find_split_dir(data_dir, &dirs, truth_suffix, &masks_dir);
    /* ISIC 2016 names masks <id>_Segmentation.png; the suffix match ignores case. */
    if (status == OCLSEG_OK)
        status = oclseg_pairs_scan(images_dir, masks_dir, "_Segmentation.png", skip_bad, out);
    free(images_dir);
    free(masks_dir);
    name_list_free(&dirs);
    return status;
}

void oclseg_pair_list_free(oclseg_pair_list *list) {
    if (!list) return;
    for (int i = 0; i < list->count; i++) {
        free(list->items[i].id);
        free(list->items[i].image_path);
        free(list->items[i].mask_path);
    }
    free(list->items);
    memset(list, 0, sizeof *list);
}

/* ---- train/test overlap -------------------------------------------------------------------- */

static int compare_ids(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids of a pair list, sorted (borrowed strings). */
static char **sorted_ids(const oclseg_pair_list *pairs) {
    char **ids = calloc((size_t)pairs->count + 1, sizeof *ids);
    if (!ids) return NULL;
    for (int i = 0; i < pairs->count; i++) ids[i] = pairs->items[i].id;
    qsort(ids, (size_t)pairs->count, sizeof *ids, compare_ids);
    return ids;
}

int oclseg_pairs_check_disjoint(const oclseg_pair_list *train, const oclseg_pair_list *test,
                                const char *where, int allow_overlap) {
    char **a = sorted_ids(train), **b = sorted_ids(test);
    name_list common = {0};
    int status = a && b ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    for (int i = 0, j = 0; status == OCLSEG_OK && i < train->count && j < test->count;) {
        int c = strcmp(a[i], b[j]);
        if (c == 0) status = name_list_add(&common, a[i]);
        i += c <= 0;
        j += c >= 0;
    }
    free(a);
    free(b);
    if (status != OCLSEG_OK || common.count == 0) {
        name_list_free(&common);
        return status;
    }
    char what[1200];
    snprintf(what, sizeof what, "image id%s in both the training and the test split of %s%s",
             common.count == 1 ? " is" : "s are", where,
             allow_overlap ? " (--allow-overlap)" : "");
    char text[1024];
    format_names(common.names, common.count, text, sizeof text);
    if (allow_overlap) {
        data_warn("%d %s: %s; test scores of these images measure memory, not generalisation",
                  common.count, what, text);
    } else {
        OCLSEG_ERROR("%d %s: %s; a model scored on images it was trained on looks better than it "
                     "is: remove them from one split, or pass --allow-overlap if you mean it",
                     common.count, what, text);
        status = OCLSEG_ERR_FORMAT;
    }
    name_list_free(&common);
    return status;
}

int oclseg_isic_check_disjoint(const char *data_dir, const oclseg_pair_list *pairs,
                               oclseg_split split, int allow_overlap) {
    const char *other = split == OCLSEG_SPLIT_TRAIN ? "Test_Data" : "Training_Data";
    name_list dirs, files = {0};
    TRY(list_dir(data_dir, 1, &dirs));
    const char *found = NULL;
    for (int i = 0; i < dirs.count; i++)
        if (ends_with_nocase(dirs.names[i], other)) found = dirs.names[i];
    char *images_dir = found ? join_path(data_dir, found) : NULL;
    int status = found && !images_dir ? OCLSEG_ERR_OUT_OF_MEMORY : OCLSEG_OK;
    keyed *k = NULL;
    int n = 0;
    if (images_dir) status = list_dir(images_dir, 0, &files);
    if (images_dir && status == OCLSEG_OK)
        status = make_keyed(&files, is_image_name, "_Segmentation.png", 0, &k, &n);
    oclseg_pair_list listed = {0};
    if (images_dir && status == OCLSEG_OK &&
        !(listed.items = calloc((size_t)n + 1, sizeof *listed.items)))
        status = OCLSEG_ERR_OUT_OF_MEMORY;
    for (int i = 0; status == OCLSEG_OK && i < n; i++) listed.items[listed.count++].id = k[i].id;
    if (images_dir && status == OCLSEG_OK)
        status = split == OCLSEG_SPLIT_TRAIN
                     ? oclseg_pairs_check_disjoint(pairs, &listed, data_dir, allow_overlap)
                     : oclseg_pairs_check_disjoint(&listed, pairs, data_dir, allow_overlap);
    free(listed.items);
    keyed_free(k, n);
    free(images_dir);
    name_list_free(&files);
    name_list_free(&dirs);
    return status;
}
