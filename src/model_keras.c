/* model_keras.c — models from Keras's own files.
 *
 * Four ways in: <name>.keras and <name>.h5 in the models directory; a
 * pointer file <name>.json = {"file": "vae.keras", "submodel": "decoder"}
 * (the file confined to the models directory like .npy paths); a JSON model
 * whose "weights" is a Keras weights file ("gen.weights.h5"). Every Keras
 * file is read by dcv_kfile_load, in a child process under a time and
 * memory limit (kchild.c), so a hostile file costs a load error, never the
 * daemon; what comes back is the model's config text and plain arrays keyed
 * by layer name and position, which chain.c binds. Files read are
 * fingerprinted before reading, like .npy files. Loading thread only.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/modelform.h"
#include "deconvd/weights.h"
#include "model_internal.h"

#define DEFAULT_MAX_WEIGHTS ((size_t)1 << 28)
#define MAX_CONFIG_NODES ((size_t)1 << 22)   /* a config is thousands of nodes */

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n > k && !strcmp(s + n - k, tail);
}

/* The kind a path's extension gives a Keras model file, or -1. */
static int model_kind(const char *path)
{
    if (ends_with(path, ".keras")) return DCV_KFILE_KERAS;
    if (ends_with(path, ".h5") && !ends_with(path, ".weights.h5")) return DCV_KFILE_H5;
    return -1;
}

/* Confines rel, refuses anything but a regular file (a FIFO would hold the
 * child until its deadline), and folds its identity into m's fingerprint. */
