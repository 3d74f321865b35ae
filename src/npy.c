/* npy.c — NumPy .npy reader (and a small writer) for model weights.
 *
 * A .npy image is a preamble (magic, version, header length), a Python dict
 * literal naming dtype, order and shape, then the raw array. The dict is read
 * by a small scanner that accepts the literal syntax NumPy writes plus
 * harmless variations (quotes, key order, spacing, trailing commas) and
 * nothing it cannot check. Every number taken from the file is range- and
 * overflow-checked before it sizes an allocation or an offset, and the
 * payload length must match the shape exactly. Conversion to C-order float32
 * is a single pass, so '<f8' and Fortran-order payloads need no second copy.
 *
 * dcv_npy_load pre-flights the header from a bounded prefix of the file, so
 * an oversized or inconsistent file is refused before its bytes are read.
 * No global state: any thread. Each call owns only its local buffers; the
 * array it returns (struct dcv_npy.data) belongs to the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deconvd/error.h"
#include "deconvd/npy.h"

/* The byte-level conversions below assume IEEE binary32/binary64. */
_Static_assert(sizeof(float) == 4 && FLT_MANT_DIG == 24, "float must be binary32");
_Static_assert(sizeof(double) == 8 && DBL_MANT_DIG == 53, "double must be binary64");

static const char MAGIC[6] = "\x93NUMPY";

/* NumPy itself refuses headers above 10000 bytes by default; anything near
 * this cap cannot describe a float array of at most DCV_NPY_MAX_DIMS dims. */
#define HEADER_MAX   65536u
#define PREAMBLE_MAX 12u                /* magic + version + u32 length */
#define PREFIX_MAX   (PREAMBLE_MAX + HEADER_MAX)
#define TOKEN_SHOW   24                 /* bytes of a file token quoted in messages */
#define SHAPE_STRLEN (DCV_NPY_MAX_DIMS * 22 + 4)

enum key { KEY_DESCR, KEY_FORTRAN, KEY_SHAPE, NKEYS };
static const char *const key_names[NKEYS] = { "descr", "fortran_order", "shape" };

/* What the header dict said; descr points into the image being parsed. */
struct dict {
    int seen[NKEYS];
    const char *descr;      /* NULL when descr was a structured (list) dtype */
    size_t descr_len;
    int fortran;
    int ndim;
    int64_t shape[DCV_NPY_MAX_DIMS];
};

/* Everything the payload pass needs, all of it validated. */
struct header {
    size_t data_off;
    size_t itemsize;
    size_t count;
    size_t nbytes;
    int fortran;
    int ndim;
    int64_t shape[DCV_NPY_MAX_DIMS];
};

struct cursor {
    const char *p, *end;
    const char *base;       /* image start, so messages give file offsets */
};

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
    return le16(p) | le16(p + 2) << 16;
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Bytes from an untrusted file end up in logs and HTTP replies: copy a
 * bounded, printable version of them. */
static const char *printable(char *dst, size_t cap, const char *s, size_t n)
{
    size_t m = n < cap - 1 ? n : cap - 1;
    for (size_t i = 0; i < m; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    dst[m] = '\0';
    if (n > m && m >= 3)
        memcpy(dst + m - 3, "...", 3);
    return dst;
}

static const char *shape_str(char *dst, const int64_t *shape, int ndim)
{
    size_t n = 0;
    dst[n++] = '(';
    for (int k = 0; k < ndim; k++)
        n += (size_t)snprintf(dst + n, SHAPE_STRLEN - n, "%s%lld", k ? ", " : "",
                              (long long)shape[k]);
    snprintf(dst + n, SHAPE_STRLEN - n, "%s)", ndim == 1 ? "," : "");
    return dst;
}

/* ---- header dict scanner ---------------------------------------------- */

static size_t offset(const struct cursor *c)
{
    return (size_t)(c->p - c->base);
}

static void skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int peek(struct cursor *c, char ch)
{
    skip_ws(c);
    return c->p < c->end && *c->p == ch;
}

static int expect(struct cursor *c, char ch, const char *where, char *err)
{
    if (!peek(c, ch))
        return dcv_errf(err, DCV_EPARSE, "header: expected '%c' %s at byte %zu",
                        ch, where, offset(c));
    c->p++;
    return 0;
}

static int scan_string(struct cursor *c, const char **s, size_t *n, char *err)
{
    skip_ws(c);
    if (c->p == c->end || (*c->p != '\'' && *c->p != '"'))
        return dcv_errf(err, DCV_EPARSE, "header: expected a quoted string at byte %zu",
                        offset(c));
    char quote = *c->p++;
    const char *start = c->p;
    for (; c->p < c->end && *c->p != quote; c->p++) {
        /* escapes never occur in the keys and dtypes we accept */
        if (*c->p == '\\' || *c->p == '\n')
            return dcv_errf(err, DCV_EPARSE,
                            "header: escape or newline inside string at byte %zu",
                            offset(c));
    }
    if (c->p == c->end)
        return dcv_errf(err, DCV_EPARSE, "header: unterminated string at byte %zu",
                        (size_t)(start - 1 - c->base));
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return 0;
}

static int is_ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_';
}

