/* model.c — loading model files into runnable models.
 *
 * A model file is parsed with the JSON layer. A single layer's config goes
 * to layer.c and its weights come from .npy files, inline arrays or
 * initializers (weights.c), checked against the shapes the config implies
 * before anything large is allocated; a Sequential / Functional config goes
 * to modelform.c and chain.c, which compile it into steps with weights per
 * layer, and every dcv_model_* function dispatches on m->chain.
 * .npy paths are confined to models_dir: absolute paths and '..' are refused
 * and the resolved real path (symlinks followed) must stay inside it. Only
 * regular files are read, opened without blocking and bounded in size, so a
 * FIFO or device planted under a model's name is an error, not a hang. A
 * model records the identity of every file it was read from (fingerprint),
 * so a reload can skip it without reading anything while they are unchanged.
 * Runs on whichever thread loads (start-up, reload); a loaded model is
 * read-only and shared by the worker threads that run it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deconvd/batch.h"
#include "deconvd/chain.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/kfile.h"
#include "deconvd/model.h"
#include "deconvd/modelform.h"
#include "deconvd/npy.h"
#include "deconvd/weights.h"
#include "model_internal.h"

#define DEFAULT_MAX_WEIGHTS ((size_t)1 << 28)
#define MAX_MODEL_FILE (256u << 20)
#define FP_SEED DCV_WEIGHTS_FP_SEED
/* Inline weights are the bulk of a big model file: at 1 value per 8 bytes
 * of the file limit (a float32 written with 6 digits and a comma), 32 Mi
 * values, 2.5 GiB of tree at most, instead of 10 GiB for a file of "0,0,". */
#define MAX_MODEL_NODES (MAX_MODEL_FILE / 8)

