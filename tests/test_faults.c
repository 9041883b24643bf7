/* Fault injection against a real run (OCLSEG_BIN, set by meson): device out of memory at
 * allocation and at enqueue (injected, and a batch too large for CL_DEVICE_MAX_MEM_ALLOC_SIZE),
 * NaN in parameters/gradients (with and without --check-numerics), a failing checkpoint write
 * (file-size limit, and a full tmpfs where mounting is allowed), SIGKILL in the middle of
 * checkpoint writes, and a kernel that fails to build. Each one must give a clear message,
 * exit non-zero and leave the previous checkpoint byte-identical (or, after SIGKILL, loadable). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/safetensors.h"

static char root[64];
static const char *bin;
static char data[128], run[128], ckpt[160];

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* A training run of 2 epochs (3 steps each) at 32x32 whose checkpoint the faults must keep. */
static void setup_once(void) {
    if (root[0]) return;
    bin = getenv("OCLSEG_BIN");
    ck_assert_msg(bin != NULL, "OCLSEG_BIN is not set (run through meson test)");
    harness_mkdtemp(root, sizeof root, "faults");
    snprintf(data, sizeof data, "%s/data", root);
    snprintf(run, sizeof run, "%s/run", root);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", run);
    ck_assert_int_eq(harness_sh("%s synth --out %s --train 12 --test 4 --seed 5 > /dev/null", bin, data), 0);
    ck_assert_int_eq(harness_sh("%s train --data %s --out %s --epochs 1 --batch 4 --size 32 --quiet",
                        bin, data, run), 0);
}

/* Runs `env oclseg train --resume` (2 more epochs) with stderr to ERR, expects failure, the
 * message fragments, and the checkpoint unchanged. */
static void expect_failure_keeps_checkpoint(const char *env, const char *extra,
                                            const char *const *fragments) {
    size_t before_size, after_size;
    unsigned char *before = read_all(ckpt, &before_size);
    ck_assert_ptr_nonnull(before);
    int rc = harness_sh("%s %s train --data %s --out %s --epochs 3 --batch 4 --size 32 --quiet "
                "--resume %s %s 2> %s/err.txt", env, bin, data, run, ckpt, extra, root);
    char errpath[128];
    snprintf(errpath, sizeof errpath, "%s/err.txt", root);
    size_t err_size;
    unsigned char *err = read_all(errpath, &err_size);
    ck_assert_ptr_nonnull(err);
    char *msg = calloc(1, err_size + 1);
    memcpy(msg, err, err_size);
    ck_assert_msg(rc != 0, "[%s] expected a failure, got exit 0", env);
    for (int i = 0; fragments[i]; i++)
        ck_assert_msg(strstr(msg, fragments[i]) != NULL, "[%s] message lacks '%s':\n%s", env,
                      fragments[i], msg);
    unsigned char *after = read_all(ckpt, &after_size);
    ck_assert_msg(after && after_size == before_size && memcmp(before, after, before_size) == 0,
                  "[%s] the previous checkpoint changed", env);
    /* and it still loads: resuming from it works */
    free(before);
    free(after);
    free(err);
    free(msg);
}

START_TEST(device_out_of_memory_at_allocation) {
    setup_once();
    /* the 5th device allocation of the resumed run fails (model arenas are being created) */
    const char *frag[] = {"cannot allocate", "MiB", "--batch", NULL};
    expect_failure_keeps_checkpoint("OCLSEG_FAULT_ALLOC=5", "", frag);
    /* real: activations for 30000 images exceed the device's largest single allocation */
    size_t n;
    unsigned char *before = read_all(ckpt, &n);
    ck_assert_int_ne(harness_sh("%s train --data %s --out %s/big --epochs 1 --batch 30000 --size 128 "
                        "--quiet 2> %s/err.txt", bin, data, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'cannot allocate .* MiB of device memory for activations.*"
                        "max single allocation.*--batch' %s/err.txt", root), 0);
    free(before);
}
END_TEST

START_TEST(device_out_of_resources_at_enqueue) {
    setup_once();
    /* launch 900 lies inside the first resumed step's backward */
    const char *frag[] = {"enqueueing kernel", "CL_OUT_OF_RESOURCES", "smaller --batch", NULL};
    expect_failure_keeps_checkpoint("OCLSEG_FAULT_LAUNCH=900", "", frag);
}
END_TEST

