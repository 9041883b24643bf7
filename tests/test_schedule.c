/* Tests the learning-rate schedules (src/model/schedule.c): one-cycle against PyTorch's
 * OneCycleLR (tools/make_schedule_golden.py), cosine with warm-up against its closed form, and
 * the constant schedule. Host arithmetic only: no device. */
#include <math.h>

#include "data/schedule_golden.h"
#include "data_test_util.h"
#include "oclseg/schedule.h"

START_TEST(onecycle_matches_pytorch) {
    oclseg_schedule s;
    oclseg_schedule_default(&s, OCLSEG_SCHED_ONECYCLE, ONECYCLE_GOLDEN_TOTAL);
    for (int k = 0; k < ONECYCLE_GOLDEN_TOTAL; k++) {
        const double lr = oclseg_schedule_lr(&s, onecycle_golden_max_lr, k);
        /* the same double formula as PyTorch's: agreement to rounding */
        ck_assert_msg(fabs(lr - onecycle_golden_rates[k]) <= 1e-12 * onecycle_golden_max_lr,
                      "one-cycle step %d: %.17g vs PyTorch %.17g", k, lr, onecycle_golden_rates[k]);
    }
    /* past the end: the last rate */
    ck_assert(oclseg_schedule_lr(&s, onecycle_golden_max_lr, 1000) ==
              oclseg_schedule_lr(&s, onecycle_golden_max_lr, ONECYCLE_GOLDEN_TOTAL - 1));
}
END_TEST

START_TEST(cosine_and_constant_schedule) {
    oclseg_schedule s;
    oclseg_schedule_default(&s, OCLSEG_SCHED_COSINE, 20);
    s.warmup_steps = 4;
    const double expect[][2] = {{0, 0.25}, {1, 0.5}, {3, 1.0}, {4, 1.0}, {12, 0.5},
                                {8, 0.5 * (1 + cos(M_PI / 4))}, {19, 0.5 * (1 + cos(M_PI * 15 / 16))}};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        const double lr = oclseg_schedule_lr(&s, 2.0, (int64_t)expect[i][0]);
        ck_assert_msg(fabs(lr - 2.0 * expect[i][1]) < 1e-12, "cosine step %g: %.17g vs %.17g",
                      expect[i][0], lr, 2.0 * expect[i][1]);
    }
    /* monotonic: up during the warm-up, down after */
    for (int k = 1; k < 20; k++) {
        const double a = oclseg_schedule_lr(&s, 1.0, k - 1), b = oclseg_schedule_lr(&s, 1.0, k);
        ck_assert(k < 4 ? b > a : b <= a);
    }
    oclseg_schedule_default(&s, OCLSEG_SCHED_CONSTANT, 20);
    ck_assert(oclseg_schedule_lr(&s, 1e-3, 7) == 1e-3);
    oclseg_schedule zero = {0}; /* a zeroed schedule is constant */
    ck_assert(oclseg_schedule_lr(&zero, 1e-3, 7) == 1e-3);
}
END_TEST

int main(void) {
    Suite *s = suite_create("schedule");
    TCase *tc = tcase_create("schedule");
    tcase_add_test(tc, onecycle_matches_pytorch);
    tcase_add_test(tc, cosine_and_constant_schedule);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
