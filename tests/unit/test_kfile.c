/* test_kfile.c — Keras's own files read in-process (kfile.c over kzip.c and
 * kh5.c). Expected arrays are Keras's: the fixtures' kernel.npy/bias.npy
 * (Keras 3.15.1's layer.get_weights()) and the VAE decoder's weights as
 * extracted with h5py (tests/data/models/vae_decoder/). Files Keras did not
 * write here (tf.keras 2 layouts, nested models, hostile files) come from
 * tests/data/keras/read/make_files.py, run with Debian's python3-h5py into a
 * temporary directory per test.
 */
#include <criterion/criterion.h>

#include "deconvd/chain.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/kfile.h"
#include "deconvd/modelform.h"
#include "deconvd/npy.h"
#include "testutil.h"

static const char *data_dir(void)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s", __FILE__);
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
    if ((slash = strrchr(buf, '/'))) snprintf(slash, sizeof buf - (size_t)(slash - buf), "/data");
    return buf;
}

static const char *read_dir(void)
{
    static char buf[600];
    snprintf(buf, sizeof buf, "%s/keras/read", data_dir());
    return buf;
}

static char g_gen[] = "/tmp/dcvkfile.XXXXXX";

static void remove_gen(void)
{
    char cmd[128];
    if (strchr(g_gen, 'X')) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_gen);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_gen);
}

/* Runs make_files.py into a fresh directory (skips without h5py). */
static const char *generate(void)
{
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import h5py, numpy' >/dev/null 2>&1", tu_python());
    if (tu_sh(cmd) != 0) cr_skip_test("%s cannot import h5py and numpy", tu_python());
    cr_assert_not_null(tu_mkdtemp(g_gen));
    snprintf(cmd, sizeof cmd, "'%s' '%s/make_files.py' '%s'", tu_python(), read_dir(), g_gen);
    cr_assert_eq(tu_sh(cmd), 0, "%s failed", cmd);
    return g_gen;
}

static struct dcv_json *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    char err[DCV_ERRLEN];
    struct dcv_json *j = dcv_json_parse(text, n, err);
    cr_assert_not_null(j, "%s: %s", path, err);
    return j;
}

static const struct dcv_kfile_array *find(const struct dcv_kfile *f, const char *layer,
                                          int index)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->arrays[i].layer, layer) && f->arrays[i].index == index)
            return &f->arrays[i];
    return NULL;
}

/* The array (layer, index) equals the .npy Keras wrote: shape and values. */
static void expect_npy(const struct dcv_kfile *f, const char *layer, int index,
                       const char *npy, const char *what)
{
    char err[DCV_ERRLEN];
    struct dcv_npy want;
    const struct dcv_kfile_array *a = find(f, layer, index);
    cr_assert_not_null(a, "%s: no array %s[%d]", what, layer, index);
    cr_assert_eq(dcv_npy_load(npy, 0, &want, err), 0, "%s", err);
    cr_assert_eq(a->ndim, want.ndim, "%s: %s[%d] rank %d, want %d", what, layer, index, a->ndim,
                 want.ndim);
    for (int i = 0; i < a->ndim; i++)
        cr_assert_eq(a->shape[i], want.shape[i], "%s: %s[%d] dim %d", what, layer, index, i);
    for (size_t i = 0; i < want.count; i++)
        cr_assert_eq(a->data[i], want.data[i], "%s: %s[%d] value %zu: %g, want %g", what, layer,
                     index, i, (double)a->data[i], (double)want.data[i]);
    dcv_npy_release(&want);
}

static const char *const cases[] = {
    "conv2dt_same_s2_k3", "conv1dt_same_outpad", "conv3dt_channels_first",
    "conv2dt_dilated_valid", "conv2dt_same_s1_k3_relu_nobias",
};

/* The config text is JSON that modelform flattens to n layers, the first
 * named first. */
