/* tuner.c — the split of the cores between concurrent computes.
 *
 * Why: two jobs with one thread each, or one job with every core, win on
 * different layers (a layer streaming 2 MiB of weights through each core's
 * L2 favours one job split across the cores; a small one favours a job per
 * core), and a fixed choice or a split taken from the jobs running at one
 * instant (which let a job that started alone keep every core while a
 * second one started beside it) loses on the others. So each model's
 * tuner measures: under sustained load it runs each candidate split for a
 * short window, interleaved over two rounds, counts completed computes per
 * wall-second, and keeps the best until it is stale or the load changes.
 * The logic (dcv_tuner_threads / _done) is pure and time-driven by its
 * arguments; the gate below serializes it under one mutex and owns the
 * count of free cores. Pool threads; the stats read a snapshot.
 */
#include <pthread.h>
#include <string.h>

#include "deconvd/engine.h"
#include "deconvd/sched.h"
#include "deconvd/tuner.h"

void dcv_tuner_init(struct dcv_tuner *t, int cores)
{
    memset(t, 0, sizeof *t);
    t->cores = cores < 1 ? 1 : cores;
    for (int k = 1; k <= t->cores && t->ncand < DCV_TUNER_MAX_CAND; k *= 2)
        if (t->cores % k == 0) t->cand[t->ncand++] = k;
    /* the last candidate is one job per core, even when cores is no power of 2 */
    if (t->cand[t->ncand - 1] != t->cores) {
        if (t->ncand == DCV_TUNER_MAX_CAND) t->ncand--;
        t->cand[t->ncand++] = t->cores;
    }
}

static void start_probe(struct dcv_tuner *t)
{
    t->phase = DCV_TUNER_PROBING;
    t->round = 0;
    t->cur = 0;
    t->win_start = 0;
    t->psum = 0;
    t->pn = 0;
    memset(t->done, 0, sizeof t->done);
    memset(t->ns, 0, sizeof t->ns);
}

static bool loaded(const struct dcv_tuner *t, uint64_t now)
{
    return t->last_busy && (now < t->last_busy || now - t->last_busy < DCV_TUNER_HOLD_NS);
}

int dcv_tuner_threads(struct dcv_tuner *t, uint64_t now, long demand)
{
    if (t->ncand <= 1) return t->cores;
    if (t->last_busy && now > t->last_busy && now - t->last_busy >= DCV_TUNER_IDLE_NS &&
        t->phase != DCV_TUNER_IDLE) {
        t->phase = DCV_TUNER_IDLE;          /* the next load may not be this one's */
        t->cur = t->best;
    }
    if (demand >= 2) t->last_busy = now;
    if (!loaded(t, now)) return t->cores;   /* alone: every core, for latency */
    if (t->phase == DCV_TUNER_IDLE ||
        (t->phase == DCV_TUNER_SETTLED && now > t->settled_at &&
         now - t->settled_at >= DCV_TUNER_REPROBE_NS))
        start_probe(t);
    return t->cores / t->cand[t->cur];
}

/* The end of a probe: the best rate, unless the previous choice is within
 * the hysteresis of it (noise must not flip a settled choice). */
static void finish_probe(struct dcv_tuner *t, uint64_t now)
{
    int best = 0;
    for (int i = 0; i < t->ncand; i++) {
        t->rate[i] = t->ns[i] ? 1e9 * (double)t->done[i] / (double)t->ns[i] : 0;
        if (t->rate[i] > t->rate[best]) best = i;
    }
    if (t->probes && t->rate[t->best] * DCV_TUNER_HYSTERESIS >= t->rate[best]) best = t->best;
    t->best = t->cur = best;
    t->probe_demand = t->pn ? t->psum / (double)t->pn : 0;
    t->phase = DCV_TUNER_SETTLED;
    t->settled_at = now;
    t->probes++;
}