int dcv_model_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= DCV_MODEL_NAME_MAX || name[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* Kernel and bias sources from doc.weights ({kernel,bias} or [k, b]) or
 * the config's R-style "weights" list. */
static void weight_sources(const struct dcv_json *doc, const struct dcv_layer *l,
                           const struct dcv_json **k, const struct dcv_json **b)
{
    const struct dcv_json *w = dcv_json_get(doc, "weights");
    if (!w || dcv_json_type(w) == DCV_JSON_NULL) w = l->weights;
    *k = *b = NULL;
    if (dcv_json_type(w) == DCV_JSON_OBJECT) {
        *k = dcv_json_get(w, "kernel");
        *b = dcv_json_get(w, "bias");
    } else if (dcv_json_type(w) == DCV_JSON_ARRAY) {
        *k = dcv_json_at(w, 0);
        *b = dcv_json_at(w, 1);
    }
}

/* In-channels must be known before shapes can be checked. */
static int resolve_in_channels(struct dcv_layer *l, const struct dcv_json *ksrc,
                               const char *dir, size_t max_elems, char *err)
{
    if (l->conv.in_channels) return 0;
    if (dcv_json_type(ksrc) == DCV_JSON_ARRAY) {
        const struct dcv_json *v = ksrc;
        while (dcv_json_type(dcv_json_first(v)) == DCV_JSON_ARRAY) v = dcv_json_first(v);
        return dcv_layer_set_in_channels(l, (int64_t)dcv_json_size(v), err);
    }
    if (dcv_json_string(ksrc)) {
        char real[PATH_MAX], sub[DCV_ERRLEN];
        struct dcv_npy npy = { 0 };
        const char *path = dcv_json_string(ksrc);
        int rc = dcv_weights_confine(dir, path, real, err);
        if (!rc && (rc = dcv_npy_load(real, max_elems, &npy, sub)))
            dcv_errf(err, rc, "kernel (%.100s): %s", path, sub);
        if (!rc && npy.ndim > 0) rc = dcv_layer_set_in_channels(l, npy.shape[npy.ndim - 1], err);
        dcv_npy_release(&npy);
        return rc;
    }
    return dcv_errf(err, DCV_EINVAL, "the number of input channels is unknown: give kernel "
                    "weights, or 'batch_input_shape' / 'input_shape' in the config");
}

/* Remembers a weights file the model was read from (src is a path), so
 * that a reload can fingerprint the same files without reading the model
 * file. */
int dcv_model_note_file(struct dcv_model *m, const char *path, char *err)
{
    char *dup = path ? strdup(path) : NULL;
    char **grown = dup ? realloc(m->weight_files, sizeof(char *) *
                                 (size_t)(m->n_weight_files + 1)) : NULL;
    if (!path) return 0;
    if (!grown) {
        free(dup);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    m->weight_files = grown;
    m->weight_files[m->n_weight_files++] = dup;
    return 0;
}

static int build_weights(struct dcv_model *m, const struct dcv_json *doc, const char *dir,
                         size_t max_elems, float **kd, float **bd, char *err)
{
    struct dcv_layer *l = &m->layer;
    const struct dcv_json *ks, *bs;
    const char *kkind = "initializer", *bkind = l->conv.use_bias ? "initializer" : "none";
    int64_t kshape[DCV_MAX_DIMS];
    int nk = l->conv.rank + 2, rc;
    weight_sources(doc, l, &ks, &bs);
    if ((rc = resolve_in_channels(l, ks, dir, max_elems, err))) return rc;
    for (int i = 0; i < l->conv.rank; i++) kshape[i] = l->conv.kernel[i];
    kshape[nk - 2] = l->conv.filters;
    kshape[nk - 1] = l->conv.in_channels;
    int64_t count = dcv_shape_product(kshape, nk);
    if (count < 0 || (size_t)count > max_elems)
        return dcv_errf(err, DCV_ETOOBIG, "kernel has %lld weights, above the limit of %zu",
                        (long long)count, max_elems);
    if (bs && dcv_json_type(bs) != DCV_JSON_NULL && !l->conv.use_bias)
        return dcv_errf(err, DCV_EINVAL, "use_bias is false but a bias was given");
    if (ks && (rc = dcv_weights_load(ks, dir, kshape, nk, max_elems, "kernel", kd, &kkind,
                                     &m->fingerprint, err)))
        return rc;
    if (bs && dcv_json_type(bs) != DCV_JSON_NULL &&
        (rc = dcv_weights_load(bs, dir, &l->conv.filters, 1, max_elems, "bias", bd, &bkind,
                               &m->fingerprint, err)))
        return rc;
    if ((rc = dcv_model_note_file(m, dcv_json_string(ks), err)) ||
        (rc = dcv_model_note_file(m, dcv_json_string(bs), err)))
        return rc;
    if (!*kd) {
        if (!(*kd = malloc(sizeof(float) * (size_t)count)))
            return dcv_errf(err, DCV_ENOMEM, "out of memory for the kernel");
        if ((rc = dcv_init_fill(&l->kernel_init, kshape, nk, 1, *kd, err))) return rc;
    }
    if (!*bd && l->conv.use_bias) {
        if (!(*bd = malloc(sizeof(float) * (size_t)l->conv.filters)))
            return dcv_errf(err, DCV_ENOMEM, "out of memory for the bias");
        if ((rc = dcv_init_fill(&l->bias_init, &l->conv.filters, 1, 2, *bd, err)))
            return rc;
    }
    if ((rc = dcv_weights_check_finite(*kd, (size_t)count, "kernel", kkind, err)) ||
        (l->conv.use_bias &&
         (rc = dcv_weights_check_finite(*bd, (size_t)l->conv.filters, "bias", bkind, err))))
        return rc;
    m->sources = dcv_json_new_object();
    dcv_json_add(m->sources, "kernel", dcv_json_new_string(kkind));
    dcv_json_add(m->sources, "bias", dcv_json_new_string(bkind));
    return m->sources ? 0 : dcv_errf(err, DCV_ENOMEM, "out of memory");
}

/* keras.saving.serialize_keras_object() puts the built input shape beside
 * the config: {"build_config": {"input_shape": [null, 32, 32, 128]}}. */
static int build_config_channels(struct dcv_layer *l, const struct dcv_json *doc, char *err)
{
    const struct dcv_json *is = dcv_json_get(dcv_json_get(doc, "build_config"), "input_shape");
    int64_t c;
    if (l->conv.in_channels || dcv_json_type(is) != DCV_JSON_ARRAY ||
        (int)dcv_json_size(is) != l->conv.rank + 2)
        return 0;
    if (!dcv_json_int(dcv_json_at(is, (size_t)dcv_conv_channel_axis(&l->conv)), 1,
                      DCV_MAX_CHANNELS, &c))
        return 0;
    return dcv_layer_set_in_channels(l, c, err);
}

/* Spatial input size to build and pack the first primitive for at load
 * time: the declared one (unknown dims: the engine's default of 8), or NULL
 * (no prepacking) when an image would hold more than INT32_MAX values in or
 * out. oneDNN's index arithmetic overflows on such shapes (it dies of SIGFPE
 * on some), and no request that large can be served anyway. */
static const int64_t *prepack_size(const struct dcv_model *m, int64_t *sp)
{
    const struct dcv_conv *c = &m->layer.conv;
    int64_t in[DCV_MAX_SPATIAL + 1], out[DCV_MAX_SPATIAL + 1];
    int sax = dcv_conv_spatial_axis(c);
    for (int i = 0; i < c->rank; i++) {
        sp[i] = m->in_sig[sax + i];
        in[i] = sp[i] > 0 ? sp[i] : 8;
        out[i] = dcv_conv_output_length(in[i], c->kernel[i], c->strides[i], c->dilation[i],
                                        c->padding, -1);
    }
    in[c->rank] = c->in_channels;
    out[c->rank] = c->filters;
    int64_t nin = dcv_shape_product(in, c->rank + 1), nout = dcv_shape_product(out, c->rank + 1);
    return nin < 0 || nout < 0 || nin > INT32_MAX || nout > INT32_MAX ? NULL : sp;
}

static struct dcv_json *dims_json(const int64_t *d, int n)
{
    return dcv_json_new_int_array(d, (size_t)n);
}

/* ---- chain models (Sequential / Functional) ------------------------------------ */

static int chain_note_file(void *arg, const char *path, char *err)
{
    return dcv_model_note_file(arg, path, err);
}

/* The output layout for PNG answers: the data_format of the last layer
 * that has one (channels_last when none does). */
static bool form_channels_first(const struct dcv_modelform *f)
{
    for (int i = f->n - 1; i >= 0; i--) {
        const char *df = dcv_json_string(dcv_json_get(f->layers[i].config, "data_format"));
        if (df) return strcmp(df, "channels_first") == 0;
    }
    return false;
}

static void sig_copy(const struct dcv_shape *s, int64_t *d, int *n)
{
    *n = s->ndim;
    memcpy(d, s->d, sizeof(int64_t) * (size_t)s->ndim);
}

int dcv_model_build_chain(struct dcv_model *m, const struct dcv_json *doc,
                          const struct dcv_json *image, const struct dcv_kfile *kf,
                          const char *kfname, const char *models_dir,
                          const struct dcv_model_opts *opts, char *err)
{
    struct dcv_modelform f;
    struct dcv_shape in, out;
    int rc;
    if ((rc = dcv_modelform_parse(doc, &f, err))) return rc;
    struct dcv_chain_opts co = {
        .models_dir = models_dir, .max_weight_elems = opts ? opts->max_weight_elems : 0,
        .cache_cap = opts ? opts->cache_cap : 0, .note_file = chain_note_file, .note_arg = m,
        .fingerprint = &m->fingerprint, .kfile = kf, .kfile_name = kfname,
    };
    if ((rc = dcv_chain_create(&f, kf ? NULL : dcv_json_get(doc, "weights"), &co, &m->chain,
                               err)))
        goto out;
    snprintf(m->layer.class_name, sizeof m->layer.class_name, "%s", f.class_name);
    snprintf(m->layer.name, sizeof m->layer.name, "%s", f.name);
    snprintf(m->input_name, sizeof m->input_name, "%s", f.input_name);
    snprintf(m->output_name, sizeof m->output_name, "%s", f.layers[f.n - 1].name);
    dcv_chain_signature(m->chain, &in, &out);
    sig_copy(&in, m->in_sig, &m->ndim);
    sig_copy(&out, m->out_sig, &m->out_ndim);
    rc = dcv_png_spec_parse(image, dcv_chain_activation(m->chain),
                            form_channels_first(&f), &m->image, err);
out:
    dcv_modelform_release(&f);
    return rc;
}

static int shape_of(const int64_t *d, int n, struct dcv_shape *s, char *err)
{
    if (n < 1 || n > DCV_MAX_DIMS)
        return dcv_errf(err, DCV_ESHAPE, "input rank must be 1 to %d, got %d", DCV_MAX_DIMS, n);
    s->ndim = n;
    memcpy(s->d, d, sizeof(int64_t) * (size_t)n);
    return 0;
}

static int chain_output_shape(const struct dcv_model *m, const int64_t *in, int ndim,
                              int64_t *out, char *err)
{
    struct dcv_shape is, os;
    int rc;
    if ((rc = shape_of(in, ndim, &is, err))) return rc;
    if (ndim != m->ndim)
        return dcv_errf(err, DCV_ESHAPE, "the model takes inputs of rank %d, got rank %d",
                        m->ndim, ndim);
    if ((rc = dcv_chain_output_shape(m->chain, &is, &os, err))) return rc;
    memcpy(out, os.d, sizeof(int64_t) * (size_t)os.ndim);
    return 0;
}

static int chain_summary(const struct dcv_model *m, const int64_t *in, int ndim,
                         struct dcv_model_row *rows, int cap, int *n, char *err)
{
    int nl = dcv_chain_layers(m->chain), rc;
    struct dcv_shape is, *sh = malloc(sizeof *sh * (size_t)nl);
    if (!sh) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    if (ndim != m->ndim)
        rc = dcv_errf(err, DCV_ESHAPE, "the model takes inputs of rank %d, got rank %d",
                      m->ndim, ndim);
    else if (!(rc = shape_of(in, ndim, &is, err)) &&
        !(rc = dcv_chain_shapes(m->chain, &is, sh, err))) {
        for (int i = 0; i <= nl && i < cap; i++) {
            struct dcv_chain_layer l;
            memset(&rows[i], 0, sizeof rows[i]);
            if (i == 0) {
                snprintf(rows[0].name, sizeof rows[0].name, "%s", m->input_name);
                rows[0].class_name = "InputLayer";
                rows[0].out = is;
                continue;
            }
            dcv_chain_layer(m->chain, i - 1, &l);
            snprintf(rows[i].name, sizeof rows[i].name, "%s", l.name);
            rows[i].class_name = l.class_name;
            rows[i].out = sh[i - 1];
            rows[i].params = l.params;
        }
        *n = nl + 1;
    }
    free(sh);
    return rc;
}

static struct dcv_json *chain_config_json(const struct dcv_model *m)
{
    struct dcv_json *o = dcv_json_new_object();
    int rc = o ? 0 : DCV_ENOMEM;
    rc |= dcv_json_add(o, "class_name", dcv_json_new_string(m->layer.class_name));
    rc |= dcv_json_add(o, "name", dcv_json_new_string(m->layer.name));
    rc |= dcv_json_add(o, "input_name", dcv_json_new_string(m->input_name));
    rc |= dcv_json_add(o, "output_name", dcv_json_new_string(m->output_name));
    rc |= dcv_json_add(o, "input_shape", dims_json(m->in_sig, m->ndim));
    rc |= dcv_json_add(o, "output_shape", dims_json(m->out_sig, m->out_ndim));
    rc |= dcv_json_add(o, "file_kind", dcv_json_new_string(m->file_kind));
    if (m->keras_version[0])
        rc |= dcv_json_add(o, "keras_version", dcv_json_new_string(m->keras_version));
    if (m->backend[0]) rc |= dcv_json_add(o, "backend", dcv_json_new_string(m->backend));
    rc |= dcv_json_add(o, "layers", dcv_chain_layers_json(m->chain));
    if (rc) {
        dcv_json_free(o);
        return NULL;
    }
    return o;
}

static int batch_run(void *m, const float *in, const int64_t *shape, int ndim, float *out,
                     size_t out_cap, char *err)
{
    return dcv_model_infer(m, in, shape, ndim, out, out_cap, NULL, err);
}

/* The model file's "dynamic_batching" (a pointer file's too), once the
 * model, hence its batch dim, is known. */
static int attach_batching(struct dcv_model *m, const struct dcv_json *doc, char *err)
{
    struct dcv_batch_cfg bc;
    int rc = dcv_batch_parse(dcv_json_get(doc, "dynamic_batching"), m->in_sig, m->ndim, &bc,
                             err);
    if (rc || !bc.max_batch) return rc;
    return (m->batch = dcv_batch_new(&bc, batch_run, m)) ? 0
         : dcv_errf(err, DCV_ENOMEM, "out of memory");
}

/* fp: the fingerprint so far (the model file's, or the seed). */
static int build(const char *name, const struct dcv_json *doc, const char *models_dir,
                 const struct dcv_model_opts *opts, uint64_t fp, struct dcv_model **out,
                 char *err)
{
    struct dcv_model *m = calloc(1, sizeof *m);
    float *kd = NULL, *bd = NULL;
    size_t max_elems = opts && opts->max_weight_elems ? opts->max_weight_elems
                                                      : DEFAULT_MAX_WEIGHTS;
    int rc;
    if (!m) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    snprintf(m->name, sizeof m->name, "%s", name);
    m->fingerprint = fp;
    if (dcv_json_type(doc) != DCV_JSON_OBJECT) {
        rc = dcv_errf(err, DCV_EINVAL, "model file must hold a JSON object, got %s",
                      dcv_json_type_name(doc));
        goto out;
    }
    snprintf(m->file_kind, sizeof m->file_kind, "json");
    if (dcv_json_string(dcv_json_get(doc, "weights")) ||
        dcv_json_string(dcv_json_get(doc, "file"))) {
        rc = dcv_model_keras_doc(m, doc, models_dir, opts, err);
        goto out;
    }
    if (dcv_modelform_is_model(doc)) {
        rc = dcv_model_build_chain(m, doc, dcv_json_get(doc, "image"), NULL, NULL, models_dir,
                                   opts, err);
        goto out;
    }
    const struct dcv_json *cfg = dcv_json_get(doc, "config");
    if ((rc = dcv_layer_parse(dcv_json_string(dcv_json_get(doc, "class_name")),
                              cfg ? cfg : doc, &m->layer, err)) ||
        (rc = build_config_channels(&m->layer, doc, err)) ||
        (rc = dcv_png_spec_parse(dcv_json_get(doc, "image"), &m->layer.conv.act,
                                 m->layer.conv.channels_first, &m->image, err)) ||
        (rc = build_weights(m, doc, models_dir, max_elems, &kd, &bd, err)))
        goto out;
    m->ndim = m->out_ndim = m->layer.conv.rank + 2;
    snprintf(m->input_name, sizeof m->input_name, "input");
    snprintf(m->output_name, sizeof m->output_name, "output");
    dcv_layer_signature(&m->layer, m->in_sig, m->out_sig);
    int64_t prepack[DCV_MAX_SPATIAL];
    rc = dcv_engine_kernel_create(&m->layer.conv, kd, bd, opts ? opts->cache_cap : 0,
                                  prepack_size(m, prepack), &m->kernel, err);
out:
    if (!rc) rc = attach_batching(m, doc, err);
    free(kd);
    free(bd);
    if (rc) dcv_model_free(m);
    else *out = m;
    return rc;
}

int dcv_model_from_doc(const char *name, const struct dcv_json *doc, const char *models_dir,
                       const struct dcv_model_opts *opts, struct dcv_model **out, char *err)
{
    return build(name, doc, models_dir, opts, FP_SEED, out, err);
}

static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" : S_ISSOCK(mode)
         ? "a socket" : S_ISCHR(mode) ? "a character device" : S_ISBLK(mode)
         ? "a block device" : "not a regular file";
}

/* Reads a model file: only a regular file (symlinks followed), opened
 * without blocking (a FIFO planted under a model's name would otherwise
 * hang the open until a writer comes), at most MAX_MODEL_FILE bytes and
 * never past the size fstat gave. *st gets the identity it was read as. */
static int read_file(const char *path, char **buf, size_t *len, struct stat *st, char *err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), rc = 0;
    *buf = NULL;
    *len = 0;
    if (fd < 0) {
        int e = errno;
        struct stat ls;
        if (e == ENXIO && stat(path, &ls) == 0)     /* a socket cannot be opened */
            return dcv_errf(err, DCV_EIO, "%.200s is %s, not a regular file", path,
                            file_kind(ls.st_mode));
        return dcv_errf(err, e == ENOENT ? DCV_ENOENT : DCV_EIO, "%.200s: %s", path,
                        strerror(e));
    }
    if (fstat(fd, st) != 0) {
        rc = dcv_errf(err, DCV_EIO, "%.200s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st->st_mode)) {
        rc = dcv_errf(err, DCV_EIO, "%.200s is %s, not a regular file", path,
                      file_kind(st->st_mode));
        goto out;
    }
    if ((uintmax_t)st->st_size > MAX_MODEL_FILE) {
        rc = dcv_errf(err, DCV_ETOOBIG, "%.200s: model file larger than %u bytes", path,
                      MAX_MODEL_FILE);
        goto out;
    }
    size_t want = (size_t)st->st_size;
    if (!(*buf = malloc(want + 1))) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory reading %.200s", path);
        goto out;
    }
    while (*len < want) {
        ssize_t n = read(fd, *buf + *len, want - *len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            rc = dcv_errf(err, DCV_EIO, "%.200s: %s after %zu of %zu bytes", path,
                          n < 0 ? strerror(errno) : "short read", *len, want);
            goto out;
        }
        *len += (size_t)n;
    }
out:
    close(fd);
    if (rc) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

/* The files a model name may have, in fingerprint order. */
static const char *const model_exts[] = { "json", "keras", "h5" };
#define N_EXTS 3

int dcv_model_file_stem(const char *filename, char *stem)
{
    size_t len = strlen(filename);
    if (len > 11 && !strcmp(filename + len - 11, ".weights.h5")) return 0;
    for (int i = 0; i < N_EXTS; i++) {
        size_t k = strlen(model_exts[i]) + 1;
        if (len <= k || len - k >= DCV_MODEL_NAME_MAX || filename[len - k] != '.' ||
            strcmp(filename + len - k + 1, model_exts[i]))
            continue;
        memcpy(stem, filename, len - k);
        stem[len - k] = '\0';
        return dcv_model_name_valid(stem);
    }
    return 0;
}

/* Which of the name's files exist (stat follows symlinks; a FIFO or
 * directory counts: reading it is then the load error). */
static int model_files(const char *dir, const char *name, struct stat *st, bool *have,
                       char *err)
{
    char path[PATH_MAX];
    int n = 0;
    for (int i = 0; i < N_EXTS; i++) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s.%s", dir, name, model_exts[i]) >=
            sizeof path)
            return dcv_errf(err, DCV_EPATH, "model path too long");
        /* lstat too: a dangling x.keras symlink is that model's error, not a missing x.json */
        n += have[i] = stat(path, &st[i]) == 0 || lstat(path, &st[i]) == 0;
    }
    return n;
}

