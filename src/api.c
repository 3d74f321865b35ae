/* api.c — routes and handlers of the HTTP API.
 *
 * Routing is a hand-written match on path segments (the API is small and a
 * table of patterns would be longer). Health, metadata, config, shape,
 * stats, repository and metrics answer on the loop thread. Inference and
 * ops become a `struct job`: the pool thread decodes the body (the float
 * codec, not a JSON tree), runs the model and encodes the answer, so the
 * loop thread only moves bytes and stays responsive to health checks under
 * load. A job holds a registry reference, released when it is answered, so
 * reloads never pull a model from under a request. The wait queue is
 * bounded by the scheduler: a full queue is a 503 with Retry-After at once.
 * Owns the shared-memory region table (shm.c); jobs hold region references
 * like model references. Loop thread, except the job work functions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deconvd/answer.h"
#include "deconvd/api.h"
#include "deconvd/buf.h"
#include "deconvd/config.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/http.h"
#include "deconvd/json.h"
#include "deconvd/jsonbody.h"
#include "deconvd/kserve.h"
#include "deconvd/layer.h"
#include "deconvd/log.h"
#include "deconvd/metrics.h"
#include "deconvd/model.h"
#include "deconvd/op.h"
#include "deconvd/registry.h"
#include "deconvd/sched.h"
#include "deconvd/shm.h"
#include "deconvd/tensor.h"
#include "deconvd/tfserving.h"

#define JSON "application/json"
#define MAX_SEGS 8
#define SHM_DISABLED "the system shared memory extension is disabled: set \"shared_memory\": " \
                     "true in the config file to enable it (read docs/security.md first)"

struct dcv_api {
    const struct dcv_config *cfg;
    struct dcv_registry *reg;
    struct dcv_metrics *metrics;
    struct dcv_shm *shm;               /* registered regions (empty while disabled) */
    bool ready;
    long inflight;
    void (*idle_cb)(void *);
    void *idle_arg;
};

enum job_kind { JOB_KSERVE, JOB_TFS, JOB_OP };

struct job {
    struct dcv_api *api;
    struct dcv_http_req *req;
    struct dcv_model_ref ref;
    enum job_kind kind;
    int op_rank;
    char *body;
    size_t len, header_len;
    /* results, written by the pool thread */
    int rc;
    char err[DCV_ERRLEN];
    char *out;
    size_t out_len, out_header_len;
    bool binary;
    uint64_t t_submit, t_start, t_decoded, t_computed, t_done, deadline;
};

struct dcv_api *dcv_api_new(const struct dcv_config *cfg, struct dcv_registry *reg,
                            struct dcv_metrics *metrics)
{
    struct dcv_api *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = cfg;
    a->reg = reg;
    a->metrics = metrics;
    if (!(a->shm = dcv_shm_new(DCV_SHM_DEFAULT_MAX_REGIONS))) {
        free(a);
        return NULL;
    }
    return a;
}

/* The server frees the API after the scheduler has finished every job, so
 * no region is still in use here and all are unmapped. */
void dcv_api_free(struct dcv_api *a)
{
    if (!a) return;
    dcv_shm_free(a->shm);
    free(a);
}
void dcv_api_set_ready(struct dcv_api *a, bool ready) { a->ready = ready; }
long dcv_api_inflight(const struct dcv_api *a) { return a->inflight; }

void dcv_api_on_idle(struct dcv_api *a, void (*cb)(void *), void *arg)
{
    a->idle_cb = cb;
    a->idle_arg = arg;
}

/* ---- responses ---- */

static const char *label_model(struct dcv_api *a, const char *m)
{
    return m && dcv_registry_known(a->reg, m) ? m : "";
}

static void finish(struct dcv_api *a, struct dcv_http_req *req, const char *model, int status)
{
    dcv_metrics_request(a->metrics, label_model(a, model), dcv_http_endpoint(req), status);
}

static void send_text(struct dcv_api *a, struct dcv_http_req *req, const char *model,
                      int status, const char *ctype, char *body, size_t len)
{
    struct dcv_http_header h[] = { { "Retry-After", "1" } };
    finish(a, req, model, status);
    dcv_http_respond(req, status, ctype, body, 0, len, h, status == 503 ? 1 : 0);
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs,
 * surrogates or code points above U+10FFFF), 0 if there is none. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    size_t n = (size_t)(end - p), k;
    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) k = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) k = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) k = 4;
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
        return 0;
    return k;
}

/* JSON text must be UTF-8 (RFC 8259): strings from it are echoed in
 * answers (ids, names in error messages). Any thread. */
static int check_utf8(const char *s, size_t n, char *err)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        uint64_t w;
        if (end - p >= 8 && (memcpy(&w, p, 8), !(w & 0x8080808080808080ull))) {
            p += 8;                                 /* ASCII fast path */
            continue;
        }
        size_t k = utf8_seq(p, end);
        if (!k)
            return dcv_errf(err, DCV_EPARSE, "request body is not valid UTF-8 (byte %zu)",
                            (size_t)(p - (const unsigned char *)s));
        p += k;
    }
    return 0;
}

/* Replaces each byte that is not part of valid UTF-8 by '?', in place. */
static void utf8_scrub(char *s, size_t n)
{
    unsigned char *p = (unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t k = utf8_seq(p, end);
        if (!k) *p = '?', k = 1;
        p += k;
    }
}

/* {"error": msg} with msg quoted, any invalid UTF-8 in it (request bytes,
 * or a multi-byte character cut by a length limit) replaced by '?'. */
static char *error_body(const char *msg, size_t *len)
{
    char *clean = strdup(msg), *b = NULL;
    *len = 0;
    if (!clean) return NULL;
    utf8_scrub(clean, strlen(clean));
    size_t need = dcv_json_quote(NULL, 0, clean) + 16;
    if ((b = dcv_buf_alloc(need))) {
        size_t n = (size_t)snprintf(b, need, "{\"error\":");
        n += dcv_json_quote(b + n, need - n, clean);
        b[n++] = '}';
        *len = n;
    }
    free(clean);
    return b;
}

/* A response body (dcv_buf) holding a copy of s, or NULL. */
static char *body_dup(const char *s, size_t n)
{
    char *b = dcv_buf_alloc(n + 1);
    if (b) memcpy(b, s, n + 1);
    return b;
}

static void send_json(struct dcv_api *a, struct dcv_http_req *req, const char *model,
                      int status, struct dcv_json *doc)
{
    char *s = dcv_json_print(doc), *b;
    dcv_json_free(doc);
    if (s) utf8_scrub(s, strlen(s));      /* model-file text (index reasons, config) */
    b = s ? body_dup(s, strlen(s)) : NULL;
    free(s);
    if (!b) {
        b = body_dup("{\"error\":\"out of memory\"}", 25);
        status = 500;
    }
    send_text(a, req, model, status, JSON, b, b ? strlen(b) : 0);
}

