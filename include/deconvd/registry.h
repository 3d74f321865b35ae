/* registry.h — the set of served models, by name.
 *
 * Each name has at most one current version; requests hold a reference to
 * the version they started with, so a reload swaps versions without failing
 * anything in flight, and a replaced version is freed when its last request
 * ends. A model file that fails to load keeps the previous version serving
 * and records the error. Versions never repeat for a name, across unloads
 * and removals. Loading happens off the loop (background work), and only
 * what changed on disk is rebuilt; every other call is loop-thread only.
 */
#ifndef DECONVD_REGISTRY_H
#define DECONVD_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "deconvd/error.h"
#include "deconvd/model.h"
#include "deconvd/tuner.h"

struct dcv_registry;
struct dcv_json;

struct dcv_stat { uint64_t count, ns; };

/* Triton statistics extension counters of one model (all versions). */
struct dcv_model_stats {
    struct dcv_stat success, fail, queue, compute_input, compute_infer, compute_output;
    uint64_t inference_count, execution_count, last_inference_ms;
    /* past Triton's phases: a pool job's end -> its answer given on the
     * loop (the hand-back: one wake-up of the loop); the access log has
     * the rest (resume_ms, send_ms) */
    struct dcv_stat handback;
    struct dcv_tuner tuner;          /* the split of the cores; the gate's lock */
};

struct dcv_model_version;

/* A reference to one loaded version. */
struct dcv_model_ref {
    struct dcv_model_version *ver;           /* opaque to callers */
    struct dcv_model *model;
    int version;
    struct dcv_model_stats *stats;   /* the entry's; valid while the ref is held */
    const char *name;
};

struct dcv_registry *dcv_registry_new(const char *models_dir, const struct dcv_model_opts *o);
/* Frees everything, after dcv_sched_close (a reload still being applied is
 * completed here, without its done callback); no reference may be
 * outstanding. */
void dcv_registry_free(struct dcv_registry *r);

/* Synchronous load of every model file of the directory (NAME.json,
 * NAME.keras, NAME.h5; --check, tests: no event
 * loop needed). Returns the number of files that failed; each failure is
 * logged. */
int dcv_registry_load_all(struct dcv_registry *r);

/* Reload of the whole directory (SIGHUP) or of one model (repository load
 * endpoint) in the background; done(arg, rc, err) runs on the loop after the
 * swap. name NULL = everything. Returns DCV_EBUSY while a reload runs. */
typedef void (*dcv_registry_done_fn)(void *arg, int rc, const char *err);
int dcv_registry_reload(struct dcv_registry *r, const char *name, dcv_registry_done_fn done,
                        void *arg);
bool dcv_registry_reloading(const struct dcv_registry *r);

/* cb(arg) runs on the loop after every change of what is served or failing:
 * the end of each reload or load, and each unload. One callback. */
void dcv_registry_on_change(struct dcv_registry *r, void (*cb)(void *), void *arg);

/* Unloads a model (it stays in the index as UNAVAILABLE). DCV_ENOENT if
 * unknown. */
int dcv_registry_unload(struct dcv_registry *r, const char *name);

/* Takes a reference on the current version of name. DCV_ENOENT if no such
 * model, DCV_ENOTREADY if it exists but has no loaded version (message in
 * err). Release with dcv_registry_release. */
int dcv_registry_acquire(struct dcv_registry *r, const char *name, struct dcv_model_ref *ref,
                         char *err);
void dcv_registry_release(struct dcv_registry *r, struct dcv_model_ref *ref);

/* True when name is a model the registry knows (for metric labels). */
bool dcv_registry_known(const struct dcv_registry *r, const char *name);
int dcv_registry_ready_count(const struct dcv_registry *r);

/* Models whose last load failed and that serve no version (not counting
 * models unloaded on purpose or removed): returns how many, and puts the
 * first max of them, oldest failure first, into names[] and errors[]
 * (either may be NULL). The strings stay valid until the registry next
 * changes. Loop thread. */
size_t dcv_registry_failed(const struct dcv_registry *r, const char **names,
                           const char **errors, size_t max);

/* Triton repository index: [{"name","version","state","reason"}]. */
struct dcv_json *dcv_registry_index(const struct dcv_registry *r);
/* Triton statistics: {"model_stats":[...]} for one model or all (NULL). */
struct dcv_json *dcv_registry_stats(const struct dcv_registry *r, const char *name);

#endif
