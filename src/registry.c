/* registry.c — served models, versions and reloads.
 *
 * A hash table indexes one record per model name ever seen; records are
 * never deleted, so a name's last version number outlives its removal and
 * versions never repeat. A record points at its live entry; live entries are
 * also on a list (index, stats) and the failing ones on another (readiness).
 * An entry points at its current version; a request's reference counts on
 * the version, not the entry: a swap retires the old version, its last
 * release frees it, and a removed file retires its entry the same way.
 *
 * A reload runs on a pool thread (dcv_sched_submit_bg): it lists models_dir
 * (NAME.json, NAME.keras, NAME.h5: Keras files are read in child processes
 * that the pool thread waits for, never the loop),
 * recomputes each served model's fingerprint from disk, rebuilds only the
 * models whose files changed or that serve nothing, and names those that
 * went away. The loop thread applies these changes a slice per turn, so its
 * work follows what changed, never how many models there are, and requests
 * are answered between slices; it never sees a half-built model. Models are
 * destroyed on a pool thread as well. The records are the only state a pool
 * thread reads: the loop writes them, and the pool reads them, under `mu`
 * (the loop's own reads need no lock). Everything else is loop thread only.
 */
#include <dirent.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/json.h"
#include "deconvd/log.h"
#include "deconvd/registry.h"
#include "deconvd/sched.h"

/* Changes applied per loop turn: each costs a few microseconds (a log line,
 * an allocation), so a slice stays far below a millisecond. */
#define APPLY_SLICE 256

struct dcv_model_version {
    struct dcv_model *model;
    int number, refs;
    bool retired;
    struct entry *entry;         /* NULL once the entry is gone */
};

/* One per name ever seen. */
struct name_rec {
    char name[DCV_MODEL_NAME_MAX];
    int last_version;                          /* loop only */
    /* written by the loop under mu, read by the loader under mu: */
    struct entry *live;                        /* NULL: not served (loader: test only) */
    uint64_t fp;                               /* current version's; 0 = none */
    char **weight_files;
    int n_weight_files;
};

enum { LIVE, FAILING, NLISTS };

struct link { struct entry *prev, *next; bool on; };
struct list { struct entry *head, *tail; size_t n; };

struct entry {
    struct name_rec *rec;
    struct dcv_model_version *cur;
    char error[DCV_ERRLEN];      /* last load error, "" if none */
    bool unloaded, removed;
    int pins;                    /* versions still pointing here */
    struct link links[NLISTS];
    struct dcv_model_stats stats;
};

struct dcv_registry {
    char dir[4096];
    struct dcv_model_opts opts;
    pthread_mutex_t mu;
    struct name_rec **slots;     /* open addressing, cap a power of two */
    size_t cap, used;
    struct list lists[NLISTS];
    int n_ready;
    bool reloading, async, reaping;
    struct load_job *applying;   /* results being applied, a slice per turn */
    struct dcv_timer *slice_timer;
    struct dcv_model **dead;     /* models to destroy off the loop */
    size_t ndead, capdead;
    void (*on_change)(void *);
    void *change_arg;
};

enum change { C_BUILT, C_FAILED, C_REMOVED };

struct result {
    char name[DCV_MODEL_NAME_MAX];
    enum change kind;
    struct dcv_model *model;     /* C_BUILT */
    int code;                    /* C_FAILED */
    char error[DCV_ERRLEN];
};

/* One load job: what to look at, then what changed. */
struct load_job {
    struct dcv_registry *reg;
    char name[DCV_MODEL_NAME_MAX];   /* one model; "" = the whole directory */
    struct result *res;
    size_t n, cap, next;             /* next: first result not yet applied */
    int failures;
    bool oom;                        /* a change could not be recorded */
    dcv_registry_done_fn done;
    void *arg;
};

/* ---- lists -------------------------------------------------------------- */

static void list_push(struct dcv_registry *r, int which, struct entry *e)
{
    struct list *l = &r->lists[which];
    struct link *k = &e->links[which];
    if (k->on) return;
    *k = (struct link){ .prev = l->tail, .next = NULL, .on = true };
    if (l->tail) l->tail->links[which].next = e;
    else l->head = e;
    l->tail = e;
    l->n++;
}

