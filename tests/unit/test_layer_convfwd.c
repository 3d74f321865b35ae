/* test_layer_convfwd.c — Conv1D/2D/3D registry entries against NumPy.
 *
 * Every case goes through the registry (layers.h: parse, shape, weights,
 * bind, folds, prepare, run) and is compared with tests/numpy_layers.py's
 * "conv" section, a float64 convolution written from TensorFlow's
 * definition: random configs over all ranks (padding, strides, dilation,
 * groups, data formats, bias, activations), BatchNormalization folded into
 * the kernel vs the NumPy conv followed by the BN formula, bf16 vs NumPy on
 * bf16-rounded operands. Refusals check the code and the argument named.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deconvd/conv.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layers.h"
#include "deconvd/npy.h"
#include "testutil.h"

#define NRANDOM 30

static uint64_t g_rng = 12;

static uint64_t next_u64(void)
{
    uint64_t z = (g_rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int64_t pick(int64_t lo, int64_t hi) { return lo + (int64_t)(next_u64() % (uint64_t)(hi - lo + 1)); }

static float *noise(size_t n, float amp)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = amp * (float)((double)(next_u64() >> 40) / 8388608.0 - 1.0);
    return p;
}

static const struct dcv_layer_ctx g_ctx = { DCV_KERAS_3, 0, 0 };

/* A layer instance built through the registry. */
struct inst {
    const struct dcv_layer_class *cls;
    void *state;
    struct dcv_shape in, out;
    float *w[2];
    int nw;
    int64_t wn[2];
};

static int make(const char *cls, const char *cfg_text, const struct dcv_shape *in,
                struct inst *l, char *err)
{
    memset(l, 0, sizeof *l);
    l->cls = dcv_layers_find(cls);
    cr_assert_not_null(l->cls, "no class %s", cls);
    struct dcv_json *cfg = dcv_json_parse(cfg_text, strlen(cfg_text), err);
    cr_assert_not_null(cfg, "%s: %s", cfg_text, err);
    int rc = l->cls->parse(cfg, &g_ctx, &l->state, err);
    dcv_json_free(cfg);
    if (rc) return rc;
    l->in = *in;
    return l->cls->shape(l->state, in, &l->out, err);
}

/* Random weights of the wanted shapes, bound. */
static int bind_random(struct inst *l, char *err)
{
    struct dcv_weight_want w[DCV_LAYER_MAX_WEIGHTS];
    int rc = l->cls->weights(l->state, &l->in, w, &l->nw, err);
    if (rc) return rc;
    for (int i = 0; i < l->nw; i++) {
        l->wn[i] = dcv_shape_product(w[i].shape.d, w[i].shape.ndim);
        l->w[i] = noise((size_t)l->wn[i], 0.5f);
    }
    return l->cls->bind(l->state, &l->in, l->w, err);
}

static void drop(struct inst *l)
{
    if (l->state) l->cls->free_state(l->state);
    free(l->w[0]);
    free(l->w[1]);
    memset(l, 0, sizeof *l);
}

static size_t count(const struct dcv_shape *s)
{
    return (size_t)dcv_shape_product(s->d, s->ndim);
}

static int run(struct inst *l, const float *x, float **y, const atomic_bool *stop, char *err)
{
    *y = malloc(sizeof(float) * count(&l->out));
    cr_assert_not_null(*y);
    return l->cls->run(l->state, x, &l->in, *y, &l->out, stop, err);
}

/* ---- the NumPy side ---------------------------------------------------- */

