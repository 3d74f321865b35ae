/* test_chain.c — chain models (Sequential configs) against Keras and NumPy.
 *
 * The VAE decoder of the Keras VAE example, loaded from its model.to_json()
 * and the weights Keras saved (tests/data/models/vae_decoder*, made by
 * tests/data/vae_decoder/extract.py), must give Keras's own output.npy.
 * Chains of Dense / Reshape / Flatten / transposed convolutions with random
 * weights are checked against tests/numpy_layers.py; the folds against a
 * plain loop here. Refusals, the stop flag, the per-thread arena and the
 * fingerprint over every weights file are checked too.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/chain.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layers.h"
#include "deconvd/model.h"
#include "deconvd/npy.h"
#include "testutil.h"

/* tests/data relative to this file, else to the working directory. */
static const char *data_dir(void)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s", __FILE__);
    char *slash = strrchr(buf, '/');
    if (slash) {
        *slash = '\0';
        if ((slash = strrchr(buf, '/'))) {
            snprintf(slash, sizeof buf - (size_t)(slash - buf), "/data");
            if (access(buf, R_OK) == 0) return buf;
        }
    }
    return "tests/data";
}

static struct dcv_npy load_npy(const char *dir, const char *file)
{
    char path[1024], err[DCV_ERRLEN];
    struct dcv_npy n = { 0 };
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(dcv_npy_load(path, 0, &n, err), 0, "%s: %s", path, err);
    return n;
}

static struct dcv_model *load_model(const char *dir, const char *name)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m = NULL;
    int rc = dcv_model_load(dir, name, NULL, &m, err);
    cr_assert_eq(rc, 0, "%s: %s", name, err);
    return m;
}

static float *infer(const struct dcv_model *m, const struct dcv_npy *x, size_t *count)
{
    char err[DCV_ERRLEN];
    int64_t os[DCV_MAX_DIMS];
    cr_assert_eq(dcv_model_output_shape(m, x->shape, x->ndim, os, count, err), 0, "%s", err);
    float *y = malloc(sizeof(float) * *count);
    cr_assert_not_null(y);
    cr_assert_eq(dcv_model_infer(m, x->data, x->shape, x->ndim, y, *count, NULL, err), 0,
                 "%s", err);
    return y;
}

/* |a - b| <= rel * max(|b|, floor) everywhere. */
static void expect_close(const float *a, const float *b, size_t n, double rel, double floor)
{
    for (size_t i = 0; i < n; i++) {
        double tol = rel * fmax(fabs((double)b[i]), floor);
        cr_assert(fabs((double)a[i] - (double)b[i]) <= tol, "value %zu: %.9g vs %.9g", i,
                  (double)a[i], (double)b[i]);
    }
}

/* ---- the VAE decoder, against Keras ------------------------------------------- */

Test(chain, vae_decoder_equals_keras)
{
    char models[600], fix[600];
    snprintf(models, sizeof models, "%s/models", data_dir());
    snprintf(fix, sizeof fix, "%s/vae_decoder", data_dir());
    struct dcv_model *m = load_model(models, "vae_decoder");
    struct dcv_npy x = load_npy(fix, "input.npy"), want = load_npy(fix, "output.npy");
    size_t n;
    float *y = infer(m, &x, &n);
    cr_assert_eq(n, want.count);
    expect_close(y, want.data, n, 1e-5, 1e-3);
    free(y);
    /* twice: plans and arena reused */
    y = infer(m, &x, &n);
    expect_close(y, want.data, n, 1e-5, 1e-3);
    free(y);
    dcv_npy_release(&x);
    dcv_npy_release(&want);
    dcv_model_free(m);
}

Test(chain, vae_decoder_describes_itself_like_keras)
{
    char models[600], err[DCV_ERRLEN];
    snprintf(models, sizeof models, "%s/models", data_dir());
    struct dcv_model *m = load_model(models, "vae_decoder");
    cr_expect_str_eq(dcv_model_class(m), "Sequential");
    cr_expect_str_eq(m->input_name, "input_layer");
    cr_expect_str_eq(m->output_name, "conv2d_transpose_2");
    cr_expect_eq(m->ndim, 2);
    cr_expect_eq(m->out_ndim, 4);
    cr_expect_eq(m->out_sig[1], 28);
    cr_expect_eq(m->out_sig[3], 1);
    cr_expect_eq(m->n_weight_files, 8);
    cr_expect(m->image.has_range && m->image.lo == 0.0f && m->image.hi == 1.0f,
              "a sigmoid output maps [0, 1] to PNG values");
    struct dcv_model_row rows[8];
    int n = 0;
    cr_assert_eq(dcv_model_summary(m, NULL, 0, rows, 8, &n, err), 0, "%s", err);
    cr_assert_eq(n, 6);
    /* model.summary(): the figures Keras prints for this decoder */
    static const struct { const char *name, *cls; int64_t c; uint64_t params; } want[] = {
        { "input_layer", "InputLayer", 2, 0 }, { "dense", "Dense", 3136, 9408 },
        { "reshape", "Reshape", 64, 0 }, { "conv2d_transpose", "Conv2DTranspose", 64, 36928 },
        { "conv2d_transpose_1", "Conv2DTranspose", 32, 18464 },
        { "conv2d_transpose_2", "Conv2DTranspose", 1, 289 },
    };
    for (int i = 0; i < 6; i++) {
        cr_expect_str_eq(rows[i].name, want[i].name);
        cr_expect_str_eq(rows[i].class_name, want[i].cls);
        cr_expect_eq(rows[i].out.d[rows[i].out.ndim - 1], want[i].c, "row %d", i);
        cr_expect_eq(rows[i].params, want[i].params, "row %d: %llu", i,
                     (unsigned long long)rows[i].params);
    }
    int64_t in[2] = { 4, 2 };
    cr_expect_eq(dcv_model_work(m, in, 2),
                 4ull * (2 * 3136 + 49 * 9 * 64 * 64 + 196 * 9 * 64 * 32 + 784 * 9 * 32));
    /* two buffers of the largest intermediate: conv2d_transpose_1 (4, 28, 28, 32) */
    cr_expect_eq(dcv_model_scratch_bytes(m, in, 2), 2 * 4 * 28 * 28 * 32 * sizeof(float));
    struct dcv_json *cfg = dcv_model_config_json(m);
    cr_assert_not_null(cfg);
    const struct dcv_json *layers = dcv_json_get(cfg, "layers");
    cr_assert_eq(dcv_json_size(layers), 5);
    cr_expect_str_eq(dcv_json_string(dcv_json_get(dcv_json_get(dcv_json_at(layers, 0),
                                                               "weights"), "kernel")),
                     "vae_decoder/dense.kernel.npy");
    dcv_json_free(cfg);
    dcv_model_free(m);
}

