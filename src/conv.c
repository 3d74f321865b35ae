/* conv.c — convolution geometry (Keras and TensorFlow rules).
 *
 * Forward convolutions follow Keras `conv_output_length` and TensorFlow's
 * SAME padding (pad_before = total // 2, the odd one after); causal pads
 * (k-1)*d before. Transposed ones: output length follows Keras
 * `deconv_output_length`; values follow
 * TensorFlow's conv_transpose: scatter into a 'full' signal of length
 * (n-1)*s + ke, then crop `out` positions starting at pad_before (SAME:
 * max(full-out, 0)//2, VALID: 0), zero-filling past 'full'. The crop maps
 * onto oneDNN's padding_l/padding_r, the latter possibly negative.
 * Pure arithmetic, any thread, owns nothing.
 */
#include <stdio.h>

#include "deconvd/conv.h"
#include "deconvd/error.h"

int64_t dcv_conv_effective_kernel(int64_t k, int64_t d)
{
    return (k - 1) * d + 1;
}

int64_t dcv_conv_output_length(int64_t n, int64_t k, int64_t s, int64_t d,
                               enum dcv_padding padding, int64_t output_padding)
{
    if (n < 0) return -1;
    int64_t ke = dcv_conv_effective_kernel(k, d);
    if (output_padding < 0) {
        if (padding == DCV_PADDING_VALID)
            return n * s + (ke > s ? ke - s : 0);
        return n * s;
    }
    int64_t pad = padding == DCV_PADDING_SAME ? ke / 2 : 0;
    return (n - 1) * s + ke - 2 * pad + output_padding;
}

int64_t dcv_conv_forward_length(int64_t n, int64_t k, int64_t s, int64_t d,
                                enum dcv_padding padding)
{
    if (n < 0) return -1;
    int64_t ke = dcv_conv_effective_kernel(k, d);
    if (padding == DCV_PADDING_VALID) return n < ke ? 0 : (n - ke) / s + 1;
    return (n + s - 1) / s;
}

int64_t dcv_conv_out_length(const struct dcv_conv *c, int dim, int64_t n)
{
    if (c->forward)
        return dcv_conv_forward_length(n, c->kernel[dim], c->strides[dim], c->dilation[dim],
                                       c->padding);
    return dcv_conv_output_length(n, c->kernel[dim], c->strides[dim], c->dilation[dim],
                                  c->padding, -1);
}

static const char *padding_name(enum dcv_padding p)
{
    return p == DCV_PADDING_SAME ? "SAME" : p == DCV_PADDING_CAUSAL ? "causal" : "VALID";
}

static const char *axis_name(const struct dcv_conv *c, int dim)
{
    static const char *names[3][3] = { { "width" }, { "height", "width" },
                                       { "depth", "height", "width" } };
    return names[c->rank - 1][dim];
}

int dcv_conv_check_lengths(const struct dcv_conv *c, int dim, int64_t n, int64_t out,
                           char *err)
{
    int64_t s = c->strides[dim];
    int64_t ke = dcv_conv_effective_kernel(c->kernel[dim], c->dilation[dim]);
    int64_t expect;
    if (out < 1)
        return dcv_errf(err, DCV_ESHAPE, "output %s would be %lld (input %lld, kernel %lld, "
                        "stride %lld): must be at least 1", axis_name(c, dim), (long long)out,
                        (long long)n, (long long)c->kernel[dim], (long long)s);
    if (c->forward) {
        expect = dcv_conv_forward_length(n, c->kernel[dim], s, c->dilation[dim], c->padding);
        if (expect == out) return 0;
        return dcv_errf(err, DCV_ESHAPE, "%s padding: output %s %lld is inconsistent with "
                        "input %s %lld (kernel %lld, stride %lld, dilation %lld: the "
                        "convolution gives %lld)", padding_name(c->padding),
                        axis_name(c, dim), (long long)out, axis_name(c, dim), (long long)n,
                        (long long)c->kernel[dim], (long long)s, (long long)c->dilation[dim],
                        (long long)expect);
    }
    if (c->padding == DCV_PADDING_SAME)
        expect = (out + s - 1) / s;
    else
        expect = out < ke ? 0 : (out - ke + s) / s;
    if (expect != n)
        return dcv_errf(err, DCV_ESHAPE,
                        "%s padding: output %s %lld is inconsistent with input %s %lld "
                        "(kernel %lld, stride %lld, dilation %lld: a %s convolution of %lld "
                        "gives %lld, not %lld)",
                        c->padding == DCV_PADDING_SAME ? "SAME" : "VALID", axis_name(c, dim),
                        (long long)out, axis_name(c, dim), (long long)n,
                        (long long)c->kernel[dim], (long long)s, (long long)c->dilation[dim],
                        c->padding == DCV_PADDING_SAME ? "SAME" : "VALID", (long long)out,
                        (long long)expect, (long long)n);
    return 0;
}

/* The window's span past the input decides pad_r; VALID's leftover
 * (n - ke) % s inputs and causal's are not read, so pad_r is never below 0. */
