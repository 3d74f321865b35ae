/* test_op.c — tf.nn.conv{1,2,3}d_transpose's op-level contract: output_shape,
 * depths, padding, data_format, strides/dilations forms and TensorFlow's
 * input/output consistency rule; plus a numeric check of dcv_op_run in both
 * layouts against an independent reference. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/op.h"

/* ---- builders ---------------------------------------------------------------- */

static void set(int64_t *dst, int *n, int count, ...)
{
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++) dst[i] = va_arg(ap, int64_t);
    va_end(ap);
    if (n) *n = count;
}

#define I64(x) ((int64_t)(x))

/* conv2d_transpose: input (1, 5, 5, 3), filters (3, 3, 4, 3), output (1, 10, 10, 4),
 * strides 2, SAME, NHWC. */
static struct dcv_op op2(void)
{
    struct dcv_op op;
    memset(&op, 0, sizeof op);
    op.rank = 2;
    set(op.input_shape, &op.input_ndim, 4, I64(1), I64(5), I64(5), I64(3));
    set(op.filter_shape, &op.filter_ndim, 4, I64(3), I64(3), I64(4), I64(3));
    set(op.output_shape, &op.output_ndim, 4, I64(1), I64(10), I64(10), I64(4));
    set(op.strides, &op.nstrides, 1, I64(2));
    op.padding = "SAME";
    return op;
}

static void expect_ok(const struct dcv_op *op, struct dcv_conv *c)
{
    char err[DCV_ERRLEN] = "";
    int rc = dcv_op_prepare(op, c, err);
    cr_assert_eq(rc, 0, "prepare: %s (%s)", err, dcv_error_name(rc));
}

static void expect_fail(const struct dcv_op *op, int code, ...)
{
    struct dcv_conv c;
    char err[DCV_ERRLEN] = "";
    int rc = dcv_op_prepare(op, &c, err);
    cr_assert_eq(rc, code, "want %s, got %s (%s)", dcv_error_name(code), dcv_error_name(rc),
                 err);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        cr_expect(strstr(err, s), "message lacks \"%s\": %s", s, err);
    va_end(ap);
}

/* ---- valid forms ------------------------------------------------------------------ */

Test(op, nhwc_default_format)
{
    struct dcv_op op = op2();
    struct dcv_conv c;
    expect_ok(&op, &c);
    cr_expect_eq(c.rank, 2);
    cr_expect(!c.channels_first);
    cr_expect_eq(c.padding, DCV_PADDING_SAME);
    cr_expect_eq(c.filters, 4);
    cr_expect_eq(c.in_channels, 3);
    cr_expect_eq(c.kernel[0], 3);
    cr_expect_eq(c.strides[0], 2);
    cr_expect_eq(c.strides[1], 2);
    cr_expect_eq(c.dilation[0], 1);
    cr_expect_eq(c.dilation[1], 1);
    op.data_format = "NHWC";
    expect_ok(&op, &c);
    cr_expect(!c.channels_first);
    op.padding = "same";    /* any case */
    expect_ok(&op, &c);
}

Test(op, nchw)
{
    struct dcv_op op = op2();
    op.data_format = "NCHW";
    set(op.input_shape, NULL, 4, I64(1), I64(3), I64(5), I64(5));
    set(op.output_shape, NULL, 4, I64(1), I64(4), I64(10), I64(10));
    struct dcv_conv c;
    expect_ok(&op, &c);
    cr_expect(c.channels_first);
    cr_expect_eq(c.filters, 4);
    /* strides of length N+2 in NCHW: [1, 1, sh, sw] */
    set(op.strides, &op.nstrides, 4, I64(1), I64(1), I64(2), I64(2));
    expect_ok(&op, &c);
    cr_expect_eq(c.strides[0], 2);
    cr_expect_eq(c.strides[1], 2);
}

