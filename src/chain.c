/* chain.c — Keras model configs compiled into chains of layer steps.
 *
 * Load (one thread): registry lookup and parse of every layer, the input
 * signature pushed through each shape(), weights per layer from the model
 * file (weights.c loads and confines them; absent ones with a default are
 * left to the layer), bind, a fusion pass (a BatchNormalization or
 * activation that directly follows a convolution or Dense, possibly past
 * shape-preserving identities such as Dropout, is absorbed into it and
 * skipped at run time, but still listed), then prepare. Runs (any worker,
 * concurrently): shapes of every step from the request's input, then each
 * live step from one buffer to the other of the calling thread's arena,
 * in place where the step allows, the last one straight into the caller's
 * output; identity steps cost nothing. Step shapes live on the stack
 * (DCV_CHAIN_MAX_LAYERS), so a run allocates nothing once its arena fits.
 * The arena is a pthread key with a destructor, kept between runs and
 * freed after one that needed more than 16 MiB, as the engine does with
 * its execution buffers. The chain owns its steps' states; the arena
 * belongs to its thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/chain.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/kfile.h"
#include "deconvd/weights.h"

#define DEFAULT_MAX_WEIGHTS ((size_t)1 << 28)
#define ARENA_KEEP ((size_t)16 << 20)

struct step {
    const struct dcv_layer_class *cls;
    void *state;
    char name[128];
    int folded_into;                /* index of the absorbing step, or -1 */
    struct dcv_shape in_sig, out_sig;
    uint64_t params;
    struct dcv_json *sources;       /* {"kernel": "k.npy" | "inline" | "default"} or NULL */
};

struct dcv_chain {
    int n;
    struct step *steps;
    struct dcv_shape in_sig, out_sig;
};

static bool live(const struct step *s)
{
    return s->folded_into < 0 && !s->cls->identity;
}

/* ---- the per-thread arena ------------------------------------------------------- */

struct arena {
    float *buf[2];
    size_t cap;                     /* values in each */
};

static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_free(void *p)
{
    struct arena *a = p;
    if (!a) return;
    free(a->buf[0]);
    free(a->buf[1]);
    free(a);
}

static void arena_key_make(void)
{
    pthread_key_create(&arena_key, arena_free);
}

static struct arena *arena_get(size_t values, char *err)
{
    pthread_once(&arena_once, arena_key_make);
    struct arena *a = pthread_getspecific(arena_key);
    if (!a) {
        if (!(a = calloc(1, sizeof *a)) || pthread_setspecific(arena_key, a)) {
            free(a);
            dcv_errf(err, DCV_ENOMEM, "out of memory for the chain's buffers");
            return NULL;
        }
    }
    if (a->cap < values) {
        free(a->buf[0]);
        free(a->buf[1]);
        a->buf[0] = malloc(sizeof(float) * values);
        a->buf[1] = malloc(sizeof(float) * values);
        a->cap = a->buf[0] && a->buf[1] ? values : 0;
        if (!a->cap) {
            free(a->buf[0]);
            free(a->buf[1]);
            a->buf[0] = a->buf[1] = NULL;
            dcv_errf(err, DCV_ENOMEM, "out of memory for the chain's buffers (2 x %zu values)",
                     values);
            return NULL;
        }
    }
    return a;
}

static void arena_trim(struct arena *a)
{
    if (a->cap * sizeof(float) * 2 <= ARENA_KEEP) return;
    free(a->buf[0]);
    free(a->buf[1]);
    a->buf[0] = a->buf[1] = NULL;
    a->cap = 0;
}

size_t dcv_chain_thread_bytes(void)
{
    pthread_once(&arena_once, arena_key_make);
    const struct arena *a = pthread_getspecific(arena_key);
    return a ? a->cap * sizeof(float) * 2 : 0;
}

/* ---- shapes --------------------------------------------------------------------- */

static int64_t shape_count(const struct dcv_shape *s)
{
    int64_t d[DCV_MAX_DIMS];
    memcpy(d, s->d, sizeof(int64_t) * (size_t)s->ndim);
    return dcv_shape_product(d, s->ndim);
}

