/* jsonbody.h — a JSON request body whose big numeric arrays are lifted out.
 *
 * Inference and ops bodies are mostly one or two long arrays of numbers. A
 * body is parsed in two steps: a structure-only scan hands each such array
 * to the float codec (straight into one float buffer, the body's "lifted
 * array") and leaves a marker string in its place; the generic JSON layer
 * then parses what is left, a skeleton of a few nodes, under a node budget.
 * The protocol decoders (kserve.h, tfserving.h, tensor.h) read the tree and
 * ask the body what a marker stands for. Any thread, one body per thread.
 */
#ifndef DECONVD_JSONBODY_H
#define DECONVD_JSONBODY_H

#include <stddef.h>
#include <stdint.h>

struct dcv_json;
struct dcv_jsonbody;

/* Nesting of a lifted array, at most: the float codec's. */
#define DCV_JSONBODY_MAX_DIMS 8

/* Bounds of one decode; a zero field takes the default in brackets. */
struct dcv_decode_limits {
    size_t max_elems;                /* values in one tensor [1 << 28] */
    int max_depth;                   /* nesting of data arrays [32] */
    size_t max_json_nodes;           /* values the skeleton tree may hold [65536] */
};

/* One numeric array lifted out of the body text. */
struct dcv_jsonbody_array {
    float *data;                     /* NULL once taken */
    size_t count;
    int ndim;
    int64_t dims[DCV_JSONBODY_MAX_DIMS]; /* the nesting as read */
};

/* lim (may be NULL) with every zero field set to its default. */
struct dcv_decode_limits dcv_jsonbody_limits(const struct dcv_decode_limits *lim);

/* Parses the JSON text body[0, len) into *out. The text is modified in
 * place (markers are written over lifted arrays) and need not outlive the
 * result. Wherever the root or an object member other than "shape" holds
 * an array of numbers too long to be a shape (more than 8 values, and more
 * bytes than its marker), it becomes a lifted array; other arrays stay in
 * the tree. Errors: DCV_EPARSE (not
 * JSON, nesting past DCV_JSON_MAX_DEPTH), DCV_ETOOBIG (an array above
 * max_elems, a skeleton above max_json_nodes: both named with the numbers),
 * DCV_EINVAL (NaN or Infinity in an array), DCV_ENOMEM; *out is then NULL.
 * Free with dcv_jsonbody_free. */
int dcv_jsonbody_parse(char *body, size_t len, const struct dcv_decode_limits *lim,
                       struct dcv_jsonbody **out, char *err);
const struct dcv_json *dcv_jsonbody_root(const struct dcv_jsonbody *b); /* NULL for NULL */
void dcv_jsonbody_free(struct dcv_jsonbody *b);                         /* NULL is a no-op */

/* The lifted array node stands for when it is one of b's markers, else
 * NULL (any other node, including a client's string spelled like a
 * marker). Valid while b is. */
const struct dcv_jsonbody_array *dcv_jsonbody_array(const struct dcv_jsonbody *b,
                                                    const struct dcv_json *node);

/* Takes a's floats out of b (the caller then owns and frees them): NULL
 * when they were taken already. */
float *dcv_jsonbody_take(struct dcv_jsonbody *b, const struct dcv_jsonbody_array *a);

/* node's string when it is a client's string, NULL for a marker or any
 * other node: what a field that must be text reads. */
const char *dcv_jsonbody_string(const struct dcv_jsonbody *b, const struct dcv_json *node);

/* What node is, for messages: "an array of numbers" for a marker, else its
 * JSON type ("string", "object", "missing"). */
const char *dcv_jsonbody_kind(const struct dcv_jsonbody *b, const struct dcv_json *node);

/* A small request body parsed whole (no array lifted): UTF-8 checked and
 * bounded by max_json_nodes (0 = 65536), and it must be a JSON object.
 * 0 and *out (free with dcv_json_free), or DCV_EPARSE / DCV_ETOOBIG /
 * DCV_EINVAL with a message; *out is then NULL. */
int dcv_jsonbody_object(const char *text, size_t len, size_t max_json_nodes,
                        struct dcv_json **out, char *err);

#endif
