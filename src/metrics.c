/* metrics.c — request counters, latency histograms and process metrics.
 *
 * Label values come from closed sets (metrics.h): endpoints from the
 * DCV_ENDPOINTS table, models from the registry's names (else ""), so the
 * series count is bounded by (models + 1) x endpoints x status codes and no
 * request path reaches /metrics. Each model name is stored once (a series
 * holds its index); counters are found through an open-addressing hash on
 * (model, endpoint, code) and models through one on the name, so a request
 * costs the same with 10 series or 10 000. Arrays keep insertion order,
 * which is the render order. Label values are escaped at render time all
 * the same. Histogram buckets are fixed, in seconds, 100 µs to 10 s. The
 * process_* family is read from /proc/self at scrape time. Event-loop
 * thread only.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/metrics.h"

#define NBUCKETS 15
static const double bucket_le[NBUCKETS] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10 };
/* The batch-size histogram counts items, not seconds: its own bounds. */
static const double batch_le[NBUCKETS] = { 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256,
                                           1024, 4096 };

static const double *bounds(int h)
{
    return h == DCV_HIST_BATCH ? batch_le : bucket_le;
}
#define NAME_MAX_LEN 128       /* model names (DCV_MODEL_NAME_MAX) */

static const char *const ep_names[DCV_EP_COUNT] = {
#define X(id, name) name,
    DCV_ENDPOINTS(X)
#undef X
};

struct hist {
    unsigned long long buckets[NBUCKETS], count;
    double sum;
};

struct model {
    char name[NAME_MAX_LEN];
    struct hist hist[DCV_HIST_COUNT];
};

struct counter {
    uint32_t model;            /* index into models */
    uint16_t endpoint, code;
    unsigned long long n;
};

/* Open addressing with linear probing: slot = index + 1, 0 = empty; at most
 * half full. */
struct index {
    uint32_t *slot;
    size_t cap;
};

struct dcv_metrics {
    struct model *models;
    size_t nmodels, mcap;
    struct counter *counters;
    size_t ncounters, ccap;
    struct index by_name, by_key;
    double start_time;
};

const char *dcv_metrics_endpoint_name(enum dcv_endpoint e)
{
    return (unsigned)e < DCV_EP_COUNT ? ep_names[e] : ep_names[DCV_EP_OTHER];
}

enum dcv_endpoint dcv_metrics_endpoint_find(const char *name)
{
    for (int i = 0; name && i < DCV_EP_COUNT; i++)
        if (!strcmp(name, ep_names[i])) return (enum dcv_endpoint)i;
    return DCV_EP_OTHER;
}

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
    free(m->models);
    free(m->counters);
    free(m->by_name.slot);
    free(m->by_key.slot);
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

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;             /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t hash_key(uint32_t model, unsigned endpoint, unsigned code)
{
    uint64_t h = ((uint64_t)model << 32) ^ ((uint64_t)endpoint << 16) ^ code;
    h ^= h >> 33, h *= 0xff51afd7ed558ccdull, h ^= h >> 33;  /* murmur3 finalizer */
    return h;
}

static uint64_t model_hash(const struct dcv_metrics *m, size_t i)
{
    return hash_name(m->models[i].name);
}

static uint64_t counter_hash(const struct dcv_metrics *m, size_t i)
{
    const struct counter *c = &m->counters[i];
    return hash_key(c->model, c->endpoint, c->code);
}

/* Makes room in ix for item n (the n-th stored), rehashing the n items so
 * far with hash(); false on OOM. */
static bool index_reserve(struct index *ix, const struct dcv_metrics *m, size_t n,
                          uint64_t (*hash)(const struct dcv_metrics *, size_t))
{
    if ((n + 1) * 2 <= ix->cap) return true;
    size_t cap = ix->cap ? ix->cap * 2 : 64;
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot) return false;
    for (size_t i = 0; i < n; i++) {
        size_t s = hash(m, i) & (cap - 1);
        while (slot[s]) s = (s + 1) & (cap - 1);
        slot[s] = (uint32_t)i + 1;
    }
    free(ix->slot);
    ix->slot = slot;
    ix->cap = cap;
    return true;
}

/* Index of the model called name, added if new; -1 on OOM. */
static long model_index(struct dcv_metrics *m, const char *name)
{
    char cut[NAME_MAX_LEN];
    snprintf(cut, sizeof cut, "%s", name);
    uint64_t h = hash_name(cut);
    size_t s = m->by_name.cap ? h & (m->by_name.cap - 1) : 0;
    for (; m->by_name.cap && m->by_name.slot[s]; s = (s + 1) & (m->by_name.cap - 1))
        if (!strcmp(m->models[m->by_name.slot[s] - 1].name, cut)) return m->by_name.slot[s] - 1;
    if (m->nmodels >= UINT32_MAX - 1 ||
        !index_reserve(&m->by_name, m, m->nmodels, model_hash) ||
        !grow((void **)&m->models, &m->mcap, m->nmodels, sizeof *m->models))
        return -1;
    struct model *x = &m->models[m->nmodels];
    memset(x, 0, sizeof *x);
    memcpy(x->name, cut, sizeof cut);
    for (s = h & (m->by_name.cap - 1); m->by_name.slot[s]; s = (s + 1) & (m->by_name.cap - 1)) {}
    m->by_name.slot[s] = (uint32_t)++m->nmodels;
    return (long)m->nmodels - 1;
}

