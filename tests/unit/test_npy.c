/* test_npy.c — the .npy reader against hand-built images, hostile headers
 * and files written by the real NumPy. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deconvd/error.h"
#include "deconvd/npy.h"
#include "testutil.h"

/* ---- image builders ---------------------------------------------------- */

/* Builds magic + version + length field + header + payload into a buffer of
 * exactly the image's size, so ASan catches any read past `len`. hlen is the
 * value written to the length field (normally strlen(header)). */
static unsigned char *mk_raw(int major, size_t hlen, const char *header,
                             const void *payload, size_t plen, size_t *len)
{
    size_t width = major == 1 ? 2 : 4, hsz = strlen(header);
    *len = 8 + width + hsz + plen;
    unsigned char *b = malloc(*len);
    cr_assert_not_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < width; i++)
        b[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8 + width, header, hsz);
    if (plen)
        memcpy(b + 8 + width + hsz, payload, plen);
    return b;
}

static unsigned char *mk(int major, const char *header, const void *payload, size_t plen,
                         size_t *len)
{
    return mk_raw(major, strlen(header), header, payload, plen, len);
}

/* Little-endian bytes regardless of the host. */
static void f32_le(unsigned char *dst, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            dst[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
}

static void f64_le(unsigned char *dst, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        for (int k = 0; k < 8; k++)
            dst[8 * i + k] = (unsigned char)(u >> (8 * k));
    }
}

static int parse(const unsigned char *b, size_t len, size_t max, struct dcv_npy *out,
                 char *err)
{
    memset(err, 0, DCV_ERRLEN);
    return dcv_npy_parse(b, len, max, out, err);
}

/* Parses a header with a zero-length payload expectation irrelevant: used by
 * the tables of bad headers, where the header must be refused by itself. */
static int parse_header_only(int major, const char *header, char *err)
{
    size_t len;
    unsigned char pay[64] = { 0 };
    unsigned char *b = mk(major, header, pay, sizeof pay, &len);
    struct dcv_npy a;
    int rc = parse(b, len, 0, &a, err);
    dcv_npy_release(&a);
    free(b);
    return rc;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- round trip and well-formed images --------------------------------- */

Test(npy, save_load_roundtrip)
{
    char dir[] = "/tmp/dcvnpy.XXXXXX", path[64], err[DCV_ERRLEN];
    cr_assert_not_null(tu_mkdtemp(dir));
    snprintf(path, sizeof path, "%s/w.npy", dir);
    float v[24];
    for (int i = 0; i < 24; i++)
        v[i] = (float)i * 0.25f - 1.0f;
    int64_t shape[3] = { 2, 3, 4 };
    cr_assert_eq(dcv_npy_save(path, v, shape, 3, err), 0, "%s", err);

    struct dcv_npy a;
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), 0, "%s", err);
    cr_assert_eq(a.ndim, 3);
    cr_assert_eq(a.shape[0], 2);
    cr_assert_eq(a.shape[1], 3);
    cr_assert_eq(a.shape[2], 4);
    cr_assert_eq(a.count, 24);
    for (int i = 0; i < 24; i++)
        cr_assert_eq(a.data[i], (float)i * 0.25f - 1.0f, "element %d", i);
    dcv_npy_release(&a);

    /* the header is what NumPy writes: v1.0, 64-byte aligned, '\n' last */
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    unsigned char raw[512];
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    size_t hl = (size_t)raw[8] | (size_t)raw[9] << 8;
    cr_assert_eq(raw[6], 1);
    cr_assert_eq(raw[7], 0);
    cr_assert_eq((10 + hl) % 64, 0, "header total %zu", 10 + hl);
    cr_assert_eq(n, 10 + hl + 24 * 4);
    cr_assert_eq(raw[10 + hl - 1], '\n');
    cr_assert_eq(memcmp(raw + 10, "{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (2, 3, 4), }", 61), 0);
    unlink(path);
    rmdir(dir);
}

