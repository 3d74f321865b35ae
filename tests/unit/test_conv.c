/* test_conv.c — transposed-convolution geometry: Keras deconv_output_length,
 * TensorFlow's SAME/VALID consistency rule, oneDNN pads, checked products.
 *
 * Expected values are hand-computed from the formulas in Keras
 * (keras/src/utils/conv_utils.py `deconv_output_length`):
 *   ke = (k-1)*d + 1
 *   output_padding None: valid → n*s + max(ke-s, 0); same → n*s
 *   output_padding op:   (n-1)*s + ke - 2*pad + op, pad = ke//2 (same), 0 (valid)
 * and from TensorFlow's rule: SAME needs ceil(out/s) == n, VALID needs
 * ceil((out-ke+1)/s) == n with out >= 1. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "deconvd/conv.h"
#include "deconvd/error.h"

#define V DCV_PADDING_VALID
#define S DCV_PADDING_SAME
#define NONE (-1)

struct len_case {
    int64_t n, k, s, d;
    enum dcv_padding pad;
    int64_t op, want;
};

/* Every row worked out by hand from the formulas above. */
static const struct len_case len_table[] = {
    /* output_padding None */
    { 5, 3, 2, 1, V, NONE, 11 },  /* 10 + max(3-2,0) */
    { 5, 3, 2, 1, S, NONE, 10 },  /* 5*2 */
    { 5, 2, 2, 1, V, NONE, 10 },  /* k == s: 10 + 0 */
    { 5, 2, 2, 1, S, NONE, 10 },
    { 5, 1, 3, 1, V, NONE, 15 },  /* k < s: 15 + max(-2,0) */
    { 5, 1, 3, 1, S, NONE, 15 },
    { 6, 2, 3, 1, V, NONE, 18 },  /* k < s */
    { 4, 3, 1, 2, V, NONE, 8 },   /* dilation 2: ke 5, 4 + 4 */
    { 4, 3, 1, 2, S, NONE, 4 },
    { 3, 2, 1, 4, S, NONE, 3 },   /* ke 5 */
    { 1, 3, 1, 1, V, NONE, 3 },   /* n = 1 */
    { 1, 3, 2, 1, V, NONE, 3 },   /* 2 + 1 */
    { 1, 4, 2, 1, S, NONE, 2 },
    { 1, 1, 1, 1, V, NONE, 1 },
    { 10, 1, 1, 1, V, NONE, 10 },
    { 2, 5, 2, 1, V, NONE, 7 },   /* 4 + 3 */
    { 7, 5, 3, 1, V, NONE, 23 },  /* 21 + 2 */
    { 2, 7, 4, 1, V, NONE, 11 },  /* 8 + 3 */
    /* output_padding given */
    { 5, 3, 2, 1, V, 0, 11 },     /* 8 + 3 */
    { 5, 3, 2, 1, V, 1, 12 },     /* op = s-1 */
    { 5, 3, 2, 1, S, 0, 9 },      /* 8 + 3 - 2 */
    { 5, 3, 2, 1, S, 1, 10 },
    { 5, 4, 2, 1, S, 0, 8 },      /* 8 + 4 - 4 */
    { 5, 4, 2, 1, S, 1, 9 },
    { 5, 4, 1, 1, S, 0, 4 },      /* even kernel, s 1: n-1 (TF refuses it later) */
    { 8, 3, 1, 1, S, 0, 8 },
    { 8, 3, 1, 1, V, 0, 10 },
    { 7, 5, 3, 1, V, 2, 25 },     /* 18 + 5 + 2 */
    { 7, 5, 3, 1, S, 2, 21 },     /* 18 + 5 - 4 + 2 */
    { 3, 3, 1, 3, S, 0, 3 },      /* ke 7, pad 3: 2 + 7 - 6 */
    { 3, 3, 1, 3, V, 0, 9 },
    { 1, 2, 4, 1, S, 3, 3 },      /* n = 1, op = s-1: 0 + 2 - 2 + 3 */
    { 1, 2, 4, 1, V, 3, 5 },
    { 6, 2, 3, 1, V, 0, 17 },     /* differs from None (18) */
    { 6, 2, 3, 1, S, 2, 17 },     /* 15 + 2 - 2 + 2 */
    { 2, 7, 4, 1, S, 3, 8 },      /* 4 + 7 - 6 + 3 */
    /* unknown input length */
    { -1, 3, 2, 1, V, NONE, -1 },
    { -1, 3, 2, 1, S, NONE, -1 },
    { -1, 4, 2, 1, S, 1, -1 },
};