/* ---- model files in a temporary directory --------------------------------------- */

static char g_dir[] = "/tmp/dcvchain.XXXXXX";

static void make_dir(void)
{
    cr_assert_not_null(tu_mkdtemp(g_dir));
}

static void remove_dir(void)
{
    char cmd[128];
    if (strchr(g_dir, 'X')) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

static void put_file(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0, "%s", path);
}

static uint64_t g_rng = 12345;

static float rnd(void)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(g_rng >> 40) / 8388608.0 - 1.0);
}

static void put_npy(const char *name, const int64_t *shape, int ndim, float amp)
{
    char path[1024], err[DCV_ERRLEN];
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *v = malloc(sizeof(float) * n);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++) v[i] = amp < 0 ? 0.5f - amp * fabsf(rnd()) : amp * rnd();
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    cr_assert_eq(dcv_npy_save(path, v, shape, ndim, err), 0, "%s", err);
    free(v);
}

/* A Sequential model file: InputLayer(batch_shape) + layers + weights. */
static void put_model(const char *name, const char *batch_shape, const char *layers,
                      const char *weights)
{
    char text[8192], file[256];
    snprintf(text, sizeof text,
             "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"%s\", \"layers\": ["
             "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", "
             "\"batch_input_shape\": %s}}, %s]}, \"weights\": %s}",
             name, batch_shape, layers, weights);
    snprintf(file, sizeof file, "%s.json", name);
    put_file(file, text);
}

static int try_load(const char *name, struct dcv_model **m, char *err)
{
    *m = NULL;
    return dcv_model_load(g_dir, name, NULL, m, err);
}

/* ---- random chains against tests/numpy_layers.py -------------------------------- */

struct wspec { const char *layer, *weight; int ndim; int64_t d[5]; };
struct ccase {
    const char *batch_shape;          /* InputLayer's, JSON */
    const char *layers;               /* JSON list items */
    int x_ndim;
    int64_t x[5];
    struct wspec w[16];
    const char *fused;                /* "layer>into layer>into ..." that must fold */
};

static const struct ccase cases[] = {
    { "[null, 3, 4]",
      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 6, "
      "\"activation\": \"tanh\"}}, "
      "{\"class_name\": \"Reshape\", \"config\": {\"name\": \"r\", \"target_shape\": [-1, 2]}}, "
      "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"name\": \"c\", \"filters\": 3, "
      "\"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\", \"activation\": \"relu\"}}",
      3, { 2, 3, 4 },
      { { "d", "kernel", 2, { 4, 6 } }, { "d", "bias", 1, { 6 } },
        { "c", "kernel", 3, { 3, 3, 2 } }, { "c", "bias", 1, { 3 } } }, NULL },
    { "[null, 5]",
      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 32, "
      "\"use_bias\": false}}, "
      "{\"class_name\": \"Reshape\", \"config\": {\"name\": \"r\", \"target_shape\": [2, 4, 4]}}, "
      "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"name\": \"c\", \"filters\": 3, "
      "\"kernel_size\": [3, 2], \"strides\": [2, 1], \"padding\": \"valid\", "
      "\"data_format\": \"channels_first\"}}, "
      "{\"class_name\": \"Flatten\", \"config\": {\"name\": \"f\", "
      "\"data_format\": \"channels_first\"}}, "
      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"e\", \"units\": 7, "
      "\"activation\": \"sigmoid\"}}",
      2, { 3, 5 },
      { { "d", "kernel", 2, { 5, 32 } }, { "c", "kernel", 4, { 3, 2, 3, 2 } },
        { "c", "bias", 1, { 3 } }, { "e", "kernel", 2, { 135, 7 } },
        { "e", "bias", 1, { 7 } } }, NULL },
    { "[null, 2, 3, 2, 4]",
      "{\"class_name\": \"Conv3DTranspose\", \"config\": {\"name\": \"c\", \"filters\": 2, "
      "\"kernel_size\": 2, \"strides\": [1, 2, 1], \"padding\": \"same\"}}, "
      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 3}}",
      5, { 2, 2, 3, 2, 4 },
      { { "c", "kernel", 5, { 2, 2, 2, 2, 4 } }, { "c", "bias", 1, { 2 } },
        { "d", "kernel", 2, { 2, 3 } }, { "d", "bias", 1, { 3 } } }, NULL },
    /* the DCGAN generator's shape in small: BN and LeakyReLU fold into Dense
     * and Conv2DTranspose; a Dropout between does not stop the fold */
    { "[null, 3]",
      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 32, "
      "\"use_bias\": false}}, "
      "{\"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn0\"}}, "
      "{\"class_name\": \"LeakyReLU\", \"config\": {\"name\": \"lr0\"}}, "
      "{\"class_name\": \"Reshape\", \"config\": {\"name\": \"r\", \"target_shape\": [2, 2, 8]}}, "
      "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"name\": \"c1\", \"filters\": 4, "
      "\"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\", \"use_bias\": false}}, "
      "{\"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn1\", "
      "\"epsilon\": 0.01}}, "
      "{\"class_name\": \"Dropout\", \"config\": {\"name\": \"drop\", \"rate\": 0.5}}, "
      "{\"class_name\": \"ReLU\", \"config\": {\"name\": \"relu\"}}, "
      "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"name\": \"c2\", \"filters\": 1, "
      "\"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\", \"activation\": \"tanh\"}}",
      2, { 2, 3 },
      { { "d", "kernel", 2, { 3, 32 } }, { "bn0", "gamma", 1, { 32 } },
        { "bn0", "beta", 1, { 32 } }, { "bn0", "moving_mean", 1, { 32 } },
        { "bn0", "moving_variance", 1, { 32 } }, { "c1", "kernel", 4, { 3, 3, 4, 8 } },
        { "bn1", "gamma", 1, { 4 } }, { "bn1", "beta", 1, { 4 } },
        { "bn1", "moving_mean", 1, { 4 } }, { "bn1", "moving_variance", 1, { 4 } },
        { "c2", "kernel", 4, { 3, 3, 1, 4 } }, { "c2", "bias", 1, { 1 } } },
      " bn0>d lr0>d bn1>c1 relu>c1 " },
    /* unfoldable: BN after an activation, BN on a non-channel axis */
    { "[null, 4, 3]",
      "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"name\": \"c\", \"filters\": 2, "
      "\"kernel_size\": 2, \"activation\": \"relu\"}}, "
      "{\"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn0\"}}, "
      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 3}}, "
      "{\"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn1\", \"axis\": 1}}",
      3, { 2, 4, 3 },
      { { "c", "kernel", 3, { 2, 2, 3 } }, { "c", "bias", 1, { 2 } },
        { "bn0", "gamma", 1, { 2 } }, { "bn0", "beta", 1, { 2 } },
        { "bn0", "moving_mean", 1, { 2 } }, { "bn0", "moving_variance", 1, { 2 } },
        { "d", "kernel", 2, { 2, 3 } }, { "d", "bias", 1, { 3 } },
        { "bn1", "gamma", 1, { 5 } }, { "bn1", "beta", 1, { 5 } },
        { "bn1", "moving_mean", 1, { 5 } }, { "bn1", "moving_variance", 1, { 5 } } }, NULL },
    /* forward convolutions (layer_convfwd.c) inside a chain */
    { "[null, 6, 5, 2]",
      "{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"e\", \"filters\": 4, "
      "\"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\", \"activation\": \"relu\"}}, "
      "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"name\": \"c\", \"filters\": 2, "
      "\"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\"}}, "
      "{\"class_name\": \"Flatten\", \"config\": {\"name\": \"f\"}}, "
      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 5}}",
      4, { 2, 6, 5, 2 },
      { { "e", "kernel", 4, { 3, 3, 2, 4 } }, { "e", "bias", 1, { 4 } },
        { "c", "kernel", 4, { 3, 3, 2, 4 } }, { "c", "bias", 1, { 2 } },
        { "d", "kernel", 2, { 72, 5 } }, { "d", "bias", 1, { 5 } }  }, NULL },
};

