/* test_engine.c — the oneDNN engine against an independent double-precision
 * reference of TensorFlow's conv_transpose, through every entry point:
 * Keras layer JSON → dcv_model_from_doc → engine, dcv_engine_kernel_* directly,
 * and the stateless op. Also the literal TensorFlow unit-test values,
 * bfloat16, concurrency, the plan cache and allocation failures.
 *
 * The reference below is written from the TensorFlow rule, not from
 * conv.c: scatter every input position i and kernel tap t into position
 * i*s + t*d of a 'full' signal of length (n-1)*s + (k-1)*d + 1 (no kernel
 * flip), crop `out` positions from pad_before (SAME: max(full-out, 0)//2,
 * VALID: 0, zeros past 'full'), add the bias, apply the activation.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deconvd/activation.h"
#include "deconvd/conv.h"
#include "deconvd/budget.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layer.h"
#include "deconvd/model.h"
#include "deconvd/op.h"
#include "testutil.h"

#define TOL_F32  1e-4
#define TOL_BF16 2e-2

/* ---- deterministic randomness (splitmix64) ----------------------------- */

struct rng { uint64_t s; };

static uint64_t rng_u64(struct rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int64_t rng_int(struct rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_u64(r) % (uint64_t)(hi - lo + 1));
}

/* Uniform in [-amp, amp) with 24 significant bits, so the float is exact. */
static float rng_val(struct rng *r, float amp)
{
    return amp * (float)((double)(rng_u64(r) >> 40) / 8388608.0 - 1.0);
}

static float *rand_buf(struct rng *r, size_t n, float amp)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) p[i] = rng_val(r, amp);
    return p;
}

/* ---- activations, as the reference computes them (double) ------------- */

enum ref_kind {
    RA_LINEAR, RA_RELU, RA_SIGMOID, RA_TANH, RA_SOFTPLUS, RA_SOFTSIGN, RA_ELU, RA_SELU,
    RA_EXP, RA_HARD_SIGMOID, RA_SWISH, RA_GELU, RA_GELU_TANH, RA_MISH, RA_SOFTMAX,
    RA_HARD_SILU, RA_LOG_SIGMOID,
};

/* RA_RELU is Keras's general ReLU: max_value above max_value, x from the
 * threshold up, alpha * (x - threshold) below it. */
struct act_case {
    const char *json;
    enum ref_kind kind;
    double alpha, max_value, threshold;
};

static const struct act_case acts[] = {
    { "\"linear\"", RA_LINEAR, 0, 0, 0 },
    { "\"relu\"", RA_RELU, 0, INFINITY, 0 },
    { "null", RA_LINEAR, 0, 0, 0 },
    { "\"sigmoid\"", RA_SIGMOID, 0, 0, 0 },
    { "\"tanh\"", RA_TANH, 0, 0, 0 },
    { "\"softplus\"", RA_SOFTPLUS, 0, 0, 0 },
    { "\"softsign\"", RA_SOFTSIGN, 0, 0, 0 },
    { "\"elu\"", RA_ELU, 1.0, 0, 0 },
    { "\"selu\"", RA_SELU, 0, 0, 0 },
    { "\"exponential\"", RA_EXP, 0, 0, 0 },
    { "\"hard_sigmoid\"", RA_HARD_SIGMOID, 0, 0, 0 },
    { "\"swish\"", RA_SWISH, 0, 0, 0 },
    { "\"silu\"", RA_SWISH, 0, 0, 0 },
    { "\"gelu\"", RA_GELU, 0, 0, 0 },
    { "\"relu6\"", RA_RELU, 0, 6.0, 0 },
    { "\"leaky_relu\"", RA_RELU, 0.2, INFINITY, 0 },
    { "\"mish\"", RA_MISH, 0, 0, 0 },
    { "\"softmax\"", RA_SOFTMAX, 0, 0, 0 },
    { "\"hard_silu\"", RA_HARD_SILU, 0, 0, 0 },
    { "\"hard_swish\"", RA_HARD_SILU, 0, 0, 0 },
    { "\"log_sigmoid\"", RA_LOG_SIGMOID, 0, 0, 0 },
    { "{\"class_name\":\"LeakyReLU\",\"config\":{\"negative_slope\":0.1}}", RA_RELU, 0.1,
      INFINITY, 0 },
    { "{\"class_name\":\"LeakyReLU\",\"config\":{\"alpha\":0.25}}", RA_RELU, 0.25, INFINITY, 0 },
    { "{\"class_name\":\"LeakyReLU\",\"config\":{}}", RA_RELU, 0.3, INFINITY, 0 },
    { "{\"class_name\":\"ReLU\",\"config\":{\"max_value\":1.5,\"threshold\":0.5}}", RA_RELU, 0,
      1.5, 0.5 },
    { "{\"class_name\":\"ReLU\",\"config\":{\"max_value\":0.75}}", RA_RELU, 0, 0.75, 0 },
    { "{\"class_name\":\"ReLU\",\"config\":{\"negative_slope\":0.125,\"max_value\":0.5}}",
      RA_RELU, 0.125, 0.5, 0 },
    { "{\"class_name\":\"ReLU\",\"config\":{\"negative_slope\":0.25,\"threshold\":-0.25}}",
      RA_RELU, 0.25, INFINITY, -0.25 },
    { "{\"class_name\":\"ELU\",\"config\":{\"alpha\":0.5}}", RA_ELU, 0.5, 0, 0 },
    { "{\"class_name\":\"Softmax\",\"config\":{\"axis\":-1}}", RA_SOFTMAX, 0, 0, 0 },
    { "{\"class_name\":\"Activation\",\"config\":{\"activation\":\"tanh\"}}", RA_TANH, 0, 0, 0 },
    { "{\"class_name\":\"function\",\"config\":\"gelu\"}", RA_GELU, 0, 0, 0 },
    { "{\"module\":\"keras.activations\",\"class_name\":\"function\",\"config\":\"mish\","
      "\"registered_name\":\"mish\"}", RA_MISH, 0, 0, 0 },
    { "{\"class_name\":\"GELU\",\"config\":{\"approximate\":true}}", RA_GELU_TANH, 0, 0, 0 },
};
#define NACTS ((int)(sizeof acts / sizeof acts[0]))
#define ACT_LINEAR (&acts[0])
#define ACT_RELU (&acts[1])

static double ref_point(const struct act_case *a, double x)
{
    switch (a->kind) {
    case RA_LINEAR: return x;
    case RA_RELU:
        if (x >= a->max_value) return a->max_value;
        if (x >= a->threshold) return x;
        return a->alpha * (x - a->threshold);
    case RA_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case RA_TANH: return tanh(x);
    case RA_SOFTPLUS: return log1p(exp(x));
    case RA_SOFTSIGN: return x / (1.0 + fabs(x));
    case RA_ELU: return x > 0 ? x : a->alpha * expm1(x);
    case RA_SELU: return 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * expm1(x));
    case RA_EXP: return exp(x);
    case RA_HARD_SIGMOID: return fmin(fmax(0.2 * x + 0.5, 0.0), 1.0);
    case RA_SWISH: return x / (1.0 + exp(-x));
    case RA_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case RA_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) *
                                     (x + 0.044715 * x * x * x)));
    case RA_MISH: return x * tanh(log1p(exp(x)));
    case RA_HARD_SILU: return x * fmin(fmax(x + 3.0, 0.0), 6.0) / 6.0;
    case RA_LOG_SIGMOID: return -log1p(exp(-x));
    case RA_SOFTMAX: break;
    }
    return NAN;
}

/* ---- geometry and the reference ---------------------------------------- */

struct geo {
    int rank;
    bool cf, same;                       /* channels_first, SAME padding */
    int64_t batch, cin, cout;
    int64_t k[3], s[3], d[3], in[3], out[3];
};

static int64_t prod(const int64_t *v, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= v[i];
    return p;
}

static int64_t ke_of(int64_t k, int64_t d) { return (k - 1) * d + 1; }

static size_t in_count(const struct geo *g)
{
    return (size_t)(g->batch * g->cin * prod(g->in, g->rank));
}
static size_t out_count(const struct geo *g)
{
    return (size_t)(g->batch * g->cout * prod(g->out, g->rank));
}
static size_t kernel_count(const struct geo *g)
{
    return (size_t)(prod(g->k, g->rank) * g->cout * g->cin);
}

/* Keras deconv_output_length; op < 0 means output_padding=None. */
static int64_t keras_len(int64_t n, int64_t k, int64_t s, int64_t d, bool same, int64_t op)
{
    int64_t ke = ke_of(k, d);
    if (op < 0) return same ? n * s : n * s + (ke > s ? ke - s : 0);
    int64_t pad = same ? ke / 2 : 0;
    return (n - 1) * s + ke - 2 * pad + op;
}

/* TensorFlow: the forward convolution of `out` must give back n. */
static bool tf_consistent(int64_t n, int64_t out, int64_t ke, int64_t s, bool same)
{
    if (out < 1) return false;
    if (same) return (out + s - 1) / s == n;
    return out >= ke && (out - ke) / s + 1 == n;
}

static bool geo_consistent(const struct geo *g)
{
    for (int j = 0; j < g->rank; j++)
        if (!tf_consistent(g->in[j], g->out[j], ke_of(g->k[j], g->d[j]), g->s[j], g->same))
            return false;
    return true;
}

/* Full tensor shape in the layout (N, C, sp...) or (N, sp..., C). */
static int layout_shape(const struct geo *g, bool output, int64_t *shape)
{
    int r = g->rank;
    int64_t c = output ? g->cout : g->cin;
    const int64_t *sp = output ? g->out : g->in;
    shape[0] = g->batch;
    for (int j = 0; j < r; j++) shape[(g->cf ? 2 : 1) + j] = sp[j];
    shape[g->cf ? 1 : r + 1] = c;
    return r + 2;
}

static int64_t data_index(bool cf, int64_t n, int64_t c, int64_t p, int64_t nch, int64_t psz)
{
    return cf ? (n * nch + c) * psz + p : (n * psz + p) * nch + c;
}

static void unravel(int64_t lin, const int64_t *dims, int n, int64_t *idx)
{
    for (int j = n - 1; j >= 0; j--) {
        idx[j] = lin % dims[j];
        lin /= dims[j];
    }
}

static void ref_activate(const struct geo *g, const struct act_case *a, double *y)
{
    size_t n = out_count(g);
    if (a->kind == RA_SOFTMAX) {
        /* Keras: the last axis of the tensor as laid out. */
        size_t len = (size_t)(g->cf ? g->out[g->rank - 1] : g->cout);
        for (size_t base = 0; base < n; base += len) {
            double mx = -INFINITY, sum = 0;
            for (size_t i = 0; i < len; i++) mx = fmax(mx, y[base + i]);
            for (size_t i = 0; i < len; i++) sum += (y[base + i] = exp(y[base + i] - mx));
            for (size_t i = 0; i < len; i++) y[base + i] /= sum;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] = ref_point(a, y[i]);
}

/* y (out_count values, layout per g->cf) = act(conv_transpose(x, w) + b). */
static void ref_conv(const struct geo *g, const float *x, const float *w, const float *b,
                     const struct act_case *act, double *y)
{
    int r = g->rank;
    int64_t pin = prod(g->in, r), pout = prod(g->out, r), ptap = prod(g->k, r), before[3];
    for (int j = 0; j < r; j++) {
        int64_t full = (g->in[j] - 1) * g->s[j] + ke_of(g->k[j], g->d[j]);
        before[j] = g->same && full > g->out[j] ? (full - g->out[j]) / 2 : 0;
    }
    size_t ny = out_count(g);
    for (size_t i = 0; i < ny; i++) y[i] = 0;
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t ip = 0; ip < pin; ip++) {
            int64_t ii[3];
            unravel(ip, g->in, r, ii);
            for (int64_t t = 0; t < ptap; t++) {
                int64_t tt[3], op = 0;
                bool inside = true;
                unravel(t, g->k, r, tt);
                for (int j = 0; j < r; j++) {
                    int64_t o = ii[j] * g->s[j] + tt[j] * g->d[j] - before[j];
                    inside = inside && o >= 0 && o < g->out[j];
                    op = op * g->out[j] + o;
                }
                if (!inside) continue;
                for (int64_t oc = 0; oc < g->cout; oc++) {
                    double acc = 0;
                    for (int64_t ic = 0; ic < g->cin; ic++)
                        acc += (double)x[data_index(g->cf, n, ic, ip, g->cin, pin)] *
                               (double)w[(t * g->cout + oc) * g->cin + ic];
                    y[data_index(g->cf, n, oc, op, g->cout, pout)] += acc;
                }
            }
        }
    if (b)
        for (int64_t n = 0; n < g->batch; n++)
            for (int64_t oc = 0; oc < g->cout; oc++)
                for (int64_t p = 0; p < pout; p++)
                    y[data_index(g->cf, n, oc, p, g->cout, pout)] += b[oc];
    ref_activate(g, act, y);
}

struct worst { double rel; size_t at; double got, want; };

