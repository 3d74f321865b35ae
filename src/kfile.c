/* kfile.c — Keras's own files (.keras, legacy .h5, .weights.h5) as a
 * config text and float32 arrays keyed by layer name and position.
 *
 * The file is read whole into memory (bounded), then: a .keras is opened
 * with kzip and its metadata.json, config.json and model.weights.h5 members
 * read under the limits; a .h5 is opened with kh5 and its root attributes
 * give the version, backend and config. The config is flattened with
 * modelform, whose specs carry where Keras 3 put each layer's weights
 * (layers/<snake_case_class>[_N]/vars/<i>, by class and position) and the
 * nested models around it; the legacy layout is mapped through
 * model_weights@layer_names and each group's weight_names (tf.keras 2's
 * ":0" names and Keras 3's paths). A submodel narrows both to one nested
 * model. Runs in whatever process calls it (meant for the isolated child);
 * owns everything it returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/kfile.h"
#include "deconvd/kh5.h"
#include "deconvd/kzip.h"
#include "deconvd/modelform.h"
#include "deconvd/utf8.h"

#define DEFAULT_FILE_BYTES ((size_t)4 << 30)
#define DEFAULT_ATTR_BYTES ((size_t)16 << 20)
#define METADATA_BYTES ((size_t)1 << 20)
#define DEFAULT_WEIGHT_ELEMS ((size_t)1 << 28)   /* as chain.h's default */
#define MAX_VARS 64            /* weights of one layer */
#define MAX_CHUNKS 1024        /* tf.keras 2's attribute chunks name0, name1... */

/* One read in progress. */
struct rd {
    const struct dcv_kfile_limits *lim;
    struct dcv_kfile *out;
    size_t cap;                 /* arrays allocated */
    size_t total;               /* values read so far */
    struct dcv_kh5 *h5;
    const struct dcv_modelform *form;
    const char *scope;          /* the submodel's scope; "" = the whole model */
    char *err;
};

static size_t lim_or(size_t v, size_t dflt)
{
    return v ? v : dflt;
}

static int read_file(const char *path, size_t max, char **buf, size_t *len, char *err)
{
    struct stat st;
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    *buf = NULL;
    if (fd < 0)
        return dcv_errf(err, errno == ENOENT ? DCV_ENOENT : DCV_EIO, "cannot open '%.200s': %s",
                        path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = dcv_errf(err, DCV_EIO, "'%.200s' is not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        rc = dcv_errf(err, DCV_ETOOBIG, "'%.200s' has %lld bytes; at most %zu", path,
                      (long long)st.st_size, max);
        goto out;
    }
    *len = (size_t)st.st_size;
    if (!(*buf = malloc(*len + 1))) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory for '%.200s' (%zu bytes)", path, *len);
        goto out;
    }
    for (size_t got = 0; got < *len;) {
        ssize_t r = read(fd, *buf + got, *len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = dcv_errf(err, DCV_EIO, "reading '%.200s': %s", path,
                          r ? strerror(errno) : "file shrank");
            goto out;
        }
        got += (size_t)r;
    }
out:
    close(fd);
    if (rc) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

/* ---- arrays ------------------------------------------------------------ */

static int add_array(struct rd *r, const char *layer, int index, const char *name,
                     const char *dataset)
{
    struct dcv_kfile *f = r->out;
    size_t max = r->lim->max_weight_elems - r->total;
    struct dcv_kh5_array a;
    int rc;
    if (f->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        struct dcv_kfile_array *p = realloc(f->arrays, cap * sizeof *p);
        if (!p) return dcv_errf(r->err, DCV_ENOMEM, "out of memory");
        f->arrays = p;
        r->cap = cap;
    }
    if ((rc = dcv_kh5_read(r->h5, dataset, max, &a, r->err))) {
        char why[DCV_ERRLEN];
        if (rc == DCV_ETOOBIG && r->err) {
            snprintf(why, sizeof why, "%s", r->err);
            dcv_errf(r->err, rc, "weights of layer '%.128s' exceed max_weight_elems (%zu values "
                     "in all): %.300s", layer, r->lim->max_weight_elems, why);
        }
        return rc;
    }
    struct dcv_kfile_array *o = &f->arrays[f->n++];
    memset(o, 0, sizeof *o);
    snprintf(o->layer, sizeof o->layer, "%s", layer);
    snprintf(o->name, sizeof o->name, "%s", name);
    o->index = index;
    o->ndim = a.ndim;
    memcpy(o->shape, a.shape, sizeof o->shape);
    o->data = a.data;
    size_t n = 1;
    for (int i = 0; i < a.ndim; i++) n *= (size_t)a.shape[i];
    r->total += n;
    return 0;
}

