/* test_tuner.c — the split of the cores: candidates, the probe choosing the
 * split with the least CPU per job from synthetic jobs (either way round,
 * whatever the wall time), near-ties to more jobs at once, latency first
 * when alone, hysteresis, re-probing when stale or when the load changes,
 * and the gate never handing out more cores than there are, however many
 * threads push through it. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include "deconvd/tuner.h"

#define MS 1000000ull

/* A synthetic server: under a split of k jobs at once, one job finishes
 * every gap[k] ns of wall time and costs cpu[k] ns of CPU. */
struct sim {
    uint64_t now, cpu_clock;
    uint64_t gap[5], cpu[5];
};

static void run(struct dcv_tuner *t, struct sim *m, int n, long demand)
{
    for (int i = 0; i < n; i++) {
        int threads = dcv_tuner_threads(t, m->now, demand);
        cr_assert(threads >= 1 && threads <= t->cores && t->cores % threads == 0);
        int k = t->cores / threads;
        m->now += m->gap[k];
        m->cpu_clock += m->cpu[k];
        dcv_tuner_done(t, m->now, demand - 1, threads, m->cpu_clock);
    }
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
    struct sim m = { .now = 1000 * MS, .gap = { 0, MS, MS }, .cpu = { 0, MS, MS } };
    dcv_tuner_init(&t, 2);
    run(&t, &m, 500, 1);
    cr_assert_eq(dcv_tuner_threads(&t, m.now, 1), 2);
    cr_assert_eq(t.phase, DCV_TUNER_IDLE);
    cr_assert_eq(t.probes, 0);
}

Test(tuner, one_core_never_probes)
{
    struct dcv_tuner t;
    struct sim m = { .now = 1000 * MS, .gap = { 0, MS }, .cpu = { 0, MS } };
    dcv_tuner_init(&t, 1);
    run(&t, &m, 500, 8);
    cr_assert_eq(dcv_tuner_threads(&t, m.now, 8), 1);
    cr_assert_eq(t.probes, 0);
}

/* The audio_up: 1.31 ms of CPU a request as 1 job x 2 threads,
 * 1.91 ms as two jobs at once. */
Test(tuner, picks_one_job_with_every_core_when_that_costs_less_cpu)
{
    struct dcv_tuner t;
    struct sim m = { .now = 1000 * MS, .gap = { 0, 800000, 1000000 },
                     .cpu = { 0, 1310000, 1910000 } };
    dcv_tuner_init(&t, 2);
    run(&t, &m, 2000, 4);
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED);
    cr_assert_geq(t.probes, 1);
    cr_assert_eq(jobs_now(&t), 1);
    cr_assert_eq(dcv_tuner_threads(&t, m.now, 4), 2);
    cr_assert_float_eq(t.cost[0], 1310000.0, 1.0, "1 x 2: 1.31 ms, got %f", t.cost[0]);
    cr_assert_float_eq(t.cost[1], 1910000.0, 1.0, "2 x 1: 1.91 ms, got %f", t.cost[1]);
    cr_assert_float_eq(t.margin, 1.91 / 1.31, 1e-6);
}

Test(tuner, picks_a_job_per_core_when_that_costs_less_cpu)
{
    struct dcv_tuner t;
    struct sim m = { .now = 1000 * MS, .gap = { 0, 1000000, 1000000 },
                     .cpu = { 0, 2400000, 2000000 } };
    dcv_tuner_init(&t, 2);
    run(&t, &m, 2000, 8);
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED);
    cr_assert_eq(jobs_now(&t), 2);
    cr_assert_eq(dcv_tuner_threads(&t, m.now, 8), 1);
}

/* The gate reads the CPU clock only while a probe measures (the read is a
 * system call): a tuner fed 0 outside probes must decide exactly as one
 * fed the clock at every job, through a settled stretch and a re-probe. */
static void run_gated(struct dcv_tuner *t, struct sim *m, int n, long demand)
{
    for (int i = 0; i < n; i++) {
        int threads = dcv_tuner_threads(t, m->now, demand);
        int k = t->cores / threads;
        m->now += m->gap[k];
        m->cpu_clock += m->cpu[k];
        dcv_tuner_done(t, m->now, demand - 1, threads,
                       t->phase == DCV_TUNER_PROBING ? m->cpu_clock : 0);
    }
}

Test(tuner, the_clock_read_only_while_probing_decides_alike)
{
    struct dcv_tuner a, b;
    struct sim ma = { .now = 1000 * MS, .gap = { 0, 800000, 1000000 },
                      .cpu = { 0, 1310000, 1910000 } };
    struct sim mb = ma;
    dcv_tuner_init(&a, 2);
    dcv_tuner_init(&b, 2);
    for (int round = 0; round < 30; round++) {   /* ~24 s of load: re-probes when stale */
        run(&a, &ma, 1000, 4);
        run_gated(&b, &mb, 1000, 4);
        cr_assert_eq(a.phase, b.phase);
        cr_assert_eq(a.probes, b.probes);
        cr_assert_eq(jobs_now(&a), jobs_now(&b));
        for (int c = 0; c < a.ncand; c++) cr_assert_float_eq(a.cost[c], b.cost[c], 1e-9);
    }
    cr_assert_geq(b.probes, 2, "a re-probe happened");
    cr_assert_eq(jobs_now(&b), 1);
    cr_assert_float_eq(b.cost[0], 1310000.0, 1.0);
}