static void forward_pads(const struct dcv_conv *c, const int64_t *in_sp, const int64_t *out_sp,
                         int64_t *pad_l, int64_t *pad_r)
{
    for (int i = 0; i < c->rank; i++) {
        int64_t ke = dcv_conv_effective_kernel(c->kernel[i], c->dilation[i]);
        int64_t span = (out_sp[i] - 1) * c->strides[i] + ke;
        int64_t total = span > in_sp[i] ? span - in_sp[i] : 0;
        pad_l[i] = c->padding == DCV_PADDING_SAME ? total / 2
                 : c->padding == DCV_PADDING_CAUSAL ? ke - 1 : 0;
        pad_r[i] = total > pad_l[i] ? total - pad_l[i] : 0;
    }
}

void dcv_conv_pads(const struct dcv_conv *c, const int64_t *in_sp, const int64_t *out_sp,
                   int64_t *pad_l, int64_t *pad_r)
{
    if (c->forward) {
        forward_pads(c, in_sp, out_sp, pad_l, pad_r);
        return;
    }
    for (int i = 0; i < c->rank; i++) {
        int64_t ke = dcv_conv_effective_kernel(c->kernel[i], c->dilation[i]);
        int64_t full = (in_sp[i] - 1) * c->strides[i] + ke;
        int64_t before = 0;
        if (c->padding == DCV_PADDING_SAME && full > out_sp[i])
            before = (full - out_sp[i]) / 2;
        pad_l[i] = before;
        pad_r[i] = full - out_sp[i] - before;
    }
}

static int check_range(char *err, const char *what, int dim, int64_t v, int64_t hi)
{
    if (v >= 1 && v <= hi) return 0;
    if (dim < 0)
        return dcv_errf(err, DCV_EINVAL, "%s must be in [1, %lld], got %lld", what,
                        (long long)hi, (long long)v);
    return dcv_errf(err, DCV_EINVAL, "%s[%d] must be in [1, %lld], got %lld", what, dim,
                    (long long)hi, (long long)v);
}

/* groups and causal padding exist for forward convolutions only. */
static int validate_direction(const struct dcv_conv *c, char *err)
{
    int64_t g = dcv_conv_groups(c);
    if (!c->forward && g > 1)
        return dcv_errf(err, DCV_EINVAL, "groups=%lld: a transposed convolution has no "
                        "groups", (long long)g);
    if (!c->forward && c->padding == DCV_PADDING_CAUSAL)
        return dcv_errf(err, DCV_EINVAL, "causal padding exists only for forward "
                        "convolutions");
    if (c->groups < 0 || c->in_channels % g || c->filters % g)
        return dcv_errf(err, DCV_EINVAL, "groups=%lld must be positive and divide both the "
                        "input channels (%lld) and filters (%lld)", (long long)c->groups,
                        (long long)c->in_channels, (long long)c->filters);
    return 0;
}

int dcv_conv_validate(const struct dcv_conv *c, char *err)
{
    int rc;
    if (c->rank < 1 || c->rank > DCV_MAX_SPATIAL)
        return dcv_errf(err, DCV_EINVAL, "rank must be 1, 2 or 3, got %d", c->rank);
    if ((rc = dcv_activation_check_fused(&c->act, "transposed convolution", err))) return rc;
    if ((rc = check_range(err, "filters", -1, c->filters, DCV_MAX_CHANNELS))) return rc;
    if ((rc = check_range(err, "input channels", -1, c->in_channels, DCV_MAX_CHANNELS)))
        return rc;
    for (int i = 0; i < c->rank; i++) {
        if ((rc = check_range(err, "kernel_size", i, c->kernel[i], DCV_MAX_KERNEL))) return rc;
        if ((rc = check_range(err, "strides", i, c->strides[i], DCV_MAX_STRIDE))) return rc;
        if ((rc = check_range(err, "dilation_rate", i, c->dilation[i], DCV_MAX_DILATION)))
            return rc;
    }
    return validate_direction(c, err);
}

/* a * b, or UINT64_MAX when that does not fit */
static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    uint64_t p;
    return __builtin_mul_overflow(a, b, &p) ? UINT64_MAX : p;
}

uint64_t dcv_conv_work(const struct dcv_conv *c, int64_t batch, const int64_t *in_sp)
{
    int64_t g = dcv_conv_groups(c);
    int64_t f[3 + 2 * DCV_MAX_SPATIAL] = { batch, c->forward ? c->in_channels / g
                                                             : c->in_channels, c->filters };
    int n = 3, rank = c->rank < 0 ? 0 : c->rank > DCV_MAX_SPATIAL ? DCV_MAX_SPATIAL : c->rank;
    uint64_t w = 1;
    for (int i = 0; i < rank; i++) {
        int64_t k = c->kernel[i], sp = in_sp[i];
        if (c->forward && sp >= 0 && c->strides[i] > 0 && k > 0)
            sp = dcv_conv_forward_length(sp, k, c->strides[i], c->dilation[i], c->padding);
        f[n++] = sp, f[n++] = k;
    }
    for (int i = 0; i < n; i++)
        if (f[i] < 0) return UINT64_MAX;
    for (int i = 0; i < n; i++)
        if (f[i] == 0) return 0;         /* even after a product that saturated */
    for (int i = 0; i < n; i++) w = sat_mul(w, (uint64_t)f[i]);
    return w;
}

int64_t dcv_shape_product(const int64_t *v, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        if (v[i] < 0) return -1;
    for (int i = 0; i < n; i++)
        if (v[i] == 0) return 0;
    for (int i = 0; i < n; i++)
        if (__builtin_mul_overflow(p, v[i], &p)) return -1;   /* no division per dim */
    return p;
}
