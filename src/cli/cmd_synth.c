/* `oclseg synth`: writes the synthetic ISIC-layout data set. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli/cli.h"
#include "oclseg/data.h"

int cmd_synth(int argc, char **argv) {
    const char *out = NULL;
    long n_train = 900, n_test = 379, seed = 1;
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"train", required_argument, 0, 't'},
                                         {"test", required_argument, 0, 'e'},
                                         {"seed", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 't': n_train = strtol(optarg, NULL, 10); break;
        case 'e': n_test = strtol(optarg, NULL, 10); break;
        case 's': seed = strtol(optarg, NULL, 10); break;
        case 'h':
            printf("usage: oclseg synth --out DIR [--train 900] [--test 379] [--seed 1]\n\n"
                   "Writes a synthetic dermoscopy-like data set in the ISIC 2016 Part 1 layout:\n"
                   "skin texture, dermatoscope vignetting, irregular variegated lesions of varying\n"
                   "contrast, hairs, bubbles and ruler marks, with exact masks. The same seed\n"
                   "writes the same bytes.\n");
            return 0;
        default: return 2;
        }
    }
    if (!out || n_train < 0 || n_test < 0 || n_train + n_test == 0 || n_train > 1000000 ||
        n_test > 1000000) {
        fprintf(stderr, "oclseg synth: --out DIR is required; --train/--test must be >= 0 and "
                        "not both 0\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (oclseg_synth_write(out, (int)n_train, (int)n_test, (uint64_t)seed) != OCLSEG_OK) return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("wrote %ld training and %ld test images with masks to %s (%.1f s)\n", n_train, n_test,
           out, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
