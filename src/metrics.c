/* metrics.c — request counters, latency histograms and process metrics.
 *
 * Series live in small arrays searched linearly: the label space is bounded
 * (known models × a dozen endpoints × a handful of status codes). Histogram
 * buckets are fixed, in seconds, spanning 100 µs to 10 s. The process_*
 * family is read from /proc/self at scrape time. Event-loop thread only.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/metrics.h"

#define NBUCKETS 15
static const double bucket_le[NBUCKETS] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10 };

struct counter {
    char model[128], endpoint[32];
    int code;
    unsigned long long n;
};

struct hist {
    char model[128];
    unsigned long long buckets[NBUCKETS], count;
    double sum;
};

struct dcv_metrics {
    struct counter *counters;
    size_t ncounters, ccap;
    struct hist *hists[DCV_HIST_COUNT];
    size_t nhists[DCV_HIST_COUNT], hcap[DCV_HIST_COUNT];
    double start_time;
};

struct dcv_metrics *dcv_metrics_new(void)
{
    struct dcv_metrics *m = calloc(1, sizeof *m);
    struct timespec ts;
    if (!m) return NULL;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    return m;
}

void dcv_metrics_free(struct dcv_metrics *m)
{
    if (!m) return;
    free(m->counters);
    for (int i = 0; i < DCV_HIST_COUNT; i++) free(m->hists[i]);
    free(m);
}

/* Grows an array by doubling; false on OOM (the observation is dropped). */
static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return true;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * elem);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

void dcv_metrics_request(struct dcv_metrics *m, const char *model, const char *endpoint,
                         int code)
{
    for (size_t i = 0; i < m->ncounters; i++) {
        struct counter *c = &m->counters[i];
        if (c->code == code && !strcmp(c->model, model) && !strcmp(c->endpoint, endpoint)) {
            c->n++;
            return;
        }
    }
    if (!grow((void **)&m->counters, &m->ccap, m->ncounters, sizeof *m->counters)) return;
    struct counter *c = &m->counters[m->ncounters++];
    snprintf(c->model, sizeof c->model, "%s", model);
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    c->code = code;
    c->n = 1;
}

void dcv_metrics_observe(struct dcv_metrics *m, enum dcv_hist h, const char *model, double s)
{
    struct hist *x = NULL;
    for (size_t i = 0; i < m->nhists[h] && !x; i++)
        if (!strcmp(m->hists[h][i].model, model)) x = &m->hists[h][i];
    if (!x) {
        if (!grow((void **)&m->hists[h], &m->hcap[h], m->nhists[h], sizeof **m->hists)) return;
        x = &m->hists[h][m->nhists[h]++];
        memset(x, 0, sizeof *x);
        snprintf(x->model, sizeof x->model, "%s", model);
    }
    for (int b = 0; b < NBUCKETS; b++)
        if (s <= bucket_le[b]) x->buckets[b]++;
    x->count++;
    x->sum += s;
}

struct out {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t nc = (o->cap + (size_t)n) * 2;
        char *p = realloc(o->buf, nc);
        if (!p) {
            o->oom = true;
            return;
        }
        o->buf = p;
        o->cap = nc;
    }
}

static const char *const hist_names[DCV_HIST_COUNT] = {
    "deconvd_request_duration_seconds", "deconvd_queue_duration_seconds",
    "deconvd_compute_duration_seconds",
};
static const char *const hist_help[DCV_HIST_COUNT] = {
    "End-to-end inference request duration, from complete body to response.",
    "Time inference requests wait for a worker.",
    "Time spent computing inferences on a worker.",
};

static void render_hist(struct out *o, const struct dcv_metrics *m, int h)
{
    emit(o, "# HELP %s %s\n# TYPE %s histogram\n", hist_names[h], hist_help[h], hist_names[h]);
    for (size_t i = 0; i < m->nhists[h]; i++) {
        const struct hist *x = &m->hists[h][i];
        for (int b = 0; b < NBUCKETS; b++)
            emit(o, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", hist_names[h], x->model,
                 bucket_le[b], x->buckets[b]);
        emit(o, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", hist_names[h], x->model,
             x->count);
        emit(o, "%s_sum{model=\"%s\"} %.9g\n%s_count{model=\"%s\"} %llu\n", hist_names[h],
             x->model, x->sum, hist_names[h], x->model, x->count);
    }
}

