/* png.c — inference answers as PNG pictures, through libspng.
 *
 * The only module that includes spng.h. A model's range comes from its
 * file or its last activation (parsed at load, on the loading thread); the
 * Accept header is negotiated on the loop thread; the layout and its size
 * bound are decided when the output's shape is known, before computing, so
 * that max_response_bytes and the memory budget see the worst case; the
 * encoding runs on the worker. A batch becomes one grid, as near square as
 * it goes (cols = ceil(sqrt(N)), rows = ceil(N / cols)), tiles DCV_PNG_GAP
 * pixels apart. Rows are mapped to bytes one at a time and handed to
 * libspng's progressive encoder, which streams whole IDAT chunks into one
 * buffer of the bound's size: no copy of the picture is ever held. zlib's
 * parameters are set, not left to the library, because the bound is
 * zlib's for exactly those. Pure functions, any thread.
 */
#include <math.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deconvd/activation.h"
#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/png.h"

/* zlib: the parameters the bound below is zlib's deflateBound for. */
#define Z_LEVEL 1                      /* zlib's fastest: 2.4x level 6, 1.5x its size */
#define Z_WINDOW_BITS 15
#define Z_MEM_LEVEL 8
#define IDAT_SIZE 8192                 /* libspng's SPNG_WRITE_SIZE: data bytes per IDAT */
#define CHUNK_COST 12                  /* length, type, CRC */
#define PNG_FIXED (8 + 25 + 12)        /* signature, IHDR, IEND */
#define ZLIB_STATE (320u << 10)        /* deflate's window, hash chains, pending buffer */
#define PNG_MAX_SIDE INT32_MAX         /* PNG: 2^31 - 1 pixels a side */

/* ---- the value range ---- */

static void set_range(struct dcv_png_spec *s, double lo, double hi, const char *source)
{
    s->has_range = true;
    s->lo = lo;
    s->hi = hi;
    snprintf(s->source, sizeof s->source, "%s", source);
}

/* The default: only activations whose output is bounded on both sides. */
static void default_range(const struct dcv_activation *a, struct dcv_png_spec *s)
{
    char src[sizeof s->source];
    const char *name = a ? dcv_activation_name(a->kind) : "linear";
    snprintf(src, sizeof src, "activation %s", name);
    switch (a ? a->kind : DCV_ACT_LINEAR) {
    case DCV_ACT_TANH:
    case DCV_ACT_SOFTSIGN:
    case DCV_ACT_HARD_TANH:
        set_range(s, -1, 1, src);
        return;
    case DCV_ACT_SIGMOID:
    case DCV_ACT_HARD_SIGMOID:
    case DCV_ACT_SOFTMAX:
    case DCV_ACT_SPARSE_SIGMOID:
    case DCV_ACT_SPARSEMAX:
        set_range(s, 0, 1, src);
        return;
    case DCV_ACT_RELU:
    case DCV_ACT_RELU6:
        if (a->alpha == 0 && isfinite(a->max_value) && a->max_value > 0) {
            set_range(s, 0, a->max_value, src);
            return;
        }
        break;
    default:
        break;
    }
    snprintf(s->source, sizeof s->source, "%s", name);   /* unbounded: no default */
}

static int parse_range(const struct dcv_json *r, struct dcv_png_spec *s, char *err)
{
    const struct dcv_json *a = dcv_json_at(r, 0), *b = dcv_json_at(r, 1);
    if (dcv_json_type(r) != DCV_JSON_ARRAY || dcv_json_size(r) != 2 ||
        dcv_json_type(a) != DCV_JSON_NUMBER || dcv_json_type(b) != DCV_JSON_NUMBER)
        return dcv_errf(err, DCV_EINVAL, "image.range must be a list of two numbers [lo, hi], "
                        "got %s%s", dcv_json_type_name(r),
                        dcv_json_type(r) == DCV_JSON_ARRAY ? " of other members" : "");
    double lo = dcv_json_number(a), hi = dcv_json_number(b);
    if (!(lo < hi) || !isfinite(hi - lo))
        return dcv_errf(err, DCV_EINVAL, "image.range must be [lo, hi] with finite lo < hi, "
                        "got [%g, %g]", lo, hi);
    set_range(s, lo, hi, "image.range");
    return 0;
}

int dcv_png_spec_parse(const struct dcv_json *image, const struct dcv_activation *last,
                       bool channels_first, struct dcv_png_spec *out, char *err)
{
    memset(out, 0, sizeof *out);
    out->channels_first = channels_first;
    if (!image || dcv_json_type(image) == DCV_JSON_NULL) {
        default_range(last, out);
        return 0;
    }
    if (dcv_json_type(image) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "image must be an object {\"range\": [lo, hi]}, got %s",
                        dcv_json_type_name(image));
    for (const struct dcv_json *m = dcv_json_first(image); m; m = dcv_json_next(m))
        if (strcmp(dcv_json_key(m), "range") != 0)
            return dcv_errf(err, DCV_EINVAL, "image: unknown key '%.60s' (known: range)",
                            dcv_json_key(m));
    const struct dcv_json *r = dcv_json_get(image, "range");
    if (!r) {
        default_range(last, out);
        return 0;
    }
    return parse_range(r, out, err);
}