static void put_json(const char *file, const struct dcv_json *doc)
{
    char *text = dcv_json_print(doc);
    cr_assert_not_null(text);
    put_file(file, text);
    free(text);
}

static struct dcv_json *parse(const char *text)
{
    char err[DCV_ERRLEN];
    struct dcv_json *j = dcv_json_parse(text, strlen(text), err);
    cr_assert_not_null(j, "%s: %s", err, text);
    return j;
}

/* Every layer folds as `fused` (" layer>into layer>into ...") says, and no
 * other layer folds. */
static void expect_fused(const struct dcv_model *m, const char *fused)
{
    struct dcv_json *cfg = dcv_model_config_json(m);
    cr_assert_not_null(cfg);
    for (const struct dcv_json *l = dcv_json_first(dcv_json_get(cfg, "layers")); l;
         l = dcv_json_next(l)) {
        char key[300], pair[300];
        const char *name = dcv_json_string(dcv_json_get(l, "name"));
        const char *into = dcv_json_string(dcv_json_get(l, "fused_into"));
        snprintf(key, sizeof key, " %s>", name);
        snprintf(pair, sizeof pair, " %s>%s ", name, into ? into : "");
        const char *list = fused ? fused : "";
        if (into) cr_expect(strstr(list, pair), "%s folded into %s unexpectedly", name, into);
        else cr_expect(!strstr(list, key), "%s did not fold (%s)", name, list);
    }
    dcv_json_free(cfg);
}

/* Writes case k: caseK/<layer>.<weight>.npy, caseK/x.npy, caseK.json (the
 * model file) and caseK/layers.json (numpy_layers.py's input). */
static void write_case(int k, const struct ccase *c)
{
    char dir[32], file[128], text[4096];
    snprintf(dir, sizeof dir, "case%d", k);
    snprintf(file, sizeof file, "%s/%s", g_dir, dir);
    cr_assert_eq(mkdir(file, 0755), 0);
    snprintf(text, sizeof text, "[%s]", c->layers);
    struct dcv_json *layers = parse(text), *weights = dcv_json_new_object();
    struct dcv_json *ref = dcv_json_new_object(), *reflayers = dcv_json_dup(layers);
    for (int i = 0; c->w[i].layer; i++) {
        snprintf(file, sizeof file, "%s/%s.%s.npy", dir, c->w[i].layer, c->w[i].weight);
        put_npy(file, c->w[i].d, c->w[i].ndim,
                strstr(c->w[i].weight, "variance") ? -1.0f : 0.5f);
        struct dcv_json *lw = dcv_json_get(weights, c->w[i].layer);
        if (!lw) dcv_json_add(weights, c->w[i].layer, lw = dcv_json_new_object());
        dcv_json_add(lw, c->w[i].weight, dcv_json_new_string(file));
        for (struct dcv_json *l = dcv_json_first(reflayers); l; l = dcv_json_next(l)) {
            const char *ln = dcv_json_string(dcv_json_get(dcv_json_get(l, "config"), "name"));
            if (strcmp(ln, c->w[i].layer)) continue;
            struct dcv_json *rw = dcv_json_get(l, "weights");
            if (!rw) dcv_json_add(l, "weights", rw = dcv_json_new_array());
            dcv_json_append(rw, dcv_json_new_string(strchr(file, '/') + 1));
        }
    }
    snprintf(file, sizeof file, "%s/x.npy", dir);
    put_npy(file, c->x, c->x_ndim, 1.0f);
    dcv_json_add(ref, "keras", dcv_json_new_number(2));
    dcv_json_add(ref, "layers", reflayers);
    snprintf(file, sizeof file, "%s/layers.json", dir);
    put_json(file, ref);
    char *lt = dcv_json_print(layers), *wt = dcv_json_print(weights);
    lt[strlen(lt) - 1] = '\0';             /* the items, without the brackets */
    put_model(dir, c->batch_shape, lt + 1, wt);
    free(lt);
    free(wt);
    dcv_json_free(layers);
    dcv_json_free(weights);
    dcv_json_free(ref);
}

