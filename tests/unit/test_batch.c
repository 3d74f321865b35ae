/* test_batch.c — dynamic batching's grouping (batch.c) with a stand-in for
 * the model: run() doubles every value and records each execution's batch,
 * so each member's output slice can be checked against its own input. The
 * test thread plays both the workers (dcv_batch_enter) and the loop
 * (dcv_batch_own_done); the flush test runs the real scheduler. Covered:
 * running alone when nobody is queued for a worker, joining until the
 * last queued item runs the group, order and splitting, per-item shapes, max_batch and
 * max_work, a stopped member left out, a failed run given to every member,
 * the flush after max_queue_delay_us (waiting only for items on a worker,
 * never for queued ones), and the model file key's checks. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>

#include "deconvd/batch.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/sched.h"

#define MAXV 64

struct fake {
    int calls;
    int64_t batches[8];
    int fail;
};

static int run(void *ctx, const float *in, const int64_t *shape, int ndim, float *out,
               size_t cap, char *err)
{
    struct fake *f = ctx;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    if (f->calls < 8) f->batches[f->calls] = shape[0];
    f->calls++;
    if (f->fail) return dcv_errf(err, DCV_EENGINE, "engine says no");
    cr_assert_leq(n, cap);
    for (size_t i = 0; i < n; i++) out[i] = 2 * in[i];
    return 0;
}

struct req {
    struct dcv_batch_item it;           /* first: the callbacks cast back */
    float in[MAXV], out[MAXV];
    int64_t shape[4];
    size_t count;
    atomic_bool stop;
    char err[DCV_ERRLEN];
    int finished, done;
};

static int g_finish_order[8], g_nfinish;

static void finish(struct dcv_batch_item *it)
{
    struct req *r = (struct req *)(void *)it;
    r->finished++;
    if (g_nfinish < 8) g_finish_order[g_nfinish] = (int)r->in[0];
    g_nfinish++;
}

static void done(struct dcv_batch_item *it)
{
    ((struct req *)(void *)it)->done++;
    dcv_sched_stop();
}

/* A request of batch n and spatial h x w (1 channel), values id*100 + i. */
static void req_init(struct req *r, struct dcv_batcher *b, int id, int64_t n, int64_t h,
                     int64_t w)
{
    memset(r, 0, sizeof *r);
    r->shape[0] = n, r->shape[1] = h, r->shape[2] = w, r->shape[3] = 1;
    r->count = (size_t)(n * h * w);
    cr_assert_leq(r->count, MAXV);
    for (size_t i = 0; i < r->count; i++) r->in[i] = (float)(id * 100 + (int)i);
    atomic_init(&r->stop, false);
    r->it.finish = finish, r->it.done = done, r->it.stop = &r->stop, r->it.err = r->err;
    dcv_batch_expect(b, &r->it);
}

static enum dcv_batch_fate enter(struct req *r, uint64_t max_work)
{
    return dcv_batch_enter(&r->it, r->in, r->shape, 4, r->count, r->out, r->count,
                           r->count, max_work);
}

static void assert_doubled(const struct req *r)
{
    for (size_t i = 0; i < r->count; i++)
        cr_assert_float_eq(r->out[i], 2 * r->in[i], 0, "item %d value %zu", (int)r->in[0], i);
}

/* The loop: every item's own work handed back, runners first (a parked
 * item whose group has not run would need the scheduler for its flush). */
static void own_done_all(struct req **r, int n)
{
    for (int i = 0; i < n; i++) cr_assert(!dcv_batch_own_done(&r[i]->it), "%d", i);
}

static struct dcv_batcher *batcher(struct fake *f, int max_batch, int delay_us)
{
    struct dcv_batch_cfg cfg = { max_batch, delay_us };
    g_nfinish = 0;
    struct dcv_batcher *b = dcv_batch_new(&cfg, run, f);
    cr_assert_not_null(b);
    return b;
}

Test(batch, alone_when_nobody_else_is_coming)
{
    struct fake f = { 0 };
    struct dcv_batcher *b = batcher(&f, 8, 1000000);
    struct req a;
    req_init(&a, b, 1, 2, 2, 2);
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_ALONE, "no waiting for company");
    cr_assert_eq(f.calls, 0, "the caller computes it itself");
    cr_assert_eq(a.it.exec_requests, 1);
    cr_assert_eq(a.it.exec_batch, 2);
    cr_assert(!dcv_batch_own_done(&a.it));
    dcv_batch_free(b);
}