static void send_error(struct dcv_api *a, struct dcv_http_req *req, const char *model, int code,
                       const char *msg)
{
    size_t n;
    char *b = error_body(msg, &n);
    send_text(a, req, model, dcv_error_http_status(code), JSON, b, n);
}

static struct dcv_json *obj_bool(const char *key, bool v)
{
    struct dcv_json *o = dcv_json_new_object();
    dcv_json_add(o, key, dcv_json_new_bool(v));
    return o;
}

/* ---- auth ---- */

static bool ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++) d |= (unsigned char)(a[i % (la ? la : 1)] ^ b[i]);
    return d == 0 && la;
}

static bool authorized(struct dcv_api *a, struct dcv_http_req *req)
{
    if (!a->cfg->auth_token[0]) return true;
    const char *h = dcv_http_header(req, "Authorization");
    /* RFC 7235: the scheme is case-insensitive, then one or more spaces */
    if (!h || strncasecmp(h, "Bearer", 6) != 0 || h[6] != ' ') return false;
    for (h += 6; *h == ' '; h++) {}
    return ct_equal(h, a->cfg->auth_token);
}

/* ---- jobs ---- */

static void job_free(struct job *j)
{
    dcv_buf_free(j->body);
    dcv_buf_free(j->out);
    free(j);
}

static void idle_check(struct dcv_api *a)
{
    if (a->inflight == 0 && a->idle_cb) a->idle_cb(a->idle_arg);
}

static void record_stats(struct job *j, bool ok)
{
    struct dcv_model_stats *s = j->ref.stats;
    struct dcv_api *a = j->api;
    uint64_t total = j->t_done - j->t_submit, queue = j->t_start - j->t_submit;
    if (!s) return;
    struct dcv_stat *which = ok ? &s->success : &s->fail;
    which->count++;
    which->ns += total;
    if (!ok) return;
    s->queue.count++, s->queue.ns += queue;
    s->compute_input.count++, s->compute_input.ns += j->t_decoded - j->t_start;
    s->compute_infer.count++, s->compute_infer.ns += j->t_computed - j->t_decoded;
    s->compute_output.count++, s->compute_output.ns += j->t_done - j->t_computed;
    s->inference_count++;
    s->execution_count++;
    s->last_inference_ms = (uint64_t)time(NULL) * 1000;
    dcv_metrics_observe(a->metrics, DCV_HIST_REQUEST, j->ref.name, total / 1e9);
    dcv_metrics_observe(a->metrics, DCV_HIST_QUEUE, j->ref.name, queue / 1e9);
    dcv_metrics_observe(a->metrics, DCV_HIST_COMPUTE, j->ref.name,
                        (j->t_computed - j->t_decoded) / 1e9);
}

static void job_done(void *arg)
{
    struct job *j = arg;
    struct dcv_api *a = j->api;
    const char *model = j->ref.name ? j->ref.name : "";
    if (!j->t_done) j->t_done = dcv_now_ns();
    record_stats(j, j->rc == 0);
    if (j->rc) {
        send_error(a, j->req, model, j->rc, j->err);
    } else {
        char hl[32];
        struct dcv_http_header h[] = { { "Inference-Header-Content-Length", hl } };
        snprintf(hl, sizeof hl, "%zu", j->out_header_len);
        finish(a, j->req, model, 200);
        dcv_http_respond(j->req, 200, j->binary ? "application/octet-stream" : JSON, j->out, 0,
                         j->out_len, h, j->binary ? 1 : 0);
        j->out = NULL;
    }
    if (j->ref.ver) dcv_registry_release(a->reg, &j->ref);
    job_free(j);
    a->inflight--;
    idle_check(a);
}

static int output_shape(struct job *j, struct dcv_infer_request *in, int64_t *oshape,
                        size_t *count)
{
    int rc;
    if (strcmp(in->input_name, "input") != 0 && j->kind == JOB_KSERVE)
        return dcv_errf(j->err, DCV_EINVAL, "unexpected input '%.60s': model '%s' has one "
                        "input named 'input'", in->input_name, j->ref.name);
    if ((rc = dcv_model_output_shape(j->ref.model, in->input.shape, in->input.ndim, oshape,
                                     count, j->err)))
        return rc;
    if (*count > j->api->cfg->max_tensor_elems)
        return dcv_errf(j->err, DCV_ETOOBIG, "the output would hold %zu values, above "
                        "max_tensor_elems (%zu)", *count, j->api->cfg->max_tensor_elems);
    return 0;
}

/* Where the output goes: straight into the response for binary KServe
 * answers (no copy of the biggest buffer), else a buffer to encode from. */
static float *output_buffer(struct job *j, struct dcv_infer_request *in, const int64_t *oshape,
                            size_t count, float **scratch)
{
    float *dst = NULL;
    if (j->kind == JOB_KSERVE && in->binary_output) {
        char ver[16];
        snprintf(ver, sizeof ver, "%d", j->ref.version);
        j->binary = true;
        j->out = dcv_answer_kserve_binary_open(j->ref.name, ver, in->id, in->has_id, oshape,
                                               in->input.ndim, &dst, &j->out_len,
                                               &j->out_header_len);
        return j->out ? dst : NULL;
    }
    return *scratch = dcv_buf_alloc(sizeof(float) * count);
}

static void shape_str(char *buf, size_t cap, const int64_t *shape, int nd)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < nd && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Resolves the regions of an input and/or output in shared memory and
 * reads the input from its region (in place when it is aligned FP32).
 * Each reference keeps its mapping until the job drops it, so an
 * unregister meanwhile never unmaps memory under the job. Pool thread
 * (never inline: small_enough sends such requests to the pool). */
static int shm_resolve(struct job *j, struct dcv_infer_request *in, const int64_t *oshape,
                       size_t count, struct dcv_shm_ref *sin, struct dcv_shm_ref *sout)
{
    const struct dcv_tensor_shm *is = &in->input_shm, *os = &in->output_shm;
    struct dcv_api *a = j->api;
    int rc;
    if (!a->cfg->shared_memory) return dcv_errf(j->err, DCV_EINVAL, SHM_DISABLED);
    if (os->used) {
        char st[DCV_MAX_DIMS * 22 + 3];
        shape_str(st, sizeof st, oshape, in->input.ndim);
        if (os->byte_size < count * sizeof(float))
            return dcv_errf(j->err, DCV_EINVAL, "output 'output': parameters."
                            "shared_memory_byte_size is %llu but the FP32 output of shape %s "
                            "needs %zu bytes", (unsigned long long)os->byte_size, st,
                            count * sizeof(float));
        if ((rc = dcv_shm_acquire(a->shm, os->region, os->offset, os->byte_size, sout, j->err)))
            return rc;
    }
    if (!is->used) return 0;
    if ((rc = dcv_shm_acquire(a->shm, is->region, is->offset, is->byte_size, sin, j->err)))
        return rc;
    /* An input sharing bytes with the output is copied: the engine would
     * otherwise read values it has already overwritten. */
    return dcv_kserve_decode_raw(in, sin->addr, sin->len, !dcv_shm_overlap(sin, sout), j->err);
}

