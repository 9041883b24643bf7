/* OpenCL runtime: device enumeration and choice, the context, program build + cache, launches, buffers. */
#ifndef OCLSEG_RUNTIME_H
#define OCLSEG_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include "oclseg/env.h"
#include "oclseg/status.h"

/* One OpenCL device as enumerated (index P:D = platform_index:device_index). */
typedef struct oclseg_device_info {
    int platform_index, device_index;
    cl_platform_id platform;
    cl_device_id device;
    char name[256], vendor[256], platform_name[256], platform_version[256];
    char driver_version[256], opencl_c_version[256], device_version[256];
    cl_device_type type;
    cl_uint compute_units;
    cl_ulong global_mem, local_mem, max_alloc;
    size_t max_work_group_size;
    int has_fp16, has_fp64;
} oclseg_device_info;

/* Enumerates every device of every platform. *out is malloc'd (free with free()). */
int oclseg_devices_list(oclseg_device_info **out, int *count);
const char *oclseg_device_type_str(cl_device_type type);

/* Picks a device from spec: "P:D", a case-insensitive substring of the device name, platform
 * name, platform version (e.g. "PoCL") or vendor (the first match),
 * NULL/"" (then env OCLSEG_DEVICE, then first GPU > accelerator > CPU), "auto" (the GPUs
 * round-robin over the node-local ranks of an MPI run), or a comma-separated list of those, one
 * per node-local rank (oclseg_dist_local_rank() picks). A bad spec is an error that lists the
 * available devices. */
int oclseg_device_choose(const char *spec, oclseg_device_info *out);

/* 64-bit FNV-1a of `len` bytes continuing from `h` (start with OCLSEG_FNV1A64_INIT); a
 * checksum and cache key, not a cryptographic hash. */
#define OCLSEG_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t oclseg_fnv1a64(uint64_t h, const void *data, size_t len);

typedef struct oclseg_kernel_entry oclseg_kernel_entry;

/* One profiled command (only when the context was created with profiling on). */
typedef struct oclseg_prof_record {
    char name[48];
    cl_event event;
} oclseg_prof_record;
typedef struct oclseg_program_entry oclseg_program_entry;

/* Everything needed to run kernels on one device. One per device; single-threaded use. */
/* What the host enqueued on a context (counted since its creation; bench reads differences). */
typedef struct oclseg_enqueue_stats {
    long kernels;       /* oclseg_launch calls that enqueued a kernel */
    long clblast_calls; /* CLBlast GEMM calls (each enqueues one or more kernels of its own) */
    long clblast_blocking; /* those of them that wait for the queue (CLBlastSgemmBatched) */
    double enqueue_s;   /* host time spent inside those enqueue calls (both kinds) */
    double clblast_s;   /* the part of it spent inside CLBlast */
} oclseg_enqueue_stats;

/* Opaque outside the library, like oclseg_model (OCLSEG_INTERNALS, oclseg/model.h). */
#ifdef OCLSEG_INTERNALS
typedef struct oclseg_ctx {
    oclseg_device_info info;
    /* the environment's switches when the context was created (oclseg_env_get): code holding a
     * context reads them here, so a context keeps the switches it was made with */
    oclseg_env env;
    cl_context context;
    cl_command_queue queue;
    int profiling;                 /* queue created with CL_QUEUE_PROFILING_ENABLE */
    char cl_std[16];               /* "-cl-std=CL1.2" etc., probed; "" if none accepted */
    oclseg_program_entry *programs; /* built programs (linked list) */
    oclseg_kernel_entry *kernels;  /* created kernels with their work-group sizes (linked list) */
    cl_mem scratch;                /* one shared workspace, grown to the largest request */
    size_t scratch_bytes;
    size_t live_buffers, live_bytes, peak_bytes; /* device memory accounting */
    int verbose;
    oclseg_prof_record *prof; /* profiled commands since the last oclseg_prof_reset */
    size_t prof_count, prof_cap;
    int tuning_applied;     /* CLBlast GEMM parameters from a tuning file (oclseg/tuning.h) */
    char tuning_desc[4200]; /* which file, or why the defaults are used */
    oclseg_enqueue_stats enqueued;
    /* CLBlast's XGEMM_MIN_INDIRECT_SIZE for this device (its database or the tuning override),
     * read at the first batched GEMM: 0 not yet read, -1 unavailable (see src/ops/gemm.c) */
    long gemm_min_indirect;
    /* who runs this context's GEMMs: OCLSEG_GEMM_AUTO (OCLSEG_GEMM, else the tuning file's choice
     * for the shape, else the own kernels on CPU devices except rusticl and CLBlast elsewhere),
     * OCLSEG_GEMM_OWN or OCLSEG_GEMM_CLBLAST (src/ops/gemm.c) */
    int gemm_backend;
    /* the tuning file's backend per GEMM shape, consulted when gemm_backend and OCLSEG_GEMM are
     * AUTO (oclseg_tuning_apply; malloc'd, NULL when there is none) */
    struct oclseg_gemm_backend_choice *gemm_choices;
    int gemm_choice_count;
    cl_mem gemm_pack; /* packed GEMM operands of the own kernels (src/ops/gemm.c), grown as needed */
    size_t gemm_pack_bytes;
    /* kernels shaped for CPUs (an item per row instead of per element; depthwise): 0 auto (CPU
     * devices), OCLSEG_ROWS_ON, OCLSEG_ROWS_OFF */
    int row_kernels;
    /* whether a work-item's loops run to the end (oclseg_device_runs_long_loops): 0 not probed
     * yet, 1 yes, -1 no (Mesa's llvmpipe ends them after 65535 iterations in all) */
    int long_loops;
    /* `oclseg tune`'s record of this context's GEMM calls (oclseg_gemm_record_begin/_end in
     * oclseg/tuning.h; src/ops/gemm.c): off, or on with the distinct shapes seen so far */
    int gemm_rec_on;
    struct oclseg_gemm_shape *gemm_rec;
    int gemm_rec_count, gemm_rec_cap;
} oclseg_ctx;
#else
typedef struct oclseg_ctx oclseg_ctx;
#endif

