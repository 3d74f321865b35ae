/* conv.h — convolution geometry shared by Keras layers and ops.
 *
 * struct dcv_conv is everything the compute engine needs to know about one
 * convolution, transposed (Conv*DTranspose, conv_transpose: the default)
 * or forward (Conv*D, `forward` set); the functions here are the pure shape
 * arithmetic (Keras deconv_output_length and conv_output_length,
 * TensorFlow's SAME/VALID padding, Conv1D's causal padding, the
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

/* CAUSAL: forward convolutions only (Keras allows it for Conv1D): the
 * input is padded with (k-1)*d zeros before, none after. */
enum dcv_padding { DCV_PADDING_VALID, DCV_PADDING_SAME, DCV_PADDING_CAUSAL };
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
    bool forward;                        /* cross-correlation (Conv*D), not its transpose */
    int64_t groups;                      /* forward only: Keras `groups`; 0 or 1 = none */
};

/* Groups of c (at least 1). */
static inline int64_t dcv_conv_groups(const struct dcv_conv *c)
{
    return c->groups > 1 ? c->groups : 1;
}

/* Effective kernel extent (k-1)*d+1. */
int64_t dcv_conv_effective_kernel(int64_t k, int64_t d);

/* Keras deconv_output_length for one spatial dim. output_padding < 0 means
 * None. n < 0 (unknown) gives -1. */
int64_t dcv_conv_output_length(int64_t n, int64_t k, int64_t s, int64_t d,
                               enum dcv_padding padding, int64_t output_padding);

/* Keras conv_output_length for one spatial dim of a forward convolution:
 * VALID (n - ke) / s + 1 (0 when n < ke), SAME and CAUSAL ceil(n / s).
 * n < 0 (unknown) gives -1. */
int64_t dcv_conv_forward_length(int64_t n, int64_t k, int64_t s, int64_t d,
                                enum dcv_padding padding);

/* Output length of dim `dim` of c for input length n: forward or, for a
 * transposed c, deconv_output_length without output_padding. */
int64_t dcv_conv_out_length(const struct dcv_conv *c, int dim, int64_t n);

/* Forward c: `out` must be what the forward length gives for n.
 * Transposed c: TensorFlow's consistency rule for conv_transpose: the forward convolution
 * of an `out`-long signal must give back `n`. Returns 0 or DCV_ESHAPE with a
 * message naming the dim and the sizes. */
int dcv_conv_check_lengths(const struct dcv_conv *c, int dim, int64_t n, int64_t out,
                           char *err);

/* Padding as oneDNN wants it for in→out. Transposed: pad_l = TF's
 * pad_before (>= 0), pad_r = full - out - pad_before (may be negative, down
 * to -(s-1)). Forward: pad_l = TF's pad_before (SAME: total // 2, total =
 * max((out-1)*s + ke - in, 0); CAUSAL: ke - 1; VALID: 0), pad_r = what is
 * left of the window span past the input, at least 0. */
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
 * ranges; groups dividing in_channels and filters, forward only; causal
 * padding forward only). Keras's "no strides > 1 with dilation > 1" rule
 * is the layer's: the op form allows it. Returns 0 or DCV_EINVAL naming
 * the argument. */
int dcv_conv_validate(const struct dcv_conv *c, char *err);

/* Multiply-adds of one run of c over `batch` items of spatial size in_sp
 * (rank values). Forward: batch * out positions * prod(kernel) *
 * in_channels / groups * filters (out positions from
 * dcv_conv_forward_length). Transposed:
 * batch * in_channels * filters * prod(in_sp[i] * kernel[i]).
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
