/* tensor.h — tensors read from request bodies, and the decoded request.
 *
 * The core the protocol decoders (kserve.h, tfserving.h) share: a tensor's
 * shape and float32 data, read from a node of a parsed body (jsonbody.h)
 * that is either a lifted array (decoded by the float codec) or a short
 * nested array in the tree; the declared shape it must fill; and the plain
 * tensors the ops endpoint takes, given as a nested array or
 * {"shape","data"}. Also the decoded inference request both protocols fill
 * in. Pure functions, any thread; a tensor owns its floats unless borrowed.
 */
#ifndef DECONVD_TENSOR_H
#define DECONVD_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deconvd/datatype.h"
#include "deconvd/jsonbody.h"

struct dcv_json;

#define DCV_TENSOR_MAX_DIMS 8
#define DCV_TENSOR_NAME_MAX 64
#define DCV_TENSOR_ID_MAX 256
#define DCV_TENSOR_REGION_MAX 128
#define DCV_TENSOR_SHAPE_TEXT (DCV_TENSOR_MAX_DIMS * 22 + 3) /* "[d,...]" and its NUL */

_Static_assert(DCV_TENSOR_MAX_DIMS == DCV_JSONBODY_MAX_DIMS, "a lifted array is a tensor");

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
    bool output_requested;           /* "outputs" present: output_name is the one it names */
    char output_name[DCV_TENSOR_NAME_MAX];
    /* input_shm.used: input has its shape and count but no data until
     * dcv_kserve_decode_raw; input_datatype says how to read the bytes */
    struct dcv_tensor_shm input_shm;
    char input_datatype[8];
    struct dcv_tensor_shm output_shm; /* used: the answer's floats go to the region */
};

/* A tensor given either as a nested array or as {"shape":[...],"data":[...]}
 * (flat or nested data), as the ops endpoint takes: node is a member of b's
 * tree (dcv_jsonbody_root), and a marker in it resolves against b only.
 * b keeps its floats (the same node may be read again). 0 and *out filled
 * (release with dcv_tensor_release), or DCV_EINVAL / DCV_ESHAPE /
 * DCV_ETOOBIG / DCV_ENOMEM with a message. */
int dcv_tensor_from_json(const struct dcv_jsonbody *b, const struct dcv_json *node,
                         const struct dcv_decode_limits *lim, struct dcv_tensor *out, char *err);

/* Reads node of b as values of type t, nested: a lifted array (whose floats
 * are taken from b) or a tree array. With want (a declared shape), the
 * values must number want->count and out takes want's shape; without, out
 * takes the nesting as its shape and an empty array is refused. what names
 * the tensor in messages ("input 'x'"). 0, or DCV_EINVAL / DCV_ESHAPE /
 * DCV_ETOOBIG / DCV_ENOMEM with out->data NULL. */
int dcv_tensor_read(struct dcv_jsonbody *b, const struct dcv_json *node, enum dcv_datatype t,
                    const struct dcv_decode_limits *lim, const struct dcv_tensor *want,
                    const char *what, struct dcv_tensor *out, char *err);

/* A declared shape: an array of 1 to DCV_TENSOR_MAX_DIMS positive integers
 * (node NULL: "missing"), its product within max_elems. Fills shape, ndim
 * and count of *out (data untouched). 0 or DCV_EINVAL / DCV_ETOOBIG. */
int dcv_tensor_read_shape(const struct dcv_jsonbody *b, const struct dcv_json *node,
                          const struct dcv_decode_limits *lim, const char *what,
                          struct dcv_tensor *out, char *err);

/* One number given for type t (a scalar where an array may stand). */
int dcv_tensor_read_value(const struct dcv_jsonbody *b, const struct dcv_json *node,
                          enum dcv_datatype t, const char *what, float *out, char *err);

/* t->count from t->shape, refused above max_elems (and past 2^64) before
 * anything is allocated. 0 or DCV_ETOOBIG naming the shape. */
int dcv_tensor_count(struct dcv_tensor *t, const struct dcv_decode_limits *lim,
                     const char *what, char *err);

/* "[2,3]" into buf (DCV_TENSOR_SHAPE_TEXT bytes); returns its length. */
size_t dcv_tensor_shape_text(char *buf, const int64_t *dims, int ndim);

/* Copies a client's name into dst (DCV_TENSOR_NAME_MAX bytes); a longer
 * one is DCV_EINVAL naming field and both lengths. */
int dcv_tensor_set_name(char *dst, const char *src, const char *field, char *err);

void dcv_tensor_release(struct dcv_tensor *t);            /* frees unless borrowed; zeroes */
void dcv_infer_request_release(struct dcv_infer_request *req);

#endif
