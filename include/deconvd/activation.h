/* activation.h — Keras activations, Keras 3 and tf.keras 2 definitions.
 *
 * Parses every form a Keras config carries (a name, null, the serialized
 * {"class_name","config"} dict in Keras 2 and 3 form, and the activation
 * layers ReLU/LeakyReLU/ELU/Softmax/Activation) into a small value type:
 * every name keras/src/activations/__init__.py (Keras 3.15) defines, with
 * the definition of the Keras that wrote the config where the two differ
 * (docs/models.md, "Keras 3 and tf.keras 2 differences"). The engine fuses
 * what oneDNN post-ops express; dcv_activation_apply is the portable pass
 * for the rest. Pure functions, any thread.
 */
#ifndef DECONVD_ACTIVATION_H
#define DECONVD_ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dcv_json;

/* Which Keras wrote a config: it decides semantics where they differ
 * (hard_sigmoid, defaults). Keras 3 marks its serialization ("module",
 * "registered_name", DTypePolicy dicts, keras_version 3.x); anything else is
 * tf.keras 2.x. */
enum dcv_keras { DCV_KERAS_2 = 2, DCV_KERAS_3 = 3 };

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
    X(LOG_SIGMOID, "log_sigmoid")                   \
    X(CELU, "celu")                                 \
    X(GLU, "glu")                                   \
    X(HARD_SHRINK, "hard_shrink")                   \
    X(HARD_TANH, "hard_tanh")                       \
    X(LOG_SOFTMAX, "log_softmax")                   \
    X(SOFT_SHRINK, "soft_shrink")                   \
    X(SPARSE_PLUS, "sparse_plus")                   \
    X(SPARSE_SIGMOID, "sparse_sigmoid")             \
    X(SPARSEMAX, "sparsemax")                       \
    X(SQUAREPLUS, "squareplus")                     \
    X(TANH_SHRINK, "tanh_shrink")

enum dcv_act_kind {
#define DCV_X_ACT(id, name) DCV_ACT_##id,
    DCV_ACTIVATIONS(DCV_X_ACT)
#undef DCV_X_ACT
    DCV_ACT_COUNT
};

/* Kinds that work along one axis (the middle one of dcv_activation_apply's
 * [outer][axis][inner]; Keras: axis -1, the last axis as laid out) instead of
 * pointwise. */
static inline bool dcv_activation_is_axial(enum dcv_act_kind k)
{
    return k == DCV_ACT_SOFTMAX || k == DCV_ACT_LOG_SOFTMAX || k == DCV_ACT_SPARSEMAX ||
           k == DCV_ACT_GLU;
}

struct dcv_activation {
    enum dcv_act_kind kind;
    float alpha;        /* RELU/LEAKY_RELU negative slope, ELU/CELU alpha */
    float max_value;    /* RELU cap (INFINITY when none) */
    float threshold;    /* RELU threshold (Keras ReLU layer); SOFT/HARD_SHRINK threshold */
    float b;            /* SQUAREPLUS b */
    bool approximate;   /* GELU: tanh form instead of erf */
    /* The definitions of which Keras (0 reads as DCV_KERAS_2). Only
     * HARD_SIGMOID (and nothing else today) depends on it: Keras 3
     * relu6(x + 3) / 6, tf.keras 2 clip(0.2x + 0.5, 0, 1). */
    enum dcv_keras keras;
};

/* The ReLU family (relu, relu6, leaky_relu, the ReLU and LeakyReLU layers)
 * as Keras 3.15 computes it on TensorFlow 2.18 (keras/src/activations/
 * activations.py ReLU.static_call; tf.nn.relu/relu6 are Eigen's max/min,
 * tf.nn.leaky_relu is x > 0 ? x : x * alpha):
 *   x > th:  min(x, hi)
 *   x < th:  alpha * (x - th) for leaky_relu (-0 kept, as x * alpha);
 *            else 0 - alpha * (th - x): +0 when alpha is 0 or the product
 *            underflows, 0 (not NaN) for -inf
 *   x == th: alpha * (x - th): relu(-0) = -0, as Eigen's max(x, 0) answers
 * NaN stays NaN. Three forms of one definition, so that the engine's bias
 * pass runs the cheapest that is exact (a form per loop, chosen once):
 * MAX0 (alpha 0, threshold 0: relu, relu6, a capped relu), LEAKY
 * (leaky_relu), GENERAL (a threshold, or a slope with a cap). Fields:
 * threshold, negative slope, cap (INFINITY: none), z = +0 or -0 added below
 * the threshold (-0 changes nothing), lo = what x - th is clamped to before
 * the product (-FLT_MAX when alpha is 0: 0 * -inf would be NaN). */