static int scan_bool(struct cursor *c, int *v, char *err)
{
    skip_ws(c);
    size_t n = 0, left = (size_t)(c->end - c->p);
    while (n < left && is_ident_char(c->p[n]))
        n++;
    if (n == 4 && memcmp(c->p, "True", 4) == 0)
        *v = 1;
    else if (n == 5 && memcmp(c->p, "False", 5) == 0)
        *v = 0;
    else
        return dcv_errf(err, DCV_EPARSE,
                        "header: 'fortran_order' must be True or False (byte %zu)",
                        offset(c));
    c->p += n;
    return 0;
}

static int scan_dim(struct cursor *c, int64_t *v, char *err)
{
    skip_ws(c);
    size_t at = offset(c);
    int neg = c->p < c->end && *c->p == '-';
    c->p += neg;
    if (c->p == c->end || *c->p < '0' || *c->p > '9')
        return dcv_errf(err, DCV_EPARSE, "header: expected an integer in 'shape' at byte %zu",
                        at);
    uint64_t u = 0;
    for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
        unsigned d = (unsigned)(*c->p - '0');
        if (u > ((uint64_t)INT64_MAX - d) / 10)
            return dcv_errf(err, DCV_EPARSE, "header: dimension at byte %zu is out of range",
                            at);
        u = u * 10 + d;
    }
    if (c->p < c->end && *c->p == 'L')   /* Python 2 long, seen in old files */
        c->p++;
    if (neg && u != 0)
        return dcv_errf(err, DCV_EPARSE, "header: negative dimension -%llu in 'shape'",
                        (unsigned long long)u);
    *v = (int64_t)u;
    return 0;
}

static int scan_shape(struct cursor *c, struct dict *d, char *err)
{
    int rc = expect(c, '(', "to open 'shape'", err);
    if (rc)
        return rc;
    d->ndim = 0;
    while (!peek(c, ')')) {
        int64_t v = 0;
        if ((rc = scan_dim(c, &v, err)))
            return rc;
        if (d->ndim == DCV_NPY_MAX_DIMS)
            return dcv_errf(err, DCV_EUNSUPP, "shape has more than %d dimensions",
                            DCV_NPY_MAX_DIMS);
        d->shape[d->ndim++] = v;
        if (peek(c, ',')) {
            c->p++;
            continue;
        }
        if (!peek(c, ')'))
            return dcv_errf(err, DCV_EPARSE, "header: expected ',' or ')' in 'shape' at byte %zu",
                            offset(c));
        /* Python reads "(5)" as the int 5: NumPy would reject it too */
        if (d->ndim == 1)
            return dcv_errf(err, DCV_EPARSE, "header: 'shape' (%lld) is not a tuple; "
                            "a 1-d shape is written (%lld,)",
                            (long long)v, (long long)v);
        break;
    }
    c->p++;
    return 0;
}

/* Steps over a structured dtype list without interpreting it: it is refused
 * anyway, but only once the rest of the header is known to be well formed. */
static int skip_nested(struct cursor *c, char *err)
{
    int depth = 0;
    do {
        if (c->p == c->end)
            return dcv_errf(err, DCV_EPARSE, "header: unterminated list in 'descr'");
        char ch = *c->p;
        if (ch == '\'' || ch == '"') {
            const char *s;
            size_t n;
            int rc = scan_string(c, &s, &n, err);
            if (rc)
                return rc;
            continue;
        }
        depth += (ch == '[' || ch == '(') - (ch == ']' || ch == ')');
        c->p++;
    } while (depth > 0);
    return 0;
}

