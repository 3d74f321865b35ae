/* kserve.c — KServe v2 / Triton requests to a float32 input.
 *
 * The JSON part goes through the body scanner (jsonbody.c): the input's
 * "data", however long, arrives as a lifted array and its floats are taken,
 * not copied; everything else is a small tree read here with messages that
 * name the field and the values seen. Binary inputs (the binary tensor
 * extension) and inputs in shared memory (the shared-memory extension) are
 * converted by datatype.c, aligned FP32 read in place. Decoding is all this
 * module does; answers are answer.c's. Pure functions, any thread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/kserve.h"

#define WHAT_MAX (DCV_TENSOR_NAME_MAX + 64)
#define EXACT_INT ((int64_t)1 << 53) /* byte counts: larger doubles skip integers */

struct kinput {
    const struct dcv_json *data;
    enum dcv_datatype t;
    struct dcv_tensor shape;
    bool binary;
    int64_t binary_size;
    char what[WHAT_MAX];
};

static int kserve_id(const struct dcv_jsonbody *b, const struct dcv_json *root, struct dcv_infer_request *req, char *err)
{
    const struct dcv_json *id = dcv_json_get(root, "id");
    if (!id)
        return 0;
    const char *s = dcv_jsonbody_string(b, id);
    if (!s)
        return dcv_errf(err, DCV_EINVAL, "id must be a string, got %s", dcv_jsonbody_kind(b, id));
    size_t n = strlen(s);
    if (n >= DCV_TENSOR_ID_MAX)
        return dcv_errf(err, DCV_EINVAL, "id is %zu bytes long; at most %d are accepted", n,
                        DCV_TENSOR_ID_MAX - 1);
    memcpy(req->id, s, n + 1);
    req->has_id = true;
    return 0;
}

/* Optional bool member key of the optional object params. */
static int param_bool(const struct dcv_jsonbody *b, const struct dcv_json *params, const char *where, const char *key,
                      bool *out, char *err)
{
    if (!params)
        return 0;
    if (dcv_json_type(params) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "%s must be an object, got %s", where,
                        dcv_jsonbody_kind(b, params));
    const struct dcv_json *v = dcv_json_get(params, key);
    if (!v)
        return 0;
    if (dcv_json_type(v) != DCV_JSON_BOOL)
        return dcv_errf(err, DCV_EINVAL, "%s.%s must be true or false, got %s", where, key,
                        dcv_jsonbody_kind(b, v));
    *out = dcv_json_true(v);
    return 0;
}

/* A byte count or offset parameter: a non-negative integer (up to 2^53). */
static int param_bytes(const struct dcv_jsonbody *b, const struct dcv_json *v, const char *where, const char *key,
                       uint64_t *out, char *err)
{
    int64_t x;
    if (!dcv_json_int(v, -EXACT_INT, EXACT_INT, &x) || x < 0)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.%s must be a non-negative integer "
                        "number of bytes, got %s", where, key,
                        dcv_json_type(v) == DCV_JSON_NUMBER ? "a negative, non-integer or too "
                        "large number" : dcv_jsonbody_kind(b, v));
    *out = (uint64_t)x;
    return 0;
}

/* parameters.shared_memory_{region,byte_size,offset} of one tensor, from
 * an object params (or NULL). Region and byte size come together. */
static int shm_params(const struct dcv_jsonbody *b, const struct dcv_json *params, const char *where,
                      struct dcv_tensor_shm *shm, char *err)
{
    const struct dcv_json *region = dcv_json_get(params, "shared_memory_region"),
                          *size = dcv_json_get(params, "shared_memory_byte_size"),
                          *off = dcv_json_get(params, "shared_memory_offset");
    int rc;
    if (!region && !size && !off)
        return 0;
    if (!region)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_%s is given without "
                        "parameters.shared_memory_region", where, size ? "byte_size" : "offset");
    const char *name = dcv_jsonbody_string(b, region);
    if (!name)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_region must be a "
                        "string, got %s", where, dcv_jsonbody_kind(b, region));
    size_t n = strlen(name);
    if (n == 0 || n >= DCV_TENSOR_REGION_MAX)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_region is %zu bytes "
                        "long; 1 to %d are accepted", where, n, DCV_TENSOR_REGION_MAX - 1);
    if (!size)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_region needs "
                        "parameters.shared_memory_byte_size", where);
    if ((rc = param_bytes(b, size, where, "shared_memory_byte_size", &shm->byte_size, err)) ||
        (off && (rc = param_bytes(b, off, where, "shared_memory_offset", &shm->offset, err))))
        return rc;
    memcpy(shm->region, name, n + 1);
    shm->used = true;
    return 0;
}

