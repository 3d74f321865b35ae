/* config.c — defaults, the JSON config file and listen-address parsing.
 *
 * One table lists every key with its type and bounds, so the README's
 * config reference, the parser and the defaults cannot drift apart. The
 * file is read once at start-up on the main thread (and its models_dir
 * again on reload, which re-reads nothing else).
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/config.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/log.h"

#define MAX_CONFIG_FILE (1 << 20)
/* One value per key is all a config holds; a file that is mostly values
 * is refused at 1 in 256 of its size limit (4096 values, 330 KiB of tree)
 * rather than built at up to 40 bytes of tree per byte. */
#define MAX_CONFIG_NODES (MAX_CONFIG_FILE / 256)

void dcv_config_defaults(struct dcv_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    snprintf(c->models_dir, sizeof c->models_dir, "models");
    c->max_body_bytes = 64u << 20;
    c->max_queue = 64;
    c->request_timeout_ms = 30000;
    c->drain_timeout_ms = 10000;
    c->max_connections = 1024;
    c->connection_timeout_s = 30;
    c->max_weight_elems = (size_t)1 << 28;
    c->keras_load_timeout_ms = 30000;
    c->keras_load_memory_bytes = (size_t)4 << 30;
    c->max_tensor_elems = (size_t)1 << 26;
    c->max_json_nodes = (size_t)1 << 16;
    c->cache_per_model = 16;
    c->buffer_cache_bytes = (size_t)64 << 20;
    c->inline_max_work = 1 << 20;
    c->max_work = 100000000000ull;
    c->memory_budget_bytes = (size_t)1 << 30;
    c->max_response_bytes = (size_t)64 << 20;
    c->min_transfer_rate = (size_t)1 << 20;
    c->log_level = DCV_LOG_INFO;
    c->strict_readiness = true;
}

int dcv_config_parse_listen(struct dcv_config *c, const char *s, char *err)
{
    const char *colon = strrchr(s, ':');
    char *end;
    if (!colon)
        return dcv_errf(err, DCV_EINVAL, "listen must be HOST:PORT, got '%.64s'", s);
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return dcv_errf(err, DCV_EINVAL, "listen port must be 0-65535, got '%.64s'", colon + 1);
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') s++, hl -= 2;
    if (hl >= sizeof c->listen_host)
        return dcv_errf(err, DCV_EINVAL, "listen host too long");
    /* Never every interface unless asked for by name (":8080" is not). */
    if (hl == 0)
        return dcv_errf(err, DCV_EINVAL, "listen '%.64s' has no host: use 127.0.0.1:PORT "
                        "(this machine only) or 0.0.0.0:PORT (every interface)", s);
    memcpy(c->listen_host, s, hl);
    c->listen_host[hl] = '\0';
    c->listen_port = (int)port;
    return 0;
}

enum kind { K_INT, K_SIZE, K_BOOL, K_STR, K_LEVEL, K_FORMAT, K_LISTEN, K_DIR };

struct key {
    const char *name;
    enum kind kind;
    size_t off;
    long long lo, hi;
};