static void list_drop(struct dcv_registry *r, int which, struct entry *e)
{
    struct list *l = &r->lists[which];
    struct link *k = &e->links[which];
    if (!k->on) return;
    if (k->prev) k->prev->links[which].next = k->next;
    else l->head = k->next;
    if (k->next) k->next->links[which].prev = k->prev;
    else l->tail = k->prev;
    *k = (struct link){ 0 };
    l->n--;
}

/* Failing: its last load failed and no version serves (strict readiness). */
static void sync_failing(struct dcv_registry *r, struct entry *e)
{
    if (!e->removed && !e->cur && e->error[0]) list_push(r, FAILING, e);
    else list_drop(r, FAILING, e);
}

/* ---- name records --------------------------------------------------------- */

static size_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (size_t)(h ^ (h >> 32));
}

static struct name_rec *rec_find(const struct dcv_registry *r, const char *name)
{
    if (!r->cap || !name) return NULL;
    for (size_t i = name_hash(name) & (r->cap - 1);; i = (i + 1) & (r->cap - 1)) {
        struct name_rec *n = r->slots[i];
        if (!n || strcmp(n->name, name) == 0) return n;
    }
}

static int rec_grow(struct dcv_registry *r)
{
    size_t cap = r->cap ? r->cap * 2 : 64;
    struct name_rec **s = calloc(cap, sizeof *s);
    if (!s) return DCV_ENOMEM;
    for (size_t i = 0; i < r->cap; i++) {
        if (!r->slots[i]) continue;
        size_t k = name_hash(r->slots[i]->name) & (cap - 1);
        while (s[k]) k = (k + 1) & (cap - 1);
        s[k] = r->slots[i];
    }
    pthread_mutex_lock(&r->mu);
    free(r->slots);
    r->slots = s;
    r->cap = cap;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static struct name_rec *rec_add(struct dcv_registry *r, const char *name)
{
    struct name_rec *n = rec_find(r, name);
    if (n) return n;
    if ((r->used + 1) * 2 > r->cap && rec_grow(r)) return NULL;
    if (!(n = calloc(1, sizeof *n))) return NULL;
    snprintf(n->name, sizeof n->name, "%s", name);
    size_t i = name_hash(name) & (r->cap - 1);
    while (r->slots[i]) i = (i + 1) & (r->cap - 1);
    pthread_mutex_lock(&r->mu);
    r->slots[i] = n;
    r->used++;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* What the loader sees of a name: its live entry and the files (and their
 * fingerprint) its current version was built from, m NULL for none. */
static void publish(struct dcv_registry *r, struct name_rec *n, struct entry *live,
                    const struct dcv_model *m)
{
    char **wf = m ? dcv_model_files_dup(m->weight_files, m->n_weight_files) : NULL;
    int nwf = wf ? m->n_weight_files : 0;
    pthread_mutex_lock(&r->mu);
    n->live = live;
    n->fp = m && wf ? m->fingerprint : 0;      /* 0: rebuilt on the next reload */
    char **old = n->weight_files;
    int nold = n->n_weight_files;
    n->weight_files = wf;
    n->n_weight_files = nwf;
    pthread_mutex_unlock(&r->mu);
    dcv_model_files_free(old, nold);
}

/* ---- destroying models off the loop ---------------------------------------- */

struct grave {
    struct dcv_registry *reg;
    struct dcv_model **models;
    size_t n;
};

static void reap_work(void *arg)
{
    struct grave *g = arg;
    for (size_t i = 0; i < g->n; i++) dcv_model_free(g->models[i]);
}

static void reap(struct dcv_registry *r);

static void reap_done(void *arg)
{
    struct grave *g = arg;
    struct dcv_registry *r = g->reg;
    free(g->models);
    free(g);
    r->reaping = false;
    reap(r);
}

/* One pool job at a time destroys whatever has been buried since the last. */
static void reap(struct dcv_registry *r)
{
    if (r->reaping || !r->ndead) return;
    struct grave *g = malloc(sizeof *g);
    if (!g) return;                             /* the next burial retries */
    *g = (struct grave){ .reg = r, .models = r->dead, .n = r->ndead };
    r->dead = NULL;
    r->ndead = r->capdead = 0;
    if (dcv_sched_submit_bg(reap_work, reap_done, g)) {
        reap_work(g);
        free(g->models);
        free(g);
        return;
    }
    r->reaping = true;
}

/* Destroying a model frees its weights and oneDNN primitives: thousands of
 * them (a reload removing a directory's worth) would hold the loop. */
static void bury(struct dcv_registry *r, struct dcv_model *m)
{
    if (!m) return;
    if (r->async && r->ndead == r->capdead) {
        size_t cap = r->capdead ? r->capdead * 2 : 64;
        struct dcv_model **p = realloc(r->dead, cap * sizeof *p);
        if (p) r->dead = p, r->capdead = cap;
    }
    if (!r->async || dcv_sched_closing() || r->ndead == r->capdead) {
        dcv_model_free(m);
        return;
    }
    r->dead[r->ndead++] = m;
    reap(r);
}

/* ---- entries and versions ---------------------------------------------------- */

struct dcv_registry *dcv_registry_new(const char *dir, const struct dcv_model_opts *o)
{
    struct dcv_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return NULL;
    }
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    if (o) r->opts = *o;
    return r;
}

static void entry_maybe_free(struct entry *e)
{
    if (e->removed && !e->cur && e->pins == 0) free(e);
}

static void version_put(struct dcv_registry *r, struct dcv_model_version *v)
{
    if (!v || v->refs > 0 || !v->retired) return;
    struct entry *e = v->entry;
    bury(r, v->model);
    free(v);
    if (e) {
        e->pins--;
        entry_maybe_free(e);
    }
}

/* Makes v (NULL: none) the entry's current version and retires the old one. */
static void set_cur(struct dcv_registry *r, struct entry *e, struct dcv_model_version *v)
{
    struct dcv_model_version *old = e->cur;
    r->n_ready += (v != NULL) - (old != NULL);
    e->cur = v;
    publish(r, e->rec, e, v ? v->model : NULL);
    sync_failing(r, e);
    if (old) {
        old->retired = true;
        version_put(r, old);
    }
}

static struct entry *find(const struct dcv_registry *r, const char *name)
{
    struct name_rec *n = rec_find(r, name);
    return n ? n->live : NULL;
}

static struct entry *find_or_add(struct dcv_registry *r, const char *name)
{
    struct name_rec *n = rec_add(r, name);
    struct entry *e;
    if (!n) return NULL;
    if (n->live) return n->live;
    if (!(e = calloc(1, sizeof *e))) return NULL;
    e->rec = n;
    list_push(r, LIVE, e);
    publish(r, n, e, NULL);
    return e;
}

static void remove_entry(struct dcv_registry *r, struct entry *e)
{
    set_cur(r, e, NULL);
    e->removed = true;
    list_drop(r, LIVE, e);
    list_drop(r, FAILING, e);
    publish(r, e->rec, NULL, NULL);
    entry_maybe_free(e);
}

static void apply(struct dcv_registry *r, struct load_job *j, struct result *x);

static void job_free(struct load_job *j)
{
    free(j->res);
    free(j);
}

void dcv_registry_free(struct dcv_registry *r)
{
    if (!r) return;
    r->async = false;                 /* the loop is gone: destroy here */
    if (r->applying) {                /* its next slice's turn never came */
        struct load_job *j = r->applying;
        while (j->next < j->n) apply(r, j, &j->res[j->next++]);
        job_free(j);
    }
    while (r->lists[LIVE].head) remove_entry(r, r->lists[LIVE].head);
    for (size_t i = 0; i < r->ndead; i++) dcv_model_free(r->dead[i]);
    free(r->dead);
    for (size_t i = 0; i < r->cap; i++) {
        if (!r->slots[i]) continue;
        dcv_model_files_free(r->slots[i]->weight_files, r->slots[i]->n_weight_files);
        free(r->slots[i]);
    }
    free(r->slots);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- the load job: pool thread ---------------------------------------------------- */

static struct result *add_result(struct load_job *j, const char *name, enum change kind)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 16;
        struct result *p = realloc(j->res, cap * sizeof *p);
        if (!p) {
            j->oom = true;
            return NULL;
        }
        j->res = p;
        j->cap = cap;
    }
    struct result *x = &j->res[j->n++];
    memset(x, 0, offsetof(struct result, error) + 1);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->kind = kind;
    return x;
}