/* Adaptive threads: the cores split among the jobs running now (this one
 * included). Pool thread. */
static void pick_threads(const struct dcv_config *cfg)
{
    if (cfg->threads_per_request) return;      /* fixed: set once per thread */
    long running = dcv_sched_running();
    int n = running > 0 ? cfg->cores / (int)running : cfg->cores;
    dcv_engine_set_threads(n > 0 ? n : 1);
}

static void infer_work(void *arg)
{
    struct job *j = arg;
    struct dcv_infer_request in = { 0 };
    struct dcv_decode_limits lim = { .max_elems = j->api->cfg->max_tensor_elems,
                                     .max_json_nodes = j->api->cfg->max_json_nodes };
    struct dcv_shm_ref shm_in = { 0 }, shm_out = { 0 };
    int64_t oshape[DCV_MAX_DIMS];
    char ver[16];
    float *out = NULL;
    size_t count = 0;
    bool rows = false;
    j->t_start = dcv_now_ns();
    pick_threads(j->api->cfg);
    if (j->t_start > j->deadline) {
        j->rc = dcv_errf(j->err, DCV_ETIMEDOUT, "request waited longer than "
                         "request_timeout_ms (%d ms) for a worker", j->api->cfg->request_timeout_ms);
        goto out;
    }
    if ((j->rc = check_utf8(j->body, j->header_len ? j->header_len : j->len, j->err))) goto out;
    j->rc = j->kind == JOB_KSERVE
          ? dcv_kserve_decode(j->body, j->len, j->header_len, &lim, &in, j->err)
          : dcv_tfserving_decode(j->body, j->len, &lim, &in, &rows, j->err);
    if (j->rc || (j->rc = output_shape(j, &in, oshape, &count))) goto out;
    if ((in.input_shm.used || in.output_shm.used) &&
        (j->rc = shm_resolve(j, &in, oshape, count, &shm_in, &shm_out)))
        goto out;
    float *dst;
    if (shm_out.region)              /* computed straight into the region when aligned */
        dst = (uintptr_t)shm_out.addr % _Alignof(float) == 0 ? (float *)(void *)shm_out.addr
            : (out = dcv_buf_alloc(sizeof(float) * count));
    else
        dst = output_buffer(j, &in, oshape, count, &out);
    if (!dst) {
        j->rc = dcv_errf(j->err, DCV_ENOMEM, "out of memory for a %zu-value output", count);
        goto out;
    }
    j->t_decoded = dcv_now_ns();
    int nd = in.input.ndim;
    j->rc = dcv_model_infer(j->ref.model, in.input.data, in.input.shape, nd, dst, count, j->err);
    if (j->rc) goto out;
    j->t_computed = dcv_now_ns();
    snprintf(ver, sizeof ver, "%d", j->ref.version);
    if (shm_out.region) {
        dcv_answer_kserve_binary_close(dst, count);      /* little-endian in the region */
        if ((void *)dst != (void *)shm_out.addr)
            memcpy(shm_out.addr, dst, sizeof(float) * count);
        j->out = dcv_answer_kserve_shm(j->ref.name, ver, in.id, in.has_id, oshape, nd,
                                       &in.output_shm, &j->out_len);
    } else if (j->binary) {
        dcv_answer_kserve_binary_close(dst, count);
    } else if (j->kind == JOB_KSERVE) {
        j->rc = dcv_answer_kserve(j->ref.name, ver, in.id, in.has_id, oshape, nd, out, false,
                                  &j->out, &j->out_len, &j->out_header_len, j->err);
    } else {
        j->rc = dcv_answer_tfserving(oshape, nd, out, rows, &j->out, &j->out_len, j->err);
    }
    if (!j->rc && !j->out)
        j->rc = dcv_errf(j->err, DCV_ENOMEM, "out of memory encoding the response");
out:
    j->t_done = dcv_now_ns();
    if (!j->t_decoded) j->t_decoded = j->t_done;
    if (!j->t_computed) j->t_computed = j->t_done;
    dcv_buf_free(out);
    dcv_infer_request_release(&in);      /* before the body or region it may borrow from */
    dcv_shm_release(&shm_in);
    dcv_shm_release(&shm_out);
    dcv_buf_free(j->body);
    j->body = NULL;
}

static int json_dims(const struct dcv_json *v, int64_t *out, int max, bool allow_unknown,
                     const char *what, char *err)
{
    if (dcv_json_type(v) != DCV_JSON_ARRAY || (int)dcv_json_size(v) > max)
        return dcv_errf(err, DCV_EINVAL, "%s must be a list of at most %d integers", what, max);
    int i = 0;
    for (const struct dcv_json *e = dcv_json_first(v); e; e = dcv_json_next(e), i++) {
        if (allow_unknown && dcv_json_type(e) == DCV_JSON_NULL) out[i] = -1;
        else if (!dcv_json_int(e, allow_unknown ? -1 : 1, INT64_C(1) << 40, &out[i]))
            return dcv_errf(err, DCV_EINVAL, "%s[%d] must be %s", what, i,
                            allow_unknown ? "null, -1 or a positive integer" : "a positive integer");
    }
    return i;
}

static int op_ints(const struct dcv_json *v, int64_t *out, int *n, const char *what, char *err)
{
    int64_t x;
    *n = 0;
    if (!v || dcv_json_type(v) == DCV_JSON_NULL) return 0;
    if (dcv_json_int(v, 1, DCV_MAX_STRIDE, &x)) {
        out[0] = x;
        *n = 1;
        return 0;
    }
    int k = json_dims(v, out, DCV_MAX_DIMS, false, what, err);
    if (k < 0) return k;
    *n = k;
    return 0;
}