enum dcv_relu_form { DCV_RELU_MAX0, DCV_RELU_LEAKY, DCV_RELU_GENERAL };
struct dcv_relu {
    enum dcv_relu_form form;
    float th, alpha, hi, z, lo;
};

/* Parameters of a (a kind of the ReLU family). */
struct dcv_relu dcv_activation_relu_params(const struct dcv_activation *a);

/* The forms, inline so that the engine's bias pass vectorizes around them;
 * each is exact only for parameters dcv_activation_relu_params gives it. */
static inline float dcv_activation_relu_max0(struct dcv_relu r, float x)
{
    x = x < 0 ? 0.0f : x;
    return x > r.hi ? r.hi : x;
}

static inline float dcv_activation_relu_leaky(struct dcv_relu r, float x)
{
    x = x > 0 ? x : x * r.alpha;
    return x > r.hi ? r.hi : x;
}

static inline float dcv_activation_relu_general(struct dcv_relu r, float x)
{
    float d = x - r.th, w = r.alpha * (d < r.lo ? r.lo : d) + (x < r.th ? r.z : -0.0f);
    x = x > r.th ? x : w;
    return x > r.hi ? r.hi : x;
}

/* One value, any form. */
static inline float dcv_activation_relu(struct dcv_relu r, float x)
{
    return r.form == DCV_RELU_MAX0    ? dcv_activation_relu_max0(r, x)
         : r.form == DCV_RELU_LEAKY   ? dcv_activation_relu_leaky(r, x)
                                      : dcv_activation_relu_general(r, x);
}

/* Canonical Keras name of a kind ("relu"). */
const char *dcv_activation_name(enum dcv_act_kind kind);

/* Parses spec (NULL or JSON null → linear) with tf.keras 2 semantics: same
 * as dcv_activation_parse_ex(spec, DCV_KERAS_2, ...). */
int dcv_activation_parse(const struct dcv_json *spec, struct dcv_activation *out, char *err);

/* Parses spec with the definitions of the Keras that wrote the config
 * (where the two differ: hard_sigmoid). Names only Keras 3 defines (celu,
 * glu, hard_silu, sparsemax, ...) mean their Keras 3 definition under
 * either: tf.keras 2 has no other meaning for them. Parameters come from
 * the dict forms ({"class_name": "celu", "config": {"alpha": 2}}, the
 * activation layers). Unknown names, `threshold` (Keras cannot call it by
 * name: it has no defaults) and unsupported parameters (an axis other than
 * -1) → DCV_EINVAL with a message listing the supported names. Does not
 * refuse glu: callers that cannot change the shape use
 * dcv_activation_check_fused. */
int dcv_activation_parse_ex(const struct dcv_json *spec, enum dcv_keras keras,
                            struct dcv_activation *out, char *err);

/* glu halves its axis (the last): the output has axis_len / 2 there. Any
 * layer running an activation asks this for its output shape. Returns the
 * new length in *out (axis_len for every other kind, -1 stays -1), or
 * DCV_ESHAPE when glu meets an odd length (Keras refuses it too). */
int dcv_activation_output_dim(const struct dcv_activation *a, int64_t axis_len, int64_t *out,
                              char *err);

/* For an activation fused into a layer (a convolution's or Dense's
 * `activation` argument): DCV_EUNSUPP naming `layer` when a changes the
 * shape (glu), whose output the layer's own shape rules do not describe;
 * the Activation layer accepts it. 0 otherwise. */
int dcv_activation_check_fused(const struct dcv_activation *a, const char *layer, char *err);

/* Serialized form for the normalized config: the plain name when the
 * parameters are the defaults of that name, else {"class_name","config"}.
 * New tree owned by the caller; NULL on OOM. */
struct dcv_json *dcv_activation_to_json(const struct dcv_activation *a);

/* Applies a in place to x laid out as [outer][axis_len][inner]: the axial
 * kinds (softmax, log_softmax, sparsemax, glu) run along the middle axis,
 * every other kind is pointwise over all elements. glu leaves its result
 * packed at the start of x as [outer][axis_len / 2][inner] (axis_len even:
 * see dcv_activation_output_dim). */
void dcv_activation_apply(const struct dcv_activation *a, float *x, size_t outer,
                          size_t axis_len, size_t inner);

#endif