Test(op, nwc_and_ncw)
{
    struct dcv_op op;
    memset(&op, 0, sizeof op);
    op.rank = 1;
    set(op.input_shape, &op.input_ndim, 3, I64(2), I64(7), I64(3));
    set(op.filter_shape, &op.filter_ndim, 3, I64(5), I64(6), I64(3));
    /* VALID, stride 3: (7-1)*3 + 5 = 23, and up to +2 */
    set(op.output_shape, &op.output_ndim, 3, I64(2), I64(23), I64(6));
    op.padding = "VALID";
    set(op.strides, &op.nstrides, 1, I64(3));
    struct dcv_conv c;
    expect_ok(&op, &c);
    cr_expect_eq(c.kernel[0], 5);
    cr_expect_eq(c.filters, 6);
    cr_expect_eq(c.padding, DCV_PADDING_VALID);
    op.output_shape[1] = 25;
    expect_ok(&op, &c);
    op.data_format = "NWC";
    set(op.strides, &op.nstrides, 3, I64(1), I64(3), I64(1));
    expect_ok(&op, &c);
    cr_expect_eq(c.strides[0], 3);

    op.data_format = "NCW";
    set(op.input_shape, NULL, 3, I64(2), I64(3), I64(7));
    set(op.output_shape, NULL, 3, I64(2), I64(6), I64(24));
    set(op.strides, &op.nstrides, 3, I64(1), I64(1), I64(3));
    expect_ok(&op, &c);
    cr_expect(c.channels_first);
    cr_expect_eq(c.strides[0], 3);
    set(op.strides, &op.nstrides, 1, I64(3));
    expect_ok(&op, &c);
}

Test(op, ndhwc_and_ncdhw)
{
    struct dcv_op op;
    memset(&op, 0, sizeof op);
    op.rank = 3;
    set(op.input_shape, &op.input_ndim, 5, I64(1), I64(2), I64(3), I64(4), I64(2));
    set(op.filter_shape, &op.filter_ndim, 5, I64(1), I64(2), I64(3), I64(5), I64(2));
    set(op.output_shape, &op.output_ndim, 5, I64(1), I64(2), I64(6), I64(12), I64(5));
    op.padding = "SAME";
    set(op.strides, &op.nstrides, 3, I64(1), I64(2), I64(3));
    struct dcv_conv c;
    expect_ok(&op, &c);
    cr_expect_eq(c.strides[0], 1);
    cr_expect_eq(c.strides[1], 2);
    cr_expect_eq(c.strides[2], 3);
    cr_expect_eq(c.kernel[2], 3);
    op.data_format = "NDHWC";
    set(op.strides, &op.nstrides, 5, I64(1), I64(1), I64(2), I64(3), I64(1));
    expect_ok(&op, &c);
    cr_expect_eq(c.strides[2], 3);

    op.data_format = "NCDHW";
    set(op.input_shape, NULL, 5, I64(1), I64(2), I64(2), I64(3), I64(4));
    set(op.output_shape, NULL, 5, I64(1), I64(5), I64(2), I64(6), I64(12));
    set(op.strides, &op.nstrides, 5, I64(1), I64(1), I64(1), I64(2), I64(3));
    expect_ok(&op, &c);
    cr_expect(c.channels_first);
    cr_expect_eq(c.strides[1], 2);
    cr_expect_eq(c.strides[2], 3);
}

Test(op, strides_forms_and_dilations)
{
    struct dcv_op op = op2();
    struct dcv_conv c;
    set(op.strides, &op.nstrides, 2, I64(2), I64(2));
    expect_ok(&op, &c);
    set(op.strides, &op.nstrides, 4, I64(1), I64(2), I64(2), I64(1));
    expect_ok(&op, &c);
    cr_expect_eq(c.strides[1], 2);
    /* omitted strides mean 1 */
    struct dcv_op one = op2();
    one.nstrides = 0;
    set(one.output_shape, NULL, 4, I64(1), I64(5), I64(5), I64(4));
    expect_ok(&one, &c);
    cr_expect_eq(c.strides[0], 1);
    /* dilations, incl. together with strides > 1 (the op allows it) */
    set(op.dilations, &op.ndilations, 1, I64(2));
    expect_ok(&op, &c);
    cr_expect_eq(c.dilation[0], 2);
    cr_expect_eq(c.dilation[1], 2);
    set(op.dilations, &op.ndilations, 4, I64(1), I64(3), I64(2), I64(1));
    expect_ok(&op, &c);
    cr_expect_eq(c.dilation[0], 3);
    cr_expect_eq(c.dilation[1], 2);
}