static void expect_config(const struct dcv_kfile *f, int n, const char *first, const char *what)
{
    char err[DCV_ERRLEN];
    cr_assert_not_null(f->config, "%s: no config", what);
    struct dcv_json *doc = dcv_json_parse(f->config, strlen(f->config), err);
    cr_assert_not_null(doc, "%s: %s", what, err);
    struct dcv_modelform form;
    cr_assert_eq(dcv_modelform_parse(doc, &form, err), 0, "%s: %s", what, err);
    cr_expect_eq(form.n, n, "%s: %d layers", what, form.n);
    cr_expect_str_eq(form.layers[0].name, first, "%s", what);
    dcv_modelform_release(&form);
    dcv_json_free(doc);
}

static void check_layer_case(const char *c, const char *file, enum dcv_kfile_kind kind)
{
    char path[800], npy[800], err[DCV_ERRLEN];
    struct dcv_kfile f;
    snprintf(path, sizeof path, "%s/layers/%s/%s", read_dir(), c, file);
    cr_assert_eq(dcv_kfile_read_local(path, kind, NULL, NULL, NULL, &f, err), 0, "%s: %s", path,
                 err);
    cr_expect_str_eq(f.keras_version, "3.15.1", "%s", path);
    bool bias = strstr(c, "nobias") == NULL;
    cr_expect_eq(f.n, bias ? 2u : 1u, "%s: %zu arrays", path, f.n);
    snprintf(npy, sizeof npy, "%s/layers/%s/kernel.npy", read_dir(), c);
    expect_npy(&f, c, 0, npy, path);
    if (bias) {
        snprintf(npy, sizeof npy, "%s/layers/%s/bias.npy", read_dir(), c);
        expect_npy(&f, c, 1, npy, path);
    }
    if (kind == DCV_KFILE_H5) {
        cr_expect_str_eq(f.backend, "torch", "%s", path);
        cr_expect_str_eq(find(&f, c, 0)->name, "kernel", "%s", path);
    }
    expect_config(&f, 1, c, path);
    dcv_kfile_release(&f);
}

Test(kfile, fixture_layers_keras)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_layer_case(cases[i], "model.keras", DCV_KFILE_KERAS);
}

Test(kfile, fixture_layers_h5)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_layer_case(cases[i], "model.h5", DCV_KFILE_H5);
}

static const char *const decoder[][2] = {
    { "dense", "kernel" }, { "dense", "bias" },
    { "conv2d_transpose", "kernel" }, { "conv2d_transpose", "bias" },
    { "conv2d_transpose_1", "kernel" }, { "conv2d_transpose_1", "bias" },
    { "conv2d_transpose_2", "kernel" }, { "conv2d_transpose_2", "bias" },
};

/* The VAE decoder's 8 weights, keyed by its layer names. */
static void expect_decoder(const struct dcv_kfile *f, const char *what)
{
    char npy[800];
    for (size_t i = 0; i < 8; i++) {
        snprintf(npy, sizeof npy, "%s/models/vae_decoder/%s.%s.npy", data_dir(), decoder[i][0],
                 decoder[i][1]);
        expect_npy(f, decoder[i][0], (int)(i % 2), npy, what);
    }
}

static void read_ok(const char *dir, const char *file, enum dcv_kfile_kind kind,
                    const char *submodel, const struct dcv_json *cfg, struct dcv_kfile *f)
{
    char path[800], err[DCV_ERRLEN];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(dcv_kfile_read_local(path, kind, submodel, cfg, NULL, f, err), 0, "%s: %s",
                 path, err);
}

Test(kfile, vae_decoder_keras_and_h5)
{
    char dir[700];
    struct dcv_kfile f;
    snprintf(dir, sizeof dir, "%s/vae_decoder", read_dir());
    read_ok(dir, "model.keras", DCV_KFILE_KERAS, NULL, NULL, &f);
    cr_expect_eq(f.n, 8u);
    expect_decoder(&f, "model.keras");
    expect_config(&f, 5, "dense", "model.keras");
    dcv_kfile_release(&f);
    read_ok(dir, "model.h5", DCV_KFILE_H5, NULL, NULL, &f);
    cr_expect_eq(f.n, 8u);
    expect_decoder(&f, "model.h5");
    cr_expect_str_eq(find(&f, "dense", 1)->name, "bias");
    dcv_kfile_release(&f);
    /* the model's own name as the submodel: the whole model */
    read_ok(dir, "model.keras", DCV_KFILE_KERAS, "decoder", NULL, &f);
    cr_expect_eq(f.n, 8u);
    dcv_kfile_release(&f);
}