void dcv_tuner_done(struct dcv_tuner *t, uint64_t now, long demand)
{
    if (t->ncand <= 1) return;
    if (demand >= 1) t->last_busy = now;
    if (!loaded(t, now) || t->phase == DCV_TUNER_IDLE) {
        t->win_start = 0;                   /* a window measures sustained load only */
        return;
    }
    if (!t->win_start) {                    /* the first completion opens the window */
        t->win_start = now;
        t->win_done = 0;
        t->win_demand = 0;
        return;
    }
    t->win_done++;
    t->win_demand += (double)demand + 1;
    uint64_t dt = now - t->win_start;
    if (dt < DCV_TUNER_WINDOW_NS || t->win_done < DCV_TUNER_WINDOW_MIN) return;
    if (t->phase == DCV_TUNER_PROBING) {
        /* The first probe ever runs a round more and drops the first: it
         * builds each thread count's primitives (JIT) and warms the caches. */
        if (t->probes || t->round > 0) {
            t->done[t->cur] += t->win_done;
            t->ns[t->cur] += dt;
            t->psum += t->win_demand;
            t->pn += t->win_done;
        }
        t->win_start = 0;                   /* jobs begun under the old split finish unmeasured */
        if (++t->cur == t->ncand) {
            t->cur = 0;
            if (++t->round == DCV_TUNER_ROUNDS + (t->probes == 0)) finish_probe(t, now);
        }
        return;
    }
    double mean = t->win_demand / (double)t->win_done;
    t->win_start = now;
    t->win_done = 0;
    t->win_demand = 0;
    if (mean > t->probe_demand * DCV_TUNER_LOAD_CHANGE ||
        mean * DCV_TUNER_LOAD_CHANGE < t->probe_demand)
        start_probe(t);
}

void dcv_tuner_view(const struct dcv_tuner *t, struct dcv_tuner_view *v)
{
    memset(v, 0, sizeof *v);
    v->cores = t->cores;
    v->ncand = t->ncand;
    v->phase = t->phase;
    v->probes = t->probes;
    int i = t->phase == DCV_TUNER_PROBING ? t->cur : t->best;
    v->jobs = t->ncand ? t->cand[i] : 1;
    v->threads = t->cores / v->jobs;
    for (int c = 0; c < t->ncand; c++) {
        v->cand[c] = t->cand[c];
        v->rate[c] = t->rate[c];
    }
}

const char *dcv_tuner_phase_name(enum dcv_tuner_phase p)
{
    return p == DCV_TUNER_PROBING ? "probing" : p == DCV_TUNER_SETTLED ? "settled"
         : p == DCV_TUNER_OFF ? "off" : "idle";
}

/* ---- the gate ---- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_cores, g_free;
static long g_inside;                       /* waiting or computing */
static uint64_t g_next_ticket, g_serving;   /* arrival order */

void dcv_tuner_gate_init(int cores)
{
    pthread_mutex_lock(&g_mu);
    g_cores = g_free = cores < 1 ? 1 : cores;
    pthread_mutex_unlock(&g_mu);
}

int dcv_tuner_enter(struct dcv_tuner *t, long queued)
{
    int n;
    pthread_mutex_lock(&g_mu);
    if (!g_cores) g_cores = g_free = t && t->cores ? t->cores : 1;
    if (t && !t->cores) dcv_tuner_init(t, g_cores);
    uint64_t me = g_next_ticket++;
    g_inside++;
    while (g_serving != me) pthread_cond_wait(&g_cv, &g_mu);
    long demand = g_inside + queued;
    if (t) n = dcv_tuner_threads(t, dcv_now_ns(), demand);
    else n = demand >= 2 ? 1 : g_cores;
    if (n > g_cores) n = g_cores;
    while (g_free < n) pthread_cond_wait(&g_cv, &g_mu);
    g_free -= n;
    g_serving++;
    pthread_cond_broadcast(&g_cv);          /* the next in line may look now */
    pthread_mutex_unlock(&g_mu);
    dcv_engine_set_threads(n);
    return n;
}

void dcv_tuner_leave(struct dcv_tuner *t, int threads, long queued)
{
    pthread_mutex_lock(&g_mu);
    g_free += threads;
    g_inside--;
    if (t) dcv_tuner_done(t, dcv_now_ns(), g_inside + queued);
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

void dcv_tuner_snapshot(const struct dcv_tuner *t, struct dcv_tuner_view *v)
{
    struct dcv_tuner fresh;
    pthread_mutex_lock(&g_mu);
    if (!t->cores) {                        /* no compute yet: what it would start with */
        dcv_tuner_init(&fresh, g_cores);
        t = &fresh;
    }
    dcv_tuner_view(t, v);
    if (!g_cores) v->phase = DCV_TUNER_OFF;
    pthread_mutex_unlock(&g_mu);
}
