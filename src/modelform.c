/* modelform.c — Keras Sequential / Functional configs as a flat chain.
 *
 * Finds the model in a document (deconvd's model file, the bare to_json()
 * dict, or get_config() alone), tells which Keras wrote it, and walks it
 * into dcv_layer_spec entries: a Sequential in list order, a Functional by
 * following each layer's one consumer from its one input to its one output.
 * A nested model is walked where it stands (recursion bounded by
 * DCV_MODELFORM_MAX_DEPTH). Graph refusals name the layer, its class and
 * why. The specs borrow the document's nodes; the walk owns the spec array
 * and, while it walks a Functional, that model's node table. Pure; any
 * thread.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layers.h"
#include "deconvd/modelform.h"

struct walk {
    struct dcv_modelform *f;
    int cap;
    bool input_seen;     /* the chain's InputLayer was found */
    bool dtype_policy;   /* a Keras 3 DTypePolicy dict was seen */
    bool module_keys;    /* "module" / "registered_name" keys were seen */
    char *err;
    char prefix[640];    /* kpath of the model being walked, "" or "layers/x/" */
    char scope[512];     /* its scope (dcv_layer_spec.scope) */
};

/* The names Keras 3 gives a model's layers' weight groups so far. */
struct kname {
    char (*used)[64];
    int n;
};

/* One entry of a model's "layers" list. */
struct entry {
    const struct dcv_json *json;
    const char *cls, *name;
    const struct dcv_json *cfg;
};

static int walk_model(struct walk *w, const struct entry *m, int depth);

static bool is_model_class(const char *s)
{
    return s && (!strcmp(s, "Sequential") || !strcmp(s, "Functional") || !strcmp(s, "Model"));
}

static bool is_input_class(const char *s)
{
    return dcv_layers_find(s) == &dcv_layer_class_input_layer;
}

static bool is_array(const struct dcv_json *j) { return dcv_json_type(j) == DCV_JSON_ARRAY; }
static bool is_object(const struct dcv_json *j) { return dcv_json_type(j) == DCV_JSON_OBJECT; }

/* Keras 3 writes a layer's dtype as a DTypePolicy dict (FloatDTypePolicy,
 * QuantizedDTypePolicy...); tf.keras 2 a string, or {"class_name":
 * "Policy"} under mixed precision. Both Keras 3 and tf.keras >= 2.13 write
 * "module" / "registered_name", so those only count without a version. */
static void note_markers(struct walk *w, const struct dcv_json *obj)
{
    const struct dcv_json *dt = dcv_json_get(dcv_json_get(obj, "config"), "dtype");
    const char *dc = dcv_json_string(dcv_json_get(dt, "class_name"));
    if (dc && strstr(dc, "DTypePolicy")) w->dtype_policy = true;
    if (dcv_json_get(obj, "module") || dcv_json_get(obj, "registered_name")) w->module_keys = true;
}

/* The {class_name, config} of the model in doc: {"class_name": "Sequential",
 * "config": ...} (the model file, to_json()), get_config() alone ({"name",
 * "layers", ...}), or either of those under "config". *holder: the dict
 * around the config (build_config, module), or NULL. */
static bool locate(const struct dcv_json *doc, struct entry *m, const struct dcv_json **holder,
                   int depth)
{
    if (!is_object(doc)) return false;
    const char *cls = dcv_json_string(dcv_json_get(doc, "class_name"));
    const struct dcv_json *inner = dcv_json_get(doc, "config");
    memset(m, 0, sizeof *m);
    m->json = doc;
    *holder = doc;
    if (cls) {
        m->cls = cls;
        m->cfg = inner;
        return is_model_class(cls);
    }
    if (is_array(dcv_json_get(doc, "layers"))) {
        m->cfg = doc;
        *holder = NULL;
    } else if (is_object(inner) && depth == 0 && locate(inner, m, holder, 1)) {
        return true;
    } else {
        return false;
    }
    m->cls = dcv_json_get(m->cfg, "input_layers") ? "Functional" : "Sequential";
    return true;
}

