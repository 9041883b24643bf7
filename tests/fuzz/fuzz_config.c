/* libFuzzer target: the checkpoint metadata a resumed run reads (format, steps, epoch, optimizer
 * state scalars, config text). The input is the JSON of the __metadata__ object; it is wrapped
 * into a safetensors header, parsed by oclseg_st_parse, then by oclseg_checkpoint_meta_parse. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/safetensors.h"
#include "oclseg/weights.h"

#define REQUIRE(cond)                                                                         \
    do {                                                                                      \
        if (!(cond)) __builtin_trap();                                                        \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char prefix[] = "{\"__metadata__\":", suffix[] = "}";
    size_t header = sizeof prefix - 1 + size + sizeof suffix - 1;
    unsigned char *file = malloc(8 + header);
    if (!file) return 0;
    for (int i = 0; i < 8; i++) file[i] = (unsigned char)((uint64_t)header >> (8 * i));
    memcpy(file + 8, prefix, sizeof prefix - 1);
    if (size) memcpy(file + 8 + sizeof prefix - 1, data, size);
    memcpy(file + 8 + sizeof prefix - 1 + size, suffix, sizeof suffix - 1);
    oclseg_st_file *f;
    int st = oclseg_st_parse(file, 8 + header, "fuzz-checkpoint.safetensors", &f);
    free(file);
    if (st != OCLSEG_OK) return 0;
    oclseg_checkpoint_meta meta;
    if (oclseg_checkpoint_meta_parse(f, &meta) == OCLSEG_OK) {
        REQUIRE(meta.trainer_step >= 0 && meta.optimizer_step >= 0);
        REQUIRE(meta.epoch >= 0 && meta.step_in_epoch >= 0);
        REQUIRE(meta.frozen_encoder == 0 || meta.frozen_encoder == 1);
        REQUIRE(meta.optimizer >= 0);
        REQUIRE(isfinite(meta.mu_product) && isfinite(meta.best_jaccard));
        if (meta.config_json) REQUIRE(strlen(meta.config_json) < 8 + size);
    }
    oclseg_st_free(f);
    return 0;
}