static int load_json(const char *models_dir, const char *name, const struct dcv_model_opts *opts,
                     const struct stat *st3, const bool *have, struct dcv_model **out,
                     char *err)
{
    char path[PATH_MAX], sub[DCV_ERRLEN];
    char *text = NULL;
    size_t len = 0;
    struct dcv_json *doc = NULL;
    struct stat st;
    uint64_t fp = FP_SEED;
    int rc;
    snprintf(path, sizeof path, "%s/%s.json", models_dir, name);
    if ((rc = read_file(path, &text, &len, &st, err))) return rc;
    dcv_weights_fingerprint_stat(&fp, &st);            /* as read, before any weights file */
    for (int i = 1; i < N_EXTS; i++) dcv_weights_fingerprint_stat(&fp, have[i] ? &st3[i] : NULL);
    struct dcv_json_bound bound = { MAX_MODEL_NODES, "the model file limit", NULL, NULL };
    if ((rc = dcv_json_parse_bounded(text, len, &bound, &doc, sub))) {
        rc = dcv_errf(err, rc, "%s.json: %s", name, sub);
        goto out;
    }
    if ((rc = build(name, doc, models_dir, opts, fp, out, sub)))
        dcv_errf(err, rc, "%s.json: %s", name, sub);
out:
    dcv_json_free(doc);
    free(text);
    return rc;
}