/* parameters.binary_data_output is the default; an outputs entry's own
 * parameters.binary_data overrides it, as in Triton. */
static int kserve_outputs(const struct dcv_jsonbody *b, const struct dcv_json *root, struct dcv_infer_request *req, char *err)
{
    int rc = param_bool(b, dcv_json_get(root, "parameters"), "parameters", "binary_data_output",
                        &req->binary_output, err);
    const struct dcv_json *outs = dcv_json_get(root, "outputs");
    if (rc || !outs)
        return rc;
    if (dcv_jsonbody_array(b, outs) || dcv_json_type(outs) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "outputs must be an array of {\"name\": ...} objects, "
                        "got %s", dcv_jsonbody_kind(b, outs));
    size_t i = 0;
    for (const struct dcv_json *o = dcv_json_first(outs); o; o = dcv_json_next(o), i++) {
        const char *name = dcv_jsonbody_string(b, dcv_json_get(o, "name"));
        if (!name)
            return dcv_errf(err, DCV_EINVAL, "outputs[%zu] must be an object with a string "
                            "\"name\"", i);
        if (i == 0 && (rc = dcv_tensor_set_name(req->output_name, name, "output name", err)))
            return rc;
        if (strcmp(name, req->output_name))
            return dcv_errf(err, DCV_EINVAL, "outputs[%zu] names '%.64s' but outputs[0] names "
                            "'%s'; a model has one output", i, name, req->output_name);
        char where[48];
        snprintf(where, sizeof where, "outputs[%zu].parameters", i);
        rc = param_bool(b, dcv_json_get(o, "parameters"), where, "binary_data", &req->binary_output,
                        err);
        if (!rc) {
            snprintf(where, sizeof where, "outputs[%zu]", i);
            rc = shm_params(b, dcv_json_get(o, "parameters"), where, &req->output_shm, err);
        }
        if (rc)
            return rc;
        req->output_requested = true;
    }
    return 0;
}

static const struct dcv_json *kserve_input_object(const struct dcv_jsonbody *b,
                                                  const struct dcv_json *root, char *err,
                                                  int *rc)
{
    const struct dcv_json *inputs = dcv_json_get(root, "inputs");
    *rc = DCV_EINVAL;
    if (!inputs) {
        dcv_errf(err, *rc, "missing \"inputs\": a KServe v2 request is {\"inputs\": [{\"name\", "
                 "\"shape\", \"datatype\", \"data\"}]}");
    } else if (dcv_jsonbody_array(b, inputs) || dcv_json_type(inputs) != DCV_JSON_ARRAY) {
        dcv_errf(err, *rc, "inputs must be an array of input objects, got %s", dcv_jsonbody_kind(b, inputs));
    } else if (dcv_json_size(inputs) != 1) {
        dcv_errf(err, *rc, "inputs holds %zu inputs; this model takes exactly one",
                 dcv_json_size(inputs));
    } else if (dcv_json_type(dcv_json_first(inputs)) != DCV_JSON_OBJECT) {
        dcv_errf(err, *rc, "inputs[0] must be an object, got %s",
                 dcv_jsonbody_kind(b, dcv_json_first(inputs)));
    } else {
        *rc = 0;
        return dcv_json_first(inputs);
    }
    return NULL;
}