/* The spec is part of what was asked for: the whole model, or inside the
 * submodel's scope. */
static bool selected(const struct rd *r, const struct dcv_layer_spec *s)
{
    size_t n = strlen(r->scope);
    return !n || (!strncmp(s->scope, r->scope, n) && (s->scope[n] == 0 || s->scope[n] == '/'));
}

/* Keras 3: layers/<path>/vars/0, 1, ... for every layer of the chain. */
static int keras3_weights(struct rd *r)
{
    char path[700];
    int rc;
    for (int i = 0; i < r->form->n; i++) {
        const struct dcv_layer_spec *s = &r->form->layers[i];
        if (!selected(r, s)) continue;
        for (int v = 0;; v++) {
            snprintf(path, sizeof path, "%s/vars/%d", s->kpath, v);
            if ((rc = dcv_kh5_exists(r->h5, path, r->err)) < 0) return rc;
            if (!rc) break;
            if (v >= MAX_VARS)
                return dcv_errf(r->err, DCV_ETOOBIG, "layer '%s' (class %.64s) has more than %d "
                                "weights in '%s'", s->name, s->class_name, MAX_VARS, s->kpath);
            if ((rc = add_array(r, s->name, v, "", path))) return rc;
        }
    }
    return 0;
}

/* ---- the legacy layout ----------------------------------------------- */

/* A list attribute, or tf.keras 2's chunks of it (name0, name1, ...) when
 * it was too big for one object header. */
static int names_attr(struct rd *r, const char *path, const char *attr, char ***list,
                      size_t *n)
{
    int rc = dcv_kh5_attr_strings(r->h5, path, attr, list, n, r->err);
    if (rc != DCV_ENOENT) return rc;
    char chunk[80];
    for (int c = 0; c < MAX_CHUNKS; c++) {
        char **part;
        size_t k;
        snprintf(chunk, sizeof chunk, "%.64s%d", attr, c);
        int prc = dcv_kh5_attr_strings(r->h5, path, chunk, &part, &k, r->err);
        if (prc == DCV_ENOENT && c > 0) return 0;
        if (prc == DCV_ENOENT)
            return dcv_errf(r->err, DCV_ENOENT, "HDF5 group '%.200s' has no attribute %s",
                            *path ? path : "/", attr);
        if (prc) {
            dcv_kh5_strings_free(*list, *n);
            *list = NULL;
            *n = 0;
            return prc;
        }
        char **all = realloc(*list, (*n + k + 1) * sizeof *all);
        if (!all) {
            dcv_kh5_strings_free(part, k);
            return dcv_errf(r->err, DCV_ENOMEM, "out of memory");
        }
        memcpy(all + *n, part, k * sizeof *part);
        free(part);
        *list = all;
        *n += k;
    }
    return dcv_errf(r->err, DCV_ETOOBIG, "HDF5 attribute %s has more than %d chunks", attr,
                    MAX_CHUNKS);
}

static const struct dcv_layer_spec *find_spec(const struct dcv_modelform *f, const char *name,
                                              const char *top)
{
    for (int i = 0; i < f->n; i++) {
        const struct dcv_layer_spec *s = &f->layers[i];
        size_t t = top ? strlen(top) : 0;
        if (strcmp(s->name, name)) continue;
        if (!top && !s->scope[0]) return s;
        if (top && !strncmp(s->scope, top, t) && (s->scope[t] == 0 || s->scope[t] == '/'))
            return s;
    }
    return NULL;
}

static int count_arrays(const struct dcv_kfile *f, const char *layer)
{
    int k = 0;
    for (size_t i = 0; i < f->n; i++) k += !strcmp(f->arrays[i].layer, layer);
    return k;
}

/* "decoder/dense/kernel:0" -> var "kernel", owner "dense" ("" when the
 * name has a single component). */
static void split_weight_name(const char *wn, char *owner, size_t ocap, char *var, size_t vcap)
{
    const char *last = strrchr(wn, '/');
    const char *v = last ? last + 1 : wn;
    size_t vl = strcspn(v, ":");
    snprintf(var, vcap, "%.*s", (int)vl, v);
    owner[0] = 0;
    if (!last) return;
    const char *b = last;
    while (b > wn && b[-1] != '/') b--;
    snprintf(owner, ocap, "%.*s", (int)(last - b), b);
}

