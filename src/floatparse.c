/* floatparse.c — JSON number text to float32, for tensor `data` arrays (the
 * decoding half of floatcodec.h; floatfmt.c is the encoding half).
 *
 * SSE2 classifies a token 16 bytes at a time (one word for deconvd's own
 * shortest text, two for the 17-digit doubles Python clients send),
 * pmaddwd folds its digits, one double multiply scales them (Clinger-style)
 * and a guard refuses results near a float32 rounding midpoint; those,
 * tokens past 31 bytes and odd shapes take a scalar lexer backed by glibc's
 * correctly rounded strtof on a bounded copy. Arrays are walked iteratively
 * with O(1) state, so nesting depth costs no stack.
 *
 * Pure functions, any thread, no allocation; owns only static const tables.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/floatcodec.h"

/* The decoder's per-byte helpers are tiny and sit on the hottest path;
 * calls would spill the lexer state that otherwise stays in registers. */
#define HOT static inline __attribute__((always_inline))

/* ---------------------------------------------------------------------- */
/* Decoding                                                               */
/* ---------------------------------------------------------------------- */

#define P10_MIN (-128)
#define P10_MAX 127

/* Correctly rounded doubles 10^P10_MIN .. 10^P10_MAX (the compiler rounds
 * the literals). Wide enough that the quick path never range-checks; a
 * float32 result lies between 1e-46 and 3.5e38 anyway. */
static const double pow10_table[] = {
    1e-128, 1e-127, 1e-126, 1e-125, 1e-124, 1e-123, 1e-122, 1e-121,
    1e-120, 1e-119, 1e-118, 1e-117, 1e-116, 1e-115, 1e-114, 1e-113,
    1e-112, 1e-111, 1e-110, 1e-109, 1e-108, 1e-107, 1e-106, 1e-105,
    1e-104, 1e-103, 1e-102, 1e-101, 1e-100, 1e-99, 1e-98, 1e-97,
    1e-96, 1e-95, 1e-94, 1e-93, 1e-92, 1e-91, 1e-90, 1e-89,
    1e-88, 1e-87, 1e-86, 1e-85, 1e-84, 1e-83, 1e-82, 1e-81,
    1e-80, 1e-79, 1e-78, 1e-77, 1e-76, 1e-75, 1e-74, 1e-73,
    1e-72, 1e-71, 1e-70, 1e-69, 1e-68, 1e-67, 1e-66, 1e-65,
    1e-64, 1e-63, 1e-62, 1e-61, 1e-60, 1e-59, 1e-58, 1e-57,
    1e-56, 1e-55, 1e-54, 1e-53, 1e-52, 1e-51, 1e-50, 1e-49,
    1e-48, 1e-47, 1e-46, 1e-45, 1e-44, 1e-43, 1e-42, 1e-41,
    1e-40, 1e-39, 1e-38, 1e-37, 1e-36, 1e-35, 1e-34, 1e-33,
    1e-32, 1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25,
    1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17,
    1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9,
    1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1,
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23,
    1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
    1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
    1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47,
    1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55,
    1e56, 1e57, 1e58, 1e59, 1e60, 1e61, 1e62, 1e63,
    1e64, 1e65, 1e66, 1e67, 1e68, 1e69, 1e70, 1e71,
    1e72, 1e73, 1e74, 1e75, 1e76, 1e77, 1e78, 1e79,
    1e80, 1e81, 1e82, 1e83, 1e84, 1e85, 1e86, 1e87,
    1e88, 1e89, 1e90, 1e91, 1e92, 1e93, 1e94, 1e95,
    1e96, 1e97, 1e98, 1e99, 1e100, 1e101, 1e102, 1e103,
    1e104, 1e105, 1e106, 1e107, 1e108, 1e109, 1e110, 1e111,
    1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119,
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127,
};

