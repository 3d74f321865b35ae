/* model.h — model files: a Keras layer config plus its weights, ready to run.
 *
 * `<models_dir>/<name>.json` holds {"class_name", "config", "weights"}: a
 * single Keras layer, or a Sequential / Functional model (chain.h) whose
 * "weights" are keyed by layer name. Each weight is a .npy path (relative,
 * confined to models_dir) or an inline nested array; without weights a
 * single layer's initializers fill them (a chain's layers need theirs but
 * for Keras defaults); an optional "image": {"range": [lo, hi]} is for PNG
 * answers (png.h). A loaded model is immutable and may be used from any
 * number of threads.
 */
#ifndef DECONVD_MODEL_H
#define DECONVD_MODEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "deconvd/layer.h"
#include "deconvd/layers.h"
#include "deconvd/png.h"

struct dcv_json;
struct dcv_engine_kernel;
struct dcv_chain;
struct dcv_batcher;

#define DCV_MODEL_NAME_MAX 128

struct dcv_model_opts {
    size_t max_weight_elems;   /* refuse bigger kernels; 0 = 1<<28 */
    size_t cache_cap;          /* primitive cache per model; 0 = default */
    unsigned keras_timeout_ms; /* a Keras file's reader process (kfile.h); 0 = 30000 */
    size_t keras_mem_bytes;    /* its address space beyond the daemon's; 0 = 4 GiB */
};

struct dcv_model {
    char name[DCV_MODEL_NAME_MAX];
    struct dcv_layer layer;
    struct dcv_engine_kernel *kernel;
    int64_t in_sig[DCV_MAX_DIMS], out_sig[DCV_MAX_DIMS]; /* -1 = dynamic */
    int ndim;                  /* input rank */
    int out_ndim;              /* output rank: == ndim for a single layer, not for a chain */
    /* Sequential / Functional models (chain.h); NULL for a single layer,
     * which `layer` and `kernel` describe. */
    struct dcv_chain *chain;
    char input_name[DCV_MODEL_NAME_MAX];   /* Keras names; "input"/"output" for a layer */
    char output_name[DCV_MODEL_NAME_MAX];
    struct dcv_json *sources;  /* {"kernel": "x.npy"|"inline"|"initializer", ...} */
    /* Identity (device, inode, size, mtime, ctime) of every file it was built
     * from, each taken before the file was read: the model file, then the
     * weights files in weight_files order. */
    uint64_t fingerprint;
    char **weight_files;       /* .npy paths as written, in reading order */
    int n_weight_files;
    struct dcv_png_spec image; /* the file's "image" key or the last activation's range */
    /* What it was read from: "json"; "keras" / "h5" (Keras's own file);
     * "pointer" (a JSON file naming one, maybe a submodel); "json+h5" (a
     * JSON model whose "weights" is a Keras weights file). The Keras file's
     * keras_version and backend, "" when it gives none. */
    /* "dynamic_batching" in the model file (batch.h); NULL: off. */
    struct dcv_batcher *batch;
    char file_kind[16];
    char keras_version[32];
    char backend[32];
};

/* True when name is a valid model name: 1..127 chars of [A-Za-z0-9_.-],
 * not starting with '.'. Guards every path built from a request. */
int dcv_model_name_valid(const char *name);

/* When filename (a directory entry) is a model file — NAME.json, NAME.keras
 * or NAME.h5 with a valid NAME, not a NAME.weights.h5 weights file — copies
 * NAME into stem (DCV_MODEL_NAME_MAX bytes) and returns 1; else 0. */
int dcv_model_file_stem(const char *filename, char *stem);

/* Loads model `name` from models_dir: <name>.json (a model file, or a
 * pointer {"file": "x.keras" | "x.h5", "submodel": "decoder"} to a Keras
 * file confined to models_dir), <name>.keras or <name>.h5 (Keras's own
 * files, read in a child process: kfile.h). Two of them for one name is
 * DCV_EINVAL naming both. A JSON model's "weights" may name a Keras weights
 * file ("gen.weights.h5") instead of giving a map. Returns 0 and *out (free with
 * dcv_model_free) or DCV_ENOENT / DCV_EPARSE / DCV_EINVAL / DCV_ESHAPE /
 * DCV_EUNSUPP / DCV_EPATH / DCV_ETOOBIG / DCV_ENOMEM / DCV_EENGINE with a
 * message. Any thread. */
