/* test_tuner.c — the split of the cores: candidates, the probe choosing the
 * split with the most completions per second from synthetic timings (either
 * way round), latency first when alone, hysteresis, re-probing when stale
 * or when the load changes, and the gate never handing out more cores than
 * there are, however many threads push through it. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include "deconvd/tuner.h"

#define MS 1000000ull

/* n jobs back to back under `demand`; under a split of k jobs at once one
 * finishes every gap[k] ns of wall time, each having held its cores for
 * k x gap[k] (so the rate the tuner should find is 1e9 / gap[k]). */
static uint64_t run(struct dcv_tuner *t, uint64_t now, const uint64_t *gap, int n, long demand)
{
    for (int i = 0; i < n; i++) {
        int threads = dcv_tuner_threads(t, now, demand);
        cr_assert(threads >= 1 && threads <= t->cores && t->cores % threads == 0);
        int k = t->cores / threads;
        now += gap[k];
        dcv_tuner_done(t, now, demand - 1, threads, gap[k] * (uint64_t)k);
    }
    return now;
}

static int jobs_now(const struct dcv_tuner *t)
{
    struct dcv_tuner_view v;
    dcv_tuner_view(t, &v);
    return v.jobs;
}

Test(tuner, candidates_divide_the_cores)
{
    struct dcv_tuner t;
    dcv_tuner_init(&t, 2);
    cr_assert_eq(t.ncand, 2);
    cr_assert(t.cand[0] == 1 && t.cand[1] == 2);
    dcv_tuner_init(&t, 1);
    cr_assert_eq(t.ncand, 1);
    dcv_tuner_init(&t, 6);
    cr_assert_eq(t.ncand, 3);
    cr_assert(t.cand[0] == 1 && t.cand[1] == 2 && t.cand[2] == 6);
    dcv_tuner_init(&t, 16);
    cr_assert_eq(t.ncand, 4);
    cr_assert_eq(t.cand[3], 16, "one job per core is always a candidate");
}

Test(tuner, alone_a_job_gets_every_core_and_nothing_is_probed)
{
    struct dcv_tuner t;
    uint64_t gap[3] = { 0, 1 * MS, 1 * MS };
    dcv_tuner_init(&t, 2);
    run(&t, 1000 * MS, gap, 500, 1);
    cr_assert_eq(dcv_tuner_threads(&t, 2000 * MS, 1), 2);
    cr_assert_eq(t.phase, DCV_TUNER_IDLE);
    cr_assert_eq(t.probes, 0);
}

Test(tuner, one_core_never_probes)
{
    struct dcv_tuner t;
    uint64_t gap[2] = { 0, 1 * MS };
    dcv_tuner_init(&t, 1);
    run(&t, 1000 * MS, gap, 500, 8);
    cr_assert_eq(dcv_tuner_threads(&t, 2000 * MS, 8), 1);
    cr_assert_eq(t.probes, 0);
}

/* 1x2 faster: 1.0 ms a compute against 1.4 ms with two jobs at once
 * (the audio_up CPU per request, 1.31 vs 1.91 ms). */
Test(tuner, picks_one_job_with_every_core_when_that_is_faster)
{
    struct dcv_tuner t;
    uint64_t gap[3] = { 0, 1000000, 1400000 };
    dcv_tuner_init(&t, 2);
    uint64_t now = run(&t, 1000 * MS, gap, 2000, 4);
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED);
    cr_assert_geq(t.probes, 1);
    cr_assert_eq(jobs_now(&t), 1);
    cr_assert_eq(dcv_tuner_threads(&t, now, 4), 2);
    cr_assert_float_eq(t.rate[0], 1000.0, 30.0, "1 job x 2 threads: 1000/s, got %f", t.rate[0]);
    cr_assert_float_eq(t.rate[1], 1e9 / 1.4e6, 30.0, "2 x 1: 714/s, got %f", t.rate[1]);
}