Test(npy, save_load_0d_1d_and_empty)
{
    char dir[] = "/tmp/dcvnpy.XXXXXX", path[64], err[DCV_ERRLEN];
    cr_assert_not_null(tu_mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.npy", dir);
    struct dcv_npy a;

    float s = 2.5f;
    cr_assert_eq(dcv_npy_save(path, &s, NULL, 0, err), 0, "%s", err);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), 0, "%s", err);
    cr_assert_eq(a.ndim, 0);
    cr_assert_eq(a.count, 1);
    cr_assert_eq(a.data[0], 2.5f);
    dcv_npy_release(&a);

    float v[5] = { 1, 2, 3, 4, 5 };
    int64_t one[1] = { 5 };
    cr_assert_eq(dcv_npy_save(path, v, one, 1, err), 0, "%s", err);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), 0, "%s", err);
    cr_assert_eq(a.ndim, 1);
    cr_assert_eq(a.shape[0], 5);
    cr_assert_eq(a.count, 5);
    cr_assert_eq(a.data[4], 5.0f);
    dcv_npy_release(&a);

    int64_t empty[2] = { 0, 3 };
    cr_assert_eq(dcv_npy_save(path, NULL, empty, 2, err), 0, "%s", err);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), 0, "%s", err);
    cr_assert_eq(a.ndim, 2);
    cr_assert_eq(a.count, 0);
    cr_assert_eq(a.shape[1], 3);
    dcv_npy_release(&a);
    unlink(path);
    rmdir(dir);
}

Test(npy, versions_1_2_3)
{
    const char *hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"
                      "                                       \n";
    float v[4] = { 1.5f, -2.0f, 3.25f, 1e-3f };
    unsigned char pay[16];
    f32_le(pay, v, 4);
    char err[DCV_ERRLEN];
    for (int major = 1; major <= 3; major++) {
        size_t len;
        unsigned char *b = mk(major, hdr, pay, sizeof pay, &len);
        struct dcv_npy a;
        cr_assert_eq(parse(b, len, 0, &a, err), 0, "v%d: %s", major, err);
        cr_assert_eq(a.ndim, 2);
        cr_assert_eq(a.count, 4);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(a.data[i], v[i], "v%d element %d", major, i);
        dcv_npy_release(&a);
        free(b);
    }
}

Test(npy, header_variants_accepted)
{
    static const char *const ok[] = {
        "{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"<f4\"}",
        "{ 'fortran_order' :False ,'shape':( 3 , ) , 'descr':'<f4' , }\n",
        "{'descr':'<f4','fortran_order':True,'shape':(3,)}   \n",
        "\t{'descr': '<f4', 'fortran_order': False, 'shape': (3L,), }\r\n",
    };
    float v[3] = { 7, 8, 9 };
    unsigned char pay[12];
    f32_le(pay, v, 3);
    char err[DCV_ERRLEN];
    for (size_t t = 0; t < sizeof ok / sizeof *ok; t++) {
        size_t len;
        unsigned char *b = mk(1, ok[t], pay, sizeof pay, &len);
        struct dcv_npy a;
        cr_assert_eq(parse(b, len, 0, &a, err), 0, "header %zu: %s", t, err);
        cr_assert_eq(a.ndim, 1);
        cr_assert_eq(a.shape[0], 3);
        cr_assert_eq(a.data[2], 9.0f);
        dcv_npy_release(&a);
        free(b);
    }
}

