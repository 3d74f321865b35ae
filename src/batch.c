/* batch.c — dynamic batching (Triton's dynamic_batching), per model.
 *
 * A batcher holds at most one open group, a mutex and counts of the
 * requests of its model that are coming (received, not yet entered) and of
 * those a worker has started. The design rules: no worker ever sleeps
 * waiting for company on the request path, and requests batch only when
 * some are queued for a worker (a backlog), since with a worker free each
 * runs sooner alone, in parallel. An item either runs alone (none queued),
 * joins the open group or opens one and parks, and its worker returns.
 * Whoever fills a group, finds none queued any more, or arrives past its
 * delay runs it; else the flush job the loop submits for the group (background work,
 * outside max_queue so it is never refused; queued behind the requests
 * already waiting for a worker, which join the group first) runs it,
 * waiting on the condition variable first only while another worker is
 * bringing an item (it holds no worker waiting for requests that would
 * need its own) and the delay lasts. A group
 * is completed on the loop by the done callback of whoever ran it; it is
 * freed when both that and its flush are over (loop-only reference
 * count). The batcher itself is reference-counted (atomic) so a pending
 * flush outlives an unloaded model. Pool threads (enter, run, flush) and
 * the loop thread (expect, own_done, completion).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deconvd/batch.h"
#include "deconvd/budget.h"
#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/sched.h"

struct dcv_batch_group {
    struct dcv_batcher *b;
    struct dcv_batch_item *head, *tail;
    int64_t batch;                       /* the members' summed batch dims */
    uint64_t work;
    uint64_t due;                        /* dcv_now_ns() when its delay ends */
    bool open;                           /* under b->mu */
    bool by_flush;                       /* run by its flush job (which completes it) */
    bool flush_sent;                     /* loop */
    int refs;                            /* loop: its completion, its flush */
};

struct dcv_batcher {
    struct dcv_batch_cfg cfg;
    dcv_batch_run_fn run;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;                   /* a group closed, or nobody is coming */
    long expected;
    long started;                        /* of those, on a worker now: they come soon */
    struct dcv_batch_group *open;
    atomic_int refs;                     /* the model's, and one per pending flush */
};

int dcv_batch_parse(const struct dcv_json *v, const int64_t *in_sig, int ndim,
                    struct dcv_batch_cfg *cfg, char *err)
{
    const struct dcv_json *mb, *d;
    int64_t x;
    *cfg = (struct dcv_batch_cfg){ 0 };
    if (!v || dcv_json_type(v) == DCV_JSON_NULL) return 0;
    if (dcv_json_type(v) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "dynamic_batching must be an object {\"max_batch\": N, "
                        "\"max_queue_delay_us\": T}, got %s", dcv_json_type_name(v));
    for (const struct dcv_json *k = dcv_json_first(v); k; k = dcv_json_next(k))
        if (strcmp(dcv_json_key(k), "max_batch") && strcmp(dcv_json_key(k), "max_queue_delay_us"))
            return dcv_errf(err, DCV_EINVAL, "dynamic_batching: unknown key '%.64s' (it takes "
                            "\"max_batch\" and \"max_queue_delay_us\")", dcv_json_key(k));
    if (!(mb = dcv_json_get(v, "max_batch")) || !dcv_json_int(mb, 1, DCV_BATCH_MAX, &x))
        return dcv_errf(err, DCV_EINVAL, "dynamic_batching.max_batch must be an integer from 1 "
                        "to %d", DCV_BATCH_MAX);
    cfg->max_batch = (int)x;
    if ((d = dcv_json_get(v, "max_queue_delay_us"))) {
        if (!dcv_json_int(d, 0, DCV_BATCH_DELAY_MAX_US, &x))
            return dcv_errf(err, DCV_EINVAL, "dynamic_batching.max_queue_delay_us must be an "
                            "integer from 0 to %d (1 s)", DCV_BATCH_DELAY_MAX_US);
        cfg->max_queue_delay_us = (int)x;
    }
    if (ndim < 1 || in_sig[0] > 0) {
        int64_t fixed = ndim >= 1 ? in_sig[0] : 0;
        *cfg = (struct dcv_batch_cfg){ 0 };
        return dcv_errf(err, DCV_EINVAL, "dynamic_batching needs a dynamic batch dim, but this "
                        "model's input batch is fixed at %lld (batch_input_shape or "
                        "batch_size): drop it or drop dynamic_batching", (long long)fixed);
    }
    return 0;
}