START_TEST(nan_stops_with_step_and_layer) {
    setup_once();
    /* NaN in a gradient only: the loss of that step is finite, the per-step gradient check
     * (no debug mode) still stops the run and names the step */
    const char *frag_grad[] = {"gradients held NaN/Inf at step 4", "--check-numerics", NULL};
    expect_failure_keeps_checkpoint("OCLSEG_FAULT_NAN=grad:decoder.0.weight:4", "", frag_grad);
    /* debug mode names the first layer: a NaN weight in the forward ... */
    const char *frag_fwd[] = {"step 4", "forward", "encoder.5.conv.1.0", NULL};
    expect_failure_keeps_checkpoint("OCLSEG_FAULT_NAN=param:encoder.5.conv.1.0.weight:4",
                                    "--check-numerics", frag_fwd);
    /* ... and a NaN gradient in the backward */
    const char *frag_bwd[] = {"step 5", "backward", "decoder.0", "gradients", NULL};
    expect_failure_keeps_checkpoint("OCLSEG_FAULT_NAN=grad:decoder.0.weight:5",
                                    "--check-numerics", frag_bwd);
    /* a NaN weight without the debug mode: the loss becomes NaN, the step is named */
    const char *frag_loss[] = {"loss became nan at step 4", NULL};
    expect_failure_keeps_checkpoint("OCLSEG_FAULT_NAN=param:decoder.0.bias:4", "", frag_loss);
}
END_TEST

/* The checkpoint (about 97 MB here) exceeds a 64 MiB file-size limit while every other output
 * (weights 32 MB, CSVs) fits: the write fails with EFBIG as on a full disk. */
START_TEST(checkpoint_write_failure_keeps_previous) {
    setup_once();
    const char *frag[] = {"checkpoint.safetensors", "failed", "previous file", NULL};
    expect_failure_keeps_checkpoint("ulimit -f 65536;", "", frag);
    /* no temporary is left behind */
    ck_assert_int_ne(harness_sh("ls %s | grep -q tmp", run), 0);
}
END_TEST

/* A real full disk: a tmpfs just large enough for the run directory plus the temporary of a
 * weights file, but not of a checkpoint. Needs permission to mount (root in a container with
 * CAP_SYS_ADMIN); otherwise the file-size test above covers the same code path. */
START_TEST(full_disk_keeps_previous) {
    setup_once();
    char disk[128];
    snprintf(disk, sizeof disk, "%s/disk", root);
    ck_assert_int_eq(mkdir(disk, 0755), 0);
    size_t ck_size, w_size;
    char wpath[160];
    snprintf(wpath, sizeof wpath, "%s/weights.safetensors", run);
    free(read_all(ckpt, &ck_size));
    free(read_all(wpath, &w_size));
    char opts[64];
    size_t bytes = ck_size + 3 * w_size + (4u << 20);
    snprintf(opts, sizeof opts, "size=%zuk", bytes / 1024);
    if (mount("tmpfs", disk, "tmpfs", 0, opts) != 0) {
        fprintf(stderr, "full_disk_keeps_previous: cannot mount a tmpfs (%s): skipped\n",
                strerror(errno));
        return;
    }
    char disk_run[160], disk_ckpt[200];
    snprintf(disk_run, sizeof disk_run, "%s/run", disk);
    snprintf(disk_ckpt, sizeof disk_ckpt, "%s/checkpoint.safetensors", disk_run);
    ck_assert_int_eq(harness_sh("cp -r %s %s", run, disk_run), 0);
    size_t before_size, after_size;
    unsigned char *before = read_all(disk_ckpt, &before_size);
    int rc = harness_sh("%s train --data %s --out %s --epochs 3 --batch 4 --size 32 --quiet --resume %s "
                "2> %s/err.txt", bin, data, disk_run, disk_ckpt, root);
    unsigned char *after = read_all(disk_ckpt, &after_size);
    int grep = harness_sh("grep -q 'No space left on device' %s/err.txt", root);
    umount(disk);
    ck_assert_int_ne(rc, 0);
    ck_assert_int_eq(grep, 0);
    ck_assert(after && after_size == before_size && memcmp(before, after, before_size) == 0);
    free(before);
    free(after);
}
END_TEST

/* A writer killed at random moments while it replaces a file over and over: the file is always
 * one complete version (old or new), never a mix or a truncation; stale temporaries of killed
 * writers are removed by the next write. */
START_TEST(sigkill_during_atomic_writes) {
    setup_once();
    char path[128];
    snprintf(path, sizeof path, "%s/atomic.bin", root);
    enum { WORDS = 4 << 20 }; /* 16 MiB per version */
    srand(12345);
    for (int round = 0; round < 12; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            uint32_t *buf = malloc(WORDS * sizeof(uint32_t));
            for (uint32_t v = 1;; v++) {
                for (size_t i = 0; i < WORDS; i++) buf[i] = v * 2654435761u + (uint32_t)i;
                buf[0] = v;
                if (oclseg_file_write_atomic(path, buf, WORDS * sizeof(uint32_t)) != OCLSEG_OK)
                    _exit(3);
            }
        }
        struct timespec ts = {0, (long)(50 + rand() % 400) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status), "round %d: writer exited on its own (%d)", round, status);
        size_t size;
        uint32_t *got = (uint32_t *)read_all(path, &size);
        if (!got) continue; /* killed before the first version was complete */
        ck_assert_uint_eq(size, WORDS * sizeof(uint32_t));
        uint32_t v = got[0];
        size_t bad = 0; /* one assertion, not one per word (Check logs every assertion) */
        while (bad + 1 < WORDS && got[bad + 1] == v * 2654435761u + (uint32_t)(bad + 1)) bad++;
        ck_assert_msg(bad + 1 == WORDS, "round %d: version %u is corrupt at word %zu", round, v,
                      bad + 1);
        free(got);
    }
    /* the temporaries of the killed writers go with the next successful write */
    uint32_t one[4] = {1, 2, 3, 4};
    ck_assert_int_eq(oclseg_file_write_atomic(path, one, sizeof one), OCLSEG_OK);
    ck_assert_int_ne(harness_sh("ls %s | grep -q 'atomic.bin.tmp'", root), 0);
}
END_TEST

