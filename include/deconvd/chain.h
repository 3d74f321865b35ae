/* chain.h — a Keras Sequential/Functional model compiled into a chain of
 * layer steps (layers.h), run on one thread per request.
 *
 * Compiling (the loading thread) looks each layer up in the registry,
 * parses it with the config's Keras semantics, propagates the model's
 * input signature through every layer's shape(), loads each layer's
 * weights from the model file's "weights" map (weights.h: .npy paths or
 * inline arrays), binds them, folds BatchNormalization and activation
 * steps into the convolution or Dense before them where the layer can
 * absorb them, and prepares compute (prepacked oneDNN kernels). A built
 * chain is immutable: any number of threads may run it at once. A run
 * uses the calling thread's arena (two ping-pong buffers kept between runs;
 * one above 16 MiB is freed when its run ends), and nothing else is
 * allocated per request beyond what the steps' engines keep per thread.
 */
#ifndef DECONVD_CHAIN_H
#define DECONVD_CHAIN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "deconvd/layers.h"
#include "deconvd/modelform.h"

struct dcv_json;
struct dcv_chain;
struct dcv_kfile;

/* Layers a chain may have (each run keeps their shapes on its stack). */
#define DCV_CHAIN_MAX_LAYERS 256

struct dcv_chain_opts {
    const char *models_dir;     /* .npy paths resolve here; NULL: inline weights only */
    size_t max_weight_elems;    /* bound on each weight and on their total; 0 = 1<<28 */
    size_t cache_cap;           /* primitive cache per kernel; 0 = default */
    /* Told of every weights file read, in reading order (NULL: nobody);
     * a non-zero return fails the load with that code. */
    int (*note_file)(void *arg, const char *path, char *err);
    void *note_arg;
    uint64_t *fingerprint;      /* every file read folds in (weights.h); may be NULL */
    /* Weights from a Keras file instead of the "weights" map (which must
     * then be NULL): layer name + position in the class's weights() order
     * (= Keras's `layer.weights`). Every array must match a wanted weight's
     * shape, and every array must be used. kfile_name names it in /config
     * sources and messages ("gen.keras"). */
    const struct dcv_kfile *kfile;
    const char *kfile_name;
};

/* Compiles f (its specs borrow from a document that need only live during
 * this call) with weights = the model file's "weights" object ({"<layer
 * name>": {"<weight>": src} | [src, ...]}, NULL for none). Returns 0 and
 * *out (free with dcv_chain_free); opts->kfile instead gives the weights from
 * a Keras file (a one-layer Keras model is a one-layer chain). Errors:
 * DCV_EUNSUPP (a class outside the
 * registry: the message names the layer, its class and the supported
 * list), DCV_EINVAL / DCV_ESHAPE / DCV_ETOOBIG / DCV_EPATH / DCV_ENOENT /
 * DCV_ENOMEM / DCV_EENGINE with a message naming the layer and weight.
 * Loading thread. */
int dcv_chain_create(const struct dcv_modelform *f, const struct dcv_json *weights,
                     const struct dcv_chain_opts *opts, struct dcv_chain **out, char *err);
void dcv_chain_free(struct dcv_chain *c);

/* The chain's declared input and output shapes (-1 unknown). */
void dcv_chain_signature(const struct dcv_chain *c, struct dcv_shape *in, struct dcv_shape *out);

/* Output shape for an input shape; DCV_ESHAPE naming the layer that
 * refuses it. Any thread. */
int dcv_chain_output_shape(const struct dcv_chain *c, const struct dcv_shape *in,
                           struct dcv_shape *out, char *err);

/* Sum of the steps' work on a concrete input (UINT64_MAX when invalid or
 * saturated), and the arena bytes a run on it needs (SIZE_MAX when
 * invalid). Any thread. */
uint64_t dcv_chain_work(const struct dcv_chain *c, const struct dcv_shape *in);
size_t dcv_chain_scratch_bytes(const struct dcv_chain *c, const struct dcv_shape *in);

/* Runs the chain on a concrete input; out holds the output shape's count.
 * `stop` (NULL = never) is seen between steps and inside convolutions:
 * then DCV_ECANCELED and out unspecified. Returns 0 or DCV_E* with a
 * message naming the layer. Any thread, concurrently. */
int dcv_chain_run(const struct dcv_chain *c, const float *in, const struct dcv_shape *shape,
                  float *out, const atomic_bool *stop, char *err);

/* Layers in order (InputLayer excluded), folded ones included. */
int dcv_chain_layers(const struct dcv_chain *c);

struct dcv_chain_layer {
    const char *name;           /* borrowed from the chain */
    const char *class_name;     /* canonical, static */
    uint64_t params;            /* Keras's count: every weight */
    const char *fused_into;     /* name of the layer that absorbed it, or NULL */
};
void dcv_chain_layer(const struct dcv_chain *c, int i, struct dcv_chain_layer *out);

/* Output shape of every layer for input `in` (NULL: the signature) into
 * shapes[0..dcv_chain_layers). DCV_ESHAPE naming the first layer that
 * refuses it. Any thread. */
int dcv_chain_shapes(const struct dcv_chain *c, const struct dcv_shape *in,
                     struct dcv_shape *shapes, char *err);

/* The normalized layer list for /config: [{"name", "class_name", "config",
 * "output_shape", "params", "weights": {name: source}, "fused_into"}].
 * New tree; NULL on OOM. */
struct dcv_json *dcv_chain_layers_json(const struct dcv_chain *c);

/* The activation that ends the chain's values (PNG default range), or
 * NULL. */
const struct dcv_activation *dcv_chain_activation(const struct dcv_chain *c);

/* Bytes the calling thread's arena keeps for its next run. For tests. */
size_t dcv_chain_thread_bytes(void);

#endif