/* <name>.keras or <name>.h5 (have[] says which). */
static int load_keras(const char *models_dir, const char *name, const struct dcv_model_opts *opts,
                      const struct stat *st, const bool *have, struct dcv_model **out,
                      char *err)
{
    char file[DCV_MODEL_NAME_MAX + 8], sub[DCV_ERRLEN];
    struct dcv_model *m = calloc(1, sizeof *m);
    int rc;
    if (!m) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(file, sizeof file, "%s.%s", name, have[1] ? "keras" : "h5");
    m->fingerprint = FP_SEED;
    for (int i = 0; i < N_EXTS; i++)
        dcv_weights_fingerprint_stat(&m->fingerprint, have[i] ? &st[i] : NULL);
    if ((rc = dcv_model_keras_file(m, models_dir, file, opts, sub))) {
        if (strncmp(sub, file, strlen(file)) == 0) dcv_errf(err, rc, "%s", sub);
        else dcv_errf(err, rc, "%s: %s", file, sub);       /* every reason names the file */
        dcv_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int dcv_model_load(const char *models_dir, const char *name, const struct dcv_model_opts *opts,
                   struct dcv_model **out, char *err)
{
    struct stat st[N_EXTS];
    bool have[N_EXTS];
    if (!dcv_model_name_valid(name))
        return dcv_errf(err, DCV_EINVAL, "invalid model name");
    int n = model_files(models_dir, name, st, have, err);
    if (n < 0) return n;
    if (n > 1) {
        const char *a = have[0] ? "json" : "keras", *b = have[2] ? "h5" : "keras";
        return dcv_errf(err, DCV_EINVAL, "%s.%s and %s.%s both define model '%s': keep one",
                        name, a, name, b, name);
    }
    if (have[1] || have[2]) return load_keras(models_dir, name, opts, st, have, out, err);
    return load_json(models_dir, name, opts, st, have, out, err);
}

void dcv_model_free(struct dcv_model *m)
{
    if (!m) return;
    dcv_batch_free(m->batch);
    dcv_engine_kernel_free(m->kernel);
    dcv_chain_free(m->chain);
    dcv_layer_release(&m->layer);
    dcv_json_free(m->sources);
    dcv_model_files_free(m->weight_files, m->n_weight_files);
    free(m);
}

uint64_t dcv_model_fingerprint(const char *models_dir, const char *name,
                               char *const *weight_files, int n)
{
    char path[PATH_MAX], real[PATH_MAX], err[DCV_ERRLEN];
    uint64_t fp = FP_SEED;
    for (int i = 0; i < N_EXTS; i++) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s.%s", models_dir, name, model_exts[i]) >=
            sizeof path)
            return 0;
        dcv_weights_fingerprint_file(&fp, path);
    }
    for (int i = 0; weight_files && i < n; i++) {
        if (dcv_weights_confine(models_dir, weight_files[i], real, err) == 0)
            dcv_weights_fingerprint_file(&fp, real);
        else
            dcv_weights_fingerprint_stat(&fp, NULL);
    }
    return fp;
}

