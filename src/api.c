/* api.c — routes and the handlers answered on the loop thread.
 *
 * Routing is a hand-written match on path segments (the API is small and a
 * table of patterns would be longer). Health, metadata, config, stats,
 * repository, shared-memory and metrics requests are answered here, at
 * once; their bodies are bounded by LOOP_BODY_MAX, checked on the headers.
 * Inference, ops and shape inference go to jobs.c (the worker pool). The
 * precheck refuses what can be refused on the headers alone (a wrong
 * token, a big upload while the queue is full). Owns the shared-memory
 * region table (shm.c) and the jobs. Loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deconvd/api.h"
#include "deconvd/batch.h"
#include "deconvd/budget.h"
#include "deconvd/buf.h"
#include "deconvd/config.h"
#include "deconvd/error.h"
#include "deconvd/http.h"
#include "deconvd/jobs.h"
#include "deconvd/json.h"
#include "deconvd/jsonbody.h"
#include "deconvd/log.h"
#include "deconvd/metrics.h"
#include "deconvd/model.h"
#include "deconvd/registry.h"
#include "deconvd/reply.h"
#include "deconvd/sched.h"
#include "deconvd/shm.h"

#define JSON DCV_REPLY_JSON

/* Endpoint labels come from metrics.h's table only (metric label and log). */
#define EP(id) dcv_metrics_endpoint_name(DCV_EP_##id)

#define MAX_SEGS 8



struct dcv_api {
    const struct dcv_config *cfg;
    struct dcv_registry *reg;
    struct dcv_metrics *metrics;
    struct dcv_reply reply;
    struct dcv_shm *shm;               /* registered regions (empty while disabled) */
    struct dcv_jobs *jobs;             /* inference, ops and shapes on the pool */
    bool ready;
    long loads;                        /* repository loads not yet answered */
};

struct dcv_api *dcv_api_new(const struct dcv_config *cfg, struct dcv_registry *reg,
                            struct dcv_metrics *metrics)
{
    struct dcv_api *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = cfg;
    a->reg = reg;
    a->metrics = metrics;
    a->reply = (struct dcv_reply){ metrics, reg };
    if (!(a->shm = dcv_shm_new(DCV_SHM_DEFAULT_MAX_REGIONS)) ||
        !(a->jobs = dcv_jobs_new(cfg, reg, a->shm, &a->reply))) {
        dcv_shm_free(a->shm);
        free(a);
        return NULL;
    }
    return a;
}

/* The server frees the API after the scheduler has finished every job, so
 * no region is still in use here and all are unmapped. */
void dcv_api_free(struct dcv_api *a)
{
    if (!a) return;
    dcv_jobs_free(a->jobs);
    dcv_shm_free(a->shm);
    free(a);
}

void dcv_api_set_ready(struct dcv_api *a, bool ready) { a->ready = ready; }

long dcv_api_inflight(const struct dcv_api *a)
{
    return a->loads + dcv_jobs_inflight(a->jobs);
}

long dcv_api_abort_all(struct dcv_api *a) { return dcv_jobs_abort_all(a->jobs); }

/* Answers through reply.c, counted under this API's metrics. */
static void send_error(struct dcv_api *a, struct dcv_http_req *req, const char *model, int code,
                       const char *msg)
{
    dcv_reply_error(&a->reply, req, model, code, msg);
}

static void send_json(struct dcv_api *a, struct dcv_http_req *req, const char *model,
                      int status, struct dcv_json *doc)
{
    dcv_reply_json(&a->reply, req, model, status, doc);
}

static void finish(struct dcv_api *a, struct dcv_http_req *req, const char *model, int status)
{
    dcv_reply_count(&a->reply, req, model, status);
}

static struct dcv_json *obj_bool(const char *key, bool v)
{
    struct dcv_json *o = dcv_json_new_object();
    dcv_json_add(o, key, dcv_json_new_bool(v));
    return o;
}

/* ---- auth ---- */

static bool ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++) d |= (unsigned char)(a[i % (la ? la : 1)] ^ b[i]);
    return d == 0 && la;
}

static bool authorized(struct dcv_api *a, struct dcv_http_req *req)
{
    if (!a->cfg->auth_token[0]) return true;
    const char *h = dcv_http_header(req, "Authorization");
    /* RFC 7235: the scheme is case-insensitive, then one or more spaces */
    if (!h || strncasecmp(h, "Bearer", 6) != 0 || h[6] != ' ') return false;
    for (h += 6; *h == ' '; h++) {}
    return ct_equal(h, a->cfg->auth_token);
}

