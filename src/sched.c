/* sched.c — libuv behind the dcv_sched interface.
 *
 * The process has one uv loop, owned by the thread that calls
 * dcv_sched_run. Inference jobs go to libuv's thread pool through
 * uv_queue_work; a counter of jobs not yet started enforces max_queue
 * (libuv's own queue is unbounded), and a job no worker has taken yet can
 * be cancelled (uv_cancel), so a request whose client left or whose
 * deadline passed frees its place at once. Background work (model loads)
 * shares the pool but not the limit. Watchers, timers and signal handles are heap
 * objects owned here until dcv_sched_close. The only module that includes
 * uv.h.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "deconvd/error.h"
#include "deconvd/sched.h"

#define MAX_WATCH 8
#define MAX_SIGNALS 8

struct dcv_sched_job {
    uv_work_t req;
    dcv_work_fn work;
    dcv_done_fn done;
    void *arg;
    bool counted;
};

struct watch {
    uv_poll_t h;
    int fd;
    dcv_cb_fn cb;
    void *arg;
};

struct dcv_timer {
    uv_timer_t h;
    dcv_cb_fn cb;
    void *arg;
};

struct sig {
    uv_signal_t h;
    dcv_cb_fn cb;
    void *arg;
};

static uv_loop_t g_loop;
static bool g_inited, g_closing;
static int g_max_queue;
static atomic_long g_queued, g_running;
static dcv_thread_init_fn g_thread_init;
static void *g_thread_arg;
static _Thread_local bool t_thread_ready;
static struct watch *g_watch[MAX_WATCH];
static struct sig *g_sigs[MAX_SIGNALS];

static int uv_error(int rc, char *err, const char *what)
{
    return dcv_errf(err, rc == UV_ENOMEM ? DCV_ENOMEM : DCV_EIO, "%s: %s", what,
                    uv_strerror(rc));
}

int dcv_sched_init(int workers, int max_queue, dcv_thread_init_fn thread_init, void *arg,
                   char *err)
{
    char n[16];
    snprintf(n, sizeof n, "%d", workers > 0 ? workers : 1);
    setenv("UV_THREADPOOL_SIZE", n, 1);   /* read by libuv on first pool use */
    g_max_queue = max_queue;
    g_closing = false;
    g_thread_init = thread_init;
    g_thread_arg = arg;
    int rc = uv_loop_init(&g_loop);
    if (rc) return uv_error(rc, err, "event loop");
    g_inited = true;
    return 0;
}

static void close_cb(uv_handle_t *h) { free(h->data); }

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, close_cb);
}

void dcv_sched_close(void)
{
    if (!g_inited) return;
    g_closing = true;
    uv_walk(&g_loop, close_walk, NULL);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    uv_loop_close(&g_loop);
    memset(g_watch, 0, sizeof g_watch);
    memset(g_sigs, 0, sizeof g_sigs);
    g_inited = false;
}

static void work_cb(uv_work_t *req)
{
    struct dcv_sched_job *j = req->data;
    if (j->counted) atomic_fetch_sub(&g_queued, 1);
    atomic_fetch_add(&g_running, 1);
    if (!t_thread_ready) {
        if (g_thread_init) g_thread_init(g_thread_arg);
        t_thread_ready = true;
    }
    j->work(j->arg);
}

static void after_cb(uv_work_t *req, int status)
{
    struct dcv_sched_job *j = req->data;
    if (status != UV_ECANCELED) atomic_fetch_sub(&g_running, 1);
    j->done(j->arg);
    free(j);
}

static int submit(dcv_work_fn work, dcv_done_fn done, void *arg, bool counted,
                  struct dcv_sched_job **handle)
{
    if (counted && atomic_load(&g_queued) >= g_max_queue) return DCV_EBUSY;
    struct dcv_sched_job *j = calloc(1, sizeof *j);
    if (!j) return DCV_ENOMEM;
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->counted = counted;
    j->req.data = j;
    if (counted) atomic_fetch_add(&g_queued, 1);
    if (uv_queue_work(&g_loop, &j->req, work_cb, after_cb) != 0) {
        if (counted) atomic_fetch_sub(&g_queued, 1);
        free(j);
        return DCV_EINTERNAL;
    }
    if (handle) *handle = j;
    return 0;
}

int dcv_sched_submit(dcv_work_fn work, dcv_done_fn done, void *arg,
                     struct dcv_sched_job **handle)
{
    return submit(work, done, arg, true, handle);
}

