/* test_tensor.c — request decoding (KServe v2 JSON and binary, TF Serving,
 * plain tensors), the side table and its markers, limits, error messages,
 * and the response encoders read back through the JSON layer. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/floatcodec.h"
#include "deconvd/json.h"
#include "deconvd/buf.h"
#include "deconvd/tensor.h"

#include "testutil.h"

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Any finite float32, subnormals and -0 included. */
static float rnd_float(void)
{
    for (;;) {
        uint32_t b = rnd32();
        float f;
        memcpy(&f, &b, sizeof f);
        if (isfinite(f))
            return f;
    }
}

static uint32_t bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* Text builder over open_memstream. */
struct sb {
    FILE *f;
    char *p;
    size_t len;
};

static void sb_open(struct sb *b)
{
    b->p = NULL;
    b->len = 0;
    b->f = open_memstream(&b->p, &b->len);
    cr_assert_not_null(b->f);
}

static char *sb_close(struct sb *b, size_t *len)
{
    fclose(b->f);
    if (len)
        *len = b->len;
    return b->p;
}

static void sb_floats(struct sb *b, const float *v, size_t n)
{
    char num[DCV_FLOAT_MAXLEN + 1];
    fputc('[', b->f);
    for (size_t i = 0; i < n; i++) {
        dcv_float_format(v[i], num);
        fprintf(b->f, i ? ",%s" : "%s", num);
    }
    fputc(']', b->f);
}

/* Nested by shape, row-major. */
static void sb_nested(struct sb *b, const float *v, const int64_t *shape, int ndim)
{
    if (ndim == 1) {
        sb_floats(b, v, (size_t)shape[0]);
        return;
    }
    size_t inner = 1;
    for (int d = 1; d < ndim; d++)
        inner *= (size_t)shape[d];
    fputc('[', b->f);
    for (int64_t i = 0; i < shape[0]; i++) {
        if (i)
            fputc(',', b->f);
        sb_nested(b, v + (size_t)i * inner, shape + 1, ndim - 1);
    }
    fputc(']', b->f);
}

static float *rnd_floats(size_t n)
{
    float *v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = rnd_float();
    return v;
}

/* Decodes a KServe body from a writable copy of text. */
static int kserve(const char *text, struct dcv_infer_request *req, char *err)
{
    size_t len = strlen(text);
    char *body = malloc(len + 1);
    memcpy(body, text, len + 1);
    int rc = dcv_tensor_decode_kserve(body, len, 0, NULL, req, err);
    free(body);
    return rc;
}

static int tfs(const char *text, struct dcv_infer_request *req, bool *rows, char *err)
{
    size_t len = strlen(text);
    char *body = malloc(len + 1);
    memcpy(body, text, len + 1);
    int rc = dcv_tensor_decode_tfserving(body, len, NULL, req, rows, err);
    free(body);
    return rc;
}

/* {"inputs":[{"name":"x","shape":SHAPE,"datatype":DT,"data":DATA}]} */
static char *kbody(const char *dt, const char *shape, const char *data)
{
    struct sb b;
    sb_open(&b);
    fprintf(b.f, "{\"inputs\":[{\"name\":\"x\",\"shape\":%s,\"datatype\":\"%s\",\"data\":%s}]}",
            shape, dt, data);
    return sb_close(&b, NULL);
}

static int kserve_dt(const char *dt, const char *shape, const char *data,
                     struct dcv_infer_request *req, char *err)
{
    char *body = kbody(dt, shape, data);
    int rc = kserve(body, req, err);
    free(body);
    return rc;
}

static void assert_floats(const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(bits(got[i]), bits(want[i]), "value %zu: got %.9g (0x%08x), want %.9g (0x%08x)",
                     i, got[i], bits(got[i]), want[i], bits(want[i]));
}

static void assert_shape(const struct dcv_tensor *t, int ndim, const int64_t *dims)
{
    cr_assert_eq(t->ndim, ndim, "ndim %d, want %d", t->ndim, ndim);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        cr_assert_eq(t->shape[i], dims[i], "dim %d: %lld vs %lld", i, (long long)t->shape[i],
                     (long long)dims[i]);
        count *= (size_t)dims[i];
    }
    cr_assert_eq(t->count, count);
}

/* ---- KServe JSON: FP32 -------------------------------------------------- */

Test(tensor, kserve_small_flat_and_nested)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    const float want[] = { 1, -2.5f, 0.1f, 3e-5f };
    const int64_t dims[] = { 2, 2 };

    cr_assert_eq(kserve_dt("FP32", "[2,2]", "[1,-2.5,0.1,3e-5]", &req, err), 0, "%s", err);
    assert_shape(&req.input, 2, dims);
    assert_floats(req.input.data, want, 4);
    cr_assert_str_eq(req.input_name, "x");
    cr_assert(!req.has_id && !req.binary_output && !req.output_requested);
    dcv_infer_request_release(&req);
    cr_assert_null(req.input.data);

    cr_assert_eq(kserve_dt("FP32", "[2,2]", "[[1,-2.5],[0.1,3e-5]]", &req, err), 0, "%s", err);
    assert_floats(req.input.data, want, 4);
    dcv_infer_request_release(&req);
}

Test(tensor, kserve_large_flat_goes_through_side_table)
{
    const size_t n = 100000;
    float *v = rnd_floats(n);
    struct sb b;
    sb_open(&b);
    fprintf(b.f, "{\"id\":\"big\",\"inputs\":[{\"name\":\"in\",\"datatype\":\"FP32\","
                 "\"shape\":[1,100000],\"data\":");
    sb_floats(&b, v, n);
    fputs("}]}", b.f);
    size_t len;
    char *body = sb_close(&b, &len);

    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_tensor_decode_kserve(body, len, 0, NULL, &req, err), 0, "%s", err);
    const int64_t dims[] = { 1, 100000 };
    assert_shape(&req.input, 2, dims);
    assert_floats(req.input.data, v, n);
    cr_assert_str_eq(req.id, "big");
    /* the array text was blanked in place and replaced by a marker */
    cr_assert_not_null(strstr(body, "\"#dcv:"));
    cr_assert_lt(strlen(body), len + 1);
    dcv_infer_request_release(&req);
    free(body);
    free(v);
}

Test(tensor, kserve_large_nested_4d)
{
    const int64_t shape[] = { 1, 32, 32, 128 };
    const size_t n = 32 * 32 * 128;
    float *v = rnd_floats(n);
    struct sb b;
    sb_open(&b);
    fputs("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,32,32,128],\"datatype\":\"FP32\",\"data\":",
          b.f);
    sb_nested(&b, v, shape, 4);
    fputs("}],\"outputs\":[{\"name\":\"output\"}]}", b.f);
    size_t len;
    char *body = sb_close(&b, &len);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_tensor_decode_kserve(body, len, 0, NULL, &req, err), 0, "%s", err);
    assert_shape(&req.input, 4, shape);
    assert_floats(req.input.data, v, n);
    cr_assert(req.output_requested);
    dcv_infer_request_release(&req);
    free(body);
    free(v);
}

Test(tensor, kserve_count_mismatch_names_expected_and_received)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    /* large: side table */
    float *v = rnd_floats(4095);
    struct sb b;
    sb_open(&b);
    sb_floats(&b, v, 4095);
    char *data = sb_close(&b, NULL);
    int rc = kserve_dt("FP32", "[1,8,8,64]", data, &req, err);
    assert_err(rc, DCV_ESHAPE, err, "expected 4096 values for shape [1,8,8,64], got 4095");
    cr_assert_null(req.input.data);
    free(data);
    free(v);
    /* small: tree */
    rc = kserve_dt("FP32", "[2,2]", "[1,2,3]", &req, err);
    assert_err(rc, DCV_ESHAPE, err, "expected 4 values for shape [2,2], got 3");
    rc = kserve_dt("FP32", "[2,2]", "[[1,2],[3,4],[5,6]]", &req, err);
    assert_err(rc, DCV_ESHAPE, err, "got 6");
}

/* ---- KServe JSON: every datatype ----------------------------------------- */

struct dt_case {
    const char *dt, *shape, *data;
    float want[4];
};