/* ---- handlers ---- */

static bool acquire(struct dcv_api *a, struct dcv_http_req *req, const char *name,
                    struct dcv_model_ref *ref)
{
    char err[DCV_ERRLEN];
    int rc = dcv_model_name_valid(name) ? dcv_registry_acquire(a->reg, name, ref, err)
                                        : dcv_errf(err, DCV_ENOENT, "unknown model");
    if (rc) send_error(a, req, name, rc, err);
    return rc == 0;
}

static struct dcv_json *tensor_meta(const char *name, const int64_t *shape, int nd)
{
    struct dcv_json *o = dcv_json_new_object();
    dcv_json_add(o, "name", dcv_json_new_string(name));
    dcv_json_add(o, "datatype", dcv_json_new_string("FP32"));
    dcv_json_add(o, "shape", dcv_json_new_int_array(shape, (size_t)nd));
    return o;
}

static void h_metadata(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct dcv_model_ref ref;
    char ver[16];
    if (!acquire(a, req, name, &ref)) return;
    const struct dcv_model *m = ref.model;
    struct dcv_json *o = dcv_json_new_object(), *vs = dcv_json_new_array(),
                    *ins = dcv_json_new_array(), *outs = dcv_json_new_array();
    snprintf(ver, sizeof ver, "%d", ref.version);
    dcv_json_add(o, "name", dcv_json_new_string(name));
    dcv_json_append(vs, dcv_json_new_string(ver));
    dcv_json_add(o, "versions", vs);
    dcv_json_add(o, "platform", dcv_json_new_string(m->chain ? "keras_chain"
                                                             : "keras_conv_transpose"));
    dcv_json_append(ins, tensor_meta(m->input_name, m->in_sig, m->ndim));
    dcv_json_append(outs, tensor_meta(m->output_name, m->out_sig, m->out_ndim));
    dcv_json_add(o, "inputs", ins);
    dcv_json_add(o, "outputs", outs);
    dcv_registry_release(a->reg, &ref);
    send_json(a, req, name, 200, o);
}

static void h_model_config(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct dcv_model_ref ref;
    if (!acquire(a, req, name, &ref)) return;
    struct dcv_json *c = dcv_model_config_json(ref.model);
    dcv_batch_config_json(ref.model->batch, c);
    dcv_registry_release(a->reg, &ref);
    send_json(a, req, name, c ? 200 : 500, c);
}

/* Failed models a not-ready answer names; failed_count gives them all and
 * the repository index every reason, so a probe's answer stays small. */
#define READY_NAMES 16

/* Ready once loaded and until draining; with strict_readiness (Triton's
 * default) also only while no model is left without a version by a failed
 * load: a 503 then names them. */
static void h_ready(struct dcv_api *a, struct dcv_http_req *req)
{
    const char *names[READY_NAMES], *errors[READY_NAMES];
    size_t failed = a->ready && a->cfg->strict_readiness
                  ? dcv_registry_failed(a->reg, names, errors, READY_NAMES) : 0;
    bool ready = a->ready && failed == 0;
    struct dcv_json *o = obj_bool("ready", ready);
    if (failed) {
        struct dcv_json *list = dcv_json_new_array();
        for (size_t i = 0; i < failed && i < READY_NAMES; i++) {
            struct dcv_json *m = dcv_json_new_object();
            dcv_json_add(m, "name", dcv_json_new_string(names[i]));
            dcv_json_add(m, "error", dcv_json_new_string(errors[i]));
            dcv_json_append(list, m);
        }
        dcv_json_add(o, "failed_count", dcv_json_new_number((double)failed));
        dcv_json_add(o, "failed_models", list);
    }
    send_json(a, req, NULL, ready ? 200 : 503, o);
}

static void h_model_ready(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct dcv_model_ref ref;
    char err[DCV_ERRLEN];
    int rc = dcv_model_name_valid(name) ? dcv_registry_acquire(a->reg, name, &ref, err)
                                        : DCV_ENOENT;
    if (rc == DCV_ENOENT) { send_error(a, req, name, rc, "unknown model"); return; }
    if (rc == 0) dcv_registry_release(a->reg, &ref);
    struct dcv_json *o = obj_bool("ready", rc == 0);
    dcv_json_add(o, "name", dcv_json_new_string(name));
    send_json(a, req, name, rc == 0 ? 200 : 503, o);
}