/* The fast paths' results are within 6 double ulps of the exact value: the
 * general lexer's has three roundings plus digits truncated past the 19th
 * (3.1 ulps), the long quick path's five roundings (see quick_long). Either
 * rounds to float32 correctly unless a midpoint lies within this many ulps,
 * which a value does with odds of 2^-23. */
#define MIDPOINT_GUARD 16u

/* Significant digits the slow path keeps. A float32 rounding midpoint has at
 * most 113 significant digits, so the first 120 plus a sticky digit compare
 * against every midpoint exactly as the full string does. */
#define SLOW_DIGITS 120

HOT int is_digit(char c) { return (unsigned)(c - '0') < 10u; }

/* Characters that may not directly follow a number: they would make the
 * token something other than a JSON number ("01", "1.", "1e", "0x1", "1-"). */
HOT int glues_to_number(char c)
{
    return is_digit(c) || ((unsigned)((c | 0x20) - 'a') < 26u) || c == '.' || c == '+' ||
           c == '-' || c == '_';
}

struct lexeme {
    const char *digits; /* first digit of the integer part */
    const char *end;    /* one past the token */
    uint64_t w;         /* significant digits, exact when nsig <= 19 */
    size_t nsig;        /* significant digits (leading zeros excluded) */
    int64_t e10;        /* value = all significant digits * 10^e10 */
    int neg;
};

/* The quick decoding path needs x86-64, where SSE2 is baseline; elsewhere
 * every number takes the general lexer. */
#if defined(__SSE2__) && defined(__x86_64__)
#define QUICK_PATH 1
#include <emmintrin.h>
#else
#define QUICK_PATH 0
#endif

/* The value of 8 ASCII digits read as a little-endian word, or -1 when any
 * of the 8 bytes is not a digit. Pairs, then quads, then the two halves
 * are combined by multiplies on all lanes at once. */
static int64_t eight_digits(const char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    if ((x & 0xf0f0f0f0f0f0f0f0u) != 0x3030303030303030u ||
        ((x + 0x0606060606060606u) & 0xf0f0f0f0f0f0f0f0u) != 0x3030303030303030u)
        return -1;
    x -= 0x3030303030303030u;
    x = x * 10 + (x >> 8);                              /* 2-digit values in bytes 0,2,4,6 */
    x = ((x & 0x000000ff000000ffu) * (100 + (1000000ull << 32)) +
         ((x >> 16) & 0x000000ff000000ffu) * (1 + (10000ull << 32))) >> 32;
    return (int64_t)(x & 0xffffffffu);
}

/* Skips a run of digits, folding them into *w (wrapping past 19 digits,
 * identically in 8-digit steps: arithmetic mod 2^64 either way). The
 * 17-digit mantissas Python sends for float32 values take 2 steps and a
 * byte instead of 17 trips round a loop. */
static const char *eat_digits(const char *p, const char *end, uint64_t *w)
{
    uint64_t v = *w;
    int64_t e;
    while (end - p >= 8 && (e = eight_digits(p)) >= 0) {
        v = v * 100000000u + (uint64_t)e;
        p += 8;
    }
    while (p < end && is_digit(*p))
        v = v * 10 + (uint64_t)(*p++ - '0');
    *w = v;
    return p;
}