/* ---- content negotiation ---- */

static bool tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t token(const char *s)
{
    size_t n = 0;
    while (tchar(s[n])) n++;
    return n;
}

static const char *ows(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* Length of the quoted string at s (quotes included), 0 when unterminated. */
static size_t quoted(const char *s)
{
    for (size_t i = 1; s[i]; i++) {
        if (s[i] == '\\' && s[i + 1]) i++;
        else if (s[i] == '"') return i + 1;
    }
    return 0;
}

/* The end of the element at s: the next ',' outside a quoted string. */
static const char *element_end(const char *s)
{
    for (; *s && *s != ','; s++)
        if (*s == '"') {
            size_t n = quoted(s);
            if (!n) return s + strlen(s);
            s += n - 1;
        }
    return s;
}

/* qvalue = "0" ["." 0*3DIGIT] / "1" ["." 0*3"0"], in thousandths; -1 if not. */
static int qvalue(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1') || (n > 1 && (s[1] != '.' || n > 5)))
        return -1;
    int v = (s[0] - '0') * 1000, scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v += (s[i] - '0') * scale;
    }
    return v > 1000 ? -1 : v;
}

struct media_range {
    const char *type, *sub;
    size_t tl, sl;
    int q;                             /* thousandths; -1: the element is malformed */
};

/* Parameters after a media range: only q matters; the first q counts. */
static int range_q(const char *p, const char *end)
{
    int q = 1000;
    bool seen = false;
    for (;;) {
        if ((p = ows(p)) == end) return q;
        if (*p != ';') return -1;
        p = ows(p + 1);
        size_t nl = token(p);
        if (!nl) continue;             /* an empty parameter */
        if (p[nl] != '=') return -1;
        const char *v = p + nl + 1;
        size_t vl = *v == '"' ? quoted(v) : token(v);
        if (!vl) return -1;
        if (nl == 1 && (*p == 'q' || *p == 'Q') && !seen) {
            if ((q = qvalue(v, vl)) < 0) return -1;
            seen = true;
        }
        p = v + vl;
    }
}

/* One element of an Accept list at s; returns where it ends. */
static const char *parse_media_range(const char *s, struct media_range *r)
{
    const char *end = element_end(s);
    r->q = -1;
    r->type = s;
    r->tl = token(s);
    if (!r->tl || s[r->tl] != '/') return end;
    r->sub = s + r->tl + 1;
    r->sl = token(r->sub);
    bool any_type = r->tl == 1 && *r->type == '*', any_sub = r->sl == 1 && *r->sub == '*';
    if (!r->sl || (any_type && !any_sub)) return end;
    r->q = range_q(r->sub + r->sl, end);
    return end;
}

/* How specifically r names type ("image/png"): 3 exactly, 2 as type/x,
 * 1 as x/x, 0 not at all. */
static int specificity(const struct media_range *r, const char *type)
{
    const char *slash = strchr(type, '/');
    size_t tl = (size_t)(slash - type);
    if (r->tl == 1 && *r->type == '*') return 1;
    if (r->tl != tl || strncasecmp(r->type, type, tl) != 0) return 0;
    if (r->sl == 1 && *r->sub == '*') return 2;
    return r->sl == strlen(slash + 1) && strncasecmp(r->sub, slash + 1, r->sl) == 0 ? 3 : 0;
}

struct pref {
    int spec, q;
};

static void consider(struct pref *p, const struct media_range *r, const char *type)
{
    int s = specificity(r, type);
    if (s > p->spec || (s && s == p->spec && r->q > p->q)) *p = (struct pref){ s, r->q };
}

enum dcv_png_choice dcv_png_negotiate(const char *accept, const char *other)
{
    struct pref png = { 0, 0 }, oth = { 0, 0 };
    bool any = false;
    for (const char *p = accept ? accept : ""; *p;) {
        if (*p == ',' || *p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        struct media_range r;
        p = parse_media_range(p, &r);
        if (r.q < 0) continue;
        any = true;
        consider(&png, &r, DCV_PNG_TYPE);
        consider(&oth, &r, other);
    }
    if (!any) return DCV_PNG_OTHER;
    if (!png.q && !oth.q) return DCV_PNG_NEITHER;
    if (png.q < oth.q || (png.q == oth.q && png.spec <= oth.spec)) return DCV_PNG_OTHER;
    return oth.q ? DCV_PNG_FIRST : DCV_PNG_ONLY;
}

/* ---- layout and bounds ---- */

static void shape_text(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, ")");
}