int dcv_sched_submit_bg(dcv_work_fn work, dcv_done_fn done, void *arg)
{
    return submit(work, done, arg, false, NULL);
}

/* uv_cancel succeeds only for work no thread has taken; the queue count
 * work_cb would have dropped is dropped here instead. */
bool dcv_sched_cancel(struct dcv_sched_job *j)
{
    if (!j || uv_cancel((uv_req_t *)&j->req) != 0) return false;
    if (j->counted) atomic_fetch_sub(&g_queued, 1);
    return true;
}

bool dcv_sched_closing(void) { return g_closing; }

long dcv_sched_queued(void) { return atomic_load(&g_queued); }
long dcv_sched_running(void) { return atomic_load(&g_running); }

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct watch *w = h->data;
    (void)status;
    (void)events;
    w->cb(w->arg);
}

int dcv_sched_watch(int fd, dcv_cb_fn cb, void *arg)
{
    int slot = -1;
    for (int i = 0; i < MAX_WATCH && slot < 0; i++)
        if (!g_watch[i]) slot = i;
    struct watch *w = slot >= 0 ? calloc(1, sizeof *w) : NULL;
    if (!w) return DCV_ENOMEM;
    *w = (struct watch){ .fd = fd, .cb = cb, .arg = arg };
    if (uv_poll_init(&g_loop, &w->h, fd) != 0) {
        free(w);
        return DCV_EIO;
    }
    w->h.data = w;
    uv_poll_start(&w->h, UV_READABLE, poll_cb);
    g_watch[slot] = w;
    return 0;
}

void dcv_sched_unwatch(int fd)
{
    for (int i = 0; i < MAX_WATCH; i++)
        if (g_watch[i] && g_watch[i]->fd == fd) {
            uv_poll_stop(&g_watch[i]->h);
            uv_close((uv_handle_t *)&g_watch[i]->h, close_cb);
            g_watch[i] = NULL;
        }
}

static void timer_cb(uv_timer_t *h)
{
    struct dcv_timer *t = h->data;
    t->cb(t->arg);
}

struct dcv_timer *dcv_sched_timer_new(dcv_cb_fn cb, void *arg)
{
    struct dcv_timer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->cb = cb;
    t->arg = arg;
    uv_timer_init(&g_loop, &t->h);
    t->h.data = t;
    return t;
}

void dcv_sched_timer_start(struct dcv_timer *t, uint64_t ms, uint64_t repeat_ms)
{
    uv_timer_start(&t->h, timer_cb, ms, repeat_ms);
}

void dcv_sched_timer_stop(struct dcv_timer *t) { uv_timer_stop(&t->h); }

struct turn {
    uv_prepare_t h;
    dcv_cb_fn cb;
    void *arg;
};

static void prepare_cb(uv_prepare_t *h)
{
    struct turn *t = h->data;
    t->cb(t->arg);
}

int dcv_sched_each_turn(dcv_cb_fn cb, void *arg)
{
    struct turn *t = calloc(1, sizeof *t);
    if (!t) return DCV_ENOMEM;
    t->cb = cb;
    t->arg = arg;
    uv_prepare_init(&g_loop, &t->h);
    t->h.data = t;
    uv_prepare_start(&t->h, prepare_cb);
    uv_unref((uv_handle_t *)&t->h);       /* never what keeps the loop alive */
    return 0;
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct sig *s = h->data;
    (void)signum;
    s->cb(s->arg);
}

int dcv_sched_on_signal(int signum, dcv_cb_fn cb, void *arg)
{
    int slot = -1;
    for (int i = 0; i < MAX_SIGNALS && slot < 0; i++)
        if (!g_sigs[i]) slot = i;
    struct sig *s = slot >= 0 ? calloc(1, sizeof *s) : NULL;
    if (!s) return DCV_ENOMEM;
    s->cb = cb;
    s->arg = arg;
    uv_signal_init(&g_loop, &s->h);
    s->h.data = s;
    uv_signal_start(&s->h, signal_cb, signum);
    g_sigs[slot] = s;
    return 0;
}

int dcv_sched_run(void) { return uv_run(&g_loop, UV_RUN_DEFAULT) < 0 ? DCV_EIO : 0; }
void dcv_sched_stop(void) { uv_stop(&g_loop); }
uint64_t dcv_now_ns(void) { return uv_hrtime(); }