struct dcv_batcher *dcv_batch_new(const struct dcv_batch_cfg *cfg, dcv_batch_run_fn run,
                                  void *ctx)
{
    struct dcv_batcher *b = calloc(1, sizeof *b);
    pthread_condattr_t ca;
    if (!b) return NULL;
    b->cfg = *cfg;
    b->run = run;
    b->ctx = ctx;
    atomic_init(&b->refs, 1);
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);    /* dcv_now_ns's clock */
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    return b;
}

static void batcher_unref(struct dcv_batcher *b)
{
    if (atomic_fetch_sub(&b->refs, 1) != 1) return;
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

void dcv_batch_free(struct dcv_batcher *b)
{
    if (b) batcher_unref(b);
}

const struct dcv_batch_cfg *dcv_batch_cfg(const struct dcv_batcher *b)
{
    return &b->cfg;
}

void dcv_batch_expect(struct dcv_batcher *b, struct dcv_batch_item *it)
{
    if (!b) return;
    it->b = b;
    pthread_mutex_lock(&b->mu);
    it->expected = true;
    b->expected++;
    pthread_mutex_unlock(&b->mu);
}

static void unexpect_locked(struct dcv_batcher *b, struct dcv_batch_item *it)
{
    if (it->started) {
        it->started = false;
        if (--b->started == 0) pthread_cond_broadcast(&b->cv);
    }
    if (!it->expected) return;
    it->expected = false;
    b->expected--;
}

void dcv_batch_started(struct dcv_batch_item *it)
{
    struct dcv_batcher *b = it->b;
    if (!b || it->started) return;
    pthread_mutex_lock(&b->mu);
    if (it->expected) {
        it->started = true;
        b->started++;
    }
    pthread_mutex_unlock(&b->mu);
}

void dcv_batch_alone(struct dcv_batch_item *it)
{
    struct dcv_batcher *b = it->b;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    unexpect_locked(b, it);
    pthread_mutex_unlock(&b->mu);
    it->b = NULL;
}

bool dcv_batch_company(struct dcv_batcher *b)
{
    if (!b) return false;
    pthread_mutex_lock(&b->mu);
    bool r = b->expected > 1 || b->open;
    pthread_mutex_unlock(&b->mu);
    return r;
}

static bool same_item_shape(const struct dcv_batch_item *a, const struct dcv_batch_item *b)
{
    return a->ndim == b->ndim &&
           !memcmp(a->shape + 1, b->shape + 1, sizeof(int64_t) * (size_t)(a->ndim - 1));
}

static bool fits(const struct dcv_batcher *b, const struct dcv_batch_group *g,
                 const struct dcv_batch_item *it, uint64_t max_work)
{
    return same_item_shape(g->head, it) && g->batch + it->shape[0] <= b->cfg.max_batch &&
           g->work + it->work <= max_work;
}

static void add(struct dcv_batch_group *g, struct dcv_batch_item *it)
{
    it->next = NULL;
    if (g->tail) g->tail->next = it;
    else g->head = it;
    g->tail = it;
    g->batch += it->shape[0];
    g->work += it->work;
}

static void close_locked(struct dcv_batcher *b, struct dcv_batch_group *g)
{
    g->open = false;
    if (b->open == g) b->open = NULL;
    pthread_cond_broadcast(&b->cv);
}

static int run_one(struct dcv_batcher *b, struct dcv_batch_item *it)
{
    it->rc = b->run(b->ctx, it->in, it->shape, it->ndim, it->out, it->out_count, it->err);
    if (!it->rc) it->exec_requests = 1, it->exec_batch = it->shape[0];
    return it->rc;
}

/* The concatenated run: inputs copied in order, the output split back.
 * The two buffers are charged to the memory budget (each member's own
 * holding already covers a chain's intermediate buffers for its share);
 * without the room, or the memory, each member runs on its own instead. */
static void run_group(struct dcv_batcher *b, struct dcv_batch_item *lead, int n, int64_t batch,
                      size_t in_count, size_t out_count)
{
    size_t bytes = (in_count + out_count) * sizeof(float);
    bool held = dcv_budget_take(bytes);
    float *in = held ? dcv_buf_alloc(in_count * sizeof(float)) : NULL;    /* pages kept */
    float *out = held ? dcv_buf_alloc(out_count * sizeof(float)) : NULL;
    int64_t shape[DCV_MAX_DIMS];
    size_t at = 0;
    if (!in || !out) {
        for (struct dcv_batch_item *it = lead; it; it = it->next)
            if (!it->rc) run_one(b, it);
        goto out;
    }
    for (struct dcv_batch_item *it = lead; it; it = it->next)
        if (!it->rc) memcpy(in + at, it->in, it->in_count * sizeof(float)), at += it->in_count;
    memcpy(shape, lead->shape, sizeof shape);
    shape[0] = batch;
    int rc = b->run(b->ctx, in, shape, lead->ndim, out, out_count, lead->err);
    at = 0;
    for (struct dcv_batch_item *it = lead; it; it = it->next) {
        if (it->rc) continue;
        if (rc) {
            if (it != lead) snprintf(it->err, DCV_ERRLEN, "%s", lead->err);
            it->rc = rc;
            continue;
        }
        memcpy(it->out, out + at, it->out_count * sizeof(float));
        at += it->out_count;
    }
    if (!rc) lead->exec_requests = n, lead->exec_batch = batch;
out:
    dcv_buf_free(in);
    dcv_buf_free(out);
    if (held) dcv_budget_give(bytes);
}

/* Runs a closed group on this pool thread: members already stopped (their
 * request answered) are left out, then every member's finish runs. */
static void execute(struct dcv_batcher *b, struct dcv_batch_group *g)
{
    struct dcv_batch_item *lead = NULL;
    int n = 0;
    int64_t batch = 0;
    size_t in_count = 0, out_count = 0;
    for (struct dcv_batch_item *it = g->head; it; it = it->next) {
        it->rc = 0;
        if (it->stop && atomic_load(it->stop)) {
            it->rc = dcv_errf(it->err, DCV_ECANCELED, "stopped before its batch ran");
            continue;
        }
        if (!lead) lead = it;
        n++;
        batch += it->shape[0];
        in_count += it->in_count;
        out_count += it->out_count;
    }
    if (lead && lead->prepare) lead->prepare(lead);
    if (n == 1) run_one(b, lead);
    else if (n > 1) run_group(b, lead, n, batch, in_count, out_count);
    for (struct dcv_batch_item *it = g->head, *next; it; it = next) {
        next = it->next;
        it->finish(it);
    }
}

enum dcv_batch_fate dcv_batch_enter(struct dcv_batch_item *it, const float *in,
                                    const int64_t *shape, int ndim, size_t in_count,
                                    float *out, size_t out_count, uint64_t work,
                                    uint64_t max_work)
{
    struct dcv_batcher *b = it->b;
    struct dcv_batch_group *g, *ran = NULL, *fresh;
    enum dcv_batch_fate fate = DCV_BATCH_ALONE;
    if (!b) return fate;
    it->in = in, it->out = out, it->ndim = ndim;
    memcpy(it->shape, shape, sizeof(int64_t) * (size_t)ndim);
    it->in_count = in_count, it->out_count = out_count, it->work = work;
    it->exec_requests = 0, it->exec_batch = 0;
    uint64_t now = dcv_now_ns();
    pthread_mutex_lock(&b->mu);
    unexpect_locked(b, it);
    g = b->open;
    if (g && fits(b, g, it, max_work)) {
        add(g, it);
        if (g->batch >= b->cfg.max_batch || b->expected == b->started || now >= g->due) {
            close_locked(b, g);
            ran = g;
            fate = DCV_BATCH_DONE;
        } else {
            it->group = g;
            fate = DCV_BATCH_PARKED;
        }
    } else {
        if (g) close_locked(b, g), ran = g;            /* it cannot grow past this one */
        if (b->expected > b->started && shape[0] < b->cfg.max_batch && work < max_work &&
            (fresh = calloc(1, sizeof *fresh))) {
            *fresh = (struct dcv_batch_group){ .b = b, .open = true, .refs = 1,
                                               .due = now + (uint64_t)b->cfg.max_queue_delay_us
                                                            * 1000u };
            add(fresh, it);
            it->group = fresh;
            b->open = fresh;
            fate = DCV_BATCH_PARKED;
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (fate == DCV_BATCH_ALONE) it->exec_requests = 1, it->exec_batch = shape[0];
    if (ran) {
        it->ran = ran;
        execute(b, ran);
    }
    return fate;
}

static void group_unref(struct dcv_batch_group *g)
{
    if (--g->refs == 0) free(g);
}

/* Loop: members whose own work is back are done now; the others when it is. */
static void complete(struct dcv_batch_group *g)
{
    for (struct dcv_batch_item *it = g->head, *next; it; it = next) {
        next = it->next;
        if (it->group != g) continue;       /* the member whose worker ran it: not parked */
        it->group = NULL;
        if (it->own_done) {
            it->own_done = false;
            it->done(it);                   /* may free it */
        }
    }
    group_unref(g);
}

/* The group's flush: waits (on a background pool thread) while the group
 * is open, its delay runs and another worker is bringing an item; runs it
 * if still open. */
static void flush(struct dcv_batch_group *g, bool wait)
{
    struct dcv_batcher *b = g->b;
    bool mine;
    pthread_mutex_lock(&b->mu);
    while (wait) {
        uint64_t now = dcv_now_ns();
        if (!g->open || b->started == 0 || now >= g->due) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (g->due - now);
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
    if ((mine = g->open)) close_locked(b, g);
    pthread_mutex_unlock(&b->mu);
    if (mine) {
        g->by_flush = true;
        execute(b, g);
    }
}

static void flush_work(void *arg)
{
    flush(arg, true);
}

static void flush_done(void *arg)
{
    struct dcv_batch_group *g = arg;
    struct dcv_batcher *b = g->b;
    if (g->by_flush) complete(g);
    group_unref(g);
    batcher_unref(b);
}

bool dcv_batch_own_done(struct dcv_batch_item *it)
{
    struct dcv_batcher *b = it->b;
    struct dcv_batch_group *g;
    if (!b) return false;
    if ((g = it->ran)) {
        it->ran = NULL;
        complete(g);
    }
    if (it->expected) {
        pthread_mutex_lock(&b->mu);
        unexpect_locked(b, it);
        pthread_mutex_unlock(&b->mu);
    }
    if (!(g = it->group)) return false;
    if (!g->flush_sent) {
        g->flush_sent = true;
        g->refs++;
        atomic_fetch_add(&b->refs, 1);
        if (dcv_sched_submit_bg(flush_work, flush_done, g)) {
            flush(g, false);        /* no pool (shutting down): here, at once */
            flush_done(g);
        }
    }
    if (!it->group) return false;   /* run and completed just above */
    it->own_done = true;
    return true;
}

void dcv_batch_config_json(const struct dcv_batcher *b, struct dcv_json *config)
{
    if (!config) return;
    dcv_json_add(config, "max_batch_size", dcv_json_new_number(b ? b->cfg.max_batch : 0));
    if (!b) return;
    struct dcv_json *d = dcv_json_new_object();
    dcv_json_add(d, "max_queue_delay_microseconds",
                 dcv_json_new_number(b->cfg.max_queue_delay_us));
    dcv_json_add(config, "dynamic_batching", d);
}
