/* tensor.c — tensors read from a parsed request body.
 *
 * A tensor's values come either from a lifted array (the float codec read
 * them while the body was scanned: they only need their type checked, and
 * are taken rather than copied) or from a short array left in the tree,
 * which an iterative walker checks value by value, with the precise
 * messages (path of a ragged row, value number and datatype range), before
 * anything is allocated. Markers resolve only against the body passed in.
 * Shapes are products checked against max_elems before any allocation.
 * Pure functions, any thread; a tensor owns its floats unless borrowed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/tensor.h"

#define WHAT_MAX (DCV_TENSOR_NAME_MAX + 64)
#define NUMTXT 32
#define EXACT_INT ((int64_t)1 << 53) /* larger doubles skip integers */

size_t dcv_tensor_shape_text(char *buf, const int64_t *dims, int ndim)
{
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < ndim; i++)
        k += (size_t)snprintf(buf + k, DCV_TENSOR_SHAPE_TEXT - k, i ? ",%lld" : "%lld",
                              (long long)dims[i]);
    buf[k++] = ']';
    buf[k] = '\0';
    return k;
}

int dcv_tensor_count(struct dcv_tensor *t, const struct dcv_decode_limits *lim,
                     const char *what, char *err)
{
    struct dcv_decode_limits l = dcv_jsonbody_limits(lim);
    size_t p = 1;
    bool over = false;
    for (int i = 0; i < t->ndim; i++) {
        size_t d = (size_t)t->shape[i];
        if (d && p > SIZE_MAX / d)
            over = true;
        p *= d;
    }
    char st[DCV_TENSOR_SHAPE_TEXT];
    dcv_tensor_shape_text(st, t->shape, t->ndim);
    if (over)
        return dcv_errf(err, DCV_ETOOBIG, "%s: shape %s has more than 2^64 elements", what, st);
    if (p > l.max_elems)
        return dcv_errf(err, DCV_ETOOBIG, "%s: shape %s has %zu elements, above the limit of %zu",
                        what, st, p, l.max_elems);
    t->count = p;
    return 0;
}

int dcv_tensor_set_name(char *dst, const char *src, const char *field, char *err)
{
    size_t n = strlen(src);
    if (n >= DCV_TENSOR_NAME_MAX)
        return dcv_errf(err, DCV_EINVAL, "%s is %zu bytes long; at most %d are accepted", field, n,
                        DCV_TENSOR_NAME_MAX - 1);
    memcpy(dst, src, n + 1);
    return 0;
}

int dcv_tensor_read_shape(const struct dcv_jsonbody *b, const struct dcv_json *node,
                          const struct dcv_decode_limits *lim, const char *what,
                          struct dcv_tensor *out, char *err)
{
    if (!node)
        return dcv_errf(err, DCV_EINVAL, "%s is missing \"shape\"", what);
    if (dcv_jsonbody_array(b, node) || dcv_json_type(node) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "%s: shape must be an array of integers, got %s", what,
                        dcv_jsonbody_kind(b, node));
    size_t nd = dcv_json_size(node);
    if (nd == 0 || nd > DCV_TENSOR_MAX_DIMS)
        return dcv_errf(err, DCV_EINVAL, "%s: shape has %zu dimensions; 1 to %d are supported",
                        what, nd, DCV_TENSOR_MAX_DIMS);
    out->ndim = 0;
    for (const struct dcv_json *c = dcv_json_first(node); c; c = dcv_json_next(c)) {
        int64_t v;
        if (!dcv_json_int(c, -EXACT_INT, EXACT_INT, &v))
            return dcv_errf(err, DCV_EINVAL, "%s: shape[%d] must be an integer, got %s", what,
                            out->ndim, dcv_json_type(c) == DCV_JSON_NUMBER
                                           ? "a non-integer" : dcv_jsonbody_kind(b, c));
        if (v < 1)
            return dcv_errf(err, DCV_EINVAL, "%s: shape[%d] is %lld; %s", what, out->ndim,
                            (long long)v,
                            v == 0 ? "zero-size tensors are not accepted"
                                   : "dimensions must be positive");
        out->shape[out->ndim++] = v;
    }
    return dcv_tensor_count(out, lim, what, err);
}

