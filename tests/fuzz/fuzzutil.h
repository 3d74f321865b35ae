/* fuzzutil.h — helpers shared by the libFuzzer harnesses in tests/fuzz/.
 *
 * Every harness checks more than "does not crash": the invariants each API
 * documents (shapes, counts, error codes and messages, round trips) are
 * asserted with FUZZ_CHECK, which prints what failed and aborts so that
 * libFuzzer saves the input like any other crash.
 */
#ifndef DCV_FUZZUTIL_H
#define DCV_FUZZUTIL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                         \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "\nFUZZ CHECK FAILED %s:%d: %s\n  ", __FILE__, __LINE__,  \
                    #cond);                                                           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* A malloc'd copy of exactly n bytes (at least 1 allocated), so that ASan
 * reports any read past the input the code under test was given. */
static inline char *fz_copy(const uint8_t *data, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (!p) abort();
    if (n) memcpy(p, data, n);
    return p;
}

/* An error buffer filled with a pattern, so that an unterminated message is
 * caught by fz_check_error. */
static inline void fz_err_init(char *err)
{
    memset(err, 0x5a, DCV_ERRLEN);
}

/* A failing call must return a known DCV_E* code and leave a non-empty,
 * NUL-terminated message of at most DCV_ERRLEN bytes. */
static inline void fz_check_error(int rc, const char *err, const char *what)
{
    FUZZ_CHECK(rc < 0 && strcmp(dcv_error_name(rc), "EUNKNOWN") != 0 &&
                   strcmp(dcv_strerror(rc), "unknown error") != 0,
               "%s returned %d, not a DCV_E* code", what, rc);
    FUZZ_CHECK(memchr(err, '\0', DCV_ERRLEN) != NULL, "%s: error message not NUL-terminated",
               what);
    FUZZ_CHECK(err[0] != '\0', "%s returned %s with an empty message", what,
               dcv_error_name(rc));
}

/* FUZZ_VERBOSE=1 in the environment: each harness says what became of each
 * input (handy with `fuzz_<h> file...` to see why a seed is refused). */
static inline bool fz_verbose(void)
{
    static int v = -1;
    if (v < 0) v = getenv("FUZZ_VERBOSE") && *getenv("FUZZ_VERBOSE") == '1';
    return v;
}

#define FZ_LOG(...)                                                                   \
    do {                                                                              \
        if (fz_verbose()) {                                                           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

static inline uint32_t fz_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline uint32_t fz_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A copy of JSON text s[0, n) with `pad` spaces after every '[' outside
 * strings (malloc'd, length in *out_n). The tensor decoders lift numeric
 * arrays long enough for a side-table marker out of the text and leave
 * shorter ones to cJSON; padding makes every array long enough, so decoding
 * the copy must give the same result as the original. */
static inline char *fz_pad_arrays(const char *s, size_t n, size_t pad, size_t *out_n)
{
    size_t opens = 0, j = 0;
    for (size_t i = 0; i < n; i++) opens += s[i] == '[';
    char *o = malloc(n + opens * pad + 1);
    bool in_string = false;
    if (!o) abort();
    for (size_t i = 0; i < n; i++) {
        o[j++] = s[i];
        if (in_string) {
            if (s[i] == '\\' && i + 1 < n) o[j++] = s[++i];
            else if (s[i] == '"') in_string = false;
        } else if (s[i] == '"') {
            in_string = true;
        } else if (s[i] == '[') {
            memset(o + j, ' ', pad);
            j += pad;
        }
    }
    *out_n = j;
    return o;
}

/* Reads every value (ASan checks the allocation is big enough) and returns
 * how many are not finite. */
static inline size_t fz_touch(const float *v, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !isfinite(v[i]);
    return bad;
}

/* A decoded tensor is self-consistent: shape, count, limits, finite data. */
static inline void fz_check_tensor(const struct dcv_tensor *t, size_t max_elems, const char *what)
{
    FUZZ_CHECK(t->ndim >= 1 && t->ndim <= DCV_TENSOR_MAX_DIMS, "%s: ndim %d", what, t->ndim);
    size_t p = 1;
    for (int i = 0; i < t->ndim; i++) {
        FUZZ_CHECK(t->shape[i] >= 1, "%s: shape[%d] = %lld", what, i, (long long)t->shape[i]);
        p *= (size_t)t->shape[i];
    }
    FUZZ_CHECK(p == t->count, "%s: shape product %zu != count %zu", what, p, t->count);
    FUZZ_CHECK(t->count >= 1 && t->count <= max_elems, "%s: count %zu", what, t->count);
    FUZZ_CHECK(t->data != NULL, "%s: no data", what);
    FUZZ_CHECK(fz_touch(t->data, t->count) == 0, "%s: non-finite value accepted", what);
}

/* Same shape and bit-identical values. */
static inline void fz_same_tensor(const struct dcv_tensor *a, const struct dcv_tensor *b, const char *what)
{
    FUZZ_CHECK(a->ndim == b->ndim && a->count == b->count, "%s: ndim %d/%d count %zu/%zu", what,
               a->ndim, b->ndim, a->count, b->count);
    for (int i = 0; i < a->ndim; i++)
        FUZZ_CHECK(a->shape[i] == b->shape[i], "%s: shape[%d] %lld != %lld", what, i,
                   (long long)a->shape[i], (long long)b->shape[i]);
    for (size_t i = 0; i < a->count; i++)
        FUZZ_CHECK(fz_bits(a->data[i]) == fz_bits(b->data[i]),
                   "%s: value %zu: %08x != %08x", what, i, fz_bits(a->data[i]),
                   fz_bits(b->data[i]));
}

#endif
