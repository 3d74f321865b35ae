/* layers.h — the Keras layer registry: one table entry per layer class.
 *
 * A chain model (chain.h) is a list of steps; each step is an instance of a
 * layer class found here by its Keras class name (or an alias: tf.keras 2
 * spellings, snake_case names). A class is a table of functions over an
 * opaque state it owns: parse a get_config() dict, infer shapes, name the
 * weights it wants, take them, count its work, run. Adding a layer class is
 * one entry in src/layers.c's table plus its file; nothing else switches on
 * class names.
 *
 * Shapes are full tensor shapes, batch first, in the layout the layer's
 * data_format gives; -1 is an unknown dim. Threads: parse/shape/weights/
 * bind/fold run on the loading thread; run/work on any thread, concurrently,
 * on a bound state (which is then read-only).
 */
#ifndef DECONVD_LAYERS_H
#define DECONVD_LAYERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deconvd/activation.h"
#include "deconvd/conv.h"

struct dcv_json;

struct dcv_shape {
    int ndim;                       /* 1..DCV_MAX_DIMS, batch included */
    int64_t d[DCV_MAX_DIMS];        /* -1 = unknown */
};

#define DCV_LAYER_MAX_WEIGHTS 4

/* One weight a layer wants, in Keras `layer.weights` order. */
struct dcv_weight_want {
    const char *name;               /* Keras variable name: "kernel", "gamma", ... */
    struct dcv_shape shape;         /* exact shape (no batch axis, no unknowns) */
    bool has_default;               /* an initializer / Keras default fills it if absent */
};

struct dcv_layer_ctx {
    enum dcv_keras keras;
    size_t max_weight_elems;        /* bound on any one weight */
    size_t cache_cap;               /* oneDNN primitive cache per kernel, 0 = default */
};

struct dcv_layer_class {
    const char *name;               /* canonical Keras class name: "BatchNormalization" */
    const char *const *aliases;     /* NULL-terminated other spellings, or NULL */

    /* Parses a get_config() dict into a new state (*state, freed with
     * free_state). Every argument Keras 3.15 carries is accepted; an
     * argument that does not apply at inference is kept in the config.
     * Returns 0 or DCV_EINVAL/DCV_EUNSUPP/DCV_ENOMEM naming the argument. */
    int (*parse)(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx, void **state,
                 char *err);
    void (*free_state)(void *state);

    /* Output shape for an input shape (unknown dims propagate as -1; the
     * batch dim always passes through). Called with the model's signature
     * at load (learning e.g. input channels) and with concrete shapes per
     * request. DCV_ESHAPE with a message naming the layer's requirement. */
    int (*shape)(void *state, const struct dcv_shape *in, struct dcv_shape *out, char *err);

    /* Weights wanted for input signature `in` (channel dims known): fills
     * w[0..*n). NULL for classes without weights. */
    int (*weights)(const void *state, const struct dcv_shape *in, struct dcv_weight_want *w,
                   int *n, char *err);
    /* Takes the weights (arrays[i] has w[i]'s shape, row-major float32,
     * NULL when absent and has_default; the caller keeps ownership: copy).
     * NULL when nothing to bind. */
    int (*bind)(void *state, const struct dcv_shape *in, float *const *arrays, char *err);

    /* Fusion at load. as_affine: the layer is y = x * scale[c] + shift[c]
     * along channel axis *axis of its input (BatchNormalization at
     * inference); as_activation: the layer is a pointwise activation. Each
     * returns true and fills its outputs, or false. fold_affine /
     * fold_activation: the layer (a convolution, Dense) absorbs the next
     * layer's affine map / activation into its own weights / post-op;
     * DCV_EUNSUPP when it cannot (wrong axis, an activation already set),
     * leaving the state unchanged. Called after bind, before prepare. */
    bool (*as_affine)(const void *state, const struct dcv_shape *in, int *axis,
                      const float **scale, const float **shift);
    bool (*as_activation)(const void *state, struct dcv_activation *act);
    int (*fold_affine)(void *state, int axis, const float *scale, const float *shift, char *err);
    int (*fold_activation)(void *state, const struct dcv_activation *act, char *err);

    /* Builds compute for the final (folded) weights: prepacked oneDNN
     * kernels, a first primitive for input signature `in`. NULL when
     * nothing to build. Load order: parse, shape, weights, bind, folds,
     * prepare; then run/work from any thread. */
    int (*prepare)(void *state, const struct dcv_shape *in, char *err);

    /* Multiply-adds (or value operations) of one run on a concrete input;
     * saturates at UINT64_MAX. */
    uint64_t (*work)(const void *state, const struct dcv_shape *in);

    /* Computes out from in (concrete shapes, out sized by shape()). When
     * in_place is true, in may equal out. `stop` as for dcv_engine_run.
     * Returns 0 or DCV_ECANCELED/DCV_ENOMEM/DCV_EENGINE with a message. */
    int (*run)(const void *state, const float *in, const struct dcv_shape *is, float *out,
               const struct dcv_shape *os, const atomic_bool *stop, char *err);
    bool in_place;                  /* run may work in place (pointwise, identities) */
    bool identity;                  /* out == in, values and layout (Dropout, Reshape...) */

    /* The normalized config shown by /config (new tree; NULL on OOM), and
     * the activation that ends the layer (PNG default range), or NULL. */
    struct dcv_json *(*config)(const void *state);
    const struct dcv_activation *(*activation)(const void *state);
};

/* The table: X(id) for each entry `dcv_layer_class_<id>`, defined in
 * src/layer_<family>.c. Adding a class = one line here + its entry. */
#define DCV_LAYER_CLASSES(X) \
    X(input_layer)             \
    X(reshape)                 \
    X(flatten)                 \
    X(conv1d_transpose)        \
    X(conv2d_transpose)        \
    X(conv3d_transpose)        \
    X(dense)                   \
    X(conv1d) \
    X(conv2d) \
    X(conv3d) \
    X(batch_normalization) \
    X(dropout) \
    X(spatial_dropout1d) \
    X(spatial_dropout2d) \
    X(spatial_dropout3d) \
    X(gaussian_noise) \
    X(gaussian_dropout) \
    X(alpha_dropout) \
    X(activity_regularization) \
    X(activation) \
    X(relu) \
    X(leaky_relu) \
    X(elu) \
    X(softmax) \
    X(prelu) \
    X(up_sampling1d) \
    X(up_sampling2d) \
    X(up_sampling3d) \
    X(cropping1d) \
    X(cropping2d) \
    X(cropping3d) \
    X(zero_padding1d) \
    X(zero_padding2d) \
    X(zero_padding3d)

#define DCV_X_DECL(id) extern const struct dcv_layer_class dcv_layer_class_##id;
DCV_LAYER_CLASSES(DCV_X_DECL)
#undef DCV_X_DECL

/* The class for a Keras class name or alias, or NULL. Any thread. */
const struct dcv_layer_class *dcv_layers_find(const char *class_name);

/* "Activation, BatchNormalization, ..." — every supported class name, for
 * refusals. Static string, any thread. */
const char *dcv_layers_supported(void);

#endif
