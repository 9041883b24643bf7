/* Learning-rate schedules (constant, cosine with warm-up, one-cycle): the rate of each step as a
 * function of the step, computed on the host in double. */
#include <math.h>

#include "oclseg/schedule.h"

double oclseg_schedule_lr(const oclseg_schedule *s, double max_lr, int64_t step) {
    const double pi = 3.14159265358979323846;
    if (!s || s->kind == OCLSEG_SCHED_CONSTANT || s->total_steps <= 0) return max_lr;
    if (step >= s->total_steps) step = s->total_steps - 1;
    if (step < 0) step = 0;
    if (s->kind == OCLSEG_SCHED_COSINE) {
        const int64_t warm = s->warmup_steps < s->total_steps ? s->warmup_steps : s->total_steps;
        if (step < warm) return max_lr * (double)(step + 1) / (double)warm;
        const double progress = (double)(step - warm) / (double)(s->total_steps - warm);
        return max_lr * 0.5 * (1.0 + cos(pi * progress));
    }
    /* one-cycle: torch.optim.lr_scheduler.OneCycleLR(anneal_strategy='cos', three_phase=False) */
    const double initial = max_lr / s->div_factor, min_lr = initial / s->final_div_factor;
    const double end1 = s->pct_start * (double)s->total_steps - 1.0;
    const double end2 = (double)s->total_steps - 1.0;
    double start_lr, end_lr, pct;
    if ((double)step <= end1) {
        start_lr = initial;
        end_lr = max_lr;
        pct = (double)step / end1;
    } else {
        start_lr = max_lr;
        end_lr = min_lr;
        pct = ((double)step - end1) / (end2 - end1);
    }
    return end_lr + (start_lr - end_lr) / 2.0 * (cos(pi * pct) + 1.0);
}

void oclseg_schedule_default(oclseg_schedule *s, oclseg_schedule_kind kind, int64_t total_steps) {
    s->kind = kind;
    s->total_steps = total_steps;
    s->warmup_steps = total_steps / 20; /* 5% */
    s->pct_start = 0.3;
    s->div_factor = 25.0;
    s->final_div_factor = 1e4;
}
