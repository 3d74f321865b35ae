/* kh5.h — a bounded reader of HDF5 files held in memory (Keras's weight
 * files: `model.weights.h5` inside a `.keras`, legacy `.h5` models,
 * `.weights.h5`). Opened from bytes with HDF5's file-image API (no
 * temporary file). Objects are named by '/'-separated paths followed one
 * hard link at a time: soft and external links, external or virtual
 * dataset storage and paths looping back on themselves are refused, and a
 * path may have at most max_link_depth components. Attributes are sized
 * before they are read; datasets must be float32/float64 (either byte
 * order), rank <= DCV_MAX_DIMS, and come back as float32. The only module
 * that includes hdf5.h. libhdf5 (serial) is not thread-safe: one thread of
 * a process at a time, in a process that may die for a malformed file.
 */
#ifndef DECONVD_KH5_H
#define DECONVD_KH5_H

#include <stddef.h>
#include <stdint.h>

#include "deconvd/conv.h"

struct dcv_kh5;

struct dcv_kh5_limits {
    size_t max_attr_bytes;      /* one attribute, as stored and as read; 0 = 16 MiB */
    int max_link_depth;         /* components of a path; 0 = 32 */
};

struct dcv_kh5_array {
    int ndim;
    int64_t shape[DCV_MAX_DIMS];
    float *data;                /* prod(shape) values, malloc'd, caller frees */
};

/* Opens the HDF5 file image bytes[0..len) (copied by libhdf5: bytes may go
 * after the call). Returns 0 and *out (close with dcv_kh5_close) or
 * DCV_EPARSE (not HDF5, or HDF5's own refusal, its message quoted) or
 * DCV_ENOMEM. Silences HDF5's error printing for the process. */
int dcv_kh5_open(const void *bytes, size_t len, const struct dcv_kh5_limits *lim,
                 struct dcv_kh5 **out, char *err);
void dcv_kh5_close(struct dcv_kh5 *h);

/* 1 when path ("" = the root) names an object through hard links only, 0
 * when a component is missing; negative DCV_E* when the path crosses a
 * soft or external link (DCV_EUNSUPP), loops (DCV_EPARSE) or is too deep
 * (DCV_ETOOBIG). */
int dcv_kh5_exists(struct dcv_kh5 *h, const char *path, char *err);

/* The string attribute attr of the object at path: scalar or a list,
 * fixed-length (tf.keras 2's bytes) or variable-length (h5py's str). An
 * empty list of any type (Keras 3's empty weight_names) is 0 strings.
 * *out: n malloc'd NUL-terminated strings in one malloc'd array (free with
 * dcv_kh5_strings_free). DCV_ENOENT when there is no such attribute,
 * DCV_ETOOBIG past max_attr_bytes (checked before reading, and again on
 * the variable-length strings read), DCV_EUNSUPP when it is not strings or
 * has rank > 1, DCV_EPARSE for a string with a NUL or not UTF-8. */
int dcv_kh5_attr_strings(struct dcv_kh5 *h, const char *path, const char *attr, char ***out,
                         size_t *n, char *err);
void dcv_kh5_strings_free(char **s, size_t n);

/* The dataset at path as float32. Refuses (naming path): no such dataset
 * (DCV_ENOENT), a type other than 32/64-bit IEEE float (DCV_EUNSUPP), rank
 * > DCV_MAX_DIMS (DCV_EUNSUPP), more than max_elems values or, stored
 * unfiltered, more bytes than the file holds (DCV_ETOOBIG), external or
 * virtual storage or a filter other than deflate/shuffle (DCV_EUNSUPP),
 * HDF5 read failures (DCV_EPARSE). */
int dcv_kh5_read(struct dcv_kh5 *h, const char *path, size_t max_elems,
                 struct dcv_kh5_array *out, char *err);

#endif