static const char *numpy_layers_path(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/../numpy_layers.py", data_dir());
    return buf;
}

Test(chain, random_chains_match_numpy, .fini = remove_dir)
{
    char cmd[4096], script[600], err[DCV_ERRLEN];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy' >/dev/null 2>&1", tu_python());
    if (system(cmd) != 0) cr_skip_test("%s cannot import numpy", tu_python());
    make_dir();
    size_t ncases = sizeof cases / sizeof *cases;
    int len = snprintf(cmd, sizeof cmd, "'%s' '%s'", tu_python(),
                       numpy_layers_path(script, sizeof script));
    for (size_t k = 0; k < ncases; k++) {
        write_case((int)k, &cases[k]);
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s/case%zu'", g_dir, k);
    }
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed", cmd);
    for (size_t k = 0; k < ncases; k++) {
        char name[32], dir[600];
        snprintf(name, sizeof name, "case%zu", k);
        snprintf(dir, sizeof dir, "%s/%s", g_dir, name);
        struct dcv_model *m;
        cr_assert_eq(try_load(name, &m, err), 0, "%s: %s", name, err);
        struct dcv_npy x = load_npy(dir, "x.npy"), want = load_npy(dir, "out.npy");
        size_t n;
        float *y = infer(m, &x, &n);
        cr_assert_eq(n, want.count, "%s: %zu values, numpy has %zu", name, n, want.count);
        expect_close(y, want.data, n, 1e-4, 1e-2);
        expect_fused(m, cases[k].fused);
        free(y);
        dcv_npy_release(&x);
        dcv_npy_release(&want);
        dcv_model_free(m);
    }
}

/* ---- refusals ------------------------------------------------------------------- */

#define DENSE_D "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 4}}"
#define W_D "{\"d\": {\"kernel\": [[1, 2, 3, 4], [5, 6, 7, 8]], \"bias\": [0, 0, 0, 0]}}"

/* Weights a chain file leaves out come from the layer's initializers, as
 * for single-layer files: a Dense without its bias gets the zeros of
 * bias_initializer (x @ kernel exactly), one without weights the seeded
 * glorot kernel, and /config says "default" for each. */
static void expect_filled(void)
{
    struct dcv_model *m;
    char err[DCV_ERRLEN];
    float x[2] = { 1, -2 }, y[4];
    put_model("missing", "[null, 2]", DENSE_D, "{\"d\": {\"kernel\": [[1, 2, 3, 4], "
              "[5, 6, 7, 8]]}}");
    cr_assert_eq(try_load("missing", &m, err), 0, "%s", err);
    cr_assert_eq(dcv_model_infer(m, x, (int64_t[]){ 1, 2 }, 2, y, 4, NULL, err), 0, "%s", err);
    for (int j = 0; j < 4; j++)
        cr_expect_float_eq(y[j], (float)(j + 1) - 2 * (float)(j + 5), 1e-6, "y[%d] = %g", j, y[j]);
    struct dcv_json *c = dcv_model_config_json(m);
    char *txt = dcv_json_print(c);
    cr_expect(strstr(txt, "\"bias\":\"default\""), "%s", txt);
    free(txt);
    dcv_json_free(c);
    dcv_model_free(m);
    put_model("noweights", "[null, 2]", DENSE_D, "null");
    cr_assert_eq(try_load("noweights", &m, err), 0, "%s", err);
    cr_assert_eq(dcv_model_infer(m, x, (int64_t[]){ 1, 2 }, 2, y, 4, NULL, err), 0, "%s", err);
    bool nonzero = false;
    for (int j = 0; j < 4; j++) nonzero |= y[j] != 0;
    cr_expect(nonzero, "a glorot-filled kernel gives a non-zero answer");
    dcv_model_free(m);
}

static void expect_refused(const char *name, int code, const char *sub1, const char *sub2)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m;
    int rc = try_load(name, &m, err);
    cr_expect_eq(rc, code, "%s: got %d (%s)", name, rc, err);
    cr_expect_null(m);
    cr_expect(strstr(err, sub1) != NULL, "%s: '%s' lacks '%s'", name, err, sub1);
    cr_expect(!sub2 || strstr(err, sub2) != NULL, "%s: '%s' lacks '%s'", name, err, sub2);
}