static void op_work(void *arg)
{
    struct job *j = arg;
    struct dcv_decode_limits lim = { .max_elems = j->api->cfg->max_tensor_elems,
                                     .max_json_nodes = j->api->cfg->max_json_nodes };
    struct dcv_tensor in = { 0 }, filt = { 0 };
    struct dcv_op op = { .rank = j->op_rank };
    float *out = NULL;
    j->t_start = dcv_now_ns();
    pick_threads(j->api->cfg);
    struct dcv_jsonbody *b = NULL;
    if ((j->rc = check_utf8(j->body, j->len, j->err))) goto out;
    j->rc = dcv_jsonbody_parse(j->body, j->len, &lim, &b, j->err);
    const struct dcv_json *root = dcv_jsonbody_root(b);
    if (j->rc) goto out;
    if ((j->rc = dcv_tensor_from_json(b, dcv_json_get(root, "input"), &lim, &in, j->err)) ||
        (j->rc = dcv_tensor_from_json(b, dcv_json_get(root, "filters"), &lim, &filt, j->err)))
        goto out;
    op.input = in.data, op.input_ndim = in.ndim;
    op.filters = filt.data, op.filter_ndim = filt.ndim;
    memcpy(op.input_shape, in.shape, sizeof(int64_t) * (size_t)(in.ndim < 5 ? in.ndim : 5));
    memcpy(op.filter_shape, filt.shape, sizeof(int64_t) * (size_t)(filt.ndim < 5 ? filt.ndim : 5));
    op.padding = dcv_json_string(dcv_json_get(root, "padding"));
    op.data_format = dcv_json_string(dcv_json_get(root, "data_format"));
    int k = json_dims(dcv_json_get(root, "output_shape"), op.output_shape, DCV_MAX_DIMS, false,
                      "output_shape", j->err);
    if ((j->rc = k < 0 ? k : 0)) goto out;
    op.output_ndim = k;
    if ((j->rc = op_ints(dcv_json_get(root, "strides"), op.strides, &op.nstrides, "strides",
                         j->err)) ||
        (j->rc = op_ints(dcv_json_get(root, "dilations"), op.dilations, &op.ndilations,
                         "dilations", j->err)))
        goto out;
    if (!op.nstrides) op.strides[0] = 1, op.nstrides = 1;
    struct dcv_conv c;
    if ((j->rc = dcv_op_prepare(&op, &c, j->err))) goto out;
    size_t n = (size_t)dcv_shape_product(op.output_shape, op.output_ndim);
    if (n > j->api->cfg->max_tensor_elems) {
        j->rc = dcv_errf(j->err, DCV_ETOOBIG, "output of %zu values above max_tensor_elems", n);
        goto out;
    }
    if (!(out = dcv_buf_alloc(sizeof(float) * n))) {
        j->rc = dcv_errf(j->err, DCV_ENOMEM, "out of memory");
        goto out;
    }
    j->t_decoded = dcv_now_ns();
    if ((j->rc = dcv_op_run(&op, out, n, j->err))) goto out;
    j->t_computed = dcv_now_ns();
    j->rc = dcv_answer_plain(op.output_shape, op.output_ndim, out, &j->out, &j->out_len, j->err);
out:
    j->t_done = dcv_now_ns();
    if (!j->t_decoded) j->t_decoded = j->t_done;
    if (!j->t_computed) j->t_computed = j->t_done;
    dcv_buf_free(out);
    dcv_tensor_release(&in);
    dcv_tensor_release(&filt);
    dcv_jsonbody_free(b);
    dcv_buf_free(j->body);
    j->body = NULL;
}

/* Small enough to answer on the loop thread? The hand-offs to a worker
 * and back cost more than a tiny layer does. A body holds at most one
 * input value per 2 bytes of JSON ("0,") or per byte of binary (INT8),
 * which bounds the multiply-adds and the output size before decoding. */
static bool small_enough(const struct dcv_api *a, const struct job *j)
{
    const struct dcv_conv *c = &j->ref.model->layer.conv;
    size_t jlen = j->header_len ? j->header_len : j->len;
    double vals = j->header_len ? (double)j->len : (double)j->len / 2;
    double macs = vals * (double)c->filters, outs = macs / (double)c->in_channels;
    for (int i = 0; i < c->rank; i++) {
        macs *= (double)c->kernel[i];
        outs *= (double)(c->kernel[i] > c->strides[i] ? c->kernel[i] : c->strides[i]);
    }
    if (macs > (double)a->cfg->inline_max_work || outs > (double)a->cfg->inline_max_work / 16)
        return false;
    /* a tensor in shared memory is not bounded by the body (scanned last:
     * only bodies already this small are searched on the loop thread) */
    return !j->body || !memmem(j->body, jlen, "shared_memory", 13);
}

/* Queues a job, or runs it right here (here: small enough); on failure
 * answers at once and frees it. */
static void submit(struct dcv_api *a, struct job *j, void (*work)(void *), bool here)
{
    j->t_submit = dcv_now_ns();
    j->deadline = j->t_submit + (uint64_t)a->cfg->request_timeout_ms * 1000000u;
    a->inflight++;
    if (here) {
        work(j);
        job_done(j);
        return;
    }
    int rc = dcv_sched_submit(work, job_done, j);
    if (rc == 0) return;
    a->inflight--;
    send_error(a, j->req, j->ref.name,
               rc, rc == DCV_EBUSY ? "server busy: inference queue is full, retry later"
                                   : "cannot queue the request");
    if (j->ref.ver) dcv_registry_release(a->reg, &j->ref);
    job_free(j);
}

static struct job *job_new(struct dcv_api *a, struct dcv_http_req *req, enum job_kind kind)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->api = a;
    j->req = req;
    j->kind = kind;
    j->body = dcv_http_take_body(req, &j->len);
    return j;
}

/* ---- handlers ---- */

static bool acquire(struct dcv_api *a, struct dcv_http_req *req, const char *name,
                    struct dcv_model_ref *ref)
{
    char err[DCV_ERRLEN];
    int rc = dcv_model_name_valid(name) ? dcv_registry_acquire(a->reg, name, ref, err)
                                        : dcv_errf(err, DCV_ENOENT, "unknown model");
    if (rc) send_error(a, req, name, rc, err);
    return rc == 0;
}

static void h_infer(struct dcv_api *a, struct dcv_http_req *req, const char *name,
                    enum job_kind kind)
{
    struct job *j;
    const char *hcl = dcv_http_header(req, "Inference-Header-Content-Length");
    size_t hl = 0;
    if (hcl) {
        char *end;
        unsigned long long v = strtoull(hcl, &end, 10);
        size_t blen;
        dcv_http_body(req, &blen);
        if (*end || end == hcl || hcl[0] == '-' || v > blen)
            { send_error(a, req, name, DCV_EINVAL, "Inference-Header-Content-Length must "
                              "be a non-negative integer no larger than the body"); return; }
        hl = (size_t)v;
    }
    if (!(j = job_new(a, req, kind)))
        { send_error(a, req, name, DCV_ENOMEM, "out of memory"); return; }
    j->header_len = hl;
    if (!acquire(a, req, name, &j->ref)) {
        job_free(j);
        return;
    }
    submit(a, j, infer_work, small_enough(a, j));
}

static struct dcv_json *tensor_meta(const char *name, const int64_t *shape, int nd)
{
    struct dcv_json *o = dcv_json_new_object();
    dcv_json_add(o, "name", dcv_json_new_string(name));
    dcv_json_add(o, "datatype", dcv_json_new_string("FP32"));
    dcv_json_add(o, "shape", dcv_json_new_int_array(shape, (size_t)nd));
    return o;
}

static void h_metadata(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct dcv_model_ref ref;
    char ver[16];
    if (!acquire(a, req, name, &ref)) return;
    const struct dcv_model *m = ref.model;
    struct dcv_json *o = dcv_json_new_object(), *vs = dcv_json_new_array(),
                    *ins = dcv_json_new_array(), *outs = dcv_json_new_array();
    snprintf(ver, sizeof ver, "%d", ref.version);
    dcv_json_add(o, "name", dcv_json_new_string(name));
    dcv_json_append(vs, dcv_json_new_string(ver));
    dcv_json_add(o, "versions", vs);
    dcv_json_add(o, "platform", dcv_json_new_string("keras_conv_transpose"));
    dcv_json_append(ins, tensor_meta("input", m->in_sig, m->ndim));
    dcv_json_append(outs, tensor_meta("output", m->out_sig, m->ndim));
    dcv_json_add(o, "inputs", ins);
    dcv_json_add(o, "outputs", outs);
    dcv_registry_release(a->reg, &ref);
    send_json(a, req, name, 200, o);
}

