/* fuzz_float.c — the tensor float codec against independent references.
 *
 * On the input bytes (an exact-size copy, so reads past `end` are caught):
 *  - dcv_float_parse at offset 0 and after each ',' / '[' / ' ': the bytes it
 *    takes must be exactly the JSON number a reference lexer finds (refused
 *    when a letter, digit, '.', '+', '-' or '_' follows), and the value must
 *    be bit-identical to glibc strtof's (correctly rounded); overflow gives
 *    0 or +-inf as allow_overflow says.
 *  - dcv_float_array_parse, unshaped and shaped, against a recursive
 *    reference parser: same verdict, bytes, count, values and dims.
 * On every 4-byte chunk read as a float32:
 *  - dcv_float_format writes at most DCV_FLOAT_MAXLEN bytes, NaN/Infinity
 *    spelled as documented, otherwise a JSON number that parses back to the
 *    same bits, with no more significant digits than the shortest "%.*e"
 *    that round-trips.
 *  - dcv_float_array_format of all chunks: exact and short buffers (never
 *    written past cap, same length reported), the text is the single-value
 *    texts joined by commas, and it parses back.
 * Any disagreement aborts.
 */
#include <stdbool.h>

#include "deconvd/floatcodec.h"
#include "fuzzutil.h"

#define REF_DIMS 8
#define MAX_PARSE_OFFSETS 64
#define MAX_CHUNKS 128

/* ---- reference number lexer -------------------------------------------- */

static bool digit(char c) { return c >= '0' && c <= '9'; }

static bool glue(char c)
{
    return digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == '+' || c == '-' || c == '_';
}

/* Length of the JSON number at p (greedy; optional parts only when
 * complete), 0 when there is none or a glue character follows it. */
static size_t ref_lex(const char *p, const char *end)
{
    const char *q = p;
    if (q < end && *q == '-') q++;
    if (q == end || !digit(*q)) return 0;
    if (*q == '0') q++;
    else
        while (q < end && digit(*q)) q++;
    if (q + 1 < end && *q == '.' && digit(q[1])) {
        q += 2;
        while (q < end && digit(*q)) q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        const char *r = q + 1;
        if (r < end && (*r == '+' || *r == '-')) r++;
        if (r < end && digit(*r)) {
            while (r < end && digit(*r)) r++;
            q = r;
        }
    }
    if (q < end && glue(*q)) return 0;
    return (size_t)(q - p);
}

static float ref_value(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, p, n);
    s[n] = '\0';
    float f = strtof(s, NULL);
    free(s);
    return f;
}

static void check_parse(const char *p, const char *end)
{
    size_t want = ref_lex(p, end);
    float ref = want ? ref_value(p, want) : 0.0f;
    for (int allow = 0; allow < 2; allow++) {
        float got = 12345.0f;
        size_t n = dcv_float_parse(p, end, &got, allow);
        size_t expect = want && (allow || !isinf(ref)) ? want : 0;
        FUZZ_CHECK(n == expect, "dcv_float_parse(allow_overflow=%d) took %zu bytes, reference "
                   "%zu, at \"%.*s\"", allow, n, expect, (int)(end - p < 40 ? end - p : 40), p);
        if (n)
            FUZZ_CHECK(fz_bits(got) == fz_bits(ref), "dcv_float_parse(\"%.*s\") = %a (%08x), "
                       "strtof = %a (%08x)", (int)n, p, (double)got, fz_bits(got), (double)ref,
                       fz_bits(ref));
    }
}

/* ---- reference array parser -------------------------------------------- */

struct ref {
    const char *end;
    float *out;
    size_t cap, n;
    int max_depth;
    bool shaped;
};

struct rshape {
    int ndim;
    long long dims[REF_DIMS];
};

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