Test(npy, f8_converted_by_rounding)
{
    double in[] = { 0.1, -2.5, 1.0 + 0x1p-24, 1.0 + 0x1.8p-23, 1e300, -1e300,
                    0x1.fffffefp127, 0x1.ffffffp127, 1e-50, NAN };
    size_t n = sizeof in / sizeof *in;
    float want[] = { 0.1f, -2.5f, 1.0f /* tie to even */, 1.0f + 0x1p-22f, INFINITY,
                     -INFINITY, FLT_MAX, INFINITY, 0.0f, NAN };
    unsigned char pay[sizeof in];
    f64_le(pay, in, n);
    char hdr[128], err[DCV_ERRLEN];
    snprintf(hdr, sizeof hdr, "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu,), }\n", n);
    size_t len;
    unsigned char *b = mk(1, hdr, pay, sizeof pay, &len);
    struct dcv_npy a;
    cr_assert_eq(parse(b, len, 0, &a, err), 0, "%s", err);
    cr_assert_eq(a.count, n);
    for (size_t i = 0; i + 1 < n; i++)
        cr_assert_eq(f_bits(a.data[i]), f_bits(want[i]), "element %zu: %a != %a", i,
                     (double)a.data[i], (double)want[i]);
    cr_assert(isnan(a.data[n - 1]));
    dcv_npy_release(&a);
    free(b);
}

Test(npy, fortran_order_2d)
{
    float v[6] = { 0, 1, 2, 3, 4, 5 };
    unsigned char pay[24];
    f32_le(pay, v, 6);
    size_t len;
    unsigned char *b = mk(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n",
                          pay, sizeof pay, &len);
    char err[DCV_ERRLEN];
    struct dcv_npy a;
    cr_assert_eq(parse(b, len, 0, &a, err), 0, "%s", err);
    const float want[6] = { 0, 2, 4, 1, 3, 5 };
    for (int i = 0; i < 6; i++)
        cr_assert_eq(a.data[i], want[i], "element %d: %g", i, (double)a.data[i]);
    dcv_npy_release(&a);
    free(b);
}

/* Fortran payload value = its Fortran linear index; C element [i][j][k] of
 * shape (2,3,4) must then hold i + 2*j + 6*k. */
Test(npy, fortran_order_3d_f8)
{
    double v[24];
    for (int i = 0; i < 24; i++)
        v[i] = i;
    unsigned char pay[sizeof v];
    f64_le(pay, v, 24);
    size_t len;
    unsigned char *b = mk(2, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3, 4)}",
                          pay, sizeof pay, &len);
    char err[DCV_ERRLEN];
    struct dcv_npy a;
    cr_assert_eq(parse(b, len, 0, &a, err), 0, "%s", err);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                cr_assert_eq(a.data[i * 12 + j * 4 + k], (float)(i + 2 * j + 6 * k),
                             "[%d][%d][%d]", i, j, k);
    dcv_npy_release(&a);
    free(b);
}

Test(npy, shapes_0d_1d)
{
    char err[DCV_ERRLEN];
    float s = -4.75f;
    unsigned char pay[20];
    f32_le(pay, &s, 1);
    size_t len;
    unsigned char *b = mk(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (), }\n",
                          pay, 4, &len);
    struct dcv_npy a;
    cr_assert_eq(parse(b, len, 0, &a, err), 0, "%s", err);
    cr_assert_eq(a.ndim, 0);
    cr_assert_eq(a.count, 1);
    cr_assert_eq(a.data[0], -4.75f);
    dcv_npy_release(&a);
    free(b);

    float v[5] = { 1, 2, 3, 4, 5 };
    f32_le(pay, v, 5);
    b = mk(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (5,), }\n", pay, 20, &len);
    cr_assert_eq(parse(b, len, 0, &a, err), 0, "%s", err);
    cr_assert_eq(a.ndim, 1);
    cr_assert_eq(a.shape[0], 5);
    cr_assert_eq(a.data[3], 4.0f);
    dcv_npy_release(&a);
    free(b);

    /* "(5)" is an int in Python, not a tuple */
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (5), }\n", err), DCV_EPARSE);
    cr_assert(strstr(err, "not a tuple"), "%s", err);
}

/* ---- refused images ---------------------------------------------------- */

