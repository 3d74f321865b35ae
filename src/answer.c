/* answer.c — inference and ops answers: KServe v2, TF Serving, plain.
 *
 * Each JSON answer is written into one dcv_buf block sized up front for the
 * worst case (every float at its longest), so the writers never check for
 * room; floats go through the float codec's shortest round-trip text. Before
 * any JSON is written the output is scanned for NaN and infinities at memory
 * speed (the codec would spell them as Python does, which is not JSON) and
 * refused. Binary KServe answers put the JSON header and the raw floats in
 * one buffer, aligned so the engine computes straight into it. Pure
 * functions, any thread.
 */
#include <stdio.h>
#include <string.h>

#include "deconvd/answer.h"
#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/floatcodec.h"
#include "deconvd/json.h"

/* A buffer sized up front for the worst case, so writers never check. */
struct out {
    char *p;
    size_t len, cap;
};

static bool out_open(struct out *o, size_t cap)
{
    o->len = 0;
    o->cap = cap;
    return (o->p = dcv_buf_alloc(cap)) != NULL;
}

static void put(struct out *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_quoted(struct out *o, const char *s)
{
    o->len += dcv_json_quote(o->p + o->len, o->cap - o->len, s);
}

static void put_shape(struct out *o, const int64_t *shape, int ndim)
{
    char st[DCV_TENSOR_SHAPE_TEXT];
    dcv_tensor_shape_text(st, shape, ndim);
    put(o, st);
}

static void put_flat(struct out *o, const float *v, size_t n)
{
    o->len += dcv_float_array_format(v, n, o->p + o->len, o->cap - o->len);
}

static char *out_close(struct out *o, size_t *len)
{
    o->p[o->len] = '\0'; /* convenience only: not counted */
    *len = o->len;
    return o->p;
}

/* Bytes a quoted string can take, NUL included. */
static size_t quoted_max(const char *s) { return 6 * strlen(s ? s : "") + 3; }

/* Values in shape, or false for a shape no tensor can have. */
static bool shape_count(const int64_t *shape, int ndim, size_t *n)
{
    if (ndim < 0 || ndim > DCV_TENSOR_MAX_DIMS || (ndim && !shape))
        return false;
    size_t p = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] && p > SIZE_MAX / 64 / (size_t)shape[i]))
            return false;
        p *= (size_t)shape[i];
    }
    *n = p;
    return true;
}

/* A shape no tensor can have is a caller's bug, reported rather than
 * written. */
static int check(const int64_t *shape, int ndim, size_t *n, char *err)
{
    if (shape_count(shape, ndim, n))
        return 0;
    return dcv_errf(err, DCV_EINVAL, "cannot answer a tensor of %d dimensions%s", ndim,
                    ndim >= 0 && ndim <= DCV_TENSOR_MAX_DIMS ? " with a negative or huge extent"
                                                             : "");
}

static const char TO_BINARY[] =
    "ask for binary output (\"parameters\": {\"binary_data_output\": true}) to receive the raw "
    "float32 values";
static const char TF_NO_BINARY[] = "TF Serving's REST API has no binary form to carry it";
static const char OPS_NO_BINARY[] = "the ops endpoint answers only JSON";

/* JSON has no token for NaN or the infinities (Python writes "Infinity",
 * which JSON.parse and strict parsers refuse): a JSON answer refuses the
 * output instead, naming the first such value by flat and by
 * multi-dimensional index, and what the client can do. */
static int finite(const int64_t *shape, int ndim, const float *data, size_t n,
                  const char *remedy, char *err)
{
    size_t i = dcv_float_first_nonfinite(data, n);
    if (i == n)
        return 0;
    int64_t idx[DCV_TENSOR_MAX_DIMS];
    size_t rest = i;
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = (int64_t)(rest % (size_t)shape[d]);
        rest /= (size_t)shape[d];
    }
    char at[DCV_TENSOR_SHAPE_TEXT], num[DCV_FLOAT_MAXLEN + 1];
    dcv_tensor_shape_text(at, idx, ndim);
    dcv_float_format(data[i], num);
    return dcv_errf(err, DCV_EINVAL, "output value %zu (index %s) is %s, which JSON cannot "
                    "carry (the output overflowed float32); %s", i, at, num, remedy);
}