Test(chain, refusals_name_the_layer, .fini = remove_dir)
{
    make_dir();
    put_model("unknown", "[null, 2]", DENSE_D ", {\"class_name\": \"LSTM\", \"config\": "
              "{\"name\": \"rnn\", \"units\": 3}}", W_D);
    expect_refused("unknown", DCV_EUNSUPP, "layer 'rnn' (class LSTM) is not supported",
                   "supported: InputLayer, Reshape, Flatten");
    expect_filled();
    put_model("extra", "[null, 2]", DENSE_D, "{\"d\": {\"kernel\": [[1, 2, 3, 4], "
              "[5, 6, 7, 8]], \"bias\": [0, 0, 0, 0], \"gamma\": [1]}}");
    expect_refused("extra", DCV_EINVAL, "layer 'd' (Dense) has no weight 'gamma'",
                   "kernel, bias");
    put_model("toomany", "[null, 2]", DENSE_D, "{\"d\": [[[1, 2, 3, 4], [5, 6, 7, 8]], "
              "[0, 0, 0, 0], [1]]}");
    expect_refused("toomany", DCV_EINVAL, "layer 'd' (Dense) takes 2 weights", NULL);
    put_model("stranger", "[null, 2]", DENSE_D, "{\"d\": {\"kernel\": [[1, 2, 3, 4], "
              "[5, 6, 7, 8]], \"bias\": [0, 0, 0, 0]}, \"ghost\": {\"kernel\": [1]}}");
    expect_refused("stranger", DCV_EINVAL, "layer 'ghost'", "does not have");
    put_model("misshapen", "[null, 3]", DENSE_D, W_D);
    expect_refused("misshapen", DCV_ESHAPE, "layer 'd' weight 'kernel'", "(3, 4)");
    put_model("nan", "[null, 2]", DENSE_D, "{\"d\": {\"kernel\": [[1, 2, 3, 4], "
              "[5, 6, 7, 8]], \"bias\": [0, 0, 1e39, 0]}}");
    expect_refused("nan", DCV_EINVAL, "layer 'd' weight 'bias'", NULL);
    put_model("between", "[null, 2]", DENSE_D ", {\"class_name\": \"Reshape\", \"config\": "
              "{\"name\": \"r\", \"target_shape\": [3, 2]}}", W_D);
    expect_refused("between", DCV_ESHAPE, "layer 'r' (Reshape)", "6 values");
    put_model("nochannels", "[null, 2, 2]", DENSE_D ", {\"class_name\": "
              "\"Conv1DTranspose\", \"config\": {\"name\": \"c\", \"filters\": 1, "
              "\"kernel_size\": 1}}", "{\"d\": {\"kernel\": [[1, 2, 3, 4], [5, 6, 7, 8]], "
              "\"bias\": [0, 0, 0, 0]}, \"c\": {\"kernel\": [[[1, 1, 1]]], \"bias\": [0]}}");
    expect_refused("nochannels", DCV_ESHAPE, "layer 'c' weight 'kernel'", "(1, 1, 4)");
    put_model("reshape_weights", "[null, 2]", DENSE_D ", {\"class_name\": \"Reshape\", "
              "\"config\": {\"name\": \"r\", \"target_shape\": [2, 2]}}",
              "{\"d\": {\"kernel\": [[1, 2, 3, 4], [5, 6, 7, 8]], \"bias\": [0, 0, 0, 0]}, "
              "\"r\": {\"kernel\": [1]}}");
    expect_refused("reshape_weights", DCV_EINVAL, "layer 'r' (Reshape) has no weights", NULL);
    put_file("shapeless.json", "{\"class_name\": \"Sequential\", \"config\": {\"layers\": ["
             DENSE_D "]}, \"weights\": " W_D "}");
    expect_refused("shapeless", DCV_EINVAL, "input shape is unknown", NULL);
}

/* A request the first layer refuses names it; the InputLayer's dims bind. */
Test(chain, request_shapes_checked, .fini = remove_dir)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m;
    int64_t out[DCV_MAX_DIMS];
    size_t n;
    make_dir();
    put_model("ok", "[null, 2]", DENSE_D, W_D);
    cr_assert_eq(try_load("ok", &m, err), 0, "%s", err);
    cr_expect_eq(dcv_model_output_shape(m, (int64_t[]){ 3, 5 }, 2, out, &n, err), DCV_ESHAPE);
    cr_expect(strstr(err, "input dim 1 must be 2"), "%s", err);
    cr_expect_eq(dcv_model_output_shape(m, (int64_t[]){ 3, 2, 1 }, 3, out, &n, err),
                 DCV_ESHAPE);
    cr_assert_eq(dcv_model_output_shape(m, (int64_t[]){ 3, 2 }, 2, out, &n, err), 0, "%s", err);
    cr_expect_eq(out[1], 4);
    cr_expect_eq(n, 12);
    float x[6] = { 1, 0, 0, 1, 1, 1 }, y[12];
    cr_assert_eq(dcv_model_infer(m, x, (int64_t[]){ 3, 2 }, 2, y, 12, NULL, err), 0, "%s", err);
    /* x @ [[1,2,3,4],[5,6,7,8]] by hand */
    static const float want[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 6, 8, 10, 12 };
    for (int i = 0; i < 12; i++) cr_expect_eq(y[i], want[i], "y[%d] = %g", i, (double)y[i]);
    dcv_model_free(m);
}

/* ---- stop flag, arena, fingerprint ---------------------------------------------- */

#define CHAIN3 DENSE_D ", {\"class_name\": \"Reshape\", \"config\": {\"name\": \"r\", " \
    "\"target_shape\": [2, 2]}}, {\"class_name\": \"Conv1DTranspose\", \"config\": " \
    "{\"name\": \"c\", \"filters\": 8, \"kernel_size\": 3, \"strides\": 2}}"
#define W3 "{\"d\": {\"kernel\": \"d.kernel.npy\", \"bias\": \"d.bias.npy\"}, " \
    "\"c\": [\"c.kernel.npy\", \"c.bias.npy\"]}"

static void put_chain3(void)
{
    put_npy("d.kernel.npy", (int64_t[]){ 2, 4 }, 2, 1.0f);
    put_npy("d.bias.npy", (int64_t[]){ 4 }, 1, 1.0f);
    put_npy("c.kernel.npy", (int64_t[]){ 3, 8, 2 }, 3, 1.0f);
    put_npy("c.bias.npy", (int64_t[]){ 8 }, 1, 1.0f);
    put_model("c3", "[null, 2]", CHAIN3, W3);
}

Test(chain, stop_flag_seen_between_steps, .fini = remove_dir)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m;
    make_dir();
    put_chain3();
    cr_assert_eq(try_load("c3", &m, err), 0, "%s", err);
    atomic_bool stop = true;
    float x[2] = { 1, 2 }, y[40];
    int rc = dcv_model_infer(m, x, (int64_t[]){ 1, 2 }, 2, y, 40, &stop, err);
    cr_expect_eq(rc, DCV_ECANCELED, "%d %s", rc, err);
    cr_expect(strstr(err, "before 'd'"), "%s", err);
    atomic_store(&stop, false);
    cr_expect_eq(dcv_model_infer(m, x, (int64_t[]){ 1, 2 }, 2, y, 40, &stop, err), 0, "%s",
                 err);
    dcv_model_free(m);
}

