/* jobs.c — requests computed on the worker pool: inference, ops, shapes.
 *
 * Each becomes a `struct job`: the pool thread decodes the body (the float
 * codec, not a JSON tree), runs the model and encodes the answer, so the
 * loop thread only moves bytes. A job holds its body, a registry reference
 * (a reload never pulls a model from under it) and its bytes of the memory
 * budget (budget.c: body, decoded and computed tensors, the answer until it
 * is sent). Jobs are listed in submission order, which is deadline order,
 * so one timer answers 504 on time to a job still waiting for a worker at
 * request_timeout_ms. The loop may answer a job early (deadline, client
 * gone, drain): it sets the job's stop flag, takes it off the queue if no
 * worker has it, and answers; a running worker stops at its next
 * checkpoint and the job is freed when it hands back. Small inferences are
 * decoded, and tiny ones computed, on the loop thread. Loop thread, except
 * the work functions (pool threads).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deconvd/answer.h"
#include "deconvd/batch.h"
#include "deconvd/budget.h"
#include "deconvd/buf.h"
#include "deconvd/config.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/floatcodec.h"
#include "deconvd/http.h"
#include "deconvd/jobs.h"
#include "deconvd/json.h"
#include "deconvd/jsonbody.h"
#include "deconvd/kserve.h"
#include "deconvd/layer.h"
#include "deconvd/metrics.h"
#include "deconvd/model.h"
#include "deconvd/modelform.h"
#include "deconvd/op.h"
#include "deconvd/png.h"
#include "deconvd/registry.h"
#include "deconvd/reply.h"
#include "deconvd/sched.h"
#include "deconvd/shm.h"
#include "deconvd/summary.h"
#include "deconvd/tensor.h"
#include "deconvd/tfserving.h"
#include "deconvd/tuner.h"
#include "deconvd/utf8.h"

struct dcv_jobs {
    const struct dcv_config *cfg;
    struct dcv_registry *reg;
    struct dcv_shm *shm;
    struct dcv_reply reply;
    long inflight;                     /* accepted and not yet answered */
    struct job *head, *tail;           /* queued or running on the pool, deadline order */
    struct dcv_timer *deadline_timer;
};

enum job_kind { JOB_KSERVE, JOB_TFS, JOB_OP, JOB_SHAPE };

struct job {
    struct dcv_jobs *owner;
    struct dcv_http_req *req;          /* NULL once answered (possibly early) */
    struct dcv_model_ref ref;          /* ver NULL for ops and /v2/shape */
    struct dcv_sched_job *handle;      /* until job_done */
    struct job *prev, *next;           /* the owner's in-flight list */
    bool listed;
    int threads;                       /* cores held from the gate (tuner.c) */
    bool pooled;                       /* a worker ran it (else the loop alone) */
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
    int ondim;                         /* the output's rank (a chain's may differ) */
    size_t count;
    uint64_t work;
    /* the answer's form: Accept against the JSON and the binary answer */
    enum dcv_png_choice accept[2];
    char accept_text[160];
    bool png;
    struct dcv_png_layout layout;      /* when png */
    struct dcv_batch_item bi;          /* with dynamic_batching (batch.h) */
    float *scratch;                    /* the output to encode from, while in a batch */
    /* results, written by the pool thread */
    int rc;
    char err[DCV_ERRLEN];
    char *out;
    size_t out_len, out_header_len;
    bool binary;
    uint64_t t_submit, t_start, t_decoded, t_computed, t_done, deadline;
};

static void on_deadline(void *arg);

#define INLINE_BODY_MAX (64 * 1024)     /* bodies decoded on the loop thread */


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

/* Triton statistics and the latency histograms. A failure counts only its
 * total time: a job answered early may still be running, and its timings
 * are the worker's until it hands the job back. */
