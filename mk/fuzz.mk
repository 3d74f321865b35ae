# Fuzzing — libFuzzer harnesses in tests/fuzz/, built with clang-14 and
# ASan+UBSan into $(BUILD)/fuzz/ (see tests/fuzz/README.md).
#   make fuzz           each harness for FUZZ_SECONDS (default 60) seconds; prints
#                       executions, cov/ft and crashes per harness; fails on a crash
#   make fuzz-regress   replays every seed corpus and regression input once (seconds)
#   make fuzz-build     just the binaries
#   make fuzz-coverage  source line/branch coverage of what the corpora reach
# Knobs: FUZZ_SECONDS, FUZZ_HARNESSES (subset), FUZZ_PARALLEL (harnesses at a
# time), FUZZ_ARGS (extra libFuzzer flags), FUZZ_CC.
# New corpus entries go to $(BUILD)/fuzz/corpus/<harness>/, crash inputs to
# $(BUILD)/fuzz/artifacts/<harness>/; the repository corpora are read-only.

FUZZ_CC        ?= clang-14
FUZZ_DIR       := $(BUILD)/fuzz
FUZZ_SECONDS   ?= 60
FUZZ_PARALLEL  ?= 1
FUZZ_ARGS      ?=
FUZZ_HARNESSES ?= kserve tfserving float model shape npy accept modelform kzip kfile
FUZZ_BINS       = $(FUZZ_HARNESSES:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_LIB_OBJ   := $(LIB_SRC:src/%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_SAN       := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# Debian's clang finds omp.h when libomp-dev is installed; otherwise take
# gcc's, after clang's own headers. Evaluated once, and only when building.
FUZZ_OMP_INC    = $(eval FUZZ_OMP_INC := $(shell printf '\043include <omp.h>\n' | \
                    $(FUZZ_CC) -E -x c - >/dev/null 2>&1 || \
                    echo -idirafter $$(gcc -print-file-name=include)))$(FUZZ_OMP_INC)
FUZZ_CFLAGS     = -O1 -g -std=c11 $(WARN) -D_GNU_SOURCE -DDCV_VERSION='"$(VERSION)"' -Iinclude \
                  $(FUZZ_OMP_INC) -MMD -MP
FUZZ_WERROR    := $(if $(filter 1,$(WERROR)),-Werror)

.PHONY: fuzz fuzz-deps fuzz-build fuzz-regress fuzz-coverage

fuzz-deps:
	@scripts/install-deps
	@tests/fuzz/install-deps

fuzz-build: $(FUZZ_BINS)

# Packages first (order only: installing them never forces a rebuild).
$(FUZZ_BINS) $(FUZZ_LIB_OBJ): | fuzz-deps

fuzz: fuzz-build
	@tests/fuzz/run-fuzz $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_PARALLEL) "$(FUZZ_ARGS)" \
	    $(FUZZ_HARNESSES)

fuzz-regress: fuzz-build
	@tests/fuzz/run-regress $(FUZZ_DIR) $(FUZZ_HARNESSES)

$(FUZZ_DIR)/obj:
	mkdir -p $@

# The project sources: instrumented for coverage feedback and sanitizers.
$(FUZZ_DIR)/obj/kh5.o: FUZZ_CFLAGS += $(HDF5_INC)
$(FUZZ_DIR)/obj/%.o: src/%.c | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/libdeconvd.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzzutil.h $(FUZZ_DIR)/libdeconvd.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WERROR) $(FUZZ_SAN) -fsanitize=fuzzer -Itests/fuzz -o $@ \
	    $< $(FUZZ_DIR)/libdeconvd.a $(LDLIBS)

# Coverage: the same harnesses with clang's source-based coverage (no
# sanitizers), run once over the seed corpora plus whatever `make fuzz` found.
FUZZ_COV_DIR   := $(FUZZ_DIR)/cov
FUZZ_COV_FLAGS := -fprofile-instr-generate -fcoverage-mapping
FUZZ_COV_OBJ   := $(LIB_SRC:src/%.c=$(FUZZ_COV_DIR)/obj/%.o)

$(FUZZ_COV_DIR)/obj:
	mkdir -p $@

$(FUZZ_COV_DIR)/obj/kh5.o: FUZZ_CFLAGS += $(HDF5_INC)
$(FUZZ_COV_DIR)/obj/%.o: src/%.c | $(FUZZ_COV_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_COV_FLAGS) -c $< -o $@

$(FUZZ_COV_DIR)/libdeconvd.a: $(FUZZ_COV_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_COV_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzzutil.h $(FUZZ_COV_DIR)/libdeconvd.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_COV_FLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ \
	    $< $(FUZZ_COV_DIR)/libdeconvd.a $(LDLIBS)

$(FUZZ_HARNESSES:%=$(FUZZ_COV_DIR)/fuzz_%) $(FUZZ_COV_OBJ): | fuzz-deps

fuzz-coverage: $(FUZZ_HARNESSES:%=$(FUZZ_COV_DIR)/fuzz_%)
	@tests/fuzz/run-coverage $(FUZZ_DIR) $(FUZZ_HARNESSES)

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_COV_OBJ:.o=.d) $(FUZZ_HARNESSES:%=$(FUZZ_DIR)/fuzz_%.d) \
    $(FUZZ_HARNESSES:%=$(FUZZ_COV_DIR)/fuzz_%.d)
