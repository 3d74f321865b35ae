/* test_floatcodec.c — float32 text codec: exact round trips, shortest output
 * (judged by glibc printf/strtof), strtof-identical parsing and the array
 * grammar. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/floatcodec.h"

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static float float_of(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Parses s twice: ending exactly at its end (the general lexer) and
 * followed by a delimiter and slack (the quick path, which wants 16
 * readable bytes); both must agree in length, value and failure. */
static size_t parse_str(const char *s, float *out, int allow_overflow)
{
    size_t len = strlen(s);
    char *padded = malloc(len + 32);
    cr_assert_not_null(padded);
    memcpy(padded, s, len);
    memcpy(padded + len, "]                               ", 32);
    float tight = 777.0f, loose = 777.0f;
    size_t n = dcv_float_parse(s, s + len, &tight, allow_overflow);
    size_t m = dcv_float_parse(padded, padded + len + 32, &loose, allow_overflow);
    free(padded);
    cr_assert_eq(n, m, "\"%s\": consumed %zu alone, %zu followed by ']'", s, n, m);
    cr_assert_eq(bits_of(tight), bits_of(loose), "\"%s\": %a alone, %a followed by ']'", s,
                 (double)tight, (double)loose);
    if (n)
        *out = tight;
    return n;
}

/* format -> parse gives the same bits, within DCV_FLOAT_MAXLEN, nothing
 * written past DCV_FLOAT_MAXLEN + 1 bytes. */
static void assert_round_trip(float v)
{
    char buf[DCV_FLOAT_MAXLEN + 1 + 8];
    memset(buf, 0x5a, sizeof buf);
    size_t n = dcv_float_format(v, buf);
    cr_assert(n <= DCV_FLOAT_MAXLEN, "0x%08x: length %zu", bits_of(v), n);
    cr_assert_eq(strlen(buf), n, "0x%08x: NUL not at the returned length", bits_of(v));
    for (size_t i = DCV_FLOAT_MAXLEN + 1; i < sizeof buf; i++)
        cr_assert_eq((unsigned char)buf[i], 0x5a, "0x%08x: wrote past the buffer", bits_of(v));
    float back = 12345.0f;
    size_t used = parse_str(buf, &back, 0);
    cr_assert_eq(used, n, "0x%08x: \"%s\" consumed %zu of %zu", bits_of(v), buf, used, n);
    cr_assert_eq(bits_of(back), bits_of(v), "0x%08x: \"%s\" came back as 0x%08x", bits_of(v),
                 buf, bits_of(back));
}

static void assert_round_trip_with_neighbours(float v)
{
    float vs[] = { v, -v, nextafterf(v, INFINITY), nextafterf(v, -INFINITY) };
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        if (isfinite(vs[i]))
            assert_round_trip(vs[i]);
}

Test(floatcodec, round_trip_boundaries)
{
    const float fixed[] = { 0.0f, FLT_MIN, FLT_MAX, FLT_EPSILON, 0.1f, 0.2f, 0.3f,
                            1.0f / 3, 2.0f / 3, 3.14159265f, 2.71828183f, 16777216.0f,
                            16777217.0f, 16777218.0f, 8388607.5f, 1e-5f, 1e15f, 1e16f,
                            123456792.0f, 9.8e-45f, float_of(1), float_of(0x007fffff),
                            float_of(0x00800001), float_of(0x7f7ffffe), -0.0f };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        assert_round_trip_with_neighbours(fixed[i]);
    for (int e = -149; e <= 127; e++)
        assert_round_trip_with_neighbours(ldexpf(1.0f, e));
    for (int e = -45; e <= 38; e++) {
        char s[16];
        snprintf(s, sizeof s, "1e%d", e);
        assert_round_trip_with_neighbours(strtof(s, NULL));
    }
    for (int i = 1; i <= 100000; i += 7)
        assert_round_trip_with_neighbours((float)i);
}

Test(floatcodec, round_trip_bit_pattern_sweep)
{
    size_t finite = 0;
    for (uint64_t b = 0; b <= UINT32_MAX; b += 65537) {
        float v = float_of((uint32_t)b);
        if (!isfinite(v))
            continue;
        assert_round_trip(v);
        finite++;
    }
    cr_assert_gt(finite, 65000u, "sweep covered only %zu values", finite);
    uint64_t seed = 3;
    for (int i = 0; i < 200000; i++) {
        float v = float_of((uint32_t)rng_next(&seed));
        if (isfinite(v))
            assert_round_trip(v);
    }
}