/* ---- errors ------------------------------------------------------------------------ */

Test(op, output_shape_wrong_length)
{
    struct dcv_op op = op2();
    op.output_ndim = 3;
    expect_fail(&op, DCV_ESHAPE, "output_shape", "4", "3", NULL);
    op.output_ndim = 5;
    op.output_shape[4] = 1;
    expect_fail(&op, DCV_ESHAPE, "output_shape", "5", NULL);
}

Test(op, rank_errors)
{
    struct dcv_op op = op2();
    op.input_ndim = 3;
    expect_fail(&op, DCV_ESHAPE, "input", "rank 4", "rank 3", NULL);
    op = op2();
    op.filter_ndim = 3;
    expect_fail(&op, DCV_ESHAPE, "filters", "out_channels", "in_channels", NULL);
    op = op2();
    op.rank = 4;
    expect_fail(&op, DCV_EINVAL, "rank", NULL);
    op = op2();
    op.input_shape[1] = 0;
    expect_fail(&op, DCV_ESHAPE, "positive", NULL);
    op = op2();
    op.filter_shape[0] = -1;
    expect_fail(&op, DCV_ESHAPE, "positive", NULL);
}

Test(op, input_depth_must_match_filter_in_channels)
{
    struct dcv_op op = op2();
    op.input_shape[3] = 5;
    expect_fail(&op, DCV_ESHAPE, "in_channels", "5", "3", NULL);
    op = op2();
    op.data_format = "NCHW";
    set(op.input_shape, NULL, 4, I64(1), I64(5), I64(5), I64(5));   /* C = 5 at axis 1 */
    set(op.output_shape, NULL, 4, I64(1), I64(4), I64(10), I64(10));
    expect_fail(&op, DCV_ESHAPE, "in_channels", NULL);
}

Test(op, output_depth_must_match_filter_out_channels)
{
    struct dcv_op op = op2();
    op.output_shape[3] = 7;
    expect_fail(&op, DCV_ESHAPE, "out_channels", "7", "4", NULL);
}

Test(op, batch_must_match)
{
    struct dcv_op op = op2();
    op.output_shape[0] = 2;
    expect_fail(&op, DCV_ESHAPE, "batch", "2", "1", NULL);
}

Test(op, padding_errors)
{
    struct dcv_op op = op2();
    op.padding = "FULL";
    expect_fail(&op, DCV_EINVAL, "padding", "FULL", "VALID", "SAME", NULL);
    op.padding = "EXPLICIT";
    expect_fail(&op, DCV_EINVAL, "EXPLICIT", NULL);
    op.padding = NULL;
    expect_fail(&op, DCV_EINVAL, "padding", NULL);
}

Test(op, data_format_errors)
{
    struct dcv_op op;
    memset(&op, 0, sizeof op);
    op.rank = 1;
    set(op.input_shape, &op.input_ndim, 3, I64(1), I64(4), I64(2));
    set(op.filter_shape, &op.filter_ndim, 3, I64(3), I64(2), I64(2));
    set(op.output_shape, &op.output_ndim, 3, I64(1), I64(6), I64(2));
    op.padding = "VALID";
    struct dcv_conv c;
    expect_ok(&op, &c);
    op.data_format = "NHWC";
    expect_fail(&op, DCV_EINVAL, "data_format", "NWC", "NCW", "NHWC", NULL);
    op.data_format = "channels_last";
    expect_fail(&op, DCV_EINVAL, "channels_last", NULL);
    op.data_format = "nwc";   /* TensorFlow spells them in capitals */
    expect_fail(&op, DCV_EINVAL, "nwc", NULL);
    struct dcv_op o2 = op2();
    o2.data_format = "NCDHW";
    expect_fail(&o2, DCV_EINVAL, "NHWC", "NCHW", NULL);
}

