# rwkv.c — build, test and benchmark.
#
#   make             library (build/librwkv.a, build/librwkv.so), the CLI ./rwkv, and the library's copy
#                    in the Python package (python/rwkvc/librwkv.so; then `pip install ./python`)
#   make test        every test: unit, model vectors, CLI, Python package, then the C tests under ASan+UBSan
#   make demo        build, then train a small model on an embedded default corpus and sample it
#   make check-vectors VECTORS="<folder> ..."   run the reference vector checker on any vector sets
#   make asan        the C tests under AddressSanitizer + UBSan
#   make NATIVE=1    add -march=native (default build is portable; SIMD kernels are picked at run time)

CC      ?= gcc
BUILD   ?= build
NATIVE  ?= 0
OPT     ?= -O2
CFLAGS  ?=
# -fno-math-errno: nothing reads errno after a math function, and with it set a
# loop calling sqrtf cannot vectorize (Adam's update); results are unchanged.
BASE_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra $(OPT) -fopenmp \
              -fno-math-errno -Iinclude -Isrc -fPIC -MMD -MP
ifeq ($(NATIVE),1)
BASE_CFLAGS += -march=native
endif
LDLIBS  = -ljansson -lutf8proc -lm -fopenmp

# The CUDA backend (src/cuda/cuda.mk): detected from nvcc on the PATH; CUDA=0 leaves it out.
.DEFAULT_GOAL := all
include src/cuda/cuda.mk

