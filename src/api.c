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
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deconvd/answer.h"
#include "deconvd/api.h"
#include "deconvd/budget.h"
#include "deconvd/buf.h"
#include "deconvd/config.h"
#include "deconvd/engine.h"
#include "deconvd/floatcodec.h"
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
/* Endpoint labels come from metrics.h's table only (metric label and log). */
#define EP(id) dcv_metrics_endpoint_name(DCV_EP_##id)
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
    struct job *jobs, *jobs_tail;      /* queued or running on the pool, deadline order */
    struct dcv_timer *deadline_timer;
    void (*idle_cb)(void *);
    void *idle_arg;
};

enum job_kind { JOB_KSERVE, JOB_TFS, JOB_OP, JOB_SHAPE };

struct job {
    struct dcv_api *api;
    struct dcv_http_req *req;          /* NULL once answered (possibly early) */
    struct dcv_model_ref ref;          /* ver NULL for ops and /v2/shape */
    struct dcv_sched_job *handle;      /* until job_done */
    struct job *prev, *next;           /* the api's in-flight list */
    bool listed;
    enum job_kind kind;
    int op_rank;
    char model[DCV_MODEL_NAME_MAX];    /* as named in the path (metric label) */
    char *body;
    size_t len, header_len;
    size_t held, body_held, answer_held; /* memory budget bytes: all, body's, answer's */
    atomic_bool stop;                  /* set by the loop: stop at the next checkpoint */
    /* decoded (an inference decoded on the loop is computed on the pool) */
    struct dcv_infer_request in;
    bool rows;
    int64_t oshape[DCV_MAX_DIMS];
    size_t count;
    uint64_t work;
    /* results, written by the pool thread */
    int rc;
    char err[DCV_ERRLEN];
    char *out;
    size_t out_len, out_header_len;
    bool binary;
    uint64_t t_submit, t_start, t_decoded, t_computed, t_done, deadline;
};