Test(conv, output_length_matches_keras_table)
{
    size_t n = sizeof len_table / sizeof len_table[0];
    cr_assert_geq(n, 25);
    for (size_t i = 0; i < n; i++) {
        const struct len_case *c = &len_table[i];
        int64_t got = dcv_conv_output_length(c->n, c->k, c->s, c->d, c->pad, c->op);
        cr_expect_eq(got, c->want,
                     "row %zu: n=%lld k=%lld s=%lld d=%lld %s op=%lld: got %lld, want %lld", i,
                     (long long)c->n, (long long)c->k, (long long)c->s, (long long)c->d,
                     c->pad == S ? "same" : "valid", (long long)c->op, (long long)got,
                     (long long)c->want);
    }
}

Test(conv, effective_kernel)
{
    cr_assert_eq(dcv_conv_effective_kernel(3, 1), 3);
    cr_assert_eq(dcv_conv_effective_kernel(3, 2), 5);
    cr_assert_eq(dcv_conv_effective_kernel(1, 7), 1);
    cr_assert_eq(dcv_conv_effective_kernel(4, 3), 10);
}

/* ---- TensorFlow consistency rule ----------------------------------------- */

static struct dcv_conv conv1(int64_t k, int64_t s, int64_t d, enum dcv_padding pad)
{
    struct dcv_conv c;
    memset(&c, 0, sizeof c);
    c.rank = 1;
    c.in_channels = 1;
    c.filters = 1;
    c.kernel[0] = k;
    c.strides[0] = s;
    c.dilation[0] = d;
    c.padding = pad;
    return c;
}

struct chk_case {
    int64_t k, s, d;
    enum dcv_padding pad;
    int64_t n, out;
    int ok;
};

static const struct chk_case chk_table[] = {
    /* SAME: ceil(out/s) == n */
    { 3, 2, 1, S, 5, 10, 1 },
    { 3, 2, 1, S, 5, 9, 1 },
    { 3, 2, 1, S, 5, 11, 0 },     /* ceil(11/2) = 6 */
    { 3, 2, 1, S, 5, 8, 0 },      /* 4 */
    { 4, 1, 1, S, 5, 4, 0 },      /* Keras k=4 s=1 same op=0 gives 4 for n 5 */
    { 4, 1, 1, S, 5, 5, 1 },
    { 1, 3, 1, S, 5, 13, 1 },     /* ceil(13/3) = 5 */
    { 1, 3, 1, S, 5, 12, 0 },
    /* VALID: ceil((out-ke+1)/s) == n */
    { 3, 2, 1, V, 5, 11, 1 },     /* ceil(9/2) = 5 */
    { 3, 2, 1, V, 5, 12, 1 },     /* ceil(10/2) = 5 */
    { 3, 2, 1, V, 5, 13, 0 },     /* 6 */
    { 3, 2, 1, V, 5, 10, 0 },     /* 4 */
    { 1, 3, 1, V, 5, 15, 1 },     /* k < s */
    { 1, 3, 1, V, 5, 13, 1 },
    { 1, 3, 1, V, 5, 12, 0 },
    { 1, 3, 1, V, 5, 16, 0 },
    { 3, 1, 2, V, 4, 8, 1 },      /* ke 5: 8-5+1 = 4 */
    { 3, 1, 2, V, 4, 7, 0 },
    { 5, 1, 1, V, 1, 5, 1 },
    { 5, 1, 1, V, 1, 3, 0 },      /* out < ke: forward conv would be empty */
    { 3, 2, 1, V, 1, 1, 0 },
    /* out must be >= 1 */
    { 1, 1, 1, S, 1, 0, 0 },
    { 1, 1, 1, V, 1, 0, 0 },
};

