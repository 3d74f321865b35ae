# fuzzenv.sh — settings shared by run-fuzz, run-regress and run-coverage
# (sourced, POSIX sh).

# Sanitizers: stop at the first error with a symbolized stack; leaks count.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:symbolize=1}"
for s in llvm-symbolizer-14 llvm-symbolizer; do
    if command -v "$s" >/dev/null 2>&1; then
        export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-$(command -v "$s")}"
        break
    fi
done
# oneDNN/OpenMP: one thread, so runs are reproducible and the model
# harness does not oversubscribe the machine.
export OMP_NUM_THREADS=1

# Largest input libFuzzer generates, per harness.
fuzz_max_len() {
    case "$1" in
        kserve|tfserving) echo 32768 ;;
        model|npy|modelform|kzip|kfile) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

# Mutation dictionary, per harness (empty: none).
fuzz_dict() {
    case "$1" in
        kserve|tfserving|model|shape|modelform) echo tests/fuzz/dict/json.dict ;;
        npy) echo tests/fuzz/dict/npy.dict ;;
        float) echo tests/fuzz/dict/float.dict ;;
    esac
}

# Extra libFuzzer flags, per harness. kfile drives libhdf5 1.10, which
# crashes, hangs and allocates gigabytes on malformed files in its own code
# (H5HG_read, H5T__conv_vlen: found by this harness; the daemon contains
# them by parsing in a limited child process, src/kchild.c). A plain run
# stops at libhdf5's first fault, so kfile runs forked and goes on past
# faults; run-fuzz then fails on every crash whose stack does not start in
# libhdf5 (fuzz_replay below). Leaks are not looked for there
# (libhdf5 leaks on its error paths); the unit suites under ASan read every
# hostile file of the catalogue through the same code with leak checks on.
fuzz_flags() {
    case "$1" in
        kfile) echo "-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -detect_leaks=0" ;;
    esac
}

# Where crash input $2 of harness binary $1 faults, replayed alone in a
# fresh process: "upstream" when one of the first four frames of the
# sanitizer's stack is in libhdf5, "ours" for any other fault, "alone-ok"
# when it does not fault at all. The last happens because libhdf5 is not
# instrumented: a bad file can corrupt its heap or free lists without a
# report, and a later input, or the job's exit (libhdf5's atexit teardown;
# libFuzzer then writes the empty unit, crash-da39a3ee...), takes the
# fault. Such a crash has no input of its own to blame; our code is
# instrumented and stateless between inputs, so its faults replay.
fuzz_replay() {
    out=$(ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" timeout 60 "$1" "$2" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ]; then echo alone-ok
    elif printf '%s\n' "$out" | grep -E '^ *#[0-3] ' | grep -q 'libhdf5'; then echo upstream
    else echo ours
    fi
}