enum { OCLSEG_ROWS_AUTO = 0, OCLSEG_ROWS_ON = 1, OCLSEG_ROWS_OFF = 2 };

/* Whether ops use their CPU-shaped kernels on this context (see row_kernels): by default on CPU
 * devices whose work-items run long loops to the end (a row or channel per work-item loops over
 * a whole plane or batch). */
int oclseg_use_row_kernels(oclseg_ctx *ctx);

/* Whether one work-item of this device runs 80000 loop iterations to the end, probed once per
 * context (cl/device_probe.cl). Mesa's llvmpipe (rusticl) ends every loop of a work-item after
 * 65535 iterations in all without an error (tools/repro/llvmpipe_loop_limit.c): kernels that
 * give a work-item a long loop (the own GEMM's k loop, the row kernels) are wrong there. A
 * failed probe counts as "no" (with a warning): the other kernels are right everywhere. */
int oclseg_device_runs_long_loops(oclseg_ctx *ctx);

enum { OCLSEG_GEMM_AUTO = 0, OCLSEG_GEMM_OWN = 1, OCLSEG_GEMM_CLBLAST = 2 };

typedef struct oclseg_ctx_options {
    const char *device_spec; /* see oclseg_device_choose */
    int profiling;
    int verbose;
} oclseg_ctx_options;

int oclseg_ctx_create(oclseg_ctx **out, const oclseg_ctx_options *opts);
/* Creates a context for an already enumerated device (tests iterate devices this way). */
int oclseg_ctx_create_for(oclseg_ctx **out, const oclseg_device_info *dev, int profiling);
void oclseg_ctx_free(oclseg_ctx *ctx);

/* Returns the kernel `kernel_name` from program `program_name` (= cl/<program_name>.cl), building
 * the program on first use with the device's tuning defines and `extra_defines` (may be NULL;
 * programs built with different defines are distinct). The kernel is owned by ctx. */
int oclseg_kernel_get(oclseg_ctx *ctx, const char *program_name, const char *extra_defines,
                      const char *kernel_name, cl_kernel *out);

/* Work-group size for a reduction kernel of `program_name`: REDUCE_WG as the program is built
 * with it (the per-device tuning define; 64, the .cl default, when absent), lowered to the
 * largest power of two the kernel allows on this device (Mesa rusticl on llvmpipe reports 32). */
size_t oclseg_reduce_wg(oclseg_ctx *ctx, const char *program_name, cl_kernel kernel);

/* Work-group size limit of a kernel on this device (CL_KERNEL_WORK_GROUP_SIZE). */
size_t oclseg_kernel_wg_limit(oclseg_ctx *ctx, cl_kernel kernel);

/* Enqueues `kernel` over `global` work-items (dims 1..3). local == NULL: the runtime picks a
 * work-group size from CL_KERNEL_WORK_GROUP_SIZE and rounds global up to a multiple of it, so
 * kernels must bounds-check. A non-NULL local is used as given (checked against the limit). */
int oclseg_launch(oclseg_ctx *ctx, cl_kernel kernel, cl_uint dims, const size_t *global,
                  const size_t *local);

