/* jsonbody.c — JSON request bodies with their big numeric arrays lifted out.
 *
 * Big arrays never become JSON nodes. A structure-only scanner walks the body
 * once; wherever the root or an object member (except "shape") holds an array
 * the float codec decodes whole, the floats and nested shape become a lifted
 * array and a marker string, "#dcv:<serial>:<k>", is written over the array's
 * first bytes. The JSON layer then parses a skeleton under the node budget:
 * a copy of the body without the rest of each lifted array's text. A marker
 * resolves only against the body it is asked of (the decoders pass the body
 * along with the node), by that body's secret serial; see secret_serial for
 * why a client cannot forge one. Arrays too short for a marker or not all
 * numbers stay in the tree. Any thread, no shared state (the random bits
 * are pooled per thread): a body owns its tree and lifted arrays until a
 * decoder takes the floats.
 */
#include <errno.h>
#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "deconvd/datatype.h"
#include "deconvd/error.h"
#include "deconvd/floatcodec.h"
#include "deconvd/json.h"
#include "deconvd/jsonbody.h"
#include "deconvd/utf8.h"

#define DEFAULT_MAX_ELEMS ((size_t)1 << 28)
#define DEFAULT_MAX_DEPTH 32
#define DEFAULT_MAX_JSON_NODES ((size_t)1 << 16)
#define MARKER_PREFIX "#dcv:"
#define MARKER_PREFIX_LEN 5
#define MARKER_MAX 48
#define SMALL_TEXT 4096              /* an array's first bytes read on the stack ... */
#define SMALL_VALUES 2048            /* ... hold fewer values than this */

struct dcv_jsonbody {
    struct dcv_json *root;
    struct dcv_jsonbody_array *arrays;
    size_t n, cap;
    uint64_t serial;             /* 0 until the first array is lifted */
};

struct dcv_decode_limits dcv_jsonbody_limits(const struct dcv_decode_limits *lim)
{
    struct dcv_decode_limits l = { DEFAULT_MAX_ELEMS, DEFAULT_MAX_DEPTH, DEFAULT_MAX_JSON_NODES };
    if (lim && lim->max_elems)
        l.max_elems = lim->max_elems;
    if (lim && lim->max_depth > 0)
        l.max_depth = lim->max_depth;
    if (lim && lim->max_json_nodes)
        l.max_json_nodes = lim->max_json_nodes;
    return l;
}

/* ---------------------------------------------------------------------- */
/* Markers                                                                */
/* ---------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* A client can write any string, escapes included ("\u0023dcv:..." is
 * "#dcv:..." to cJSON), so a marker is told from a client's string by its
 * serial alone: 64 random bits from the kernel drawn for this body after
 * its text was received, compared only with this body's own. A client would
 * have to guess them (2^-64 a try); a serial seen in an error message (the
 * ops endpoint quotes 20 bytes of a bad "padding") says nothing about any
 * other body's; and even a forged marker could only name an array of the
 * same body: no request reaches another's data. The bits come 32 serials
 * per getrandom(2) call, per thread: a call per body (3 us on this VM) was
 * 40 % of the decode of a small request. */