Test(op, strides_errors)
{
    struct dcv_op op = op2();
    set(op.strides, &op.nstrides, 4, I64(2), I64(2), I64(2), I64(1));
    expect_fail(&op, DCV_EINVAL, "strides", "batch", NULL);
    set(op.strides, &op.nstrides, 4, I64(1), I64(2), I64(2), I64(2));   /* NHWC depth */
    expect_fail(&op, DCV_EINVAL, "strides", "depth", NULL);
    set(op.strides, &op.nstrides, 3, I64(1), I64(2), I64(2));
    expect_fail(&op, DCV_EINVAL, "strides", "1, 2 or 4", "3", NULL);
    set(op.strides, &op.nstrides, 1, I64(0));
    expect_fail(&op, DCV_EINVAL, "strides", "0", NULL);
    set(op.strides, &op.nstrides, 2, I64(2), I64(-2));
    expect_fail(&op, DCV_EINVAL, "strides", "-2", NULL);

    /* rank 1: length 4 is neither 1, N (1) nor N+2 (3) */
    struct dcv_op o1;
    memset(&o1, 0, sizeof o1);
    o1.rank = 1;
    set(o1.input_shape, &o1.input_ndim, 3, I64(1), I64(4), I64(2));
    set(o1.filter_shape, &o1.filter_ndim, 3, I64(3), I64(2), I64(2));
    set(o1.output_shape, &o1.output_ndim, 3, I64(1), I64(6), I64(2));
    o1.padding = "VALID";
    set(o1.strides, &o1.nstrides, 4, I64(1), I64(1), I64(1), I64(1));
    expect_fail(&o1, DCV_EINVAL, "strides", "length 4", NULL);
    /* NCW: the channel entry is axis 1 */
    o1.data_format = "NCW";
    set(o1.input_shape, NULL, 3, I64(1), I64(2), I64(4));
    set(o1.output_shape, NULL, 3, I64(1), I64(2), I64(6));
    set(o1.strides, &o1.nstrides, 3, I64(1), I64(2), I64(1));
    expect_fail(&o1, DCV_EINVAL, "strides", NULL);

    /* dilations follow the same rules */
    op = op2();
    set(op.dilations, &op.ndilations, 3, I64(1), I64(1), I64(1));
    expect_fail(&op, DCV_EINVAL, "dilations", NULL);
    set(op.dilations, &op.ndilations, 4, I64(2), I64(1), I64(1), I64(1));
    expect_fail(&op, DCV_EINVAL, "dilations", "batch", NULL);
}

/* TensorFlow: the forward convolution of output_shape must give the input. */
Test(op, output_shape_inconsistent_with_input)
{
    struct dcv_op op = op2();
    struct dcv_conv c;
    /* SAME, stride 2, input 5: out 9 and 10 are consistent, 8 and 11 are not */
    op.output_shape[1] = 9;
    expect_ok(&op, &c);
    op.output_shape[1] = 11;
    expect_fail(&op, DCV_ESHAPE, "SAME", "height", "11", "5", NULL);
    op.output_shape[1] = 10;
    op.output_shape[2] = 8;
    expect_fail(&op, DCV_ESHAPE, "width", "8", NULL);

    /* VALID, k 3, stride 2, input 5: 11 and 12 fine, 10 and 13 not */
    op = op2();
    op.padding = "VALID";
    op.output_shape[1] = 11;
    op.output_shape[2] = 12;
    expect_ok(&op, &c);
    op.output_shape[2] = 13;
    expect_fail(&op, DCV_ESHAPE, "VALID", "13", NULL);
    op.output_shape[2] = 10;
    expect_fail(&op, DCV_ESHAPE, "VALID", "10", NULL);
}

/* ---- numerics ---------------------------------------------------------------------- */

static void fillv(float *v, size_t n, float seed)
{
    for (size_t i = 0; i < n; i++) v[i] = cosf(seed + 0.577f * (float)i);
}

