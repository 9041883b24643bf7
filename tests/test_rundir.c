/* Tests that a run directory belongs to one run and that every way a run is stopped saves it
 * (OCLSEG_BIN, set by meson): a second training on a running run's --out is refused naming the
 * holder, a finished run is refused without --overwrite, default names are unique, SIGTERM
 * finishes the step and writes the checkpoint (exit 143), SIGINT to mpirun stops both ranks at
 * one step with the checkpoint written (skipped without MPI), and a stopped `oclseg tune` leaves
 * no child and no work folder behind. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/dist.h"

static char root[64], data[128];
static const char *bin;
/* 12 training images (11 after the validation split), 32x32, batch 2: 6 steps per epoch; no
 * validation pass (--eval-every 1000), so the loop is steps and checkpoints only */
static const char endless[] = "--epochs 1000 --batch 2 --size 32 --eval-every 1000";

static void setup_once(void) {
    if (root[0]) return;
    bin = getenv("OCLSEG_BIN");
    ck_assert_msg(bin != NULL, "OCLSEG_BIN is not set (run through meson test)");
    harness_mkdtemp(root, sizeof root, "rundir");
    snprintf(data, sizeof data, "%s/data", root);
    ck_assert_int_eq(harness_sh("%s synth --out %s --train 12 --test 2 --seed 5 > /dev/null", bin,
                                data), 0);
}

/* dir/name (in one of 4 rotating buffers). */
static const char *in(const char *dir, const char *name) {
    static char paths[4][256];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* Waits until RUN/steps.csv holds `lines` lines (header included). */
static void wait_for_steps(const char *run, int lines) {
    char path[256];
    snprintf(path, sizeof path, "%s/steps.csv", run);
    for (int i = 0; i < 1200 && count_lines(path) < lines; i++) usleep(100000);
    ck_assert_msg(count_lines(path) >= lines, "%s: fewer than %d lines after 120 s", path, lines);
}

/* The step counter saved in RUN/checkpoint.safetensors. */
static long long checkpoint_step(const char *run) {
    return harness_checkpoint_step(in(run, "checkpoint.safetensors"));
}

/* The step N of "stopped by SIG... at step N" in log (asserted present). */
static long long stopped_at(const char *log) {
    char line[512];
    long long step = -1;
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f)) {
        const char *at = strstr(line, "stopped by SIG");
        if (at && strstr(at, " at step ")) step = atoll(strstr(at, " at step ") + 9);
    }
    fclose(f);
    ck_assert_msg(step >= 0, "%s: no 'stopped by SIG... at step N' line", log);
    return step;
}

/* A second training on the --out of a running one is refused with an error naming the holder's
 * pid and host, and leaves the running run's files alone (before: both ran, interleaving
 * steps.csv, and both exited 0). */
START_TEST(running_run_dir_is_locked) {
    setup_once();
    char run[128], host[256];
    snprintf(run, sizeof run, "%s/busy", root);
    pid_t first = harness_spawn("%s train --data %s --out %s %s --quiet", bin, data, run, endless);
    for (int i = 0; i < 1200 && access(in(run, "checkpoint.safetensors"), F_OK) != 0; i++)
        usleep(100000); /* the first epoch's */
    int rc = harness_sh("%s train --data %s --out %s --epochs 1 --batch 2 --size 32 --max-steps 1 "
                        "--quiet 2> %s/busy.err", bin, data, run, root);
    kill(first, SIGKILL);
    harness_wait(first, 30);
    ck_assert_int_ne(rc, 0);
    gethostname(host, sizeof host);
    ck_assert_int_eq(harness_sh("grep -q 'in use by another training (pid %d on %s' %s/busy.err",
                                (int)first, host, root), 0);
    ck_assert_int_eq(harness_sh("grep -c '^step,epoch,loss' %s/steps.csv | grep -qx 1", run), 0);
    /* a lock left by a killed run does not block: flock ended with its process */
    ck_assert_int_eq(harness_sh("%s train --data %s --out %s --resume %s/checkpoint.safetensors "
                                "%s --max-steps %lld --quiet", bin, data, run, run, endless,
                                checkpoint_step(run) + 1), 0);
}
END_TEST

/* A directory that holds a finished run is refused (naming it and --overwrite) and left
 * untouched; --overwrite replaces the run, old files included; a run that fails before writing
 * anything leaves no directory it created. */
