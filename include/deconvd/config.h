/* config.h — the daemon's configuration file and command-line overrides.
 *
 * Defaults, then the JSON config file, then --options. Everything is
 * validated here so the server never sees a bad value. Main thread only.
 */
#ifndef DECONVD_CONFIG_H
#define DECONVD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct dcv_config {
    char listen_host[64];        /* "127.0.0.1" */
    int listen_port;             /* 8080; 0 = ephemeral */
    char models_dir[PATH_MAX];   /* resolved against the config file's dir */
    int workers;                 /* 0 = one per core (or cores / threads_per_request) */
    int threads_per_request;     /* 0 = tuned per model under load (tuner.c), all cores alone */
    int cores;                   /* set by dcv_config_finalize */
    size_t max_body_bytes;
    int max_queue;
    int request_timeout_ms;
    int drain_timeout_ms;
    int max_connections;
    int connection_timeout_s;
    size_t max_weight_elems;
    int keras_load_timeout_ms;   /* a Keras file's reader process: wall clock */
    size_t keras_load_memory_bytes;   /* ... and address space beyond the daemon's */
    size_t max_tensor_elems;
    size_t max_json_nodes;       /* values a request's JSON tree may hold (80 B each) */
    int cache_per_model;
    size_t buffer_cache_bytes;     /* freed request/response buffers kept mapped */
    size_t inline_max_work;        /* multiply-adds up to which the loop thread computes */
    size_t max_work;               /* multiply-adds one request may ask for */
    size_t memory_budget_bytes;    /* bodies, job tensors and answers, all requests together */
    size_t max_response_bytes;     /* one answer, as encoded (worst case before computing) */
    size_t min_transfer_rate;      /* bytes/s a body upload or answer download keeps up */
    int log_level;               /* enum dcv_log_level */
    bool log_json;
    char auth_token[256];        /* "" = no auth */
    bool shared_memory;          /* Triton's system shared-memory extension; off by default */
    bool strict_readiness;       /* not ready while a failed model serves nothing (default) */
    char config_path[PATH_MAX];
};

/* Fills built-in defaults. */
void dcv_config_defaults(struct dcv_config *c);

/* Reads the JSON file at path over the current values; models_dir is made
 * relative to the file's directory. Unknown keys are an error (typos in a
 * config must not pass silently). 0 or DCV_E* with a message. */
int dcv_config_load(struct dcv_config *c, const char *path, char *err);

/* "HOST:PORT", "[v6]:PORT" or ":PORT" → fields. 0 or DCV_EINVAL. */
int dcv_config_parse_listen(struct dcv_config *c, const char *s, char *err);

/* Derives the worker count from the core count when it is 0. */
void dcv_config_finalize(struct dcv_config *c, int cores);

#endif