/* Group g of the legacy tree: a layer of the top model (its weights in
 * order), or a nested model (each weight's owner named in its path). */
static int legacy_group(struct rd *r, const char *root, const char *g)
{
    char gpath[400], dpath[800], owner[128], var[64];
    char **wn = NULL;
    size_t n = 0;
    int rc;
    snprintf(gpath, sizeof gpath, "%s%s%s", root, *root ? "/" : "", g);
    const struct dcv_layer_spec *top = find_spec(r->form, g, NULL);
    if ((rc = names_attr(r, gpath, "weight_names", &wn, &n))) return rc;
    for (size_t k = 0; k < n && !rc; k++) {
        const struct dcv_layer_spec *s = top;
        snprintf(dpath, sizeof dpath, "%s/%s", gpath, wn[k]);
        split_weight_name(wn[k], owner, sizeof owner, var, sizeof var);
        if (!s && owner[0]) s = find_spec(r->form, owner, g);
        if (!s && !*r->scope)
            rc = dcv_errf(r->err, DCV_EINVAL, "weight '%.128s' of group '%.128s' belongs to no "
                          "layer of the model's config", wn[k], g);
        else if (s && selected(r, s))
            rc = add_array(r, s->name, top ? (int)k : count_arrays(r->out, s->name), var, dpath);
    }
    dcv_kh5_strings_free(wn, n);
    return rc;
}

/* tf.keras 2 / Keras 3 legacy: root@layer_names, then each group. */
static int legacy_weights(struct rd *r, const char *root)
{
    char **names = NULL;
    size_t n = 0;
    int rc = names_attr(r, root, "layer_names", &names, &n);
    for (size_t i = 0; i < n && !rc; i++) rc = legacy_group(r, root, names[i]);
    dcv_kh5_strings_free(names, n);
    return rc;
}

/* Which layout an HDF5 weights file uses. */
static int any_weights(struct rd *r)
{
    char **names;
    size_t n;
    int rc = names_attr(r, "", "layer_names", &names, &n);
    if (rc == 0) {
        dcv_kh5_strings_free(names, n);
        return legacy_weights(r, "");
    }
    if (rc != DCV_ENOENT) return rc;
    if ((rc = dcv_kh5_exists(r->h5, "model_weights", r->err)) < 0) return rc;
    if (rc) return legacy_weights(r, "model_weights");
    if ((rc = dcv_kh5_exists(r->h5, "layers", r->err)) < 0) return rc;
    if (rc) return keras3_weights(r);
    return dcv_errf(r->err, DCV_EPARSE, "HDF5 file holds no Keras weights (no model_weights "
                    "group, layer_names attribute or layers group)");
}

/* ---- metadata and config ------------------------------------------- */

/* One string attribute into dst; absent: "" and 0. */
static int short_attr(struct rd *r, const char *path, const char *attr, char *dst, size_t cap)
{
    char **v;
    size_t n;
    int rc = dcv_kh5_attr_strings(r->h5, path, attr, &v, &n, r->err);
    dst[0] = 0;
    if (rc == DCV_ENOENT) return 0;
    if (rc) return rc;
    if (n == 1 && strlen(v[0]) < cap) snprintf(dst, cap, "%s", v[0]);
    else rc = dcv_errf(r->err, DCV_EINVAL, "HDF5 attribute %s must be one string shorter than "
                       "%zu bytes", attr, cap);
    dcv_kh5_strings_free(v, n);
    return rc;
}

static int h5_meta(struct rd *r, bool need_config)
{
    char **v = NULL;
    size_t n = 0;
    int rc;
    if ((rc = short_attr(r, "", "keras_version", r->out->keras_version,
                         sizeof r->out->keras_version)) ||
        (rc = short_attr(r, "", "backend", r->out->backend, sizeof r->out->backend)))
        return rc;
    if (!need_config) return 0;
    rc = dcv_kh5_attr_strings(r->h5, "", "model_config", &v, &n, r->err);
    if (rc == DCV_ENOENT)
        return dcv_errf(r->err, DCV_EPARSE, "the .h5 file has no model_config attribute (saved "
                        "with save_weights? name it from a JSON model file instead)");
    if (rc) return rc;
    if (n != 1) rc = dcv_errf(r->err, DCV_EINVAL, "model_config holds %zu strings, not 1", n);
    else r->out->config = v[0], v[0] = NULL;
    dcv_kh5_strings_free(v, n);
    return rc;
}