START_TEST(finished_run_dir_needs_overwrite) {
    setup_once();
    char run[128];
    snprintf(run, sizeof run, "%s/done", root);
    const char *once = "--epochs 1 --batch 2 --size 32 --quiet --max-steps";
    ck_assert_int_eq(harness_sh("%s train --data %s --out %s %s 3", bin, data, run, once), 0);
    ck_assert_int_eq(harness_sh("cp %s/steps.csv %s/done-steps.csv", run, root), 0);
    ck_assert_int_ne(harness_sh("%s train --data %s --out %s %s 1 2> %s/done.err", bin, data, run,
                                once, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'run directory %s already holds a run.*--overwrite' "
                                "%s/done.err", run, root), 0);
    ck_assert_int_eq(harness_sh("cmp -s %s/steps.csv %s/done-steps.csv", run, root), 0);
    /* --overwrite: a new run, and nothing of the old one left (final.csv here is stale) */
    ck_assert_int_eq(harness_sh("echo stale > %s/final.csv", run), 0);
    ck_assert_int_eq(harness_sh("%s train --data %s --out %s %s 1 --overwrite", bin, data, run,
                                once), 0);
    ck_assert_int_eq(count_lines(in(run, "steps.csv")), 2);
    ck_assert_int_ne(access(in(run, "final.csv"), F_OK), 0);
    /* --overwrite with --resume of the same run would delete what it resumes */
    ck_assert_int_ne(harness_sh("%s train --data %s --resume %s/checkpoint.safetensors %s 2 "
                                "--overwrite 2> /dev/null", bin, data, run, once), 0);
    ck_assert_int_eq(access(in(run, "checkpoint.safetensors"), F_OK), 0);
    /* a failed run creates no directory */
    ck_assert_int_ne(harness_sh("%s train --data %s/missing --out %s/never %s 1 2> /dev/null", bin,
                                root, root, once), 0);
    ck_assert_int_ne(access(in(root, "never"), F_OK), 0);
}
END_TEST

/* Default names (runs/<date-time>) are unique: every name of the next minute already exists
 * (holding a marker config.json), and two runs started together get two new directories
 * (before: both wrote into the existing runs/<date-time>). */
START_TEST(default_run_names_are_unique) {
    setup_once();
    char cwd[128];
    snprintf(cwd, sizeof cwd, "%s/cwd", root);
    ck_assert_int_eq(harness_sh("mkdir -p %s/runs", cwd), 0);
    time_t now = time(NULL);
    for (time_t t = now - 1; t < now + 90; t++) {
        char name[64];
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(name, sizeof name, "runs/%Y%m%d-%H%M%S", &tm);
        ck_assert_int_eq(harness_sh("mkdir -p %s/%s && echo taken > %s/%s/config.json", cwd, name,
                                    cwd, name), 0);
    }
    /* Under tools/check.sh --sanitize, LeakSanitizer's own tracer often segfaults at the exit of
     * two runs that end together (google/sanitizers#1353: no leak report, exit status 1); leak
     * checking of this path stays with the single runs of the other tests. A no-op otherwise. */
    ck_assert_int_eq(harness_sh("cd %s && export ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}"
                                "detect_leaks=0\" && t='%s train --data %s --epochs 1 --batch 2 "
                                "--size 32 --max-steps 1 --quiet' && { $t & a=$!; $t; b=$?; "
                                "wait $a && test $b -eq 0; }", cwd, bin, data), 0);
    /* every marker untouched; exactly two runs, each with its own one-step steps.csv */
    ck_assert_int_eq(harness_sh("cd %s/runs && test $(grep -lx taken */config.json | wc -l) -eq 91",
                                cwd), 0);
    ck_assert_int_eq(harness_sh("cd %s/runs && test $(ls */steps.csv | wc -l) -eq 2 && "
                                "for f in */steps.csv; do test $(wc -l < $f) -eq 2 || exit 1; done",
                                cwd), 0);
}
END_TEST

/* SIGTERM (kill, systemd, Slurm): the current step finishes, the checkpoint holds it, the
 * resume command is printed, exit status 143; the resumed run loses no step (before: killed
 * at once, exit by signal, the steps since the last epoch lost). */
START_TEST(sigterm_saves_the_step_and_resumes) {
    setup_once();
    char run[128], log[160];
    snprintf(run, sizeof run, "%s/term", root);
    snprintf(log, sizeof log, "%s/term.log", root);
    pid_t pid = harness_spawn("%s train --data %s --out %s %s > %s 2>&1", bin, data, run, endless,
                              log);
    wait_for_steps(run, 8); /* into the second epoch (5 steps each: a last single image is
                               skipped at 32x32) */
    kill(pid, SIGTERM);
    int rc = harness_wait(pid, 120);
    ck_assert_msg(rc == 143, "exit status %d (143 expected; 256 + N: killed by signal N)", rc);
    long long step = stopped_at(log);
    ck_assert_int_ge(step, 7);
    ck_assert_int_eq(checkpoint_step(run), step);
    ck_assert_int_eq(harness_sh("grep -q -- '--resume %s/checkpoint.safetensors' %s", run, log), 0);
    const char *steps = in(run, "steps.csv");
    ck_assert_int_eq(count_lines(steps) - 1, step);
    ck_assert_int_eq(harness_sh("%s train --data %s --resume %s/checkpoint.safetensors %s "
                                "--max-steps %lld --quiet", bin, data, run, endless, step + 2), 0);
    ck_assert_int_eq(count_lines(steps) - 1, step + 2);
    ck_assert_int_eq(checkpoint_step(run), step + 2);
}
END_TEST

/* Under mpirun, Ctrl-C (SIGINT to mpirun, which sends the ranks SIGCONT, then SIGTERM after
 * odls_base_sigkill_timeout seconds, then SIGKILL as long after) stops both ranks at the same
 * step: rank 0 writes the checkpoint and prints the resume command (before: nothing saved or
 * printed); a run directory refused on rank 0 stops every rank (no hang). */
