/* test_tensor.c — plain tensors read from a parsed body
 * (dcv_tensor_from_json): nested arrays, {"shape","data"} objects, lifted
 * or not, and their errors. */
#include <criterion/criterion.h>

#include "deconvd/error.h"
#include "deconvd/json.h"

#include "tensorutil.h"
#include "testutil.h"

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
    struct dcv_jsonbody *tb = parse_body(body, len, NULL, err);
    cr_assert_not_null(tb, "%s", err);
    const struct dcv_json *root = dcv_jsonbody_root(tb);
    cr_assert_str_eq(dcv_json_string(dcv_json_get(root, "op")), "conv");
    cr_assert_eq(dcv_json_type(dcv_json_get(root, "strides")), DCV_JSON_ARRAY);

    struct dcv_tensor t;
    const float four[] = { 1, 2, 3, 4 };
    const int64_t d22[] = { 2, 2 }, d2x256[] = { 2, 256 };
    cr_assert_eq(dcv_tensor_from_json(tb, dcv_json_get(root, "a"), NULL, &t, err), 0, "%s", err);
    assert_shape(&t, 2, d22);
    assert_floats(t.data, four, 4);
    dcv_tensor_release(&t);
    cr_assert_eq(dcv_tensor_from_json(tb, dcv_json_get(root, "b"), NULL, &t, err), 0, "%s", err);
    assert_shape(&t, 2, d22);
    assert_floats(t.data, four, 4);
    dcv_tensor_release(&t);
    for (int rep = 0; rep < 2; rep++) { /* repeatable: from_json copies */
        cr_assert_eq(dcv_tensor_from_json(tb, dcv_json_get(root, "c"), NULL, &t, err), 0, "%s", err);
        assert_shape(&t, 3, big_shape);
        assert_floats(t.data, v, 512);
        dcv_tensor_release(&t);
    }
    cr_assert_eq(dcv_tensor_from_json(tb, dcv_json_get(root, "d"), NULL, &t, err), 0, "%s", err);
    assert_shape(&t, 2, d2x256);
    assert_floats(t.data, v, 512);
    dcv_tensor_release(&t);
    assert_err(dcv_tensor_from_json(tb, dcv_json_get(root, "e"), NULL, &t, err), DCV_EINVAL, err,
               "expected a tensor");
    assert_err(dcv_tensor_from_json(tb, dcv_json_get(root, "f"), NULL, &t, err), DCV_ESHAPE, err,
               "expected 3 values for shape [3], got 2");
    assert_err(dcv_tensor_from_json(tb, dcv_json_get(root, "op"), NULL, &t, err), DCV_EINVAL, err,
               "got string");
    dcv_jsonbody_free(tb);
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
    struct dcv_jsonbody *tb = parse_body(body, len, NULL, err);
    cr_assert_not_null(tb, "%s", err);
    struct dcv_tensor t;
    cr_assert_eq(dcv_tensor_from_json(tb, dcv_jsonbody_root(tb), NULL, &t, err), 0, "%s", err);
    cr_assert_eq(t.ndim, 1);
    cr_assert_eq(t.shape[0], 300);
    assert_floats(t.data, v, 300);
    dcv_tensor_release(&t);
    dcv_jsonbody_free(tb);
    free(body);
    free(v);

    char bad[] = "{\"a\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], \"b\": }";
    cr_assert_null(parse_body(bad, strlen(bad), NULL, err));
    cr_assert_not_null(strstr(err, "JSON"), "%s", err);
    char empty[] = "{\"a\": [[], [], [], [], [], [], [], [], [], [], [], [], []]}";
    tb = parse_body(empty, strlen(empty), NULL, err);
    cr_assert_not_null(tb, "%s", err);
    assert_err(dcv_tensor_from_json(tb, dcv_json_get(dcv_jsonbody_root(tb), "a"), NULL, &t, err),
               DCV_ESHAPE, err, "shape [13,0]: zero-size tensors are not accepted");
    dcv_jsonbody_free(tb);
    /* strings with brackets, escapes and keys named like tensors stay intact */
    char tricky[] = "{\"data\\\"]\": \"[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]\","
                    " \"shape\": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],"
                    " \"x\": {\"data\": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]}}";
    tb = parse_body(tricky, strlen(tricky), NULL, err);
    cr_assert_not_null(tb, "%s", err);
    {
        const struct dcv_json *root = dcv_jsonbody_root(tb);
        cr_assert_str_eq(dcv_json_string(dcv_json_get(root, "data\"]")),
                         "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]");
        cr_assert_eq(dcv_json_size(dcv_json_get(root, "shape")), 19);
        cr_assert_eq(dcv_tensor_from_json(tb, dcv_json_get(dcv_json_get(root, "x"), "data"), NULL, &t,
                                          err), 0, "%s", err);
        cr_assert_eq(t.count, 9);
        cr_assert_eq(t.data[8], 9.5f);
        dcv_tensor_release(&t);
    }
    dcv_jsonbody_free(tb);
}