/* Other processes stretch wall time (here the 1 x 2 jobs' tenfold), not
 * the process's CPU clock: the choice follows the CPU. */
Test(tuner, wall_time_does_not_decide)
{
    struct dcv_tuner t;
    struct sim m = { .now = 1000 * MS, .gap = { 0, 10 * MS, MS },
                     .cpu = { 0, 1000000, 1300000 } };
    dcv_tuner_init(&t, 2);
    run(&t, &m, 2000, 4);
    cr_assert_eq(jobs_now(&t), 1);
}

/* A layer too small for two threads costs the same CPU either way; only
 * two jobs at once then use both cores. */
Test(tuner, near_ties_go_to_more_jobs_at_once)
{
    struct dcv_tuner t;
    struct sim m = { .now = 1000 * MS, .gap = { 0, MS, MS / 2 },
                     .cpu = { 0, 1000000, 1020000 } };
    dcv_tuner_init(&t, 2);
    run(&t, &m, 2000, 4);
    cr_assert_eq(jobs_now(&t), 2);
}

Test(tuner, a_probe_is_short)
{
    struct dcv_tuner t;
    struct sim m = { .now = 1000 * MS, .gap = { 0, MS, 2 * MS }, .cpu = { 0, MS, 2 * MS } };
    dcv_tuner_init(&t, 2);
    int jobs = 0;
    while (t.probes == 0 && jobs < 100000) run(&t, &m, 1, 2), jobs++;
    cr_assert_eq(t.probes, 1);
    /* the first probe: a warm-up round and two measured rounds of each
     * candidate, a window of 16 jobs opened by one more */
    cr_assert_eq(jobs, (DCV_TUNER_ROUNDS + 1) * 2 * (DCV_TUNER_PER_ROUND + 1), "took %d", jobs);
    uint64_t t1 = m.now;
    jobs = 0;
    while (t.probes == 1 && jobs < 100000) run(&t, &m, 1, 2), jobs++;
    cr_assert_eq(t.probes, 2);
    cr_assert_geq(m.now - t1, DCV_TUNER_REPROBE_NS, "not probed again before it is stale");
    cr_assert_leq(m.now - t1, DCV_TUNER_REPROBE_NS + 300 * MS, "later probes: no warm-up round");
}

Test(tuner, a_settled_choice_holds_against_a_marginal_rival)
{
    struct dcv_tuner t;
    struct sim m = { .now = 1000 * MS, .gap = { 0, MS, MS }, .cpu = { 0, 1000000, 1200000 } };
    dcv_tuner_init(&t, 2);
    run(&t, &m, 1000, 4);
    cr_assert_eq(jobs_now(&t), 1);
    uint64_t probes = t.probes;
    m.cpu[2] = 990000;                          /* 2 x 1 cheaper by 1 %: noise */
    m.now = t.settled_at + DCV_TUNER_REPROBE_NS;
    run(&t, &m, 1000, 4);
    cr_assert_gt(t.probes, probes, "re-probed once stale");
    cr_assert_eq(jobs_now(&t), 1, "a 1 %% rival does not replace the choice");
    m.cpu[2] = 800000;                          /* by 25 % */
    m.now = t.settled_at + DCV_TUNER_REPROBE_NS;
    run(&t, &m, 1000, 4);
    cr_assert_eq(jobs_now(&t), 2, "a 25 %% cheaper split does");
}

Test(tuner, a_change_of_load_starts_a_new_probe_unless_the_last_was_decisive)
{
    struct dcv_tuner t;
    struct sim m = { .now = 1000 * MS, .gap = { 0, MS, MS }, .cpu = { 0, 1000000, 1100000 } };
    dcv_tuner_init(&t, 2);
    run(&t, &m, 1000, 2);
    uint64_t probes = t.probes;
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED);
    run(&t, &m, 300, 2);
    cr_assert_eq(t.probes, probes, "same load: no new probe");
    run(&t, &m, 200, 8);
    cr_assert(t.phase == DCV_TUNER_PROBING || t.probes > probes, "4x the demand: probing again");
    dcv_tuner_init(&t, 2);
    m.cpu[2] = 1500000;
    run(&t, &m, 1000, 2);
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED);
    cr_assert_float_eq(t.margin, 1.5, 1e-6);
    probes = t.probes;
    run(&t, &m, 400, 8);
    cr_assert_eq(t.phase, DCV_TUNER_SETTLED, "a 1.5x margin holds across a change of load");
    cr_assert_eq(t.probes, probes);
}

Test(tuner, after_a_pause_the_next_load_is_probed_afresh_and_alone_gets_every_core)
{
    struct dcv_tuner t;
    struct sim m = { .now = 1000 * MS, .gap = { 0, MS, MS }, .cpu = { 0, 1000000, 700000 } };
    dcv_tuner_init(&t, 2);
    run(&t, &m, 1000, 4);
    cr_assert_eq(jobs_now(&t), 2);
    m.now += 2 * DCV_TUNER_IDLE_NS;
    cr_assert_eq(dcv_tuner_threads(&t, m.now, 1), 2, "alone after a pause: every core");
    cr_assert_eq(t.phase, DCV_TUNER_IDLE);
    dcv_tuner_threads(&t, m.now + MS, 2);
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
        dcv_tuner_leave(t, n, 0);
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
