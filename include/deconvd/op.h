/* op.h — the stateless tf.nn.conv{1,2,3}d_transpose operation.
 *
 * Same numerics as the layers, but with TensorFlow's op-level contract: the
 * caller gives the full output_shape, strides/dilations as an int or a list
 * of length 1, N or N+2, padding "VALID"/"SAME" and a data_format string.
 * Errors follow TensorFlow's messages in substance. Any thread.
 */
#ifndef DECONVD_OP_H
#define DECONVD_OP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "deconvd/conv.h"

struct dcv_op {
    int rank;                           /* 1, 2 or 3 (from the op name) */
    const float *input;
    int64_t input_shape[DCV_MAX_DIMS];
    int input_ndim;
    const float *filters;               /* [k..., out_channels, in_channels] */
    int64_t filter_shape[DCV_MAX_DIMS];
    int filter_ndim;
    int64_t output_shape[DCV_MAX_DIMS];
    int output_ndim;
    int64_t strides[DCV_MAX_DIMS];
    int nstrides;                       /* 1, N or N+2 */
    int64_t dilations[DCV_MAX_DIMS];
    int ndilations;                     /* 0 = default 1 */
    const char *padding;                /* "VALID" / "SAME" (any case) */
    const char *data_format;            /* NULL → NWC/NHWC/NDHWC */
};

struct dcv_jsonbody;
struct dcv_decode_limits;
struct dcv_tensor;

/* An ops request body ({"input", "filters", "output_shape", "strides",
 * "dilations", "padding", "data_format"}) into op: the tensors decoded into
 * in and filt (release them with dcv_tensor_release), op pointing into
 * them and into b (keep both alive while op is used). 0 or DCV_EINVAL /
 * DCV_EPARSE / DCV_ETOOBIG with a message. Any thread. */
int dcv_op_decode(const struct dcv_jsonbody *b, const struct dcv_decode_limits *lim,
                  struct dcv_tensor *in, struct dcv_tensor *filt, struct dcv_op *op, char *err);

/* Validates op and fills conv (geometry only). Returns 0 or DCV_EINVAL /
 * DCV_ESHAPE with TensorFlow-style messages. */
int dcv_op_prepare(const struct dcv_op *op, struct dcv_conv *conv, char *err);

/* Runs it: out must hold prod(output_shape) floats. Builds a one-off engine
 * kernel (no caching across calls). `stop` (NULL = never) as for
 * dcv_engine_run, also seen before the kernel is built: seen set,
 * DCV_ECANCELED and out unspecified. Any thread. */
int dcv_op_run(const struct dcv_op *op, float *out, size_t out_cap, const atomic_bool *stop,
               char *err);

#endif