static void h_model_config(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct dcv_model_ref ref;
    if (!acquire(a, req, name, &ref)) return;
    struct dcv_json *c = dcv_model_config_json(ref.model);
    dcv_registry_release(a->reg, &ref);
    send_json(a, req, name, c ? 200 : 500, c);
}

static void h_model_ready(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct dcv_model_ref ref;
    char err[DCV_ERRLEN];
    int rc = dcv_model_name_valid(name) ? dcv_registry_acquire(a->reg, name, &ref, err)
                                        : DCV_ENOENT;
    if (rc == DCV_ENOENT) { send_error(a, req, name, rc, "unknown model"); return; }
    if (rc == 0) dcv_registry_release(a->reg, &ref);
    struct dcv_json *o = obj_bool("ready", rc == 0);
    dcv_json_add(o, "name", dcv_json_new_string(name));
    send_json(a, req, name, rc == 0 ? 200 : 503, o);
}

static struct dcv_json *parse_body(struct dcv_api *a, struct dcv_http_req *req,
                                   const char *model)
{
    char err[DCV_ERRLEN];
    size_t len;
    char *body = dcv_http_body(req, &len);
    struct dcv_json_bound bound = { a->cfg->max_json_nodes, "max_json_nodes", NULL, NULL };
    struct dcv_json *doc = NULL;
    int rc = check_utf8(body, len, err);
    if (!rc) rc = dcv_json_parse_bounded(body, len, &bound, &doc, err);
    if (rc) send_error(a, req, model, rc, err);
    else if (dcv_json_type(doc) != DCV_JSON_OBJECT) {
        dcv_json_free(doc);
        send_error(a, req, model, DCV_EINVAL, "request body must be a JSON object");
        doc = NULL;
    }
    return doc;
}

static void shape_answer(struct dcv_api *a, struct dcv_http_req *req, const char *model,
                         const struct dcv_layer *l, const struct dcv_json *shape_node)
{
    int64_t in[DCV_MAX_DIMS], out[DCV_MAX_DIMS];
    char err[DCV_ERRLEN];
    int nd = json_dims(shape_node, in, DCV_MAX_DIMS, true, "input_shape", err);
    int rc = nd < 0 ? nd : dcv_layer_output_shape(l, in, nd, out, err);
    if (rc) { send_error(a, req, model, rc, err); return; }
    struct dcv_json *o = dcv_json_new_object();
    if (model) dcv_json_add(o, "model_name", dcv_json_new_string(model));
    dcv_json_add(o, "input_shape", dcv_json_new_int_array(in, (size_t)nd));
    dcv_json_add(o, "output_shape", dcv_json_new_int_array(out, (size_t)nd));
    send_json(a, req, model, 200, o);
}

static void h_model_shape(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct dcv_model_ref ref;
    struct dcv_json *doc = parse_body(a, req, name);
    if (!doc) return;
    if (acquire(a, req, name, &ref)) {
        shape_answer(a, req, name, &ref.model->layer, dcv_json_get(doc, "input_shape"));
        dcv_registry_release(a->reg, &ref);
    }
    dcv_json_free(doc);
}

static void h_shape(struct dcv_api *a, struct dcv_http_req *req)
{
    struct dcv_layer l;
    char err[DCV_ERRLEN];
    struct dcv_json *doc = parse_body(a, req, NULL);
    if (!doc) return;
    const struct dcv_json *cfg = dcv_json_get(doc, "config");
    int rc = dcv_layer_parse(dcv_json_string(dcv_json_get(doc, "class_name")),
                             cfg ? cfg : doc, &l, err);
    if (rc) send_error(a, req, NULL, rc, err);
    else {
        shape_answer(a, req, NULL, &l, dcv_json_get(doc, "input_shape"));
        dcv_layer_release(&l);
    }
    dcv_json_free(doc);
}

static void h_op(struct dcv_api *a, struct dcv_http_req *req, int rank)
{
    struct job *j = job_new(a, req, JOB_OP);
    if (!j) { send_error(a, req, NULL, DCV_ENOMEM, "out of memory"); return; }
    j->op_rank = rank;
    submit(a, j, op_work, false);
}

static void h_server_meta(struct dcv_api *a, struct dcv_http_req *req)
{
    static const char *const ext[] = { "binary_tensor_data", "model_repository",
                                       "statistics", "model_configuration", "schedule_policy"
                                       , "shape_inference", "tfserving_predict", "ops" };
    struct dcv_json *o = dcv_json_new_object(), *e = dcv_json_new_array();
    dcv_json_add(o, "name", dcv_json_new_string("deconvd"));
    dcv_json_add(o, "version", dcv_json_new_string(DCV_VERSION));
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (strcmp(ext[i], "schedule_policy")) dcv_json_append(e, dcv_json_new_string(ext[i]));
    if (a->cfg->shared_memory) dcv_json_append(e, dcv_json_new_string("system_shared_memory"));
    dcv_json_add(o, "extensions", e);
    send_json(a, req, NULL, 200, o);
}

static void h_metrics(struct dcv_api *a, struct dcv_http_req *req)
{
    struct dcv_gauges g = { .inflight = a->inflight, .queue_depth = dcv_sched_queued(),
                            .models_loaded = dcv_registry_ready_count(a->reg) };
    struct dcv_buf_stats bs;
    dcv_buf_get_stats(&bs);
    g.buf_cached_bytes = bs.cached_bytes, g.buf_hits = bs.hits, g.buf_misses = bs.misses;
    dcv_shm_totals(a->shm, &g.shm_regions, &g.shm_bytes);
    size_t len = 0;
    char *text = dcv_metrics_render(a->metrics, &g, &len), *b = text ? body_dup(text, len) : NULL;
    free(text);
    if (!b) { send_error(a, req, NULL, DCV_ENOMEM, "out of memory"); return; }
    send_text(a, req, NULL, 200, "text/plain; version=0.0.4; charset=utf-8", b, len);
}

struct load_ctx {
    struct dcv_api *a;
    struct dcv_http_req *req;
    char name[DCV_MODEL_NAME_MAX];
};

static void load_done(void *arg, int rc, const char *err)
{
    struct load_ctx *c = arg;
    if (rc) send_error(c->a, c->req, c->name, rc, err[0] ? err : "load failed");
    else send_json(c->a, c->req, c->name, 200, dcv_json_new_object());
    c->a->inflight--;
    idle_check(c->a);
    free(c);
}