/* One step's output shape, its message prefixed with the layer. */
static int step_shape(const struct step *s, const struct dcv_shape *in, struct dcv_shape *out,
                      char *err)
{
    char sub[DCV_ERRLEN];
    /* shape() may learn channel counts at load; by run time they are known,
     * so concurrent calls only read the state */
    int rc = s->cls->shape(s->state, in, out, sub);
    if (rc) return dcv_errf(err, rc, "layer '%s' (%s): %s", s->name, s->cls->name, sub);
    return 0;
}

/* The InputLayer's declared dims bind every input. */
static int check_input(const struct dcv_chain *c, const struct dcv_shape *in, char *err)
{
    if (in->ndim != c->in_sig.ndim)
        return dcv_errf(err, DCV_ESHAPE, "the model takes inputs of rank %d, got rank %d",
                        c->in_sig.ndim, in->ndim);
    for (int i = 1; i < in->ndim; i++)
        if (c->in_sig.d[i] > 0 && in->d[i] > 0 && in->d[i] != c->in_sig.d[i])
            return dcv_errf(err, DCV_ESHAPE, "input dim %d must be %lld (the model's input "
                            "shape), got %lld", i, (long long)c->in_sig.d[i],
                            (long long)in->d[i]);
    return 0;
}

int dcv_chain_shapes(const struct dcv_chain *c, const struct dcv_shape *in,
                     struct dcv_shape *shapes, char *err)
{
    const struct dcv_shape *cur = in ? in : &c->in_sig;
    int rc = check_input(c, cur, err);
    if (rc) return rc;
    for (int i = 0; i < c->n; i++) {
        if ((rc = step_shape(&c->steps[i], cur, &shapes[i], err))) return rc;
        cur = &shapes[i];
    }
    return 0;
}

int dcv_chain_output_shape(const struct dcv_chain *c, const struct dcv_shape *in,
                           struct dcv_shape *out, char *err)
{
    struct dcv_shape cur = *in, next;
    int rc = check_input(c, in, err);
    if (rc) return rc;
    for (int i = 0; i < c->n; i++) {
        if ((rc = step_shape(&c->steps[i], &cur, &next, err))) return rc;
        cur = next;
    }
    *out = cur;
    return 0;
}

void dcv_chain_signature(const struct dcv_chain *c, struct dcv_shape *in, struct dcv_shape *out)
{
    *in = c->in_sig;
    *out = c->out_sig;
}

/* ---- loading -------------------------------------------------------------------- */

static int add_source(struct step *s, const char *weight, const char *kind, char *err)
{
    if ((!s->sources && !(s->sources = dcv_json_new_object())) ||
        dcv_json_add(s->sources, weight, dcv_json_new_string(kind)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    return 0;
}

/* The names a layer's weights may be given under, for messages. */
static void want_list(const struct dcv_weight_want *w, int n, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", w[i].name);
}

/* Checks that src (an object or a list) names only weights the layer has. */
static int check_extra(const struct step *s, const struct dcv_json *src,
                       const struct dcv_weight_want *w, int n, char *err)
{
    char names[256];
    want_list(w, n, names, sizeof names);
    if (dcv_json_type(src) == DCV_JSON_ARRAY) {
        if ((int)dcv_json_size(src) > n)
            return dcv_errf(err, DCV_EINVAL, "layer '%s' (%s) takes %d weights (%s), %zu given",
                            s->name, s->cls->name, n, names, dcv_json_size(src));
        return 0;
    }
    if (dcv_json_type(src) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "weights of layer '%s' must be an object or a list, "
                        "got %s", s->name, dcv_json_type_name(src));
    for (const struct dcv_json *m = dcv_json_first(src); m; m = dcv_json_next(m)) {
        bool known = false;
        for (int i = 0; i < n && !known; i++) known = !strcmp(dcv_json_key(m), w[i].name);
        if (!known)
            return dcv_errf(err, DCV_EINVAL, "layer '%s' (%s) has no weight '%.64s' (it has: "
                            "%s)", s->name, s->cls->name, dcv_json_key(m), names);
    }
    return 0;
}

struct load {
    const struct dcv_chain_opts *o;
    size_t max_elems, total;
};

/* Loads weight i of step s from src into *data (NULL: absent with a default). */
static int load_one(struct load *ld, struct step *s, const struct dcv_weight_want *w,
                    const struct dcv_json *src, float **data, char *err)
{
    char what[200], shp[128];
    const char *kind = "default";
    int64_t count = shape_count(&w->shape);
    int rc;
    *data = NULL;
    snprintf(what, sizeof what, "layer '%s' weight '%s'", s->name, w->name);
    if (!src || dcv_json_type(src) == DCV_JSON_NULL) {
        dcv_weights_shape_str(w->shape.d, w->shape.ndim, shp, sizeof shp);
        if (!w->has_default)
            return dcv_errf(err, DCV_EINVAL, "%s (%s) is missing: give it in \"weights\": "
                            "{\"%s\": {\"%s\": ...}}", what, shp, s->name, w->name);
    } else {
        if (count < 0 || (size_t)count > ld->max_elems - ld->total)
            return dcv_errf(err, DCV_ETOOBIG, "%s: %lld values would take the model past the "
                            "limit of %zu weights", what, (long long)count, ld->max_elems);
        if ((rc = dcv_weights_load(src, ld->o->models_dir, w->shape.d, w->shape.ndim,
                                   ld->max_elems, what, data, &kind, ld->o->fingerprint, err)))
            return rc;
        if ((rc = dcv_weights_check_finite(*data, (size_t)count, what, kind, err)) ||
            (dcv_json_string(src) && ld->o->note_file &&
             (rc = ld->o->note_file(ld->o->note_arg, dcv_json_string(src), err)))) {
            free(*data);
            *data = NULL;
            return rc;
        }
        ld->total += (size_t)count;
    }
    s->params += (uint64_t)count;
    return add_source(s, w->name, kind, err);
}

/* ---- weights from a Keras file (kfile.h) ---------------------------------------- */

static const struct dcv_kfile_array *kfile_find(const struct dcv_kfile *k, const char *layer,
                                                int index)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->arrays[i].index == index && !strcmp(k->arrays[i].layer, layer))
            return &k->arrays[i];
    return NULL;
}

