/* floatfmt.c — float32 to JSON number text, for tensor `data` arrays (the
 * encoding half of floatcodec.h; floatparse.c is the decoding half).
 *
 * Schubfach (R. Giulietti) finds the shortest decimal that rounds back to
 * the same float32 from three round-to-odd 64x64-bit products; the digits
 * come out 8 at a time (SWAR) in JS/Python layout: plain notation for
 * 1e-5 <= |v| < 1e15, "d.ddde+XX" otherwise. Arrays take eight values at a
 * time through an AVX-512 version of the same arithmetic when the CPU has
 * it (chosen at run time). Also the non-finite scan that decides whether
 * floats may be written as JSON at all.
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
    /* a mask rather than ?: so the compiler cannot make it a branch */
    uint32_t use_coarse = 0u - (upin != wpin);
    return (struct decimal){ (coarse & use_coarse) | (fine & ~use_coarse), k };
}

/* Bytes format_raw may write at p, past its text too: it stores whole
 * 8-byte words rather than a byte at a time. */
#define FORMAT_SLOP 32

static const uint32_t pow10_u32[] = { 1,      10,      100,      1000,     10000,
                                      100000, 1000000, 10000000, 100000000, 1000000000 };

/* Decimal digits of 0 < f < 10^9: the bit length estimates it (1233 / 4096
 * is just above log10 2), one comparison corrects it. */
static unsigned digit_count(uint32_t f)
{
    unsigned t = ((32u - (unsigned)__builtin_clz(f)) * 1233u) >> 12;
    return t + (f >= pow10_u32[t]);
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

static void store8(char *p, uint64_t x) { memcpy(p, &x, sizeof x); }

/* The significant digits of a decimal, as text: f scaled to exactly nine
 * digits (so there are no leading zeros to shift away) is the lead digit
 * and eight more in a word; the digits past the last non-zero one are '0'
 * bytes, found with one clz rather than a division loop. */
struct digits {
    char lead;  /* first digit */
    uint64_t rest; /* digits 2..9, the second in the lowest byte */
    unsigned m; /* significant digits, 1..9 */
    int x;      /* decimal exponent in scientific notation */
};

static struct digits to_digits(uint32_t f, int e)
{
    unsigned n = digit_count(f);
    uint32_t f9 = f * pow10_u32[9 - n], lead = f9 / 100000000;
    uint64_t rest = ascii8(f9 - lead * 100000000), nonzero = rest ^ 0x30 * ONES;
    unsigned m = nonzero ? 9 - (unsigned)__builtin_clzll(nonzero) / 8 : 1;
    return (struct digits){ (char)('0' + lead), rest, m, e + (int)n - 1 };
}

/* The digits d as text at p; returns its length (15 at most) and may write
 * up to FORMAT_SLOP bytes. JS/Python layout: plain notation for
 * -5 <= x < 15, where "-1" and fifteen zeros would already exceed
 * DCV_FLOAT_MAXLEN; "d.ddde+XX" otherwise. */
static size_t layout(char *p, struct digits d)
{
    int x = d.x;
    unsigned m = d.m;
    if (x < 0 && x >= -5) { /* 0.000ddd: what activations mostly are */
        unsigned z = (unsigned)(-x - 1);
        store8(p, 0x3030303030302e30u); /* "0.000000" */
        p[2 + z] = d.lead;
        store8(p + 3 + z, d.rest);
        return 3 + z + m - 1;
    }
    if (x >= 0 && x < 15) {
        p[0] = d.lead;
        if ((unsigned)x + 1 >= m) { /* an integer: the padding '0's are there */
            store8(p + 1, d.rest);
            store8(p + 9, 0x30 * ONES);
            return (size_t)x + 1;
        }
        /* ddd.ddd: x < 8 here; the dot goes after byte x of rest's text */
        uint64_t head = (1ull << (8 * x)) - 1;
        store8(p + 1, (d.rest & head) | (uint64_t)'.' << (8 * x) | (d.rest & ~head) << 8);
        p[9] = (char)(d.rest >> 56);
        return m + 1;
    }
    p[0] = d.lead;
    size_t len = 1;
    if (m > 1) {
        p[1] = '.';
        store8(p + 2, d.rest);
        len = m + 1;
    }
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
        return sign + layout(p, to_digits(f, 0));
    }
    struct decimal d = schubfach(c, q, t == 0 && be > 1);
    return sign + layout(p, to_digits(d.f, d.e));
}