/* Every JSON answer starts here: the shape and the values checked, then a
 * buffer of fixed + per_value bytes a value, the worst case. */
static int json_open(struct out *o, const int64_t *shape, int ndim, const float *data,
                     const char *remedy, size_t fixed, size_t per_value, size_t *n, char *err)
{
    int rc;
    if ((rc = check(shape, ndim, n, err)) || (rc = finite(shape, ndim, data, *n, remedy, err)))
        return rc;
    if (!out_open(o, fixed + *n * per_value))
        return dcv_errf(err, DCV_ENOMEM, "out of memory for a %zu-value answer", *n);
    return 0;
}

/* The response up to the outputs' data (or binary size). */
static const char *output_name(const struct dcv_answer_names *nm)
{
    return nm->output ? nm->output : "output";
}

static void kserve_head(struct out *o, const struct dcv_answer_names *nm, const int64_t *shape,
                        int ndim)
{
    put(o, "{\"model_name\":");
    put_quoted(o, nm->model);
    put(o, ",\"model_version\":");
    put_quoted(o, nm->version);
    if (nm->id) {
        put(o, ",\"id\":");
        put_quoted(o, nm->id);
    }
    put(o, ",\"outputs\":[{\"name\":");
    put_quoted(o, output_name(nm));
    put(o, ",\"datatype\":\"FP32\",\"shape\":");
    put_shape(o, shape, ndim);
}

static size_t kserve_head_max(const struct dcv_answer_names *nm)
{
    return 256 + quoted_max(nm->model) + quoted_max(nm->version) +
           quoted_max(nm->id) + quoted_max(output_name(nm)) +
           DCV_TENSOR_SHAPE_TEXT;
}

char *dcv_answer_kserve_binary_open(const struct dcv_answer_names *nm, const int64_t *shape,
                                    int ndim, float **data, size_t *len, size_t *header_len)
{
    size_t n;
    struct out h;
    char tail[64];
    if (!shape_count(shape, ndim, &n) || !out_open(&h, kserve_head_max(nm)))
        return NULL;
    kserve_head(&h, nm, shape, ndim);
    snprintf(tail, sizeof tail, ",\"parameters\":{\"binary_data_size\":%zu}}]}",
             n * sizeof **data);
    put(&h, tail);
    /* start pad bytes in, so that the data after the header is aligned */
    size_t pad = (DCV_BUF_ALIGN - h.len % DCV_BUF_ALIGN) % DCV_BUF_ALIGN;
    char *b = dcv_buf_alloc(pad + h.len + n * sizeof **data + 1);
    if (b) {
        memcpy(b + pad, h.p, h.len);
        *data = (float *)(void *)(b + pad + h.len);
        *header_len = h.len;
        *len = h.len + n * sizeof **data;
    }
    dcv_buf_free(h.p);
    return b ? b + pad : NULL;
}

void dcv_answer_kserve_binary_close(float *data, size_t n)
{
    if (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
        return;
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, &data[i], sizeof x);
        unsigned char *b = (unsigned char *)&data[i];
        for (int k = 0; k < 4; k++)
            b[k] = (unsigned char)(x >> (8 * k));
    }
}

char *dcv_answer_kserve_shm(const struct dcv_answer_names *nm, const int64_t *shape, int ndim,
                            const struct dcv_tensor_shm *shm, size_t *len)
{
    size_t n;
    struct out o;
    char num[96];
    if (!shape_count(shape, ndim, &n) ||
        !out_open(&o, kserve_head_max(nm) + quoted_max(shm->region) + 192))
        return NULL;
    kserve_head(&o, nm, shape, ndim);
    put(&o, ",\"parameters\":{\"shared_memory_region\":");
    put_quoted(&o, shm->region);
    snprintf(num, sizeof num, ",\"shared_memory_byte_size\":%llu,\"shared_memory_offset\":%llu}}]}",
             (unsigned long long)shm->byte_size, (unsigned long long)shm->offset);
    put(&o, num);
    return out_close(&o, len);
}