Test(tensor, kserve_json_datatypes)
{
    static const struct dt_case cases[] = {
        { "FP32", "[3]", "[1.5,-2.25,0.1]", { 1.5f, -2.25f, 0.1f } },
        { "FP64", "[2]", "[0.1,-1e-3]", { 0.1f, -1e-3f } },
        { "FP16", "[4]", "[0.1,65504,1e-7,-2]", { 0.0999755859375f, 65504.0f, 0x1p-23f, -2 } },
        { "BF16", "[3]", "[0.1,1,-3.3895314e38]", { 0.10009765625f, 1, -3.3895313892515355e38f } },
        { "INT8", "[2]", "[-128,127]", { -128, 127 } },
        { "INT16", "[2]", "[-32768,32767]", { -32768, 32767 } },
        { "INT32", "[2]", "[-2147483648,2147483647]", { -2147483648.0f, 2147483648.0f } },
        { "INT64", "[2]", "[-123456789012,0]", { -123456789012.0f, 0 } },
        { "UINT8", "[2]", "[0,255]", { 0, 255 } },
        { "UINT16", "[1]", "[65535]", { 65535 } },
        { "UINT32", "[1]", "[4294967295]", { 4294967296.0f } },
        { "UINT64", "[2]", "[18446744073709551615,7]", { 18446744073709551616.0f, 7 } },
        { "BOOL", "[3]", "[true,false,true]", { 1, 0, 1 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct dt_case *c = &cases[i];
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        cr_assert_eq(kserve_dt(c->dt, c->shape, c->data, &req, err), 0, "%s: %s", c->dt, err);
        for (size_t k = 0; k < req.input.count; k++)
            cr_assert_eq(bits(req.input.data[k]), bits(c->want[k]), "%s value %zu: %.9g vs %.9g",
                         c->dt, k, req.input.data[k], c->want[k]);
        dcv_infer_request_release(&req);
    }
}

struct dt_error {
    const char *dt, *data, *sub;
};

Test(tensor, kserve_json_datatype_errors)
{
    static const struct dt_error cases[] = {
        { "INT8", "[1,128]", "value 1 (128) is outside the INT8 range [-128, 127]" },
        { "INT8", "[-129,0]", "outside the INT8 range" },
        { "UINT8", "[-1,0]", "outside the UINT8 range [0, 255]" },
        { "UINT16", "[65536,0]", "outside the UINT16 range" },
        { "INT16", "[0,32768]", "value 1" },
        { "INT32", "[1.5,0]", "value 0 (1.5) is not an integer, as INT32 requires" },
        { "INT64", "[0,1e300]", "outside the INT64 range" },
        { "UINT64", "[0,-3]", "outside the UINT64 range" },
        { "BOOL", "[1,0]", "expected true or false for BOOL, got number" },
        { "FP32", "[true,false]", "expected a number for FP32, got boolean" },
        { "FP16", "[1,70000]", "value 1 (70000) is outside the FP16 range [-65504, 65504]" },
        { "BF16", "[0,1e39]", "value 1 (1e+39) is outside the BF16 range" },
        { "FP32", "[1,\"abc\"]", "value 1: expected a number for FP32, got string" },
        { "FP32", "[null,1]", "value 0: expected a number for FP32, got null" },
        { "FP32", "[1,{}]", "got object" },
        { "FP32", "[1,1e999]", "value 1 (inf) is not a finite float32" },
        { "FP32", "[1e39,1]", "not a finite float32" },
        { "FP32", "[1,NaN]", "value 1 is NaN" },
        { "FP32", "[Infinity,0]", "value 0 is Infinity" },
        { "FP32", "[0,-Infinity]", "value 1 is -Infinity" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        int rc = kserve_dt(cases[i].dt, "[2]", cases[i].data, &req, err);
        assert_err(rc, DCV_EINVAL, err, cases[i].sub);
        cr_assert_null(req.input.data);
    }
}

/* Long arrays come from the side table: the same checks must apply. */
Test(tensor, kserve_large_integer_and_half_arrays)
{
    const size_t n = 3000;
    struct sb b;
    sb_open(&b);
    fputc('[', b.f);
    for (size_t i = 0; i < n; i++)
        fprintf(b.f, i ? ",%d" : "%d", (int)(i % 65536) - 32768);
    fputc(']', b.f);
    char *data = sb_close(&b, NULL);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(kserve_dt("INT16", "[3000]", data, &req, err), 0, "%s", err);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(req.input.data[i], (float)((int)(i % 65536) - 32768));
    dcv_infer_request_release(&req);
    assert_err(kserve_dt("INT8", "[3000]", data, &req, err), DCV_EINVAL, err,
               "value 0 (-32768) is outside the INT8 range");
    assert_err(kserve_dt("BOOL", "[3000]", data, &req, err), DCV_EINVAL, err,
               "expected true or false");
    free(data);

    /* a fraction deep inside a long INT32 array */
    sb_open(&b);
    fputc('[', b.f);
    for (size_t i = 0; i < n; i++)
        if (i == 2000)
            fputs(",7.25", b.f);
        else
            fprintf(b.f, i ? ",%zu" : "%zu", i);
    fputc(']', b.f);
    data = sb_close(&b, NULL);
    assert_err(kserve_dt("INT32", "[3000]", data, &req, err), DCV_EINVAL, err,
               "value 2000 (7.25) is not an integer");
    /* the same text as FP16: rounded like numpy's astype(float16) */
    cr_assert_eq(kserve_dt("FP16", "[3000]", data, &req, err), 0, "%s", err);
    cr_assert_eq(req.input.data[2000], 7.25f);
    cr_assert_eq(req.input.data[2049], 2048.0f); /* 2049 is a tie: to even */
    cr_assert_eq(req.input.data[2051], 2052.0f); /* 2051 is a tie: to even */
    dcv_infer_request_release(&req);
    free(data);
}

Test(tensor, kserve_large_non_finite_refused)
{
    static const char *bad[] = { "NaN", "Infinity", "-Infinity", "1e999", "-3.5e38" };
    static const char *sub[] = { "\"data\" value 1500 is NaN", "\"data\" value 1500 is Infinity",
                                 "\"data\" value 1500 is -Infinity",
                                 "input 'x' value 1500 (inf) is not a finite float32",
                                 "input 'x' value 1500 (-3.5e+38) is not a finite float32" };
    for (int k = 0; k < 5; k++) {
        struct sb b;
        sb_open(&b);
        fputc('[', b.f);
        for (int i = 0; i < 2000; i++)
            if (i == 1500)
                fprintf(b.f, ",%s", bad[k]);
            else
                fprintf(b.f, i ? ",%d.5" : "%d.5", i);
        fputc(']', b.f);
        char *data = sb_close(&b, NULL);
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        assert_err(kserve_dt("FP32", "[2000]", data, &req, err), DCV_EINVAL, err, sub[k]);
        free(data);
    }
}

Test(tensor, kserve_large_strings_and_nulls_refused)
{
    struct sb b;
    sb_open(&b);
    fputc('[', b.f);
    for (int i = 0; i < 2000; i++)
        if (i == 1234)
            fputs(",null", b.f);
        else
            fprintf(b.f, i ? ",%d" : "%d", i);
    fputc(']', b.f);
    char *data = sb_close(&b, NULL);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    assert_err(kserve_dt("FP32", "[2000]", data, &req, err), DCV_EINVAL, err,
               "value 1234: expected a number for FP32, got null");
    free(data);
}

/* ---- KServe binary ------------------------------------------------------ */

/* JSON header for one binary input, then the payload bytes. */
static char *bin_body(const char *dt, const char *shape, size_t declared, const void *payload,
                      size_t plen, const char *extra, size_t *len, size_t *hlen)
{
    struct sb b;
    sb_open(&b);
    fprintf(b.f, "{%s\"inputs\":[{\"name\":\"b\",\"shape\":%s,\"datatype\":\"%s\","
                 "\"parameters\":{\"binary_data_size\":%zu}}]}",
            extra ? extra : "", shape, dt, declared);
    fflush(b.f);
    *hlen = b.len;
    fwrite(payload, 1, plen, b.f);
    return sb_close(&b, len);
}

struct bin_case {
    const char *dt;
    unsigned char bytes[16];
    size_t nbytes, count;
    float want[4];
};

Test(tensor, kserve_binary_datatypes)
{
    static const struct bin_case cases[] = {
        { "FP32", { 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0 }, 8, 2, { 1, -2 } },
        { "FP64", { 0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f }, 8, 1, { 0.1f } },
        { "FP16", { 0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0xff, 0x7b }, 8, 4,
          { 1, -2, 0x1p-24f, 65504 } },
        { "FP16", { 0x00, 0x80, 0xff, 0x03 }, 4, 2, { -0.0f, 0x3ffp-24f } },
        { "BF16", { 0x80, 0x3f, 0x00, 0xc0, 0xcd, 0x3d }, 6, 3, { 1, -2, 0.10009765625f } },
        { "INT8", { 0x80, 0x7f, 0xff }, 3, 3, { -128, 127, -1 } },
        { "INT16", { 0x00, 0x80, 0xff, 0x7f }, 4, 2, { -32768, 32767 } },
        { "INT32", { 0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x00, 0x00 }, 8, 2, { -1, 256 } },
        { "INT64", { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 8, 1, { -2 } },
        { "UINT8", { 0xff, 0x00 }, 2, 2, { 255, 0 } },
        { "UINT16", { 0xff, 0xff }, 2, 1, { 65535 } },
        { "UINT32", { 0xff, 0xff, 0xff, 0xff }, 4, 1, { 4294967296.0f } },
        { "UINT64", { 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00 }, 8, 1,
          { 4294967296.0f } },
        { "BOOL", { 0, 1, 2 }, 3, 3, { 0, 1, 1 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bin_case *c = &cases[i];
        char shape[16];
        snprintf(shape, sizeof shape, "[%zu]", c->count);
        size_t len, hlen;
        char *body = bin_body(c->dt, shape, c->nbytes, c->bytes, c->nbytes, NULL, &len, &hlen);
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        cr_assert_eq(dcv_tensor_decode_kserve(body, len, hlen, NULL, &req, err), 0, "%s: %s",
                     c->dt, err);
        cr_assert_eq(req.input.count, c->count);
        cr_assert_str_eq(req.input_name, "b");
        for (size_t k = 0; k < c->count; k++)
            cr_assert_eq(bits(req.input.data[k]), bits(c->want[k]), "%s value %zu: %a vs %a",
                         c->dt, k, req.input.data[k], c->want[k]);
        dcv_infer_request_release(&req);
        free(body);
    }
}

Test(tensor, kserve_binary_non_finite_refused)
{
    static const struct bin_case cases[] = {
        { "FP16", { 0x00, 0x3c, 0x00, 0x7c }, 4, 2, { 0 } },        /* +inf */
        { "FP16", { 0x01, 0x7e, 0x00, 0x00 }, 4, 2, { 0 } },        /* nan */
        { "BF16", { 0x80, 0xff, 0x00, 0x00 }, 4, 2, { 0 } },        /* -inf */
        { "FP32", { 0, 0, 0xc0, 0x7f, 0, 0, 0, 0 }, 8, 2, { 0 } },  /* nan */
        { "FP64", { 0, 0, 0, 0, 0, 0, 0xf0, 0x47 }, 8, 1, { 0 } },  /* 2^128 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bin_case *c = &cases[i];
        char shape[16];
        snprintf(shape, sizeof shape, "[%zu]", c->count);
        size_t len, hlen;
        char *body = bin_body(c->dt, shape, c->nbytes, c->bytes, c->nbytes, NULL, &len, &hlen);
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        int rc = dcv_tensor_decode_kserve(body, len, hlen, NULL, &req, err);
        assert_err(rc, DCV_EINVAL, err, "is not a finite float32");
        cr_assert_null(req.input.data);
        free(body);
    }
}

Test(tensor, kserve_binary_large_fp32_and_output_flag)
{
    const size_t n = 32 * 32 * 128;
    float *v = rnd_floats(n);
    size_t len, hlen;
    char *body = bin_body("FP32", "[1,32,32,128]", n * 4, v, n * 4,
                          "\"parameters\":{\"binary_data_output\":true},", &len, &hlen);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_tensor_decode_kserve(body, len, hlen, NULL, &req, err), 0, "%s", err);
    assert_floats(req.input.data, v, n);
    cr_assert(req.binary_output);
    dcv_infer_request_release(&req);
    free(body);
    free(v);
}

/* An aligned FP32 payload is read in place; any other is copied. Both must
 * give the same values. */
Test(tensor, kserve_binary_fp32_borrowed_only_when_aligned)
{
    const float v[3] = { 1.5f, -0.0f, 3e-41f };
    for (int mis = 0; mis < 4; mis++) {
        char head[160];
        int hl = snprintf(head, sizeof head, "{\"inputs\":[{\"name\":\"x\",\"shape\":[3],"
                          "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":12}}]}");
        while (hl % 4 != mis) head[hl++] = ' ';     /* JSON allows trailing blanks */
        char *body = aligned_alloc(64, 256);
        memcpy(body, head, (size_t)hl);
        memcpy(body + hl, v, sizeof v);
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        cr_assert_eq(dcv_tensor_decode_kserve(body, (size_t)hl + sizeof v, (size_t)hl, NULL, &req,
                                              err), 0, "%s", err);
        cr_assert_eq(req.input.borrowed, mis == 0, "header length %% 4 = %d", mis);
        cr_assert_eq(req.input.data == (float *)(void *)(body + hl), mis == 0);
        for (int i = 0; i < 3; i++) cr_assert_eq(bits(req.input.data[i]), bits(v[i]));
        dcv_infer_request_release(&req);
        free(body);
    }
}

/* The non-finite scan works on whole blocks of 1024 values and then the
 * tail: a NaN or infinity anywhere (block edges, tail) is found at its
 * index, in place (aligned) and copied (misaligned); extreme finite
 * values pass. */
Test(tensor, kserve_binary_fp32_non_finite_found_anywhere)
{
    enum { N = 3000 };
    static const size_t at[] = { 0, 1, 1023, 1024, 1500, 2047, 2048, 2999 };
    const float bad[] = { NAN, INFINITY, -INFINITY };
    float *v = malloc(N * sizeof *v);
    char *body = aligned_alloc(64, (256 + N * sizeof *v + 63) / 64 * 64);
    cr_assert(v && body);
    for (int mis = 0; mis < 2; mis++)
        for (size_t a = 0; a <= sizeof at / sizeof *at; a++)
            for (size_t k = 0; k < (a < sizeof at / sizeof *at ? 3u : 1u); k++) {
                for (size_t i = 0; i < N; i++)
                    v[i] = i % 4 == 0 ? FLT_MAX : i % 4 == 1 ? -FLT_MAX : i % 4 == 2 ? 0x1p-149f
                                                                                     : -0.0f;
                bool finite = a == sizeof at / sizeof *at;
                if (!finite) v[at[a]] = bad[k];
                char head[200];
                int hl = snprintf(head, sizeof head, "{\"inputs\":[{\"name\":\"x\",\"shape\":[%d],"
                                  "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":%zu}}]}",
                                  N, N * sizeof *v);
                while (hl % 4 != mis) head[hl++] = ' ';
                memcpy(body, head, (size_t)hl);
                memcpy(body + hl, v, N * sizeof *v);
                struct dcv_infer_request req;
                char err[DCV_ERRLEN] = "", want[64];
                int rc = dcv_tensor_decode_kserve(body, (size_t)hl + N * sizeof *v, (size_t)hl,
                                                  NULL, &req, err);
                if (finite) {
                    cr_assert_eq(rc, 0, "%s", err);
                    cr_assert_eq(req.input.borrowed, mis == 0);
                    for (size_t i = 0; i < N; i++)
                        cr_assert_eq(bits(req.input.data[i]), bits(v[i]), "value %zu", i);
                    dcv_infer_request_release(&req);
                    continue;
                }
                snprintf(want, sizeof want, "value %zu ", at[a]);
                assert_err(rc, DCV_EINVAL, err, want);
                cr_assert_null(req.input.data);
            }
    free(v);
    free(body);
}

/* cJSON parses a copy of the body without the lifted arrays' text: its
 * error offsets must still point into the body as sent. */
Test(tensor, syntax_error_offsets_are_the_body_s)
{
    for (int before = 0; before < 2; before++) {
        char body[4096];
        size_t n = 0;
        n += (size_t)sprintf(body + n, "{%s\"inputs\":[{\"name\":\"x\",\"shape\":[100],"
                             "\"datatype\":\"FP32\",\"data\":[", before ? "\"id\":tru," : "");
        for (int i = 0; i < 100; i++)
            n += (size_t)sprintf(body + n, "%s%d.5", i ? "," : "", i);
        n += (size_t)sprintf(body + n, "]}]%s}", before ? "" : ",\"id\":tru");
        char want[64];
        snprintf(want, sizeof want, "invalid JSON near byte %zu",
                 (size_t)(strstr(body, "tru") - body));
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        assert_err(dcv_tensor_decode_kserve(body, n, 0, NULL, &req, err), DCV_EPARSE, err, want);
    }
}

Test(tensor, kserve_binary_framing_errors)
{
    const float v[5] = { 1, 2, 3, 4, 5 };
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    size_t len, hlen;

    /* header length beyond the body */
    char *body = bin_body("FP32", "[4]", 16, v, 16, NULL, &len, &hlen);
    assert_err(dcv_tensor_decode_kserve(body, len, len + 1, NULL, &req, err), DCV_EINVAL, err,
               "Inference-Header-Content-Length is");
    free(body);

    /* missing bytes */
    body = bin_body("FP32", "[4]", 16, v, 12, NULL, &len, &hlen);
    assert_err(dcv_tensor_decode_kserve(body, len, hlen, NULL, &req, err), DCV_EINVAL, err,
               "expected 16 bytes of binary data after the JSON header, got 12");
    free(body);

    /* extra bytes */
    body = bin_body("FP32", "[4]", 16, v, 20, NULL, &len, &hlen);
    assert_err(dcv_tensor_decode_kserve(body, len, hlen, NULL, &req, err), DCV_EINVAL, err,
               "expected 16 bytes of binary data after the JSON header, got 20");
    free(body);

    /* binary_data_size disagreeing with shape x element size */
    body = bin_body("FP16", "[4]", 16, v, 16, NULL, &len, &hlen);
    assert_err(dcv_tensor_decode_kserve(body, len, hlen, NULL, &req, err), DCV_EINVAL, err,
               "binary_data_size is 16 but shape [4] of FP16 needs 8 bytes");
    free(body);

    /* binary input but no header length: the whole body is JSON */
    body = bin_body("FP32", "[1]", 4, v, 0, NULL, &len, &hlen);
    assert_err(dcv_tensor_decode_kserve(body, len, 0, NULL, &req, err), DCV_EINVAL, err,
               "expected 4 bytes of binary data after the JSON header, got 0 (no "
               "Inference-Header-Content-Length");
    free(body);

    /* header cut short: not valid JSON */
    body = bin_body("FP32", "[4]", 16, v, 16, NULL, &len, &hlen);
    assert_err(dcv_tensor_decode_kserve(body, len, hlen - 3, NULL, &req, err), DCV_EPARSE, err,
               "JSON");
    free(body);

    /* JSON data plus stray bytes after the header */
    char *json = kbody("FP32", "[1]", "[1]");
    size_t jl = strlen(json);
    body = malloc(jl + 4);
    memcpy(body, json, jl);
    memcpy(body + jl, "abcd", 4);
    assert_err(dcv_tensor_decode_kserve(body, jl + 4, jl, NULL, &req, err), DCV_EINVAL, err,
               "expected 0 bytes of binary data after the JSON header");
    free(body);
    free(json);

    /* data and binary_data_size both */
    assert_err(kserve("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\","
                      "\"data\":[1],\"parameters\":{\"binary_data_size\":4}}]}", &req, err),
               DCV_EINVAL, err, "both \"data\" and parameters.binary_data_size");
    assert_err(kserve("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\","
                      "\"parameters\":{\"binary_data_size\":-4}}]}", &req, err),
               DCV_EINVAL, err, "binary_data_size must be a byte count");
}

/* ---- KServe request fields ---------------------------------------------- */

Test(tensor, kserve_id_echo_and_limits)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(kserve("{\"id\":\"req-\\\"7\\\"\\n\",\"inputs\":[{\"name\":\"x\",\"shape\":[1],"
                        "\"datatype\":\"FP32\",\"data\":[1]}]}", &req, err), 0, "%s", err);
    cr_assert(req.has_id);
    cr_assert_str_eq(req.id, "req-\"7\"\n");
    dcv_infer_request_release(&req);

    char id[DCV_TENSOR_ID_MAX + 1];
    for (int len = DCV_TENSOR_ID_MAX - 1; len <= DCV_TENSOR_ID_MAX; len++) {
        memset(id, 'i', (size_t)len);
        id[len] = '\0';
        struct sb b;
        sb_open(&b);
        fprintf(b.f, "{\"id\":\"%s\",\"inputs\":[{\"name\":\"x\",\"shape\":[1],"
                     "\"datatype\":\"FP32\",\"data\":[1]}]}", id);
        char *body = sb_close(&b, NULL);
        int rc = kserve(body, &req, err);
        if (len < DCV_TENSOR_ID_MAX) {
            cr_assert_eq(rc, 0, "%s", err);
            cr_assert_str_eq(req.id, id);
            dcv_infer_request_release(&req);
        } else {
            assert_err(rc, DCV_EINVAL, err, "id is 256 bytes long; at most 255");
        }
        free(body);
    }
    assert_err(kserve("{\"id\":7,\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\","
                      "\"data\":[1]}]}", &req, err), DCV_EINVAL, err, "id must be a string");
}