/* 2-D NHWC reference, TF semantics. */
static void ref2d(const float *in, int64_t N, int64_t IH, int64_t IW, int64_t C, const float *k,
                  int64_t KH, int64_t KW, int64_t F, int64_t SH, int64_t SW, int64_t DH,
                  int64_t DW, int same, int64_t OH, int64_t OW, double *out)
{
    int64_t fh = (IH - 1) * SH + (KH - 1) * DH + 1, fw = (IW - 1) * SW + (KW - 1) * DW + 1;
    int64_t ph = same && fh > OH ? (fh - OH) / 2 : 0, pw = same && fw > OW ? (fw - OW) / 2 : 0;
    memset(out, 0, sizeof(double) * (size_t)(N * OH * OW * F));
    for (int64_t b = 0; b < N; b++)
        for (int64_t y = 0; y < IH; y++)
            for (int64_t x = 0; x < IW; x++)
                for (int64_t ky = 0; ky < KH; ky++)
                    for (int64_t kx = 0; kx < KW; kx++) {
                        int64_t oy = y * SH + ky * DH - ph, ox = x * SW + kx * DW - pw;
                        if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                        for (int64_t f = 0; f < F; f++)
                            for (int64_t c = 0; c < C; c++)
                                out[((b * OH + oy) * OW + ox) * F + f] +=
                                    (double)in[((b * IH + y) * IW + x) * C + c] *
                                    (double)k[((ky * KW + kx) * F + f) * C + c];
                    }
}

static void run_case(int nchw, int same, int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                     int64_t OH, int64_t OW)
{
    enum { N = 2, IH = 4, IW = 5, C = 3, KH = 3, KW = 2, F = 2 };
    float in[N * IH * IW * C], k[KH * KW * F * C], tin[N * IH * IW * C];
    fillv(in, sizeof in / sizeof *in, 0.3f);
    fillv(k, sizeof k / sizeof *k, 1.7f);
    struct dcv_op op;
    memset(&op, 0, sizeof op);
    op.rank = 2;
    op.filters = k;
    set(op.filter_shape, &op.filter_ndim, 4, I64(KH), I64(KW), I64(F), I64(C));
    set(op.strides, &op.nstrides, 2, sh, sw);
    set(op.dilations, &op.ndilations, 2, dh, dw);
    op.padding = same ? "SAME" : "VALID";
    if (nchw) {
        for (int b = 0; b < N; b++)
            for (int y = 0; y < IH; y++)
                for (int x = 0; x < IW; x++)
                    for (int c = 0; c < C; c++)
                        tin[((b * C + c) * IH + y) * IW + x] = in[((b * IH + y) * IW + x) * C + c];
        op.input = tin;
        op.data_format = "NCHW";
        set(op.input_shape, &op.input_ndim, 4, I64(N), I64(C), I64(IH), I64(IW));
        set(op.output_shape, &op.output_ndim, 4, I64(N), I64(F), OH, OW);
    } else {
        op.input = in;
        set(op.input_shape, &op.input_ndim, 4, I64(N), I64(IH), I64(IW), I64(C));
        set(op.output_shape, &op.output_ndim, 4, I64(N), OH, OW, I64(F));
    }
    size_t count = (size_t)(N * OH * OW * F);
    float *out = malloc(count * sizeof *out);
    double *want = malloc(count * sizeof *want);
    char err[DCV_ERRLEN] = "";
    int rc = dcv_op_run(&op, out, count, NULL, err);
    cr_assert_eq(rc, 0, "run: %s (%s)", err, dcv_error_name(rc));
    ref2d(in, N, IH, IW, C, k, KH, KW, F, sh, sw, dh, dw, same, OH, OW, want);
    for (int b = 0; b < N; b++)
        for (int64_t y = 0; y < OH; y++)
            for (int64_t x = 0; x < OW; x++)
                for (int f = 0; f < F; f++) {
                    double w = want[((b * OH + y) * OW + x) * F + f];
                    float g = nchw ? out[((b * F + f) * OH + y) * OW + x]
                                   : out[((b * OH + y) * OW + x) * F + f];
                    cr_assert(fabs(g - w) <= 1e-5 * fmax(1.0, fabs(w)),
                              "%s %s s=%lldx%lld d=%lldx%lld out %lldx%lld at b%d y%lld x%lld "
                              "f%d: got %.7g want %.7g", nchw ? "NCHW" : "NHWC",
                              same ? "SAME" : "VALID", (long long)sh, (long long)sw,
                              (long long)dh, (long long)dw, (long long)OH, (long long)OW, b,
                              (long long)y, (long long)x, f, (double)g, w);
                }
    /* too small a buffer is refused */
    cr_expect_eq(dcv_op_run(&op, out, count - 1, NULL, err), DCV_EINVAL);
    free(out);
    free(want);
}