char **dcv_model_files_dup(char *const *files, int n)
{
    char **d = calloc((size_t)(n > 0 ? n : 1), sizeof *d);
    for (int i = 0; d && i < n; i++) {
        if (!(d[i] = strdup(files[i]))) {
            dcv_model_files_free(d, i);
            return NULL;
        }
    }
    return d;
}

void dcv_model_files_free(char **files, int n)
{
    for (int i = 0; files && i < n; i++) free(files[i]);
    free(files);
}

int dcv_model_output_shape(const struct dcv_model *m, const int64_t *in, int ndim,
                           int64_t *out, size_t *count, char *err)
{
    int rc;
    for (int i = 0; i < ndim; i++)
        if (in[i] < 1)
            return dcv_errf(err, DCV_ESHAPE, "input dim %d must be a positive size, got %lld",
                            i, (long long)in[i]);
    rc = m->chain ? chain_output_shape(m, in, ndim, out, err)
                  : dcv_layer_output_shape(&m->layer, in, ndim, out, err);
    if (rc) return rc;
    int64_t n = dcv_shape_product(out, m->out_ndim);
    if (n < 0 || dcv_shape_product(in, ndim) < 0)
        return dcv_errf(err, DCV_ETOOBIG, "tensor size overflows");
    *count = (size_t)n;
    return 0;
}

