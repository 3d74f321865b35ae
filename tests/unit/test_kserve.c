/* test_kserve.c — KServe v2 requests: JSON data of every datatype, flat,
 * nested and long (lifted), the binary tensor extension and its framing,
 * request fields, limits and error messages. */
#include <criterion/criterion.h>
#include <float.h>

#include "deconvd/error.h"
#include "deconvd/json.h"

#include "tensorutil.h"
#include "testutil.h"

/* ---- KServe JSON: FP32 -------------------------------------------------- */

Test(kserve, kserve_small_flat_and_nested)
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

Test(kserve, kserve_large_flat_goes_through_side_table)
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
    cr_assert_eq(dcv_kserve_decode(body, len, 0, NULL, &req, err), 0, "%s", err);
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

Test(kserve, kserve_large_nested_4d)
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
    cr_assert_eq(dcv_kserve_decode(body, len, 0, NULL, &req, err), 0, "%s", err);
    assert_shape(&req.input, 4, shape);
    assert_floats(req.input.data, v, n);
    cr_assert(req.output_requested);
    dcv_infer_request_release(&req);
    free(body);
    free(v);
}

Test(kserve, kserve_count_mismatch_names_expected_and_received)
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

Test(kserve, kserve_json_datatypes)
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

Test(kserve, kserve_json_datatype_errors)
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
Test(kserve, kserve_large_integer_and_half_arrays)
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

Test(kserve, kserve_large_non_finite_refused)
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

Test(kserve, kserve_large_strings_and_nulls_refused)
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

Test(kserve, kserve_binary_datatypes)
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
        cr_assert_eq(dcv_kserve_decode(body, len, hlen, NULL, &req, err), 0, "%s: %s",
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

Test(kserve, kserve_binary_non_finite_refused)
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
        int rc = dcv_kserve_decode(body, len, hlen, NULL, &req, err);
        assert_err(rc, DCV_EINVAL, err, "is not a finite float32");
        cr_assert_null(req.input.data);
        free(body);
    }
}

Test(kserve, kserve_binary_large_fp32_and_output_flag)
{
    const size_t n = 32 * 32 * 128;
    float *v = rnd_floats(n);
    size_t len, hlen;
    char *body = bin_body("FP32", "[1,32,32,128]", n * 4, v, n * 4,
                          "\"parameters\":{\"binary_data_output\":true},", &len, &hlen);
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_kserve_decode(body, len, hlen, NULL, &req, err), 0, "%s", err);
    assert_floats(req.input.data, v, n);
    cr_assert(req.binary_output);
    dcv_infer_request_release(&req);
    free(body);
    free(v);
}

/* An aligned FP32 payload is read in place; any other is copied. Both must
 * give the same values. */
