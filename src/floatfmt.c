/* floatfmt.c — float32 to JSON number text, for tensor `data` arrays (the
 * encoding half of floatcodec.h; floatparse.c is the decoding half).
 *
 * Schubfach (R. Giulietti) finds the shortest decimal that rounds back to
 * the same float32 from three round-to-odd 64x64-bit products; the digits
 * come out 8 at a time (SWAR) in JS/Python layout: plain notation for
 * 1e-5 <= |v| < 1e15, "d.ddde+XX" otherwise. Also the non-finite scan that
 * decides whether floats may be written as JSON at all.
 *
 * Pure functions, any thread, no allocation; owns only static const tables.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "deconvd/floatcodec.h"

__extension__ typedef unsigned __int128 u128;

#define ONES 0x0101010101010101u /* one in every byte of a word */

/* ---------------------------------------------------------------------- */
/* Encoding                                                               */
/* ---------------------------------------------------------------------- */

#define G_KMIN (-45)

/* g[k - G_KMIN] = floor(10^-k * 2^(62 - floor(log2 10^-k))) + 1: 10^-k
 * normalised to [2^62, 2^63) and rounded up, as Schubfach's error analysis
 * for binary32 requires. Generated with exact rational arithmetic. */
static const uint64_t g_table[] = {
    0x59aedfc10d7279c6u, 0x47bf19673df52e38u, 0x72cb5bd86321e38du,
    0x5bd5e313828182d7u, 0x4977e8dc68679be0u, 0x758ca7c70d7292ffu,
    0x5e0a1fd271287599u, 0x4b3b4ca85a86c47bu, 0x785ee10d5da46d91u,
    0x604be73de4838adau, 0x4d0985cb1d3608afu, 0x7b426fab61f00de4u,
    0x629b8c891b267183u, 0x4ee2d6d415b85acfu, 0x7e37be2022c0914cu,
    0x64f964e68233a770u, 0x50c783eb9b5c85f3u, 0x409f9cbc7c4a04c3u,
    0x6765c793fa10079eu, 0x52b7d2dcc80cd2e5u, 0x422ca8b0a00a4251u,
    0x69e10de76676d081u, 0x54b40b1f852bda01u, 0x43c33c1937564801u,
    0x6c6b935b8bbd4001u, 0x56bc75e2d6310001u, 0x4563918244f40001u,
    0x6f05b59d3b200001u, 0x58d15e1762800001u, 0x470de4df82000001u,
    0x71afd498d0000001u, 0x5af3107a40000001u, 0x48c2739500000001u,
    0x746a528800000001u, 0x5d21dba000000001u, 0x4a817c8000000001u,
    0x7735940000000001u, 0x5f5e100000000001u, 0x4c4b400000000001u,
    0x7a12000000000001u, 0x61a8000000000001u, 0x4e20000000000001u,
    0x7d00000000000001u, 0x6400000000000001u, 0x5000000000000001u,
    0x4000000000000001u, 0x6666666666666667u, 0x51eb851eb851eb86u,
    0x4189374bc6a7ef9eu, 0x68db8bac710cb296u, 0x53e2d6238da3c212u,
    0x431bde82d7b634dbu, 0x6b5fca6af2bd215fu, 0x55e63b88c230e77fu,
    0x44b82fa09b5a52ccu, 0x6df37f675ef6eae0u, 0x57f5ff85e5925580u,
    0x465e6604b7a84466u, 0x709709a125da070au, 0x5a126e1a84ae6c08u,
    0x480ebe7b9d58566du, 0x734aca5f6226f0aeu, 0x5c3bd5191b525a25u,
    0x49c97747490eae84u, 0x760f253edb4ab0d3u, 0x5e72843249088d76u,
    0x4b8ed0283a6d3df8u, 0x78e480405d7b9659u, 0x60b6cd004ac94514u,
    0x4d5f0a66a23a9daau, 0x7bcb43d769f762a9u, 0x63090312bb2c4eeeu,
    0x4f3a68dbc8f03f25u, 0x7ec3daf941806507u, 0x65697bfa9acd1da0u,
    0x51212ffbaf0a7e19u, 0x40e7599625a1fe7bu,
};

static const char digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Fixed-point logarithms, exact over the exponents binary32 needs (checked
 * against exact arithmetic for q in [-160, 120], e in [-60, 60]). The bias
 * keeps the shifted value non-negative so the shift is a true floor. */
static int floor_log10_pow2(int q) { return ((q * 315653 + (256 << 20)) >> 20) - 256; }

static int floor_log10_three_quarters_pow2(int q)
{
    return ((q * 315653 - 131237 + (256 << 20)) >> 20) - 256;
}

static int floor_log2_pow10(int e) { return ((e * 1741647 + (256 << 19)) >> 19) - 256; }

/* High bits of g * cp, rounded to odd: an inexact product keeps its lowest
 * bit set, so comparisons against even boundaries stay exact. */
