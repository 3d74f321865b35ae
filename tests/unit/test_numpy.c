/* test_numpy.c — the engine against tests/numpy_ref.py, an independent
 * NumPy implementation of TensorFlow's conv_transpose rule.
 *
 * Random cases (fixed seed) are written as .npy files plus params.json into
 * a temporary directory; half of them run as model files whose weights are
 * those .npy paths (layer → model → engine, Keras output lengths), half
 * straight through dcv_engine_kernel_create/run with any output size
 * TensorFlow accepts (strides together with dilations allowed). One Python
 * run computes every reference; outputs and shapes must agree.
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

#include "deconvd/activation.h"
#include "deconvd/conv.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/model.h"
#include "deconvd/npy.h"
#include "testutil.h"

#define NCASES 24
#define TOL 1e-4

struct nrng { uint64_t s; };

static uint64_t nrng_u64(struct nrng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int64_t nrng_int(struct nrng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(nrng_u64(r) % (uint64_t)(hi - lo + 1));
}

static float *nrng_buf(struct nrng *r, size_t n, float amp)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = amp * (float)((double)(nrng_u64(r) >> 40) / 8388608.0 - 1.0);
    return p;
}

struct ncase {
    int rank;
    bool cf, same, bias, via_model, has_op;
    int bf16;                  /* engine cases: 1 bf16, 2 bf16 emulated */
    int64_t batch, cin, cout;
    int64_t k[3], s[3], d[3], in[3], out[3], op[3];
    const char *act;
    /* engine result */
    int64_t oshape[5];
    int ondim;
    float *y;
    size_t ny;
};

static int64_t eff(int64_t k, int64_t d) { return (k - 1) * d + 1; }

static int64_t keras_out(int64_t n, int64_t k, int64_t s, int64_t d, bool same, int64_t op)
{
    int64_t ke = eff(k, d);
    if (op < 0) return same ? n * s : n * s + (ke > s ? ke - s : 0);
    return (n - 1) * s + ke - 2 * (same ? ke / 2 : 0) + op;
}

static bool consistent(const struct ncase *c)
{
    for (int j = 0; j < c->rank; j++) {
        int64_t n = c->in[j], o = c->out[j], s = c->s[j], ke = eff(c->k[j], c->d[j]);
        if (o < 1) return false;
        if (c->same ? (o + s - 1) / s != n : (o < ke || (o - ke) / s + 1 != n)) return false;
    }
    return true;
}

static void draw(struct nrng *r, int i, struct ncase *c)
{
    static const char *const acts[] = { "relu", "sigmoid", "softmax", "linear", "relu",
                                        "sigmoid", "softmax", "gelu" };
    do {
        memset(c, 0, sizeof *c);
        c->rank = 1 + i % 3;
        c->cf = (i / 3) % 2;
        c->via_model = i % 2 == 0;
        c->same = nrng_int(r, 0, 1);
        c->bias = nrng_int(r, 0, 3) != 0;
        c->batch = nrng_int(r, 1, 3);
        c->cin = nrng_int(r, 1, 5);
        c->cout = nrng_int(r, 2, 5);
        c->act = acts[i % 8];
        bool dilated = nrng_int(r, 0, 2) == 0;
        c->has_op = c->via_model && nrng_int(r, 0, 2) == 0;
        for (int j = 0; j < c->rank; j++) {
            c->k[j] = nrng_int(r, 1, 5);
            c->in[j] = nrng_int(r, 1, c->rank == 3 ? 4 : 7);
            if (c->via_model) {      /* Keras: no strides > 1 with dilation > 1 */
                c->s[j] = dilated ? 1 : nrng_int(r, 1, 4);
                c->d[j] = dilated ? nrng_int(r, 1, 3) : 1;
                c->op[j] = c->has_op ? nrng_int(r, 0, c->s[j] - 1) : -1;
                c->out[j] = keras_out(c->in[j], c->k[j], c->s[j], c->d[j], c->same, c->op[j]);
            } else {
                c->s[j] = nrng_int(r, 1, 4);
                c->d[j] = nrng_int(r, 1, 3);
                int64_t n = c->in[j], s = c->s[j], ke = eff(c->k[j], c->d[j]);
                c->out[j] = c->same ? nrng_int(r, (n - 1) * s + 1, n * s)
                                    : nrng_int(r, (n - 1) * s + ke, (n - 1) * s + ke + s - 1);
            }
        }
    } while (!consistent(c));
}