/* metadata.json's keras_version (the file's only version record). */
static int keras_meta(struct rd *r, struct dcv_kzip *z)
{
    char *text = NULL;
    size_t len = 0;
    struct dcv_json *doc = NULL;
    struct dcv_json_bound b = { .max_nodes = 4096, .limit = "metadata.json's node bound" };
    int rc = dcv_kzip_read(z, "metadata.json", METADATA_BYTES, &text, &len, r->err);
    if (rc == DCV_ENOENT) return 0;
    char sub[DCV_ERRLEN];
    if (!rc && (rc = dcv_utf8_check(text, len, sub)))
        dcv_errf(r->err, rc, "metadata.json is not UTF-8: %s", sub);
    if (rc || (rc = dcv_json_parse_bounded(text, len, &b, &doc, r->err))) goto out;
    const char *v = dcv_json_string(dcv_json_get(doc, "keras_version"));
    if (v && strlen(v) < sizeof r->out->keras_version)
        snprintf(r->out->keras_version, sizeof r->out->keras_version, "%s", v);
    else if (v)
        rc = dcv_errf(r->err, DCV_EINVAL, "metadata.json: keras_version is longer than %zu "
                      "bytes", sizeof r->out->keras_version - 1);
out:
    dcv_json_free(doc);
    free(text);
    return rc;
}

/* A .keras: metadata, config text and the weights file image. */
static int open_keras(struct rd *r, const char *bytes, size_t len)
{
    struct dcv_kzip_limits zl = { r->lim->max_members, r->lim->max_member_bytes };
    struct dcv_kh5_limits hl = { r->lim->max_attr_bytes, r->lim->max_link_depth };
    struct dcv_kzip *z = NULL;
    char *w = NULL;
    size_t wlen = 0, clen = 0;
    int rc = dcv_kzip_open(bytes, len, &zl, &z, r->err);
    if (rc || (rc = keras_meta(r, z)) ||
        (rc = dcv_kzip_read(z, "config.json", lim_or(r->lim->max_attr_bytes, DEFAULT_ATTR_BYTES),
                            &r->out->config, &clen, r->err)) ||
        (rc = dcv_kzip_read(z, "model.weights.h5", SIZE_MAX, &w, &wlen, r->err)))
        goto out;
    rc = dcv_kh5_open(w, wlen, &hl, &r->h5, r->err);
out:
    free(w);
    dcv_kzip_close(z);
    return rc;
}

/* The config text must be UTF-8 JSON. */
static int parse_config(struct rd *r, struct dcv_json **doc)
{
    const char *t = r->out->config;
    size_t len = strlen(t);
    char sub[DCV_ERRLEN];
    struct dcv_json_bound b = { .max_nodes = len + 1, .limit = "the config's length" };
    int rc = dcv_utf8_check(t, len, sub);
    const char *at = rc ? strstr(sub, "(byte") : NULL;
    if (rc) return dcv_errf(r->err, DCV_EPARSE, "the model's config is not UTF-8 %s", at ? at : "");
    if ((rc = dcv_json_parse_bounded(t, len, &b, doc, sub)))
        return dcv_errf(r->err, rc, "the model's config is not JSON: %s", sub);
    return 0;
}

static bool is_model_class(const char *c)
{
    return c && (!strcmp(c, "Sequential") || !strcmp(c, "Functional") || !strcmp(c, "Model"));
}

/* The layer entry of a nested model named name, anywhere in the document. */
static const struct dcv_json *find_model(const struct dcv_json *j, const char *name, int depth)
{
    if (depth > DCV_MODELFORM_MAX_DEPTH * 4) return NULL;
    if (dcv_json_type(j) == DCV_JSON_OBJECT &&
        is_model_class(dcv_json_string(dcv_json_get(j, "class_name")))) {
        const char *n = dcv_json_string(dcv_json_get(j, "name"));
        if (!n) n = dcv_json_string(dcv_json_get(dcv_json_get(j, "config"), "name"));
        if (n && !strcmp(n, name)) return j;
    }
    for (const struct dcv_json *c = dcv_json_first(j); c; c = dcv_json_next(c)) {
        const struct dcv_json *m = find_model(c, name, depth + 1);
        if (m) return m;
    }
    return NULL;
}

