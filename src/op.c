/* op.c — tf.nn.conv{1,2,3}d_transpose as a stateless operation.
 *
 * Validation mirrors TensorFlow's conv_transpose checks (output_shape
 * length, input depth vs filter in_channels, output depth vs filter
 * out_channels, padding, data_format, the SAME/VALID consistency rule);
 * the compute goes through the same engine as the layers with a one-off
 * kernel. The request body of /v2/ops is read here too (dcv_op_decode).
 * Unlike Keras layers, strides > 1 together with dilations > 1 are
 * allowed (oneDNN computes them). Any thread, owns nothing past a call.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/jsonbody.h"
#include "deconvd/op.h"
#include "deconvd/tensor.h"

static int parse_format(const struct dcv_op *op, struct dcv_conv *c, char *err)
{
    static const char *const last[] = { "NWC", "NHWC", "NDHWC" };
    static const char *const first[] = { "NCW", "NCHW", "NCDHW" };
    const char *f = op->data_format ? op->data_format : last[op->rank - 1];
    if (strcmp(f, last[op->rank - 1]) == 0) c->channels_first = false;
    else if (strcmp(f, first[op->rank - 1]) == 0) c->channels_first = true;
    else
        return dcv_errf(err, DCV_EINVAL, "data_format must be %s or %s for conv%dd_transpose, "
                        "got '%.20s'", last[op->rank - 1], first[op->rank - 1], op->rank, f);
    return 0;
}

/* int, or list of length 1, N or N+2 (batch/channel entries must be 1). */
static int spread(const struct dcv_op *op, const struct dcv_conv *c, const char *what,
                  const int64_t *v, int n, int64_t *out, char *err)
{
    int N = op->rank;
    if (n == 0) {
        for (int i = 0; i < N; i++) out[i] = 1;
        return 0;
    }
    if (n == 1) {
        for (int i = 0; i < N; i++) out[i] = v[0];
    } else if (n == N) {
        for (int i = 0; i < N; i++) out[i] = v[i];
    } else if (n == N + 2) {
        int cax = dcv_conv_channel_axis(c), sax = dcv_conv_spatial_axis(c);
        if (v[0] != 1 || v[cax] != 1)
            return dcv_errf(err, DCV_EINVAL, "%s in the batch and depth dimensions must be 1",
                            what);
        for (int i = 0; i < N; i++) out[i] = v[sax + i];
    } else {
        return dcv_errf(err, DCV_EINVAL, "%s must be an int or a list of length 1, %d or %d, "
                        "got length %d", what, N, N + 2, n);
    }
    return 0;
}

static int check_ranks(const struct dcv_op *op, char *err)
{
    int nd = op->rank + 2;
    if (op->rank < 1 || op->rank > 3)
        return dcv_errf(err, DCV_EINVAL, "rank must be 1, 2 or 3");
    if (op->input_ndim != nd)
        return dcv_errf(err, DCV_ESHAPE, "input must be rank %d, got rank %d", nd,
                        op->input_ndim);
    if (op->filter_ndim != nd)
        return dcv_errf(err, DCV_ESHAPE, "filters must be rank %d [%s, out_channels, "
                        "in_channels], got rank %d", nd, op->rank == 1 ? "width"
                        : op->rank == 2 ? "height, width" : "depth, height, width",
                        op->filter_ndim);
    if (op->output_ndim != nd)
        return dcv_errf(err, DCV_ESHAPE, "output_shape must have length %d, got %d", nd,
                        op->output_ndim);
    for (int i = 0; i < nd; i++)
        if (op->input_shape[i] < 1 || op->filter_shape[i] < 1 || op->output_shape[i] < 1)
            return dcv_errf(err, DCV_ESHAPE, "input, filters and output_shape dims must be "
                            "positive");
    return 0;
}