Test(kfile, tf_keras2_and_weights_only_files, .fini = remove_gen)
{
    const char *gen = generate();
    char path[800];
    struct dcv_kfile f;
    read_ok(gen, "k2_decoder.h5", DCV_KFILE_H5, NULL, NULL, &f);
    cr_expect_str_eq(f.keras_version, "2.15.0");
    cr_expect_str_eq(f.backend, "tensorflow");
    cr_expect_eq(f.n, 8u);
    expect_decoder(&f, "k2_decoder.h5");
    cr_expect_str_eq(find(&f, "conv2d_transpose_1", 0)->name, "kernel", "':0' stripped");
    expect_config(&f, 5, "dense", "k2_decoder.h5");
    dcv_kfile_release(&f);

    snprintf(path, sizeof path, "%s/k2_decoder.json", gen);
    struct dcv_json *k2cfg = load_json(path);
    const char *k2files[] = { "k2_decoder.weights.h5", "k2_chunked.weights.h5" };
    for (int i = 0; i < 2; i++) {
        read_ok(gen, k2files[i], DCV_KFILE_WEIGHTS_H5, NULL, k2cfg, &f);
        cr_expect_null(f.config, "%s: weights only", k2files[i]);
        cr_expect_str_eq(f.keras_version, "2.15.0", "%s", k2files[i]);
        cr_expect_eq(f.n, 8u, "%s", k2files[i]);
        expect_decoder(&f, k2files[i]);
        dcv_kfile_release(&f);
    }
    dcv_json_free(k2cfg);

    snprintf(path, sizeof path, "%s/vae_decoder/model.json", read_dir());
    struct dcv_json *k3cfg = load_json(path);
    read_ok(gen, "k3_decoder.weights.h5", DCV_KFILE_WEIGHTS_H5, NULL, k3cfg, &f);
    cr_expect_eq(f.n, 8u);
    expect_decoder(&f, "k3_decoder.weights.h5");
    dcv_kfile_release(&f);
    dcv_json_free(k3cfg);

    read_ok(gen, "deflated.keras", DCV_KFILE_KERAS, NULL, NULL, &f);
    cr_expect_eq(f.n, 8u);
    expect_decoder(&f, "deflated.keras");
    dcv_kfile_release(&f);
}

Test(kfile, submodel_of_a_nested_model, .fini = remove_gen)
{
    const char *gen = generate();
    char npy[800], err[DCV_ERRLEN], path[800];
    struct dcv_kfile f;
    const struct { const char *file; enum dcv_kfile_kind kind; } files[] = {
        { "vae.keras", DCV_KFILE_KERAS }, { "vae.h5", DCV_KFILE_H5 },
        { "k2_vae.h5", DCV_KFILE_H5 },
    };
    for (int i = 0; i < 3; i++) {
        read_ok(gen, files[i].file, files[i].kind, "decoder", NULL, &f);
        cr_expect_eq(f.n, 8u, "%s: %zu arrays", files[i].file, f.n);
        expect_decoder(&f, files[i].file);
        cr_expect_null(find(&f, "enc_dense", 0), "%s: only the decoder's", files[i].file);
        expect_config(&f, 5, "dense", files[i].file);
        cr_expect_not_null(strstr(f.config, "\"decoder\""), "%s", files[i].file);
        cr_expect_null(strstr(f.config, "enc_dense"), "%s", files[i].file);
        dcv_kfile_release(&f);

        read_ok(gen, files[i].file, files[i].kind, NULL, NULL, &f);
        cr_expect_eq(f.n, 10u, "%s whole: %zu arrays", files[i].file, f.n);
        expect_decoder(&f, files[i].file);
        snprintf(npy, sizeof npy, "%s/enc_dense.kernel.npy", gen);
        expect_npy(&f, "enc_dense", 0, npy, files[i].file);
        snprintf(npy, sizeof npy, "%s/enc_dense.bias.npy", gen);
        expect_npy(&f, "enc_dense", 1, npy, files[i].file);
        expect_config(&f, 6, "enc_dense", files[i].file);
        dcv_kfile_release(&f);
    }
    snprintf(path, sizeof path, "%s/vae.keras", gen);
    int rc = dcv_kfile_read_local(path, DCV_KFILE_KERAS, "encoder", NULL, NULL, &f, err);
    assert_err(rc, DCV_ENOENT, err, "'encoder'");
    cr_expect_eq(f.n, 0u);
    cr_expect_null(f.config);
}