static int no_picture(const struct dcv_png_spec *spec, const int64_t *shape, int ndim, char *err)
{
    char st[160];
    shape_text(st, sizeof st, shape, ndim);
    if (ndim == 3)
        return dcv_errf(err, DCV_ENOTACCEPT, "its output %s is 1-D (batch, %s): a signal, not a "
                        "picture", st, spec->channels_first ? "channels, length"
                                                            : "length, channels");
    if (ndim == 5)
        return dcv_errf(err, DCV_ENOTACCEPT, "its output %s is 3-D: a volume, not a picture",
                        st);
    return dcv_errf(err, DCV_ENOTACCEPT, "its output %s has %d dimensions; a picture has 4 "
                    "(batch, height, width, channels)", st, ndim);
}

/* Smallest c with c * c >= n. */
static int64_t ceil_sqrt(int64_t n)
{
    int64_t c = (int64_t)sqrt((double)n);
    while (c * c < n) c++;
    while (c > 1 && (c - 1) * (c - 1) >= n) c--;
    return c;
}

int dcv_png_layout(const struct dcv_png_spec *spec, const int64_t *shape, int ndim,
                   struct dcv_png_layout *out, char *err)
{
    char st[160];
    if (ndim != 4) return no_picture(spec, shape, ndim, err);
    shape_text(st, sizeof st, shape, ndim);
    for (int i = 0; i < 4; i++)
        if (shape[i] < 1 || shape[i] > PNG_MAX_SIDE)
            return dcv_errf(err, DCV_ENOTACCEPT, "its output %s has a dimension outside "
                            "1..%d", st, PNG_MAX_SIDE);
    int cax = spec->channels_first ? 1 : 3, hax = spec->channels_first ? 2 : 1;
    int64_t c = shape[cax];
    if (c != 1 && c != 3 && c != 4)
        return dcv_errf(err, DCV_ENOTACCEPT, "its output %s has %lld channels (%s); a picture "
                        "has 1 (gray), 3 (RGB) or 4 (RGBA)", st, (long long)c,
                        spec->channels_first ? "channels_first: axis 1" : "the last axis");
    if (!spec->has_range)
        return dcv_errf(err, DCV_ENOTACCEPT, "no value range to map onto 0..255: its last "
                        "activation (%s) is unbounded; set \"image\": {\"range\": [lo, hi]} in "
                        "its model file", spec->source);
    *out = (struct dcv_png_layout){ .spec = *spec, .batch = shape[0], .height = shape[hax],
                                    .width = shape[hax + 1], .channels = c };
    out->cols = ceil_sqrt(out->batch);
    out->rows = (out->batch + out->cols - 1) / out->cols;
    int64_t w = out->cols * (out->width + DCV_PNG_GAP) - DCV_PNG_GAP;
    int64_t h = out->rows * (out->height + DCV_PNG_GAP) - DCV_PNG_GAP;
    if (w > PNG_MAX_SIDE || h > PNG_MAX_SIDE || (uint64_t)w * (uint64_t)c + 1 >
                                                SIZE_MAX / 2 / (uint64_t)h)
        return dcv_errf(err, DCV_ENOTACCEPT, "its output %s makes a grid of %lld x %lld "
                        "pixels, above PNG's %d a side", st, (long long)w, (long long)h,
                        PNG_MAX_SIDE);
    out->image_w = (uint32_t)w;
    out->image_h = (uint32_t)h;
    return 0;
}

static size_t row_bytes(const struct dcv_png_layout *l)
{
    return (size_t)l->image_w * (size_t)l->channels;
}

size_t dcv_png_bound(const struct dcv_png_layout *l)
{
    size_t raw = (row_bytes(l) + 1) * l->image_h;          /* a filter byte a row */
    size_t z = raw + (raw >> 12) + (raw >> 14) + (raw >> 25) + 13;   /* zlib wrapper: 6 */
    return PNG_FIXED + z + CHUNK_COST * (z / IDAT_SIZE + 1);
}

size_t dcv_png_scratch(const struct dcv_png_layout *l)
{
    return 4 * (row_bytes(l) + 64) + IDAT_SIZE + ZLIB_STATE;
}

/* ---- encoding ---- */

struct sink {
    char *p;
    size_t len, cap;
};

static int sink_write(spng_ctx *ctx, void *user, void *src, size_t n)
{
    struct sink *s = user;
    (void)ctx;
    if (n > s->cap - s->len) return SPNG_IO_ERROR;      /* past the bound: never */
    memcpy(s->p + s->len, src, n);
    s->len += n;
    return 0;
}

static inline uint8_t to_byte(float v, double lo, double scale)
{
    double t = ((double)v - lo) * scale;
    if (!(t > 0)) return 0;                              /* NaN too */
    return t >= 255 ? 255 : (uint8_t)(t + 0.5);
}

