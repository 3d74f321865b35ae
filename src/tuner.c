/* tuner.c — the split of the cores between concurrent jobs.
 *
 * Why: two jobs with one thread each, or one job with every core, win on
 * different layers (a layer streaming 2 MiB of weights through each core's
 * L2 favours one job split across the cores; others favour a job per
 * core), and a fixed choice, or a split taken from the jobs running at one
 * instant (which let a job that started alone keep every core while a
 * second one started beside it), loses on the others. So each model's
 * tuner measures: under sustained load it runs each candidate split for a
 * dozen jobs, interleaved over two rounds, and keeps the split whose median
 * job holds the least core-time (threads x wall time: what the cores can
 * give is what bounds throughput at load), until it is stale or the load
 * changes. A median, not a mean, so a job preempted by another process
 * does not decide. The logic (dcv_tuner_threads / _done) is pure; the gate
 * below serializes it under one mutex and owns the count of free cores.
 * Pool threads; the stats read a snapshot.
 */
#include <pthread.h>
#include <stdlib.h>
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
    t->in_round = 0;
    t->psum = 0;
    t->pn = 0;
    memset(t->nsamp, 0, sizeof t->nsamp);
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

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The end of a probe: the best rate, unless the previous choice is within
 * the hysteresis of it (noise must not flip a settled choice). */
static void finish_probe(struct dcv_tuner *t, uint64_t now)
{
    int best = 0;
    for (int i = 0; i < t->ncand; i++) {
        int n = t->nsamp[i];
        qsort(t->samp[i], (size_t)n, sizeof t->samp[i][0], cmp_u64);
        uint64_t med = n ? (n % 2 ? t->samp[i][n / 2]
                                  : (t->samp[i][n / 2 - 1] + t->samp[i][n / 2]) / 2) : 0;
        t->rate[i] = med ? 1e9 * t->cores / (double)med : 0;
        if (t->rate[i] > t->rate[best]) best = i;
    }
    double next = 0;
    for (int i = 0; i < t->ncand; i++)
        if (i != best && t->rate[i] > next) next = t->rate[i];
    t->margin = next > 0 ? t->rate[best] / next : DCV_TUNER_DECISIVE;
    if (t->probes && t->rate[t->best] * DCV_TUNER_HYSTERESIS >= t->rate[best]) best = t->best;
    t->best = t->cur = best;
    t->probe_demand = t->pn ? t->psum / (double)t->pn : 0;
    t->phase = DCV_TUNER_SETTLED;
    t->settled_at = now;
    t->wsum = 0;
    t->wn = 0;
    t->probes++;
}

void dcv_tuner_done(struct dcv_tuner *t, uint64_t now, long demand, int threads,
                    uint64_t hold_ns)
{
    if (t->ncand <= 1) return;
    if (demand >= 1) t->last_busy = now;
    if (!loaded(t, now) || t->phase == DCV_TUNER_IDLE) return;   /* sustained load only */
    if (t->phase == DCV_TUNER_PROBING) {
        /* a job that began under another split (or alone) says nothing of this one */
        if (threads * t->cand[t->cur] != t->cores) return;
        /* The first probe ever runs a round more and drops it: it builds
         * each thread count's primitives (JIT) and warms the caches. */
        if ((t->probes || t->round > 0) && t->nsamp[t->cur] < DCV_TUNER_SAMPLES) {
            t->samp[t->cur][t->nsamp[t->cur]++] = (uint64_t)threads * hold_ns;
            t->psum += (double)demand + 1;
            t->pn++;
        }
        if (++t->in_round < DCV_TUNER_PER_ROUND) return;
        t->in_round = 0;
        if (++t->cur == t->ncand) {
            t->cur = 0;
            if (++t->round == DCV_TUNER_ROUNDS + (t->probes == 0)) finish_probe(t, now);
        }
        return;
    }
    t->wsum += (double)demand + 1;
    if (++t->wn < DCV_TUNER_LOAD_WINDOW) return;
    double mean = t->wsum / t->wn;
    t->wsum = 0;
    t->wn = 0;
    if (t->margin < DCV_TUNER_DECISIVE && (mean > t->probe_demand * DCV_TUNER_LOAD_CHANGE ||
                                           mean * DCV_TUNER_LOAD_CHANGE < t->probe_demand))
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

void dcv_tuner_leave(struct dcv_tuner *t, int threads, uint64_t entered_ns, long queued)
{
    uint64_t now = dcv_now_ns();
    pthread_mutex_lock(&g_mu);
    g_free += threads;
    g_inside--;
    if (t) dcv_tuner_done(t, now, g_inside + queued, threads, now - entered_ns);
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