# src/*/*_cuda.c use the CUDA backend; *_nocuda.c stand in for them in a build without it.
ALL_LIB_SRC := $(shell find src -name '*.c' | sort)
ifeq ($(CUDA),1)
LIB_SRC  := $(filter-out %_nocuda.c,$(ALL_LIB_SRC))
else
LIB_SRC  := $(filter-out %_cuda.c,$(ALL_LIB_SRC))
endif
CLI_SRC  := $(sort $(wildcard cli/*.c cli/serve/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TOOL_SRC := tests/check_vectors.c
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOL_BIN := $(BUILD)/tests/check_vectors

# The vector sets `make test` checks (any folder of the vector format works);
# a missing one is skipped.
VECTORS ?= ../shared/testvectors/rwkv4 ../shared/testvectors/hf-rwkv4 ../shared/testvectors/rwkv7-train

.PHONY: all lib python test test-deps unit asan check-vectors demo deps bench clean
all: deps lib rwkv python

# $(call deb_install,PACKAGES,COMMAND RUN WHEN SOME CANNOT BE INSTALLED): installs the missing ones.
deb_install = missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get install -y $$missing >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y $$missing >/dev/null)) \
	  || { $(2); }; fi

# Debian packages the build needs; installed only when missing.
DEB_DEPS = libjansson-dev libutf8proc-dev libmicrohttpd-dev
deps:
	@$(call deb_install,$(DEB_DEPS),echo "error: could not install$$missing (run as root or install them yourself)"; exit 1)

# The Python tests run under pytest, with numpy and without; without them they are skipped.
TEST_DEB_DEPS = python3-pytest python3-numpy gnuplot-nox
test-deps:
	@$(call deb_install,$(TEST_DEB_DEPS),echo "note: could not install$$missing (the Python tests or the report's test may be skipped)")

lib: $(BUILD)/librwkv.a $(BUILD)/librwkv.so

# The Python package (python/rwkvc) loads the copy of the library made here: `pip install ./python` ships it.
python: python/rwkvc/librwkv.so
python/rwkvc/librwkv.so: $(BUILD)/librwkv.so
	cp $< $@

# The library exports only the functions marked RWKV_API (include/rwkv_export.h).
$(LIB_OBJ): OBJ_FLAGS = -fvisibility=hidden -DRWKV_BUILD

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(OBJ_FLAGS) $(CFLAGS) -c $< -o $@

# With CUDA the library carries the CUDA backend, so that `rwkv train --device cuda` is one
# program: librwkv.a needs the static CUDA runtime at link time (LIB_LDLIBS; cuBLASLt is opened
# with dlopen at the first GPU product, src/cuda/matmul.cu),
# librwkv.so has them linked in and keeps their symbols to itself. A build flag file makes a
# switch of CUDA=0/1 rebuild the libraries.
LIB_LDLIBS = $(LDLIBS)
SO_LDLIBS = $(LDLIBS)
ifeq ($(CUDA),1)
LIB_OBJ += $(CUDA_OBJ)
LIB_LDLIBS += $(CUDA_LDLIBS)
SO_LDLIBS += $(CUDA_LDLIBS) -Wl,--exclude-libs,ALL
$(CUDA_OBJ): NVCC_FLAGS += -Xcompiler -fvisibility=hidden
$(BUILD)/src/train/engine_cuda.o $(BUILD)/src/train/data_parallel_cuda.o: OBJ_FLAGS += -isystem $(CUDA_HOME)/include
endif
CUDA_FLAG := $(BUILD)/cuda.flag
$(shell mkdir -p $(BUILD) && (echo $(CUDA) | cmp -s - $(CUDA_FLAG) || echo $(CUDA) > $(CUDA_FLAG)))

$(BUILD)/librwkv.a: $(LIB_OBJ) $(CUDA_FLAG)
	@rm -f $@
	ar rcs $@ $(filter %.o,$^)

$(BUILD)/librwkv.so: $(LIB_OBJ) $(CUDA_FLAG)
	$(CC) -shared -o $@ $(filter %.o,$^) $(SO_LDLIBS)

# `rwkv serve` speaks HTTP through libmicrohttpd (only the CLI links it).
CLI_LDLIBS = -lmicrohttpd -lpthread
rwkv: $(CLI_OBJ) $(BUILD)/librwkv.a
	$(CC) -o $@ $(CLI_OBJ) $(BUILD)/librwkv.a $(LIB_LDLIBS) $(CLI_LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h tests/pth_build.h $(BUILD)/librwkv.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -Itests -o $@ $< $(BUILD)/librwkv.a $(LIB_LDLIBS)

# Unit tests, vector checks and CLI tests; tests/run.sh prints the totals.
test: all test-deps $(TEST_BIN) $(TOOL_BIN) $(BUILD)/bench/recall_probe
	@$(MAKE) --no-print-directory asan-build
	@$(MAKE) --no-print-directory fuzz-gcc
	@sh tests/run.sh $(BUILD) build-asan "$(VECTORS)"

unit: all $(TEST_BIN)
	@sh tests/run.sh $(BUILD) "" ""

check-vectors: all $(TOOL_BIN)
	@for v in $(VECTORS); do $(TOOL_BIN) $$v || exit 1; done

ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# (the CPU code only: the CUDA runtime and ASan do not mix)
asan-build:
	@$(MAKE) --no-print-directory BUILD=build-asan CUDA=0 OPT="$(ASAN_FLAGS)" \
	  LDLIBS="$(LDLIBS) -fsanitize=address,undefined" build-asan/librwkv.a \
	  $(TEST_SRC:tests/%.c=build-asan/tests/%) build-asan/tests/check_vectors

asan: deps asan-build
	@sh tests/run.sh build-asan "" "$(VECTORS)"

demo: all
	@sh scripts/demo.sh

bench: all
	@sh bench/run.sh

clean:
	rm -rf build build-asan rwkv python/rwkvc/librwkv.so

-include $(shell find $(BUILD) build-asan -name '*.d' 2>/dev/null)

# Tokenizer benchmark (a standalone program, not part of `make test`).
.PHONY: bench-tokenizer
$(BUILD)/bench/%: bench/%.c $(BUILD)/librwkv.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/librwkv.a $(LIB_LDLIBS)

bench-tokenizer: $(BUILD)/bench/bench_tokenizer
	$(BUILD)/bench/bench_tokenizer

# ---- fuzzing (fuzz/README.md) -----------------------------------------------
# `make fuzz` builds each fuzz/fuzz_*.c target with gcc + ASan/UBSan and the
# standalone driver ($(BUILD)/fuzz/gcc/<target>), linked with the ASan build of
# the library (build-asan/librwkv.a, the one `make test` builds), and, when
# clang is installed, as a libFuzzer binary ($(BUILD)/fuzz/libfuzzer/<target>)
# linked with a copy of the library compiled by clang with coverage. The HTTP
# request target also needs the server's request parser from the CLI.
# `make test` builds the gcc targets and runs each briefly (tests/cli/fuzz.sh).
FUZZ_TARGETS := $(sort $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c)))
FUZZ_CLI_SRC := cli/serve/request.c cli/serve/job.c cli/serve/chat_prompt.c
FUZZ_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Iinclude -Isrc -Icli/serve \
              -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_LDLIBS = -ljansson -lutf8proc -lm -fopenmp -lpthread
FUZZ_CLANG := $(shell command -v clang 2>/dev/null)
FUZZ_GCC_BIN := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/gcc/%)
FUZZ_CLANG_BIN := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/libfuzzer/%)
FUZZ_CLANG_OBJ := $(patsubst %.c,$(BUILD)/fuzz/clang/%.o,$(filter-out %_cuda.c,$(ALL_LIB_SRC)) $(FUZZ_CLI_SRC))
.PHONY: fuzz fuzz-gcc
fuzz: fuzz-gcc
ifneq ($(FUZZ_CLANG),)
	@$(MAKE) --no-print-directory $(FUZZ_CLANG_BIN)
else
	@echo "clang not found: libFuzzer builds skipped (the gcc builds are in $(BUILD)/fuzz/gcc)"
endif

fuzz-gcc:
	@$(MAKE) --no-print-directory asan-build
	@$(MAKE) --no-print-directory $(FUZZ_GCC_BIN)

$(BUILD)/fuzz/gcc/%: fuzz/%.c fuzz/standalone.c $(wildcard fuzz/*.h) build-asan/librwkv.a $(FUZZ_CLI_SRC) \
                     $(wildcard cli/serve/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_CFLAGS) -fsanitize=address,undefined -o $@ $< fuzz/standalone.c \
	  $(if $(filter fuzz_http_request,$*),$(FUZZ_CLI_SRC)) build-asan/librwkv.a $(FUZZ_LDLIBS)

$(BUILD)/fuzz/clang/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -Wno-pass-failed -fopenmp -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

$(BUILD)/fuzz/clang/librwkv-fuzz.a: $(FUZZ_CLANG_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz/libfuzzer/%: fuzz/%.c $(wildcard fuzz/*.h) $(BUILD)/fuzz/clang/librwkv-fuzz.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fopenmp -fsanitize=fuzzer,address,undefined -o $@ $< $(BUILD)/fuzz/clang/librwkv-fuzz.a \
	  $(FUZZ_LDLIBS)

# ---- experiments: RWKV-4 and RWKV-7 vs the GPT baseline (docs/results.md) ----
# `make results` runs scripts/results.sh and writes docs/results.md and
# docs/results/*.png: the tuned comparison's and the prompt-order probe's jobs
# (scripts/results_jobs.sh: about 13 hours of one core, 6-7 on 2 cores, from nothing; none
# when docs/results/data holds every table; a rerun continues where it
# stopped) and then about 20 minutes of the rest. `make results-quick` is the
# smoke run of the same (a few minutes; its tables go to runs/results-quick).
# gnuplot-nox is installed when missing.
.PHONY: results results-quick results-deps
results-deps: all $(BUILD)/bench/context_cost $(BUILD)/bench/recall_probe
	@dpkg -s gnuplot-nox >/dev/null 2>&1 || apt-get install -y gnuplot-nox >/dev/null 2>&1 || \
	  (apt-get update >/dev/null && apt-get install -y gnuplot-nox >/dev/null) || \
	  { echo "error: could not install gnuplot-nox (run as root or install it yourself)"; exit 1; }
results: results-deps
	@sh scripts/results.sh
results-quick: results-deps
	@RESULTS_QUICK=1 sh scripts/results.sh