Test(tuner, picks_a_job_per_core_when_that_is_faster)
{
    struct dcv_tuner t;
    uint64_t gap[3] = { 0, 1300000, 1000000 };
    dcv_tuner_init(&t, 2);
    uint64_t now = run(&t, 1000 * MS, gap, 2000, 8);
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED);
    cr_assert_eq(jobs_now(&t), 2);
    cr_assert_eq(dcv_tuner_threads(&t, now, 8), 1);
}

Test(tuner, a_probe_is_short)
{
    struct dcv_tuner t;
    uint64_t gap[3] = { 0, 1 * MS, 2 * MS };
    dcv_tuner_init(&t, 2);
    uint64_t now = 1000 * MS;
    int jobs = 0;
    while (t.probes == 0 && jobs < 100000) now = run(&t, now, gap, 1, 2), jobs++;
    cr_assert_eq(t.probes, 1);
    /* the first probe: a warm-up round and two measured rounds of each candidate */
    cr_assert_eq(jobs, (DCV_TUNER_ROUNDS + 1) * 2 * DCV_TUNER_PER_ROUND);
    uint64_t t1 = now;
    jobs = 0;
    while (t.probes == 1 && jobs < 100000) now = run(&t, now, gap, 1, 2), jobs++;
    cr_assert_eq(t.probes, 2);
    cr_assert_geq(now - t1, DCV_TUNER_REPROBE_NS, "not probed again before it is stale");
    cr_assert_leq(now - t1, DCV_TUNER_REPROBE_NS + DCV_TUNER_ROUNDS * 2 * DCV_TUNER_PER_ROUND * 2 * MS,
                  "later probes: no warm-up round");
}

/* A job now and then preempted for 20 ms by another process does not
 * decide: the median of each candidate's jobs does. */
Test(tuner, outliers_do_not_decide)
{
    struct dcv_tuner t;
    dcv_tuner_init(&t, 2);
    uint64_t now = 1000 * MS;
    for (int i = 0; t.probes == 0 && i < 100000; i++) {
        int threads = dcv_tuner_threads(&t, now, 4), k = 2 / threads;
        uint64_t hold = k == 1 ? 1000000 : 2 * 1300000;   /* 1x2 is 1.3x better */
        if (k == 1 && i % 4 == 0) hold += 20 * MS;          /* a quarter of its jobs preempted */
        now += hold / (uint64_t)k;
        dcv_tuner_done(&t, now, 3, threads, hold);
    }
    cr_assert_eq(t.probes, 1);
    cr_assert_eq(jobs_now(&t), 1, "rates %f (1x2) vs %f (2x1)", t.rate[0], t.rate[1]);
    cr_assert_float_eq(t.rate[0], 1000.0, 1.0);
}

Test(tuner, a_settled_choice_holds_against_a_marginal_rival)
{
    struct dcv_tuner t;
    uint64_t slow1[3] = { 0, 1000000, 1200000 };   /* 1x2 wins */
    uint64_t close[3] = { 0, 1000000, 990000 };    /* 2x1 by 1 %: noise */
    uint64_t flip[3] = { 0, 1000000, 800000 };     /* 2x1 by 25 % */
    dcv_tuner_init(&t, 2);
    run(&t, 1000 * MS, slow1, 1000, 4);
    cr_assert_eq(jobs_now(&t), 1);
    uint64_t probes = t.probes;
    run(&t, t.settled_at + DCV_TUNER_REPROBE_NS, close, 1000, 4);
    cr_assert_gt(t.probes, probes, "re-probed once stale");
    cr_assert_eq(jobs_now(&t), 1, "a 1 %% rival does not replace the choice");
    run(&t, t.settled_at + DCV_TUNER_REPROBE_NS, flip, 1000, 4);
    cr_assert_eq(jobs_now(&t), 2, "a 25 %% better split does");
}

