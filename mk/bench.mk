# Benchmarks — `make bench` (full, ~15 min) or `make bench BENCH_QUICK=1` (~4.5 min);
# BENCH_WAIT_QUIET=SECONDS waits for background load to drop, BENCH_NICE=-N (root)
# shields the run from it; BENCH_ONLY=dcgan_gen,vae_decoder runs only those
# workloads' rows (see bench/README.md).
# Installs the bench's Debian packages (bench/install-deps), builds the C
# harnesses into $(BUILD)/bench/ with the project's CFLAGS, and runs
# bench/run.py, which prints the table and writes bench/results/latest.{md,json}
# and the PNG charts. See bench/README.md.

BENCH_DIR    := $(BUILD)/bench
BENCH_PY     ?= /usr/bin/python3
BENCH_CFLAGS  = $(filter-out -MMD -MP,$(CFLAGS))
BENCH_COMMON := bench/benchutil.h
BENCH_BINS   := $(BENCH_DIR)/raw_dnnl $(BENCH_DIR)/engine_bench $(BENCH_DIR)/codec_bench \
                $(BENCH_DIR)/http_client $(BENCH_DIR)/rawchain $(BENCH_DIR)/simdjson_floats
# The simdjson harness is C++ and built for this CPU: simdjson's On Demand code
# is compiled into its caller and takes its SIMD kernel from the compiler's target.
BENCH_CXX      ?= g++
BENCH_CXXFLAGS  = -O3 -march=native -std=c++17 -g -Wall -Wextra -D_GNU_SOURCE -Iinclude \
                  $(if $(filter 1,$(WERROR)),-Werror)

.PHONY: bench bench-deps bench-build bench-peer-check

bench: bench-deps all
	$(MAKE) --no-print-directory bench-build
	BENCH_QUICK=$(BENCH_QUICK) BENCH_NICE=$(BENCH_NICE) BENCH_WAIT_QUIET=$(BENCH_WAIT_QUIET) \
	    BENCH_ONLY=$(BENCH_ONLY) \
	    $(BENCH_PY) bench/run.py --build $(BUILD)

bench-deps:
	@scripts/install-deps
	@bench/install-deps

# The peers of row 11 against a float64 NumPy evaluation of every bench model,
# binary and JSON (bench/check_peers.py); ~20 s, no daemon involved.
bench-peer-check: bench-deps
	$(BENCH_PY) bench/check_peers.py

bench-build: $(BENCH_BINS)

$(BENCH_DIR):
	mkdir -p $@

$(BENCH_DIR)/raw_dnnl: bench/raw_dnnl.c bench/rawprim.c bench/rawprim.h $(BENCH_COMMON) | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) $(LDFLAGS) -o $@ bench/raw_dnnl.c bench/rawprim.c -ldnnl -lgomp -lpthread -lm

$(BENCH_DIR)/engine_bench: bench/engine_bench.c bench/rawprim.c bench/rawprim.h $(BENCH_COMMON) \
                           $(BUILD)/libdeconvd.a | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) $(LDFLAGS) -o $@ bench/engine_bench.c bench/rawprim.c \
	    $(BUILD)/libdeconvd.a $(LDLIBS)

$(BENCH_DIR)/rawchain: bench/rawchain.c $(BENCH_COMMON) $(BUILD)/libdeconvd.a | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) $(LDFLAGS) -o $@ bench/rawchain.c $(BUILD)/libdeconvd.a $(LDLIBS)

$(BENCH_DIR)/codec_bench: bench/codec_bench.c $(BENCH_COMMON) $(BUILD)/libdeconvd.a | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) $(LDFLAGS) -o $@ bench/codec_bench.c $(BUILD)/libdeconvd.a $(LDLIBS)

$(BENCH_DIR)/http_client: bench/http_client.c $(BENCH_COMMON) | $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) $(LDFLAGS) -o $@ bench/http_client.c -lcurl -lpthread

$(BENCH_DIR)/simdjson_floats: bench/simdjson_floats.cpp $(BENCH_COMMON) $(BUILD)/libdeconvd.a | $(BENCH_DIR)
	$(BENCH_CXX) $(BENCH_CXXFLAGS) $(LDFLAGS) -o $@ bench/simdjson_floats.cpp $(BUILD)/libdeconvd.a \
	    -lsimdjson -lm
