/* test_json.c — the bounded parse: the linear pre-count of values (exact,
 * checked against hand counts and against the nodes of the tree cJSON
 * builds), the node budget's refusal with both numbers, the nesting bound,
 * and syntax errors. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"

#include "testutil.h"

static size_t tree_nodes(const struct dcv_json *n)
{
    size_t k = 1;
    for (const struct dcv_json *c = dcv_json_first(n); c; c = dcv_json_next(c))
        k += tree_nodes(c);
    return k;
}

static int parse(const char *text, size_t max_nodes, struct dcv_json **out, char *err)
{
    struct dcv_json_bound bound = { max_nodes, "max_json_nodes", NULL, NULL };
    return dcv_json_parse_bounded(text, strlen(text), &bound, out, err);
}

/* Values counted by hand: each is one node; object keys are not. */
static const struct { const char *text; size_t values; } counted[] = {
    { "{}", 1 },
    { "[]", 1 },
    { "\"str\"", 1 },
    { " 123 ", 1 },
    { "{\"a\":1}", 2 },
    { "{\"a\":\"x\",\"b\":[1,2,{\"c\":null}]}", 7 },
    { "[\"k:v\", \"\\\"]\", {\"s\\\\\\\"\":true}]", 5 },   /* colons, quotes, escapes in strings */
    { "[1e5,-0.5,true,false,null, 2E-3]", 7 },
    { "{\"a\":{\"b\":{\"c\":[]}}}", 4 },
    { "[[],[],{},[[]],{\"\":{}}]", 8 },
    { " { \"a\" : [ 1 , 2 ] , \"b\" : \"\" } ", 5 },
    /* fuzzer find: cJSON skips every byte up to 0x20 between tokens, so a
     * key after control bytes is still a key */
    { "{\"a\":1,\x05\x01 \"b\":2}", 3 },
};

Test(json, counts_each_value_once)
{
    for (size_t i = 0; i < sizeof counted / sizeof *counted; i++) {
        char err[DCV_ERRLEN] = "", want[96];
        struct dcv_json *root;
        cr_assert_eq(parse(counted[i].text, counted[i].values, &root, err), 0, "%s: %s",
                     counted[i].text, err);
        cr_assert_eq(tree_nodes(root), counted[i].values, "%s: cJSON built %zu nodes",
                     counted[i].text, tree_nodes(root));
        dcv_json_free(root);
        snprintf(want, sizeof want, "holds %zu values, above max_json_nodes (%zu)",
                 counted[i].values, counted[i].values - 1);
        assert_err(parse(counted[i].text, counted[i].values - 1, &root, err), DCV_ETOOBIG, err,
                   want);
        cr_assert_null(root);
    }
}

/* Generated documents: the budget that just passes is the tree's size. */
Test(json, count_matches_the_tree_of_generated_documents)
{
    uint32_t r = 12345;
    for (int doc = 0; doc < 200; doc++) {
        char text[4096];
        size_t k = 0;
        int depth = 0;
        char open[64];
        bool first = true;
        /* a random walk that always writes valid JSON */
        open[depth++] = '[';
        text[k++] = '[';
        for (int step = 0; step < 200 && k < sizeof text - 64; step++) {
            r = r * 1103515245u + 12345u;
            int what = (int)(r >> 16) % 7;
            bool obj = open[depth - 1] == '{';
            if (what == 0 && depth > 1) {
                text[k++] = obj ? '}' : ']';
                depth--;
                first = false;
                continue;
            }
            if (!first)
                text[k++] = ',';
            if (obj)
                k += (size_t)sprintf(text + k, "\"k%d:\\\"\":", step);
            first = false;
            if (what == 1 && depth < 60) {
                open[depth++] = '[';
                text[k++] = '[';
                first = true;
            } else if (what == 2 && depth < 60) {
                open[depth++] = '{';
                text[k++] = '{';
                first = true;
            } else {
                static const char *const scalars[] = { "1", "-2.5e3", "true", "null",
                                                       "\"s,]}\"", "false" };
                k += (size_t)sprintf(text + k, "%s", scalars[(r >> 8) % 6]);
            }
        }
        while (depth > 0)
            text[k++] = open[--depth] == '{' ? '}' : ']';
        text[k] = '\0';
        char err[DCV_ERRLEN] = "";
        struct dcv_json *root = dcv_json_parse(text, k, err);
        cr_assert_not_null(root, "%s: %s", text, err);
        size_t n = tree_nodes(root);
        dcv_json_free(root);
        cr_assert_eq(parse(text, n, &root, err), 0, "%s: %s", text, err);
        dcv_json_free(root);
        cr_assert_eq(parse(text, n - 1, &root, err), DCV_ETOOBIG, "%s: %s", text, err);
    }
}

/* The junk of issue 11: 27x the body in nodes without the bound. */
Test(json, empty_arrays_are_counted_before_anything_is_built)
{
    const size_t k = 1 << 20;
    char *text = malloc(3 * k + 2);
    size_t n = 0;
    text[n++] = '[';
    for (size_t i = 0; i < k; i++) {
        if (i)
            text[n++] = ',';
        text[n++] = '[';
        text[n++] = ']';
    }
    text[n++] = ']';
    struct dcv_json_bound bound = { 65536, "max_json_nodes", NULL, NULL };
    struct dcv_json *root;
    char err[DCV_ERRLEN] = "";
    assert_err(dcv_json_parse_bounded(text, n, &bound, &root, err), DCV_ETOOBIG, err,
               "holds 1048577 values, above max_json_nodes (65536)");
    free(text);
}

Test(json, nesting_is_bounded_at_cjson_s_limit)
{
    char *text = malloc(2 * 1001 + 1);
    for (int depth = 1000; depth <= 1001; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        struct dcv_json *root;
        char err[DCV_ERRLEN] = "";
        struct dcv_json_bound bound = { SIZE_MAX, "x", NULL, NULL };
        int rc = dcv_json_parse_bounded(text, 2 * (size_t)depth, &bound, &root, err);
        if (depth == 1000) {
            cr_assert_eq(rc, 0, "%s", err);
            dcv_json_free(root);
        } else {
            assert_err(rc, DCV_EPARSE, err, "nested deeper than 1000 levels at byte 1000");
        }
    }
    free(text);
}

static size_t plus_ten(const void *arg, size_t off)
{
    (void)arg;
    return off + 10;
}

Test(json, syntax_errors_and_mapped_offsets)
{
    struct dcv_json *root;
    char err[DCV_ERRLEN] = "";
    assert_err(parse("{\"a\": tru}", 100, &root, err), DCV_EPARSE, err, "invalid JSON near byte 6");
    assert_err(parse("[1] x", 100, &root, err), DCV_EPARSE, err,
               "unexpected data after JSON value at byte 4");
    struct dcv_json_bound bound = { 100, "max_json_nodes", plus_ten, NULL };
    assert_err(dcv_json_parse_bounded("[1,]", 4, &bound, &root, err), DCV_EPARSE, err,
               "near byte 13");
    /* the unbounded parse still says where */
    cr_assert_null(dcv_json_parse("[", 1, err));
    cr_assert_not_null(strstr(err, "invalid JSON"), "%s", err);
}