static void build(struct load_job *j, const char *name)
{
    struct dcv_model *m = NULL;
    char err[DCV_ERRLEN] = "";
    int rc = dcv_model_load(j->reg->dir, name, &j->reg->opts, &m, err);
    struct result *x = add_result(j, name, rc ? C_FAILED : C_BUILT);
    if (!x) {
        dcv_model_free(m);
        return;
    }
    x->model = m;
    x->code = rc;
    if (rc) snprintf(x->error, sizeof x->error, "%s", err);
}

/* True when name serves a version whose files are untouched on disk. */
static bool unchanged(struct dcv_registry *r, const char *name)
{
    char **wf = NULL;
    int nwf = 0;
    uint64_t fp = 0;
    pthread_mutex_lock(&r->mu);
    struct name_rec *n = rec_find(r, name);
    if (n && n->live && n->fp) {
        fp = n->fp;
        nwf = n->n_weight_files;
        wf = dcv_model_files_dup(n->weight_files, nwf);
    }
    pthread_mutex_unlock(&r->mu);
    bool ok = wf && fp && dcv_model_fingerprint(r->dir, name, wf, nwf) == fp;
    dcv_model_files_free(wf, nwf);
    return ok;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Model names in the directory: every NAME.json, NAME.keras and NAME.h5
 * entry with a valid stem (dcv_model_file_stem), whatever its type (a FIFO
 * or a directory so named is that model's load error), each name once (two
 * files of one name are its load error). Sorted, for the removal check. */
static size_t list_models(const char *dir, char ***names, bool *oom)
{
    DIR *d = opendir(dir);
    size_t n = 0, cap = 0;
    char stem[DCV_MODEL_NAME_MAX];
    *names = NULL;
    if (!d) return 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!dcv_model_file_stem(de->d_name, stem)) continue;
        char *dup = strdup(stem);
        if (dup && n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(*names, cap * sizeof *p);
            if (p) *names = p;
            else cap = n;
        }
        if (!dup || n == cap) {
            free(dup);
            *oom = true;
            break;
        }
        (*names)[n++] = dup;
    }
    closedir(d);
    if (n) qsort(*names, n, sizeof **names, cmp_name);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && !strcmp((*names)[k - 1], (*names)[i])) free((*names)[i]);
        else (*names)[k++] = (*names)[i];
    }
    return k;
}