static int layout(const struct ncase *c, bool output, int64_t *shape)
{
    const int64_t *sp = output ? c->out : c->in;
    shape[0] = c->batch;
    for (int j = 0; j < c->rank; j++) shape[(c->cf ? 2 : 1) + j] = sp[j];
    shape[c->cf ? 1 : c->rank + 1] = output ? c->cout : c->cin;
    return c->rank + 2;
}

static size_t count(const int64_t *shape, int n)
{
    size_t p = 1;
    for (int i = 0; i < n; i++) p *= (size_t)shape[i];
    return p;
}

static void list(FILE *f, const int64_t *v, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%lld" : "%lld", (long long)v[i]);
    fputc(']', f);
}

static void write_params(const char *dir, const struct ncase *c)
{
    char path[256];
    snprintf(path, sizeof path, "%s/params.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fprintf(f, "{\"rank\":%d,\"strides\":", c->rank);
    list(f, c->s, c->rank);
    fprintf(f, ",\"dilation_rate\":");
    list(f, c->d, c->rank);
    fprintf(f, ",\"padding\":\"%s\",\"data_format\":\"%s\",\"output_padding\":",
            c->same ? "same" : "valid", c->cf ? "channels_first" : "channels_last");
    if (c->has_op) list(f, c->op, c->rank);
    else fprintf(f, "null");
    /* model cases leave the output size to the reference's Keras formula */
    fprintf(f, ",\"output_shape\":");
    if (c->via_model) fprintf(f, "null");
    else list(f, c->out, c->rank);
    fprintf(f, ",\"activation\":\"%s\",\"use_bias\":%s}\n", c->act, c->bias ? "true" : "false");
    cr_assert_eq(fclose(f), 0);
}

static void describe(const struct ncase *c, int i, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "case %d [%s rank %d %s %s batch %lld cin %lld "
                                "cout %lld act %s bias %d", i,
                                c->via_model ? "model" : "engine", c->rank,
                                c->cf ? "channels_first" : "channels_last",
                                c->same ? "same" : "valid", (long long)c->batch,
                                (long long)c->cin, (long long)c->cout, c->act, c->bias);
    for (int j = 0; j < c->rank && k < cap; j++)
        k += (size_t)snprintf(buf + k, cap - k, " dim%d{n=%lld k=%lld s=%lld d=%lld out=%lld "
                              "op=%lld}", j, (long long)c->in[j], (long long)c->k[j],
                              (long long)c->s[j], (long long)c->d[j], (long long)c->out[j],
                              c->has_op ? (long long)c->op[j] : -1LL);
    if (k < cap) snprintf(buf + k, cap - k, "%s]", c->bf16 == 1 ? " bf16"
                          : c->bf16 == 2 ? " bf16 emulated" : "");
}