Test(npy, truncated_payload)
{
    unsigned char pay[20] = { 0 };
    size_t len;
    unsigned char *b = mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
                          pay, sizeof pay, &len);
    char err[DCV_ERRLEN];
    struct dcv_npy a;
    cr_assert_eq(parse(b, len, 0, &a, err), DCV_EPARSE);
    cr_assert_str_eq(err, "truncated: expected 24 bytes of data, file has 20");
    cr_assert_null(a.data);
    free(b);
}

Test(npy, trailing_bytes)
{
    unsigned char pay[28] = { 0 };
    size_t len;
    unsigned char *b = mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
                          pay, sizeof pay, &len);
    char err[DCV_ERRLEN];
    struct dcv_npy a;
    cr_assert_eq(parse(b, len, 0, &a, err), DCV_EPARSE);
    cr_assert(strstr(err, "4 trailing bytes"), "%s", err);
    free(b);
}

Test(npy, header_length_past_end)
{
    const char *hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n";
    unsigned char pay[4] = { 0 };
    char err[DCV_ERRLEN];
    struct dcv_npy a;
    size_t len;
    unsigned char *b = mk_raw(1, strlen(hdr) + 5, hdr, pay, sizeof pay, &len);
    cr_assert_eq(parse(b, len, 0, &a, err), DCV_EPARSE);
    cr_assert(strstr(err, "runs past the end"), "%s", err);
    free(b);

    b = mk_raw(2, 0xffffffffu, hdr, pay, sizeof pay, &len);
    cr_assert_eq(parse(b, len, 0, &a, err), DCV_EPARSE);
    cr_assert(strstr(err, "header length 4294967295"), "%s", err);
    free(b);

    b = mk_raw(1, 0xffffu, hdr, pay, sizeof pay, &len);
    cr_assert_eq(parse(b, len, 0, &a, err), DCV_EPARSE);
    free(b);
}

/* Every strict prefix of a valid image must be refused without reading past
 * the prefix (each lives in its own exact-size allocation for ASan). */
Test(npy, every_prefix_refused)
{
    float v[3] = { 1, 2, 3 };
    unsigned char pay[12];
    f32_le(pay, v, 3);
    size_t len;
    unsigned char *b = mk(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n",
                          pay, sizeof pay, &len);
    char err[DCV_ERRLEN];
    struct dcv_npy a;
    for (size_t n = 0; n < len; n++) {
        unsigned char *p = malloc(n ? n : 1);
        cr_assert_not_null(p);
        memcpy(p, b, n);
        cr_assert_eq(parse(p, n, 0, &a, err), DCV_EPARSE, "prefix %zu: %s", n, err);
        cr_assert_null(a.data);
        free(p);
    }
    cr_assert_eq(parse(b, len, 0, &a, err), 0, "%s", err);
    dcv_npy_release(&a);
    free(b);
}

Test(npy, bad_magic_and_version)
{
    unsigned char pay[4] = { 0 };
    size_t len;
    unsigned char *b = mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n",
                          pay, sizeof pay, &len);
    char err[DCV_ERRLEN];
    struct dcv_npy a;
    b[1] = 'n';
    cr_assert_eq(parse(b, len, 0, &a, err), DCV_EPARSE);
    cr_assert(strstr(err, "magic"), "%s", err);
    b[1] = 'N';
    b[6] = 4;
    cr_assert_eq(parse(b, len, 0, &a, err), DCV_EUNSUPP);
    cr_assert(strstr(err, "version 4.0"), "%s", err);
    b[6] = 0;
    cr_assert_eq(parse(b, len, 0, &a, err), DCV_EUNSUPP);
    b[6] = 1;
    b[7] = 1;
    cr_assert_eq(parse(b, len, 0, &a, err), DCV_EUNSUPP);
    free(b);

    static const char text[] = "{'descr': '<f4'}";
    cr_assert_eq(parse((const unsigned char *)text, sizeof text - 1, 0, &a, err), DCV_EPARSE);
}

