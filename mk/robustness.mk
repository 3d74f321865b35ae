# mk/robustness.mk — hostile input, faults, overload and soak (tests/robustness/).
# Included by the main Makefile (which defines BUILD and the all target).
# See docs/security.md for what each suite proves.
#
#   make robustness                  hostile + security + faults + models_dir (ASan
#                                    build, leaks checked) + overload + metrics +
#                                    answers + governance + kerasfiles (release
#                                    build); ~9 min
#   make robustness-kerasfiles       just the hostile Keras files suite (release build)
#   make robustness ROBUST_CI=1      shorter reload-under-load and overload phases
#   make soak [SOAK_SECONDS=600]     mixed load on the release build: unexpected
#                                    errors, RSS growth and fd figures (CI: 60)
#
# Both print a summary (also in $(BUILD)/robustness/summary.txt, next to each
# daemon's stderr log).

ROBUST_PY        ?= /usr/bin/python3
ROBUST_ASAN      ?= build-asan
ROBUST_CI        ?=
SOAK_SECONDS     ?= 600
ROBUST_ENV        = ROBUST_PY=$(ROBUST_PY) ROBUST_CI=$(ROBUST_CI) \
                    ROBUST_LOGDIR=$(BUILD)/robustness DECONVD_BIN=$(BUILD)/deconvd \
                    DECONVD_ASAN_BIN=$(ROBUST_ASAN)/deconvd

.PHONY: robustness soak robustness-deps robustness-asan robustness-kerasfiles

robustness-deps:
	@scripts/install-deps
	@tests/robustness/install-deps

# The ASan + UBSan daemon the hostile/fault suites run (same flags as asan-test).
robustness-asan:
	$(MAKE) --no-print-directory BUILD=$(ROBUST_ASAN) SANITIZE=address,undefined \
	  OPT="-O1 -g" $(ROBUST_ASAN)/deconvd

robustness: robustness-deps all robustness-asan
	$(ROBUST_ENV) tests/robustness/run hostile security faults overload models_dir metrics \
	  answers governance kerasfiles

# Hostile Keras files (tests/robustness/make_hostile_keras.py's catalogue).
robustness-kerasfiles: robustness-deps all
	$(ROBUST_ENV) tests/robustness/run kerasfiles

soak: robustness-deps all
	$(ROBUST_ENV) SOAK_SECONDS=$(SOAK_SECONDS) tests/robustness/run soak