/* The body of a loop-thread endpoint (at most LOOP_BODY_MAX bytes). */
static struct dcv_json *parse_body(struct dcv_api *a, struct dcv_http_req *req,
                                   const char *model)
{
    char err[DCV_ERRLEN];
    size_t len;
    struct dcv_json *doc;
    char *body = dcv_http_body(req, &len);
    int rc = dcv_jsonbody_object(body, len, a->cfg->max_json_nodes, &doc, err);
    if (rc) send_error(a, req, model, rc, err);
    return doc;
}

static void h_server_meta(struct dcv_api *a, struct dcv_http_req *req)
{
    static const char *const ext[] = { "binary_tensor_data", "model_repository",
                                       "statistics", "model_configuration", "schedule_policy"
                                       , "shape_inference", "tfserving_predict", "ops" };
    struct dcv_json *o = dcv_json_new_object(), *e = dcv_json_new_array();
    dcv_json_add(o, "name", dcv_json_new_string("deconvd"));
    dcv_json_add(o, "version", dcv_json_new_string(DCV_VERSION));
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (strcmp(ext[i], "schedule_policy")) dcv_json_append(e, dcv_json_new_string(ext[i]));
    if (a->cfg->shared_memory) dcv_json_append(e, dcv_json_new_string("system_shared_memory"));
    dcv_json_add(o, "extensions", e);
    send_json(a, req, NULL, 200, o);
}

static void h_metrics(struct dcv_api *a, struct dcv_http_req *req)
{
    struct dcv_gauges g = { .inflight = dcv_api_inflight(a), .queue_depth = dcv_sched_queued(),
                            .models_loaded = dcv_registry_ready_count(a->reg) };
    struct dcv_buf_stats bs;
    dcv_buf_get_stats(&bs);
    g.buf_cached_bytes = bs.cached_bytes, g.buf_hits = bs.hits, g.buf_misses = bs.misses;
    dcv_shm_totals(a->shm, &g.shm_regions, &g.shm_bytes);
    g.budget_used = dcv_budget_used(), g.budget_peak = dcv_budget_peak();
    g.budget_limit = dcv_budget_limit();
    size_t len = 0;
    char *text = dcv_metrics_render(a->metrics, &g, &len);
    char *b = text ? dcv_reply_dup(text, len) : NULL;
    free(text);
    if (!b) { send_error(a, req, NULL, DCV_ENOMEM, "out of memory"); return; }
    dcv_reply_text(&a->reply, req, NULL, 200, "text/plain; version=0.0.4; charset=utf-8", b,
                   len);
}

struct load_ctx {
    struct dcv_api *a;
    struct dcv_http_req *req;
    char name[DCV_MODEL_NAME_MAX];
};

static void load_done(void *arg, int rc, const char *err)
{
    struct load_ctx *c = arg;
    if (rc) send_error(c->a, c->req, c->name, rc, err[0] ? err : "load failed");
    else send_json(c->a, c->req, c->name, 200, dcv_json_new_object());
    c->a->loads--;
    free(c);
}

static void h_repo(struct dcv_api *a, struct dcv_http_req *req, const char *name,
                   const char *action)
{
    if (!strcmp(action, "unload")) {
        int rc = dcv_registry_unload(a->reg, name);
        if (rc) { send_error(a, req, name, rc, "unknown model"); return; }
        { send_json(a, req, name, 200, dcv_json_new_object()); return; }
    }
    struct load_ctx *c = calloc(1, sizeof *c);
    if (!c) { send_error(a, req, name, DCV_ENOMEM, "out of memory"); return; }
    *c = (struct load_ctx){ .a = a, .req = req };
    snprintf(c->name, sizeof c->name, "%s", name);
    int rc = dcv_registry_reload(a->reg, name, load_done, c);
    if (rc) {
        free(c);
        { send_error(a, req, name, rc, rc == DCV_EBUSY ? "a reload is in progress, retry"
                                                            : "cannot start loading"); return; }
    }
    a->loads++;
}

/* ---- system shared memory (Triton's extension) ---- */

static struct dcv_json *shm_status(const struct dcv_shm_info *s)
{
    struct dcv_json *o = dcv_json_new_object();
    dcv_json_add(o, "name", dcv_json_new_string(s->name));
    dcv_json_add(o, "key", dcv_json_new_string(s->key));
    dcv_json_add(o, "offset", dcv_json_new_number((double)s->offset));
    dcv_json_add(o, "byte_size", dcv_json_new_number((double)s->byte_size));
    return o;
}

