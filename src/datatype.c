/* datatype.c — the KServe v2 datatypes, checked and converted to float32.
 *
 * One table gives each datatype its name, element size and accepted range,
 * so messages and checks cannot drift apart. Half floats round to nearest
 * even as numpy's astype does; integer types refuse fractions and values out
 * of range rather than wrapping; floating types refuse NaN and infinities.
 * Raw FP32 input already aligned and little-endian is read in place (no copy
 * of the biggest buffer of a request). Pure functions, any thread; owns only
 * the static table.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/datatype.h"
#include "deconvd/error.h"
#include "deconvd/floatcodec.h"

_Static_assert(sizeof(float) == 4 && FLT_MANT_DIG == 24, "float must be binary32");
_Static_assert(sizeof(double) == 8 && DBL_MANT_DIG == 53, "double must be binary64");

#define FLOAT_ROUNDS_TO_INF 0x1.ffffffp127 /* FLT_MAX + half an ulp */
#define NUMTXT 32

struct dtype_info {
    const char *name;
    size_t size;
    double lo, hi;               /* integers: accepted range, hi exclusive */
    const char *range;           /* for messages */
};

static const struct dtype_info dtypes[DCV_DATATYPE_COUNT] = {
    [DCV_DATATYPE_FP32] = { "FP32", 4, 0, 0, "[-3.4028235e+38, 3.4028235e+38]" },
    [DCV_DATATYPE_FP64] = { "FP64", 8, 0, 0, "[-3.4028235e+38, 3.4028235e+38] (converted to FP32)" },
    [DCV_DATATYPE_FP16] = { "FP16", 2, 0, 0, "[-65504, 65504]" },
    [DCV_DATATYPE_BF16] = { "BF16", 2, 0, 0, "[-3.3895314e+38, 3.3895314e+38]" },
    [DCV_DATATYPE_INT8] = { "INT8", 1, -128.0, 128.0, "[-128, 127]" },
    [DCV_DATATYPE_INT16] = { "INT16", 2, -32768.0, 32768.0, "[-32768, 32767]" },
    [DCV_DATATYPE_INT32] = { "INT32", 4, -2147483648.0, 2147483648.0, "[-2147483648, 2147483647]" },
    [DCV_DATATYPE_INT64] = { "INT64", 8, -9223372036854775808.0, 9223372036854775808.0,
                          "[-9223372036854775808, 9223372036854775807]" },
    [DCV_DATATYPE_UINT8] = { "UINT8", 1, 0, 256.0, "[0, 255]" },
    [DCV_DATATYPE_UINT16] = { "UINT16", 2, 0, 65536.0, "[0, 65535]" },
    [DCV_DATATYPE_UINT32] = { "UINT32", 4, 0, 4294967296.0, "[0, 4294967295]" },
    [DCV_DATATYPE_UINT64] = { "UINT64", 8, 0, 18446744073709551616.0, "[0, 18446744073709551615]" },
    [DCV_DATATYPE_BOOL] = { "BOOL", 1, 0, 2.0, "{false, true}" },
};

int dcv_datatype_parse(const char *name, enum dcv_datatype *t)
{
    for (int i = 0; name && i < DCV_DATATYPE_COUNT; i++)
        if (!strcmp(name, dtypes[i].name)) {
            *t = (enum dcv_datatype)i;
            return 0;
        }
    return DCV_EINVAL;
}

const char *dcv_datatype_name(enum dcv_datatype t) { return dtypes[t].name; }
size_t dcv_datatype_size(enum dcv_datatype t) { return dtypes[t].size; }

static bool is_int_type(enum dcv_datatype t) { return t >= DCV_DATATYPE_INT8 && t <= DCV_DATATYPE_UINT64; }

static float bits_to_float(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

/* Round to nearest even, as numpy's astype(float16) does. */
static uint16_t f32_to_f16(float f)
{
    uint32_t x = float_to_bits(f), ax = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax > 0x7f800000u)
        return sign | 0x7e00u;
    if (ax >= 0x477ff000u) /* >= 65520: past the last midpoint */
        return sign | 0x7c00u;
    if (ax < 0x38800000u) /* below 2^-14: a multiple of 2^-24, scaled exactly */
        return sign | (uint16_t)lrintf(bits_to_float(ax) * 0x1p24f);
    uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    return sign | (uint16_t)h;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    if (e == 31)
        return bits_to_float(sign | 0x7f800000u | m << 13);
    return bits_to_float(sign | (e + 112) << 23 | m << 13);
}