Test(kfile, other_float_layouts_read, .fini = remove_gen)
{
    const char *gen = generate();
    char path[800], npy[800];
    struct dcv_kfile f;
    snprintf(path, sizeof path, "%s/layers/conv2dt_same_s2_k3/model.json", read_dir());
    struct dcv_json *cfg = load_json(path);
    const char *files[] = { "f64be.weights.h5", "gzip.weights.h5" };
    for (int i = 0; i < 2; i++) {
        read_ok(gen, files[i], DCV_KFILE_WEIGHTS_H5, NULL, cfg, &f);
        cr_expect_eq(f.n, 2u, "%s", files[i]);
        snprintf(npy, sizeof npy, "%s/layers/conv2dt_same_s2_k3/kernel.npy", read_dir());
        expect_npy(&f, "conv2dt_same_s2_k3", 0, npy, files[i]);
        snprintf(npy, sizeof npy, "%s/layers/conv2dt_same_s2_k3/bias.npy", read_dir());
        expect_npy(&f, "conv2dt_same_s2_k3", 1, npy, files[i]);
        dcv_kfile_release(&f);
    }
    dcv_json_free(cfg);
}

struct refusal {
    const char *file;
    enum dcv_kfile_kind kind;
    struct dcv_kfile_limits lim;
    int code;
    const char *sub;        /* the message names it */
};

static const struct refusal refusals[] = {
    { "h_int.weights.h5", DCV_KFILE_WEIGHTS_H5, { 0 }, DCV_EUNSUPP,
      "'layers/conv2d_transpose/vars/0' holds integer" },
    { "h_f16.weights.h5", DCV_KFILE_WEIGHTS_H5, { 0 }, DCV_EUNSUPP,
      "'layers/conv2d_transpose/vars/0' holds float of a non-IEEE layout values of 2 bytes" },
    { "h_rank6.weights.h5", DCV_KFILE_WEIGHTS_H5, { 0 }, DCV_EUNSUPP, "has rank 6" },
    { "h_lie.weights.h5", DCV_KFILE_WEIGHTS_H5, { 0 }, DCV_ETOOBIG,
      "vars/0' declares 288000000 bytes of data in a file of" },
    { "h_soft.weights.h5", DCV_KFILE_WEIGHTS_H5, { 0 }, DCV_EUNSUPP, "'0' is a soft link" },
    { "h_ext.weights.h5", DCV_KFILE_WEIGHTS_H5, { 0 }, DCV_EUNSUPP, "'0' is an external link" },
    { "h_extdata.weights.h5", DCV_KFILE_WEIGHTS_H5, { 0 }, DCV_EUNSUPP, "in external files" },
    { "h_lzf.weights.h5", DCV_KFILE_WEIGHTS_H5, { 0 }, DCV_EUNSUPP, "uses filter 32000" },
    { "h_cycle.weights.h5", DCV_KFILE_WEIGHTS_H5, { 0 }, DCV_EPARSE,
      "'conv2d_transpose' links back to a group above it (a cycle)" },
    { "h_bigattr.h5", DCV_KFILE_H5, { .max_attr_bytes = 1 << 20 }, DCV_ETOOBIG,
      "'/@model_config' holds more than 1048576 bytes" },
    { "h_notutf8.h5", DCV_KFILE_H5, { 0 }, DCV_EPARSE, "model_config': string 0 is not UTF-8" },
    { "h_notjson.h5", DCV_KFILE_H5, { 0 }, DCV_EPARSE, "the model's config is not JSON" },
    { "z_trunc.keras", DCV_KFILE_KERAS, { 0 }, DCV_EPARSE, "not a readable zip archive" },
    { "z_many.keras", DCV_KFILE_KERAS, { 0 }, DCV_ETOOBIG, "has 100 members; at most 64" },
    { "z_big.keras", DCV_KFILE_KERAS, { .max_member_bytes = 1 << 20 }, DCV_ETOOBIG,
      "'padding.bin' declares 2097152 uncompressed bytes; at most 1048576" },
    { "z_lie.keras", DCV_KFILE_KERAS, { 0 }, DCV_ETOOBIG,
      "'config.json' holds more than the" },
    { "z_bzip2.keras", DCV_KFILE_KERAS, { 0 }, DCV_EUNSUPP,
      "'config.json' uses compression method 12" },
    { "z_crc.keras", DCV_KFILE_KERAS, { 0 }, DCV_EPARSE, "zip member 'config.json'" },
    { "z_notutf8.keras", DCV_KFILE_KERAS, { 0 }, DCV_EPARSE, "config is not UTF-8" },
    { "z_noweights.keras", DCV_KFILE_KERAS, { 0 }, DCV_ENOENT, "no member 'model.weights.h5'" },
    { "vae.keras", DCV_KFILE_KERAS, { .max_weight_elems = 1000 }, DCV_ETOOBIG,
      "layer 'dense' exceed max_weight_elems (1000" },
    { "vae.keras", DCV_KFILE_KERAS, { .max_link_depth = 3 }, DCV_ETOOBIG,
      "more than 3 links deep" },
    { "vae.h5", DCV_KFILE_H5, { .max_attr_bytes = 100 }, DCV_ETOOBIG, "model_config" },
    { "k2_decoder.h5", DCV_KFILE_H5, { .max_members = 1 }, 0, "" },
    { "deflated.keras", DCV_KFILE_KERAS, { .max_members = 2 }, DCV_ETOOBIG,
      "has 3 members; at most 2" },
    { "missing.keras", DCV_KFILE_KERAS, { 0 }, DCV_ENOENT, "missing.keras" },
};

