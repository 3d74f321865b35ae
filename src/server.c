/* server.c — wiring and lifecycle of the daemon.
 *
 * Start-up listens first and loads models in the background, so liveness
 * answers at once and readiness turns true (with sd_notify READY=1) when the
 * models are in; the STATUS= line follows every reload, load and unload.
 * SIGHUP reloads the models directory (RELOADING=1, then READY=1); one that
 * arrives during a reload starts another after it.
 * SIGTERM/SIGINT drain: readiness goes false, the listening socket
 * closes, requests already accepted finish, then everything is torn down
 * in reverse order. drain_timeout_ms is a hard bound: near its end every
 * request still queued or computing is answered 503, every upload still
 * arriving is cut (both counted as abandoned), running computations are
 * asked to stop, and the last part of the timeout lets the answers go out;
 * a computation still running at the end is left to the process exit.
 * Main thread = loop thread.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deconvd/api.h"
#include "deconvd/budget.h"
#include "deconvd/buf.h"
#include "deconvd/config.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/http.h"
#include "deconvd/log.h"
#include "deconvd/metrics.h"
#include "deconvd/notify.h"
#include "deconvd/registry.h"
#include "deconvd/sched.h"
#include "deconvd/server.h"
#include "deconvd/tuner.h"

struct server {
    const struct dcv_config *cfg;
    struct dcv_http *http;
    struct dcv_registry *reg;
    struct dcv_metrics *metrics;
    struct dcv_api *api;
    struct dcv_timer *http_timer, *drain_timer, *reload_timer, *trim_timer;
    bool draining, aborted, trimming;
    uint64_t drain_start;
    long abandoned;
};

static void http_kick(void *arg)
{
    struct server *s = arg;
    dcv_http_process(s->http);
    long long ms = dcv_http_timeout_ms(s->http);
    if (ms >= 0) dcv_sched_timer_start(s->http_timer, (uint64_t)ms, 0);
    else dcv_sched_timer_stop(s->http_timer);
}

static void http_wake(void *arg)
{
    struct server *s = arg;
    dcv_sched_timer_start(s->http_timer, 0, 0);
}

/* Cached buffers unused this long go back to the kernel: RSS settles after
 * a burst while a steady stream keeps reusing them. */
#define BUF_IDLE_MS 10000

/* glibc keeps the heap a request's JSON trees freed (many small nodes,
 * fragmented: after two 60 MB bodies of small arrays, 3 GB stayed) until
 * malloc_trim. Trimming after every big request would cost the next one
 * its page faults; once the freed heap is this big, a pool thread trims. */
#define HEAP_TRIM_FREE ((size_t)32 << 20)

static void heap_trim(void *arg)
{
    (void)arg;
    malloc_trim(0);
}

static void heap_trimmed(void *arg) { *(bool *)arg = false; }

static void buf_trim(void *arg)
{
    struct server *s = arg;
    dcv_buf_trim(BUF_IDLE_MS);
    if (!s->trimming && mallinfo2().fordblks > HEAP_TRIM_FREE &&
        dcv_sched_submit_bg(heap_trim, heap_trimmed, &s->trimming) == 0)
        s->trimming = true;
}

static void thread_init(void *arg)
{
    const struct dcv_config *cfg = arg;
    dcv_engine_set_threads(cfg->threads_per_request ? cfg->threads_per_request : cfg->cores);
}

/* Failed models named in the status line, which `systemctl status` shows on
 * one line; the repository index has them all. */
#define STATUS_NAMES 4

/* "serving 3 models, 2 failed (a, b) on 127.0.0.1:8080" */
static void notify_status(struct server *s, const char *prefix)
{
    const char *names[STATUS_NAMES];
    char failed[STATUS_NAMES * (DCV_MODEL_NAME_MAX + 2) + 64] = "", msg[sizeof failed + 192];
    size_t nf = dcv_registry_failed(s->reg, names, NULL, STATUS_NAMES), k = 0;
    if (nf) {
        k = (size_t)snprintf(failed, sizeof failed, ", %zu failed (", nf);
        for (size_t i = 0; i < nf && i < STATUS_NAMES; i++)
            k += (size_t)snprintf(failed + k, sizeof failed - k, "%s%s", i ? ", " : "",
                                  names[i]);
        if (nf > STATUS_NAMES)
            k += (size_t)snprintf(failed + k, sizeof failed - k, ", +%zu more",
                                  nf - STATUS_NAMES);
        snprintf(failed + k, sizeof failed - k, ")");
    }
    snprintf(msg, sizeof msg, "%sSTATUS=serving %d models%s on %s:%d", prefix,
             dcv_registry_ready_count(s->reg), failed, s->cfg->listen_host,
             dcv_http_port(s->http));
    dcv_notify(msg);
}