static const char *eat_exponent(const char *p, const char *end, int64_t *e10)
{
    int neg = 0;
    if (p < end && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    if (p == end || !is_digit(*p))
        return NULL;
    int64_t ev = 0;
    for (; p < end && is_digit(*p); p++)
        if (ev < 100000000) /* saturate: beyond this it is 0 or inf anyway */
            ev = ev * 10 + (*p - '0');
    *e10 += neg ? -ev : ev;
    return p;
}

/* Matches JSON's number grammar at p; fills lx and returns 0 on success. */
static int lex_number(const char *p, const char *end, struct lexeme *lx)
{
    lx->neg = p < end && *p == '-';
    p += lx->neg;
    lx->digits = p;
    lx->w = 0;
    p = eat_digits(p, end, &lx->w);
    size_t nint = (size_t)(p - lx->digits), nfrac = 0;
    if (nint == 0 || (nint > 1 && *lx->digits == '0')) /* "", "01" */
        return -1;
    const char *frac = p + 1;
    if (p < end && *p == '.') {
        p = eat_digits(frac, end, &lx->w);
        nfrac = (size_t)(p - frac);
        if (nfrac == 0)
            return -1;
    }
    lx->e10 = -(int64_t)nfrac;
    if (p < end && (*p | 0x20) == 'e' && !(p = eat_exponent(p + 1, end, &lx->e10)))
        return -1;
    if (p < end && glues_to_number(*p))
        return -1;
    lx->end = p;
    lx->nsig = nint + nfrac;
    if (lx->nsig > 19 && *lx->digits == '0') { /* "0.000…": leading zeros don't count */
        lx->nsig = nfrac;
        for (const char *z = frac; z < frac + nfrac && *z == '0'; z++)
            lx->nsig--;
    }
    return 0;
}

/* The first 19 significant digits of a longer mantissa. */
static uint64_t first19(const struct lexeme *lx)
{
    uint64_t w = 0;
    int n = 0;
    for (const char *p = lx->digits; n < 19; p++) {
        if (*p == '.' || (w == 0 && *p == '0'))
            continue;
        w = w * 10 + (uint64_t)(*p - '0');
        n++;
    }
    return w;
}

/* "e<int>" for |e| < 10^6; returns its length. */
static size_t put_exponent(char *p, int e)
{
    char tmp[8];
    size_t n = 0, len = 0;
    unsigned u = (unsigned)(e < 0 ? -e : e);
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    p[len++] = 'e';
    if (e < 0)
        p[len++] = '-';
    while (n)
        p[len++] = tmp[--n];
    return len;
}

/* Exact path: the token's digits, trimmed to SLOW_DIGITS plus a sticky
 * digit, with an integer exponent and no decimal point (so LC_NUMERIC is
 * irrelevant), handed to strtof. */
static float parse_slow(const struct lexeme *lx)
{
    char buf[SLOW_DIGITS + 32];
    size_t n = 0, kept = 0;
    int sticky = 0;
    int64_t e = lx->e10;
    if (lx->neg)
        buf[n++] = '-';
    for (const char *p = lx->digits; p < lx->end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.' || (kept == 0 && *p == '0'))
            continue;
        if (kept < SLOW_DIGITS) {
            buf[n++] = *p;
            kept++;
        } else {
            sticky |= *p != '0';
            e++;
        }
    }
    if (kept == 0)
        buf[n++] = '0';
    if (sticky) {
        buf[n++] = '1';
        e--;
    }
    if (e > 99999)
        e = 99999;
    if (e < -99999)
        e = -99999;
    n += put_exponent(buf + n, (int)e);
    buf[n] = '\0';
    int saved = errno;
    float f = strtof(buf, NULL);
    errno = saved;
    return f;
}

/* w * 10^e10 as float32 through one double multiply, for e10 within the
 * table and w (already a double) holding at most 19 significant digits,
 * possibly truncated. Returns 0 when a float32 rounding midpoint is too
 * close to call, or on overflow: the exact path settles those. Subnormal
 * results round at 2^-149 whatever their exponent, so there the guard
 * looks at the fraction of r / 2^-149 instead (r is within 2^-51 of the
 * exact value relatively, far below 2^-20 units of 2^-149). */
HOT int scale_fast(double w, int e10, float *out)
{
    double r = w * pow10_table[e10 - P10_MIN];
    uint64_t bits;
    memcpy(&bits, &r, sizeof bits);
    uint32_t below = (uint32_t)(bits & 0x1fffffffu); /* bits float32 drops */
    /* r > 0, so its bits order like it: one compare keeps r within
     * [2^-126, 0x1.ffffffp127), the float32 normal range short of overflow */
    const uint64_t lowest = 0x3810000000000000u, overflow = 0x47effffff0000000u;
    if (bits - lowest >= overflow - lowest ||
        below - (0x10000000u - MIDPOINT_GUARD) <= 2 * MIDPOINT_GUARD) {
        if (r >= 0x1p-126) /* overflow, or too close to a midpoint */
            return 0;
        double units = r * 0x1p149, frac = units - (double)(int64_t)units;
        if (fabs(frac - 0.5) < 0x1p-20) /* subnormal: rounds at 2^-149 */
            return 0;
    }
    *out = (float)r;
    return 1;
}

/* Correctly rounded float32 value of a lexed number (+-inf on overflow). */
static float to_float(const struct lexeme *lx)
{
    uint64_t w = lx->w;
    int64_t e = lx->e10;
    if (lx->nsig > 19) {
        w = first19(lx);
        e += (int64_t)lx->nsig - 19;
    }
    float f;
    if (w == 0 || e < P10_MIN)
        f = 0.0f; /* below 1e-109: far under half the smallest subnormal */
    else if (e > P10_MAX)
        f = HUGE_VALF;
    else if (!scale_fast((double)w, (int)e, &f))
        return parse_slow(lx);
    return lx->neg ? -f : f;
}

#if QUICK_PATH
/* Bytes the quick path reads at a token, whatever its length: the 16 it
 * classifies, and the exponent reads can look up to 3 past a 15-byte token's
 * mantissa. The long quick path classifies 32 and reads up to 3 past a
 * 31-byte token's mantissa. */
#define QUICK_READ 20
#define QUICK_READ_LONG 36

/* The 16 bytes at a token, classified at once with SSE2 compares. Bit i of
 * each mask describes byte i. */
struct token {
    __m128i digits_v;            /* digit values of the mantissa, 0 elsewhere */
    unsigned len;                /* bytes before a ',', ']' or byte <= ' ' */
    unsigned mant;               /* bytes before 'e'/'E' or the end */
    unsigned digits, dots, exps; /* '0'..'9', '.', 'e'/'E' */
};

/* One 16-byte block of a token, classified: its bytes' digit values (valid
 * where is_digit), and masks (bit i = byte i) of the bytes that end a token
 * (',', ']', <= ' '), of 'e'/'E', of digits and of dots. */
struct block16 {
    __m128i d, is_digit;
    unsigned end, exp, digits, dots;
};

HOT void scan16(const char *p, struct block16 *b)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    b->d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    b->is_digit = _mm_cmpeq_epi8(_mm_min_epu8(b->d, _mm_set1_epi8(9)), b->d);
    __m128i end = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(',')),
                               _mm_cmpeq_epi8(v, _mm_set1_epi8(']')));
    end = _mm_or_si128(end, _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(' ')), v));
    __m128i exp = _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8('e'));
    b->end = (unsigned)_mm_movemask_epi8(end);
    b->exp = (unsigned)_mm_movemask_epi8(exp);
    b->digits = (unsigned)_mm_movemask_epi8(b->is_digit);
    b->dots = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.')));
}

