/* `oclseg synth`: writes the synthetic ISIC-layout data set (into an empty folder, or replacing
 * a set synth wrote there with --force). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "oclseg/data.h"
#include "oclseg/util.h"

/* The file synth leaves in the folders it writes: --force replaces only such a folder. */
#define SYNTH_MARKER ".oclseg-synth"

static const char *const split_dirs[] = {
    "ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth",
    "ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"};

static int is_split_dir(const char *name) {
    for (int k = 0; k < 4; k++)
        if (strcmp(name, split_dirs[k]) == 0) return 1;
    return 0;
}

/* The number of entries of dir (0 if it does not exist), -1 if it cannot be read. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Checks (remove = 0) or removes (remove = 1) what a synthetic set consists of in dir: the
 * marker, the four split folders and the ISIC_* regular files in them. Anything else is named
 * and refused, so that --force never deletes a file synth did not write. */
static int synth_set_walk(const char *dir, int remove) {
    char path[4400], file[4700];
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, split_dirs[k]);
        DIR *d = opendir(path);
        if (!d) continue;
        struct dirent *e;
        int st = 0;
        while (st == 0 && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            struct stat sb;
            if (lstat(file, &sb) != 0 || !S_ISREG(sb.st_mode) ||
                strncmp(e->d_name, "ISIC_", 5) != 0) {
                fprintf(stderr, "oclseg synth: %s is not part of a synthetic set: --force "
                                "replaces nothing else (remove it yourself)\n", file);
                st = -1;
            } else if (remove && unlink(file) != 0) {
                fprintf(stderr, "oclseg synth: cannot remove %s: %s\n", file, strerror(errno));
                st = -1;
            }
        }
        closedir(d);
        if (st != 0) return st;
        if (remove && rmdir(path) != 0) {
            fprintf(stderr, "oclseg synth: cannot remove %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Empties dir for --force if it holds a synthetic set and nothing else. */
static int replace_synth_set(const char *dir) {
    char path[4400];
    snprintf(path, sizeof path, "%s/" SYNTH_MARKER, dir);
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "oclseg synth: --force replaces only a set synth wrote, and %s has no %s: "
                        "remove its files yourself or choose another --out\n", dir, SYNTH_MARKER);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int st = 0;
    while (st == 0 && (e = readdir(d))) {
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            (strcmp(e->d_name, SYNTH_MARKER) == 0 && lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)) ||
            (is_split_dir(e->d_name) && lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)))
            continue; /* a link is not followed: what it points to was not written here */
        fprintf(stderr, "oclseg synth: %s/%s is not part of a synthetic set: --force replaces "
                        "nothing else (remove it yourself)\n", dir, e->d_name);
        st = -1;
    }
    closedir(d);
    if (st == 0) st = synth_set_walk(dir, 0);
    if (st == 0) st = synth_set_walk(dir, 1);
    return st;
}

/* The marker, written first: a set cut short can be replaced with --force too. */
static int write_marker(const char *dir, int n_train, int n_test, int seed) {
    char path[4400];
    if (oclseg_mkdir_p(dir) != OCLSEG_OK) {
        fprintf(stderr, "oclseg synth: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/" SYNTH_MARKER, dir);
    FILE *f = fopen(path, "w");
    int ok = f && fprintf(f, "oclseg synth --train %d --test %d --seed %d\n", n_train, n_test,
                          seed) > 0;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "oclseg synth: cannot write %s: %s\n", path, strerror(errno));
    return ok ? 0 : -1;
}

/* An existing non-empty --out: refused (old and new images would mix, an id could end up in both
 * splits) unless --force and it holds a synthetic set only. */
static int prepare_out(const char *out, int force) {
    const int entries = count_entries(out);
    if (entries < 0) {
        fprintf(stderr, "oclseg synth: cannot read --out %s: %s\n", out, strerror(errno));
        return -1;
    }
    if (entries == 0) return 0;
    if (!force) {
        fprintf(stderr, "oclseg synth: --out %s is not empty: a new set would mix with its files "
                        "(and an id could be in both splits); choose an empty folder, or --force "
                        "to replace the synthetic set in it\n", out);
        return -1;
    }
    return replace_synth_set(out);
}

int cmd_synth(int argc, char **argv) {
    const char *out = NULL;
    int n_train = 900, n_test = 379, seed = 1, bad = 0, force = 0;
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"train", required_argument, 0, 't'},
                                         {"test", required_argument, 0, 'e'},
                                         {"seed", required_argument, 0, 's'},
                                         {"force", no_argument, 0, 'f'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 't': bad |= cli_parse_int("synth", "--train", optarg, 0, 1000000, &n_train); break;
        case 'e': bad |= cli_parse_int("synth", "--test", optarg, 0, 1000000, &n_test); break;
        case 's': bad |= cli_parse_int("synth", "--seed", optarg, 0, 2147483647L, &seed); break;
        case 'f': force = 1; break;
        case 'h':
            printf("usage: oclseg synth --out DIR [--train 900] [--test 379] [--seed 1] [--force]\n\n"
                   "Writes a synthetic dermoscopy-like data set in the ISIC 2016 Part 1 layout:\n"
                   "skin texture, dermatoscope vignetting, irregular variegated lesions of varying\n"
                   "contrast, hairs, bubbles and ruler marks, with exact masks. The same seed\n"
                   "writes the same bytes. DIR must be empty or new: --force replaces a set synth\n"
                   "wrote there before (it holds " SYNTH_MARKER ") and refuses, naming it, any other file.\n");
            return 0;
        default: return 2;
        }
    }
    if (bad) return 2;
    if (!out) {
        fprintf(stderr, "oclseg synth: --out DIR is required (the folder to write the set to)\n");
        return 2;
    }
    if (n_train + n_test == 0) {
        fprintf(stderr, "oclseg synth: --train 0 and --test 0 ask for no images: give at least "
                        "one of them a count above 0\n");
        return 2;
    }
    if (prepare_out(out, force) != 0 || write_marker(out, n_train, n_test, seed) != 0) return 1;
    const double t0 = oclseg_now_s();
    if (oclseg_synth_write(out, n_train, n_test, (uint64_t)seed) != OCLSEG_OK) return 1;
    printf("wrote %d training and %d test images with masks to %s (%.1f s)\n", n_train, n_test,
           out, oclseg_now_s() - t0);
    return 0;
}