static uint32_t round_to_odd(uint64_t g, uint64_t cp)
{
    uint64_t hi = (uint64_t)(((u128)g * cp) >> 64);
    return (uint32_t)(hi >> 31) | ((hi & 0x7fffffffu) != 0);
}

struct decimal {
    uint32_t f; /* significand, may carry trailing zeros */
    int e;      /* value = f * 10^e */
};

/* Shortest (then closest, then even) decimal in the rounding interval of
 * c * 2^q. `irregular` marks c = 2^23 above the first binade, whose lower
 * neighbour is twice as close. */
static struct decimal schubfach(uint32_t c, int q, int irregular)
{
    uint32_t out = c & 1; /* odd significand: interval bounds excluded */
    uint64_t cb = (uint64_t)c << 2, cbr = cb + 2, cbl = cb - 2;
    int k = floor_log10_pow2(q);
    if (irregular) {
        cbl = cb - 1;
        k = floor_log10_three_quarters_pow2(q);
    }
    int h = q + floor_log2_pow10(-k) + 33;
    uint64_t g = g_table[k - G_KMIN];
    uint32_t vb = round_to_odd(g, cb << h);
    uint32_t vbl = round_to_odd(g, cbl << h);
    uint32_t vbr = round_to_odd(g, cbr << h);
    uint32_t s = vb >> 2;

    /* The interval is narrower than 10^(k+1), so it holds at most one
     * multiple of it; if so that one is the shortest. Otherwise one or both
     * of s, s + 1 (times 10^k) are in it: the one inside, else the closer,
     * else the even. All four candidates are weighed without branches:
     * which one wins is as good as random from one element to the next. */
    uint32_t sp10 = s / 10 * 10, tp10 = sp10 + 10, t = s + 1;
    uint32_t upin = vbl + out <= sp10 << 2, wpin = (tp10 << 2) + out <= vbr;
    uint32_t uin = vbl + out <= s << 2, win = (t << 2) + out <= vbr;
    int32_t cmp = (int32_t)(vb - ((s + t) << 1));
    uint32_t take_s = uin != win ? uin : (cmp < 0) | ((cmp == 0) & ~s & 1);
    uint32_t fine = t - take_s, coarse = tp10 - 10 * upin;
    return (struct decimal){ upin != wpin ? coarse : fine, k };
}

/* Bytes format_raw may write at p, past its text too: it stores whole
 * 16-byte words rather than a byte at a time. */
#define FORMAT_SLOP 32

/* Decimal digits of 0 < f < 10^9: the bit length estimates it (1233 / 4096
 * is just above log10 2), one comparison corrects it. */
static unsigned digit_count(uint32_t f)
{
    static const uint32_t pow10[] = { 1,      10,      100,      1000,     10000,
                                      100000, 1000000, 10000000, 100000000, 1000000000 };
    unsigned t = ((32u - (unsigned)__builtin_clz(f)) * 1233u) >> 12;
    return t + (f >= pow10[t]);
}

/* Eight ASCII digits of x < 10^8, most significant in the lowest byte. x is
 * split into 4-digit halves in 32-bit lanes, those into 2-digit quarters in
 * 16-bit lanes, those into digits in bytes, every lane divided at once by a
 * fixed-point reciprocal (5243 / 2^19 is exact below 10^4 for /100, 103 /
 * 2^10 below 100 for /10), so no loop and no branch. */
static uint64_t ascii8(uint32_t x)
{
    uint64_t v = (uint64_t)(x / 10000) | (uint64_t)(x % 10000) << 32;
    uint64_t q = ((v * 5243) >> 19) & 0x0000007f0000007fu;
    v = q | (v - q * 100) << 16;
    q = ((v * 103) >> 10) & 0x000f000f000f000fu;
    v = q | (v - q * 10) << 8;
    return v | 0x30 * ONES;
}

/* The n digits of f (n = digit_count(f) <= 9) as text in the low bytes of a
 * 16-byte word, zero bytes after them. */
static u128 digit_string(uint32_t f, unsigned n)
{
    uint32_t lead = f / 100000000;
    u128 s = (u128)ascii8(f - lead * 100000000) << 8 | (uint64_t)('0' + lead);
    return s >> (8 * (9 - n));
}

/* s with a '.' inserted before byte k (1..8). */
static u128 with_point(u128 s, unsigned k)
{
    u128 head = ((u128)1 << (8 * k)) - 1;
    return (s & head) | (u128)'.' << (8 * k) | (s & ~head) << 8;
}

static void store16(char *p, u128 s)
{
    uint64_t lo = (uint64_t)s, hi = (uint64_t)(s >> 64);
    memcpy(p, &lo, sizeof lo);
    memcpy(p + 8, &hi, sizeof hi);
}