Test(conv, check_lengths_table)
{
    for (size_t i = 0; i < sizeof chk_table / sizeof chk_table[0]; i++) {
        const struct chk_case *t = &chk_table[i];
        struct dcv_conv c = conv1(t->k, t->s, t->d, t->pad);
        char err[DCV_ERRLEN] = "";
        int rc = dcv_conv_check_lengths(&c, 0, t->n, t->out, err);
        if (t->ok)
            cr_expect_eq(rc, 0, "row %zu: n=%lld out=%lld should pass: %s", i,
                         (long long)t->n, (long long)t->out, err);
        else {
            cr_expect_eq(rc, DCV_ESHAPE, "row %zu: n=%lld out=%lld should fail, rc=%d", i,
                         (long long)t->n, (long long)t->out, rc);
            cr_expect_neq(err[0], '\0', "row %zu: no message", i);
        }
    }
}

Test(conv, check_lengths_message_names_values)
{
    struct dcv_conv c = conv1(3, 2, 1, S);
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_conv_check_lengths(&c, 0, 5, 11, err), DCV_ESHAPE);
    cr_expect(strstr(err, "output width 11"), "%s", err);
    cr_expect(strstr(err, "input width 5"), "%s", err);
    cr_expect(strstr(err, "SAME"), "%s", err);
    cr_expect(strstr(err, "stride 2"), "%s", err);

    c = conv1(3, 2, 1, V);
    err[0] = '\0';
    cr_assert_eq(dcv_conv_check_lengths(&c, 0, 5, 13, err), DCV_ESHAPE);
    cr_expect(strstr(err, "VALID"), "%s", err);
    cr_expect(strstr(err, "13"), "%s", err);
    cr_expect(strstr(err, "kernel 3"), "%s", err);

    err[0] = '\0';
    cr_assert_eq(dcv_conv_check_lengths(&c, 0, 5, 0, err), DCV_ESHAPE);
    cr_expect(strstr(err, "at least 1"), "%s", err);

    /* rank 3: dims are named depth, height, width */
    struct dcv_conv c3 = conv1(3, 2, 1, S);
    c3.rank = 3;
    for (int i = 1; i < 3; i++) {
        c3.kernel[i] = 3;
        c3.strides[i] = 2;
        c3.dilation[i] = 1;
    }
    const char *names[] = { "depth", "height", "width" };
    for (int i = 0; i < 3; i++) {
        err[0] = '\0';
        cr_assert_eq(dcv_conv_check_lengths(&c3, i, 4, 3, err), DCV_ESHAPE);
        cr_expect(strstr(err, names[i]), "dim %d: %s", i, err);
    }
    cr_expect_eq(dcv_conv_check_lengths(&c3, 1, 4, 8, err), 0);
}

/* Whatever Keras computes without output_padding, TF accepts; with it, the
 * rule decides (and matches an independent evaluation of the ceil rule). */