/* Worst |got - want| / max(1, |want|); NaN counts as infinite. */
static struct worst compare(const float *got, const double *want, size_t n)
{
    struct worst w = { 0, 0, 0, 0 };
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / fmax(1.0, fabs(want[i]));
        if (isnan(e)) e = INFINITY;
        if (e > w.rel) w = (struct worst){ e, i, got[i], want[i] };
    }
    return w;
}

static void describe(const struct geo *g, const char *act, const int64_t *op, char *buf,
                     size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[rank %d %s %s batch %lld cin %lld cout %lld",
                                g->rank, g->cf ? "channels_first" : "channels_last",
                                g->same ? "same" : "valid", (long long)g->batch,
                                (long long)g->cin, (long long)g->cout);
    for (int j = 0; j < g->rank && k < cap; j++)
        k += (size_t)snprintf(buf + k, cap - k, " dim%d{n=%lld k=%lld s=%lld d=%lld out=%lld "
                              "op=%lld}", j, (long long)g->in[j], (long long)g->k[j],
                              (long long)g->s[j], (long long)g->d[j], (long long)g->out[j],
                              op ? (long long)op[j] : -1LL);
    if (k < cap) snprintf(buf + k, cap - k, " act=%s]", act);
}

/* ---- JSON documents ---------------------------------------------------- */

struct sb { char *p; size_t len, cap; };

static void sb_add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sb *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        cr_assert(n >= 0);
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 4096;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
}

/* An int when every value is equal and as_int, else a list. */
static void sb_tuple(struct sb *b, const int64_t *v, int n, bool as_int)
{
    bool uniform = true;
    for (int i = 1; i < n; i++) uniform = uniform && v[i] == v[0];
    if (as_int && uniform) {
        sb_add(b, "%lld", (long long)v[0]);
        return;
    }
    sb_add(b, "[");
    for (int i = 0; i < n; i++) sb_add(b, i ? ",%lld" : "%lld", (long long)v[i]);
    sb_add(b, "]");
}

static const float *sb_nested(struct sb *b, const float *v, const int64_t *shape, int nd)
{
    if (nd == 0) {
        sb_add(b, "%.9g", (double)*v);
        return v + 1;
    }
    sb_add(b, "[");
    for (int64_t i = 0; i < shape[0]; i++) {
        if (i) sb_add(b, ",");
        v = sb_nested(b, v, shape + 1, nd - 1);
    }
    sb_add(b, "]");
    return v;
}

/* A Keras layer as a model file would carry it. */
struct mspec {
    struct geo g;
    bool bias, has_op, declare_shape;
    int64_t op[3];
    const struct act_case *act;
    const char *dtype;        /* JSON value for "dtype", or NULL */
    unsigned form;            /* spelling variations, see config_json */
};

/* form bits: 1 uniform tuples as ints, 2 weights as a [kernel, bias] list,
 * 4 class_name inside the config, 8 uppercase padding, 16 alias class name. */
static void config_json(struct sb *b, const struct mspec *c)
{
    const struct geo *g = &c->g;
    bool ints = c->form & 1;
    sb_add(b, "{\"name\":\"t%d\",\"filters\":%lld,\"kernel_size\":", g->rank, (long long)g->cout);
    sb_tuple(b, g->k, g->rank, ints);
    sb_add(b, ",\"strides\":");
    sb_tuple(b, g->s, g->rank, ints);
    sb_add(b, ",\"dilation_rate\":");
    sb_tuple(b, g->d, g->rank, ints);
    sb_add(b, ",\"padding\":\"%s\"", (c->form & 8) ? (g->same ? "SAME" : "VALID")
                                                    : (g->same ? "same" : "valid"));
    sb_add(b, ",\"output_padding\":");
    if (c->has_op) sb_tuple(b, c->op, g->rank, ints);
    else sb_add(b, "null");
    sb_add(b, ",\"data_format\":\"%s\",\"activation\":%s,\"use_bias\":%s",
           g->cf ? "channels_first" : "channels_last", c->act->json, c->bias ? "true" : "false");
    if (c->dtype) sb_add(b, ",\"dtype\":%s", c->dtype);
    else if (c->form & 32) sb_add(b, ",\"dtype\":\"float32\"");
    if (c->form & 4) sb_add(b, ",\"class_name\":\"Conv%dDTranspose\"", g->rank);
    if (c->declare_shape) {
        /* batch unknown, spatial and channels known */
        sb_add(b, ",\"batch_input_shape\":[null");
        if (g->cf) sb_add(b, ",%lld", (long long)g->cin);
        for (int j = 0; j < g->rank; j++) sb_add(b, ",%lld", (long long)g->in[j]);
        if (!g->cf) sb_add(b, ",%lld", (long long)g->cin);
        sb_add(b, "]");
    }
    sb_add(b, "}");
}

static char *model_doc(const struct mspec *c, const float *w, const float *bias)
{
    const struct geo *g = &c->g;
    struct sb b = { 0 };
    int64_t kshape[5];
    for (int j = 0; j < g->rank; j++) kshape[j] = g->k[j];
    kshape[g->rank] = g->cout;
    kshape[g->rank + 1] = g->cin;
    sb_add(&b, "{");
    if (!(c->form & 4))
        sb_add(&b, "\"class_name\":\"%s%dDTranspose\",", (c->form & 16) ? "Convolution" : "Conv",
               g->rank);
    sb_add(&b, "\"config\":");
    config_json(&b, c);
    sb_add(&b, ",\"weights\":%s", (c->form & 2) ? "[" : "{\"kernel\":");
    sb_nested(&b, w, kshape, g->rank + 2);
    if (bias) {
        sb_add(&b, (c->form & 2) ? "," : ",\"bias\":");
        sb_nested(&b, bias, &g->cout, 1);
    }
    sb_add(&b, "%s}", (c->form & 2) ? "]" : "}");
    return b.p;
}

static struct dcv_model *load_doc(const char *text, const struct dcv_model_opts *opts,
                                  const char *desc)
{
    char err[DCV_ERRLEN];
    struct dcv_json *doc = dcv_json_parse(text, strlen(text), err);
    cr_assert_not_null(doc, "%s: %s", desc, err);
    struct dcv_model *m = NULL;
    int rc = dcv_model_from_doc("t", doc, NULL, opts, &m, err);
    dcv_json_free(doc);
    cr_assert_eq(rc, 0, "%s: model: %s (%s)\n%.400s", desc, err, dcv_error_name(rc), text);
    return m;
}

/* Runs x through m and checks the output shape against g. */
static float *model_run(struct dcv_model *m, const struct geo *g, const float *x,
                        const char *desc)
{
    char err[DCV_ERRLEN];
    int64_t ishape[5], oshape[5], want[5];
    size_t count = 0;
    int nd = layout_shape(g, false, ishape);
    layout_shape(g, true, want);
    int rc = dcv_model_output_shape(m, ishape, nd, oshape, &count, err);
    cr_assert_eq(rc, 0, "%s: output shape: %s", desc, err);
    for (int i = 0; i < nd; i++)
        cr_assert_eq(oshape[i], want[i], "%s: output dim %d is %lld, want %lld", desc, i,
                     (long long)oshape[i], (long long)want[i]);
    cr_assert_eq(count, out_count(g), "%s", desc);
    float *y = malloc(sizeof(float) * count);
    cr_assert_not_null(y);
    rc = dcv_model_infer(m, x, ishape, nd, y, count, NULL, err);
    cr_assert_eq(rc, 0, "%s: infer: %s (%s)", desc, err, dcv_error_name(rc));
    return y;
}

/* Builds the model for c, runs one random input, checks against the
 * reference with tol; returns the worst relative error. */
static double model_case(const struct mspec *c, struct rng *r, float xamp, double tol)
{
    const struct geo *g = &c->g;
    char desc[768];
    describe(g, c->act->json, c->has_op ? c->op : NULL, desc, sizeof desc);
    float *x = rand_buf(r, in_count(g), xamp), *w = rand_buf(r, kernel_count(g), 0.5f);
    float *b = c->bias ? rand_buf(r, (size_t)g->cout, 0.5f) : NULL;
    char *doc = model_doc(c, w, b);
    struct dcv_model *m = load_doc(doc, NULL, desc);
    float *y = model_run(m, g, x, desc);
    double *ref = malloc(sizeof(double) * out_count(g));
    cr_assert_not_null(ref);
    ref_conv(g, x, w, b, c->act, ref);
    struct worst wr = compare(y, ref, out_count(g));
    cr_assert(wr.rel <= tol, "%s%s: worst error %.3g at %zu: got %.9g, want %.9g", desc,
              c->dtype ? c->dtype : "", wr.rel, wr.at, wr.got, wr.want);
    dcv_model_free(m);
    free(doc);
    free(x);
    free(w);
    free(b);
    free(y);
    free(ref);
    return wr.rel;
}

/* ---- random cases ------------------------------------------------------ */

static void draw_sizes(struct rng *r, struct geo *g)
{
    g->batch = rng_int(r, 1, 3);
    for (int j = 0; j < g->rank; j++) g->in[j] = rng_int(r, 1, g->rank == 3 ? 4 : 7);
}

/* Keras layers forbid strides > 1 with dilation > 1; the op allows it. */
static void draw_geo(struct rng *r, int rank, bool stride_and_dilation, struct geo *g)
{
    memset(g, 0, sizeof *g);
    g->rank = rank;
    g->cf = rng_int(r, 0, 1);
    g->same = rng_int(r, 0, 1);
    g->cin = rng_int(r, 1, 5);
    g->cout = rng_int(r, 1, 5);
    bool dilated = rng_int(r, 0, 3) == 0;
    for (int j = 0; j < rank; j++) {
        g->k[j] = rng_int(r, 1, 5);
        if (stride_and_dilation) {
            g->s[j] = rng_int(r, 1, 4);
            g->d[j] = rng_int(r, 1, 3);
        } else {
            g->s[j] = dilated ? 1 : rng_int(r, 1, 4);
            g->d[j] = dilated ? rng_int(r, 1, 3) : 1;
        }
    }
    draw_sizes(r, g);
}

/* Any output size TensorFlow accepts for g->in (not only Keras's). */
static void draw_out(struct rng *r, struct geo *g)
{
    for (int j = 0; j < g->rank; j++) {
        int64_t n = g->in[j], s = g->s[j], ke = ke_of(g->k[j], g->d[j]);
        g->out[j] = g->same ? rng_int(r, (n - 1) * s + 1, n * s)
                            : rng_int(r, (n - 1) * s + ke, (n - 1) * s + ke + s - 1);
    }
    cr_assert(geo_consistent(g));
}

static const struct act_case *draw_act(struct rng *r)
{
    int64_t v = rng_int(r, 0, 3);
    return v == 0 ? ACT_LINEAR : v == 1 ? ACT_RELU : &acts[rng_int(r, 0, NACTS - 1)];
}

static void draw_spec(struct rng *r, int rank, struct mspec *c)
{
    memset(c, 0, sizeof *c);
    struct geo *g = &c->g;
    draw_geo(r, rank, false, g);
    c->has_op = rng_int(r, 0, 2) == 0;
    for (int j = 0; j < rank; j++) {
        c->op[j] = c->has_op ? rng_int(r, 0, g->s[j] - 1) : -1;
        g->out[j] = keras_len(g->in[j], g->k[j], g->s[j], g->d[j], g->same, c->op[j]);
    }
    c->bias = rng_int(r, 0, 3) != 0;
    c->act = draw_act(r);
    c->declare_shape = rng_int(r, 0, 4) == 0;
    c->form = (unsigned)rng_u64(r);
}

/* The layer must refuse an input whose Keras output length breaks TF's rule. */
static void expect_rejected(const struct mspec *c)
{
    char err[DCV_ERRLEN], desc[768], cls[32];
    struct sb b = { 0 };
    struct dcv_layer l;
    int64_t in[5], out[5];
    describe(&c->g, c->act->json, c->has_op ? c->op : NULL, desc, sizeof desc);
    config_json(&b, c);
    struct dcv_json *cfg = dcv_json_parse(b.p, b.len, err);
    cr_assert_not_null(cfg, "%s", err);
    snprintf(cls, sizeof cls, "Conv%dDTranspose", c->g.rank);
    int rc = dcv_layer_parse(cls, cfg, &l, err);
    cr_assert_eq(rc, 0, "%s: %s", desc, err);
    if (!c->declare_shape) cr_assert_eq(dcv_layer_set_in_channels(&l, c->g.cin, err), 0);
    int nd = layout_shape(&c->g, false, in);
    rc = dcv_layer_output_shape(&l, in, nd, out, err);
    cr_assert_eq(rc, DCV_ESHAPE, "%s: TF would reject output lengths this layer gives, but "
                 "dcv_layer_output_shape returned %d", desc, rc);
    dcv_layer_release(&l);
    dcv_json_free(cfg);
    free(b.p);
}

