/* json.c — cJSON behind the dcv_json interface.
 *
 * The opaque `struct dcv_json` is a cJSON node reinterpreted; nothing here
 * keeps state of its own. The only module that includes cJSON.h, so swapping
 * the parser touches one file. Any thread, one tree at a time per thread.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "deconvd/error.h"
#include "deconvd/json.h"

#define C(n) ((cJSON *)(n))
#define J(n) ((struct dcv_json *)(n))

static size_t same(const void *arg, size_t off)
{
    (void)arg;
    return off;
}

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

/* Bytes that continue a number or literal: a run of them is one value. */
static bool in_scalar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '-' || c == '+' || c == '.';
}

/* p just after an opening quote; the byte after the closing one, or end. */
static const char *past_string(const char *p, const char *end)
{
    while (p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return end;
        const char *b = q;
        while (b > p && b[-1] == '\\')
            b--;
        if ((q - b) % 2 == 0)
            return q + 1;
        p = q + 1;
    }
    return end;
}

/* The values cJSON would make nodes of: containers, numbers, literals and
 * strings other than object keys. Exact on valid JSON; on any other text it
 * only ever counts up and follows cJSON on the valid prefix, so it is never
 * below what cJSON allocates before it finds the error. *deep_at: offset
 * where nesting passed DCV_JSON_MAX_DEPTH, or len. */
static size_t count_values(const char *text, size_t len, size_t *deep_at)
{
    unsigned char object[DCV_JSON_MAX_DEPTH / 8 + 1] = { 0 }; /* bit per level */
    const char *p = text, *end = text + len;
    size_t n = 0, depth = 0;
    bool key = false;            /* the next string names a member */
    *deep_at = len;
    while (p < end) {
        char c = *p++;
        if (c == '"') {
            n += !key;
            key = false;
            p = past_string(p, end);
        } else if (c == '[' || c == '{') {
            if (depth == DCV_JSON_MAX_DEPTH) {
                *deep_at = (size_t)(p - 1 - text);
                return n;
            }
            n++;
            key = c == '{';
            object[depth / 8] = (unsigned char)((object[depth / 8] & ~(1u << depth % 8)) |
                                                (unsigned)key << depth % 8);
            depth++;
        } else if (c == ']' || c == '}') {
            depth -= depth > 0;
            key = false;
        } else if (c == ',') {
            key = depth > 0 && (object[(depth - 1) / 8] >> (depth - 1) % 8 & 1);
        } else if (c == ':') {
            key = false;
        } else if (in_scalar(c)) {
            n++;
            while (p < end && in_scalar(*p))
                p++;
        } else if ((unsigned char)c > ' ') { /* cJSON skips all of 0x00-0x20 */
            key = false;
        }
    }
    return n;
}

struct dcv_json *dcv_json_parse(const char *text, size_t len, char *err)
{
    struct dcv_json_bound all = { SIZE_MAX, "no limit", NULL, NULL };
    struct dcv_json *root;
    dcv_json_parse_bounded(text, len, &all, &root, err);
    return root;
}

int dcv_json_parse_bounded(const char *text, size_t len, const struct dcv_json_bound *bound,
                           struct dcv_json **out, char *err)
{
    size_t (*map)(const void *, size_t) = bound->map ? bound->map : same;
    const char *end = NULL;
    size_t deep_at, n = count_values(text, len, &deep_at);
    *out = NULL;
    if (deep_at < len)
        return dcv_errf(err, DCV_EPARSE, "JSON nested deeper than %d levels at byte %zu",
                        DCV_JSON_MAX_DEPTH, map(bound->arg, deep_at));
    if (n > bound->max_nodes)
        return dcv_errf(err, DCV_ETOOBIG, "the JSON text holds %zu values, above %s (%zu); "
                        "each would take a tree node", n, bound->limit, bound->max_nodes);
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        return dcv_errf(err, DCV_EPARSE, "invalid JSON near byte %zu", map(bound->arg, off));
    }
    /* trailing garbage other than whitespace/NUL is an error */
    for (const char *p = end; p && p < text + len; p++) {
        if (is_space(*p) || *p == '\0')
            continue;
        cJSON_Delete(root);
        return dcv_errf(err, DCV_EPARSE, "unexpected data after JSON value at byte %zu",
                        map(bound->arg, (size_t)(p - text)));
    }
    *out = J(root);
    return 0;
}

void dcv_json_free(struct dcv_json *root) { cJSON_Delete(C(root)); }

enum dcv_json_type dcv_json_type(const struct dcv_json *n)
{
    if (!n) return DCV_JSON_INVALID;
    switch (C(n)->type & 0xFF) {
    case cJSON_NULL: return DCV_JSON_NULL;
    case cJSON_False:
    case cJSON_True: return DCV_JSON_BOOL;
    case cJSON_Number: return DCV_JSON_NUMBER;
    case cJSON_String: return DCV_JSON_STRING;
    case cJSON_Array: return DCV_JSON_ARRAY;
    case cJSON_Object: return DCV_JSON_OBJECT;
    default: return DCV_JSON_INVALID;
    }
}

const char *dcv_json_type_name(const struct dcv_json *n)
{
    static const char *names[] = { "missing", "null", "boolean", "number",
                                   "string", "array", "object" };
    return names[dcv_json_type(n)];
}

struct dcv_json *dcv_json_get(const struct dcv_json *obj, const char *key)
{
    if (dcv_json_type(obj) != DCV_JSON_OBJECT) return NULL;
    return J(cJSON_GetObjectItemCaseSensitive(C(obj), key));
}