/* An array of the file at a position the layer does not have, or -1. */
static int kfile_extra(const struct dcv_kfile *k, const char *layer, int n)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->arrays[i].index >= n && !strcmp(k->arrays[i].layer, layer))
            return k->arrays[i].index;
    return -1;
}

/* Weight w (position i) of step s from the file: *data borrows its array,
 * NULL when the file lacks it and the layer has a default. */
static int kfile_one(struct load *ld, struct step *s, const struct dcv_weight_want *w, int i,
                     const float **data, char *err)
{
    const struct dcv_kfile_array *a = kfile_find(ld->o->kfile, s->name, i);
    const char *file = ld->o->kfile_name ? ld->o->kfile_name : "the Keras file";
    char what[200], want[128], got[128];
    int64_t count = shape_count(&w->shape);
    int rc;
    *data = NULL;
    snprintf(what, sizeof what, "layer '%s' weight '%s'", s->name, w->name);
    dcv_weights_shape_str(w->shape.d, w->shape.ndim, want, sizeof want);
    if (!a)      /* Keras saves every variable of a layer: a gap is a damaged file */
        return dcv_errf(err, DCV_EINVAL, "%s %s is missing from %s (no array %d for the "
                        "layer)", what, want, file, i);
    dcv_weights_shape_str(a->shape, a->ndim, got, sizeof got);
    if (a->ndim != w->shape.ndim ||
        memcmp(a->shape, w->shape.d, sizeof(int64_t) * (size_t)a->ndim))
        return dcv_errf(err, DCV_ESHAPE, "%s: %s has shape %s, the layer needs %s", what, file,
                        got, want);
    if (count < 0 || (size_t)count > ld->max_elems - ld->total)
        return dcv_errf(err, DCV_ETOOBIG, "%s: %lld values would take the model past the "
                        "limit of %zu weights", what, (long long)count, ld->max_elems);
    if ((rc = dcv_weights_check_finite(a->data, (size_t)count, what, file, err))) return rc;
    ld->total += (size_t)count;
    s->params += (uint64_t)count;
    *data = a->data;
    return add_source(s, w->name, file, err);
}

