# deconvd — see README.md. `make run` and `make test` do all set-up.
CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
VERSION := 0.1.0

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
OPT     ?= -O2 -g
override CFLAGS += $(OPT) -std=c11 $(WARN) -D_GNU_SOURCE -DDCV_VERSION='"$(VERSION)"' -Iinclude -MMD -MP
LDLIBS  := -ldnnl -lgomp -lmicrohttpd -luv -lcjson -lspng -lhdf5_serial -lzip -lpthread -lm
# Debian's serial HDF5 keeps its headers apart; only kh5.c includes them.
HDF5_INC := -I/usr/include/hdf5/serial
TESTLIBS := -lcriterion

ifeq ($(WERROR),1)
override CFLAGS += -Werror
endif
ifneq ($(SANITIZE),)
override CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
endif

LIB_SRC  := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(BUILD)/tests/unit

.PHONY: all deps run test unit-test asan-test valgrind-test check clean install uninstall
all: $(BUILD)/libdeconvd.a $(BUILD)/deconvd

deps:
	@scripts/install-deps

# the engine's bias/activation pass runs on the same OpenMP threads as oneDNN (engine*.c)
$(BUILD)/obj/engine.o $(BUILD)/obj/engine_%.o: override CFLAGS += -fopenmp
$(BUILD)/obj/kh5.o: override CFLAGS += $(HDF5_INC)
$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

# Rebuilt from scratch: `ar r` keeps the member of a deleted source file.
$(BUILD)/libdeconvd.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/deconvd: $(BUILD)/obj/main.o $(BUILD)/libdeconvd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# All unit suites link into one Criterion binary: one run, one synthesis line.
$(TEST_BIN): $(TEST_SRC) $(wildcard tests/unit/*.h) $(BUILD)/libdeconvd.a | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $(TEST_SRC) $(BUILD)/libdeconvd.a $(TESTLIBS) $(LDLIBS)

# OMP_WAIT_POLICY is read by libgomp before main(): set where deconvd starts.
run: deps all
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(BUILD)/deconvd --config config/deconvd.json

# Sanitizer reports inside Criterion's workers do not fail a test by
# themselves, so the log is searched for them as well.
unit-test: $(TEST_BIN) all
	DCV_TEST_PYTHON=/usr/bin/python3 $(TEST_BIN) --jobs 2 2>&1 | tee $(BUILD)/unit.log; \
	  status=$$?; ! grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" $(BUILD)/unit.log && \
	  grep -q "Failing: 0 | Crashing: 0" $(BUILD)/unit.log

# Every suite runs even if an earlier one fails; the summary decides.
test: deps
	@rm -f $(BUILD)/unit.log $(BUILD)/blackbox.log $(BUILD)/packaging.log
	-$(MAKE) unit-test
	-scripts/run-tests $(BUILD) 2>&1 | tee $(BUILD)/blackbox.log
	-$(MAKE) packaging-test 2>&1 | tee $(BUILD)/packaging.log
	scripts/test-summary $(BUILD)

asan-test: deps
	@rm -f build-asan/unit.log build-asan/blackbox.log
	-$(MAKE) BUILD=build-asan SANITIZE=address,undefined OPT="-O1 -g" unit-test
	-scripts/run-tests build-asan 2>&1 | tee build-asan/blackbox.log
	scripts/test-summary build-asan

# Memcheck over everything `make test` runs but packaging: every unit suite
# (one valgrind run each, Criterion's workers included), the daemon driven by
# the smoke test, and the black-box suites with every daemon and CLI run under
# memcheck (slow mode of tests/blackbox/dcvtest.py: time limits x10, one
# memcheck check per process; the two checks that need the loop thread to run
# while a worker computes are skipped, printed and counted). Logs in
# $(BUILD)/valgrind. About 12 min on 2 cores; not in CI, which runs ASan.
# --vex-guest-max-insns=25: VEX's real default is 60 guest instructions per
# superblock (--help says 50); at 60 memcheck aborts ("VEX temporary storage
# exhausted") translating the masked tail of oneDNN's AVX2 weights-reorder
# kernel (jit_single_blk_kernel). Python (the numpy reference) and sh run
# natively. valgrind emulates no AVX-512: bf16 models run the fp32 emulation.
VALGRIND := valgrind --trace-children=yes --leak-check=full \
            --errors-for-leak-kinds=definite --smc-check=all-non-file \
            --vex-guest-max-insns=25 '--trace-children-skip=*/python3*,*/sh' \
            --suppressions=scripts/valgrind.supp
VALGRIND_LOGS := $(BUILD)/valgrind
valgrind-test: deps all $(TEST_BIN)
	@rm -rf $(VALGRIND_LOGS) && mkdir -p $(VALGRIND_LOGS)/unit
	-@for s in $$($(TEST_BIN) --list | sed -n 's/^\([A-Za-z0-9_]*\): [0-9]* tests*$$/\1/p'); do \
	  DECONVD_BUF_MALLOC=1 DCV_TEST_PYTHON=/usr/bin/python3 $(VALGRIND) $(TEST_BIN) --filter "$$s/*" \
	    > $(VALGRIND_LOGS)/unit/$$s.log 2>&1; \
	  echo "$$s: $$(grep Synthesis $(VALGRIND_LOGS)/unit/$$s.log || echo 'did not finish')"; \
	done
	-DECONVD_BUF_MALLOC=1 VALGRIND="$(VALGRIND)" scripts/valgrind-smoke $(BUILD) 2>&1 | tee $(VALGRIND_LOGS)/smoke.log
	-DECONVD_BUF_MALLOC=1 DCV_TEST_VALGRIND="$(VALGRIND)" scripts/run-tests $(BUILD) 2>&1 | tee $(VALGRIND_LOGS)/blackbox.log
	scripts/test-summary $(VALGRIND_LOGS)

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/main.d

# Feature fragments: packaging, benchmarks, fuzzing (each owns its targets).
include $(wildcard mk/*.mk)