static int sh(const char *cmd)
{
    int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char g_dir[] = "/tmp/dcvconvfwd.XXXXXX";

static void cleanup(void)
{
    char cmd[64];
    if (strchr(g_dir, 'X')) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (sh(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

static void setup(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy' >/dev/null 2>&1", tu_python());
    if (sh(cmd) != 0) cr_skip_test("%s cannot import numpy", tu_python());
    cr_assert_not_null(tu_mkdtemp(g_dir));
}

/* tests/numpy_layers.py from the repository root (where make runs), else
 * next to this file's directory. */
static const char *reference(void)
{
    static char buf[512];
    if (access("tests/numpy_layers.py", R_OK) == 0) return "tests/numpy_layers.py";
    snprintf(buf, sizeof buf, "%s", __FILE__);
    char *cut = strstr(buf, "unit/test_layer_convfwd.c");
    cr_assert_not_null(cut, "cannot find tests/numpy_layers.py");
    strcpy(cut, "numpy_layers.py");
    return buf;
}

static void save(const char *dir, const char *name, const float *v, const int64_t *shape,
                 int nd)
{
    char path[256], err[DCV_ERRLEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(dcv_npy_save(path, v, shape, nd, err), 0, "%s", err);
}

/* Writes case i (layers.json, x.npy, weights) for one conv layer. */
static void write_case(int i, const char *cls, const char *cfg, const struct inst *l,
                       const float *x, float *const *w)
{
    char dir[128], path[160], text[4096];
    struct dcv_weight_want want[DCV_LAYER_MAX_WEIGHTS];
    int n;
    char err[DCV_ERRLEN];
    snprintf(dir, sizeof dir, "%s/c%d", g_dir, i);
    cr_assert_eq(mkdir(dir, 0700), 0);
    save(dir, "x.npy", x, l->in.d, l->in.ndim);
    cr_assert_eq(l->cls->weights(l->state, &l->in, want, &n, err), 0, "%s", err);
    save(dir, "w0.npy", w[0], want[0].shape.d, want[0].shape.ndim);
    if (n > 1) save(dir, "w1.npy", w[1], want[1].shape.d, want[1].shape.ndim);
    int len = snprintf(text, sizeof text, "{\"keras\": 3, \"layers\": [{\"class_name\": "
                       "\"%s\", \"config\": %s, \"weights\": [\"w0.npy\"%s]}]}", cls, cfg,
                       n > 1 ? ", \"w1.npy\"" : "");
    snprintf(path, sizeof path, "%s/layers.json", dir);
    cr_assert_eq(tu_write_file(path, text, (size_t)len), 0);
}

static void run_reference(int ncases)
{
    size_t cap = 256 + (size_t)ncases * 64;
    char *cmd = malloc(cap);
    cr_assert_not_null(cmd);
    size_t n = (size_t)snprintf(cmd, cap, "'%s' '%s'", tu_python(), reference());
    for (int i = 0; i < ncases; i++)
        n += (size_t)snprintf(cmd + n, cap - n, " '%s/c%d'", g_dir, i);
    int rc = sh(cmd);
    free(cmd);
    cr_assert_eq(rc, 0, "numpy_layers.py failed");
}

/* out.npy of case i: shape must be out's. Caller releases. */
static void load_ref(int i, const struct dcv_shape *out, struct dcv_npy *ref)
{
    char path[160], err[DCV_ERRLEN];
    snprintf(path, sizeof path, "%s/c%d/out.npy", g_dir, i);
    cr_assert_eq(dcv_npy_load(path, 0, ref, err), 0, "%s", err);
    cr_assert_eq(ref->ndim, out->ndim, "case %d: rank %d vs %d", i, ref->ndim, out->ndim);
    for (int d = 0; d < out->ndim; d++)
        cr_assert_eq(ref->shape[d], out->d[d], "case %d dim %d: numpy %lld, layer %lld", i, d,
                     (long long)ref->shape[d], (long long)out->d[d]);
}

static void expect_close(const char *what, const float *got, const float *want, size_t n,
                         double tol)
{
    for (size_t j = 0; j < n; j++)
        cr_assert(fabs((double)got[j] - want[j]) <= tol * (1.0 + fabs((double)want[j])),
                  "%s: value %zu is %.8g, NumPy says %.8g", what, j, got[j], want[j]);
}

/* ---- random configs ---------------------------------------------------- */

struct rcase {
    char cls[16], cfg[1024];
    struct dcv_shape in;
};

static void tuple(char *buf, size_t cap, const int64_t *v, int rank)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)v[i]);
    snprintf(buf + n, cap - n, "]");
}

static void random_case(int i, struct rcase *c)
{
    static const char *const acts[] = { "linear", "relu", "tanh", "sigmoid", "elu",
                                        "softplus", "selu", "swish", "softmax", "relu6",
                                        "leaky_relu" };
    int rank = (int)(i % 3) + 1;
    bool cf = pick(0, 2) == 0, bias = pick(0, 3) != 0, dil = pick(0, 2) == 0;
    int64_t g = pick(1, 3), cin = g * pick(1, 3), f = g * pick(1, 3);
    int64_t k[3], s[3], d[3], sp[3];
    const char *pad = pick(0, 1) ? "same" : "valid";
    if (rank == 1 && pick(0, 2) == 0) pad = "causal";
    for (int j = 0; j < rank; j++) {
        k[j] = pick(1, rank == 3 ? 3 : 4);
        d[j] = dil ? pick(1, 3) : 1;
        s[j] = dil ? 1 : pick(1, 3);
        sp[j] = (k[j] - 1) * d[j] + 1 + pick(0, rank == 3 ? 4 : 9);
    }
    char ks[64], ss[64], ds[64];
    tuple(ks, sizeof ks, k, rank);
    tuple(ss, sizeof ss, s, rank);
    tuple(ds, sizeof ds, d, rank);
    snprintf(c->cls, sizeof c->cls, i % 4 == 3 ? "Convolution%dD" : "Conv%dD", rank);
    snprintf(c->cfg, sizeof c->cfg,
             "{\"name\": \"conv_%d\", \"filters\": %lld, \"kernel_size\": %s, \"strides\": %s, "
             "\"padding\": \"%s\", \"data_format\": \"%s\", \"dilation_rate\": %s, "
             "\"groups\": %lld, \"activation\": \"%s\", \"use_bias\": %s, "
             "\"kernel_regularizer\": null, \"bias_constraint\": null}",
             i, (long long)f, ks, ss, pad, cf ? "channels_first" : "channels_last", ds,
             (long long)g, acts[pick(0, sizeof acts / sizeof *acts - 1)],
             bias ? "true" : "false");
    c->in.ndim = rank + 2;
    c->in.d[0] = pick(1, 3);
    c->in.d[cf ? 1 : rank + 1] = cin;
    for (int j = 0; j < rank; j++) c->in.d[(cf ? 2 : 1) + j] = sp[j];
}

Test(layer_convfwd, random_configs_match_numpy, .init = setup, .fini = cleanup)
{
    struct rcase cs[NRANDOM];
    struct inst l[NRANDOM];
    float *x[NRANDOM], *y[NRANDOM];
    char err[DCV_ERRLEN];
    for (int i = 0; i < NRANDOM; i++) {
        random_case(i, &cs[i]);
        cr_assert_eq(make(cs[i].cls, cs[i].cfg, &cs[i].in, &l[i], err), 0, "%s: %s",
                     cs[i].cfg, err);
        cr_assert_eq(bind_random(&l[i], err), 0, "%s", err);
        cr_assert_eq(l[i].cls->prepare(l[i].state, &l[i].in, err), 0, "%s: %s", cs[i].cfg,
                     err);
        x[i] = noise(count(&l[i].in), 1.0f);
        cr_assert_eq(run(&l[i], x[i], &y[i], NULL, err), 0, "%s: %s", cs[i].cfg, err);
        write_case(i, cs[i].cls, cs[i].cfg, &l[i], x[i], l[i].w);
    }
    run_reference(NRANDOM);
    for (int i = 0; i < NRANDOM; i++) {
        struct dcv_npy ref;
        load_ref(i, &l[i].out, &ref);
        expect_close(cs[i].cfg, y[i], ref.data, count(&l[i].out), 1e-4);
        dcv_npy_release(&ref);
        free(x[i]);
        free(y[i]);
        drop(&l[i]);
    }
}

/* ---- BatchNormalization folded ----------------------------------------- */

/* Conv (linear, the NumPy reference) then BN computed here from
 * gamma/beta/mean/variance, vs fold_affine (and a ReLU folded after) then
 * run: channels last and first. */
Test(layer_convfwd, batchnorm_fold_matches_conv_then_bn, .init = setup, .fini = cleanup)
{
    static const char *const cfgs[] = {
        "{\"filters\": 6, \"kernel_size\": [3, 2], \"padding\": \"same\", \"strides\": 2, "
        "\"use_bias\": false}",
        "{\"filters\": 4, \"kernel_size\": 3, \"data_format\": \"channels_first\", "
        "\"groups\": 2}",
    };
    const struct dcv_shape ins[] = { { 4, { 2, 7, 6, 3 } }, { 4, { 1, 4, 6, 5 } } };
    char err[DCV_ERRLEN];
    for (int i = 0; i < 2; i++) {
        struct inst l;
        float *y, *x;
        cr_assert_eq(make("Conv2D", cfgs[i], &ins[i], &l, err), 0, "%s", err);
        cr_assert_eq(bind_random(&l, err), 0, "%s", err);
        x = noise(count(&l.in), 1.0f);
        write_case(i, "Conv2D", cfgs[i], &l, x, l.w);
        int64_t f = l.out.d[i ? 1 : 3];
        double gamma[8], beta[8], mean[8], var[8], eps = 1e-3;
        float scale[8], shift[8];
        for (int c = 0; c < f; c++) {
            gamma[c] = 0.5 + 0.1 * c, beta[c] = 0.2 * c - 0.3, mean[c] = 0.05 * c;
            var[c] = 0.5 + 0.25 * c;
            scale[c] = (float)(gamma[c] / sqrt(var[c] + eps));
            shift[c] = (float)(beta[c] - mean[c] * gamma[c] / sqrt(var[c] + eps));
        }
        int axis = i ? 1 : -1;
        cr_assert_eq(l.cls->fold_affine(l.state, axis, scale, shift, err), 0, "%s", err);
        struct dcv_activation relu = { .kind = DCV_ACT_RELU, .max_value = INFINITY };
        cr_assert_eq(l.cls->fold_activation(l.state, &relu, err), 0, "%s", err);
        cr_assert_eq(l.cls->prepare(l.state, &l.in, err), 0, "%s", err);
        cr_assert_eq(run(&l, x, &y, NULL, err), 0, "%s", err);
        run_reference(i + 1);
        struct dcv_npy ref;
        load_ref(i, &l.out, &ref);
        size_t n = count(&l.out), plane = i ? n / (size_t)(l.out.d[0] * f) : 1;
        for (size_t j = 0; j < n; j++) {
            size_t c = i ? (j / plane) % (size_t)f : j % (size_t)f;
            double bn = gamma[c] * (ref.data[j] - mean[c]) / sqrt(var[c] + eps) + beta[c];
            ref.data[j] = (float)(bn > 0 ? bn : 0);
        }
        expect_close(cfgs[i], y, ref.data, n, 1e-4);
        dcv_npy_release(&ref);
        free(x);
        free(y);
        drop(&l);
    }
}

/* ---- bf16 --------------------------------------------------------------- */

/* A bf16 layer computes on bf16-rounded inputs and weights with f32
 * accumulation: NumPy gets the rounded operands. Native and emulated. */
Test(layer_convfwd, bf16_matches_numpy_on_rounded_operands, .init = setup, .fini = cleanup)
{
    const char *cfg = "{\"filters\": 8, \"kernel_size\": [3, 3], \"padding\": \"same\", "
                      "\"groups\": 2, \"dtype\": {\"module\": \"keras\", \"class_name\": "
                      "\"DTypePolicy\", \"config\": {\"name\": \"mixed_bfloat16\"}}}";
    const struct dcv_shape in = { 4, { 2, 9, 7, 4 } };
    char err[DCV_ERRLEN];
    for (int em = 0; em < 2; em++) {
        struct inst l;
        float *y, *x, *r[2];
        dcv_engine_force_bf16_emulation(em == 1);
        cr_assert_eq(make("Conv2D", cfg, &in, &l, err), 0, "%s", err);
        cr_assert_eq(bind_random(&l, err), 0, "%s", err);
        cr_assert_eq(l.cls->prepare(l.state, &l.in, err), 0, "%s", err);
        x = noise(count(&l.in), 1.0f);
        cr_assert_eq(run(&l, x, &y, NULL, err), 0, "%s", err);
        float *xr = tu_bf16_copy(x, count(&l.in));
        r[0] = tu_bf16_copy(l.w[0], (size_t)l.wn[0]);
        r[1] = l.w[1];                       /* the bias is added in f32 */
        write_case(em, "Conv2D", cfg, &l, xr, r);
        run_reference(em + 1);
        struct dcv_npy ref;
        load_ref(em, &l.out, &ref);
        expect_close(em ? "bf16 emulated" : "bf16", y, ref.data, count(&l.out), 1e-4);
        dcv_npy_release(&ref);
        free(xr);
        free(r[0]);
        free(x);
        free(y);
        drop(&l);
    }
    dcv_engine_force_bf16_emulation(false);
}

/* ---- stop flag, work, registry, config ---------------------------------- */

Test(layer_convfwd, stop_flag_cancels_the_run)
{
    struct inst l;
    float *y, *x;
    char err[DCV_ERRLEN];
    atomic_bool stop = true;
    const struct dcv_shape in = { 3, { 4, 50, 3 } };
    cr_assert_eq(make("Conv1D", "{\"filters\": 2, \"kernel_size\": 3}", &in, &l, err), 0);
    cr_assert_eq(bind_random(&l, err), 0, "%s", err);
    cr_assert_eq(l.cls->prepare(l.state, &l.in, err), 0, "%s", err);
    x = noise(count(&l.in), 1.0f);
    assert_err(run(&l, x, &y, &stop, err), DCV_ECANCELED, err, "stopped");
    free(y);
    atomic_store(&stop, false);
    cr_assert_eq(run(&l, x, &y, &stop, err), 0, "%s", err);
    free(y);
    free(x);
    drop(&l);
}

/* batch * out positions * prod(kernel) * in/groups * filters */
Test(layer_convfwd, work_counts_output_positions)
{
    struct inst l;
    char err[DCV_ERRLEN];
    const struct dcv_shape in = { 4, { 3, 10, 9, 6 } };
    cr_assert_eq(make("Conv2D", "{\"filters\": 4, \"kernel_size\": [3, 2], \"strides\": 2, "
                      "\"groups\": 2}", &in, &l, err), 0, "%s", err);
    /* VALID: out (10-3)/2+1 = 4, (9-2)/2+1 = 4 */
    cr_assert_eq(l.out.d[1], 4);
    cr_assert_eq(l.out.d[2], 4);
    cr_assert_eq(l.cls->work(l.state, &l.in), (uint64_t)3 * 16 * 6 * 3 * 4);
    drop(&l);
}

Test(layer_convfwd, shapes_follow_keras_conv_output_length)
{
    struct inst l;
    char err[DCV_ERRLEN];
    const struct dcv_shape in = { 3, { -1, 11, 2 } }, cf = { 5, { 1, 2, 5, 6, 7 } };
    cr_assert_eq(make("Conv1D", "{\"filters\": 3, \"kernel_size\": 4, \"padding\": \"same\", "
                      "\"strides\": 3}", &in, &l, err), 0, "%s", err);
    cr_assert_eq(l.out.d[0], -1);
    cr_assert_eq(l.out.d[1], 4);                   /* ceil(11/3) */
    drop(&l);
    cr_assert_eq(make("Conv1D", "{\"filters\": 3, \"kernel_size\": 4, \"padding\": \"causal\", "
                      "\"dilation_rate\": 2}", &in, &l, err), 0, "%s", err);
    cr_assert_eq(l.out.d[1], 11);
    drop(&l);
    cr_assert_eq(make("Conv3D", "{\"filters\": 5, \"kernel_size\": 2, \"data_format\": "
                      "\"channels_first\"}", &cf, &l, err), 0, "%s", err);
    cr_assert_eq(l.out.d[1], 5);
    cr_assert_eq(l.out.d[2], 4);
    cr_assert_eq(l.out.d[3], 5);
    cr_assert_eq(l.out.d[4], 6);
    drop(&l);
}

Test(layer_convfwd, registry_names_and_config)
{
    static const char *const names[] = { "Conv1D", "Convolution2D", "conv_3d", "conv2d" };
    static const char *const want[] = { "Conv1D", "Conv2D", "Conv3D", "Conv2D" };
    for (int i = 0; i < 4; i++) {
        const struct dcv_layer_class *c = dcv_layers_find(names[i]);
        cr_assert_not_null(c, "%s", names[i]);
        cr_assert_str_eq(c->name, want[i]);
    }
    cr_assert_not_null(strstr(dcv_layers_supported(), "Conv3D"));
    struct inst l;
    char err[DCV_ERRLEN];
    const struct dcv_shape in = { 4, { 1, 8, 8, 2 } };
    cr_assert_eq(make("Conv2D", "{\"name\": \"c\", \"filters\": 2, \"kernel_size\": 3, "
                      "\"padding\": \"SAME\", \"kernel_regularizer\": {\"class_name\": \"L2\", "
                      "\"config\": {\"l2\": 0.01}}, \"lora_rank\": null}", &in, &l, err), 0,
                 "%s", err);
    struct dcv_json *cfg = l.cls->config(l.state);
    char *s = dcv_json_print(cfg);
    cr_assert_not_null(strstr(s, "\"padding\":\"same\""), "%s", s);
    cr_assert_not_null(strstr(s, "\"groups\":1"), "%s", s);
    cr_assert_not_null(strstr(s, "\"kernel_size\":[3,3]"), "%s", s);
    cr_assert_not_null(strstr(s, "\"kernel_regularizer\":{"), "%s", s);
    cr_assert_not_null(strstr(s, "\"lora_rank\""), "%s", s);
    cr_assert_not_null(strstr(s, "glorot_uniform") ? s : strstr(s, "GlorotUniform"), "%s", s);
    cr_assert_eq(l.cls->activation(l.state)->kind, DCV_ACT_LINEAR);
    free(s);
    dcv_json_free(cfg);
    drop(&l);
}

/* Weights absent: the initializers fill them (has_default). */
Test(layer_convfwd, initializers_fill_absent_weights)
{
    struct inst l;
    char err[DCV_ERRLEN];
    struct dcv_weight_want w[DCV_LAYER_MAX_WEIGHTS];
    int n;
    float *none[2] = { NULL, NULL }, *y, *x;
    const struct dcv_shape in = { 3, { 1, 9, 4 } };
    cr_assert_eq(make("Conv1D", "{\"filters\": 2, \"kernel_size\": 2, \"groups\": 2, "
                      "\"bias_initializer\": \"ones\"}", &in, &l, err), 0, "%s", err);
    cr_assert_eq(l.cls->weights(l.state, &l.in, w, &n, err), 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(w[0].name, "kernel");
    cr_assert_eq(w[0].shape.ndim, 3);
    cr_assert_eq(w[0].shape.d[1], 2);               /* in_channels / groups */
    cr_assert_eq(w[0].shape.d[2], 2);
    cr_assert(w[0].has_default && w[1].has_default);
    cr_assert_eq(l.cls->bind(l.state, &l.in, none, err), 0, "%s", err);
    cr_assert_eq(l.cls->prepare(l.state, &l.in, err), 0, "%s", err);
    x = calloc(count(&l.in), sizeof(float));
    cr_assert_eq(run(&l, x, &y, NULL, err), 0, "%s", err);
    for (size_t j = 0; j < count(&l.out); j++) cr_assert_eq(y[j], 1.0f);  /* 0 * k + 1 */
    free(x);
    free(y);
    drop(&l);
}

/* ---- refusals ------------------------------------------------------------ */

static void refuse(const char *cls, const char *cfg, struct dcv_shape in, int code,
                   const char *sub)
{
    struct inst l;
    char err[DCV_ERRLEN] = "";
    int rc = make(cls, cfg, &in, &l, err);
    assert_err(rc, code, err, sub);
    drop(&l);
}

Test(layer_convfwd, refusals_name_the_argument)
{
    const struct dcv_shape in2 = { 4, { 1, 8, 8, 6 } }, in1 = { 3, { 1, 8, 6 } };
    refuse("Conv2D", "{\"filters\": 5, \"kernel_size\": 3, \"groups\": 2}", in2, DCV_EINVAL,
           "groups");
    refuse("Conv2D", "{\"filters\": 4, \"kernel_size\": 3, \"groups\": 4}", in2, DCV_ESHAPE,
           "groups");
    refuse("Conv2D", "{\"filters\": 4, \"kernel_size\": 3, \"groups\": 0}", in2, DCV_EINVAL,
           "groups");
    refuse("Conv2D", "{\"filters\": 4, \"kernel_size\": 3, \"strides\": 2, "
           "\"dilation_rate\": 2}", in2, DCV_EINVAL, "dilation_rate");
    refuse("Conv2D", "{\"filters\": 4, \"kernel_size\": 3, \"padding\": \"causal\"}", in2,
           DCV_EINVAL, "causal");
    refuse("Conv1D", "{\"filters\": 4, \"kernel_size\": 3, \"padding\": \"full\"}", in1,
           DCV_EINVAL, "padding");
    refuse("Conv1D", "{\"kernel_size\": 3}", in1, DCV_EINVAL, "filters");
    refuse("Conv1D", "{\"filters\": 2}", in1, DCV_EINVAL, "kernel_size");
    refuse("Conv1D", "{\"filters\": 2, \"kernel_size\": [3, 3]}", in1, DCV_EINVAL,
           "kernel_size");
    refuse("Conv1D", "{\"filters\": 2, \"kernel_size\": 3, \"data_format\": \"nwc\"}", in1,
           DCV_EINVAL, "data_format");
    refuse("Conv1D", "{\"filters\": 2, \"kernel_size\": 3, \"activation\": \"nope\"}", in1,
           DCV_EINVAL, "nope");
    refuse("Conv1D", "{\"filters\": 2, \"kernel_size\": 3, \"dtype\": \"float16\"}", in1,
           DCV_EUNSUPP, "dtype");
    refuse("Conv1D", "{\"filters\": 2, \"kernel_size\": 9}", in1, DCV_ESHAPE, "Conv1D");
    refuse("Conv1D", "{\"filters\": 2, \"kernel_size\": 3}", in2, DCV_ESHAPE, "rank");
}

Test(layer_convfwd, folds_refused_where_they_would_change_the_result)
{
    struct inst l;
    char err[DCV_ERRLEN];
    float one[4] = { 1, 1, 1, 1 }, zero[4] = { 0 };
    struct dcv_activation relu = { .kind = DCV_ACT_RELU, .max_value = INFINITY };
    const struct dcv_shape in = { 4, { 1, 5, 5, 2 } };
    cr_assert_eq(make("Conv2D", "{\"filters\": 4, \"kernel_size\": 2, \"activation\": "
                      "\"tanh\"}", &in, &l, err), 0, "%s", err);
    cr_assert_eq(bind_random(&l, err), 0, "%s", err);
    assert_err(l.cls->fold_affine(l.state, 3, one, zero, err), DCV_EUNSUPP, err, "tanh");
    assert_err(l.cls->fold_activation(l.state, &relu, err), DCV_EUNSUPP, err, "tanh");
    drop(&l);
    cr_assert_eq(make("Conv2D", "{\"filters\": 4, \"kernel_size\": 2}", &in, &l, err), 0);
    cr_assert_eq(bind_random(&l, err), 0, "%s", err);
    assert_err(l.cls->fold_affine(l.state, 1, one, zero, err), DCV_EUNSUPP, err, "axis 1");
    drop(&l);
}

/* Chunked runs (the stop flag's checkpoints) give the whole run's values,
 * and f32 forward convolutions get a JIT implementation, not oneDNN's
 * reference loops. */
Test(layer_convfwd, chunked_run_equals_whole_run_on_a_jit_kernel)
{
    struct dcv_conv c = { .rank = 2, .in_channels = 8, .filters = 16, .kernel = { 3, 3 },
                          .strides = { 1, 1 }, .dilation = { 1, 1 },
                          .padding = DCV_PADDING_SAME, .use_bias = true, .forward = true,
                          .act = { .kind = DCV_ACT_RELU, .max_value = INFINITY } };
    struct dcv_engine_kernel *k;
    struct dcv_engine_stats st;
    char err[DCV_ERRLEN];
    int64_t sp[2] = { 12, 10 }, n = 5 * 12 * 10;
    float *w = noise(3 * 3 * 8 * 16, 0.5f), *b = noise(16, 0.5f), *x = noise((size_t)n * 8, 1);
    float *whole = malloc(sizeof(float) * (size_t)n * 16), *parts = malloc(sizeof(float) * (size_t)n * 16);
    cr_assert_eq(dcv_engine_kernel_create(&c, w, b, 0, sp, &k, err), 0, "%s", err);
    cr_assert_eq(dcv_engine_run(k, x, 5, sp, sp, whole, NULL, err), 0, "%s", err);
    dcv_engine_set_chunk_items(2);
    cr_assert_eq(dcv_engine_run(k, x, 5, sp, sp, parts, NULL, err), 0, "%s", err);
    dcv_engine_set_chunk_items(0);
    cr_assert_eq(memcmp(whole, parts, sizeof(float) * (size_t)n * 16), 0);
    dcv_engine_kernel_stats(k, &st);
    cr_assert_geq(st.chunked_runs, 1);
    cr_assert(strncmp(st.impl, "ref", 3) != 0, "implementation %s", st.impl);
    dcv_engine_kernel_free(k);
    free(w), free(b), free(x), free(whole), free(parts);
}

/* A very wide forward convolution gets a direct JIT kernel, not oneDNN's
 * brgemm one, whose creation grows with the width (~4 us a column: a 1 KB
 * model file made the daemon spend 6.9 s and 1.2 GB creating one), and
 * still computes the convolution (checked against a plain loop). */
Test(layer_convfwd, a_very_wide_convolution_is_created_fast_and_right)
{
    enum { W = 1 << 17, IC = 8, OC = 8, K = 3 };
    struct dcv_conv c = { .rank = 1, .in_channels = IC, .filters = OC, .kernel = { K },
                          .strides = { 1 }, .dilation = { 1 }, .padding = DCV_PADDING_SAME,
                          .use_bias = true, .forward = true, .act = { .kind = DCV_ACT_LINEAR } };
    struct dcv_engine_kernel *k;
    struct dcv_engine_stats st;
    char err[DCV_ERRLEN];
    int64_t sp[1] = { W };
    float *w = noise(K * IC * OC, 0.5f), *b = noise(OC, 0.5f), *x = noise((size_t)W * IC, 1);
    float *y = malloc(sizeof(float) * (size_t)W * OC);
    cr_assert_eq(dcv_engine_kernel_create(&c, w, b, 0, sp, &k, err), 0, "%s", err);
    cr_assert_eq(dcv_engine_run(k, x, 1, sp, sp, y, NULL, err), 0, "%s", err);
    dcv_engine_kernel_stats(k, &st);
    cr_assert(strncmp(st.impl, "brg", 3) != 0 && strncmp(st.impl, "ref", 3) != 0,
              "implementation %s", st.impl);
    double worst = 0;
    for (int64_t i = 0; i < W; i += 997) {          /* every 997th column, both edges */
        for (int o = 0; o < OC; o++) {
            double want = b[o];
            for (int t = 0; t < K; t++) {
                int64_t j = i + t - 1;
                if (j < 0 || j >= W) continue;
                for (int ci = 0; ci < IC; ci++)
                    want += (double)x[j * IC + ci] * w[(t * IC + ci) * OC + o];
            }
            double e = fabs(y[i * OC + o] - want) / (fabs(want) > 1 ? fabs(want) : 1);
            if (e > worst) worst = e;
        }
    }
    cr_assert_lt(worst, 1e-5, "worst relative error %g", worst);
    dcv_engine_kernel_free(k);
    free(w), free(b), free(x), free(y);
}

/* Whole get_config() dicts as Keras 3.15 (DTypePolicy, serialized
 * initializers, every regularizer/constraint key) and tf.keras 2 (plain
 * dtype, batch_input_shape, causal Conv1D) write them. */
Test(layer_convfwd, keras3_and_tf_keras2_configs_parse)
{
    static const char k3[] =
        "{\"name\": \"conv2d\", \"trainable\": true, \"dtype\": {\"module\": \"keras\", "
        "\"class_name\": \"DTypePolicy\", \"config\": {\"name\": \"float32\"}, "
        "\"registered_name\": null}, \"filters\": 8, \"kernel_size\": [3, 3], \"strides\": "
        "[1, 1], \"padding\": \"same\", \"data_format\": \"channels_last\", \"dilation_rate\": "
        "[1, 1], \"groups\": 1, \"activation\": \"relu\", \"use_bias\": true, "
        "\"kernel_initializer\": {\"module\": \"keras.initializers\", \"class_name\": "
        "\"GlorotUniform\", \"config\": {\"seed\": null}, \"registered_name\": null}, "
        "\"bias_initializer\": {\"module\": \"keras.initializers\", \"class_name\": \"Zeros\", "
        "\"config\": {}, \"registered_name\": null}, \"kernel_regularizer\": null, "
        "\"bias_regularizer\": null, \"activity_regularizer\": null, \"kernel_constraint\": "
        "null, \"bias_constraint\": null}";
    static const char k2[] =
        "{\"name\": \"conv1d\", \"trainable\": true, \"batch_input_shape\": [null, 16, 2], "
        "\"dtype\": \"float32\", \"filters\": 4, \"kernel_size\": [5], \"strides\": [1], "
        "\"padding\": \"causal\", \"data_format\": \"channels_last\", \"dilation_rate\": [2], "
        "\"groups\": 2, \"activation\": \"linear\", \"use_bias\": true, "
        "\"kernel_initializer\": {\"class_name\": \"GlorotUniform\", \"config\": {\"seed\": "
        "null}}, \"bias_initializer\": {\"class_name\": \"Zeros\", \"config\": {}}, "
        "\"kernel_regularizer\": {\"class_name\": \"L2\", \"config\": {\"l2\": 0.01}}, "
        "\"bias_regularizer\": null, \"activity_regularizer\": null, \"kernel_constraint\": "
        "{\"class_name\": \"MaxNorm\", \"config\": {\"max_value\": 2, \"axis\": 0}}, "
        "\"bias_constraint\": null}";
    const struct dcv_shape in2 = { 4, { 1, 6, 6, 3 } }, in1 = { 3, { 2, 16, 2 } };
    struct inst l;
    char err[DCV_ERRLEN];
    cr_assert_eq(make("Conv2D", k3, &in2, &l, err), 0, "%s", err);
    cr_assert_eq(l.cls->activation(l.state)->kind, DCV_ACT_RELU);
    cr_assert_eq(l.out.d[1], 6);
    drop(&l);
    cr_assert_eq(make("Conv1D", k2, &in1, &l, err), 0, "%s", err);
    cr_assert_eq(l.out.d[1], 16);
    cr_assert_eq(l.out.d[2], 4);
    struct dcv_json *cfg = l.cls->config(l.state);
    char *s = dcv_json_print(cfg);
    cr_assert_not_null(strstr(s, "\"padding\":\"causal\""), "%s", s);
    cr_assert_not_null(strstr(s, "MaxNorm"), "%s", s);
    free(s);
    dcv_json_free(cfg);
    drop(&l);
}