static int kfile_weights(struct load *ld, struct step *s, char *err)
{
    struct dcv_weight_want w[DCV_LAYER_MAX_WEIGHTS];
    float *arrays[DCV_LAYER_MAX_WEIGHTS] = { 0 };
    char sub[DCV_ERRLEN], names[256];
    int n = 0, extra, rc = 0;
    if (s->cls->weights && (rc = s->cls->weights(s->state, &s->in_sig, w, &n, sub)))
        return dcv_errf(err, rc, "layer '%s' (%s): %s", s->name, s->cls->name, sub);
    want_list(w, n, names, sizeof names);
    if ((extra = kfile_extra(ld->o->kfile, s->name, n)) >= 0)
        return dcv_errf(err, DCV_EINVAL, "layer '%s' (%s) takes %d weights (%s), the file has "
                        "one at position %d", s->name, s->cls->name, n, n ? names : "none",
                        extra);
    for (int i = 0; i < n && !rc; i++) {
        const float *a;
        rc = kfile_one(ld, s, &w[i], i, &a, err);
        arrays[i] = (float *)a;     /* bind copies: the file's arrays stay the caller's */
    }
    if (!rc && s->cls->weights && s->cls->bind &&
        (rc = s->cls->bind(s->state, &s->in_sig, arrays, sub)))
        dcv_errf(err, rc, "layer '%s' (%s): %s", s->name, s->cls->name, sub);
    return rc;
}

static int load_weights(struct load *ld, struct step *s, const struct dcv_json *src, char *err)
{
    if (ld->o->kfile) return kfile_weights(ld, s, err);
    struct dcv_weight_want w[DCV_LAYER_MAX_WEIGHTS];
    float *arrays[DCV_LAYER_MAX_WEIGHTS] = { 0 };
    char sub[DCV_ERRLEN];
    int n = 0, rc;
    if (!s->cls->weights) {
        if (src)
            return dcv_errf(err, DCV_EINVAL, "layer '%s' (%s) has no weights, but \"weights\" "
                            "gives some", s->name, s->cls->name);
        return 0;
    }
    if ((rc = s->cls->weights(s->state, &s->in_sig, w, &n, sub)))
        return dcv_errf(err, rc, "layer '%s' (%s): %s", s->name, s->cls->name, sub);
    if (src && (rc = check_extra(s, src, w, n, err))) return rc;
    for (int i = 0; i < n && !rc; i++) {
        const struct dcv_json *ws = dcv_json_type(src) == DCV_JSON_ARRAY
                                    ? dcv_json_at(src, (size_t)i) : dcv_json_get(src, w[i].name);
        rc = load_one(ld, s, &w[i], ws, &arrays[i], err);
    }
    if (!rc && s->cls->bind && (rc = s->cls->bind(s->state, &s->in_sig, arrays, sub)))
        dcv_errf(err, rc, "layer '%s' (%s): %s", s->name, s->cls->name, sub);
    for (int i = 0; i < n; i++) free(arrays[i]);
    return rc;
}

static int find_step(const struct dcv_chain *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->steps[i].name, name)) return i;
    return -1;
}

/* Every array of the file must belong to a layer of the chain. */
static int check_kfile_layers(const struct dcv_chain *c, const struct dcv_kfile *k, char *err)
{
    for (size_t i = 0; i < k->n; i++)
        if (find_step(c, k->arrays[i].layer) < 0)
            return dcv_errf(err, DCV_EINVAL, "the file has weights for layer '%.100s', which "
                            "the model does not have", k->arrays[i].layer);
    return 0;
}

/* Every key of the weights map must name a layer of the chain. */
static int check_weight_layers(const struct dcv_chain *c, const struct dcv_json *weights,
                               char *err)
{
    if (!weights || dcv_json_type(weights) == DCV_JSON_NULL) return 0;
    if (dcv_json_type(weights) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "\"weights\" of a %s model must be an object keyed "
                        "by layer name, got %s", "chain", dcv_json_type_name(weights));
    for (const struct dcv_json *m = dcv_json_first(weights); m; m = dcv_json_next(m))
        if (find_step(c, dcv_json_key(m)) < 0)
            return dcv_errf(err, DCV_EINVAL, "\"weights\" names layer '%.100s', which the "
                            "model does not have", dcv_json_key(m));
    return 0;
}

static int parse_step(const struct dcv_layer_spec *sp, const struct dcv_layer_ctx *ctx,
                      struct step *s, char *err)
{
    char sub[DCV_ERRLEN];
    int rc;
    snprintf(s->name, sizeof s->name, "%s", sp->name);
    s->folded_into = -1;
    if (!(s->cls = dcv_layers_find(sp->class_name)))
        return dcv_errf(err, DCV_EUNSUPP, "layer '%s' (class %.64s) is not supported; "
                        "supported: %s", sp->name, sp->class_name, dcv_layers_supported());
    if ((rc = s->cls->parse(sp->config, ctx, &s->state, sub)))
        return dcv_errf(err, rc, "layer '%s' (%s): %s", s->name, s->cls->name, sub);
    return 0;
}

