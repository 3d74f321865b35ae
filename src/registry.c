/* registry.c — served models, versions and reloads.
 *
 * Entries are kept in a growable array (a few to a few hundred models).
 * An entry points at its current `struct dcv_model_version`; a request's reference
 * counts on the version, not the entry. Swapping marks the old version
 * retired; the last release frees it. Removed files retire their entry the
 * same way. Reloads build new models on a pool thread (dcv_sched_submit_bg)
 * from a snapshot of the file list, and the results are swapped in on the
 * loop thread, so the request path never waits for a load and never sees a
 * half-built model. Loop thread only, apart from the load work itself.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "deconvd/json.h"
#include "deconvd/log.h"
#include "deconvd/registry.h"
#include "deconvd/sched.h"

struct dcv_model_version {
    struct dcv_model *model;
    int number, refs;
    bool retired;
    struct entry *entry;         /* NULL once the entry is gone */
};

struct entry {
    char name[DCV_MODEL_NAME_MAX];
    struct dcv_model_version *cur;
    char error[DCV_ERRLEN];      /* last load error, "" if none */
    bool unloaded, removed;
    int next_version;
    int pins;                    /* versions still pointing here */
    struct dcv_model_stats stats;
};

struct dcv_registry {
    char dir[4096];
    struct dcv_model_opts opts;
    struct entry **entries;
    size_t n, cap;
    bool reloading;
};

/* One load job: names to (re)load and their results. */
struct load_job {
    struct dcv_registry *reg;
    char (*names)[DCV_MODEL_NAME_MAX];
    struct dcv_model **models;
    char (*errors)[DCV_ERRLEN];
    int *codes;
    size_t n;
    bool full;                   /* whole directory: absent names are removed */
    dcv_registry_done_fn done;
    void *arg;
};

struct dcv_registry *dcv_registry_new(const char *dir, const struct dcv_model_opts *o)
{
    struct dcv_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    if (o) r->opts = *o;
    return r;
}

static void entry_maybe_free(struct dcv_registry *r, struct entry *e);

static void version_put(struct dcv_registry *r, struct dcv_model_version *v)
{
    if (!v || v->refs > 0 || !v->retired) return;
    struct entry *e = v->entry;
    dcv_model_free(v->model);
    free(v);
    if (e) {
        e->pins--;
        entry_maybe_free(r, e);
    }
}

static void retire(struct dcv_registry *r, struct entry *e)
{
    struct dcv_model_version *v = e->cur;
    e->cur = NULL;
    if (v) {
        v->retired = true;
        version_put(r, v);
    }
}

static void entry_maybe_free(struct dcv_registry *r, struct entry *e)
{
    if (!e->removed || e->cur || e->pins > 0) return;
    for (size_t i = 0; i < r->n; i++)
        if (r->entries[i] == e) {
            r->entries[i] = r->entries[--r->n];
            break;
        }
    free(e);
}

void dcv_registry_free(struct dcv_registry *r)
{
    if (!r) return;
    while (r->n) {
        struct entry *e = r->entries[r->n - 1];
        e->removed = true;
        retire(r, e);
        if (r->n && r->entries[r->n - 1] == e) {   /* still pinned: force */
            r->n--;
            free(e);
        }
    }
    free(r->entries);
    free(r);
}

static struct entry *find(const struct dcv_registry *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (!r->entries[i]->removed && strcmp(r->entries[i]->name, name) == 0)
            return r->entries[i];
    return NULL;
}

static struct entry *find_or_add(struct dcv_registry *r, const char *name)
{
    struct entry *e = find(r, name);
    if (e) return e;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        struct entry **p = realloc(r->entries, nc * sizeof *p);
        if (!p) return NULL;
        r->entries = p;
        r->cap = nc;
    }
    if (!(e = calloc(1, sizeof *e))) return NULL;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->next_version = 1;
    r->entries[r->n++] = e;
    return e;
}

/* Model names in the directory: every *.json with a valid stem. */
static size_t list_models(const char *dir, char (**names)[DCV_MODEL_NAME_MAX])
{
    DIR *d = opendir(dir);
    size_t n = 0, cap = 0;
    *names = NULL;
    if (!d) return 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0) continue;
        char stem[DCV_MODEL_NAME_MAX];
        if (len - 5 >= sizeof stem) continue;
        memcpy(stem, de->d_name, len - 5);
        stem[len - 5] = '\0';
        if (!dcv_model_name_valid(stem)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            void *p = realloc(*names, cap * sizeof **names);
            if (!p) break;
            *names = p;
        }
        memcpy((*names)[n++], stem, sizeof stem);
    }
    closedir(d);
    return n;
}

static void job_free(struct load_job *j)
{
    free(j->names);
    free(j->models);
    free(j->errors);
    free(j->codes);
    free(j);
}