static int scan_descr(struct cursor *c, struct dict *d, char *err)
{
    if (peek(c, '[')) {
        d->descr = NULL;
        return skip_nested(c, err);
    }
    return scan_string(c, &d->descr, &d->descr_len, err);
}

static int scan_key(struct cursor *c, struct dict *d, enum key *key, char *err)
{
    const char *s;
    size_t n;
    char show[TOKEN_SHOW];
    int rc = scan_string(c, &s, &n, err);
    if (rc)
        return rc;
    for (int k = 0; k < NKEYS; k++) {
        if (strlen(key_names[k]) != n || memcmp(s, key_names[k], n) != 0)
            continue;
        if (d->seen[k]++)
            return dcv_errf(err, DCV_EPARSE, "header: duplicate key '%s'", key_names[k]);
        *key = (enum key)k;
        return 0;
    }
    return dcv_errf(err, DCV_EPARSE, "header: unknown key '%s' (expected 'descr', "
                    "'fortran_order' and 'shape')", printable(show, sizeof show, s, n));
}

static int scan_entry(struct cursor *c, struct dict *d, char *err)
{
    enum key key = KEY_DESCR;
    int rc = scan_key(c, d, &key, err);
    if (!rc)
        rc = expect(c, ':', "after key", err);
    if (rc)
        return rc;
    switch (key) {
    case KEY_DESCR:   return scan_descr(c, d, err);
    case KEY_FORTRAN: return scan_bool(c, &d->fortran, err);
    default:          return scan_shape(c, d, err);
    }
}

static int scan_dict(struct cursor *c, struct dict *d, char *err)
{
    int rc = expect(c, '{', "to open the header dict", err);
    while (!rc && !peek(c, '}')) {
        if ((rc = scan_entry(c, d, err)))
            break;
        if (peek(c, ','))
            c->p++;
        else if (!peek(c, '}'))
            rc = dcv_errf(err, DCV_EPARSE, "header: expected ',' or '}' at byte %zu",
                          offset(c));
    }
    if (rc)
        return rc;
    c->p++;
    skip_ws(c);
    if (c->p != c->end)
        return dcv_errf(err, DCV_EPARSE, "header: unexpected data after the dict at byte %zu",
                        offset(c));
    for (int k = 0; k < NKEYS; k++)
        if (!d->seen[k])
            return dcv_errf(err, DCV_EPARSE, "header has no '%s' key", key_names[k]);
    return 0;
}

/* ---- header validation ------------------------------------------------- */

static int read_preamble(const unsigned char *b, size_t len, size_t *hoff, size_t *hlen,
                         char *err)
{
    if (len < sizeof MAGIC || memcmp(b, MAGIC, sizeof MAGIC) != 0)
        return dcv_errf(err, DCV_EPARSE, "not a .npy file: bad magic (expected \\x93NUMPY)");
    if (len < 8)
        return dcv_errf(err, DCV_EPARSE, "truncated .npy preamble (%zu bytes)", len);
    if (b[6] < 1 || b[6] > 3 || b[7] != 0)
        return dcv_errf(err, DCV_EUNSUPP, "unsupported .npy format version %u.%u "
                        "(1.0, 2.0 and 3.0 are supported)", b[6], b[7]);
    /* 3.0 differs from 2.0 only in allowing utf8 in the header text */
    size_t width = b[6] == 1 ? 2 : 4;
    if (len < 8 + width)
        return dcv_errf(err, DCV_EPARSE, "truncated .npy preamble (%zu bytes)", len);
    *hoff = 8 + width;
    *hlen = width == 2 ? le16(b + 8) : le32(b + 8);
    if (*hlen > HEADER_MAX)
        return dcv_errf(err, DCV_EPARSE, "header length %zu exceeds the %u-byte limit",
                        *hlen, HEADER_MAX);
    if (*hlen > len - *hoff)
        return dcv_errf(err, DCV_EPARSE, "header length %zu runs past the end of the file "
                        "(%zu bytes after the preamble)", *hlen, len - *hoff);
    return 0;
}

