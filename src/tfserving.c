/* tfserving.c — TensorFlow Serving :predict requests to a float32 input.
 *
 * The body goes through the scanner (jsonbody.c), so a whole "instances" or
 * "inputs" array of numbers arrives as one lifted array. The row form of
 * objects ({"instances": [{"x": ...}, ...]}) is read instance by instance,
 * each one a lifted array or a short tree array, into one batch whose
 * instances must all have the same shape. Decoding is all this module does;
 * the answer is answer.c's. Pure functions, any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/tfserving.h"

#define WHAT_MAX (DCV_TENSOR_NAME_MAX + 64)

static const char TF_FORMS[] =
    "a TF Serving :predict body is {\"instances\": [row, ...]} (each row a nested array, or "
    "an object with one key naming the input) or {\"inputs\": nested array} or "
    "{\"inputs\": {\"<name>\": nested array}}";

/* One instance's value: a bare number (a scalar row) or a nested array. */
static int instance_value(struct dcv_jsonbody *b, const struct dcv_json *v,
                          const struct dcv_decode_limits *lim, const char *what,
                          struct dcv_tensor *n, char *err)
{
    if (dcv_json_type(v) != DCV_JSON_NUMBER)
        return dcv_tensor_read(b, v, DCV_DATATYPE_FP32, lim, NULL, what, n, err);
    float f;
    int rc = dcv_tensor_read_value(b, v, DCV_DATATYPE_FP32, what, &f, err);
    if (rc)
        return rc;
    if (!(n->data = malloc(sizeof *n->data)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    n->data[0] = f;
    n->ndim = 0;
    n->count = 1;
    return 0;
}

static bool same_shape(const struct dcv_tensor *a, const struct dcv_tensor *b)
{
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]);
}

/* instances[i] must be {"<name>": value}, with the same name each time. */
static const struct dcv_json *instance_member(const struct dcv_jsonbody *b,
                                              const struct dcv_json *inst, size_t i,
                                              const char *name, char *err)
{
    if (dcv_json_type(inst) != DCV_JSON_OBJECT) {
        dcv_errf(err, DCV_EINVAL, "instances[%zu] is %s but instances[0] is an object; all "
                 "instances must have the same form", i, dcv_jsonbody_kind(b, inst));
        return NULL;
    }
    if (dcv_json_size(inst) != 1) {
        dcv_errf(err, DCV_EINVAL, "instances[%zu] has %zu keys; this model takes one input, so "
                 "each instance must be {\"<input name>\": value}", i, dcv_json_size(inst));
        return NULL;
    }
    const struct dcv_json *m = dcv_json_first(inst);
    if (name && strcmp(dcv_json_key(m), name)) {
        dcv_errf(err, DCV_EINVAL, "instances[%zu] names input '%.64s' but instances[0] names "
                 "'%s'", i, dcv_json_key(m), name);
        return NULL;
    }
    return m;
}