/* The model's input signature: the form's, or an error. */
static int input_signature(const struct dcv_modelform *f, struct dcv_shape *sig, char *err)
{
    if (f->in_ndim < 1)
        return dcv_errf(err, DCV_EINVAL, "the model's input shape is unknown: give an "
                        "InputLayer with batch_shape (or a build_config input_shape)");
    sig->ndim = f->in_ndim;
    memcpy(sig->d, f->in_shape, sizeof(int64_t) * (size_t)f->in_ndim);
    sig->d[0] = -1;                 /* any batch */
    return 0;
}

/* ---- fusion --------------------------------------------------------------------- */

static bool same_shape(const struct dcv_shape *a, const struct dcv_shape *b)
{
    return a->ndim == b->ndim && !memcmp(a->d, b->d, sizeof(int64_t) * (size_t)a->ndim);
}

/* Whether step j can be absorbed by step i: 0 folded, 1 not, < 0 error. */
static int try_fold(struct step *si, struct step *sj, char *err)
{
    char sub[DCV_ERRLEN];
    const float *scale, *shift;
    struct dcv_activation act;
    int axis, rc = 1;
    if (si->cls->fold_affine && sj->cls->as_affine &&
        sj->cls->as_affine(sj->state, &sj->in_sig, &axis, &scale, &shift))
        rc = si->cls->fold_affine(si->state, axis, scale, shift, sub);
    else if (si->cls->fold_activation && sj->cls->as_activation &&
             sj->cls->as_activation(sj->state, &act))
        rc = si->cls->fold_activation(si->state, &act, sub);
    if (rc == DCV_EUNSUPP) return 1;
    if (rc < 0) return dcv_errf(err, rc, "folding '%s' into '%s': %s", sj->name, si->name, sub);
    return rc;
}

static int fuse(struct dcv_chain *c, char *err)
{
    for (int i = 0; i < c->n; i++) {
        struct step *si = &c->steps[i];
        if (si->folded_into >= 0 || (!si->cls->fold_affine && !si->cls->fold_activation))
            continue;
        for (int j = i + 1; j < c->n; j++) {
            struct step *sj = &c->steps[j];
            if (sj->cls->identity && same_shape(&sj->in_sig, &sj->out_sig)) continue;
            int rc = try_fold(si, sj, err);
            if (rc < 0) return rc;
            if (rc) break;
            sj->folded_into = i;
        }
    }
    return 0;
}

/* ---- create / free -------------------------------------------------------------- */

static int compile(struct dcv_chain *c, const struct dcv_modelform *f,
                   const struct dcv_json *weights, const struct dcv_chain_opts *o, char *err)
{
    struct dcv_layer_ctx ctx = { f->keras, 0, o->cache_cap };
    struct load ld = { o, o->max_weight_elems ? o->max_weight_elems : DEFAULT_MAX_WEIGHTS, 0 };
    char sub[DCV_ERRLEN];
    int rc;
    ctx.max_weight_elems = ld.max_elems;
    if ((rc = input_signature(f, &c->in_sig, err))) return rc;
    for (int i = 0; i < f->n; i++, c->n++)
        if ((rc = parse_step(&f->layers[i], &ctx, &c->steps[i], err))) return rc;
    if ((rc = check_weight_layers(c, weights, err)) ||
        (o->kfile && (rc = check_kfile_layers(c, o->kfile, err))))
        return rc;
    struct dcv_shape cur = c->in_sig;
    for (int i = 0; i < c->n; i++) {
        struct step *s = &c->steps[i];
        s->in_sig = cur;
        if ((rc = step_shape(s, &cur, &s->out_sig, err)) ||
            (rc = load_weights(&ld, s, dcv_json_get(weights, s->name), err)))
            return rc;
        cur = s->out_sig;
    }
    c->out_sig = cur;
    if ((rc = fuse(c, err))) return rc;
    for (int i = 0; i < c->n; i++) {
        struct step *s = &c->steps[i];
        if (s->folded_into < 0 && s->cls->prepare &&
            (rc = s->cls->prepare(s->state, &s->in_sig, sub)))
            return dcv_errf(err, rc, "layer '%s' (%s): %s", s->name, s->cls->name, sub);
    }
    return 0;
}