static int kserve_params(const struct dcv_jsonbody *b, const struct dcv_json *in, struct kinput *k,
                         struct dcv_tensor_shm *shm, char *err)
{
    const struct dcv_json *params = dcv_json_get(in, "parameters");
    if (!params)
        return 0;
    if (dcv_json_type(params) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters must be an object, got %s", k->what,
                        dcv_jsonbody_kind(b, params));
    int rc = shm_params(b, params, k->what, shm, err);
    if (rc)
        return rc;
    const struct dcv_json *size = dcv_json_get(params, "binary_data_size");
    if (!size)
        return 0;
    if (!dcv_json_int(size, -EXACT_INT, EXACT_INT, &k->binary_size) || k->binary_size < 0)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.binary_data_size must be a byte count, "
                        "got %s", k->what,
                        dcv_json_type(size) == DCV_JSON_NUMBER ? "a negative or non-integer number"
                                                               : dcv_jsonbody_kind(b, size));
    k->binary = true;
    return 0;
}

static int kserve_input(const struct dcv_jsonbody *b, const struct dcv_json *root, const struct dcv_decode_limits *lim, struct kinput *k,
                        struct dcv_infer_request *req, char *err)
{
    int rc;
    const struct dcv_json *in = kserve_input_object(b, root, err, &rc);
    if (!in)
        return rc;
    const struct dcv_json *name = dcv_json_get(in, "name");
    if (!name)
        return dcv_errf(err, DCV_EINVAL, "inputs[0] is missing \"name\"");
    if (!dcv_jsonbody_string(b, name))
        return dcv_errf(err, DCV_EINVAL, "inputs[0].name must be a string, got %s",
                        dcv_jsonbody_kind(b, name));
    if ((rc = dcv_tensor_set_name(req->input_name, dcv_jsonbody_string(b, name), "input name", err)))
        return rc;
    snprintf(k->what, sizeof k->what, "input '%s'", req->input_name);
    const struct dcv_json *dt = dcv_json_get(in, "datatype");
    if (!dt)
        return dcv_errf(err, DCV_EINVAL, "%s is missing \"datatype\"", k->what);
    if (!dcv_jsonbody_string(b, dt))
        return dcv_errf(err, DCV_EINVAL, "%s: datatype must be a string, got %s", k->what,
                        dcv_jsonbody_kind(b, dt));
    if (dcv_datatype_parse(dcv_jsonbody_string(b, dt), &k->t))
        return dcv_errf(err, DCV_EINVAL, "%s has unsupported datatype '%.32s' (accepted: FP32, "
                        "FP64, FP16, BF16, INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, "
                        "UINT64, BOOL)", k->what, dcv_jsonbody_string(b, dt));
    if ((rc = dcv_tensor_read_shape(b, dcv_json_get(in, "shape"), lim, k->what, &k->shape, err)) ||
        (rc = kserve_params(b, in, k, &req->input_shm, err)))
        return rc;
    k->data = dcv_json_get(in, "data");
    if (req->input_shm.used && (k->data || k->binary))
        return dcv_errf(err, DCV_EINVAL, "%s has both %s and parameters.shared_memory_region; "
                        "give one", k->what, k->data ? "\"data\"" : "parameters.binary_data_size");
    if (req->input_shm.used)
        return 0;
    if (k->data && k->binary)
        return dcv_errf(err, DCV_EINVAL, "%s has both \"data\" and parameters.binary_data_size; "
                        "give one", k->what);
    if (!k->data && !k->binary)
        return dcv_errf(err, DCV_EINVAL, "%s has neither \"data\" nor "
                        "parameters.binary_data_size", k->what);
    return 0;
}

static int kserve_binary(const struct kinput *k, const unsigned char *bin, size_t blen,
                         bool has_header, struct dcv_tensor *out, char *err)
{
    size_t size = dcv_datatype_size(k->t), count = k->shape.count;
    char st[DCV_TENSOR_SHAPE_TEXT];
    dcv_tensor_shape_text(st, k->shape.shape, k->shape.ndim);
    if (count > SIZE_MAX / size || (uint64_t)k->binary_size != count * size)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.binary_data_size is %lld but shape %s "
                        "of %s needs %zu bytes", k->what, (long long)k->binary_size, st,
                        dcv_datatype_name(k->t), count * size);
    if (blen != count * size)
        return dcv_errf(err, DCV_EINVAL, "%s: expected %zu bytes of binary data after the JSON "
                        "header, got %zu%s", k->what, count * size, blen,
                        has_header ? "" : " (no Inference-Header-Content-Length was given)");
    return dcv_datatype_from_bytes(bin, count, k->t, true, k->what, &out->data, &out->borrowed, err);
}

