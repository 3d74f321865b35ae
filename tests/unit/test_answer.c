/* test_answer.c — the answer encoders read back through the JSON layer:
 * KServe JSON and binary, TF Serving, plain; and no JSON answer carries a
 * non-finite value. */
#include <criterion/criterion.h>
#include <float.h>

#include "deconvd/answer.h"
#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/json.h"

#include "tensorutil.h"
#include "testutil.h"

static float json_float(const struct dcv_json *n)
{
    cr_assert_eq(dcv_json_type(n), DCV_JSON_NUMBER);
    return (float)dcv_json_number(n);
}

/* A model "m", version "1", answering a request without an id. */
static const struct dcv_answer_names M1 = { "m", "1", NULL, NULL };

Test(answer, encode_kserve_json_round_trip)
{
    const size_t n = 100000;
    float *v = rnd_floats(n);
    v[0] = -0.0f;
    v[1] = 0x1p-149f;
    v[2] = FLT_MAX;
    const int64_t shape[] = { 1, 100, 1000 };
    size_t len = 0, hlen = 0;
    char *out, err[DCV_ERRLEN] = "";
    const struct dcv_answer_names nm = { "deconv\"1", "2", "id\n\"x\"", NULL };
    cr_assert_eq(dcv_answer_kserve(&nm, shape, 3, v, false, &out, &len, &hlen, err), 0, "%s",
                 err);
    cr_assert_eq(hlen, len);
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
    cr_assert_eq(dcv_answer_kserve(&M1, shape, 3, v, false, &out, &len, &hlen, err), 0, "%s",
                 err);
    cr_assert_null(strstr(out, "\"id\""));
    dcv_buf_free(out);
    free(v);
}

Test(answer, encode_kserve_binary)
{
    const float v[6] = { 1, -2, 0.5f, 3e-40f, -0.0f, 7 };
    const int64_t shape[] = { 2, 3 };
    size_t len = 0, hlen = 0;
    char *out, err[DCV_ERRLEN] = "";
    const struct dcv_answer_names nm = { "m", "1", "abc", NULL };
    cr_assert_eq(dcv_answer_kserve(&nm, shape, 2, v, true, &out, &len, &hlen, err), 0, "%s",
                 err);
    cr_assert_eq(len, hlen + sizeof v);
    cr_assert_eq((uintptr_t)(out + hlen) % 64, 0, "the engine writes the data in place");
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

/* A chain's answer names its Keras output (escaped as any string); without
 * a name, "output" as for a single layer. Every KServe form. */
Test(answer, kserve_output_name)
{
    const float v[2] = { 1, 2 };
    const int64_t shape[] = { 1, 2 };
    const struct dcv_answer_names nm = { "vae", "3", NULL, "conv2d_transpose_\"2" };
    const char *want = "\"outputs\":[{\"name\":\"conv2d_transpose_\\\"2\",";
    size_t len = 0, hlen = 0;
    char *out, err[DCV_ERRLEN] = "";
    for (int binary = 0; binary < 2; binary++) {
        cr_assert_eq(dcv_answer_kserve(&nm, shape, 2, v, binary, &out, &len, &hlen, err), 0,
                     "%s", err);
        cr_assert_not_null(strstr(out, want), "%.*s", (int)hlen, out);
        dcv_buf_free(out);
        cr_assert_eq(dcv_answer_kserve(&M1, shape, 2, v, binary, &out, &len, &hlen, err), 0);
        cr_assert_not_null(strstr(out, "\"outputs\":[{\"name\":\"output\","), "%s", out);
        dcv_buf_free(out);
    }
    struct dcv_tensor_shm s = { .used = true, .region = "r", .byte_size = 8 };
    out = dcv_answer_kserve_shm(&nm, shape, 2, &s, &len);
    cr_assert_not_null(out);
    cr_assert_not_null(strstr(out, want), "%s", out);
    dcv_buf_free(out);
}

/* Each JSON encoder, each non-finite value at the first, a middle and the
 * last position of a [2,3,4,5] output: refused with DCV_EINVAL naming the
 * flat and the multi-dimensional index (worked by hand: 67 = ((1*3 + 0)*4
 * + 1)*5 + 2). */
Test(answer, json_answers_refuse_non_finite_values)
{
    static const struct { size_t at; const char *index; } where[] = {
        { 0, "[0,0,0,0]" }, { 67, "[1,0,1,2]" }, { 119, "[1,2,3,4]" },
    };
    const float bad[] = { INFINITY, -INFINITY, NAN };
    const char *spelled[] = { "Infinity", "-Infinity", "NaN" };
    const int64_t shape[] = { 2, 3, 4, 5 };
    float v[120];
    for (size_t w = 0; w < 3; w++)
        for (size_t b = 0; b < 3; b++)
            for (int enc = 0; enc < 4; enc++) {
                for (int i = 0; i < 120; i++)
                    v[i] = (float)i * 0.25f;
                v[where[w].at] = bad[b];
                char *out = (char *)"untouched", err[DCV_ERRLEN] = "", want[96];
                size_t len = 0, hlen = 0;
                int rc = enc == 0 ? dcv_answer_kserve(&M1, shape, 4, v, false, &out, &len,
                                                      &hlen, err)
                       : enc == 1 ? dcv_answer_tfserving(shape, 4, v, true, &out, &len, err)
                       : enc == 2 ? dcv_answer_tfserving(shape, 4, v, false, &out, &len, err)
                                  : dcv_answer_plain(shape, 4, v, &out, &len, err);
                snprintf(want, sizeof want, "output value %zu (index %s) is %s", where[w].at,
                         where[w].index, spelled[b]);
                assert_err(rc, DCV_EINVAL, err, want);
                cr_assert_null(out, "encoder %d wrote an answer", enc);
                cr_assert_not_null(strstr(err, "JSON cannot carry"), "%s", err);
                cr_assert_not_null(strstr(err, enc == 0 ? "\"binary_data_output\": true"
                                              : enc < 3 ? "TF Serving" : "ops endpoint"),
                                   "encoder %d: %s", enc, err);
            }
}

/* A TF Serving scalar answer (no dimensions) is checked too. */
Test(answer, scalar_answer_refuses_non_finite)
{
    const float v[1] = { -INFINITY };
    char *out, err[DCV_ERRLEN] = "";
    size_t len;
    assert_err(dcv_answer_tfserving(NULL, 0, v, true, &out, &len, err), DCV_EINVAL, err,
               "output value 0 (index []) is -Infinity");
}

/* Binary KServe answers carry the values as they are: the bits of an
 * infinity and of a NaN come back unchanged. */
Test(answer, binary_answer_keeps_non_finite_bits)
{
    const float v[4] = { 1, INFINITY, -INFINITY, NAN };
    const int64_t shape[] = { 4 };
    char *out, err[DCV_ERRLEN] = "";
    size_t len, hlen;
    cr_assert_eq(dcv_answer_kserve(&M1, shape, 1, v, true, &out, &len, &hlen, err), 0, "%s",
                 err);
    cr_assert_eq(len, hlen + sizeof v);
    const uint32_t want[4] = { 0x3f800000u, 0x7f800000u, 0xff800000u, bits(NAN) };
    for (int i = 0; i < 4; i++) {
        uint32_t got;
        memcpy(&got, out + hlen + 4 * i, sizeof got);
        cr_assert_eq(got, want[i], "value %d: %08x, want %08x", i, got, want[i]);
    }
    dcv_buf_free(out);
}

/* Finite extremes are not mistaken for infinities. */
Test(answer, finite_extremes_are_written)
{
    const float v[4] = { FLT_MAX, -FLT_MAX, 0x1p-149f, -0.0f };
    const int64_t shape[] = { 4 };
    char *out, err[DCV_ERRLEN] = "";
    size_t len;
    cr_assert_eq(dcv_answer_plain(shape, 1, v, &out, &len, err), 0, "%s", err);
    cr_assert_str_eq(out, "{\"shape\":[4],\"data\":[3.4028235e+38,-3.4028235e+38,1e-45,-0]}");
    dcv_buf_free(out);
}

Test(answer, encode_tfserving_nested)
{
    float v[24];
    for (int i = 0; i < 24; i++)
        v[i] = (float)i + 0.5f;
    const int64_t shape[] = { 2, 3, 4 };
    size_t len;
    char *out, err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_answer_tfserving(shape, 3, v, true, &out, &len, err), 0, "%s", err);
    cr_assert_eq(strlen(out), len);
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

    cr_assert_eq(dcv_answer_tfserving(shape, 3, v, false, &out, &len, err), 0, "%s", err);
    cr_assert_eq(strncmp(out, "{\"outputs\":[[[0.5,1.5,2.5,3.5],[4.5,", 36), 0, "%s", out);
    cr_assert_eq(strcmp(out + len - 8, "23.5]]]}"), 0, "%s", out);
    dcv_buf_free(out);

    const int64_t one[] = { 3 };
    cr_assert_eq(dcv_answer_tfserving(one, 1, v, true, &out, &len, err), 0, "%s", err);
    cr_assert_str_eq(out, "{\"predictions\":[0.5,1.5,2.5]}");
    dcv_buf_free(out);
    const int64_t ones[] = { 1, 1, 1, 2 };
    cr_assert_eq(dcv_answer_tfserving(ones, 4, v, true, &out, &len, err), 0, "%s", err);
    cr_assert_str_eq(out, "{\"predictions\":[[[[0.5,1.5]]]]}");
    dcv_buf_free(out);
}

