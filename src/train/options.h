/* The training options (include/rwkv_train.h): their defaults and their
 * validation, one place for both so that a fresh run, a resume and a
 * config.json read back agree on them. */
#ifndef RWKV_TRAIN_OPTIONS_H
#define RWKV_TRAIN_OPTIONS_H

#include "core/error.h"
#include "rwkv_train.h"

/* RWKV_ERR_ARG naming the first option out of its range (by its CLI flag).
 * fresh: also requires what only a new run needs (--data, --out). */
rwkv_status train_options_check(const rwkv_train_options *o, int fresh, rwkv_error *err);

#endif
