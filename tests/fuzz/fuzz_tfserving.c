/* fuzz_tfserving.c — the TF Serving :predict decoder and plain tensor bodies.
 *
 * Input: a request body. It is decoded as a TF Serving body ("instances" /
 * "inputs"), and again with spaces after every '[' (every numeric array then
 * goes through the float codec, none through the cJSON tree), which must
 * give the same verdict and bits. On success the tensor must be consistent
 * and the TF Serving
 * response encoder's text, renamed back into a request ("predictions" ->
 * "instances", "outputs" -> "inputs"), must decode to the same bits. The same
 * bytes are then read as an ops-endpoint body (dcv_jsonbody_parse +
 * dcv_tensor_from_json on the root and on each member of a root object).
 * Every decode works on an exact-size copy. Input sizes of 3 mod 7 decode
 * with an element limit of 64, sizes of 2 mod 5 with a nesting limit of 3,
 * so that the limit checks get exercised too.
 */
#include <stdbool.h>

#include "deconvd/answer.h"
#include "deconvd/buf.h"
#include "deconvd/json.h"
#include "deconvd/jsonbody.h"
#include "deconvd/tensor.h"
#include "deconvd/tfserving.h"
#include "fuzzutil.h"

#define MAX_ELEMS ((size_t)1 << 20)
#define ROUND_TRIP_MAX ((size_t)1 << 14)
#define MEMBERS_MAX 16
#define SMALL_ELEMS 64
#define SMALL_DEPTH 3
#define PAD 40

static const struct dcv_decode_limits limits = { .max_elems = MAX_ELEMS, .max_depth = 0 };

/* Response text -> request text with the same nested value. */
static void response_round_trip(const struct dcv_tensor *t, bool rows)
{
    size_t len = 0;
    char err[DCV_ERRLEN];
    char *out;
    fz_err_init(err);
    int rc = dcv_answer_tfserving(t->shape, t->ndim, t->data, rows, &out, &len, err);
    FUZZ_CHECK(rc == 0, "answer_tfserving failed: %s", err);
    FUZZ_CHECK(strlen(out) == len, "encode_tfserving: len %zu, strlen %zu", len, strlen(out));
    const char *from = rows ? "{\"predictions\":" : "{\"outputs\":";
    const char *to = rows ? "{\"instances\":" : "{\"inputs\":";
    size_t fl = strlen(from), tl = strlen(to);
    FUZZ_CHECK(len > fl && memcmp(out, from, fl) == 0, "response does not start with %s", from);
    char *req = malloc(len - fl + tl);
    if (!req) abort();
    memcpy(req, to, tl);
    memcpy(req + tl, out + fl, len - fl);
    struct dcv_infer_request back;
    bool rows_back = !rows;
    fz_err_init(err);
    rc = dcv_tfserving_decode(req, len - fl + tl, &limits, &back, &rows_back, err);
    FUZZ_CHECK(rc == 0, "re-encoded TF Serving body refused: %s\n  body: %.300s", err, out);
    FUZZ_CHECK(rows_back == rows, "row format flipped");
    fz_same_tensor(t, &back.input, "TF Serving round trip");
    dcv_infer_request_release(&back);
    free(req);
    dcv_buf_free(out);
}

static void plain_tensor(const struct dcv_jsonbody *b, const struct dcv_json *node,
                         const struct dcv_decode_limits *lim, const char *what)
{
    char err[DCV_ERRLEN];
    struct dcv_tensor t, again;
    fz_err_init(err);
    int rc = dcv_tensor_from_json(b, node, lim, &t, err);
    FZ_LOG("%s: %s %s", what, dcv_error_name(rc), rc ? err : "");
    if (rc) {
        fz_check_error(rc, err, what);
        FUZZ_CHECK(t.data == NULL, "%s: failed but left data", what);
        return;
    }
    fz_check_tensor(&t, lim->max_elems, what);
    /* Not stolen: reading the same node again gives the same tensor. */
    fz_err_init(err);
    rc = dcv_tensor_from_json(b, node, lim, &again, err);
    FUZZ_CHECK(rc == 0, "%s: second read failed: %s", what, err);
    fz_same_tensor(&t, &again, what);
    dcv_tensor_release(&again);
    dcv_tensor_release(&t);
}