static uint16_t f32_to_bf16(float f) /* finite f only */
{
    uint32_t x = float_to_bits(f);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

static float bf16_to_f32(uint16_t h) { return bits_to_float((uint32_t)h << 16); }

float dcv_datatype_narrow(double d)
{
    if (isfinite(d) && fabs(d) >= FLOAT_ROUNDS_TO_INF)
        return d < 0 ? -INFINITY : INFINITY;
    return (float)d;
}

static enum dcv_datatype_fault rounded(float *v, float w)
{
    if (isinf(w))
        return DCV_DATATYPE_RANGE;
    *v = w;
    return DCV_DATATYPE_OK;
}

enum dcv_datatype_fault dcv_datatype_check(float *v, enum dcv_datatype t)
{
    float f = *v;
    if (!isfinite(f))
        return DCV_DATATYPE_NONFINITE;
    if (t == DCV_DATATYPE_FP16)
        return rounded(v, f16_to_f32(f32_to_f16(f)));
    if (t == DCV_DATATYPE_BF16)
        return rounded(v, bf16_to_f32(f32_to_bf16(f)));
    if (t == DCV_DATATYPE_BOOL)
        return DCV_DATATYPE_WRONG_KIND;
    if (!is_int_type(t))
        return DCV_DATATYPE_OK;
    if (f != truncf(f))
        return DCV_DATATYPE_FRACTION;
    double d = f, hi = dtypes[t].hi;
    if (d < dtypes[t].lo || d > hi || (d == hi && dtypes[t].size < 4))
        return DCV_DATATYPE_RANGE;
    return DCV_DATATYPE_OK;
}

int dcv_datatype_error(char *err, const char *what, size_t i, enum dcv_datatype_fault f,
                    enum dcv_datatype t, const char *got)
{
    const struct dtype_info *ti = &dtypes[t];
    switch (f) {
    case DCV_DATATYPE_WRONG_KIND:
        return dcv_errf(err, DCV_EINVAL, "%s value %zu: expected %s for %s, got %s", what, i,
                        t == DCV_DATATYPE_BOOL ? "true or false" : "a number", ti->name, got);
    case DCV_DATATYPE_NONFINITE:
        return dcv_errf(err, DCV_EINVAL,
                        "%s value %zu (%s) is not a finite float32; NaN, Infinity and "
                        "out-of-range numbers are not accepted", what, i, got);
    case DCV_DATATYPE_FRACTION:
        return dcv_errf(err, DCV_EINVAL, "%s value %zu (%s) is not an integer, as %s requires",
                        what, i, got, ti->name);
    case DCV_DATATYPE_RANGE:
        return dcv_errf(err, DCV_EINVAL, "%s value %zu (%s) is outside the %s range %s", what, i,
                        got, ti->name, ti->range);
    case DCV_DATATYPE_OK:
        break;
    }
    return 0;
}

static int float_error(char *err, const char *what, size_t i, enum dcv_datatype_fault f,
                       enum dcv_datatype t, float v)
{
    char got[NUMTXT];
    if (f == DCV_DATATYPE_WRONG_KIND)
        snprintf(got, sizeof got, "a number");
    else
        dcv_float_format(v, got);
    return dcv_datatype_error(err, what, i, f, t, got);
}

int dcv_datatype_check_floats(float *v, size_t n, enum dcv_datatype t, const char *what, char *err)
{
    if (t == DCV_DATATYPE_FP32 || t == DCV_DATATYPE_FP64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        float before = v[i];
        enum dcv_datatype_fault f = dcv_datatype_check(&v[i], t);
        if (f)
            return float_error(err, what, i, f, t, before);
    }
    return 0;
}

static float binary_value(const unsigned char *p, enum dcv_datatype t)
{
    uint64_t u = 0;
    for (size_t i = dtypes[t].size; i-- > 0;)
        u = u << 8 | p[i];
    double d;
    switch (t) {
    case DCV_DATATYPE_FP32: return bits_to_float((uint32_t)u);
    case DCV_DATATYPE_FP64: memcpy(&d, &u, sizeof d); return dcv_datatype_narrow(d);
    case DCV_DATATYPE_FP16: return f16_to_f32((uint16_t)u);
    case DCV_DATATYPE_BF16: return bf16_to_f32((uint16_t)u);
    case DCV_DATATYPE_INT8: return (float)(int8_t)(uint8_t)u;
    case DCV_DATATYPE_INT16: return (float)(int16_t)(uint16_t)u;
    case DCV_DATATYPE_INT32: return (float)(int32_t)(uint32_t)u;
    case DCV_DATATYPE_INT64: return (float)(int64_t)u;
    case DCV_DATATYPE_BOOL: return u ? 1.0f : 0.0f;
    default: return (float)u; /* unsigned */
    }
}

/* Every binary input passes the vectorized scan: integers cannot be
 * non-finite, floating types can. */
static int finite_or_error(const float *v, size_t count, enum dcv_datatype t, const char *what,
                           char *err)
{
    if (is_int_type(t) || t == DCV_DATATYPE_BOOL)
        return 0;
    size_t i = dcv_float_first_nonfinite(v, count);
    return i < count ? float_error(err, what, i, DCV_DATATYPE_NONFINITE, t, v[i]) : 0;
}

int dcv_datatype_from_bytes(const void *src, size_t count, enum dcv_datatype t, bool may_borrow,
                         const char *what, float **out, bool *borrowed, char *err)
{
    const unsigned char *s = src;
    bool le = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
    int rc;
    *out = NULL;
    *borrowed = false;
    if (may_borrow && t == DCV_DATATYPE_FP32 && le && (uintptr_t)src % _Alignof(float) == 0) {
        const float *v = src;
        if ((rc = finite_or_error(v, count, t, what, err)))
            return rc;
        *out = (float *)(uintptr_t)v;
        *borrowed = true;
        return 0;
    }
    float *v = malloc((count ? count : 1) * sizeof *v);
    if (!v)
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", count);
    v[0] = 0; /* count may be 0 */
    if (t == DCV_DATATYPE_FP32 && le)
        memcpy(v, s, count * sizeof *v);
    else
        for (size_t i = 0; i < count; i++)
            v[i] = binary_value(s + i * dtypes[t].size, t);
    if ((rc = finite_or_error(v, count, t, what, err))) {
        free(v);
        return rc;
    }
    *out = v;
    return 0;
}
