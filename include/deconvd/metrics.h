/* metrics.h — Prometheus metrics (text format 0.0.4).
 *
 * Counters and histograms are updated and rendered on the event-loop thread
 * only, so they need no locks. Model labels are only ever names of models
 * the registry knows (unknown names are recorded as model=""), which bounds
 * the label cardinality a client can create.
 */
#ifndef DECONVD_METRICS_H
#define DECONVD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct dcv_metrics;

enum dcv_hist { DCV_HIST_REQUEST, DCV_HIST_QUEUE, DCV_HIST_COMPUTE, DCV_HIST_COUNT };

struct dcv_gauges {
    long inflight, queue_depth, models_loaded;
    size_t buf_cached_bytes;
    uint64_t buf_hits, buf_misses;
    size_t shm_regions;          /* system shared-memory regions registered */
    uint64_t shm_bytes;          /* bytes their mappings span */
};

struct dcv_metrics *dcv_metrics_new(void);
void dcv_metrics_free(struct dcv_metrics *m);

/* Counts one finished request. */
void dcv_metrics_request(struct dcv_metrics *m, const char *model, const char *endpoint,
                         int code);
/* Adds an observation (seconds) to a histogram of a model. */
void dcv_metrics_observe(struct dcv_metrics *m, enum dcv_hist h, const char *model, double s);

/* Renders everything, plus build info and process_* metrics read from
 * /proc/self. Returns a malloc'd text (caller frees) and its length. */
char *dcv_metrics_render(struct dcv_metrics *m, const struct dcv_gauges *g, size_t *len);

#endif