/* Shape implied by the first element at each level of a tree array. */
static int tree_dims(const struct dcv_json *a, int max_depth, struct dcv_tensor *n,
                     const char *what, char *err)
{
    n->ndim = 0;
    for (const struct dcv_json *c = a; dcv_json_type(c) == DCV_JSON_ARRAY; c = dcv_json_first(c)) {
        if (n->ndim == max_depth)
            return dcv_errf(err, DCV_EINVAL, "%s is nested more than %d levels deep", what,
                            max_depth);
        n->shape[n->ndim++] = (int64_t)dcv_json_size(c);
    }
    return 0;
}

static void path_text(char *buf, size_t cap, const char *what, const size_t *idx, int depth)
{
    size_t k = (size_t)snprintf(buf, cap, "%s", what);
    for (int d = 0; d < depth && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "[%zu]", idx[d]);
}

static int ragged(char *err, const char *what, const size_t *idx, int d, size_t got,
                  int64_t want)
{
    char path[WHAT_MAX + 96];
    path_text(path, sizeof path, what, idx, d);
    return dcv_errf(err, DCV_ESHAPE,
                    "%s has %zu elements, expected %lld: nested arrays must be rectangular", path,
                    got, (long long)want);
}

static enum dcv_datatype_fault tree_value(const struct dcv_json *v, enum dcv_datatype t, float *out)
{
    switch (dcv_json_type(v)) {
    case DCV_JSON_BOOL:
        if (t != DCV_DATATYPE_BOOL)
            return DCV_DATATYPE_WRONG_KIND;
        *out = dcv_json_true(v) ? 1.0f : 0.0f;
        return DCV_DATATYPE_OK;
    case DCV_JSON_NUMBER:
        if (t == DCV_DATATYPE_BOOL)
            return DCV_DATATYPE_WRONG_KIND;
        *out = dcv_datatype_narrow(dcv_json_number(v));
        if (isinf(*out) && isfinite(dcv_json_number(v)) && t != DCV_DATATYPE_FP32 &&
            t != DCV_DATATYPE_FP64)
            return DCV_DATATYPE_RANGE; /* 1e300 as INT64 or FP16: say which range */
        return dcv_datatype_check(out, t);
    default:
        return DCV_DATATYPE_WRONG_KIND;
    }
}

static int tree_value_error(const struct dcv_jsonbody *b, char *err, const char *what, size_t i,
                            enum dcv_datatype_fault f, enum dcv_datatype t, const struct dcv_json *v)
{
    char got[NUMTXT];
    if (f == DCV_DATATYPE_WRONG_KIND)
        snprintf(got, sizeof got, "%s", dcv_jsonbody_kind(b, v));
    else
        snprintf(got, sizeof got, "%.9g", dcv_json_number(v));
    return dcv_datatype_error(err, what, i, f, t, got);
}

int dcv_tensor_read_value(const struct dcv_jsonbody *b, const struct dcv_json *node,
                          enum dcv_datatype t, const char *what, float *out, char *err)
{
    enum dcv_datatype_fault f = tree_value(node, t, out);
    return f ? tree_value_error(b, err, what, 0, f, t, node) : 0;
}

/* Visits every value of a rectangular tree array of shape n in row-major
 * order, checking it for type t and storing it when out is not NULL.
 * Iterative: the depth is bounded by n->ndim, never by the input. */