Test(chain, arena_reused_and_big_ones_freed, .fini = remove_dir)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m;
    make_dir();
    put_chain3();
    cr_assert_eq(try_load("c3", &m, err), 0, "%s", err);
    float x[2 * 4] = { 1, 2, 3, 4, 5, 6, 7, 8 }, y[4 * 40];
    int64_t shape[2] = { 4, 2 };
    cr_assert_eq(dcv_model_infer(m, x, shape, 2, y, 160, NULL, err), 0, "%s", err);
    size_t bytes = dcv_chain_thread_bytes(), ebytes = dcv_engine_thread_bytes();
    cr_expect_eq(bytes, 2 * 16 * sizeof(float), "the arena holds two (4, 4) buffers");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(dcv_model_infer(m, x, shape, 2, y, 160, NULL, err), 0, "%s", err);
        cr_expect_eq(dcv_chain_thread_bytes(), bytes, "run %d grew the arena", i);
        cr_expect_eq(dcv_engine_thread_bytes(), ebytes, "run %d grew the engine's buffers", i);
    }
    /* a batch whose intermediates pass 16 MiB: the arena is let go after it */
    int64_t big[2] = { 600000, 2 };
    size_t nin = 600000 * 2, nout = 600000 * 40;
    float *bx = calloc(nin, sizeof *bx), *by = malloc(nout * sizeof *by);
    cr_assert(bx && by);
    cr_assert_eq(dcv_model_infer(m, bx, big, 2, by, nout, NULL, err), 0, "%s", err);
    cr_expect_eq(dcv_chain_thread_bytes(), 0);
    free(bx);
    free(by);
    dcv_model_free(m);
}

static void touch_later(const char *file, const int64_t *shape, int ndim)
{
    struct timespec pause = { 0, 20 * 1000 * 1000 };   /* ctime ticks at least this often */
    nanosleep(&pause, NULL);
    put_npy(file, shape, ndim, 1.0f);
}

Test(chain, fingerprint_covers_every_weights_file, .fini = remove_dir)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m;
    make_dir();
    put_chain3();
    cr_assert_eq(try_load("c3", &m, err), 0, "%s", err);
    cr_assert_eq(m->n_weight_files, 4);
    cr_expect_str_eq(m->weight_files[3], "c.bias.npy");
    cr_expect_eq(dcv_model_fingerprint(g_dir, "c3", m->weight_files, m->n_weight_files),
                 m->fingerprint);
    static const char *const files[] = { "d.kernel.npy", "d.bias.npy", "c.kernel.npy",
                                         "c.bias.npy" };
    static const int64_t shapes[4][3] = { { 2, 4 }, { 4 }, { 3, 8, 2 }, { 8 } };
    static const int ndims[4] = { 2, 1, 3, 1 };
    for (int i = 0; i < 4; i++) {
        uint64_t before = dcv_model_fingerprint(g_dir, "c3", m->weight_files,
                                                m->n_weight_files);
        touch_later(files[i], shapes[i], ndims[i]);
        cr_expect_neq(dcv_model_fingerprint(g_dir, "c3", m->weight_files, m->n_weight_files),
                      before, "rewriting %s went unnoticed", files[i]);
    }
    dcv_model_free(m);
}

/* ---- folds: a layer that absorbs BatchNormalization / an activation ------------- */

struct lstate {
    const struct dcv_layer_class *cls;
    void *st;
    struct dcv_shape in, out;
};

static struct lstate make_layer(const struct dcv_layer_class *cls, const char *cfg,
                                struct dcv_shape in, float *const *w)
{
    char err[DCV_ERRLEN];
    struct dcv_layer_ctx ctx = { DCV_KERAS_3, 1 << 20, 0 };
    struct lstate l = { cls, NULL, in, { 0 } };
    struct dcv_json *j = parse(cfg);
    cr_assert_eq(cls->parse(j, &ctx, &l.st, err), 0, "%s", err);
    dcv_json_free(j);
    cr_assert_eq(cls->shape(l.st, &in, &l.out, err), 0, "%s", err);
    cr_assert_eq(cls->bind(l.st, &in, w, err), 0, "%s", err);
    return l;
}

static void run_layer(struct lstate *l, const float *x, int64_t batch, float *y)
{
    char err[DCV_ERRLEN];
    struct dcv_shape is = l->in, os = l->out;
    is.d[0] = os.d[0] = batch;
    cr_assert_eq(l->cls->prepare(l->st, &l->in, err), 0, "%s", err);
    cr_assert_eq(l->cls->run(l->st, x, &is, y, &os, NULL, err), 0, "%s", err);
}

/* y[p][o] = act((sum_i x[p][i] k[i][o] + b[o]) * scale[o] + shift[o]) by hand,
 * k[i][o] read through its index function. */
static void reference(const float *x, int pixels, int cin, int cout, const float *k,
                      bool dense_layout, const float *b, const float *scale,
                      const float *shift, bool relu, float *y)
{
    for (int p = 0; p < pixels; p++)
        for (int o = 0; o < cout; o++) {
            double s = b[o];
            for (int i = 0; i < cin; i++)
                s += (double)x[p * cin + i] * k[dense_layout ? i * cout + o : o * cin + i];
            s = s * scale[o] + shift[o];
            y[p * cout + o] = (float)(relu && s < 0 ? 0 : s);
        }
}

static const float fx[12] = { 1, -2, 3, 0.5f, 1, -1, 2, 2, -3, 0, 1, 1 };
static const float fk[12] = { 1, 2, 3, 4, -1, 0, 1, 2, 0.5f, 0.5f, -2, 1 };
static const float fb[4] = { 0.5f, -1, 0, 2 };
static const float fscale[4] = { 2, -1, 0.5f, 3 }, fshift[4] = { -1, 0, 4, -5 };
static const float one[4] = { 1, 1, 1, 1 }, zero[4] = { 0 };