/* Reloads, repository loads and unloads: the status line follows. */
static void changed(void *arg)
{
    struct server *s = arg;
    if (!s->draining) notify_status(s, "");
}

static void loaded(void *arg, int rc, const char *err)
{
    struct server *s = arg;
    (void)err;
    if (s->draining) return;
    dcv_api_set_ready(s->api, true);
    size_t failed = dcv_registry_failed(s->reg, NULL, NULL, 0);
    DCV_LOG(rc ? DCV_LOG_WARN : DCV_LOG_INFO, "ready",
            KV_I("models", dcv_registry_ready_count(s->reg)),
            KV_I("failed", (long long)failed),
            KV_S("failures", rc ? "some models failed to load, see above" : "none"),
            KV_S("readiness", failed && s->cfg->strict_readiness
                 ? "not ready: models failed (strict_readiness)" : "ready"));
    notify_status(s, "READY=1\n");
}

static void start_reload(void *arg)
{
    struct server *s = arg;
    if (s->draining) return;
    int rc = dcv_registry_reload(s->reg, NULL, loaded, s);
    if (rc == DCV_EBUSY) {
        /* Another reload runs (an earlier SIGHUP, or the repository
         * endpoint): it may have listed models_dir before the change this
         * signal is about, so start a new one once it is done. */
        dcv_sched_timer_start(s->reload_timer, 50, 0);
    } else if (rc) {
        DCV_LOG(DCV_LOG_WARN, "reload not started", KV_S("reason", dcv_strerror(rc)));
        notify_status(s, "READY=1\n");
    }
}

static void on_hup(void *arg)
{
    struct server *s = arg;
    char msg[64];
    struct timespec ts;
    if (s->draining) return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    DCV_LOG(DCV_LOG_INFO, "reload requested", KV_S("models_dir", s->cfg->models_dir));
    dcv_notify(msg);
    start_reload(s);
}

/* The part of drain_timeout_ms kept for the 503 answers to go out. */
static double drain_grace_ms(const struct dcv_config *cfg)
{
    double g = cfg->drain_timeout_ms / 10.0;
    return g < 1000 ? g : 1000;
}

static void drain_check(void *arg)
{
    struct server *s = arg;
    const struct dcv_config *cfg = s->cfg;
    double waited = (dcv_now_ns() - s->drain_start) / 1e6;
    long inflight = dcv_api_inflight(s->api);
    bool idle = inflight == 0 && dcv_http_active(s->http) == 0 &&
                !dcv_registry_reloading(s->reg) && (!s->aborted || dcv_sched_running() == 0);
    if (!idle && !s->aborted && waited >= cfg->drain_timeout_ms - drain_grace_ms(cfg)) {
        s->aborted = true;
        s->abandoned = dcv_api_abort_all(s->api) + dcv_http_cut_unfinished(s->http);
        s->abandoned += dcv_api_inflight(s->api);      /* e.g. repository loads */
        DCV_LOG(DCV_LOG_WARN, "drain timeout: answering what is left",
                KV_I("abandoned", s->abandoned), KV_I("still_computing", dcv_sched_running()));
        return;
    }
    if (idle || waited >= cfg->drain_timeout_ms) {
        DCV_LOG(idle && !s->aborted ? DCV_LOG_INFO : DCV_LOG_WARN, "drained", KV_F("ms", waited),
                KV_I("abandoned", s->abandoned + (s->aborted ? 0 : inflight)),
                KV_I("still_computing", dcv_sched_running()));
        dcv_sched_stop();
    }
}

static void on_term(void *arg)
{
    struct server *s = arg;
    if (s->draining) return;
    s->draining = true;
    s->drain_start = dcv_now_ns();
    dcv_api_set_ready(s->api, false);
    dcv_notify("STOPPING=1");
    DCV_LOG(DCV_LOG_INFO, "draining", KV_I("inflight", dcv_api_inflight(s->api)),
            KV_I("timeout_ms", s->cfg->drain_timeout_ms));
    dcv_http_quiesce(s->http);
    dcv_sched_timer_start(s->drain_timer, 0, 10);
}

/* Access lines batch over one loop iteration (see log.c). */
static void log_flush(void *arg)
{
    (void)arg;
    dcv_log_flush();
}