int dcv_model_infer(const struct dcv_model *m, const float *in, const int64_t *shape, int ndim,
                    float *out, size_t out_cap, const atomic_bool *stop, char *err)
{
    int64_t oshape[DCV_MAX_DIMS];
    size_t count;
    int rc = dcv_model_output_shape(m, shape, ndim, oshape, &count, err);
    if (rc) return rc;
    if (count > out_cap)
        return dcv_errf(err, DCV_EINVAL, "output buffer holds %zu values, %zu needed", out_cap,
                        count);
    if (m->chain) {
        struct dcv_shape is;
        shape_of(shape, ndim, &is, NULL);
        return dcv_chain_run(m->chain, in, &is, out, stop, err);
    }
    int sax = dcv_conv_spatial_axis(&m->layer.conv);
    return dcv_engine_run(m->kernel, in, shape[0], shape + sax, oshape + sax, out, stop, err);
}

struct dcv_json *dcv_model_config_json(const struct dcv_model *m)
{
    if (m->chain) return chain_config_json(m);
    const struct dcv_conv *c = &m->layer.conv;
    struct dcv_json *o = dcv_json_dup(m->layer.config);
    struct dcv_json *meta = dcv_json_get(o, "deconvd");
    if (!meta) {
        dcv_json_free(o);
        return NULL;
    }
    dcv_json_add(meta, "class_name", dcv_json_new_string(m->layer.class_name));
    dcv_json_add(meta, "input_shape", dims_json(m->in_sig, m->ndim));
    dcv_json_add(meta, "output_shape", dims_json(m->out_sig, m->ndim));
    dcv_json_add(meta, "weights", dcv_json_dup(m->sources));
    int sax = dcv_conv_spatial_axis(c);
    bool known = true;
    for (int i = 0; i < c->rank; i++)
        known = known && m->in_sig[sax + i] > 0 && m->out_sig[sax + i] > 0;
    if (known) {
        int64_t pl[DCV_MAX_SPATIAL], pr[DCV_MAX_SPATIAL];
        dcv_conv_pads(c, m->in_sig + sax, m->out_sig + sax, pl, pr);
        struct dcv_json *pad = dcv_json_new_object();
        dcv_json_add(pad, "before", dims_json(pl, c->rank));
        dcv_json_add(pad, "after", dims_json(pr, c->rank));
        dcv_json_add(meta, "computed_padding", pad);
    } else {
        dcv_json_add(meta, "computed_padding", dcv_json_new_string(
            c->padding == DCV_PADDING_SAME
            ? "per input size: before = max((n-1)*s + (k-1)*d + 1 - out, 0) // 2, "
              "after = (n-1)*s + (k-1)*d + 1 - out - before"
            : "per input size: before = 0, after = (n-1)*s + (k-1)*d + 1 - out"));
    }
    struct dcv_engine_stats st = { 0 };
    if (m->kernel) dcv_engine_kernel_stats(m->kernel, &st);
    struct dcv_json *eng = dcv_json_new_object();
    dcv_json_add(eng, "implementation", dcv_json_new_string(st.impl));  /* "" until a plan */
    dcv_json_add(eng, "plans_cached", dcv_json_new_number((double)st.cache_entries));
    dcv_json_add(eng, "plan_hits", dcv_json_new_number((double)st.cache_hits));
    dcv_json_add(eng, "plan_misses", dcv_json_new_number((double)st.cache_misses));
    dcv_json_add(meta, "engine", eng);
    return o;
}