/* [{"name","key","offset","byte_size"}, ...]: one region, or all. */
static void h_shm_status(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    struct dcv_json *arr = dcv_json_new_array();
    if (name) {
        struct dcv_shm_info info;
        if (dcv_shm_info(a->shm, name, &info)) {
            char msg[DCV_ERRLEN];
            snprintf(msg, sizeof msg, "unknown shared memory region '%s'", name);
            dcv_json_free(arr);
            send_error(a, req, NULL, DCV_ENOENT, msg);
            return;
        }
        dcv_json_append(arr, shm_status(&info));
    } else {
        struct dcv_shm_info *all = malloc(DCV_SHM_DEFAULT_MAX_REGIONS * sizeof *all);
        size_t n = all ? dcv_shm_list(a->shm, all, DCV_SHM_DEFAULT_MAX_REGIONS) : 0;
        if (!all) {
            dcv_json_free(arr);
            send_error(a, req, NULL, DCV_ENOMEM, "out of memory");
            return;
        }
        for (size_t i = 0; i < n; i++) dcv_json_append(arr, shm_status(&all[i]));
        free(all);
    }
    send_json(a, req, NULL, 200, arr);
}

/* A register body member that is a byte count (up to 2^53, exact in JSON). */
static bool shm_bytes(const struct dcv_json *doc, const char *key, bool required, uint64_t *out,
                      char *err)
{
    const struct dcv_json *v = dcv_json_get(doc, key);
    int64_t x = 0;
    if (!v && !required) {
        *out = 0;
        return true;
    }
    if (!v || !dcv_json_int(v, 0, INT64_C(1) << 53, &x)) {
        char got[48];
        if (v && dcv_json_type(v) == DCV_JSON_NUMBER)
            snprintf(got, sizeof got, "%.17g", dcv_json_number(v));
        else
            snprintf(got, sizeof got, "%s", v ? dcv_json_type_name(v) : "nothing");
        dcv_errf(err, DCV_EINVAL, "register: \"%s\" must be an integer number of bytes in "
                 "[0, 2^53], got %s", key, got);
        return false;
    }
    *out = (uint64_t)x;
    return true;
}

/* Body {"key": "/shm_key", "offset": N, "byte_size": N}. */
static void h_shm_register(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    char err[DCV_ERRLEN];
    uint64_t offset, size;
    struct dcv_json *doc = parse_body(a, req, NULL);
    if (!doc) return;
    const char *key = dcv_json_string(dcv_json_get(doc, "key"));
    int rc = DCV_EINVAL;
    for (const struct dcv_json *m = dcv_json_first(doc); m; m = dcv_json_next(m))
        if (strcmp(dcv_json_key(m), "key") && strcmp(dcv_json_key(m), "offset") &&
            strcmp(dcv_json_key(m), "byte_size")) {
            dcv_errf(err, rc, "register: unknown member \"%.64s\" (a register body is "
                     "{\"key\": \"/name\", \"offset\": N, \"byte_size\": N})",
                     dcv_json_key(m));
            goto out;
        }
    if (!key) {
        dcv_errf(err, rc, "register: \"key\" must be the shared memory object's name, a "
                 "string like \"/my_input\"");
        goto out;
    }
    if (!shm_bytes(doc, "offset", false, &offset, err) ||
        !shm_bytes(doc, "byte_size", true, &size, err))
        goto out;
    rc = dcv_shm_register(a->shm, name, key, offset, size, err);
out:
    dcv_json_free(doc);
    if (rc) send_error(a, req, NULL, rc, err);
    else send_json(a, req, NULL, 200, dcv_json_new_object());
}

/* Unregistering a name that is not registered succeeds, as in Triton:
 * clients unregister in clean-up paths without knowing what is left. */
static void h_shm_unregister(struct dcv_api *a, struct dcv_http_req *req, const char *name)
{
    if (name) dcv_shm_unregister(a->shm, name);
    else dcv_shm_unregister_all(a->shm);
    send_json(a, req, NULL, 200, dcv_json_new_object());
}

/* ---- TF Serving metadata ---- */

