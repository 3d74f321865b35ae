/* metrics.h — Prometheus metrics (text format 0.0.4).
 *
 * Counters and histograms are updated and rendered on the event-loop thread
 * only, so they need no locks. Every label value comes from a closed set: the
 * endpoint from DCV_ENDPOINTS below (anything else is "other"), the model from
 * the names the registry knows (the API records unknown names as model=""),
 * so a client cannot add series by choosing paths. Values are escaped when
 * rendered all the same.
 */
#ifndef DECONVD_METRICS_H
#define DECONVD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct dcv_metrics;

/* The endpoints the router knows: the `endpoint` label of
 * deconvd_requests_total and the access log's endpoint= field. OTHER (first)
 * is every request that matched none of them. */
#define DCV_ENDPOINTS(X)                                                     \
    X(OTHER, "other")                                                        \
    X(HEALTH, "health")                                                      \
    X(METRICS, "metrics")                                                    \
    X(SERVER_METADATA, "server_metadata")                                    \
    X(STATS, "stats")                                                        \
    X(METADATA, "metadata")                                                  \
    X(INFER, "infer")                                                        \
    X(READY, "ready")                                                        \
    X(CONFIG, "config")                                                      \
    X(SHAPE, "shape")                                                        \
    X(OPS, "ops")                                                            \
    X(REPOSITORY_INDEX, "repository_index")                                  \
    X(LOAD, "load")                                                          \
    X(UNLOAD, "unload")                                                      \
    X(SHM, "shm")                                                            \
    X(SHM_STATUS, "shm_status")                                              \
    X(SHM_REGISTER, "shm_register")                                          \
    X(SHM_UNREGISTER, "shm_unregister")                                      \
    X(CUDA_SHM, "cuda_shm")                                                  \
    X(TFS_PREDICT, "tfs_predict")                                            \
    X(TFS_STATUS, "tfs_status")                                              \
    X(TFS_METADATA, "tfs_metadata")

enum dcv_endpoint {
#define DCV_X_EP(id, name) DCV_EP_##id,
    DCV_ENDPOINTS(DCV_X_EP)
#undef DCV_X_EP
    DCV_EP_COUNT
};

/* The label text of e ("other" for a value outside the enum). Static
 * storage; any thread. */
const char *dcv_metrics_endpoint_name(enum dcv_endpoint e);
/* The endpoint whose label is name, DCV_EP_OTHER when none is (NULL too). */
enum dcv_endpoint dcv_metrics_endpoint_find(const char *name);

/* Seconds, but DCV_HIST_BATCH: the batch size of each model execution
 * (items; its _count is the execution counter). */
enum dcv_hist { DCV_HIST_REQUEST, DCV_HIST_QUEUE, DCV_HIST_COMPUTE, DCV_HIST_BATCH,
                DCV_HIST_COUNT };

struct dcv_gauges {
    long inflight, queue_depth, models_loaded;
    size_t buf_cached_bytes;
    uint64_t buf_hits, buf_misses;
    size_t shm_regions;          /* system shared-memory regions registered */
    uint64_t shm_bytes;          /* bytes their mappings span */
    size_t budget_used, budget_peak, budget_limit;   /* memory_budget_bytes (budget.h) */
};

struct dcv_metrics *dcv_metrics_new(void);
void dcv_metrics_free(struct dcv_metrics *m);

/* Counts one finished request. model: a name the registry knows, or "" (the
 * caller decides; longer than 127 bytes is cut). endpoint: a label from
 * DCV_ENDPOINTS; any other text counts as "other". code: the HTTP status.
 * Series are bounded by (models + 1) x DCV_EP_COUNT x the status codes the
 * daemon answers; the lookup is a hash, constant time in the series count.
 * Out of memory: the observation is dropped. */
void dcv_metrics_request(struct dcv_metrics *m, const char *model, const char *endpoint,
                         int code);
/* Adds an observation (seconds; items for DCV_HIST_BATCH) to a histogram of a model (same bound). */
void dcv_metrics_observe(struct dcv_metrics *m, enum dcv_hist h, const char *model, double s);

/* Renders everything, plus build info and process_* metrics read from
 * /proc/self. Label values are escaped as text format 0.0.4 asks (\\, \",
 * \n). Returns a malloc'd text (caller frees) and its length; NULL on OOM. */
char *dcv_metrics_render(struct dcv_metrics *m, const struct dcv_gauges *g, size_t *len);

#endif
