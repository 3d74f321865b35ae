/* tensor.h — wire formats of inference requests and responses.
 *
 * Decodes KServe v2 / Triton requests (JSON, and the binary tensor extension:
 * a JSON header of Inference-Header-Content-Length bytes followed by raw
 * little-endian tensors), TensorFlow Serving :predict bodies ("instances" row
 * form, "inputs" columnar form), and tensors given as nested arrays or
 * {"shape","data"} objects; encodes the answers. Large numeric arrays are
 * decoded by the float codec straight into one float buffer: the generic
 * JSON tree only ever sees a small skeleton. A tensor placed in shared
 * memory (Triton's extension) is decoded to its parameters only: resolving
 * the region is api.c's business. Pure functions, any thread.
 */
#ifndef DECONVD_TENSOR_H
#define DECONVD_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dcv_json;

#define DCV_TENSOR_MAX_DIMS 8
#define DCV_TENSOR_NAME_MAX 64
#define DCV_TENSOR_ID_MAX 256
#define DCV_TENSOR_REGION_MAX 128

struct dcv_tensor {
    int64_t shape[DCV_TENSOR_MAX_DIMS];
    int ndim;
    size_t count;            /* product of shape */
    float *data;             /* float32, C order; malloc'd and owned unless borrowed */
    bool borrowed;           /* data points into the request body (binary FP32 input) */
};

/* A tensor placed in a registered shared-memory region instead of the body
 * (Triton's shared-memory extension): parameters.shared_memory_region,
 * shared_memory_byte_size and the optional shared_memory_offset. The
 * decoder only reads them; api.c resolves the region. */
struct dcv_tensor_shm {
    bool used;
    char region[DCV_TENSOR_REGION_MAX];
    uint64_t offset, byte_size;
};

struct dcv_infer_request {
    char id[DCV_TENSOR_ID_MAX];      /* "" when absent */
    bool has_id;
    char input_name[DCV_TENSOR_NAME_MAX];
    struct dcv_tensor input;         /* the one input, converted to FP32 */
    bool binary_output;              /* answer with binary tensor data */
    bool output_requested;           /* "outputs" present and names "output" */
    /* input_shm.used: input has its shape and count but no data until
     * dcv_tensor_decode_raw; input_datatype says how to read the bytes */
    struct dcv_tensor_shm input_shm;
    char input_datatype[8];
    struct dcv_tensor_shm output_shm; /* used: the answer's floats go to the region */
};

struct dcv_decode_limits {
    size_t max_elems;                /* refuse tensors above this; 0 = 1<<28 */
    int max_depth;                   /* nesting of data arrays; 0 = 32 */
};

/* KServe v2 infer body. header_len is the Inference-Header-Content-Length
 * value (0 when absent: the whole body is JSON); with binary data, the JSON
 * header is body[0, header_len) and binary inputs follow in input order.
 * Exactly one input is accepted, named anything (reported back). Accepted
 * datatypes: FP32, FP64, FP16, BF16, INT8/16/32/64, UINT8/16/32/64, BOOL;
 * all converted to float32. "data" may be flat or nested (row-major), its
 * element count must equal the shape product, and a binary_data_size must
 * equal shape product × element size. The body buffer is modified in place
 * (the decoder writes markers over arrays it has consumed), and a binary FP32 input
 * that is 4-byte aligned is not copied: req->input borrows it, so the body
 * must outlive the request. Returns 0 and fills *req
 * (release with dcv_infer_request_release) or DCV_EPARSE / DCV_EINVAL /
 * DCV_ESHAPE / DCV_ETOOBIG / DCV_ENOMEM with a message naming expected vs
 * received. Non-finite numbers (NaN, Infinity, 1e999) are refused. */
int dcv_tensor_decode_kserve(char *body, size_t len, size_t header_len,
                             const struct dcv_decode_limits *lim,
                             struct dcv_infer_request *req, char *err);

/* With the shared-memory extension the input may instead name a region
 * (parameters.shared_memory_region + shared_memory_byte_size, which must
 * equal shape product × element size, + optional shared_memory_offset):
 * then req->input_shm is filled and req->input.data stays NULL. A
 * requested output may carry the same parameters (req->output_shm). Only
 * one of "data", binary_data_size and shared_memory_region per input; a
 * byte size or offset without a region, or a region without a byte size,
 * is an error, as in Triton. */