Test(conv, keras_lengths_against_tf_rule_sweep)
{
    for (int pad = 0; pad < 2; pad++)
        for (int64_t k = 1; k <= 6; k++)
            for (int64_t s = 1; s <= 4; s++)
                for (int64_t d = 1; d <= 3; d++) {
                    if (s > 1 && d > 1) continue;
                    struct dcv_conv c = conv1(k, s, d, (enum dcv_padding)pad);
                    int64_t ke = (k - 1) * d + 1;
                    for (int64_t n = 1; n <= 7; n++)
                        for (int64_t op = -1; op < s; op++) {
                            int64_t out = dcv_conv_output_length(n, k, s, d, c.padding, op);
                            int rc = dcv_conv_check_lengths(&c, 0, n, out, NULL);
                            int64_t back;
                            if (pad == S)
                                back = (out + s - 1) / s;
                            else
                                back = out - ke + 1 <= 0 ? 0 : (out - ke + 1 + s - 1) / s;
                            int want_ok = out >= 1 && back == n;
                            if (op < 0)
                                cr_assert(want_ok, "Keras length rejected by own rule "
                                          "k=%lld s=%lld d=%lld n=%lld", (long long)k,
                                          (long long)s, (long long)d, (long long)n);
                            cr_assert_eq(rc == 0, want_ok,
                                         "k=%lld s=%lld d=%lld n=%lld op=%lld %s out=%lld",
                                         (long long)k, (long long)s, (long long)d,
                                         (long long)n, (long long)op, pad ? "same" : "valid",
                                         (long long)out);
                            if (!want_ok) continue;
                            /* pads: l >= 0, -(s-1) <= r, and they crop full to out */
                            int64_t pl, pr, full = (n - 1) * s + ke;
                            dcv_conv_pads(&c, &n, &out, &pl, &pr);
                            cr_assert_geq(pl, 0);
                            cr_assert_geq(pr, -(s - 1), "k=%lld s=%lld n=%lld out=%lld pr=%lld",
                                          (long long)k, (long long)s, (long long)n,
                                          (long long)out, (long long)pr);
                            cr_assert_eq(full - pl - pr, out);
                            if (pad == V) cr_assert_eq(pl, 0);
                        }
                }
}

/* ---- pads ---------------------------------------------------------------- */

struct pad_case {
    int64_t k, s, d;
    enum dcv_padding pad;
    int64_t n, out, pl, pr;
};

static const struct pad_case pad_table[] = {
    { 3, 2, 1, V, 5, 11, 0, 0 },   /* full = 8 + 3 = 11 */
    { 3, 2, 1, V, 5, 12, 0, -1 },  /* valid + output_padding 1 → pad_r = -op */
    { 4, 3, 1, V, 4, 15, 0, -2 },  /* valid + output_padding 2: full 13 */
    { 3, 2, 1, S, 5, 10, 0, 1 },   /* full 11: before (11-10)//2 = 0 */
    { 4, 2, 1, S, 5, 10, 1, 1 },   /* full 12 */
    { 5, 1, 1, S, 4, 4, 2, 2 },    /* full 8 */
    { 3, 1, 2, S, 4, 4, 2, 2 },    /* dilation: ke 5, full 8 */
    { 1, 3, 1, S, 5, 15, 0, -2 },  /* same, ke < s: pad_r = ke - s */
    { 2, 4, 1, S, 3, 12, 0, -2 },  /* full 10 */
    { 2, 3, 1, V, 6, 18, 0, -1 },  /* valid, ke < s, no op: full 17 */
    { 3, 2, 1, S, 5, 9, 1, 1 },    /* same + op 0: out 9, full 11 */
};

Test(conv, pads_table)
{
    for (size_t i = 0; i < sizeof pad_table / sizeof pad_table[0]; i++) {
        const struct pad_case *t = &pad_table[i];
        struct dcv_conv c = conv1(t->k, t->s, t->d, t->pad);
        int64_t pl = 99, pr = 99;
        cr_assert_eq(dcv_conv_check_lengths(&c, 0, t->n, t->out, NULL), 0, "row %zu", i);
        dcv_conv_pads(&c, &t->n, &t->out, &pl, &pr);
        cr_expect_eq(pl, t->pl, "row %zu: pad_l %lld want %lld", i, (long long)pl,
                     (long long)t->pl);
        cr_expect_eq(pr, t->pr, "row %zu: pad_r %lld want %lld", i, (long long)pr,
                     (long long)t->pr);
    }
}

