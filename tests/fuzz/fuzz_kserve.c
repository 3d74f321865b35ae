/* fuzz_kserve.c — the KServe v2 request decoder (JSON and binary framing).
 *
 * Input: a 4-byte little-endian word, then the body. The word's low 30 bits
 * are the Inference-Header-Content-Length: used when it fits the body, 0
 * (whole body is JSON) when it does not, and 0x3fffffff stands for "one past
 * the body" (refused). Bit 31 selects a small element limit (64) and bit 30
 * a nesting limit of 3, so the limit checks get exercised too. Inputs
 * shorter than 4 bytes are a JSON body with default limits. The body is
 * decoded from an exact-size copy (the decoder writes into it).
 *
 * The same body with spaces after every '[' (so that every numeric array is
 * long enough to go through the float codec rather than the cJSON tree) must
 * decode to the same result: failure with the same HTTP status, or success
 * with the same tensor bits.
 * On success: the tensor is consistent (shape product = count, finite
 * values), id/name fit their buffers, and three round trips give back the
 * same bits: the floats re-encoded as a KServe JSON request, as a binary
 * request, and the KServe response encoder read back as a plain tensor.
 * An input in shared memory (Triton's extension) decodes to a shape without
 * data; its bytes are then read from a zeroed buffer of the declared size,
 * and the shared-memory response encoder must write JSON.
 */
#include <stdbool.h>

#include "deconvd/answer.h"
#include "deconvd/buf.h"
#include "deconvd/floatcodec.h"
#include "deconvd/json.h"
#include "deconvd/jsonbody.h"
#include "deconvd/kserve.h"
#include "deconvd/tensor.h"
#include "fuzzutil.h"

#define MAX_ELEMS ((size_t)1 << 20)
#define SMALL_ELEMS 64
#define SMALL_DEPTH 3
#define ROUND_TRIP_MAX ((size_t)1 << 14)  /* elements re-encoded on success */
#define PAD 40                            /* more than a side-table marker */

static const struct dcv_decode_limits limits = { .max_elems = MAX_ELEMS, .max_depth = 0 };

