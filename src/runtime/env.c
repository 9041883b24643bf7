/* Environment switches: the one place oclseg calls getenv (see include/oclseg/env.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/env.h"
#include "oclseg/runtime.h"

static oclseg_env env;
static int env_read;

/* Copies a variable's value ("" when unset); returns whether it is set. */
static int copy_var(const char *value, char *out, size_t size) {
    snprintf(out, size, "%s", value ? value : "");
    return value != NULL;
}

static int is_one(const char *value) { return value && strcmp(value, "1") == 0; }

void oclseg_env_reload(void) {
    oclseg_env e;
    memset(&e, 0, sizeof e);
    copy_var(getenv("OCLSEG_DEVICE"), e.device, sizeof e.device);
    copy_var(getenv("OCLSEG_KERNEL_DIR"), e.kernel_dir, sizeof e.kernel_dir);
    const char *cache = getenv("OCLSEG_CACHE");
    e.cache_off = cache && strcmp(cache, "0") == 0;
    copy_var(getenv("XDG_CACHE_HOME"), e.xdg_cache_home, sizeof e.xdg_cache_home);
    copy_var(getenv("HOME"), e.home, sizeof e.home);
    copy_var(getenv("TMPDIR"), e.tmpdir, sizeof e.tmpdir);
    copy_var(getenv("OCLSEG_TUNING_DIR"), e.tuning_dir, sizeof e.tuning_dir);
    e.no_tuning = is_one(getenv("OCLSEG_NO_TUNING"));
    e.no_fusion = is_one(getenv("OCLSEG_NO_FUSION"));
    const char *gemm = getenv("OCLSEG_GEMM"), *rows = getenv("OCLSEG_ROW_KERNELS");
    e.gemm_backend = !gemm ? 0 : strcmp(gemm, "own") == 0 ? OCLSEG_GEMM_OWN
                     : strcmp(gemm, "clblast") == 0 ? OCLSEG_GEMM_CLBLAST : 0;
    if (gemm && *gemm && e.gemm_backend == 0)
        fprintf(stderr, "oclseg: warning: OCLSEG_GEMM=%s is neither own nor clblast; using the "
                        "device default\n", gemm);
    e.row_kernels = !rows ? 0 : strcmp(rows, "1") == 0 ? OCLSEG_ROWS_ON
                    : strcmp(rows, "0") == 0 ? OCLSEG_ROWS_OFF : 0;
    e.debug = is_one(getenv("OCLSEG_DEBUG"));
    e.pocl_cache_dir_set = getenv("POCL_CACHE_DIR") != NULL;
    e.check_numerics = is_one(getenv("OCLSEG_CHECK_NUMERICS"));
    e.check_cl_leaks = is_one(getenv("OCLSEG_CHECK_CL_LEAKS"));
    e.mpi_launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
    const char *timeout = getenv("OCLSEG_DIST_TIMEOUT");
    e.dist_timeout_s = timeout && atof(timeout) > 0 ? atof(timeout) : 0.0;
    e.dist_check = is_one(getenv("OCLSEG_DIST_CHECK"));
    const char *shared_data = getenv("OCLSEG_SHARED_DATA");
    e.shared_data_off = shared_data && strcmp(shared_data, "0") == 0;
    e.has_balance_speeds =
        copy_var(getenv("OCLSEG_BALANCE_SPEEDS"), e.balance_speeds, sizeof e.balance_speeds);
    const char *alloc = getenv("OCLSEG_FAULT_ALLOC"), *launch = getenv("OCLSEG_FAULT_LAUNCH");
    e.fault_alloc = alloc ? atol(alloc) : 0;
    e.fault_launch = launch ? atol(launch) : 0;
    e.has_fault_nan = copy_var(getenv("OCLSEG_FAULT_NAN"), e.fault_nan, sizeof e.fault_nan);
    e.fault_write = is_one(getenv("OCLSEG_FAULT_WRITE"));
    e.fault_foreign_data = is_one(getenv("OCLSEG_FAULT_FOREIGN_DATA"));
    e.fault_shared_kill = is_one(getenv("OCLSEG_FAULT_SHARED_KILL"));
    const char *abort_hook = getenv("OCLSEG_TUNE_TRIAL_ABORT");
    const char *corrupt_hook = getenv("OCLSEG_TUNE_TRIAL_CORRUPT");
    e.tune_trial_abort = is_one(abort_hook);
    e.tune_own_abort = abort_hook && strcmp(abort_hook, "own") == 0;
    e.tune_trial_corrupt = is_one(corrupt_hook);
    if (corrupt_hook && strncmp(corrupt_hook, "own:", 4) == 0 && atoi(corrupt_hook + 4) >= 0)
        e.tune_own_corrupt_shape = atoi(corrupt_hook + 4) + 1;
    env = e;
    env_read = 1;
}

const oclseg_env *oclseg_env_get(void) {
    if (!env_read) oclseg_env_reload();
    return &env;
}