static void load_work(void *arg)
{
    struct load_job *j = arg;
    for (size_t i = 0; i < j->n; i++)
        if ((j->codes[i] = dcv_model_load(j->reg->dir, j->names[i], &j->reg->opts,
                                          &j->models[i], j->errors[i])))
            j->models[i] = NULL;
}

static void swap_in(struct dcv_registry *r, struct entry *e, struct dcv_model *m,
                    const char *error)
{
    if (!m) {
        snprintf(e->error, sizeof e->error, "%s", error);
        DCV_LOG(DCV_LOG_ERROR, "model load failed", KV_S("model", e->name),
                KV_S("error", error), KV_S("serving", e->cur ? "previous version" : "none"));
        return;
    }
    if (e->cur && e->cur->model->fingerprint == m->fingerprint && !e->unloaded) {
        dcv_model_free(m);                      /* untouched files: keep the version */
        e->error[0] = '\0';
        DCV_LOG(DCV_LOG_DEBUG, "model unchanged", KV_S("model", e->name),
                KV_I("version", e->cur->number));
        return;
    }
    struct dcv_model_version *v = calloc(1, sizeof *v);
    if (!v) {
        dcv_model_free(m);
        snprintf(e->error, sizeof e->error, "out of memory");
        return;
    }
    v->model = m;
    v->number = e->next_version++;
    v->entry = e;
    e->pins++;
    retire(r, e);
    e->cur = v;
    e->error[0] = '\0';
    e->unloaded = false;
    DCV_LOG(DCV_LOG_INFO, "model loaded", KV_S("model", e->name), KV_I("version", v->number),
            KV_S("class", m->layer.class_name));
}

static void load_done(void *arg)
{
    struct load_job *j = arg;
    struct dcv_registry *r = j->reg;
    int failures = 0;
    for (size_t i = 0; i < j->n; i++) {
        /* a single-model load of a file that does not exist is a 404, not
         * a new UNAVAILABLE entry */
        if (!j->full && j->codes[i] == DCV_ENOENT && !find(r, j->names[i])) {
            failures++;
            continue;
        }
        struct entry *e = find_or_add(r, j->names[i]);
        if (!e) {
            dcv_model_free(j->models[i]);
            failures++;
            continue;
        }
        swap_in(r, e, j->models[i], j->errors[i]);
        failures += !j->models[i];
    }
    for (size_t i = 0; j->full && i < r->n; i++) {
        struct entry *e = r->entries[i];
        bool present = false;
        for (size_t k = 0; k < j->n && !present; k++) present = !strcmp(j->names[k], e->name);
        if (!present && !e->removed) {
            DCV_LOG(DCV_LOG_INFO, "model removed", KV_S("model", e->name));
            e->removed = true;
            if (e->cur) retire(r, e);      /* may free e through version_put */
            else entry_maybe_free(r, e);
            i = (size_t)-1;                /* the array may have shifted: rescan */
        }
    }
    r->reloading = false;
    if (j->done)
        j->done(j->arg, !failures ? 0 : j->n == 1 && j->codes[0] ? j->codes[0] : DCV_EINVAL,
                failures && j->n == 1 ? j->errors[0] : "");
    job_free(j);
}

static struct load_job *job_new(struct dcv_registry *r, const char *name)
{
    struct load_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->reg = r;
    if (name) {
        j->names = calloc(1, sizeof *j->names);
        if (j->names) snprintf(j->names[0], DCV_MODEL_NAME_MAX, "%s", name);
        j->n = 1;
    } else {
        j->n = list_models(r->dir, &j->names);
        j->full = true;
    }
    j->models = calloc(j->n + 1, sizeof *j->models);
    j->errors = calloc(j->n + 1, sizeof *j->errors);
    j->codes = calloc(j->n + 1, sizeof *j->codes);
    if ((j->n && !j->names) || !j->models || !j->errors || !j->codes) {
        job_free(j);
        return NULL;
    }
    return j;
}

int dcv_registry_load_all(struct dcv_registry *r)
{
    struct load_job *j = job_new(r, NULL);
    int failures = 0;
    if (!j) return -1;
    load_work(j);
    for (size_t i = 0; i < j->n; i++) failures += !j->models[i];
    r->reloading = true;
    load_done(j);
    return failures;
}

int dcv_registry_reload(struct dcv_registry *r, const char *name, dcv_registry_done_fn done,
                        void *arg)
{
    if (r->reloading) return DCV_EBUSY;
    struct load_job *j = job_new(r, name);
    if (!j) return DCV_ENOMEM;
    j->done = done;
    j->arg = arg;
    r->reloading = true;
    int rc = dcv_sched_submit_bg(load_work, load_done, j);
    if (rc) {
        r->reloading = false;
        job_free(j);
    }
    return rc;
}