Test(conv, pads_per_dim_rank3)
{
    struct dcv_conv c;
    memset(&c, 0, sizeof c);
    c.rank = 3;
    c.padding = S;
    int64_t k[3] = { 1, 4, 3 }, s[3] = { 3, 2, 1 };
    for (int i = 0; i < 3; i++) {
        c.kernel[i] = k[i];
        c.strides[i] = s[i];
        c.dilation[i] = 1;
    }
    int64_t in[3] = { 5, 5, 6 }, out[3] = { 15, 10, 6 }, pl[3], pr[3];
    dcv_conv_pads(&c, in, out, pl, pr);
    /* full = 13, 12, 8 */
    cr_expect_eq(pl[0], 0);
    cr_expect_eq(pr[0], -2);
    cr_expect_eq(pl[1], 1);
    cr_expect_eq(pr[1], 1);
    cr_expect_eq(pl[2], 1);
    cr_expect_eq(pr[2], 1);
}

/* ---- validate and shape product ----------------------------------------- */

Test(conv, validate)
{
    struct dcv_conv c = conv1(3, 2, 1, S);
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_conv_validate(&c, err), 0, "%s", err);
    c.strides[0] = 2;
    c.dilation[0] = 2;      /* allowed at the op level */
    cr_assert_eq(dcv_conv_validate(&c, err), 0, "%s", err);

    c = conv1(0, 1, 1, V);
    cr_assert_eq(dcv_conv_validate(&c, err), DCV_EINVAL);
    cr_expect(strstr(err, "kernel_size[0]") && strstr(err, "got 0"), "%s", err);

    c = conv1(3, 0, 1, V);
    cr_assert_eq(dcv_conv_validate(&c, err), DCV_EINVAL);
    cr_expect(strstr(err, "strides"), "%s", err);

    c = conv1(3, 1, DCV_MAX_DILATION + 1, V);
    cr_assert_eq(dcv_conv_validate(&c, err), DCV_EINVAL);
    cr_expect(strstr(err, "dilation_rate"), "%s", err);

    c = conv1(3, 1, 1, V);
    c.filters = 0;
    cr_assert_eq(dcv_conv_validate(&c, err), DCV_EINVAL);
    cr_expect(strstr(err, "filters"), "%s", err);

    c = conv1(3, 1, 1, V);
    c.in_channels = DCV_MAX_CHANNELS + 1;
    cr_assert_eq(dcv_conv_validate(&c, err), DCV_EINVAL);
    cr_expect(strstr(err, "channels"), "%s", err);

    c = conv1(3, 1, 1, V);
    c.rank = 4;
    cr_assert_eq(dcv_conv_validate(&c, err), DCV_EINVAL);
    cr_expect(strstr(err, "rank"), "%s", err);
}

Test(conv, shape_product)
{
    int64_t a[] = { 2, 3, 4 };
    cr_assert_eq(dcv_shape_product(a, 3), 24);
    cr_assert_eq(dcv_shape_product(a, 0), 1);
    int64_t neg[] = { 2, -1, 4 };
    cr_assert_eq(dcv_shape_product(neg, 3), -1);
    int64_t zero[] = { 7, 0, 9 };
    cr_assert_eq(dcv_shape_product(zero, 3), 0);

    int64_t big[] = { INT64_MAX, 1 };
    cr_assert_eq(dcv_shape_product(big, 2), INT64_MAX);
    int64_t ovf[] = { INT64_MAX, 2 };
    cr_assert_eq(dcv_shape_product(ovf, 2), -1);
    int64_t p62[] = { INT64_C(1) << 31, INT64_C(1) << 31 };
    cr_assert_eq(dcv_shape_product(p62, 2), INT64_C(1) << 62);
    int64_t p63[] = { INT64_C(1) << 31, INT64_C(1) << 31, 2 };
    cr_assert_eq(dcv_shape_product(p63, 3), -1);
    int64_t p63b[] = { 2, INT64_C(1) << 31, INT64_C(1) << 31 };
    cr_assert_eq(dcv_shape_product(p63b, 3), -1);
    /* (2^32)^2 overflows on the way, but a later 0 makes the product 0 */
    int64_t late0[] = { INT64_C(1) << 32, INT64_C(1) << 32, 0 };
    cr_assert_eq(dcv_shape_product(late0, 3), 0);
    int64_t negafter0[] = { 0, -3 };
    cr_assert_eq(dcv_shape_product(negafter0, 2), -1);
    int64_t near[] = { 3037000499, 3037000499 };  /* floor(sqrt(2^63-1)) squared fits */
    cr_assert_eq(dcv_shape_product(near, 2), INT64_C(3037000499) * INT64_C(3037000499));
    int64_t over[] = { 3037000500, 3037000500 };
    cr_assert_eq(dcv_shape_product(over, 2), -1);
}