bool dcv_modelform_is_model(const struct dcv_json *doc)
{
    struct entry m;
    const struct dcv_json *holder;
    return locate(doc, &m, &holder, 0);
}

/* A shape list, batch first, null for an unknown dim, into the signature. */
static int read_signature(struct walk *w, const struct dcv_json *dims, const char *key,
                          const char *layer)
{
    struct dcv_modelform *f = w->f;
    size_t n = dcv_json_size(dims);
    if (!is_array(dims) || n < 1 || n > DCV_MAX_DIMS)
        return dcv_errf(w->err, DCV_EINVAL, "%s of '%s' must be a list of 1 to %d dims, batch "
                        "first, got %s", key, layer, DCV_MAX_DIMS, dcv_json_type_name(dims));
    int i = 0;
    for (const struct dcv_json *v = dcv_json_first(dims); v; v = dcv_json_next(v), i++) {
        f->in_shape[i] = -1;
        if (dcv_json_type(v) != DCV_JSON_NULL &&
            !dcv_json_int(v, 1, DCV_MAX_EXTENT, &f->in_shape[i]))
            return dcv_errf(w->err, DCV_EINVAL, "%s[%d] of '%s' must be null or an integer in "
                            "[1, %lld]", key, i, layer, (long long)DCV_MAX_EXTENT);
    }
    f->in_ndim = (int)n;
    return 0;
}

/* The chain's first InputLayer gives its signature and input name; the
 * InputLayers of models nested further along only restate a shape. */
static int input_layer(struct walk *w, const struct entry *e)
{
    if (w->input_seen || w->f->n > 0) return 0;
    w->input_seen = true;
    snprintf(w->f->input_name, sizeof w->f->input_name, "%s", e->name);
    const char *key = "batch_shape";
    const struct dcv_json *bs = dcv_json_get(e->cfg, key);
    if (!bs) bs = dcv_json_get(e->cfg, key = "batch_input_shape");
    if (!bs)
        return dcv_errf(w->err, DCV_EINVAL, "InputLayer '%s' has no batch_shape (or "
                        "batch_input_shape)", e->name);
    return read_signature(w, bs, key, e->name);
}

static int add_spec(struct walk *w, const struct entry *e)
{
    struct dcv_modelform *f = w->f;
    if (f->n >= DCV_MODELFORM_MAX_LAYERS)
        return dcv_errf(w->err, DCV_ETOOBIG, "more than %d layers (at layer '%.64s', class "
                        "%.64s)", DCV_MODELFORM_MAX_LAYERS, e->name, e->cls);
    if (strlen(e->name) >= sizeof f->layers->name)
        return dcv_errf(w->err, DCV_EINVAL, "layer name '%.64s...' (class %.64s) is longer "
                        "than %zu bytes", e->name, e->cls, sizeof f->layers->name - 1);
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->layers[i].name, e->name))
            return dcv_errf(w->err, DCV_EINVAL, "two layers are named '%s' (classes %.64s "
                            "and %.64s): weights are keyed by layer name, so names must be "
                            "unique", e->name, f->layers[i].class_name, e->cls);
    if (f->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        struct dcv_layer_spec *p = realloc(f->layers, sizeof *p * (size_t)cap);
        if (!p) return dcv_errf(w->err, DCV_ENOMEM, "out of memory");
        f->layers = p;
        w->cap = cap;
    }
    struct dcv_layer_spec *s = &f->layers[f->n++];
    s->class_name = e->cls;
    s->config = e->cfg;
    s->build = dcv_json_get(e->json, "build_config");
    if (!is_object(s->build)) s->build = NULL;
    snprintf(s->name, sizeof s->name, "%s", e->name);
    memcpy(s->kpath, w->prefix, sizeof s->kpath);
    memcpy(s->scope, w->scope, sizeof s->scope);
    return 0;
}

/* Entry i of model's "layers": class_name, config dict and name (Functional
 * entries carry it beside the config too). */