/* Device buffers, with accounting (live count/bytes, peak) and an allocation fault hook:
 * env OCLSEG_FAULT_ALLOC=N makes the N-th allocation fail (for tests). `what` names the
 * buffer in the error message. */
int oclseg_buffer_create(oclseg_ctx *ctx, size_t bytes, const char *what, cl_mem *out);
/* Grows *buf (now *have bytes; NULL/0: none) to at least `bytes`: waits for the queue, frees it
 * and creates a new one (contents lost); no-op when large enough. The scratch and the GEMM
 * packing buffer grow this way. */
int oclseg_buffer_grow(oclseg_ctx *ctx, cl_mem *buf, size_t *have, size_t bytes,
                       const char *what);
/* Releases a buffer from oclseg_buffer_create (NULL: nothing); its size comes from the buffer. */
void oclseg_buffer_free(oclseg_ctx *ctx, cl_mem buf);

/* Host memory the device reads without an extra copy where the platform allows: a buffer
 * created with CL_MEM_ALLOC_HOST_PTR (pinned memory on discrete GPUs: uploads from it are direct
 * DMA transfers) mapped for writing once, for as long as it lives; *host is the mapped pointer,
 * a source for non-blocking clEnqueueWriteBuffer. Where the buffer cannot be created or mapped,
 * *buf is NULL and *host plain malloc'ed memory (same use, one more copy inside the driver).
 * NULL *host: out of memory. Host memory: not counted in the context's device bytes. */
int oclseg_host_buffer_create(oclseg_ctx *ctx, size_t bytes, cl_mem *buf, void **host);
/* Unmaps and releases (or frees) what oclseg_host_buffer_create made; waits for the queue. */
void oclseg_host_buffer_free(oclseg_ctx *ctx, cl_mem buf, void *host);

/* Returns the shared scratch buffer with at least `bytes` bytes (grows it if needed; after the
 * first training step it never grows again). Valid until the next call that grows it. */
int oclseg_scratch(oclseg_ctx *ctx, size_t bytes, cl_mem *out);

/* Blocking copies between host and device (offsets/sizes in bytes). */
int oclseg_write(oclseg_ctx *ctx, cl_mem buf, size_t offset, size_t bytes, const void *src);
int oclseg_read(oclseg_ctx *ctx, cl_mem buf, size_t offset, size_t bytes, void *dst);
/* Fills `count` floats at element offset `off` with `value`. */
int oclseg_fill_f32(oclseg_ctx *ctx, cl_mem buf, size_t off, size_t count, float value);
int oclseg_finish(oclseg_ctx *ctx);

/* Profiling: an event slot to pass to clEnqueue calls or CLBlast for a command called `name`, or NULL
 * when profiling is off (so callers can always pass the result). */
cl_event *oclseg_prof_slot(oclseg_ctx *ctx, const char *name);
/* Sums device time per command name over the recorded events (after clFinish). names/ns are
 * malloc'd arrays of *count entries, sorted by time, descending. Then forgets the events. */
int oclseg_prof_collect(oclseg_ctx *ctx, char (**names)[48], double **ms, int *count);
void oclseg_prof_reset(oclseg_ctx *ctx);

/* Where the kernel binary cache lives ("" when disabled via OCLSEG_CACHE=0). */
void oclseg_cache_dir(char *out, size_t size);
/* Checks once, before the first OpenCL call, that the cache root ($XDG_CACHE_HOME or ~/.cache)
 * can be written; if not: a warning, no kernel cache for this run, and PoCL (which finds no
 * device without a cache folder) a private temporary one unless POCL_CACHE_DIR is set. */
void oclseg_cache_prepare(void);

/* Live OpenCL objects created by oclseg, counted at every create and release (process-wide).
 * CLBlast's own cache is emptied when the last context is freed. Profiling events belong to the
 * context's slot table and are released with it; they are not counted. */
typedef enum oclseg_cl_kind {
    OCLSEG_CL_CONTEXT, OCLSEG_CL_QUEUE, OCLSEG_CL_PROGRAM, OCLSEG_CL_KERNEL, OCLSEG_CL_MEM,
    OCLSEG_CL_EVENT, OCLSEG_CL_KINDS
} oclseg_cl_kind;
void oclseg_cl_created(oclseg_cl_kind kind);
void oclseg_cl_released(oclseg_cl_kind kind);
long oclseg_cl_live(oclseg_cl_kind kind);
/* OCLSEG_OK when nothing is alive; otherwise logs what is and returns OCLSEG_ERR_INTERNAL. */
int oclseg_cl_check_released(void);

#endif