/* Model file whose weights are the case's .npy files. */
static void run_model(const char *root, const char *sub, struct ncase *c, const float *x,
                      const char *desc)
{
    char text[2048], err[DCV_ERRLEN];
    size_t n = (size_t)snprintf(text, sizeof text,
        "{\"class_name\":\"Conv%dDTranspose\",\"config\":{\"filters\":%lld,\"kernel_size\":",
        c->rank, (long long)c->cout);
    FILE *f = fmemopen(text + n, sizeof text - n, "w");
    cr_assert_not_null(f);
    list(f, c->k, c->rank);
    fprintf(f, ",\"strides\":");
    list(f, c->s, c->rank);
    fprintf(f, ",\"dilation_rate\":");
    list(f, c->d, c->rank);
    fprintf(f, ",\"output_padding\":");
    if (c->has_op) list(f, c->op, c->rank);
    else fprintf(f, "null");
    fprintf(f, ",\"padding\":\"%s\",\"data_format\":\"%s\",\"activation\":\"%s\","
            "\"use_bias\":%s},\"weights\":{\"kernel\":\"%s/kernel.npy\"",
            c->same ? "same" : "valid", c->cf ? "channels_first" : "channels_last", c->act,
            c->bias ? "true" : "false", sub);
    if (c->bias) fprintf(f, ",\"bias\":\"%s/bias.npy\"", sub);
    fprintf(f, "}}");
    cr_assert_eq(fclose(f), 0);
    struct dcv_json *doc = dcv_json_parse(text, strlen(text), err);
    cr_assert_not_null(doc, "%s: %s", desc, err);
    struct dcv_model *m = NULL;
    int rc = dcv_model_from_doc("np", doc, root, NULL, &m, err);
    dcv_json_free(doc);
    cr_assert_eq(rc, 0, "%s: %s", desc, err);
    int64_t ishape[5];
    int nd = layout(c, false, ishape);
    rc = dcv_model_output_shape(m, ishape, nd, c->oshape, &c->ny, err);
    cr_assert_eq(rc, 0, "%s: %s", desc, err);
    c->ondim = nd;
    c->y = malloc(sizeof(float) * c->ny);
    cr_assert_not_null(c->y);
    rc = dcv_model_infer(m, x, ishape, nd, c->y, c->ny, NULL, err);
    cr_assert_eq(rc, 0, "%s: %s", desc, err);
    dcv_model_free(m);
}

static void run_engine(struct ncase *c, const float *x, const float *w, const float *b,
                       const char *desc)
{
    char err[DCV_ERRLEN], aj[32];
    struct dcv_conv conv = { .rank = c->rank, .in_channels = c->cin, .filters = c->cout,
                             .padding = c->same ? DCV_PADDING_SAME : DCV_PADDING_VALID,
                             .channels_first = c->cf, .use_bias = c->bias,
                             .dtype = c->bf16 ? DCV_DTYPE_BFLOAT16 : DCV_DTYPE_FLOAT32 };
    for (int j = 0; j < c->rank; j++) {
        conv.kernel[j] = c->k[j];
        conv.strides[j] = c->s[j];
        conv.dilation[j] = c->d[j];
    }
    snprintf(aj, sizeof aj, "\"%s\"", c->act);
    struct dcv_json *a = dcv_json_parse(aj, strlen(aj), err);
    cr_assert_not_null(a);
    cr_assert_eq(dcv_activation_parse(a, &conv.act, err), 0, "%s", err);
    dcv_json_free(a);
    struct dcv_engine_kernel *k = NULL;
    dcv_engine_force_bf16_emulation(c->bf16 == 2);
    int rc = dcv_engine_kernel_create(&conv, w, b, 0, NULL, &k, err);
    dcv_engine_force_bf16_emulation(false);
    cr_assert_eq(rc, 0, "%s: %s", desc, err);
    c->ondim = layout(c, true, c->oshape);
    c->ny = count(c->oshape, c->ondim);
    c->y = malloc(sizeof(float) * c->ny);
    cr_assert_not_null(c->y);
    rc = dcv_engine_run(k, x, c->batch, c->in, c->out, c->y, NULL, err);
    cr_assert_eq(rc, 0, "%s: %s", desc, err);
    dcv_engine_kernel_free(k);
}

static int sh(const char *cmd) { return tu_sh(cmd); }

static void need_numpy(void)
{
    if (!tu_have_numpy())
        cr_skip_test("%s cannot import numpy (install python3-numpy, or point "
                     "DCV_TEST_PYTHON at a Python that has it)", tu_python());
}

/* tests/numpy_ref.py: $DCV_NUMPY_REF, else next to this source file, else
 * relative to the working directory (the repository root under make). */