static int read_entry(struct walk *w, const struct dcv_json *j, const char *model, int i,
                      struct entry *e)
{
    e->json = j;
    e->cls = dcv_json_string(dcv_json_get(j, "class_name"));
    e->cfg = dcv_json_get(j, "config");
    if (!is_object(j) || !e->cls || !*e->cls)
        return dcv_errf(w->err, DCV_EINVAL, "layer %d of model '%s' must be an object with a "
                        "class_name, got %s", i, model, dcv_json_type_name(j));
    if (!is_object(e->cfg) && !(is_array(e->cfg) && !strcmp(e->cls, "Sequential")))
        return dcv_errf(w->err, DCV_EINVAL, "layer %d (class %.64s) of model '%s' has no "
                        "config dict", i, e->cls, model);
    e->name = dcv_json_string(dcv_json_get(j, "name"));
    if (!e->name) e->name = dcv_json_string(dcv_json_get(e->cfg, "name"));
    if (!e->name || !*e->name)
        return dcv_errf(w->err, DCV_EINVAL, "layer %d (class %.64s) of model '%s' has no name",
                        i, e->cls, model);
    note_markers(w, j);
    return 0;
}

/* Keras's naming.to_snake_case: non-word characters dropped, '_' before
 * each capitalised word but the first and between a lower-case letter and a
 * capital ("Conv2DTranspose" -> "conv2d_transpose"). */
static void snake_case(const char *cls, char *out, size_t cap)
{
    char a[64], b[128];
    size_t n = 0, m = 0, k = 0;
    for (const char *c = cls; *c && n + 1 < sizeof a; c++)
        if (isalnum((unsigned char)*c) || *c == '_') a[n++] = *c;
    a[n] = 0;
    for (size_t i = 0; i < n && m + 2 < sizeof b; i++) {
        if (i > 0 && isupper((unsigned char)a[i]) && islower((unsigned char)a[i + 1]))
            b[m++] = '_';
        b[m++] = a[i];
    }
    b[m] = 0;
    for (size_t i = 0; i < m && k + 2 < cap; i++) {
        if (i > 0 && islower((unsigned char)b[i - 1]) && isupper((unsigned char)b[i]))
            out[k++] = '_';
        out[k++] = (char)tolower((unsigned char)b[i]);
    }
    out[k] = 0;
}

/* The weight group Keras 3 gives e: its class in snake_case, "_N" for the
 * N-th repeat of that class among this model's layers. */
static void group_name(struct kname *kn, const char *cls, char *out, size_t cap)
{
    char base[64];
    int seen = 0;
    snake_case(cls, base, sizeof base);
    for (int i = 0; i < kn->n; i++) seen += !strcmp(kn->used[i], base);
    snprintf(kn->used[kn->n++], sizeof *kn->used, "%s", base);
    if (seen) snprintf(out, cap, "%s_%d", base, seen);
    else snprintf(out, cap, "%s", base);
}

/* A layer met on the chain: a nested model is walked in place, under its
 * own weight path and scope. */
static int visit(struct walk *w, const struct entry *e, int depth, struct kname *kn)
{
    char group[80], prefix[sizeof w->prefix], scope[sizeof w->scope];
    group_name(kn, e->cls, group, sizeof group);
    memcpy(prefix, w->prefix, sizeof prefix);
    memcpy(scope, w->scope, sizeof scope);
    int n1 = snprintf(w->prefix, sizeof w->prefix, "%slayers/%s%s", prefix, group,
                      is_model_class(e->cls) ? "/" : "");
    int n2 = is_model_class(e->cls) ? snprintf(w->scope, sizeof w->scope, "%s%s%s", scope,
                                               *scope ? "/" : "", e->name) : 0;
    int rc;
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof w->prefix || (size_t)n2 >= sizeof w->scope)
        rc = dcv_errf(w->err, DCV_ETOOBIG, "layer '%.64s' (class %.64s) is nested too deep: "
                      "its weight path or scope exceeds %zu bytes", e->name, e->cls,
                      sizeof w->prefix - 1);
    else if (is_model_class(e->cls))
        rc = walk_model(w, e, depth + 1);
    else
        rc = add_spec(w, e);
    memcpy(w->prefix, prefix, sizeof prefix);
    memcpy(w->scope, scope, sizeof scope);
    return rc;
}

