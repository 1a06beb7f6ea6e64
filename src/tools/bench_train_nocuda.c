/* The GPU training benchmark of include/rwkv_bench.h in a build without
 * CUDA: the shapes are known, running them is refused (train/engine.h says
 * why in one line). */
#include "rwkv_bench.h"
#include "train/engine.h"

const char *rwkv_train_bench_shape(int i) {
    static const char *const names[] = {"169M", "430M", "1.5B"};
    return i >= 0 && i < 3 ? names[i] : NULL;
}

rwkv_status rwkv_train_bench_peak(const char *device, double *gflops, rwkv_error *err) {
    (void)device;
    *gflops = 0;
    return train_cuda_use_device(0, err);
}

rwkv_status rwkv_bench_device_peaks(const char *device, double *read_gbps, double *bf16_gflops, rwkv_error *err) {
    (void)device;
    *read_gbps = *bf16_gflops = 0;
    return train_cuda_use_device(0, err);
}

rwkv_status rwkv_train_bench_run(const char *shape, const rwkv_train_bench_options *opts, double peak_gflops,
                                 rwkv_train_bench_result *out, rwkv_error *err) {
    (void)shape;
    (void)opts;
    (void)peak_gflops;
    (void)out;
    return train_cuda_use_device(0, err);
}