Test(tensor, kserve_binary_output_flags)
{
    const char *in = "\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]";
    struct {
        const char *extra;
        bool binary, requested;
    } cases[] = {
        { "", false, false },
        { "\"parameters\":{\"binary_data_output\":true},", true, false },
        { "\"parameters\":{\"binary_data_output\":false},", false, false },
        { "\"outputs\":[{\"name\":\"output\"}],", false, true },
        { "\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":true}}],", true, true },
        { "\"parameters\":{\"binary_data_output\":true},\"outputs\":[{\"name\":\"output\","
          "\"parameters\":{\"binary_data\":false}}],", false, true },
        { "\"parameters\":{\"binary_data_output\":true},\"outputs\":[{\"name\":\"output\"}],", true,
          true },
        { "\"outputs\":[],", false, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{%s%s}", cases[i].extra, in);
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        cr_assert_eq(kserve(body, &req, err), 0, "%s: %s", body, err);
        cr_assert_eq(req.binary_output, cases[i].binary, "%s", body);
        cr_assert_eq(req.output_requested, cases[i].requested, "%s", body);
        dcv_infer_request_release(&req);
    }
}

Test(tensor, kserve_output_errors)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    const char *in = "\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]";
    char body[512];
    snprintf(body, sizeof body, "{\"outputs\":[{\"name\":\"probs\"}],%s}", in);
    assert_err(kserve(body, &req, err), DCV_EINVAL, err,
               "unknown output 'probs' (this model has one output named 'output')");
    snprintf(body, sizeof body, "{\"outputs\":{\"name\":\"output\"},%s}", in);
    assert_err(kserve(body, &req, err), DCV_EINVAL, err, "outputs must be an array");
    snprintf(body, sizeof body, "{\"outputs\":[{}],%s}", in);
    assert_err(kserve(body, &req, err), DCV_EINVAL, err, "outputs[0] must be an object with a "
                                                          "string \"name\"");
    snprintf(body, sizeof body, "{\"parameters\":{\"binary_data_output\":1},%s}", in);
    assert_err(kserve(body, &req, err), DCV_EINVAL, err,
               "parameters.binary_data_output must be true or false, got number");
    snprintf(body, sizeof body,
             "{\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":\"yes\"}}],%s}", in);
    assert_err(kserve(body, &req, err), DCV_EINVAL, err,
               "outputs[0].parameters.binary_data must be true or false");
}