/* Hand-worked multiply-add counts: batch * cin * cout * prod(in_sp * k). */
Test(conv, work_counts_the_useful_products)
{
    struct dcv_conv c = conv1(16, 8, 1, S);       /* audio_up: 256 -> 128, k16 s8, 128 long */
    c.in_channels = 256, c.filters = 128;
    int64_t len = 128;
    cr_assert_eq(dcv_conv_work(&c, 1, &len), UINT64_C(67108864));    /* 2^8*2^7*2^7*2^4 */
    cr_assert_eq(dcv_conv_work(&c, 3, &len), UINT64_C(201326592));
    c.dilation[0] = 4;                            /* dilation and stride change nothing */
    c.strides[0] = 1;
    cr_assert_eq(dcv_conv_work(&c, 1, &len), UINT64_C(67108864));

    struct dcv_conv d = { .rank = 2, .in_channels = 128, .filters = 64, .kernel = { 4, 4 },
                          .strides = { 2, 2 }, .dilation = { 1, 1 } };  /* dcgan_up */
    int64_t hw[] = { 32, 32 };
    cr_assert_eq(dcv_conv_work(&d, 1, hw), UINT64_C(134217728));    /* 0.134 G */
    struct dcv_conv v = { .rank = 3, .in_channels = 32, .filters = 16, .kernel = { 3, 2, 1 },
                          .strides = { 2, 2, 2 }, .dilation = { 1, 1, 1 } };
    int64_t dhw[] = { 5, 6, 7 };
    /* 2 * 32 * 16 * (5*3) * (6*2) * (7*1) = 1024 * 15 * 12 * 7 */
    cr_assert_eq(dcv_conv_work(&v, 2, dhw), UINT64_C(1290240));
}

Test(conv, work_saturates_and_reads_unknown_as_unbounded)
{
    struct dcv_conv c = { .rank = 3, .in_channels = DCV_MAX_CHANNELS,
                          .filters = DCV_MAX_CHANNELS, .kernel = { 4096, 4096, 4096 },
                          .strides = { 1, 1, 1 }, .dilation = { 1, 1, 1 } };
    int64_t sp[] = { DCV_MAX_EXTENT, DCV_MAX_EXTENT, DCV_MAX_EXTENT };
    cr_assert_eq(dcv_conv_work(&c, INT64_MAX, sp), UINT64_MAX);
    /* 2^20 * 2^20 * 2^12 * 2^12 = 2^64: one past the largest count */
    int64_t one[] = { 1, 1, 1 };
    c.kernel[2] = 1;
    cr_assert_eq(dcv_conv_work(&c, 1, one), UINT64_MAX);
    c.kernel[1] = 2048;                           /* 2^63 fits */
    cr_assert_eq(dcv_conv_work(&c, 1, one), UINT64_C(1) << 63);
    cr_assert_eq(dcv_conv_work(&c, 2, one), UINT64_MAX);
    cr_assert_eq(dcv_conv_work(&c, 0, one), 0);   /* empty, even past a saturation */
    int64_t zero[] = { INT64_C(1) << 40, 0, 1 };
    cr_assert_eq(dcv_conv_work(&c, 1 << 30, zero), 0);
    int64_t unknown[] = { 8, -1, 8 };
    cr_assert_eq(dcv_conv_work(&c, 1, unknown), UINT64_MAX);
    cr_assert_eq(dcv_conv_work(&c, -1, one), UINT64_MAX);
    int64_t unknown0[] = { 0, -1, 8 };            /* unknown wins, as in dcv_shape_product */
    cr_assert_eq(dcv_conv_work(&c, 1, unknown0), UINT64_MAX);
}