static struct dcv_json *tf_shape(const int64_t *s, int nd)
{
    struct dcv_json *o = dcv_json_new_object(), *dims = dcv_json_new_array();
    for (int i = 0; i < nd; i++) {
        struct dcv_json *d = dcv_json_new_object();
        char n[24];
        snprintf(n, sizeof n, "%lld", (long long)s[i]);
        dcv_json_add(d, "size", dcv_json_new_string(n));
        dcv_json_add(d, "name", dcv_json_new_string(""));
        dcv_json_append(dims, d);
    }
    dcv_json_add(o, "dim", dims);
    dcv_json_add(o, "unknown_rank", dcv_json_new_bool(false));
    return o;
}

static struct dcv_json *tf_tensor(const char *name, const int64_t *s, int nd)
{
    struct dcv_json *o = dcv_json_new_object(), *w = dcv_json_new_object();
    dcv_json_add(o, "dtype", dcv_json_new_string("DT_FLOAT"));
    dcv_json_add(o, "tensor_shape", tf_shape(s, nd));
    dcv_json_add(o, "name", dcv_json_new_string(name));
    dcv_json_add(w, name, o);
    return w;
}

static void h_tf_status(struct dcv_api *a, struct dcv_http_req *req, const char *name,
                        bool metadata)
{
    struct dcv_model_ref ref;
    char ver[16];
    if (!acquire(a, req, name, &ref)) return;
    snprintf(ver, sizeof ver, "%d", ref.version);
    struct dcv_json *o = dcv_json_new_object();
    if (!metadata) {
        struct dcv_json *arr = dcv_json_new_array(), *v = dcv_json_new_object(),
                        *st = dcv_json_new_object();
        dcv_json_add(v, "version", dcv_json_new_string(ver));
        dcv_json_add(v, "state", dcv_json_new_string("AVAILABLE"));
        dcv_json_add(st, "error_code", dcv_json_new_string("OK"));
        dcv_json_add(st, "error_message", dcv_json_new_string(""));
        dcv_json_add(v, "status", st);
        dcv_json_append(arr, v);
        dcv_json_add(o, "model_version_status", arr);
    } else {
        struct dcv_json *spec = dcv_json_new_object(), *sig = dcv_json_new_object(),
                        *defs = dcv_json_new_object(), *sd = dcv_json_new_object(),
                        *md = dcv_json_new_object(), *wrap = dcv_json_new_object();
        dcv_json_add(spec, "name", dcv_json_new_string(name));
        dcv_json_add(spec, "signature_name", dcv_json_new_string(""));
        dcv_json_add(spec, "version", dcv_json_new_string(ver));
        dcv_json_add(o, "model_spec", spec);
        const struct dcv_model *m = ref.model;
        dcv_json_add(sd, "inputs", tf_tensor(m->input_name, m->in_sig, m->ndim));
        dcv_json_add(sd, "outputs", tf_tensor(m->output_name, m->out_sig, m->out_ndim));
        dcv_json_add(sd, "method_name", dcv_json_new_string("tensorflow/serving/predict"));
        dcv_json_add(defs, "serving_default", sd);
        dcv_json_add(sig, "signature_def", defs);
        dcv_json_add(wrap, "signature_def", sig);
        dcv_json_add(md, "signature_def", dcv_json_dup(sig));
        dcv_json_free(wrap);
        dcv_json_add(o, "metadata", md);
    }
    dcv_registry_release(a->reg, &ref);
    send_json(a, req, name, 200, o);
}

/* ---- routing ---- */

struct route {
    const char *seg[MAX_SEGS];
    int n;
    char buf[2048];
};

static int split(const char *path, struct route *r)
{
    if (strlen(path) >= sizeof r->buf) return -1;
    strcpy(r->buf, path);
    r->n = 0;
    for (char *s = strtok(r->buf, "/"); s; s = strtok(NULL, "/")) {
        if (r->n == MAX_SEGS) return -1;
        r->seg[r->n++] = s;
    }
    return 0;
}

static bool is(const struct route *r, int i, const char *s)
{
    return i < r->n && strcmp(r->seg[i], s) == 0;
}

/* Method check: true when it matches; otherwise answers 405. */
static bool method(struct dcv_api *a, struct dcv_http_req *req, const char *want,
                   const char *model)
{
    if (!strcmp(dcv_http_method(req), want)) return true;
    if (!strcmp(want, "GET") && !strcmp(dcv_http_method(req), "HEAD")) return true;
    char msg[96];
    snprintf(msg, sizeof msg, "method %.16s not allowed here: use %s", dcv_http_method(req), want);
    struct dcv_http_header h[] = { { "Allow", want } };
    size_t n;
    char *b = dcv_reply_error_body(msg, &n);
    finish(a, req, model, 405);
    dcv_http_respond(req, 405, JSON, b, 0, n, h, 1);
    return false;
}