static int tree_walk(const struct dcv_jsonbody *b, const struct dcv_json *a,
                     const struct dcv_tensor *n, enum dcv_datatype t, float *out, const char *what,
                     char *err)
{
    const struct dcv_json *cur[DCV_TENSOR_MAX_DIMS], *par[DCV_TENSOR_MAX_DIMS];
    size_t idx[DCV_TENSOR_MAX_DIMS] = { 0 }, k = 0;
    int d = 0;
    par[0] = a;
    cur[0] = dcv_json_first(a);
    for (;;) {
        if (!cur[d]) {
            if (idx[d] != (size_t)n->shape[d])
                return ragged(err, what, idx, d, idx[d], n->shape[d]);
            if (d-- == 0)
                return 0;
            cur[d] = dcv_json_next(cur[d]);
            idx[d]++;
            continue;
        }
        if (idx[d] == (size_t)n->shape[d])
            return ragged(err, what, idx, d, dcv_json_size(par[d]), n->shape[d]);
        bool is_array = dcv_json_type(cur[d]) == DCV_JSON_ARRAY;
        if (d + 1 < n->ndim) {
            if (!is_array) {
                char path[WHAT_MAX + 96];
                path_text(path, sizeof path, what, idx, d + 1);
                return dcv_errf(err, DCV_ESHAPE, "%s must be an array (as its siblings are), got %s",
                                path, dcv_jsonbody_kind(b, cur[d]));
            }
            par[d + 1] = cur[d];
            cur[d + 1] = dcv_json_first(cur[d]);
            idx[++d] = 0;
            continue;
        }
        if (is_array) {
            char path[WHAT_MAX + 96];
            path_text(path, sizeof path, what, idx, d + 1);
            return dcv_errf(err, DCV_ESHAPE, "%s is an array where its siblings hold values: "
                            "nested arrays must be rectangular", path);
        }
        float v = 0;
        enum dcv_datatype_fault f = tree_value(cur[d], t, &v);
        if (f)
            return tree_value_error(b, err, what, k, f, t, cur[d]);
        if (out)
            out[k] = v;
        k++;
        cur[d] = dcv_json_next(cur[d]);
        idx[d]++;
    }
}

/* want: the shape the values must fill (KServe), or NULL to take the
 * nesting as the shape, in which case empty is refused. */
static int count_matches(const struct dcv_tensor *want, const struct dcv_tensor *got,
                         const char *what, char *err)
{
    char st[DCV_TENSOR_SHAPE_TEXT];
    if (want && want->count != got->count) {
        dcv_tensor_shape_text(st, want->shape, want->ndim);
        return dcv_errf(err, DCV_ESHAPE, "%s: expected %zu values for shape %s, got %zu", what,
                        want->count, st, got->count);
    }
    if (!want && got->count == 0) {
        dcv_tensor_shape_text(st, got->shape, got->ndim);
        return dcv_errf(err, DCV_ESHAPE, "%s has shape %s: zero-size tensors are not accepted",
                        what, st);
    }
    return 0;
}

/* A lifted array's floats into n: taken from b when b is given (writable),
 * else copied; then checked for type t. */
static int from_array(struct dcv_jsonbody *take, const struct dcv_jsonbody_array *a,
                      enum dcv_datatype t, const struct dcv_tensor *want, const char *what,
                      struct dcv_tensor *n, char *err)
{
    n->ndim = a->ndim;
    memcpy(n->shape, a->dims, sizeof n->shape);
    n->count = a->count;
    int rc = count_matches(want, n, what, err);
    if (rc)
        return rc;
    if (t == DCV_DATATYPE_BOOL)
        return dcv_datatype_error(err, what, 0, DCV_DATATYPE_WRONG_KIND, t, "a number");
    if (!a->data)
        return dcv_errf(err, DCV_EINTERNAL, "%s was already taken from the body", what);
    if (take) {
        n->data = dcv_jsonbody_take(take, a);
    } else if ((n->data = malloc(n->count * sizeof *n->data))) {
        memcpy(n->data, a->data, n->count * sizeof *n->data);
    } else {
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", n->count);
    }
    rc = dcv_datatype_check_floats(n->data, n->count, t, what, err);
    if (rc) {
        free(n->data);
        n->data = NULL;
    }
    return rc;
}

/* Reads node (a marker of b or a tree array) as nested values of type t
 * into n: its nesting and a new buffer of values. */
