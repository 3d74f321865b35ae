/* kfile.h — Keras's own files as a config and plain arrays.
 *
 * Reads `.keras` (Keras 3's zip: metadata.json, config.json,
 * model.weights.h5), legacy `.h5` models (root attributes model_config,
 * keras_version, backend; weights under model_weights/ through each layer
 * group's weight_names) and weights-only files (`.weights.h5`, Keras 3's
 * save_weights layout or tf.keras 2's) into a struct dcv_kfile: the model
 * config as JSON text and every weight as a float32 array keyed by layer
 * name and its position in Keras's `layer.weights` order.
 *
 * Two halves. dcv_kfile_read_local parses in the calling process (libzip in
 * kzip.c, libhdf5 in kh5.c: the only modules that include them) and is what
 * the isolated child runs; dcv_kfile_load runs it in a short-lived child
 * process under a time and memory limit and decodes what the child hands
 * back (a crash, hang, limit hit or malformed answer is a load error). Any
 * thread for load; read_local only in a process that may die for it.
 */
#ifndef DECONVD_KFILE_H
#define DECONVD_KFILE_H

#include <stddef.h>
#include <stdint.h>

#include "deconvd/conv.h"

struct dcv_json;

enum dcv_kfile_kind {
    DCV_KFILE_KERAS,        /* <name>.keras */
    DCV_KFILE_H5,           /* <name>.h5: a whole legacy model */
    DCV_KFILE_WEIGHTS_H5,   /* x.weights.h5 named by a JSON model file: weights only */
};

struct dcv_kfile_array {
    char layer[128];            /* the layer's name in the (flattened) config */
    int index;                  /* position in that layer's Keras `layer.weights` */
    char name[64];              /* variable name when the file gives one ("kernel"), else "" */
    int ndim;
    int64_t shape[DCV_MAX_DIMS];
    float *data;                /* prod(shape) values, owned */
};

struct dcv_kfile {
    char keras_version[32];     /* "3.15.1", "2.15.0"; "" when the file has none */
    char backend[32];
    char *config;               /* the model's JSON (to_json() form), NUL-terminated, owned;
                                 * NULL for weights-only files */
    size_t n;
    struct dcv_kfile_array *arrays;   /* n entries, owned */
};

struct dcv_kfile_limits {
    size_t max_weight_elems;    /* per array and in total (values); 0 = 1<<28 */
    size_t max_members;         /* zip members; 0 = 64 */
    size_t max_member_bytes;    /* uncompressed size of one zip member; 0 = 2 GiB */
    size_t max_attr_bytes;      /* one HDF5 attribute, and a .keras's config.json;
                                 * 0 = 16 MiB */
    int max_link_depth;         /* HDF5 group nesting followed; 0 = 32 */
    unsigned timeout_ms;        /* the child's wall-clock limit; 0 = 30000 */
    size_t mem_bytes;           /* the child's address-space limit; 0 = 4 GiB */
};

/* Reads `path` of `kind` in this process. submodel (NULL = the whole model)
 * selects a nested model by layer name (a VAE's "decoder"): its config
 * becomes the model and only its weights are returned, keyed by their
 * names inside it. json_config: for DCV_KFILE_WEIGHTS_H5 the model's config
 * document (the JSON model file's), which names the weight groups; NULL
 * otherwise. Returns 0 and *out (release with dcv_kfile_release) or
 * DCV_ENOENT / DCV_EIO / DCV_EPARSE / DCV_EINVAL / DCV_EUNSUPP / DCV_ETOOBIG /
 * DCV_ENOMEM with a message naming the member, group or dataset. */
int dcv_kfile_read_local(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                         const struct dcv_json *json_config,
                         const struct dcv_kfile_limits *lim, struct dcv_kfile *out, char *err);

/* The same, run in a child process under lim's time and memory limits. */
int dcv_kfile_load(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                   const struct dcv_json *json_config, const struct dcv_kfile_limits *lim,
                   struct dcv_kfile *out, char *err);

void dcv_kfile_release(struct dcv_kfile *f);

#endif