static int kname_init(struct walk *w, struct kname *kn, size_t n)
{
    kn->n = 0;
    kn->used = calloc(n ? n : 1, sizeof *kn->used);
    return kn->used ? 0 : dcv_errf(w->err, DCV_ENOMEM, "out of memory");
}

static int walk_sequential(struct walk *w, const struct entry *m, int depth)
{
    const struct dcv_json *layers = is_array(m->cfg) ? m->cfg : dcv_json_get(m->cfg, "layers");
    if (!is_array(layers))
        return dcv_errf(w->err, DCV_EINVAL, "Sequential '%s' has no \"layers\" list", m->name);
    int i = 0, rc;
    struct kname kn;
    if ((rc = kname_init(w, &kn, dcv_json_size(layers)))) return rc;
    for (const struct dcv_json *j = dcv_json_first(layers); j && !rc; j = dcv_json_next(j), i++) {
        struct entry e;
        if ((rc = read_entry(w, j, m->name, i, &e))) break;
        if (!is_input_class(e.cls)) rc = visit(w, &e, depth, &kn);
        else if (i == 0) rc = input_layer(w, &e);
        else
            rc = dcv_errf(w->err, DCV_EINVAL, "layer '%s' (class %s) is layer %d of Sequential "
                          "'%s'; an InputLayer can only come first", e.name, e.cls, i, m->name);
    }
    free(kn.used);
    return rc;
}

/* ---- Functional ---------------------------------------------------------- */

struct gnode {
    struct entry e;
    int src;           /* the one layer this one reads, -1: none (an input) */
    int next;          /* the one layer reading this one's output, -1: none */
    bool seen;         /* on the walk from the input */
};

struct graph {
    struct gnode *g;
    int n;
    const char *model;
};

/* [layer, node, tensor] (tf.keras 2 nodes add a kwargs dict). */
static bool is_ref(const struct dcv_json *v)
{
    size_t n = is_array(v) ? dcv_json_size(v) : 0;
    return (n == 3 || n == 4) && dcv_json_string(dcv_json_first(v)) &&
           dcv_json_type(dcv_json_at(v, 1)) == DCV_JSON_NUMBER &&
           dcv_json_type(dcv_json_at(v, 2)) == DCV_JSON_NUMBER;
}

/* Counts the tensors a structure names: refs, and Keras 3's
 * {"class_name": "__keras_tensor__", "config": {"keras_history": ref}},
 * nested in lists and dicts (a node's args/kwargs, input_layers). *first:
 * the first one's ref (possibly malformed, checked by the caller). */
static size_t count_refs(const struct dcv_json *v, const struct dcv_json **first)
{
    if (is_ref(v)) {
        if (!*first) *first = v;
        return 1;
    }
    const char *cls = dcv_json_string(dcv_json_get(v, "class_name"));
    if (cls && !strcmp(cls, "__keras_tensor__")) {
        if (!*first) *first = dcv_json_get(dcv_json_get(v, "config"), "keras_history");
        return 1;
    }
    size_t k = 0;
    for (const struct dcv_json *c = dcv_json_first(v); c; c = dcv_json_next(c))
        k += count_refs(c, first);
    return k;
}

static int find_layer(const struct graph *gr, const char *name)
{
    for (int i = 0; i < gr->n; i++)
        if (!strcmp(gr->g[i].e.name, name)) return i;
    return -1;
}

/* Resolves ref (read by `who`) to a layer of the graph: its only output of
 * its only call. A nested model's own first node is its built-in one, so
 * Keras numbers its call 1 (tf.keras 2 everywhere, Keras 3 in
 * input/output_layers). */