static void record_stats(struct job *j, bool ok, uint64_t end)
{
    struct dcv_model_stats *s = j->ref.stats;
    struct dcv_jobs *a = j->owner;
    uint64_t total = end - j->t_submit;
    if (!s) return;
    struct dcv_stat *which = ok ? &s->success : &s->fail;
    which->count++;
    which->ns += total;
    if (!ok) return;
    uint64_t queue = j->t_start - j->t_submit;
    s->queue.count++, s->queue.ns += queue;
    s->compute_input.count++, s->compute_input.ns += j->t_decoded - j->t_start;
    s->compute_infer.count++, s->compute_infer.ns += j->t_computed - j->t_decoded;
    s->compute_output.count++, s->compute_output.ns += j->t_done - j->t_computed;
    if (j->pooled) s->handback.count++, s->handback.ns += dcv_now_ns() - j->t_done;
    uint64_t items = j->ondim ? (uint64_t)j->oshape[0] : 1;   /* the batch, as Triton */
    s->inference_count += items;
    s->execution_count += j->bi.b ? (uint64_t)(j->bi.exec_requests > 0) : 1;
    if (j->bi.exec_requests || (!j->bi.b && j->ondim))
        dcv_metrics_observe(a->reply.metrics, DCV_HIST_BATCH, j->ref.name,
                            (double)(j->bi.b ? (uint64_t)j->bi.exec_batch : items));
    s->last_inference_ms = (uint64_t)time(NULL) * 1000;
    dcv_metrics_observe(a->reply.metrics, DCV_HIST_REQUEST, j->ref.name, total / 1e9);
    dcv_metrics_observe(a->reply.metrics, DCV_HIST_QUEUE, j->ref.name, queue / 1e9);
    dcv_metrics_observe(a->reply.metrics, DCV_HIST_COMPUTE, j->ref.name,
                        (j->t_computed - j->t_decoded) / 1e9);
}

/* ---- the in-flight list and its deadline timer ---- */

/* The timer waits for the first job whose deadline is still ahead: jobs
 * before it are running (a worker took them in time), at most one per
 * worker. */
static void arm(struct dcv_jobs *a)
{
    uint64_t now = dcv_now_ns();
    struct job *j = a->head;
    while (j && j->deadline <= now) j = j->next;
    if (!j) {
        dcv_sched_timer_stop(a->deadline_timer);
        return;
    }
    dcv_sched_timer_start(a->deadline_timer, (j->deadline - now + 999999) / 1000000, 0);
}

static void list_add(struct dcv_jobs *a, struct job *j)
{
    j->listed = true;
    j->prev = a->tail;
    j->next = NULL;
    if (a->tail) a->tail->next = j;
    else a->head = j;
    a->tail = j;
    if (a->head == j) arm(a);
}

static void list_del(struct dcv_jobs *a, struct job *j)
{
    if (!j->listed) return;
    bool head = a->head == j;
    if (j->prev) j->prev->next = j->next;
    else a->head = j->next;
    if (j->next) j->next->prev = j->prev;
    else a->tail = j->prev;
    j->listed = false;
    if (head) arm(a);
}

/* Answers a job before its worker is done with it (code 0: the client is
 * gone, nothing to tell it). The worker's result will be dropped. */
static void answer_early(struct job *j, int code, const char *msg)
{
    struct dcv_jobs *a = j->owner;
    atomic_store(&j->stop, true);
    dcv_sched_cancel(j->handle);          /* not started: its work never runs */
    list_del(a, j);
    if (!j->req) return;
    const char *model = job_model(j);
    record_stats(j, false, dcv_now_ns());
    if (code) {
        dcv_reply_error(&a->reply, j->req, model, code, msg);
    } else {
        dcv_reply_count(&a->reply, j->req, model, STATUS_GONE);
        dcv_http_respond(j->req, STATUS_GONE, NULL, NULL, 0, 0, NULL, 0);
    }
    j->req = NULL;
    a->inflight--;
}

/* request_timeout_ms bounds the wait for a worker: a job still queued at
 * its deadline is taken off the queue and answered 504 then. One a worker
 * has taken runs on (its work is bounded by max_work). */
static void on_deadline(void *arg)
{
    struct dcv_jobs *a = arg;
    uint64_t now = dcv_now_ns();
    char msg[DCV_ERRLEN];
    snprintf(msg, sizeof msg, "request waited longer than request_timeout_ms (%d ms) for a "
             "worker", a->cfg->request_timeout_ms);
    for (struct job *j = a->head, *next; j && j->deadline <= now; j = next) {
        next = j->next;
        if (dcv_sched_cancel(j->handle)) answer_early(j, DCV_ETIMEDOUT, msg);
    }
    arm(a);
}

static void job_gone(void *arg)
{
    answer_early(arg, 0, NULL);
}

long dcv_jobs_abort_all(struct dcv_jobs *a)
{
    long n = 0;
    char msg[DCV_ERRLEN];
    snprintf(msg, sizeof msg, "server shutting down: drain_timeout_ms (%d ms) passed before "
             "this request finished; retry (on another replica)", a->cfg->drain_timeout_ms);
    while (a->head) {
        answer_early(a->head, DCV_ENOTREADY, msg);
        n++;
    }
    return n;
}