Test(batch, joins_until_the_last_expected_runs_one_execution_split_in_order)
{
    struct fake f = { 0 };
    struct dcv_batcher *b = batcher(&f, 16, 1000000);
    struct req a, c, d;
    req_init(&a, b, 1, 1, 2, 3);
    req_init(&c, b, 2, 3, 2, 3);
    req_init(&d, b, 3, 2, 2, 3);
    cr_assert(dcv_batch_company(b));
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_PARKED);
    cr_assert_eq(enter(&c, UINT64_MAX), DCV_BATCH_PARKED);
    cr_assert_eq(f.calls, 0);
    cr_assert_eq(enter(&d, UINT64_MAX), DCV_BATCH_DONE, "nobody else coming: runs now");
    cr_assert_eq(f.calls, 1, "one execution");
    cr_assert_eq(f.batches[0], 6, "batch 1 + 3 + 2");
    assert_doubled(&a), assert_doubled(&c), assert_doubled(&d);
    cr_assert_eq(g_nfinish, 3);
    cr_assert(g_finish_order[0] == 100 && g_finish_order[1] == 200 && g_finish_order[2] == 300,
              "finished in arrival order");
    cr_assert(a.it.rc == 0 && c.it.rc == 0 && d.it.rc == 0);
    cr_assert_eq(a.it.exec_requests, 3, "the first member counts the execution");
    cr_assert_eq(a.it.exec_batch, 6);
    cr_assert_eq(c.it.exec_requests + d.it.exec_requests, 0);
    /* the loop: the runner's done completes the group; parked members whose
     * own work is not back yet are answered when it is */
    cr_assert(!dcv_batch_own_done(&d.it));
    cr_assert(!dcv_batch_own_done(&a.it) && !dcv_batch_own_done(&c.it));
    cr_assert_eq(a.done + c.done + d.done, 0, "answered by their own done, not a callback");
    dcv_batch_free(b);
}

Test(batch, parked_member_whose_work_is_back_is_called_back)
{
    struct fake f = { 0 };
    struct dcv_batcher *b = batcher(&f, 16, 1000000);
    struct req a, c;
    char err[DCV_ERRLEN];
    cr_assert_eq(dcv_sched_init(1, 8, NULL, NULL, err), 0, "%s", err);
    req_init(&a, b, 1, 1, 2, 2);
    req_init(&c, b, 2, 1, 2, 2);
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_PARKED, "c is queued: a parks");
    dcv_batch_started(&c.it);             /* on a worker now: the flush waits for it */
    cr_assert(dcv_batch_own_done(&a.it), "parked: do not answer it yet");
    cr_assert_eq(enter(&c, UINT64_MAX), DCV_BATCH_DONE);
    cr_assert(!dcv_batch_own_done(&c.it));
    cr_assert_eq(a.done, 1, "completing the group answered the parked member");
    assert_doubled(&a), assert_doubled(&c);
    dcv_sched_run();                      /* the group's flush: finds it run, does nothing */
    cr_assert_eq(f.calls, 1);
    dcv_sched_close();
    dcv_batch_free(b);
}

Test(batch, another_item_shape_runs_the_open_group_and_goes_alone)
{
    struct fake f = { 0 };
    struct dcv_batcher *b = batcher(&f, 16, 1000000);
    struct req a, c;
    req_init(&a, b, 1, 1, 2, 2);
    req_init(&c, b, 2, 1, 3, 2);
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_PARKED);
    cr_assert_eq(enter(&c, UINT64_MAX), DCV_BATCH_ALONE, "its shape cannot join");
    cr_assert_eq(f.calls, 1, "the open group ran first, on this worker");
    cr_assert_eq(f.batches[0], 1);
    assert_doubled(&a);
    cr_assert_eq(a.finished, 1);
    cr_assert_eq(c.finished, 0, "the alone item is computed by its caller");
    cr_assert(!dcv_batch_own_done(&c.it));
    cr_assert(!dcv_batch_own_done(&a.it));
    dcv_batch_free(b);
}