Test(floatcodec, format_known_outputs)
{
    static const struct {
        float v;
        const char *text;
    } cases[] = {
        { 0.0f, "0" },           { -0.0f, "-0" },
        { 1.0f, "1" },           { -3.0f, "-3" },
        { 100.0f, "100" },       { 0.1f, "0.1" },
        { 0.001f, "0.001" },     { 123.25f, "123.25" },
        { -2.5e-8f, "-2.5e-08" }, { 1e-5f, "0.00001" },
        { 1.5e-5f, "0.000015" }, { 1e-6f, "1e-06" },
        { 1e-7f, "1e-07" },      { FLT_MAX, "3.4028235e+38" },
        { -FLT_MAX, "-3.4028235e+38" }, { FLT_MIN, "1.1754944e-38" },
        { 1.4e-45f, "1e-45" },   { 9.8e-45f, "1e-44" },
        { 16777216.0f, "16777216" }, { 1e14f, "100000000000000" },
        { -1e14f, "-100000000000000" }, { 1e15f, "1e+15" },
        { 1e16f, "1e+16" },      { 1e10f, "10000000000" },
        { 123456792.0f, "123456790" }, { 1.0f / 3, "0.33333334" },
        { 0.3f, "0.3" },         { 65504.0f, "65504" },
        { 1.17549421e-38f, "1.1754942e-38" }, { 3.0e-39f, "3e-39" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[DCV_FLOAT_MAXLEN + 1];
        size_t n = dcv_float_format(cases[i].v, buf);
        cr_assert_str_eq(buf, cases[i].text, "case %zu: got \"%s\"", i, buf);
        cr_assert_eq(n, strlen(cases[i].text));
    }
}

Test(floatcodec, format_non_finite)
{
    char buf[DCV_FLOAT_MAXLEN + 1];
    cr_assert_eq(dcv_float_format(NAN, buf), 3);
    cr_assert_str_eq(buf, "NaN");
    cr_assert_eq(dcv_float_format(-NAN, buf), 3);
    cr_assert_str_eq(buf, "NaN");
    cr_assert_eq(dcv_float_format(INFINITY, buf), 8);
    cr_assert_str_eq(buf, "Infinity");
    cr_assert_eq(dcv_float_format(-INFINITY, buf), 9);
    cr_assert_str_eq(buf, "-Infinity");
}

/* The two layouts' worst cases: nine digits after "-0.0000" and nine digits
 * with a two-digit exponent. Both must be reached and fit. */
Test(floatcodec, format_longest_output_fits)
{
    char buf[DCV_FLOAT_MAXLEN + 1];
    size_t longest_plain = 0, longest_sci = 0;
    for (float v = -1e-5f; v > -1e-4f; v -= 1e-9f) {
        size_t n = dcv_float_format(v, buf);
        cr_assert(n <= DCV_FLOAT_MAXLEN, "\"%s\" too long", buf);
        if (n > longest_plain)
            longest_plain = n;
    }
    for (float v = -1e-30f; v > -1e-29f; v -= 1e-34f) {
        size_t n = dcv_float_format(v, buf);
        cr_assert(n <= DCV_FLOAT_MAXLEN, "\"%s\" too long", buf);
        if (n > longest_sci)
            longest_sci = n;
    }
    cr_assert_eq(longest_plain, 16);
    cr_assert_eq(longest_sci, 15);
    cr_assert_eq(dcv_float_format(-1e14f, buf), 16);
}

/* Significand digits of decimal text, trailing zeros stripped. */
static void significant_digits(const char *s, char *out)
{
    size_t n = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && (n > 0 || *s != '0'))
            out[n++] = *s;
    while (n > 0 && out[n - 1] == '0')
        n--;
    out[n] = '\0';
}

/* Independent reference: the least precision at which glibc's correctly
 * rounded printf round-trips through strtof, and those digits (the closest
 * decimal of that length). */
Test(floatcodec, shortest_and_closest_match_printf)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 20000; i++) {
        float v = float_of((uint32_t)rng_next(&seed));
        if (!isfinite(v) || v == 0)
            continue;
        char ref[40] = "", ours[DCV_FLOAT_MAXLEN + 1], rd[40], od[40];
        int p = 1;
        for (; p <= 9; p++) {
            snprintf(ref, sizeof ref, "%.*e", p - 1, (double)v);
            if (bits_of(strtof(ref, NULL)) == bits_of(v))
                break;
        }
        cr_assert_leq(p, 9);
        dcv_float_format(v, ours);
        significant_digits(ref, rd);
        significant_digits(ours, od);
        cr_assert_eq(strlen(od), (size_t)p, "0x%08x: \"%s\" but %%.%de gives \"%s\"", bits_of(v),
                     ours, p - 1, ref);
        cr_assert_str_eq(od, rd, "0x%08x: \"%s\" vs printf \"%s\"", bits_of(v), ours, ref);
    }
}

/* Parses s both ways; our result must be bit-identical to strtof's, and
 * overflow must be refused unless allowed. */
static void assert_like_strtof(const char *s)
{
    float ref = strtof(s, NULL), got = 777.0f, got_inf = 777.0f;
    size_t len = strlen(s);
    if (isinf(ref)) {
        cr_assert_eq(parse_str(s, &got, 0), 0, "\"%s\" overflow accepted", s);
        cr_assert_eq(got, 777.0f, "\"%s\": *out written on failure", s);
        cr_assert_eq(parse_str(s, &got_inf, 1), len, "\"%s\"", s);
        cr_assert_eq(bits_of(got_inf), bits_of(ref), "\"%s\"", s);
        return;
    }
    cr_assert_eq(parse_str(s, &got, 0), len, "\"%s\" not fully consumed", s);
    cr_assert_eq(bits_of(got), bits_of(ref), "\"%s\": got %a (0x%08x), strtof %a (0x%08x)", s,
                 (double)got, bits_of(got), (double)ref, bits_of(ref));
}

