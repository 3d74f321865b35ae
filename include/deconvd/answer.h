/* answer.h — the bodies of inference and ops answers.
 *
 * KServe v2 (JSON, binary tensor extension, shared-memory extension), TF
 * Serving and the ops endpoint's plain {"shape","data"}. A JSON answer never
 * holds a token that is not JSON: an output with NaN or an infinity (a
 * model whose output overflows float32) is refused with an error naming its
 * first position, and KServe clients are pointed to binary output, which
 * carries the raw floats as they are. Every buffer returned is a dcv_buf
 * block (free with dcv_buf_free), NUL-terminated past *len for
 * convenience. Pure functions, any thread.
 */
#ifndef DECONVD_ANSWER_H
#define DECONVD_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deconvd/tensor.h"

/* Who answers: the model's name and version, the request's id (NULL when
 * it had none) and the name of the output (NULL: "output"; a chain's
 * Keras output name). Borrowed for the call. */
struct dcv_answer_names {
    const char *model, *version, *id, *output;
};

/* KServe v2 response:
 * {"model_name":m,"model_version":v,["id":id,]"outputs":[{"name":output,
 *  "datatype":"FP32","shape":[...],"data":[...]}]}.
 * With binary, "data" is replaced by "parameters":{"binary_data_size":N}
 * and the raw little-endian floats follow the JSON header, whatever their
 * values; *header_len (may be NULL) receives the JSON header's length (for
 * Inference-Header-Content-Length), the whole length without binary.
 * 0 with *out of *len bytes, or: DCV_EINVAL when a JSON answer would carry
 * a non-finite value (the message gives its flat and multi-dimensional
 * index and asks for binary_data_output) or the shape is not a tensor's;
 * DCV_ENOMEM. *out is NULL on failure. */
int dcv_answer_kserve(const struct dcv_answer_names *nm, const int64_t *shape, int ndim,
                      const float *data, bool binary, char **out, size_t *len,
                      size_t *header_len, char *err);

/* The binary response in one buffer, so the engine can compute straight
 * into it: the JSON header as above, then room for the shape's n float32
 * values at *data (64-byte aligned), which the caller fills and then passes
 * to dcv_answer_kserve_binary_close (byte order). Returns the buffer of
 * *len bytes, or NULL on OOM. */
char *dcv_answer_kserve_binary_open(const struct dcv_answer_names *nm, const int64_t *shape,
                                    int ndim, float **data, size_t *len, size_t *header_len);
void dcv_answer_kserve_binary_close(float *data, size_t n);

/* The JSON response for an output written to shared memory: as above, but
 * the output object carries no "data", only "parameters" echoing the
 * request's {"shared_memory_region", "shared_memory_byte_size",
 * "shared_memory_offset"}. NULL on OOM. */
char *dcv_answer_kserve_shm(const struct dcv_answer_names *nm, const int64_t *shape, int ndim,
                            const struct dcv_tensor_shm *shm, size_t *len);

/* TF Serving response: {"predictions": [one nested array per batch element]}
 * when row_format, else {"outputs": nested}. 0, or DCV_EINVAL for a
 * non-finite value (TF Serving's REST API has no binary form: the message
 * says JSON cannot carry it) or a bad shape, DCV_ENOMEM; *out NULL then. */
int dcv_answer_tfserving(const int64_t *shape, int ndim, const float *data, bool row_format,
                         char **out, size_t *len, char *err);

/* {"shape":[...],"data":[flat]} as the ops endpoint answers; errors as for
 * dcv_answer_tfserving. */
int dcv_answer_plain(const int64_t *shape, int ndim, const float *data, char **out,
                     size_t *len, char *err);

#endif
