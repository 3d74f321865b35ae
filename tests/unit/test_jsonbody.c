/* test_jsonbody.c — the body scanner: markers and their serials, the
 * skeleton's error offsets and node budget, nesting, lifted-array cost,
 * and the fuzzer finds about what is lifted and what stays in the tree. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "deconvd/error.h"
#include "deconvd/json.h"

#include "tensorutil.h"
#include "testutil.h"

/* cJSON parses a copy of the body without the lifted arrays' text: its
 * error offsets must still point into the body as sent. */
Test(jsonbody, syntax_error_offsets_are_the_body_s)
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
        assert_err(dcv_kserve_decode(body, n, 0, NULL, &req, err), DCV_EPARSE, err, want);
    }
}

Test(jsonbody, deep_nesting_is_an_error_not_a_crash)
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
    int rc = dcv_kserve_decode(body, len, 0, NULL, &req, err);
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
    rc = dcv_kserve_decode(body, len, 0, NULL, &req, err);
    assert_err(rc, DCV_EINVAL, err, "nested more than 8 levels");
    free(body);

    /* deep TF Serving instances */
    sb_open(&b);
    fputs("{\"instances\":", b.f);
    for (size_t i = 0; i < depth; i++)
        fputc('[', b.f);
    body = sb_close(&b, &len);
    bool rows;
    rc = dcv_tfserving_decode(body, len, NULL, &req, &rows, err);
    assert_err(rc, DCV_EPARSE, err, "nested deeper");
    free(body);
}

Test(jsonbody, user_strings_that_look_like_markers_are_strings)
{
    static const char *fakes[] = { "#0", "#dcv:0", "#dcv:0000000000000000:0",
                                   "#dcv:ffffffffffffffff:1", "#dcv:0123456789abcdef:0 ",
                                   "\\u0023dcv:0000000000000001:0" };
    for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++) {
        char data[64];
        snprintf(data, sizeof data, "\"%s\"", fakes[i]);
        struct dcv_infer_request req;
        char err[DCV_ERRLEN] = "";
        assert_err(kserve_dt("FP32", "[1]", data, &req, err), DCV_EINVAL, err,
                   "must be an array of numbers, got string");
    }
}

/* {"t": <64 random floats>} parsed, with the text of its marker. */
static struct dcv_jsonbody *one_array_body(float *v, char **text, char *marker)
{
    struct sb b;
    sb_open(&b);
    fputs("{\"t\":", b.f);
    sb_floats(&b, v, 64);
    fputs("}", b.f);
    size_t len;
    *text = sb_close(&b, &len);
    char err[DCV_ERRLEN] = "";
    struct dcv_jsonbody *tb = parse_body(*text, len, NULL, err);
    cr_assert_not_null(tb, "%s", err);
    const char *m = strstr(*text, "\"#dcv:");
    cr_assert_not_null(m);
    size_t mlen = (size_t)(strchr(m + 1, '"') - m) + 1;
    memcpy(marker, m, mlen);
    marker[mlen] = '\0';
    return tb;
}

/* A marker resolves against the body that wrote it and no other: not a
 * body parsed from the same text (its serial is fresh), not a request
 * replaying the marker's text, escaped or not. */
Test(jsonbody, a_marker_resolves_only_against_its_own_body)
{
    float *v = rnd_floats(64);
    char *text_a, *text_b, marker_a[64], marker_b[64], err[DCV_ERRLEN] = "";
    struct dcv_jsonbody *a = one_array_body(v, &text_a, marker_a);
    struct dcv_jsonbody *b = one_array_body(v, &text_b, marker_b);
    cr_assert_str_neq(marker_a, marker_b, "two bodies drew the same serial");
    const struct dcv_json *node_a = dcv_json_get(dcv_jsonbody_root(a), "t");
    cr_assert_eq(dcv_json_type(node_a), DCV_JSON_STRING);

    struct dcv_tensor t;
    cr_assert_not_null(dcv_jsonbody_array(a, node_a));
    cr_assert_eq(dcv_tensor_from_json(a, node_a, NULL, &t, err), 0, "%s", err);
    assert_floats(t.data, v, 64);
    dcv_tensor_release(&t);
    /* the same marker asked of another body (which has an array 0 too) */
    cr_assert_null(dcv_jsonbody_array(b, node_a));
    assert_err(dcv_tensor_from_json(b, node_a, NULL, &t, err), DCV_EINVAL, err, "got string");
    cr_assert_not_null(dcv_jsonbody_string(b, node_a), "to another body it is a string");
    cr_assert_null(dcv_jsonbody_string(a, node_a), "a marker is not a client's string");
    cr_assert_null(dcv_jsonbody_array(NULL, node_a));

    /* replayed in a request, as it is and with '#' escaped */
    char escaped[80];
    snprintf(escaped, sizeof escaped, "\"\\u0023%s", marker_a + 2);
    const char *replays[] = { marker_a, escaped };
    for (int i = 0; i < 2; i++) {
        char *req_body = kbody("FP32", "[64]", replays[i]);
        struct dcv_infer_request req;
        assert_err(kserve(req_body, &req, err), DCV_EINVAL, err, "got string");
        free(req_body);
    }
    dcv_jsonbody_free(a);
    dcv_jsonbody_free(b);
    free(text_a);
    free(text_b);
    free(v);
}