Test(chain, dense_absorbs_batchnorm_and_activation)
{
    char err[DCV_ERRLEN];
    float *w[2] = { (float *)fk, (float *)fb }, y[16], want[16];
    struct lstate l = make_layer(&dcv_layer_class_dense, "{\"name\": \"d\", \"units\": 4}",
                                 (struct dcv_shape){ 2, { -1, 3 } }, w);
    cr_assert_eq(l.cls->fold_affine(l.st, 1, fscale, fshift, err), 0, "%s", err);
    run_layer(&l, fx, 4, y);
    reference(fx, 4, 3, 4, fk, true, fb, fscale, fshift, false, want);
    expect_close(y, want, 16, 1e-6, 1);
    struct dcv_activation relu = { .kind = DCV_ACT_RELU, .max_value = INFINITY };
    cr_assert_eq(l.cls->fold_activation(l.st, &relu, err), 0, "%s", err);
    run_layer(&l, fx, 4, y);
    reference(fx, 4, 3, 4, fk, true, fb, fscale, fshift, true, want);
    expect_close(y, want, 16, 1e-6, 1);
    /* after an activation, neither another one nor an affine map can go in */
    cr_expect_eq(l.cls->fold_activation(l.st, &relu, err), DCV_EUNSUPP);
    cr_expect_eq(l.cls->fold_affine(l.st, 1, fscale, fshift, err), DCV_EUNSUPP);
    run_layer(&l, fx, 4, y);
    expect_close(y, want, 16, 1e-6, 1);
    l.cls->free_state(l.st);
}

Test(chain, dense_refuses_a_batchnorm_off_its_channel_axis)
{
    char err[DCV_ERRLEN];
    float *w[2] = { (float *)fk, NULL }, y[16], want[16];
    struct lstate l = make_layer(&dcv_layer_class_dense, "{\"name\": \"d\", \"units\": 4, "
                                 "\"use_bias\": false}", (struct dcv_shape){ 3, { -1, 2, 3 } },
                                 w);
    cr_expect_eq(l.cls->fold_affine(l.st, 1, fscale, fshift, err), DCV_EUNSUPP);
    cr_expect(strstr(err, "'d'"), "%s", err);
    run_layer(&l, fx, 2, y);          /* unchanged: no bias, no scale */
    reference(fx, 4, 3, 4, fk, true, zero, one, zero, false, want);
    expect_close(y, want, 16, 1e-6, 1);
    l.cls->free_state(l.st);
}

/* A 1x1 transposed convolution is a per-pixel Dense with a (1, 1, out, in)
 * kernel: channels_last folds on axis 3, channels_first on axis 1. */
Test(chain, conv_transpose_absorbs_batchnorm)
{
    char err[DCV_ERRLEN];
    float *w[2] = { (float *)fk, (float *)fb }, y[16], want[16];
    struct lstate l = make_layer(&dcv_layer_class_conv2d_transpose,
                                 "{\"name\": \"c\", \"filters\": 4, \"kernel_size\": 1}",
                                 (struct dcv_shape){ 4, { -1, 2, 2, 3 } }, w);
    cr_expect_eq(l.cls->fold_affine(l.st, 1, fscale, fshift, err), DCV_EUNSUPP);
    cr_assert_eq(l.cls->fold_affine(l.st, 3, fscale, fshift, err), 0, "%s", err);
    run_layer(&l, fx, 1, y);
    reference(fx, 4, 3, 4, fk, false, fb, fscale, fshift, false, want);
    expect_close(y, want, 16, 1e-6, 1);
    l.cls->free_state(l.st);
    l = make_layer(&dcv_layer_class_conv2d_transpose, "{\"name\": \"c\", \"filters\": 4, "
                   "\"kernel_size\": 1, \"data_format\": \"channels_first\"}",
                   (struct dcv_shape){ 4, { -1, 3, 1, 4 } }, w);
    cr_expect_eq(l.cls->fold_affine(l.st, 3, fscale, fshift, err), DCV_EUNSUPP);
    cr_assert_eq(l.cls->fold_affine(l.st, 1, fscale, fshift, err), 0, "%s", err);
    float xcf[12], ycf[16];
    for (int p = 0; p < 4; p++)              /* (1, 4, 3) pixels-major -> (1, 3, 4) */
        for (int c = 0; c < 3; c++) xcf[c * 4 + p] = fx[p * 3 + c];
    run_layer(&l, xcf, 1, ycf);
    for (int p = 0; p < 4; p++)
        for (int o = 0; o < 4; o++) y[p * 4 + o] = ycf[o * 4 + p];
    expect_close(y, want, 16, 1e-6, 1);
    l.cls->free_state(l.st);
}

/* bfloat16 chains: every weighted step computes on bf16-rounded values, so
 * the result stays within bf16's precision of the float32 one. */
Test(chain, bfloat16_dense_and_conv_transpose, .fini = remove_dir)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m32, *m16;
    make_dir();
    put_npy("d.kernel.npy", (int64_t[]){ 2, 4 }, 2, 1.0f);
    put_npy("d.bias.npy", (int64_t[]){ 4 }, 1, 1.0f);
    put_npy("c.kernel.npy", (int64_t[]){ 3, 8, 2 }, 3, 1.0f);
    put_npy("c.bias.npy", (int64_t[]){ 8 }, 1, 1.0f);
    put_model("f32", "[null, 2]", CHAIN3, W3);
    put_model("b16", "[null, 2]", "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", "
              "\"units\": 4, \"dtype\": \"mixed_bfloat16\"}}, {\"class_name\": \"Reshape\", "
              "\"config\": {\"name\": \"r\", \"target_shape\": [2, 2]}}, {\"class_name\": "
              "\"Conv1DTranspose\", \"config\": {\"name\": \"c\", \"filters\": 8, "
              "\"kernel_size\": 3, \"strides\": 2, \"dtype\": \"bfloat16\"}}", W3);
    cr_assert_eq(try_load("f32", &m32, err), 0, "%s", err);
    cr_assert_eq(try_load("b16", &m16, err), 0, "%s", err);
    float x[2] = { 0.7f, -1.3f }, y32[40], y16[40];
    cr_assert_eq(dcv_model_infer(m32, x, (int64_t[]){ 1, 2 }, 2, y32, 40, NULL, err), 0, "%s",
                 err);
    cr_assert_eq(dcv_model_infer(m16, x, (int64_t[]){ 1, 2 }, 2, y16, 40, NULL, err), 0, "%s",
                 err);
    bool differ = false;
    for (int i = 0; i < 40; i++) {
        cr_expect(fabsf(y16[i] - y32[i]) <= 0.05f * (1 + fabsf(y32[i])), "y[%d] %g vs %g", i,
                  (double)y16[i], (double)y32[i]);
        differ = differ || y16[i] != y32[i];
    }
    cr_expect(differ, "bfloat16 layers computed exactly as float32 ones");
    dcv_model_free(m32);
    dcv_model_free(m16);
}