int dcv_answer_kserve(const struct dcv_answer_names *nm, const int64_t *shape, int ndim,
                      const float *data, bool binary, char **out, size_t *len,
                      size_t *header_len, char *err)
{
    size_t n, hl;
    struct out o;
    int rc;
    *out = NULL;
    if (binary) {
        float *dst;
        if ((rc = check(shape, ndim, &n, err)))
            return rc;
        if (!(*out = dcv_answer_kserve_binary_open(nm, shape, ndim, &dst, len, &hl)))
            return dcv_errf(err, DCV_ENOMEM, "out of memory for a %zu-value answer", n);
        memcpy(dst, data, n * sizeof *data);
        dcv_answer_kserve_binary_close(dst, n);
        if (header_len)
            *header_len = hl;
        return 0;
    }
    if ((rc = json_open(&o, shape, ndim, data, TO_BINARY, kserve_head_max(nm),
                        DCV_FLOAT_MAXLEN + 1, &n, err)))
        return rc;
    kserve_head(&o, nm, shape, ndim);
    put(&o, ",\"data\":");
    put_flat(&o, data, n);
    put(&o, "}]}");
    if (header_len)
        *header_len = o.len;
    *out = out_close(&o, len);
    return 0;
}

/* Nested arrays, one codec call per innermost row. */
static void put_nested(struct out *o, const int64_t *shape, int ndim, const float *v, size_t n)
{
    if (n == 0) {
        put(o, "[]");
        return;
    }
    size_t inner = (size_t)shape[ndim - 1], rows = n / inner;
    size_t per[DCV_TENSOR_MAX_DIMS]; /* rows in one array at level d < ndim - 1 */
    per[ndim - 1] = 1;
    for (int d = ndim - 2; d >= 0; d--)
        per[d] = per[d + 1] * (size_t)shape[d];
    for (size_t r = 0; r < rows; r++) {
        if (r)
            o->p[o->len++] = ',';
        for (int d = 0; d < ndim - 1; d++)
            if (r % per[d] == 0)
                o->p[o->len++] = '[';
        put_flat(o, v + r * inner, inner);
        for (int d = ndim - 2; d >= 0; d--)
            if ((r + 1) % per[d] == 0)
                o->p[o->len++] = ']';
    }
}

int dcv_answer_tfserving(const int64_t *shape, int ndim, const float *data, bool row_format,
                         char **out, size_t *len, char *err)
{
    size_t n;
    struct out o;
    int rc;
    *out = NULL;
    /* each number with its comma, and per innermost row (of one value at
     * worst) its brackets at every level and a comma */
    if ((rc = json_open(&o, shape, ndim, data, TF_NO_BINARY, 48,
                        DCV_FLOAT_MAXLEN + 1 + 2 * (size_t)ndim + 3, &n, err)))
        return rc;
    put(&o, row_format ? "{\"predictions\":" : "{\"outputs\":");
    if (ndim > 0) {
        put_nested(&o, shape, ndim, data, n);
    } else {
        char num[DCV_FLOAT_MAXLEN + 1];
        dcv_float_format(data[0], num);
        put(&o, row_format ? "[" : "");
        put(&o, num);
        put(&o, row_format ? "]" : "");
    }
    put(&o, "}");
    *out = out_close(&o, len);
    return 0;
}

int dcv_answer_plain(const int64_t *shape, int ndim, const float *data, char **out,
                     size_t *len, char *err)
{
    size_t n;
    struct out o;
    int rc;
    *out = NULL;
    if ((rc = json_open(&o, shape, ndim, data, OPS_NO_BINARY, 32 + DCV_TENSOR_SHAPE_TEXT,
                        DCV_FLOAT_MAXLEN + 1, &n, err)))
        return rc;
    put(&o, "{\"shape\":");
    put_shape(&o, shape, ndim);
    put(&o, ",\"data\":");
    put_flat(&o, data, n);
    put(&o, "}");
    *out = out_close(&o, len);
    return 0;
}