static void route_shm(struct dcv_api *a, struct dcv_http_req *req, struct route *r)
{
    /* /v2/systemsharedmemory[/region/{name}]/{status,register,unregister} */
    const char *name = NULL, *act = "";
    if (r->n == 3) act = r->seg[2];
    else if (r->n == 5 && is(r, 2, "region")) name = r->seg[3], act = r->seg[4];
    bool status = !strcmp(act, "status"), reg = !strcmp(act, "register"),
         unreg = !strcmp(act, "unregister");
    dcv_http_set_log(req, NULL, status ? EP(SHM_STATUS) : reg ? EP(SHM_REGISTER)
                              : unreg ? EP(SHM_UNREGISTER) : EP(SHM));
    if (!status && !unreg && !(reg && name))
        { send_error(a, req, NULL, DCV_ENOENT, "no such endpoint"); return; }
    if (!a->cfg->shared_memory) { send_error(a, req, NULL, DCV_EINVAL, DCV_SHM_DISABLED); return; }
    if (name && !dcv_shm_name_valid(name)) {
        send_error(a, req, NULL, DCV_EINVAL, "invalid shared memory region name: use 1-127 of "
                   "[A-Za-z0-9_.-], not starting with '.'");
        return;
    }
    if (!method(a, req, status ? "GET" : "POST", NULL)) return;
    if (status) h_shm_status(a, req, name);
    else if (reg) h_shm_register(a, req, name);
    else h_shm_unregister(a, req, name);
}

/* Only the current version is served; any other number is unknown. */
static bool version_exists(struct dcv_api *a, const char *m, const char *v)
{
    struct dcv_model_ref ref;
    char buf[16];
    if (!dcv_model_name_valid(m) || dcv_registry_acquire(a->reg, m, &ref, NULL)) return true;
    snprintf(buf, sizeof buf, "%d", ref.version);
    dcv_registry_release(a->reg, &ref);
    return strcmp(buf, v) == 0;
}

static void route_model(struct dcv_api *a, struct dcv_http_req *req, struct route *r)
{
    /* /v2/models/{m}[/versions/{v}][/action] */
    const char *m = r->seg[2];
    int i = 3;
    if (is(r, 3, "versions") && r->n >= 5) i = 5;
    const char *act = i < r->n ? r->seg[i] : "";
    if (i + 1 < r->n) { send_error(a, req, m, DCV_ENOENT, "no such endpoint"); return; }
    if (i == 5 && !version_exists(a, m, r->seg[4])) {
        send_error(a, req, m, DCV_ENOENT, "no such model version");
        return;
    }
    /* an action outside the table is "other", never the path's own text */
    enum dcv_endpoint ep = *act ? dcv_metrics_endpoint_find(act) : DCV_EP_METADATA;
    dcv_http_set_log(req, m, dcv_metrics_endpoint_name(ep));
    if (!*act) {
        if (method(a, req, "GET", m)) h_metadata(a, req, m);
    } else if (ep == DCV_EP_INFER) {
        if (method(a, req, "POST", m)) dcv_jobs_infer(a->jobs, req, m, false);
    } else if (ep == DCV_EP_READY) {
        if (method(a, req, "GET", m)) h_model_ready(a, req, m);
    } else if (ep == DCV_EP_CONFIG) {
        if (method(a, req, "GET", m)) h_model_config(a, req, m);
    } else if (ep == DCV_EP_STATS) {
        if (method(a, req, "GET", m)) {
            if (!dcv_registry_known(a->reg, m))
                { send_error(a, req, m, DCV_ENOENT, "unknown model"); return; }
            send_json(a, req, m, 200, dcv_registry_stats(a->reg, m));
        }
    } else if (ep == DCV_EP_SHAPE) {
        if (method(a, req, "POST", m)) dcv_jobs_shape(a->jobs, req, m);
    } else {
        dcv_http_set_log(req, m, EP(OTHER));
        send_error(a, req, m, DCV_ENOENT, "no such endpoint");
    }
}