Test(batch, max_batch_and_max_work_bound_a_group)
{
    struct fake f = { 0 };
    struct dcv_batcher *b = batcher(&f, 4, 1000000);
    struct req a, c, d, e;
    req_init(&a, b, 1, 3, 1, 1);
    req_init(&c, b, 2, 2, 1, 1);
    req_init(&d, b, 3, 2, 1, 1);
    req_init(&e, b, 4, 5, 1, 1);
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_PARKED);
    cr_assert_eq(enter(&c, UINT64_MAX), DCV_BATCH_PARKED, "3 + 2 > 4: the first group runs, "
                 "this one opens the next");
    cr_assert_eq(f.calls, 1);
    cr_assert_eq(f.batches[0], 3);
    cr_assert_eq(enter(&d, UINT64_MAX), DCV_BATCH_DONE, "2 + 2 = max_batch: runs at once");
    cr_assert_eq(f.batches[1], 4);
    cr_assert_eq(enter(&e, UINT64_MAX), DCV_BATCH_ALONE, "batch 5 > max_batch: alone");
    assert_doubled(&a), assert_doubled(&c), assert_doubled(&d);
    own_done_all((struct req *[]){ &d, &c, &a, &e }, 4);

    /* max_work: each item's work is its value count (1 here) */
    struct fake g = { 0 };
    struct dcv_batcher *b2 = batcher(&g, 64, 1000000);
    req_init(&a, b2, 1, 2, 1, 1);
    req_init(&c, b2, 2, 2, 1, 1);
    req_init(&d, b2, 3, 1, 1, 1);
    cr_assert_eq(enter(&a, 3), DCV_BATCH_PARKED);
    cr_assert_eq(enter(&c, 3), DCV_BATCH_PARKED, "2 + 2 > max_work 3: a new group");
    cr_assert_eq(g.batches[0], 2);
    cr_assert_eq(enter(&d, 3), DCV_BATCH_DONE);
    cr_assert_eq(g.batches[1], 3);
    own_done_all((struct req *[]){ &d, &c, &a }, 3);
    dcv_batch_free(b);
    dcv_batch_free(b2);
}

Test(batch, a_stopped_member_is_left_out)
{
    struct fake f = { 0 };
    struct dcv_batcher *b = batcher(&f, 16, 1000000);
    struct req a, c, d;
    req_init(&a, b, 1, 1, 2, 2);
    req_init(&c, b, 2, 2, 2, 2);
    req_init(&d, b, 3, 1, 2, 2);
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_PARKED);
    cr_assert_eq(enter(&c, UINT64_MAX), DCV_BATCH_PARKED);
    atomic_store(&a.stop, true);          /* answered early by the loop */
    cr_assert_eq(enter(&d, UINT64_MAX), DCV_BATCH_DONE);
    cr_assert_eq(f.calls, 1);
    cr_assert_eq(f.batches[0], 3, "a's item is not computed");
    cr_assert_eq(a.it.rc, DCV_ECANCELED);
    cr_assert_eq(a.finished, 1, "it is still finished (its buffers released)");
    assert_doubled(&c), assert_doubled(&d);
    cr_assert_eq(c.it.exec_requests, 2, "the first member that ran counts it");
    own_done_all((struct req *[]){ &d, &a, &c }, 3);
    dcv_batch_free(b);
}

Test(batch, a_failed_execution_fails_every_member)
{
    struct fake f = { .fail = 1 };
    struct dcv_batcher *b = batcher(&f, 16, 1000000);
    struct req a, c;
    req_init(&a, b, 1, 1, 2, 2);
    req_init(&c, b, 2, 1, 2, 2);
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_PARKED);
    cr_assert_eq(enter(&c, UINT64_MAX), DCV_BATCH_DONE);
    cr_assert(a.it.rc == DCV_EENGINE && c.it.rc == DCV_EENGINE);
    cr_assert_str_eq(a.err, "engine says no");
    cr_assert_str_eq(c.err, "engine says no");
    cr_assert_eq(a.it.exec_requests + c.it.exec_requests, 0, "no execution counted");
    dcv_batch_own_done(&c.it), dcv_batch_own_done(&a.it);
    dcv_batch_free(b);
}

Test(batch, the_flush_runs_a_group_when_its_delay_ends)
{
    struct fake f = { 0 };
    struct dcv_batcher *b = batcher(&f, 16, 30000);
    struct req a, c;
    char err[DCV_ERRLEN];
    cr_assert_eq(dcv_sched_init(2, 8, NULL, NULL, err), 0, "%s", err);
    req_init(&a, b, 1, 1, 2, 2);
    req_init(&c, b, 2, 1, 2, 2);          /* taken by a worker, never comes in time */
    uint64_t t0 = dcv_now_ns();
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_PARKED);
    dcv_batch_started(&c.it);
    cr_assert(dcv_batch_own_done(&a.it), "parked");
    cr_assert_eq(dcv_sched_run(), 0);     /* until a's done stops it */
    uint64_t waited = dcv_now_ns() - t0;
    cr_assert_eq(a.done, 1);
    cr_assert_eq(f.calls, 1);
    assert_doubled(&a);
    cr_assert_geq(waited, 30000000u, "ran after max_queue_delay_us (%llu ns)",
                  (unsigned long long)waited);
    cr_assert_lt(waited, 2000000000u, "not held for long (%llu ns)", (unsigned long long)waited);
    dcv_batch_alone(&c.it);
    cr_assert(!dcv_batch_company(b));
    dcv_sched_close();
    dcv_batch_free(b);
}