static const char *script_path(char *buf, size_t cap)
{
    const char *env = getenv("DCV_NUMPY_REF");
    if (env && *env) return env;
    snprintf(buf, cap, "%s", __FILE__);
    char *slash = strrchr(buf, '/');
    if (slash) {
        *slash = '\0';
        slash = strrchr(buf, '/');
    }
    if (slash) {
        snprintf(slash, cap - (size_t)(slash - buf), "/numpy_ref.py");
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, cap, "tests/numpy_ref.py");
    if (access(buf, R_OK) == 0) return buf;
    cr_assert_fail("cannot find tests/numpy_ref.py (from %s or the working directory); set "
                   "DCV_NUMPY_REF", __FILE__);
    return NULL;
}

Test(numpy, reference_selftest)
{
    char buf[512], cmd[1200];
    need_numpy();
    const char *script = script_path(buf, sizeof buf);
    snprintf(cmd, sizeof cmd, "'%s' '%s' --selftest >/dev/null", tu_python(), script);
    cr_assert_eq(sh(cmd), 0, "numpy_ref.py --selftest failed: %s", cmd);
}

/* The case directory, removed even when an assertion aborts the test. */
static char g_root[] = "/tmp/dcvnumpy.XXXXXX";

static void remove_root(void)
{
    char cmd[64];
    if (strchr(g_root, 'X')) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (sh(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_root);
}

/* Writes case i's inputs into root/cNN (x.npy, kernel.npy, bias.npy,
 * params.json) and runs it through deconvd into c->y; bf16 cases get
 * bf16-exact inputs, so the reference sees what the engine computes on.
 * With `items`, the case runs once whole and once in chunks of that many
 * items (the engine's test hook), which must agree to the bit. */
static void run_case(const char *root, int i, struct ncase *c, struct nrng *r, int64_t items)
{
    char sub[16], dir[96], path[128], desc[768], err[DCV_ERRLEN];
    describe(c, i, desc, sizeof desc);
    snprintf(sub, sizeof sub, "c%02d", i);
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    cr_assert_eq(mkdir(dir, 0700), 0, "%s", dir);
    int64_t xs[5], ks[5];
    int nd = layout(c, false, xs);
    for (int j = 0; j < c->rank; j++) ks[j] = c->k[j];
    ks[c->rank] = c->cout;
    ks[c->rank + 1] = c->cin;
    size_t nx = count(xs, nd), nk = count(ks, nd);
    float *x = nrng_buf(r, nx, 1.0f), *w = nrng_buf(r, nk, 0.5f);
    float *b = c->bias ? nrng_buf(r, (size_t)c->cout, 0.5f) : NULL;
    for (size_t j = 0; c->bf16 && j < nx; j++) x[j] = tu_bf16(x[j]);
    for (size_t j = 0; c->bf16 && j < nk; j++) w[j] = tu_bf16(w[j]);
    snprintf(path, sizeof path, "%s/x.npy", dir);
    cr_assert_eq(dcv_npy_save(path, x, xs, nd, err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/kernel.npy", dir);
    cr_assert_eq(dcv_npy_save(path, w, ks, nd, err), 0, "%s", err);
    if (b) {
        snprintf(path, sizeof path, "%s/bias.npy", dir);
        cr_assert_eq(dcv_npy_save(path, b, &c->cout, 1, err), 0, "%s", err);
    }
    write_params(dir, c);
    float *whole = NULL;
    if (items) {
        if (c->via_model) run_model(root, sub, c, x, desc);
        else run_engine(c, x, w, b, desc);
        whole = c->y;
        dcv_engine_set_chunk_items(items);
    }
    if (c->via_model) run_model(root, sub, c, x, desc);
    else run_engine(c, x, w, b, desc);
    dcv_engine_set_chunk_items(0);
    for (size_t j = 0; whole && j < c->ny; j++)
        cr_assert(memcmp(&whole[j], &c->y[j], sizeof(float)) == 0, "%s: value %zu is %.9g in "
                  "chunks of %lld, %.9g whole", desc, j, (double)c->y[j], (long long)items,
                  (double)whole[j]);
    free(whole);
    free(x);
    free(w);
    free(b);
}

/* One Python run computes every case's reference; outputs and shapes must
 * agree. Frees the cases' outputs. */
static void check_cases(const char *root, struct ncase *cases, int n, const char *what)
{
    char buf[512], err[DCV_ERRLEN];
    const char *script = script_path(buf, sizeof buf);
    size_t cmdcap = 1024 + (size_t)n * 64, clen;
    char *cmd = malloc(cmdcap);
    cr_assert_not_null(cmd);
    clen = (size_t)snprintf(cmd, cmdcap, "'%s' '%s'", tu_python(), script);
    for (int i = 0; i < n; i++)
        clen += (size_t)snprintf(cmd + clen, cmdcap - clen, " '%s/c%02d'", root, i);
    cr_assert_lt(clen, cmdcap);
    cr_assert_eq(sh(cmd), 0, "numpy reference failed: %s", cmd);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        struct ncase *c = &cases[i];
        char path[128], desc[768];
        struct dcv_npy ref;
        describe(c, i, desc, sizeof desc);
        snprintf(path, sizeof path, "%s/c%02d/out.npy", root, i);
        cr_assert_eq(dcv_npy_load(path, 0, &ref, err), 0, "%s: %s", desc, err);
        cr_assert_eq(ref.ndim, c->ondim, "%s: numpy output has rank %d", desc, ref.ndim);
        for (int j = 0; j < ref.ndim; j++)
            cr_assert_eq(ref.shape[j], c->oshape[j], "%s: output dim %d: numpy %lld, "
                         "deconvd %lld", desc, j, (long long)ref.shape[j],
                         (long long)c->oshape[j]);
        cr_assert_eq(ref.count, c->ny);
        double cw = 0;
        size_t at = 0;
        for (size_t k = 0; k < c->ny; k++) {
            double e = fabs((double)c->y[k] - ref.data[k]) / fmax(1.0, fabs(ref.data[k]));
            if (isnan(e)) e = INFINITY;
            if (e > cw) cw = e, at = k;
        }
        cr_assert(cw <= TOL, "%s: worst error %.3g at %zu: deconvd %.9g, numpy %.9g", desc, cw,
                  at, (double)c->y[at], (double)ref.data[at]);
        worst = fmax(worst, cw);
        dcv_npy_release(&ref);
        free(c->y);
    }
    fprintf(stderr, "numpy: %d %s, worst relative error %.3g\n", n, what, worst);
    free(cmd);
}

Test(numpy, engine_matches_numpy_reference, .fini = remove_root)
{
    struct nrng r = { 0x5eed0f0eULL };
    static struct ncase cases[NCASES];
    need_numpy();
    cr_assert_not_null(tu_mkdtemp(g_root));
    for (int i = 0; i < NCASES; i++) {
        draw(&r, i, &cases[i]);
        run_case(g_root, i, &cases[i], &r, 0);
    }
    check_cases(g_root, cases, NCASES, "cases");
}

/* Batches of 5-7 in chunks of 2 or 3 items and single items left over
 * (the engine's test hook), through models and the engine directly, ranks
 * 1-3 in both layouts, every way the engine finishes a plan (its bias and
 * ReLU passes, softmax, binary_add with post-ops, the portable pass), and
 * bf16 native and emulated: the bits of the whole run, and NumPy's values. */
Test(numpy, chunked_runs_match_numpy_reference, .fini = remove_root)
{
    static const char *const acts[] = { "relu", "softsign", "softmax", "sigmoid", "linear",
                                        "leaky_relu", "gelu", "relu6" };
    enum { N = 12 };
    struct nrng r = { 0xc4c4c4c4ULL };
    static struct ncase cases[N];
    need_numpy();
    cr_assert_not_null(tu_mkdtemp(g_root));
    for (int i = 0; i < N; i++) {
        struct ncase *c = &cases[i];
        draw(&r, i, c);
        c->act = acts[i % 8];
        c->batch = 5 + i % 3;
        c->bf16 = i == 7 ? 1 : i == 11 ? 2 : 0;       /* engine cases: odd i */
        run_case(g_root, i, c, &r, 2 + i % 2);
    }
    check_cases(g_root, cases, N, "chunked cases");
}
