/* json.h — the JSON document layer shared by config, model files and API.
 *
 * A thin, owning wrapper over cJSON so that exactly one module includes
 * cJSON.h. Nodes are opaque (`struct dcv_json`). A parsed or built tree is
 * owned by whoever holds its root; getters return borrowed pointers into it.
 * Large tensor `data` arrays never go through this layer: see floatcodec.h.
 * Not thread-safe per tree; distinct trees may be used from any thread.
 */
#ifndef DECONVD_JSON_H
#define DECONVD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dcv_json;

enum dcv_json_type {
    DCV_JSON_INVALID = 0,
    DCV_JSON_NULL,
    DCV_JSON_BOOL,
    DCV_JSON_NUMBER,
    DCV_JSON_STRING,
    DCV_JSON_ARRAY,
    DCV_JSON_OBJECT,
};

/* Deepest nesting any parse accepts: cJSON's own limit, so that no tree is
 * deeper than its recursive walkers (free, print, duplicate) can take. */
#define DCV_JSON_MAX_DEPTH 1000

/* A tree of n values costs n nodes of DCV_JSON_NODE_BYTES (cJSON's 64-byte
 * node and glibc's malloc header, measured) plus, for each object member
 * and string value, a copy of its text of at least 32 bytes (a malloc
 * chunk); so a tree built from text of len bytes holding n values takes at
 * most n * (DCV_JSON_NODE_BYTES + 64) + len bytes of heap. */
#define DCV_JSON_NODE_BYTES 80

/* What a bounded parse may build. */
struct dcv_json_bound {
    size_t max_nodes;            /* values the tree may hold */
    const char *limit;           /* its name in messages, e.g. "max_json_nodes" */
    /* For a text that is a compacted copy of another: the offsets in
     * messages go through map(arg, offset) first, so they point into the
     * original. NULL: offsets as they are. */
    size_t (*map)(const void *arg, size_t off);
    const void *arg;
};

/* Parses len bytes of text (need not be NUL-terminated) into a new tree in
 * *out, which the caller frees with dcv_json_free. Before anything is
 * allocated a linear pass counts the values the tree would hold (each value
 * one node, exact for valid JSON) and checks the nesting: text holding more
 * than bound->max_nodes values is refused with DCV_ETOOBIG naming the count
 * and the limit; nesting deeper than DCV_JSON_MAX_DEPTH, or text that is not
 * JSON, with DCV_EPARSE giving the byte offset of the problem. *out is NULL
 * on failure. Any thread. */
int dcv_json_parse_bounded(const char *text, size_t len, const struct dcv_json_bound *bound,
                           struct dcv_json **out, char *err);

/* Unbounded parse for tests and tools: NULL with a message (DCV_EPARSE) on
 * failure. The daemon parses what it reads with dcv_json_parse_bounded. */
struct dcv_json *dcv_json_parse(const char *text, size_t len, char *err);
void dcv_json_free(struct dcv_json *root);

enum dcv_json_type dcv_json_type(const struct dcv_json *node); /* NULL → INVALID */
const char *dcv_json_type_name(const struct dcv_json *node);

/* Object member by exact key, or NULL. */
struct dcv_json *dcv_json_get(const struct dcv_json *obj, const char *key);
/* Iteration over array elements or object members: first child, next sibling. */
struct dcv_json *dcv_json_first(const struct dcv_json *node);
struct dcv_json *dcv_json_next(const struct dcv_json *node);
const char *dcv_json_key(const struct dcv_json *member);
size_t dcv_json_size(const struct dcv_json *node);   /* array/object length */
struct dcv_json *dcv_json_at(const struct dcv_json *arr, size_t i);

double dcv_json_number(const struct dcv_json *node);      /* 0 if not a number */
const char *dcv_json_string(const struct dcv_json *node); /* NULL if not a string */
bool dcv_json_true(const struct dcv_json *node);
/* True when node is a number holding an integer in [lo, hi]; stores it. */
bool dcv_json_int(const struct dcv_json *node, int64_t lo, int64_t hi, int64_t *out);
/* A list of at most max dims (request shapes, 1..2^40; with allow_unknown
 * also null or -1, stored as -1) into out: its length, or DCV_EINVAL with a
 * message naming `what` and the offending index. */
int dcv_json_dims(const struct dcv_json *v, int64_t *out, int max, bool allow_unknown,
                  const char *what, char *err);

/* Builders. Each returns a new node (NULL on allocation failure). Adding a
 * node to a container transfers its ownership to the container; adding NULL
 * is a no-op that returns -ENOMEM-style failure (DCV_ENOMEM). */
struct dcv_json *dcv_json_new_object(void);
struct dcv_json *dcv_json_new_array(void);
struct dcv_json *dcv_json_new_number(double v);
struct dcv_json *dcv_json_new_string(const char *s);
struct dcv_json *dcv_json_new_bool(bool v);
struct dcv_json *dcv_json_new_null(void);
struct dcv_json *dcv_json_new_int_array(const int64_t *v, size_t n);
struct dcv_json *dcv_json_dup(const struct dcv_json *node);   /* deep copy */
int dcv_json_add(struct dcv_json *obj, const char *key, struct dcv_json *item);
int dcv_json_append(struct dcv_json *arr, struct dcv_json *item);
/* Replaces (or adds) obj[key]; takes ownership of item. */
int dcv_json_set(struct dcv_json *obj, const char *key, struct dcv_json *item);

/* Compact serialization, malloc'd, caller frees with free(); NULL on OOM. */
char *dcv_json_print(const struct dcv_json *node);
/* Writes the JSON string literal for s (quotes and escapes) into buf of
 * size cap; returns the length it needs (like snprintf). */
size_t dcv_json_quote(char *buf, size_t cap, const char *s);

#endif
