/* layer_resize.c — the layers that move values between positions:
 * UpSampling1D/2D/3D, Cropping1D/2D/3D, ZeroPadding1D/2D/3D.
 *
 * Registry entries (layers.h). Every tensor is seen as [outer][s0][s1][s2]
 * [inner] with up to three spatial axes (missing ones of extent 1):
 * channels_last gives outer = batch, inner = channels; channels_first gives
 * outer = batch * channels, inner = 1, so the innermost copies stay
 * contiguous either way. Cropping and padding are one operation, a shift
 * per axis (negative for a crop) with zeros where nothing maps; nearest
 * upsampling builds one output row and copies it; 2-D bilinear upsampling
 * is TensorFlow's ResizeBilinear with half-pixel centers, step for step in
 * float. States are small structs parsed from the config; run allocates
 * nothing. Parse/shape on the loading thread; run on any worker.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layerargs.h"
#include "deconvd/layerkit.h"
#include "deconvd/layers.h"

enum resize_op { OP_UP, OP_CROP, OP_PAD };

struct resize_kind {
    const char *name;
    enum resize_op op;
    int nsp;                    /* spatial axes */
    bool data_format;           /* takes data_format */
    int64_t def[6];             /* default size, or (before, after) pairs */
};

/* Per-axis values are right-aligned: spatial axis i of nsp is index
 * 3 - nsp + i, so that the last spatial axis is always the row. */
struct resize {
    const struct resize_kind *kind;
    bool cf, bilinear;
    int64_t size[3];            /* OP_UP factors */
    int64_t before[3], after[3];/* OP_PAD > 0, OP_CROP < 0 */
    struct dcv_json *config;
};

static int interpolation(const struct dcv_json *cfg, const char *layer, bool *bilinear,
                         char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, "interpolation");
    const char *s = dcv_json_string(v);
    *bilinear = false;
    if (!v || dcv_json_type(v) == DCV_JSON_NULL || (s && !strcasecmp(s, "nearest"))) return 0;
    if (s && !strcasecmp(s, "bilinear")) return *bilinear = true, 0;
    if (s)
        return dcv_errf(err, DCV_EUNSUPP, "%s: interpolation '%.32s' is not supported (nearest "
                        "and bilinear are)", layer, s);
    return dcv_errf(err, DCV_EINVAL, "%s: 'interpolation' must be a string, got %s", layer,
                    dcv_json_type_name(v));
}

static int resize_parse_kind(const struct resize_kind *k, const struct dcv_json *cfg,
                             void **state, char *err)
{
    struct resize l = { .kind = k, .size = { 1, 1, 1 } };
    int64_t pairs[6], size[3];
    int off = 3 - k->nsp;
    int rc = 0;
    if (k->data_format) rc = dcv_layerargs_channels_first(cfg, k->name, &l.cf, err);
    if (!rc && k->op == OP_UP)
        rc = dcv_layerargs_ints(cfg, k->name, "size", k->nsp, k->def, 1, DCV_MAX_EXTENT, size,
                                err);
    if (!rc && k->op == OP_UP && k->nsp == 2) rc = interpolation(cfg, k->name, &l.bilinear, err);
    if (!rc && k->op != OP_UP)
        rc = dcv_layerargs_pairs(cfg, k->name, k->op == OP_PAD ? "padding" : "cropping", k->nsp,
                                 k->def, DCV_MAX_EXTENT, pairs, err);
    if (rc) return rc;
    int64_t sign = k->op == OP_PAD ? 1 : -1;
    for (int i = 0; i < k->nsp; i++) {
        if (k->op == OP_UP) l.size[off + i] = size[i];
        else l.before[off + i] = sign * pairs[2 * i], l.after[off + i] = sign * pairs[2 * i + 1];
    }
    struct resize *s = malloc(sizeof *s);
    if (!s || !(l.config = dcv_json_dup(cfg))) {
        free(s);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    *s = l;
    *state = s;
    return 0;
}

static void resize_free(void *state)
{
    struct resize *l = state;
    if (l) dcv_json_free(l->config);
    free(l);
}

/* Index of spatial axis i in the full shape. */
static int sp_axis(const struct resize *l, int i)
{
    return (l->cf ? 2 : 1) + i;
}

static int resize_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out,
                        char *err)
{
    const struct resize *l = state;
    const struct resize_kind *k = l->kind;
    if (in->ndim != k->nsp + 2)
        return dcv_errf(err, DCV_ESHAPE, "%s: the input must have rank %d (batch, %d spatial "
                        "and a channel axis), got rank %d", k->name, k->nsp + 2, k->nsp,
                        in->ndim);
    *out = *in;
    for (int i = 0, j = 3 - k->nsp; i < k->nsp; i++, j++) {
        int a = sp_axis(l, i);
        int64_t n = in->d[a], o;
        if (n < 0) continue;
        if (k->op == OP_UP) {
            o = n > DCV_MAX_EXTENT / l->size[j] ? -1 : n * l->size[j];
        } else {
            o = n + l->before[j] + l->after[j];
            if (k->op == OP_CROP && o <= 0)
                return dcv_errf(err, DCV_ESHAPE, "%s: cropping (%lld, %lld) on input axis %d "
                                "must leave something of its %lld values", k->name,
                                (long long)-l->before[j], (long long)-l->after[j], a,
                                (long long)n);
        }
        if (o < 0 || o > DCV_MAX_EXTENT)
            return dcv_errf(err, DCV_ESHAPE, "%s: output axis %d would exceed %lld values",
                            k->name, a, (long long)DCV_MAX_EXTENT);
        out->d[a] = o;
    }
    return 0;
}

