/* libFuzzer target: the dataset scanners (oclseg_isic_scan, oclseg_pairs_scan) on folders of
 * odd file names. The input is a list of lines; each line's first character says what to make
 * and the rest is the name:
 *   I<name>  empty file in the images folder      M<name>  empty file in the masks folder
 *   D<name>  folder in the images folder          L<name>  symlink to "." in the images folder
 *   T<name>  folder at the top of the data folder F<name>  file at the top of the data folder
 *   S<text>  mask suffix for the generic scan (the first S line wins)
 * Other lines make an image file named by the whole line. Names containing '/' or NUL, ".",
 * "..", empty names and names longer than 200 bytes are dropped; at most 64 lines are used.
 * The images/masks folders are ISBI2016_ISIC_Part1_Training_Data and ..._Training_GroundTruth
 * (the ISIC 2016 layout); the generic scan reads the same two folders. Everything is made in
 * a fresh temporary folder that is removed afterwards. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oclseg/data.h"

#define REQUIRE(cond)                                                                         \
    do {                                                                                      \
        if (!(cond)) __builtin_trap();                                                        \
    } while (0)

#define MAX_LINES 64
#define MAX_NAME 200
#define IMAGES_DIR "ISBI2016_ISIC_Part1_Training_Data"
#define MASKS_DIR "ISBI2016_ISIC_Part1_Training_GroundTruth"

/* Removes a tree without following symlinks. */
static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                char child[4400];
                if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) < (int)sizeof child)
                    remove_tree(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int valid_name(const char *name, size_t len) {
    if (len == 0 || len > MAX_NAME || memchr(name, '/', len) || memchr(name, '\0', len)) return 0;
    return !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

static void make_entry(const char *root, char kind, const char *name) {
    char path[4400];
    const char *sub = kind == 'M' ? MASKS_DIR : (kind == 'T' || kind == 'F') ? "" : IMAGES_DIR;
    snprintf(path, sizeof path, "%s/%s%s%s", root, sub, *sub ? "/" : "", name);
    if (kind == 'D' || kind == 'T') {
        mkdir(path, 0700);
    } else if (kind == 'L') {
        if (symlink(".", path) != 0 && errno != EEXIST) return;
    } else {
        FILE *f = fopen(path, "wb");
        if (f) fclose(f);
    }
}

static void check_pairs(const oclseg_pair_list *list, int skip_bad) {
    REQUIRE(list->count > 0 && list->items != NULL && list->skipped >= 0);
    if (!skip_bad) REQUIRE(list->skipped == 0);
    for (int i = 0; i < list->count; i++) {
        const oclseg_pair *p = &list->items[i];
        REQUIRE(p->id && p->image_path && p->mask_path);
        REQUIRE(strstr(p->image_path, p->id) && strstr(p->mask_path, p->id));
        if (i) REQUIRE(strcmp(list->items[i - 1].image_path, p->image_path) < 0);
    }
}

static void scan_all(const char *root, const char *suffix) {
    char images[4400], masks[4400];
    snprintf(images, sizeof images, "%s/%s", root, IMAGES_DIR);
    snprintf(masks, sizeof masks, "%s/%s", root, MASKS_DIR);
    for (int skip_bad = 0; skip_bad <= 1; skip_bad++) {
        oclseg_pair_list list;
        if (oclseg_isic_scan(root, OCLSEG_SPLIT_TRAIN, skip_bad, &list) == OCLSEG_OK)
            check_pairs(&list, skip_bad);
        else REQUIRE(list.count == 0 && list.items == NULL);
        oclseg_pair_list_free(&list);
        if (oclseg_isic_scan(root, OCLSEG_SPLIT_TEST, skip_bad, &list) == OCLSEG_OK)
            check_pairs(&list, skip_bad);
        oclseg_pair_list_free(&list);
        if (oclseg_pairs_scan(images, masks, suffix, skip_bad, &list) == OCLSEG_OK)
            check_pairs(&list, skip_bad);
        else REQUIRE(list.count == 0 && list.items == NULL);
        oclseg_pair_list_free(&list);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *base = getenv("TMPDIR");
    char root[4096];
    snprintf(root, sizeof root, "%s/oclseg-fuzz-scan-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(root)) return 0;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", root, IMAGES_DIR);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s", root, MASKS_DIR);
    mkdir(path, 0700);

    char suffix[MAX_NAME + 1] = "", *has_suffix = NULL;
    const char *text = (const char *)data;
    size_t pos = 0;
    for (int lines = 0; pos < size && lines < MAX_LINES; lines++) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) : size - pos;
        const char *line = text + pos;
        pos += len + 1;
        char kind = len ? line[0] : 'I';
        if (strchr("IMDLTFS", kind) && len) line++, len--;
        else kind = 'I';
        if (kind == 'S') {
            if (!has_suffix && len <= MAX_NAME && !memchr(line, '\0', len)) {
                memcpy(suffix, line, len);
                suffix[len] = '\0';
                has_suffix = suffix;
            }
            continue;
        }
        if (!valid_name(line, len)) continue;
        char name[MAX_NAME + 1];
        memcpy(name, line, len);
        name[len] = '\0';
        make_entry(root, kind, name);
    }
    scan_all(root, has_suffix);
    /* the default suffix as well, when the input chose another one */
    if (has_suffix) scan_all(root, NULL);
    remove_tree(root);
    return 0;
}
