/* Random RWKV-5.2 and RWKV-6 checkpoints for benchmarks and tests (the
 * versions rwkv.c runs but does not train): `rwkv init --arch rwkv5|rwkv6
 * --uniform`. */
#ifndef RWKV_TRAIN_INIT_BENCH_MODEL_H
#define RWKV_TRAIN_INIT_BENCH_MODEL_H

#include "rwkv_train.h"

/* version 5 (the 5.2 layout) or 6; shape and seed from o (o->uniform must be
 * set); written as float32 safetensors, atomically. */
rwkv_status init_bench_model(const rwkv_init_options *o, int version, const char *out_path, rwkv_error *err);

#endif