static int check_dtype(const struct dict *d, size_t *itemsize, char *err)
{
    char show[TOKEN_SHOW];
    if (!d->descr)
        return dcv_errf(err, DCV_EUNSUPP, "unsupported dtype: structured arrays are not "
                        "supported; '<f4' and '<f8' are supported");
    if (d->descr_len == 3 && memcmp(d->descr, "<f4", 3) == 0)
        *itemsize = 4;
    else if (d->descr_len == 3 && memcmp(d->descr, "<f8", 3) == 0)
        *itemsize = 8;
    else
        return dcv_errf(err, DCV_EUNSUPP, "unsupported dtype '%s'; '<f4' and '<f8' are "
                        "supported", printable(show, sizeof show, d->descr, d->descr_len));
    return 0;
}

/* NumPy sizes an array by the product of its non-zero dimensions even when
 * another is zero, so a shape is refused if that product overflows. */
static int count_elems(struct header *h, char *err)
{
    char show[SHAPE_STRLEN];
    size_t n = 1;
    int empty = 0;
    for (int k = 0; k < h->ndim; k++) {
        uint64_t dim = (uint64_t)h->shape[k];
        if (dim == 0) {
            empty = 1;
            continue;
        }
        if (dim > SIZE_MAX || n > SIZE_MAX / dim || (uint64_t)n * dim > INT64_MAX)
            goto overflow;
        n *= (size_t)dim;
    }
    if (n > SIZE_MAX / h->itemsize)
        goto overflow;
    h->count = empty ? 0 : n;
    h->nbytes = h->count * h->itemsize;
    return 0;
overflow:
    return dcv_errf(err, DCV_EPARSE, "shape %s overflows: too many elements",
                    shape_str(show, h->shape, h->ndim));
}

static int read_header(const unsigned char *b, size_t len, struct header *h, char *err)
{
    size_t hoff = 0, hlen = 0;
    struct dict d;
    int rc = read_preamble(b, len, &hoff, &hlen, err);
    if (rc)
        return rc;
    memset(&d, 0, sizeof d);
    struct cursor c = { (const char *)b + hoff, (const char *)b + hoff + hlen,
                        (const char *)b };
    if ((rc = scan_dict(&c, &d, err)) || (rc = check_dtype(&d, &h->itemsize, err)))
        return rc;
    h->data_off = hoff + hlen;
    h->fortran = d.fortran;
    h->ndim = d.ndim;
    memcpy(h->shape, d.shape, sizeof h->shape);
    return count_elems(h, err);
}

/* total is the size of the whole image, which may be more than was scanned. */
static int check_payload(const struct header *h, size_t total, size_t max_elems, char *err)
{
    char show[SHAPE_STRLEN];
    if (max_elems && h->count > max_elems)
        return dcv_errf(err, DCV_ETOOBIG, "array of shape %s has %zu elements, above the "
                        "limit of %zu", shape_str(show, h->shape, h->ndim), h->count,
                        max_elems);
    size_t have = total - h->data_off;
    if (have < h->nbytes)
        return dcv_errf(err, DCV_EPARSE, "truncated: expected %zu bytes of data, file has %zu",
                        h->nbytes, have);
    if (have > h->nbytes)
        return dcv_errf(err, DCV_EPARSE, "%zu trailing bytes after the %zu bytes of data",
                        have - h->nbytes, h->nbytes);
    return 0;
}

/* ---- payload ----------------------------------------------------------- */