/* The digit values of the block's first n bytes, 0 elsewhere. */
HOT __m128i digits_before(const struct block16 *b, unsigned n)
{
    const __m128i index = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m128i in = _mm_cmplt_epi8(index, _mm_set1_epi8((char)n));
    return _mm_and_si128(b->d, _mm_and_si128(b->is_digit, in));
}

HOT void classify(const char *p, struct token *t)
{
    struct block16 b;
    scan16(p, &b);
    t->len = (unsigned)__builtin_ctz(b.end | 0x10000u);
    /* an 'e' past the end loses to the end bit anyway */
    t->mant = (unsigned)__builtin_ctz(b.exp | 1u << t->len);
    t->exps = b.exp;
    t->digits = b.digits;
    t->dots = b.dots;
    t->digits_v = digits_before(&b, t->mant);
}

/* upto[k]: bytes 0..k set. */
static const unsigned char upto[17][16] = {
#define U(k) { 0xff, (k) >= 1 ? 0xff : 0, (k) >= 2 ? 0xff : 0, (k) >= 3 ? 0xff : 0,           \
               (k) >= 4 ? 0xff : 0, (k) >= 5 ? 0xff : 0, (k) >= 6 ? 0xff : 0, (k) >= 7 ? 0xff : 0, \
               (k) >= 8 ? 0xff : 0, (k) >= 9 ? 0xff : 0, (k) >= 10 ? 0xff : 0,                  \
               (k) >= 11 ? 0xff : 0, (k) >= 12 ? 0xff : 0, (k) >= 13 ? 0xff : 0,                \
               (k) >= 14 ? 0xff : 0, (k) >= 15 ? 0xff : 0 }
    U(0), U(1), U(2), U(3), U(4), U(5), U(6), U(7), U(8),
    U(9), U(10), U(11), U(12), U(13), U(14), U(15), U(15),