static int read_nested(const struct dcv_jsonbody *b, struct dcv_jsonbody *take,
                       const struct dcv_json *node, enum dcv_datatype t,
                       const struct dcv_decode_limits *lim, const struct dcv_tensor *want,
                       const char *what, struct dcv_tensor *n, char *err)
{
    memset(n, 0, sizeof *n);
    const struct dcv_jsonbody_array *a = dcv_jsonbody_array(b, node);
    if (a)
        return from_array(take, a, t, want, what, n, err);
    if (dcv_json_type(node) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "%s must be an array of %s, got %s", what,
                        t == DCV_DATATYPE_BOOL ? "booleans" : "numbers", dcv_jsonbody_kind(b, node));
    struct dcv_decode_limits l = dcv_jsonbody_limits(lim);
    int depth = l.max_depth < DCV_TENSOR_MAX_DIMS ? l.max_depth : DCV_TENSOR_MAX_DIMS;
    int rc = tree_dims(node, depth, n, what, err);
    if (!rc)
        rc = tree_walk(b, node, n, t, NULL, what, err); /* validate before allocating */
    if (!rc)
        rc = dcv_tensor_count(n, &l, what, err);
    if (!rc)
        rc = count_matches(want, n, what, err);
    if (rc)
        return rc;
    if (!(n->data = malloc(n->count * sizeof *n->data)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", n->count);
    if ((rc = tree_walk(b, node, n, t, n->data, what, err))) {
        free(n->data);
        n->data = NULL;
    }
    return rc;
}

/* out takes want's shape when there is one, else the nesting read. */
static int read_into(const struct dcv_jsonbody *b, struct dcv_jsonbody *take,
                     const struct dcv_json *node, enum dcv_datatype t,
                     const struct dcv_decode_limits *lim, const struct dcv_tensor *want,
                     const char *what, struct dcv_tensor *out, char *err)
{
    struct dcv_tensor n;
    int rc = read_nested(b, take, node, t, lim, want, what, &n, err);
    if (rc)
        return rc;
    if (want) {
        memcpy(out->shape, want->shape, sizeof out->shape);
        out->ndim = want->ndim;
        out->count = want->count;
    } else {
        memcpy(out->shape, n.shape, sizeof out->shape);
        out->ndim = n.ndim;
        out->count = n.count;
    }
    out->data = n.data;
    out->borrowed = false;
    return 0;
}

int dcv_tensor_read(struct dcv_jsonbody *b, const struct dcv_json *node, enum dcv_datatype t,
                    const struct dcv_decode_limits *lim, const struct dcv_tensor *want,
                    const char *what, struct dcv_tensor *out, char *err)
{
    out->data = NULL;
    return read_into(b, b, node, t, lim, want, what, out, err);
}

int dcv_tensor_from_json(const struct dcv_jsonbody *b, const struct dcv_json *node,
                         const struct dcv_decode_limits *lim, struct dcv_tensor *out, char *err)
{
    memset(out, 0, sizeof *out);
    struct dcv_tensor want = { .ndim = 0 };
    int rc;
    if (dcv_json_type(node) == DCV_JSON_OBJECT) {
        const struct dcv_json *d = dcv_json_get(node, "data");
        if (!d)
            return dcv_errf(err, DCV_EINVAL, "a tensor object needs \"shape\" and \"data\"; "
                            "\"data\" is missing");
        if ((rc = dcv_tensor_read_shape(b, dcv_json_get(node, "shape"), lim, "tensor", &want,
                                        err)))
            return rc;
        return read_into(b, NULL, d, DCV_DATATYPE_FP32, lim, &want, "tensor data", out, err);
    }
    if (!dcv_jsonbody_array(b, node) && dcv_json_type(node) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "expected a tensor: a nested array of numbers or "
                        "{\"shape\": [...], \"data\": [...]}, got %s", dcv_jsonbody_kind(b, node));
    return read_into(b, NULL, node, DCV_DATATYPE_FP32, lim, NULL, "tensor", out, err);
}

void dcv_tensor_release(struct dcv_tensor *t)
{
    if (!t)
        return;
    if (!t->borrowed)
        free(t->data);
    memset(t, 0, sizeof *t);
}

void dcv_infer_request_release(struct dcv_infer_request *req)
{
    if (req)
        dcv_tensor_release(&req->input);
}