static void ops_body(const uint8_t *data, size_t size, const struct dcv_decode_limits *lim)
{
    char *body = fz_copy(data, size);
    char err[DCV_ERRLEN];
    fz_err_init(err);
    struct dcv_jsonbody *b;
    int rc = dcv_jsonbody_parse(body, size, lim, &b, err);
    if (rc) {
        fz_check_error(rc, err, "dcv_jsonbody_parse");
        FUZZ_CHECK(b == NULL, "dcv_jsonbody_parse: failed but returned a body");
        free(body);
        return;
    }
    const struct dcv_json *root = dcv_jsonbody_root(b);
    FUZZ_CHECK(root != NULL, "parse_body: no root");
    plain_tensor(b, root, lim, "root tensor");
    int k = 0;
    if (dcv_json_type(root) == DCV_JSON_OBJECT)
        for (const struct dcv_json *m = dcv_json_first(root); m && k < MEMBERS_MAX;
             m = dcv_json_next(m), k++)
            plain_tensor(b, m, lim, "member tensor");
    dcv_jsonbody_free(b);
    free(body);
}

static void padded_decode(const uint8_t *data, size_t size, const struct dcv_decode_limits *lim,
                          int rc, bool rows, const struct dcv_infer_request *req)
{
    size_t plen;
    char *body = fz_pad_arrays((const char *)data, size, PAD, &plen), err[DCV_ERRLEN];
    struct dcv_infer_request again;
    bool rows2 = false;
    fz_err_init(err);
    int rc2 = dcv_tfserving_decode(body, plen, lim, &again, &rows2, err);
    /* the same outcome; among failures, the same HTTP status (short arrays
     * are checked by the tree walker, long ones by the codec first, so which
     * 400 error is named first may differ) */
    FUZZ_CHECK((rc == 0) == (rc2 == 0) &&
                   dcv_error_http_status(rc) == dcv_error_http_status(rc2),
               "padding the arrays changed the verdict: %s -> %s (%s)", dcv_error_name(rc),
               dcv_error_name(rc2), rc2 ? err : "");
    if (!rc) {
        FUZZ_CHECK(rows2 == rows && strcmp(req->input_name, again.input_name) == 0,
                   "padding the arrays changed the form or the name");
        fz_same_tensor(&req->input, &again.input, "padded arrays");
        dcv_infer_request_release(&again);
    }
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fz_copy(data, size);
    char err[DCV_ERRLEN];
    struct dcv_infer_request req;
    bool rows = false;
    struct dcv_decode_limits lim = limits;
    if (size % 7 == 3) lim.max_elems = SMALL_ELEMS;
    if (size % 5 == 2) lim.max_depth = SMALL_DEPTH;
    fz_err_init(err);
    int rc = dcv_tfserving_decode(body, size, &lim, &req, &rows, err);
    free(body);
    FZ_LOG("tfserving: %s %s", dcv_error_name(rc), rc ? err : "");
    padded_decode(data, size, &lim, rc, rows, &req);
    if (rc) {
        fz_check_error(rc, err, "dcv_tfserving_decode");
        FUZZ_CHECK(req.input.data == NULL, "failed decode left data behind");
    } else {
        fz_check_tensor(&req.input, lim.max_elems, "decoded input");
        FUZZ_CHECK(strlen(req.input_name) < DCV_TENSOR_NAME_MAX, "bad input name");
        if (req.input.count <= ROUND_TRIP_MAX)
            response_round_trip(&req.input, rows);
        dcv_infer_request_release(&req);
    }
    ops_body(data, size, &lim);
    return 0;
}