/* Eight at a time with AVX-512 (x86-64 CPUs that have it, chosen at run
 * time): Schubfach and to_digits on 64-bit lanes, the same integer
 * arithmetic as the scalar code (so the same digits, byte for byte; the
 * exhaustive check compares the two on every bit pattern). The 64x64-bit
 * products of round_to_odd are a 64x26-bit product shifted, which two
 * 32x32-bit products give exactly (round_to_odd8); divisions by
 * constants are reciprocal multiplies exact over the ranges here. Lanes the
 * scalar code treats apart (zero, subnormals, powers of two, small
 * integers, NaN and infinities) are marked and go through format_raw; the
 * layout, whose shape depends on each value, stays scalar. */
#if defined(__x86_64__) && defined(__GNUC__)
#define ENCODE8 1
#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx512dq,avx512cd,avx512bw,avx512vl")))

struct lanes {
    uint64_t rest[8];
    int64_t lead[8], m[8], x[8];
    unsigned apart; /* bit j: lane j goes through format_raw */
};

T512 static __m512i round_to_odd8(__m512i g, __m512i cb, __m512i h)
{
    /* g * (cb << h) >> 64 = (g * cb) >> (64 - h): with g = gh * 2^32 + gl,
     * g * cb = gh * cb * 2^32 + gl * cb, both products exact in 64 bits
     * (cb < 2^26, gh < 2^31), and 2^32 being a multiple of 2^(64 - h) (h
     * is 33..36 for binary32) the shift splits over the sum exactly */
    __m512i lo = _mm512_mul_epu32(g, cb), hi = _mm512_mul_epu32(_mm512_srli_epi64(g, 32), cb);
    __m512i top = _mm512_add_epi64(_mm512_sllv_epi64(hi, _mm512_sub_epi64(h, _mm512_set1_epi64(32))),
                                   _mm512_srlv_epi64(lo, _mm512_sub_epi64(_mm512_set1_epi64(64), h)));
    __mmask8 sticky = _mm512_test_epi64_mask(top, _mm512_set1_epi64(0x7fffffff));
    return _mm512_mask_or_epi64(_mm512_srli_epi64(top, 31), sticky, _mm512_srli_epi64(top, 31),
                                _mm512_set1_epi64(1));
}

/* Lanes of x (each below 2^32) times a constant below 2^32, shifted. */
T512 static __m512i mulshift(__m512i x, uint32_t mul, unsigned shift)
{
    return _mm512_srli_epi64(_mm512_mul_epu32(x, _mm512_set1_epi64(mul)), shift);
}

