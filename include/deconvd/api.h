/* api.h — the HTTP API: KServe v2 / Triton, TF Serving, shapes, ops, metrics.
 *
 * dcv_api_handle is the HTTP module's request handler. Cheap endpoints
 * answer on the loop thread; inference, ops and shape inference decode,
 * compute and encode on a pool thread (jobs.h) and answer from the loop
 * when done. Loop thread only.
 */
#ifndef DECONVD_API_H
#define DECONVD_API_H

#include <stdbool.h>

struct dcv_api;
struct dcv_config;
struct dcv_registry;
struct dcv_metrics;
struct dcv_http_req;

struct dcv_api *dcv_api_new(const struct dcv_config *cfg, struct dcv_registry *reg,
                            struct dcv_metrics *metrics);
void dcv_api_free(struct dcv_api *api);

void dcv_api_handle(void *api, struct dcv_http_req *req);

/* The HTTP module's check once a request's headers are in, before its body
 * (announced bytes, 0 when unknown) is read: limits the body of endpoints
 * answered on the loop thread to 64 KiB, answers 401 for a missing or
 * wrong token, and 503 for a big upload to a pool endpoint while the queue
 * is full, so that none of these costs the server the upload. */
void dcv_api_precheck(void *api, struct dcv_http_req *req, size_t announced);

/* Drain timeout: answers every job still queued or running with 503 and
 * asks the running ones to stop at their next checkpoint. Returns how many
 * were answered. Loop thread. */
long dcv_api_abort_all(struct dcv_api *api);

/* Readiness: false while loading and once draining. */
void dcv_api_set_ready(struct dcv_api *api, bool ready);
/* Requests accepted and not yet answered. */
long dcv_api_inflight(const struct dcv_api *api);

#endif
