/* `oclseg synth`: writes the synthetic ISIC-layout data set. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "oclseg/data.h"
#include "oclseg/util.h"

int cmd_synth(int argc, char **argv) {
    const char *out = NULL;
    int n_train = 900, n_test = 379, seed = 1, bad = 0;
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
        case 't': bad |= cli_parse_int("synth", "--train", optarg, 0, 1000000, &n_train); break;
        case 'e': bad |= cli_parse_int("synth", "--test", optarg, 0, 1000000, &n_test); break;
        case 's': bad |= cli_parse_int("synth", "--seed", optarg, 0, 2147483647L, &seed); break;
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
    const double t0 = oclseg_now_s();
    if (oclseg_synth_write(out, n_train, n_test, (uint64_t)seed) != OCLSEG_OK) return 1;
    printf("wrote %d training and %d test images with masks to %s (%.1f s)\n", n_train, n_test,
           out, oclseg_now_s() - t0);
    return 0;
}