Test(npy, unsupported_dtypes)
{
    static const char *const descr[] = {
        "'>f4'", "'<i4'", "'<f2'", "'|b1'", "'|f4'", "'=f4'", "'<c8'", "'<f16'",
        "'f4'", "'float32'", "''", "'<f4 '",
    };
    char hdr[256], err[DCV_ERRLEN];
    for (size_t t = 0; t < sizeof descr / sizeof *descr; t++) {
        snprintf(hdr, sizeof hdr,
                 "{'descr': %s, 'fortran_order': False, 'shape': (2,), }\n", descr[t]);
        cr_assert_eq(parse_header_only(1, hdr, err), DCV_EUNSUPP, "%s: %s", descr[t], err);
        char quoted[32];
        snprintf(quoted, sizeof quoted, "dtype %s", descr[t]);
        cr_assert(strstr(err, quoted), "%s missing from: %s", descr[t], err);
        cr_assert(strstr(err, "'<f4' and '<f8' are supported"), "%s", err);
    }
    cr_assert_eq(parse_header_only(1, "{'descr': [('a', '<f4'), ('b', '<i4', (2,))], "
                                      "'fortran_order': False, 'shape': (2,), }\n", err),
                 DCV_EUNSUPP);
    cr_assert(strstr(err, "structured"), "%s", err);
    cr_assert(strstr(err, "'<f4' and '<f8' are supported"), "%s", err);
}

Test(npy, hostile_shapes)
{
    char err[DCV_ERRLEN];
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (4294967296, 4294967296, 16), }\n", err),
                 DCV_EPARSE);
    cr_assert(strstr(err, "overflows"), "%s", err);
    /* fits in size_t as elements, not as bytes */
    cr_assert_eq(parse_header_only(1, "{'descr': '<f8', 'fortran_order': False, "
                                      "'shape': (4611686018427387904,), }\n", err),
                 DCV_EPARSE);
    cr_assert(strstr(err, "overflows"), "%s", err);
    /* a zero dimension does not excuse an overflowing product */
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (0, 4294967296, 4294967296, 16), }\n", err),
                 DCV_EPARSE);
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (9223372036854775808,), }\n", err),
                 DCV_EPARSE);
    cr_assert(strstr(err, "out of range"), "%s", err);
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (2, -3), }\n", err),
                 DCV_EPARSE);
    cr_assert(strstr(err, "negative dimension -3"), "%s", err);
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }\n", err),
                 DCV_EUNSUPP);
    cr_assert(strstr(err, "more than 8 dimensions"), "%s", err);
}

Test(npy, max_elems)
{
    float v[10] = { 0 };
    unsigned char pay[40];
    f32_le(pay, v, 10);
    size_t len;
    unsigned char *b = mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }\n",
                          pay, sizeof pay, &len);
    char err[DCV_ERRLEN];
    struct dcv_npy a;
    cr_assert_eq(parse(b, len, 9, &a, err), DCV_ETOOBIG);
    cr_assert(strstr(err, "10 elements"), "%s", err);
    cr_assert_null(a.data);
    cr_assert_eq(parse(b, len, 10, &a, err), 0, "%s", err);
    dcv_npy_release(&a);
    free(b);

    /* refused on the declared shape, before the payload is looked at or any
     * buffer is sized from it */
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (1000000000000,), }\n", err), DCV_EPARSE);
    b = mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }\n",
           pay, sizeof pay, &len);
    cr_assert_eq(parse(b, len, 100, &a, err), DCV_ETOOBIG, "%s", err);
    free(b);
}