static float load_elem(const unsigned char *p, size_t itemsize)
{
    if (itemsize == 4) {
        uint32_t u = le32(p);
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    uint64_t u = le64(p);
    double v;
    memcpy(&v, &u, sizeof v);
    /* Converting an out-of-range double to float is undefined in ISO C;
     * saturate to what IEEE round-to-nearest would give. */
    if (v >= 0x1.ffffffp127)
        return INFINITY;
    if (v <= -0x1.ffffffp127)
        return -INFINITY;
    return (float)v;
}

static void convert_c(const unsigned char *src, const struct header *h, float *dst)
{
    for (size_t i = 0; i < h->count; i++)
        dst[i] = load_elem(src + i * h->itemsize, h->itemsize);
}

/* Walks the source in Fortran order (first axis fastest) and keeps the
 * matching C-order offset incrementally, so no index math per element. */
static void convert_fortran(const unsigned char *src, const struct header *h, float *dst)
{
    size_t stride[DCV_NPY_MAX_DIMS], idx[DCV_NPY_MAX_DIMS] = { 0 }, off = 0;
    int nd = h->ndim;
    stride[nd - 1] = 1;
    for (int k = nd - 2; k >= 0; k--)
        stride[k] = stride[k + 1] * (size_t)h->shape[k + 1];
    for (size_t i = 0; i < h->count; i++) {
        dst[off] = load_elem(src + i * h->itemsize, h->itemsize);
        for (int k = 0; k < nd; k++) {
            off += stride[k];
            if (++idx[k] < (size_t)h->shape[k])
                break;
            off -= stride[k] * idx[k];
            idx[k] = 0;
        }
    }
}

int dcv_npy_parse(const void *buf, size_t len, size_t max_elems,
                  struct dcv_npy *out, char *err)
{
    struct header h;
    int rc;
    /* zeroed first so the caller may release unconditionally */
    memset(out, 0, sizeof *out);
    if (!buf && len)
        return dcv_errf(err, DCV_EINVAL, "npy: NULL buffer with length %zu", len);
    if ((rc = read_header(buf, len, &h, err)) || (rc = check_payload(&h, len, max_elems, err)))
        return rc;
    float *data = malloc((h.count ? h.count : 1) * sizeof *data);
    if (!data)
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu floats", h.count);
    const unsigned char *src = (const unsigned char *)buf + h.data_off;
    if (h.fortran && h.ndim > 1 && h.count)
        convert_fortran(src, &h, data);
    else
        convert_c(src, &h, data);
    out->ndim = h.ndim;
    memcpy(out->shape, h.shape, sizeof out->shape);
    out->count = h.count;
    out->data = data;
    return 0;
}

/* ---- files ------------------------------------------------------------- */

/* O_NONBLOCK so that a FIFO planted at the path cannot hang the open. */
static int open_regular(const char *path, size_t *size, char *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return dcv_errf(err, e == ENOENT ? DCV_ENOENT : DCV_EIO, "cannot open: %s",
                        strerror(e));
    }
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = dcv_errf(err, DCV_EIO, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = dcv_errf(err, DCV_EIO, "not a regular file");
    else if ((uintmax_t)st.st_size > SIZE_MAX)
        rc = dcv_errf(err, DCV_EIO, "file too large to read");
    if (rc) {
        close(fd);
        return rc;
    }
    *size = (size_t)st.st_size;
    return fd;
}

static int read_range(int fd, unsigned char *buf, size_t from, size_t to, char *err)
{
    while (from < to) {
        ssize_t n = read(fd, buf + from, to - from);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return dcv_errf(err, DCV_EIO, "read failed: %s", strerror(errno));
        if (n == 0)
            return dcv_errf(err, DCV_EIO, "file shrank while reading (%zu of %zu bytes)",
                            from, to);
        from += (size_t)n;
    }
    return 0;
}

/* Reads the header first and checks it against the file size and limits, so
 * only a file that will parse is read whole. */
static int read_file(int fd, size_t size, size_t max_elems, unsigned char **out, char *err)
{
    size_t first = size < PREFIX_MAX ? size : PREFIX_MAX;
    unsigned char *buf = malloc(first ? first : 1), *grown;
    struct header h;
    int rc;
    if (!buf)
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu bytes", first);
    if ((rc = read_range(fd, buf, 0, first, err)) || (rc = read_header(buf, first, &h, err)) ||
        (rc = check_payload(&h, size, max_elems, err)))
        goto out;
    if (size > first) {
        if (!(grown = realloc(buf, size))) {
            rc = dcv_errf(err, DCV_ENOMEM, "out of memory for %zu bytes", size);
            goto out;
        }
        buf = grown;
        rc = read_range(fd, buf, first, size, err);
    }
out:
    if (rc)
        free(buf);
    else
        *out = buf;
    return rc;
}

static int with_path(int rc, const char *path, char *err)
{
    char msg[DCV_ERRLEN];
    if (!err)
        return rc;
    memcpy(msg, err, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    return dcv_errf(err, rc, "%s: %s", path, msg);
}

int dcv_npy_load(const char *path, size_t max_elems, struct dcv_npy *out, char *err)
{
    unsigned char *buf = NULL;
    size_t size = 0;
    int rc;
    memset(out, 0, sizeof *out);
    int fd = open_regular(path, &size, err);
    if (fd < 0)
        return with_path(fd, path, err);
    rc = read_file(fd, size, max_elems, &buf, err);
    close(fd);
    if (!rc)
        rc = dcv_npy_parse(buf, size, max_elems, out, err);
    free(buf);
    return rc ? with_path(rc, path, err) : 0;
}

void dcv_npy_release(struct dcv_npy *npy)
{
    if (!npy)
        return;
    free(npy->data);
    npy->data = NULL;
    npy->count = 0;
}

/* ---- writer ------------------------------------------------------------ */

static int check_save_shape(const int64_t *shape, int ndim, size_t *count, char *err)
{
    if (ndim < 0 || ndim > DCV_NPY_MAX_DIMS || (ndim && !shape))
        return dcv_errf(err, DCV_EINVAL, "npy save: ndim %d outside 0..%d", ndim,
                        DCV_NPY_MAX_DIMS);
    size_t n = 1;
    int empty = 0;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0)
            return dcv_errf(err, DCV_EINVAL, "npy save: negative dimension %lld",
                            (long long)shape[k]);
        if (shape[k] == 0) {
            empty = 1;
            continue;
        }
        /* the same bound the reader applies, so every saved file loads */
        if ((uint64_t)shape[k] > SIZE_MAX / sizeof(float) / n ||
            (uint64_t)shape[k] * n > INT64_MAX)
            return dcv_errf(err, DCV_EINVAL, "npy save: shape too large");
        n *= (size_t)shape[k];
    }
    *count = empty ? 0 : n;
    return 0;
}

