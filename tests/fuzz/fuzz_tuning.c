/* libFuzzer target: the per-device GEMM tuning file that every context creation reads
 * (oclseg_tuning_parse, whole files and bare candidate objects); whatever parses must format
 * and parse back to the same parameters and per-shape backends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/tuning.h"

#define REQUIRE(cond)                                                                         \
    do {                                                                                      \
        if (!(cond)) __builtin_trap();                                                        \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int params_only = 0; params_only < 2; params_only++) {
        oclseg_tuning t;
        char err[256];
        if (oclseg_tuning_parse((const char *)data, size, params_only, &t, err, sizeof err) !=
            OCLSEG_OK) {
            REQUIRE(memchr(err, '\0', sizeof err) != NULL); /* a terminated message */
            continue;
        }
        char *text = oclseg_tuning_format(&t, params_only);
        if (!text) continue;
        oclseg_tuning again;
        REQUIRE(oclseg_tuning_parse(text, strlen(text), params_only, &again, err, sizeof err) ==
                OCLSEG_OK);
        for (int k = 0; k < OCLSEG_TUNING_KERNELS; k++) {
            REQUIRE(again.has[k] == t.has[k]);
            if (!t.has[k]) continue;
            REQUIRE(again.params[k].count == t.params[k].count);
            for (int i = 0; i < t.params[k].count; i++) {
                REQUIRE(strcmp(again.params[k].names[i], t.params[k].names[i]) == 0);
                REQUIRE(again.params[k].values[i] == t.params[k].values[i]);
            }
        }
        REQUIRE(again.nbackends == t.nbackends);
        for (int i = 0; i < t.nbackends; i++) {
            REQUIRE(oclseg_gemm_shape_same(&again.backends[i].shape, &t.backends[i].shape));
            REQUIRE(again.backends[i].backend == t.backends[i].backend);
        }
        free(text);
    }
    return 0;
}