/* The [outer][s0][s1][s2][inner] view of a shape. */
struct view {
    size_t outer, s[3], inner;
};

static struct view view_of(const struct resize *l, const struct dcv_shape *sh)
{
    struct view v = { .outer = (size_t)sh->d[0], .s = { 1, 1, 1 }, .inner = 1 };
    for (int i = 0; i < l->kind->nsp; i++) v.s[3 - l->kind->nsp + i] = (size_t)sh->d[sp_axis(l, i)];
    size_t c = (size_t)sh->d[l->cf ? 1 : sh->ndim - 1];
    if (l->cf) v.outer *= c;
    else v.inner = c;
    return v;
}

static uint64_t resize_work(const void *state, const struct dcv_shape *in)
{
    const struct resize *l = state;
    struct dcv_shape out;
    char err[DCV_ERRLEN];
    if (resize_shape((void *)l, in, &out, err)) return 0;
    uint64_t n = dcv_layerkit_elems(&out), k = l->bilinear ? 4 : 1;
    return n > UINT64_MAX / k ? UINT64_MAX : n * k;
}

/* y[0..no) = x shifted by b along the row (x[i] lands at y[i + b]), in
 * units of c floats; zeros where nothing lands. */
static void shifted_row(float *y, int64_t no, const float *x, int64_t ni, int64_t b, size_t c)
{
    int64_t z0 = b > 0 ? (b < no ? b : no) : 0;               /* leading zeros */
    int64_t src = b < 0 ? -b : 0, n = ni - src;
    if (n > no - z0) n = no - z0;
    if (n < 0) n = 0;
    memset(y, 0, sizeof(float) * c * (size_t)z0);
    memcpy(y + c * (size_t)z0, x + c * (size_t)src, sizeof(float) * c * (size_t)n);
    memset(y + c * (size_t)(z0 + n), 0, sizeof(float) * c * (size_t)(no - z0 - n));
}

static int shift_run(const struct resize *l, const float *in, struct view vi, float *out,
                     struct view vo, const atomic_bool *stop, char *err)
{
    size_t rowi = vi.s[2] * vi.inner, rowo = vo.s[2] * vo.inner;
    for (size_t n = 0; n < vo.outer; n++) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed))
            return dcv_errf(err, DCV_ECANCELED, "%s: cancelled", l->kind->name);
        for (size_t o0 = 0; o0 < vo.s[0]; o0++) {
            int64_t i0 = (int64_t)o0 - l->before[0];
            for (size_t o1 = 0; o1 < vo.s[1]; o1++) {
                int64_t i1 = (int64_t)o1 - l->before[1];
                float *y = out + ((n * vo.s[0] + o0) * vo.s[1] + o1) * rowo;
                if (i0 < 0 || i1 < 0 || i0 >= (int64_t)vi.s[0] || i1 >= (int64_t)vi.s[1]) {
                    memset(y, 0, sizeof(float) * rowo);
                    continue;
                }
                const float *x = in + ((n * vi.s[0] + (size_t)i0) * vi.s[1] + (size_t)i1) * rowi;
                shifted_row(y, (int64_t)vo.s[2], x, (int64_t)vi.s[2], l->before[2], vi.inner);
            }
        }
    }
    return 0;
}