T512 static void decimals8(const float *v, struct lanes *out)
{
    const __m512i one = _mm512_set1_epi64(1);
    __m512i bits = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)v));
    __m512i t = _mm512_and_si512(bits, _mm512_set1_epi64(0x7fffff));
    __m512i be = _mm512_and_si512(_mm512_srli_epi64(bits, 23), _mm512_set1_epi64(0xff));
    __m512i c = _mm512_or_si512(t, _mm512_set1_epi64(0x800000));
    /* small integers: 127 <= be <= 149 and no bits below 2^0 */
    __m512i frac = _mm512_sub_epi64(
        _mm512_sllv_epi64(one, _mm512_sub_epi64(_mm512_set1_epi64(150), be)), one);
    __mmask8 apart = _mm512_cmpeq_epi64_mask(be, _mm512_setzero_si512()) |
                     _mm512_cmpeq_epi64_mask(be, _mm512_set1_epi64(0xff)) |
                     _mm512_cmpeq_epi64_mask(t, _mm512_setzero_si512()) |
                     (_mm512_cmpge_epi64_mask(be, _mm512_set1_epi64(127)) &
                      _mm512_cmple_epi64_mask(be, _mm512_set1_epi64(149)) &
                      _mm512_testn_epi64_mask(c, frac));
    __m512i q = _mm512_sub_epi64(be, _mm512_set1_epi64(150));
    /* floor_log10_pow2(q), floor_log2_pow10(-k): signed products of small lanes */
    __m512i k = _mm512_sub_epi64(
        _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(q, _mm512_set1_epi64(315653)),
                                           _mm512_set1_epi64(256 << 20)), 20),
        _mm512_set1_epi64(256));
    __m512i nk = _mm512_sub_epi64(_mm512_setzero_si512(), k);
    __m512i l2 = _mm512_sub_epi64(
        _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(nk, _mm512_set1_epi64(1741647)),
                                           _mm512_set1_epi64(256 << 19)), 19),
        _mm512_set1_epi64(256));
    __m512i h = _mm512_add_epi64(_mm512_add_epi64(q, l2), _mm512_set1_epi64(33));
    __m512i g = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), (__mmask8)~apart,
                                            _mm512_sub_epi64(k, _mm512_set1_epi64(G_KMIN)),
                                            g_table, 8);
    __m512i cb = _mm512_slli_epi64(c, 2), odd = _mm512_and_si512(c, one);
    __m512i vb = round_to_odd8(g, cb, h);
    __m512i vbl = round_to_odd8(g, _mm512_sub_epi64(cb, _mm512_set1_epi64(2)), h);
    __m512i vbr = round_to_odd8(g, _mm512_add_epi64(cb, _mm512_set1_epi64(2)), h);
    __m512i s = _mm512_srli_epi64(vb, 2);
    __m512i sp10 = _mm512_mullo_epi64(mulshift(s, 0xcccccccdu, 35), _mm512_set1_epi64(10));
    __m512i tp10 = _mm512_add_epi64(sp10, _mm512_set1_epi64(10)), s1 = _mm512_add_epi64(s, one);
    __m512i lbound = _mm512_add_epi64(vbl, odd); /* vbl + out <= candidate * 4 */
    __m512i rbound = _mm512_sub_epi64(vbr, odd); /* candidate * 4 + out <= vbr */
    __mmask8 upin = _mm512_cmple_epu64_mask(lbound, _mm512_slli_epi64(sp10, 2));
    __mmask8 wpin = _mm512_cmple_epi64_mask(_mm512_slli_epi64(tp10, 2), rbound);
    __mmask8 uin = _mm512_cmple_epu64_mask(lbound, _mm512_slli_epi64(s, 2));
    __mmask8 win = _mm512_cmple_epi64_mask(_mm512_slli_epi64(s1, 2), rbound);
    __m512i cmp = _mm512_sub_epi64(vb, _mm512_slli_epi64(_mm512_add_epi64(s, s1), 1));
    __mmask8 tie = _mm512_cmplt_epi64_mask(cmp, _mm512_setzero_si512()) |
                   (_mm512_cmpeq_epi64_mask(cmp, _mm512_setzero_si512()) &
                    _mm512_testn_epi64_mask(s, one));
    __mmask8 take_s = (__mmask8)(((uin ^ win) & uin) | (~(uin ^ win) & tie));
    __m512i fine = _mm512_mask_sub_epi64(s1, take_s, s1, one);
    __m512i coarse = _mm512_mask_sub_epi64(tp10, upin, tp10, _mm512_set1_epi64(10));
    __m512i f = _mm512_mask_blend_epi64((__mmask8)(upin ^ wpin), fine, coarse);
    f = _mm512_mask_blend_epi64(apart, f, one); /* keeps lzcnt and the tables in range */

    /* to_digits */
    const __m512i p10lo = _mm512_setr_epi64(1, 10, 100, 1000, 10000, 100000, 1000000, 10000000);
    const __m512i p10hi = _mm512_setr_epi64(100000000, 1000000000, 0, 0, 0, 0, 0, 0);
    __m512i bitlen = _mm512_sub_epi64(_mm512_set1_epi64(64), _mm512_lzcnt_epi64(f));
    __m512i tl = _mm512_srli_epi64(_mm512_mullo_epi64(bitlen, _mm512_set1_epi64(1233)), 12);
    __mmask8 ge = _mm512_cmpge_epu64_mask(f, _mm512_permutex2var_epi64(p10lo, tl, p10hi));
    __m512i n = _mm512_mask_add_epi64(tl, ge, tl, one);
    __m512i f9 = _mm512_mul_epu32(
        f, _mm512_permutex2var_epi64(p10lo, _mm512_sub_epi64(_mm512_set1_epi64(9), n), p10hi));
    __m512i lead = mulshift(f9, 720575941u, 56);
    __m512i x8 = _mm512_sub_epi64(f9, _mm512_mul_epu32(lead, _mm512_set1_epi64(100000000)));
    __m512i hi4 = mulshift(x8, 109951163u, 40);
    __m512i w = _mm512_or_si512(
        hi4, _mm512_slli_epi64(_mm512_sub_epi64(x8, _mm512_mul_epu32(hi4, _mm512_set1_epi64(10000))), 32));
    __m512i qq = _mm512_and_si512(_mm512_srli_epi64(_mm512_mullo_epi64(w, _mm512_set1_epi64(5243)), 19),
                                  _mm512_set1_epi64(0x0000007f0000007fll));
    w = _mm512_or_si512(qq, _mm512_slli_epi64(
                                _mm512_sub_epi64(w, _mm512_mullo_epi64(qq, _mm512_set1_epi64(100))), 16));
    qq = _mm512_and_si512(_mm512_srli_epi64(_mm512_mullo_epi64(w, _mm512_set1_epi64(103)), 10),
                          _mm512_set1_epi64(0x000f000f000f000fll));
    w = _mm512_or_si512(qq, _mm512_slli_epi64(
                                _mm512_sub_epi64(w, _mm512_mullo_epi64(qq, _mm512_set1_epi64(10))), 8));
    __m512i zeros = _mm512_set1_epi64((long long)(0x30 * ONES));
    __m512i rest = _mm512_or_si512(w, zeros);
    __m512i m = _mm512_sub_epi64(_mm512_set1_epi64(9),
                                 _mm512_srli_epi64(_mm512_lzcnt_epi64(_mm512_xor_si512(rest, zeros)), 3));
    _mm512_storeu_si512(out->rest, rest);
    _mm512_storeu_si512(out->lead, _mm512_add_epi64(lead, _mm512_set1_epi64('0')));
    _mm512_storeu_si512(out->m, m);
    _mm512_storeu_si512(out->x, _mm512_sub_epi64(_mm512_add_epi64(k, n), one));
    out->apart = apart;
    /* the library's other code is legacy SSE: left dirty, the upper halves
     * of the vector registers made the decoder run at half speed after an
     * encode, and GCC does not clear them for a target("avx512") function */
    _mm256_zeroupper();
}

