/* tuner.c — the split of the cores between concurrent jobs.
 *
 * Why: two jobs with one thread each, or one job with every core, win on
 * different layers (a layer streaming 2 MiB of weights through each core's
 * L2 favours one job split across the cores; others favour a job per
 * core), and a fixed choice, or a split taken from the jobs running at one
 * instant (which let a job that started alone keep every core while a
 * second one started beside it), loses on the others. So each model's
 * tuner measures: under sustained load it runs each candidate split for a
 * 16 jobs, interleaved over three rounds, and keeps the split with the
 * least process CPU time per job. CPU, not wall time: other processes on
 * the machine (a load generator, a build) stretch wall time at random but
 * not our CPU clock, and at load the CPU a job costs is what bounds
 * throughput. The logic (dcv_tuner_threads / _done) is pure; the gate
 * below serializes it under one mutex and owns the count of free cores.
 * Pool threads; the stats read a snapshot.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

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
    t->win_open = false;
    t->psum = 0;
    t->pn = 0;
    memset(t->cpu, 0, sizeof t->cpu);
    memset(t->jobs, 0, sizeof t->jobs);
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

/* The end of a probe: the cheapest split; among near-ties the previous
 * choice (noise must not flip it), else the most jobs at once (a layer
 * too small to use more threads costs the same CPU either way, and only
 * parallel jobs use every core then). */
static void finish_probe(struct dcv_tuner *t, uint64_t now)
{
    double min = 0, next = 0;
    for (int i = 0; i < t->ncand; i++) {
        t->cost[i] = t->jobs[i] ? (double)t->cpu[i] / (double)t->jobs[i] : 0;
        if (t->cost[i] > 0 && (min == 0 || t->cost[i] < min)) min = t->cost[i];
    }
    int best = -1;
    for (int i = 0; i < t->ncand; i++) {
        if (t->cost[i] > min && (next == 0 || t->cost[i] < next)) next = t->cost[i];
        if (t->cost[i] > 0 && t->cost[i] <= min * DCV_TUNER_TIE) best = i;   /* most jobs */
    }
    if (best < 0) best = t->best;           /* nothing measured */
    else if (t->probes && t->cost[t->best] > 0 && t->cost[t->best] <= min * DCV_TUNER_TIE)
        best = t->best;
    t->margin = next > 0 && min > 0 ? next / min : DCV_TUNER_DECISIVE;
    t->best = t->cur = best;
    t->probe_demand = t->pn ? t->psum / (double)t->pn : 0;
    t->phase = DCV_TUNER_SETTLED;
    t->settled_at = now;
    t->wsum = 0;
    t->wn = 0;
    t->probes++;
}

void dcv_tuner_done(struct dcv_tuner *t, uint64_t now, long demand, int threads,
                    uint64_t cpu_ns)
{
    if (t->ncand <= 1) return;
    if (demand >= 1) t->last_busy = now;
    if (!loaded(t, now) || t->phase == DCV_TUNER_IDLE) {
        t->win_open = false;                /* sustained load only */
        return;
    }
    if (t->phase == DCV_TUNER_PROBING) {
        /* a job that began under another split (or alone) says nothing of this one */
        if (threads * t->cand[t->cur] != t->cores) return;
        if (!t->win_open) {                 /* this candidate's first job opens its window */
            t->win_open = true;
            t->win_n = 0;
            t->win_cpu0 = cpu_ns;
            return;
        }
        t->psum += (double)demand + 1;
        t->pn++;
        if (++t->win_n < DCV_TUNER_PER_ROUND) return;
        /* The first probe ever runs a round more and drops it: it builds
         * each thread count's primitives (JIT) and warms the caches. */
        if (t->probes || t->round > 0) {
            t->cpu[t->cur] += cpu_ns - t->win_cpu0;
            t->jobs[t->cur] += (uint64_t)t->win_n;
        }
        t->win_open = false;
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
        v->cost[c] = t->cost[c];
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

/* The process's CPU time: every thread's, OpenMP helpers and the loop's too. */
static uint64_t process_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The CPU clock is read only while a probe measures: it is a system call
 * that sums every thread of the process, and a settled or idle tuner never
 * looks at it (a small chain computes in about 0.1 ms, on a paravirtual
 * machine where each call costs microseconds). Under the lock, so the
 * phase it goes by is the one dcv_tuner_done sees. */
void dcv_tuner_leave(struct dcv_tuner *t, int threads, long queued)
{
    pthread_mutex_lock(&g_mu);
    uint64_t cpu = t && t->phase == DCV_TUNER_PROBING ? process_cpu_ns() : 0;
    g_free += threads;
    g_inside--;
    if (t) dcv_tuner_done(t, dcv_now_ns(), g_inside + queued, threads, cpu);
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