/* scope: the scope prefix ending at component name, from the first layer
 * inside it; "" when no layer is. */
static void submodel_scope(const struct dcv_modelform *f, const char *name, char *scope,
                           size_t cap)
{
    size_t nl = strlen(name);
    scope[0] = 0;
    for (int i = 0; i < f->n; i++) {
        const char *s = f->layers[i].scope;
        for (const char *c = s; *c; c = strchr(c, '/') ? strchr(c, '/') + 1 : c + strlen(c)) {
            if (!strncmp(c, name, nl) && (c[nl] == 0 || c[nl] == '/')) {
                snprintf(scope, cap, "%.*s", (int)(c - s + (ptrdiff_t)nl), s);
                return;
            }
        }
    }
}

/* Narrows the read to the nested model `name`: its scope, and (when the
 * file carries the config) its entry as the config text. */
static int select_submodel(struct rd *r, const struct dcv_json *doc, const char *name,
                           char *scope, size_t cap)
{
    scope[0] = 0;
    if (!name || !strcmp(name, r->form->name)) return 0;
    const struct dcv_json *m = find_model(doc, name, 0);
    submodel_scope(r->form, name, scope, cap);
    if (!m || !scope[0])
        return dcv_errf(r->err, DCV_ENOENT, "submodel '%.128s': model '%s' has no nested model "
                        "of that name with layers", name, r->form->name);
    if (!r->out->config) return 0;
    char *text = dcv_json_print(m);
    if (!text) return dcv_errf(r->err, DCV_ENOMEM, "out of memory");
    free(r->out->config);
    r->out->config = text;
    return 0;
}

static int read_kind(struct rd *r, enum dcv_kfile_kind kind, const char *bytes, size_t len)
{
    struct dcv_kh5_limits hl = { r->lim->max_attr_bytes, r->lim->max_link_depth };
    int rc;
    switch (kind) {
    case DCV_KFILE_KERAS:
        return open_keras(r, bytes, len);
    case DCV_KFILE_H5:
    case DCV_KFILE_WEIGHTS_H5:
        if ((rc = dcv_kh5_open(bytes, len, &hl, &r->h5, r->err))) return rc;
        return h5_meta(r, kind == DCV_KFILE_H5);
    }
    return dcv_errf(r->err, DCV_EINVAL, "unknown Keras file kind %d", (int)kind);
}

int dcv_kfile_read_local(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                         const struct dcv_json *json_config,
                         const struct dcv_kfile_limits *lim, struct dcv_kfile *out, char *err)
{
    struct dcv_kfile_limits l = lim ? *lim : (struct dcv_kfile_limits){ 0 };
    struct rd r = { .lim = &l, .out = out, .scope = "", .err = err };
    struct dcv_modelform form = { 0 };
    struct dcv_json *doc = NULL;
    char *bytes = NULL, scope[512];
    size_t len = 0;
    int rc;
    memset(out, 0, sizeof *out);
    if (!l.max_weight_elems) l.max_weight_elems = DEFAULT_WEIGHT_ELEMS;
    if (kind == DCV_KFILE_WEIGHTS_H5 && !json_config)
        return dcv_errf(err, DCV_EINVAL, "'%.200s': a weights-only file needs the model's "
                        "config", path);
    if ((rc = read_file(path, lim_or(l.mem_bytes, DEFAULT_FILE_BYTES), &bytes, &len, err)) ||
        (rc = read_kind(&r, kind, bytes, len)))
        goto out;
    free(bytes);    /* libhdf5 holds its own copy of the image from here on */
    bytes = NULL;
    if (out->config && (rc = parse_config(&r, &doc))) goto out;
    if ((rc = dcv_modelform_parse(json_config ? json_config : doc, &form, err))) goto out;
    r.form = &form;
    if ((rc = select_submodel(&r, json_config ? json_config : doc, submodel, scope,
                              sizeof scope)))
        goto out;
    r.scope = scope;
    rc = kind == DCV_KFILE_KERAS ? keras3_weights(&r) : any_weights(&r);
out:
    dcv_modelform_release(&form);
    dcv_json_free(doc);
    dcv_kh5_close(r.h5);
    free(bytes);
    if (rc) dcv_kfile_release(out);
    return rc;
}

void dcv_kfile_release(struct dcv_kfile *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->arrays[i].data);
    free(f->arrays);
    free(f->config);
    memset(f, 0, sizeof *f);
}