static int start(struct server *s, char *err)
{
    struct dcv_model_opts mo = { .max_weight_elems = s->cfg->max_weight_elems,
                                 .cache_cap = (size_t)s->cfg->cache_per_model,
                                 .keras_timeout_ms = (unsigned)s->cfg->keras_load_timeout_ms,
                                 .keras_mem_bytes = s->cfg->keras_load_memory_bytes };
    struct dcv_http_opts ho = { .host = s->cfg->listen_host, .port = s->cfg->listen_port,
                                .max_body = s->cfg->max_body_bytes,
                                .min_rate = s->cfg->min_transfer_rate,
                                .max_connections = s->cfg->max_connections,
                                .connection_timeout_s = s->cfg->connection_timeout_s,
                                .handler = dcv_api_handle, .precheck = dcv_api_precheck,
                                .wake = http_wake };
    int rc;
    if (!s->cfg->threads_per_request) dcv_tuner_gate_init(s->cfg->cores);
    if ((rc = dcv_engine_init(err)) ||
        (rc = dcv_sched_init(s->cfg->workers, s->cfg->max_queue, thread_init, (void *)s->cfg,
                             err)))
        return rc;
    s->reg = dcv_registry_new(s->cfg->models_dir, &mo);
    if (s->reg) dcv_registry_on_change(s->reg, changed, s);
    s->metrics = dcv_metrics_new();
    s->api = s->reg && s->metrics ? dcv_api_new(s->cfg, s->reg, s->metrics) : NULL;
    s->http_timer = dcv_sched_timer_new(http_kick, s);
    s->drain_timer = dcv_sched_timer_new(drain_check, s);
    s->reload_timer = dcv_sched_timer_new(start_reload, s);
    s->trim_timer = dcv_sched_timer_new(buf_trim, s);
    if (!s->api || !s->http_timer || !s->drain_timer || !s->reload_timer || !s->trim_timer)
        return dcv_errf(err, DCV_ENOMEM, "out of memory at start-up");
    ho.ctx = s->api;
    ho.wake_arg = s;
    ho.align_after = "Inference-Header-Content-Length";   /* binary tensors read in place */
    dcv_buf_set_cache_limit(s->cfg->buffer_cache_bytes);
    dcv_budget_set_limit(s->cfg->memory_budget_bytes);
    dcv_sched_timer_start(s->trim_timer, BUF_IDLE_MS / 4, BUF_IDLE_MS / 4);
    if ((rc = dcv_http_start(&ho, &s->http, err))) return rc;
    if ((rc = dcv_sched_watch(dcv_http_fd(s->http), http_kick, s)) ||
        (rc = dcv_sched_on_signal(SIGTERM, on_term, s)) ||
        (rc = dcv_sched_on_signal(SIGINT, on_term, s)) ||
        (rc = dcv_sched_on_signal(SIGHUP, on_hup, s)) ||
        (rc = dcv_sched_each_turn(log_flush, s)))
        return dcv_errf(err, rc, "cannot set up the event loop");
    DCV_LOG(DCV_LOG_INFO, "listening", KV_S("host", s->cfg->listen_host),
            KV_I("port", dcv_http_port(s->http)), KV_I("workers", s->cfg->workers),
            KV_S("threads_per_request", s->cfg->threads_per_request ? "fixed" : "tuned"),
            KV_I("threads", s->cfg->threads_per_request ? s->cfg->threads_per_request
                                                          : s->cfg->cores),
            KV_S("models_dir", s->cfg->models_dir), KV_S("version", DCV_VERSION));
    dcv_log_batch(true);
    if ((rc = dcv_registry_reload(s->reg, NULL, loaded, s)))
        return dcv_errf(err, rc, "cannot start loading models");
    http_kick(s);
    return 0;
}

int dcv_server_run(const struct dcv_config *cfg, char *err)
{
    struct server s = { .cfg = cfg };
    signal(SIGPIPE, SIG_IGN);
    int rc = start(&s, err);
    if (rc == 0) rc = dcv_sched_run();
    dcv_log_batch(false);
    /* A worker still inside a computation (or a model load) past the drain
     * timeout would hold the teardown, which waits for the pool: leave it
     * to the process exit. */
    if (rc == 0 && s.aborted && dcv_sched_running() > 0) {
        DCV_LOG(DCV_LOG_WARN, "stopped", KV_S("reason", "signal, drain timeout"),
                KV_I("still_computing", dcv_sched_running()));
        return DCV_ETIMEDOUT;
    }
    if (s.http) dcv_sched_unwatch(dcv_http_fd(s.http));
    dcv_sched_close();       /* finishes running jobs; they answer through http */
    dcv_http_stop(s.http);
    dcv_api_free(s.api);
    dcv_registry_free(s.reg);
    dcv_metrics_free(s.metrics);
    if (rc == 0) DCV_LOG(DCV_LOG_INFO, "stopped", KV_S("reason", "signal"));
    return rc;
}