static void render_process(struct out *o, double start_time)
{
    long page = sysconf(_SC_PAGESIZE), tck = sysconf(_SC_CLK_TCK);
    unsigned long long utime = 0, stime = 0, rss = 0, vsize = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        /* fields 14, 15 (utime, stime), 23 (vsize), 24 (rss); comm may hold spaces */
        char line[1024];
        if (fgets(line, sizeof line, f)) {
            char *p = strrchr(line, ')');
            if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                            "%*d %*d %*d %*d %*d %*d %*u %llu %llu", &utime, &stime, &vsize,
                            &rss) != 4)
                utime = stime = vsize = rss = 0;
        }
        fclose(f);
    }
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.') fds++;
        closedir(d);
        fds--;                                   /* the one opendir holds */
    }
    emit(o, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
         (double)(utime + stime) / (double)tck);
    emit(o, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
         rss * (unsigned long long)page);
    emit(o, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
            "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n",
         vsize);
    emit(o, "# HELP process_open_fds Number of open file descriptors.\n"
            "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n", fds);
    emit(o, "# HELP process_start_time_seconds Start time of the process since unix epoch in "
            "seconds.\n# TYPE process_start_time_seconds gauge\n"
            "process_start_time_seconds %.3f\n", start_time);
}

char *dcv_metrics_render(struct dcv_metrics *m, const struct dcv_gauges *g, size_t *len)
{
    struct out o = { .cap = 8192 };
    if (!(o.buf = malloc(o.cap))) return NULL;
    emit(&o, "# HELP deconvd_build_info Build information.\n# TYPE deconvd_build_info gauge\n"
             "deconvd_build_info{version=\"%s\"} 1\n", DCV_VERSION);
    emit(&o, "# HELP deconvd_requests_total Requests answered, by model, endpoint and "
             "status code.\n# TYPE deconvd_requests_total counter\n");
    for (size_t i = 0; i < m->ncounters; i++)
        emit(&o, "deconvd_requests_total{model=\"%s\",endpoint=\"%s\",code=\"%d\"} %llu\n",
             m->counters[i].model, m->counters[i].endpoint, m->counters[i].code,
             m->counters[i].n);
    for (int h = 0; h < DCV_HIST_COUNT; h++) render_hist(&o, m, h);
    emit(&o, "# HELP deconvd_inflight_requests Inference requests queued or running.\n"
             "# TYPE deconvd_inflight_requests gauge\ndeconvd_inflight_requests %ld\n",
         g->inflight);
    emit(&o, "# HELP deconvd_queue_depth Inference requests waiting for a worker.\n"
             "# TYPE deconvd_queue_depth gauge\ndeconvd_queue_depth %ld\n", g->queue_depth);
    emit(&o, "# HELP deconvd_models_loaded Models ready to serve.\n"
             "# TYPE deconvd_models_loaded gauge\ndeconvd_models_loaded %ld\n",
         g->models_loaded);
    emit(&o, "# HELP deconvd_buffer_cache_bytes Free tensor-sized buffers kept for reuse.\n"
             "# TYPE deconvd_buffer_cache_bytes gauge\ndeconvd_buffer_cache_bytes %zu\n"
             "# HELP deconvd_buffer_cache_hits_total Tensor-sized buffers served from the cache.\n"
             "# TYPE deconvd_buffer_cache_hits_total counter\n"
             "deconvd_buffer_cache_hits_total %llu\n"
             "# HELP deconvd_buffer_cache_misses_total Tensor-sized buffers newly allocated.\n"
             "# TYPE deconvd_buffer_cache_misses_total counter\n"
             "deconvd_buffer_cache_misses_total %llu\n",
         g->buf_cached_bytes, (unsigned long long)g->buf_hits, (unsigned long long)g->buf_misses);
    emit(&o, "# HELP deconvd_shared_memory_regions System shared-memory regions registered.\n"
             "# TYPE deconvd_shared_memory_regions gauge\ndeconvd_shared_memory_regions %zu\n"
             "# HELP deconvd_shared_memory_bytes Bytes mapped for registered system "
             "shared-memory regions.\n# TYPE deconvd_shared_memory_bytes gauge\n"
             "deconvd_shared_memory_bytes %llu\n",
         g->shm_regions, (unsigned long long)g->shm_bytes);
    render_process(&o, m->start_time);
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}
