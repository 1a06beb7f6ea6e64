/* The learning-rate schedule of docs/model.md §3.3: constant
 * lr_init for the first S0 + W steps, then exponential decay reaching
 * lr_final at the last step; an optional linear warm-up multiplies the LR by
 * 0.2 + 0.8 s/W over the first W steps. */
#ifndef RWKV_TRAIN_SCHEDULE_H
#define RWKV_TRAIN_SCHEDULE_H

typedef struct lr_schedule {
    double lr_init, lr_final; /* both > 0 */
    long total_steps;         /* S_total */
    long const_steps;         /* S0 */
    long warmup_steps;        /* W */
} lr_schedule;

/* The LR of step `step` (0-based: the number of optimizer steps already taken):
 *   progress = clamp((step - S0 - W + 1) / (S_total - S0 - W), 0, 1)
 *   lr = lr_init * exp(ln(lr_final / lr_init) * progress)
 *   lr *= 0.2 + 0.8 * step / W   while step < W
 * (progress is 0 when S_total - S0 - W <= 0: constant LR). */
double lr_at(const lr_schedule *s, long step);

/* The constant phase a run of `steps` steps gets by default: the 169M Pile
 * run's share, 361 of 8043 mini-epochs. */
long lr_default_const_steps(long steps);

#endif
