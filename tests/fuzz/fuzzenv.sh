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