static int resolve(struct walk *w, const struct graph *gr, const struct dcv_json *ref,
                   const char *who, int *out)
{
    int64_t node, tensor;
    if (!is_ref(ref) || !dcv_json_int(dcv_json_at(ref, 1), 0, INT32_MAX, &node) ||
        !dcv_json_int(dcv_json_at(ref, 2), 0, INT32_MAX, &tensor))
        return dcv_errf(w->err, DCV_EINVAL, "%s: a tensor must be named [layer, node, tensor] "
                        "in model '%s'", who, gr->model);
    const char *name = dcv_json_string(dcv_json_first(ref));
    int i = find_layer(gr, name);
    if (i < 0)
        return dcv_errf(w->err, DCV_EINVAL, "%s reads layer '%.128s', which model '%s' does "
                        "not have", who, name, gr->model);
    const struct entry *src = &gr->g[i].e;
    if (tensor != 0)
        return dcv_errf(w->err, DCV_EUNSUPP, "%s reads output %lld of layer '%s' (class %.64s);"
                        " deconvd serves chains of single-output layers only", who,
                        (long long)tensor, src->name, src->cls);
    if (node != 0 && !(node == 1 && is_model_class(src->cls)))
        return dcv_errf(w->err, DCV_EUNSUPP, "%s reads call %lld of layer '%s' (class %.64s), "
                        "a shared layer; deconvd serves chains only", who, (long long)node,
                        src->name, src->cls);
    *out = i;
    return 0;
}

/* input_layers / output_layers: exactly one tensor. */
static int endpoint(struct walk *w, const struct graph *gr, const struct dcv_json *cfg,
                    const char *key, int *out)
{
    const struct dcv_json *ref = NULL;
    size_t k = count_refs(dcv_json_get(cfg, key), &ref);
    if (k == 0)
        return dcv_errf(w->err, DCV_EINVAL, "Functional '%s' has no %s like [\"%s\", 0, 0]",
                        gr->model, key, key[0] == 'i' ? "input_layer" : "dense");
    if (k > 1)
        return dcv_errf(w->err, DCV_EUNSUPP, "Functional '%s' has %zu %s; deconvd serves "
                        "chains only (one input, one output)", gr->model, k,
                        key[0] == 'i' ? "inputs" : "outputs");
    char who[160];
    snprintf(who, sizeof who, "%s of '%.128s'", key, gr->model);
    return resolve(w, gr, ref, who, out);
}

/* The layer that layer i reads (its one inbound node, one tensor). */
static int source(struct walk *w, struct graph *gr, int i)
{
    const struct entry *e = &gr->g[i].e;
    const struct dcv_json *nodes = dcv_json_get(e->json, "inbound_nodes"), *ref = NULL;
    size_t calls = dcv_json_size(nodes), k;
    char who[200];
    snprintf(who, sizeof who, "layer '%s' (class %.64s)", e->name, e->cls);
    if (!is_array(nodes))
        return dcv_errf(w->err, DCV_EINVAL, "%s of model '%s' has no inbound_nodes list", who,
                        gr->model);
    if (calls == 0)
        return dcv_errf(w->err, DCV_EUNSUPP, "%s of model '%s' is called on nothing; deconvd "
                        "serves chains only", who, gr->model);
    if (calls > 1)
        return dcv_errf(w->err, DCV_EUNSUPP, "%s is called %zu times (a shared layer); "
                        "deconvd serves chains only", who, calls);
    if ((k = count_refs(dcv_json_first(nodes), &ref)) != 1)
        return dcv_errf(w->err, DCV_EUNSUPP, "%s merges %zu inputs; deconvd serves chains only",
                        who, k);
    return resolve(w, gr, ref, who, &gr->g[i].src);
}

/* Each layer's one consumer; checked after every layer's inputs, so that a
 * merge is named as such rather than as the split feeding it. */
static int link(struct walk *w, struct graph *gr)
{
    for (int i = 0; i < gr->n; i++) {
        if (gr->g[i].src < 0) continue;
        struct gnode *s = &gr->g[gr->g[i].src];
        if (s->next >= 0)
            return dcv_errf(w->err, DCV_EUNSUPP, "layer '%s' (class %.64s) feeds 2 layers ('%s' "
                            "and '%s'); deconvd serves chains only", s->e.name, s->e.cls,
                            gr->g[s->next].e.name, gr->g[i].e.name);
        s->next = i;
    }
    return 0;
}

/* From the input along each layer's one consumer; the walk must end at the
 * output and see every layer. */