const char *dcv_model_class(const struct dcv_model *m)
{
    return m->layer.class_name;
}

uint64_t dcv_model_work(const struct dcv_model *m, const int64_t *in, int ndim)
{
    const struct dcv_conv *c = &m->layer.conv;
    struct dcv_shape is;
    if (m->chain)
        return shape_of(in, ndim, &is, NULL) ? UINT64_MAX : dcv_chain_work(m->chain, &is);
    if (ndim != c->rank + 2) return UINT64_MAX;
    return dcv_conv_work(c, in[0], in + dcv_conv_spatial_axis(c));
}

size_t dcv_model_scratch_bytes(const struct dcv_model *m, const int64_t *in, int ndim)
{
    struct dcv_shape is;
    if (!m->chain) return 0;
    return shape_of(in, ndim, &is, NULL) ? SIZE_MAX : dcv_chain_scratch_bytes(m->chain, &is);
}

static uint64_t layer_params(const struct dcv_layer *l)
{
    const struct dcv_conv *c = &l->conv;
    uint64_t n = (uint64_t)c->filters * (uint64_t)c->in_channels;
    for (int i = 0; i < c->rank; i++) n *= (uint64_t)c->kernel[i];
    return n + (c->use_bias ? (uint64_t)c->filters : 0);
}

