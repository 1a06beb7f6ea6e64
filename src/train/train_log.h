/* DIR/train.jsonl: one JSON object per optimizer step, in step order,
 * flushed after each line:
 *   {"step":N,"loss":..,"lr":..,"tokens_per_s":..,"grad_norm":..,"mfu":..,
 *    "elapsed_s":..[,"val_loss":..][,"skipped":true]}
 * (a value that is not finite is written as null). */
#ifndef RWKV_TRAIN_TRAIN_LOG_H
#define RWKV_TRAIN_TRAIN_LOG_H

#include <stdio.h>

#include "core/error.h"

typedef struct train_log_line {
    long step;
    double loss, lr, tokens_per_s, grad_norm, mfu, elapsed_s;
    double val_loss; /* NaN: no validation at this step */
    int skipped;
} train_log_line;

/* Opens DIR/train.jsonl with fopen's mode ("w" fresh, "a" resumed). */
rwkv_status train_log_open(const char *dir, const char *mode, FILE **out, rwkv_error *err);
void train_log_write(FILE *f, const train_log_line *line);
/* Keeps the complete lines whose step is <= `step` (atomically; nothing to
 * do when there is no log yet). */
rwkv_status train_log_truncate(const char *dir, long step, rwkv_error *err);

#endif
