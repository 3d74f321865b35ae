/* conv.h — transposed-convolution geometry shared by Keras layers and ops.
 *
 * struct dcv_conv is everything the compute engine needs to know about one
 * transposed convolution; the functions here are the pure shape arithmetic
 * (Keras deconv_output_length, TensorFlow's SAME/VALID padding and its
 * input/output consistency rule). No allocation, any thread.
 */
#ifndef DECONVD_CONV_H
#define DECONVD_CONV_H

#include <stdbool.h>
#include <stdint.h>

#include "deconvd/activation.h"

#define DCV_MAX_SPATIAL 3
#define DCV_MAX_DIMS (DCV_MAX_SPATIAL + 2)
/* Upper bounds that keep every product below 2^63 and refuse absurd specs. */
#define DCV_MAX_KERNEL   4096
#define DCV_MAX_STRIDE   4096
#define DCV_MAX_DILATION 4096
#define DCV_MAX_CHANNELS (1 << 20)
#define DCV_MAX_EXTENT   (INT64_C(1) << 31)

enum dcv_padding { DCV_PADDING_VALID, DCV_PADDING_SAME };
enum dcv_dtype { DCV_DTYPE_FLOAT32, DCV_DTYPE_BFLOAT16 };

struct dcv_conv {
    int rank;                            /* spatial dims, 1..3 */
    int64_t in_channels;
    int64_t filters;                     /* output channels */
    int64_t kernel[DCV_MAX_SPATIAL];
    int64_t strides[DCV_MAX_SPATIAL];
    int64_t dilation[DCV_MAX_SPATIAL];   /* Keras/TF convention: 1 = dense */
    enum dcv_padding padding;
    bool channels_first;                 /* NC[D]HW instead of N[D]HWC */
    bool use_bias;
    enum dcv_dtype dtype;
    struct dcv_activation act;
};

/* Effective kernel extent (k-1)*d+1. */
int64_t dcv_conv_effective_kernel(int64_t k, int64_t d);

/* Keras deconv_output_length for one spatial dim. output_padding < 0 means
 * None. n < 0 (unknown) gives -1. */
int64_t dcv_conv_output_length(int64_t n, int64_t k, int64_t s, int64_t d,
                               enum dcv_padding padding, int64_t output_padding);

/* TensorFlow's consistency rule for conv_transpose: the forward convolution
 * of an `out`-long signal must give back `n`. Returns 0 or DCV_ESHAPE with a
 * message naming the dim and the sizes. */
int dcv_conv_check_lengths(const struct dcv_conv *c, int dim, int64_t n, int64_t out,
                           char *err);

/* Padding as oneDNN wants it for in→out: pad_l = TF's pad_before (>= 0),
 * pad_r = full - out - pad_before (may be negative, down to -(s-1)). */
void dcv_conv_pads(const struct dcv_conv *c, const int64_t *in_sp, const int64_t *out_sp,
                   int64_t *pad_l, int64_t *pad_r);

/* Index of the channel axis / first spatial axis in a full (N, ...) shape. */
static inline int dcv_conv_channel_axis(const struct dcv_conv *c)
{
    return c->channels_first ? 1 : c->rank + 1;
}
static inline int dcv_conv_spatial_axis(const struct dcv_conv *c)
{
    return c->channels_first ? 2 : 1;
}

/* Validates the static parts (rank, channels, kernel, strides, dilation
 * ranges). Keras's "no strides > 1 with dilation > 1" rule is the layer's:
 * the op form allows it. Returns 0 or DCV_EINVAL naming the argument. */
int dcv_conv_validate(const struct dcv_conv *c, char *err);

/* Multiply-adds of one run of c over `batch` items of spatial size in_sp
 * (rank values): batch * in_channels * filters * prod(in_sp[i] * kernel[i]).
 * These are the useful products, not the zeros a stride inserts (that
 * count would use the output size): what the compute costs, the figure
 * the engine decides threads and checkpoints by and a request bound is set
 * in. Saturates at UINT64_MAX instead of overflowing. A negative size
 * (unknown) gives UINT64_MAX: no bound holds; otherwise a size of 0 gives
 * 0. Pure, any thread; c need not be validated. */
uint64_t dcv_conv_work(const struct dcv_conv *c, int64_t batch, const int64_t *in_sp);

/* Checked product of n values; -1 if any is negative or the product
 * exceeds INT64_MAX. */
int64_t dcv_shape_product(const int64_t *v, int n);

#endif