Test(npy, bad_headers)
{
    static const char *const bad[] = {
        "{'descr': '<f4', 'fortran_order': False}\n",
        "{'descr': '<f4', 'shape': (1,)}\n",
        "{'fortran_order': False, 'shape': (1,)}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}\n",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)\n",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}\n",
        "{'descr': '<f4', 'fortran_order': Flase, 'shape': (1,)}\n",
        "{'descr': '<f4', 'fortran_order': Truely, 'shape': (1,)}\n",
        "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (,)}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1.0,)}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1 1)}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x\n",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}\n",
        "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,)}\n",
        "{descr: '<f4', 'fortran_order': False, 'shape': (1,)}\n",
        "{, 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n",
        "{'descr': '<f4',, 'fortran_order': False, 'shape': (1,)}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
        "{'descr': [('a', '<f4'), 'fortran_order': False, 'shape': (1,)}",
        "'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n",
        "",
        "\n",
    };
    char err[DCV_ERRLEN];
    for (size_t t = 0; t < sizeof bad / sizeof *bad; t++) {
        int rc = parse_header_only(1, bad[t], err);
        cr_assert_eq(rc, DCV_EPARSE, "header %zu gave %d: %s", t, rc, err);
        cr_assert_neq(err[0], '\0', "header %zu: no message", t);
    }
}

Test(npy, missing_keys_named)
{
    char err[DCV_ERRLEN];
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, }\n", err),
                 DCV_EPARSE);
    cr_assert_str_eq(err, "header has no 'shape' key");
    cr_assert_eq(parse_header_only(3, "{'shape': (1,), 'descr': '<f4'}\n", err), DCV_EPARSE);
    cr_assert_str_eq(err, "header has no 'fortran_order' key");
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (1,), 'Shape': (1,)}\n", err), DCV_EPARSE);
    cr_assert(strstr(err, "unknown key 'Shape'"), "%s", err);
}

/* Untrusted bytes must not reach a message raw. */
Test(npy, messages_sanitised)
{
    char err[DCV_ERRLEN];
    cr_assert_eq(parse_header_only(1, "{'descr': '\x1b[31m', 'fortran_order': False, "
                                      "'shape': (1,)}\n", err), DCV_EUNSUPP);
    cr_assert_null(strchr(err, '\x1b'), "%s", err);
    cr_assert(strstr(err, "'?[31m'"), "%s", err);
    cr_assert_eq(parse_header_only(1, "{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (1,), 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa': 1}\n",
                                   err), DCV_EPARSE);
    cr_assert(strstr(err, "...'"), "%s", err);
    cr_assert_lt(strlen(err), 160, "%s", err);
}

Test(npy, null_err_and_release)
{
    float v[2] = { 1, 2 };
    unsigned char pay[8];
    f32_le(pay, v, 2);
    size_t len;
    unsigned char *b = mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n",
                          pay, sizeof pay, &len);
    struct dcv_npy a;
    cr_assert_eq(dcv_npy_parse(b, len - 1, 0, &a, NULL), DCV_EPARSE);
    cr_assert_eq(dcv_npy_parse(b, len, 0, &a, NULL), 0);
    cr_assert_eq(a.data[1], 2.0f);
    dcv_npy_release(&a);
    cr_assert_null(a.data);
    dcv_npy_release(&a);
    struct dcv_npy z;
    memset(&z, 0, sizeof z);
    dcv_npy_release(&z);
    dcv_npy_release(NULL);
    cr_assert_eq(dcv_npy_load("/nonexistent/x.npy", 0, &a, NULL), DCV_ENOENT);
    free(b);
}

/* ---- files ------------------------------------------------------------- */