static void on_deadline(void *arg);

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
    a->deadline_timer = dcv_sched_timer_new(on_deadline, a);
    if (!a->deadline_timer) {
        dcv_shm_free(a->shm);
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

/* ---- jobs ----
 *
 * Work for the pool: decode, compute, encode. A job holds its body, its
 * registry reference and its bytes of the memory budget (budget.c), and is
 * listed in submission order, which is deadline order, so one timer fires
 * request_timeout_ms on time for jobs still waiting for a worker. The loop
 * may answer a job early (deadline, client gone, drain): it sets the job's
 * stop flag, takes it off the queue if no worker has it, and answers; a
 * running worker stops at its next checkpoint, and the job is freed when
 * it hands back. */

#define INLINE_BODY_MAX (64 * 1024)     /* bodies decoded on the loop thread */
#define TRIM_AFTER_BODY ((size_t)1 << 20) /* give freed heap back after bodies this big */
#define STATUS_GONE 499                 /* nginx's "client closed request" */

static const char *job_model(const struct job *j)
{
    return j->ref.name ? j->ref.name : j->model;
}

static void job_free(struct job *j)
{
    dcv_infer_request_release(&j->in);  /* before the body it may borrow from */
    dcv_buf_free(j->body);
    dcv_buf_free(j->out);
    dcv_budget_give(j->held);
    free(j);
}

static void idle_check(struct dcv_api *a)
{
    if (a->inflight == 0 && a->idle_cb) a->idle_cb(a->idle_arg);
}

/* Takes n bytes of the budget for the job: 413 when n alone is above the
 * whole budget, 503 (retry) when other requests hold the room. */
static int hold(struct job *j, size_t n, const char *what)
{
    size_t limit = dcv_budget_limit();
    if (limit && n > limit)
        return dcv_errf(j->err, DCV_ETOOBIG, "%s needs %zu bytes, above memory_budget_bytes "
                        "(%zu)", what, n, limit);
    if (!dcv_budget_take(n))
        return dcv_errf(j->err, DCV_EBUSY, "server busy: %s needs %zu bytes and "
                        "memory_budget_bytes (%zu) is taken by other requests; retry later",
                        what, n, limit);
    j->held += n;
    return 0;
}

static void unhold(struct job *j, size_t n)
{
    if (n > j->held) n = j->held;
    dcv_budget_give(n);
    j->held -= n;
}

/* The body is not needed once the answer is computed. */
static void drop_body(struct job *j)
{
    dcv_infer_request_release(&j->in);
    dcv_buf_free(j->body);
    j->body = NULL;
    unhold(j, j->body_held);
    j->body_held = 0;
}

static int stopped(struct job *j)
{
    return atomic_load(&j->stop) ? dcv_errf(j->err, DCV_ECANCELED, "stopped before it "
                                            "finished") : 0;
}

static void record_stats(struct job *j, bool ok)
{
    struct dcv_model_stats *s = j->ref.stats;
    struct dcv_api *a = j->api;
    uint64_t end = j->t_done ? j->t_done : dcv_now_ns();
    uint64_t total = end - j->t_submit, queue = j->t_start ? j->t_start - j->t_submit : 0;
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

/* ---- the in-flight list and its deadline timer ---- */

/* The timer waits for the first job whose deadline is still ahead: jobs
 * before it are running (a worker took them in time), at most one per
 * worker. */
static void arm(struct dcv_api *a)
{
    uint64_t now = dcv_now_ns();
    struct job *j = a->jobs;
    while (j && j->deadline <= now) j = j->next;
    if (!j) {
        dcv_sched_timer_stop(a->deadline_timer);
        return;
    }
    dcv_sched_timer_start(a->deadline_timer, (j->deadline - now + 999999) / 1000000, 0);
}

static void list_add(struct dcv_api *a, struct job *j)
{
    j->listed = true;
    j->prev = a->jobs_tail;
    j->next = NULL;
    if (a->jobs_tail) a->jobs_tail->next = j;
    else a->jobs = j;
    a->jobs_tail = j;
    if (a->jobs == j) arm(a);
}

static void list_del(struct dcv_api *a, struct job *j)
{
    if (!j->listed) return;
    bool head = a->jobs == j;
    if (j->prev) j->prev->next = j->next;
    else a->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    else a->jobs_tail = j->prev;
    j->listed = false;
    if (head) arm(a);
}

/* Answers a job before its worker is done with it (code 0: the client is
 * gone, nothing to tell it). The worker's result will be dropped. */
static void answer_early(struct job *j, int code, const char *msg)
{
    struct dcv_api *a = j->api;
    atomic_store(&j->stop, true);
    dcv_sched_cancel(j->handle);          /* not started: its work never runs */
    list_del(a, j);
    if (!j->req) return;
    const char *model = job_model(j);
    j->t_done = dcv_now_ns();
    record_stats(j, false);
    if (code) {
        send_error(a, j->req, model, code, msg);
    } else {
        finish(a, j->req, model, STATUS_GONE);
        dcv_http_respond(j->req, STATUS_GONE, NULL, NULL, 0, 0, NULL, 0);
    }
    j->req = NULL;
    a->inflight--;
    idle_check(a);
}

/* request_timeout_ms bounds the wait for a worker: a job still queued at
 * its deadline is taken off the queue and answered 504 then. One a worker
 * has taken runs on (its work is bounded by max_work). */
static void on_deadline(void *arg)
{
    struct dcv_api *a = arg;
    uint64_t now = dcv_now_ns();
    char msg[DCV_ERRLEN];
    snprintf(msg, sizeof msg, "request waited longer than request_timeout_ms (%d ms) for a "
             "worker", a->cfg->request_timeout_ms);
    for (struct job *j = a->jobs, *next; j && j->deadline <= now; j = next) {
        next = j->next;
        if (dcv_sched_cancel(j->handle)) answer_early(j, DCV_ETIMEDOUT, msg);
    }
    arm(a);
}

static void job_gone(void *arg)
{
    answer_early(arg, 0, NULL);
}

long dcv_api_abort_all(struct dcv_api *a)
{
    long n = 0;
    char msg[DCV_ERRLEN];
    snprintf(msg, sizeof msg, "server shutting down: drain_timeout_ms (%d ms) passed before "
             "this request finished; retry (on another replica)", a->cfg->drain_timeout_ms);
    while (a->jobs) {
        answer_early(a->jobs, DCV_ENOTREADY, msg);
        n++;
    }
    return n;
}

static void job_done(void *arg)
{
    struct job *j = arg;
    struct dcv_api *a = j->api;
    j->handle = NULL;
    list_del(a, j);
    if (j->req) {
        const char *model = job_model(j);
        if (!j->t_done) j->t_done = dcv_now_ns();
        record_stats(j, j->rc == 0);
        if (j->rc) {
            send_error(a, j->req, model, j->rc, j->err);
        } else {
            char hl[32];
            struct dcv_http_header h[] = { { "Inference-Header-Content-Length", hl } };
            size_t answer = j->answer_held < j->held ? j->answer_held : j->held;
            snprintf(hl, sizeof hl, "%zu", j->out_header_len);
            finish(a, j->req, model, 200);
            j->held -= answer;                   /* the response gives it back */
            dcv_http_respond_held(j->req, 200, j->binary ? "application/octet-stream" : JSON,
                                  j->out, 0, j->out_len, answer, h, j->binary ? 1 : 0);
            j->out = NULL;
        }
        j->req = NULL;
        a->inflight--;
    }
    if (j->ref.ver) dcv_registry_release(a->reg, &j->ref);
    job_free(j);
    idle_check(a);
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

/* Start of a phase on the pool: timing, threads, and no work for a job
 * already answered. */
static bool begin_work(struct job *j)
{
    j->t_start = dcv_now_ns();
    pick_threads(j->api->cfg);
    return (j->rc = stopped(j)) == 0;
}

/* End of a job's work on the pool: heap freed by a big request's JSON
 * trees goes back to the kernel (glibc keeps freed arena memory, which a
 * request with many small nodes leaves fragmented). */
static void end_work(struct job *j)
{
    j->t_done = dcv_now_ns();
    if (!j->t_decoded) j->t_decoded = j->t_done;
    if (!j->t_computed) j->t_computed = j->t_done;
    if (j->len >= TRIM_AFTER_BODY) malloc_trim(0);
}

/* Multiply-adds of a transposed convolution over an input of this shape. */
static uint64_t conv_work(const struct dcv_conv *c, const int64_t *shape)
{
    return dcv_conv_work(c, shape[0], shape + dcv_conv_spatial_axis(c));
}

static int check_work(struct job *j, uint64_t work)
{
    j->work = work;
    if (work > j->api->cfg->max_work)
        return dcv_errf(j->err, DCV_ETOOBIG, "this request needs %llu multiply-adds, above "
                        "max_work (%zu)", (unsigned long long)work, j->api->cfg->max_work);
    return 0;
}

/* Bytes the JSON text of n values can take at most (shortest round-trip
 * floats, commas, the nesting brackets of a TF Serving answer, the head). */
static size_t json_answer_max(size_t n, int ndim)
{
    return n * (DCV_FLOAT_MAXLEN + 1) + n * (size_t)(2 * ndim + 3) + 4096;
}

/* The answer's worst-case size against max_response_bytes, then the
 * answer and the output values' scratch against the budget. */
static int hold_answer(struct job *j, size_t answer, size_t scratch, bool binary_possible)
{
    const struct dcv_config *cfg = j->api->cfg;
    int rc;
    if (answer > cfg->max_response_bytes)
        return dcv_errf(j->err, DCV_ETOOBIG, "the answer (%zu values) could take %zu bytes as "
                        "JSON, above max_response_bytes (%zu)%s", j->count, answer,
                        cfg->max_response_bytes, binary_possible ? "; ask for binary output "
                        "(\"parameters\": {\"binary_data_output\": true}: 4 bytes a value) or "
                        "send a smaller input" : "; send a smaller input");
    if ((rc = hold(j, answer + scratch, "the answer"))) return rc;
    j->answer_held = answer;
    return 0;
}

static int output_shape(struct job *j)
{
    struct dcv_infer_request *in = &j->in;
    int rc;
    if (strcmp(in->input_name, "input") != 0 && j->kind == JOB_KSERVE)
        return dcv_errf(j->err, DCV_EINVAL, "unexpected input '%.60s': model '%s' has one "
                        "input named 'input'", in->input_name, j->ref.name);
    if ((rc = dcv_model_output_shape(j->ref.model, in->input.shape, in->input.ndim, j->oshape,
                                     &j->count, j->err)))
        return rc;
    if (j->count > j->api->cfg->max_tensor_elems)
        return dcv_errf(j->err, DCV_ETOOBIG, "the output would hold %zu values, above "
                        "max_tensor_elems (%zu)", j->count, j->api->cfg->max_tensor_elems);
    return 0;
}

/* Decoding an inference body: the input, checked against the model; its
 * work against max_work; its answer against the limits and the budget.
 * Runs on the loop for small bodies (bounded by INLINE_BODY_MAX), else on
 * the pool. Before decoding, the budget is asked for the most the decoded
 * values can take (two JSON bytes or one binary byte per value). */
static int infer_decode(struct job *j)
{
    const struct dcv_config *cfg = j->api->cfg;
    struct dcv_decode_limits lim = { .max_elems = cfg->max_tensor_elems,
                                     .max_json_nodes = cfg->max_json_nodes };
    struct dcv_infer_request *in = &j->in;
    size_t jlen = j->header_len ? j->header_len : j->len;
    size_t est = 2 * jlen + 4 * (j->len - jlen) + 64;
    int rc;
    if ((rc = hold(j, est, "decoding the request")) ||
        (rc = check_utf8(j->body, jlen, j->err)))
        return rc;
    rc = j->kind == JOB_KSERVE
       ? dcv_kserve_decode(j->body, j->len, j->header_len, &lim, in, j->err)
       : dcv_tfserving_decode(j->body, j->len, &lim, in, &j->rows, j->err);
    size_t used = in->input.data && !in->input.borrowed ? in->input.count * sizeof(float) : 0;
    unhold(j, est > used ? est - used : 0);
    if (rc || (rc = output_shape(j)) ||
        (rc = check_work(j, conv_work(&j->ref.model->layer.conv, in->input.shape))))
        return rc;
    bool shm_out = in->output_shm.used, binary = j->kind == JOB_KSERVE && in->binary_output;
    size_t answer = shm_out ? 4096 : binary ? j->count * sizeof(float) + 4096
                  : json_answer_max(j->count, in->input.ndim);
    size_t scratch = binary && !shm_out ? 0 : j->count * sizeof(float);
    if (in->input_shm.used) scratch += in->input.count * sizeof(float);   /* a converted copy */
    return hold_answer(j, answer, scratch, j->kind == JOB_KSERVE);
}

/* Where the output goes: straight into the response for binary KServe
 * answers (no copy of the biggest buffer), else a buffer to encode from. */
static float *output_buffer(struct job *j, float **scratch)
{
    struct dcv_infer_request *in = &j->in;
    float *dst = NULL;
    if (j->kind == JOB_KSERVE && in->binary_output) {
        char ver[16];
        snprintf(ver, sizeof ver, "%d", j->ref.version);
        j->binary = true;
        j->out = dcv_answer_kserve_binary_open(j->ref.name, ver, in->id, in->has_id, j->oshape,
                                               in->input.ndim, &dst, &j->out_len,
                                               &j->out_header_len);
        return j->out ? dst : NULL;
    }
    return *scratch = dcv_buf_alloc(sizeof(float) * j->count);
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
 * unregister meanwhile never unmaps memory under the job. Pool thread:
 * a request that names a region is never computed on the loop, however
 * small its body (the tensor is not in the body). */
static int shm_resolve(struct job *j, struct dcv_shm_ref *sin, struct dcv_shm_ref *sout)
{
    struct dcv_infer_request *in = &j->in;
    const struct dcv_tensor_shm *is = &in->input_shm, *os = &in->output_shm;
    struct dcv_api *a = j->api;
    int rc;
    if (!a->cfg->shared_memory) return dcv_errf(j->err, DCV_EINVAL, SHM_DISABLED);
    if (os->used) {
        char st[DCV_MAX_DIMS * 22 + 3];
        shape_str(st, sizeof st, j->oshape, in->input.ndim);
        if (os->byte_size < j->count * sizeof(float))
            return dcv_errf(j->err, DCV_EINVAL, "output 'output': parameters."
                            "shared_memory_byte_size is %llu but the FP32 output of shape %s "
                            "needs %zu bytes", (unsigned long long)os->byte_size, st,
                            j->count * sizeof(float));
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

static bool uses_shm(const struct job *j)
{
    return j->in.input_shm.used || j->in.output_shm.used;
}

/* Computing and encoding a decoded inference. */
static void infer_compute(struct job *j)
{
    struct dcv_infer_request *in = &j->in;
    struct dcv_shm_ref shm_in = { 0 }, shm_out = { 0 };
    char ver[16];
    float *out = NULL, *dst;
    int nd = in->input.ndim;
    if ((j->rc = stopped(j)) ||
        (uses_shm(j) && (j->rc = shm_resolve(j, &shm_in, &shm_out))))
        goto out;
    if (shm_out.region)              /* computed straight into the region when aligned */
        dst = (uintptr_t)shm_out.addr % _Alignof(float) == 0 ? (float *)(void *)shm_out.addr
            : (out = dcv_buf_alloc(sizeof(float) * j->count));
    else
        dst = output_buffer(j, &out);
    if (!dst) {
        j->rc = dcv_errf(j->err, DCV_ENOMEM, "out of memory for a %zu-value output", j->count);
        goto out;
    }
    j->t_decoded = dcv_now_ns();
    j->rc = dcv_model_infer(j->ref.model, in->input.data, in->input.shape, nd, dst, j->count,
                            &j->stop, j->err);
    if (j->rc || (j->rc = stopped(j))) goto out;
    j->t_computed = dcv_now_ns();
    snprintf(ver, sizeof ver, "%d", j->ref.version);
    if (shm_out.region) {
        dcv_answer_kserve_binary_close(dst, j->count);   /* little-endian in the region */
        if ((void *)dst != (void *)shm_out.addr)
            memcpy(shm_out.addr, dst, sizeof(float) * j->count);
        j->out = dcv_answer_kserve_shm(j->ref.name, ver, in->id, in->has_id, j->oshape, nd,
                                       &in->output_shm, &j->out_len);
    } else if (j->binary) {
        dcv_answer_kserve_binary_close(dst, j->count);
    } else if (j->kind == JOB_KSERVE) {
        j->rc = dcv_answer_kserve(j->ref.name, ver, in->id, in->has_id, j->oshape, nd, out,
                                  false, &j->out, &j->out_len, &j->out_header_len, j->err);
    } else {
        j->rc = dcv_answer_tfserving(j->oshape, nd, out, j->rows, &j->out, &j->out_len, j->err);
    }
    if (!j->rc && !j->out)
        j->rc = dcv_errf(j->err, DCV_ENOMEM, "out of memory encoding the response");
out:
    dcv_buf_free(out);
    drop_body(j);                        /* before the regions the input may borrow from */
    dcv_shm_release(&shm_in);
    dcv_shm_release(&shm_out);
}

static void infer_work(void *arg)
{
    struct job *j = arg;
    if (begin_work(j) && (j->rc = infer_decode(j)) == 0) infer_compute(j);
    end_work(j);
}

static void infer_compute_work(void *arg)
{
    struct job *j = arg;
    if (begin_work(j)) infer_compute(j);
    end_work(j);
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

/* An ops body to an op: tensors, output_shape, strides, dilations. */
static int op_decode(struct job *j, const struct dcv_jsonbody *b,
                     const struct dcv_decode_limits *lim, struct dcv_tensor *in,
                     struct dcv_tensor *filt, struct dcv_op *op)
{
    const struct dcv_json *root = dcv_jsonbody_root(b);
    int rc, k;
    if ((rc = dcv_tensor_from_json(b, dcv_json_get(root, "input"), lim, in, j->err)) ||
        (rc = dcv_tensor_from_json(b, dcv_json_get(root, "filters"), lim, filt, j->err)))
        return rc;
    op->input = in->data, op->input_ndim = in->ndim;
    op->filters = filt->data, op->filter_ndim = filt->ndim;
    memcpy(op->input_shape, in->shape, sizeof(int64_t) * (size_t)(in->ndim < 5 ? in->ndim : 5));
    memcpy(op->filter_shape, filt->shape,
           sizeof(int64_t) * (size_t)(filt->ndim < 5 ? filt->ndim : 5));
    op->padding = dcv_json_string(dcv_json_get(root, "padding"));
    op->data_format = dcv_json_string(dcv_json_get(root, "data_format"));
    if ((k = json_dims(dcv_json_get(root, "output_shape"), op->output_shape, DCV_MAX_DIMS, false,
                       "output_shape", j->err)) < 0)
        return k;
    op->output_ndim = k;
    if ((rc = op_ints(dcv_json_get(root, "strides"), op->strides, &op->nstrides, "strides",
                      j->err)) ||
        (rc = op_ints(dcv_json_get(root, "dilations"), op->dilations, &op->ndilations,
                      "dilations", j->err)))
        return rc;
    if (!op->nstrides) op->strides[0] = 1, op->nstrides = 1;
    return 0;
}

static void op_work(void *arg)
{
    struct job *j = arg;
    struct dcv_decode_limits lim = { .max_elems = j->api->cfg->max_tensor_elems,
                                     .max_json_nodes = j->api->cfg->max_json_nodes };
    struct dcv_tensor in = { 0 }, filt = { 0 };
    struct dcv_op op = { .rank = j->op_rank };
    struct dcv_jsonbody *b = NULL;
    struct dcv_conv c;
    float *out = NULL;
    size_t est = 2 * j->len + 64;
    if (!begin_work(j)) goto out;
    if ((j->rc = hold(j, est, "decoding the request")) ||
        (j->rc = check_utf8(j->body, j->len, j->err)))
        goto out;
    if ((j->rc = dcv_jsonbody_parse(j->body, j->len, &lim, &b, j->err)) ||
        (j->rc = op_decode(j, b, &lim, &in, &filt, &op)) ||
        (j->rc = dcv_op_prepare(&op, &c, j->err)) ||
        (j->rc = check_work(j, conv_work(&c, op.input_shape))))
        goto out;
    j->count = (size_t)dcv_shape_product(op.output_shape, op.output_ndim);
    if (j->count > j->api->cfg->max_tensor_elems) {
        j->rc = dcv_errf(j->err, DCV_ETOOBIG, "the output would hold %zu values, above "
                         "max_tensor_elems (%zu)", j->count, j->api->cfg->max_tensor_elems);
        goto out;
    }
    size_t used = (in.count + filt.count) * sizeof(float);
    unhold(j, est > used ? est - used : 0);
    if ((j->rc = hold_answer(j, json_answer_max(j->count, op.output_ndim),
                             j->count * sizeof(float), false)))
        goto out;
    if (!(out = dcv_buf_alloc(sizeof(float) * j->count))) {
        j->rc = dcv_errf(j->err, DCV_ENOMEM, "out of memory");
        goto out;
    }
    j->t_decoded = dcv_now_ns();
    if ((j->rc = dcv_op_run(&op, out, j->count, &j->stop, j->err)) || (j->rc = stopped(j)))
        goto out;
    j->t_computed = dcv_now_ns();
    j->rc = dcv_answer_plain(op.output_shape, op.output_ndim, out, &j->out, &j->out_len, j->err);
out:
    dcv_buf_free(out);
    dcv_tensor_release(&in);
    dcv_tensor_release(&filt);
    dcv_jsonbody_free(b);
    drop_body(j);
    end_work(j);
}

/* Small enough to decode on the loop thread, and perhaps to compute there
 * (decided from the decoded shapes)? A body holds at most one input value
 * per 2 bytes of JSON ("0,") or per byte of binary (INT8), which bounds
 * the multiply-adds before decoding: bodies that surely need a worker go
 * there at once. */
static bool decode_here(const struct dcv_api *a, const struct job *j)
{
    const struct dcv_conv *c = &j->ref.model->layer.conv;
    if (j->len > INLINE_BODY_MAX || !a->cfg->inline_max_work) return false;
    double vals = j->header_len ? (double)j->len : (double)j->len / 2;
    double macs = vals * (double)c->filters;
    for (int i = 0; i < c->rank; i++) macs *= (double)c->kernel[i];
    return macs / (double)c->in_channels <= (double)a->cfg->inline_max_work * 4;
}

/* Decoded: cheap enough to compute right here? The hand-offs to a worker
 * and back cost more than a tiny layer does. */
static bool compute_here(const struct dcv_api *a, const struct job *j)
{
    return !uses_shm(j) && j->work <= a->cfg->inline_max_work &&
           j->count <= a->cfg->inline_max_work / 16;
}

/* Queues a job; a refusal (full queue) is answered through job_done. */
static void submit(struct dcv_api *a, struct job *j, void (*work)(void *))
{
    int rc = dcv_sched_submit(work, job_done, j, &j->handle);
    if (rc) {
        j->rc = dcv_errf(j->err, rc, rc == DCV_EBUSY ? "server busy: inference queue is full, "
                         "retry later" : "cannot queue the request");
        job_done(j);
        return;
    }
    list_add(a, j);
    dcv_http_on_gone(j->req, job_gone, j);
}

static struct job *job_new(struct dcv_api *a, struct dcv_http_req *req, enum job_kind kind)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->api = a;
    j->req = req;
    j->kind = kind;
    j->body = dcv_http_take_body(req, &j->len, &j->body_held);
    j->held = j->body_held;
    j->t_submit = dcv_now_ns();
    j->deadline = j->t_submit + (uint64_t)a->cfg->request_timeout_ms * 1000000u;
    atomic_init(&j->stop, false);
    a->inflight++;
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
    snprintf(j->model, sizeof j->model, "%s", name);
    j->rc = dcv_model_name_valid(name) ? dcv_registry_acquire(a->reg, name, &j->ref, j->err)
                                       : dcv_errf(j->err, DCV_ENOENT, "unknown model");
    if (j->rc) { job_done(j); return; }
    if (!decode_here(a, j)) { submit(a, j, infer_work); return; }
    j->t_start = dcv_now_ns();
    if ((j->rc = infer_decode(j)) == 0 && !compute_here(a, j)) {
        submit(a, j, infer_compute_work);
        return;
    }
    if (j->rc == 0) infer_compute(j);
    end_work(j);
    job_done(j);
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

/* Failed models a not-ready answer names; failed_count gives them all and
 * the repository index every reason, so a probe's answer stays small. */
#define READY_NAMES 16

/* Ready once loaded and until draining; with strict_readiness (Triton's
 * default) also only while no model is left without a version by a failed
 * load: a 503 then names them. */
static void h_ready(struct dcv_api *a, struct dcv_http_req *req)
{
    const char *names[READY_NAMES], *errors[READY_NAMES];
    size_t failed = a->ready && a->cfg->strict_readiness
                  ? dcv_registry_failed(a->reg, names, errors, READY_NAMES) : 0;
    bool ready = a->ready && failed == 0;
    struct dcv_json *o = obj_bool("ready", ready);
    if (failed) {
        struct dcv_json *list = dcv_json_new_array();
        for (size_t i = 0; i < failed && i < READY_NAMES; i++) {
            struct dcv_json *m = dcv_json_new_object();
            dcv_json_add(m, "name", dcv_json_new_string(names[i]));
            dcv_json_add(m, "error", dcv_json_new_string(errors[i]));
            dcv_json_append(list, m);
        }
        dcv_json_add(o, "failed_count", dcv_json_new_number((double)failed));
        dcv_json_add(o, "failed_models", list);
    }
    send_json(a, req, NULL, ready ? 200 : 503, o);
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

/* A request body as a JSON object: a tree bounded by the body limit of
 * the endpoint. NULL with the error in err (400). Any thread. */
static struct dcv_json *parse_doc(const struct dcv_config *cfg, const char *body, size_t len,
                                  int *rc, char *err)
{
    struct dcv_json_bound bound = { cfg->max_json_nodes, "max_json_nodes", NULL, NULL };
    struct dcv_json *doc = NULL;
    if ((*rc = check_utf8(body, len, err)) ||
        (*rc = dcv_json_parse_bounded(body, len, &bound, &doc, err))) {
        doc = NULL;
    } else if (dcv_json_type(doc) != DCV_JSON_OBJECT) {
        dcv_json_free(doc);
        *rc = dcv_errf(err, DCV_EINVAL, "request body must be a JSON object");
        doc = NULL;
    }
    return doc;
}

/* The body of a loop-thread endpoint (at most LOOP_BODY_MAX bytes). */
static struct dcv_json *parse_body(struct dcv_api *a, struct dcv_http_req *req,
                                   const char *model)
{
    char err[DCV_ERRLEN];
    size_t len;
    int rc;
    char *body = dcv_http_body(req, &len);
    struct dcv_json *doc = parse_doc(a->cfg, body, len, &rc, err);
    if (!doc) send_error(a, req, model, rc, err);
    return doc;
}

/* A JSON answer as the job's output (a dcv_buf body). */
static int job_json(struct job *j, struct dcv_json *doc)
{
    char *s = dcv_json_print(doc);
    dcv_json_free(doc);
    if (s) {
        j->out_len = strlen(s);
        if ((j->out = dcv_buf_alloc(j->out_len + 1))) memcpy(j->out, s, j->out_len + 1);
    }
    free(s);
    return j->out ? 0 : dcv_errf(j->err, DCV_ENOMEM, "out of memory");
}

static int shape_answer(struct job *j, const struct dcv_layer *l, const struct dcv_json *node)
{
    int64_t in[DCV_MAX_DIMS], out[DCV_MAX_DIMS];
    int nd = json_dims(node, in, DCV_MAX_DIMS, true, "input_shape", j->err);
    int rc = nd < 0 ? nd : dcv_layer_output_shape(l, in, nd, out, j->err);
    if (rc) return rc;
    struct dcv_json *o = dcv_json_new_object();
    if (j->ref.ver) dcv_json_add(o, "model_name", dcv_json_new_string(j->ref.name));
    dcv_json_add(o, "input_shape", dcv_json_new_int_array(in, (size_t)nd));
    dcv_json_add(o, "output_shape", dcv_json_new_int_array(out, (size_t)nd));
    return job_json(j, o);
}

/* Shape inference on the pool: the body may be as big as max_body_bytes,
 * and a tree of it (bounded) is no work for the loop thread. */
static void shape_work(void *arg)
{
    struct job *j = arg;
    struct dcv_json *doc = NULL;
    if (!begin_work(j) || !(doc = parse_doc(j->api->cfg, j->body, j->len, &j->rc, j->err)))
        goto out;
    if (j->ref.ver) {
        j->rc = shape_answer(j, &j->ref.model->layer, dcv_json_get(doc, "input_shape"));
    } else {
        struct dcv_layer l;
        const struct dcv_json *cfg = dcv_json_get(doc, "config");
        j->rc = dcv_layer_parse(dcv_json_string(dcv_json_get(doc, "class_name")),
                                cfg ? cfg : doc, &l, j->err);
        if (!j->rc) {
            j->rc = shape_answer(j, &l, dcv_json_get(doc, "input_shape"));
            dcv_layer_release(&l);
        }
    }
out:
    dcv_json_free(doc);
    drop_body(j);
    end_work(j);
}

/* /v2/shape (name NULL) and /v2/models/{m}/shape. */
static void h_shape(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct job *j = job_new(a, req, JOB_SHAPE);
    if (!j) { send_error(a, req, name, DCV_ENOMEM, "out of memory"); return; }
    if (name) {
        snprintf(j->model, sizeof j->model, "%s", name);
        j->rc = dcv_model_name_valid(name) ? dcv_registry_acquire(a->reg, name, &j->ref, j->err)
                                           : dcv_errf(j->err, DCV_ENOENT, "unknown model");
        if (j->rc) { job_done(j); return; }
    }
    submit(a, j, shape_work);
}

static void h_op(struct dcv_api *a, struct dcv_http_req *req, int rank)
{
    struct job *j = job_new(a, req, JOB_OP);
    if (!j) { send_error(a, req, NULL, DCV_ENOMEM, "out of memory"); return; }
    j->op_rank = rank;
    submit(a, j, op_work);
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
    dcv_http_set_log(req, NULL, status ? EP(SHM_STATUS) : reg ? EP(SHM_REGISTER)
                              : unreg ? EP(SHM_UNREGISTER) : EP(SHM));
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
    /* an action outside the table is "other", never the path's own text */
    enum dcv_endpoint ep = *act ? dcv_metrics_endpoint_find(act) : DCV_EP_METADATA;
    dcv_http_set_log(req, m, dcv_metrics_endpoint_name(ep));
    if (!*act) {
        if (method(a, req, "GET", m)) h_metadata(a, req, m);
    } else if (ep == DCV_EP_INFER) {
        if (method(a, req, "POST", m)) h_infer(a, req, m, JOB_KSERVE);
    } else if (ep == DCV_EP_READY) {
        if (method(a, req, "GET", m)) h_model_ready(a, req, m);
    } else if (ep == DCV_EP_CONFIG) {
        if (method(a, req, "GET", m)) h_model_config(a, req, m);
    } else if (ep == DCV_EP_STATS) {
        if (method(a, req, "GET", m)) {
            if (!dcv_registry_known(a->reg, m))
                { send_error(a, req, m, DCV_ENOENT, "unknown model"); return; }
            send_json(a, req, m, 200, dcv_registry_stats(a->reg, m));
        }
    } else if (ep == DCV_EP_SHAPE) {
        if (method(a, req, "POST", m)) h_shape(a, req, m);
    } else {
        dcv_http_set_log(req, m, EP(OTHER));
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
        dcv_http_set_log(req, name, EP(TFS_PREDICT));
        if (method(a, req, "POST", name)) h_infer(a, req, name, JOB_TFS);
        return;
    }
    bool meta = is(r, r->n - 1, "metadata");
    dcv_http_set_log(req, name, meta ? EP(TFS_METADATA) : EP(TFS_STATUS));
    if (method(a, req, "GET", name)) h_tf_status(a, req, name, meta);
}

static void route(struct dcv_api *a, struct dcv_http_req *req)
{
    struct route r;
    if (split(dcv_http_path(req), &r) || r.n == 0)
        { send_error(a, req, NULL, DCV_ENOENT, "no such endpoint"); return; }
    if (r.n == 1 && is(&r, 0, "metrics")) {
        dcv_http_set_log(req, NULL, EP(METRICS));
        if (method(a, req, "GET", NULL)) h_metrics(a, req);
        return;
    }
    if (is(&r, 0, "v1") && is(&r, 1, "models") && r.n >= 3 && r.n <= 5)
        { route_v1(a, req, &r); return; }
    if (!is(&r, 0, "v2")) { send_error(a, req, NULL, DCV_ENOENT, "no such endpoint"); return; }
    if (r.n == 1) {
        dcv_http_set_log(req, NULL, EP(SERVER_METADATA));
        if (method(a, req, "GET", NULL)) h_server_meta(a, req);
    } else if (is(&r, 1, "models") && r.n == 3 && is(&r, 2, "stats")) {
        dcv_http_set_log(req, NULL, EP(STATS));
        if (method(a, req, "GET", NULL)) send_json(a, req, NULL, 200, dcv_registry_stats(a->reg, NULL));
    } else if (is(&r, 1, "models") && r.n >= 3) {
        route_model(a, req, &r);
    } else if (is(&r, 1, "repository") && r.n == 3 && is(&r, 2, "index")) {
        dcv_http_set_log(req, NULL, EP(REPOSITORY_INDEX));
        if (method(a, req, "POST", NULL)) send_json(a, req, NULL, 200, dcv_registry_index(a->reg));
    } else if (is(&r, 1, "repository") && r.n == 5 && is(&r, 2, "models") &&
               (is(&r, 4, "load") || is(&r, 4, "unload"))) {
        dcv_http_set_log(req, r.seg[3], is(&r, 4, "load") ? EP(LOAD) : EP(UNLOAD));
        if (!dcv_model_name_valid(r.seg[3]))
            { send_error(a, req, NULL, DCV_EINVAL, "invalid model name"); return; }
        if (method(a, req, "POST", r.seg[3])) h_repo(a, req, r.seg[3], r.seg[4]);
    } else if (is(&r, 1, "systemsharedmemory")) {
        route_shm(a, req, &r);
    } else if (is(&r, 1, "cudasharedmemory")) {
        dcv_http_set_log(req, NULL, EP(CUDA_SHM));
        send_error(a, req, NULL, DCV_EUNSUPP, "CUDA shared memory is not supported: deconvd "
                   "computes on the CPU only; use system shared memory (/v2/systemsharedmemory)");
    } else if (r.n == 2 && is(&r, 1, "shape")) {
        dcv_http_set_log(req, NULL, EP(SHAPE));
        if (method(a, req, "POST", NULL)) h_shape(a, req, NULL);
    } else if (r.n == 3 && is(&r, 1, "ops")) {
        int rank = !strcmp(r.seg[2], "conv1d_transpose") ? 1
                 : !strcmp(r.seg[2], "conv2d_transpose") ? 2
                 : !strcmp(r.seg[2], "conv3d_transpose") ? 3 : 0;
        dcv_http_set_log(req, NULL, EP(OPS));
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
        *endpoint = EP(INFER);
        return true;
    }
    if (is(&r, 0, "v1") && (colon = strchr(last, ':')) && !strcmp(colon, ":predict")) {
        snprintf(model, cap, "%.*s", r.n == 3 ? (int)(colon - last) : (int)strlen(r.seg[2]),
                 r.seg[2]);
        *endpoint = EP(TFS_PREDICT);
        return true;
    }
    return false;
}

/* Endpoints whose work runs on the pool (inference, ops, shape inference)
 * take bodies up to max_body_bytes; every other one is answered on the
 * loop thread and takes at most LOOP_BODY_MAX, so that no body it parses
 * can hold the loop. */
#define LOOP_BODY_MAX (64 * 1024)

static bool pool_endpoint(const char *path, char *model, size_t cap, const char **endpoint)
{
    struct route r;
    model[0] = '\0';
    if (inference_model(path, model, cap, endpoint)) return true;
    if (split(path, &r) || !is(&r, 0, "v2")) return false;
    *endpoint = EP(SHAPE);
    if (r.n == 2 && is(&r, 1, "shape")) return true;
    if (r.n == 3 && is(&r, 1, "ops")) return (*endpoint = EP(OPS)), true;
    if (!is(&r, 1, "models") || !is(&r, r.n - 1, "shape")) return false;
    snprintf(model, cap, "%s", r.seg[2]);
    return r.n == 4 || (r.n == 6 && is(&r, 3, "versions"));
}

/* Uploads from here on are refused with 503 before they are read when the
 * queue is full; smaller ones may still be computed inline. */
#define EARLY_BUSY_BYTES (64 * 1024)

void dcv_api_precheck(void *ctx, struct dcv_http_req *req, size_t announced)
{
    struct dcv_api *a = ctx;
    const char *path = dcv_http_path(req), *endpoint;
    char model[DCV_MODEL_NAME_MAX];
    bool pool = pool_endpoint(path, model, sizeof model, &endpoint);
    if (!pool) dcv_http_limit_body(req, LOOP_BODY_MAX, "64 KiB for this endpoint");
    if (is_health(path)) return;
    if (!authorized(a, req)) {
        struct dcv_http_header h[] = { { "WWW-Authenticate", "Bearer" } };
        const char *msg = "{\"error\":\"missing or invalid bearer token\"}";
        finish(a, req, NULL, 401);
        dcv_http_respond(req, 401, JSON, body_dup(msg, strlen(msg)), 0, strlen(msg), h, 1);
        return;
    }
    /* (a body over max_body_bytes is refused 413 next: a lasting error first) */
    if (pool && announced >= EARLY_BUSY_BYTES && announced <= a->cfg->max_body_bytes &&
        dcv_sched_queued() >= a->cfg->max_queue) {
        dcv_http_set_log(req, model[0] ? model : NULL, endpoint);
        send_error(a, req, model, DCV_EBUSY, "server busy: inference queue is full, retry later");
    }
}

void dcv_api_handle(void *ctx, struct dcv_http_req *req)
{
    struct dcv_api *a = ctx;
    const char *path = dcv_http_path(req);
    if (!strcmp(path, "/v2/health/live")) {
        dcv_http_set_log(req, NULL, EP(HEALTH));
        if (method(a, req, "GET", NULL)) send_json(a, req, NULL, 200, obj_bool("live", true));
        return;
    }
    if (!strcmp(path, "/v2/health/ready")) {
        dcv_http_set_log(req, NULL, EP(HEALTH));
        if (method(a, req, "GET", NULL)) h_ready(a, req);
        return;
    }
    route(a, req);                        /* dcv_api_precheck has checked the token */
}
