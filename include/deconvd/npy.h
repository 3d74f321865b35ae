/* npy.h — NumPy .npy reader for model weights.
 *
 * Reads format versions 1.0, 2.0 and 3.0 holding little-endian float32
 * ('<f4') or float64 ('<f8') arrays in C or Fortran order, and returns a
 * C-order float32 copy. The header is parsed as data, never trusted: shape
 * products are overflow-checked and the payload length must match exactly.
 * Pure functions, any thread.
 */
#ifndef DECONVD_NPY_H
#define DECONVD_NPY_H

#include <stddef.h>
#include <stdint.h>

#define DCV_NPY_MAX_DIMS 8

struct dcv_npy {
    int ndim;
    int64_t shape[DCV_NPY_MAX_DIMS];
    size_t count;   /* product of shape (1 for a 0-d array) */
    float *data;    /* malloc'd, C order, count elements; owned */
};

/* Parses an in-memory .npy image of len bytes. On success fills *out (the
 * caller releases it with dcv_npy_release) and returns 0. On failure returns
 * DCV_EPARSE (bad magic/header/truncated/trailing bytes), DCV_EUNSUPP (dtype
 * other than <f4/<f8, more than DCV_NPY_MAX_DIMS dims, version >3), DCV_ETOOBIG
 * (element count above max_elems, 0 = no limit) or DCV_ENOMEM, with a message
 * in err (DCV_ERRLEN bytes) saying what was wrong. Never reads past len. */
int dcv_npy_parse(const void *buf, size_t len, size_t max_elems,
                  struct dcv_npy *out, char *err);

/* Reads the file at path and parses it as above; DCV_ENOENT/DCV_EIO when the
 * file cannot be opened or read (message carries strerror). */
int dcv_npy_load(const char *path, size_t max_elems, struct dcv_npy *out, char *err);

/* Frees data; safe on a zeroed struct and twice. */
void dcv_npy_release(struct dcv_npy *npy);

/* Writes a version 1.0 '<f4' C-order file (for tests, tools and examples).
 * Returns 0 or DCV_EIO with a message. */
int dcv_npy_save(const char *path, const float *data, const int64_t *shape, int ndim,
                 char *err);

#endif