Test(npy, load_errors)
{
    char dir[] = "/tmp/dcvnpy.XXXXXX", path[64], err[DCV_ERRLEN];
    struct dcv_npy a;
    cr_assert_not_null(tu_mkdtemp(dir));

    snprintf(path, sizeof path, "%s/missing.npy", dir);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), DCV_ENOENT);
    cr_assert(strstr(err, path) && strstr(err, "No such file"), "%s", err);

    cr_assert_eq(dcv_npy_load(dir, 0, &a, err), DCV_EIO, "%s", err);
    cr_assert(strstr(err, "not a regular file"), "%s", err);

    /* a FIFO must be refused without blocking in open() */
    snprintf(path, sizeof path, "%s/fifo.npy", dir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), DCV_EIO, "%s", err);
    unlink(path);

    snprintf(path, sizeof path, "%s/trunc.npy", dir);
    unsigned char pay[8] = { 0 };
    size_t len;
    unsigned char *b = mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n",
                          pay, sizeof pay, &len);
    cr_assert_eq(tu_write_file(path, b, len), 0);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), DCV_EPARSE);
    cr_assert(strstr(err, path) && strstr(err, "truncated: expected 12 bytes of data, file has 8"),
              "%s", err);
    free(b);

    cr_assert_eq(tu_write_file(path, "", 0), 0);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), DCV_EPARSE, "%s", err);
    unlink(path);

    float s = 1;
    snprintf(path, sizeof path, "%s/no/such/dir.npy", dir);
    cr_assert_eq(dcv_npy_save(path, &s, NULL, 0, err), DCV_EIO);
    cr_assert(strstr(err, path), "%s", err);
    int64_t neg[1] = { -1 };
    cr_assert_eq(dcv_npy_save(path, &s, neg, 1, err), DCV_EINVAL);
    cr_assert_eq(dcv_npy_save(path, &s, neg, DCV_NPY_MAX_DIMS + 1, err), DCV_EINVAL);
    rmdir(dir);
}

/* A file whose header declares far more data than max_elems allows is
 * refused from its header, whatever its size on disk. */
Test(npy, load_checks_limit_from_header)
{
    char dir[] = "/tmp/dcvnpy.XXXXXX", path[64], err[DCV_ERRLEN];
    cr_assert_not_null(tu_mkdtemp(dir));
    snprintf(path, sizeof path, "%s/big.npy", dir);
    size_t n = 100000;
    float *v = calloc(n, sizeof *v);
    cr_assert_not_null(v);
    int64_t shape[1] = { (int64_t)n };
    cr_assert_eq(dcv_npy_save(path, v, shape, 1, err), 0, "%s", err);
    struct dcv_npy a;
    cr_assert_eq(dcv_npy_load(path, 1000, &a, err), DCV_ETOOBIG);
    cr_assert(strstr(err, "100000 elements") && strstr(err, "limit of 1000"), "%s", err);
    cr_assert_null(a.data);
    cr_assert_eq(dcv_npy_load(path, n, &a, err), 0, "%s", err);
    cr_assert_eq(a.count, n);
    dcv_npy_release(&a);

    /* a large file whose header is inconsistent with its size */
    FILE *f = fopen(path, "ab");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite("xy", 1, 2, f), 2);
    fclose(f);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), DCV_EPARSE);
    cr_assert(strstr(err, "2 trailing bytes"), "%s", err);
    free(v);
    unlink(path);
    rmdir(dir);
}

/* ---- interoperability with NumPy --------------------------------------- */

static int run(const char *cmd)
{
    int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *const make_script =
    "import sys, numpy as np\n"
    "from numpy.lib import format as F\n"
    "d = sys.argv[1]\n"
    "np.save(d + '/c32.npy', (np.arange(24, dtype=np.float32) * 0.5 - 3).reshape(2, 3, 4))\n"
    "a = np.asfortranarray((np.arange(60, dtype=np.float64) * 0.5 - 3).reshape(3, 4, 5))\n"
    "assert a.flags.f_contiguous and not a.flags.c_contiguous\n"
    "np.save(d + '/f64f.npy', a)\n"
    "np.save(d + '/s0.npy', np.array(-1.25, dtype=np.float32))\n"
    "for v in (2, 3):\n"
    "    with open(d + '/v%d.npy' % v, 'wb') as f:\n"
    "        F.write_array(f, np.arange(6, dtype=np.float32).reshape(3, 2) * 0.5 - 3,\n"
    "                      version=(v, 0))\n"
    "np.save(d + '/i32.npy', np.arange(4, dtype=np.int32))\n"
    "np.save(d + '/be.npy', np.arange(4, dtype='>f4'))\n";

static const char *const check_script =
    "import sys, numpy as np\n"
    "a = np.load(sys.argv[1])\n"
    "assert a.dtype == np.float32 and a.shape == (4, 3), (a.dtype, a.shape)\n"
    "assert (a.ravel() == np.arange(12) * 0.5 - 3).all()\n";

static void write_script(const char *path, const char *text)
{
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0);
}