/* Whole directory: rebuild what changed, then name what went away. */
static void scan(struct load_job *j)
{
    struct dcv_registry *r = j->reg;
    char **names;
    size_t n = list_models(r->dir, &names, &j->oom);
    for (size_t i = 0; i < n; i++)
        if (!unchanged(r, names[i])) build(j, names[i]);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; !j->oom && i < r->cap; i++) {
        const struct name_rec *x = r->slots[i];
        const char *key = x ? x->name : NULL;
        if (x && x->live && (!n || !bsearch(&key, names, n, sizeof *names, cmp_name)))
            add_result(j, x->name, C_REMOVED);
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void load_work(void *arg)
{
    struct load_job *j = arg;
    if (j->name[0]) build(j, j->name);
    else scan(j);
}

/* ---- applying the changes: loop thread ---------------------------------------------- */

static void swap_in(struct dcv_registry *r, struct entry *e, struct dcv_model *m)
{
    if (e->cur && e->cur->model->fingerprint == m->fingerprint && !e->unloaded) {
        bury(r, m);                             /* untouched files: keep the version */
        e->error[0] = '\0';
        sync_failing(r, e);
        DCV_LOG(DCV_LOG_DEBUG, "model unchanged", KV_S("model", e->rec->name),
                KV_I("version", e->cur->number));
        return;
    }
    struct dcv_model_version *v = calloc(1, sizeof *v);
    if (!v) {
        bury(r, m);
        snprintf(e->error, sizeof e->error, "out of memory");
        sync_failing(r, e);
        return;
    }
    v->model = m;
    v->number = ++e->rec->last_version;
    v->entry = e;
    e->pins++;
    e->error[0] = '\0';
    e->unloaded = false;
    set_cur(r, e, v);
    DCV_LOG(DCV_LOG_INFO, "model loaded", KV_S("model", e->rec->name), KV_I("version", v->number),
            KV_S("class", dcv_model_class(m)));
}

static void fail(struct dcv_registry *r, struct entry *e, const char *error)
{
    snprintf(e->error, sizeof e->error, "%s", error);
    e->unloaded = false;                        /* a load was asked for, and failed */
    sync_failing(r, e);
    DCV_LOG(DCV_LOG_ERROR, "model load failed", KV_S("model", e->rec->name),
            KV_S("error", error), KV_S("serving", e->cur ? "previous version" : "none"));
}

static void apply(struct dcv_registry *r, struct load_job *j, struct result *x)
{
    if (x->kind == C_REMOVED) {
        struct entry *e = find(r, x->name);
        if (!e) return;
        DCV_LOG(DCV_LOG_INFO, "model removed", KV_S("model", x->name));
        remove_entry(r, e);
        return;
    }
    if (x->kind == C_FAILED) j->failures++;
    /* a single-model load of a file that does not exist is a 404, not a new
     * UNAVAILABLE entry */
    if (j->name[0] && x->code == DCV_ENOENT && !find(r, x->name)) return;
    struct entry *e = find_or_add(r, x->name);
    if (!e) {
        bury(r, x->model);
        j->failures += x->kind == C_BUILT;
        j->oom = true;
        return;
    }
    if (x->kind == C_BUILT) swap_in(r, e, x->model);
    else fail(r, e, x->error);
}

static void finish(struct dcv_registry *r, struct load_job *j)
{
    int rc = 0;
    const char *err = "";
    r->reloading = false;
    r->applying = NULL;
    if (j->oom)
        DCV_LOG(DCV_LOG_ERROR, "reload incomplete", KV_S("reason", "out of memory"));
    if (r->on_change) r->on_change(r->change_arg);
    if (j->name[0] && j->n == 1 && j->res[0].kind == C_FAILED)
        rc = j->res[0].code, err = j->res[0].error;
    else if (j->failures || j->oom)
        rc = j->oom ? DCV_ENOMEM : DCV_EINVAL;
    if (j->done) j->done(j->arg, rc, err);
    job_free(j);
}

static void apply_slice(void *arg)
{
    struct dcv_registry *r = arg;
    struct load_job *j = r->applying;
    bool slices = r->async && !dcv_sched_closing();    /* no next turn when closing */
    size_t end = slices && j->n - j->next > APPLY_SLICE ? j->next + APPLY_SLICE : j->n;
    while (j->next < end) apply(r, j, &j->res[j->next++]);
    if (j->next < j->n) dcv_sched_timer_start(r->slice_timer, 1, 0);   /* next turn */
    else finish(r, j);
}

static void load_done(void *arg)
{
    struct load_job *j = arg;
    j->reg->applying = j;
    apply_slice(j->reg);
}

static struct load_job *job_new(struct dcv_registry *r, const char *name)
{
    struct load_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->reg = r;
    if (name) snprintf(j->name, sizeof j->name, "%s", name);
    return j;
}

int dcv_registry_load_all(struct dcv_registry *r)
{
    struct load_job *j = job_new(r, NULL);
    int failures;
    if (!j) return -1;
    r->reloading = true;
    load_work(j);
    r->applying = j;
    size_t end = j->n;
    while (j->next < end) apply(r, j, &j->res[j->next++]);
    failures = j->failures + j->oom;
    finish(r, j);
    return failures;
}

int dcv_registry_reload(struct dcv_registry *r, const char *name, dcv_registry_done_fn done,
                        void *arg)
{
    if (r->reloading) return DCV_EBUSY;
    if (!r->slice_timer && !(r->slice_timer = dcv_sched_timer_new(apply_slice, r)))
        return DCV_ENOMEM;
    struct load_job *j = job_new(r, name);
    if (!j) return DCV_ENOMEM;
    j->done = done;
    j->arg = arg;
    r->async = true;
    r->reloading = true;
    int rc = dcv_sched_submit_bg(load_work, load_done, j);
    if (rc) {
        r->reloading = false;
        job_free(j);
    }
    return rc;
}

bool dcv_registry_reloading(const struct dcv_registry *r) { return r->reloading; }

void dcv_registry_on_change(struct dcv_registry *r, void (*cb)(void *), void *arg)
{
    r->on_change = cb;
    r->change_arg = arg;
}

int dcv_registry_unload(struct dcv_registry *r, const char *name)
{
    struct entry *e = find(r, name);
    if (!e) return DCV_ENOENT;
    e->unloaded = true;
    e->error[0] = '\0';                   /* on purpose: not a failure */
    set_cur(r, e, NULL);
    DCV_LOG(DCV_LOG_INFO, "model unloaded", KV_S("model", name));
    if (r->on_change) r->on_change(r->change_arg);
    return 0;
}

/* ---- requests and views: loop thread ----------------------------------------------- */

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
    ref->name = e->rec->name;
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

int dcv_registry_ready_count(const struct dcv_registry *r) { return r->n_ready; }

size_t dcv_registry_failed(const struct dcv_registry *r, const char **names,
                           const char **errors, size_t max)
{
    size_t i = 0;
    for (const struct entry *e = r->lists[FAILING].head; e && i < max;
         e = e->links[FAILING].next, i++) {
        if (names) names[i] = e->rec->name;
        if (errors) errors[i] = e->error;
    }
    return r->lists[FAILING].n;
}

struct dcv_json *dcv_registry_index(const struct dcv_registry *r)
{
    struct dcv_json *a = dcv_json_new_array();
    for (const struct entry *e = r->lists[LIVE].head; a && e; e = e->links[LIVE].next) {
        struct dcv_json *o = dcv_json_new_object();
        int last = e->cur ? e->cur->number : e->rec->last_version;
        char ver[16];
        snprintf(ver, sizeof ver, "%d", last);
        dcv_json_add(o, "name", dcv_json_new_string(e->rec->name));
        if (last > 0) dcv_json_add(o, "version", dcv_json_new_string(ver));
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

/* The tuner's current split and the rates its last probe measured. */
static struct dcv_json *split_json(const struct dcv_tuner *t)
{
    struct dcv_tuner_view v;
    struct dcv_json *o = dcv_json_new_object(), *c = dcv_json_new_array();
    dcv_tuner_snapshot(t, &v);
    dcv_json_add(o, "state", dcv_json_new_string(dcv_tuner_phase_name(v.phase)));
    dcv_json_add(o, "cores", dcv_json_new_number(v.cores));
    dcv_json_add(o, "jobs_at_once", dcv_json_new_number(v.jobs));
    dcv_json_add(o, "threads_per_job", dcv_json_new_number(v.threads));
    dcv_json_add(o, "probes", dcv_json_new_number((double)v.probes));
    for (int i = 0; i < v.ncand; i++) {
        struct dcv_json *e = dcv_json_new_object();
        dcv_json_add(e, "jobs_at_once", dcv_json_new_number(v.cand[i]));
        dcv_json_add(e, "threads_per_job", dcv_json_new_number(v.cores / v.cand[i]));
        /* CPU ms per job as the last probe measured it, null before one */
        dcv_json_add(e, "cpu_ms_per_job", v.cost[i] > 0 ? dcv_json_new_number(v.cost[i] / 1e6)
                                                        : dcv_json_new_null());
        dcv_json_append(c, e);
    }
    dcv_json_add(o, "candidates", c);
    return o;
}

static struct dcv_json *entry_stats(const struct entry *e)
{
    const struct dcv_model_stats *s = &e->stats;
    struct dcv_json *o = dcv_json_new_object(), *is = dcv_json_new_object();
    char ver[16];
    snprintf(ver, sizeof ver, "%d", e->cur ? e->cur->number : 0);
    dcv_json_add(o, "name", dcv_json_new_string(e->rec->name));
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
    dcv_json_add(o, "deconvd_split", split_json(&s->tuner));
    dcv_json_add(o, "deconvd_handback", stat_json(&s->handback));
    return o;
}

struct dcv_json *dcv_registry_stats(const struct dcv_registry *r, const char *name)
{
    struct dcv_json *o = dcv_json_new_object(), *a = dcv_json_new_array();
    if (name) {
        const struct entry *e = find(r, name);
        if (e) dcv_json_append(a, entry_stats(e));
    } else {
        for (const struct entry *e = r->lists[LIVE].head; e; e = e->links[LIVE].next)
            dcv_json_append(a, entry_stats(e));
    }
    dcv_json_add(o, "model_stats", a);
    return o;
}