static void h_repo(struct dcv_api *a, struct dcv_http_req *req, const char *name,
                   const char *action)
{
    if (!strcmp(action, "unload")) {
        int rc = dcv_registry_unload(a->reg, name);
        if (rc) { send_error(a, req, name, rc, "unknown model"); return; }
        { send_json(a, req, name, 200, dcv_json_new_object()); return; }
    }
    struct load_ctx *c = calloc(1, sizeof *c);
    if (!c) { send_error(a, req, name, DCV_ENOMEM, "out of memory"); return; }
    *c = (struct load_ctx){ .a = a, .req = req };
    snprintf(c->name, sizeof c->name, "%s", name);
    int rc = dcv_registry_reload(a->reg, name, load_done, c);
    if (rc) {
        free(c);
        { send_error(a, req, name, rc, rc == DCV_EBUSY ? "a reload is in progress, retry"
                                                            : "cannot start loading"); return; }
    }
    a->inflight++;
}

/* ---- system shared memory (Triton's extension) ---- */

static struct dcv_json *shm_status(const struct dcv_shm_info *s)
{
    struct dcv_json *o = dcv_json_new_object();
    dcv_json_add(o, "name", dcv_json_new_string(s->name));
    dcv_json_add(o, "key", dcv_json_new_string(s->key));
    dcv_json_add(o, "offset", dcv_json_new_number((double)s->offset));
    dcv_json_add(o, "byte_size", dcv_json_new_number((double)s->byte_size));
    return o;
}

/* [{"name","key","offset","byte_size"}, ...]: one region, or all. */
static void h_shm_status(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct dcv_json *arr = dcv_json_new_array();
    if (name) {
        struct dcv_shm_info info;
        if (dcv_shm_info(a->shm, name, &info)) {
            char msg[DCV_ERRLEN];
            snprintf(msg, sizeof msg, "unknown shared memory region '%s'", name);
            dcv_json_free(arr);
            send_error(a, req, NULL, DCV_ENOENT, msg);
            return;
        }
        dcv_json_append(arr, shm_status(&info));
    } else {
        struct dcv_shm_info *all = malloc(DCV_SHM_DEFAULT_MAX_REGIONS * sizeof *all);
        size_t n = all ? dcv_shm_list(a->shm, all, DCV_SHM_DEFAULT_MAX_REGIONS) : 0;
        if (!all) {
            dcv_json_free(arr);
            send_error(a, req, NULL, DCV_ENOMEM, "out of memory");
            return;
        }
        for (size_t i = 0; i < n; i++) dcv_json_append(arr, shm_status(&all[i]));
        free(all);
    }
    send_json(a, req, NULL, 200, arr);
}

/* A register body member that is a byte count (up to 2^53, exact in JSON). */
static bool shm_bytes(const struct dcv_json *doc, const char *key, bool required, uint64_t *out,
                      char *err)
{
    const struct dcv_json *v = dcv_json_get(doc, key);
    int64_t x = 0;
    if (!v && !required) {
        *out = 0;
        return true;
    }
    if (!v || !dcv_json_int(v, 0, INT64_C(1) << 53, &x)) {
        char got[48];
        if (v && dcv_json_type(v) == DCV_JSON_NUMBER)
            snprintf(got, sizeof got, "%.17g", dcv_json_number(v));
        else
            snprintf(got, sizeof got, "%s", v ? dcv_json_type_name(v) : "nothing");
        dcv_errf(err, DCV_EINVAL, "register: \"%s\" must be an integer number of bytes in "
                 "[0, 2^53], got %s", key, got);
        return false;
    }
    *out = (uint64_t)x;
    return true;
}

/* Body {"key": "/shm_key", "offset": N, "byte_size": N}. */
static void h_shm_register(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    char err[DCV_ERRLEN];
    uint64_t offset, size;
    struct dcv_json *doc = parse_body(a, req, NULL);
    if (!doc) return;
    const char *key = dcv_json_string(dcv_json_get(doc, "key"));
    int rc = DCV_EINVAL;
    for (const struct dcv_json *m = dcv_json_first(doc); m; m = dcv_json_next(m))
        if (strcmp(dcv_json_key(m), "key") && strcmp(dcv_json_key(m), "offset") &&
            strcmp(dcv_json_key(m), "byte_size")) {
            dcv_errf(err, rc, "register: unknown member \"%.64s\" (a register body is "
                     "{\"key\": \"/name\", \"offset\": N, \"byte_size\": N})",
                     dcv_json_key(m));
            goto out;
        }
    if (!key) {
        dcv_errf(err, rc, "register: \"key\" must be the shared memory object's name, a "
                 "string like \"/my_input\"");
        goto out;
    }
    if (!shm_bytes(doc, "offset", false, &offset, err) ||
        !shm_bytes(doc, "byte_size", true, &size, err))
        goto out;
    rc = dcv_shm_register(a->shm, name, key, offset, size, err);
out:
    dcv_json_free(doc);
    if (rc) send_error(a, req, NULL, rc, err);
    else send_json(a, req, NULL, 200, dcv_json_new_object());
}

/* Unregistering a name that is not registered succeeds, as in Triton:
 * clients unregister in clean-up paths without knowing what is left. */
static void h_shm_unregister(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    if (name) dcv_shm_unregister(a->shm, name);
    else dcv_shm_unregister_all(a->shm);
    send_json(a, req, NULL, 200, dcv_json_new_object());
}

/* ---- TF Serving metadata ---- */

static struct dcv_json *tf_shape(const int64_t *s, int nd)
{
    struct dcv_json *o = dcv_json_new_object(), *dims = dcv_json_new_array();
    for (int i = 0; i < nd; i++) {
        struct dcv_json *d = dcv_json_new_object();
        char n[24];
        snprintf(n, sizeof n, "%lld", (long long)s[i]);
        dcv_json_add(d, "size", dcv_json_new_string(n));
        dcv_json_add(d, "name", dcv_json_new_string(""));
        dcv_json_append(dims, d);
    }
    dcv_json_add(o, "dim", dims);
    dcv_json_add(o, "unknown_rank", dcv_json_new_bool(false));
    return o;
}

static struct dcv_json *tf_tensor(const char *name, const int64_t *s, int nd)
{
    struct dcv_json *o = dcv_json_new_object(), *w = dcv_json_new_object();
    dcv_json_add(o, "dtype", dcv_json_new_string("DT_FLOAT"));
    dcv_json_add(o, "tensor_shape", tf_shape(s, nd));
    dcv_json_add(o, "name", dcv_json_new_string(name));
    dcv_json_add(w, name, o);
    return w;
}