Test(kserve, kserve_binary_fp32_borrowed_only_when_aligned)
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
        cr_assert_eq(dcv_kserve_decode(body, (size_t)hl + sizeof v, (size_t)hl, NULL, &req,
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
Test(kserve, kserve_binary_fp32_non_finite_found_anywhere)
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
                int rc = dcv_kserve_decode(body, (size_t)hl + N * sizeof *v, (size_t)hl,
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

Test(kserve, kserve_binary_framing_errors)
{
    const float v[5] = { 1, 2, 3, 4, 5 };
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    size_t len, hlen;

    /* header length beyond the body */
    char *body = bin_body("FP32", "[4]", 16, v, 16, NULL, &len, &hlen);
    assert_err(dcv_kserve_decode(body, len, len + 1, NULL, &req, err), DCV_EINVAL, err,
               "Inference-Header-Content-Length is");
    free(body);

    /* missing bytes */
    body = bin_body("FP32", "[4]", 16, v, 12, NULL, &len, &hlen);
    assert_err(dcv_kserve_decode(body, len, hlen, NULL, &req, err), DCV_EINVAL, err,
               "expected 16 bytes of binary data after the JSON header, got 12");
    free(body);

    /* extra bytes */
    body = bin_body("FP32", "[4]", 16, v, 20, NULL, &len, &hlen);
    assert_err(dcv_kserve_decode(body, len, hlen, NULL, &req, err), DCV_EINVAL, err,
               "expected 16 bytes of binary data after the JSON header, got 20");
    free(body);

    /* binary_data_size disagreeing with shape x element size */
    body = bin_body("FP16", "[4]", 16, v, 16, NULL, &len, &hlen);
    assert_err(dcv_kserve_decode(body, len, hlen, NULL, &req, err), DCV_EINVAL, err,
               "binary_data_size is 16 but shape [4] of FP16 needs 8 bytes");
    free(body);

    /* binary input but no header length: the whole body is JSON */
    body = bin_body("FP32", "[1]", 4, v, 0, NULL, &len, &hlen);
    assert_err(dcv_kserve_decode(body, len, 0, NULL, &req, err), DCV_EINVAL, err,
               "expected 4 bytes of binary data after the JSON header, got 0 (no "
               "Inference-Header-Content-Length");
    free(body);

    /* header cut short: not valid JSON */
    body = bin_body("FP32", "[4]", 16, v, 16, NULL, &len, &hlen);
    assert_err(dcv_kserve_decode(body, len, hlen - 3, NULL, &req, err), DCV_EPARSE, err,
               "JSON");
    free(body);

    /* JSON data plus stray bytes after the header */
    char *json = kbody("FP32", "[1]", "[1]");
    size_t jl = strlen(json);
    body = malloc(jl + 4);
    memcpy(body, json, jl);
    memcpy(body + jl, "abcd", 4);
    assert_err(dcv_kserve_decode(body, jl + 4, jl, NULL, &req, err), DCV_EINVAL, err,
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

Test(kserve, kserve_id_echo_and_limits)
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

Test(kserve, kserve_binary_output_flags)
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

/* Any output name is read and kept for the caller to check against the
 * model (a chain's Keras name); repeating it is allowed, as in Triton. */
Test(kserve, kserve_output_name_kept)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(kserve("{\"outputs\":[{\"name\":\"conv2d_transpose_2\"},{\"name\":"
                        "\"conv2d_transpose_2\",\"parameters\":{\"binary_data\":true}}],"
                        "\"inputs\":[{\"name\":\"z\",\"shape\":[1],\"datatype\":\"FP32\","
                        "\"data\":[1]}]}", &req, err), 0, "%s", err);
    cr_assert(req.output_requested && req.binary_output);
    cr_assert_str_eq(req.output_name, "conv2d_transpose_2");
    cr_assert_str_eq(req.input_name, "z");
    dcv_infer_request_release(&req);
}

Test(kserve, kserve_output_errors)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    const char *in = "\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]";
    char body[512];
    snprintf(body, sizeof body, "{\"outputs\":[{\"name\":\"probs\"},{\"name\":\"x\"}],%s}",
             in);
    assert_err(kserve(body, &req, err), DCV_EINVAL, err,
               "outputs[1] names 'x' but outputs[0] names 'probs'; a model has one output");
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

Test(kserve, kserve_request_errors)
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

Test(kserve, kserve_long_names_refused)
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

Test(kserve, kserve_limits_from_caller)
{
    struct dcv_decode_limits lim = { .max_elems = 100, .max_depth = 2 };
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    char *body = kbody("FP32", "[101]", "[1]");
    assert_err(dcv_kserve_decode(body, strlen(body), 0, &lim, &req, err), DCV_ETOOBIG, err,
               "has 101 elements, above the limit of 100");
    free(body);
    /* a lifted array above the limit is refused before it is kept */
    struct sb b;
    sb_open(&b);
    float *v = rnd_floats(500);
    sb_floats(&b, v, 500);
    char *data = sb_close(&b, NULL);
    body = kbody("FP32", "[500]", data);
    assert_err(dcv_kserve_decode(body, strlen(body), 0, &lim, &req, err), DCV_ETOOBIG, err,
               "\"data\" holds 500 values, above the limit of 100");
    free(body);
    body = kbody("FP32", "[1,1,1]", "[[[1]]]");
    assert_err(dcv_kserve_decode(body, strlen(body), 0, &lim, &req, err), DCV_EINVAL, err,
               "nested more than 2 levels");
    free(body);
    free(data);
    free(v);
}