static bool same_shape(const struct rshape *a, const struct rshape *b)
{
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* An array or a number at p (no leading whitespace); NULL on error. In
 * shaped mode, *sh gets the value's shape (a number has none) and arrays
 * must be rectangular and at most REF_DIMS deep. */
static const char *ref_value_at(struct ref *r, const char *p, int depth, struct rshape *sh)
{
    sh->ndim = 0;
    if (p < r->end && *p == '[') {
        if (depth >= r->max_depth || (r->shaped && depth >= REF_DIMS)) return NULL;
        p = ws(p + 1, r->end);
        long long len = 0;
        struct rshape first = { 0 }, cur;
        if (p < r->end && *p == ']') {
            p++;
        } else {
            for (;;) {
                p = ref_value_at(r, p, depth + 1, &cur);
                if (!p) return NULL;
                if (r->shaped && len > 0 && !same_shape(&first, &cur)) return NULL;
                if (len == 0) first = cur;
                len++;
                p = ws(p, r->end);
                if (p < r->end && *p == ',') {
                    p = ws(p + 1, r->end);
                    continue;
                }
                if (p < r->end && *p == ']') {
                    p++;
                    break;
                }
                return NULL;
            }
        }
        if (r->shaped) {
            if (first.ndim + 1 > REF_DIMS) return NULL;
            sh->ndim = first.ndim + 1;
            sh->dims[0] = len;
            memcpy(sh->dims + 1, first.dims, sizeof(long long) * (size_t)first.ndim);
        }
        return p;
    }
    size_t n = ref_lex(p, r->end);
    if (!n) return NULL;
    float f = ref_value(p, n);
    if (isinf(f)) return NULL;
    if (r->n < r->cap) r->out[r->n] = f;
    r->n++;
    return p + n;
}

static void check_array(const char *p, const char *end, bool shaped, int max_depth)
{
    /* the reference first, to size the output buffers */
    struct ref r = { .end = end, .max_depth = max_depth, .shaped = shaped };
    struct rshape rs = { 0 };
    const char *q = ws(p, end);
    q = q < end && *q == '[' ? ref_value_at(&r, q, 0, &rs) : NULL;
    size_t want_len = q ? (size_t)(q - p) : 0, want_count = r.n;
    /* values: cap some of the time below the count, to test the clamp */
    size_t cap = want_count > 3 && (want_count & 1) ? want_count / 2 : want_count;
    float *ref_out = malloc((cap ? cap : 1) * sizeof(float));
    float *out = malloc((cap ? cap : 1) * sizeof(float));
    if (!ref_out || !out) abort();
    r = (struct ref){ .end = end, .out = ref_out, .cap = cap, .max_depth = max_depth,
                      .shaped = shaped };
    q = ws(p, end);
    if (q < end && *q == '[') ref_value_at(&r, q, 0, &rs);

    long long dims[REF_DIMS];
    int ndim = -1;
    size_t count = (size_t)-1, errpos = (size_t)-1;
    size_t n = dcv_float_array_parse(p, end, out, cap, &count, max_depth, shaped ? dims : NULL,
                                     shaped ? &ndim : NULL, &errpos);
    FUZZ_CHECK(n == want_len, "dcv_float_array_parse(shaped=%d, depth=%d) took %zu bytes, "
               "reference %zu: \"%.*s\"", shaped, max_depth, n, want_len,
               (int)(end - p < 80 ? end - p : 80), p);
    if (!n) {
        FUZZ_CHECK(errpos <= (size_t)(end - p), "errpos %zu past the input (%zu bytes)",
                   errpos, (size_t)(end - p));
    } else {
        FUZZ_CHECK(count == want_count, "count %zu, reference %zu", count, want_count);
        for (size_t i = 0; i < cap && i < count; i++)
            FUZZ_CHECK(fz_bits(out[i]) == fz_bits(ref_out[i]), "value %zu: %a, reference %a", i,
                       (double)out[i], (double)ref_out[i]);
        if (shaped) {
            FUZZ_CHECK(ndim == rs.ndim, "ndim %d, reference %d", ndim, rs.ndim);
            long long prod = 1;
            for (int i = 0; i < ndim; i++) {
                FUZZ_CHECK(dims[i] == rs.dims[i], "dims[%d] %lld, reference %lld", i, dims[i],
                           rs.dims[i]);
                prod *= dims[i];
            }
            FUZZ_CHECK((size_t)prod == count, "dims product %lld != count %zu", prod, count);
        }
    }
    free(out);
    free(ref_out);
}

/* ---- encoder ------------------------------------------------------------ */

/* Significant digits of a finite number's text: leading and trailing zeros
 * of the mantissa digits do not count. */
static int sig_digits(const char *s)
{
    char d[64];
    int n = 0;
    for (; *s && *s != 'e'; s++)
        if (digit(*s) && n < 63) d[n++] = *s;
    int lo = 0, hi = n;
    while (lo < hi && d[lo] == '0') lo++;
    while (hi > lo && d[hi - 1] == '0') hi--;
    return hi > lo ? hi - lo : 1;
}

static int shortest_printf_digits(float v)
{
    char buf[64];
    for (int prec = 0; prec < 9; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, (double)v);
        if (fz_bits(strtof(buf, NULL)) == fz_bits(v)) return prec + 1;
    }
    return 9;
}

