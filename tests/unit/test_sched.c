/* test_sched.c — the worker pool's queue: a job no worker has taken can
 * be cancelled (its work never runs, its done still does, and it stops
 * counting against max_queue at once); a running job cannot; max_queue
 * refuses with DCV_EBUSY. One worker, held busy by a job that waits for
 * the test to release it. */
#include <criterion/criterion.h>
#include <stdatomic.h>

#include "deconvd/error.h"
#include "deconvd/sched.h"

static atomic_bool g_release;
static atomic_int g_ran[4];
static int g_done[4];

static void blocker(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_ran[0], 1);
    while (!atomic_load(&g_release)) {}
}

static void work(void *arg) { atomic_fetch_add(&g_ran[(intptr_t)arg], 1); }

static void done(void *arg)
{
    g_done[(intptr_t)arg]++;
    if (g_done[0] && g_done[1] && g_done[2]) dcv_sched_stop();
}

static void release(void *arg)
{
    (void)arg;
    atomic_store(&g_release, true);
}

Test(sched, a_queued_job_cancels_a_running_one_does_not)
{
    char err[DCV_ERRLEN];
    struct dcv_sched_job *h0, *h1, *h2;
    cr_assert_eq(dcv_sched_init(1, 2, NULL, NULL, err), 0, "%s", err);
    cr_assert_eq(dcv_sched_submit(blocker, done, (void *)0, &h0), 0);
    while (!atomic_load(&g_ran[0])) {}                   /* the worker holds it */
    cr_assert_eq(dcv_sched_submit(work, done, (void *)1, &h1), 0);
    cr_assert_eq(dcv_sched_submit(work, done, (void *)2, &h2), 0);
    cr_assert_eq(dcv_sched_queued(), 2);
    cr_assert_eq(dcv_sched_submit(work, done, (void *)3, NULL), DCV_EBUSY, "max_queue 2");
    cr_assert(dcv_sched_cancel(h1));
    cr_assert_eq(dcv_sched_queued(), 1, "a cancelled job stops counting at once");
    cr_assert(!dcv_sched_cancel(h0), "the running job cannot be cancelled");
    struct dcv_timer *t = dcv_sched_timer_new(release, NULL);
    dcv_sched_timer_start(t, 20, 0);
    cr_assert_eq(dcv_sched_run(), 0);
    cr_assert_eq(atomic_load(&g_ran[1]), 0, "the cancelled job's work never ran");
    cr_assert_eq(atomic_load(&g_ran[2]), 1);
    cr_assert_eq(g_done[1], 1, "its done still ran");
    cr_assert_eq(g_done[0] + g_done[2], 2);
    cr_assert_eq(dcv_sched_queued(), 0);
    cr_assert_eq(dcv_sched_running(), 0);
    dcv_sched_close();
}