Test(op, run_matches_reference)
{
    for (int nchw = 0; nchw < 2; nchw++) {
        run_case(nchw, 1, 2, 2, 1, 1, 8, 10);    /* SAME, out = n*s */
        run_case(nchw, 1, 2, 2, 1, 1, 7, 9);     /* SAME, smaller consistent out */
        run_case(nchw, 0, 2, 3, 1, 1, 9, 14);    /* VALID: (n-1)*s + k */
        run_case(nchw, 0, 2, 3, 1, 1, 10, 16);   /* VALID + extra (negative pad_r) */
        run_case(nchw, 0, 1, 1, 2, 3, 8, 8);     /* dilated VALID */
        run_case(nchw, 1, 2, 2, 2, 2, 8, 10);    /* strides and dilations together */
    }
}

/* The op's stop flag is seen before its one-off kernel is built; a clear
 * flag and a run cut into chunks (two items, two, then one: the op's
 * one-plan cache holds both plans while they run) give the plain run's
 * bits, in both layouts; the plain NHWC run matches the reference. */
Test(op, run_honours_the_stop_flag_and_chunks_change_no_bit)
{
    enum { N = 5, IH = 4, IW = 5, C = 3, KH = 3, KW = 2, F = 2, OH = 8, OW = 10 };
    enum { NOUT = N * OH * OW * F };
    float in[N * IH * IW * C], k[KH * KW * F * C], out[NOUT], plain[NOUT];
    double want[NOUT];
    fillv(in, sizeof in / sizeof *in, 0.9f);
    fillv(k, sizeof k / sizeof *k, 2.1f);
    ref2d(in, N, IH, IW, C, k, KH, KW, F, 2, 2, 1, 1, 1, OH, OW, want);
    for (int nchw = 0; nchw < 2; nchw++) {
        struct dcv_op op = op2();
        op.input = in;                /* NCHW reads the same floats as another tensor */
        op.filters = k;
        op.data_format = nchw ? "NCHW" : "NHWC";
        set(op.filter_shape, &op.filter_ndim, 4, I64(KH), I64(KW), I64(F), I64(C));
        if (nchw) {
            set(op.input_shape, &op.input_ndim, 4, I64(N), I64(C), I64(IH), I64(IW));
            set(op.output_shape, &op.output_ndim, 4, I64(N), I64(F), I64(OH), I64(OW));
        } else {
            set(op.input_shape, &op.input_ndim, 4, I64(N), I64(IH), I64(IW), I64(C));
            set(op.output_shape, &op.output_ndim, 4, I64(N), I64(OH), I64(OW), I64(F));
        }
        char err[DCV_ERRLEN] = "";
        atomic_bool stop = true;
        int rc = dcv_op_run(&op, out, NOUT, &stop, err);
        cr_assert_eq(rc, DCV_ECANCELED, "%s", err);
        cr_assert_str_eq(err, "stopped after 0 of 5 batch items");
        cr_assert_eq(dcv_op_run(&op, plain, NOUT, NULL, err), 0, "%s", err);
        for (int i = 0; !nchw && i < NOUT; i++)
            cr_assert(fabs(plain[i] - want[i]) <= 1e-5 * fmax(1.0, fabs(want[i])),
                      "element %d: got %.7g, want %.7g", i, (double)plain[i], want[i]);
        atomic_store(&stop, false);
        for (int64_t items = 0; items <= 2; items += 2) {
            dcv_engine_set_chunk_items(items);
            memset(out, 0, sizeof out);
            cr_assert_eq(dcv_op_run(&op, out, NOUT, &stop, err), 0, "%s", err);
            cr_assert(memcmp(out, plain, sizeof out) == 0, "%s, chunks of %lld",
                      op.data_format, (long long)items);
        }
        dcv_engine_set_chunk_items(0);
    }
}