#undef U
};

/* The 16-digit number whose digits (values 0..9, most significant first)
 * are the bytes of d: pmaddwd folds neighbours with weights 10, then 100,
 * then 10^4, leaving two 8-digit halves. */
HOT uint64_t digits16(__m128i d)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i a = _mm_madd_epi16(_mm_unpacklo_epi8(d, zero), _mm_set1_epi32(0x0001000a));
    __m128i b = _mm_madd_epi16(_mm_unpackhi_epi8(d, zero), _mm_set1_epi32(0x0001000a));
    __m128i v = _mm_madd_epi16(_mm_packs_epi32(a, b), _mm_set1_epi32(0x00010064));
    v = _mm_packs_epi32(v, v);
    v = _mm_madd_epi16(v, _mm_set1_epi32(0x00012710));
    uint64_t halves = (uint64_t)_mm_cvtsi128_si64(v);
    return (halves & 0xffffffffu) * 100000000 + (halves >> 32);
}

/* The exponent of a classified token, "[eE][+-]?D{1,2}" between its
 * mantissa and its end, read without branching on its shape (signs and
 * digit counts vary from one element to the next). 0 when it is not one. */
HOT int quick_exponent(uint64_t digits, unsigned ep, unsigned len, const char *p, int *e10)
{
    char c = p[ep + 1];
    unsigned neg = c == '-', sign = neg | (c == '+');
    unsigned first = ep + 1 + sign, n = first <= len ? len - first : 0; /* digits */
    unsigned want = (1u << (n & 3)) - 1;
    int two = n == 2, v = (p[first] - '0') * (two ? 10 : 1) + two * (p[first + 1] - '0');
    *e10 = (v ^ -(int)neg) + (int)neg;
    return (n - 1 < 2) & (((digits >> first) & want) == want);
}

/* The classified token at p as a float32, when it is an everyday number:
 * -?D+(.D+)?([eE][+-]?D{1,2})? in 15 bytes. The masks validate the grammar
 * (with & and | rather than && and ||: element shapes vary at random, and
 * every branch on them would be a misprediction). The digits sit in a
 * 16-digit field with zeros where the sign and dot were; moving the bytes up
 * to the dot one place closes the dot's gap, and the field converts to
 * W = mantissa * 10^(16 - mant) (dot or not). Returns 0 for anything else
 * (every error and every hard case), which the general lexer then decides. */
