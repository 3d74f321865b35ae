/* model_internal.h — what model.c and model_keras.c share; not an API.
 *
 * The model module (model.h) is model.c (JSON model files, single layers,
 * chains, the model's views) and model_keras.c (Keras's own files: .keras,
 * .h5, pointer files and Keras weights files, read through kfile.h).
 */
#ifndef DECONVD_MODEL_INTERNAL_H
#define DECONVD_MODEL_INTERNAL_H

#include "deconvd/kfile.h"
#include "deconvd/model.h"

/* Compiles the chain of config doc into m: weights from kf (named kfname
 * in sources and messages) or, kf NULL, from doc's "weights" map; image:
 * the "image" spec or NULL. Loading thread. */
int dcv_model_build_chain(struct dcv_model *m, const struct dcv_json *doc,
                          const struct dcv_json *image, const struct dcv_kfile *kf,
                          const char *kfname, const char *models_dir,
                          const struct dcv_model_opts *opts, char *err);

/* A JSON model file that names a Keras file: a pointer {"file", "submodel",
 * "image"} or a model whose "weights" is a Keras weights file. */
int dcv_model_keras_doc(struct dcv_model *m, const struct dcv_json *doc,
                        const char *models_dir, const struct dcv_model_opts *opts, char *err);

/* <models_dir>/<file> (a .keras or .h5 model, already fingerprinted by the
 * caller) into m. */
int dcv_model_keras_file(struct dcv_model *m, const char *models_dir, const char *file,
                         const struct dcv_model_opts *opts, char *err);

#endif