static void job_done(void *arg)
{
    struct job *j = arg;
    struct dcv_jobs *a = j->owner;
    j->handle = NULL;
    if (dcv_batch_own_done(&j->bi)) return;   /* in a batch still to run: it calls back */
    list_del(a, j);
    if (j->req) {
        const char *model = job_model(j);
        if (!j->t_done) j->t_done = dcv_now_ns();
        record_stats(j, j->rc == 0, j->t_done);
        if (j->rc) {
            dcv_reply_error(&a->reply, j->req, model, j->rc, j->err);
        } else {
            char hl[32];
            /* an inference's form follows Accept; the header length is binary's */
            struct dcv_http_header h[] = { { "Vary", "Accept" },
                                           { "Inference-Header-Content-Length", hl } };
            bool infer = j->kind == JOB_KSERVE || j->kind == JOB_TFS;
            size_t answer = j->answer_held < j->held ? j->answer_held : j->held;
            snprintf(hl, sizeof hl, "%zu", j->out_header_len);
            dcv_reply_count(&a->reply, j->req, model, 200);
            j->held -= answer;                   /* the response gives it back */
            dcv_http_respond_held(j->req, 200, j->png ? DCV_PNG_TYPE : j->binary
                                  ? "application/octet-stream" : DCV_REPLY_JSON,
                                  j->out, 0, j->out_len, answer, infer ? h : h + 1,
                                  (size_t)infer + j->binary);
            j->out = NULL;
        }
        j->req = NULL;
        a->inflight--;
    }
    if (j->ref.ver) dcv_registry_release(a->reg, &j->ref);
    job_free(j);
}

/* A job on the pool first waits for its share of the cores (tuner.c: the
 * split its model's tuner chose; shape inference computes nothing), then
 * decodes, computes and encodes with them, so that a worker encoding never
 * preempts another's OpenMP team. No gate when threads_per_request fixes
 * the split. Then: timing, and no work for a job already answered. */
static struct dcv_tuner *tuner_of(struct job *j)
{
    return j->ref.stats ? &j->ref.stats->tuner : NULL;
}

/* A model with dynamic_batching stays outside the gate: its parked jobs
 * hand their workers back and a group runs on whichever thread fills it,
 * so it takes the cores not taken by the jobs running now. */
static void pick_threads(const struct dcv_config *cfg)
{
    if (cfg->threads_per_request) return;      /* fixed: set once per thread */
    long running = dcv_sched_running();
    int n = running > 0 ? cfg->cores / (int)running : cfg->cores;
    dcv_engine_set_threads(n > 0 ? n : 1);
}

static bool begin_work(struct job *j)
{
    j->pooled = true;
    if (j->bi.b) pick_threads(j->owner->cfg);
    else if (j->kind != JOB_SHAPE && !j->owner->cfg->threads_per_request)
        j->threads = dcv_tuner_enter(tuner_of(j), dcv_sched_queued());
    j->t_start = dcv_now_ns();          /* the wait for cores is queue time */
    dcv_batch_started(&j->bi);
    return (j->rc = stopped(j)) == 0;
}

static void end_work(struct job *j)
{
    if (j->threads) dcv_tuner_leave(tuner_of(j), j->threads, dcv_sched_queued());
    j->threads = 0;
    j->t_done = dcv_now_ns();
    if (!j->t_decoded) j->t_decoded = j->t_done;
    if (!j->t_computed) j->t_computed = j->t_done;
}

/* Multiply-adds of a transposed convolution over an input of this shape. */
static uint64_t conv_work(const struct dcv_conv *c, const int64_t *shape)
{
    return dcv_conv_work(c, shape[0], shape + dcv_conv_spatial_axis(c));
}