/* SIGKILL of a real training run at random moments (some inside a checkpoint write): the
 * checkpoint on disk always loads, and training resumes from it. */
START_TEST(sigkill_during_training_resumes) {
    setup_once();
    char out[128], out_ckpt[160];
    snprintf(out, sizeof out, "%s/killed", root);
    snprintf(out_ckpt, sizeof out_ckpt, "%s/checkpoint.safetensors", out);
    ck_assert_int_eq(harness_sh("cp -r %s %s", run, out), 0);
    srand(777);
    for (int round = 0; round < 4; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            freopen("/dev/null", "w", stdout);
            freopen("/dev/null", "w", stderr);
            /* --eval-every 1000: epochs of 3 steps end in a checkpoint write almost at once */
            execl(bin, bin, "train", "--data", data, "--out", out, "--epochs", "1000", "--batch",
                  "4", "--size", "32", "--eval-every", "1000", "--resume", out_ckpt, (char *)NULL);
            _exit(127);
        }
        struct timespec ts = {2 + rand() % 3, (long)(rand() % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        oclseg_st_file *f = NULL;
        ck_assert_msg(oclseg_st_load(out_ckpt, &f) == OCLSEG_OK, "round %d: checkpoint unreadable",
                      round);
        oclseg_st_free(f);
    }
    /* resume from whatever checkpoint the last kill left: two more steps */
    oclseg_st_file *f = NULL;
    ck_assert_int_eq(oclseg_st_load(out_ckpt, &f), OCLSEG_OK);
    const char *step = oclseg_st_metadata(f, "trainer_step");
    ck_assert_ptr_nonnull(step);
    long long done = atoll(step);
    oclseg_st_free(f);
    ck_assert_int_ge(done, 3);
    ck_assert_int_eq(harness_sh("%s train --data %s --out %s --epochs 1000 --batch 4 --size 32 --quiet "
                        "--eval-every 1000 --resume %s --max-steps %lld", bin, data, out, out_ckpt,
                        done + 2), 0);
    ck_assert_int_eq(oclseg_st_load(out_ckpt, &f), OCLSEG_OK);
    ck_assert_int_eq(atoll(oclseg_st_metadata(f, "trainer_step")), done + 2);
    oclseg_st_free(f);
}
END_TEST

/* A kernel source that does not compile: the error names the program file, the device, the
 * build options and shows the compiler's log. */
START_TEST(kernel_build_failure_is_explained) {
    setup_once();
    char kdir[128];
    snprintf(kdir, sizeof kdir, "%s/kernels", root);
    ck_assert_int_eq(harness_sh("mkdir -p %s && cp cl/*.cl %s/ && printf '\\n__kernel void broken(void) "
                        "{ undeclared_thing = 1; }\\n' >> %s/eltwise.cl", kdir, kdir, kdir), 0);
    ck_assert_int_ne(harness_sh("OCLSEG_CACHE=0 OCLSEG_KERNEL_DIR=%s %s train --data %s --out %s/kb "
                        "--epochs 1 --batch 4 --size 32 --quiet 2> %s/err.txt", kdir, bin, data,
                        root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'eltwise' %s/err.txt", root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'undeclared_thing' %s/err.txt", root), 0); /* the log */
    ck_assert_int_eq(harness_sh("grep -q -- '-cl-std\\|-D' %s/err.txt", root), 0);  /* the options */
    ck_assert_int_eq(harness_sh("grep -qi 'device\\|pthread\\|llvmpipe' %s/err.txt", root), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, device_out_of_memory_at_allocation);
    tcase_add_test(tc, device_out_of_resources_at_enqueue);
    tcase_add_test(tc, nan_stops_with_step_and_layer);
    tcase_add_test(tc, checkpoint_write_failure_keeps_previous);
    tcase_add_test(tc, full_disk_keeps_previous);
    tcase_add_test(tc, sigkill_during_atomic_writes);
    tcase_add_test(tc, sigkill_during_training_resumes);
    tcase_add_test(tc, kernel_build_failure_is_explained);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
