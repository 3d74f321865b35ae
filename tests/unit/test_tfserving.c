/* test_tfserving.c — TF Serving :predict requests, row and columnar
 * forms, instance objects, and their errors. */
#include <criterion/criterion.h>

#include "deconvd/error.h"
#include "deconvd/json.h"

#include "tensorutil.h"
#include "testutil.h"

Test(tfserving, tfserving_instances_rows)
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

Test(tfserving, tfserving_large_instances)
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
    cr_assert_eq(dcv_tfserving_decode(body, len, NULL, &req, &rows, err), 0, "%s", err);
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
    cr_assert_eq(dcv_tfserving_decode(body, len, NULL, &req, &rows, err), 0, "%s", err);
    assert_shape(&req.input, 4, shape);
    assert_floats(req.input.data, v, n);
    cr_assert_str_eq(req.input_name, "input_1");
    dcv_infer_request_release(&req);
    free(body);
    free(v);
}

Test(tfserving, tfserving_instance_objects_small)
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

Test(tfserving, tfserving_inputs_columnar)
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

Test(tfserving, tfserving_errors)
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

Test(tfserving, tfserving_large_ragged_refused)
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
