#include "train/schedule.h"

#include <math.h>

double lr_at(const lr_schedule *s, long step) {
    double progress = 0.0;
    long span = s->total_steps - s->const_steps - s->warmup_steps;
    if (span > 0) {
        progress = (double)(step - s->const_steps - s->warmup_steps + 1) / (double)span;
        if (progress < 0.0) progress = 0.0;
        if (progress > 1.0) progress = 1.0;
    }
    double lr = s->lr_init;
    if (s->lr_final != s->lr_init && s->lr_init > 0 && s->lr_final > 0)
        lr = s->lr_init * exp(log(s->lr_final / s->lr_init) * progress);
    if (s->warmup_steps > 0 && step < s->warmup_steps)
        lr *= 0.2 + 0.8 * (double)step / (double)s->warmup_steps;
    return lr;
}

long lr_default_const_steps(long steps) {
    if (steps <= 0) return 0;
    return (long)((double)steps * 361.0 / 8043.0 + 0.5);
}