/* A tf.keras 2 Functional chain: Keras names for input and output. */
Test(chain, functional_chain_loads_with_keras_names, .fini = remove_dir)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m;
    make_dir();
    put_file("fn.json", "{\"class_name\": \"Functional\", \"config\": {\"name\": \"f\", "
             "\"layers\": [{\"class_name\": \"InputLayer\", \"name\": \"z\", \"config\": "
             "{\"batch_input_shape\": [null, 2], \"name\": \"z\"}, \"inbound_nodes\": []}, "
             "{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"name\": \"d\", "
             "\"units\": 4}, \"inbound_nodes\": [[[\"z\", 0, 0, {}]]]}], "
             "\"input_layers\": [[\"z\", 0, 0]], \"output_layers\": [[\"d\", 0, 0]]}, "
             "\"weights\": " W_D "}");
    cr_assert_eq(try_load("fn", &m, err), 0, "%s", err);
    cr_expect_str_eq(dcv_model_class(m), "Functional");
    cr_expect_str_eq(m->input_name, "z");
    cr_expect_str_eq(m->output_name, "d");
    float x[2] = { 1, 1 }, y[4];
    cr_assert_eq(dcv_model_infer(m, x, (int64_t[]){ 1, 2 }, 2, y, 4, NULL, err), 0, "%s", err);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], (float)(6 + 2 * i));
    dcv_model_free(m);
}

/* The PNG range comes from the activation that ends the values: a folded
 * Activation layer counts, a BatchNormalization left after tanh does not. */
Test(chain, png_range_from_the_last_activation, .fini = remove_dir)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m;
    make_dir();
#define CT(act) "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"name\": \"c\", " \
    "\"filters\": 1, \"kernel_size\": 1, \"activation\": \"" act "\"}}"
#define BN_ "{\"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn\"}}"
#define W_C "{\"c\": {\"kernel\": [[[2]]], \"bias\": [0]}}"
    put_model("folded", "[null, 3, 1]", CT("linear") ", " BN_ ", {\"class_name\": "
              "\"Activation\", \"config\": {\"name\": \"a\", \"activation\": \"tanh\"}}", W_C);
    cr_assert_eq(try_load("folded", &m, err), 0, "%s", err);
    cr_expect(m->image.has_range && m->image.lo == -1.0f && m->image.hi == 1.0f);
    expect_fused(m, " bn>c a>c ");
    dcv_model_free(m);
    put_model("after", "[null, 3, 1]", CT("tanh") ", " BN_, W_C);
    cr_assert_eq(try_load("after", &m, err), 0, "%s", err);
    cr_expect(!m->image.has_range, "a BatchNormalization after tanh kept tanh's range");
    expect_fused(m, NULL);
    dcv_model_free(m);
}

/* max_weight_elems bounds each weight and the model's total. */
Test(chain, weights_bounded_one_by_one_and_in_total, .fini = remove_dir)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m = NULL;
    struct dcv_model_opts opts = { .max_weight_elems = 10 };
    make_dir();
    put_model("ok", "[null, 2]", DENSE_D, W_D);
    int rc = dcv_model_load(g_dir, "ok", &opts, &m, err);
    cr_expect_eq(rc, DCV_ETOOBIG, "%d %s", rc, err);
    cr_expect(strstr(err, "layer 'd' weight 'bias'") && strstr(err, "limit of 10"), "%s", err);
    cr_expect_null(m);
    opts.max_weight_elems = 12;
    cr_assert_eq(dcv_model_load(g_dir, "ok", &opts, &m, err), 0, "%s", err);
    dcv_model_free(m);
    opts.max_weight_elems = 4;
    put_model("big", "[null, 3]", "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", "
              "\"units\": 2, \"use_bias\": false}}", "{\"d\": {\"kernel\": [[1, 2], [3, 4], "
              "[5, 6]]}}");
    cr_expect_eq(dcv_model_load(g_dir, "big", &opts, &m, err), DCV_ETOOBIG, "%s", err);
    cr_expect(strstr(err, "layer 'd' weight 'kernel'"), "%s", err);
}

/* A BatchNormalization given no weights takes Keras's defaults: y = x / sqrt(1 + eps). */
Test(chain, batchnorm_defaults_when_weights_are_absent, .fini = remove_dir)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m;
    make_dir();
    put_model("bn", "[null, 3, 1]", CT("tanh") ", " BN_, W_C);
    cr_assert_eq(try_load("bn", &m, err), 0, "%s", err);
    float x[3] = { -1, 0.25f, 2 }, y[3];
    cr_assert_eq(dcv_model_infer(m, x, (int64_t[]){ 1, 3, 1 }, 3, y, 3, NULL, err), 0, "%s",
                 err);
    for (int i = 0; i < 3; i++) {
        double want = tanh(2.0 * x[i]) / sqrt(1.0 + 1e-3);   /* Keras 3's epsilon 1e-3 */
        cr_expect(fabs(y[i] - want) < 1e-6, "y[%d] = %g, want %g", i, (double)y[i], want);
    }
    dcv_model_free(m);
}