static int check_walk(struct walk *w, struct graph *gr, int in, int out)
{
    int last = in;
    gr->g[in].seen = true;
    for (int c = gr->g[in].next; c >= 0 && !gr->g[c].seen; c = gr->g[c].next) {
        gr->g[c].seen = true;
        last = c;
    }
    const struct entry *l = &gr->g[last].e, *o = &gr->g[out].e, *i = &gr->g[in].e;
    if (last != out && gr->g[out].seen)
        return dcv_errf(w->err, DCV_EUNSUPP, "layer '%s' (class %.64s) comes after the output "
                        "layer '%s' of model '%s'; deconvd serves chains only",
                        gr->g[gr->g[out].next].e.name, gr->g[gr->g[out].next].e.cls, o->name,
                        gr->model);
    if (last != out)
        return dcv_errf(w->err, DCV_EUNSUPP, "output layer '%s' (class %.64s) of model '%s' is "
                        "not reachable from its input '%s'; the chain ends at '%s' (class "
                        "%.64s)", o->name, o->cls, gr->model, i->name, l->name, l->cls);
    for (int k = 0; k < gr->n; k++)
        if (!gr->g[k].seen)
            return dcv_errf(w->err, DCV_EUNSUPP, "layer '%s' (class %.64s) is not on the path "
                            "from input '%s' to output '%s' of model '%s' (a second input, a "
                            "cycle or a disconnected layer); deconvd serves chains only",
                            gr->g[k].e.name, gr->g[k].e.cls, i->name, o->name, gr->model);
    return 0;
}

static int build_graph(struct walk *w, struct graph *gr, const struct dcv_json *layers)
{
    int i = 0, rc;
    for (const struct dcv_json *j = dcv_json_first(layers); j; j = dcv_json_next(j), i++) {
        gr->g[i].src = gr->g[i].next = -1;
        if ((rc = read_entry(w, j, gr->model, i, &gr->g[i].e))) return rc;
        for (int k = 0; k < i; k++)
            if (!strcmp(gr->g[k].e.name, gr->g[i].e.name))
                return dcv_errf(w->err, DCV_EINVAL, "model '%s' has two layers named '%s' "
                                "(classes %.64s and %.64s)", gr->model, gr->g[i].e.name,
                                gr->g[k].e.cls, gr->g[i].e.cls);
    }
    for (i = 0; i < gr->n; i++)
        if (!is_input_class(gr->g[i].e.cls) && (rc = source(w, gr, i))) return rc;
    return link(w, gr);
}

static int walk_functional(struct walk *w, const struct entry *m, int depth)
{
    const struct dcv_json *layers = dcv_json_get(m->cfg, "layers");
    size_t n = dcv_json_size(layers);
    if (!is_array(layers) || n == 0)
        return dcv_errf(w->err, DCV_EINVAL, "Functional '%s' has no \"layers\" list", m->name);
    if (n > DCV_MODELFORM_MAX_LAYERS + 1)
        return dcv_errf(w->err, DCV_ETOOBIG, "Functional '%s' has %zu layers; at most %d",
                        m->name, n, DCV_MODELFORM_MAX_LAYERS);
    struct graph gr = { calloc(n, sizeof *gr.g), (int)n, m->name };
    struct kname kn = { 0 };
    int rc, in, out;
    if (!gr.g) return dcv_errf(w->err, DCV_ENOMEM, "out of memory");
    if ((rc = build_graph(w, &gr, layers)) ||
        (rc = endpoint(w, &gr, m->cfg, "input_layers", &in)) ||
        (rc = endpoint(w, &gr, m->cfg, "output_layers", &out)))
        goto out;
    if (!is_input_class(gr.g[in].e.cls)) {
        rc = dcv_errf(w->err, DCV_EINVAL, "the input of model '%s' is layer '%s' (class "
                      "%.64s), not an InputLayer", m->name, gr.g[in].e.name, gr.g[in].e.cls);
        goto out;
    }
    if ((rc = check_walk(w, &gr, in, out)) || (rc = input_layer(w, &gr.g[in].e))) goto out;
    if ((rc = kname_init(w, &kn, n))) goto out;
    for (int c = gr.g[in].next; c >= 0 && !rc; c = gr.g[c].next)
        rc = visit(w, &gr.g[c].e, depth, &kn);
out:
    free(kn.used);
    free(gr.g);
    return rc;
}