#define OFF(f) offsetof(struct dcv_config, f)
static const struct key keys[] = {
    { "listen", K_LISTEN, 0, 0, 0 },
    { "models_dir", K_DIR, OFF(models_dir), 0, 0 },
    { "workers", K_INT, OFF(workers), 0, 1024 },
    { "threads_per_request", K_INT, OFF(threads_per_request), 0, 1024 },
    { "max_body_bytes", K_SIZE, OFF(max_body_bytes), 1024, 1LL << 40 },
    { "max_queue", K_INT, OFF(max_queue), 0, 1 << 20 },
    { "request_timeout_ms", K_INT, OFF(request_timeout_ms), 1, 3600000 },
    { "drain_timeout_ms", K_INT, OFF(drain_timeout_ms), 0, 3600000 },
    { "max_connections", K_INT, OFF(max_connections), 1, 1 << 20 },
    { "connection_timeout_s", K_INT, OFF(connection_timeout_s), 1, 3600 },
    { "max_weight_elems", K_SIZE, OFF(max_weight_elems), 1, 1LL << 40 },
    { "keras_load_timeout_ms", K_INT, OFF(keras_load_timeout_ms), 100, 3600000 },
    { "keras_load_memory_bytes", K_SIZE, OFF(keras_load_memory_bytes), 1LL << 24, 1LL << 44 },
    { "max_tensor_elems", K_SIZE, OFF(max_tensor_elems), 1, 1LL << 40 },
    { "max_json_nodes", K_SIZE, OFF(max_json_nodes), 64, 1LL << 40 },
    { "cache_per_model", K_INT, OFF(cache_per_model), 1, 4096 },
    { "buffer_cache_bytes", K_SIZE, OFF(buffer_cache_bytes), 0, 1LL << 40 },
    { "inline_max_work", K_SIZE, OFF(inline_max_work), 0, 1LL << 40 },
    { "max_work", K_SIZE, OFF(max_work), 1, 1LL << 62 },
    { "memory_budget_bytes", K_SIZE, OFF(memory_budget_bytes), 1LL << 20, 1LL << 46 },
    { "max_response_bytes", K_SIZE, OFF(max_response_bytes), 1024, 1LL << 40 },
    { "min_transfer_rate", K_SIZE, OFF(min_transfer_rate), 1, 1LL << 40 },
    { "log_level", K_LEVEL, OFF(log_level), 0, 0 },
    { "log_format", K_FORMAT, OFF(log_json), 0, 0 },
    { "auth_token", K_STR, OFF(auth_token), 0, 0 },
    { "shared_memory", K_BOOL, OFF(shared_memory), 0, 0 },
    { "strict_readiness", K_BOOL, OFF(strict_readiness), 0, 0 },
};

static int set_key(struct dcv_config *c, const struct key *k, const struct dcv_json *v,
                   const char *dir, char *err)
{
    char *base = (char *)c + k->off;
    const char *s = dcv_json_string(v);
    int64_t x;
    switch (k->kind) {
    case K_INT:
    case K_SIZE:
        if (!dcv_json_int(v, k->lo, k->hi, &x))
            return dcv_errf(err, DCV_EINVAL, "config: %s must be an integer in [%lld, %lld]",
                            k->name, k->lo, k->hi);
        if (k->kind == K_INT) *(int *)base = (int)x;
        else *(size_t *)base = (size_t)x;
        return 0;
    case K_BOOL:
        if (dcv_json_type(v) != DCV_JSON_BOOL)
            return dcv_errf(err, DCV_EINVAL, "config: %s must be true or false", k->name);
        *(bool *)base = dcv_json_true(v);
        return 0;
    case K_LISTEN:
        if (!s) return dcv_errf(err, DCV_EINVAL, "config: listen must be a string");
        return dcv_config_parse_listen(c, s, err);
    case K_LEVEL:
        if (dcv_log_parse_level(s) < 0)
            return dcv_errf(err, DCV_EINVAL, "config: log_level must be debug, info, warn "
                            "or error");
        *(int *)base = dcv_log_parse_level(s);
        return 0;
    case K_FORMAT:
        if (!s || (strcmp(s, "logfmt") && strcmp(s, "json")))
            return dcv_errf(err, DCV_EINVAL, "config: log_format must be logfmt or json");
        *(bool *)base = strcmp(s, "json") == 0;
        return 0;
    case K_STR:
        if (!s || strlen(s) >= sizeof c->auth_token)
            return dcv_errf(err, DCV_EINVAL, "config: %s must be a string under %zu bytes",
                            k->name, sizeof c->auth_token);
        snprintf(base, sizeof c->auth_token, "%s", s);
        return 0;
    case K_DIR:
        if (!s || !*s) return dcv_errf(err, DCV_EINVAL, "config: %s must be a path", k->name);
        if (s[0] == '/') snprintf(c->models_dir, sizeof c->models_dir, "%s", s);
        else if ((size_t)snprintf(c->models_dir, sizeof c->models_dir, "%s/%s", dir, s) >=
                 sizeof c->models_dir)
            return dcv_errf(err, DCV_EINVAL, "config: models_dir too long");
        return 0;
    }
    return 0;
}