/* Keras conv_output_length by hand: VALID floor((n - ke) / s) + 1, SAME and
 * causal ceil(n / s). */
Test(conv, forward_length_table)
{
    cr_assert_eq(dcv_conv_forward_length(10, 3, 1, 1, DCV_PADDING_VALID), 8);
    cr_assert_eq(dcv_conv_forward_length(10, 3, 2, 1, DCV_PADDING_VALID), 4);
    cr_assert_eq(dcv_conv_forward_length(10, 3, 1, 3, DCV_PADDING_VALID), 4);   /* ke 7 */
    cr_assert_eq(dcv_conv_forward_length(6, 7, 1, 1, DCV_PADDING_VALID), 0);
    cr_assert_eq(dcv_conv_forward_length(10, 3, 3, 1, DCV_PADDING_SAME), 4);
    cr_assert_eq(dcv_conv_forward_length(10, 4, 1, 2, DCV_PADDING_CAUSAL), 10);
    cr_assert_eq(dcv_conv_forward_length(-1, 3, 1, 1, DCV_PADDING_SAME), -1);
}

/* TensorFlow SAME: total = max((out-1)*s + ke - n, 0), before = total // 2
 * (the odd one after); causal: ke - 1 before; VALID: none before. */
Test(conv, forward_pads_table)
{
    struct dcv_conv c = { .rank = 2, .kernel = { 4, 3 }, .strides = { 2, 1 },
                          .dilation = { 1, 2 }, .padding = DCV_PADDING_SAME, .forward = true };
    int64_t in[2] = { 9, 6 }, out[2] = { 5, 6 }, l[2], r[2];
    dcv_conv_pads(&c, in, out, l, r);
    cr_assert(l[0] == 1 && r[0] == 2, "dim 0: %lld %lld", (long long)l[0], (long long)r[0]);
    cr_assert(l[1] == 2 && r[1] == 2, "dim 1: %lld %lld", (long long)l[1], (long long)r[1]);
    c.rank = 1, c.padding = DCV_PADDING_CAUSAL, c.kernel[0] = 3, c.strides[0] = 1;
    c.dilation[0] = 2, in[0] = 7, out[0] = 7;
    dcv_conv_pads(&c, in, out, l, r);
    cr_assert(l[0] == 4 && r[0] == 0);
    c.padding = DCV_PADDING_VALID, c.strides[0] = 2, c.dilation[0] = 1, in[0] = 8, out[0] = 3;
    dcv_conv_pads(&c, in, out, l, r);
    cr_assert(l[0] == 0 && r[0] == 0);
}

Test(conv, forward_validate_groups_and_direction)
{
    char err[DCV_ERRLEN];
    struct dcv_conv c = { .rank = 1, .in_channels = 6, .filters = 4, .kernel = { 3 },
                          .strides = { 1 }, .dilation = { 1 }, .forward = true, .groups = 2 };
    cr_assert_eq(dcv_conv_validate(&c, err), 0, "%s", err);
    c.groups = 4;
    cr_assert_eq(dcv_conv_validate(&c, err), DCV_EINVAL);
    cr_assert_not_null(strstr(err, "groups=4"), "%s", err);
    c.groups = 2, c.forward = false;
    cr_assert_eq(dcv_conv_validate(&c, err), DCV_EINVAL);
    cr_assert_not_null(strstr(err, "transposed"), "%s", err);
    c.groups = 1, c.padding = DCV_PADDING_CAUSAL;
    cr_assert_eq(dcv_conv_validate(&c, err), DCV_EINVAL);
    cr_assert_not_null(strstr(err, "causal"), "%s", err);
    /* forward work: batch 2 * out 8 (VALID, n 10) * k 3 * in/groups 3 * filters 4 */
    c.forward = true, c.padding = DCV_PADDING_VALID, c.groups = 2;
    int64_t n = 10;
    cr_assert_eq(dcv_conv_work(&c, 2, &n), (uint64_t)2 * 8 * 3 * 3 * 4);
}