static void random_number(uint64_t *seed, char *s)
{
    size_t n = 0;
    if (rng_next(seed) & 1)
        s[n++] = '-';
    int digits = 1 + (int)(rng_next(seed) % 25);
    int int_digits = (int)(rng_next(seed) % (uint64_t)(digits + 1));
    if (int_digits == 0) {
        s[n++] = '0';
    } else {
        s[n++] = (char)('1' + rng_next(seed) % 9);
        for (int i = 1; i < int_digits; i++)
            s[n++] = (char)('0' + rng_next(seed) % 10);
    }
    if (digits > int_digits) {
        s[n++] = '.';
        for (int i = int_digits; i < digits; i++)
            s[n++] = (char)('0' + rng_next(seed) % 10);
    }
    uint64_t r = rng_next(seed);
    int exp10 = (int)(r >> 8 & 0xffff) % 96 - 50;
    if (r % 4)
        n += (size_t)sprintf(s + n, "%s%s%d", r & 4 ? "e" : "E", r & 8 && exp10 >= 0 ? "+" : "",
                             exp10);
    s[n] = '\0';
}

Test(floatcodec, parse_random_like_strtof)
{
    uint64_t seed = 42;
    char s[64];
    for (int i = 0; i < 100000; i++) {
        random_number(&seed, s);
        assert_like_strtof(s);
    }
}

/* Exact decimal expansions of float32 rounding midpoints, and strings a hair
 * either side of them: exactly where double rounding would bite. */
Test(floatcodec, parse_midpoints_like_strtof)
{
    uint64_t seed = 7;
    char exact[200], s[700];
    for (int i = 0; i < 3000; i++) {
        float v = fabsf(float_of((uint32_t)rng_next(&seed)));
        if (!isfinite(v) || v == FLT_MAX)
            continue;
        double mid = ((double)v + (double)nextafterf(v, INFINITY)) / 2; /* exact */
        snprintf(exact, sizeof exact, "%.130e", mid);
        assert_like_strtof(exact);
        /* just above: append a far nonzero digit to the mantissa */
        char *e = strchr(exact, 'e');
        snprintf(s, sizeof s, "%.*s%0*d1%s", (int)(e - exact), exact, (int)(i % 500), 0, e);
        assert_like_strtof(s);
        /* just below: cut to 17..30 significant digits */
        int keep = 17 + i % 14;
        snprintf(s, sizeof s, "%.*s%s", keep + 1, exact, e);
        assert_like_strtof(s);
    }
}

/* Short tokens (the decoder's SIMD path takes up to 15 bytes) a hair from
 * float32 rounding midpoints, normal and subnormal, in both notations. */
Test(floatcodec, parse_short_tokens_near_midpoints_like_strtof)
{
    uint64_t seed = 11;
    char s[64];
    for (int i = 0; i < 20000; i++) {
        float v = fabsf(float_of((uint32_t)rng_next(&seed)));
        if (i % 4 == 0) /* subnormals and the lowest normal binade */
            v = float_of((uint32_t)rng_next(&seed) & 0x00ffffff);
        if (!isfinite(v) || v == FLT_MAX)
            continue;
        double mid = ((double)v + (double)nextafterf(v, INFINITY)) / 2;
        for (int prec = 6; prec <= 9; prec++) {
            snprintf(s, sizeof s, "%s%.*e", i & 1 ? "-" : "", prec, mid);
            assert_like_strtof(s);
            if (mid >= 1e-5 && mid < 1e6) {
                snprintf(s, sizeof s, "%.*g", prec + 1, mid);
                assert_like_strtof(s);
            }
        }
    }
}

