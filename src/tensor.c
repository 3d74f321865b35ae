/* tensor.c — KServe v2, TF Serving and plain tensor bodies to float32 and back.
 *
 * Big arrays never become JSON nodes. A structure-only scanner walks the body
 * once; wherever the root or an object member (except "shape") holds an array
 * the float codec decodes whole, the floats and nested shape go to a side
 * table and a marker string, "#dcv:<serial>:<k>", is written over the
 * array's first bytes. cJSON then parses a skeleton of a few nodes: a copy
 * of the body without the rest of each lifted array's text. The serial is 64 unguessable bits naming the body in a small locked
 * registry, so a node alone finds its side table (as dcv_tensor_from_json
 * needs) without trusting any pointer a client could write; a client string
 * resolves only by guessing a live serial. Arrays too short for a marker or
 * not all numbers (BOOL, ragged, bad values) stay in the tree, where an
 * iterative walker reads them and writes the precise error messages.
 * Any thread: the registry is the only shared state. A body owns its tree and
 * side table; decoded tensors own their floats (stolen from the side table).
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/floatcodec.h"
#include "deconvd/json.h"
#include "deconvd/tensor.h"

_Static_assert(sizeof(float) == 4 && FLT_MANT_DIG == 24, "float must be binary32");
_Static_assert(sizeof(double) == 8 && DBL_MANT_DIG == 53, "double must be binary64");

#define DEFAULT_MAX_ELEMS ((size_t)1 << 28)
#define DEFAULT_MAX_DEPTH 32
#define SCAN_DEPTH_MAX 1000          /* cJSON's own nesting limit */
#define MARKER_PREFIX "#dcv:"
#define MARKER_PREFIX_LEN 5
#define MARKER_MAX 48
#define REG_BUCKETS 64
#define SHAPE_TEXT (DCV_TENSOR_MAX_DIMS * 22 + 3)
#define WHAT_MAX (DCV_TENSOR_NAME_MAX + 64)
#define EXACT_INT_MAX 9007199254740992.0 /* 2^53: larger doubles skip integers */
#define FLOAT_ROUNDS_TO_INF 0x1.ffffffp127 /* FLT_MAX + half an ulp */
#define NUMTXT 32

static const char TF_FORMS[] =
    "a TF Serving :predict body is {\"instances\": [row, ...]} (each row a nested array, or "
    "an object with one key naming the input) or {\"inputs\": nested array} or "
    "{\"inputs\": {\"<name>\": nested array}}";

struct limits {
    size_t max_elems;
    int max_depth;
};

/* One numeric array lifted out of the body text. */
struct slab {
    float *data;                 /* NULL once a decoder took it over */
    size_t count;
    int ndim;
    int64_t dims[DCV_TENSOR_MAX_DIMS];
};

struct dcv_tensor_body {
    struct dcv_json *root;
    struct slab *slabs;
    size_t n, cap;
    uint64_t serial;             /* 0 until the first array is lifted */
    bool registered;
    struct dcv_tensor_body *next; /* registry bucket chain */
};

/* A nested shape as read from data: dims, and the number of values. */
struct nest {
    int64_t dims[DCV_TENSOR_MAX_DIMS];
    int ndim;
    size_t count;
};

/* ---------------------------------------------------------------------- */
/* Datatypes                                                              */
/* ---------------------------------------------------------------------- */

enum dtype { T_FP32, T_FP64, T_FP16, T_BF16, T_INT8, T_INT16, T_INT32, T_INT64,
             T_UINT8, T_UINT16, T_UINT32, T_UINT64, T_BOOL, NDTYPES };

struct dtype_info {
    const char *name;
    size_t size;
    double lo, hi;               /* integers: accepted range, hi exclusive */
    const char *range;           /* for messages */
};

static const struct dtype_info dtypes[NDTYPES] = {
    [T_FP32] = { "FP32", 4, 0, 0, "[-3.4028235e+38, 3.4028235e+38]" },
    [T_FP64] = { "FP64", 8, 0, 0, "[-3.4028235e+38, 3.4028235e+38] (converted to FP32)" },
    [T_FP16] = { "FP16", 2, 0, 0, "[-65504, 65504]" },
    [T_BF16] = { "BF16", 2, 0, 0, "[-3.3895314e+38, 3.3895314e+38]" },
    [T_INT8] = { "INT8", 1, -128.0, 128.0, "[-128, 127]" },
    [T_INT16] = { "INT16", 2, -32768.0, 32768.0, "[-32768, 32767]" },
    [T_INT32] = { "INT32", 4, -2147483648.0, 2147483648.0, "[-2147483648, 2147483647]" },
    [T_INT64] = { "INT64", 8, -9223372036854775808.0, 9223372036854775808.0,
                  "[-9223372036854775808, 9223372036854775807]" },
    [T_UINT8] = { "UINT8", 1, 0, 256.0, "[0, 255]" },
    [T_UINT16] = { "UINT16", 2, 0, 65536.0, "[0, 65535]" },
    [T_UINT32] = { "UINT32", 4, 0, 4294967296.0, "[0, 4294967295]" },
    [T_UINT64] = { "UINT64", 8, 0, 18446744073709551616.0, "[0, 18446744073709551615]" },
    [T_BOOL] = { "BOOL", 1, 0, 2.0, "{false, true}" },
};

/* Why one value was refused. */
enum bad { BAD_NONE, BAD_TYPE, BAD_NONFINITE, BAD_FRACTION, BAD_RANGE };

static int dtype_of(const char *s, enum dtype *t)
{
    for (int i = 0; s && i < NDTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) {
            *t = (enum dtype)i;
            return 0;
        }
    return -1;
}

static bool is_int_type(enum dtype t) { return t >= T_INT8 && t <= T_UINT64; }

static float bits_to_float(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

/* Round to nearest even, as numpy's astype(float16) does. */
static uint16_t f32_to_f16(float f)
{
    uint32_t x = float_to_bits(f), ax = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax > 0x7f800000u)
        return sign | 0x7e00u;
    if (ax >= 0x477ff000u) /* >= 65520: past the last midpoint */
        return sign | 0x7c00u;
    if (ax < 0x38800000u) /* below 2^-14: a multiple of 2^-24, scaled exactly */
        return sign | (uint16_t)lrintf(bits_to_float(ax) * 0x1p24f);
    uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    return sign | (uint16_t)h;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    if (e == 31)
        return bits_to_float(sign | 0x7f800000u | m << 13);
    return bits_to_float(sign | (e + 112) << 23 | m << 13);
}