/* Pads like NumPy: the data starts on a 64-byte boundary for aligned mmap. */
static size_t build_header(unsigned char *dst, size_t cap, const int64_t *shape, int ndim)
{
    char show[SHAPE_STRLEN];
    char *dict = (char *)dst + 10;
    size_t n = (size_t)snprintf(dict, cap - 10,
                                "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
                                shape_str(show, shape, ndim));
    size_t total = (10 + n + 1 + 63) / 64 * 64;
    memset(dict + n, ' ', total - 10 - n - 1);
    dst[total - 1] = '\n';
    memcpy(dst, MAGIC, sizeof MAGIC);
    dst[6] = 1;
    dst[7] = 0;
    dst[8] = (unsigned char)((total - 10) & 0xff);
    dst[9] = (unsigned char)((total - 10) >> 8);
    return total;
}

static int write_floats(FILE *f, const float *data, size_t count)
{
    unsigned char chunk[4096];
    for (size_t i = 0; i < count;) {
        size_t n = count - i < sizeof chunk / 4 ? count - i : sizeof chunk / 4;
        for (size_t j = 0; j < n; j++) {
            uint32_t u;
            memcpy(&u, &data[i + j], sizeof u);
            put_le32(chunk + 4 * j, u);
        }
        if (fwrite(chunk, 4, n, f) != n)
            return -1;
        i += n;
    }
    return 0;
}

int dcv_npy_save(const char *path, const float *data, const int64_t *shape, int ndim,
                 char *err)
{
    unsigned char hdr[384];
    size_t count = 0;
    int rc = check_save_shape(shape, ndim, &count, err);
    if (rc)
        return rc;
    if (count && !data)
        return dcv_errf(err, DCV_EINVAL, "npy save: NULL data for %zu elements", count);
    size_t hlen = build_header(hdr, sizeof hdr, shape, ndim);
    FILE *f = fopen(path, "wb");
    if (!f)
        return dcv_errf(err, DCV_EIO, "%s: cannot create: %s", path, strerror(errno));
    int bad = fwrite(hdr, 1, hlen, f) != hlen || write_floats(f, data, count) != 0;
    int e = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad)
        return 0;
    unlink(path);   /* a half-written weights file is worse than none */
    return dcv_errf(err, DCV_EIO, "%s: write failed: %s", path, strerror(e));
}