Test(jsonbody, marker_text_is_never_taken_for_a_string)
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

static void *decode_loop(void *arg)
{
    const char *text = arg;
    size_t len = strlen(text);
    char *body = malloc(len + 1);
    for (int i = 0; i < 40; i++) {
        memcpy(body, text, len + 1);
        struct dcv_infer_request req;
        char err[DCV_ERRLEN];
        if (dcv_kserve_decode(body, len, 0, NULL, &req, err) || req.input.count != 2000 ||
            req.input.data[1999] != 1999.0f) {
            free(body);
            return (void *)1;
        }
        dcv_infer_request_release(&req);
    }
    free(body);
    return NULL;
}

/* Bodies share no state: decodes on six threads at once all succeed. */
Test(jsonbody, concurrent_decodes)
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
Test(jsonbody, short_and_long_arrays_round_alike)
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
Test(jsonbody, empty_arrays_are_empty_whatever_their_spacing)
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
Test(jsonbody, escaped_shape_key_is_still_a_shape)
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
    cr_assert_eq(dcv_kserve_decode(body, sizeof raw - 1, 0, NULL, &req, err), 0, "%s", err);
    assert_shape(&req.input, 1, (int64_t[]){ 2 });
    dcv_infer_request_release(&req);
    free(body);
}

/* Fuzzer find: a shape-sized array long enough (in bytes) for a marker was
 * lifted, so the ops endpoint could not read output_shape/strides. */
Test(jsonbody, shape_sized_arrays_stay_json_whatever_their_spacing)
{
    char body[] = "{\"output_shape\": [1,        16384,        16384,      3], "
                  "\"strides\": [   2,     2   ]}";
    char err[DCV_ERRLEN] = "";
    struct dcv_jsonbody *b = parse_body(body, strlen(body), NULL, err);
    cr_assert_not_null(b, "%s", err);
    const struct dcv_json *os = dcv_json_get(dcv_jsonbody_root(b), "output_shape");
    cr_assert_eq(dcv_json_type(os), DCV_JSON_ARRAY, "output_shape must stay a JSON array");
    cr_expect_eq(dcv_json_size(os), 4);
    cr_expect_eq(dcv_json_number(dcv_json_at(os, 1)), 16384.0);
    cr_expect_eq(dcv_json_type(dcv_json_get(dcv_jsonbody_root(b), "strides")), DCV_JSON_ARRAY);
    dcv_jsonbody_free(b);
}

/* {"inputs": 1, "p": {"junk": [[],[],...k]}}: 4 + k values, counted by hand. */
static char *junk_body(size_t k, size_t *len)
{
    struct sb b;
    sb_open(&b);
    fputs("{\"inputs\": 1, \"p\": {\"junk\": [", b.f);
    for (size_t i = 0; i < k; i++)
        fputs(i ? ",[]" : "[]", b.f);
    fputs("]}}", b.f);
    return sb_close(&b, len);
}

/* Non-numeric arrays are not lifted, so they are tree nodes: the skeleton
 * is refused above max_json_nodes with both numbers, and accepted at it. */
Test(jsonbody, skeleton_above_max_json_nodes_is_refused)
{
    const struct dcv_decode_limits lim = { .max_json_nodes = 100 };
    char err[DCV_ERRLEN] = "";
    size_t len;
    char *text = junk_body(96, &len); /* 100 values */
    struct dcv_jsonbody *b = parse_body(text, len, &lim, err);
    cr_assert_not_null(b, "%s", err);
    dcv_jsonbody_free(b);
    free(text);

    text = junk_body(97, &len);
    struct dcv_jsonbody *none = (struct dcv_jsonbody *)1;
    assert_err(dcv_jsonbody_parse(text, len, &lim, &none, err), DCV_ETOOBIG, err,
               "holds 101 values, above max_json_nodes (100)");
    cr_assert_null(none);
    free(text);

    /* the default budget is 65536 */
    text = junk_body(65536, &len);
    assert_err(dcv_jsonbody_parse(text, len, NULL, &none, err), DCV_ETOOBIG, err,
               "holds 65540 values, above max_json_nodes (65536)");
    free(text);
    /* and it bounds the decoders' bodies */
    text = junk_body(200, &len);
    struct dcv_infer_request req;
    assert_err(dcv_kserve_decode(text, len, 0, &lim, &req, err), DCV_ETOOBIG, err,
               "max_json_nodes (100)");
    free(text);
    text = junk_body(200, &len);
    bool rows;
    assert_err(dcv_tfserving_decode(text, len, &lim, &req, &rows, err), DCV_ETOOBIG, err,
               "max_json_nodes (100)");
    free(text);
}

