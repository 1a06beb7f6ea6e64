/* The training options (include/rwkv_train.h): their defaults and their
 * validation, one place for both so that a fresh run, a resume and a
 * config.json read back agree on them. */
#ifndef RWKV_TRAIN_OPTIONS_H
#define RWKV_TRAIN_OPTIONS_H

#include "core/error.h"
#include "rwkv_train.h"

/* RWKV_ERR_ARG naming the first option out of its range (by its CLI flag);
 * RWKV_ERR_UNSUPPORTED for a device this build, this machine or the
 * architecture cannot train on (train_cuda_check).
 * fresh: also requires what only a new run needs (--data, --out). */
rwkv_status train_options_check(const rwkv_train_options *o, int fresh, rwkv_error *err);

/* The GPU index of a device name: -1 for "cpu" (and NULL), N for "cuda"
 * (N = 0) or "cuda:N", -2 for anything else. */
int train_device_index(const char *device);
/* The precision a device trains in when none is given: "fp32" on the CPU, "bf16" on a GPU. */
const char *train_default_precision(const char *device);

#endif