bool dcv_registry_reloading(const struct dcv_registry *r) { return r->reloading; }

int dcv_registry_unload(struct dcv_registry *r, const char *name)
{
    struct entry *e = find(r, name);
    if (!e) return DCV_ENOENT;
    retire(r, e);
    e->unloaded = true;
    DCV_LOG(DCV_LOG_INFO, "model unloaded", KV_S("model", name));
    return 0;
}

int dcv_registry_acquire(struct dcv_registry *r, const char *name, struct dcv_model_ref *ref,
                         char *err)
{
    struct entry *e = find(r, name);
    if (!e) return dcv_errf(err, DCV_ENOENT, "unknown model '%.100s'", name);
    if (!e->cur)
        return dcv_errf(err, DCV_ENOTREADY, "model '%.100s' is not ready: %s", name,
                        e->unloaded ? "unloaded" : e->error[0] ? e->error : "loading");
    e->cur->refs++;
    ref->ver = e->cur;
    ref->model = e->cur->model;
    ref->version = e->cur->number;
    ref->stats = &e->stats;
    ref->name = e->name;
    return 0;
}

void dcv_registry_release(struct dcv_registry *r, struct dcv_model_ref *ref)
{
    struct dcv_model_version *v = ref->ver;
    if (!v) return;
    ref->ver = NULL;
    v->refs--;
    version_put(r, v);
}

bool dcv_registry_known(const struct dcv_registry *r, const char *name)
{
    return find(r, name) != NULL;
}

int dcv_registry_ready_count(const struct dcv_registry *r)
{
    int n = 0;
    for (size_t i = 0; i < r->n; i++) n += r->entries[i]->cur && !r->entries[i]->removed;
    return n;
}

struct dcv_json *dcv_registry_index(const struct dcv_registry *r)
{
    struct dcv_json *a = dcv_json_new_array();
    for (size_t i = 0; a && i < r->n; i++) {
        const struct entry *e = r->entries[i];
        struct dcv_json *o = dcv_json_new_object();
        char ver[16];
        if (e->removed) continue;
        snprintf(ver, sizeof ver, "%d", e->cur ? e->cur->number : e->next_version - 1);
        dcv_json_add(o, "name", dcv_json_new_string(e->name));
        if (e->cur || e->next_version > 1) dcv_json_add(o, "version", dcv_json_new_string(ver));
        dcv_json_add(o, "state", dcv_json_new_string(e->cur ? "READY" : "UNAVAILABLE"));
        dcv_json_add(o, "reason", dcv_json_new_string(
            e->error[0] ? e->error : e->unloaded ? "unloaded" : ""));
        dcv_json_append(a, o);
    }
    return a;
}

static struct dcv_json *stat_json(const struct dcv_stat *s)
{
    struct dcv_json *o = dcv_json_new_object();
    dcv_json_add(o, "count", dcv_json_new_number((double)s->count));
    dcv_json_add(o, "ns", dcv_json_new_number((double)s->ns));
    return o;
}

static struct dcv_json *entry_stats(const struct entry *e)
{
    const struct dcv_model_stats *s = &e->stats;
    struct dcv_json *o = dcv_json_new_object(), *is = dcv_json_new_object();
    char ver[16];
    snprintf(ver, sizeof ver, "%d", e->cur ? e->cur->number : 0);
    dcv_json_add(o, "name", dcv_json_new_string(e->name));
    dcv_json_add(o, "version", dcv_json_new_string(ver));
    dcv_json_add(o, "last_inference", dcv_json_new_number((double)s->last_inference_ms));
    dcv_json_add(o, "inference_count", dcv_json_new_number((double)s->inference_count));
    dcv_json_add(o, "execution_count", dcv_json_new_number((double)s->execution_count));
    dcv_json_add(is, "success", stat_json(&s->success));
    dcv_json_add(is, "fail", stat_json(&s->fail));
    dcv_json_add(is, "queue", stat_json(&s->queue));
    dcv_json_add(is, "compute_input", stat_json(&s->compute_input));
    dcv_json_add(is, "compute_infer", stat_json(&s->compute_infer));
    dcv_json_add(is, "compute_output", stat_json(&s->compute_output));
    dcv_json_add(o, "inference_stats", is);
    dcv_json_add(o, "batch_stats", dcv_json_new_array());
    return o;
}

struct dcv_json *dcv_registry_stats(const struct dcv_registry *r, const char *name)
{
    struct dcv_json *o = dcv_json_new_object(), *a = dcv_json_new_array();
    for (size_t i = 0; i < r->n; i++) {
        const struct entry *e = r->entries[i];
        if (e->removed || (name && strcmp(e->name, name))) continue;
        dcv_json_append(a, entry_stats(e));
    }
    dcv_json_add(o, "model_stats", a);
    return o;
}