Test(answer, encode_plain_round_trips_through_from_json)
{
    const size_t n = 2 * 5 * 7;
    float *v = rnd_floats(n);
    const int64_t shape[] = { 2, 5, 7 };
    size_t len;
    char *out, err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_answer_plain(shape, 3, v, &out, &len, err), 0, "%s", err);
    struct dcv_jsonbody *tb = parse_body(out, len, NULL, err);
    cr_assert_not_null(tb, "%s", err);
    struct dcv_tensor t;
    cr_assert_eq(dcv_tensor_from_json(tb, dcv_jsonbody_root(tb), NULL, &t, err), 0, "%s", err);
    assert_shape(&t, 3, shape);
    assert_floats(t.data, v, n);
    dcv_tensor_release(&t);
    dcv_jsonbody_free(tb);
    dcv_buf_free(out);
    free(v);
}

/* The KServe response decodes back as a request carrying the same values. */
Test(answer, encode_then_decode_large)
{
    const int64_t shape[] = { 1, 32, 32, 128 };
    const size_t n = 32 * 32 * 128;
    float *v = rnd_floats(n);
    size_t len;
    char *out, err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_answer_tfserving(shape, 4, v, false, &out, &len, err), 0, "%s", err);
    cr_assert_eq(strncmp(out, "{\"outputs\":", 11), 0);
    memcpy(out, "{\"inputs\": ", 11); /* the response body, as a columnar request */
    struct dcv_infer_request req;
    bool rows = true;
    cr_assert_eq(dcv_tfserving_decode(out, len, NULL, &req, &rows, err), 0, "%s", err);
    assert_shape(&req.input, 4, shape);
    assert_floats(req.input.data, v, n);
    dcv_infer_request_release(&req);
    dcv_buf_free(out);
    free(v);
}