int dcv_chain_create(const struct dcv_modelform *f, const struct dcv_json *weights,
                     const struct dcv_chain_opts *opts, struct dcv_chain **out, char *err)
{
    struct dcv_chain_opts none = { 0 };
    struct dcv_chain *c = calloc(1, sizeof *c);
    int rc;
    if (!c || !(c->steps = calloc((size_t)(f->n > 0 ? f->n : 1), sizeof *c->steps))) {
        free(c);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    if (f->n < 1 || f->n > DCV_CHAIN_MAX_LAYERS) {
        rc = dcv_errf(err, f->n < 1 ? DCV_EINVAL : DCV_ETOOBIG, "the model has %d layers: "
                      "1 to %d are served", f->n, DCV_CHAIN_MAX_LAYERS);
    } else {
        rc = compile(c, f, weights, opts ? opts : &none, err);
    }
    if (rc) dcv_chain_free(c);
    else *out = c;
    return rc;
}

void dcv_chain_free(struct dcv_chain *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        if (c->steps[i].cls && c->steps[i].cls->free_state)
            c->steps[i].cls->free_state(c->steps[i].state);
        dcv_json_free(c->steps[i].sources);
    }
    free(c->steps);
    free(c);
}

/* ---- running -------------------------------------------------------------------- */

/* Index of the last live step, or -1 (a chain of identities). */
static int last_live(const struct dcv_chain *c)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (live(&c->steps[i])) return i;
    return -1;
}

/* Values each arena buffer needs for these shapes, and how many buffers. */
static size_t arena_need(const struct dcv_chain *c, const struct dcv_shape *shapes, int *nbuf)
{
    int last = last_live(c);
    size_t most = 0;
    *nbuf = 0;
    for (int i = 0; i < last; i++) {
        if (!live(&c->steps[i])) continue;
        size_t v = (size_t)shape_count(&shapes[i]);
        most = v > most ? v : most;
        *nbuf += *nbuf < 2;
    }
    return most;
}

static bool concrete(const struct dcv_shape *s)
{
    for (int i = 0; i < s->ndim; i++)
        if (s->d[i] < 1) return false;
    return s->ndim > 0 && shape_count(s) >= 0;
}

/* Shapes of every step for a concrete input, all of them concrete. */
static int run_shapes(const struct dcv_chain *c, const struct dcv_shape *in,
                      struct dcv_shape *shapes, char *err)
{
    int rc = dcv_chain_shapes(c, in, shapes, err);
    for (int i = 0; !rc && i < c->n; i++)
        if (!concrete(&shapes[i]))
            rc = dcv_errf(err, DCV_ESHAPE, "layer '%s' (%s): its output size is unknown or "
                          "overflows", c->steps[i].name, c->steps[i].cls->name);
    return rc;
}

uint64_t dcv_chain_work(const struct dcv_chain *c, const struct dcv_shape *in)
{
    struct dcv_shape sh[DCV_CHAIN_MAX_LAYERS];
    uint64_t sum = 0;
    if (!concrete(in) || run_shapes(c, in, sh, NULL)) return UINT64_MAX;
    for (int i = 0; i < c->n && sum < UINT64_MAX; i++) {
        if (c->steps[i].folded_into >= 0) continue;
        uint64_t w = c->steps[i].cls->work(c->steps[i].state, i ? &sh[i - 1] : in);
        sum = w > UINT64_MAX - sum ? UINT64_MAX : sum + w;
    }
    return sum;
}

size_t dcv_chain_scratch_bytes(const struct dcv_chain *c, const struct dcv_shape *in)
{
    struct dcv_shape sh[DCV_CHAIN_MAX_LAYERS];
    int nbuf;
    if (!concrete(in) || run_shapes(c, in, sh, NULL)) return SIZE_MAX;
    size_t v = arena_need(c, sh, &nbuf);
    return v > SIZE_MAX / sizeof(float) / 2 ? SIZE_MAX : v * sizeof(float) * (size_t)nbuf;
}