static void route_v1(struct dcv_api *a, struct dcv_http_req *req, struct route *r)
{
    /* /v1/models/{m}[:predict] [/versions/{v}[:predict]] [/metadata] */
    char name[DCV_MODEL_NAME_MAX];
    const char *last = r->seg[r->n - 1];
    const char *colon = strchr(last, ':');
    snprintf(name, sizeof name, "%.*s", (int)(r->n == 3 && colon ? colon - last
                                                  : (long)strlen(r->seg[2])), r->seg[2]);
    if (colon && strcmp(colon, ":predict") != 0)
        { send_error(a, req, name, DCV_ENOENT, "only :predict is supported"); return; }
    if (colon) {
        dcv_http_set_log(req, name, EP(TFS_PREDICT));
        if (method(a, req, "POST", name)) dcv_jobs_infer(a->jobs, req, name, true);
        return;
    }
    bool meta = is(r, r->n - 1, "metadata");
    dcv_http_set_log(req, name, meta ? EP(TFS_METADATA) : EP(TFS_STATUS));
    if (method(a, req, "GET", name)) h_tf_status(a, req, name, meta);
}

static void route(struct dcv_api *a, struct dcv_http_req *req)
{
    struct route r;
    if (split(dcv_http_path(req), &r) || r.n == 0)
        { send_error(a, req, NULL, DCV_ENOENT, "no such endpoint"); return; }
    if (r.n == 1 && is(&r, 0, "metrics")) {
        dcv_http_set_log(req, NULL, EP(METRICS));
        if (method(a, req, "GET", NULL)) h_metrics(a, req);
        return;
    }
    if (is(&r, 0, "v1") && is(&r, 1, "models") && r.n >= 3 && r.n <= 5)
        { route_v1(a, req, &r); return; }
    if (!is(&r, 0, "v2")) { send_error(a, req, NULL, DCV_ENOENT, "no such endpoint"); return; }
    if (r.n == 1) {
        dcv_http_set_log(req, NULL, EP(SERVER_METADATA));
        if (method(a, req, "GET", NULL)) h_server_meta(a, req);
    } else if (is(&r, 1, "models") && r.n == 3 && is(&r, 2, "stats")) {
        dcv_http_set_log(req, NULL, EP(STATS));
        if (method(a, req, "GET", NULL))
            send_json(a, req, NULL, 200, dcv_registry_stats(a->reg, NULL));
    } else if (is(&r, 1, "models") && r.n >= 3) {
        route_model(a, req, &r);
    } else if (is(&r, 1, "repository") && r.n == 3 && is(&r, 2, "index")) {
        dcv_http_set_log(req, NULL, EP(REPOSITORY_INDEX));
        if (method(a, req, "POST", NULL)) send_json(a, req, NULL, 200, dcv_registry_index(a->reg));
    } else if (is(&r, 1, "repository") && r.n == 5 && is(&r, 2, "models") &&
               (is(&r, 4, "load") || is(&r, 4, "unload"))) {
        dcv_http_set_log(req, r.seg[3], is(&r, 4, "load") ? EP(LOAD) : EP(UNLOAD));
        if (!dcv_model_name_valid(r.seg[3]))
            { send_error(a, req, NULL, DCV_EINVAL, "invalid model name"); return; }
        if (method(a, req, "POST", r.seg[3])) h_repo(a, req, r.seg[3], r.seg[4]);
    } else if (is(&r, 1, "systemsharedmemory")) {
        route_shm(a, req, &r);
    } else if (is(&r, 1, "cudasharedmemory")) {
        dcv_http_set_log(req, NULL, EP(CUDA_SHM));
        send_error(a, req, NULL, DCV_EUNSUPP, "CUDA shared memory is not supported: deconvd "
                   "computes on the CPU only; use system shared memory (/v2/systemsharedmemory)");
    } else if (r.n == 2 && is(&r, 1, "shape")) {
        dcv_http_set_log(req, NULL, EP(SHAPE));
        if (method(a, req, "POST", NULL)) dcv_jobs_shape(a->jobs, req, NULL);
    } else if (r.n == 3 && is(&r, 1, "ops")) {
        int rank = !strcmp(r.seg[2], "conv1d_transpose") ? 1
                 : !strcmp(r.seg[2], "conv2d_transpose") ? 2
                 : !strcmp(r.seg[2], "conv3d_transpose") ? 3 : 0;
        dcv_http_set_log(req, NULL, EP(OPS));
        if (!rank) { send_error(a, req, NULL, DCV_ENOENT, "unknown op"); return; }
        if (method(a, req, "POST", NULL)) dcv_jobs_op(a->jobs, req, rank);
    } else {
        send_error(a, req, NULL, DCV_ENOENT, "no such endpoint");
    }
}