struct err_case {
    const char *body, *sub;
    int code;
};

Test(tensor, kserve_request_errors)
{
    static const struct err_case cases[] = {
        { "[1,2]", "must be a JSON object, got array", DCV_EINVAL },
        { "{}", "missing \"inputs\"", DCV_EINVAL },
        { "{\"inputs\":{}}", "inputs must be an array of input objects, got object", DCV_EINVAL },
        { "{\"inputs\":[]}", "inputs holds 0 inputs; this model takes exactly one", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},"
          "{\"name\":\"b\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
          "inputs holds 2 inputs; this model takes exactly one", DCV_EINVAL },
        { "{\"inputs\":[[1,2]]}", "inputs[0] must be an object, got array", DCV_EINVAL },
        { "{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
          "inputs[0] is missing \"name\"", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":3,\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
          "inputs[0].name must be a string, got number", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1]}]}",
          "input 'x' is missing \"shape\"", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"data\":[1]}]}",
          "input 'x' is missing \"datatype\"", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[1]}]}",
          "unsupported datatype 'BYTES' (accepted: FP32", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\"}]}",
          "neither \"data\" nor parameters.binary_data_size", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":1}]}",
          "input 'x' must be an array of numbers, got number", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":\"1\",\"datatype\":\"FP32\",\"data\":[1]}]}",
          "shape must be an array of integers, got string", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,\"2\"],\"datatype\":\"FP32\",\"data\":[1]}]}",
          "shape[1] must be an integer, got string", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1.5],\"datatype\":\"FP32\",\"data\":[1]}]}",
          "shape[0] must be an integer", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,0],\"datatype\":\"FP32\",\"data\":[]}]}",
          "shape[1] is 0; zero-size tensors are not accepted", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[-1],\"datatype\":\"FP32\",\"data\":[1]}]}",
          "shape[0] is -1; dimensions must be positive", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[],\"datatype\":\"FP32\",\"data\":[1]}]}",
          "shape has 0 dimensions; 1 to 8", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1,1,1,1,1,1,1,1],\"datatype\":\"FP32\","
          "\"data\":[1]}]}", "shape has 9 dimensions; 1 to 8", DCV_EINVAL },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[4294967296,4294967296,16],\"datatype\":\"FP32\","
          "\"data\":[1]}]}", "shape [4294967296,4294967296,16] has more than 2^64 elements",
          DCV_ETOOBIG },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[65536,65536],\"datatype\":\"FP32\","
          "\"data\":[1]}]}", "has 4294967296 elements, above the limit of 268435456", DCV_ETOOBIG },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"FP32\","
          "\"data\":[[1,2],[3]]}]}", "input 'x'[1] has 1 elements, expected 2", DCV_ESHAPE },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2]}", "JSON",
          DCV_EPARSE },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2,]}]}",
          "JSON", DCV_EPARSE },
        { "", "JSON", DCV_EPARSE },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        int rc = kserve(cases[i].body, &req, err);
        assert_err(rc, cases[i].code, err, cases[i].sub);
        cr_assert_null(req.input.data);
    }
}