START_TEST(sigint_under_mpirun_saves_the_step) {
    if (!oclseg_dist_built_with_mpi() || harness_sh("command -v mpirun > /dev/null") != 0) {
        fprintf(stderr, "sigint_under_mpirun_saves_the_step: skipped (no MPI build or mpirun)\n");
        return;
    }
#if defined(__SANITIZE_ADDRESS__)
    /* as for test_dist (suite 'mpi', left out of tools/check.sh --sanitize): Open MPI's own
     * start-up allocations are never freed, so LeakSanitizer fails every rank at exit */
    fprintf(stderr, "sigint_under_mpirun_saves_the_step: skipped under AddressSanitizer\n");
    return;
#endif
    setup_once();
    /* as root mpirun needs --allow-run-as-root; 8 s between SIGTERM and SIGKILL (default 1 s:
     * enough here on an idle machine, but the step and 130 MB of checkpoint and weights took
     * over 3 s with both cores loaded); mpirun waits both periods out, 16 s */
    const char *mpirun = "mpirun --allow-run-as-root --oversubscribe --bind-to none --mca "
                         "odls_base_sigkill_timeout 8 -np 2";
    char run[128], log[160];
    snprintf(run, sizeof run, "%s/mpi", root);
    snprintf(log, sizeof log, "%s/mpi.log", root);
    /* batch 4: 2 images per rank (a rank's single image at 32x32 is a skipped step) */
    const char *ranks2 = "--epochs 1000 --batch 4 --size 32 --eval-every 1000";
    pid_t launcher = harness_spawn("%s %s train --data %s --out %s %s > %s 2>&1", mpirun, bin,
                                   data, run, ranks2, log);
    wait_for_steps(run, 3);
    kill(launcher, SIGINT);
    harness_wait(launcher, 120); /* mpirun's own status is 1 whatever the ranks do */
    long long step = stopped_at(log);
    ck_assert_int_eq(checkpoint_step(run), step);
    ck_assert_int_eq(harness_sh("grep -q -- 'mpirun -np 2 oclseg train --resume "
                                "%s/checkpoint.safetensors' %s", run, log), 0);
    ck_assert_int_eq(harness_sh("%s %s train --data %s --resume %s/checkpoint.safetensors %s "
                                "--max-steps %lld --quiet", mpirun, bin, data, run, ranks2,
                                step + 2), 0);
    ck_assert_int_eq(checkpoint_step(run), step + 2);
    ck_assert_int_ne(harness_sh("timeout 120 %s %s train --data %s --out %s %s --quiet "
                                "> %s/mpi2.log 2>&1", mpirun, bin, data, run, ranks2, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'already holds a run' %s/mpi2.log", root), 0);
}
END_TEST

/* `oclseg tune` stopped by SIGTERM while a child runs: the child is killed, the work folder is
 * removed, exit status 143 (before: the tuner died, its child ran on, the folder stayed). */
START_TEST(stopped_tune_leaves_nothing_behind) {
    setup_once();
    char log[160];
    snprintf(log, sizeof log, "%s/tune.log", root);
    pid_t tuner = harness_spawn("env OCLSEG_TUNING_DIR=%s/tuning %s tune --batch 2 --size 32 "
                                "--budget 1 --repeats 1 > %s 2>&1", root, bin, log);
    pid_t child = -1;
    for (int i = 0; i < 600 && child < 0; i++) {
        usleep(100000);
        child = harness_child_of(tuner);
    }
    ck_assert_msg(child > 0, "no tuner child within 60 s");
    usleep(300000);
    kill(tuner, SIGTERM);
    int rc = harness_wait(tuner, 60);
    usleep(200000);
    int child_alive = kill(child, 0) == 0;
    if (child_alive) kill(child, SIGKILL); /* do not leave it running */
    char dir[128] = "";
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        const char *at = strstr(line, "/tmp/oclseg-tune-");
        if (at) sscanf(at, "%127[^ \n]", dir);
    }
    fclose(f);
    int dir_left = dir[0] && access(dir, F_OK) == 0;
    if (dir_left) harness_sh("rm -rf %s", dir);
    ck_assert_msg(rc == 143, "exit status %d (143 expected; 256 + N: killed by signal N)", rc);
    ck_assert_msg(!child_alive, "the trial child %d outlived the tuner", (int)child);
    ck_assert_msg(dir[0] && !dir_left, "the work folder '%s' is left", dir);
    ck_assert_int_eq(harness_sh("grep -q 'stopped by SIGTERM' %s", log), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rundir");
    TCase *tc = tcase_create("rundir");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, running_run_dir_is_locked);
    tcase_add_test(tc, finished_run_dir_needs_overwrite);
    tcase_add_test(tc, default_run_names_are_unique);
    tcase_add_test(tc, sigterm_saves_the_step_and_resumes);
    tcase_add_test(tc, sigint_under_mpirun_saves_the_step);
    tcase_add_test(tc, stopped_tune_leaves_nothing_behind);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