/* Room for n instances of inst's shape, checked against the limit. */
static int batch_alloc(size_t n, const struct dcv_tensor *inst,
                       const struct dcv_decode_limits *lim, struct dcv_tensor *out, char *err)
{
    if (inst->ndim + 1 > DCV_TENSOR_MAX_DIMS)
        return dcv_errf(err, DCV_EINVAL, "instances have %d dimensions; with the batch "
                        "dimension at most %d are supported", inst->ndim, DCV_TENSOR_MAX_DIMS);
    struct dcv_tensor all = { .ndim = inst->ndim + 1 };
    all.shape[0] = (int64_t)n;
    memcpy(all.shape + 1, inst->shape, (size_t)inst->ndim * sizeof all.shape[0]);
    int rc = dcv_tensor_count(&all, lim, "instances", err);
    if (rc)
        return rc;
    if (!(all.data = malloc(all.count * sizeof *all.data)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", all.count);
    *out = all;
    return 0;
}

static int instance_objects(struct dcv_jsonbody *b, const struct dcv_json *arr,
                            const struct dcv_decode_limits *lim, struct dcv_infer_request *req,
                            char *err)
{
    size_t n = dcv_json_size(arr), i = 0;
    struct dcv_tensor first = { 0 };
    int rc = 0;
    for (const struct dcv_json *inst = dcv_json_first(arr); inst && !rc;
         inst = dcv_json_next(inst), i++) {
        const struct dcv_json *m = instance_member(b, inst, i, i ? req->input_name : NULL, err);
        if (!m)
            return DCV_EINVAL;
        if (i == 0 &&
            (rc = dcv_tensor_set_name(req->input_name, dcv_json_key(m), "input name", err)))
            return rc;
        char what[WHAT_MAX];
        snprintf(what, sizeof what, "instances[%zu].%s", i, req->input_name);
        struct dcv_tensor one = { 0 };
        if ((rc = instance_value(b, m, lim, what, &one, err)))
            return rc;
        if (i == 0) {
            first = one;
            rc = batch_alloc(n, &first, lim, &req->input, err);
        } else if (!same_shape(&one, &first)) {
            char sa[DCV_TENSOR_SHAPE_TEXT], sb[DCV_TENSOR_SHAPE_TEXT];
            dcv_tensor_shape_text(sa, one.shape, one.ndim);
            dcv_tensor_shape_text(sb, first.shape, first.ndim);
            rc = dcv_errf(err, DCV_ESHAPE, "instances[%zu] has shape %s but instances[0] has %s",
                          i, sa, sb);
        }
        if (!rc)
            memcpy(req->input.data + i * first.count, one.data, first.count * sizeof *one.data);
        free(one.data);
    }
    return rc;
}

static int tf_instances(struct dcv_jsonbody *b, const struct dcv_json *inst,
                        const struct dcv_decode_limits *lim, struct dcv_infer_request *req,
                        char *err)
{
    bool lifted = dcv_jsonbody_array(b, inst) != NULL;
    bool tree = !lifted && dcv_json_type(inst) == DCV_JSON_ARRAY;
    if (tree && dcv_json_type(dcv_json_first(inst)) == DCV_JSON_OBJECT)
        return instance_objects(b, inst, lim, req, err);
    if (!tree && !lifted)
        return dcv_errf(err, DCV_EINVAL, "instances must be an array, got %s; %s",
                        dcv_jsonbody_kind(b, inst), TF_FORMS);
    return dcv_tensor_read(b, inst, DCV_DATATYPE_FP32, lim, NULL, "instances", &req->input, err);
}

static int tf_inputs(struct dcv_jsonbody *b, const struct dcv_json *in,
                     const struct dcv_decode_limits *lim, struct dcv_infer_request *req,
                     char *err)
{
    const struct dcv_json *v = in;
    if (dcv_json_type(in) == DCV_JSON_OBJECT) {
        if (dcv_json_size(in) != 1)
            return dcv_errf(err, DCV_EINVAL, "inputs names %zu tensors; this model takes one "
                            "input: {\"inputs\": {\"<name>\": nested array}}", dcv_json_size(in));
        v = dcv_json_first(in);
        int rc = dcv_tensor_set_name(req->input_name, dcv_json_key(v), "input name", err);
        if (rc)
            return rc;
    } else if (!dcv_jsonbody_array(b, in) && dcv_json_type(in) != DCV_JSON_ARRAY) {
        return dcv_errf(err, DCV_EINVAL, "inputs must be a nested array or an object, got %s; %s",
                        dcv_jsonbody_kind(b, in), TF_FORMS);
    }
    return dcv_tensor_read(b, v, DCV_DATATYPE_FP32, lim, NULL, "inputs", &req->input, err);
}

static int tf_request(struct dcv_jsonbody *b, const struct dcv_decode_limits *lim,
                      struct dcv_infer_request *req, bool *row_format, char *err)
{
    const struct dcv_json *root = dcv_jsonbody_root(b);
    if (dcv_jsonbody_array(b, root) || dcv_json_type(root) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "the body must be a JSON object, got %s; %s",
                        dcv_jsonbody_kind(b, root), TF_FORMS);
    const struct dcv_json *inst = dcv_json_get(root, "instances");
    const struct dcv_json *inputs = dcv_json_get(root, "inputs");
    if (inst && inputs)
        return dcv_errf(err, DCV_EINVAL, "give either \"instances\" or \"inputs\", not both; %s",
                        TF_FORMS);
    if (!inst && !inputs)
        return dcv_errf(err, DCV_EINVAL, "missing \"instances\" or \"inputs\"; %s", TF_FORMS);
    *row_format = inst != NULL;
    return inst ? tf_instances(b, inst, lim, req, err) : tf_inputs(b, inputs, lim, req, err);
}

int dcv_tfserving_decode(char *body, size_t len, const struct dcv_decode_limits *lim,
                         struct dcv_infer_request *req, bool *row_format, char *err)
{
    memset(req, 0, sizeof *req);
    struct dcv_decode_limits l = dcv_jsonbody_limits(lim);
    struct dcv_jsonbody *b;
    int rc = dcv_jsonbody_parse(body, len, &l, &b, err);
    if (rc)
        return rc;
    bool rows = false;
    rc = tf_request(b, &l, req, &rows, err);
    dcv_jsonbody_free(b);
    if (rc)
        dcv_infer_request_release(req);
    else if (row_format)
        *row_format = rows;
    return rc;
}