/* Reads the input of a decoded request whose input_shm is used from len
 * raw little-endian bytes at src (the resolved region range), converting
 * req->input_datatype to float32 like a binary tensor. With may_borrow, an
 * FP32 input at a 4-byte aligned address is read in place (src must then
 * outlive req); otherwise it is copied. 0, or DCV_EINVAL (len is not
 * shape product × element size, non-finite values) / DCV_ENOMEM with a
 * message. Any thread. */
int dcv_tensor_decode_raw(struct dcv_infer_request *req, const void *src, size_t len,
                          bool may_borrow, char *err);

/* TF Serving :predict body: {"instances": [...]} (each instance one batch
 * element: a nested array, or an object whose single key holds one) or
 * {"inputs": nested-or-object}. *row_format tells which form was used. */
int dcv_tensor_decode_tfserving(char *body, size_t len, const struct dcv_decode_limits *lim,
                                struct dcv_infer_request *req, bool *row_format, char *err);

/* A tensor given either as a nested array or as {"shape":[...],"data":[...]}
 * (flat or nested data), as the ops endpoint takes. `node` is a member of a
 * tree decoded with dcv_tensor_parse_body. */
int dcv_tensor_from_json(const struct dcv_json *node, const struct dcv_decode_limits *lim,
                         struct dcv_tensor *out, char *err);

/* Parses a JSON body whose big numeric arrays go to a side table first, so
 * that dcv_tensor_from_json on any member is fast. The returned tree and its
 * side table are released together with dcv_tensor_body_free. */
struct dcv_tensor_body;
struct dcv_tensor_body *dcv_tensor_parse_body(char *body, size_t len,
                                              const struct dcv_decode_limits *lim, char *err);
const struct dcv_json *dcv_tensor_body_root(const struct dcv_tensor_body *b);
void dcv_tensor_body_free(struct dcv_tensor_body *b);

void dcv_tensor_release(struct dcv_tensor *t);
void dcv_infer_request_release(struct dcv_infer_request *req);

/* KServe v2 JSON response:
 * {"model_name":m,"model_version":v,["id":id,]"outputs":[{"name":"output",
 *  "datatype":"FP32","shape":[...],"data":[...]}]}.
 * With binary, "data" is replaced by "parameters":{"binary_data_size":N}
 * and the raw little-endian floats follow the JSON header; *header_len then
 * receives the JSON header length (for Inference-Header-Content-Length).
 * Returns a buffer of *len bytes (free with dcv_buf_free), or NULL on OOM.
 * Encoders below return dcv_buf blocks too. */
char *dcv_tensor_encode_kserve(const char *model, const char *version, const char *id,
                               bool has_id, const int64_t *shape, int ndim, const float *data,
                               bool binary, size_t *len, size_t *header_len);

/* The binary response in one buffer, so the engine can compute straight
 * into it: the JSON header as above, then room for the shape's n float32
 * values at *data (64-byte aligned), which the caller fills and then passes
 * to dcv_tensor_kserve_binary_close (byte order). Returns the buffer of
 * *len bytes (free with dcv_buf_free), or NULL on OOM. */
char *dcv_tensor_kserve_binary_open(const char *model, const char *version, const char *id,
                                    bool has_id, const int64_t *shape, int ndim, float **data,
                                    size_t *len, size_t *header_len);
void dcv_tensor_kserve_binary_close(float *data, size_t n);

/* The JSON response for an output written to shared memory: as above, but
 * the output object carries no "data", only "parameters" echoing the
 * request's {"shared_memory_region", "shared_memory_byte_size",
 * "shared_memory_offset"}. NULL on OOM; free with dcv_buf_free. */
char *dcv_tensor_encode_kserve_shm(const char *model, const char *version, const char *id,
                                   bool has_id, const int64_t *shape, int ndim,
                                   const struct dcv_tensor_shm *shm, size_t *len);

/* TF Serving response: {"predictions": [one nested array per batch element]}
 * when row_format, else {"outputs": nested}. */
char *dcv_tensor_encode_tfserving(const int64_t *shape, int ndim, const float *data,
                                  bool row_format, size_t *len);

/* {"shape":[...],"data":[flat]} as the ops endpoint answers. */
char *dcv_tensor_encode_plain(const int64_t *shape, int ndim, const float *data, size_t *len);

#endif