Test(floatcodec, parse_tricky_cases)
{
    static const char *const cases[] = {
        "1.00000005960464477539062499", "1.000000059604644775390625",
        "1.00000005960464477539062501", "1.0000000596046447753906250000000000000000000001",
        "3.4028235677973366e38", "3.4028235677973367e38",
        "340282356779733661637539395458142568448", "340282356779733661637539395458142568447",
        "3.4028234663852886e38", "7.006492321624085e-46", "7.006492321624086e-46",
        "7.0064923216240854e-46", "1.4012984643248171e-45", "2.1019476964872256e-45",
        "1.1754942807573643e-38", "1.1754943508222875e-38", "1.17549428e-38",
        "0.000000000000000000000000000000000000011754943508222875", "16777217",
        "16777219", "33554434", "9007199254740993", "18446744073709551615",
        "18446744073709551616", "99999999999999999999", "0.1", "0.30000001192092896",
        "0.10000000149011612", "123456789012345678901234567890", "1e38", "1e-38", "1e-45",
        "1e-46", "-0", "-0.0", "0e999999999999", "-0E-999999999999", "1e-999999999999",
        "1e999999999999", "-1e39", "1e39",
        "4.7019774032891500318749461488889827112746622270883500860350068251e-38",
        "2.9802322387695312e-8", "2.98023223876953125e-8", "2.9802322387695313e-8",
        "1e5", "1E+05", "1e-5", "-0e0", "0e-0", "1.5e+38", "3.4028236e38", "-1.17549435e-38",
        "123456789012345", "-12345678901234", "1234567.5", "-1234567.5", "0.000000000000001",
        "9.999999e-39", "1.401298e-45", "7.006492e-46", "7.006493e-46", "4.2e-45",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_like_strtof(cases[i]);
    float f;
    cr_assert_eq(parse_str("1.000000059604644775390625", &f, 0), 26);
    cr_assert_eq(f, 1.0f, "exact tie rounds to even");
    cr_assert_eq(parse_str("1.00000005960464477539062501", &f, 0), 28);
    cr_assert_eq(f, nextafterf(1.0f, 2.0f));
    cr_assert_eq(parse_str("-0", &f, 0), 2);
    cr_assert(signbit(f) && f == 0);
    cr_assert_eq(parse_str("1e-999999999999", &f, 0), 15);
    cr_assert(f == 0 && !signbit(f));
    cr_assert_eq(parse_str("3.4028235677973366e38", &f, 0), 21);
    cr_assert_eq(f, FLT_MAX);
    cr_assert_eq(parse_str("3.4028235677973367e38", &f, 0), 0, "overflow must be refused");
    cr_assert_eq(parse_str("-1e39", &f, 1), 5);
    cr_assert(isinf(f) && f < 0);
}

/* Mantissas far longer than any buffer: the answer depends on the last
 * digit, hundreds of places in. */
Test(floatcodec, parse_long_mantissas)
{
    static const char mid[] = "1.000000059604644775390625"; /* 1 + 2^-24 */
    char s[1200];
    float f;
    for (size_t zeros = 0; zeros < 900; zeros += 50) {
        memcpy(s, mid, sizeof mid - 1);
        memset(s + sizeof mid - 1, '0', zeros);
        s[sizeof mid - 1 + zeros] = '\0';
        assert_like_strtof(s);
        cr_assert_eq(parse_str(s, &f, 0), strlen(s));
        cr_assert_eq(f, 1.0f, "tie with %zu zeros", zeros);
        strcat(s, "1");
        assert_like_strtof(s);
        cr_assert_eq(parse_str(s, &f, 0), strlen(s));
        cr_assert_eq(f, nextafterf(1.0f, 2.0f), "above the tie by 1e-%zu", zeros + 25);
    }
    uint64_t seed = 99;
    for (int len = 400; len <= 800; len += 400) {
        for (int rep = 0; rep < 50; rep++) {
            size_t n = 0;
            s[n++] = (char)('1' + rng_next(&seed) % 9);
            for (int i = 1; i < len; i++)
                s[n++] = (char)('0' + rng_next(&seed) % 10);
            snprintf(s + n, sizeof s - n, "e-%d", len - 1 + (int)(rng_next(&seed) % 80) - 40);
            assert_like_strtof(s);
            s[0] = '0';
            s[1] = '.';
            assert_like_strtof(s);
        }
    }
    memset(s, '0', 700);
    memcpy(s, "0.", 2);
    snprintf(s + 700, sizeof s - 700, "123e650");
    assert_like_strtof(s);
}

/* What Python sends for float32 data (tolist(): the double's shortest
 * repr, often 17 digits) and digit runs cut by a dot at every position
 * around the 8-digit steps of the lexer: each parses like strtof. */
Test(floatcodec, parse_python_style_long_tokens)
{
    uint64_t seed = 2024;
    char s[64];
    for (int i = 0; i < 50000; i++) {
        float v = float_of((uint32_t)rng_next(&seed));
        if (!isfinite(v))
            continue;
        snprintf(s, sizeof s, "%.17g", (double)v);
        assert_like_strtof(s);
    }
    for (int len = 1; len <= 26; len++)
        for (int dot = 0; dot <= len; dot++) {
            size_t n = 0;
            for (int k = 0; k < len; k++) {
                if (k == dot && k > 0)
                    s[n++] = '.';
                s[n++] = (char)(k == 0 ? '1' + rng_next(&seed) % 9 : '0' + rng_next(&seed) % 10);
            }
            s[n] = '\0';
            assert_like_strtof(s);
        }
}

/* The decoder's long quick path (tokens of 16..31 bytes, dot within the
 * first 16, mantissa within 24): float32 rounding midpoints written with
 * 17..24 significant digits, cut (below) and cut then bumped in the last
 * digit (above), plain and with 1- or 2-digit exponents, subnormals and
 * the lowest binade included; strtof is the reference. */
Test(floatcodec, parse_long_quick_path_near_midpoints_like_strtof)
{
    uint64_t seed = 13;
    char s[96];
    for (int i = 0; i < 20000; i++) {
        float v = fabsf(float_of((uint32_t)rng_next(&seed)));
        if (i % 4 == 0)
            v = float_of((uint32_t)rng_next(&seed) & 0x00ffffff);
        if (i % 4 == 1) /* what activations are: [1e-4, 1) */
            v = ldexpf((float)(rng_next(&seed) >> 40) / 16777216.0f, -(int)(rng_next(&seed) % 13));
        if (!isfinite(v) || v == FLT_MAX || v == 0)
            continue;
        double mid = ((double)v + (double)nextafterf(v, INFINITY)) / 2;
        for (int prec = 16; prec <= 23; prec++) {
            const char *sign = (i + prec) & 1 ? "-" : "";
            snprintf(s, sizeof s, "%s%.*e", sign, prec, mid);
            assert_like_strtof(s);
            char *e = strchr(s, 'e');
            e[-1] = e[-1] == '9' ? '8' : (char)(e[-1] + 1);
            assert_like_strtof(s);
            if (mid >= 1e-4 && mid < 1) {
                snprintf(s, sizeof s, "%s%.*f", sign, prec - (int)floor(log10(mid)), mid);
                assert_like_strtof(s);
            }
        }
    }
}

/* Every token length and dot position around the long quick path's bounds
 * (16 and 32 bytes, dot past byte 15, mantissa past byte 24), with and
 * without exponents of each shape, and its grammar errors. */
Test(floatcodec, parse_long_quick_path_shapes)
{
    static const char *const exps[] = { "", "e5", "E-7", "e+12", "e-45", "e38", "e-123", "e0" };
    uint64_t seed = 17;
    char s[96];
    for (int len = 14; len <= 34; len++)
        for (int dot = 0; dot <= len; dot++)
            for (size_t x = 0; x < sizeof exps / sizeof exps[0]; x++)
                for (int neg = 0; neg < 2; neg++) {
                    size_t n = 0;
                    if (neg)
                        s[n++] = '-';
                    for (int k = 0; k < len; k++) {
                        if (k == dot && k > 0)
                            s[n++] = '.';
                        int lead_zero = dot == 1 && k == 0 && (x & 1);
                        s[n++] = (char)(lead_zero ? '0'
                                        : k == 0  ? '1' + rng_next(&seed) % 9
                                                  : '0' + rng_next(&seed) % 10);
                    }
                    snprintf(s + n, sizeof s - n, "%s", exps[x]);
                    assert_like_strtof(s);
                }
    static const char *const bad[] = {
        "0.1234567890123456789.", "01.23456789012345678", "1.2345678901234567e",
        "-.12345678901234567890", "1..2345678901234567890", "1.23456789012345678e+",
        "0.12345678901234567x89", "-0.1234567890123456789-", "1.2345678901234567e5.5",
        "12345678901234567890.", "0.000000000000000001_", "1.2345678901234567890e1e",
        "--0.12345678901234567", "0.12345678901234567+1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float f = 42.0f;
        cr_assert_eq(parse_str(bad[i], &f, 1), 0, "\"%s\" accepted", bad[i]);
        cr_assert_eq(f, 42.0f, "\"%s\": *out written on failure", bad[i]);
    }
}

/* A JSON array as Python writes float32 data (each value the shortest repr
 * of its double: up to 17 digits, "e-05" below 1e-4), parsed in one call:
 * every value comes back with its bits. */
Test(floatcodec, parse_python_tolist_array)
{
    enum { N = 20000 };
    float *in = malloc(N * sizeof *in), *back = malloc(N * sizeof *back);
    char *text = malloc(N * 32 + 2);
    cr_assert(in && back && text);
    uint64_t seed = 23;
    size_t len = 0;
    text[len++] = '[';
    for (int i = 0; i < N; i++) {
        uint64_t r = rng_next(&seed);
        in[i] = i % 3 ? (float)((double)(r >> 11) * 0x1p-52 - 1.0)
                      : float_of((uint32_t)r & 0xbfffffffu); /* finite, any magnitude */
        char rep[40];
        int prec = 1;
        for (; prec < 17; prec++) { /* the shortest that reads back as the double */
            snprintf(rep, sizeof rep, "%.*g", prec, (double)in[i]);
            if (strtod(rep, NULL) == (double)in[i])
                break;
        }
        snprintf(rep, sizeof rep, "%.*g", prec, (double)in[i]);
        if (i)
            text[len++] = ',';
        memcpy(text + len, rep, strlen(rep));
        len += strlen(rep);
    }
    text[len++] = ']';
    size_t count = 0, err = 0;
    cr_assert_eq(dcv_float_array_parse(text, text + len, back, N, &count, 1, NULL, NULL, &err),
                 len, "stopped at %zu: %.40s", err, text + err);
    cr_assert_eq(count, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(bits_of(back[i]), bits_of(in[i]), "value %d: 0x%08x came back as 0x%08x",
                     i, bits_of(in[i]), bits_of(back[i]));
    free(in);
    free(back);
    free(text);
}

Test(floatcodec, parse_rejects_non_json_numbers)
{
    static const char *const bad[] = {
        "", "-", "+1", ".5", "1.", "1.e5", "1e", "1e+", "1E-", "01", "-01", "00", "0x10",
        "1x", "NaN", "nan", "Infinity", "-Infinity", "inf", " 1", "--1", "1.5.3", "1e5e",
        "1e5.0", "1+2", "1-2", "0.5_", "-.5", "e5", "\t1", "1e1.5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float f = 42.0f;
        cr_assert_eq(parse_str(bad[i], &f, 1), 0, "\"%s\" accepted", bad[i]);
        cr_assert_eq(f, 42.0f, "\"%s\": *out written on failure", bad[i]);
    }
}

Test(floatcodec, parse_stops_at_delimiters_and_end)
{
    float f;
    cr_assert_eq(parse_str("1,2", &f, 0), 1);
    cr_assert_eq(f, 1.0f);
    cr_assert_eq(parse_str("-0.5]", &f, 0), 4);
    cr_assert_eq(f, -0.5f);
    cr_assert_eq(parse_str("2.5e3 ", &f, 0), 5);
    cr_assert_eq(f, 2500.0f);
    cr_assert_eq(parse_str("7}", &f, 0), 1);
    /* the end bound is honoured: "12" limited to one byte is "1" */
    const char *s = "12";
    cr_assert_eq(dcv_float_parse(s, s + 1, &f, 0), 1);
    cr_assert_eq(f, 1.0f);
    cr_assert_eq(dcv_float_parse(s, s, &f, 0), 0);
    s = "1.5e";
    cr_assert_eq(dcv_float_parse(s, s + 3, &f, 0), 3);
    cr_assert_eq(f, 1.5f);
}

/* ---------------------------------------------------------------------- */

static size_t parse_array(const char *s, float *out, size_t cap, size_t *count, int max_depth,
                          long long *dims, int *ndim, size_t *errpos)
{
    return dcv_float_array_parse(s, s + strlen(s), out, cap, count, max_depth, dims, ndim,
                                 errpos);
}

Test(floatcodec, array_flat)
{
    float out[8];
    size_t count = 99, err = 99;
    const char *s = "[1,-2.5,3e2,0]";
    cr_assert_eq(parse_array(s, out, 8, &count, 4, NULL, NULL, &err), strlen(s));
    cr_assert_eq(count, 4);
    cr_assert_eq(out[0], 1.0f);
    cr_assert_eq(out[1], -2.5f);
    cr_assert_eq(out[2], 300.0f);
    cr_assert_eq(out[3], 0.0f);
}

Test(floatcodec, array_nested_with_dims)
{
    const char *s = "[[[1,2],[3,4],[5,6]],[[7,8],[9,10],[11,12]]]";
    float out[12];
    long long dims[8] = { 0 };
    int ndim = 0;
    size_t count = 0, err = 0;
    cr_assert_eq(parse_array(s, out, 12, &count, 8, dims, &ndim, &err), strlen(s));
    cr_assert_eq(count, 12);
    cr_assert_eq(ndim, 3);
    cr_assert_eq(dims[0], 2);
    cr_assert_eq(dims[1], 3);
    cr_assert_eq(dims[2], 2);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(out[i], (float)(i + 1), "row-major element %d", i);
}

Test(floatcodec, array_ragged)
{
    static const char *const ragged[] = {
        "[[1,2],[3]]", "[[1],[2,3]]", "[[1,2],3]", "[1,[2,3]]", "[[1],[]]", "[[],[1]]",
        "[[[1]],[2]]", "[[1],[[2]]]", "[[[]],[[1]]]",
    };
    float out[8];
    long long dims[8];
    int ndim;
    size_t count, err;
    for (size_t i = 0; i < sizeof ragged / sizeof ragged[0]; i++) {
        cr_assert_eq(parse_array(ragged[i], out, 8, &count, 8, dims, &ndim, &err), 0,
                     "\"%s\" accepted with dims", ragged[i]);
        cr_assert_lt(err, strlen(ragged[i]));
    }
    /* without dims, the same input is flattened */
    cr_assert_eq(parse_array("[[1,2],[3]]", out, 8, &count, 8, NULL, NULL, &err), 11);
    cr_assert_eq(count, 3);
    cr_assert_eq(parse_array("[1,[2,[3]]]", out, 8, &count, 8, NULL, NULL, &err), 11);
    cr_assert_eq(count, 3);
    cr_assert_eq(out[2], 3.0f);
    cr_assert_eq(parse_array("[[1,2],[3]]", out, 8, &count, 8, dims, &ndim, &err), 0);
    cr_assert_eq(err, 9, "error at the short row's ']'");
}

Test(floatcodec, array_whitespace)
{
    const char *s = " \t\r\n[ \n[ 1 ,\t2 ] ,\r\n [3 , 4]\n ]  trailing";
    float out[4];
    long long dims[8];
    int ndim;
    size_t count, err;
    size_t used = parse_array(s, out, 4, &count, 8, dims, &ndim, &err);
    cr_assert_eq(used, (size_t)(strstr(s, "]  trailing") - s) + 1, "consumed %zu", used);
    cr_assert_eq(count, 4);
    cr_assert_eq(ndim, 2);
    cr_assert_eq(dims[0], 2);
    cr_assert_eq(dims[1], 2);
    cr_assert_eq(out[3], 4.0f);
}

Test(floatcodec, array_empty)
{
    float out[1];
    long long dims[8] = { -1, -1, -1 };
    int ndim = -1;
    size_t count = 99, err;
    cr_assert_eq(parse_array("[]", out, 1, &count, 8, dims, &ndim, &err), 2);
    cr_assert_eq(count, 0);
    cr_assert_eq(ndim, 1);
    cr_assert_eq(dims[0], 0);
    cr_assert_eq(parse_array("[ ]", NULL, 0, &count, 8, NULL, NULL, &err), 3);
    cr_assert_eq(count, 0);
    cr_assert_eq(parse_array("[[],[]]", out, 1, &count, 8, dims, &ndim, &err), 7);
    cr_assert_eq(ndim, 2);
    cr_assert_eq(dims[0], 2);
    cr_assert_eq(dims[1], 0);
    cr_assert_eq(parse_array("[[[]]]", out, 1, &count, 8, dims, &ndim, &err), 6);
    cr_assert_eq(ndim, 3);
    cr_assert_eq(dims[0], 1);
    cr_assert_eq(dims[1], 1);
    cr_assert_eq(dims[2], 0);
}

Test(floatcodec, array_depth_limits)
{
    enum { DEEP = 100000 };
    char *s = malloc(2 * DEEP + 1);
    cr_assert_not_null(s);
    memset(s, '[', DEEP);
    memset(s + DEEP, ']', DEEP);
    s[2 * DEEP] = '\0';
    size_t count, err = 0;
    long long dims[8];
    int ndim;
    cr_assert_eq(parse_array(s, NULL, 0, &count, 64, NULL, NULL, &err), 0);
    cr_assert_eq(err, 64, "error at the first bracket past the limit");
    /* no recursion: the whole depth is fine when allowed */
    cr_assert_eq(parse_array(s, NULL, 0, &count, DEEP, NULL, NULL, &err), 2 * DEEP);
    cr_assert_eq(count, 0);
    cr_assert_eq(parse_array(s, NULL, 0, &count, DEEP - 1, NULL, NULL, &err), 0);
    /* unterminated: error at the end, not a crash */
    cr_assert_eq(dcv_float_array_parse(s, s + DEEP, NULL, 0, &count, DEEP, NULL, NULL, &err),
                 0);
    cr_assert_eq(err, DEEP);
    /* dims cover 8 levels; a 9th is refused whatever max_depth says */
    cr_assert_eq(parse_array(s + DEEP - 8, NULL, 0, &count, 64, dims, &ndim, &err), 16);
    cr_assert_eq(ndim, 8);
    cr_assert_eq(parse_array(s + DEEP - 9, NULL, 0, &count, 64, dims, &ndim, &err), 0);
    cr_assert_eq(err, 8);
    cr_assert_eq(parse_array("[[1]]", NULL, 0, &count, 1, NULL, NULL, &err), 0);
    cr_assert_eq(err, 1);
    free(s);
}

Test(floatcodec, array_syntax_errors)
{
    static const struct {
        const char *text;
        size_t errpos;
    } cases[] = {
        { "[1,true]", 3 },  { "[1,\"2\"]", 3 }, { "[1,NaN]", 3 },   { "[1,2,]", 5 },
        { "[,1]", 1 },      { "[1 2]", 3 },     { "[1,,2]", 3 },    { "[1", 2 },
        { "[1,", 3 },       { "", 0 },          { "  ", 2 },        { "1", 0 },
        { "{}", 0 },        { "[01]", 1 },      { "[1e39]", 1 },    { "[1]2", 99 },
        { "[[1],]", 5 },    { "[[1][2]]", 4 },  { "[-]", 1 },       { "[1.]", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float out[4];
        size_t count, err = 12345;
        size_t used = parse_array(cases[i].text, out, 4, &count, 8, NULL, NULL, &err);
        if (cases[i].errpos == 99) { /* valid array followed by junk: caller's business */
            cr_assert_eq(used, 3);
            continue;
        }
        cr_assert_eq(used, 0, "\"%s\" accepted", cases[i].text);
        cr_assert_eq(err, cases[i].errpos, "\"%s\": error at %zu", cases[i].text, err);
    }
}

Test(floatcodec, array_cap_smaller_than_count)
{
    const char *s = "[1,2,3,4,5,6]";
    float out[4] = { 0, 0, 0, -7.0f };
    size_t count = 0, err;
    cr_assert_eq(parse_array(s, out, 3, &count, 4, NULL, NULL, &err), strlen(s));
    cr_assert_eq(count, 6, "keeps counting past cap");
    cr_assert_eq(out[2], 3.0f);
    cr_assert_eq(out[3], -7.0f, "wrote past cap");
    cr_assert_eq(parse_array(s, NULL, 0, &count, 4, NULL, NULL, &err), strlen(s));
    cr_assert_eq(count, 6, "sizing call with cap 0");
}

Test(floatcodec, array_round_trip)
{
    enum { N = 5000 };
    float *in = malloc(N * sizeof *in), *back = malloc(N * sizeof *back);
    size_t cap = N * (DCV_FLOAT_MAXLEN + 1) + 2;
    char *buf = malloc(cap);
    cr_assert(in && back && buf);
    uint64_t seed = 5;
    for (int i = 0; i < N; i++)
        do
            in[i] = float_of((uint32_t)rng_next(&seed));
        while (!isfinite(in[i]));
    size_t len = dcv_float_array_format(in, N, buf, cap);
    cr_assert_leq(len, cap);
    size_t count, err;
    cr_assert_eq(dcv_float_array_parse(buf, buf + len, back, N, &count, 1, NULL, NULL, &err), len);
    cr_assert_eq(count, N);
    cr_assert_eq(memcmp(in, back, N * sizeof *in), 0);
    free(in);
    free(back);
    free(buf);
}

Test(floatcodec, array_format_known)
{
    char buf[128];
    const float v[] = { 1.0f, -0.0f, 0.5f, NAN, INFINITY, -INFINITY, 1e-7f };
    size_t n = dcv_float_array_format(v, 7, buf, sizeof buf);
    const char *want = "[1,-0,0.5,NaN,Infinity,-Infinity,1e-07]";
    cr_assert_eq(n, strlen(want));
    cr_assert_eq(memcmp(buf, want, n), 0, "got %.*s", (int)n, buf);
    cr_assert_eq(dcv_float_array_format(v, 0, buf, sizeof buf), 2);
    cr_assert_eq(memcmp(buf, "[]", 2), 0);
    cr_assert_eq(dcv_float_array_format(v, 1, buf, sizeof buf), 3);
    cr_assert_eq(memcmp(buf, "[1]", 3), 0);
}

Test(floatcodec, array_format_capacity)
{
    const float v[] = { -1.23456784e-5f, -3.40282347e38f, 0.25f, -1e14f };
    const char *want = "[-0.000012345678,-3.4028235e+38,0.25,-100000000000000]";
    size_t need = strlen(want);
    char buf[128];
    for (size_t cap = 0; cap <= need + 1; cap++) {
        memset(buf, '#', sizeof buf);
        size_t n = dcv_float_array_format(v, 4, cap ? buf : NULL, cap);
        cr_assert_eq(n, need, "cap %zu: returned %zu", cap, n);
        for (size_t i = cap; i < sizeof buf; i++)
            cr_assert_eq(buf[i], '#', "cap %zu: byte %zu written", cap, i);
        if (cap >= need)
            cr_assert_eq(memcmp(buf, want, need), 0, "cap %zu: %.*s", cap, (int)need, buf);
    }
    /* the documented bound holds for the longest elements */
    float worst[64];
    for (int i = 0; i < 64; i++)
        worst[i] = -1.00000005e-5f - (float)i * 1e-12f;
    char big[64 * (DCV_FLOAT_MAXLEN + 1) + 2];
    cr_assert_leq(dcv_float_array_format(worst, 64, big, sizeof big), sizeof big);
}

/* The array encoder (eight at a time with AVX-512 where the CPU has it)
 * writes exactly the single-value texts joined by commas, for arrays of
 * every length mixing the values the vector path sets apart (zeros,
 * subnormals, powers of two, small integers, NaN, infinities) with
 * ordinary ones; and it honours every capacity. */
Test(floatcodec, array_format_matches_single_values)
{
    enum { N = 300 };
    float v[N];
    char *got = malloc(N * (DCV_FLOAT_MAXLEN + 1) + 2), *want = malloc(N * (DCV_FLOAT_MAXLEN + 1) + 2);
    cr_assert(got && want);
    uint64_t seed = 29;
    for (int round = 0; round < 400; round++) {
        size_t n = round < 100 ? (size_t)round : (size_t)(rng_next(&seed) % N);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rng_next(&seed);
            switch (r % 11) {
            case 0: v[i] = float_of((uint32_t)(r >> 16)); break; /* any pattern */
            case 1: v[i] = float_of((uint32_t)(r >> 20) & 0x807fffffu); break; /* subnormal, 0 */
            case 2: v[i] = ldexpf(r & 1 ? -1.0f : 1.0f, (int)(r >> 8) % 277 - 149); break;
            case 3: v[i] = (float)((int64_t)(r >> 40) - (1 << 23)); break; /* integers */
            case 4: v[i] = r & 1 ? NAN : (r & 2 ? INFINITY : -INFINITY); break;
            case 5: v[i] = float_of((uint32_t)(r >> 8) | 0x7f000000u); break; /* huge */
            default: v[i] = (float)((double)(r >> 11) * 0x1p-52 - 1.0); break;
            }
        }
        size_t wl = 0;
        want[wl++] = '[';
        for (size_t i = 0; i < n; i++) {
            char one[DCV_FLOAT_MAXLEN + 1];
            if (i)
                want[wl++] = ',';
            size_t k = dcv_float_format(v[i], one);
            memcpy(want + wl, one, k);
            wl += k;
        }
        want[wl++] = ']';
        size_t cap = n * (DCV_FLOAT_MAXLEN + 1) + 2;
        size_t gl = dcv_float_array_format(v, n, got, cap);
        cr_assert_eq(gl, wl, "round %d (n %zu): length %zu, single values give %zu", round, n, gl,
                     wl);
        for (size_t i = 0; i < wl; i++)
            cr_assert_eq(got[i], want[i], "round %d: byte %zu: %.30s vs %.30s", round, i,
                         got + (i > 10 ? i - 10 : 0), want + (i > 10 ? i - 10 : 0));
        /* tight capacities: the same length back, nothing past cap, text when it fits */
        for (size_t c = wl > 300 ? wl - 300 : 0; c <= wl + 1; c += 1 + (size_t)round % 7) {
            memset(got, '#', cap);
            cr_assert_eq(dcv_float_array_format(v, n, got, c), wl, "round %d cap %zu", round, c);
            for (size_t i = c; i < cap; i++)
                cr_assert_eq(got[i], '#', "round %d cap %zu: byte %zu written", round, c, i);
            if (c >= wl)
                cr_assert_eq(memcmp(got, want, wl), 0, "round %d cap %zu", round, c);
        }
    }
    free(got);
    free(want);
}