static void run_grid(uint64_t seed, int rank, int ncases)
{
    struct rng r = { seed };
    int done = 0, rejected = 0;
    double worst = 0;
    while (done < ncases) {
        struct mspec c;
        draw_spec(&r, rank, &c);
        if (!geo_consistent(&c.g)) {
            expect_rejected(&c);
            rejected++;
            continue;
        }
        worst = fmax(worst, model_case(&c, &r, 1.0f, TOL_F32));
        done++;
    }
    fprintf(stderr, "engine grid rank %d: %d model cases, %d inconsistent cases rejected, "
            "worst relative error %.3g\n", rank, done, rejected, worst);
}

Test(engine, grid_rank1_models) { run_grid(0x1d1d1d1dULL, 1, 140); }
Test(engine, grid_rank2_models) { run_grid(0x2d2d2d2dULL, 2, 140); }
Test(engine, grid_rank3_models) { run_grid(0x3d3d3d3dULL, 3, 100); }

Test(engine, same_with_even_kernel_and_zero_output_padding_is_rejected)
{
    /* Keras: (n-1)*s + ke - 2*(ke//2) + 0 = (n-1)*s for even ke; TF needs
     * ceil(out/s) == n, and ceil((n-1)*s/s) = n-1. */
    struct mspec c = { .g = { .rank = 2, .same = true, .batch = 1, .cin = 2, .cout = 3,
                              .k = { 4, 3 }, .s = { 2, 2 }, .d = { 1, 1 }, .in = { 5, 5 } },
                       .has_op = true, .op = { 0, 1 }, .act = ACT_LINEAR };
    for (int j = 0; j < 2; j++)
        c.g.out[j] = keras_len(c.g.in[j], c.g.k[j], c.g.s[j], 1, true, c.op[j]);
    cr_assert_eq(c.g.out[0], 8);
    cr_assert(!geo_consistent(&c.g));
    expect_rejected(&c);
    /* and a length-0 output: n=1, even kernel, output_padding 0 */
    c.g.in[0] = 1;
    c.g.out[0] = keras_len(1, 4, 2, 1, true, 0);
    cr_assert_eq(c.g.out[0], 0);
    expect_rejected(&c);
}

/* ---- the engine directly ----------------------------------------------- */

static double direct_case(struct rng *r, int rank, int idx)
{
    char err[DCV_ERRLEN], desc[768];
    struct geo g;
    struct dcv_conv conv;
    const struct act_case *act = draw_act(r);
    draw_geo(r, rank, true, &g);
    memset(&conv, 0, sizeof conv);
    conv.rank = rank;
    conv.in_channels = g.cin;
    conv.filters = g.cout;
    for (int j = 0; j < rank; j++) {
        conv.kernel[j] = g.k[j];
        conv.strides[j] = g.s[j];
        conv.dilation[j] = g.d[j];
    }
    conv.padding = g.same ? DCV_PADDING_SAME : DCV_PADDING_VALID;
    conv.channels_first = g.cf;
    bool bf16 = idx % 8 == 7;
    conv.dtype = bf16 ? DCV_DTYPE_BFLOAT16 : DCV_DTYPE_FLOAT32;
    struct dcv_json *aj = dcv_json_parse(act->json, strlen(act->json), err);
    cr_assert_not_null(aj, "%s", err);
    cr_assert_eq(dcv_activation_parse(aj, &conv.act, err), 0, "%s", err);
    dcv_json_free(aj);
    /* bias modes: real bias; use_bias with NULL (zeros); bias ignored */
    int bmode = (int)rng_int(r, 0, 2);
    conv.use_bias = bmode != 2;
    float *w = rand_buf(r, kernel_count(&g), 0.5f), *b = rand_buf(r, (size_t)g.cout, 0.5f);
    int64_t pre[3];
    int pmode = (int)rng_int(r, 0, 2);
    for (int j = 0; j < rank; j++) pre[j] = pmode == 1 ? g.in[j] : -1;
    struct dcv_engine_kernel *k = NULL;
    int rc = dcv_engine_kernel_create(&conv, w, bmode == 1 ? NULL : b, (size_t)rng_int(r, 0, 3),
                                      pmode ? pre : NULL, &k, err);
    cr_assert_eq(rc, 0, "kernel create: %s", err);
    double worst = 0;
    for (int round = 0; round < 2; round++) {
        if (round) draw_sizes(r, &g);
        draw_out(r, &g);
        describe(&g, act->json, NULL, desc, sizeof desc);
        float *x = rand_buf(r, in_count(&g), 1.0f), *y = malloc(sizeof(float) * out_count(&g));
        double *ref = malloc(sizeof(double) * out_count(&g));
        cr_assert(y && ref);
        rc = dcv_engine_run(k, x, g.batch, g.in, g.out, y, NULL, err);
        cr_assert_eq(rc, 0, "%s: run: %s", desc, err);
        ref_conv(&g, x, w, bmode == 0 ? b : NULL, act, ref);
        struct worst wr = compare(y, ref, out_count(&g));
        cr_assert(wr.rel <= (bf16 ? TOL_BF16 : TOL_F32),
                  "%s bias mode %d%s: worst error %.3g at %zu: got %.9g, want %.9g", desc, bmode,
                  bf16 ? " bf16" : "", wr.rel, wr.at, wr.got, wr.want);
        if (!bf16) worst = fmax(worst, wr.rel);
        free(x);
        free(y);
        free(ref);
    }
    dcv_engine_kernel_free(k);
    free(w);
    free(b);
    return worst;
}

Test(engine, direct_kernel_grid)
{
    struct rng r = { 0xd1ec7ULL };
    double worst = 0;
    int n = 0;
    for (int i = 0; i < 96; i++, n += 2) worst = fmax(worst, direct_case(&r, 1 + i % 3, i));
    fprintf(stderr, "engine direct: %d runs (strides with dilations, arbitrary consistent "
            "output sizes), worst fp32 relative error %.3g\n", n, worst);
}

/* Channel counts at and around oneDNN's 16-wide blocks take the JIT paths
 * with blocked weight layouts; two OpenMP threads split the work. */
Test(engine, wide_channels_blocked_layouts)
{
    static const int64_t chans[] = { 1, 8, 16, 17, 32, 64 };
    struct rng r = { 0x1de5ULL };
    char err[DCV_ERRLEN], desc[768];
    double worst = 0;
    dcv_engine_set_threads(2);
    for (int i = 0; i < 24; i++) {
        struct geo g;
        const struct act_case *act = i % 3 == 0 ? ACT_RELU : draw_act(&r);
        draw_geo(&r, 1 + i % 3, true, &g);
        g.cf = (i / 3) % 2;
        g.cin = chans[rng_int(&r, 0, 5)];
        g.cout = chans[rng_int(&r, 0, 5)];
        bool bf16 = i % 6 == 5;
        struct dcv_conv conv = { .rank = g.rank, .in_channels = g.cin, .filters = g.cout,
                                 .padding = g.same ? DCV_PADDING_SAME : DCV_PADDING_VALID,
                                 .channels_first = g.cf, .use_bias = true,
                                 .dtype = bf16 ? DCV_DTYPE_BFLOAT16 : DCV_DTYPE_FLOAT32 };
        for (int j = 0; j < g.rank; j++) {
            conv.kernel[j] = g.k[j];
            conv.strides[j] = g.s[j];
            conv.dilation[j] = g.d[j];
        }
        struct dcv_json *aj = dcv_json_parse(act->json, strlen(act->json), err);
        cr_assert_eq(dcv_activation_parse(aj, &conv.act, err), 0, "%s", err);
        dcv_json_free(aj);
        float *w = rand_buf(&r, kernel_count(&g), 0.25f), *b = rand_buf(&r, (size_t)g.cout, 1);
        struct dcv_engine_kernel *k = NULL;
        cr_assert_eq(dcv_engine_kernel_create(&conv, w, b, 0, NULL, &k, err), 0, "%s", err);
        for (int round = 0; round < 2; round++) {
            if (round) draw_sizes(&r, &g);
            draw_out(&r, &g);
            describe(&g, act->json, NULL, desc, sizeof desc);
            float *x = rand_buf(&r, in_count(&g), 1.0f);
            float *y = malloc(sizeof(float) * out_count(&g));
            double *ref = malloc(sizeof(double) * out_count(&g));
            cr_assert(y && ref);
            int rc = dcv_engine_run(k, x, g.batch, g.in, g.out, y, NULL, err);
            cr_assert_eq(rc, 0, "%s: %s", desc, err);
            ref_conv(&g, x, w, b, act, ref);
            struct worst wr = compare(y, ref, out_count(&g));
            struct dcv_engine_stats st;
            dcv_engine_kernel_stats(k, &st);
            cr_assert(wr.rel <= (bf16 ? TOL_BF16 : TOL_F32), "%s%s impl %s: worst error %.3g at "
                      "%zu: got %.9g, want %.9g", desc, bf16 ? " bf16" : "", st.impl, wr.rel,
                      wr.at, wr.got, wr.want);
            if (!bf16) worst = fmax(worst, wr.rel);
            free(x);
            free(y);
            free(ref);
        }
        dcv_engine_kernel_free(k);
        free(w);
        free(b);
    }
    fprintf(stderr, "engine wide channels: 48 runs, worst fp32 relative error %.3g\n", worst);
}

/* ---- every activation, both layouts ------------------------------------ */

static double act_case_run(const struct act_case *a, int rank, bool cf, bool same,
                           struct rng *r)
{
    struct mspec c = { .act = a, .bias = true };
    struct geo *g = &c.g;
    static const int64_t ks[3] = { 3, 2, 2 }, ss[3] = { 2, 1, 2 }, ns[3] = { 4, 5, 3 };
    g->rank = rank;
    g->cf = cf;
    g->same = same;
    g->batch = 2;
    g->cin = 3;
    g->cout = 4;
    for (int j = 0; j < rank; j++) {
        g->k[j] = ks[j];
        g->s[j] = ss[j];
        g->d[j] = 1;
        g->in[j] = ns[j];
        g->out[j] = keras_len(ns[j], ks[j], ss[j], 1, same, -1);
    }
    /* inputs in [-2, 2) spread the pre-activations over roughly [-4, 4],
     * through every threshold, cap and saturation in the table */
    return model_case(&c, r, 2.0f, TOL_F32);
}

Test(engine, every_activation_both_layouts)
{
    struct rng r = { 0xac7ULL };
    double worst = 0;
    for (int i = 0; i < NACTS; i++) {
        worst = fmax(worst, act_case_run(&acts[i], 2, false, i % 2, &r));
        worst = fmax(worst, act_case_run(&acts[i], 2, true, !(i % 2), &r));
        worst = fmax(worst, act_case_run(&acts[i], 1 + 2 * (i % 2), i % 3 == 0, i % 2, &r));
    }
    fprintf(stderr, "engine activations: %d forms x 3 cases, worst relative error %.3g\n",
            NACTS, worst);
}

Test(engine, softmax_runs_over_the_last_axis)
{
    /* Both layouts and all ranks; the rows (the innermost axis as laid
     * out) sum to one, and the values match the reference. */
    struct rng r = { 0x50f7ULL };
    static const char *const forms[] = { "\"softmax\"",
                                         "{\"class_name\":\"Softmax\",\"config\":{}}" };
    for (int rank = 1; rank <= 3; rank++)
        for (int cf = 0; cf < 2; cf++) {
            struct act_case a = { forms[cf], RA_SOFTMAX, 0, 0, 0 };
            struct mspec c = { .act = &a, .bias = true };
            char desc[768];
            struct geo *g = &c.g;
            g->rank = rank;
            g->cf = cf;
            g->same = rank != 2;
            g->batch = 2;
            g->cin = 2;
            g->cout = 3;
            for (int j = 0; j < rank; j++) {
                g->k[j] = 3;
                g->s[j] = 2;
                g->d[j] = 1;
                g->in[j] = 2 + j;
                g->out[j] = keras_len(g->in[j], 3, 2, 1, g->same, -1);
            }
            model_case(&c, &r, 2.0f, TOL_F32);
            describe(g, a.json, NULL, desc, sizeof desc);
            float *x = rand_buf(&r, in_count(g), 2.0f), *w = rand_buf(&r, kernel_count(g), 1);
            float *b = rand_buf(&r, (size_t)g->cout, 1);
            char *doc = model_doc(&c, w, b);
            struct dcv_model *m = load_doc(doc, NULL, desc);
            float *y = model_run(m, g, x, desc);
            size_t len = (size_t)(cf ? g->out[rank - 1] : g->cout), n = out_count(g);
            for (size_t base = 0; base < n; base += len) {
                double sum = 0;
                for (size_t i = 0; i < len; i++) sum += y[base + i];
                cr_assert(fabs(sum - 1.0) < 1e-5, "%s: row at %zu sums to %.9g", desc, base,
                          sum);
            }
            dcv_model_free(m);
            free(doc);
            free(x);
            free(w);
            free(b);
            free(y);
        }
}

/* dcv_activation_apply is the scalar pass for what oneDNN cannot fuse; the
 * engine only reaches it for a few kinds, so check every kind directly. */
