/* Learning-rate schedules of a training run (src/model/schedule.c): host arithmetic, no device. */
#ifndef OCLSEG_SCHEDULE_H
#define OCLSEG_SCHEDULE_H

#include <stdint.h>

/* Learning-rate schedules over a run of total_steps optimizer steps, as a function of the
 * 0-based step (max_lr = the --lr value):
 *   constant: max_lr.
 *   cosine:   linear warm-up max_lr * (step + 1) / warmup_steps for step < warmup_steps, then
 *             max_lr * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2.
 *   onecycle: torch.optim.lr_scheduler.OneCycleLR(max_lr, total_steps, pct_start, 'cos',
 *             cycle_momentum=False, div_factor, final_div_factor, three_phase=False). */
typedef enum oclseg_schedule_kind {
    OCLSEG_SCHED_CONSTANT = 0,
    OCLSEG_SCHED_COSINE = 1,
    OCLSEG_SCHED_ONECYCLE = 2
} oclseg_schedule_kind;

typedef struct oclseg_schedule {
    oclseg_schedule_kind kind;
    int64_t total_steps, warmup_steps;
    double pct_start, div_factor, final_div_factor;
} oclseg_schedule;

/* warmup 5% of the steps; one-cycle pct_start 0.3, div_factor 25, final_div_factor 1e4. */
void oclseg_schedule_default(oclseg_schedule *s, oclseg_schedule_kind kind, int64_t total_steps);
/* Steps past the end keep the last step's rate. */
double oclseg_schedule_lr(const oclseg_schedule *s, double max_lr, int64_t step);

#endif
