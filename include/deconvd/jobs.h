/* jobs.h — the requests computed on the worker pool: KServe and TF Serving
 * inference, tf.nn ops and shape inference.
 *
 * Each call takes a request whose body is complete and answers it, later,
 * from the loop thread: the work (decode, compute, encode) runs on the
 * pool, bounded by the configuration (max_queue, request_timeout_ms for
 * the wait, max_work, max_tensor_elems, max_json_nodes, max_response_bytes
 * and the memory budget), and stops early when its client leaves. Loop
 * thread only.
 */
#ifndef DECONVD_JOBS_H
#define DECONVD_JOBS_H

#include <stdbool.h>

struct dcv_config;
struct dcv_http_req;
struct dcv_registry;
struct dcv_reply;
struct dcv_shm;

struct dcv_jobs;

/* cfg, reg and shm are borrowed and must outlive the jobs; reply is
 * copied. NULL when out of memory. */
struct dcv_jobs *dcv_jobs_new(const struct dcv_config *cfg, struct dcv_registry *reg,
                              struct dcv_shm *shm, const struct dcv_reply *reply);
/* After the scheduler has finished every job (dcv_sched_close). */
void dcv_jobs_free(struct dcv_jobs *jobs);

/* POST /v2/models/{name}/infer, or /v1/models/{name}:predict when
 * tfserving. */
void dcv_jobs_infer(struct dcv_jobs *jobs, struct dcv_http_req *req, const char *name,
                    bool tfserving);
/* POST /v2/ops/conv{rank}d_transpose. */
void dcv_jobs_op(struct dcv_jobs *jobs, struct dcv_http_req *req, int rank);
/* POST /v2/models/{name}/shape, or /v2/shape when name is NULL. */
void dcv_jobs_shape(struct dcv_jobs *jobs, struct dcv_http_req *req, const char *name);

/* Requests taken and not yet answered. */
long dcv_jobs_inflight(const struct dcv_jobs *jobs);

/* Drain timeout: answers every job still queued or running with 503 and
 * asks the running ones to stop at their next checkpoint. Returns how many
 * were answered. */
long dcv_jobs_abort_all(struct dcv_jobs *jobs);

#endif