static void check_format(float v)
{
    char buf[64];
    memset(buf, 0x7f, sizeof buf);
    size_t n = dcv_float_format(v, buf);
    FUZZ_CHECK(n <= DCV_FLOAT_MAXLEN && buf[n] == '\0' && strlen(buf) == n,
               "dcv_float_format(%a) wrote %zu bytes \"%.20s\"", (double)v, n, buf);
    for (size_t i = n + 1; i < sizeof buf; i++)
        FUZZ_CHECK(buf[i] == 0x7f, "dcv_float_format(%a) wrote past its NUL", (double)v);
    if (isnan(v)) {
        FUZZ_CHECK(strcmp(buf, "NaN") == 0, "NaN formatted as \"%s\"", buf);
        return;
    }
    if (isinf(v)) {
        FUZZ_CHECK(strcmp(buf, v > 0 ? "Infinity" : "-Infinity") == 0, "%a formatted as \"%s\"",
                   (double)v, buf);
        return;
    }
    FUZZ_CHECK(ref_lex(buf, buf + n) == n, "%a formatted as \"%s\", not a JSON number",
               (double)v, buf);
    float back = 0;
    FUZZ_CHECK(dcv_float_parse(buf, buf + n, &back, 0) == n && fz_bits(back) == fz_bits(v),
               "%a (%08x) formatted as \"%s\" parses back as %a (%08x)", (double)v, fz_bits(v),
               buf, (double)back, fz_bits(back));
    FUZZ_CHECK(fz_bits(strtof(buf, NULL)) == fz_bits(v), "strtof(\"%s\") != %a", buf, (double)v);
    int sd = sig_digits(buf), ref = shortest_printf_digits(v);
    FUZZ_CHECK(sd <= ref, "%a formatted as \"%s\" (%d digits), but %d digits round-trip",
               (double)v, buf, sd, ref);
}

static void check_array_format(const float *v, size_t n, size_t short_cap)
{
    size_t need = dcv_float_array_format(v, n, NULL, 0);
    FUZZ_CHECK(need >= 2 + (n ? 2 * n - 1 : 0) && need <= n * (DCV_FLOAT_MAXLEN + 1) + 2,
               "array_format of %zu values needs %zu bytes", n, need);
    char *buf = malloc(need);
    if (!buf) abort();
    size_t got = dcv_float_array_format(v, n, buf, need);
    FUZZ_CHECK(got == need, "array_format: %zu bytes, predicted %zu", got, need);
    /* the text is the single-value texts joined (the array encoder has a
     * vector path of its own) */
    size_t at = 1;
    FUZZ_CHECK(buf[0] == '[' && buf[need - 1] == ']', "array_format: not bracketed");
    for (size_t i = 0; i < n; i++) {
        char one[DCV_FLOAT_MAXLEN + 1];
        size_t k = dcv_float_format(v[i], one);
        if (i) {
            FUZZ_CHECK(at < need && buf[at] == ',', "array_format: no comma before value %zu", i);
            at++;
        }
        FUZZ_CHECK(at + k < need && memcmp(buf + at, one, k) == 0,
                   "array_format value %zu (%08x): \"%s\" expected at %zu", i, fz_bits(v[i]),
                   one, at);
        at += k;
    }
    FUZZ_CHECK(at == need - 1, "array_format: %zu bytes, the values take %zu", need, at + 1);
    bool finite = true;
    for (size_t i = 0; i < n; i++) finite = finite && isfinite(v[i]);
    if (finite) {
        float *back = malloc((n ? n : 1) * sizeof(float));
        long long dims[REF_DIMS];
        int ndim = 0;
        size_t count = 0, errpos = 0;
        if (!back) abort();
        size_t took = dcv_float_array_parse(buf, buf + need, back, n, &count, 32, dims, &ndim,
                                            &errpos);
        FUZZ_CHECK(took == need && count == n && ndim == 1 && dims[0] == (long long)n,
                   "array_format text of %zu values parses as %zu bytes, %zu values: %.200s",
                   n, took, count, buf);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(fz_bits(back[i]) == fz_bits(v[i]), "array value %zu: %08x -> %08x", i,
                       fz_bits(v[i]), fz_bits(back[i]));
        free(back);
    }
    /* a short buffer: same length reported, nothing written past cap */
    if (short_cap < need) {
        char *sbuf = malloc(short_cap ? short_cap : 1);
        if (!sbuf) abort();
        size_t s = dcv_float_array_format(v, n, sbuf, short_cap);
        FUZZ_CHECK(s == need, "array_format with cap %zu reported %zu, needs %zu", short_cap, s,
                   need);
        free(sbuf);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = fz_copy(data, size);
    const char *end = p + size;

    int offsets = 0;
    for (size_t i = 0; i < size && offsets < MAX_PARSE_OFFSETS; i++)
        if (i == 0 || p[i - 1] == ',' || p[i - 1] == '[' || p[i - 1] == ' ') {
            check_parse(p + i, end);
            offsets++;
        }
    check_array(p, end, false, 32);
    check_array(p, end, true, 32);
    check_array(p, end, false, 3);

    size_t nchunks = size / 4 < MAX_CHUNKS ? size / 4 : MAX_CHUNKS;
    float *v = malloc((nchunks ? nchunks : 1) * sizeof(float));
    if (!v) abort();
    for (size_t i = 0; i < nchunks; i++) {
        memcpy(&v[i], data + 4 * i, 4);
        check_format(v[i]);
    }
    check_array_format(v, nchunks, size ? (size_t)data[size - 1] * 3 : 0);
    free(v);
    free(p);
    return 0;
}