Test(tensor, kserve_long_names_refused)
{
    char name[DCV_TENSOR_NAME_MAX + 1];
    memset(name, 'n', DCV_TENSOR_NAME_MAX);
    name[DCV_TENSOR_NAME_MAX] = '\0';
    char body[512];
    snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"%s\",\"shape\":[1],\"datatype\":\"FP32\","
             "\"data\":[1]}]}", name);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    assert_err(kserve(body, &req, err), DCV_EINVAL, err, "input name is 64 bytes long; at most 63");
}

Test(tensor, kserve_limits_from_caller)
{
    struct dcv_decode_limits lim = { .max_elems = 100, .max_depth = 2 };
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    char *body = kbody("FP32", "[101]", "[1]");
    assert_err(dcv_tensor_decode_kserve(body, strlen(body), 0, &lim, &req, err), DCV_ETOOBIG, err,
               "has 101 elements, above the limit of 100");
    free(body);
    /* a lifted array above the limit is refused before it is kept */
    struct sb b;
    sb_open(&b);
    float *v = rnd_floats(500);
    sb_floats(&b, v, 500);
    char *data = sb_close(&b, NULL);
    body = kbody("FP32", "[500]", data);
    assert_err(dcv_tensor_decode_kserve(body, strlen(body), 0, &lim, &req, err), DCV_ETOOBIG, err,
               "\"data\" holds 500 values, above the limit of 100");
    free(body);
    body = kbody("FP32", "[1,1,1]", "[[[1]]]");
    assert_err(dcv_tensor_decode_kserve(body, strlen(body), 0, &lim, &req, err), DCV_EINVAL, err,
               "nested more than 2 levels");
    free(body);
    free(data);
    free(v);
}

Test(tensor, deep_nesting_is_an_error_not_a_crash)
{
    const size_t depth = 100000;
    struct sb b;
    sb_open(&b);
    fputs("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":", b.f);
    for (size_t i = 0; i < depth; i++)
        fputc('[', b.f);
    fputc('1', b.f);
    for (size_t i = 0; i < depth; i++)
        fputc(']', b.f);
    fputs("}]}", b.f);
    size_t len;
    char *body = sb_close(&b, &len);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    int rc = dcv_tensor_decode_kserve(body, len, 0, NULL, &req, err);
    assert_err(rc, DCV_EPARSE, err, "nested deeper than 1000 levels");
    free(body);

    /* deep, but within cJSON's limit: refused by the tensor reader */
    sb_open(&b);
    fputs("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":", b.f);
    for (int i = 0; i < 500; i++)
        fputc('[', b.f);
    fputc('1', b.f);
    for (int i = 0; i < 500; i++)
        fputc(']', b.f);
    fputs("}]}", b.f);
    body = sb_close(&b, &len);
    rc = dcv_tensor_decode_kserve(body, len, 0, NULL, &req, err);
    assert_err(rc, DCV_EINVAL, err, "nested more than 8 levels");
    free(body);

    /* deep TF Serving instances */
    sb_open(&b);
    fputs("{\"instances\":", b.f);
    for (size_t i = 0; i < depth; i++)
        fputc('[', b.f);
    body = sb_close(&b, &len);
    bool rows;
    rc = dcv_tensor_decode_tfserving(body, len, NULL, &req, &rows, err);
    assert_err(rc, DCV_EPARSE, err, "nested deeper");
    free(body);
}

/* ---- markers ------------------------------------------------------------ */

Test(tensor, user_strings_that_look_like_markers_are_strings)
{
    static const char *fakes[] = { "#0", "#dcv:0", "#dcv:0000000000000000:0",
                                   "#dcv:ffffffffffffffff:1", "#dcv:0123456789abcdef:0 " };
    for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++) {
        char data[64];
        snprintf(data, sizeof data, "\"%s\"", fakes[i]);
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        assert_err(kserve_dt("FP32", "[1]", data, &req, err), DCV_EINVAL, err,
                   "must be an array of numbers, got string");
    }
}

/* A marker copied out of one body does not resolve once that body is gone,
 * nor inside another body. */
Test(tensor, stale_marker_does_not_resolve)
{
    float *v = rnd_floats(64);
    struct sb b;
    sb_open(&b);
    fputs("{\"t\":", b.f);
    sb_floats(&b, v, 64);
    fputs("}", b.f);
    size_t len;
    char *body = sb_close(&b, &len);
    char err[DCV_ERRLEN] = "";
    struct dcv_tensor_body *tb = dcv_tensor_parse_body(body, len, NULL, err);
    cr_assert_not_null(tb, "%s", err);
    const char *m = strstr(body, "\"#dcv:");
    cr_assert_not_null(m);
    char marker[64];
    size_t mlen = (size_t)(strchr(m + 1, '"') - m) + 1;
    memcpy(marker, m, mlen);
    marker[mlen] = '\0';

    /* while alive: resolves */
    struct dcv_tensor t;
    const struct dcv_json *node = dcv_json_get(dcv_tensor_body_root(tb), "t");
    cr_assert_eq(dcv_json_type(node), DCV_JSON_STRING);
    cr_assert_eq(dcv_tensor_from_json(node, NULL, &t, err), 0, "%s", err);
    assert_floats(t.data, v, 64);
    dcv_tensor_release(&t);
    /* a copy outliving the body is just a string */
    struct dcv_json *copy = dcv_json_dup(node);
    dcv_tensor_body_free(tb);
    assert_err(dcv_tensor_from_json(copy, NULL, &t, err), DCV_EINVAL, err, "got string");
    dcv_json_free(copy);
    /* and replaying it in a request is refused */
    char *req_body = kbody("FP32", "[64]", marker);
    struct dcv_infer_request req;
    assert_err(kserve(req_body, &req, err), DCV_EINVAL, err, "got string");
    free(req_body);
    free(body);
    free(v);
}

Test(tensor, marker_text_is_never_taken_for_a_string)
{
    /* numeric arrays under keys read as strings are reported as arrays */
    float *v = rnd_floats(64);
    struct sb b;
    sb_open(&b);
    fputs("{\"id\":", b.f);
    sb_floats(&b, v, 64);
    fputs(",\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", b.f);
    char *body = sb_close(&b, NULL);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    assert_err(kserve(body, &req, err), DCV_EINVAL, err, "id must be a string, got an array");
    cr_assert_null(strstr(err, "#dcv"));
    free(body);

    sb_open(&b);
    fputs("{\"inputs\":", b.f);
    sb_floats(&b, v, 64);
    fputs("}", b.f);
    body = sb_close(&b, NULL);
    assert_err(kserve(body, &req, err), DCV_EINVAL, err,
               "inputs must be an array of input objects, got an array of numbers");
    free(body);
    free(v);
}

/* ---- parse_body / from_json --------------------------------------------- */

Test(tensor, parse_body_and_from_json)
{
    const int64_t big_shape[] = { 4, 8, 16 };
    float *v = rnd_floats(512);
    struct sb b;
    sb_open(&b);
    fputs("{\"op\":\"conv\",\"strides\":[2,2],\"a\":{\"shape\":[2,2],\"data\":[1,2,3,4]},"
          "\"b\":[[1,2],[3,4]],\"c\":", b.f);
    sb_nested(&b, v, big_shape, 3);
    fputs(",\"d\":{\"data\":", b.f);
    sb_floats(&b, v, 512);
    fputs(",\"shape\":[2,256]},\"e\":\"text\",\"f\":{\"shape\":[3],\"data\":[1,2]}}", b.f);
    size_t len;
    char *body = sb_close(&b, &len);
    char err[DCV_ERRLEN] = "";
    struct dcv_tensor_body *tb = dcv_tensor_parse_body(body, len, NULL, err);
    cr_assert_not_null(tb, "%s", err);
    const struct dcv_json *root = dcv_tensor_body_root(tb);
    cr_assert_str_eq(dcv_json_string(dcv_json_get(root, "op")), "conv");
    cr_assert_eq(dcv_json_type(dcv_json_get(root, "strides")), DCV_JSON_ARRAY);

    struct dcv_tensor t;
    const float four[] = { 1, 2, 3, 4 };
    const int64_t d22[] = { 2, 2 }, d2x256[] = { 2, 256 };
    cr_assert_eq(dcv_tensor_from_json(dcv_json_get(root, "a"), NULL, &t, err), 0, "%s", err);
    assert_shape(&t, 2, d22);
    assert_floats(t.data, four, 4);
    dcv_tensor_release(&t);
    cr_assert_eq(dcv_tensor_from_json(dcv_json_get(root, "b"), NULL, &t, err), 0, "%s", err);
    assert_shape(&t, 2, d22);
    assert_floats(t.data, four, 4);
    dcv_tensor_release(&t);
    for (int rep = 0; rep < 2; rep++) { /* repeatable: from_json copies */
        cr_assert_eq(dcv_tensor_from_json(dcv_json_get(root, "c"), NULL, &t, err), 0, "%s", err);
        assert_shape(&t, 3, big_shape);
        assert_floats(t.data, v, 512);
        dcv_tensor_release(&t);
    }
    cr_assert_eq(dcv_tensor_from_json(dcv_json_get(root, "d"), NULL, &t, err), 0, "%s", err);
    assert_shape(&t, 2, d2x256);
    assert_floats(t.data, v, 512);
    dcv_tensor_release(&t);
    assert_err(dcv_tensor_from_json(dcv_json_get(root, "e"), NULL, &t, err), DCV_EINVAL, err,
               "expected a tensor");
    assert_err(dcv_tensor_from_json(dcv_json_get(root, "f"), NULL, &t, err), DCV_ESHAPE, err,
               "expected 3 values for shape [3], got 2");
    assert_err(dcv_tensor_from_json(dcv_json_get(root, "op"), NULL, &t, err), DCV_EINVAL, err,
               "got string");
    dcv_tensor_body_free(tb);
    free(body);
    free(v);
}

Test(tensor, parse_body_root_array_and_errors)
{
    float *v = rnd_floats(300);
    struct sb b;
    sb_open(&b);
    sb_floats(&b, v, 300);
    size_t len;
    char *body = sb_close(&b, &len);
    char err[DCV_ERRLEN] = "";
    struct dcv_tensor_body *tb = dcv_tensor_parse_body(body, len, NULL, err);
    cr_assert_not_null(tb, "%s", err);
    struct dcv_tensor t;
    cr_assert_eq(dcv_tensor_from_json(dcv_tensor_body_root(tb), NULL, &t, err), 0, "%s", err);
    cr_assert_eq(t.ndim, 1);
    cr_assert_eq(t.shape[0], 300);
    assert_floats(t.data, v, 300);
    dcv_tensor_release(&t);
    dcv_tensor_body_free(tb);
    free(body);
    free(v);

    char bad[] = "{\"a\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], \"b\": }";
    cr_assert_null(dcv_tensor_parse_body(bad, strlen(bad), NULL, err));
    cr_assert_not_null(strstr(err, "JSON"), "%s", err);
    char empty[] = "{\"a\": [[], [], [], [], [], [], [], [], [], [], [], [], []]}";
    tb = dcv_tensor_parse_body(empty, strlen(empty), NULL, err);
    cr_assert_not_null(tb, "%s", err);
    assert_err(dcv_tensor_from_json(dcv_json_get(dcv_tensor_body_root(tb), "a"), NULL, &t, err),
               DCV_ESHAPE, err, "shape [13,0]: zero-size tensors are not accepted");
    dcv_tensor_body_free(tb);
    /* strings with brackets, escapes and keys named like tensors stay intact */
    char tricky[] = "{\"data\\\"]\": \"[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]\","
                    " \"shape\": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],"
                    " \"x\": {\"data\": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]}}";
    tb = dcv_tensor_parse_body(tricky, strlen(tricky), NULL, err);
    cr_assert_not_null(tb, "%s", err);
    {
        const struct dcv_json *root = dcv_tensor_body_root(tb);
        cr_assert_str_eq(dcv_json_string(dcv_json_get(root, "data\"]")),
                         "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]");
        cr_assert_eq(dcv_json_size(dcv_json_get(root, "shape")), 19);
        cr_assert_eq(dcv_tensor_from_json(dcv_json_get(dcv_json_get(root, "x"), "data"), NULL, &t,
                                          err), 0, "%s", err);
        cr_assert_eq(t.count, 9);
        cr_assert_eq(t.data[8], 9.5f);
        dcv_tensor_release(&t);
    }
    dcv_tensor_body_free(tb);
}

/* ---- TF Serving --------------------------------------------------------- */

Test(tensor, tfserving_instances_rows)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    bool rows = false;
    cr_assert_eq(tfs("{\"signature_name\":\"serving_default\",\"instances\":[[1,2],[3,4],[5,6]]}",
                     &req, &rows, err), 0, "%s", err);
    const int64_t d32[] = { 3, 2 };
    const float want[] = { 1, 2, 3, 4, 5, 6 };
    assert_shape(&req.input, 2, d32);
    assert_floats(req.input.data, want, 6);
    cr_assert(rows);
    dcv_infer_request_release(&req);

    cr_assert_eq(tfs("{\"instances\":[1.5,2.5]}", &req, &rows, err), 0, "%s", err);
    cr_assert_eq(req.input.ndim, 1);
    cr_assert_eq(req.input.shape[0], 2);
    dcv_infer_request_release(&req);
}