static uint64_t secret_serial(void)
{
    static _Thread_local uint64_t pool[32];
    static _Thread_local size_t left;
    if (left == 0) {
        size_t got = 0;
        while (got < sizeof pool) {
            ssize_t n = getrandom((char *)pool + got, sizeof pool - got, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got < sizeof pool) { /* no getrandom(2): a kernel before 3.17 */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            for (size_t i = 0; i < 32; i++)
                pool[i] = mix64((uint64_t)ts.tv_nsec << 24 ^ (uint64_t)ts.tv_sec ^
                                (uint64_t)(uintptr_t)&ts ^ i);
        }
        left = 32;
    }
    uint64_t v = pool[--left];
    return v ? v : 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool parse_marker(const char *s, uint64_t *serial, size_t *k)
{
    if (!s || strncmp(s, MARKER_PREFIX, MARKER_PREFIX_LEN))
        return false;
    s += MARKER_PREFIX_LEN;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++, s++) {
        int d = hexval(*s);
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    if (*s++ != ':' || *s < '0' || *s > '9')
        return false;
    size_t n = 0;
    for (int i = 0; *s >= '0' && *s <= '9'; s++, i++) {
        if (i >= 18)
            return false;
        n = n * 10 + (size_t)(*s - '0');
    }
    *serial = v;
    *k = n;
    return *s == '\0';
}

const struct dcv_jsonbody_array *dcv_jsonbody_array(const struct dcv_jsonbody *b,
                                                    const struct dcv_json *node)
{
    uint64_t serial;
    size_t k;
    if (!b || !b->serial || !parse_marker(dcv_json_string(node), &serial, &k) ||
        serial != b->serial || k >= b->n)
        return NULL;
    return &b->arrays[k];
}

float *dcv_jsonbody_take(struct dcv_jsonbody *b, const struct dcv_jsonbody_array *a)
{
    struct dcv_jsonbody_array *mine = &b->arrays[a - b->arrays];
    float *v = mine->data;
    mine->data = NULL;
    return v;
}

const char *dcv_jsonbody_string(const struct dcv_jsonbody *b, const struct dcv_json *node)
{
    return dcv_jsonbody_array(b, node) ? NULL : dcv_json_string(node);
}

const char *dcv_jsonbody_kind(const struct dcv_jsonbody *b, const struct dcv_json *node)
{
    return dcv_jsonbody_array(b, node) ? "an array of numbers" : dcv_json_type_name(node);
}

/* ---------------------------------------------------------------------- */
/* Scanner: lifts numeric arrays out of the body text                     */
/* ---------------------------------------------------------------------- */

enum expect { X_VALUE, X_VALUE_OR_CLOSE, X_KEY, X_KEY_OR_CLOSE, X_COLON, X_COMMA_OR_CLOSE, X_DONE };

/* A lifted array's text after its marker: left out of the skeleton. */
struct gap {
    size_t at, len;              /* offset in the body, bytes */
};

struct scanner {
    char *p, *end;
    const char *base;
    struct gap *gaps;
    size_t ngaps, capgaps;
    struct dcv_jsonbody *body;
    struct dcv_decode_limits lim;
    const char *key;             /* raw key whose value comes next; NULL in arrays */
    size_t keylen;
    int depth;
    size_t values;               /* the skeleton's so far: a lifted array is one */
    float *big;                  /* a long array's buffer, kept while attempts fail */
    char open[DCV_JSON_MAX_DEPTH];   /* '{' or '[' per level; not cleared */
};

/* Whether the array at p can start with a number (or NaN/Infinity, to be
 * named); arrays of objects, strings or booleans are passed over cheaply. */
static bool starts_numeric(const char *p, const char *end)
{
    while (p < end && (*p == '[' || *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p < end && ((*p >= '0' && *p <= '9') || *p == '-' || *p == ']' || *p == 'N' ||
                       *p == 'I');
}

static void key_text(const struct scanner *s, char *buf, size_t cap)
{
    if (s->key)
        snprintf(buf, cap, "\"%.*s\"", (int)(s->keylen < 40 ? s->keylen : 40), s->key);
    else
        snprintf(buf, cap, "the body");
}

/* The codec stopped at errpos, value number idx. NaN and Infinity are not
 * JSON, but Python's json writes them: name the value rather than leave
 * cJSON to say "invalid JSON". Anything else (1e999, ragged, too deep, not
 * numbers) is left to the tree walker, which knows the datatype. */
static int refuse_literal(const struct scanner *s, size_t errpos, size_t idx, char *err)
{
    static const char *const lits[] = { "NaN", "Infinity", "-Infinity" };
    const char *at = s->p + errpos;
    size_t rest = (size_t)(s->end - at);
    for (int i = 0; i < 3; i++) {
        if (rest < strlen(lits[i]) || memcmp(at, lits[i], strlen(lits[i])))
            continue;
        char key[48];
        key_text(s, key, sizeof key);
        return dcv_errf(err, DCV_EINVAL, "%s value %zu is %s; NaN and Infinity are not accepted",
                        key, idx, lits[i]);
    }
    return 0;
}

static int add_array(struct dcv_jsonbody *b, float *v, size_t count, const long long *dims,
                     int ndim)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4;
        struct dcv_jsonbody_array *a = realloc(b->arrays, cap * sizeof *a);
        if (!a)
            return DCV_ENOMEM;
        b->arrays = a;
        b->cap = cap;
    }
    struct dcv_jsonbody_array *s = &b->arrays[b->n++];
    s->data = v;
    s->count = count;
    s->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        s->dims[i] = dims[i];
    return 0;
}

static uint32_t float_to_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

/* A number token as the tree walker will see it: cJSON's strtod of its text
 * (with the locale's decimal point, as cJSON does), narrowed to float32. */
static float tree_float(const char *p, size_t n)
{
    char buf[MARKER_MAX + 1];
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = p[i] == '.' ? localeconv()->decimal_point[0] : p[i];
    buf[n] = '\0';
    return dcv_datatype_narrow(strtod(buf, NULL));
}

/* Arrays too short for a marker stay in the tree, whose double-then-float
 * reading rounds twice: one ulp off the codec's correctly rounded value
 * when the double lands exactly on a float32 midpoint ("1.0000000596046448"
 * gives 1, not 1.0000001). Such numbers of the short array at p are
 * rewritten in place as the shortest text of the codec's value, padded with
 * spaces, so that an array decodes the same whatever its length. */
static void exact_in_tree(char *p, size_t len)
{
    for (char *end = p + len; p < end;) {
        float f;
        size_t n = *p == '-' || (*p >= '0' && *p <= '9') ? dcv_float_parse(p, end, &f, 0) : 0;
        if (!n) {
            p++;
            continue;
        }
        char txt[DCV_FLOAT_MAXLEN + 1];
        size_t m;
        if (float_to_bits(tree_float(p, n)) != float_to_bits(f) &&
            (m = dcv_float_format(f, txt)) <= n &&
            float_to_bits(tree_float(txt, m)) == float_to_bits(f)) {
            memcpy(p, txt, m);
            memset(p + m, ' ', n - m);
        }
        p += n;
    }
}

/* Decodes the array at s->p into the side table and blanks its text.
 * Returns 1 when lifted, 0 when left for the tree, or an error. The float
 * buffer is sized by the text left (a value and its comma take two bytes)
 * and shrunk after: pages the codec never writes are never committed, which
 * is cheaper than a pass to count the values first. */
/* Remembers the text after a marker so the skeleton leaves it out; if the
 * list cannot grow, blanks it instead (the skeleton then carries spaces). */
static void add_gap(struct scanner *s, char *text, size_t len)
{
    if (s->ngaps == s->capgaps) {
        size_t cap = s->capgaps ? 2 * s->capgaps : 8;
        struct gap *g = realloc(s->gaps, cap * sizeof *g);
        if (!g) {
            memset(text, ' ', len);
            return;
        }
        s->gaps = g;
        s->capgaps = cap;
    }
    s->gaps[s->ngaps++] = (struct gap){ (size_t)(text - s->base), len };
}

/* Reads the array at s->p with the codec into *v: its first SMALL_TEXT
 * bytes into scratch (SMALL_VALUES floats), and only when the array goes
 * on past them (or fails there, which a number cut in two would), all of
 * it into s->big, sized by the text left (a value and its comma take two
 * bytes): pages the codec never writes are never committed, which is
 * cheaper than a pass to count the values first. A short array is thus
 * read once and copied to a buffer of its size, not given megabytes of
 * which realloc then keeps pages (60 000 arrays of 30 numbers in a 4 MB
 * body took 245 MB and 3.3 s that way; 300 000 in 21 MB, 46 s). s->big
 * stays with the scanner until an array is lifted out of it (the text left
 * only shrinks): long arrays that fail cost one mapping, not one each.
 * *len 0: the codec refused the text (*count, *errpos say where). */
static int read_array(struct scanner *s, float *scratch, float **v, size_t *len, size_t *count,
                      long long *dims, int *ndim, size_t *errpos, char *err)
{
    size_t rest = (size_t)(s->end - s->p), window = rest < SMALL_TEXT ? rest : SMALL_TEXT;
    size_t bound = s->lim.max_elems < SMALL_VALUES ? s->lim.max_elems + 1 : SMALL_VALUES;
    *v = scratch;
    *len = dcv_float_array_parse(s->p, s->p + window, scratch, bound, count, s->lim.max_depth,
                                 dims, ndim, errpos);
    if (*len || window == rest)
        return 0;
    bound = rest / 2 + 1 < s->lim.max_elems ? rest / 2 + 1 : s->lim.max_elems + 1;
    if (!s->big && !(s->big = malloc(bound * sizeof *s->big)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", bound);
    *v = s->big;
    *len = dcv_float_array_parse(s->p, s->end, s->big, bound, count, s->lim.max_depth, dims,
                                 ndim, errpos);
    return 0;
}

/* The values read into v, in a buffer of their own. */
static float *keep_values(struct scanner *s, float *v, size_t count)
{
    size_t bytes = (count ? count : 1) * sizeof *v;
    if (v == s->big) {
        float *w = realloc(v, bytes); /* shrinking: fails only in theory */
        s->big = NULL;
        return w ? w : v;
    }
    float *w = malloc(bytes);
    if (w)
        memcpy(w, v, count * sizeof *v);
    return w;
}

/* Decodes the array at s->p into a lifted array, writes its marker over
 * the text's first bytes and leaves the rest out of the skeleton. Returns 1
 * when lifted, 0 when left for the tree, or an error. Past max_json_nodes
 * values nothing more is tried: the skeleton is over its budget whatever
 * follows, and its bounded parse refuses it after one linear pass. Trying
 * on would cost a codec pass per array, and arrays nest: each "a" of
 * {"a":[1,{"a":[1,... is tried (5 MB of them took 2.5 s without this
 * bound, 0.02 s with it). */
static int lift(struct scanner *s, char *err)
{
    if (!starts_numeric(s->p, s->end) || s->values > s->lim.max_json_nodes)
        return 0;
    if (!s->body->serial)
        s->body->serial = secret_serial();
    char marker[MARKER_MAX];
    int mlen = snprintf(marker, sizeof marker, "\"" MARKER_PREFIX "%016llx:%zu\"",
                        (unsigned long long)s->body->serial, s->body->n);
    size_t count = 0, errpos = 0, len = 0;
    long long dims[DCV_JSONBODY_MAX_DIMS];
    int ndim = 0;
    float scratch[SMALL_VALUES], *v;
    int rc = read_array(s, scratch, &v, &len, &count, dims, &ndim, &errpos, err);
    if (rc)
        return rc;
    if (!len)
        return refuse_literal(s, errpos, count, err);
    if (mlen < 0 || len <= (size_t)mlen || count <= DCV_JSONBODY_MAX_DIMS) {
        /* Too short for a marker, or empty or shape-sized: stays JSON
         * (callers read output_shape, strides, dilations as plain lists),
         * with its numbers made exact. */
        exact_in_tree(s->p, len);
        return 0;
    }
    if (count > s->lim.max_elems) {
        char key[48];
        key_text(s, key, sizeof key);
        return dcv_errf(err, DCV_ETOOBIG, "%s holds %zu values, above the limit of %zu", key,
                        count, s->lim.max_elems);
    }
    if (!(v = keep_values(s, v, count)) || add_array(s->body, v, count, dims, ndim)) {
        free(v);
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", count);
    }
    memcpy(s->p, marker, (size_t)mlen);
    add_gap(s, s->p + mlen, len - (size_t)mlen);
    s->p += len;
    return 1;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* p at an opening quote; the byte after the closing one, or NULL. */
static char *skip_string(char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\' && ++p == end)
            break;
    }
    return NULL;
}

static bool ends_scalar(char c)
{
    return c == ',' || c == ']' || c == '}' || c == ':' || c == ' ' || c == '\n' ||
           c == '\r' || c == '\t' || c == '"' || c == '[' || c == '{';
}

static char *skip_scalar(char *p, const char *end)
{
    char *q = p;
    while (q < end && !ends_scalar(*q))
        q++;
    return q > p ? q : NULL;
}

static enum expect after_value(const struct scanner *s)
{
    return s->depth ? X_COMMA_OR_CLOSE : X_DONE;
}

/* The root and member values may be lifted; "shape" must stay exact ints.
 * A key with an escape or a NUL byte is not what cJSON will make of it (it
 * may be "sh\u0061pe"), so its value stays in the tree too. */
static bool liftable(const struct scanner *s)
{
    if (s->depth == 0)
        return true;
    return s->key && !memchr(s->key, '\\', s->keylen) && !memchr(s->key, '\0', s->keylen) &&
           !(s->keylen == 5 && !memcmp(s->key, "shape", 5));
}

static int scan_value(struct scanner *s, enum expect *x, char *err)
{
    char c = *s->p;
    s->values++;
    if (c == '[' && liftable(s)) {
        int rc = lift(s, err);
        if (rc < 0)
            return rc;
        if (rc > 0) {
            *x = after_value(s);
            return 0;
        }
    }
    if (c == '[' || c == '{') {
        if (s->depth == DCV_JSON_MAX_DEPTH)
            return dcv_errf(err, DCV_EPARSE, "JSON nested deeper than %d levels at byte %zu",
                            DCV_JSON_MAX_DEPTH, (size_t)(s->p - s->base));
        s->open[s->depth++] = c;
        s->p++;
        s->key = NULL;
        *x = c == '{' ? X_KEY_OR_CLOSE : X_VALUE_OR_CLOSE;
        return 0;
    }
    char *q = c == '"' ? skip_string(s->p, s->end) : skip_scalar(s->p, s->end);
    if (!q) {
        *x = X_DONE; /* malformed: cJSON will say where */
        return 0;
    }
    s->p = q;
    *x = after_value(s);
    return 0;
}

static enum expect scan_key(struct scanner *s)
{
    char *q = *s->p == '"' ? skip_string(s->p, s->end) : NULL;
    if (!q)
        return X_DONE;
    s->key = s->p + 1;
    s->keylen = (size_t)(q - 1 - s->key);
    s->p = q;
    return X_COLON;
}

static enum expect scan_close(struct scanner *s)
{
    s->depth--;
    s->p++;
    return after_value(s);
}

static enum expect scan_comma_or_close(struct scanner *s)
{
    char c = *s->p, top = s->open[s->depth - 1];
    if (c == ',') {
        s->p++;
        s->key = NULL;
        return top == '{' ? X_KEY : X_VALUE;
    }
    if ((c == '}' && top == '{') || (c == ']' && top == '['))
        return scan_close(s);
    return X_DONE;
}

/* Walks the structure of the JSON text, lifting what it can. On text that
 * is not JSON it just stops: replacing a value by a string keeps valid text
 * valid and invalid text invalid, so cJSON still reports the error. */
static int scan(struct scanner *s, char *err)
{
    enum expect x = X_VALUE;
    while (x != X_DONE) {
        s->p = (char *)skip_ws(s->p, s->end);
        if (s->p == s->end)
            break;
        char c = *s->p;
        int rc = 0;
        if ((x == X_KEY_OR_CLOSE && c == '}') || (x == X_VALUE_OR_CLOSE && c == ']'))
            x = scan_close(s);
        else if (x == X_KEY || x == X_KEY_OR_CLOSE)
            x = scan_key(s);
        else if (x == X_COLON)
            x = c == ':' ? (s->p++, X_VALUE) : X_DONE;
        else if (x == X_COMMA_OR_CLOSE)
            x = scan_comma_or_close(s);
        else
            rc = scan_value(s, &x, err);
        if (rc)
            return rc;
    }
    return 0;
}

struct gaps {
    const struct gap *g;
    size_t n;
};

/* A skeleton offset back to the body's: add the gaps before it. */
static size_t body_offset(const void *arg, size_t off)
{
    const struct gaps *gs = arg;
    size_t skipped = 0;
    for (size_t i = 0; i < gs->n && gs->g[i].at <= off + skipped; i++)
        skipped += gs->g[i].len;
    return off + skipped;
}

static int parse_bounded(const char *text, size_t len, const struct scanner *s,
                         struct dcv_json **root, char *err)
{
    struct gaps gs = { s->gaps, s->ngaps };
    struct dcv_json_bound bound = { s->lim.max_json_nodes, "max_json_nodes", body_offset, &gs };
    return dcv_json_parse_bounded(text, len, &bound, root, err);
}

/* cJSON parses the body without its lifted arrays' text: a copy of the
 * rest (a few hundred bytes) rather than megabytes of blanks to skip one
 * byte at a time (6 % of a 2.6 MB JSON request's CPU). */
static int parse_skeleton(const char *text, size_t len, const struct scanner *s,
                          struct dcv_json **root, char *err)
{
    size_t dropped = 0, k = 0, from = 0;
    for (size_t i = 0; i < s->ngaps; i++)
        dropped += s->gaps[i].len;
    char *skel = malloc(len - dropped + 1);
    if (!skel)
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->ngaps; i++) {
        memcpy(skel + k, text + from, s->gaps[i].at - from);
        k += s->gaps[i].at - from;
        from = s->gaps[i].at + s->gaps[i].len;
    }
    memcpy(skel + k, text + from, len - from);
    k += len - from;
    int rc = parse_bounded(skel, k, s, root, err);
    free(skel);
    return rc;
}

int dcv_jsonbody_parse(char *text, size_t len, const struct dcv_decode_limits *lim,
                       struct dcv_jsonbody **out, char *err)
{
    struct dcv_jsonbody *b = calloc(1, sizeof *b);
    struct scanner *s = malloc(sizeof *s);
    int rc = DCV_ENOMEM;
    *out = NULL;
    if (!b || !s) {
        dcv_errf(err, rc, "out of memory");
        goto out;
    }
    memset(s, 0, offsetof(struct scanner, open));
    s->p = text;
    s->end = text + len;
    s->base = text;
    s->body = b;
    s->lim = dcv_jsonbody_limits(lim);
    if ((rc = scan(s, err)))
        goto out;
    rc = s->ngaps ? parse_skeleton(text, len, s, &b->root, err)
                  : parse_bounded(text, len, s, &b->root, err);
out:
    if (s) {
        free(s->gaps);
        free(s->big);
    }
    free(s);
    if (rc)
        dcv_jsonbody_free(b);
    else
        *out = b;
    return rc;
}

const struct dcv_json *dcv_jsonbody_root(const struct dcv_jsonbody *b)
{
    return b ? b->root : NULL;
}

void dcv_jsonbody_free(struct dcv_jsonbody *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        free(b->arrays[i].data);
    free(b->arrays);
    dcv_json_free(b->root);
    free(b);
}

int dcv_jsonbody_object(const char *text, size_t len, size_t max_json_nodes,
                        struct dcv_json **out, char *err)
{
    struct dcv_json_bound bound = { max_json_nodes ? max_json_nodes : DEFAULT_MAX_JSON_NODES,
                                    "max_json_nodes", NULL, NULL };
    int rc;
    *out = NULL;
    if ((rc = dcv_utf8_check(text, len, err)) ||
        (rc = dcv_json_parse_bounded(text, len, &bound, out, err)))
        return rc;
    if (dcv_json_type(*out) == DCV_JSON_OBJECT) return 0;
    dcv_json_free(*out);
    *out = NULL;
    return dcv_errf(err, DCV_EINVAL, "request body must be a JSON object");
}