int dcv_model_load(const char *models_dir, const char *name, const struct dcv_model_opts *opts,
                   struct dcv_model **out, char *err);

/* Builds a model from an already parsed document; .npy paths resolve
 * against models_dir (may be NULL: then only inline weights/initializers). */
int dcv_model_from_doc(const char *name, const struct dcv_json *doc, const char *models_dir,
                       const struct dcv_model_opts *opts, struct dcv_model **out, char *err);

void dcv_model_free(struct dcv_model *m);

/* The fingerprint the files of model `name` (<name>.json, .keras and .h5,
 * each present or absent) have on disk now, given the
 * weights files its model file names (a loaded model's weight_files and
 * n_weight_files; NULL / 0 for none). Equal to that model's `fingerprint` while
 * none of its files changed, so a reload can skip an untouched model
 * without reading it. A missing file folds in as absent, changing the
 * value; 0 when the path is too long. Only stat(2) and realpath(3): any
 * thread. */
uint64_t dcv_model_fingerprint(const char *models_dir, const char *name,
                               char *const *weight_files, int n);

/* A copy of n paths (calloc'd array of strdup'd strings; at least one slot
 * so that NULL means out of memory), and its release. Any thread. */
char **dcv_model_files_dup(char *const *files, int n);
void dcv_model_files_free(char **files, int n);

/* Appends path (NULL: nothing) to m's weight_files: DCV_ENOMEM or 0. For
 * model builders (model.c, chain loading) on the loading thread. */
int dcv_model_note_file(struct dcv_model *m, const char *path, char *err);

/* Output shape for a concrete input shape (no unknown dims): m->out_ndim
 * values. See dcv_layer_output_shape for errors. *count gets the output
 * element count. */
int dcv_model_output_shape(const struct dcv_model *m, const int64_t *in, int ndim,
                           int64_t *out, size_t *count, char *err);

/* The Keras class of the model: the layer's ("Conv2DTranspose") or
 * "Sequential" / "Functional". Any thread. */
const char *dcv_model_class(const struct dcv_model *m);

/* Multiply-adds of one run on a concrete input shape (the sum over a
 * chain's layers), the figure max_work bounds; UINT64_MAX when the shape is
 * invalid or the count overflows. Any thread. */
uint64_t dcv_model_work(const struct dcv_model *m, const int64_t *in, int ndim);

/* Bytes of intermediate buffers one run on this input needs beyond its
 * input and output (0 for a single layer): the memory budget charges them
 * with the request. SIZE_MAX when invalid. Any thread. */
size_t dcv_model_scratch_bytes(const struct dcv_model *m, const int64_t *in, int ndim);

/* One row of model.summary(). */
struct dcv_model_row {
    char name[DCV_MODEL_NAME_MAX];
    const char *class_name;     /* static */
    struct dcv_shape out;       /* output shape, -1 unknown */
    uint64_t params;            /* Keras's count: every weight, BatchNormalization's 4 */
};

/* The per-layer table for input shape `in` (NULL: the model's signature,
 * unknown dims -1), InputLayer first as Keras prints it: fills rows[0..*n)
 * up to cap and sets *n to the full count. Returns 0 or the shape error of
 * the first layer that refuses the input (message names the layer). */
int dcv_model_summary(const struct dcv_model *m, const int64_t *in, int ndim,
                      struct dcv_model_row *rows, int cap, int *n, char *err);

/* Runs the model on a concrete input. out must hold out_cap floats; the
 * caller sizes it with dcv_model_output_shape. `stop` (NULL = never) as
 * for dcv_engine_run: seen set, DCV_ECANCELED and out unspecified. Returns
 * 0 or a DCV_E* code with a message. Any thread, concurrently. */
int dcv_model_infer(const struct dcv_model *m, const float *in, const int64_t *shape, int ndim,
                    float *out, size_t out_cap, const atomic_bool *stop, char *err);

/* The normalized config plus deconvd's computed facts (signature, weight
 * sources, padding for the declared input size). New tree for the caller. */
struct dcv_json *dcv_model_config_json(const struct dcv_model *m);

#endif
