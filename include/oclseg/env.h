/* Environment switches: every variable oclseg reads, read once into one documented struct. */
#ifndef OCLSEG_ENV_H
#define OCLSEG_ENV_H

/* A string switch longer than this is cut (paths: see OCLSEG_ENV_PATH). */
#define OCLSEG_ENV_PATH 4096

/* Each field names its variable; "" / 0 when the variable is unset. "1" switches are on only
 * for exactly "1". README.md ("Environment variables") and docs/oclseg.1 (ENVIRONMENT) list them
 * all (tests/install.sh checks the man page names every variable read in src/runtime/env.c). */
typedef struct oclseg_env {
    /* devices and kernels */
    char device[1024];                   /* OCLSEG_DEVICE: default --device spec */
    char kernel_dir[OCLSEG_ENV_PATH];    /* OCLSEG_KERNEL_DIR: load cl/<name>.cl from here */
    int cache_off;                       /* OCLSEG_CACHE=0: no compiled-kernel cache */
    char xdg_cache_home[OCLSEG_ENV_PATH]; /* XDG_CACHE_HOME: root of the kernel cache + tuning */
    char home[OCLSEG_ENV_PATH];          /* HOME: ~/.cache when XDG_CACHE_HOME is unset */
    char tmpdir[OCLSEG_ENV_PATH];        /* TMPDIR: temporary files (gnuplot scripts); /tmp */
    char tuning_dir[OCLSEG_ENV_PATH];    /* OCLSEG_TUNING_DIR: GEMM tuning files' folder */
    int no_tuning;                       /* OCLSEG_NO_TUNING=1: CLBlast's default parameters */
    int no_fusion;                       /* OCLSEG_NO_FUSION=1: ReLU6/ReLU as separate kernels */
    int gemm_backend;   /* OCLSEG_GEMM=own|clblast: OCLSEG_GEMM_OWN / _CLBLAST, else 0 (device) */
    int row_kernels;    /* OCLSEG_ROW_KERNELS=1|0: OCLSEG_ROWS_ON / _OFF, else 0 (device type) */
    /* messages */
    int debug;                           /* OCLSEG_DEBUG=1: errors name their source file:line */
    int pocl_cache_dir_set;              /* POCL_CACHE_DIR is set (PoCL's own kernel cache) */
    /* checks */
    int check_numerics;                  /* OCLSEG_CHECK_NUMERICS=1: as train --check-numerics */
    int check_cl_leaks;                  /* OCLSEG_CHECK_CL_LEAKS=1: exit 70 on a leaked object */
    /* data parallel (mpirun) */
    int mpi_launched;      /* OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK set: a launcher ran us */
    double dist_timeout_s; /* OCLSEG_DIST_TIMEOUT: seconds a collective waits (0: the default) */
    int dist_check;        /* OCLSEG_DIST_CHECK=1: compare parameter hashes after every step */
    int shared_data_off;   /* OCLSEG_SHARED_DATA=0: every rank decodes the whole data set */
    int has_balance_speeds;    /* OCLSEG_BALANCE_SPEEDS is set */
    char balance_speeds[1024]; /* OCLSEG_BALANCE_SPEEDS: fixed rank speeds (tests, --balance) */
    /* test hooks (fault injection) */
    long fault_alloc;          /* OCLSEG_FAULT_ALLOC=N: the N-th device allocation fails */
    long fault_launch;         /* OCLSEG_FAULT_LAUNCH=N: the N-th kernel launch fails */
    int has_fault_nan;         /* OCLSEG_FAULT_NAN is set */
    char fault_nan[256];       /* OCLSEG_FAULT_NAN=param:NAME:STEP | grad:NAME:STEP */
    int fault_write;           /* OCLSEG_FAULT_WRITE=1: atomic file writes stop halfway */
    int fault_foreign_data;    /* OCLSEG_FAULT_FOREIGN_DATA=1: this rank takes the shared decoded
                                * data file for another host's (a wrong token) */
    int fault_shared_kill;     /* OCLSEG_FAULT_SHARED_KILL=1: rank 0 kills itself (SIGKILL) once it
                                * has created the shared decoded data file */
    int tune_trial_abort;      /* OCLSEG_TUNE_TRIAL_ABORT=1: tune's CLBlast candidate trials crash */
    int tune_trial_corrupt;    /* OCLSEG_TUNE_TRIAL_CORRUPT=1: ... compute a wrong element */
    int tune_own_abort;        /* OCLSEG_TUNE_TRIAL_ABORT=own: tune's own-kernel trial crashes */
    int tune_own_corrupt_shape; /* OCLSEG_TUNE_TRIAL_CORRUPT=own:N: N + 1 (0: off): the own-kernel
                                 * trial gets recorded shape N (from 0) wrong */
} oclseg_env;

/* The switches, read from the environment at the first call. A context copies them when it is
 * created (oclseg_ctx.env) and code holding a context reads them there; this reader is for code
 * with none (device choice, MPI start-up, messages, file helpers: docs/architecture.md). */
const oclseg_env *oclseg_env_get(void);
/* Reads the environment again (after setenv/unsetenv: tests, and tune before its children);
 * contexts created earlier keep their copy. */
void oclseg_env_reload(void);

#endif