HOT int quick_token(const struct token *t, const char *p, float *out)
{
    unsigned len = t->len, ep = t->mant, neg = *p == '-';
    int e10 = 0;
    if (ep < len && !quick_exponent(t->digits, ep, len, p, &e10))
        return 0;
    unsigned mant = ((1u << ep) - 1) & ~neg, dots = t->dots & mant;
    unsigned first_dot = dots & (0 - dots), dot = (unsigned)__builtin_ctz(first_dot | 1u << ep);
    unsigned nint = dot - neg;
    unsigned bad = (((t->digits | first_dot) & mant) != mant) | (nint == 0) |
                   ((first_dot << 1) == (1u << ep)) | ((nint > 1) & (p[neg] == '0'));
    if (bad)
        return 0; /* stray bytes or a second dot, ".5", "1.", "01" */
    __m128i head = _mm_loadu_si128((const __m128i *)(const void *)upto[dot]);
    __m128i d = _mm_or_si128(_mm_and_si128(head, _mm_slli_si128(t->digits_v, 1)),
                             _mm_andnot_si128(head, t->digits_v));
    uint64_t w = digits16(d);
    e10 += (int)dot - 15;
    float f = 0.0f;
    if (w && !scale_fast((double)(int64_t)w, e10, &f)) /* e10 in -114..99 */
        return 0;
    uint32_t bits; /* f >= 0: the sign is one OR, not a branch */
    memcpy(&bits, &f, sizeof bits);
    bits |= (uint32_t)neg << 31;
    memcpy(out, &bits, sizeof bits);
    return 1;
}

/* quick_token for a token the first 16 bytes did not end: what a Python
 * client sends, a float32 widened to double and printed with its 17
 * significant digits ("-0.34851622581481934", "1.2345678901234567e-05").
 * The second 16 bytes are classified the same way and the masks widened;
 * the same grammar checks hold, and the dot must sit in the first 16 bytes
 * (so closing its gap moves bytes within one register) and the mantissa end
 * by byte 24. The field's 24 digits fold into octets O0..O2 (O3 is zero);
 * W = (O0 * 10^8 + O1) * 10^8 + O2 may pass 2^64, so it is formed in double:
 * O0 * 10^8 + O1 < 10^16 rounds at most once converted, then the multiply
 * and the add once each; with the power of ten and the final multiply that
 * is five roundings, 5 * 2^-53 relatively, under MIDPOINT_GUARD's 6 ulps.
 * Sets *len to the token's length; returns 0 when the general lexer must
 * decide. */
HOT int quick_long(const struct token *t, const char *p, float *out, unsigned *len_out)
{
    struct block16 tail;
    scan16(p + 16, &tail);
    unsigned len = (unsigned)__builtin_ctzll((uint64_t)tail.end << 16 | 1ull << 32);
    uint64_t exps = t->exps | (uint64_t)tail.exp << 16;
    unsigned ep = (unsigned)__builtin_ctzll(exps | 1ull << len);
    uint64_t digits = t->digits | (uint64_t)tail.digits << 16;
    uint64_t dots = t->dots | (uint64_t)tail.dots << 16;
    unsigned neg = *p == '-';
    int e10 = 0;
    *len_out = len;
    if (len == 32 || (ep < len && !quick_exponent(digits, ep, len, p, &e10)))
        return 0;
    uint64_t mant = ((1ull << ep) - 1) & ~(uint64_t)neg, first_dot = dots & mant;
    first_dot &= 0 - first_dot;
    unsigned dot = (unsigned)__builtin_ctzll(first_dot | 1ull << ep), nint = dot - neg;
    unsigned bad = (((digits | first_dot) & mant) != mant) | (nint == 0) |
                   ((first_dot << 1) == (1ull << ep)) | ((nint > 1) & (p[neg] == '0')) |
                   (dot > 15) | (ep > 24);
    if (bad)
        return 0;
    __m128i head = _mm_loadu_si128((const __m128i *)(const void *)upto[dot]);
    __m128i lo = _mm_or_si128(_mm_and_si128(head, _mm_slli_si128(t->digits_v, 1)),
                              _mm_andnot_si128(head, t->digits_v));
    __m128i hi = digits_before(&tail, ep - 16);
    const __m128i zero = _mm_setzero_si128(), w10 = _mm_set1_epi32(0x0001000a);
    __m128i a = _mm_madd_epi16(_mm_unpacklo_epi8(lo, zero), w10);
    __m128i b = _mm_madd_epi16(_mm_unpackhi_epi8(lo, zero), w10);
    __m128i c = _mm_madd_epi16(_mm_unpacklo_epi8(hi, zero), w10);
    __m128i quads = _mm_madd_epi16(_mm_packs_epi32(a, b), _mm_set1_epi32(0x00010064));
    __m128i quads2 = _mm_madd_epi16(_mm_packs_epi32(c, zero), _mm_set1_epi32(0x00010064));
    __m128i oct = _mm_madd_epi16(_mm_packs_epi32(quads, quads2), _mm_set1_epi32(0x00012710));
    uint64_t o01 = (uint64_t)_mm_cvtsi128_si64(oct);
    uint32_t o2 = (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(oct, 8));
    uint64_t top = (o01 & 0xffffffffu) * 100000000 + (o01 >> 32);
    float f = 0.0f;
    if ((top | o2) && !scale_fast((double)(int64_t)top * 1e8 + (double)o2, e10 + (int)dot - 23, &f))
        return 0; /* the exponent is in -122..91 */
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    bits |= (uint32_t)neg << 31;
    memcpy(out, &bits, sizeof bits);
    return 1;
}
#endif