/* {"a0": [12 numbers], "a1": ...}: n lifted arrays, each one marker node. */
static char *many_arrays(size_t n, size_t *len)
{
    struct sb b;
    sb_open(&b);
    fputc('{', b.f);
    for (size_t i = 0; i < n; i++)
        fprintf(b.f, "%s\"a%zu\":[%zu,1,2,3,4,5,6,7,8,9,10,11]", i ? "," : "", i, i);
    fputc('}', b.f);
    return sb_close(&b, len);
}

/* Every lifted array leaves a marker node in the skeleton, so a body with
 * more of them than max_json_nodes is refused like any other tree; up to
 * the budget each resolves to its own values. */
Test(jsonbody, lifted_arrays_count_against_max_json_nodes)
{
    const struct dcv_decode_limits lim = { .max_json_nodes = 100 };
    char err[DCV_ERRLEN] = "";
    size_t len;
    char *text = many_arrays(99, &len); /* root + 99 markers */
    struct dcv_jsonbody *b = parse_body(text, len, &lim, err);
    cr_assert_not_null(b, "%s", err);
    for (size_t i = 0; i < 99; i++) {
        char key[16];
        snprintf(key, sizeof key, "a%zu", i);
        const struct dcv_jsonbody_array *a =
            dcv_jsonbody_array(b, dcv_json_get(dcv_jsonbody_root(b), key));
        cr_assert_not_null(a, "%s was not lifted", key);
        cr_assert_eq(a->count, 12);
        cr_assert_eq(a->data[0], (float)i);
        cr_assert_eq(a->data[11], 11.0f);
    }
    dcv_jsonbody_free(b);
    free(text);

    text = many_arrays(5000, &len);
    struct dcv_jsonbody *none;
    assert_err(dcv_jsonbody_parse(text, len, &lim, &none, err), DCV_ETOOBIG, err,
               "above max_json_nodes (100)");
    free(text);
}

/* Arrays whose text is near the scanner's 4096-byte scratch limit (read
 * into the scratch, or straight into their own buffer) decode alike. */
Test(jsonbody, arrays_around_the_scratch_size_decode_alike)
{
    for (size_t n = 2030; n <= 2060; n++) {
        struct sb b;
        sb_open(&b);
        fputs("{\"x\": [", b.f);
        for (size_t i = 0; i < n; i++)
            fprintf(b.f, i ? ",%d" : "%d", (int)(i % 10));
        fputs("]}", b.f);
        size_t len;
        char *text = sb_close(&b, &len);
        char err[DCV_ERRLEN] = "";
        struct dcv_jsonbody *jb = parse_body(text, len, NULL, err);
        cr_assert_not_null(jb, "%zu values: %s", n, err);
        const struct dcv_jsonbody_array *a =
            dcv_jsonbody_array(jb, dcv_json_get(dcv_jsonbody_root(jb), "x"));
        cr_assert_not_null(a);
        cr_assert_eq(a->count, n);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(a->data[i], (float)(i % 10), "%zu values: value %zu", n, i);
        dcv_jsonbody_free(jb);
        free(text);
    }
}


/* Long arrays share one buffer while they fail: one that fails (a string
 * after 3000 numbers) leaves the next ones to be lifted intact. */
Test(jsonbody, a_long_array_that_fails_leaves_the_next_intact)
{
    struct sb b;
    sb_open(&b);
    for (int k = 0; k < 3; k++) {
        fputs(k == 0 ? "{\"bad\": [" : k == 1 ? "], \"good\": [" : "], \"also\": [", b.f);
        for (int i = 0; i < 3000; i++)
            fprintf(b.f, i ? ",%d" : "%d", k * 10000 + i);
        if (k == 0)
            fputs(", \"x\"", b.f);
    }
    fputs("]}", b.f);
    size_t len;
    char *text = sb_close(&b, &len);
    char err[DCV_ERRLEN] = "";
    struct dcv_jsonbody *jb = parse_body(text, len, NULL, err);
    cr_assert_not_null(jb, "%s", err);
    const struct dcv_json *root = dcv_jsonbody_root(jb);
    cr_assert_eq(dcv_json_type(dcv_json_get(root, "bad")), DCV_JSON_ARRAY);
    cr_assert_eq(dcv_json_size(dcv_json_get(root, "bad")), 3001);
    for (int k = 1; k < 3; k++) {
        const struct dcv_jsonbody_array *a =
            dcv_jsonbody_array(jb, dcv_json_get(root, k == 1 ? "good" : "also"));
        cr_assert_not_null(a);
        cr_assert_eq(a->count, 3000);
        for (int i = 0; i < 3000; i++)
            cr_assert_eq(a->data[i], (float)(k * 10000 + i), "array %d value %d", k, i);
    }
    dcv_jsonbody_free(jb);
    free(text);
}