static void expect_arange(const char *path, int ndim, const int64_t *shape, size_t n)
{
    char err[DCV_ERRLEN];
    struct dcv_npy a;
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), 0, "%s", err);
    cr_assert_eq(a.ndim, ndim, "%s", path);
    for (int k = 0; k < ndim; k++)
        cr_assert_eq(a.shape[k], shape[k], "%s dim %d", path, k);
    cr_assert_eq(a.count, n, "%s", path);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(a.data[i], (float)((double)i * 0.5 - 3.0), "%s element %zu: %g", path, i,
                     (double)a.data[i]);
    dcv_npy_release(&a);
}

Test(npy, real_numpy_files)
{
    char cmd[512], dir[] = "/tmp/dcvnpy.XXXXXX", path[96], err[DCV_ERRLEN];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy' >/dev/null 2>&1", tu_python());
    if (run(cmd) != 0)
        cr_skip_test("%s with numpy not available (install python3-numpy)", tu_python());
    cr_assert_not_null(tu_mkdtemp(dir));
    snprintf(path, sizeof path, "%s/make.py", dir);
    write_script(path, make_script);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", tu_python(), path, dir);
    cr_assert_eq(run(cmd), 0, "numpy script failed: %s", cmd);

    snprintf(path, sizeof path, "%s/c32.npy", dir);
    expect_arange(path, 3, (const int64_t[]){ 2, 3, 4 }, 24);
    snprintf(path, sizeof path, "%s/f64f.npy", dir);
    expect_arange(path, 3, (const int64_t[]){ 3, 4, 5 }, 60);
    snprintf(path, sizeof path, "%s/v2.npy", dir);
    expect_arange(path, 2, (const int64_t[]){ 3, 2 }, 6);
    snprintf(path, sizeof path, "%s/v3.npy", dir);
    expect_arange(path, 2, (const int64_t[]){ 3, 2 }, 6);

    struct dcv_npy a;
    snprintf(path, sizeof path, "%s/s0.npy", dir);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), 0, "%s", err);
    cr_assert_eq(a.ndim, 0);
    cr_assert_eq(a.count, 1);
    cr_assert_eq(a.data[0], -1.25f);
    dcv_npy_release(&a);

    snprintf(path, sizeof path, "%s/i32.npy", dir);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), DCV_EUNSUPP);
    cr_assert(strstr(err, "'<i4'"), "%s", err);
    snprintf(path, sizeof path, "%s/be.npy", dir);
    cr_assert_eq(dcv_npy_load(path, 0, &a, err), DCV_EUNSUPP);
    cr_assert(strstr(err, "'>f4'"), "%s", err);

    /* and NumPy reads what dcv_npy_save writes */
    float v[12];
    for (int i = 0; i < 12; i++)
        v[i] = (float)i * 0.5f - 3.0f;
    snprintf(path, sizeof path, "%s/ours.npy", dir);
    cr_assert_eq(dcv_npy_save(path, v, (const int64_t[]){ 4, 3 }, 2, err), 0, "%s", err);
    char script[96];
    snprintf(script, sizeof script, "%s/check.py", dir);
    write_script(script, check_script);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", tu_python(), script, path);
    cr_assert_eq(run(cmd), 0, "numpy rejected our file: %s", cmd);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(run(cmd), 0);
}