static size_t parse_general(const char *p, const char *end, float *out, int allow_overflow)
{
    struct lexeme lx;
    if (lex_number(p, end, &lx))
        return 0;
    float f = to_float(&lx);
    if (isinf(f) && !allow_overflow)
        return 0;
    *out = f;
    return (size_t)(lx.end - p);
}

/* Quick path when QUICK_READ bytes are readable, else (or when it declines)
 * the general lexer. The token's length comes from the classification, not
 * from lexing, which keeps the lexer's arithmetic off the loop-carried path
 * of an array: the CPU overlaps consecutive numbers. */
HOT size_t parse_number(const char *p, const char *end, float *out, int allow_overflow)
{
#if QUICK_PATH
    if (end - p >= QUICK_READ) {
        struct token t;
        classify(p, &t);
        if (t.len < 16) {
            if (quick_token(&t, p, out))
                return t.len;
        } else if (end - p >= QUICK_READ_LONG) {
            unsigned len;
            if (quick_long(&t, p, out, &len))
                return len;
        }
    }
#endif
    return parse_general(p, end, out, allow_overflow);
}

size_t dcv_float_parse(const char *p, const char *end, float *out, int allow_overflow)
{
    return p < end ? parse_number(p, end, out, allow_overflow) : 0;
}

/* ---------------------------------------------------------------------- */
/* Arrays                                                                 */
/* ---------------------------------------------------------------------- */

#define DIMS_MAX 8

struct walker {
    float *out;
    size_t cap, n;
    int depth, max_depth;
    int shaped;                /* caller wants dims: enforce rectangularity */
    int leaf;                  /* depth at which numbers sit, 0 until known */
    long long len[DIMS_MAX];   /* elements so far in the open array per level */
    long long shape[DIMS_MAX]; /* agreed length per level, -1 until known */
};

/* Where each step of the array grammar stands. */
enum expect { VALUE_OR_CLOSE, VALUE, COMMA_OR_CLOSE };

HOT const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static int open_array(struct walker *w)
{
    int level = w->depth;
    if (level >= w->max_depth)
        return -1;
    if (w->shaped) {
        if (level >= DIMS_MAX || (w->leaf && level >= w->leaf))
            return -1;
        if (level > 0)
            w->len[level - 1]++;
        w->len[level] = 0;
    }
    w->depth++;
    return 0;
}

static int close_array(struct walker *w)
{
    int level = --w->depth;
    if (!w->shaped)
        return 0;
    long long n = w->len[level];
    if (n == 0) { /* an empty array is a leaf row: numbers would sit below it */
        if (w->leaf && w->leaf != level + 1)
            return -1;
        w->leaf = level + 1;
    }
    if (w->shape[level] < 0)
        w->shape[level] = n;
    return w->shape[level] == n ? 0 : -1;
}

/* After an element not followed by a compact ",<number>": whitespace, one
 * comma, whitespace. Returns the next element's first byte, or NULL with
 * the stopping point in *stop and what must come there in *next. */