static int run_steps(const struct dcv_chain *c, const float *in, const struct dcv_shape *shape,
                     const struct dcv_shape *sh, struct arena *a, float *out,
                     const atomic_bool *stop, char *err)
{
    const float *cur = in;
    int which = -1, last = last_live(c), done = 0;
    char sub[DCV_ERRLEN];
    for (int i = 0; i <= last; i++) {
        const struct step *s = &c->steps[i];
        if (!live(s)) continue;
        if (stop && atomic_load(stop))
            return dcv_errf(err, DCV_ECANCELED, "stopped after %d of the chain's layers "
                            "(before '%s')", done, s->name);
        float *dst;
        if (i == last) dst = out;
        else if (s->cls->in_place && which >= 0) dst = a->buf[which];
        else dst = a->buf[which = which == 0 ? 1 : 0];
        int rc = s->cls->run(s->state, cur, i ? &sh[i - 1] : shape, dst, &sh[i], stop, sub);
        if (rc) return dcv_errf(err, rc, "layer '%s' (%s): %s", s->name, s->cls->name, sub);
        cur = dst;
        done++;
    }
    if (last < 0) memmove(out, in, sizeof(float) * (size_t)shape_count(shape));
    return 0;
}

int dcv_chain_run(const struct dcv_chain *c, const float *in, const struct dcv_shape *shape,
                  float *out, const atomic_bool *stop, char *err)
{
    struct dcv_shape sh[DCV_CHAIN_MAX_LAYERS];
    struct arena *a;
    int nbuf, rc;
    if (!concrete(shape)) return dcv_errf(err, DCV_ESHAPE, "the input shape must be concrete");
    if ((rc = run_shapes(c, shape, sh, err))) return rc;
    if (!(a = arena_get(arena_need(c, sh, &nbuf), err))) return DCV_ENOMEM;
    rc = run_steps(c, in, shape, sh, a, out, stop, err);
    arena_trim(a);
    return rc;
}

/* ---- description ---------------------------------------------------------------- */

int dcv_chain_layers(const struct dcv_chain *c)
{
    return c->n;
}

void dcv_chain_layer(const struct dcv_chain *c, int i, struct dcv_chain_layer *out)
{
    const struct step *s = &c->steps[i];
    out->name = s->name;
    out->class_name = s->cls->name;
    out->params = s->params;
    out->fused_into = s->folded_into >= 0 ? c->steps[s->folded_into].name : NULL;
}

static struct dcv_json *shape_json(const struct dcv_shape *s)
{
    struct dcv_json *a = dcv_json_new_array();
    for (int i = 0; a && i < s->ndim; i++)
        if (dcv_json_append(a, s->d[i] < 0 ? dcv_json_new_null()
                                           : dcv_json_new_number((double)s->d[i]))) {
            dcv_json_free(a);
            return NULL;
        }
    return a;
}

struct dcv_json *dcv_chain_layers_json(const struct dcv_chain *c)
{
    struct dcv_json *list = dcv_json_new_array();
    int rc = list ? 0 : DCV_ENOMEM;
    for (int i = 0; !rc && i < c->n; i++) {
        const struct step *s = &c->steps[i];
        struct dcv_json *o = dcv_json_new_object();
        rc |= dcv_json_append(list, o);
        rc |= dcv_json_add(o, "name", dcv_json_new_string(s->name));
        rc |= dcv_json_add(o, "class_name", dcv_json_new_string(s->cls->name));
        rc |= dcv_json_add(o, "config", s->cls->config ? s->cls->config(s->state)
                                                       : dcv_json_new_object());
        rc |= dcv_json_add(o, "output_shape", shape_json(&s->out_sig));
        rc |= dcv_json_add(o, "params", dcv_json_new_number((double)s->params));
        rc |= dcv_json_add(o, "weights", s->sources ? dcv_json_dup(s->sources)
                                                    : dcv_json_new_object());
        rc |= dcv_json_add(o, "fused_into", s->folded_into >= 0
                           ? dcv_json_new_string(c->steps[s->folded_into].name)
                           : dcv_json_new_null());
    }
    if (rc) {
        dcv_json_free(list);
        return NULL;
    }
    return list;
}

/* The last live step that ends with an activation decides the range;
 * steps that only move values (Flatten, UpSampling, Cropping) keep it, an
 * affine step left unfolded (BatchNormalization) loses it. */
const struct dcv_activation *dcv_chain_activation(const struct dcv_chain *c)
{
    for (int i = c->n - 1; i >= 0; i--) {
        const struct step *s = &c->steps[i];
        if (s->folded_into >= 0) continue;
        if (s->cls->activation) return s->cls->activation(s->state);
        if (s->cls->as_affine) return NULL;
    }
    return NULL;
}