struct dcv_json *dcv_json_first(const struct dcv_json *n) { return n ? J(C(n)->child) : NULL; }
struct dcv_json *dcv_json_next(const struct dcv_json *n) { return n ? J(C(n)->next) : NULL; }
const char *dcv_json_key(const struct dcv_json *m) { return m ? C(m)->string : NULL; }

size_t dcv_json_size(const struct dcv_json *n)
{
    size_t k = 0;
    for (struct dcv_json *c = dcv_json_first(n); c; c = dcv_json_next(c)) k++;
    return k;
}

struct dcv_json *dcv_json_at(const struct dcv_json *arr, size_t i)
{
    struct dcv_json *c = dcv_json_first(arr);
    while (c && i--) c = dcv_json_next(c);
    return c;
}

double dcv_json_number(const struct dcv_json *n)
{
    return dcv_json_type(n) == DCV_JSON_NUMBER ? C(n)->valuedouble : 0.0;
}

const char *dcv_json_string(const struct dcv_json *n)
{
    return dcv_json_type(n) == DCV_JSON_STRING ? C(n)->valuestring : NULL;
}

bool dcv_json_true(const struct dcv_json *n) { return n && cJSON_IsTrue(C(n)); }

bool dcv_json_int(const struct dcv_json *n, int64_t lo, int64_t hi, int64_t *out)
{
    if (dcv_json_type(n) != DCV_JSON_NUMBER) return false;
    double v = C(n)->valuedouble;
    /* 2^63 passes `v <= (double)INT64_MAX` (it rounds up) but does not fit */
    if (!isfinite(v) || v != floor(v) || v < (double)lo || v > (double)hi ||
        v >= 9223372036854775808.0)
        return false;
    *out = (int64_t)v;
    return true;
}

struct dcv_json *dcv_json_new_object(void) { return J(cJSON_CreateObject()); }
struct dcv_json *dcv_json_new_array(void) { return J(cJSON_CreateArray()); }
struct dcv_json *dcv_json_new_number(double v) { return J(cJSON_CreateNumber(v)); }
struct dcv_json *dcv_json_new_string(const char *s) { return J(cJSON_CreateString(s ? s : "")); }
struct dcv_json *dcv_json_new_bool(bool v) { return J(cJSON_CreateBool(v)); }
struct dcv_json *dcv_json_new_null(void) { return J(cJSON_CreateNull()); }
struct dcv_json *dcv_json_dup(const struct dcv_json *n) { return n ? J(cJSON_Duplicate(C(n), 1)) : NULL; }

struct dcv_json *dcv_json_new_int_array(const int64_t *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber((double)v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return J(a);
}

int dcv_json_add(struct dcv_json *obj, const char *key, struct dcv_json *item)
{
    if (!obj || !item) {
        cJSON_Delete(C(item));
        return DCV_ENOMEM;
    }
    if (!cJSON_AddItemToObject(C(obj), key, C(item))) {
        cJSON_Delete(C(item));
        return DCV_ENOMEM;
    }
    return 0;
}

int dcv_json_append(struct dcv_json *arr, struct dcv_json *item)
{
    if (!arr || !item) {
        cJSON_Delete(C(item));
        return DCV_ENOMEM;
    }
    if (!cJSON_AddItemToArray(C(arr), C(item))) {
        cJSON_Delete(C(item));
        return DCV_ENOMEM;
    }
    return 0;
}

int dcv_json_set(struct dcv_json *obj, const char *key, struct dcv_json *item)
{
    if (!obj || !item) {
        cJSON_Delete(C(item));
        return DCV_ENOMEM;
    }
    if (cJSON_GetObjectItemCaseSensitive(C(obj), key))
        return cJSON_ReplaceItemInObjectCaseSensitive(C(obj), key, C(item)) ? 0 : DCV_ENOMEM;
    return dcv_json_add(obj, key, item);
}

char *dcv_json_print(const struct dcv_json *n) { return n ? cJSON_PrintUnformatted(C(n)) : NULL; }

size_t dcv_json_quote(char *buf, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
#define PUT(ch) do { if (k + 1 < cap) buf[k] = (ch); k++; } while (0)
    PUT('"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        unsigned char ch = *p;
        if (ch == '"' || ch == '\\') { PUT('\\'); PUT((char)ch); }
        else if (ch == '\n') { PUT('\\'); PUT('n'); }
        else if (ch == '\r') { PUT('\\'); PUT('r'); }
        else if (ch == '\t') { PUT('\\'); PUT('t'); }
        else if (ch < 0x20 || ch == 0x7f) {
            PUT('\\'); PUT('u'); PUT('0'); PUT('0'); PUT(hex[ch >> 4]); PUT(hex[ch & 15]);
        } else PUT((char)ch);
    }
    PUT('"');
#undef PUT
    if (cap) buf[k < cap ? k : cap - 1] = '\0';
    return k;
}

int dcv_json_dims(const struct dcv_json *v, int64_t *out, int max, bool allow_unknown,
                  const char *what, char *err)
{
    if (dcv_json_type(v) != DCV_JSON_ARRAY || (int)dcv_json_size(v) > max)
        return dcv_errf(err, DCV_EINVAL, "%s must be a list of at most %d integers", what, max);
    int i = 0;
    for (const struct dcv_json *e = dcv_json_first(v); e; e = dcv_json_next(e), i++) {
        if (allow_unknown && dcv_json_type(e) == DCV_JSON_NULL) out[i] = -1;
        else if (!dcv_json_int(e, allow_unknown ? -1 : 1, INT64_C(1) << 40, &out[i]))
            return dcv_errf(err, DCV_EINVAL, "%s[%d] must be %s", what, i, allow_unknown
                            ? "null, -1 or a positive integer" : "a positive integer");
    }
    return i;
}