static const char *spaced_separator(const char *p, const char *end, enum expect *next,
                                    const char **stop)
{
    p = skip_ws(p, end);
    *next = COMMA_OR_CLOSE;
    *stop = p;
    if (p == end || *p != ',')
        return NULL;
    p = skip_ws(p + 1, end);
    *next = VALUE;
    *stop = p;
    if (p == end || (*p != '-' && !is_digit(*p)))
        return NULL;
    return p;
}

/* The hot loop: "number (, number)*" within one array. Returns the first
 * byte it did not take (whitespace skipped) and what must come there, or
 * NULL with *bad at the element that failed. All numbers of a run share a
 * depth, so the shape bookkeeping happens once per run; kept out of line so
 * the loop gets the registers to itself. */
__attribute__((noinline)) static const char *number_run(struct walker *w, const char *p,
                                                         const char *end, enum expect *next,
                                                         const char **bad)
{
    if (w->shaped) {
        if (w->leaf && w->leaf != w->depth) {
            *bad = p;
            return NULL;
        }
        w->leaf = w->depth;
    }
    float *out = w->out;
    size_t cap = w->cap, n0 = w->n, n = n0;
    for (;;) {
        float f;
        size_t k = parse_number(p, end, &f, 0);
        if (!k) {
            *bad = p;
            p = NULL;
            break;
        }
        if (n < cap)
            out[n] = f;
        n++;
        p += k;
        if (end - p >= 2 && p[0] == ',' && (is_digit(p[1]) | (p[1] == '-'))) {
            p++; /* compact "a,b": the common case skips the general walk */
            continue;
        }
        const char *stop;
        if (!(p = spaced_separator(p, end, next, &stop))) {
            p = stop;
            break;
        }
    }
    w->n = n;
    if (w->shaped)
        w->len[w->depth - 1] += (long long)(n - n0);
    return p;
}

/* One token of the array grammar at p; returns the next position or NULL
 * with *bad at the offending byte (end for truncated input). */
static const char *array_step(struct walker *w, const char *p, const char *end,
                              enum expect *next, const char **bad)
{
    *bad = p;
    if (p == end)
        return NULL;
    char c = *p;
    if (c == '[' && *next != COMMA_OR_CLOSE) {
        if (open_array(w))
            return NULL;
        *next = VALUE_OR_CLOSE;
        return skip_ws(p + 1, end);
    }
    if (c == ']' && *next != VALUE) {
        if (close_array(w))
            return NULL;
        *next = COMMA_OR_CLOSE;
        return w->depth ? skip_ws(p + 1, end) : p + 1;
    }
    if (c == ',' && *next == COMMA_OR_CLOSE) {
        *next = VALUE;
        return skip_ws(p + 1, end);
    }
    if (*next == COMMA_OR_CLOSE)
        return NULL;
    return number_run(w, p, end, next, bad);
}

size_t dcv_float_array_parse(const char *p, const char *end, float *out, size_t cap,
                             size_t *count, int max_depth, long long *dims, int *ndim,
                             size_t *errpos)
{
    struct walker w = { .out = out, .cap = cap, .max_depth = max_depth, .shaped = dims != NULL };
    for (int i = 0; i < DIMS_MAX; i++)
        w.shape[i] = -1;
    enum expect next = VALUE;
    const char *q = skip_ws(p, end), *bad = q;
    if (q < end && *q == '[') {
        do
            q = array_step(&w, q, end, &next, &bad);
        while (q && w.depth > 0);
    } else {
        q = NULL;
    }
    if (count)
        *count = w.n;
    if (!q) {
        if (errpos)
            *errpos = (size_t)(bad - p);
        return 0;
    }
    if (dims) {
        for (int i = 0; i < w.leaf; i++)
            dims[i] = w.shape[i];
        if (ndim)
            *ndim = w.leaf;
    }
    return (size_t)(q - p);
}