Test(tensor, tfserving_large_instances)
{
    const int64_t shape[] = { 2, 16, 16, 8 };
    const size_t n = 2 * 16 * 16 * 8;
    float *v = rnd_floats(n);
    struct sb b;
    sb_open(&b);
    fputs("{\"instances\":", b.f);
    sb_nested(&b, v, shape, 4);
    fputs("}", b.f);
    size_t len;
    char *body = sb_close(&b, &len);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    bool rows = false;
    cr_assert_eq(dcv_tensor_decode_tfserving(body, len, NULL, &req, &rows, err), 0, "%s", err);
    assert_shape(&req.input, 4, shape);
    assert_floats(req.input.data, v, n);
    cr_assert(rows);
    dcv_infer_request_release(&req);
    free(body);

    /* the same rows as named objects */
    sb_open(&b);
    fputs("{\"instances\":[{\"input_1\":", b.f);
    sb_nested(&b, v, shape + 1, 3);
    fputs("},{\"input_1\":", b.f);
    sb_nested(&b, v + n / 2, shape + 1, 3);
    fputs("}]}", b.f);
    body = sb_close(&b, &len);
    cr_assert_eq(dcv_tensor_decode_tfserving(body, len, NULL, &req, &rows, err), 0, "%s", err);
    assert_shape(&req.input, 4, shape);
    assert_floats(req.input.data, v, n);
    cr_assert_str_eq(req.input_name, "input_1");
    dcv_infer_request_release(&req);
    free(body);
    free(v);
}

Test(tensor, tfserving_instance_objects_small)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    bool rows = false;
    cr_assert_eq(tfs("{\"instances\":[{\"x\":[[1],[2]]},{\"x\":[[3],[4]]}]}", &req, &rows, err), 0,
                 "%s", err);
    const int64_t d[] = { 2, 2, 1 };
    const float want[] = { 1, 2, 3, 4 };
    assert_shape(&req.input, 3, d);
    assert_floats(req.input.data, want, 4);
    cr_assert_str_eq(req.input_name, "x");
    dcv_infer_request_release(&req);

    cr_assert_eq(tfs("{\"instances\":[{\"x\":1},{\"x\":2},{\"x\":3}]}", &req, &rows, err), 0, "%s",
                 err);
    cr_assert_eq(req.input.ndim, 1);
    cr_assert_eq(req.input.shape[0], 3);
    cr_assert_eq(req.input.data[2], 3.0f);
    dcv_infer_request_release(&req);
}

Test(tensor, tfserving_inputs_columnar)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    bool rows = true;
    cr_assert_eq(tfs("{\"inputs\":[[[1,2,3]],[[4,5,6]]]}", &req, &rows, err), 0, "%s", err);
    const int64_t d[] = { 2, 1, 3 };
    assert_shape(&req.input, 3, d);
    cr_assert_eq(req.input.data[5], 6.0f);
    cr_assert(!rows);
    dcv_infer_request_release(&req);

    cr_assert_eq(tfs("{\"inputs\":{\"img\":[[1,2],[3,4]]}}", &req, &rows, err), 0, "%s", err);
    const int64_t d2[] = { 2, 2 };
    assert_shape(&req.input, 2, d2);
    cr_assert_str_eq(req.input_name, "img");
    cr_assert(!rows);
    dcv_infer_request_release(&req);

    float *v = rnd_floats(4096);
    const int64_t big[] = { 1, 8, 8, 64 };
    struct sb b;
    sb_open(&b);
    fputs("{\"inputs\":{\"img\":", b.f);
    sb_nested(&b, v, big, 4);
    fputs("}}", b.f);
    char *body = sb_close(&b, NULL);
    cr_assert_eq(tfs(body, &req, &rows, err), 0, "%s", err);
    assert_shape(&req.input, 4, big);
    assert_floats(req.input.data, v, 4096);
    dcv_infer_request_release(&req);
    free(body);
    free(v);
}