int dcv_op_prepare(const struct dcv_op *op, struct dcv_conv *c, char *err)
{
    int rc;
    memset(c, 0, sizeof *c);
    c->rank = op->rank;
    if ((rc = check_ranks(op, err)) || (rc = parse_format(op, c, err))) return rc;
    if (!op->padding || (strcasecmp(op->padding, "SAME") && strcasecmp(op->padding, "VALID")))
        return dcv_errf(err, DCV_EINVAL, "padding must be 'VALID' or 'SAME', got '%.20s'",
                        op->padding ? op->padding : "(none)");
    c->padding = strcasecmp(op->padding, "SAME") == 0 ? DCV_PADDING_SAME : DCV_PADDING_VALID;
    int nd = op->rank + 2, cax = dcv_conv_channel_axis(c), sax = dcv_conv_spatial_axis(c);
    c->filters = op->filter_shape[nd - 2];
    c->in_channels = op->filter_shape[nd - 1];
    for (int i = 0; i < op->rank; i++) c->kernel[i] = op->filter_shape[i];
    if ((rc = spread(op, c, "strides", op->strides, op->nstrides, c->strides, err)) ||
        (rc = spread(op, c, "dilations", op->dilations, op->ndilations, c->dilation, err)))
        return rc;
    if (op->input_shape[cax] != c->in_channels)
        return dcv_errf(err, DCV_ESHAPE, "input depth must equal filter in_channels: input "
                        "has %lld channels, filters have %lld", (long long)op->input_shape[cax],
                        (long long)c->in_channels);
    if (op->output_shape[cax] != c->filters)
        return dcv_errf(err, DCV_ESHAPE, "output_shape depth must equal filter out_channels: "
                        "output_shape has %lld, filters have %lld",
                        (long long)op->output_shape[cax], (long long)c->filters);
    if (op->output_shape[0] != op->input_shape[0])
        return dcv_errf(err, DCV_ESHAPE, "output_shape batch %lld differs from input batch %lld",
                        (long long)op->output_shape[0], (long long)op->input_shape[0]);
    if ((rc = dcv_conv_validate(c, err))) return rc;
    for (int i = 0; i < op->rank; i++)
        if ((rc = dcv_conv_check_lengths(c, i, op->input_shape[sax + i],
                                         op->output_shape[sax + i], err)))
            return rc;
    return 0;
}

int dcv_op_run(const struct dcv_op *op, float *out, size_t out_cap, const atomic_bool *stop,
               char *err)
{
    struct dcv_conv c;
    struct dcv_engine_kernel *k = NULL;
    int rc = dcv_op_prepare(op, &c, err);
    if (rc) return rc;
    int64_t n = dcv_shape_product(op->output_shape, op->rank + 2);
    if (n < 0 || (size_t)n > out_cap)
        return dcv_errf(err, DCV_EINVAL, "output buffer too small");
    int sax = dcv_conv_spatial_axis(&c);
    if (stop && atomic_load(stop))         /* before packing weights for nothing */
        return dcv_errf(err, DCV_ECANCELED, "stopped after 0 of %lld batch items",
                        (long long)op->input_shape[0]);
    if ((rc = dcv_engine_kernel_create(&c, op->filters, NULL, 1, NULL, &k, err))) return rc;
    rc = dcv_engine_run(k, op->input, op->input_shape[0], op->input_shape + sax,
                        op->output_shape + sax, out, stop, err);
    dcv_engine_kernel_free(k);
    return rc;
}

static int op_ints(const struct dcv_json *v, int64_t *out, int *n, const char *what, char *err)
{
    int64_t x;
    *n = 0;
    if (!v || dcv_json_type(v) == DCV_JSON_NULL) return 0;
    if (dcv_json_int(v, 1, DCV_MAX_STRIDE, &x)) {
        out[0] = x;
        *n = 1;
        return 0;
    }
    int k = dcv_json_dims(v, out, DCV_MAX_DIMS, false, what, err);
    if (k < 0) return k;
    *n = k;
    return 0;
}

int dcv_op_decode(const struct dcv_jsonbody *b, const struct dcv_decode_limits *lim,
                  struct dcv_tensor *in, struct dcv_tensor *filt, struct dcv_op *op, char *err)
{
    const struct dcv_json *root = dcv_jsonbody_root(b);
    int rc, k;
    if ((rc = dcv_tensor_from_json(b, dcv_json_get(root, "input"), lim, in, err)) ||
        (rc = dcv_tensor_from_json(b, dcv_json_get(root, "filters"), lim, filt, err)))
        return rc;
    op->input = in->data, op->input_ndim = in->ndim;
    op->filters = filt->data, op->filter_ndim = filt->ndim;
    memcpy(op->input_shape, in->shape, sizeof(int64_t) * (size_t)(in->ndim < 5 ? in->ndim : 5));
    memcpy(op->filter_shape, filt->shape,
           sizeof(int64_t) * (size_t)(filt->ndim < 5 ? filt->ndim : 5));
    op->padding = dcv_json_string(dcv_json_get(root, "padding"));
    op->data_format = dcv_json_string(dcv_json_get(root, "data_format"));
    if ((k = dcv_json_dims(dcv_json_get(root, "output_shape"), op->output_shape, DCV_MAX_DIMS, false,
                       "output_shape", err)) < 0)
        return k;
    op->output_ndim = k;
    if ((rc = op_ints(dcv_json_get(root, "strides"), op->strides, &op->nstrides, "strides",
                      err)) ||
        (rc = op_ints(dcv_json_get(root, "dilations"), op->dilations, &op->ndilations,
                      "dilations", err)))
        return rc;
    if (!op->nstrides) op->strides[0] = 1, op->nstrides = 1;
    return 0;
}