Test(engine, portable_activation_pass_matches_reference)
{
    char err[DCV_ERRLEN];
    float x[96];
    for (int i = 0; i < 96; i++) x[i] = -24.0f + (float)i * 0.5f + (i % 3) * 0.0625f;
    for (int a = 0; a < NACTS; a++) {
        struct dcv_activation act;
        struct dcv_json *j = dcv_json_parse(acts[a].json, strlen(acts[a].json), err);
        cr_assert(j || strcmp(acts[a].json, "null") == 0, "%s", err);
        cr_assert_eq(dcv_activation_parse(j, &act, err), 0, "%s: %s", acts[a].json, err);
        dcv_json_free(j);
        float y[96];
        memcpy(y, x, sizeof y);
        if (acts[a].kind == RA_SOFTMAX) {
            /* [outer 4][axis 6][inner 4]: softmax along the middle axis */
            for (int i = 0; i < 96; i++) y[i] = x[i] / 4.0f;
            dcv_activation_apply(&act, y, 4, 6, 4);
            for (int o = 0; o < 4; o++)
                for (int in = 0; in < 4; in++) {
                    double mx = -INFINITY, sum = 0, e[6];
                    for (int k = 0; k < 6; k++) mx = fmax(mx, x[(o * 6 + k) * 4 + in] / 4.0);
                    for (int k = 0; k < 6; k++)
                        sum += (e[k] = exp(x[(o * 6 + k) * 4 + in] / 4.0 - mx));
                    for (int k = 0; k < 6; k++) {
                        double want = e[k] / sum, got = y[(o * 6 + k) * 4 + in];
                        cr_assert(fabs(got - want) <= 1e-6, "%s [%d][%d][%d]: got %.9g want "
                                  "%.9g", acts[a].json, o, k, in, got, want);
                    }
                }
            continue;
        }
        dcv_activation_apply(&act, y, 2, 48, 1);
        for (int i = 0; i < 96; i++) {
            if (acts[a].kind == RA_EXP && x[i] > 80) continue;
            double want = ref_point(&acts[a], x[i]);
            cr_assert(fabs(y[i] - want) <= 1e-5 * fmax(1.0, fabs(want)),
                      "%s(%g): got %.9g want %.9g", acts[a].json, (double)x[i], (double)y[i],
                      want);
        }
    }
}

/* ---- TensorFlow's literal unit-test values ------------------------------ */

static float *ones(size_t n)
{
    float *p = malloc(sizeof(float) * n);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) p[i] = 1.0f;
    return p;
}

typedef double (*expect_fn)(const int64_t *pos);

/* All-ones input and filter, no bias, linear: checks every output element of
 * the layer (model path) and of the op against expect(position). */
static void literal_case(const struct geo *g0, expect_fn expect, const char *what)
{
    for (int cf = 0; cf < 2; cf++) {
        struct mspec c = { .g = *g0, .act = ACT_LINEAR };
        struct geo *g = &c.g;
        char err[DCV_ERRLEN];
        g->cf = cf;
        for (int j = 0; j < g->rank; j++) g->d[j] = 1;
        float *x = ones(in_count(g)), *w = ones(kernel_count(g));
        char *doc = model_doc(&c, w, NULL);
        struct dcv_model *m = load_doc(doc, NULL, what);
        float *y = model_run(m, g, x, what);

        /* the op with the same geometry and explicit output_shape */
        static const char *const first[] = { "NCW", "NCHW", "NCDHW" };
        static const char *const last[] = { "NWC", "NHWC", "NDHWC" };
        struct dcv_op op = { .rank = g->rank, .input = x, .filters = w,
                             .input_ndim = g->rank + 2, .filter_ndim = g->rank + 2,
                             .output_ndim = g->rank + 2, .nstrides = 1,
                             .strides = { g->s[0] }, .padding = g->same ? "SAME" : "VALID",
                             .data_format = cf ? first[g->rank - 1] : last[g->rank - 1] };
        layout_shape(g, false, op.input_shape);
        layout_shape(g, true, op.output_shape);
        for (int j = 0; j < g->rank; j++) op.filter_shape[j] = g->k[j];
        op.filter_shape[g->rank] = g->cout;
        op.filter_shape[g->rank + 1] = g->cin;
        float *yo = malloc(sizeof(float) * out_count(g));
        cr_assert_not_null(yo);
        int rc = dcv_op_run(&op, yo, out_count(g), NULL, err);
        cr_assert_eq(rc, 0, "%s: op: %s", what, err);

        int64_t pout = prod(g->out, g->rank);
        for (int64_t n = 0; n < g->batch; n++)
            for (int64_t oc = 0; oc < g->cout; oc++)
                for (int64_t p = 0; p < pout; p++) {
                    int64_t pos[3];
                    unravel(p, g->out, g->rank, pos);
                    int64_t i = data_index(cf, n, oc, p, g->cout, pout);
                    double want = expect(pos);
                    cr_assert_eq((double)y[i], want, "%s %s: layer output at n=%lld c=%lld "
                                 "pos=(%lld,%lld,%lld) is %g, want %g", what,
                                 cf ? "channels_first" : "channels_last", (long long)n,
                                 (long long)oc, (long long)pos[0],
                                 (long long)(g->rank > 1 ? pos[1] : 0),
                                 (long long)(g->rank > 2 ? pos[2] : 0), (double)y[i], want);
                    cr_assert_eq((double)yo[i], want, "%s %s: op output at n=%lld c=%lld "
                                 "pos=(%lld,%lld) is %g, want %g", what,
                                 cf ? "NC.." : "N..C", (long long)n, (long long)oc,
                                 (long long)pos[0], (long long)(g->rank > 1 ? pos[1] : 0),
                                 (double)yo[i], want);
                }
        dcv_model_free(m);
        free(doc);
        free(x);
        free(w);
        free(y);
        free(yo);
    }
}

/* Every value is in_channels (3) times the number of (input, tap) pairs that
 * land on the position, a product over the dims of per-dim counts. With a
 * 3-tap kernel and stride 2, position o of the 'full' signal is hit by tap 0
 * of input o/2 and tap 2 of input o/2-1 when o is even (both exist only for
 * 0 < o < full-1), and by tap 1 of input (o-1)/2 when o is odd: counts
 * 1,1,2,1,2,...,2,1,1. */

/* testConv2DTransposeSame: 2x6x4x3 → 2x12x8x2, stride 2, SAME. full = 13x9,
 * pad_before = (13-12)//2 = 0, so out = full[0:12] x full[0:8]. */
static double tf_2d_same(const int64_t *o)
{
    bool h_in = o[0] % 2 == 0 && o[0] > 0 && o[0] < 11;
    bool w_in = o[1] % 2 == 0 && o[1] > 0 && o[1] < 7;
    return 3.0 + (h_in && w_in ? 9.0 : h_in || w_in ? 3.0 : 0.0);
}

/* testConv2DTransposeValid: 2x6x4x3 → 2x13x9x2, the whole full signal:
 * per-dim count 2 at even 0 < o < len-1, else 1 → values 3, 6, 12. */
static double tf_2d_valid(const int64_t *o)
{
    int ch = o[0] % 2 == 0 && o[0] > 0 && o[0] < 12 ? 2 : 1;
    int cw = o[1] % 2 == 0 && o[1] > 0 && o[1] < 8 ? 2 : 1;
    return 3.0 * ch * cw;
}

/* testConv2DTransposeSingleStride: 2x6x4x3 → 2x6x4x2, stride 1, SAME.
 * full = 8x6, pad_before = 1: every interior position sees all 3 taps per
 * dim, the border ones only 2 → 3*3*3 = 27 inside, 3*3*2 = 18 on edges,
 * 3*2*2 = 12 in corners (TF: 4*3 + 5*3 / + 2*3). */
static double tf_2d_single_stride(const int64_t *o)
{
    int ch = o[0] > 0 && o[0] < 5 ? 3 : 2;
    int cw = o[1] > 0 && o[1] < 3 ? 3 : 2;
    return 3.0 * ch * cw;
}

/* testConv1DTransposeSingleStride: 2x6x3 → 2x6x2: 9 inside, 6 at both ends. */
static double tf_1d_single_stride(const int64_t *o) { return o[0] > 0 && o[0] < 5 ? 9.0 : 6.0; }

/* testConv1DTransposeSame: 2x4x3 → 2x8x2, stride 2: full = 9, crop [0, 8). */
static double tf_1d_same(const int64_t *o)
{
    return o[0] % 2 == 0 && o[0] > 0 && o[0] < 7 ? 6.0 : 3.0;
}

/* testConv1DTransposeValid: 2x4x3 → 2x9x2 (the full signal). */
static double tf_1d_valid(const int64_t *o)
{
    return o[0] % 2 == 0 && o[0] > 0 && o[0] < 8 ? 6.0 : 3.0;
}

/* conv3d_transpose 1x3x3x3x2 → 1x6x6x6x2 stride 2 SAME with a 3x3x3 filter:
 * 2 input channels times the per-dim counts (full 7, crop [0, 6)). */
static double tf_3d_same(const int64_t *o)
{
    double v = 2.0;
    for (int j = 0; j < 3; j++) v *= o[j] % 2 == 0 && o[j] > 0 && o[j] < 5 ? 2 : 1;
    return v;
}

Test(engine, tf_conv2d_transpose_literals)
{
    struct geo g = { .rank = 2, .batch = 2, .cin = 3, .cout = 2, .k = { 3, 3 },
                     .s = { 2, 2 }, .in = { 6, 4 }, .same = true, .out = { 12, 8 } };
    literal_case(&g, tf_2d_same, "testConv2DTransposeSame");
    g.same = false;
    g.out[0] = 13;
    g.out[1] = 9;
    literal_case(&g, tf_2d_valid, "testConv2DTransposeValid");
    g.same = true;
    g.s[0] = g.s[1] = 1;
    g.out[0] = 6;
    g.out[1] = 4;
    literal_case(&g, tf_2d_single_stride, "testConv2DTransposeSingleStride");
}

Test(engine, tf_conv1d_and_conv3d_transpose_literals)
{
    struct geo g = { .rank = 1, .batch = 2, .cin = 3, .cout = 2, .k = { 3 }, .s = { 1 },
                     .in = { 6 }, .same = true, .out = { 6 } };
    literal_case(&g, tf_1d_single_stride, "testConv1DTransposeSingleStride");
    g.s[0] = 2;
    g.in[0] = 4;
    g.out[0] = 8;
    literal_case(&g, tf_1d_same, "testConv1DTransposeSame");
    g.same = false;
    g.out[0] = 9;
    literal_case(&g, tf_1d_valid, "testConv1DTransposeValid");
    struct geo g3 = { .rank = 3, .batch = 1, .cin = 2, .cout = 2, .k = { 3, 3, 3 },
                      .s = { 2, 2, 2 }, .in = { 3, 3, 3 }, .same = true, .out = { 6, 6, 6 } };
    literal_case(&g3, tf_3d_same, "conv3d_transpose SAME stride 2");
}

/* ---- bfloat16 ---------------------------------------------------------- */

Test(engine, bfloat16_models_are_close_to_fp32)
{
    struct rng r = { 0xbf16ULL };
    static const char *const dtypes[] = {
        "\"bfloat16\"", "\"mixed_bfloat16\"",
        "{\"module\":\"keras\",\"class_name\":\"DTypePolicy\",\"config\":"
        "{\"name\":\"mixed_bfloat16\"},\"registered_name\":null}",
    };
    double worst = 0;
    int n = 0;
    for (int i = 0; i < 24; i++) {
        struct mspec c;
        do draw_spec(&r, 1 + i % 3, &c);
        while (!geo_consistent(&c.g));
        c.dtype = dtypes[i % 3];
        if (i < 6) c.g.cf = i % 2;
        worst = fmax(worst, model_case(&c, &r, 1.0f, TOL_BF16));
        n++;
    }
    /* The inputs and weights carry 24 significant bits; if nothing were
     * rounded to bfloat16 the results would match fp32 to ~1e-7. */
    cr_assert(worst > 1e-4, "bfloat16 models match fp32 to %.3g: was bf16 really used?", worst);
    fprintf(stderr, "engine bf16: %d models, worst relative error vs fp32 reference %.3g\n", n,
            worst);
}

static struct dcv_engine_kernel *direct_kernel(const struct geo *g, const struct act_case *act,
                                               bool bf16, const float *w, const float *b)
{
    char err[DCV_ERRLEN];
    struct dcv_conv conv = { .rank = g->rank, .in_channels = g->cin, .filters = g->cout,
                             .padding = g->same ? DCV_PADDING_SAME : DCV_PADDING_VALID,
                             .channels_first = g->cf, .use_bias = b != NULL,
                             .dtype = bf16 ? DCV_DTYPE_BFLOAT16 : DCV_DTYPE_FLOAT32 };
    for (int j = 0; j < g->rank; j++) {
        conv.kernel[j] = g->k[j];
        conv.strides[j] = g->s[j];
        conv.dilation[j] = g->d[j];
    }
    struct dcv_json *aj = dcv_json_parse(act->json, strlen(act->json), err);
    cr_assert_eq(dcv_activation_parse(aj, &conv.act, err), 0, "%s", err);
    dcv_json_free(aj);
    struct dcv_engine_kernel *k = NULL;
    cr_assert_eq(dcv_engine_kernel_create(&conv, w, b, 0, NULL, &k, err), 0, "%s", err);
    return k;
}