/* "[d0,d1,...]" */
static size_t put_shape(char *p, const struct dcv_tensor *t)
{
    size_t n = 0;
    p[n++] = '[';
    for (int i = 0; i < t->ndim; i++)
        n += (size_t)sprintf(p + n, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    p[n++] = ']';
    return n;
}

/* The tensor as a JSON request, then as a binary one: same bits back. */
static void request_round_trips(const struct dcv_tensor *t)
{
    char err[DCV_ERRLEN];
    size_t cap = 256 + t->count * (DCV_FLOAT_MAXLEN + 1) + t->count * 4;
    char *buf = malloc(cap);
    struct dcv_infer_request back;
    if (!buf) abort();

    size_t n = (size_t)sprintf(buf, "{\"inputs\":[{\"name\":\"in\",\"datatype\":\"FP32\","
                                    "\"shape\":");
    n += put_shape(buf + n, t);
    n += (size_t)sprintf(buf + n, ",\"data\":");
    n += dcv_float_array_format(t->data, t->count, buf + n, cap - n);
    n += (size_t)sprintf(buf + n, "}]}");
    fz_err_init(err);
    int rc = dcv_kserve_decode(buf, n, 0, &limits, &back, err);
    FUZZ_CHECK(rc == 0, "re-encoded JSON request refused: %s", err);
    fz_same_tensor(t, &back.input, "JSON request round trip");
    dcv_infer_request_release(&back);

    n = (size_t)sprintf(buf, "{\"inputs\":[{\"name\":\"in\",\"datatype\":\"FP32\",\"shape\":");
    n += put_shape(buf + n, t);
    n += (size_t)sprintf(buf + n, ",\"parameters\":{\"binary_data_size\":%zu}}]}",
                         t->count * sizeof(float));
    size_t hlen = n;
    memcpy(buf + n, t->data, t->count * sizeof(float)); /* little-endian host */
    n += t->count * sizeof(float);
    fz_err_init(err);
    rc = dcv_kserve_decode(buf, n, hlen, &limits, &back, err);
    FUZZ_CHECK(rc == 0, "re-encoded binary request refused: %s", err);
    fz_same_tensor(t, &back.input, "binary request round trip");
    dcv_infer_request_release(&back);
    free(buf);
}

/* The response encoder (with the client's id in it) must write JSON that
 * reads back as the same tensor; the binary form must frame correctly. */
static void response_round_trip(const struct dcv_infer_request *req)
{
    const struct dcv_tensor *t = &req->input;
    char err[DCV_ERRLEN];
    size_t len = 0, hlen = 0;
    char *out;
    const struct dcv_answer_names names = { "model", "1", req->has_id ? req->id : NULL, NULL };
    fz_err_init(err);
    int rc = dcv_answer_kserve(&names, t->shape, t->ndim, t->data, false, &out, &len, &hlen, err);
    FUZZ_CHECK(rc == 0, "answer_kserve failed: %s", err);
    FUZZ_CHECK(hlen == len && strlen(out) == len, "encode_kserve: len %zu, header %zu, strlen %zu",
               len, hlen, strlen(out));
    fz_err_init(err);
    struct dcv_jsonbody *b;
    rc = dcv_jsonbody_parse(out, len, &limits, &b, err);
    FUZZ_CHECK(rc == 0, "encoded response is not readable: %s", err);
    const struct dcv_json *root = dcv_jsonbody_root(b);
    if (req->has_id) {
        const char *id = dcv_json_string(dcv_json_get(root, "id"));
        FUZZ_CHECK(id && strcmp(id, req->id) == 0, "id did not survive the response encoder");
    }
    const struct dcv_json *o = dcv_json_first(dcv_json_get(root, "outputs"));
    struct dcv_tensor back;
    fz_err_init(err);
    rc = dcv_tensor_from_json(b, o, &limits, &back, err);
    FUZZ_CHECK(rc == 0, "encoded response output not a tensor: %s", err);
    fz_same_tensor(t, &back, "response round trip");
    dcv_tensor_release(&back);
    dcv_jsonbody_free(b);
    dcv_buf_free(out);

    fz_err_init(err);
    rc = dcv_answer_kserve(&names, t->shape, t->ndim, t->data, true, &out, &len, &hlen, err);
    FUZZ_CHECK(rc == 0, "binary answer_kserve failed: %s", err);
    FUZZ_CHECK(hlen + t->count * sizeof(float) == len, "binary response: header %zu + %zu != %zu",
               hlen, t->count * sizeof(float), len);
    FUZZ_CHECK(memcmp(out + hlen, t->data, t->count * sizeof(float)) == 0,
               "binary response payload differs");
    struct dcv_json *hdr = dcv_json_parse(out, hlen, err);
    FUZZ_CHECK(hdr != NULL, "binary response header is not JSON: %s", err);
    dcv_json_free(hdr);
    dcv_buf_free(out);
}

/* Decodes the body again with its JSON part padded (see fz_pad_arrays). */
static void padded_decode(const uint8_t *data, size_t size, size_t header_len,
                          const struct dcv_decode_limits *lim, int rc,
                          const struct dcv_infer_request *req)
{
    if (header_len > size) return;
    size_t jlen = header_len ? header_len : size, plen;
    char *pj = fz_pad_arrays((const char *)data, jlen, PAD, &plen);
    char *body = malloc(plen + (size - jlen) + 1), err[DCV_ERRLEN];
    if (!body) abort();
    memcpy(body, pj, plen);
    memcpy(body + plen, data + jlen, size - jlen);
    free(pj);
    struct dcv_infer_request again;
    fz_err_init(err);
    int rc2 = dcv_kserve_decode(body, plen + (size - jlen), header_len ? plen : 0, lim,
                                       &again, err);
    /* the same outcome; among failures, the same HTTP status (short arrays
     * are checked by the tree walker, long ones by the codec first, so which
     * 400 error is named first may differ) */
    FUZZ_CHECK((rc == 0) == (rc2 == 0) &&
                   dcv_error_http_status(rc) == dcv_error_http_status(rc2),
               "padding the arrays changed the verdict: %s -> %s (%s)", dcv_error_name(rc),
               dcv_error_name(rc2), rc2 ? err : "");
    if (!rc && req->input_shm.used) {
        FUZZ_CHECK(again.input_shm.used && again.input.data == NULL &&
                       again.input.count == req->input.count &&
                       again.input_shm.byte_size == req->input_shm.byte_size &&
                       again.input_shm.offset == req->input_shm.offset &&
                       strcmp(again.input_shm.region, req->input_shm.region) == 0,
                   "padding the arrays changed the shared-memory input");
        dcv_infer_request_release(&again);
    } else if (!rc) {
        fz_same_tensor(&req->input, &again.input, "padded arrays");
        FUZZ_CHECK(strcmp(req->id, again.id) == 0 && strcmp(req->input_name, again.input_name) == 0 &&
                       req->binary_output == again.binary_output &&
                       req->output_requested == again.output_requested,
                   "padding the arrays changed the request's fields");
        dcv_infer_request_release(&again);
    }
    free(body);
}

/* A decoded shared-memory input: shape only; read it from zeroed bytes. */
static void shm_input(struct dcv_infer_request *req, size_t max_elems)
{
    char err[DCV_ERRLEN];
    FUZZ_CHECK(req->input.data == NULL, "shared-memory input came with data");
    FUZZ_CHECK(req->input_shm.region[0] && strlen(req->input_shm.region) < DCV_TENSOR_REGION_MAX,
               "bad region name");
    FUZZ_CHECK(req->input.count >= 1 && req->input.count <= max_elems, "count %zu",
               req->input.count);
    size_t n = (size_t)req->input_shm.byte_size;
    FUZZ_CHECK(n % req->input.count == 0 && n / req->input.count >= 1 &&
                   n / req->input.count <= 8, "byte size %zu for %zu values", n,
               req->input.count);
    if (n > ROUND_TRIP_MAX * 8) return;
    unsigned char *zero = calloc(1, n + 1);
    if (!zero) abort();
    fz_err_init(err);
    FUZZ_CHECK(dcv_kserve_decode_raw(req, zero + 1, n + 1, true, err) == DCV_EINVAL,
               "a wrong byte count was read");
    fz_err_init(err);
    int rc = dcv_kserve_decode_raw(req, zero, n, true, err);
    FUZZ_CHECK(rc == 0, "zeroed shared memory refused: %s", err);
    fz_check_tensor(&req->input, max_elems, "shared-memory input");
    size_t len = 0;
    const struct dcv_answer_names names = { "model", "1", req->has_id ? req->id : NULL, NULL };
    char *out = dcv_answer_kserve_shm(&names, req->input.shape, req->input.ndim,
                                      &req->input_shm, &len);
    FUZZ_CHECK(out != NULL && strlen(out) == len, "answer_kserve_shm");
    struct dcv_json *j = dcv_json_parse(out, len, err);
    FUZZ_CHECK(j != NULL, "shared-memory response is not JSON: %s", err);
    dcv_json_free(j);
    dcv_buf_free(out);
    free(zero);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t header_len = 0;
    struct dcv_decode_limits lim = limits;
    if (size >= 4) {
        uint32_t h = fz_le32(data), hl = h & 0x3fffffffu;
        data += 4;
        size -= 4;
        header_len = hl == 0x3fffffffu ? size + 1 : hl <= size ? hl : 0;
        if (h >> 31) lim.max_elems = SMALL_ELEMS;
        if (h >> 30 & 1) lim.max_depth = SMALL_DEPTH;
    }
    char *body = fz_copy(data, size);
    char err[DCV_ERRLEN];
    struct dcv_infer_request req;
    fz_err_init(err);
    /* an aligned FP32 binary input is borrowed from body: it lives as long */
    int rc = dcv_kserve_decode(body, size, header_len, &lim, &req, err);
    FZ_LOG("kserve: header_len %zu: %s %s", header_len, dcv_error_name(rc), rc ? err : "");
    padded_decode(data, size, header_len, &lim, rc, &req);
    if (rc) {
        fz_check_error(rc, err, "dcv_kserve_decode");
        FUZZ_CHECK(req.input.data == NULL, "failed decode left data behind");
        free(body);
        return 0;
    }
    if (req.input_shm.used) {
        shm_input(&req, lim.max_elems);
        dcv_infer_request_release(&req);
        free(body);
        return 0;
    }
    fz_check_tensor(&req.input, lim.max_elems, "decoded input");
    FUZZ_CHECK(strlen(req.id) < DCV_TENSOR_ID_MAX && (req.has_id || req.id[0] == '\0'),
               "bad id");
    FUZZ_CHECK(strlen(req.input_name) < DCV_TENSOR_NAME_MAX, "bad input name");
    if (req.input.count <= ROUND_TRIP_MAX) {
        request_round_trips(&req.input);
        response_round_trip(&req);
    }
    dcv_infer_request_release(&req);
    free(body);
    return 0;
}