static int check_work(struct job *j, uint64_t work)
{
    j->work = work;
    if (work > j->owner->cfg->max_work)
        return dcv_errf(j->err, DCV_ETOOBIG, "this request needs %llu multiply-adds, above "
                        "max_work (%zu)", (unsigned long long)work, j->owner->cfg->max_work);
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
enum answer_form { AS_JSON, AS_KSERVE_JSON, AS_BINARY, AS_PNG };

static int hold_answer(struct job *j, size_t answer, size_t scratch, enum answer_form form)
{
    const struct dcv_config *cfg = j->owner->cfg;
    int rc;
    if (answer > cfg->max_response_bytes)
        return dcv_errf(j->err, DCV_ETOOBIG, "the answer (%zu values) could take %zu bytes%s, "
                        "above max_response_bytes (%zu)%s", j->count, answer,
                        form == AS_BINARY ? "" : form == AS_PNG ? " as PNG" : " as JSON",
                        cfg->max_response_bytes,
                        form == AS_KSERVE_JSON ? "; ask for binary output (\"parameters\": "
                        "{\"binary_data_output\": true}: 4 bytes a value) or send a smaller "
                        "input" : "; send a smaller input");
    if ((rc = hold(j, answer + scratch, "the answer"))) return rc;
    j->answer_held = answer;
    return 0;
}

/* " (or 'input')" after a Keras name that is not the generic one. */
static const char *or_generic(const char *keras, const char *generic)
{
    if (!strcmp(keras, generic)) return "";
    return !strcmp(generic, "input") ? " (or 'input')" : " (or 'output')";
}

/* A KServe request names its input and, optionally, its output: the
 * model's Keras names, or "input" / "output" for every model (clients
 * written against single layers keep working on chains). */
static int check_names(struct job *j)
{
    const struct dcv_infer_request *in = &j->in;
    const struct dcv_model *m = j->ref.model;
    if (j->kind != JOB_KSERVE) return 0;
    if (strcmp(in->input_name, m->input_name) && strcmp(in->input_name, "input"))
        return dcv_errf(j->err, DCV_EINVAL, "unexpected input '%.60s': model '%s' has one "
                        "input named '%s'%s", in->input_name, j->ref.name, m->input_name,
                        or_generic(m->input_name, "input"));
    if (in->output_requested && strcmp(in->output_name, m->output_name) &&
        strcmp(in->output_name, "output"))
        return dcv_errf(j->err, DCV_EINVAL, "unknown output '%.60s': model '%s' has one "
                        "output named '%s'%s", in->output_name, j->ref.name, m->output_name,
                        or_generic(m->output_name, "output"));
    return 0;
}

static int output_shape(struct job *j)
{
    struct dcv_infer_request *in = &j->in;
    int rc;
    if ((rc = check_names(j)) ||
        (rc = dcv_model_output_shape(j->ref.model, in->input.shape, in->input.ndim, j->oshape,
                                     &j->count, j->err)))
        return rc;
    j->ondim = j->ref.model->out_ndim;
    if (j->count > j->owner->cfg->max_tensor_elems)
        return dcv_errf(j->err, DCV_ETOOBIG, "the output would hold %zu values, above "
                        "max_tensor_elems (%zu)", j->count, j->owner->cfg->max_tensor_elems);
    return 0;
}

/* A PNG or the usual answer, as Accept and the output allow (HTTP: the
 * other form when PNG is impossible and the other is acceptable, else
 * 406): 0 with j->png set or not, or DCV_ENOTACCEPT naming why. */
static int pick_form(struct job *j, bool binary)
{
    struct dcv_infer_request *in = &j->in;
    enum dcv_png_choice c = j->accept[binary];
    char why[DCV_ERRLEN];
    int rc;
    if (c == DCV_PNG_OTHER) return 0;
    if (c == DCV_PNG_NEITHER)
        return dcv_errf(j->err, DCV_ENOTACCEPT, "Accept: %s%s allows neither %s nor %s, the "
                        "forms of this answer", j->accept_text,
                        strlen(j->accept_text) == sizeof j->accept_text - 1 ? "..." : "",
                        binary ? "application/octet-stream" : DCV_REPLY_JSON, DCV_PNG_TYPE);
    if (in->output_shm.used)
        rc = dcv_errf(why, DCV_ENOTACCEPT, "its output goes to shared memory region '%.60s'",
                      in->output_shm.region);
    else
        rc = dcv_png_layout(&j->ref.model->image, j->oshape, j->ondim, &j->layout, why);
    if (rc == 0) j->png = true;
    if (rc == 0 || c == DCV_PNG_FIRST) return 0;
    return dcv_errf(j->err, rc, "model '%s' cannot answer %s: %s", j->ref.name, DCV_PNG_TYPE,
                    why);
}

/* The buffers a chain runs through between its input and its output: held
 * from the budget with the answer. */
static int chain_scratch(struct job *j, size_t *bytes)
{
    const struct dcv_infer_request *in = &j->in;
    *bytes = dcv_model_scratch_bytes(j->ref.model, in->input.shape, in->input.ndim);
    if (*bytes > SIZE_MAX / 4)
        return dcv_errf(j->err, DCV_ETOOBIG, "model '%s' would need more intermediate memory "
                        "for this input than can be counted", j->ref.name);
    return 0;
}

/* Decoding an inference body: the input, checked against the model; its
 * work against max_work; its answer against the limits and the budget.
 * Runs on the loop for small bodies (bounded by INLINE_BODY_MAX), else on
 * the pool. Before decoding, the budget is asked for the most the decoded
 * values can take (two JSON bytes or one binary byte per value). */
static int infer_decode(struct job *j)
{
    const struct dcv_config *cfg = j->owner->cfg;
    struct dcv_decode_limits lim = { .max_elems = cfg->max_tensor_elems,
                                     .max_json_nodes = cfg->max_json_nodes };
    struct dcv_infer_request *in = &j->in;
    size_t jlen = j->header_len ? j->header_len : j->len;
    size_t est = 2 * jlen + 4 * (j->len - jlen) + 64, between = 0;
    int rc;
    if ((rc = hold(j, est, "decoding the request")) ||
        (rc = dcv_utf8_check(j->body, jlen, j->err)))
        return rc;
    rc = j->kind == JOB_KSERVE
       ? dcv_kserve_decode(j->body, j->len, j->header_len, &lim, in, j->err)
       : dcv_tfserving_decode(j->body, j->len, &lim, in, &j->rows, j->err);
    size_t used = in->input.data && !in->input.borrowed ? in->input.count * sizeof(float) : 0;
    unhold(j, est > used ? est - used : 0);
    if (rc || (rc = output_shape(j)) ||
        (rc = check_work(j, dcv_model_work(j->ref.model, in->input.shape, in->input.ndim))) ||
        (rc = chain_scratch(j, &between)))
        return rc;
    bool shm_out = in->output_shm.used, binary = j->kind == JOB_KSERVE && in->binary_output;
    if ((rc = pick_form(j, binary))) return rc;
    size_t answer = j->png ? dcv_png_bound(&j->layout) : shm_out ? 4096
                  : binary ? j->count * sizeof(float) + 4096
                  : json_answer_max(j->count, j->ondim);
    size_t scratch = between + (binary && !shm_out && !j->png ? 0 : j->count * sizeof(float));
    if (j->png) scratch += dcv_png_scratch(&j->layout);
    if (in->input_shm.used) scratch += in->input.count * sizeof(float);   /* a converted copy */
    return hold_answer(j, answer, scratch, j->png ? AS_PNG : shm_out || binary ? AS_BINARY
                       : j->kind == JOB_KSERVE ? AS_KSERVE_JSON : AS_JSON);
}

/* The names a KServe answer carries; ver is filled with the version. */
static struct dcv_answer_names answer_names(const struct job *j, char *ver, size_t cap)
{
    snprintf(ver, cap, "%d", j->ref.version);
    return (struct dcv_answer_names){ j->ref.name, ver, j->in.has_id ? j->in.id : NULL,
                                      j->ref.model->output_name };
}

/* Where the output goes: straight into the response for binary KServe
 * answers (no copy of the biggest buffer), else a buffer to encode from. */
static float *output_buffer(struct job *j, float **scratch)
{
    struct dcv_infer_request *in = &j->in;
    float *dst = NULL;
    if (j->kind == JOB_KSERVE && in->binary_output && !j->png) {
        char ver[16];
        const struct dcv_answer_names names = answer_names(j, ver, sizeof ver);
        j->binary = true;
        j->out = dcv_answer_kserve_binary_open(&names, j->oshape, j->ondim, &dst, &j->out_len,
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
    struct dcv_jobs *a = j->owner;
    int rc;
    if (!a->cfg->shared_memory) return dcv_errf(j->err, DCV_EINVAL, DCV_SHM_DISABLED);
    if (os->used) {
        char st[DCV_MAX_DIMS * 22 + 3];
        shape_str(st, sizeof st, j->oshape, j->ondim);
        if (os->byte_size < j->count * sizeof(float))
            return dcv_errf(j->err, DCV_EINVAL, "output '%s': parameters."
                            "shared_memory_byte_size is %llu but the FP32 output of shape %s "
                            "needs %zu bytes", j->ref.model->output_name,
                            (unsigned long long)os->byte_size, st, j->count * sizeof(float));
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

/* The answer from the computed output (out: a scratch copy; dst: where the
 * binary answer's values already are). */
static void encode(struct job *j, float *out, float *dst)
{
    char ver[16];
    const struct dcv_answer_names names = answer_names(j, ver, sizeof ver);
    if (j->png)
        j->rc = dcv_png_encode(&j->layout, out, &j->stop, &j->out, &j->out_len, j->err);
    else if (j->binary)
        dcv_answer_kserve_binary_close(dst, j->count);
    else if (j->kind == JOB_KSERVE)
        j->rc = dcv_answer_kserve(&names, j->oshape, j->ondim, out, false, &j->out, &j->out_len,
                                  &j->out_header_len, j->err);
    else
        j->rc = dcv_answer_tfserving(j->oshape, j->ondim, out, j->rows, &j->out, &j->out_len,
                                     j->err);
    if (!j->rc && !j->out)
        j->rc = dcv_errf(j->err, DCV_ENOMEM, "out of memory encoding the response");
}

#define JOB_OF(it) ((struct job *)(void *)((char *)(it) - offsetof(struct job, bi)))

/* Its batch ran (pool, the running worker) / completed (loop). */
static void batch_finish(struct dcv_batch_item *it)
{
    struct job *j = JOB_OF(it);
    if (!(j->rc = it->rc) && !(j->rc = stopped(j))) {
        j->t_computed = dcv_now_ns();
        encode(j, j->scratch, it->out);
    }
    dcv_buf_free(j->scratch);
    j->scratch = NULL;
    drop_body(j);
    end_work(j);
}

static void batch_done(struct dcv_batch_item *it) { job_done(JOB_OF(it)); }
static void batch_prepare(struct dcv_batch_item *it) { pick_threads(JOB_OF(it)->owner->cfg); }

/* With dynamic_batching the job enters its model's batcher: true when it
 * is in a batch, finished there or by another worker (do not touch it). */
static bool to_batch(struct job *j, float *dst, float **out)
{
    struct dcv_infer_request *in = &j->in;
    if (!j->bi.b || uses_shm(j)) return dcv_batch_alone(&j->bi), false;
    j->scratch = *out;
    j->bi.finish = batch_finish, j->bi.done = batch_done, j->bi.prepare = batch_prepare;
    j->bi.stop = &j->stop;
    j->bi.err = j->err;
    if (dcv_batch_enter(&j->bi, in->input.data, in->input.shape, in->input.ndim,
                        in->input.count, dst, j->count, j->work,
                        j->owner->cfg->max_work) != DCV_BATCH_ALONE)
        return true;
    j->scratch = NULL;
    return false;
}

/* Computing and encoding a decoded inference; true when it went to a batch
 * (on the pool only: batch.h), after which the caller must not touch it. */
static bool infer_compute(struct job *j, bool pool)
{
    struct dcv_infer_request *in = &j->in;
    struct dcv_shm_ref shm_in = { 0 }, shm_out = { 0 };
    char ver[16];
    const struct dcv_answer_names names = answer_names(j, ver, sizeof ver);
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
    if (pool && to_batch(j, dst, &out)) return true;
    j->rc = dcv_model_infer(j->ref.model, in->input.data, in->input.shape, nd, dst, j->count,
                            &j->stop, j->err);
    if (j->rc || (j->rc = stopped(j))) goto out;
    j->t_computed = dcv_now_ns();
    if (shm_out.region) {
        dcv_answer_kserve_binary_close(dst, j->count);   /* little-endian in the region */
        if ((void *)dst != (void *)shm_out.addr)
            memcpy(shm_out.addr, dst, sizeof(float) * j->count);
        j->out = dcv_answer_kserve_shm(&names, j->oshape, j->ondim, &in->output_shm, &j->out_len);
        if (!j->out) j->rc = dcv_errf(j->err, DCV_ENOMEM, "out of memory encoding the response");
    } else {
        encode(j, out, dst);
    }
out:
    dcv_buf_free(out);
    drop_body(j);                        /* before the regions the input may borrow from */
    dcv_shm_release(&shm_in);
    dcv_shm_release(&shm_out);
    return false;
}

static void infer_work(void *arg)
{
    struct job *j = arg;
    if (begin_work(j) && (j->rc = infer_decode(j)) == 0 && infer_compute(j, true)) return;
    end_work(j);
}

static void infer_compute_work(void *arg)
{
    struct job *j = arg;
    if (begin_work(j) && infer_compute(j, true)) return;
    end_work(j);
}

static void op_work(void *arg)
{
    struct job *j = arg;
    struct dcv_decode_limits lim = { .max_elems = j->owner->cfg->max_tensor_elems,
                                     .max_json_nodes = j->owner->cfg->max_json_nodes };
    struct dcv_tensor in = { 0 }, filt = { 0 };
    struct dcv_op op = { .rank = j->op_rank };
    struct dcv_jsonbody *b = NULL;
    struct dcv_conv c;
    float *out = NULL;
    size_t est = 2 * j->len + 64;
    if (!begin_work(j)) goto out;
    if ((j->rc = hold(j, est, "decoding the request")) ||
        (j->rc = dcv_utf8_check(j->body, j->len, j->err)))
        goto out;
    if ((j->rc = dcv_jsonbody_parse(j->body, j->len, &lim, &b, j->err)) ||
        (j->rc = dcv_op_decode(b, &lim, &in, &filt, &op, j->err)) ||
        (j->rc = dcv_op_prepare(&op, &c, j->err)) ||
        (j->rc = check_work(j, conv_work(&c, op.input_shape))))
        goto out;
    j->count = (size_t)dcv_shape_product(op.output_shape, op.output_ndim);
    if (j->count > j->owner->cfg->max_tensor_elems) {
        j->rc = dcv_errf(j->err, DCV_ETOOBIG, "the output would hold %zu values, above "
                         "max_tensor_elems (%zu)", j->count, j->owner->cfg->max_tensor_elems);
        goto out;
    }
    size_t used = (in.count + filt.count) * sizeof(float);
    unhold(j, est > used ? est - used : 0);
    if ((j->rc = hold_answer(j, json_answer_max(j->count, op.output_ndim),
                             j->count * sizeof(float), AS_JSON)))
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

/* Multiply-adds per input value, from the work of one input of the model's
 * signature with its unknown dims 1: a transposed convolution's work is
 * linear in its input values, and a chain's glue costs a few operations a
 * value. HUGE_VAL when even that input is refused (a worker decides). */
static double work_per_value(const struct dcv_model *m)
{
    int64_t probe[DCV_MAX_DIMS];
    double vals = 1;
    for (int i = 0; i < m->ndim; i++) {
        probe[i] = m->in_sig[i] > 0 ? m->in_sig[i] : 1;
        vals *= (double)probe[i];
    }
    uint64_t w = dcv_model_work(m, probe, m->ndim);
    return w == UINT64_MAX ? HUGE_VAL : (double)w / vals;
}

/* Small enough to decode on the loop thread, and perhaps to compute there
 * (decided from the decoded shapes)? A body holds at most one input value
 * per 2 bytes of JSON ("0,") or per byte of binary (INT8), which bounds
 * the multiply-adds before decoding: bodies that surely need a worker go
 * there at once. */
static bool decode_here(const struct dcv_jobs *a, const struct job *j)
{
    if (j->len > INLINE_BODY_MAX || !a->cfg->inline_max_work) return false;
    double vals = j->header_len ? (double)j->len : (double)j->len / 2;
    return vals * work_per_value(j->ref.model) <= (double)a->cfg->inline_max_work * 4;
}

/* Decoded: cheap enough to compute right here? The hand-offs to a worker
 * and back cost more than a tiny layer does. */
static bool compute_here(const struct dcv_jobs *a, const struct job *j)
{
    return !uses_shm(j) && !j->png && j->work <= a->cfg->inline_max_work &&
           j->count <= a->cfg->inline_max_work / 16 && !dcv_batch_company(j->bi.b);
}

/* Queues a job; a refusal (full queue) is answered through job_done. */
static void submit(struct dcv_jobs *a, struct job *j, void (*work)(void *))
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

static struct job *job_new(struct dcv_jobs *a, struct dcv_http_req *req, enum job_kind kind)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->owner = a;
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

void dcv_jobs_infer(struct dcv_jobs *a, struct dcv_http_req *req, const char *name,
                    bool tfserving)
{
    enum job_kind kind = tfserving ? JOB_TFS : JOB_KSERVE;
    struct job *j;
    const char *hcl = dcv_http_header(req, "Inference-Header-Content-Length");
    size_t hl = 0;
    if (hcl) {
        char *end;
        unsigned long long v = strtoull(hcl, &end, 10);
        size_t blen;
        dcv_http_body(req, &blen);
        if (*end || end == hcl || hcl[0] == '-' || v > blen) {
            dcv_reply_error(&a->reply, req, name, DCV_EINVAL, "Inference-Header-Content-Length "
                            "must be a non-negative integer no larger than the body");
            return;
        }
        hl = (size_t)v;
    }
    if (!(j = job_new(a, req, kind)))
        { dcv_reply_error(&a->reply, req, name, DCV_ENOMEM, "out of memory"); return; }
    j->header_len = hl;
    snprintf(j->model, sizeof j->model, "%s", name);
    const char *accept = dcv_http_header(req, "Accept");
    j->accept[0] = dcv_png_negotiate(accept, DCV_REPLY_JSON);
    j->accept[1] = dcv_png_negotiate(accept, "application/octet-stream");
    snprintf(j->accept_text, sizeof j->accept_text, "%s", accept ? accept : "");
    j->rc = dcv_model_name_valid(name) ? dcv_registry_acquire(a->reg, name, &j->ref, j->err)
                                       : dcv_errf(j->err, DCV_ENOENT, "unknown model");
    if (j->rc) { job_done(j); return; }
    dcv_batch_expect(j->ref.model->batch, &j->bi);
    if (!decode_here(a, j)) { submit(a, j, infer_work); return; }
    j->t_start = dcv_now_ns();
    if ((j->rc = infer_decode(j)) == 0 && !compute_here(a, j)) {
        submit(a, j, infer_compute_work);
        return;
    }
    if (j->rc == 0) dcv_batch_alone(&j->bi), infer_compute(j, false);
    end_work(j);
    job_done(j);
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

/* Shape inference on the pool: the body may be as big as max_body_bytes,
 * and a tree of it (bounded) is no work for the loop thread. */
static void shape_work(void *arg)
{
    struct job *j = arg;
    struct dcv_json *doc = NULL, *ans;
    int64_t in[DCV_MAX_DIMS];
    int nd;
    if (!begin_work(j) ||
        (j->rc = dcv_jsonbody_object(j->body, j->len, j->owner->cfg->max_json_nodes, &doc,
                                     j->err)))
        goto out;
    if ((nd = dcv_json_dims(dcv_json_get(doc, "input_shape"), in, DCV_MAX_DIMS, true,
                        "input_shape", j->err)) < 0)
        j->rc = nd;
    else if (!(j->rc = j->ref.ver ? dcv_summary_model_answer(j->ref.name, j->ref.model, in, nd,
                                                              &ans, j->err)
                                  : dcv_summary_config_answer(doc, in, nd, &ans, j->err)))
        j->rc = job_json(j, ans);
out:
    dcv_json_free(doc);
    drop_body(j);
    end_work(j);
}

void dcv_jobs_shape(struct dcv_jobs *a, struct dcv_http_req *req, const char *name)
{
    struct job *j = job_new(a, req, JOB_SHAPE);
    if (!j) { dcv_reply_error(&a->reply, req, name, DCV_ENOMEM, "out of memory"); return; }
    if (name) {
        snprintf(j->model, sizeof j->model, "%s", name);
        j->rc = dcv_model_name_valid(name) ? dcv_registry_acquire(a->reg, name, &j->ref, j->err)
                                           : dcv_errf(j->err, DCV_ENOENT, "unknown model");
        if (j->rc) { job_done(j); return; }
    }
    submit(a, j, shape_work);
}

void dcv_jobs_op(struct dcv_jobs *a, struct dcv_http_req *req, int rank)
{
    struct job *j = job_new(a, req, JOB_OP);
    if (!j) { dcv_reply_error(&a->reply, req, NULL, DCV_ENOMEM, "out of memory"); return; }
    j->op_rank = rank;
    submit(a, j, op_work);
}

struct dcv_jobs *dcv_jobs_new(const struct dcv_config *cfg, struct dcv_registry *reg,
                              struct dcv_shm *shm, const struct dcv_reply *reply)
{
    struct dcv_jobs *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    *a = (struct dcv_jobs){ .cfg = cfg, .reg = reg, .shm = shm, .reply = *reply };
    if (!(a->deadline_timer = dcv_sched_timer_new(on_deadline, a))) {
        free(a);
        return NULL;
    }
    return a;
}

void dcv_jobs_free(struct dcv_jobs *a) { free(a); }
long dcv_jobs_inflight(const struct dcv_jobs *a) { return a->inflight; }