/* CPUs without bf16 kernels (before AVX-512; valgrind) compute in f32 on
 * bf16-rounded weights and inputs: against a reference fed the same
 * rounded values the error is fp32's, not bf16's. Where this CPU has bf16
 * kernels, the native and emulated outputs agree to fp32 accumulation
 * noise too. */
Test(engine, bf16_emulation_is_f32_compute_on_rounded_values)
{
    struct rng r = { 0xe3b16ULL };
    char err[DCV_ERRLEN], desc[768];
    double worst = 0, worst_native = 0;
    int native_runs = 0;
    for (int i = 0; i < 18; i++) {
        struct geo g;
        const struct act_case *act = draw_act(&r);
        draw_geo(&r, 1 + i % 3, true, &g);
        draw_out(&r, &g);
        g.cf = i % 2;
        describe(&g, act->json, NULL, desc, sizeof desc);
        size_t nw = kernel_count(&g), nx = in_count(&g), ny = out_count(&g);
        float *w = rand_buf(&r, nw, 0.5f), *b = rand_buf(&r, (size_t)g.cout, 0.5f);
        float *x = rand_buf(&r, nx, 1.0f), *wr = malloc(sizeof(float) * nw);
        float *xr = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
        float *yn = malloc(sizeof(float) * ny);
        double *ref = malloc(sizeof(double) * ny);
        cr_assert(wr && xr && y && yn && ref);
        for (size_t j = 0; j < nw; j++) wr[j] = tu_bf16(w[j]);
        for (size_t j = 0; j < nx; j++) xr[j] = tu_bf16(x[j]);
        dcv_engine_force_bf16_emulation(true);
        struct dcv_engine_kernel *k = direct_kernel(&g, act, true, w, b);
        dcv_engine_force_bf16_emulation(false);
        struct dcv_engine_stats st;
        dcv_engine_kernel_stats(k, &st);
        cr_assert(strstr(st.impl, "(bf16 emulated)"), "impl '%s' says so", st.impl);
        cr_assert_eq(dcv_engine_run(k, x, g.batch, g.in, g.out, y, NULL, err), 0, "%s: %s", desc,
                     err);
        ref_conv(&g, xr, wr, b, act, ref);
        struct worst e = compare(y, ref, ny);
        cr_assert(e.rel <= 1e-5, "%s: emulated bf16 vs reference on rounded values: %.3g at %zu "
                  "(got %.9g, want %.9g)", desc, e.rel, e.at, e.got, e.want);
        worst = fmax(worst, e.rel);
        dcv_engine_kernel_free(k);
        k = direct_kernel(&g, act, true, w, b);
        dcv_engine_kernel_stats(k, &st);
        if (!strstr(st.impl, "emulated")) {
            cr_assert_eq(dcv_engine_run(k, x, g.batch, g.in, g.out, yn, NULL, err), 0, "%s", err);
            for (size_t j = 0; j < ny; j++) ref[j] = yn[j];
            e = compare(y, ref, ny);
            cr_assert(e.rel <= 1e-5, "%s: native vs emulated bf16 differ by %.3g", desc, e.rel);
            worst_native = fmax(worst_native, e.rel);
            native_runs++;
        }
        dcv_engine_kernel_free(k);
        free(w), free(b), free(x), free(wr), free(xr), free(y), free(yn), free(ref);
    }
    fprintf(stderr, "engine bf16 emulation: 18 layers, worst error vs rounded-value reference "
            "%.3g; %d compared with native bf16, worst difference %.3g\n", worst, native_runs,
            worst_native);
}

/* Outputs big enough for the bias/activation pass to be split over two
 * threads (its threshold lowered to 65536 values here: the default split
 * starts at 512K), with odd channel counts so splits fall inside rows and
 * planes. */
Test(engine, big_outputs_bias_pass_split_over_threads)
{
    static const int acts_idx[] = { 0, 1, 14, 15, 24, 27, 17, 6 };
    struct rng r = { 0xb16ULL };
    char err[DCV_ERRLEN], desc[768];
    dcv_engine_set_threads(2);
    dcv_engine_set_epilogue_split(65536);
    for (size_t i = 0; i < sizeof acts_idx / sizeof *acts_idx; i++) {
        const struct act_case *act = &acts[acts_idx[i]];
        struct geo g = { .rank = 2, .cf = i % 2, .same = true, .batch = 1 + (int64_t)(i % 3 == 2),
                         .cin = 8, .cout = 17, .k = { 3, 4 }, .s = { 2, 2 }, .d = { 1, 1 },
                         .in = { 33, 31 }, .out = { 66, 62 } };
        describe(&g, act->json, NULL, desc, sizeof desc);
        cr_assert_geq(out_count(&g), 65536);
        float *w = rand_buf(&r, kernel_count(&g), 0.3f), *b = rand_buf(&r, (size_t)g.cout, 1);
        float *x = rand_buf(&r, in_count(&g), 1.0f), *y = malloc(sizeof(float) * out_count(&g));
        double *ref = malloc(sizeof(double) * out_count(&g));
        cr_assert(y && ref);
        struct dcv_engine_kernel *k = direct_kernel(&g, act, false, w, i == 3 ? NULL : b);
        cr_assert_eq(dcv_engine_run(k, x, g.batch, g.in, g.out, y, NULL, err), 0, "%s: %s", desc,
                     err);
        ref_conv(&g, x, w, i == 3 ? NULL : b, act, ref);
        struct worst e = compare(y, ref, out_count(&g));
        cr_assert(e.rel <= TOL_F32, "%s: worst error %.3g at %zu: got %.9g, want %.9g", desc,
                  e.rel, e.at, e.got, e.want);
        dcv_engine_kernel_free(k);
        free(w), free(b), free(x), free(y), free(ref);
    }
    dcv_engine_set_epilogue_split(0);
}

/* ---- the ReLU family's zeros through the engine --------------------------
 * TensorFlow answers +0 below zero (tf.nn.relu is Eigen's max(x, 0)); the
 * bias pass used to answer 0 * x = -0. A 1x1 kernel of ones over one input
 * channel makes every output exactly x + bias[c], so the expected value and
 * sign are worked from Keras 3.15's ReLU.static_call written out here, step
 * by step, in float: relu = max(x, 0) keeping x on a tie, a threshold keeps
 * x above it and 0 elsewhere, max_value clips, a slope subtracts
 * slope * relu(threshold - x); leaky_relu is x > 0 ? x : x * alpha. */
struct keras_relu { const char *json; float slope, maxv, th; bool leaky; };

static const struct keras_relu relu_family[] = {
    { "\"relu\"", 0, INFINITY, 0, false },
    { "\"relu6\"", 0, 6, 0, false },
    { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0}}", 0, INFINITY, 1, false },
    { "{\"class_name\":\"ReLU\",\"config\":{\"max_value\":2.0}}", 0, 2, 0, false },
    { "{\"class_name\":\"ReLU\",\"config\":{\"negative_slope\":0.25,\"max_value\":4}}", 0.25f, 4,
      0, false },
    { "{\"class_name\":\"ReLU\",\"config\":{\"negative_slope\":0.5,\"threshold\":1}}", 0.5f,
      INFINITY, 1, false },
    { "\"leaky_relu\"", 0.2f, INFINITY, 0, true },
    { "{\"class_name\":\"LeakyReLU\",\"config\":{\"negative_slope\":0.1}}", 0.1f, INFINITY, 0,
      true },
};

static float eigen_max(float a, float b) { return a < b ? b : a; }

static float keras_relu_ref(const struct keras_relu *k, float x)
{
    if (k->leaky) return x > 0 ? x : x * k->slope;
    float neg = k->slope != 0 ? eigen_max(-x + k->th, 0) : 0, y;
    y = k->th != 0 ? (x > k->th ? x : 0.0f) : eigen_max(x, 0);
    if (isfinite(k->maxv)) y = eigen_max(y < k->maxv ? y : k->maxv, 0);
    if (k->slope != 0) y -= k->slope * neg;
    return y;
}

static const float zx[] = { -3.0f, -0.5f, 0.25f, 2.0f, 7.0f, -1.0f, 0.0f, 1.0f };
#define NZX (sizeof zx / sizeof *zx)

/* One layer: cout filters (odd, under a vector), x repeated `reps` times. */
static void relu_zero_case(const struct keras_relu *kr, bool cf, bool bias, bool bf16,
                           bool emulate, size_t reps)
{
    static const float b3[] = { 0.0f, -1.0f, 0.25f };
    char err[DCV_ERRLEN];
    struct geo g = { .rank = 1, .cf = cf, .batch = 1, .cin = 1, .cout = 3, .k = { 1 },
                     .s = { 1 }, .d = { 1 }, .in = { (int64_t)(NZX * reps) },
                     .out = { (int64_t)(NZX * reps) } };
    size_t n = NZX * reps, ny = n * 3;
    float w[3] = { 1, 1, 1 }, *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * ny);
    cr_assert(x && y);
    for (size_t i = 0; i < n; i++) x[i] = zx[i % NZX];
    struct act_case act = { kr->json, RA_RELU, 0, 0, 0 };
    if (emulate) dcv_engine_force_bf16_emulation(true);
    struct dcv_engine_kernel *k = direct_kernel(&g, &act, bf16, w, bias ? b3 : NULL);
    dcv_engine_force_bf16_emulation(false);
    struct dcv_engine_stats st;
    dcv_engine_kernel_stats(k, &st);
    cr_assert_eq(dcv_engine_run(k, x, 1, g.in, g.out, y, NULL, err), 0, "%s", err);
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < 3; c++) {
            float got = y[cf ? c * n + i : i * 3 + c];
            float want = keras_relu_ref(kr, x[i] + (bias ? b3[c] : 0));
            cr_assert(got == want && !signbit(got) == !signbit(want),
                      "%s (%s, %s, %s%s, %s): x %g + bias -> %g (sign bit %d), TensorFlow: %g "
                      "(sign bit %d)", kr->json, cf ? "channels_first" : "channels_last",
                      bias ? "bias" : "no bias", bf16 ? "bf16 " : "fp32", st.impl,
                      reps > 1 ? "split pass" : "one thread", (double)x[i], (double)got,
                      signbit(got) != 0, (double)want, signbit(want) != 0);
        }
    dcv_engine_kernel_free(k);
    free(x), free(y);
}

Test(engine, relu_family_answers_plus_zero_as_tensorflow)
{
    for (size_t a = 0; a < sizeof relu_family / sizeof *relu_family; a++)
        for (int v = 0; v < 8; v++) {
            bool cf = v & 1, bias = v & 2, bf16 = v & 4;
            relu_zero_case(&relu_family[a], cf, bias, bf16, false, 1);
            if (bf16) relu_zero_case(&relu_family[a], cf, bias, true, true, 1);
        }
}

/* The same over two threads (the pass split inside rows and planes): 2.16M
 * multiply-adds, above the one-thread bound of dcv_engine_run (2M). */
Test(engine, relu_family_plus_zero_in_the_split_pass)
{
    dcv_engine_set_threads(2);
    dcv_engine_set_epilogue_split(4096);
    for (size_t a = 0; a < sizeof relu_family / sizeof *relu_family; a++)
        for (int v = 0; v < 2; v++) relu_zero_case(&relu_family[a], v, true, false, false, 90001);
    dcv_engine_set_epilogue_split(0);
}

/* ---- concurrency ------------------------------------------------------- */

struct worker {
    struct dcv_model *m;
    const float *w, *b;
    const struct act_case *act;
    int id, threads, threads_after, runs;
    double tol, worst;
    char msg[DCV_ERRLEN + 256];
};

/* The model of the concurrency tests: Conv2DTranspose k 3x2, strides 2x1,
 * same, cin 3, cout 4, bias, gelu. */
static struct geo conc_geo(int64_t batch, int64_t h, int64_t w)
{
    struct geo g = { .rank = 2, .same = true, .batch = batch, .cin = 3, .cout = 4,
                     .k = { 3, 2 }, .s = { 2, 1 }, .d = { 1, 1 }, .in = { h, w } };
    for (int j = 0; j < 2; j++) g.out[j] = keras_len(g.in[j], g.k[j], g.s[j], 1, true, -1);
    return g;
}

