/* weights.h — weight tensors of model files: .npy paths and inline arrays.
 *
 * The loading code single-layer models and chains share: a source is a
 * .npy path (relative, confined to models_dir: absolute paths and '..'
 * refused, the resolved real path must stay inside) or an inline nested
 * JSON array; either is checked against the shape the config implies and
 * refused when not finite. Every file read folds its identity into a
 * fingerprint (device, inode, size, mtime, ctime), so a reload can tell an
 * untouched model without reading it. Pure apart from reading files; any
 * thread.
 */
#ifndef DECONVD_WEIGHTS_H
#define DECONVD_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct dcv_json;

/* FNV-1a offset basis: the fingerprint of nothing. */
#define DCV_WEIGHTS_FP_SEED 0xcbf29ce484222325ull

/* Folds a file's identity into *fp; NULL st (missing file) folds zeros. */
void dcv_weights_fingerprint_stat(uint64_t *fp, const struct stat *st);
/* stat(2)s path and folds it in (absent when stat fails). */
void dcv_weights_fingerprint_file(uint64_t *fp, const char *path);

/* Resolves rel against dir into out (PATH_MAX bytes), refusing anything
 * that leaves dir: DCV_EPATH / DCV_ENOENT with a message. */
int dcv_weights_confine(const char *dir, const char *rel, char *out, char *err);

/* Loads one weight from src (a .npy path under dir, or an inline array),
 * checked to have shape want[0..n) and at most max_elems values. `what`
 * names it in messages ("kernel", "layer 'dense' weight 'bias'"). On
 * success *data is a new float32 array (caller frees) and *kind the path as
 * written or "inline" (borrowed from src); a file read folds into *fp (may
 * be NULL). Returns 0 or DCV_EPATH / DCV_ENOENT / DCV_EIO / DCV_EPARSE /
 * DCV_ESHAPE / DCV_EINVAL / DCV_ETOOBIG / DCV_ENOMEM. */
int dcv_weights_load(const struct dcv_json *src, const char *dir, const int64_t *want, int n,
                     size_t max_elems, const char *what, float **data, const char **kind,
                     uint64_t *fp, char *err);

/* Refuses a NaN or infinite value: it would turn every output it touches
 * into NaN/inf without a word. DCV_EINVAL naming what and kind. */
int dcv_weights_check_finite(const float *v, size_t n, const char *what, const char *kind,
                             char *err);

/* "(2, 3)" / "(4,)": a shape for messages. */
void dcv_weights_shape_str(const int64_t *s, int n, char *buf, size_t cap);

#endif
