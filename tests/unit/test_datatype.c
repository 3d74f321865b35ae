/* test_datatype.c — the KServe datatypes: names and sizes, the checks and
 * rounding of values given for each type (expected values as numpy's
 * astype gives them, worked by hand), and raw little-endian bytes read as
 * float32, borrowed in place only when aligned FP32. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "deconvd/datatype.h"
#include "deconvd/error.h"

#include "testutil.h"

Test(datatype, names_and_sizes)
{
    static const struct { const char *name; size_t size; } all[] = {
        { "FP32", 4 }, { "FP64", 8 }, { "FP16", 2 }, { "BF16", 2 }, { "INT8", 1 },
        { "INT16", 2 }, { "INT32", 4 }, { "INT64", 8 }, { "UINT8", 1 }, { "UINT16", 2 },
        { "UINT32", 4 }, { "UINT64", 8 }, { "BOOL", 1 },
    };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        enum dcv_datatype t;
        cr_assert_eq(dcv_datatype_parse(all[i].name, &t), 0, "%s", all[i].name);
        cr_assert_str_eq(dcv_datatype_name(t), all[i].name);
        cr_assert_eq(dcv_datatype_size(t), all[i].size, "%s", all[i].name);
    }
    enum dcv_datatype t;
    cr_assert_eq(dcv_datatype_parse("fp32", &t), DCV_EINVAL);
    cr_assert_eq(dcv_datatype_parse("BYTES", &t), DCV_EINVAL);
    cr_assert_eq(dcv_datatype_parse(NULL, &t), DCV_EINVAL);
}

Test(datatype, checks_round_and_refuse)
{
    static const struct {
        enum dcv_datatype t;
        float in, out;
        enum dcv_datatype_fault f;
    } cases[] = {
        { DCV_DATATYPE_FP16, 65519.0f, 65504.0f, DCV_DATATYPE_OK },   /* below the midpoint */
        { DCV_DATATYPE_FP16, 65520.0f, 0, DCV_DATATYPE_RANGE },        /* rounds to inf */
        { DCV_DATATYPE_FP16, 1.0009765625f, 1.0009765625f, DCV_DATATYPE_OK }, /* 1 + 2^-10 */
        { DCV_DATATYPE_FP16, 1.00048828125f, 1.0f, DCV_DATATYPE_OK },  /* tie to even */
        { DCV_DATATYPE_BF16, 1.00390625f, 1.0f, DCV_DATATYPE_OK },     /* 1 + 2^-8: tie to even */
        { DCV_DATATYPE_INT8, 127.0f, 127.0f, DCV_DATATYPE_OK },
        { DCV_DATATYPE_INT8, 128.0f, 0, DCV_DATATYPE_RANGE },
        { DCV_DATATYPE_INT8, -128.0f, -128.0f, DCV_DATATYPE_OK },
        { DCV_DATATYPE_UINT8, -1.0f, 0, DCV_DATATYPE_RANGE },
        { DCV_DATATYPE_INT16, 1.5f, 0, DCV_DATATYPE_FRACTION },
        { DCV_DATATYPE_BOOL, 1.0f, 0, DCV_DATATYPE_WRONG_KIND },
        { DCV_DATATYPE_FP32, NAN, 0, DCV_DATATYPE_NONFINITE },
        { DCV_DATATYPE_INT32, INFINITY, 0, DCV_DATATYPE_NONFINITE },
        { DCV_DATATYPE_FP64, FLT_MAX, FLT_MAX, DCV_DATATYPE_OK },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        float v = cases[i].in;
        enum dcv_datatype_fault f = dcv_datatype_check(&v, cases[i].t);
        cr_assert_eq(f, cases[i].f, "case %zu: fault %d, want %d", i, f, cases[i].f);
        if (f == DCV_DATATYPE_OK)
            cr_assert_eq(v, cases[i].out, "case %zu: %.9g, want %.9g", i, v, cases[i].out);
    }
    cr_assert(isinf(dcv_datatype_narrow(3.5e38)));
    cr_assert_eq(dcv_datatype_narrow(-3.4e38), -3.4e38f);
    char err[DCV_ERRLEN] = "";
    float v[3] = { 1, 2, 300 };
    assert_err(dcv_datatype_check_floats(v, 3, DCV_DATATYPE_UINT8, "input 'x'", err), DCV_EINVAL,
               err, "input 'x' value 2 (300) is outside the UINT8 range [0, 255]");
}

Test(datatype, bytes_to_float32)
{
    char err[DCV_ERRLEN] = "";
    float *out;
    bool borrowed;
    /* INT16 -2, 258 little-endian */
    const unsigned char i16[] = { 0xfe, 0xff, 0x02, 0x01 };
    cr_assert_eq(dcv_datatype_from_bytes(i16, 2, DCV_DATATYPE_INT16, true, "x", &out, &borrowed,
                                         err), 0, "%s", err);
    cr_assert(!borrowed);
    cr_assert_eq(out[0], -2.0f);
    cr_assert_eq(out[1], 258.0f);
    free(out);
    /* FP16 0x3c00 = 1, 0xc000 = -2 */
    const unsigned char f16[] = { 0x00, 0x3c, 0x00, 0xc0 };
    cr_assert_eq(dcv_datatype_from_bytes(f16, 2, DCV_DATATYPE_FP16, true, "x", &out, &borrowed,
                                         err), 0, "%s", err);
    cr_assert_eq(out[0], 1.0f);
    cr_assert_eq(out[1], -2.0f);
    free(out);
    /* aligned FP32 is read in place; the same bytes unaligned are copied */
    union { float f[3]; unsigned char b[16]; } u = { .f = { 1.5f, -2.5f, 0 } };
    cr_assert_eq(dcv_datatype_from_bytes(u.f, 2, DCV_DATATYPE_FP32, true, "x", &out, &borrowed,
                                         err), 0, "%s", err);
    cr_assert(borrowed);
    cr_assert_eq((void *)out, (void *)u.f);
    _Alignas(4) unsigned char un[12];
    memcpy(un + 1, u.f, 8);
    cr_assert_eq(dcv_datatype_from_bytes(un + 1, 2, DCV_DATATYPE_FP32, true, "x", &out,
                                         &borrowed, err), 0, "%s", err);
    cr_assert(!borrowed);
    cr_assert_eq(out[1], -2.5f);
    free(out);
    /* FP64 beyond float32 and an FP32 infinity are refused by position */
    const double big[2] = { 1.0, 1e300 };
    assert_err(dcv_datatype_from_bytes(big, 2, DCV_DATATYPE_FP64, true, "input 'x'", &out,
                                       &borrowed, err), DCV_EINVAL, err,
               "input 'x' value 1 (Infinity) is not a finite float32");
    cr_assert_null(out);
    u.f[1] = INFINITY;
    assert_err(dcv_datatype_from_bytes(u.f, 2, DCV_DATATYPE_FP32, true, "input 'x'", &out,
                                       &borrowed, err), DCV_EINVAL, err, "value 1 (Infinity)");
}