static void *worker_main(void *p)
{
    struct worker *wk = p;
    struct rng r = { 0x7000ULL + (uint64_t)wk->id };
    char err[DCV_ERRLEN];
    dcv_engine_set_threads(wk->threads);
    for (int it = 0; it < 20; it++) {
        /* 6 shapes per thread, repeating; threads differ in batch order */
        struct geo g = conc_geo(1 + (it + wk->id) % 2, 4 + 3 * ((it / 2) % 3), 5 + it % 2);
        int64_t ishape[4];
        layout_shape(&g, false, ishape);
        float *x = rand_buf(&r, in_count(&g), 1.0f), *y = malloc(sizeof(float) * out_count(&g));
        double *ref = malloc(sizeof(double) * out_count(&g));
        if (!y || !ref) {
            snprintf(wk->msg, sizeof wk->msg, "out of memory");
            return NULL;
        }
        int rc = dcv_model_infer(wk->m, x, ishape, 4, y, out_count(&g), NULL, err);
        if (rc) {
            snprintf(wk->msg, sizeof wk->msg, "thread %d run %d: %s", wk->id, it, err);
        } else {
            ref_conv(&g, x, wk->w, wk->b, wk->act, ref);
            struct worst wr = compare(y, ref, out_count(&g));
            wk->worst = fmax(wk->worst, wr.rel);
            if (!(wr.rel <= wk->tol))
                snprintf(wk->msg, sizeof wk->msg, "thread %d run %d (batch %lld in %lldx%lld): "
                         "error %.3g at %zu: got %.9g want %.9g", wk->id, it,
                         (long long)g.batch, (long long)g.in[0], (long long)g.in[1], wr.rel,
                         wr.at, wr.got, wr.want);
        }
        free(x);
        free(y);
        free(ref);
        if (wk->msg[0]) return NULL;
        wk->runs++;
    }
    wk->threads_after = dcv_engine_threads();
    return NULL;
}

static void concurrent_runs(const struct act_case *act, bool bf16, size_t cache_cap)
{
    struct rng r = { 0xc0ULL };
    struct geo g = conc_geo(1, 1, 1);
    struct mspec c = { .g = g, .bias = true, .act = act, .dtype = bf16 ? "\"bfloat16\"" : NULL };
    float *w = rand_buf(&r, kernel_count(&g), 0.5f), *b = rand_buf(&r, (size_t)g.cout, 0.5f);
    char *doc = model_doc(&c, w, b);
    struct dcv_model_opts opts = { .cache_cap = cache_cap };
    struct dcv_model *m = load_doc(doc, &opts, "concurrency model");
    int main_threads = dcv_engine_threads();
    struct worker wk[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        wk[i] = (struct worker){ .m = m, .w = w, .b = b, .act = act, .id = i,
                                 .threads = 1 + i % 2, .tol = bf16 ? TOL_BF16 : TOL_F32 };
        cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &wk[i]), 0);
    }
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(wk[i].msg[0], 0, "%s", wk[i].msg);
        cr_assert_eq(wk[i].runs, 20, "thread %d did %d runs", i, wk[i].runs);
        cr_assert_eq(wk[i].threads_after, wk[i].threads, "thread %d set %d OpenMP threads "
                     "but reads back %d", i, wk[i].threads, wk[i].threads_after);
        worst = fmax(worst, wk[i].worst);
    }
    cr_assert_eq(dcv_engine_threads(), main_threads, "setting threads in workers changed the "
                 "main thread's count");
    struct dcv_engine_stats st;
    dcv_engine_kernel_stats(m->kernel, &st);
    if (cache_cap == 0) cr_assert_gt(st.cache_hits, 0);
    else cr_assert_gt(st.evictions, 0);
    size_t burst_entries = st.cache_entries;
    if (cache_cap) {
        /* The cache may exceed its cap while every plan is busy; once the
         * threads are gone, the next insert must bring it back to the cap. */
        struct geo g1 = conc_geo(3, 9, 9);
        int64_t ishape[4];
        char err[DCV_ERRLEN];
        layout_shape(&g1, false, ishape);
        float *x = rand_buf(&r, in_count(&g1), 1.0f), *y = malloc(sizeof(float) * out_count(&g1));
        cr_assert_not_null(y);
        cr_assert_eq(dcv_model_infer(m, x, ishape, 4, y, out_count(&g1), NULL, err), 0, "%s", err);
        dcv_engine_kernel_stats(m->kernel, &st);
        cr_assert_leq(st.cache_entries, cache_cap, "after a burst that left %zu plans, a new "
                      "shape on an idle cache with cap %zu still leaves %zu plans",
                      burst_entries, cache_cap, st.cache_entries);
        free(x);
        free(y);
    }
    fprintf(stderr, "engine concurrency (%s): 4 threads x 20 runs, worst relative error %.3g, "
            "cache %zu entries, %llu hits, %llu misses, %llu evictions\n",
            bf16 ? "bf16" : "fp32", worst, st.cache_entries, (unsigned long long)st.cache_hits,
            (unsigned long long)st.cache_misses, (unsigned long long)st.evictions);
    dcv_model_free(m);
    free(doc);
    free(w);
    free(b);
}

Test(engine, four_threads_share_one_model)
{
    concurrent_runs(&acts[13] /* gelu: fused post-op */, false, 0);
}

Test(engine, four_threads_share_one_model_portable_activation)
{
    concurrent_runs(&acts[6] /* softsign: portable pass */, false, 0);
}

Test(engine, four_threads_share_one_bf16_model)
{
    concurrent_runs(ACT_RELU, true, 0);
}

/* A one-plan cache: plans are evicted while other threads run theirs. */
Test(engine, four_threads_with_a_one_plan_cache)
{
    concurrent_runs(&acts[17] /* softmax */, false, 1);
}

/* ---- plan cache -------------------------------------------------------- */

static void cache_run(struct dcv_model *m, const struct mspec *c, const float *w,
                      const float *b, int64_t n, struct rng *r)
{
    struct geo g = c->g;
    char desc[768];
    g.in[0] = n;
    g.out[0] = keras_len(n, g.k[0], g.s[0], 1, g.same, -1);
    describe(&g, c->act->json, NULL, desc, sizeof desc);
    float *x = rand_buf(r, in_count(&g), 1.0f), *y = model_run(m, &g, x, desc);
    double *ref = malloc(sizeof(double) * out_count(&g));
    cr_assert_not_null(ref);
    ref_conv(&g, x, w, b, c->act, ref);
    struct worst wr = compare(y, ref, out_count(&g));
    cr_assert(wr.rel <= TOL_F32, "%s: error %.3g at %zu", desc, wr.rel, wr.at);
    free(x);
    free(y);
    free(ref);
}

Test(engine, plan_cache_hits_misses_and_evictions)
{
    struct rng r = { 0xcac4eULL };
    struct mspec c = { .g = { .rank = 1, .batch = 1, .cin = 2, .cout = 3, .k = { 3 },
                              .s = { 2 }, .d = { 1 }, .in = { 5 } },
                       .bias = true, .act = ACT_RELU };
    float *w = rand_buf(&r, kernel_count(&c.g), 0.5f), *b = rand_buf(&r, 3, 0.5f);
    char *doc = model_doc(&c, w, b);
    struct dcv_model_opts opts = { .cache_cap = 2 };
    struct dcv_model *m = load_doc(doc, &opts, "cache model");
    struct dcv_engine_stats s0, s;
    /* Load builds one plan for the default size 8 (prepack): P. */
    dcv_engine_kernel_stats(m->kernel, &s0);
    cr_assert_eq(s0.cache_entries, 1);
    cr_assert_gt(strlen(s0.impl), 0, "no oneDNN implementation name recorded");

    cache_run(m, &c, w, b, 5, &r);                       /* A: miss {P, A} */
    dcv_engine_kernel_stats(m->kernel, &s);
    cr_assert_eq(s.cache_misses, s0.cache_misses + 1);
    cr_assert_eq(s.cache_hits, s0.cache_hits);
    cache_run(m, &c, w, b, 5, &r);                       /* A again: hit */
    dcv_engine_kernel_stats(m->kernel, &s);
    cr_assert_eq(s.cache_misses, s0.cache_misses + 1);
    cr_assert_eq(s.cache_hits, s0.cache_hits + 1, "second run of the same shape is no hit");
    cr_assert_eq(s.evictions, 0);
    cache_run(m, &c, w, b, 6, &r);                       /* B: miss, evicts P */
    cache_run(m, &c, w, b, 7, &r);                       /* C: miss, evicts A */
    dcv_engine_kernel_stats(m->kernel, &s);
    cr_assert_eq(s.cache_misses, s0.cache_misses + 3);
    cr_assert_eq(s.evictions, 2);
    cr_assert_eq(s.cache_entries, 2, "cache holds %zu plans with cap 2", s.cache_entries);
    cache_run(m, &c, w, b, 5, &r);                       /* A: evicted → miss, evicts B */
    cache_run(m, &c, w, b, 7, &r);                       /* C: still cached → hit */
    dcv_engine_kernel_stats(m->kernel, &s);
    cr_assert_eq(s.cache_misses, s0.cache_misses + 4);
    cr_assert_eq(s.cache_hits, s0.cache_hits + 2);
    cr_assert_eq(s.evictions, 3);
    cr_assert_eq(s.cache_entries, 2);
    /* a different batch is a different plan too */
    c.g.batch = 2;
    cache_run(m, &c, w, b, 7, &r);
    dcv_engine_kernel_stats(m->kernel, &s);
    cr_assert_eq(s.cache_misses, s0.cache_misses + 5);
    /* many shapes in a row: bounded, and every result still right */
    c.g.batch = 1;
    for (int64_t n = 1; n <= 12; n++) cache_run(m, &c, w, b, n, &r);
    dcv_engine_kernel_stats(m->kernel, &s);
    cr_assert_leq(s.cache_entries, 2);
    cr_assert_geq(s.evictions, 14);
    dcv_model_free(m);
    free(doc);
    free(w);
    free(b);
}

/* ---- allocation failures ----------------------------------------------- */

struct fault_arg {
    struct dcv_model *m;
    struct geo small, big;
    const float *w, *b;
    int rc_small, rc_fail, rc_after;
    double err_after;
    char msg[DCV_ERRLEN];
};

/* Fresh thread: no execution buffers yet, so the first run must allocate. */
static void *fault_fresh(void *p)
{
    struct fault_arg *a = p;
    char err[DCV_ERRLEN];
    struct rng r = { 0xfa11ULL };
    int64_t shape[5];
    int nd = layout_shape(&a->small, false, shape);
    float *x = rand_buf(&r, in_count(&a->small), 1.0f);
    float *y = malloc(sizeof(float) * out_count(&a->small));
    double *ref = malloc(sizeof(double) * out_count(&a->small));
    dcv_engine_inject_alloc_failures(1);
    a->rc_fail = dcv_model_infer(a->m, x, shape, nd, y, out_count(&a->small), NULL, a->msg);
    a->rc_after = dcv_model_infer(a->m, x, shape, nd, y, out_count(&a->small), NULL, err);
    if (!a->rc_after) {
        ref_conv(&a->small, x, a->w, a->b, ACT_RELU, ref);
        a->err_after = compare(y, ref, out_count(&a->small)).rel;
    }
    free(x);
    free(y);
    free(ref);
    return NULL;
}

/* Thread with buffers for a small input; a much bigger bf16 input needs
 * bigger scratch/bf16 buffers. */
static void *fault_growth(void *p)
{
    struct fault_arg *a = p;
    char err[DCV_ERRLEN];
    struct rng r = { 0xfa12ULL };
    int64_t s1[5], s2[5];
    int nd = layout_shape(&a->small, false, s1);
    layout_shape(&a->big, false, s2);
    float *xs = rand_buf(&r, in_count(&a->small), 1.0f), *xb = rand_buf(&r, in_count(&a->big), 1);
    float *ys = malloc(sizeof(float) * out_count(&a->small));
    float *yb = malloc(sizeof(float) * out_count(&a->big));
    double *ref = malloc(sizeof(double) * out_count(&a->big));
    a->rc_small = dcv_model_infer(a->m, xs, s1, nd, ys, out_count(&a->small), NULL, err);
    dcv_engine_inject_alloc_failures(1);
    a->rc_fail = dcv_model_infer(a->m, xb, s2, nd, yb, out_count(&a->big), NULL, a->msg);
    a->rc_after = dcv_model_infer(a->m, xb, s2, nd, yb, out_count(&a->big), NULL, err);
    if (!a->rc_after) {
        ref_conv(&a->big, xb, a->w, a->b, ACT_RELU, ref);
        a->err_after = compare(yb, ref, out_count(&a->big)).rel;
    }
    free(xs);
    free(xb);
    free(ys);
    free(yb);
    free(ref);
    return NULL;
}

static void fault_case(bool bf16, void *(*fn)(void *))
{
    struct rng r = { 0xfa1ULL };
    struct mspec c = { .g = { .rank = 2, .cf = true, .same = true, .batch = 1, .cin = 4,
                              .cout = 3, .k = { 3, 3 }, .s = { 2, 2 }, .d = { 1, 1 } },
                       .bias = true, .act = ACT_RELU, .dtype = bf16 ? "\"bfloat16\"" : NULL };
    struct fault_arg a = { 0 };
    float *w = rand_buf(&r, kernel_count(&c.g), 0.5f), *b = rand_buf(&r, 3, 0.5f);
    char *doc = model_doc(&c, w, b);
    a.m = load_doc(doc, NULL, "fault model");
    a.w = w;
    a.b = b;
    a.small = a.big = c.g;
    a.big.batch = 2;
    for (int j = 0; j < 2; j++) {
        a.small.in[j] = 3;
        a.big.in[j] = 64;
        a.small.out[j] = keras_len(3, 3, 2, 1, true, -1);
        a.big.out[j] = keras_len(64, 3, 2, 1, true, -1);
    }
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fn, &a), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(a.rc_small, 0);
    cr_assert_eq(a.rc_fail, DCV_ENOMEM, "injected failure gave %d (%s)", a.rc_fail, a.msg);
    cr_assert(strstr(a.msg, "memory"), "%s", a.msg);
    cr_assert_eq(a.rc_after, 0, "the run after an injected failure failed too");
    cr_assert_leq(a.err_after, bf16 ? TOL_BF16 : TOL_F32);
    dcv_model_free(a.m);
    free(doc);
    free(w);
    free(b);
}