static void h_tf_status(struct dcv_api *a, struct dcv_http_req *req, const char *name,
                        bool metadata)
{
    struct dcv_model_ref ref;
    char ver[16];
    if (!acquire(a, req, name, &ref)) return;
    snprintf(ver, sizeof ver, "%d", ref.version);
    struct dcv_json *o = dcv_json_new_object();
    if (!metadata) {
        struct dcv_json *arr = dcv_json_new_array(), *v = dcv_json_new_object(),
                        *st = dcv_json_new_object();
        dcv_json_add(v, "version", dcv_json_new_string(ver));
        dcv_json_add(v, "state", dcv_json_new_string("AVAILABLE"));
        dcv_json_add(st, "error_code", dcv_json_new_string("OK"));
        dcv_json_add(st, "error_message", dcv_json_new_string(""));
        dcv_json_add(v, "status", st);
        dcv_json_append(arr, v);
        dcv_json_add(o, "model_version_status", arr);
    } else {
        struct dcv_json *spec = dcv_json_new_object(), *sig = dcv_json_new_object(),
                        *defs = dcv_json_new_object(), *sd = dcv_json_new_object(),
                        *md = dcv_json_new_object(), *wrap = dcv_json_new_object();
        dcv_json_add(spec, "name", dcv_json_new_string(name));
        dcv_json_add(spec, "signature_name", dcv_json_new_string(""));
        dcv_json_add(spec, "version", dcv_json_new_string(ver));
        dcv_json_add(o, "model_spec", spec);
        dcv_json_add(sd, "inputs", tf_tensor("input", ref.model->in_sig, ref.model->ndim));
        dcv_json_add(sd, "outputs", tf_tensor("output", ref.model->out_sig, ref.model->ndim));
        dcv_json_add(sd, "method_name", dcv_json_new_string("tensorflow/serving/predict"));
        dcv_json_add(defs, "serving_default", sd);
        dcv_json_add(sig, "signature_def", defs);
        dcv_json_add(wrap, "signature_def", sig);
        dcv_json_add(md, "signature_def", dcv_json_dup(sig));
        dcv_json_free(wrap);
        dcv_json_add(o, "metadata", md);
    }
    dcv_registry_release(a->reg, &ref);
    send_json(a, req, name, 200, o);
}

/* ---- routing ---- */

struct route {
    const char *seg[MAX_SEGS];
    int n;
    char buf[2048];
};

static int split(const char *path, struct route *r)
{
    if (strlen(path) >= sizeof r->buf) return -1;
    strcpy(r->buf, path);
    r->n = 0;
    for (char *s = strtok(r->buf, "/"); s; s = strtok(NULL, "/")) {
        if (r->n == MAX_SEGS) return -1;
        r->seg[r->n++] = s;
    }
    return 0;
}

static bool is(const struct route *r, int i, const char *s)
{
    return i < r->n && strcmp(r->seg[i], s) == 0;
}

/* Method check: true when it matches; otherwise answers 405. */
static bool method(struct dcv_api *a, struct dcv_http_req *req, const char *want,
                   const char *model)
{
    if (!strcmp(dcv_http_method(req), want)) return true;
    if (!strcmp(want, "GET") && !strcmp(dcv_http_method(req), "HEAD")) return true;
    char msg[96];
    snprintf(msg, sizeof msg, "method %.16s not allowed here: use %s", dcv_http_method(req), want);
    struct dcv_http_header h[] = { { "Allow", want } };
    size_t n;
    char *b = error_body(msg, &n);
    finish(a, req, model, 405);
    dcv_http_respond(req, 405, JSON, b, 0, n, h, 1);
    return false;
}

static void route_shm(struct dcv_api *a, struct dcv_http_req *req, struct route *r)
{
    /* /v2/systemsharedmemory[/region/{name}]/{status,register,unregister} */
    const char *name = NULL, *act = "";
    if (r->n == 3) act = r->seg[2];
    else if (r->n == 5 && is(r, 2, "region")) name = r->seg[3], act = r->seg[4];
    bool status = !strcmp(act, "status"), reg = !strcmp(act, "register"),
         unreg = !strcmp(act, "unregister");
    dcv_http_set_log(req, NULL, status ? "shm_status" : reg ? "shm_register"
                              : unreg ? "shm_unregister" : "shm");
    if (!status && !unreg && !(reg && name))
        { send_error(a, req, NULL, DCV_ENOENT, "no such endpoint"); return; }
    if (!a->cfg->shared_memory) { send_error(a, req, NULL, DCV_EINVAL, SHM_DISABLED); return; }
    if (name && !dcv_shm_name_valid(name)) {
        send_error(a, req, NULL, DCV_EINVAL, "invalid shared memory region name: use 1-127 of "
                   "[A-Za-z0-9_.-], not starting with '.'");
        return;
    }
    if (!method(a, req, status ? "GET" : "POST", NULL)) return;
    if (status) h_shm_status(a, req, name);
    else if (reg) h_shm_register(a, req, name);
    else h_shm_unregister(a, req, name);
}

/* Only the current version is served; any other number is unknown. */
static bool version_exists(struct dcv_api *a, const char *m, const char *v)
{
    struct dcv_model_ref ref;
    char buf[16];
    if (!dcv_model_name_valid(m) || dcv_registry_acquire(a->reg, m, &ref, NULL)) return true;
    snprintf(buf, sizeof buf, "%d", ref.version);
    dcv_registry_release(a->reg, &ref);
    return strcmp(buf, v) == 0;
}

static void route_model(struct dcv_api *a, struct dcv_http_req *req, struct route *r)
{
    /* /v2/models/{m}[/versions/{v}][/action] */
    const char *m = r->seg[2];
    int i = 3;
    if (is(r, 3, "versions") && r->n >= 5) i = 5;
    const char *act = i < r->n ? r->seg[i] : "";
    if (i + 1 < r->n) { send_error(a, req, m, DCV_ENOENT, "no such endpoint"); return; }
    if (i == 5 && !version_exists(a, m, r->seg[4])) {
        send_error(a, req, m, DCV_ENOENT, "no such model version");
        return;
    }
    dcv_http_set_log(req, m, *act ? act : "metadata");
    if (!*act) {
        if (method(a, req, "GET", m)) h_metadata(a, req, m);
    } else if (!strcmp(act, "infer")) {
        if (method(a, req, "POST", m)) h_infer(a, req, m, JOB_KSERVE);
    } else if (!strcmp(act, "ready")) {
        if (method(a, req, "GET", m)) h_model_ready(a, req, m);
    } else if (!strcmp(act, "config")) {
        if (method(a, req, "GET", m)) h_model_config(a, req, m);
    } else if (!strcmp(act, "stats")) {
        if (method(a, req, "GET", m)) {
            if (!dcv_registry_known(a->reg, m))
                { send_error(a, req, m, DCV_ENOENT, "unknown model"); return; }
            send_json(a, req, m, 200, dcv_registry_stats(a->reg, m));
        }
    } else if (!strcmp(act, "shape")) {
        if (method(a, req, "POST", m)) h_model_shape(a, req, m);
    } else {
        send_error(a, req, m, DCV_ENOENT, "no such endpoint");
    }
}