/* f (no trailing zeros) * 10^e as text at p; returns its length (15 at
 * most) and may write up to FORMAT_SLOP bytes. Plain notation stops below
 * 1e15 because "-1" followed by fifteen zeros would already exceed
 * DCV_FLOAT_MAXLEN. */
static size_t layout(char *p, uint32_t f, int e)
{
    unsigned n = digit_count(f);
    int x = e + (int)n - 1; /* exponent in scientific notation */
    u128 s = digit_string(f, n);
    if (x >= -5 && x < 15) {
        if (x < 0) {
            unsigned z = (unsigned)(-x - 1);
            memcpy(p, "0.000000", 8);
            store16(p + 2 + z, s);
            return 2 + z + n;
        }
        if (x >= (int)n - 1) { /* an integer: pad with zeros */
            u128 zeros = (u128)(0x30 * ONES) << 64 | 0x30 * ONES;
            store16(p, s | (zeros & ~(((u128)1 << (8 * n)) - 1)));
            return (size_t)x + 1;
        }
        store16(p, with_point(s, (unsigned)x + 1));
        return n + 1;
    }
    size_t len = n;
    if (n > 1) {
        s = with_point(s, 1);
        len++;
    }
    store16(p, s);
    unsigned ax = (unsigned)(x < 0 ? -x : x); /* 45 at most for binary32 */
    char tail[4] = { 'e', x < 0 ? '-' : '+', digit_pairs[2 * ax], digit_pairs[2 * ax + 1] };
    memcpy(p + len, tail, sizeof tail);
    return len + 4;
}

/* dcv_float_format without the NUL: the text is DCV_FLOAT_MAXLEN bytes at
 * most, but up to FORMAT_SLOP bytes at p may be written. */
static size_t format_raw(float v, char *p)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint32_t t = bits & 0x7fffffu, be = (bits >> 23) & 0xffu;
    size_t sign = bits >> 31;

    if (be == 0xff) {
        if (t) {
            memcpy(p, "NaN", 3);
            return 3;
        }
        p[0] = '-';
        memcpy(p + sign, "Infinity", 8);
        return sign + 8;
    }
    p[0] = '-';
    p += sign;
    if (be == 0 && t == 0) {
        p[0] = '0';
        return sign + 1;
    }
    uint32_t c = be ? t | 0x800000u : t;
    int q = be ? (int)be - 150 : -149;
    if (q < 0 && q > -24 && (c & ((1u << -q) - 1)) == 0) {
        uint32_t f = c >> -q; /* an integer below 2^24: its digits are the text */
        unsigned n = digit_count(f);
        store16(p, digit_string(f, n));
        return sign + n;
    }
    struct decimal d = schubfach(c, q, t == 0 && be > 1);
    while (d.f % 10 == 0) {
        d.f /= 10;
        d.e++;
    }
    return sign + layout(p, d.f, d.e);
}

size_t dcv_float_format(float v, char *buf)
{
    char tmp[FORMAT_SLOP];
    size_t n = format_raw(v, tmp);
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}

static size_t append(char *buf, size_t cap, size_t len, const char *s, size_t n)
{
    if (len < cap)
        memcpy(buf + len, s, n < cap - len ? n : cap - len);
    return len + n;
}

size_t dcv_float_array_format(const float *v, size_t n, char *buf, size_t cap)
{
    size_t len = append(buf, cap, 0, "[", 1);
    for (size_t i = 0; i < n; i++) {
        size_t sep = i > 0;
        if (len <= cap && cap - len > FORMAT_SLOP) { /* room for ',' and the slop */
            buf[len] = ',';
            len += sep + format_raw(v[i], buf + len + sep);
        } else {
            char tmp[1 + FORMAT_SLOP] = ",";
            len = append(buf, cap, len, tmp + 1 - sep, sep + format_raw(v[i], tmp + 1));
        }
    }
    return append(buf, cap, len, "]", 1);
}

/* Whole blocks are OR-reduced in vector registers (a loop that branches per
 * value ran at a third of memory speed on 0.5 MB), and only a block that has
 * one, or the tail, is searched value by value. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static size_t first_nonfinite(const float *v, size_t n)
{
    enum { BLOCK = 1024 };               /* a constant trip count -O2 vectorizes */
    size_t b = 0;
    for (; n - b >= BLOCK; b += BLOCK) {
        uint32_t hit = 0;
        for (size_t i = 0; i < BLOCK; i++) {
            uint32_t u;
            memcpy(&u, &v[b + i], sizeof u);
            hit |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (hit) break;
    }
    for (; b < n; b++)
        if (!isfinite(v[b])) return b;
    return n;
}

/* A plain function around the clones: clang 14 (the fuzz build) names an
 * exported target_clones function's dispatcher "<name>.ifunc", which other
 * files then cannot link to. */
size_t dcv_float_first_nonfinite(const float *v, size_t n) { return first_nonfinite(v, n); }