Test(tensor, tfserving_errors)
{
    static const struct err_case cases[] = {
        { "{\"instances\":[[1,2],[3]]}", "instances[1] has 1 elements, expected 2", DCV_ESHAPE },
        { "{\"instances\":[[1,2],3]}", "instances[1] must be an array", DCV_ESHAPE },
        { "{\"instances\":[1,[2]]}", "instances[1] is an array where its siblings hold values",
          DCV_ESHAPE },
        { "{\"instances\":[{\"x\":[1,2]},{\"x\":[3]}]}",
          "instances[1] has shape [1] but instances[0] has [2]", DCV_ESHAPE },
        { "{\"instances\":[{\"x\":[1],\"y\":[2]}]}", "instances[0] has 2 keys; this model takes "
          "one input", DCV_EINVAL },
        { "{\"instances\":[{\"x\":[1]},{\"y\":[2]}]}",
          "instances[1] names input 'y' but instances[0] names 'x'", DCV_EINVAL },
        { "{\"instances\":[{\"x\":[1]},[2]]}", "instances[1] is array but instances[0] is an object",
          DCV_EINVAL },
        { "{\"instances\":[{\"x\":\"a\"}]}", "instances[0].x must be an array of numbers, got string",
          DCV_EINVAL },
        { "{\"instances\":[]}", "instances has shape [0]: zero-size", DCV_ESHAPE },
        { "{\"instances\":\"abc\"}", "instances must be an array, got string", DCV_EINVAL },
        { "{\"instances\":[[1,NaN]]}", "value 1 is NaN", DCV_EINVAL },
        { "{\"instances\":[[1,null]]}", "instances value 1: expected a number", DCV_EINVAL },
        { "{\"inputs\":{\"a\":[1],\"b\":[2]}}", "inputs names 2 tensors; this model takes one",
          DCV_EINVAL },
        { "{\"inputs\":5}", "inputs must be a nested array or an object, got number", DCV_EINVAL },
        { "{\"inputs\":[[1],[2,3]]}", "inputs[1] has 2 elements, expected 1", DCV_ESHAPE },
        { "{\"instances\":[[1]],\"inputs\":[[1]]}", "either \"instances\" or \"inputs\", not both",
          DCV_EINVAL },
        { "{\"signature_name\":\"x\"}", "missing \"instances\" or \"inputs\"; a TF Serving :predict "
          "body is {\"instances\"", DCV_EINVAL },
        { "[[1,2]]", "the body must be a JSON object, got array", DCV_EINVAL },
        { "{\"instances\":[[1,2]]", "JSON", DCV_EPARSE },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        bool rows;
        int rc = tfs(cases[i].body, &req, &rows, err);
        assert_err(rc, cases[i].code, err, cases[i].sub);
        cr_assert_null(req.input.data);
    }
}

Test(tensor, tfserving_large_ragged_refused)
{
    struct sb b;
    sb_open(&b);
    fputs("{\"instances\":[", b.f);
    for (int r = 0; r < 20; r++) {
        fputs(r ? ",[" : "[", b.f);
        for (int i = 0; i < (r == 13 ? 99 : 100); i++)
            fprintf(b.f, i ? ",%d" : "%d", i);
        fputc(']', b.f);
    }
    fputs("]}", b.f);
    char *body = sb_close(&b, NULL);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    bool rows;
    assert_err(tfs(body, &req, &rows, err), DCV_ESHAPE, err,
               "instances[13] has 99 elements, expected 100");
    free(body);
}

/* ---- encoders ----------------------------------------------------------- */

static float json_float(const struct dcv_json *n)
{
    cr_assert_eq(dcv_json_type(n), DCV_JSON_NUMBER);
    return (float)dcv_json_number(n);
}

Test(tensor, encode_kserve_json_round_trip)
{
    const size_t n = 100000;
    float *v = rnd_floats(n);
    v[0] = -0.0f;
    v[1] = 0x1p-149f;
    v[2] = FLT_MAX;
    const int64_t shape[] = { 1, 100, 1000 };
    size_t len = 0, hlen = 0;
    char *out = dcv_tensor_encode_kserve("deconv\"1", "2", "id\n\"x\"", true, shape, 3, v, false,
                                         &len, &hlen);
    cr_assert_not_null(out);
    cr_assert_eq(hlen, len);
    char err[DCV_ERRLEN] = "";
    struct dcv_json *root = dcv_json_parse(out, len, err);
    cr_assert_not_null(root, "%s", err);
    cr_assert_str_eq(dcv_json_string(dcv_json_get(root, "model_name")), "deconv\"1");
    cr_assert_str_eq(dcv_json_string(dcv_json_get(root, "model_version")), "2");
    cr_assert_str_eq(dcv_json_string(dcv_json_get(root, "id")), "id\n\"x\"");
    const struct dcv_json *o = dcv_json_at(dcv_json_get(root, "outputs"), 0);
    cr_assert_str_eq(dcv_json_string(dcv_json_get(o, "name")), "output");
    cr_assert_str_eq(dcv_json_string(dcv_json_get(o, "datatype")), "FP32");
    const struct dcv_json *sh = dcv_json_get(o, "shape");
    cr_assert_eq(dcv_json_size(sh), 3);
    cr_assert_eq(dcv_json_number(dcv_json_at(sh, 2)), 1000.0);
    const struct dcv_json *data = dcv_json_get(o, "data");
    cr_assert_eq(dcv_json_size(data), n);
    size_t i = 0;
    for (const struct dcv_json *c = dcv_json_first(data); c; c = dcv_json_next(c), i++)
        cr_assert_eq(bits(json_float(c)), bits(v[i]), "value %zu", i);
    dcv_json_free(root);
    dcv_buf_free(out);

    /* without id; no "id" key at all */
    out = dcv_tensor_encode_kserve("m", "1", NULL, false, shape, 3, v, false, &len, &hlen);
    cr_assert_null(strstr(out, "\"id\""));
    dcv_buf_free(out);
    free(v);
}

Test(tensor, encode_kserve_binary)
{
    const float v[6] = { 1, -2, 0.5f, 3e-40f, -0.0f, 7 };
    const int64_t shape[] = { 2, 3 };
    size_t len = 0, hlen = 0;
    char *out = dcv_tensor_encode_kserve("m", "1", "abc", true, shape, 2, v, true, &len, &hlen);
    cr_assert_not_null(out);
    cr_assert_eq(len, hlen + sizeof v);
    cr_assert_eq((uintptr_t)(out + hlen) % 64, 0, "the engine writes the data in place");
    char err[DCV_ERRLEN] = "";
    struct dcv_json *root = dcv_json_parse(out, hlen, err);
    cr_assert_not_null(root, "%s", err);
    const struct dcv_json *o = dcv_json_at(dcv_json_get(root, "outputs"), 0);
    cr_assert_null(dcv_json_get(o, "data"));
    cr_assert_eq(dcv_json_number(dcv_json_get(dcv_json_get(o, "parameters"), "binary_data_size")),
                 24.0);
    cr_assert_str_eq(dcv_json_string(dcv_json_get(root, "id")), "abc");
    dcv_json_free(root);
    const unsigned char *raw = (const unsigned char *)out + hlen;
    for (int i = 0; i < 6; i++) {
        uint32_t b = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
                     (uint32_t)raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24;
        cr_assert_eq(b, bits(v[i]), "value %d", i);
    }
    dcv_buf_free(out);
}

Test(tensor, encode_nonfinite_as_python_reads_them)
{
    const float v[3] = { NAN, INFINITY, -INFINITY };
    const int64_t shape[] = { 3 };
    size_t len;
    char *out = dcv_tensor_encode_kserve("m", "1", NULL, false, shape, 1, v, false, &len, NULL);
    cr_assert_not_null(strstr(out, "\"data\":[NaN,Infinity,-Infinity]"), "%s", out);
    dcv_buf_free(out);
}

Test(tensor, encode_tfserving_nested)
{
    float v[24];
    for (int i = 0; i < 24; i++)
        v[i] = (float)i + 0.5f;
    const int64_t shape[] = { 2, 3, 4 };
    size_t len;
    char *out = dcv_tensor_encode_tfserving(shape, 3, v, true, &len);
    cr_assert_not_null(out);
    cr_assert_eq(strlen(out), len);
    char err[DCV_ERRLEN] = "";
    struct dcv_json *root = dcv_json_parse(out, len, err);
    cr_assert_not_null(root, "%s: %s", err, out);
    const struct dcv_json *p = dcv_json_get(root, "predictions");
    cr_assert_eq(dcv_json_size(p), 2);
    size_t k = 0;
    for (const struct dcv_json *a = dcv_json_first(p); a; a = dcv_json_next(a)) {
        cr_assert_eq(dcv_json_size(a), 3);
        for (const struct dcv_json *r = dcv_json_first(a); r; r = dcv_json_next(r)) {
            cr_assert_eq(dcv_json_size(r), 4);
            for (const struct dcv_json *x = dcv_json_first(r); x; x = dcv_json_next(x))
                cr_assert_eq(json_float(x), v[k++]);
        }
    }
    cr_assert_eq(k, 24);
    dcv_json_free(root);
    dcv_buf_free(out);

    out = dcv_tensor_encode_tfserving(shape, 3, v, false, &len);
    cr_assert_eq(strncmp(out, "{\"outputs\":[[[0.5,1.5,2.5,3.5],[4.5,", 36), 0, "%s", out);
    cr_assert_eq(strcmp(out + len - 8, "23.5]]]}"), 0, "%s", out);
    dcv_buf_free(out);

    const int64_t one[] = { 3 };
    out = dcv_tensor_encode_tfserving(one, 1, v, true, &len);
    cr_assert_str_eq(out, "{\"predictions\":[0.5,1.5,2.5]}");
    dcv_buf_free(out);
    const int64_t ones[] = { 1, 1, 1, 2 };
    out = dcv_tensor_encode_tfserving(ones, 4, v, true, &len);
    cr_assert_str_eq(out, "{\"predictions\":[[[[0.5,1.5]]]]}");
    dcv_buf_free(out);
}