Test(kfile, hostile_and_over_bound_files_are_refused, .fini = remove_gen)
{
    const char *gen = generate();
    char path[800], err[DCV_ERRLEN];
    snprintf(path, sizeof path, "%s/layers/conv2dt_same_s2_k3/model.json", read_dir());
    struct dcv_json *cfg = load_json(path);
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        const struct refusal *r = &refusals[i];
        struct dcv_kfile f;
        snprintf(path, sizeof path, "%s/%s", gen, r->file);
        err[0] = 0;
        int rc = dcv_kfile_read_local(path, r->kind, NULL,
                                      r->kind == DCV_KFILE_WEIGHTS_H5 ? cfg : NULL, &r->lim, &f,
                                      err);
        cr_expect_eq(rc, r->code, "%s: rc %d (%s), want %s: %s", r->file, rc,
                     dcv_error_name(rc), dcv_error_name(r->code), err);
        cr_expect_not_null(strstr(err, r->sub), "%s: message \"%s\" lacks \"%s\"", r->file, err,
                           r->sub);
        if (rc) cr_expect(f.n == 0 && !f.arrays && !f.config, "%s: *out not empty", r->file);
        dcv_kfile_release(&f);
    }
    dcv_json_free(cfg);
}

Test(kfile, weights_only_needs_a_config)
{
    char path[800], err[DCV_ERRLEN];
    struct dcv_kfile f;
    snprintf(path, sizeof path, "%s/vae_decoder/model.h5", read_dir());
    int rc = dcv_kfile_read_local(path, DCV_KFILE_WEIGHTS_H5, NULL, NULL, NULL, &f, err);
    assert_err(rc, DCV_EINVAL, err, "needs the model's config");
}

/* ---- served: the arrays as a chain's weights give Keras's output ------ */

static struct dcv_json *nested_array(const float *v, const int64_t *shape, int d, int ndim,
                                     size_t *at)
{
    if (d == ndim) return dcv_json_new_number(v[(*at)++]);
    struct dcv_json *a = dcv_json_new_array();
    cr_assert_not_null(a);
    for (int64_t i = 0; i < shape[d]; i++)
        dcv_json_append(a, nested_array(v, shape, d + 1, ndim, at));
    return a;
}

