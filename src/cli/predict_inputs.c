/* The inputs of `oclseg predict`: images named or found in folders (oclseg's own outputs left
 * out), checked before any work for inputs whose output files would collide. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/predict_inputs.h"
#include "oclseg/status.h"

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                   strcasecmp(dot, ".png") == 0);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* The files predict writes (<id>_mask.png, <id>_overlay.png; <id>_prob.npy is no image name). */
static int is_predict_output_name(const char *name) {
    return ends_with(name, "_mask.png") || ends_with(name, "_overlay.png");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int inputs_add(predict_inputs *in, const char *dir, const char *name) {
    if (in->count == in->cap) {
        int cap = in->cap ? 2 * in->cap : 64;
        char **grown = realloc(in->paths, (size_t)cap * sizeof *grown);
        if (!grown) return OCLSEG_ERR_OUT_OF_MEMORY;
        in->paths = grown;
        in->cap = cap;
    }
    size_t len = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *path = malloc(len);
    if (!path) return OCLSEG_ERR_OUT_OF_MEMORY;
    if (dir) snprintf(path, len, "%s/%s", dir, name);
    else snprintf(path, len, "%s", name);
    in->paths[in->count++] = path;
    return OCLSEG_OK;
}

/* Adds the images of dir (sorted by name), leaving out what looks like predict's own outputs. */
static int add_dir(predict_inputs *in, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "oclseg predict: cannot open directory %s: %s\n", dir, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    const int first = in->count;
    int skipped = 0, st = OCLSEG_OK;
    struct dirent *e;
    while (st == OCLSEG_OK && (e = readdir(d))) {
        if (!is_image_name(e->d_name)) continue;
        if (is_predict_output_name(e->d_name)) skipped++;
        else st = inputs_add(in, dir, e->d_name);
    }
    closedir(d);
    if (st != OCLSEG_OK) return st;
    if (skipped)
        fprintf(stderr, "oclseg predict: note: skipped %d file%s in %s named like predict's "
                        "outputs (*_mask.png, *_overlay.png); name such a file to predict it\n",
                skipped, skipped == 1 ? "" : "s", dir);
    if (in->count == first) {
        fprintf(stderr, "oclseg predict: no .jpg/.jpeg/.png images in %s\n", dir);
        return OCLSEG_ERR_NOT_FOUND;
    }
    qsort(in->paths + first, (size_t)(in->count - first), sizeof *in->paths, cmp_str);
    return OCLSEG_OK;
}

int predict_inputs_collect(char *const *args, int n, predict_inputs *in) {
    memset(in, 0, sizeof *in);
    for (int i = 0; i < n; i++) {
        struct stat sb;
        int st = stat(args[i], &sb) == 0 && S_ISDIR(sb.st_mode) ? add_dir(in, args[i])
                                                                : inputs_add(in, NULL, args[i]);
        if (st != OCLSEG_OK) return st;
    }
    return OCLSEG_OK;
}

void predict_inputs_free(predict_inputs *in) {
    for (int i = 0; i < in->count; i++) free(in->paths[i]);
    free(in->paths);
    memset(in, 0, sizeof *in);
}

/* Must name outputs as oclseg_predict_file does: "dir/ISIC_0001.jpg" -> "ISIC_0001". */
void predict_output_id(const char *path, char *id, size_t size) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(id, size, "%s", base);
    char *dot = strrchr(id, '.');
    if (dot && dot != id) *dot = '\0';
}

typedef struct named_input {
    char id[256]; /* the size oclseg_predict_file names outputs with */
    int index;
} named_input;

static int cmp_named(const void *a, const void *b) {
    const named_input *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Two inputs with one id would write one <id>_mask.png: the first prediction would be lost. */
static int check_distinct_ids(const predict_inputs *in, const char *out_dir, named_input *ids) {
    for (int i = 0; i < in->count; i++) {
        predict_output_id(in->paths[i], ids[i].id, sizeof ids[i].id);
        ids[i].index = i;
    }
    qsort(ids, (size_t)in->count, sizeof *ids, cmp_named);
    int clashes = 0;
    for (int i = 1; i < in->count; i++) {
        if (strcmp(ids[i - 1].id, ids[i].id) != 0) continue;
        if (++clashes <= 5)
            fprintf(stderr, "oclseg predict: %s and %s would both write %s/%s_mask.png\n",
                    in->paths[ids[i - 1].index], in->paths[ids[i].index], out_dir, ids[i].id);
    }
    if (!clashes) return OCLSEG_OK;
    fprintf(stderr, "oclseg predict: %d input%s would overwrite another's outputs%s: nothing was "
                    "predicted; predict them into different --out folders\n",
            clashes, clashes == 1 ? "" : "s", clashes > 5 ? " (5 shown)" : "");
    return OCLSEG_ERR_INVALID_ARG;
}

typedef struct file_key {
    dev_t dev;
    ino_t ino;
    int index;
} file_key;

static int cmp_key(const void *a, const void *b) {
    const file_key *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    return (x->ino > y->ino) - (x->ino < y->ino);
}

/* An output path that is one of the inputs (x.jpg's x_mask.png named as an input too) would be
 * overwritten before it is read. */
static int check_outputs_are_not_inputs(const predict_inputs *in, const char *out_dir,
                                        const named_input *ids) {
    static const char *const suffixes[] = {"_mask.png", "_overlay.png"};
    file_key *keys = calloc((size_t)in->count + 1, sizeof *keys);
    if (!keys) return OCLSEG_ERR_OUT_OF_MEMORY;
    int n = 0, st = OCLSEG_OK;
    for (int i = 0; i < in->count; i++) {
        struct stat sb;
        if (stat(in->paths[i], &sb) == 0) keys[n++] = (file_key){sb.st_dev, sb.st_ino, i};
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_key);
    for (int i = 0; i < in->count && st == OCLSEG_OK; i++) {
        for (int k = 0; k < 2 && st == OCLSEG_OK; k++) {
            char path[4400];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s%s", out_dir, ids[i].id, suffixes[k]);
            if (stat(path, &sb) != 0) continue;
            const file_key probe = {sb.st_dev, sb.st_ino, 0};
            const file_key *hit = bsearch(&probe, keys, (size_t)n, sizeof *keys, cmp_key);
            if (!hit) continue;
            fprintf(stderr, "oclseg predict: %s, the output of %s, is an input: nothing was "
                            "predicted; choose another --out\n",
                    path, in->paths[ids[i].index]);
            st = OCLSEG_ERR_INVALID_ARG;
        }
    }
    free(keys);
    return st;
}

int predict_inputs_check_outputs(const predict_inputs *in, const char *out_dir) {
    named_input *ids = calloc((size_t)in->count + 1, sizeof *ids);
    if (!ids) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = check_distinct_ids(in, out_dir, ids);
    if (st == OCLSEG_OK) st = check_outputs_are_not_inputs(in, out_dir, ids);
    free(ids);
    return st;
}
