/* batch.h — dynamic batching: requests of one model run as one execution.
 *
 * Off unless a model file says `"dynamic_batching": {"max_batch": N,
 * "max_queue_delay_us": T}`. The loaded model then owns a batcher. A job
 * ready to compute (decoded, output buffer in hand) enters it as an item:
 * it runs alone when no other request of the model waits for a worker
 * (then each runs sooner alone, in parallel), joins the one open group when
 * its per-item shape (every dim but the batch dim) matches and the group's
 * batch stays within max_batch and max_work, or opens a group and parks. A
 * parked item's worker returns at once (no worker waits for company); the
 * group runs on the worker of the item that fills it, that finds none
 * waiting for a worker any more, or that arrives after the
 * group's delay, else on a flush job (the loop submits one per group, when
 * the first item's own work hands back): queued behind the requests already
 * waiting, it runs the group once they joined, waiting only while another
 * worker is bringing an item, and never past the delay.
 * The executing worker concatenates the inputs, runs the model once,
 * splits the output back and calls each member's finish (encode) there;
 * the loop then calls each member's done (answer). Thread use is stated
 * per function.
 */
#ifndef DECONVD_BATCH_H
#define DECONVD_BATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deconvd/conv.h"

struct dcv_json;
struct dcv_batcher;
struct dcv_batch_group;

#define DCV_BATCH_MAX 4096               /* max_batch's bound */
#define DCV_BATCH_DELAY_MAX_US 1000000   /* max_queue_delay_us's bound: 1 s */

struct dcv_batch_cfg {
    int max_batch;                       /* 0 = off */
    int max_queue_delay_us;
};

/* One execution of the model on a concatenated input (shape[0] the sum of
 * the members' batch dims). Pool thread; 0 or DCV_E* with a message. */
typedef int (*dcv_batch_run_fn)(void *ctx, const float *in, const int64_t *shape, int ndim,
                                float *out, size_t out_cap, char *err);

/* A request as the batcher sees it: embedded in the caller's job, zeroed
 * when the job is made (a zeroed item is inert in every call below). */
struct dcv_batch_item {
    void (*finish)(struct dcv_batch_item *it);  /* pool: rc/err set, encode now */
    void (*done)(struct dcv_batch_item *it);    /* loop: its group completed */
    void (*prepare)(struct dcv_batch_item *it); /* pool, may be NULL: before its group runs
                                                   (as the first member), e.g. threads */
    const atomic_bool *stop;                    /* set: left out of its group's run */
    char *err;                                  /* DCV_ERRLEN bytes */
    int rc;
    /* the number of requests in the run this item is counted with (its
     * group's first member that ran), its batch, else 0 */
    int exec_requests;
    int64_t exec_batch;
    /* batch.c's */
    const float *in;
    float *out;
    int64_t shape[DCV_MAX_DIMS];
    int ndim;
    size_t in_count, out_count;
    uint64_t work;
    struct dcv_batcher *b;
    struct dcv_batch_group *group;       /* parked in: set by a worker, cleared on the loop */
    struct dcv_batch_group *ran;         /* run by this item's worker: completed at its done */
    struct dcv_batch_item *next;
    bool expected, started, own_done;
};

enum dcv_batch_fate {
    DCV_BATCH_ALONE,     /* compute it yourself as usual */
    DCV_BATCH_PARKED,    /* in a group: another worker finishes it; do not touch it */
    DCV_BATCH_DONE       /* its group ran here and finish() was called */
};

/* Reads a model file's "dynamic_batching" value (NULL: off). in_sig is the
 * model's input signature: a fixed batch dim refuses the key. 0 with *cfg
 * filled, or DCV_EINVAL naming the key and the value. Any thread. */
int dcv_batch_parse(const struct dcv_json *v, const int64_t *in_sig, int ndim,
                    struct dcv_batch_cfg *cfg, char *err);

/* A batcher running groups through run(ctx, ...); NULL when out of memory.
 * Freed with dcv_batch_free once no item is in it (the model's registry
 * references guarantee that). */
struct dcv_batcher *dcv_batch_new(const struct dcv_batch_cfg *cfg, dcv_batch_run_fn run,
                                  void *ctx);
void dcv_batch_free(struct dcv_batcher *b);
const struct dcv_batch_cfg *dcv_batch_cfg(const struct dcv_batcher *b);

/* Counts the item as coming (received, not yet computed): a group waits
 * for company only while some are. b NULL: nothing. Loop thread. */
void dcv_batch_expect(struct dcv_batcher *b, struct dcv_batch_item *it);

/* The item's job has started on a worker (decoding or about to compute): a
 * flush waits for it (within the delay), never for a job still queued.
 * Pool thread. */
void dcv_batch_started(struct dcv_batch_item *it);

/* True when another request of b's model is coming or waits in a group:
 * then a small job is worth sending to the pool to join it. b NULL: false.
 * Loop thread. */
bool dcv_batch_company(struct dcv_batcher *b);

/* The item is computed by its job alone (on the loop: small work, nobody
 * else coming; or a request batching does not take, such as shared
 * memory): it stops counting as coming and is never batched. The item's
 * own thread, before dcv_batch_enter. */
void dcv_batch_alone(struct dcv_batch_item *it);

/* The item, decoded, with its input (shape[0] its batch dim) and an output
 * buffer of out_count floats, enters the batcher. finish, done, stop and
 * err must be set. max_work bounds a group's summed work. Pool thread. */
enum dcv_batch_fate dcv_batch_enter(struct dcv_batch_item *it, const float *in,
                                    const int64_t *shape, int ndim, size_t in_count,
                                    float *out, size_t out_count, uint64_t work,
                                    uint64_t max_work);

/* The item's own work has handed back (its job's done callback): completes
 * the group its worker ran (each parked member whose own work is back gets
 * done()), stops counting it as coming, and returns true when it is parked
 * in a group still to run: its done() comes later, do not answer or free
 * it now. Loop thread. */
bool dcv_batch_own_done(struct dcv_batch_item *it);

/* Adds "max_batch_size" and "dynamic_batching" {max_queue_delay_microseconds}
 * (Triton's names) to a model's config answer; b NULL: max_batch_size 0. */
void dcv_batch_config_json(const struct dcv_batcher *b, struct dcv_json *config);

#endif