static int nearest_run(const struct resize *l, const float *in, struct view vi, float *out,
                       struct view vo, const atomic_bool *stop, char *err)
{
    size_t c = vi.inner, rowi = vi.s[2] * c, rowo = vo.s[2] * c;
    size_t f0 = (size_t)l->size[0], f1 = (size_t)l->size[1], f2 = (size_t)l->size[2];
    for (size_t n = 0; n < vi.outer; n++) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed))
            return dcv_errf(err, DCV_ECANCELED, "%s: cancelled", l->kind->name);
        for (size_t i0 = 0; i0 < vi.s[0]; i0++)
            for (size_t i1 = 0; i1 < vi.s[1]; i1++) {
                const float *x = in + ((n * vi.s[0] + i0) * vi.s[1] + i1) * rowi;
                float *first = out + ((n * vo.s[0] + i0 * f0) * vo.s[1] + i1 * f1) * rowo;
                float *y = first;
                if (c == 1)
                    for (size_t i2 = 0; i2 < vi.s[2]; i2++)
                        for (size_t r = 0; r < f2; r++) *y++ = x[i2];
                else
                    for (size_t i2 = 0; i2 < vi.s[2]; i2++)
                        for (size_t r = 0; r < f2; r++, y += c)
                            memcpy(y, x + i2 * c, sizeof *y * c);
                for (size_t r0 = 0; r0 < f0; r0++)
                    for (size_t r1 = 0; r1 < f1; r1++)
                        if (r0 || r1)
                            memcpy(first + (r0 * vo.s[1] + r1) * rowo, first,
                                   sizeof *y * rowo);
            }
    }
    return 0;
}

/* TensorFlow's interpolation weights for output index i (half-pixel
 * centers, no antialias), in float as its kernel computes them. */
struct lerp {
    size_t lo, hi;
    float t;
};

static struct lerp lerp_at(size_t i, float scale, size_t n)
{
    /* v >= -0.5, so floor is the truncation but below 0 (then -1), and
     * exact: no libm call in the loop. */
    float v = ((float)i + 0.5f) * scale - 0.5f;
    int64_t lo = v < 0 ? -1 : (int64_t)v;
    float f = (float)lo;
    int64_t hi = f == v ? lo : lo + 1;
    return (struct lerp){ .lo = lo > 0 ? (size_t)lo : 0,
                          .hi = hi < (int64_t)n - 1 ? (size_t)hi : n - 1, .t = v - f };
}

static int bilinear_run(const struct resize *l, const float *in, struct view vi, float *out,
                        struct view vo, const atomic_bool *stop, char *err)
{
    size_t c = vi.inner, H = vi.s[1], W = vi.s[2], OH = vo.s[1], OW = vo.s[2];
    float sy = (float)H / (float)OH, sx = (float)W / (float)OW;
    for (size_t n = 0; n < vi.outer; n++) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed))
            return dcv_errf(err, DCV_ECANCELED, "%s: cancelled", l->kind->name);
        const float *img = in + n * H * W * c;
        for (size_t oy = 0; oy < OH; oy++) {
            struct lerp ly = lerp_at(oy, sy, H);
            const float *top = img + ly.lo * W * c, *bot = img + ly.hi * W * c;
            float *y = out + (n * OH + oy) * OW * c;
            for (size_t ox = 0; ox < OW; ox++, y += c) {
                struct lerp lx = lerp_at(ox, sx, W);
                const float *tl = top + lx.lo * c, *tr = top + lx.hi * c;
                const float *bl = bot + lx.lo * c, *br = bot + lx.hi * c;
                for (size_t k = 0; k < c; k++) {
                    float t = tl[k] + (tr[k] - tl[k]) * lx.t;
                    float b = bl[k] + (br[k] - bl[k]) * lx.t;
                    y[k] = t + (b - t) * ly.t;
                }
            }
        }
    }
    return 0;
}

