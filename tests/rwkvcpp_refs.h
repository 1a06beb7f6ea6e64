/* rwkv.cpp's tiny models and the logits its own tests expect (the files of
 * reference/rwkv-cpp in the shared test data), with the bound each file's
 * last logits must meet: FP32 weights within 5e-5 (a correct FP32
 * implementation is within ~1e-5 of these files); FP16 within 1e-2
 * (rwkv.cpp itself: 3e-4 to 5e-3); quantized files within twice what
 * rwkv.cpp itself measured against the same FP32 logits, since the
 * quantization error, not the engine, dominates there. Shared by the CPU
 * check (test_rwkvcpp_reference.c) and the GPU one (cuda/test_cuda_rwkvcpp.c). */
#ifndef RWKV_TESTS_RWKVCPP_REFS_H
#define RWKV_TESTS_RWKVCPP_REFS_H

typedef struct ref_file {
    const char *model, *expected;
    double max_abs;
} ref_file;

__attribute__((unused)) static const ref_file refs[] = {
    {"tiny-rwkv-4v0-660K-FP32.bin", "expected-logits-4v0-660K.bin", 5e-5},
    {"tiny-rwkv-4v0-660K-FP16.bin", "expected-logits-4v0-660K.bin", 1e-2},
    {"tiny-rwkv-4v0-660K-Q5_0.bin", "expected-logits-4v0-660K.bin", 2 * 0.113},
    {"tiny-rwkv-4v0-660K-Q5_1.bin", "expected-logits-4v0-660K.bin", 2 * 0.102},
    {"tiny-rwkv-5v1-730K-FP32.bin", "expected-logits-5v1-730K.bin", 5e-5},
    {"tiny-rwkv-5v1-730K-FP16.bin", "expected-logits-5v1-730K.bin", 1e-2},
    {"tiny-rwkv-5v1-730K-Q5_0.bin", "expected-logits-5v1-730K.bin", 2 * 1.786},
    {"tiny-rwkv-5v1-730K-Q5_1.bin", "expected-logits-5v1-730K.bin", 2 * 0.284},
    {"tiny-rwkv-5v2-730K-FP32.bin", "expected-logits-5v2-730K.bin", 5e-5},
    {"tiny-rwkv-5v2-730K-FP16.bin", "expected-logits-5v2-730K.bin", 1e-2},
    {"tiny-rwkv-5v2-730K-Q5_0.bin", "expected-logits-5v2-730K.bin", 2 * 0.504},
    {"tiny-rwkv-5v2-730K-Q5_1.bin", "expected-logits-5v2-730K.bin", 2 * 0.394},
    {"tiny-rwkv-6v0-3m-Q5_0.bin", "expected-logits-6v0-3m.bin", 2 * 0.144},
    {"tiny-rwkv-6v0-3m-Q5_1.bin", "expected-logits-6v0-3m.bin", 2 * 0.077},
    {"tiny-rwkv-7v0-834K-FP32.bin", "expected-logits-7v0-834K.bin", 5e-5},
    {"tiny-rwkv-7v0-834K-FP16.bin", "expected-logits-7v0-834K.bin", 1e-2},
    {"tiny-rwkv-7v0-834K-Q5_0.bin", "expected-logits-7v0-834K.bin", 2 * 0.0035},
    {"tiny-rwkv-7v0-834K-Q5_1.bin", "expected-logits-7v0-834K.bin", 2 * 0.0049},
};

#endif