static bool is_health(const char *path)
{
    return !strcmp(path, "/v2/health/live") || !strcmp(path, "/v2/health/ready");
}

/* The model an inference path names (KServe infer, TF Serving predict). */
static bool inference_model(const char *path, char *model, size_t cap, const char **endpoint)
{
    struct route r;
    const char *colon;
    if (split(path, &r) || r.n < 3 || !is(&r, 1, "models")) return false;
    const char *last = r.seg[r.n - 1];
    if (is(&r, 0, "v2") && !strcmp(last, "infer") &&
        (r.n == 4 || (r.n == 6 && is(&r, 3, "versions")))) {
        snprintf(model, cap, "%s", r.seg[2]);
        *endpoint = EP(INFER);
        return true;
    }
    if (is(&r, 0, "v1") && (colon = strchr(last, ':')) && !strcmp(colon, ":predict")) {
        snprintf(model, cap, "%.*s", r.n == 3 ? (int)(colon - last) : (int)strlen(r.seg[2]),
                 r.seg[2]);
        *endpoint = EP(TFS_PREDICT);
        return true;
    }
    return false;
}

/* Endpoints whose work runs on the pool (inference, ops, shape inference)
 * take bodies up to max_body_bytes; every other one is answered on the
 * loop thread and takes at most LOOP_BODY_MAX, so that no body it parses
 * can hold the loop. */
#define LOOP_BODY_MAX (64 * 1024)

static bool pool_endpoint(const char *path, char *model, size_t cap, const char **endpoint)
{
    struct route r;
    model[0] = '\0';
    if (inference_model(path, model, cap, endpoint)) return true;
    if (split(path, &r) || !is(&r, 0, "v2")) return false;
    *endpoint = EP(SHAPE);
    if (r.n == 2 && is(&r, 1, "shape")) return true;
    if (r.n == 3 && is(&r, 1, "ops")) return (*endpoint = EP(OPS)), true;
    if (!is(&r, 1, "models") || !is(&r, r.n - 1, "shape")) return false;
    snprintf(model, cap, "%s", r.seg[2]);
    return r.n == 4 || (r.n == 6 && is(&r, 3, "versions"));
}

/* Uploads from here on are refused with 503 before they are read when the
 * queue is full; smaller ones may still be computed inline. */
#define EARLY_BUSY_BYTES (64 * 1024)

void dcv_api_precheck(void *ctx, struct dcv_http_req *req, size_t announced)
{
    struct dcv_api *a = ctx;
    const char *path = dcv_http_path(req), *endpoint;
    char model[DCV_MODEL_NAME_MAX];
    bool pool = pool_endpoint(path, model, sizeof model, &endpoint);
    if (!pool) dcv_http_limit_body(req, LOOP_BODY_MAX, "64 KiB for this endpoint");
    if (is_health(path)) return;
    if (!authorized(a, req)) {
        struct dcv_http_header h[] = { { "WWW-Authenticate", "Bearer" } };
        const char *msg = "{\"error\":\"missing or invalid bearer token\"}";
        finish(a, req, NULL, 401);
        dcv_http_respond(req, 401, JSON, dcv_reply_dup(msg, strlen(msg)), 0, strlen(msg), h, 1);
        return;
    }
    /* (a body over max_body_bytes is refused 413 next: a lasting error first) */
    if (pool && announced >= EARLY_BUSY_BYTES && announced <= a->cfg->max_body_bytes &&
        dcv_sched_queued() >= a->cfg->max_queue) {
        dcv_http_set_log(req, model[0] ? model : NULL, endpoint);
        send_error(a, req, model, DCV_EBUSY, "server busy: inference queue is full, retry later");
    }
}

void dcv_api_handle(void *ctx, struct dcv_http_req *req)
{
    struct dcv_api *a = ctx;
    const char *path = dcv_http_path(req);
    if (!strcmp(path, "/v2/health/live")) {
        dcv_http_set_log(req, NULL, EP(HEALTH));
        if (method(a, req, "GET", NULL)) send_json(a, req, NULL, 200, obj_bool("live", true));
        return;
    }
    if (!strcmp(path, "/v2/health/ready")) {
        dcv_http_set_log(req, NULL, EP(HEALTH));
        if (method(a, req, "GET", NULL)) h_ready(a, req);
        return;
    }
    route(a, req);                        /* dcv_api_precheck has checked the token */
}