/* Row iy of tile n into dst (width * channels bytes). */
static void tile_row(const struct dcv_png_layout *l, const float *data, int64_t n, int64_t iy,
                     uint8_t *dst, double scale)
{
    size_t w = (size_t)l->width, c = (size_t)l->channels, h = (size_t)l->height;
    double lo = l->spec.lo;
    if (!l->spec.channels_first) {
        const float *src = data + (((size_t)n * h + (size_t)iy) * w) * c;
        for (size_t i = 0; i < w * c; i++) dst[i] = to_byte(src[i], lo, scale);
        return;
    }
    for (size_t k = 0; k < c; k++) {
        const float *src = data + (((size_t)n * c + k) * h + (size_t)iy) * w;
        for (size_t x = 0; x < w; x++) dst[x * c + k] = to_byte(src[x], lo, scale);
    }
}

/* Row y of the grid: tiles side by side, zeros between and after them. */
static void grid_row(const struct dcv_png_layout *l, const float *data, uint32_t y,
                     uint8_t *row, double scale)
{
    int64_t pitch = l->height + DCV_PNG_GAP, tr = y / pitch, iy = y % pitch;
    size_t tile = (size_t)(l->width + DCV_PNG_GAP) * (size_t)l->channels;
    memset(row, 0, row_bytes(l));
    if (iy >= l->height) return;
    for (int64_t c = 0; c < l->cols && tr * l->cols + c < l->batch; c++)
        tile_row(l, data, tr * l->cols + c, iy, row + (size_t)c * tile, scale);
}

static int spng_fail(char *err, int rc, const char *what)
{
    return dcv_errf(err, rc == SPNG_EMEM ? DCV_ENOMEM : DCV_EINTERNAL, "PNG encoder: %s: %s",
                    what, spng_strerror(rc));
}

static int start(spng_ctx *ctx, const struct dcv_png_layout *l, struct sink *s, char *err)
{
    static const uint8_t color[5] = { 0, SPNG_COLOR_TYPE_GRAYSCALE, 0, SPNG_COLOR_TYPE_TRUECOLOR,
                                      SPNG_COLOR_TYPE_TRUECOLOR_ALPHA };
    struct spng_ihdr ihdr = { .width = l->image_w, .height = l->image_h, .bit_depth = 8,
                              .color_type = color[l->channels] };
    int rc;
    if ((rc = spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, Z_LEVEL)) ||
        (rc = spng_set_option(ctx, SPNG_IMG_WINDOW_BITS, Z_WINDOW_BITS)) ||
        (rc = spng_set_option(ctx, SPNG_IMG_MEM_LEVEL, Z_MEM_LEVEL)))
        return spng_fail(err, rc, "options");
    if ((rc = spng_set_png_stream(ctx, sink_write, s)) || (rc = spng_set_ihdr(ctx, &ihdr)))
        return spng_fail(err, rc, "header");
    if ((rc = spng_encode_image(ctx, NULL, 0, SPNG_FMT_PNG,
                                SPNG_ENCODE_PROGRESSIVE | SPNG_ENCODE_FINALIZE)))
        return spng_fail(err, rc, "start");
    return 0;
}

int dcv_png_encode(const struct dcv_png_layout *l, const float *data, const atomic_bool *stop,
                   char **out, size_t *len, char *err)
{
    struct sink s = { .cap = dcv_png_bound(l) };
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    uint8_t *row = malloc(row_bytes(l));
    double scale = 255.0 / (l->spec.hi - l->spec.lo);
    int rc = 0, e = 0;
    *out = NULL;
    if (!ctx || !row || !(s.p = dcv_buf_alloc(s.cap + 1))) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory for a %u x %u PNG", l->image_w, l->image_h);
        goto out;
    }
    if ((rc = start(ctx, l, &s, err))) goto out;
    for (uint32_t y = 0; y < l->image_h && e == 0; y++) {
        if (stop && atomic_load(stop)) {
            rc = dcv_errf(err, DCV_ECANCELED, "stopped before the PNG was written");
            goto out;
        }
        grid_row(l, data, y, row, scale);
        e = spng_encode_row(ctx, row, row_bytes(l));
    }
    if (e != SPNG_EOI || s.len < CHUNK_COST || memcmp(s.p + s.len - 8, "IEND", 4) != 0) {
        rc = spng_fail(err, e && e != SPNG_EOI ? e : SPNG_EINTERNAL, "rows");
        goto out;
    }
    *out = s.p;
    *len = s.len;
    s.p[s.len] = '\0';                 /* as every answer: a NUL past the end */
    s.p = NULL;
out:
    dcv_buf_free(s.p);
    free(row);
    spng_ctx_free(ctx);
    return rc;
}