static int read_all(const char *path, char **buf, size_t *len, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return dcv_errf(err, DCV_ENOENT, "config %.200s: %s", path, strerror(errno));
    *buf = malloc(MAX_CONFIG_FILE + 1);
    *len = *buf ? fread(*buf, 1, MAX_CONFIG_FILE + 1, f) : 0;
    fclose(f);
    if (!*buf) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    if (*len > MAX_CONFIG_FILE) {
        free(*buf);
        return dcv_errf(err, DCV_ETOOBIG, "config %.200s: larger than 1 MiB", path);
    }
    return 0;
}

int dcv_config_load(struct dcv_config *c, const char *path, char *err)
{
    char *text = NULL, tmp[PATH_MAX], dir[PATH_MAX], sub[DCV_ERRLEN];
    size_t len = 0;
    struct dcv_json *root = NULL;
    int rc = read_all(path, &text, &len, err);
    if (rc) return rc;
    snprintf(c->config_path, sizeof c->config_path, "%s", path);
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, sizeof dir, "%s", dirname(tmp));   /* dirname may return tmp itself */
    struct dcv_json_bound bound = { MAX_CONFIG_NODES, "the config file limit", NULL, NULL };
    if ((rc = dcv_json_parse_bounded(text, len, &bound, &root, sub))) {
        rc = dcv_errf(err, rc, "config %.200s: %s", path, sub);
        goto out;
    }
    if (dcv_json_type(root) != DCV_JSON_OBJECT) {
        rc = dcv_errf(err, DCV_EINVAL, "config %.200s: must be a JSON object", path);
        goto out;
    }
    for (const struct dcv_json *m = dcv_json_first(root); m; m = dcv_json_next(m)) {
        const struct key *k = NULL;
        for (size_t i = 0; i < sizeof keys / sizeof *keys && !k; i++)
            if (strcmp(keys[i].name, dcv_json_key(m)) == 0) k = &keys[i];
        if (!k) {
            rc = dcv_errf(err, DCV_EINVAL, "config %.200s: unknown key '%.64s'", path,
                          dcv_json_key(m));
            goto out;
        }
        if ((rc = set_key(c, k, m, dir, err))) goto out;
    }
    if (!rc && c->max_body_bytes > c->memory_budget_bytes)
        rc = dcv_errf(err, DCV_EINVAL, "config %.200s: max_body_bytes (%zu) is above "
                      "memory_budget_bytes (%zu): no body that size could ever be taken", path,
                      c->max_body_bytes, c->memory_budget_bytes);
    else if (!rc && c->max_response_bytes > c->memory_budget_bytes)
        rc = dcv_errf(err, DCV_EINVAL, "config %.200s: max_response_bytes (%zu) is above "
                      "memory_budget_bytes (%zu)", path, c->max_response_bytes,
                      c->memory_budget_bytes);
out:
    dcv_json_free(root);
    free(text);
    return rc;
}

void dcv_config_finalize(struct dcv_config *c, int cores)
{
    c->cores = cores < 1 ? 1 : cores;
    /* threads_per_request 0 = tuned (tuner.c): a job running alone uses
     * every core (best latency); under load each model's tuner picks how
     * many jobs run at once (a fixed split loses latency or throughput, and
     * which split wins depends on the layer, see bench/README.md row 11).
     * So by default there is one worker per core: up to one job per core. */
    if (c->workers == 0)
        c->workers = c->threads_per_request > 0 && c->cores / c->threads_per_request > 0
                   ? c->cores / c->threads_per_request : c->cores;
}