Test(engine, injected_alloc_failure_on_a_fresh_thread)
{
    fault_case(false, fault_fresh);
}

Test(engine, injected_alloc_failure_when_bf16_buffers_grow)
{
    fault_case(true, fault_growth);
}

/* ---- the op ------------------------------------------------------------ */

static double op_case(const struct geo *g, const float *x, const float *w, int sform,
                      const char *padding, const char *fmt)
{
    char err[DCV_ERRLEN], desc[768];
    int r = g->rank, nd = r + 2;
    struct dcv_op op = { .rank = r, .input = x, .filters = w, .input_ndim = nd,
                         .filter_ndim = nd, .output_ndim = nd, .padding = padding,
                         .data_format = fmt };
    layout_shape(g, false, op.input_shape);
    layout_shape(g, true, op.output_shape);
    for (int j = 0; j < r; j++) op.filter_shape[j] = g->k[j];
    op.filter_shape[r] = g->cout;
    op.filter_shape[r + 1] = g->cin;
    /* strides / dilations: length N, length N+2 (1 at batch and channels),
     * or a single value when uniform; dilations may be omitted when all 1 */
    bool su = true, du = true;
    for (int j = 1; j < r; j++) su = su && g->s[j] == g->s[0], du = du && g->d[j] == g->d[0];
    int sax = g->cf ? 2 : 1;
    if (sform == 2 || (sform == 1 && !su)) {
        op.nstrides = op.ndilations = nd;
        for (int i = 0; i < nd; i++) op.strides[i] = op.dilations[i] = 1;
        for (int j = 0; j < r; j++) {
            op.strides[sax + j] = g->s[j];
            op.dilations[sax + j] = g->d[j];
        }
    } else if (sform == 1) {
        op.nstrides = 1;
        op.strides[0] = g->s[0];
        op.ndilations = du && g->d[0] == 1 ? 0 : r;
        for (int j = 0; j < r; j++) op.dilations[j] = g->d[j];
    } else {
        op.nstrides = op.ndilations = r;
        for (int j = 0; j < r; j++) {
            op.strides[j] = g->s[j];
            op.dilations[j] = g->d[j];
        }
    }
    describe(g, "linear (op)", NULL, desc, sizeof desc);
    float *y = malloc(sizeof(float) * out_count(g));
    double *ref = malloc(sizeof(double) * out_count(g));
    cr_assert(y && ref);
    int rc = dcv_op_run(&op, y, out_count(g), NULL, err);
    cr_assert_eq(rc, 0, "%s %s %s: %s", desc, padding, fmt ? fmt : "(default)", err);
    ref_conv(g, x, w, NULL, ACT_LINEAR, ref);
    struct worst wr = compare(y, ref, out_count(g));
    cr_assert(wr.rel <= TOL_F32, "%s %s %s: worst error %.3g at %zu: got %.9g, want %.9g", desc,
              padding, fmt ? fmt : "(default)", wr.rel, wr.at, wr.got, wr.want);
    free(y);
    free(ref);
    return wr.rel;
}

Test(engine, op_strides_with_dilations_and_channels_first)
{
    static const char *const first[] = { "NCW", "NCHW", "NCDHW" };
    static const char *const last[] = { "NWC", "NHWC", "NDHWC" };
    static const char *const pads[2][2] = { { "VALID", "valid" }, { "SAME", "Same" } };
    struct rng r = { 0x0b5ULL };
    double worst = 0;
    /* fixed: conv1d NCW s2 d2, conv2d NCHW s(2,3) d(2,1), conv3d NCDHW s2 d(1,2,3) */
    static const struct geo fixed[] = {
        { .rank = 1, .cf = true, .same = true, .batch = 2, .cin = 3, .cout = 2, .k = { 3 },
          .s = { 2 }, .d = { 2 }, .in = { 5 }, .out = { 10 } },
        { .rank = 1, .cf = true, .same = false, .batch = 1, .cin = 2, .cout = 3, .k = { 4 },
          .s = { 3 }, .d = { 2 }, .in = { 4 }, .out = { 17 } },
        { .rank = 2, .cf = true, .same = true, .batch = 2, .cin = 2, .cout = 3, .k = { 3, 2 },
          .s = { 2, 3 }, .d = { 2, 1 }, .in = { 4, 3 }, .out = { 7, 9 } },
        { .rank = 2, .cf = true, .same = false, .batch = 1, .cin = 3, .cout = 2, .k = { 2, 3 },
          .s = { 2, 2 }, .d = { 3, 2 }, .in = { 3, 4 }, .out = { 9, 12 } },
        { .rank = 3, .cf = true, .same = true, .batch = 1, .cin = 2, .cout = 2,
          .k = { 2, 3, 2 }, .s = { 2, 2, 2 }, .d = { 1, 2, 3 }, .in = { 3, 2, 3 },
          .out = { 6, 3, 5 } },
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        const struct geo *g = &fixed[i];
        cr_assert(geo_consistent(g), "fixed case %zu is not consistent", i);
        float *x = rand_buf(&r, in_count(g), 1.0f), *w = rand_buf(&r, kernel_count(g), 0.5f);
        worst = fmax(worst, op_case(g, x, w, (int)i % 3, pads[g->same][0],
                                    first[g->rank - 1]));
        free(x);
        free(w);
    }
    for (int i = 0; i < 45; i++) {
        struct geo g;
        draw_geo(&r, 1 + i % 3, true, &g);
        draw_out(&r, &g);
        float *x = rand_buf(&r, in_count(&g), 1.0f), *w = rand_buf(&r, kernel_count(&g), 0.5f);
        const char *fmt = g.cf ? first[g.rank - 1] : i % 2 ? last[g.rank - 1] : NULL;
        worst = fmax(worst, op_case(&g, x, w, i % 3, pads[g.same][i % 2], fmt));
        free(x);
        free(w);
    }
    fprintf(stderr, "engine op: 50 cases, worst relative error %.3g\n", worst);
}

/* ---- chunked runs and the stop flag ------------------------------------ */

/* A chunked run (the test hook fixes its chunks: `items` per chunk, the
 * rest single items) must give the very bits of the whole run, for every
 * way the engine finishes a plan: its own bias pass (linear, the ReLU
 * family), softmax after it, binary_add with eltwise post-ops, the
 * portable pass, no bias, bf16 native and emulated; ranks 1-3 and both
 * layouts. bf16 cases run on bf16-exact inputs, so the reference holds
 * them to f32 accumulation. */
struct chunk_case {
    struct geo g;              /* .rank 0: drawn, of this rank and layout */
    int rank, act, bf16;       /* bf16: 0 no, 1 native where the CPU has it, 2 emulated */
    bool cf, bias;
    int64_t batch, items;
};

static const struct chunk_case chunk_cases[] = {
    { .rank = 1, .act = 0, .bias = true, .batch = 5, .items = 2 },            /* linear */
    { .rank = 2, .act = 1, .cf = true, .bias = true, .batch = 7, .items = 3 }, /* relu */
    { .rank = 3, .act = 17, .bias = true, .batch = 5, .items = 2 },           /* softmax */
    { .rank = 2, .act = 3, .bias = true, .batch = 6, .items = 4 },            /* sigmoid */
    { .rank = 1, .act = 6, .cf = true, .bias = true, .batch = 7, .items = 3 }, /* softsign */
    { .rank = 3, .act = 24, .cf = true, .batch = 5, .items = 3 },             /* ReLU(thr, max) */
    { .rank = 2, .act = 15, .bias = true, .bf16 = 1, .batch = 7, .items = 2 }, /* leaky_relu */
    { .rank = 1, .act = 13, .bias = true, .bf16 = 2, .batch = 5, .items = 2 }, /* gelu */
    { .rank = 3, .act = 14, .cf = true, .bias = true, .bf16 = 1, .batch = 6, .items = 4 },
    /* wide enough for two threads and the JIT's blocked layouts */
    { .g = { .rank = 2, .same = true, .cin = 16, .cout = 17, .k = { 3, 3 }, .s = { 2, 2 },
             .d = { 1, 1 }, .in = { 20, 20 }, .out = { 40, 40 } },
      .act = 1, .bias = true, .batch = 7, .items = 3 },
    { .g = { .rank = 2, .cf = true, .cin = 16, .cout = 17, .k = { 3, 3 }, .s = { 2, 2 },
             .d = { 1, 1 }, .in = { 20, 20 }, .out = { 41, 41 } },
      .act = 3, .bias = true, .bf16 = 1, .batch = 7, .items = 3 },
};

static void chunk_case_run(const struct chunk_case *c, struct rng *r)
{
    char err[DCV_ERRLEN], desc[768];
    struct geo g = c->g;
    const struct act_case *act = &acts[c->act];
    if (!g.rank) {
        draw_geo(r, c->rank, true, &g);
        g.cf = c->cf;
        draw_out(r, &g);
    }
    g.batch = c->batch;
    cr_assert(geo_consistent(&g));
    describe(&g, act->json, NULL, desc, sizeof desc);
    size_t nw = kernel_count(&g), nx = in_count(&g), ny = out_count(&g);
    float *w0 = rand_buf(r, nw, 0.5f), *b = rand_buf(r, (size_t)g.cout, 0.5f);
    float *x0 = rand_buf(r, nx, 1.0f);
    float *w = c->bf16 ? tu_bf16_copy(w0, nw) : w0, *x = c->bf16 ? tu_bf16_copy(x0, nx) : x0;
    float *yw = malloc(sizeof(float) * ny), *yc = malloc(sizeof(float) * ny);
    double *ref = malloc(sizeof(double) * ny);
    cr_assert(w && x && yw && yc && ref);
    dcv_engine_force_bf16_emulation(c->bf16 == 2);
    struct dcv_engine_kernel *k = direct_kernel(&g, act, c->bf16, w, c->bias ? b : NULL);
    dcv_engine_force_bf16_emulation(false);
    struct dcv_engine_stats st0, st;
    dcv_engine_set_chunk_items(0);
    cr_assert_eq(dcv_engine_run(k, x, g.batch, g.in, g.out, yw, NULL, err), 0, "%s", err);
    dcv_engine_kernel_stats(k, &st0);
    cr_assert_eq(st0.chunked_runs, 0, "%s: a small run is not cut", desc);
    dcv_engine_set_chunk_items(c->items);
    cr_assert_eq(dcv_engine_run(k, x, g.batch, g.in, g.out, yc, NULL, err), 0, "%s", err);
    dcv_engine_set_chunk_items(0);
    dcv_engine_kernel_stats(k, &st);
    cr_assert_eq(st.chunked_runs, 1);
    cr_assert_eq(st.chunks, (uint64_t)(c->batch / c->items + c->batch % c->items),
                 "%s: %llu executions for %lld items in chunks of %lld", desc,
                 (unsigned long long)st.chunks, (long long)c->batch, (long long)c->items);
    cr_assert_eq(st.cache_misses - st0.cache_misses, 2, "%s: plans for 1 and %lld items",
                 desc, (long long)c->items);
    for (size_t i = 0; i < ny; i++)
        cr_assert(memcmp(&yw[i], &yc[i], sizeof(float)) == 0, "%s%s: value %zu is %.9g "
                  "chunked, %.9g whole", desc, c->bf16 ? " bf16" : "", i, (double)yc[i],
                  (double)yw[i]);
    ref_conv(&g, x, w, c->bias ? b : NULL, act, ref);
    struct worst e = compare(yc, ref, ny);
    cr_assert(e.rel <= (c->bf16 ? 1e-5 : TOL_F32), "%s: worst error %.3g at %zu: got %.9g, "
              "want %.9g", desc, e.rel, e.at, e.got, e.want);
    dcv_engine_kernel_free(k);
    if (c->bf16) free(w), free(x);
    free(w0), free(b), free(x0), free(yw), free(yc), free(ref);
}

Test(engine, chunked_runs_equal_whole_runs)
{
    struct rng r = { 0xc4a2cULL };
    for (size_t i = 0; i < sizeof chunk_cases / sizeof *chunk_cases; i++)
        chunk_case_run(&chunk_cases[i], &r);
}

/* Conv2DTranspose cin 32 -> cout 32, k 3, stride 2, same, 24x24 input:
 * 9.4M multiply-adds an item, ~0.1-0.5 ms. */