static uint16_t f32_to_bf16(float f) /* finite f only */
{
    uint32_t x = float_to_bits(f);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

static float bf16_to_f32(uint16_t h) { return bits_to_float((uint32_t)h << 16); }

/* double -> float without the undefined out-of-range conversion. */
static float narrow(double d)
{
    if (isfinite(d) && fabs(d) >= FLOAT_ROUNDS_TO_INF)
        return d < 0 ? -INFINITY : INFINITY;
    return (float)d;
}

static enum bad rounded(float *v, float w)
{
    if (isinf(w))
        return BAD_RANGE;
    *v = w;
    return BAD_NONE;
}

/* Checks a number given for type t and rounds it to what that type holds.
 * Integer ranges are checked on the float32 value: for 32/64-bit types the
 * top of the range is as float32 sees it (2147483647 and 2147483648 are the
 * same float), which keeps long arrays (side table) and short ones alike. */
static enum bad check_value(float *v, enum dtype t)
{
    float f = *v;
    if (!isfinite(f))
        return BAD_NONFINITE;
    if (t == T_FP16)
        return rounded(v, f16_to_f32(f32_to_f16(f)));
    if (t == T_BF16)
        return rounded(v, bf16_to_f32(f32_to_bf16(f)));
    if (t == T_BOOL)
        return BAD_TYPE;
    if (!is_int_type(t))
        return BAD_NONE;
    if (f != truncf(f))
        return BAD_FRACTION;
    double d = f, hi = dtypes[t].hi;
    if (d < dtypes[t].lo || d > hi || (d == hi && dtypes[t].size < 4))
        return BAD_RANGE;
    return BAD_NONE;
}

static int value_error(char *err, const char *what, size_t i, enum bad b, enum dtype t,
                       const char *got)
{
    const struct dtype_info *ti = &dtypes[t];
    switch (b) {
    case BAD_TYPE:
        return dcv_errf(err, DCV_EINVAL, "%s value %zu: expected %s for %s, got %s", what, i,
                        t == T_BOOL ? "true or false" : "a number", ti->name, got);
    case BAD_NONFINITE:
        return dcv_errf(err, DCV_EINVAL,
                        "%s value %zu (%s) is not a finite float32; NaN, Infinity and "
                        "out-of-range numbers are not accepted", what, i, got);
    case BAD_FRACTION:
        return dcv_errf(err, DCV_EINVAL, "%s value %zu (%s) is not an integer, as %s requires",
                        what, i, got, ti->name);
    case BAD_RANGE:
        return dcv_errf(err, DCV_EINVAL, "%s value %zu (%s) is outside the %s range %s", what, i,
                        got, ti->name, ti->range);
    case BAD_NONE:
        break;
    }
    return 0;
}

static int float_error(char *err, const char *what, size_t i, enum bad b, enum dtype t, float v)
{
    char got[NUMTXT];
    if (b == BAD_TYPE)
        snprintf(got, sizeof got, "a number");
    else
        dcv_float_format(v, got);
    return value_error(err, what, i, b, t, got);
}

/* Values decoded by the float codec (finite already) checked for type t. */
static int check_floats(float *v, size_t n, enum dtype t, const char *what, char *err)
{
    if (t == T_FP32 || t == T_FP64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        float before = v[i];
        enum bad b = check_value(&v[i], t);
        if (b)
            return float_error(err, what, i, b, t, before);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Registry of bodies with lifted arrays                                  */
/* ---------------------------------------------------------------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dcv_tensor_body *registry[REG_BUCKETS];

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static uint64_t serial_key;
static pthread_once_t serial_once = PTHREAD_ONCE_INIT;

static void seed_serials(void)
{
    if (getrandom(&serial_key, sizeof serial_key, GRND_NONBLOCK) != (ssize_t)sizeof serial_key) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        serial_key = mix64((uint64_t)ts.tv_nsec << 24 ^ (uint64_t)ts.tv_sec ^
                           (uint64_t)(uintptr_t)&ts);
    }
}

/* A keyed bijection of a counter: as unguessable to a client (which never
 * sees a serial) as fresh random bits, without a getrandom(2) per body. */
static uint64_t fresh_serial(void)
{
    static _Atomic uint64_t counter;
    pthread_once(&serial_once, seed_serials);
    uint64_t v = 0;
    while (v == 0)
        v = mix64(serial_key ^ atomic_fetch_add(&counter, 0x9e3779b97f4a7c15u));
    return v;
}

static struct dcv_tensor_body **bucket(uint64_t serial) { return &registry[serial % REG_BUCKETS]; }

static struct dcv_tensor_body *find_locked(uint64_t serial)
{
    struct dcv_tensor_body *b = *bucket(serial);
    while (b && b->serial != serial)
        b = b->next;
    return b;
}

static int register_body(struct dcv_tensor_body *b, char *err)
{
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    if (find_locked(b->serial)) {
        rc = dcv_errf(err, DCV_EINTERNAL, "tensor body serial collision; retry the request");
    } else {
        b->next = *bucket(b->serial);
        *bucket(b->serial) = b;
        b->registered = true;
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

static void unregister_body(struct dcv_tensor_body *b)
{
    pthread_mutex_lock(&registry_lock);
    struct dcv_tensor_body **pp = bucket(b->serial);
    while (*pp && *pp != b)
        pp = &(*pp)->next;
    if (*pp)
        *pp = b->next;
    pthread_mutex_unlock(&registry_lock);
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

/* The side-table entry a marker string stands for, or NULL for any other
 * node. The entry stays valid while the tree holding node is alive. */
static struct slab *slab_of(const struct dcv_json *node)
{
    uint64_t serial;
    size_t k;
    if (!parse_marker(dcv_json_string(node), &serial, &k))
        return NULL;
    struct slab *s = NULL;
    pthread_mutex_lock(&registry_lock);
    struct dcv_tensor_body *b = find_locked(serial);
    if (b && k < b->n)
        s = &b->slabs[k];
    pthread_mutex_unlock(&registry_lock);
    return s;
}

/* A client's string, never a marker standing for an array. */
static const char *text_of(const struct dcv_json *node)
{
    return slab_of(node) ? NULL : dcv_json_string(node);
}

static const char *kind_name(const struct dcv_json *node)
{
    return slab_of(node) ? "an array of numbers" : dcv_json_type_name(node);
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
    struct dcv_tensor_body *body;
    struct limits lim;
    const char *key;             /* raw key whose value comes next; NULL in arrays */
    size_t keylen;
    int depth;
    char open[SCAN_DEPTH_MAX];   /* '{' or '[' per level */
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

/* True when the array at p closes within n bytes: too short for a marker. */
static bool closes_within(const char *p, const char *end, size_t n)
{
    size_t depth = 0;
    for (const char *q = p; q < end && (size_t)(q - p) < n; q++) {
        if (*q == '[')
            depth++;
        else if (*q == ']' && --depth == 0)
            return true;
    }
    return false;
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

static int add_slab(struct dcv_tensor_body *b, float *v, size_t count, const long long *dims,
                    int ndim)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4;
        struct slab *s = realloc(b->slabs, cap * sizeof *s);
        if (!s)
            return DCV_ENOMEM;
        b->slabs = s;
        b->cap = cap;
    }
    struct slab *s = &b->slabs[b->n++];
    s->data = v;
    s->count = count;
    s->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        s->dims[i] = dims[i];
    return 0;
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
    return narrow(strtod(buf, NULL));
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

static int lift(struct scanner *s, char *err)
{
    if (!starts_numeric(s->p, s->end))
        return 0;
    if (!s->body->serial)
        s->body->serial = fresh_serial();
    char marker[MARKER_MAX];
    int mlen = snprintf(marker, sizeof marker, "\"" MARKER_PREFIX "%016llx:%zu\"",
                        (unsigned long long)s->body->serial, s->body->n);
    size_t count = 0, errpos = 0;
    if (mlen < 0 || closes_within(s->p, s->end, (size_t)mlen)) {
        size_t len = dcv_float_array_parse(s->p, s->end, NULL, 0, &count, s->lim.max_depth,
                                           NULL, NULL, &errpos);
        if (!len)
            return refuse_literal(s, errpos, count, err);
        exact_in_tree(s->p, len);
        return 0;
    }
    size_t bound = (size_t)(s->end - s->p) / 2 + 1;
    if (bound > s->lim.max_elems)
        bound = s->lim.max_elems + 1;
    float *v = malloc(bound * sizeof *v);
    if (!v)
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", bound);
    long long dims[DCV_TENSOR_MAX_DIMS];
    int ndim = 0;
    size_t len = dcv_float_array_parse(s->p, s->end, v, bound, &count, s->lim.max_depth, dims,
                                       &ndim, &errpos);
    if (!len) {
        free(v);
        return refuse_literal(s, errpos, count, err);
    }
    if (count <= DCV_TENSOR_MAX_DIMS) {
        /* Empty and shape-sized arrays stay JSON, like short ones: callers
         * read output_shape, strides, dilations as plain lists. */
        free(v);
        exact_in_tree(s->p, len);
        return 0;
    }
    if (count > s->lim.max_elems) {
        char key[48];
        key_text(s, key, sizeof key);
        free(v);
        return dcv_errf(err, DCV_ETOOBIG, "%s holds %zu values, above the limit of %zu", key,
                        count, s->lim.max_elems);
    }
    float *w = realloc(v, (count ? count : 1) * sizeof *v);
    v = w ? w : v;
    if (add_slab(s->body, v, count, dims, ndim)) {
        free(v);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
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
        if (s->depth == SCAN_DEPTH_MAX)
            return dcv_errf(err, DCV_EPARSE, "JSON nested deeper than %d levels at byte %zu",
                            SCAN_DEPTH_MAX, (size_t)(s->p - s->base));
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

static struct limits limits_of(const struct dcv_decode_limits *lim)
{
    struct limits l = { DEFAULT_MAX_ELEMS, DEFAULT_MAX_DEPTH };
    if (lim && lim->max_elems)
        l.max_elems = lim->max_elems;
    if (lim && lim->max_depth > 0)
        l.max_depth = lim->max_depth;
    return l;
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

/* cJSON parses the body without its lifted arrays' text: a copy of the
 * rest (a few hundred bytes) rather than megabytes of blanks to skip one
 * byte at a time (6 % of a 2.6 MB JSON request's CPU). */
static struct dcv_json *parse_skeleton(const char *text, size_t len, const struct scanner *s,
                                       char *err)
{
    size_t dropped = 0, k = 0, from = 0;
    for (size_t i = 0; i < s->ngaps; i++)
        dropped += s->gaps[i].len;
    char *skel = malloc(len - dropped + 1);
    if (!skel) {
        dcv_errf(err, DCV_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < s->ngaps; i++) {
        memcpy(skel + k, text + from, s->gaps[i].at - from);
        k += s->gaps[i].at - from;
        from = s->gaps[i].at + s->gaps[i].len;
    }
    memcpy(skel + k, text + from, len - from);
    k += len - from;
    struct gaps gs = { s->gaps, s->ngaps };
    struct dcv_json *root = dcv_json_parse_mapped(skel, k, body_offset, &gs, err);
    free(skel);
    return root;
}

static int parse_body(char *text, size_t len, const struct limits *lim,
                      struct dcv_tensor_body **out, char *err)
{
    struct dcv_tensor_body *b = calloc(1, sizeof *b);
    struct scanner *s = malloc(sizeof *s);
    int rc = DCV_ENOMEM;
    if (!b || !s) {
        dcv_errf(err, rc, "out of memory");
        goto out;
    }
    *s = (struct scanner){ .p = text, .end = text + len, .base = text, .body = b, .lim = *lim };
    rc = scan(s, err);
    if (!rc && b->n)
        rc = register_body(b, err);
    if (rc)
        goto out;
    b->root = s->ngaps ? parse_skeleton(text, len, s, err) : dcv_json_parse(text, len, err);
    rc = b->root ? 0 : DCV_EPARSE;
out:
    if (s)
        free(s->gaps);
    free(s);
    if (rc && b) {
        dcv_tensor_body_free(b);
        b = NULL;
    }
    *out = b;
    return rc;
}

struct dcv_tensor_body *dcv_tensor_parse_body(char *body, size_t len,
                                              const struct dcv_decode_limits *lim, char *err)
{
    struct limits l = limits_of(lim);
    struct dcv_tensor_body *b;
    parse_body(body, len, &l, &b, err);
    return b;
}

const struct dcv_json *dcv_tensor_body_root(const struct dcv_tensor_body *b)
{
    return b ? b->root : NULL;
}

void dcv_tensor_body_free(struct dcv_tensor_body *b)
{
    if (!b)
        return;
    if (b->registered)
        unregister_body(b);
    for (size_t i = 0; i < b->n; i++)
        free(b->slabs[i].data);
    free(b->slabs);
    dcv_json_free(b->root);
    free(b);
}

/* ---------------------------------------------------------------------- */
/* Shapes and nested data                                                 */
/* ---------------------------------------------------------------------- */

static void shape_text(char *buf, const int64_t *dims, int ndim)
{
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < ndim; i++)
        k += (size_t)snprintf(buf + k, SHAPE_TEXT - k, i ? ",%lld" : "%lld", (long long)dims[i]);
    buf[k++] = ']';
    buf[k] = '\0';
}

/* Product of dims, refused above the limit: before anything is allocated. */
static int nest_count(struct nest *n, const struct limits *lim, const char *what, char *err)
{
    size_t p = 1;
    bool over = false;
    for (int i = 0; i < n->ndim; i++) {
        size_t d = (size_t)n->dims[i];
        if (d && p > SIZE_MAX / d)
            over = true;
        p *= d;
    }
    char st[SHAPE_TEXT];
    shape_text(st, n->dims, n->ndim);
    if (over)
        return dcv_errf(err, DCV_ETOOBIG, "%s: shape %s has more than 2^64 elements", what, st);
    if (p > lim->max_elems)
        return dcv_errf(err, DCV_ETOOBIG, "%s: shape %s has %zu elements, above the limit of %zu",
                        what, st, p, lim->max_elems);
    n->count = p;
    return 0;
}

static bool json_integer(const struct dcv_json *node, int64_t *out)
{
    if (dcv_json_type(node) != DCV_JSON_NUMBER)
        return false;
    double v = dcv_json_number(node);
    if (!(v >= -EXACT_INT_MAX && v <= EXACT_INT_MAX) || v != floor(v))
        return false;
    *out = (int64_t)v;
    return true;
}

static int read_shape(const struct dcv_json *node, const struct limits *lim, const char *what,
                      struct nest *n, char *err)
{
    if (!node)
        return dcv_errf(err, DCV_EINVAL, "%s is missing \"shape\"", what);
    if (slab_of(node) || dcv_json_type(node) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "%s: shape must be an array of integers, got %s", what,
                        kind_name(node));
    size_t nd = dcv_json_size(node);
    if (nd == 0 || nd > DCV_TENSOR_MAX_DIMS)
        return dcv_errf(err, DCV_EINVAL, "%s: shape has %zu dimensions; 1 to %d are supported",
                        what, nd, DCV_TENSOR_MAX_DIMS);
    n->ndim = 0;
    for (const struct dcv_json *c = dcv_json_first(node); c; c = dcv_json_next(c)) {
        int64_t v;
        if (!json_integer(c, &v))
            return dcv_errf(err, DCV_EINVAL, "%s: shape[%d] must be an integer, got %s", what,
                            n->ndim, dcv_json_type(c) == DCV_JSON_NUMBER ? "a non-integer"
                                                                        : kind_name(c));
        if (v < 1)
            return dcv_errf(err, DCV_EINVAL, "%s: shape[%d] is %lld; %s", what, n->ndim,
                            (long long)v,
                            v == 0 ? "zero-size tensors are not accepted"
                                   : "dimensions must be positive");
        n->dims[n->ndim++] = v;
    }
    return nest_count(n, lim, what, err);
}

/* Shape implied by the first element at each level of a tree array. */
static int tree_dims(const struct dcv_json *a, int max_depth, struct nest *n, const char *what,
                     char *err)
{
    n->ndim = 0;
    for (const struct dcv_json *c = a; dcv_json_type(c) == DCV_JSON_ARRAY; c = dcv_json_first(c)) {
        if (n->ndim == max_depth)
            return dcv_errf(err, DCV_EINVAL, "%s is nested more than %d levels deep", what,
                            max_depth);
        n->dims[n->ndim++] = (int64_t)dcv_json_size(c);
    }
    return 0;
}

static void path_text(char *buf, size_t cap, const char *what, const size_t *idx, int depth)
{
    size_t k = (size_t)snprintf(buf, cap, "%s", what);
    for (int d = 0; d < depth && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "[%zu]", idx[d]);
}

static int ragged(char *err, const char *what, const size_t *idx, int d, size_t got,
                  int64_t want)
{
    char path[WHAT_MAX + 96];
    path_text(path, sizeof path, what, idx, d);
    return dcv_errf(err, DCV_ESHAPE,
                    "%s has %zu elements, expected %lld: nested arrays must be rectangular", path,
                    got, (long long)want);
}

static enum bad tree_value(const struct dcv_json *v, enum dtype t, float *out)
{
    switch (dcv_json_type(v)) {
    case DCV_JSON_BOOL:
        if (t != T_BOOL)
            return BAD_TYPE;
        *out = dcv_json_true(v) ? 1.0f : 0.0f;
        return BAD_NONE;
    case DCV_JSON_NUMBER:
        if (t == T_BOOL)
            return BAD_TYPE;
        *out = narrow(dcv_json_number(v));
        if (isinf(*out) && isfinite(dcv_json_number(v)) && t != T_FP32 && t != T_FP64)
            return BAD_RANGE; /* 1e300 as INT64 or FP16: say which range */
        return check_value(out, t);
    default:
        return BAD_TYPE;
    }
}

static int tree_value_error(char *err, const char *what, size_t i, enum bad b, enum dtype t,
                            const struct dcv_json *v)
{
    char got[NUMTXT];
    if (b == BAD_TYPE)
        snprintf(got, sizeof got, "%s", kind_name(v));
    else
        snprintf(got, sizeof got, "%.9g", dcv_json_number(v));
    return value_error(err, what, i, b, t, got);
}

/* Visits every value of a rectangular tree array of shape n in row-major
 * order, checking it for type t and storing it when out is not NULL.
 * Iterative: the depth is bounded by n->ndim, never by the input. */
static int tree_walk(const struct dcv_json *a, const struct nest *n, enum dtype t, float *out,
                     const char *what, char *err)
{
    const struct dcv_json *cur[DCV_TENSOR_MAX_DIMS], *par[DCV_TENSOR_MAX_DIMS];
    size_t idx[DCV_TENSOR_MAX_DIMS] = { 0 }, k = 0;
    int d = 0;
    par[0] = a;
    cur[0] = dcv_json_first(a);
    for (;;) {
        if (!cur[d]) {
            if (idx[d] != (size_t)n->dims[d])
                return ragged(err, what, idx, d, idx[d], n->dims[d]);
            if (d-- == 0)
                return 0;
            cur[d] = dcv_json_next(cur[d]);
            idx[d]++;
            continue;
        }
        if (idx[d] == (size_t)n->dims[d])
            return ragged(err, what, idx, d, dcv_json_size(par[d]), n->dims[d]);
        bool is_array = dcv_json_type(cur[d]) == DCV_JSON_ARRAY;
        if (d + 1 < n->ndim) {
            if (!is_array) {
                char path[WHAT_MAX + 96];
                path_text(path, sizeof path, what, idx, d + 1);
                return dcv_errf(err, DCV_ESHAPE, "%s must be an array (as its siblings are), got %s",
                                path, kind_name(cur[d]));
            }
            par[d + 1] = cur[d];
            cur[d + 1] = dcv_json_first(cur[d]);
            idx[++d] = 0;
            continue;
        }
        if (is_array) {
            char path[WHAT_MAX + 96];
            path_text(path, sizeof path, what, idx, d + 1);
            return dcv_errf(err, DCV_ESHAPE, "%s is an array where its siblings hold values: "
                            "nested arrays must be rectangular", path);
        }
        float v = 0;
        enum bad b = tree_value(cur[d], t, &v);
        if (b)
            return tree_value_error(err, what, k, b, t, cur[d]);
        if (out)
            out[k] = v;
        k++;
        cur[d] = dcv_json_next(cur[d]);
        idx[d]++;
    }
}

/* want: the shape the values must fill (KServe), or NULL to take the
 * nesting as the shape, in which case empty is refused. */
static int count_matches(const struct nest *want, const struct nest *got, const char *what,
                         char *err)
{
    char st[SHAPE_TEXT];
    if (want && want->count != got->count) {
        shape_text(st, want->dims, want->ndim);
        return dcv_errf(err, DCV_ESHAPE, "%s: expected %zu values for shape %s, got %zu", what,
                        want->count, st, got->count);
    }
    if (!want && got->count == 0) {
        shape_text(st, got->dims, got->ndim);
        return dcv_errf(err, DCV_ESHAPE, "%s has shape %s: zero-size tensors are not accepted",
                        what, st);
    }
    return 0;
}

static int from_slab(struct slab *s, enum dtype t, bool steal, const struct nest *want,
                     const char *what, struct nest *n, float **out, char *err)
{
    n->ndim = s->ndim;
    memcpy(n->dims, s->dims, sizeof n->dims);
    n->count = s->count;
    int rc = count_matches(want, n, what, err);
    if (rc)
        return rc;
    if (t == T_BOOL)
        return value_error(err, what, 0, BAD_TYPE, t, "a number");
    if (!s->data)
        return dcv_errf(err, DCV_EINTERNAL, "%s was already taken from the body", what);
    if (steal) {
        *out = s->data;
        s->data = NULL;
    } else if ((*out = malloc(n->count * sizeof **out))) {
        memcpy(*out, s->data, n->count * sizeof **out);
    } else {
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", n->count);
    }
    rc = check_floats(*out, n->count, t, what, err);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* Reads node (a marker or a tree array) as nested values of type t into a
 * new buffer *out, its nesting into *n. */
static int read_nested(const struct dcv_json *node, enum dtype t, const struct limits *lim,
                       bool steal, const struct nest *want, const char *what, struct nest *n,
                       float **out, char *err)
{
    *out = NULL;
    struct slab *s = slab_of(node);
    if (s)
        return from_slab(s, t, steal, want, what, n, out, err);
    if (dcv_json_type(node) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "%s must be an array of %s, got %s", what,
                        t == T_BOOL ? "booleans" : "numbers", kind_name(node));
    int depth = lim->max_depth < DCV_TENSOR_MAX_DIMS ? lim->max_depth : DCV_TENSOR_MAX_DIMS;
    int rc = tree_dims(node, depth, n, what, err);
    if (!rc)
        rc = tree_walk(node, n, t, NULL, what, err); /* validate before allocating */
    if (!rc)
        rc = nest_count(n, lim, what, err);
    if (!rc)
        rc = count_matches(want, n, what, err);
    if (rc)
        return rc;
    if (!(*out = malloc(n->count * sizeof **out)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", n->count);
    return tree_walk(node, n, t, *out, what, err);
}

static void set_tensor(struct dcv_tensor *t, const struct nest *n, float *data)
{
    t->ndim = n->ndim;
    for (int i = 0; i < n->ndim; i++)
        t->shape[i] = n->dims[i];
    t->count = n->count;
    t->data = data;
}

/* ---------------------------------------------------------------------- */
/* KServe v2                                                              */
/* ---------------------------------------------------------------------- */

struct kinput {
    const struct dcv_json *data;
    enum dtype t;
    struct nest shape;
    bool binary;
    int64_t binary_size;
    char what[WHAT_MAX];
};

static int copy_name(char *dst, const char *src, const char *field, char *err)
{
    size_t n = strlen(src);
    if (n >= DCV_TENSOR_NAME_MAX)
        return dcv_errf(err, DCV_EINVAL, "%s is %zu bytes long; at most %d are accepted", field, n,
                        DCV_TENSOR_NAME_MAX - 1);
    memcpy(dst, src, n + 1);
    return 0;
}

static int kserve_id(const struct dcv_json *root, struct dcv_infer_request *req, char *err)
{
    const struct dcv_json *id = dcv_json_get(root, "id");
    if (!id)
        return 0;
    const char *s = text_of(id);
    if (!s)
        return dcv_errf(err, DCV_EINVAL, "id must be a string, got %s", kind_name(id));
    size_t n = strlen(s);
    if (n >= DCV_TENSOR_ID_MAX)
        return dcv_errf(err, DCV_EINVAL, "id is %zu bytes long; at most %d are accepted", n,
                        DCV_TENSOR_ID_MAX - 1);
    memcpy(req->id, s, n + 1);
    req->has_id = true;
    return 0;
}

/* Optional bool member key of the optional object params. */
static int param_bool(const struct dcv_json *params, const char *where, const char *key,
                      bool *out, char *err)
{
    if (!params)
        return 0;
    if (dcv_json_type(params) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "%s must be an object, got %s", where,
                        kind_name(params));
    const struct dcv_json *v = dcv_json_get(params, key);
    if (!v)
        return 0;
    if (dcv_json_type(v) != DCV_JSON_BOOL)
        return dcv_errf(err, DCV_EINVAL, "%s.%s must be true or false, got %s", where, key,
                        kind_name(v));
    *out = dcv_json_true(v);
    return 0;
}

/* A byte count or offset parameter: a non-negative integer (up to 2^53). */
static int param_bytes(const struct dcv_json *v, const char *where, const char *key,
                       uint64_t *out, char *err)
{
    int64_t x;
    if (!json_integer(v, &x) || x < 0)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.%s must be a non-negative integer "
                        "number of bytes, got %s", where, key,
                        dcv_json_type(v) == DCV_JSON_NUMBER ? "a negative, non-integer or too "
                        "large number" : kind_name(v));
    *out = (uint64_t)x;
    return 0;
}

/* parameters.shared_memory_{region,byte_size,offset} of one tensor, from
 * an object params (or NULL). Region and byte size come together. */
static int shm_params(const struct dcv_json *params, const char *where,
                      struct dcv_tensor_shm *shm, char *err)
{
    const struct dcv_json *region = dcv_json_get(params, "shared_memory_region"),
                          *size = dcv_json_get(params, "shared_memory_byte_size"),
                          *off = dcv_json_get(params, "shared_memory_offset");
    int rc;
    if (!region && !size && !off)
        return 0;
    if (!region)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_%s is given without "
                        "parameters.shared_memory_region", where, size ? "byte_size" : "offset");
    const char *name = text_of(region);
    if (!name)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_region must be a "
                        "string, got %s", where, kind_name(region));
    size_t n = strlen(name);
    if (n == 0 || n >= DCV_TENSOR_REGION_MAX)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_region is %zu bytes "
                        "long; 1 to %d are accepted", where, n, DCV_TENSOR_REGION_MAX - 1);
    if (!size)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_region needs "
                        "parameters.shared_memory_byte_size", where);
    if ((rc = param_bytes(size, where, "shared_memory_byte_size", &shm->byte_size, err)) ||
        (off && (rc = param_bytes(off, where, "shared_memory_offset", &shm->offset, err))))
        return rc;
    memcpy(shm->region, name, n + 1);
    shm->used = true;
    return 0;
}

/* parameters.binary_data_output is the default; an outputs entry's own
 * parameters.binary_data overrides it, as in Triton. */
static int kserve_outputs(const struct dcv_json *root, struct dcv_infer_request *req, char *err)
{
    int rc = param_bool(dcv_json_get(root, "parameters"), "parameters", "binary_data_output",
                        &req->binary_output, err);
    const struct dcv_json *outs = dcv_json_get(root, "outputs");
    if (rc || !outs)
        return rc;
    if (slab_of(outs) || dcv_json_type(outs) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "outputs must be an array of {\"name\": ...} objects, "
                        "got %s", kind_name(outs));
    size_t i = 0;
    for (const struct dcv_json *o = dcv_json_first(outs); o; o = dcv_json_next(o), i++) {
        const char *name = text_of(dcv_json_get(o, "name"));
        if (!name)
            return dcv_errf(err, DCV_EINVAL, "outputs[%zu] must be an object with a string "
                            "\"name\"", i);
        if (strcmp(name, "output"))
            return dcv_errf(err, DCV_EINVAL, "unknown output '%.64s' (this model has one output "
                            "named 'output')", name);
        char where[48];
        snprintf(where, sizeof where, "outputs[%zu].parameters", i);
        rc = param_bool(dcv_json_get(o, "parameters"), where, "binary_data", &req->binary_output,
                        err);
        if (!rc) {
            snprintf(where, sizeof where, "outputs[%zu]", i);
            rc = shm_params(dcv_json_get(o, "parameters"), where, &req->output_shm, err);
        }
        if (rc)
            return rc;
        req->output_requested = true;
    }
    return 0;
}

static const struct dcv_json *kserve_input_object(const struct dcv_json *root, char *err,
                                                  int *rc)
{
    const struct dcv_json *inputs = dcv_json_get(root, "inputs");
    *rc = DCV_EINVAL;
    if (!inputs) {
        dcv_errf(err, *rc, "missing \"inputs\": a KServe v2 request is {\"inputs\": [{\"name\", "
                 "\"shape\", \"datatype\", \"data\"}]}");
    } else if (slab_of(inputs) || dcv_json_type(inputs) != DCV_JSON_ARRAY) {
        dcv_errf(err, *rc, "inputs must be an array of input objects, got %s", kind_name(inputs));
    } else if (dcv_json_size(inputs) != 1) {
        dcv_errf(err, *rc, "inputs holds %zu inputs; this model takes exactly one",
                 dcv_json_size(inputs));
    } else if (dcv_json_type(dcv_json_first(inputs)) != DCV_JSON_OBJECT) {
        dcv_errf(err, *rc, "inputs[0] must be an object, got %s",
                 kind_name(dcv_json_first(inputs)));
    } else {
        *rc = 0;
        return dcv_json_first(inputs);
    }
    return NULL;
}

static int kserve_params(const struct dcv_json *in, struct kinput *k,
                         struct dcv_tensor_shm *shm, char *err)
{
    const struct dcv_json *params = dcv_json_get(in, "parameters");
    if (!params)
        return 0;
    if (dcv_json_type(params) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters must be an object, got %s", k->what,
                        kind_name(params));
    int rc = shm_params(params, k->what, shm, err);
    if (rc)
        return rc;
    const struct dcv_json *size = dcv_json_get(params, "binary_data_size");
    if (!size)
        return 0;
    if (!json_integer(size, &k->binary_size) || k->binary_size < 0)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.binary_data_size must be a byte count, "
                        "got %s", k->what,
                        dcv_json_type(size) == DCV_JSON_NUMBER ? "a negative or non-integer number"
                                                               : kind_name(size));
    k->binary = true;
    return 0;
}

static int kserve_input(const struct dcv_json *root, const struct limits *lim, struct kinput *k,
                        struct dcv_infer_request *req, char *err)
{
    int rc;
    const struct dcv_json *in = kserve_input_object(root, err, &rc);
    if (!in)
        return rc;
    const struct dcv_json *name = dcv_json_get(in, "name");
    if (!name)
        return dcv_errf(err, DCV_EINVAL, "inputs[0] is missing \"name\"");
    if (!text_of(name))
        return dcv_errf(err, DCV_EINVAL, "inputs[0].name must be a string, got %s",
                        kind_name(name));
    if ((rc = copy_name(req->input_name, text_of(name), "input name", err)))
        return rc;
    snprintf(k->what, sizeof k->what, "input '%s'", req->input_name);
    const struct dcv_json *dt = dcv_json_get(in, "datatype");
    if (!dt)
        return dcv_errf(err, DCV_EINVAL, "%s is missing \"datatype\"", k->what);
    if (!text_of(dt))
        return dcv_errf(err, DCV_EINVAL, "%s: datatype must be a string, got %s", k->what,
                        kind_name(dt));
    if (dtype_of(text_of(dt), &k->t))
        return dcv_errf(err, DCV_EINVAL, "%s has unsupported datatype '%.32s' (accepted: FP32, "
                        "FP64, FP16, BF16, INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, "
                        "UINT64, BOOL)", k->what, text_of(dt));
    if ((rc = read_shape(dcv_json_get(in, "shape"), lim, k->what, &k->shape, err)) ||
        (rc = kserve_params(in, k, &req->input_shm, err)))
        return rc;
    k->data = dcv_json_get(in, "data");
    if (req->input_shm.used && (k->data || k->binary))
        return dcv_errf(err, DCV_EINVAL, "%s has both %s and parameters.shared_memory_region; "
                        "give one", k->what, k->data ? "\"data\"" : "parameters.binary_data_size");
    if (req->input_shm.used)
        return 0;
    if (k->data && k->binary)
        return dcv_errf(err, DCV_EINVAL, "%s has both \"data\" and parameters.binary_data_size; "
                        "give one", k->what);
    if (!k->data && !k->binary)
        return dcv_errf(err, DCV_EINVAL, "%s has neither \"data\" nor "
                        "parameters.binary_data_size", k->what);
    return 0;
}

static float binary_value(const unsigned char *p, enum dtype t)
{
    uint64_t u = 0;
    for (size_t i = dtypes[t].size; i-- > 0;)
        u = u << 8 | p[i];
    double d;
    switch (t) {
    case T_FP32: return bits_to_float((uint32_t)u);
    case T_FP64: memcpy(&d, &u, sizeof d); return narrow(d);
    case T_FP16: return f16_to_f32((uint16_t)u);
    case T_BF16: return bf16_to_f32((uint16_t)u);
    case T_INT8: return (float)(int8_t)(uint8_t)u;
    case T_INT16: return (float)(int16_t)(uint16_t)u;
    case T_INT32: return (float)(int32_t)(uint32_t)u;
    case T_INT64: return (float)(int64_t)u;
    case T_BOOL: return u ? 1.0f : 0.0f;
    default: return (float)u; /* unsigned */
    }
}

/* Index of the first NaN or infinity in v, or n. Every binary input
 * passes here: whole blocks are OR-reduced in vector registers (a loop
 * that branches per value ran at a third of memory speed on 0.5 MB), and
 * only a block that has one, or the tail, is searched value by value. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static size_t first_nonfinite(const float *v, size_t n)
{
    enum { BLOCK = 1024 };               /* a constant trip count -O2 vectorizes */
    size_t b = 0;
    for (; n - b >= BLOCK; b += BLOCK) {
        uint32_t hit = 0;
        for (size_t i = 0; i < BLOCK; i++) {
            uint32_t u;
            memcpy(&u, &v[b + i], sizeof u);
            hit |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (hit) break;
    }
    for (; b < n; b++)
        if (!isfinite(v[b])) return b;
    return n;
}

static int from_binary(const unsigned char *src, size_t count, enum dtype t, float *out,
                       const char *what, char *err)
{
    size_t size = dtypes[t].size;
    bool le = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
    if (t == T_FP32 && le)
        memcpy(out, src, count * sizeof *out);
    else
        for (size_t i = 0; i < count; i++)
            out[i] = binary_value(src + i * size, t);
    if (is_int_type(t) || t == T_BOOL)
        return 0;
    size_t i = first_nonfinite(out, count);
    return i < count ? float_error(err, what, i, BAD_NONFINITE, t, out[i]) : 0;
}

/* count values of type t at src into out->data: borrowed in place when
 * allowed and the bytes already are aligned little-endian float32 (no copy
 * of the biggest input), else converted into a new buffer. */
static int raw_tensor(const unsigned char *src, size_t count, enum dtype t, bool may_borrow,
                      const char *what, struct dcv_tensor *out, char *err)
{
    if (may_borrow && t == T_FP32 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ &&
        (uintptr_t)src % _Alignof(float) == 0) {
        const float *v = (const float *)(const void *)src;
        size_t i = first_nonfinite(v, count);
        if (i < count)
            return float_error(err, what, i, BAD_NONFINITE, t, v[i]);
        out->data = (float *)(void *)src;
        out->borrowed = true;
        return 0;
    }
    if (!(out->data = malloc(count * sizeof *out->data)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", count);
    return from_binary(src, count, t, out->data, what, err);
}

static int kserve_binary(const struct kinput *k, const unsigned char *bin, size_t blen,
                         bool has_header, struct dcv_tensor *out, char *err)
{
    size_t size = dtypes[k->t].size, count = k->shape.count;
    char st[SHAPE_TEXT];
    shape_text(st, k->shape.dims, k->shape.ndim);
    if (count > SIZE_MAX / size || (uint64_t)k->binary_size != count * size)
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.binary_data_size is %lld but shape %s "
                        "of %s needs %zu bytes", k->what, (long long)k->binary_size, st,
                        dtypes[k->t].name, count * size);
    if (blen != count * size)
        return dcv_errf(err, DCV_EINVAL, "%s: expected %zu bytes of binary data after the JSON "
                        "header, got %zu%s", k->what, count * size, blen,
                        has_header ? "" : " (no Inference-Header-Content-Length was given)");
    return raw_tensor(bin, count, k->t, true, k->what, out, err);
}

/* An input in shared memory: its byte size must fit shape and datatype
 * now, so that api.c maps exactly what the tensor needs. */
static int kserve_shm_input(const struct kinput *k, struct dcv_infer_request *req, size_t blen,
                            char *err)
{
    size_t size = dtypes[k->t].size, count = k->shape.count;
    char st[SHAPE_TEXT];
    shape_text(st, k->shape.dims, k->shape.ndim);
    if (count > SIZE_MAX / size || req->input_shm.byte_size != (uint64_t)(count * size))
        return dcv_errf(err, DCV_EINVAL, "%s: parameters.shared_memory_byte_size is %llu but "
                        "shape %s of %s needs %zu bytes", k->what,
                        (unsigned long long)req->input_shm.byte_size, st, dtypes[k->t].name,
                        count * size);
    if (blen)
        return dcv_errf(err, DCV_EINVAL, "expected 0 bytes of binary data after the JSON header "
                        "(no input has parameters.binary_data_size), got %zu", blen);
    snprintf(req->input_datatype, sizeof req->input_datatype, "%s", dtypes[k->t].name);
    return 0;
}

static int kserve_request(const struct dcv_json *root, const unsigned char *bin, size_t blen,
                          bool has_header, const struct limits *lim,
                          struct dcv_infer_request *req, char *err)
{
    if (slab_of(root) || dcv_json_type(root) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "a KServe v2 request must be a JSON object, got %s",
                        kind_name(root));
    struct kinput k = { 0 };
    int rc;
    if ((rc = kserve_id(root, req, err)) || (rc = kserve_outputs(root, req, err)) ||
        (rc = kserve_input(root, lim, &k, req, err)))
        return rc;
    set_tensor(&req->input, &k.shape, NULL);
    if (req->input_shm.used)
        return kserve_shm_input(&k, req, blen, err);
    if (k.binary)
        return kserve_binary(&k, bin, blen, has_header, &req->input, err);
    if (blen)
        return dcv_errf(err, DCV_EINVAL, "expected 0 bytes of binary data after the JSON header "
                        "(no input has parameters.binary_data_size), got %zu", blen);
    struct nest got;
    return read_nested(k.data, k.t, lim, true, &k.shape, k.what, &got, &req->input.data, err);
}

int dcv_tensor_decode_kserve(char *body, size_t len, size_t header_len,
                             const struct dcv_decode_limits *lim, struct dcv_infer_request *req,
                             char *err)
{
    memset(req, 0, sizeof *req);
    if (header_len > len)
        return dcv_errf(err, DCV_EINVAL, "Inference-Header-Content-Length is %zu but the body "
                        "has only %zu bytes", header_len, len);
    struct limits l = limits_of(lim);
    size_t jlen = header_len ? header_len : len;
    struct dcv_tensor_body *b;
    int rc = parse_body(body, jlen, &l, &b, err);
    if (rc)
        return rc;
    rc = kserve_request(b->root, (const unsigned char *)body + jlen, len - jlen, header_len != 0,
                        &l, req, err);
    dcv_tensor_body_free(b);
    if (rc)
        dcv_infer_request_release(req);
    return rc;
}

int dcv_tensor_decode_raw(struct dcv_infer_request *req, const void *src, size_t len,
                          bool may_borrow, char *err)
{
    enum dtype t;
    char what[WHAT_MAX];
    if (!req->input_shm.used || req->input.data || dtype_of(req->input_datatype, &t))
        return dcv_errf(err, DCV_EINVAL, "the request's input is not in shared memory");
    snprintf(what, sizeof what, "input '%s'", req->input_name);
    size_t count = req->input.count, size = dtypes[t].size;
    if (count > SIZE_MAX / size || len != count * size)
        return dcv_errf(err, DCV_EINVAL, "%s: expected %zu bytes of %s in shared memory, got %zu",
                        what, count * size, dtypes[t].name, len);
    int rc = raw_tensor(src, count, t, may_borrow, what, &req->input, err);
    if (rc)
        dcv_tensor_release(&req->input);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* TF Serving                                                             */
/* ---------------------------------------------------------------------- */

/* One instance's value: a bare number (a scalar row) or a nested array. */
static int instance_value(const struct dcv_json *v, const struct limits *lim, const char *what,
                          struct nest *n, float **out, char *err)
{
    if (dcv_json_type(v) != DCV_JSON_NUMBER)
        return read_nested(v, T_FP32, lim, true, NULL, what, n, out, err);
    float f = narrow(dcv_json_number(v));
    enum bad b = check_value(&f, T_FP32);
    if (b)
        return tree_value_error(err, what, 0, b, T_FP32, v);
    if (!(*out = malloc(sizeof **out)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    **out = f;
    n->ndim = 0;
    n->count = 1;
    return 0;
}

static bool same_nest(const struct nest *a, const struct nest *b)
{
    return a->ndim == b->ndim && !memcmp(a->dims, b->dims, (size_t)a->ndim * sizeof a->dims[0]);
}

/* instances[i] must be {"<name>": value}, with the same name each time. */
static const struct dcv_json *instance_member(const struct dcv_json *inst, size_t i,
                                              const char *name, char *err)
{
    if (dcv_json_type(inst) != DCV_JSON_OBJECT) {
        dcv_errf(err, DCV_EINVAL, "instances[%zu] is %s but instances[0] is an object; all "
                 "instances must have the same form", i, kind_name(inst));
        return NULL;
    }
    if (dcv_json_size(inst) != 1) {
        dcv_errf(err, DCV_EINVAL, "instances[%zu] has %zu keys; this model takes one input, so "
                 "each instance must be {\"<input name>\": value}", i, dcv_json_size(inst));
        return NULL;
    }
    const struct dcv_json *m = dcv_json_first(inst);
    if (name && strcmp(dcv_json_key(m), name)) {
        dcv_errf(err, DCV_EINVAL, "instances[%zu] names input '%.64s' but instances[0] names "
                 "'%s'", i, dcv_json_key(m), name);
        return NULL;
    }
    return m;
}

/* Room for n instances of count values each, checked against the limit. */
static int batch_alloc(size_t n, const struct nest *inst, const struct limits *lim,
                       struct dcv_tensor *out, char *err)
{
    if (inst->ndim + 1 > DCV_TENSOR_MAX_DIMS)
        return dcv_errf(err, DCV_EINVAL, "instances have %d dimensions; with the batch "
                        "dimension at most %d are supported", inst->ndim, DCV_TENSOR_MAX_DIMS);
    struct nest all = { .ndim = inst->ndim + 1 };
    all.dims[0] = (int64_t)n;
    memcpy(all.dims + 1, inst->dims, (size_t)inst->ndim * sizeof all.dims[0]);
    int rc = nest_count(&all, lim, "instances", err);
    if (rc)
        return rc;
    if (!(out->data = malloc(all.count * sizeof *out->data)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu values", all.count);
    set_tensor(out, &all, out->data);
    return 0;
}

static int instance_objects(const struct dcv_json *arr, const struct limits *lim,
                            struct dcv_infer_request *req, char *err)
{
    size_t n = dcv_json_size(arr), i = 0;
    struct nest first = { 0 };
    int rc = 0;
    for (const struct dcv_json *inst = dcv_json_first(arr); inst && !rc;
         inst = dcv_json_next(inst), i++) {
        const struct dcv_json *m = instance_member(inst, i, i ? req->input_name : NULL, err);
        if (!m)
            return DCV_EINVAL;
        if (i == 0 && (rc = copy_name(req->input_name, dcv_json_key(m), "input name", err)))
            return rc;
        char what[WHAT_MAX];
        snprintf(what, sizeof what, "instances[%zu].%s", i, req->input_name);
        struct nest nn;
        float *v;
        if ((rc = instance_value(m, lim, what, &nn, &v, err)))
            return rc;
        if (i == 0) {
            first = nn;
            rc = batch_alloc(n, &first, lim, &req->input, err);
        } else if (!same_nest(&nn, &first)) {
            char a[SHAPE_TEXT], b[SHAPE_TEXT];
            shape_text(a, nn.dims, nn.ndim);
            shape_text(b, first.dims, first.ndim);
            rc = dcv_errf(err, DCV_ESHAPE, "instances[%zu] has shape %s but instances[0] has %s",
                          i, a, b);
        }
        if (!rc)
            memcpy(req->input.data + i * first.count, v, first.count * sizeof *v);
        free(v);
    }
    return rc;
}

static int tf_instances(const struct dcv_json *inst, const struct limits *lim,
                        struct dcv_infer_request *req, char *err)
{
    bool tree = !slab_of(inst) && dcv_json_type(inst) == DCV_JSON_ARRAY;
    if (tree && dcv_json_type(dcv_json_first(inst)) == DCV_JSON_OBJECT)
        return instance_objects(inst, lim, req, err);
    if (!tree && !slab_of(inst))
        return dcv_errf(err, DCV_EINVAL, "instances must be an array, got %s; %s",
                        kind_name(inst), TF_FORMS);
    struct nest n;
    float *v;
    int rc = read_nested(inst, T_FP32, lim, true, NULL, "instances", &n, &v, err);
    if (!rc)
        set_tensor(&req->input, &n, v);
    return rc;
}

static int tf_inputs(const struct dcv_json *in, const struct limits *lim,
                     struct dcv_infer_request *req, char *err)
{
    const struct dcv_json *v = in;
    if (dcv_json_type(in) == DCV_JSON_OBJECT) {
        if (dcv_json_size(in) != 1)
            return dcv_errf(err, DCV_EINVAL, "inputs names %zu tensors; this model takes one "
                            "input: {\"inputs\": {\"<name>\": nested array}}", dcv_json_size(in));
        v = dcv_json_first(in);
        int rc = copy_name(req->input_name, dcv_json_key(v), "input name", err);
        if (rc)
            return rc;
    } else if (!slab_of(in) && dcv_json_type(in) != DCV_JSON_ARRAY) {
        return dcv_errf(err, DCV_EINVAL, "inputs must be a nested array or an object, got %s; %s",
                        kind_name(in), TF_FORMS);
    }
    struct nest n;
    float *data;
    int rc = read_nested(v, T_FP32, lim, true, NULL, "inputs", &n, &data, err);
    if (!rc)
        set_tensor(&req->input, &n, data);
    return rc;
}

static int tf_request(const struct dcv_json *root, const struct limits *lim,
                      struct dcv_infer_request *req, bool *row_format, char *err)
{
    if (slab_of(root) || dcv_json_type(root) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "the body must be a JSON object, got %s; %s",
                        kind_name(root), TF_FORMS);
    const struct dcv_json *inst = dcv_json_get(root, "instances");
    const struct dcv_json *inputs = dcv_json_get(root, "inputs");
    if (inst && inputs)
        return dcv_errf(err, DCV_EINVAL, "give either \"instances\" or \"inputs\", not both; %s",
                        TF_FORMS);
    if (!inst && !inputs)
        return dcv_errf(err, DCV_EINVAL, "missing \"instances\" or \"inputs\"; %s", TF_FORMS);
    *row_format = inst != NULL;
    return inst ? tf_instances(inst, lim, req, err) : tf_inputs(inputs, lim, req, err);
}

int dcv_tensor_decode_tfserving(char *body, size_t len, const struct dcv_decode_limits *lim,
                                struct dcv_infer_request *req, bool *row_format, char *err)
{
    memset(req, 0, sizeof *req);
    struct limits l = limits_of(lim);
    struct dcv_tensor_body *b;
    int rc = parse_body(body, len, &l, &b, err);
    if (rc)
        return rc;
    bool rows = false;
    rc = tf_request(b->root, &l, req, &rows, err);
    dcv_tensor_body_free(b);
    if (rc)
        dcv_infer_request_release(req);
    else if (row_format)
        *row_format = rows;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Plain tensors                                                          */
/* ---------------------------------------------------------------------- */

int dcv_tensor_from_json(const struct dcv_json *node, const struct dcv_decode_limits *lim,
                         struct dcv_tensor *out, char *err)
{
    memset(out, 0, sizeof *out);
    struct limits l = limits_of(lim);
    struct nest want, n;
    float *data = NULL;
    int rc;
    if (dcv_json_type(node) == DCV_JSON_OBJECT) {
        const struct dcv_json *d = dcv_json_get(node, "data");
        if (!d)
            return dcv_errf(err, DCV_EINVAL, "a tensor object needs \"shape\" and \"data\"; "
                            "\"data\" is missing");
        if ((rc = read_shape(dcv_json_get(node, "shape"), &l, "tensor", &want, err)) ||
            (rc = read_nested(d, T_FP32, &l, false, &want, "tensor data", &n, &data, err)))
            return rc;
        set_tensor(out, &want, data);
        return 0;
    }
    if (!slab_of(node) && dcv_json_type(node) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "expected a tensor: a nested array of numbers or "
                        "{\"shape\": [...], \"data\": [...]}, got %s", kind_name(node));
    if ((rc = read_nested(node, T_FP32, &l, false, NULL, "tensor", &n, &data, err)))
        return rc;
    set_tensor(out, &n, data);
    return 0;
}

void dcv_tensor_release(struct dcv_tensor *t)
{
    if (!t)
        return;
    if (!t->borrowed)
        free(t->data);
    memset(t, 0, sizeof *t);
}

void dcv_infer_request_release(struct dcv_infer_request *req)
{
    if (req)
        dcv_tensor_release(&req->input);
}

/* ---------------------------------------------------------------------- */
/* Encoders                                                               */
/* ---------------------------------------------------------------------- */

/* A buffer sized up front for the worst case, so writers never check. */
struct out {
    char *p;
    size_t len, cap;
};

static bool out_open(struct out *o, size_t cap)
{
    o->len = 0;
    o->cap = cap;
    return (o->p = dcv_buf_alloc(cap)) != NULL;
}

static void put(struct out *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_quoted(struct out *o, const char *s)
{
    o->len += dcv_json_quote(o->p + o->len, o->cap - o->len, s);
}

static void put_shape(struct out *o, const int64_t *shape, int ndim)
{
    char st[SHAPE_TEXT];
    shape_text(st, shape, ndim);
    put(o, st);
}

static void put_flat(struct out *o, const float *v, size_t n)
{
    o->len += dcv_float_array_format(v, n, o->p + o->len, o->cap - o->len);
}

static char *out_close(struct out *o, size_t *len)
{
    o->p[o->len] = '\0'; /* convenience only: not counted */
    *len = o->len;
    return o->p;
}

/* Bytes a quoted string can take, NUL included. */
static size_t quoted_max(const char *s) { return 6 * strlen(s ? s : "") + 3; }

/* Values in shape, or false for a shape no tensor can have. */
static bool shape_count(const int64_t *shape, int ndim, size_t *n)
{
    if (ndim < 0 || ndim > DCV_TENSOR_MAX_DIMS || (ndim && !shape))
        return false;
    size_t p = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] && p > SIZE_MAX / 64 / (size_t)shape[i]))
            return false;
        p *= (size_t)shape[i];
    }
    *n = p;
    return true;
}

/* Worst-case text of n floats, nested by shape: each number with its comma,
 * plus per innermost row its brackets at every level and a comma. */
static size_t nested_max(size_t n, int ndim)
{
    return n * (DCV_FLOAT_MAXLEN + 1) + n * (2 * (size_t)ndim + 3) + 16;
}

/* The response up to the outputs' data (or binary size). */
static void kserve_head(struct out *o, const char *model, const char *version, const char *id,
                        bool has_id, const int64_t *shape, int ndim)
{
    put(o, "{\"model_name\":");
    put_quoted(o, model);
    put(o, ",\"model_version\":");
    put_quoted(o, version);
    if (has_id) {
        put(o, ",\"id\":");
        put_quoted(o, id);
    }
    put(o, ",\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":");
    put_shape(o, shape, ndim);
}

static size_t kserve_head_max(const char *model, const char *version, const char *id)
{
    return 256 + quoted_max(model) + quoted_max(version) + quoted_max(id) + SHAPE_TEXT;
}

char *dcv_tensor_kserve_binary_open(const char *model, const char *version, const char *id,
                                    bool has_id, const int64_t *shape, int ndim, float **data,
                                    size_t *len, size_t *header_len)
{
    size_t n;
    struct out h;
    char tail[64];
    if (!shape_count(shape, ndim, &n) || !out_open(&h, kserve_head_max(model, version, id)))
        return NULL;
    kserve_head(&h, model, version, id, has_id, shape, ndim);
    snprintf(tail, sizeof tail, ",\"parameters\":{\"binary_data_size\":%zu}}]}",
             n * sizeof **data);
    put(&h, tail);
    /* start pad bytes in, so that the data after the header is aligned */
    size_t pad = (DCV_BUF_ALIGN - h.len % DCV_BUF_ALIGN) % DCV_BUF_ALIGN;
    char *b = dcv_buf_alloc(pad + h.len + n * sizeof **data + 1);
    if (b) {
        memcpy(b + pad, h.p, h.len);
        *data = (float *)(void *)(b + pad + h.len);
        *header_len = h.len;
        *len = h.len + n * sizeof **data;
    }
    dcv_buf_free(h.p);
    return b ? b + pad : NULL;
}

void dcv_tensor_kserve_binary_close(float *data, size_t n)
{
    if (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
        return;
    for (size_t i = 0; i < n; i++) {
        uint32_t x = float_to_bits(data[i]);
        unsigned char *b = (unsigned char *)&data[i];
        for (int k = 0; k < 4; k++)
            b[k] = (unsigned char)(x >> (8 * k));
    }
}

char *dcv_tensor_encode_kserve_shm(const char *model, const char *version, const char *id,
                                   bool has_id, const int64_t *shape, int ndim,
                                   const struct dcv_tensor_shm *shm, size_t *len)
{
    size_t n;
    struct out o;
    char num[96];
    if (!shape_count(shape, ndim, &n) ||
        !out_open(&o, kserve_head_max(model, version, id) + quoted_max(shm->region) + 192))
        return NULL;
    kserve_head(&o, model, version, id, has_id, shape, ndim);
    put(&o, ",\"parameters\":{\"shared_memory_region\":");
    put_quoted(&o, shm->region);
    snprintf(num, sizeof num, ",\"shared_memory_byte_size\":%llu,\"shared_memory_offset\":%llu}}]}",
             (unsigned long long)shm->byte_size, (unsigned long long)shm->offset);
    put(&o, num);
    return out_close(&o, len);
}

char *dcv_tensor_encode_kserve(const char *model, const char *version, const char *id,
                               bool has_id, const int64_t *shape, int ndim, const float *data,
                               bool binary, size_t *len, size_t *header_len)
{
    size_t n, hl;
    struct out o;
    if (!shape_count(shape, ndim, &n))
        return NULL;
    if (binary) {
        float *dst;
        char *b = dcv_tensor_kserve_binary_open(model, version, id, has_id, shape, ndim, &dst,
                                                len, &hl);
        if (b) {
            memcpy(dst, data, n * sizeof *data);
            dcv_tensor_kserve_binary_close(dst, n);
            if (header_len)
                *header_len = hl;
        }
        return b;
    }
    if (!out_open(&o, kserve_head_max(model, version, id) + n * (DCV_FLOAT_MAXLEN + 1)))
        return NULL;
    kserve_head(&o, model, version, id, has_id, shape, ndim);
    put(&o, ",\"data\":");
    put_flat(&o, data, n);
    put(&o, "}]}");
    if (header_len)
        *header_len = o.len;
    return out_close(&o, len);
}

/* Nested arrays, one codec call per innermost row. */
static void put_nested(struct out *o, const int64_t *shape, int ndim, const float *v, size_t n)
{
    if (n == 0) {
        put(o, "[]");
        return;
    }
    size_t inner = (size_t)shape[ndim - 1], rows = n / inner;
    size_t per[DCV_TENSOR_MAX_DIMS]; /* rows in one array at level d < ndim - 1 */
    per[ndim - 1] = 1;
    for (int d = ndim - 2; d >= 0; d--)
        per[d] = per[d + 1] * (size_t)shape[d];
    for (size_t r = 0; r < rows; r++) {
        if (r)
            o->p[o->len++] = ',';
        for (int d = 0; d < ndim - 1; d++)
            if (r % per[d] == 0)
                o->p[o->len++] = '[';
        put_flat(o, v + r * inner, inner);
        for (int d = ndim - 2; d >= 0; d--)
            if ((r + 1) % per[d] == 0)
                o->p[o->len++] = ']';
    }
}

char *dcv_tensor_encode_tfserving(const int64_t *shape, int ndim, const float *data,
                                  bool row_format, size_t *len)
{
    size_t n;
    struct out o;
    if (!shape_count(shape, ndim, &n) || !out_open(&o, 32 + nested_max(n, ndim)))
        return NULL;
    put(&o, row_format ? "{\"predictions\":" : "{\"outputs\":");
    if (ndim > 0) {
        put_nested(&o, shape, ndim, data, n);
    } else {
        char num[DCV_FLOAT_MAXLEN + 1];
        dcv_float_format(data[0], num);
        put(&o, row_format ? "[" : "");
        put(&o, num);
        put(&o, row_format ? "]" : "");
    }
    put(&o, "}");
    return out_close(&o, len);
}

char *dcv_tensor_encode_plain(const int64_t *shape, int ndim, const float *data, size_t *len)
{
    size_t n;
    struct out o;
    if (!shape_count(shape, ndim, &n) ||
        !out_open(&o, 32 + SHAPE_TEXT + n * (DCV_FLOAT_MAXLEN + 1)))
        return NULL;
    put(&o, "{\"shape\":");
    put_shape(&o, shape, ndim);
    put(&o, ",\"data\":");
    put_flat(&o, data, n);
    put(&o, "}");
    return out_close(&o, len);
}