static void route_v1(struct dcv_api *a, struct dcv_http_req *req, struct route *r)
{
    /* /v1/models/{m}[:predict] [/versions/{v}[:predict]] [/metadata] */
    char name[DCV_MODEL_NAME_MAX];
    const char *last = r->seg[r->n - 1];
    const char *colon = strchr(last, ':');
    snprintf(name, sizeof name, "%.*s", (int)(r->n == 3 && colon ? colon - last
                                                  : (long)strlen(r->seg[2])), r->seg[2]);
    if (colon && strcmp(colon, ":predict") != 0)
        { send_error(a, req, name, DCV_ENOENT, "only :predict is supported"); return; }
    if (colon) {
        dcv_http_set_log(req, name, "tfs_predict");
        if (method(a, req, "POST", name)) h_infer(a, req, name, JOB_TFS);
        return;
    }
    bool meta = is(r, r->n - 1, "metadata");
    dcv_http_set_log(req, name, meta ? "tfs_metadata" : "tfs_status");
    if (method(a, req, "GET", name)) h_tf_status(a, req, name, meta);
}

static void route(struct dcv_api *a, struct dcv_http_req *req)
{
    struct route r;
    if (split(dcv_http_path(req), &r) || r.n == 0)
        { send_error(a, req, NULL, DCV_ENOENT, "no such endpoint"); return; }
    if (r.n == 1 && is(&r, 0, "metrics")) {
        dcv_http_set_log(req, NULL, "metrics");
        if (method(a, req, "GET", NULL)) h_metrics(a, req);
        return;
    }
    if (is(&r, 0, "v1") && is(&r, 1, "models") && r.n >= 3 && r.n <= 5)
        { route_v1(a, req, &r); return; }
    if (!is(&r, 0, "v2")) { send_error(a, req, NULL, DCV_ENOENT, "no such endpoint"); return; }
    if (r.n == 1) {
        dcv_http_set_log(req, NULL, "server_metadata");
        if (method(a, req, "GET", NULL)) h_server_meta(a, req);
    } else if (is(&r, 1, "models") && r.n == 3 && is(&r, 2, "stats")) {
        dcv_http_set_log(req, NULL, "stats");
        if (method(a, req, "GET", NULL)) send_json(a, req, NULL, 200, dcv_registry_stats(a->reg, NULL));
    } else if (is(&r, 1, "models") && r.n >= 3) {
        route_model(a, req, &r);
    } else if (is(&r, 1, "repository") && r.n == 3 && is(&r, 2, "index")) {
        dcv_http_set_log(req, NULL, "repository_index");
        if (method(a, req, "POST", NULL)) send_json(a, req, NULL, 200, dcv_registry_index(a->reg));
    } else if (is(&r, 1, "repository") && r.n == 5 && is(&r, 2, "models") &&
               (is(&r, 4, "load") || is(&r, 4, "unload"))) {
        dcv_http_set_log(req, r.seg[3], r.seg[4]);
        if (!dcv_model_name_valid(r.seg[3]))
            { send_error(a, req, NULL, DCV_EINVAL, "invalid model name"); return; }
        if (method(a, req, "POST", r.seg[3])) h_repo(a, req, r.seg[3], r.seg[4]);
    } else if (is(&r, 1, "systemsharedmemory")) {
        route_shm(a, req, &r);
    } else if (is(&r, 1, "cudasharedmemory")) {
        dcv_http_set_log(req, NULL, "cuda_shm");
        send_error(a, req, NULL, DCV_EUNSUPP, "CUDA shared memory is not supported: deconvd "
                   "computes on the CPU only; use system shared memory (/v2/systemsharedmemory)");
    } else if (r.n == 2 && is(&r, 1, "shape")) {
        dcv_http_set_log(req, NULL, "shape");
        if (method(a, req, "POST", NULL)) h_shape(a, req);
    } else if (r.n == 3 && is(&r, 1, "ops")) {
        int rank = !strcmp(r.seg[2], "conv1d_transpose") ? 1
                 : !strcmp(r.seg[2], "conv2d_transpose") ? 2
                 : !strcmp(r.seg[2], "conv3d_transpose") ? 3 : 0;
        dcv_http_set_log(req, NULL, "ops");
        if (!rank) { send_error(a, req, NULL, DCV_ENOENT, "unknown op"); return; }
        if (method(a, req, "POST", NULL)) h_op(a, req, rank);
    } else {
        send_error(a, req, NULL, DCV_ENOENT, "no such endpoint");
    }
}

static bool is_health(const char *path)
{
    return !strcmp(path, "/v2/health/live") || !strcmp(path, "/v2/health/ready");
}

/* The model an inference path names (KServe infer, TF Serving predict). */
static bool inference_model(const char *path, char *model, size_t cap, const char **endpoint)
{
    struct route r;
    const char *colon;
    if (split(path, &r) || r.n < 3 || !is(&r, 1, "models")) return false;
    const char *last = r.seg[r.n - 1];
    if (is(&r, 0, "v2") && !strcmp(last, "infer") &&
        (r.n == 4 || (r.n == 6 && is(&r, 3, "versions")))) {
        snprintf(model, cap, "%s", r.seg[2]);
        *endpoint = "infer";
        return true;
    }
    if (is(&r, 0, "v1") && (colon = strchr(last, ':')) && !strcmp(colon, ":predict")) {
        snprintf(model, cap, "%.*s", r.n == 3 ? (int)(colon - last) : (int)strlen(r.seg[2]),
                 r.seg[2]);
        *endpoint = "tfs_predict";
        return true;
    }
    return false;
}

/* Uploads from here on are refused with 503 before they are read when the
 * queue is full; smaller ones may still be computed inline. */
#define EARLY_BUSY_BYTES (64 * 1024)

void dcv_api_precheck(void *ctx, struct dcv_http_req *req, size_t announced)
{
    struct dcv_api *a = ctx;
    const char *path = dcv_http_path(req);
    if (is_health(path)) return;
    if (!authorized(a, req)) {
        struct dcv_http_header h[] = { { "WWW-Authenticate", "Bearer" } };
        const char *msg = "{\"error\":\"missing or invalid bearer token\"}";
        finish(a, req, NULL, 401);
        dcv_http_respond(req, 401, JSON, body_dup(msg, strlen(msg)), 0, strlen(msg), h, 1);
        return;
    }
    char model[DCV_MODEL_NAME_MAX];
    const char *endpoint;
    if (announced >= EARLY_BUSY_BYTES && dcv_sched_queued() >= a->cfg->max_queue &&
        inference_model(path, model, sizeof model, &endpoint)) {
        dcv_http_set_log(req, model, endpoint);
        send_error(a, req, model, DCV_EBUSY, "server busy: inference queue is full, retry later");
    }
}

void dcv_api_handle(void *ctx, struct dcv_http_req *req)
{
    struct dcv_api *a = ctx;
    const char *path = dcv_http_path(req);
    if (!strcmp(path, "/v2/health/live")) {
        dcv_http_set_log(req, NULL, "health");
        if (method(a, req, "GET", NULL)) send_json(a, req, NULL, 200, obj_bool("live", true));
        return;
    }
    if (!strcmp(path, "/v2/health/ready")) {
        dcv_http_set_log(req, NULL, "health");
        if (method(a, req, "GET", NULL))
            send_json(a, req, NULL, a->ready ? 200 : 503, obj_bool("ready", a->ready));
        return;
    }
    route(a, req);                        /* dcv_api_precheck has checked the token */
}