static int resolve(struct dcv_model *m, const char *dir, const char *rel, bool note,
                   char *real, char *err)
{
    struct stat st;
    int rc;
    if ((rc = dcv_weights_confine(dir, rel, real, err))) return rc;
    if (stat(real, &st) != 0)
        return dcv_errf(err, errno == ENOENT ? DCV_ENOENT : DCV_EIO, "%.200s: %s", rel,
                        strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dcv_errf(err, DCV_EIO, "%.200s is not a regular file", rel);
    if (note) {
        dcv_weights_fingerprint_stat(&m->fingerprint, &st);
        if ((rc = dcv_model_note_file(m, rel, err))) return rc;
    }
    return 0;
}

static void limits_of(const struct dcv_model_opts *opts, struct dcv_kfile_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    lim->max_weight_elems = opts && opts->max_weight_elems ? opts->max_weight_elems
                                                           : DEFAULT_MAX_WEIGHTS;
    lim->timeout_ms = opts ? opts->keras_timeout_ms : 0;
    lim->mem_bytes = opts ? opts->keras_mem_bytes : 0;
}

static void note_versions(struct dcv_model *m, const struct dcv_kfile *kf)
{
    if (kf->keras_version[0])
        snprintf(m->keras_version, sizeof m->keras_version, "%s", kf->keras_version);
    if (kf->backend[0]) snprintf(m->backend, sizeof m->backend, "%s", kf->backend);
}

/* The chain of a whole-model answer: its config text is the model. */
static int build_from(struct dcv_model *m, const struct dcv_kfile *kf, const char *file,
                      const struct dcv_json *image, const char *dir,
                      const struct dcv_model_opts *opts, char *err)
{
    struct dcv_json *doc = NULL;
    struct dcv_json_bound bound = { MAX_CONFIG_NODES, "the model config limit", NULL, NULL };
    char sub[DCV_ERRLEN];
    int rc;
    if (!kf->config) return dcv_errf(err, DCV_EPARSE, "%s holds no model config", file);
    if ((rc = dcv_json_parse_bounded(kf->config, strlen(kf->config), &bound, &doc, sub)))
        return dcv_errf(err, rc, "%s: model config: %s", file, sub);
    const char *cls = dcv_json_string(dcv_json_get(doc, "class_name"));
    if (!dcv_modelform_is_model(doc)) {
        rc = dcv_errf(err, DCV_EUNSUPP, "%s: the saved model (class %.64s) is not a "
                      "Sequential or Functional model", file, cls ? cls : "?");
    } else {
        /* .keras configs carry no version, .h5 ones keep it beside the config:
         * the file's decides which Keras semantics apply */
        if (m->keras_version[0] && !dcv_json_get(doc, "keras_version"))
            dcv_json_add(doc, "keras_version", dcv_json_new_string(m->keras_version));
        rc = dcv_model_build_chain(m, doc, image, kf, file, dir, opts, err);
    }
    dcv_json_free(doc);
    return rc;
}

static int load_model_file(struct dcv_model *m, const char *dir, const char *rel,
                           const char *submodel, bool note, const struct dcv_json *image,
                           const struct dcv_model_opts *opts, char *err)
{
    char real[PATH_MAX];
    struct dcv_kfile kf;
    struct dcv_kfile_limits lim;
    int kind = model_kind(rel), rc;
    if (kind < 0)
        return dcv_errf(err, DCV_EINVAL, "'%.200s' is not a Keras model file (.keras or .h5; "
                        "a .weights.h5 file holds weights only)", rel);
    if ((rc = resolve(m, dir, rel, note, real, err))) return rc;
    limits_of(opts, &lim);
    if ((rc = dcv_kfile_load(real, (enum dcv_kfile_kind)kind, submodel, NULL, &lim, &kf, err)))
        return rc;
    note_versions(m, &kf);
    snprintf(m->file_kind, sizeof m->file_kind, kind == DCV_KFILE_KERAS ? "keras" : "h5");
    rc = build_from(m, &kf, rel, image, dir, opts, err);
    dcv_kfile_release(&kf);
    return rc;
}

int dcv_model_keras_file(struct dcv_model *m, const char *models_dir, const char *file,
                         const struct dcv_model_opts *opts, char *err)
{
    return load_model_file(m, models_dir, file, NULL, false, NULL, opts, err);
}

/* {"file": "vae.keras", "submodel": "decoder", "image": {...},
 * "dynamic_batching": {...}} (the last read by model.c): nothing else. */
static int load_pointer(struct dcv_model *m, const struct dcv_json *doc, const char *dir,
                        const struct dcv_model_opts *opts, char *err)
{
    const struct dcv_json *sm = dcv_json_get(doc, "submodel");
    for (const struct dcv_json *k = dcv_json_first(doc); k; k = dcv_json_next(k))
        if (strcmp(dcv_json_key(k), "file") && strcmp(dcv_json_key(k), "submodel") &&
            strcmp(dcv_json_key(k), "image") && strcmp(dcv_json_key(k), "dynamic_batching"))
            return dcv_errf(err, DCV_EINVAL, "pointer file: unknown key '%.64s' (it takes "
                            "\"file\", \"submodel\", \"image\" and \"dynamic_batching\")",
                            dcv_json_key(k));
    if (sm && dcv_json_type(sm) != DCV_JSON_NULL && !dcv_json_string(sm))
        return dcv_errf(err, DCV_EINVAL, "pointer file: \"submodel\" must be a layer name, "
                        "got %s", dcv_json_type_name(sm));
    int rc = load_model_file(m, dir, dcv_json_string(dcv_json_get(doc, "file")),
                             dcv_json_string(sm), true, dcv_json_get(doc, "image"), opts, err);
    if (!rc) snprintf(m->file_kind, sizeof m->file_kind, "pointer");
    return rc;
}

/* A JSON model whose "weights" names a Keras weights file. */
static int load_weights_file(struct dcv_model *m, const struct dcv_json *doc, const char *dir,
                             const struct dcv_model_opts *opts, char *err)
{
    const char *rel = dcv_json_string(dcv_json_get(doc, "weights"));
    char real[PATH_MAX];
    struct dcv_kfile kf;
    struct dcv_kfile_limits lim;
    int rc;
    if (!ends_with(rel, ".h5"))
        return dcv_errf(err, DCV_EINVAL, "\"weights\" names '%.200s': a Keras weights file "
                        "(.weights.h5) or a map by layer name is needed", rel);
    if (!dcv_modelform_is_model(doc))
        return dcv_errf(err, DCV_EINVAL, "\"weights\": a Keras weights file serves Sequential "
                        "or Functional models, not a single layer");
    if ((rc = resolve(m, dir, rel, true, real, err))) return rc;
    limits_of(opts, &lim);
    if ((rc = dcv_kfile_load(real, DCV_KFILE_WEIGHTS_H5, NULL, doc, &lim, &kf, err)))
        return rc;
    note_versions(m, &kf);
    if (!m->keras_version[0] && dcv_json_string(dcv_json_get(doc, "keras_version")))
        snprintf(m->keras_version, sizeof m->keras_version, "%s",
                 dcv_json_string(dcv_json_get(doc, "keras_version")));
    snprintf(m->file_kind, sizeof m->file_kind, "json+h5");
    rc = dcv_model_build_chain(m, doc, dcv_json_get(doc, "image"), &kf, rel, dir, opts, err);
    dcv_kfile_release(&kf);
    return rc;
}

int dcv_model_keras_doc(struct dcv_model *m, const struct dcv_json *doc,
                        const char *models_dir, const struct dcv_model_opts *opts, char *err)
{
    if (!models_dir)
        return dcv_errf(err, DCV_EPATH, "a Keras file is named but there is no models "
                        "directory");
    if (dcv_json_string(dcv_json_get(doc, "file"))) return load_pointer(m, doc, models_dir,
                                                                        opts, err);
    return load_weights_file(m, doc, models_dir, opts, err);
}
