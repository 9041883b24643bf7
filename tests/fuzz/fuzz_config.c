/* libFuzzer target: the checkpoint metadata a resumed run reads (format, steps, epoch, best
 * epoch, optimizer state scalars, config text). The input is the JSON of the __metadata__
 * object; it is wrapped into a safetensors header, parsed by oclseg_st_parse, then by
 * oclseg_checkpoint_meta_parse, and its config text by oclseg_fit_options_parse (the options a
 * resume or train --config starts from). */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/fit.h"
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
        REQUIRE(meta.best_epoch >= 0 && meta.best_epoch <= meta.epoch);
        REQUIRE(isfinite(meta.epoch_loss_sum) && meta.epoch_loss_count >= 0);
        if (meta.config_json) REQUIRE(strlen(meta.config_json) < 8 + size);
    }
    if (oclseg_st_metadata(f, "config")) {
        oclseg_fit_options o;
        oclseg_fit_options_default(&o);
        oclseg_fit_record *rec = NULL;
        if (oclseg_fit_options_parse(oclseg_st_metadata(f, "config"), "fuzz", &o, &rec) ==
            OCLSEG_OK) {
            REQUIRE(rec != NULL);
            REQUIRE(o.size >= 32 && o.size % 32 == 0 && o.batch >= 1 && o.epochs >= 1);
            REQUIRE(o.eval_every >= 1 && o.max_steps >= 0 && o.threads >= 0 && o.patience >= 0);
            /* lr absent from the text: still the optimizer's default (resolved by oclseg_fit) */
            REQUIRE(((o.lr >= 0 && o.lr <= 10) || o.lr == OCLSEG_FIT_OPTIMIZER_DEFAULT) &&
                    o.dropout >= 0 && o.dropout < 1);
            REQUIRE((int)o.optimizer >= 0 && (int)o.optimizer < OCLSEG_OPT_COUNT && (int)o.loss >= 0 &&
                    (int)o.loss <= 2 && (int)o.schedule >= 0 && (int)o.schedule <= 2);
            REQUIRE(o.val_fraction >= 0 && o.val_fraction <= 0.9 && o.aug.hue <= 0.5f);
            REQUIRE(o.resume == NULL && o.out_dir == NULL);
        } else {
            REQUIRE(rec == NULL);
        }
        oclseg_fit_record_free(rec);
    }
    oclseg_st_free(f);
    return 0;
}