Test(tensor, encode_plain_round_trips_through_from_json)
{
    const size_t n = 2 * 5 * 7;
    float *v = rnd_floats(n);
    const int64_t shape[] = { 2, 5, 7 };
    size_t len;
    char *out = dcv_tensor_encode_plain(shape, 3, v, &len);
    cr_assert_not_null(out);
    char err[DCV_ERRLEN] = "";
    struct dcv_tensor_body *tb = dcv_tensor_parse_body(out, len, NULL, err);
    cr_assert_not_null(tb, "%s", err);
    struct dcv_tensor t;
    cr_assert_eq(dcv_tensor_from_json(dcv_tensor_body_root(tb), NULL, &t, err), 0, "%s", err);
    assert_shape(&t, 3, shape);
    assert_floats(t.data, v, n);
    dcv_tensor_release(&t);
    dcv_tensor_body_free(tb);
    dcv_buf_free(out);
    free(v);
}

/* The KServe response decodes back as a request carrying the same values. */
Test(tensor, encode_then_decode_large)
{
    const int64_t shape[] = { 1, 32, 32, 128 };
    const size_t n = 32 * 32 * 128;
    float *v = rnd_floats(n);
    size_t len;
    char *out = dcv_tensor_encode_tfserving(shape, 4, v, false, &len);
    cr_assert_eq(strncmp(out, "{\"outputs\":", 11), 0);
    memcpy(out, "{\"inputs\": ", 11); /* the response body, as a columnar request */
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    bool rows = true;
    cr_assert_eq(dcv_tensor_decode_tfserving(out, len, NULL, &req, &rows, err), 0, "%s", err);
    assert_shape(&req.input, 4, shape);
    assert_floats(req.input.data, v, n);
    dcv_infer_request_release(&req);
    dcv_buf_free(out);
    free(v);
}

/* ---- threads: the marker registry is shared ----------------------------- */

static void *decode_loop(void *arg)
{
    const char *text = arg;
    size_t len = strlen(text);
    char *body = malloc(len + 1);
    for (int i = 0; i < 40; i++) {
        memcpy(body, text, len + 1);
        struct dcv_infer_request req;
        char err[DCV_ERRLEN];
        if (dcv_tensor_decode_kserve(body, len, 0, NULL, &req, err) || req.input.count != 2000 ||
            req.input.data[1999] != 1999.0f) {
            free(body);
            return (void *)1;
        }
        dcv_infer_request_release(&req);
    }
    free(body);
    return NULL;
}

Test(tensor, concurrent_decodes)
{
    struct sb b;
    sb_open(&b);
    fputc('[', b.f);
    for (int i = 0; i < 2000; i++)
        fprintf(b.f, i ? ",%d" : "%d", i);
    fputc(']', b.f);
    char *data = sb_close(&b, NULL);
    char *body = kbody("FP32", "[2000]", data);
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, decode_loop, body), 0);
    for (int i = 0; i < 6; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        cr_assert_null(rv, "thread %d failed", i);
    }
    free(body);
    free(data);
}

/* Fuzzer finds (tests/fuzz/corpus/{kserve,tfserving}/seed-midpoint-*): an
 * array too short for a side-table marker was read through cJSON's double
 * and then narrowed, rounding twice, so a number just off a float32
 * midpoint decoded one ulp away from the same number in a longer array. */
Test(tensor, short_and_long_arrays_round_alike)
{
    static const struct { const char *dt, *num; uint32_t want; } cases[] = {
        { "FP32", "1.0000000596046448", 0x3f800001 },     /* 1 + 2^-24, as a double prints */
        { "FP32", "-1.0000000596046448", 0xbf800001 },
        { "FP64", "1.0000000596046448", 0x3f800001 },
        { "INT64", "18014399583223809", 0x5a800001 },     /* 2^54 + 2^30 + 1 */
        { "FP32", "3.4028235677973366e38", 0x7f7fffff },  /* just under FLT_MAX + ulp/2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char data[128];
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        for (int pad = 0; pad < 2; pad++) {
            /* [x] stays in the tree; [ ... x] (spaces) is long enough to be lifted */
            snprintf(data, sizeof data, "[%s%s]", pad ? "                              " : "",
                     cases[i].num);
            int rc = kserve_dt(cases[i].dt, "[1]", data, &req, err);
            cr_assert_eq(rc, 0, "%s %s: %s", cases[i].dt, data, err);
            cr_expect_eq(bits(req.input.data[0]), cases[i].want, "%s %s: %08x, expected %08x",
                         cases[i].dt, data, bits(req.input.data[0]), cases[i].want);
            dcv_infer_request_release(&req);
        }
    }
    bool rows;
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(tfs("{\"instances\": [3.4028235677973366e38]}", &req, &rows, err), 0, "%s", err);
    cr_expect_eq(bits(req.input.data[0]), 0x7f7fffffu);
    dcv_infer_request_release(&req);
    cr_assert_eq(tfs("{\"inputs\": [[1.0000000596046448]]}", &req, &rows, err), 0, "%s", err);
    cr_expect_eq(bits(req.input.data[0]), 0x3f800001u);
    dcv_infer_request_release(&req);
}

/* Fuzzer find: an empty array padded with whitespace past the marker length
 * was lifted as "an array of numbers", so "outputs": [    ...    ] was refused
 * where "outputs": [] is accepted. */
Test(tensor, empty_arrays_are_empty_whatever_their_spacing)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    for (int pad = 0; pad < 2; pad++) {
        char body[256];
        snprintf(body, sizeof body, "{\"outputs\": [%s], \"inputs\": [{\"name\": \"x\", "
                 "\"shape\": [1], \"datatype\": \"FP32\", \"data\": [1]}]}",
                 pad ? "                                        " : "");
        cr_assert_eq(kserve(body, &req, err), 0, "%s: %s", body, err);
        cr_expect(!req.output_requested);
        dcv_infer_request_release(&req);
    }
}

/* Fuzzer find (tests/fuzz/regress/kserve/shape-key-*): the scanner compared
 * keys byte for byte, so a "shape" written with an escape or followed by NUL
 * bytes (which cJSON reads as "shape") had a long array lifted and refused
 * as "an array of numbers" while a short one was accepted. */
Test(tensor, escaped_shape_key_is_still_a_shape)
{
    static const char *const bodies[] = {
        "{\"inputs\":[{\"name\":\"x\",\"sh\\u0061pe\":[                              2],"
        "\"datatype\":\"FP32\",\"data\":[1.5, 2.5]}]}",
        "{\"inputs\":[{\"name\":\"x\",\"shape\\u0000\":[                              2],"
        "\"datatype\":\"FP32\",\"data\":[1.5, 2.5]}]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        cr_assert_eq(kserve(bodies[i], &req, err), 0, "%s: %s", bodies[i], err);
        assert_shape(&req.input, 1, (int64_t[]){ 2 });
        cr_expect_eq(req.input.data[1], 2.5f);
        dcv_infer_request_release(&req);
    }
    /* the raw-NUL form, which a C string cannot hold */
    const char raw[] = "{\"inputs\":[{\"name\":\"x\",\"shape\0\0\":[                              2],"
                       "\"datatype\":\"FP32\",\"data\":[1.5, 2.5]}]}";
    char *body = malloc(sizeof raw);
    memcpy(body, raw, sizeof raw);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_tensor_decode_kserve(body, sizeof raw - 1, 0, NULL, &req, err), 0, "%s", err);
    assert_shape(&req.input, 1, (int64_t[]){ 2 });
    dcv_infer_request_release(&req);
    free(body);
}

/* Fuzzer find: a shape-sized array long enough (in bytes) for a marker was
 * lifted, so the ops endpoint could not read output_shape/strides. */
Test(tensor, shape_sized_arrays_stay_json_whatever_their_spacing)
{
    char body[] = "{\"output_shape\": [1,        16384,        16384,      3], "
                  "\"strides\": [   2,     2   ]}";
    char err[DCV_ERRLEN] = "";
    struct dcv_tensor_body *b = dcv_tensor_parse_body(body, strlen(body), NULL, err);
    cr_assert_not_null(b, "%s", err);
    const struct dcv_json *os = dcv_json_get(dcv_tensor_body_root(b), "output_shape");
    cr_assert_eq(dcv_json_type(os), DCV_JSON_ARRAY, "output_shape must stay a JSON array");
    cr_expect_eq(dcv_json_size(os), 4);
    cr_expect_eq(dcv_json_number(dcv_json_at(os, 1)), 16384.0);
    cr_expect_eq(dcv_json_type(dcv_json_get(dcv_tensor_body_root(b), "strides")), DCV_JSON_ARRAY);
    dcv_tensor_body_free(b);
}
