/* modelform.h — Keras model configs (Sequential, Functional/Model) as a
 * flat chain of layer specs.
 *
 * Takes the dict Keras `model.get_config()` / `model.to_json()` produce
 * (Keras 3.x: {"module", "class_name", "config": {"layers": [...]},
 * "registered_name", "build_config"}; tf.keras 2.x: {"class_name",
 * "config", "keras_version", "backend"}) or the document around it, and
 * gives the layers in execution order: nested Sequential/Model layers
 * inlined, a functional graph checked to be one chain (one input, one
 * output, every layer one inbound node from the previous one). Branches,
 * several inputs/outputs and shared layers are refused naming the layer.
 * No layer arguments are interpreted here (the registry does that). Pure;
 * any thread.
 */
#ifndef DECONVD_MODELFORM_H
#define DECONVD_MODELFORM_H

#include <stdbool.h>
#include <stdint.h>

#include "deconvd/activation.h"
#include "deconvd/conv.h"

struct dcv_json;

/* Bounds on what a config may hold: layers in the flattened chain
 * (InputLayers excluded) and models nested inside the top one. Beyond
 * either: DCV_ETOOBIG naming the bound. */
#define DCV_MODELFORM_MAX_LAYERS 1024
#define DCV_MODELFORM_MAX_DEPTH 16

struct dcv_layer_spec {
    const char *class_name;          /* as written ("Conv2DTranspose") */
    const struct dcv_json *config;   /* the layer's config dict (borrowed from doc) */
    const struct dcv_json *build;    /* its "build_config" dict, or NULL */
    char name[128];                  /* config "name" (unique within the chain) */
    /* Where Keras 3 saves its weights (saving_lib: by class and position in
     * each model's `layers`, not by name): "layers/conv2d_transpose_1",
     * "layers/sequential/layers/dense". */
    char kpath[640];
    /* Names of the nested models around it, outermost first, '/'-joined;
     * "" at the top level ("decoder" inside a VAE's decoder). */
    char scope[512];
};

struct dcv_modelform {
    char class_name[32];             /* "Sequential" or "Functional" ("Model" maps here) */
    char name[128];                  /* the model's config name */
    enum dcv_keras keras;            /* which Keras wrote it (activation.h) */
    /* Input signature when the config gives one (InputLayer batch_shape /
     * batch_input_shape, build_input_shape, a first layer's
     * batch_input_shape): ndim 0 when unknown. Batch first, -1 unknown. */
    int in_ndim;
    int64_t in_shape[DCV_MAX_DIMS];
    char input_name[128];            /* the InputLayer's name, or "input" */
    int n;                           /* layers, InputLayers excluded */
    struct dcv_layer_spec *layers;   /* n entries, owned */
};

/* True when doc (a model file's document, or the config dict alone) holds a
 * Sequential / Functional / Model config rather than a single layer. */
bool dcv_modelform_is_model(const struct dcv_json *doc);

/* Flattens doc into *out (release with dcv_modelform_release; borrowed
 * pointers into doc stay valid while doc lives). out->keras: the document's
 * keras_version when it has one ("3.x" → 3, else 2); without one, Keras 3
 * when a layer's dtype is a DTypePolicy dict or "module" /
 * "registered_name" keys appear (tf.keras >= 2.13 writes those too, but
 * always with a keras_version in to_json()). Returns 0 or DCV_EINVAL
 * (malformed, duplicate layer names), DCV_EUNSUPP (not a chain: merges,
 * splits, shared layers, several inputs/outputs, unreachable layers),
 * DCV_ETOOBIG (the bounds above) or DCV_ENOMEM, with a message naming the
 * layer and its class; *out is then empty. */
int dcv_modelform_parse(const struct dcv_json *doc, struct dcv_modelform *out, char *err);
void dcv_modelform_release(struct dcv_modelform *f);

#endif