Test(tuner, a_change_of_load_starts_a_new_probe_unless_the_last_was_decisive)
{
    struct dcv_tuner t;
    uint64_t gap[3] = { 0, 1000000, 1100000 };
    uint64_t far[3] = { 0, 1000000, 1500000 };
    dcv_tuner_init(&t, 2);
    uint64_t now = run(&t, 1000 * MS, gap, 1000, 2);
    uint64_t probes = t.probes;
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED);
    now = run(&t, now, gap, 300, 2);
    cr_assert_eq(t.probes, probes, "same load: no new probe within %llu ms",
                 (unsigned long long)(DCV_TUNER_REPROBE_NS / MS));
    run(&t, now, gap, 200, 8);
    cr_assert(t.phase == DCV_TUNER_PROBING || t.probes > probes, "4x the demand: probing again");
    dcv_tuner_init(&t, 2);
    now = run(&t, 1000 * MS, far, 1000, 2);
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED);
    cr_assert_float_eq(t.margin, 1.5, 0.05);
    probes = t.probes;
    run(&t, now, far, 400, 8);
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED, "a 1.5x margin holds across a change of load");
    cr_assert_eq(t.probes, probes);
}

Test(tuner, after_a_pause_the_next_load_is_probed_afresh_and_alone_gets_every_core)
{
    struct dcv_tuner t;
    uint64_t gap[3] = { 0, 1000000, 700000 };
    dcv_tuner_init(&t, 2);
    uint64_t now = run(&t, 1000 * MS, gap, 1000, 4);
    cr_assert_eq(jobs_now(&t), 2);
    now += 2 * DCV_TUNER_IDLE_NS;
    cr_assert_eq(dcv_tuner_threads(&t, now, 1), 2, "alone after a pause: every core");
    cr_assert_eq(t.phase, DCV_TUNER_IDLE);
    dcv_tuner_threads(&t, now + MS, 2);
    cr_assert_eq(t.phase, DCV_TUNER_PROBING, "two at once again: a new probe");
}

/* ---- the gate ---- */

#define GATE_CORES 2
#define GATE_THREADS 6
#define GATE_ROUNDS 3000

static atomic_int g_in_use, g_peak;
static struct dcv_tuner g_t;

static void *through_gate(void *arg)
{
    for (int i = 0; i < GATE_ROUNDS; i++) {
        struct dcv_tuner *t = (i + (int)(intptr_t)arg) % 3 ? &g_t : NULL;
        int n = dcv_tuner_enter(t, 0);
        int now = atomic_fetch_add(&g_in_use, n) + n, peak = atomic_load(&g_peak);
        while (now > peak && !atomic_compare_exchange_weak(&g_peak, &peak, now)) {}
        atomic_fetch_sub(&g_in_use, n);
        dcv_tuner_leave(t, n, 0, 0);
    }
    return NULL;
}

Test(tuner, the_gate_never_hands_out_more_cores_than_there_are)
{
    pthread_t th[GATE_THREADS];
    dcv_tuner_gate_init(GATE_CORES);
    for (intptr_t i = 0; i < GATE_THREADS; i++)
        pthread_create(&th[i], NULL, through_gate, (void *)i);
    for (int i = 0; i < GATE_THREADS; i++) pthread_join(th[i], NULL);
    cr_assert_leq(atomic_load(&g_peak), GATE_CORES);
    cr_assert_geq(atomic_load(&g_peak), 1);
    cr_assert_eq(atomic_load(&g_in_use), 0);
    struct dcv_tuner_view v;
    dcv_tuner_snapshot(&g_t, &v);
    cr_assert_eq(v.cores, GATE_CORES, "a zeroed tuner is set up on its first entry");
    cr_assert_neq(v.phase, DCV_TUNER_OFF);
}

Test(tuner, the_stats_say_off_when_no_gate_runs)
{
    struct dcv_tuner t = { 0 };
    struct dcv_tuner_view v;
    dcv_tuner_snapshot(&t, &v);
    cr_assert_eq(v.phase, DCV_TUNER_OFF);
    cr_assert_str_eq(dcv_tuner_phase_name(v.phase), "off");
}
