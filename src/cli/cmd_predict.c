/* `oclseg predict`: a mask PNG at the original resolution and an overlay PNG for each image. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "oclseg/infer.h"
#include "oclseg/weights.h"

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                   strcasecmp(dot, ".png") == 0);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Predicts every image of a directory (sorted by name); *count gets the number done. */
static int predict_dir(oclseg_infer *inf, const char *dir, const char *out,
                       const oclseg_predict_options *po, int *count) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "oclseg predict: cannot open directory %s: %s\n", dir, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_image_name(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    int st = OCLSEG_OK;
    if (n == 0) {
        fprintf(stderr, "oclseg predict: no .jpg/.jpeg/.png images in %s\n", dir);
        st = OCLSEG_ERR_NOT_FOUND;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && st == OCLSEG_OK; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        st = oclseg_predict_file(inf, path, out, po);
        if (st == OCLSEG_OK) (*count)++;
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

int cli_predict_option(const char *cmd, int c, const char *arg, oclseg_predict_options *o) {
    switch (c - CLI_PREDICT_OPT) {
    case 0:
        if (strcmp(arg, "flips") != 0 && strcmp(arg, "none") != 0) {
            fprintf(stderr, "oclseg %s: --tta must be flips or none\n", cmd);
            return -1;
        }
        o->tta_flips = strcmp(arg, "flips") == 0;
        return 1;
    case 1: {
        char *end;
        double t = strtod(arg, &end);
        if (*arg == '\0' || *end != '\0' || !(t > 0.0 && t < 1.0)) {
            fprintf(stderr, "oclseg %s: --threshold must be a number in (0, 1) (got '%s')\n", cmd,
                    arg);
            return -1;
        }
        o->threshold = (float)t;
        return 1;
    }
    case 2: o->largest_component = 1; return 1;
    case 3: o->fill_holes = 1; return 1;
    case 4: o->largest_component = 0; return 1;
    case 5: o->fill_holes = 0; return 1;
    default: return 0;
    }
}

void cli_predict_unset(oclseg_predict_options *o) {
    o->tta_flips = o->largest_component = o->fill_holes = -1;
    o->threshold = -1.0f;
}

int cli_predict_resolve(const char *cmd, const char *weights, cli_infer_options *io) {
    oclseg_weights_meta meta;
    if (oclseg_weights_meta_read(weights, &meta) != OCLSEG_OK) return 1;
    oclseg_predict_options *o = io->predict;
    if (meta.input_size && io->size && io->size != meta.input_size && !io->force_size) {
        fprintf(stderr, "oclseg %s: --size %d differs from the size %s was trained at (%d, its "
                        "metadata input_size): use --size %d, or add --force-size to run at %d "
                        "anyway\n", cmd, io->size, weights, meta.input_size, meta.input_size,
                io->size);
        return 2;
    }
    char taken[256] = "";
    size_t len = 0;
#define TAKE(field, cond, value, ...)                                                          \
    if (field < 0) {                                                                           \
        field = value;                                                                         \
        if (cond) len += (size_t)snprintf(taken + len, sizeof taken - len, __VA_ARGS__);       \
    }
    if (!io->size) {
        io->size = meta.input_size ? meta.input_size : 128;
        if (meta.input_size) len += (size_t)snprintf(taken, sizeof taken, " size %d", io->size);
    }
    TAKE(o->threshold, meta.threshold > 0, meta.threshold > 0 ? meta.threshold : 0.5f,
         " threshold %.2f", (double)meta.threshold);
    TAKE(o->tta_flips, meta.has_options, meta.tta_flips, " tta %s",
         meta.tta_flips ? "flips" : "none");
    TAKE(o->largest_component, meta.has_options, meta.largest_component, " largest-component %s",
         meta.largest_component ? "on" : "off");
    TAKE(o->fill_holes, meta.has_options, meta.fill_holes, " fill-holes %s",
         meta.fill_holes ? "on" : "off");
#undef TAKE
    if (len) printf("from the metadata of %s:%s\n", weights, taken);
    return 0;
}

int cmd_predict(int argc, char **argv) {
    const char *weights = NULL, *out = "predictions", *device = NULL;
    int probs = 0;
    static const struct option opts[] = {{"weights", required_argument, 0, 'w'},
                                         {"out", required_argument, 0, 'o'},
                                         {"size", required_argument, 0, 's'},
                                         {"device", required_argument, 0, 'd'},
                                         {"probs", no_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         CLI_PREDICT_OPTIONS,
                                         {0, 0, 0, 0}};
    oclseg_predict_options po;
    oclseg_predict_options_default(&po);
    cli_predict_unset(&po);
    cli_infer_options io = {&po, 0, 0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const int handled = cli_predict_option("predict", c, optarg, &po);
        if (handled < 0) return 2;
        if (handled) continue;
        switch (c) {
        case 'w': weights = optarg; break;
        case 'o': out = optarg; break;
        case 's':
            if (cli_parse_image_size("predict", optarg, &io.size) != 0) return 2;
            break;
        case CLI_PREDICT_OPT + 6: io.force_size = 1; break;
        case 'd': device = optarg; break;
        case 'p': probs = 1; break;
        case 'h':
            printf("usage: oclseg predict --weights F [--out DIR] [--size 128] [--device D] [--probs]\n"
                   "                      [--tta flips] [--threshold 0.5] [--largest-component]"
                   " [--fill-holes]\n                      IMAGE|DIR...\n\nFor each image (or each .jpg/.jpeg/.png in a directory) "
                   "writes DIR/<id>_mask.png (0/255 at the\nimage's original resolution: the "
                   "probabilities are upsampled before thresholding)\nand "
                   "DIR/<id>_overlay.png (the image with the lesion contour in green): the masks\n"
                   "eval scores (eval --save-masks). --size defaults to the size the weights were\n"
                   "trained at (their metadata). --probs also writes DIR/<id>_prob.npy: "
                   "the\nprobabilities (float32, original resolution) as a NumPy array.\n" CLI_PREDICT_USAGE);
            return 0;
        default: return 2;
        }
    }
    if (!weights || optind >= argc) {
        fprintf(stderr, "oclseg predict: --weights F and at least one IMAGE or DIR are required\n");
        return 2;
    }
    if (io.size % 32) {
        fprintf(stderr, "oclseg predict: --size must be a positive multiple of 32\n");
        return 2;
    }
    const int resolved = cli_predict_resolve("predict", weights, &io);
    if (resolved) return resolved;
    const int size = io.size;
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "oclseg predict: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    oclseg_infer *inf;
    if (oclseg_infer_create(weights, device, size, 1, &inf) != OCLSEG_OK) return 1;
    inf->write_probs = probs;
    int done = 0, st = OCLSEG_OK;
    for (int i = optind; i < argc && st == OCLSEG_OK; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            st = predict_dir(inf, argv[i], out, &po, &done);
        } else {
            st = oclseg_predict_file(inf, argv[i], out, &po);
            done += st == OCLSEG_OK;
        }
    }
    oclseg_infer_free(inf);
    printf("%d image%s predicted into %s\n", done, done == 1 ? "" : "s", out);
    return st == OCLSEG_OK ? 0 : 1;
}