/* {"<layer>": [arrays in index order]} (chain.h's inline weights). */
static struct dcv_json *as_weights(const struct dcv_kfile *f)
{
    struct dcv_json *w = dcv_json_new_object();
    for (size_t i = 0; i < f->n; i++) {
        const struct dcv_kfile_array *a = find(f, f->arrays[i].layer, 0);
        if (a != &f->arrays[i]) continue;
        struct dcv_json *list = dcv_json_new_array();
        for (int k = 0; (a = find(f, f->arrays[i].layer, k)); k++) {
            size_t at = 0;
            dcv_json_append(list, nested_array(a->data, a->shape, 0, a->ndim, &at));
        }
        dcv_json_add(w, f->arrays[i].layer, list);
    }
    return w;
}

/* Runs what path holds on the fixture's input.npy; equal to Keras's
 * output.npy within 1e-5 relative (of the output's largest magnitude). */
static void expect_served(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                          const char *fixture)
{
    char err[DCV_ERRLEN], npy[800];
    struct dcv_kfile f;
    struct dcv_modelform form;
    struct dcv_chain *c;
    struct dcv_npy x, y;
    cr_assert_eq(dcv_kfile_read_local(path, kind, submodel, NULL, NULL, &f, err), 0, "%s: %s",
                 path, err);
    struct dcv_json *doc = dcv_json_parse(f.config, strlen(f.config), err);
    cr_assert_not_null(doc, "%s", err);
    cr_assert_eq(dcv_modelform_parse(doc, &form, err), 0, "%s: %s", path, err);
    struct dcv_json *w = as_weights(&f);
    struct dcv_chain_opts opts = { 0 };
    cr_assert_eq(dcv_chain_create(&form, w, &opts, &c, err), 0, "%s: %s", path, err);
    snprintf(npy, sizeof npy, "%s/input.npy", fixture);
    cr_assert_eq(dcv_npy_load(npy, 0, &x, err), 0, "%s", err);
    snprintf(npy, sizeof npy, "%s/output.npy", fixture);
    cr_assert_eq(dcv_npy_load(npy, 0, &y, err), 0, "%s", err);
    struct dcv_shape in = { .ndim = x.ndim };
    memcpy(in.d, x.shape, sizeof(int64_t) * (size_t)x.ndim);
    float *out = calloc(y.count, sizeof *out);
    cr_assert_eq(dcv_chain_run(c, x.data, &in, out, NULL, err), 0, "%s: %s", path, err);
    double big = 0;
    for (size_t i = 0; i < y.count; i++) big = fmax(big, fabs((double)y.data[i]));
    for (size_t i = 0; i < y.count; i++)
        cr_assert(fabs((double)out[i] - (double)y.data[i]) <= 1e-5 * big, "%s: out[%zu] %g, "
                  "Keras %g", path, i, (double)out[i], (double)y.data[i]);
    free(out);
    dcv_npy_release(&x);
    dcv_npy_release(&y);
    dcv_chain_free(c);
    dcv_json_free(w);
    dcv_modelform_release(&form);
    dcv_json_free(doc);
    dcv_kfile_release(&f);
}

Test(kfile, served_arrays_give_keras_outputs, .fini = remove_gen)
{
    char path[800], fixture[800];
    const char *kinds[] = { "model.keras", "model.h5" };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/layers/%s/%s", read_dir(), cases[i], kinds[k]);
            snprintf(fixture, sizeof fixture, "%s/layers/%s", read_dir(), cases[i]);
            expect_served(path, k ? DCV_KFILE_H5 : DCV_KFILE_KERAS, NULL, fixture);
        }
    snprintf(fixture, sizeof fixture, "%s/vae_decoder", read_dir());
    snprintf(path, sizeof path, "%s/vae_decoder/model.keras", read_dir());
    expect_served(path, DCV_KFILE_KERAS, NULL, fixture);
    snprintf(path, sizeof path, "%s/vae_decoder/model.h5", read_dir());
    expect_served(path, DCV_KFILE_H5, NULL, fixture);
    const char *gen = generate();
    const char *nested[] = { "vae.keras", "vae.h5", "k2_vae.h5" };
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", gen, nested[k]);
        expect_served(path, k ? DCV_KFILE_H5 : DCV_KFILE_KERAS, "decoder", fixture);
    }
    snprintf(path, sizeof path, "%s/k2_decoder.h5", gen);
    expect_served(path, DCV_KFILE_H5, NULL, fixture);
}