/* Eight values as ",v" (no comma before the array's first) at buf + len;
 * returns the new length. The caller leaves 8 * (FORMAT_SLOP + 1) bytes. */
T512 static size_t format8(const float *v, char *buf, size_t len, int first)
{
    struct lanes d;
    decimals8(v, &d);
    for (int j = 0; j < 8; j++) {
        buf[len] = ',';
        len += !(first && j == 0);
        char *p = buf + len;
        if (d.apart >> j & 1) {
            len += format_raw(v[j], p);
            continue;
        }
        uint32_t bits;
        memcpy(&bits, &v[j], sizeof bits);
        size_t sign = bits >> 31;
        p[0] = '-';
        len += sign + layout(p + sign, (struct digits){ (char)d.lead[j], d.rest[j],
                                                        (unsigned)d.m[j], (int)d.x[j] });
    }
    return len;
}

static int has_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}
#else
#define ENCODE8 0
#endif

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
    size_t len = append(buf, cap, 0, "[", 1), i = 0;
#if ENCODE8
    if (n >= 8 && has_avx512())
        for (; n - i >= 8 && len <= cap && cap - len > 8 * (FORMAT_SLOP + 1); i += 8)
            len = format8(v + i, buf, len, i == 0);
#endif
    for (; i < n; i++) {
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