int dcv_model_summary(const struct dcv_model *m, const int64_t *in, int ndim,
                      struct dcv_model_row *rows, int cap, int *n, char *err)
{
    struct dcv_model_row r[2] = { 0 };
    int rc;
    if (!in) in = m->in_sig, ndim = m->ndim;
    if (m->chain) return chain_summary(m, in, ndim, rows, cap, n, err);
    if (ndim != m->ndim)
        return dcv_errf(err, DCV_ESHAPE, "%s takes inputs of rank %d, got rank %d",
                        m->layer.class_name, m->ndim, ndim);
    snprintf(r[0].name, sizeof r[0].name, "%s", m->input_name);
    r[0].class_name = "InputLayer";
    r[0].out.ndim = ndim;
    memcpy(r[0].out.d, in, sizeof(int64_t) * (size_t)ndim);
    snprintf(r[1].name, sizeof r[1].name, "%s", m->layer.name);
    r[1].class_name = m->layer.class_name;
    r[1].out.ndim = m->out_ndim;
    if ((rc = dcv_layer_output_shape(&m->layer, in, ndim, r[1].out.d, err))) return rc;
    r[1].params = layer_params(&m->layer);
    for (int i = 0; i < 2 && i < cap; i++) rows[i] = r[i];
    *n = 2;
    return 0;
}
