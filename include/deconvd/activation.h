/* activation.h — Keras activations (TF 2.x definitions).
 *
 * Parses every form a Keras config carries (a name, null, the serialized
 * {"class_name","config"} dict in Keras 2 and 3 form, and the activation
 * layers ReLU/LeakyReLU/ELU/Softmax/Activation) into a small value type.
 * The engine fuses what oneDNN post-ops express; dcv_activation_apply is the
 * portable pass for the rest. Pure functions, any thread.
 */
#ifndef DECONVD_ACTIVATION_H
#define DECONVD_ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>

struct dcv_json;

#define DCV_ACTIVATIONS(X)                          \
    X(LINEAR, "linear")                             \
    X(RELU, "relu")                                 \
    X(SIGMOID, "sigmoid")                           \
    X(TANH, "tanh")                                 \
    X(SOFTPLUS, "softplus")                         \
    X(SOFTSIGN, "softsign")                         \
    X(ELU, "elu")                                   \
    X(SELU, "selu")                                 \
    X(EXPONENTIAL, "exponential")                   \
    X(HARD_SIGMOID, "hard_sigmoid")                 \
    X(SWISH, "swish")                               \
    X(GELU, "gelu")                                 \
    X(RELU6, "relu6")                               \
    X(LEAKY_RELU, "leaky_relu")                     \
    X(MISH, "mish")                                 \
    X(SOFTMAX, "softmax")                           \
    X(HARD_SILU, "hard_silu")                       \
    X(LOG_SIGMOID, "log_sigmoid")

enum dcv_act_kind {
#define DCV_X_ACT(id, name) DCV_ACT_##id,
    DCV_ACTIVATIONS(DCV_X_ACT)
#undef DCV_X_ACT
    DCV_ACT_COUNT
};

struct dcv_activation {
    enum dcv_act_kind kind;
    float alpha;        /* RELU/LEAKY_RELU negative slope, ELU alpha */
    float max_value;    /* RELU cap (INFINITY when none) */
    float threshold;    /* RELU threshold (Keras ReLU layer) */
    bool approximate;   /* GELU: tanh form instead of erf */
};

/* Canonical Keras name of a kind ("relu"). */
const char *dcv_activation_name(enum dcv_act_kind kind);

/* Parses spec (NULL or JSON null → linear). Unknown names, unsupported
 * parameters (e.g. softmax over an axis other than -1) → DCV_EINVAL with a
 * message listing the supported names. */
int dcv_activation_parse(const struct dcv_json *spec, struct dcv_activation *out, char *err);

/* Serialized form for the normalized config: the plain name when the
 * parameters are the defaults of that name, else {"class_name","config"}.
 * New tree owned by the caller; NULL on OOM. */
struct dcv_json *dcv_activation_to_json(const struct dcv_activation *a);

/* Applies a in place to x laid out as [outer][axis_len][inner]: softmax runs
 * along the middle axis, every other kind is pointwise over all elements. */
void dcv_activation_apply(const struct dcv_activation *a, float *x, size_t outer,
                          size_t axis_len, size_t inner);

#endif