void dcv_metrics_request(struct dcv_metrics *m, const char *model, const char *endpoint,
                         int code)
{
    long mi = model_index(m, model ? model : "");
    if (mi < 0) return;
    unsigned ep = dcv_metrics_endpoint_find(endpoint), c = code < 0 || code > 999 ? 0 : code;
    uint64_t h = hash_key((uint32_t)mi, ep, c);
    size_t s = m->by_key.cap ? h & (m->by_key.cap - 1) : 0;
    for (; m->by_key.cap && m->by_key.slot[s]; s = (s + 1) & (m->by_key.cap - 1)) {
        struct counter *x = &m->counters[m->by_key.slot[s] - 1];
        if (x->model == (uint32_t)mi && x->endpoint == ep && x->code == c) {
            x->n++;
            return;
        }
    }
    if (!index_reserve(&m->by_key, m, m->ncounters, counter_hash) ||
        !grow((void **)&m->counters, &m->ccap, m->ncounters, sizeof *m->counters))
        return;
    m->counters[m->ncounters] = (struct counter){ (uint32_t)mi, (uint16_t)ep, (uint16_t)c, 1 };
    for (s = h & (m->by_key.cap - 1); m->by_key.slot[s]; s = (s + 1) & (m->by_key.cap - 1)) {}
    m->by_key.slot[s] = (uint32_t)++m->ncounters;
}

void dcv_metrics_observe(struct dcv_metrics *m, enum dcv_hist h, const char *model, double s)
{
    long mi = model_index(m, model ? model : "");
    if (mi < 0 || (unsigned)h >= DCV_HIST_COUNT) return;
    struct hist *x = &m->models[mi].hist[h];
    for (int b = 0; b < NBUCKETS; b++)
        if (s <= bounds(h)[b]) x->buckets[b]++;
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
    "deconvd_compute_duration_seconds", "deconvd_batch_size",
};
static const char *const hist_help[DCV_HIST_COUNT] = {
    "End-to-end inference request duration, from complete body to response.",
    "Time inference requests wait for a worker.",
    "Time spent computing inferences on a worker.",
    "Batch size of each model execution (the items of the requests it ran: several with "
    "dynamic_batching); its _count counts the executions.",
};

/* v as a label value of text format 0.0.4: backslash, double quote and
 * newline escaped (\\, \", \n). buf holds 2 * NAME_MAX_LEN bytes: twice the
 * longest value stored (longer ones are cut). */
#define ESC_CAP (2 * NAME_MAX_LEN)
static const char *esc(const char *v, char *buf)
{
    size_t n = 0;
    for (; *v && n + 3 <= ESC_CAP; v++) {
        char c = *v;
        if (c == '\\' || c == '"' || c == '\n') {
            buf[n++] = '\\';
            c = c == '\n' ? 'n' : c;
        }
        buf[n++] = c;
    }
    buf[n] = '\0';
    return buf;
}

static void render_hist(struct out *o, const struct dcv_metrics *m, int h)
{
    char e[ESC_CAP];
    emit(o, "# HELP %s %s\n# TYPE %s histogram\n", hist_names[h], hist_help[h], hist_names[h]);
    for (size_t i = 0; i < m->nmodels; i++) {
        const struct hist *x = &m->models[i].hist[h];
        if (!x->count) continue;
        const char *name = esc(m->models[i].name, e);
        for (int b = 0; b < NBUCKETS; b++)
            emit(o, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", hist_names[h], name,
                 bounds(h)[b], x->buckets[b]);
        emit(o, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", hist_names[h], name, x->count);
        emit(o, "%s_sum{model=\"%s\"} %.9g\n%s_count{model=\"%s\"} %llu\n", hist_names[h],
             name, x->sum, hist_names[h], name, x->count);
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
    char e1[ESC_CAP], e2[ESC_CAP];
    emit(&o, "# HELP deconvd_build_info Build information.\n# TYPE deconvd_build_info gauge\n"
             "deconvd_build_info{version=\"%s\"} 1\n", esc(DCV_VERSION, e1));
    emit(&o, "# HELP deconvd_requests_total Requests answered, by model, endpoint and "
             "status code.\n# TYPE deconvd_requests_total counter\n");
    for (size_t i = 0; i < m->ncounters; i++) {
        const struct counter *c = &m->counters[i];
        emit(&o, "deconvd_requests_total{model=\"%s\",endpoint=\"%s\",code=\"%u\"} %llu\n",
             esc(m->models[c->model].name, e1), esc(ep_names[c->endpoint], e2),
             (unsigned)c->code, c->n);
    }
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
    emit(&o, "# HELP deconvd_memory_budget_bytes The memory budget of all requests "
             "(memory_budget_bytes): taken now, the most taken at once, the limit.\n"
             "# TYPE deconvd_memory_budget_bytes gauge\n"
             "deconvd_memory_budget_bytes{state=\"used\"} %zu\n"
             "deconvd_memory_budget_bytes{state=\"peak\"} %zu\n"
             "deconvd_memory_budget_bytes{state=\"limit\"} %zu\n",
         g->budget_used, g->budget_peak, g->budget_limit);
    render_process(&o, m->start_time);
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}