static struct geo timed_geo(int64_t batch)
{
    return (struct geo){ .rank = 2, .same = true, .batch = batch, .cin = 32, .cout = 32,
                         .k = { 3, 3 }, .s = { 2, 2 }, .d = { 1, 1 }, .in = { 24, 24 },
                         .out = { 48, 48 } };
}

/* Without the fixed hook chunks are sized from measured time: with a
 * 20 ms window a 48-item run of 450M multiply-adds is cut (its kernel
 * never measured: 90 ms at the 200 ps guess). However the clock reads,
 * each run builds at most two plans (one item, one chunk size) and gives
 * the whole run's bits. */
Test(engine, timed_chunks_cost_two_plans_and_change_no_bit)
{
    struct rng r = { 0x71dedULL };
    char err[DCV_ERRLEN];
    struct geo g = timed_geo(48);
    size_t ny = out_count(&g);
    float *w = rand_buf(&r, kernel_count(&g), 0.2f), *b = rand_buf(&r, (size_t)g.cout, 0.5f);
    float *x = rand_buf(&r, in_count(&g), 1.0f), *yw = malloc(sizeof(float) * ny);
    float *yc = malloc(sizeof(float) * ny);
    cr_assert(yw && yc);
    struct dcv_engine_kernel *whole = direct_kernel(&g, ACT_RELU, false, w, b);
    cr_assert_eq(dcv_engine_run(whole, x, g.batch, g.in, g.out, yw, NULL, err), 0, "%s", err);
    struct dcv_engine_stats st;
    dcv_engine_kernel_stats(whole, &st);
    cr_assert_eq(st.chunked_runs, 0, "450M multiply-adds stay whole under the default window "
                 "(90 ms at the guess)");
    cr_assert_eq(st.cache_misses, 1);
    dcv_engine_set_chunk_window(20000000);
    struct dcv_engine_kernel *k = direct_kernel(&g, ACT_RELU, false, w, b);
    uint64_t misses = 0;
    for (int run = 0; run < 3; run++) {
        memset(yc, 0xff, sizeof(float) * ny);
        cr_assert_eq(dcv_engine_run(k, x, g.batch, g.in, g.out, yc, NULL, err), 0, "%s", err);
        dcv_engine_kernel_stats(k, &st);
        cr_assert_leq(st.cache_misses - misses, 2, "run %d built %llu plans", run,
                      (unsigned long long)(st.cache_misses - misses));
        misses = st.cache_misses;
        cr_assert(memcmp(yw, yc, sizeof(float) * ny) == 0, "run %d: chunked bits differ", run);
        if (run == 0) cr_assert_eq(st.chunked_runs, 1, "first run (speed unknown) is cut");
    }
    fprintf(stderr, "engine timed chunks: 3 runs of 48 items, %llu chunked, %llu executions, "
            "%llu plans\n", (unsigned long long)st.chunked_runs, (unsigned long long)st.chunks,
            (unsigned long long)st.cache_misses);
    dcv_engine_set_chunk_window(0);
    dcv_engine_kernel_free(whole);
    dcv_engine_kernel_free(k);
    free(w), free(b), free(x), free(yw), free(yc);
}

/* dcgan_up (0.134G multiply-adds, bench/) at batch 2: twice the bench
 * workload and still the one plan of today's path. */
Test(engine, runs_under_the_threshold_stay_whole)
{
    struct rng r = { 0xd6a9ULL };
    char err[DCV_ERRLEN];
    struct geo g = { .rank = 2, .same = true, .batch = 2, .cin = 128, .cout = 64,
                     .k = { 4, 4 }, .s = { 2, 2 }, .d = { 1, 1 }, .in = { 32, 32 },
                     .out = { 64, 64 } };
    float *w = rand_buf(&r, kernel_count(&g), 0.1f), *x = rand_buf(&r, in_count(&g), 1.0f);
    float *y = malloc(sizeof(float) * out_count(&g));
    cr_assert_not_null(y);
    struct dcv_engine_kernel *k = direct_kernel(&g, ACT_RELU, false, w, NULL);
    /* a window no build (ASan, valgrind, a loaded machine) can fill: the
     * decision then rests on the work alone, not on this machine's speed */
    dcv_engine_set_chunk_window(60ull * 1000000000ull);
    for (int run = 0; run < 3; run++)
        cr_assert_eq(dcv_engine_run(k, x, g.batch, g.in, g.out, y, NULL, err), 0, "%s", err);
    dcv_engine_set_chunk_window(0);
    struct dcv_engine_stats st;
    dcv_engine_kernel_stats(k, &st);
    cr_assert_eq(st.chunked_runs, 0);
    cr_assert_eq(st.chunks, 0);
    cr_assert_eq(st.cache_misses, 1, "one plan, batch 2");
    dcv_engine_kernel_free(k);
    free(w), free(x), free(y);
}

/* A flag already set: nothing runs and no plan is built, on either path.
 * A clear flag is a NULL one: same bits, whole and chunked. */
Test(engine, stop_flag_set_before_the_call_or_clear)
{
    struct rng r = { 0x570bULL };
    char err[DCV_ERRLEN];
    struct geo g = timed_geo(5);
    atomic_bool stop = true;
    size_t ny = out_count(&g);
    float *w = rand_buf(&r, kernel_count(&g), 0.2f), *x = rand_buf(&r, in_count(&g), 1.0f);
    float *b = rand_buf(&r, (size_t)g.cout, 0.5f), *y0 = malloc(sizeof(float) * ny);
    float *y1 = malloc(sizeof(float) * ny);
    cr_assert(y0 && y1);
    struct dcv_engine_kernel *k = direct_kernel(&g, &acts[3], false, w, b);
    struct dcv_engine_stats st;
    for (int fixed = 0; fixed < 2; fixed++) {
        dcv_engine_set_chunk_items(fixed ? 2 : 0);
        int rc = dcv_engine_run(k, x, g.batch, g.in, g.out, y0, &stop, err);
        assert_err(rc, DCV_ECANCELED, err, "stopped after 0 of 5 batch items");
    }
    dcv_engine_kernel_stats(k, &st);
    cr_assert_eq(st.cache_misses, 0, "no plan built");
    cr_assert_eq(st.chunks, 0);
    atomic_store(&stop, false);
    for (int fixed = 0; fixed < 2; fixed++) {
        dcv_engine_set_chunk_items(fixed ? 2 : 0);
        cr_assert_eq(dcv_engine_run(k, x, g.batch, g.in, g.out, y0, NULL, err), 0, "%s", err);
        cr_assert_eq(dcv_engine_run(k, x, g.batch, g.in, g.out, y1, &stop, err), 0, "%s", err);
        cr_assert(memcmp(y0, y1, sizeof(float) * ny) == 0);
    }
    dcv_engine_set_chunk_items(0);
    cr_assert_eq(dcv_error_http_status(DCV_ECANCELED), 503);
    cr_assert_str_eq(dcv_error_name(DCV_ECANCELED), "ECANCELED");
    cr_assert_str_eq(dcv_strerror(DCV_ECANCELED), "cancelled");
    dcv_engine_kernel_free(k);
    free(w), free(x), free(b), free(y0), free(y1);
}

struct stopper {
    struct dcv_engine_kernel *k;
    atomic_bool stop, finished;
    uint64_t seen;             /* executions done when the flag was set */
};

static void *stopper_main(void *p)
{
    struct stopper *s = p;
    struct dcv_engine_stats st;
    do {
        nanosleep(&(struct timespec){ 0, 200000 }, NULL);
        dcv_engine_kernel_stats(s->k, &st);
    } while (st.chunks < 3 && !atomic_load(&s->finished));
    s->seen = st.chunks;
    atomic_store(&s->stop, true);
    return NULL;
}

/* Conv1DTranspose 256 -> 256, k 32, 64 long: 134M multiply-adds an item,
 * 256 items (34G, a fraction of a second whole) in one-item chunks. A
 * thread sets the flag once it has seen three chunks done; the run must
 * end after at most a few more, well before its last item. The input is
 * calloc'd: pages never read stay unmapped. */
Test(engine, stop_from_another_thread_ends_a_long_run_between_chunks)
{
    struct rng r = { 0x5709ULL };
    char err[DCV_ERRLEN];
    struct geo g = { .rank = 1, .batch = 256, .cin = 256, .cout = 256, .k = { 32 },
                     .s = { 1 }, .d = { 1 }, .in = { 64 }, .out = { 95 } };
    cr_assert(geo_consistent(&g));
    float *w = rand_buf(&r, kernel_count(&g), 0.1f), *x = calloc(in_count(&g), sizeof(float));
    float *y = malloc(sizeof(float) * out_count(&g));
    cr_assert(x && y);
    struct stopper s = { .k = direct_kernel(&g, ACT_LINEAR, false, w, NULL) };
    atomic_init(&s.stop, false);
    atomic_init(&s.finished, false);
    pthread_t t;
    dcv_engine_set_chunk_items(1);
    cr_assert_eq(pthread_create(&t, NULL, stopper_main, &s), 0);
    int rc = dcv_engine_run(s.k, x, g.batch, g.in, g.out, y, &s.stop, err);
    atomic_store(&s.finished, true);
    pthread_join(t, NULL);
    dcv_engine_set_chunk_items(0);
    assert_err(rc, DCV_ECANCELED, err, "of 256 batch items");
    long long done = -1, total = -1;
    cr_assert_eq(sscanf(err, "stopped after %lld of %lld batch items", &done, &total), 2, "%s",
                 err);
    struct dcv_engine_stats st;
    dcv_engine_kernel_stats(s.k, &st);
    cr_assert_eq((uint64_t)done, st.chunks, "one item per chunk: %s", err);
    cr_assert_geq((uint64_t)done, s.seen, "the flag was set after %llu chunks: %s",
                  (unsigned long long)s.seen, err);
    cr_assert_lt(done, total / 2, "flag set after %llu chunks, stopped after %lld of %lld",
                 (unsigned long long)s.seen, done, total);
    fprintf(stderr, "engine stop: flag set after %llu one-item chunks, run stopped after %lld "
            "of %lld\n", (unsigned long long)s.seen, done, total);
    dcv_engine_kernel_free(s.k);
    free(w), free(x), free(y);
}

/* A run needing more than 16 MiB of thread buffers (here the bf16 staging
 * copy of an 18 MB input) gives them back when it ends; a small run's
 * buffers stay with the thread for the next one. */
Test(engine, huge_runs_do_not_keep_their_thread_buffers)
{
    char err[DCV_ERRLEN];
    struct dcv_conv conv = { .rank = 1, .in_channels = 1, .filters = 1, .kernel = { 1 },
                             .strides = { 1 }, .dilation = { 1 }, .padding = DCV_PADDING_VALID,
                             .dtype = DCV_DTYPE_BFLOAT16 };
    float w = 0.5f;
    struct dcv_engine_kernel *k = NULL;
    cr_assert_eq(dcv_engine_kernel_create(&conv, &w, NULL, 0, NULL, &k, err), 0, "%s", err);
    int64_t small = 1000, big = (int64_t)9 << 20;
    float *x = calloc((size_t)big, sizeof *x), *y = malloc((size_t)big * sizeof *y);
    cr_assert(x && y);
    cr_assert_eq(dcv_engine_run(k, x, 1, &small, &small, y, NULL, err), 0, "%s", err);
    size_t kept_small = dcv_engine_thread_bytes();
    cr_assert_gt(kept_small, 0, "a small run's buffers stay for the next");
    cr_assert_eq(dcv_engine_run(k, x, 1, &big, &big, y, NULL, err), 0, "%s", err);
    cr_assert_leq(dcv_engine_thread_bytes(), (size_t)16 << 20,
                  "%zu bytes kept after an 18 MB bf16 input", dcv_engine_thread_bytes());
    for (int64_t i = 0; i < big; i += big / 7) cr_assert_eq(y[i], 0.0f);
    cr_assert_eq(dcv_budget_used(), 0, "the run gave its buffers' bytes back");
    /* the same run against a budget: too big for it, or held by others */
    dcv_budget_set_limit((size_t)256 << 20);
    int rc = dcv_engine_run(k, x, 1, &big, &big, y, NULL, err);
    cr_assert(rc == DCV_ETOOBIG || rc == 0, "%s", err);
    if (rc == DCV_ETOOBIG) cr_assert_not_null(strstr(err, "memory_budget_bytes"), "%s", err);
    dcv_budget_set_limit((size_t)64 << 30);
    cr_assert(dcv_budget_take(((size_t)64 << 30) - ((size_t)8 << 20)));
    rc = dcv_engine_run(k, x, 1, &big, &big, y, NULL, err);
    cr_assert_eq(rc, DCV_EBUSY, "rc %d: %s", rc, err);
    cr_assert_not_null(strstr(err, "retry later"), "%s", err);
    cr_assert_eq(dcv_engine_run(k, x, 1, &small, &small, y, NULL, err), 0,
                 "small runs need no budget: %s", err);
    dcv_engine_kernel_free(k);
    free(x);
    free(y);
}