static int resize_run(const void *state, const float *in, const struct dcv_shape *is, float *out,
                      const struct dcv_shape *os, const atomic_bool *stop, char *err)
{
    const struct resize *l = state;
    struct view vi = view_of(l, is), vo = view_of(l, os);
    if (l->kind->op != OP_UP) return shift_run(l, in, vi, out, vo, stop, err);
    if (l->bilinear) return bilinear_run(l, in, vi, out, vo, stop, err);
    return nearest_run(l, in, vi, out, vo, stop, err);
}

/* The config with every argument spelled out in Keras 3's form. */
static struct dcv_json *resize_config(const void *state)
{
    const struct resize *l = state;
    const struct resize_kind *k = l->kind;
    int off = 3 - k->nsp, rc = 0;
    struct dcv_json *c = dcv_json_dup(l->config), *v;
    if (!c) return NULL;
    if (k->op == OP_UP) {
        v = k->nsp == 1 ? dcv_json_new_number((double)l->size[2])
                        : dcv_json_new_int_array(l->size + off, (size_t)k->nsp);
    } else {
        int64_t sign = k->op == OP_PAD ? 1 : -1, p[2];
        v = k->nsp == 1 ? NULL : dcv_json_new_array();
        for (int i = 0; i < k->nsp && !rc; i++) {
            p[0] = sign * l->before[off + i], p[1] = sign * l->after[off + i];
            if (k->nsp == 1) v = dcv_json_new_int_array(p, 2);
            else rc = dcv_json_append(v, dcv_json_new_int_array(p, 2));
        }
    }
    if (rc) dcv_json_free(v);
    else rc = dcv_json_set(c, k->op == OP_UP ? "size" : k->op == OP_PAD ? "padding" : "cropping",
                           v);
    if (!rc && k->data_format)
        rc = dcv_json_set(c, "data_format", dcv_json_new_string(l->cf ? "channels_first"
                                                                        : "channels_last"));
    if (!rc && k->op == OP_UP && k->nsp == 2)
        rc = dcv_json_set(c, "interpolation", dcv_json_new_string(l->bilinear ? "bilinear"
                                                                               : "nearest"));
    if (rc) {
        dcv_json_free(c);
        return NULL;
    }
    return c;
}

#define RESIZE_CLASS(id, cname, op, nsp, df, ...)                                              \
    static const struct resize_kind kind_##id = { cname, op, nsp, df, { __VA_ARGS__ } };      \
    static int parse_##id(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,       \
                          void **state, char *err)                                           \
    {                                                                                         \
        (void)ctx;                                                                            \
        return resize_parse_kind(&kind_##id, cfg, state, err);                                \
    }                                                                                         \
    const struct dcv_layer_class dcv_layer_class_##id = {                                     \
        .name = cname, .parse = parse_##id, .free_state = resize_free, .shape = resize_shape,  \
        .work = resize_work, .run = resize_run, .config = resize_config,                      \
    };

RESIZE_CLASS(up_sampling1d, "UpSampling1D", OP_UP, 1, false, 2)
RESIZE_CLASS(up_sampling2d, "UpSampling2D", OP_UP, 2, true, 2, 2)
RESIZE_CLASS(up_sampling3d, "UpSampling3D", OP_UP, 3, true, 2, 2, 2)
RESIZE_CLASS(cropping1d, "Cropping1D", OP_CROP, 1, false, 1, 1)
RESIZE_CLASS(cropping2d, "Cropping2D", OP_CROP, 2, true, 0, 0, 0, 0)
RESIZE_CLASS(cropping3d, "Cropping3D", OP_CROP, 3, true, 1, 1, 1, 1, 1, 1)
RESIZE_CLASS(zero_padding1d, "ZeroPadding1D", OP_PAD, 1, true, 1, 1)
RESIZE_CLASS(zero_padding2d, "ZeroPadding2D", OP_PAD, 2, true, 1, 1, 1, 1)
RESIZE_CLASS(zero_padding3d, "ZeroPadding3D", OP_PAD, 3, true, 1, 1, 1, 1, 1, 1)
