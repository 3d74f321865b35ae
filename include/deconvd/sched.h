/* sched.h — the event loop and the inference worker pool (libuv).
 *
 * One loop thread runs every callback given here except work functions,
 * which run on the pool. The pool is sized once (workers) and the queue of
 * jobs waiting for a worker is bounded (max_queue): submit fails at once
 * with DCV_EBUSY instead of growing. Not thread-safe: call everything from
 * the loop thread (or before dcv_sched_run), except where stated.
 */
#ifndef DECONVD_SCHED_H
#define DECONVD_SCHED_H

#include <stdbool.h>
#include <stdint.h>

struct dcv_timer;
struct dcv_sched_job;

typedef void (*dcv_work_fn)(void *arg);              /* pool thread */
typedef void (*dcv_done_fn)(void *arg);              /* loop thread */
typedef void (*dcv_cb_fn)(void *arg);                /* loop thread */
typedef void (*dcv_thread_init_fn)(void *arg);       /* pool thread, once per thread */

/* Creates the loop; workers sets UV_THREADPOOL_SIZE (must run before any
 * other libuv use). thread_init runs once in each pool thread before its
 * first job (e.g. to set the OpenMP thread count). */
int dcv_sched_init(int workers, int max_queue, dcv_thread_init_fn thread_init, void *arg,
                   char *err);
void dcv_sched_close(void);

/* Queues an inference job. DCV_EBUSY when max_queue jobs already wait.
 * *handle (when not NULL) names the job for dcv_sched_cancel; it is valid
 * until done runs. */
int dcv_sched_submit(dcv_work_fn work, dcv_done_fn done, void *arg,
                     struct dcv_sched_job **handle);
/* Takes a job that no worker has started off the queue: its work never
 * runs and it stops counting against max_queue at once; done still runs,
 * later, on the loop. True when cancelled, false when it already started
 * (it then runs to its end: stop it with a flag of your own). */
bool dcv_sched_cancel(struct dcv_sched_job *handle);
/* Queues background work (model loading) outside the inference limit. */
int dcv_sched_submit_bg(dcv_work_fn work, dcv_done_fn done, void *arg);

/* True from dcv_sched_close on: timers no longer fire and, once it has
 * returned, nothing may be submitted. Work that would wait for the loop is
 * done at once instead. */
bool dcv_sched_closing(void);

/* Jobs submitted but not yet started / started but not yet done. */
long dcv_sched_queued(void);
long dcv_sched_running(void);

/* Calls cb whenever fd is readable. One watcher per fd. */
int dcv_sched_watch(int fd, dcv_cb_fn cb, void *arg);
void dcv_sched_unwatch(int fd);

struct dcv_timer *dcv_sched_timer_new(dcv_cb_fn cb, void *arg);
void dcv_sched_timer_start(struct dcv_timer *t, uint64_t ms, uint64_t repeat_ms);
void dcv_sched_timer_stop(struct dcv_timer *t);

/* Calls cb(arg) on the loop thread once per loop iteration, just before
 * the loop waits for I/O (a libuv prepare handle): work batched over the
 * callbacks of one iteration is finished there. Freed by dcv_sched_close.
 * DCV_ENOMEM. */
int dcv_sched_each_turn(dcv_cb_fn cb, void *arg);
/* Calls cb(arg) on the loop when signum arrives (SIGTERM, SIGINT, SIGHUP). */
int dcv_sched_on_signal(int signum, dcv_cb_fn cb, void *arg);

/* Runs the loop until dcv_sched_stop. */
int dcv_sched_run(void);
void dcv_sched_stop(void);

/* Monotonic clock, nanoseconds. Any thread. */
uint64_t dcv_now_ns(void);

#endif