static int walk_model(struct walk *w, const struct entry *m, int depth)
{
    if (depth > DCV_MODELFORM_MAX_DEPTH)
        return dcv_errf(w->err, DCV_ETOOBIG, "model '%s' (class %.64s) is nested %d levels "
                        "deep; at most %d", m->name, m->cls, depth, DCV_MODELFORM_MAX_DEPTH);
    note_markers(w, m->json);
    return strcmp(m->cls, "Sequential") ? walk_functional(w, m, depth)
                                        : walk_sequential(w, m, depth);
}

/* Without an InputLayer: a Sequential's build_input_shape, the model's
 * build_config (Keras 3), or the first layer's batch_input_shape
 * (tf.keras 2). */
static int fallback_signature(struct walk *w, const struct entry *m,
                              const struct dcv_json *holder)
{
    const struct dcv_json *v;
    if (is_object(m->cfg) && (v = dcv_json_get(m->cfg, "build_input_shape")) &&
        dcv_json_type(v) != DCV_JSON_NULL)
        return read_signature(w, v, "build_input_shape", m->name);
    v = dcv_json_get(dcv_json_get(holder, "build_config"), "input_shape");
    if (v && dcv_json_type(v) != DCV_JSON_NULL)
        return read_signature(w, v, "build_config.input_shape", m->name);
    const struct dcv_layer_spec *s = &w->f->layers[0];
    v = dcv_json_get(s->config, "batch_input_shape");
    if (v && dcv_json_type(v) != DCV_JSON_NULL)
        return read_signature(w, v, "batch_input_shape", s->name);
    return 0;
}

/* keras_version decides when the document has one ("3.15.1", "2.15.0");
 * otherwise Keras 3's markers. */
static enum dcv_keras which_keras(const struct walk *w, const struct dcv_json *doc,
                                  const struct dcv_json *holder)
{
    const char *v = dcv_json_string(dcv_json_get(doc, "keras_version"));
    if (!v) v = dcv_json_string(dcv_json_get(holder, "keras_version"));
    if (v) return v[0] == '3' ? DCV_KERAS_3 : DCV_KERAS_2;
    return w->dtype_policy || w->module_keys ? DCV_KERAS_3 : DCV_KERAS_2;
}

int dcv_modelform_parse(const struct dcv_json *doc, struct dcv_modelform *out, char *err)
{
    struct entry m;
    const struct dcv_json *holder;
    struct walk w = { .f = out, .err = err };
    memset(out, 0, sizeof *out);
    if (!locate(doc, &m, &holder, 0))
        return dcv_errf(err, DCV_EINVAL, "not a Sequential, Functional or Model config (class_name"
                        " \"%.64s\")", dcv_json_string(dcv_json_get(doc, "class_name")) ?
                        dcv_json_string(dcv_json_get(doc, "class_name")) : "none");
    m.name = dcv_json_string(dcv_json_get(m.cfg, "name"));
    if (!m.name || !*m.name) m.name = "model";
    snprintf(out->class_name, sizeof out->class_name, "%s",
             strcmp(m.cls, "Sequential") ? "Functional" : "Sequential");
    snprintf(out->name, sizeof out->name, "%s", m.name);
    snprintf(out->input_name, sizeof out->input_name, "input");
    note_markers(&w, holder);
    int rc = walk_model(&w, &m, 0);
    if (!rc && out->n == 0)
        rc = dcv_errf(err, DCV_EINVAL, "model '%s' has no layers besides its input", m.name);
    if (!rc && out->in_ndim == 0) rc = fallback_signature(&w, &m, holder);
    if (rc) {
        dcv_modelform_release(out);
        return rc;
    }
    out->keras = which_keras(&w, doc, holder);
    return 0;
}

void dcv_modelform_release(struct dcv_modelform *f)
{
    if (!f) return;
    free(f->layers);
    memset(f, 0, sizeof *f);
}
