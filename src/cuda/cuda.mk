# ---- CUDA backend (src/cuda/, docs/cuda.md) ---------------------------------
# Built when nvcc is on the PATH (CUDA=1 forces it, CUDA=0 leaves it out).
# The kernels go into $(BUILD)/librwkv_cuda.a (the GPU tests link it) and,
# with the CUDA training engine, into librwkv (the Makefile). `make` and
# `make test` compile every .cu so a build break shows without a GPU; the
# GPU tests print SKIP where no device exists.
#   make test-cuda     every GPU test (rwkv train/eval/generate --device cuda too), then a short benchmark
#   make bench-cuda    the training benchmark at 169M, 430M and 1.5B (rwkv bench --device cuda --train)
NVCC ?= nvcc
CUDA ?= $(if $(shell command -v $(NVCC) 2>/dev/null),1,0)
.PHONY: test-cuda bench-cuda
ifeq ($(CUDA),1)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v $(NVCC) 2>/dev/null))
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCC_FLAGS = -std=c++17 -O3 $(CUDA_ARCH) -Iinclude -Isrc -Xcompiler -Wall,-Wextra,-fPIC
CUDA_LDLIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart_static \
              -lstdc++ -ldl -lpthread -lrt
CUDA_OBJ := $(patsubst %.cu,$(BUILD)/%.o,$(sort $(wildcard src/cuda/*.cu)))
CUDA_LIB := $(BUILD)/librwkv_cuda.a
CUDA_TEST_BIN := $(patsubst tests/cuda/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/cuda/test_*.c)))

all: $(CUDA_LIB)
test: $(CUDA_TEST_BIN)

$(BUILD)/src/cuda/%.o: src/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

$(CUDA_LIB): $(CUDA_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(CUDA_TEST_BIN): $(BUILD)/tests/%: tests/cuda/%.c tests/test.h tests/cuda/cuda_test.h tests/cuda/infer_check.h $(CUDA_LIB) $(BUILD)/librwkv.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -Itests -o $@ $< $(CUDA_LIB) $(BUILD)/librwkv.a $(LDLIBS) $(CUDA_LDLIBS)

test-cuda: $(CUDA_TEST_BIN) rwkv
	@fail=0; for t in $(CUDA_TEST_BIN); do $$t $(VECTORS) || fail=1; done; \
	sh tests/cli/train_cuda.sh ./rwkv || fail=1; \
	sh tests/cli/infer_cuda.sh ./rwkv || fail=1; \
	sh tests/cli/train_multigpu.sh ./rwkv || fail=1; \
	./rwkv bench --device cuda --train --quick || fail=1; exit $$fail

bench-cuda: rwkv
	./rwkv bench --device cuda --train
else
test-cuda bench-cuda:
	@echo "CUDA backend not built (no nvcc on the PATH; make CUDA=1 NVCC=/path/to/nvcc)"; exit 1
endif
