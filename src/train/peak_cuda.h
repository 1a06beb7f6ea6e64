/* The bf16 matrix-product peak of the current CUDA device, measured, so
 * that MFU is quoted against what this GPU reaches rather than its data
 * sheet (as the CPU's MFU is quoted against its measured FMA peak). */
#ifndef RWKV_TRAIN_PEAK_CUDA_H
#define RWKV_TRAIN_PEAK_CUDA_H

#include "core/error.h"

/* GFLOP/s of 8192^3 bf16 products (fp32 accumulation, cuBLASLt) on random
 * data, after warm-up; about 0.1 s and 400 MiB of device memory. */
rwkv_status train_cuda_bf16_peak_gflops(double *gflops, rwkv_error *err);

/* GB/s of a device-to-device float copy of 1 GiB (bytes read + written per
 * second), after warm-up: the memory bandwidth decode is quoted against. */
rwkv_status train_cuda_copy_gbps(double *gbps, rwkv_error *err);

#endif