static int parse(const char *text, const int64_t *sig, struct dcv_batch_cfg *cfg, char *err)
{
    struct dcv_json *v = dcv_json_parse(text, strlen(text), err);
    cr_assert_not_null(v, "%s", err);
    int rc = dcv_batch_parse(v, sig, 4, cfg, err);
    dcv_json_free(v);
    return rc;
}

Test(batch, the_model_file_key)
{
    const int64_t dyn[4] = { -1, -1, -1, 3 }, fixed[4] = { 2, 8, 8, 3 };
    struct dcv_batch_cfg cfg;
    char err[DCV_ERRLEN];
    cr_assert_eq(parse("{\"max_batch\": 16, \"max_queue_delay_us\": 300}", dyn, &cfg, err), 0,
                 "%s", err);
    cr_assert(cfg.max_batch == 16 && cfg.max_queue_delay_us == 300);
    cr_assert_eq(parse("{\"max_batch\": 2}", dyn, &cfg, err), 0);
    cr_assert(cfg.max_batch == 2 && cfg.max_queue_delay_us == 0, "delay defaults to 0");
    cr_assert_eq(dcv_batch_parse(NULL, dyn, 4, &cfg, err), 0);
    cr_assert_eq(cfg.max_batch, 0, "absent: off");
    cr_assert_eq(parse("{\"max_batch\": 0}", dyn, &cfg, err), DCV_EINVAL);
    cr_assert(strstr(err, "max_batch must be an integer from 1 to 4096"), "%s", err);
    cr_assert_eq(parse("{\"max_batch\": 4097}", dyn, &cfg, err), DCV_EINVAL);
    cr_assert_eq(parse("{\"max_batch\": 2.5}", dyn, &cfg, err), DCV_EINVAL);
    cr_assert_eq(parse("{}", dyn, &cfg, err), DCV_EINVAL);
    cr_assert_eq(parse("{\"max_batch\": 4, \"max_queue_delay_us\": 1000001}", dyn, &cfg, err),
                 DCV_EINVAL);
    cr_assert(strstr(err, "max_queue_delay_us must be an integer from 0 to 1000000"), "%s", err);
    cr_assert_eq(parse("{\"max_batch\": 4, \"delay\": 5}", dyn, &cfg, err), DCV_EINVAL);
    cr_assert(strstr(err, "unknown key 'delay'"), "%s", err);
    cr_assert_eq(parse("[4]", dyn, &cfg, err), DCV_EINVAL);
    cr_assert(strstr(err, "must be an object"), "%s", err);
    cr_assert_eq(parse("{\"max_batch\": 4}", fixed, &cfg, err), DCV_EINVAL);
    cr_assert(strstr(err, "needs a dynamic batch dim") && strstr(err, "fixed at 2"), "%s", err);
    cr_assert_eq(cfg.max_batch, 0);
}

Test(batch, no_backlog_no_batch)
{
    struct fake f = { 0 };
    struct dcv_batcher *b = batcher(&f, 16, 1000000);
    struct req a, c;
    req_init(&a, b, 1, 1, 2, 2);
    req_init(&c, b, 2, 1, 2, 2);
    dcv_batch_started(&c.it);             /* c is on another worker: none queued */
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_ALONE, "a worker free: run in parallel");
    cr_assert_eq(enter(&c, UINT64_MAX), DCV_BATCH_ALONE);
    cr_assert_eq(f.calls, 0);
    dcv_batch_free(b);
}

Test(batch, the_flush_does_not_wait_for_requests_still_queued)
{
    struct fake f = { 0 };
    struct dcv_batcher *b = batcher(&f, 16, 1000000);
    struct req a, c;
    char err[DCV_ERRLEN];
    cr_assert_eq(dcv_sched_init(2, 8, NULL, NULL, err), 0, "%s", err);
    req_init(&a, b, 1, 1, 2, 2);
    req_init(&c, b, 2, 1, 2, 2);          /* received, no worker has it yet */
    uint64_t t0 = dcv_now_ns();
    cr_assert_eq(enter(&a, UINT64_MAX), DCV_BATCH_PARKED, "c is coming: a parks");
    cr_assert(dcv_batch_own_done(&a.it));
    cr_assert_eq(dcv_sched_run(), 0);
    uint64_t waited = dcv_now_ns() - t0;
    cr_assert_eq(a.done, 1);
    cr_assert_lt(waited, 500000000u, "the flush ran at once, not after 1 s (%llu ns)",
                 (unsigned long long)waited);
    dcv_batch_alone(&c.it);
    dcv_sched_close();
    dcv_batch_free(b);
}