/* An input in shared memory: its byte size must fit shape and datatype
 * now, so that api.c maps exactly what the tensor needs. */
static int kserve_shm_input(const struct kinput *k, struct dcv_infer_request *req, size_t blen,
                            char *err)
{
    size_t size = dcv_datatype_size(k->t), count = k->shape.count;
    char st[DCV_TENSOR_SHAPE_TEXT];
    dcv_tensor_shape_text(st, k->shape.shape, k->shape.ndim);
    if (count > SIZE_MAX / size || req->input_shm.byte_size != (uint64_t)(count * size))
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_byte_size is %llu but "
                        "shape %s of %s needs %zu bytes", k->what,
                        (unsigned long long)req->input_shm.byte_size, st, dcv_datatype_name(k->t),
                        count * size);
    if (blen)
        return dcv_errf(err, DCV_EINVAL, "expected 0 bytes of binary data after the JSON header "
                        "(no input has parameters.binary_data_size), got %zu", blen);
    snprintf(req->input_datatype, sizeof req->input_datatype, "%s", dcv_datatype_name(k->t));
    return 0;
}

static int kserve_request(struct dcv_jsonbody *b, const unsigned char *bin, size_t blen,
                          bool has_header, const struct dcv_decode_limits *lim,
                          struct dcv_infer_request *req, char *err)
{
    const struct dcv_json *root = dcv_jsonbody_root(b);
    if (dcv_jsonbody_array(b, root) || dcv_json_type(root) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "a KServe v2 request must be a JSON object, got %s",
                        dcv_jsonbody_kind(b, root));
    struct kinput k = { 0 };
    int rc;
    if ((rc = kserve_id(b, root, req, err)) || (rc = kserve_outputs(b, root, req, err)) ||
        (rc = kserve_input(b, root, lim, &k, req, err)))
        return rc;
    req->input = k.shape;
    if (req->input_shm.used)
        return kserve_shm_input(&k, req, blen, err);
    if (k.binary)
        return kserve_binary(&k, bin, blen, has_header, &req->input, err);
    if (blen)
        return dcv_errf(err, DCV_EINVAL, "expected 0 bytes of binary data after the JSON header "
                        "(no input has parameters.binary_data_size), got %zu", blen);
    return dcv_tensor_read(b, k.data, k.t, lim, &k.shape, k.what, &req->input, err);
}

int dcv_kserve_decode(char *body, size_t len, size_t header_len,
                      const struct dcv_decode_limits *lim, struct dcv_infer_request *req,
                      char *err)
{
    memset(req, 0, sizeof *req);
    if (header_len > len)
        return dcv_errf(err, DCV_EINVAL, "Inference-Header-Content-Length is %zu but the body "
                        "has only %zu bytes", header_len, len);
    struct dcv_decode_limits l = dcv_jsonbody_limits(lim);
    size_t jlen = header_len ? header_len : len;
    struct dcv_jsonbody *b;
    int rc = dcv_jsonbody_parse(body, jlen, &l, &b, err);
    if (rc)
        return rc;
    rc = kserve_request(b, (const unsigned char *)body + jlen, len - jlen, header_len != 0, &l,
                        req, err);
    dcv_jsonbody_free(b);
    if (rc)
        dcv_infer_request_release(req);
    return rc;
}

int dcv_kserve_decode_raw(struct dcv_infer_request *req, const void *src, size_t len,
                          bool may_borrow, char *err)
{
    enum dcv_datatype t;
    char what[WHAT_MAX];
    if (!req->input_shm.used || req->input.data || dcv_datatype_parse(req->input_datatype, &t))
        return dcv_errf(err, DCV_EINVAL, "the request's input is not in shared memory");
    snprintf(what, sizeof what, "input '%s'", req->input_name);
    size_t count = req->input.count, size = dcv_datatype_size(t);
    if (count > SIZE_MAX / size || len != count * size)
        return dcv_errf(err, DCV_EINVAL, "%s: expected %zu bytes of %s in shared memory, got %zu",
                        what, count * size, dcv_datatype_name(t), len);
    return dcv_datatype_from_bytes(src, count, t, may_borrow, what, &req->input.data,
                                &req->input.borrowed, err);
}
