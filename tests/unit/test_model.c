/* test_model.c — model files: weights from .npy, inline arrays, lists, the
 * R-style config "weights" and initializers; path confinement; size limits;
 * the config view; inference against an independent reference of
 * TensorFlow's conv_transpose. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/model.h"
#include "deconvd/npy.h"
#include "testutil.h"

/* ---- temp dirs and files -------------------------------------------------- */

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void mk_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dcvmodel.XXXXXX");
    cr_assert_not_null(tu_mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static char outdir[64];   /* a second directory some tests need outside tmpdir */

static void rm_tmp(void)
{
    if (tmpdir[0]) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (outdir[0]) nftw(outdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = outdir[0] = '\0';
}

TestSuite(model, .init = mk_tmp, .fini = rm_tmp);

static void put(const char *dir, const char *file, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0, "writing %s", path);
}

/* Writes <tmpdir>/<name>.json from a printf format. */
__attribute__((format(printf, 2, 3)))
static void put_model(const char *name, const char *fmt, ...)
{
    char *text = NULL, file[256];
    va_list ap;
    va_start(ap, fmt);
    cr_assert_geq(vasprintf(&text, fmt, ap), 0);
    va_end(ap);
    snprintf(file, sizeof file, "%s.json", name);
    put(tmpdir, file, text);
    free(text);
}

static void put_npy(const char *dir, const char *file, const float *data, const int64_t *shape,
                    int ndim)
{
    char path[PATH_MAX], err[DCV_ERRLEN] = "";
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(dcv_npy_save(path, data, shape, ndim, err), 0, "%s", err);
}

/* A .npy header claiming `shape_txt` with no data behind it. */
static void put_npy_header_only(const char *file, const char *shape_txt)
{
    char dict[200], path[PATH_MAX];
    unsigned char buf[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, "
                     "'shape': %s, }", shape_txt);
    size_t hlen = 10 + (size_t)n + 1;
    size_t pad = (64 - hlen % 64) % 64;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    size_t h = (size_t)n + pad + 1;
    buf[8] = (unsigned char)(h & 0xff);
    buf[9] = (unsigned char)(h >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', pad);
    buf[10 + n + pad] = '\n';
    snprintf(path, sizeof path, "%s/%s", tmpdir, file);
    cr_assert_eq(tu_write_file(path, buf, 10 + h), 0);
}

/* Deterministic test values. */
static void fill(float *v, size_t n, float seed)
{
    for (size_t i = 0; i < n; i++) v[i] = sinf(seed + 0.731f * (float)i) * 0.9f;
}

/* A JSON nested array of data with shape (malloc'd). */
struct sbuf {
    char *s;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void sb_add(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    while (b->len + (size_t)need + 1 > b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->s = realloc(b->s, b->cap);
        cr_assert_not_null(b->s);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)need;
}

static void nested_rec(struct sbuf *b, const float **data, const int64_t *shape, int ndim)
{
    sb_add(b, "[");
    for (int64_t i = 0; i < shape[0]; i++) {
        if (i) sb_add(b, ", ");
        if (ndim == 1)
            sb_add(b, "%.9g", (double)*(*data)++);
        else
            nested_rec(b, data, shape + 1, ndim - 1);
    }
    sb_add(b, "]");
}

static char *nested(const float *data, const int64_t *shape, int ndim)
{
    struct sbuf b = { 0 };
    nested_rec(&b, &data, shape, ndim);
    return b.s;
}

static struct dcv_model *load_ok(const char *name, const struct dcv_model_opts *o)
{
    struct dcv_model *m = NULL;
    char err[DCV_ERRLEN] = "";
    int rc = dcv_model_load(tmpdir, name, o, &m, err);
    cr_assert_eq(rc, 0, "load %s: %s (%s)", name, err, dcv_error_name(rc));
    cr_assert_not_null(m);
    return m;
}

static void load_fail(const char *name, const struct dcv_model_opts *o, int code, ...)
{
    struct dcv_model *m = NULL;
    char err[DCV_ERRLEN] = "";
    int rc = dcv_model_load(tmpdir, name, o, &m, err);
    cr_assert_eq(rc, code, "load %s: want %s, got %s (%s)", name, dcv_error_name(code),
                 dcv_error_name(rc), err);
    cr_assert_null(m);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        cr_expect(strstr(err, s), "message lacks \"%s\": %s", s, err);
    va_end(ap);
}

/* ---- reference: TF conv_transpose, channels_last ------------------------- *
 * out[b, p..., f] = bias[f] + sum in[b, i..., c] * K[k..., f, c] over
 * p = i*s + k*d - pad_before, pad_before = SAME ? max(full-out, 0)//2 : 0. */
static void reference(int rank, const int64_t *k, const int64_t *s, const int64_t *d, int same,
                      int64_t F, int64_t C, const float *kern, const float *bias,
                      const float *in, int64_t N, const int64_t *isp, const int64_t *osp,
                      double *out)
{
    int64_t K[3] = { 1, 1, 1 }, S[3] = { 1, 1, 1 }, D[3] = { 1, 1, 1 }, I[3] = { 1, 1, 1 },
            O[3] = { 1, 1, 1 }, P[3] = { 0, 0, 0 };
    for (int i = 0; i < rank; i++) {
        int j = 3 - rank + i;
        K[j] = k[i], S[j] = s[i], D[j] = d[i], I[j] = isp[i], O[j] = osp[i];
        int64_t full = (isp[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1;
        P[j] = same && full > osp[i] ? (full - osp[i]) / 2 : 0;
    }
    int64_t ocount = N * O[0] * O[1] * O[2] * F;
    for (int64_t i = 0; i < ocount; i++) out[i] = bias ? bias[i % F] : 0.0;
    for (int64_t b = 0; b < N; b++)
        for (int64_t i0 = 0; i0 < I[0]; i0++)
            for (int64_t i1 = 0; i1 < I[1]; i1++)
                for (int64_t i2 = 0; i2 < I[2]; i2++)
                    for (int64_t k0 = 0; k0 < K[0]; k0++)
                        for (int64_t k1 = 0; k1 < K[1]; k1++)
                            for (int64_t k2 = 0; k2 < K[2]; k2++) {
                                int64_t p0 = i0 * S[0] + k0 * D[0] - P[0];
                                int64_t p1 = i1 * S[1] + k1 * D[1] - P[1];
                                int64_t p2 = i2 * S[2] + k2 * D[2] - P[2];
                                if (p0 < 0 || p0 >= O[0] || p1 < 0 || p1 >= O[1] || p2 < 0 ||
                                    p2 >= O[2])
                                    continue;
                                const float *src = in + (((b * I[0] + i0) * I[1] + i1) * I[2]
                                                         + i2) * C;
                                double *dst = out + (((b * O[0] + p0) * O[1] + p1) * O[2]
                                                     + p2) * F;
                                const float *w = kern + ((k0 * K[1] + k1) * K[2] + k2) * F * C;
                                for (int64_t f = 0; f < F; f++)
                                    for (int64_t c = 0; c < C; c++)
                                        dst[f] += (double)src[c] * (double)w[f * C + c];
                            }
}

static void expect_close(const float *got, const double *want, size_t n, double tol)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs((double)got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i])),
                  "element %zu: got %.7g, want %.7g", i, (double)got[i], want[i]);
}

/* Runs m on in (shape ishape) and returns a malloc'd output. */
static float *run(const struct dcv_model *m, const float *in, const int64_t *ishape, int nd,
                  int64_t *oshape, size_t *count)
{
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_model_output_shape(m, ishape, nd, oshape, count, err), 0, "%s", err);
    float *out = malloc(*count * sizeof *out);
    cr_assert_not_null(out);
    int rc = dcv_model_infer(m, in, ishape, nd, out, *count, NULL, err);
    cr_assert_eq(rc, 0, "infer: %s (%s)", err, dcv_error_name(rc));
    return out;
}

static const char *source(const struct dcv_model *m, const char *key)
{
    return dcv_json_string(dcv_json_get(m->sources, key));
}

/* ---- weights from .npy ----------------------------------------------------- */

#define K2 3
#define F2 4
#define C2 2
static float kern2[K2 * K2 * F2 * C2], bias2[F2];
static const int64_t kshape2[4] = { K2, K2, F2, C2 }, bshape2[1] = { F2 };

static void put_weights2(void)
{
    fill(kern2, sizeof kern2 / sizeof *kern2, 0.1f);
    fill(bias2, F2, 2.0f);
    put_npy(tmpdir, "k.npy", kern2, kshape2, 4);
    put_npy(tmpdir, "b.npy", bias2, bshape2, 1);
}

static const char *const CFG2 =
    "{\"filters\": 4, \"kernel_size\": [3, 3], \"strides\": [2, 2], \"padding\": \"same\"}";

static void check_model2(const struct dcv_model *m)
{
    cr_assert_eq(m->layer.conv.in_channels, C2);
    cr_assert_eq(m->ndim, 4);
    float in[2 * 5 * 5 * C2];
    fill(in, sizeof in / sizeof *in, 1.3f);
    int64_t ishape[4] = { 2, 5, 5, C2 }, oshape[4];
    size_t count;
    float *out = run(m, in, ishape, 4, oshape, &count);
    cr_assert_eq(oshape[0], 2);
    cr_assert_eq(oshape[1], 10);
    cr_assert_eq(oshape[2], 10);
    cr_assert_eq(oshape[3], F2);
    cr_assert_eq(count, 2 * 10 * 10 * F2);
    double *want = malloc(count * sizeof *want);
    reference(2, (int64_t[]){ 3, 3 }, (int64_t[]){ 2, 2 }, (int64_t[]){ 1, 1 }, 1, F2, C2, kern2,
              bias2, in, 2, ishape + 1, oshape + 1, want);
    expect_close(out, want, count, 1e-5);
    free(want);
    free(out);
}

Test(model, npy_kernel_and_bias)
{
    put_weights2();
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": {\"kernel\": \"k.npy\", \"bias\": \"b.npy\"}}", CFG2);
    struct dcv_model *m = load_ok("m", NULL);
    cr_expect_str_eq(m->name, "m");
    cr_expect_str_eq(source(m, "kernel"), "k.npy");
    cr_expect_str_eq(source(m, "bias"), "b.npy");
    check_model2(m);
    dcv_model_free(m);
}

Test(model, npy_in_subdirectory_and_list_form)
{
    put_weights2();
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/w", tmpdir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    put_npy(sub, "k.npy", kern2, kshape2, 4);
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": [\"w/k.npy\", \"b.npy\"]}", CFG2);
    struct dcv_model *m = load_ok("m", NULL);
    cr_expect_str_eq(source(m, "kernel"), "w/k.npy");
    check_model2(m);
    dcv_model_free(m);
}

Test(model, declared_input_shape_with_npy)
{
    put_weights2();
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\", "
              "\"batch_input_shape\": [null, 5, 5, 2]}, "
              "\"weights\": {\"kernel\": \"k.npy\", \"bias\": \"b.npy\"}}");
    struct dcv_model *m = load_ok("m", NULL);
    cr_expect_eq(m->in_sig[0], -1);
    cr_expect_eq(m->in_sig[1], 5);
    cr_expect_eq(m->in_sig[3], 2);
    cr_expect_eq(m->out_sig[1], 10);
    cr_expect_eq(m->out_sig[3], 4);
    check_model2(m);
    dcv_model_free(m);
}

/* ---- inline weights ------------------------------------------------------ */

/* Conv1DTranspose k=3, filters 2, in 1, strides 2, valid; kernel (3, 2, 1). */
static const char *const KERN1 = "[[[1], [2]], [[3], [4]], [[5], [6]]]";
static const char *const BIAS1 = "[0.5, -0.5]";
static const char *const CFG1 = "{\"filters\": 2, \"kernel_size\": 3, \"strides\": 2}";

static void check_model1(const struct dcv_model *m)
{
    float in[4] = { 1, 2, 3, 4 };
    int64_t ishape[3] = { 1, 4, 1 }, oshape[3];
    size_t count;
    float *out = run(m, in, ishape, 3, oshape, &count);
    cr_assert_eq(oshape[1], 9);
    cr_assert_eq(count, 18);
    /* by hand: position p gets in[i]*K[k] for 2i + k = p */
    cr_expect_float_eq(out[0], 1 * 1 + 0.5f, 1e-5);            /* p0 f0 */
    cr_expect_float_eq(out[1], 1 * 2 - 0.5f, 1e-5);            /* p0 f1 */
    cr_expect_float_eq(out[2 * 2 + 0], 1 * 5 + 2 * 1 + 0.5f, 1e-5);   /* p2 f0 */
    cr_expect_float_eq(out[2 * 2 + 1], 1 * 6 + 2 * 2 - 0.5f, 1e-5);   /* p2 f1 */
    cr_expect_float_eq(out[8 * 2 + 0], 4 * 5 + 0.5f, 1e-5);    /* p8 f0 */
    float k[6] = { 1, 2, 3, 4, 5, 6 }, b[2] = { 0.5f, -0.5f };
    double want[18];
    reference(1, (int64_t[]){ 3 }, (int64_t[]){ 2 }, (int64_t[]){ 1 }, 0, 2, 1, k, b, in, 1,
              ishape + 1, oshape + 1, want);
    expect_close(out, want, 18, 1e-6);
    free(out);
}

/* <name>.json: CFG1 with its weights as a [kernel, bias] list of inline arrays. */
static void put_model1(const char *name)
{
    put_model(name, "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": [%s, %s]}", CFG1, KERN1, BIAS1);
}

Test(model, inline_nested_arrays)
{
    put_model("m", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": {\"kernel\": %s, \"bias\": %s}}", CFG1, KERN1, BIAS1);
    struct dcv_model *m = load_ok("m", NULL);
    cr_expect_eq(m->layer.conv.in_channels, 1);
    cr_expect_str_eq(source(m, "kernel"), "inline");
    cr_expect_str_eq(source(m, "bias"), "inline");
    check_model1(m);
    dcv_model_free(m);
}

Test(model, weights_as_list)
{
    put_model1("m");
    struct dcv_model *m = load_ok("m", NULL);
    check_model1(m);
    dcv_model_free(m);
}

Test(model, config_weights_r_style)
{
    put_model("m", "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 2, "
              "\"kernel_size\": 3, \"strides\": 2, \"weights\": [%s, %s]}}", KERN1, BIAS1);
    struct dcv_model *m = load_ok("m", NULL);
    check_model1(m);
    dcv_model_free(m);
    /* the flat form: the document is the config */
    put_model("f", "{\"class_name\": \"Conv1DTranspose\", \"filters\": 2, \"kernel_size\": 3, "
              "\"strides\": 2, \"weights\": [%s, %s]}", KERN1, BIAS1);
    m = load_ok("f", NULL);
    check_model1(m);
    dcv_model_free(m);
}

Test(model, inline_3d_matches_reference)
{
    /* Conv3DTranspose k (2,3,2), filters 3, in 2, strides (1,2,2), valid, op (0,1,0) */
    int64_t ks[5] = { 2, 3, 2, 3, 2 };
    float kern[2 * 3 * 2 * 3 * 2], bias[3];
    fill(kern, sizeof kern / sizeof *kern, 0.4f);
    fill(bias, 3, 5.0f);
    char *kj = nested(kern, ks, 5), *bj = nested(bias, (int64_t[]){ 3 }, 1);
    put_model("m", "{\"class_name\": \"Conv3DTranspose\", \"config\": {\"filters\": 3, "
              "\"kernel_size\": [2, 3, 2], \"strides\": [1, 2, 2], \"output_padding\": "
              "[0, 1, 0]}, \"weights\": {\"kernel\": %s, \"bias\": %s}}", kj, bj);
    free(kj);
    free(bj);
    struct dcv_model *m = load_ok("m", NULL);
    float in[2 * 3 * 4 * 3 * 2];
    fill(in, sizeof in / sizeof *in, 0.9f);
    int64_t ishape[5] = { 2, 3, 4, 3, 2 }, oshape[5];
    size_t count;
    float *out = run(m, in, ishape, 5, oshape, &count);
    cr_assert_eq(oshape[1], 3 - 1 + 2);
    cr_assert_eq(oshape[2], 3 * 2 + 3 + 1);
    cr_assert_eq(oshape[3], 2 * 2 + 2);
    cr_assert_eq(oshape[4], 3);
    double *want = malloc(count * sizeof *want);
    reference(3, ks, (int64_t[]){ 1, 2, 2 }, (int64_t[]){ 1, 1, 1 }, 0, 3, 2, kern, bias, in, 2,
              ishape + 1, oshape + 1, want);
    expect_close(out, want, count, 1e-5);
    free(want);
    free(out);
    dcv_model_free(m);
}

Test(model, dilated_same_with_relu_matches_reference)
{
    int64_t ks[4] = { 3, 2, 2, 3 };
    float kern[3 * 2 * 2 * 3];
    fill(kern, sizeof kern / sizeof *kern, 2.2f);
    char *kj = nested(kern, ks, 4);
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 2, "
              "\"kernel_size\": [3, 2], \"dilation_rate\": [2, 3], \"padding\": \"same\", "
              "\"use_bias\": false, \"activation\": \"relu\"}, \"weights\": [%s]}", kj);
    free(kj);
    struct dcv_model *m = load_ok("m", NULL);
    cr_expect_str_eq(source(m, "bias"), "none");
    float in[1 * 6 * 5 * 3];
    fill(in, sizeof in / sizeof *in, 0.2f);
    int64_t ishape[4] = { 1, 6, 5, 3 }, oshape[4];
    size_t count;
    float *out = run(m, in, ishape, 4, oshape, &count);
    cr_assert_eq(oshape[1], 6);
    cr_assert_eq(oshape[2], 5);
    double want[6 * 5 * 2];
    reference(2, (int64_t[]){ 3, 2 }, (int64_t[]){ 1, 1 }, (int64_t[]){ 2, 3 }, 1, 2, 3, kern,
              NULL, in, 1, ishape + 1, oshape + 1, want);
    for (size_t i = 0; i < count; i++) want[i] = want[i] > 0 ? want[i] : 0;
    expect_close(out, want, count, 1e-5);
    free(out);
    dcv_model_free(m);
}

/* ---- initializers --------------------------------------------------------- */

Test(model, no_weights_uses_initializers)
{
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 3, "
              "\"kernel_size\": 2, \"strides\": 2, \"kernel_initializer\": \"zeros\", "
              "\"bias_initializer\": {\"class_name\": \"Constant\", \"config\": "
              "{\"value\": 0.75}}, \"batch_input_shape\": [null, 4, 4, 5]}}");
    struct dcv_model *m = load_ok("m", NULL);
    cr_expect_eq(m->layer.conv.in_channels, 5);
    cr_expect_str_eq(source(m, "kernel"), "initializer");
    cr_expect_str_eq(source(m, "bias"), "initializer");
    float in[1 * 4 * 4 * 5];
    fill(in, sizeof in / sizeof *in, 0.0f);
    int64_t ishape[4] = { 1, 4, 4, 5 }, oshape[4];
    size_t count;
    float *out = run(m, in, ishape, 4, oshape, &count);
    cr_assert_eq(count, 8 * 8 * 3);
    for (size_t i = 0; i < count; i++) cr_assert_float_eq(out[i], 0.75f, 1e-6, "at %zu", i);
    free(out);
    dcv_model_free(m);
}

Test(model, default_glorot_initializer_is_bounded)
{
    /* in_channels from input_shape (no batch) */
    put_model("m", "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3, \"use_bias\": false, \"input_shape\": [null, 2]}}");
    struct dcv_model *m = load_ok("m", NULL);
    cr_expect_eq(m->layer.conv.in_channels, 2);
    cr_expect_str_eq(source(m, "bias"), "none");
    /* a one-hot input reads the kernel back: out[p, f] = K[p, f, 0] */
    float in[2] = { 1, 0 };
    int64_t ishape[3] = { 1, 1, 2 }, oshape[3];
    size_t count;
    float *out = run(m, in, ishape, 3, oshape, &count);
    cr_assert_eq(count, 3 * 4);
    /* glorot_uniform: fan_in = 4*3, fan_out = 2*3, limit sqrt(6/18) */
    double limit = sqrt(6.0 / 18.0);
    int nonzero = 0;
    for (size_t i = 0; i < count; i++) {
        cr_assert(fabs(out[i]) <= limit + 1e-6, "value %g beyond glorot limit", out[i]);
        nonzero += out[i] != 0;
    }
    cr_expect_geq(nonzero, 10, "glorot kernel should not be zeros");
    free(out);
    dcv_model_free(m);
}

Test(model, unknown_in_channels_is_a_clear_error)
{
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 3, "
              "\"kernel_size\": 2}}");
    load_fail("m", NULL, DCV_EINVAL, "input channels", "input_shape", "m.json", NULL);
    /* unknown channel in the declared shape is no better */
    put_model("n", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 3, "
              "\"kernel_size\": 2, \"batch_input_shape\": [null, 8, 8, null]}}");
    load_fail("n", NULL, DCV_EINVAL, "input_shape", NULL);
}

/* ---- shape errors ---------------------------------------------------------- */

Test(model, kernel_shape_mismatch_shows_both_shapes)
{
    put_weights2();
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3, \"input_shape\": [null, null, 3]}, "
              "\"weights\": [\"k.npy\", \"b.npy\"]}");
    load_fail("m", NULL, DCV_ESHAPE, "(3, 3, 4, 2)", "(3, 3, 4, 3)", "kernel", NULL);
    put_model("f", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 5, "
              "\"kernel_size\": 3}, \"weights\": [\"k.npy\"]}");
    load_fail("f", NULL, DCV_ESHAPE, "(3, 3, 4, 2)", "(3, 3, 5, 2)", NULL);
    put_model("k", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": [3, 2]}, \"weights\": [\"k.npy\"]}");
    load_fail("k", NULL, DCV_ESHAPE, "(3, 3, 4, 2)", "(3, 2, 4, 2)", NULL);
    put_model("r", "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3}, \"weights\": [\"k.npy\"]}");
    load_fail("r", NULL, DCV_ESHAPE, "(3, 3, 4, 2)", NULL);
}

Test(model, npy_with_too_many_dims_is_refused)
{
    float one[1] = { 1 };
    int64_t s6[6] = { 1, 1, 1, 1, 1, 1 }, s8[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
    put_npy(tmpdir, "k6.npy", one, s6, 6);
    put_npy(tmpdir, "k8.npy", one, s8, 8);
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 1, \"input_shape\": [null, null, 1]}, \"weights\": [\"k6.npy\"]}");
    load_fail("m", NULL, DCV_ESHAPE, "k6.npy", NULL);
    put_model("n", "{\"class_name\": \"Conv3DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 1}, \"weights\": [\"k8.npy\"]}");
    load_fail("n", NULL, DCV_ESHAPE, "k8.npy", NULL);
    put_model("b", "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 1}, \"weights\": [[[[1]]], \"k8.npy\"]}");
    load_fail("b", NULL, DCV_ESHAPE, "bias", NULL);
}

Test(model, bias_errors)
{
    put_weights2();
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3, \"use_bias\": false}, \"weights\": [\"k.npy\", \"b.npy\"]}");
    load_fail("m", NULL, DCV_EINVAL, "use_bias", NULL);
    put_model("n", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3, \"use_bias\": false}, \"weights\": {\"kernel\": \"k.npy\", "
              "\"bias\": null}}");
    struct dcv_model *m = load_ok("n", NULL);
    dcv_model_free(m);
    put_model("l", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3}, \"weights\": [\"k.npy\", [1, 2, 3, 4, 5]]}");
    load_fail("l", NULL, DCV_ESHAPE, "bias", "(5,)", "(4,)", NULL);
    float b3[3] = { 0 };
    put_npy(tmpdir, "b3.npy", b3, (int64_t[]){ 3 }, 1);
    put_model("p", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3}, \"weights\": [\"k.npy\", \"b3.npy\"]}");
    load_fail("p", NULL, DCV_ESHAPE, "bias", "(3,)", "(4,)", NULL);
    put_model("q", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3}, \"weights\": [\"k.npy\", [[1, 2, 3, 4]]]}");
    load_fail("q", NULL, DCV_ESHAPE, "bias", "(1, 4)", NULL);
}

Test(model, inline_array_errors)
{
    put_model("rag", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": [[[[1], [2]], [[3], [4]], [[5]]]]}", CFG1);
    load_fail("rag", NULL, DCV_ESHAPE, "ragged", NULL);
    put_model("str", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": [[[[1], [2]], [[3], [\"4\"]], [[5], [6]]]]}", CFG1);
    load_fail("str", NULL, DCV_EINVAL, "kernel", "string", NULL);
    put_model("num", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": {\"kernel\": 7}}", CFG1);
    load_fail("num", NULL, DCV_EINVAL, "kernel", NULL);
    put_model("deep", "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 1, \"input_shape\": [null, 1]}, "
              "\"weights\": [[[[[[[1]]]]]]]}");
    load_fail("deep", NULL, DCV_ESHAPE, "kernel", NULL);
    put_model("empty", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": [[]]}", CFG1);
    load_fail("empty", NULL, DCV_EINVAL, "channels", NULL);
}

/* Weights must be finite: a value beyond float32's range inline, or an
 * inf/NaN in a .npy, refuses the model with the index. */
Test(model, non_finite_weights_are_refused)
{
    put_model("big", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": [[[[1], [2]], [[3], [3.4028234e38]], [[5], [6]]], %s]}", CFG1, BIAS1);
    dcv_model_free(load_ok("big", NULL));
    put_model("huge", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": [[[[1], [2]], [[3], [1e39]], [[5], [6]]], %s]}", CFG1, BIAS1);
    load_fail("huge", NULL, DCV_EINVAL, "kernel", "1e+39", "float32", NULL);
    put_model("hugeb", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": [%s, [0.5, -1e300]]}", CFG1, KERN1);
    load_fail("hugeb", NULL, DCV_EINVAL, "bias", "float32", NULL);
    float k[3 * 2 * 1], bias[2] = { 0, INFINITY };
    fill(k, 6, 1);
    k[4] = NAN;
    const int64_t ks[3] = { 3, 2, 1 }, bsh[1] = { 2 };
    put_npy(tmpdir, "k_nan.npy", k, ks, 3);
    k[4] = 1;
    put_npy(tmpdir, "k_ok.npy", k, ks, 3);
    put_npy(tmpdir, "b_inf.npy", bias, bsh, 1);
    put_model("nan", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": {\"kernel\": \"k_nan.npy\"}}", CFG1);
    load_fail("nan", NULL, DCV_EINVAL, "kernel", "value 4 is nan", NULL);
    put_model("inf", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": {\"kernel\": \"k_ok.npy\", \"bias\": \"b_inf.npy\"}}", CFG1);
    load_fail("inf", NULL, DCV_EINVAL, "bias", "value 1 is inf", NULL);
}

/* ---- paths ------------------------------------------------------------------ */

Test(model, weight_paths_are_confined)
{
    put_weights2();
    char *outside = outdir, path[PATH_MAX], link[PATH_MAX];
    snprintf(outdir, sizeof outdir, "/tmp/dcvout.XXXXXX");
    cr_assert_not_null(tu_mkdtemp(outdir));
    put_npy(outside, "k.npy", kern2, kshape2, 4);
    snprintf(path, sizeof path, "%s/k.npy", outside);
    snprintf(link, sizeof link, "%s/evil.npy", tmpdir);
    cr_assert_eq(symlink(path, link), 0, "symlink: %s", strerror(errno));
    snprintf(link, sizeof link, "%s/evildir", tmpdir);
    cr_assert_eq(symlink(outside, link), 0);

    const char *bad[] = { path, "../k.npy", "w/../k.npy", "evil.npy", "evildir/k.npy",
                          "/etc/passwd" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* in_channels unknown: the kernel file is opened to learn it */
        put_model("a", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
                  "\"weights\": [\"%s\"]}", CFG2, bad[i]);
        load_fail("a", NULL, DCV_EPATH, NULL);
        /* in_channels declared: the kernel is loaded directly */
        put_model("b", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
                  "\"kernel_size\": 3, \"input_shape\": [null, null, 2]}, "
                  "\"weights\": [\"%s\"]}", bad[i]);
        load_fail("b", NULL, DCV_EPATH, NULL);
        /* bias too */
        put_model("c", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
                  "\"weights\": [\"k.npy\", \"%s\"]}", CFG2, bad[i]);
        load_fail("c", NULL, DCV_EPATH, NULL);
    }
    /* a symlink that stays inside is fine */
    snprintf(link, sizeof link, "%s/alias.npy", tmpdir);
    cr_assert_eq(symlink("k.npy", link), 0);
    put_model("ok", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": [\"alias.npy\", \"b.npy\"]}", CFG2);
    struct dcv_model *m = load_ok("ok", NULL);
    check_model2(m);
    dcv_model_free(m);
}

Test(model, from_doc_without_models_dir_refuses_paths)
{
    const char *text = "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 1, "
                       "\"kernel_size\": 1}, \"weights\": [\"k.npy\"]}";
    char err[DCV_ERRLEN] = "";
    struct dcv_json *doc = dcv_json_parse(text, strlen(text), err);
    cr_assert_not_null(doc);
    struct dcv_model *m = NULL;
    cr_expect_eq(dcv_model_from_doc("x", doc, NULL, NULL, &m, err), DCV_EPATH);
    cr_expect_null(m);
    dcv_json_free(doc);
    text = "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 1, "
           "\"kernel_size\": 1}, \"weights\": [[[[3]]], [1]]}";
    doc = dcv_json_parse(text, strlen(text), err);
    cr_assert_eq(dcv_model_from_doc("x", doc, NULL, NULL, &m, err), 0, "%s", err);
    float in[2] = { 1, 2 }, out[2];
    cr_assert_eq(dcv_model_infer(m, in, (int64_t[]){ 1, 2, 1 }, 3, out, 2, NULL, err), 0, "%s",
                 err);
    cr_expect_float_eq(out[0], 4.0f, 1e-6);
    cr_expect_float_eq(out[1], 7.0f, 1e-6);
    dcv_model_free(m);
    dcv_json_free(doc);
}

Test(model, missing_and_broken_files)
{
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": [\"nope.npy\"]}", CFG2);
    load_fail("m", NULL, DCV_ENOENT, "nope.npy", NULL);
    put_model("d", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3, \"input_shape\": [null, null, 2]}, "
              "\"weights\": [\"nope.npy\"]}");
    load_fail("d", NULL, DCV_ENOENT, "nope.npy", NULL);

    /* a truncated .npy: a load error, not a crash */
    put_weights2();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/k.npy", tmpdir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size - 10), 0);
    load_fail("m", NULL, DCV_ENOENT, NULL);   /* still nope.npy */
    put_model("t", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": [\"k.npy\"]}", CFG2);
    load_fail("t", NULL, DCV_EPARSE, "k.npy", "truncated", NULL);
    put_model("u", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3, \"input_shape\": [null, null, 2]}, "
              "\"weights\": [\"k.npy\"]}");
    load_fail("u", NULL, DCV_EPARSE, "k.npy", NULL);
    cr_assert_eq(truncate(path, 5), 0);
    load_fail("t", NULL, DCV_EPARSE, "k.npy", NULL);
    put(tmpdir, "junk.npy", "this is not numpy");
    put_model("j", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": [\"junk.npy\"]}", CFG2);
    load_fail("j", NULL, DCV_EPARSE, "junk.npy", NULL);
    /* a directory where a weights file should be */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/dir.npy", tmpdir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    put_model("dd", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": [\"dir.npy\"]}", CFG2);
    struct dcv_model *m = NULL;
    char err[DCV_ERRLEN];
    cr_expect_lt(dcv_model_load(tmpdir, "dd", NULL, &m, err), 0);
    cr_expect_null(m);
}

Test(model, model_file_errors)
{
    load_fail("absent", NULL, DCV_ENOENT, NULL);
    put_model("bad", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4,");
    load_fail("bad", NULL, DCV_EPARSE, "bad.json", NULL);
    put_model("trail", "{\"class_name\": \"Conv2DTranspose\"} x");
    load_fail("trail", NULL, DCV_EPARSE, NULL);
    put_model("empty", "%s", "");
    load_fail("empty", NULL, DCV_EPARSE, NULL);
    put_model("arr", "[1, 2]");
    load_fail("arr", NULL, DCV_EINVAL, "object", NULL);
    put_model("cls", "{\"class_name\": \"Conv2D\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3}}");
    load_fail("cls", NULL, DCV_EUNSUPP, "Conv2D", NULL);
    put_model("cfg", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 4, "
              "\"kernel_size\": 3, \"padding\": \"causal\"}}");
    load_fail("cfg", NULL, DCV_EINVAL, "cfg.json", "causal", NULL);
    /* a directory named like a model file */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/isdir.json", tmpdir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    struct dcv_model *m = NULL;
    char err[DCV_ERRLEN];
    cr_expect_lt(dcv_model_load(tmpdir, "isdir", NULL, &m, err), 0);
    cr_expect_null(m);
}

/* Every non-regular file under a model's name is a load error naming the
 * file and its kind, returned at once: a FIFO without a writer (the open
 * used to block forever), a socket, a character device reached through a
 * symlink (reading /dev/zero never ends), a directory. */
Test(model, non_regular_model_files_fail_at_once)
{
    char path[PATH_MAX];
    struct {
        const char *name, *kind;
    } cases[] = { { "fifo", "a FIFO" }, { "sock", "a socket" }, { "zero", "a character device" },
                  { "urand", "a character device" }, { "dir", "a directory" } };
    snprintf(path, sizeof path, "%s/fifo.json", tmpdir);
    cr_assert_eq(mkfifo(path, 0644), 0, "mkfifo: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/sock.json", tmpdir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    cr_assert_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "bind: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/zero.json", tmpdir);
    cr_assert_eq(symlink("/dev/zero", path), 0);
    snprintf(path, sizeof path, "%s/urand.json", tmpdir);
    cr_assert_eq(symlink("/dev/urandom", path), 0);
    snprintf(path, sizeof path, "%s/dir.json", tmpdir);
    cr_assert_eq(mkdir(path, 0755), 0);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char want[PATH_MAX];
        snprintf(want, sizeof want, "%s/%s.json is %s", tmpdir, cases[i].name, cases[i].kind);
        load_fail(cases[i].name, NULL, DCV_EIO, want, "not a regular file", NULL);
    }
    close(fd);
}

/* A symlink to a regular model file inside models_dir still loads. */
Test(model, symlinked_model_file_loads)
{
    char path[PATH_MAX];
    put_model1("real");
    snprintf(path, sizeof path, "%s/alias.json", tmpdir);
    cr_assert_eq(symlink("real.json", path), 0);
    struct dcv_model *m = load_ok("alias", NULL);
    check_model1(m);
    dcv_model_free(m);
}

static void set_mtime(const char *file, time_t t)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", tmpdir, file);
    struct timespec ts[2] = { { t, 0 }, { t, 0 } };
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* The fingerprint covers the model file and every .npy it read: it holds
 * while nothing changes, and moves when any file is rewritten, even with its
 * size and mtime put back (a copy that keeps timestamps), or removed. */
Test(model, fingerprint_covers_model_and_weights_files)
{
    put_weights2();
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": {\"kernel\": \"k.npy\", \"bias\": \"b.npy\"}}", CFG2);
    set_mtime("k.npy", 1000000000);
    struct dcv_model *m = load_ok("m", NULL);
    cr_assert_eq(m->n_weight_files, 2);
    cr_assert_str_eq(m->weight_files[0], "k.npy");
    cr_assert_str_eq(m->weight_files[1], "b.npy");
    cr_expect_eq(dcv_model_fingerprint(tmpdir, "m", m->weight_files, m->n_weight_files), m->fingerprint);
    cr_expect_eq(dcv_model_fingerprint(tmpdir, "m", m->weight_files, m->n_weight_files), m->fingerprint);
    /* the fingerprint of the model file alone is not the model's */
    cr_expect_neq(dcv_model_fingerprint(tmpdir, "m", NULL, 0), m->fingerprint);
    struct timespec pause = { 0, 20 * 1000 * 1000 };   /* ctime ticks at least this often */
    nanosleep(&pause, NULL);
    kern2[0] += 1.0f;                       /* same size, mtime set back */
    put_npy(tmpdir, "k.npy", kern2, kshape2, 4);
    set_mtime("k.npy", 1000000000);
    cr_expect_neq(dcv_model_fingerprint(tmpdir, "m", m->weight_files, m->n_weight_files), m->fingerprint,
                  "a rewritten kernel file with its mtime put back went unnoticed");
    struct dcv_model *m2 = load_ok("m", NULL);
    cr_expect_eq(dcv_model_fingerprint(tmpdir, "m", m2->weight_files, m2->n_weight_files), m2->fingerprint);
    nanosleep(&pause, NULL);
    put_npy(tmpdir, "b.npy", bias2, bshape2, 1);
    cr_expect_neq(dcv_model_fingerprint(tmpdir, "m", m2->weight_files, m2->n_weight_files), m2->fingerprint,
                  "a rewritten bias file went unnoticed");
    struct dcv_model *m3 = load_ok("m", NULL);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/b.npy", tmpdir);
    cr_assert_eq(unlink(path), 0);
    cr_expect_neq(dcv_model_fingerprint(tmpdir, "m", m3->weight_files, m3->n_weight_files), m3->fingerprint,
                  "a removed bias file went unnoticed");
    dcv_model_free(m);
    dcv_model_free(m2);
    dcv_model_free(m3);
}

/* Inline weights and initializers read no file but the model file. */
Test(model, fingerprint_of_inline_model_is_its_file)
{
    put_model1("i");
    struct dcv_model *m = load_ok("i", NULL);
    cr_expect_eq(m->n_weight_files, 0);
    cr_expect_eq(dcv_model_fingerprint(tmpdir, "i", m->weight_files, m->n_weight_files), m->fingerprint);
    struct timespec pause = { 0, 20 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    put_model1("i");
    cr_expect_neq(dcv_model_fingerprint(tmpdir, "i", m->weight_files, m->n_weight_files), m->fingerprint);
    dcv_model_free(m);
}

/* ---- size limits -------------------------------------------------------------- */

Test(model, huge_kernel_fails_fast)
{
    put_model("big", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 100000, "
              "\"kernel_size\": [64, 64], \"input_shape\": [null, null, 1000]}}");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    load_fail("big", NULL, DCV_ETOOBIG, "limit", NULL);
    struct dcv_model_opts o = { .max_weight_elems = (size_t)1 << 30 };
    load_fail("big", &o, DCV_ETOOBIG, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_expect_lt(secs, 2.0, "refusing took %.2fs: something was allocated or filled", secs);

    /* a product overflowing int64 */
    put_model("ovf", "{\"class_name\": \"Conv3DTranspose\", \"config\": {\"filters\": 1048576, "
              "\"kernel_size\": 4096, \"input_shape\": [null, null, null, 1048576]}}");
    load_fail("ovf", NULL, DCV_ETOOBIG, NULL);
}

Test(model, max_weight_elems_option)
{
    put_weights2();   /* 72 kernel weights */
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": [\"k.npy\", \"b.npy\"]}", CFG2);
    struct dcv_model_opts o = { .max_weight_elems = 71 };
    load_fail("m", &o, DCV_ETOOBIG, NULL);
    o.max_weight_elems = 72;
    struct dcv_model *m = load_ok("m", &o);
    dcv_model_free(m);
    /* inline and initializer weights obey the same limit */
    put_model("i", "{\"class_name\": \"Conv1DTranspose\", \"config\": %s, "
              "\"weights\": [%s]}", CFG1, KERN1);
    o.max_weight_elems = 5;
    load_fail("i", &o, DCV_ETOOBIG, NULL);
    put_model("z", "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 10, "
              "\"kernel_size\": 3, \"input_shape\": [null, 4]}}");
    o.max_weight_elems = 119;
    load_fail("z", &o, DCV_ETOOBIG, NULL);
}

/* A kernel .npy whose header claims far more than the limit must be refused
 * from its header, whether or not the config declares the input channels
 * (without them, the file is opened first to learn the channel count). */
Test(model, oversized_npy_header_is_refused_before_reading)
{
    put_npy_header_only("huge.npy", "(64, 64, 100000, 1000)");
    put_model("a", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 100000, "
              "\"kernel_size\": 64}, \"weights\": [\"huge.npy\"]}");
    load_fail("a", NULL, DCV_ETOOBIG, "huge.npy", NULL);
    put_model("b", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 100000, "
              "\"kernel_size\": 64, \"input_shape\": [null, null, 1000]}, "
              "\"weights\": [\"huge.npy\"]}");
    load_fail("b", NULL, DCV_ETOOBIG, NULL);
    struct dcv_model_opts o = { .max_weight_elems = 1000 };
    put_npy_header_only("mid.npy", "(3, 3, 40, 10)");
    put_model("c", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 40, "
              "\"kernel_size\": 3}, \"weights\": [\"mid.npy\"]}");
    load_fail("c", &o, DCV_ETOOBIG, "mid.npy", NULL);
}

/* ---- names ------------------------------------------------------------------- */

Test(model, names)
{
    char long127[128], long128[129], long200[201];
    memset(long127, 'a', 127);
    long127[127] = '\0';
    memset(long128, 'b', 128);
    long128[128] = '\0';
    memset(long200, 'c', 200);
    long200[200] = '\0';
    const char *good[] = { "a", "up2d", "Model-1.v2", "A_b", "x..y", long127 };
    const char *bad[] = { "", "../x", ".hidden", "..", ".", "a/b", "a\\b", "a b", "a%2f",
                          "é", long128, long200, "x\ny" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_expect(dcv_model_name_valid(good[i]), "\"%s\" should be valid", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect(!dcv_model_name_valid(bad[i]), "\"%s\" should be invalid", bad[i]);
        struct dcv_model *m = NULL;
        char err[DCV_ERRLEN] = "";
        cr_expect_eq(dcv_model_load(tmpdir, bad[i], NULL, &m, err), DCV_EINVAL,
                     "loading \"%s\"", bad[i]);
        cr_expect_null(m);
    }
    cr_expect(!dcv_model_name_valid(NULL));
}

/* ---- config view --------------------------------------------------------------- */

static void expect_dims(const struct dcv_json *arr, const int64_t *want, size_t n,
                        const char *what)
{
    cr_assert_eq(dcv_json_type(arr), DCV_JSON_ARRAY, "%s missing", what);
    cr_assert_eq(dcv_json_size(arr), n, "%s length", what);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq((int64_t)dcv_json_number(dcv_json_at(arr, i)), want[i], "%s[%zu]", what, i);
}

static bool has_str(const struct dcv_json *arr, const char *s)
{
    for (const struct dcv_json *e = dcv_json_first(arr); e; e = dcv_json_next(e))
        if (dcv_json_string(e) && !strcmp(dcv_json_string(e), s)) return true;
    return false;
}

Test(model, config_json_with_declared_shape)
{
    put_weights2();
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"name\": \"up\", "
              "\"filters\": 4, \"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\", "
              "\"batch_input_shape\": [null, 5, 6, 2], \"kernel_regularizer\": {\"class_name\": "
              "\"L2\", \"config\": {\"l2\": 0.01}}, \"frobnicate\": true}, "
              "\"weights\": {\"kernel\": \"k.npy\", \"bias\": \"b.npy\"}}");
    struct dcv_model *m = load_ok("m", NULL);
    struct dcv_json *j = dcv_model_config_json(m);
    cr_assert_not_null(j);
    cr_expect_str_eq(dcv_json_string(dcv_json_get(j, "name")), "up");
    cr_expect_eq(dcv_json_number(dcv_json_get(j, "filters")), 4);
    const struct dcv_json *meta = dcv_json_get(j, "deconvd");
    cr_assert_not_null(meta);
    cr_expect_str_eq(dcv_json_string(dcv_json_get(meta, "class_name")), "Conv2DTranspose");
    expect_dims(dcv_json_get(meta, "input_shape"), (int64_t[]){ -1, 5, 6, 2 }, 4, "input_shape");
    expect_dims(dcv_json_get(meta, "output_shape"), (int64_t[]){ -1, 10, 12, 4 }, 4,
                "output_shape");
    const struct dcv_json *pad = dcv_json_get(meta, "computed_padding");
    cr_assert_eq(dcv_json_type(pad), DCV_JSON_OBJECT);
    /* full = 4*2+3 = 11 → out 10: before 0, after 1; full 13 → 12: 0, 1 */
    expect_dims(dcv_json_get(pad, "before"), (int64_t[]){ 0, 0 }, 2, "before");
    expect_dims(dcv_json_get(pad, "after"), (int64_t[]){ 1, 1 }, 2, "after");
    cr_expect(has_str(dcv_json_get(meta, "inactive"), "kernel_regularizer"));
    cr_expect(has_str(dcv_json_get(meta, "ignored"), "frobnicate"));
    const struct dcv_json *w = dcv_json_get(meta, "weights");
    cr_expect_str_eq(dcv_json_string(dcv_json_get(w, "kernel")), "k.npy");
    cr_expect_str_eq(dcv_json_string(dcv_json_get(w, "bias")), "b.npy");
    char *s = dcv_json_print(j);
    cr_assert_not_null(s);
    free(s);
    dcv_json_free(j);
    /* the view is a copy: the model's own config is unchanged */
    cr_expect_null(dcv_json_get(dcv_json_get(m->layer.config, "deconvd"), "computed_padding"));
    dcv_model_free(m);
}

Test(model, config_json_padding_negative_and_unknown)
{
    /* valid + output_padding: after = -op */
    put_model("v", "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 3, \"strides\": 3, \"output_padding\": 2, "
              "\"batch_input_shape\": [1, 4, 1]}}");
    struct dcv_model *m = load_ok("v", NULL);
    struct dcv_json *j = dcv_model_config_json(m);
    const struct dcv_json *meta = dcv_json_get(j, "deconvd");
    expect_dims(dcv_json_get(meta, "output_shape"), (int64_t[]){ 1, 14, 1 }, 3, "output_shape");
    const struct dcv_json *pad = dcv_json_get(meta, "computed_padding");
    expect_dims(dcv_json_get(pad, "before"), (int64_t[]){ 0 }, 1, "before");
    expect_dims(dcv_json_get(pad, "after"), (int64_t[]){ -2 }, 1, "after");
    dcv_json_free(j);
    dcv_model_free(m);

    /* unknown spatial size: a formula, not numbers */
    put_model("u", "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 3, \"padding\": \"same\", \"input_shape\": [null, 1]}}");
    m = load_ok("u", NULL);
    j = dcv_model_config_json(m);
    pad = dcv_json_get(dcv_json_get(j, "deconvd"), "computed_padding");
    cr_expect_eq(dcv_json_type(pad), DCV_JSON_STRING);
    dcv_json_free(j);
    dcv_model_free(m);

    /* a declared size the layer refuses (k=4, s=1, same, op=0): no garbage pads */
    put_model("r", "{\"class_name\": \"Conv1DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 4, \"padding\": \"same\", \"output_padding\": 0, "
              "\"batch_input_shape\": [1, 6, 1]}}");
    m = load_ok("r", NULL);
    j = dcv_model_config_json(m);
    meta = dcv_json_get(j, "deconvd");
    expect_dims(dcv_json_get(meta, "output_shape"), (int64_t[]){ -1, -1, -1 }, 3,
                "output_shape");
    pad = dcv_json_get(meta, "computed_padding");
    cr_expect_eq(dcv_json_type(pad), DCV_JSON_STRING, "pads computed from an unknown output");
    dcv_json_free(j);
    dcv_model_free(m);
}

/* ---- inference errors ---------------------------------------------------------- */

/* The CFG2 layer with .npy weights in list form, loaded. */
static struct dcv_model *model2(void)
{
    put_weights2();
    put_model("m", "{\"class_name\": \"Conv2DTranspose\", \"config\": %s, "
              "\"weights\": [\"k.npy\", \"b.npy\"]}", CFG2);
    return load_ok("m", NULL);
}

Test(model, infer_errors)
{
    struct dcv_model *m = model2();
    char err[DCV_ERRLEN] = "";
    float in[5 * 5 * 3] = { 0 }, out[1000];
    int64_t shape[5] = { 1, 5, 5, 2, 1 }, oshape[5];
    size_t count;

    cr_expect_eq(dcv_model_infer(m, in, shape, 3, out, 1000, NULL, err), DCV_ESHAPE);
    cr_expect(strstr(err, "rank"), "%s", err);
    cr_expect_eq(dcv_model_infer(m, in, shape, 5, out, 1000, NULL, err), DCV_ESHAPE);
    int64_t ch[4] = { 1, 5, 5, 3 };
    cr_expect_eq(dcv_model_infer(m, in, ch, 4, out, 1000, NULL, err), DCV_ESHAPE);
    cr_expect(strstr(err, "3 channels") && strstr(err, "expects 2"), "%s", err);
    int64_t unk[4] = { 1, -1, 5, 2 };
    cr_expect_eq(dcv_model_output_shape(m, unk, 4, oshape, &count, err), DCV_ESHAPE);
    cr_expect_eq(dcv_model_infer(m, in, unk, 4, out, 1000, NULL, err), DCV_ESHAPE);
    int64_t zero[4] = { 0, 5, 5, 2 };
    cr_expect_eq(dcv_model_infer(m, in, zero, 4, out, 1000, NULL, err), DCV_ESHAPE);

    /* 1x5x5x2 → 1x10x10x4 = 400 floats */
    cr_assert_eq(dcv_model_output_shape(m, shape, 4, oshape, &count, err), 0, "%s", err);
    cr_assert_eq(count, 400);
    err[0] = '\0';
    int rc = dcv_model_infer(m, in, shape, 4, out, 399, NULL, err);
    cr_expect_lt(rc, 0);
    cr_expect_neq(err[0], '\0');
    cr_expect(strstr(err, "399") && strstr(err, "400"), "%s", err);
    cr_expect_eq(dcv_model_infer(m, in, shape, 4, out, 400, NULL, err), 0, "%s", err);
    dcv_model_free(m);
}

/* A stop flag already set: DCV_ECANCELED before anything runs. A clear one,
 * and a run cut into chunks (the engine's test hook: 2 items, 2 items, then
 * a single one), give the bits of the plain run, which matches the
 * reference. */
Test(model, infer_honours_the_stop_flag_and_chunks_change_no_bit)
{
    struct dcv_model *m = model2();
    char err[DCV_ERRLEN] = "";
    float in[5 * 5 * 5 * C2], plain[5 * 10 * 10 * F2], out[5 * 10 * 10 * F2];
    fill(in, sizeof in / sizeof *in, 0.7f);
    int64_t ishape[4] = { 5, 5, 5, C2 }, oshape[4] = { 5, 10, 10, F2 };
    size_t count = sizeof out / sizeof *out;
    atomic_bool stop = true;
    int rc = dcv_model_infer(m, in, ishape, 4, out, count, &stop, err);
    cr_assert_eq(rc, DCV_ECANCELED, "%s", err);
    cr_assert_str_eq(err, "stopped after 0 of 5 batch items");
    cr_assert_eq(dcv_model_infer(m, in, ishape, 4, plain, count, NULL, err), 0, "%s", err);
    double *want = malloc(count * sizeof *want);
    cr_assert_not_null(want);
    reference(2, (int64_t[]){ 3, 3 }, (int64_t[]){ 2, 2 }, (int64_t[]){ 1, 1 }, 1, F2, C2, kern2,
              bias2, in, 5, ishape + 1, oshape + 1, want);
    expect_close(plain, want, count, 1e-5);
    atomic_store(&stop, false);
    for (int64_t items = 0; items <= 2; items += 2) {
        dcv_engine_set_chunk_items(items);
        memset(out, 0, sizeof out);
        cr_assert_eq(dcv_model_infer(m, in, ishape, 4, out, count, &stop, err), 0, "%s", err);
        cr_assert(memcmp(out, plain, sizeof out) == 0, "chunks of %lld", (long long)items);
    }
    dcv_engine_set_chunk_items(0);
    free(want);
    dcv_model_free(m);
}

/* ---- fixtures and shipped examples --------------------------------------------- */

/* Directory `rel` (relative to the repository root) from the current
 * directory or from this file's location. */
static bool repo_dir(const char *rel, char *out, size_t cap)
{
    struct stat st;
    snprintf(out, cap, "%s", rel);
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) return true;
    const char *me = __FILE__, *cut = strstr(me, "tests/unit/");
    if (!cut) return false;
    snprintf(out, cap, "%.*s%s", (int)(cut - me), me, rel);
    return stat(out, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Loads every *.json in dir; returns how many. */
static int load_all(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - 5), e->d_name);
        struct dcv_model *m = NULL;
        char err[DCV_ERRLEN] = "";
        int rc = dcv_model_load(dir, name, NULL, &m, err);
        cr_expect_eq(rc, 0, "%s/%s: %s (%s)", dir, e->d_name, err, dcv_error_name(rc));
        if (rc) continue;
        n++;
        /* its declared signature, with unknowns replaced, runs */
        int64_t in[DCV_MAX_DIMS], out[DCV_MAX_DIMS];
        for (int i = 0; i < m->ndim; i++) in[i] = m->in_sig[i] > 0 ? m->in_sig[i] : 3;
        size_t count, icount = 1;
        rc = dcv_model_output_shape(m, in, m->ndim, out, &count, err);
        cr_expect_eq(rc, 0, "%s: %s", name, err);
        for (int i = 0; i < m->ndim; i++) icount *= (size_t)in[i];
        if (!rc && count < ((size_t)1 << 24) && icount < ((size_t)1 << 24)) {
            float *x = calloc(icount, sizeof *x), *y = malloc(count * sizeof *y);
            cr_assert(x && y);
            fill(x, icount, 0.5f);
            rc = dcv_model_infer(m, x, in, m->ndim, y, count, NULL, err);
            cr_expect_eq(rc, 0, "%s: %s", name, err);
            for (size_t i = 0; !rc && i < count; i++)
                cr_assert(isfinite(y[i]), "%s: output %zu is %g", name, i, y[i]);
            free(x);
            free(y);
        }
        struct dcv_json *j = dcv_model_config_json(m);
        cr_expect_not_null(j, "%s: no config view", name);
        dcv_json_free(j);
        dcv_model_free(m);
    }
    closedir(d);
    return n;
}

Test(model, shipped_examples_load)
{
    char dir[PATH_MAX];
    if (!repo_dir("config/models", dir, sizeof dir)) cr_skip("no config/models directory");
    DIR *d = opendir(dir);
    int any = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        any |= len > 5 && strcmp(e->d_name + len - 5, ".json") == 0;
    }
    if (d) closedir(d);
    if (!any) cr_skip("config/models has no *.json yet");
    cr_expect_gt(load_all(dir), 0);
}

Test(model, fixtures_load)
{
    char dir[PATH_MAX];
    if (!repo_dir("tests/data/models", dir, sizeof dir))
        cr_assert_fail("tests/data/models is missing");
    cr_expect_geq(load_all(dir), 3);
}

/* The Keras 3 fixture (serialize_keras_object form) computes what the
 * reference says. */
Test(model, keras3_fixture_values)
{
    char dir[PATH_MAX], err[DCV_ERRLEN] = "";
    cr_assert(repo_dir("tests/data/models", dir, sizeof dir));
    struct dcv_model *m = NULL;
    cr_assert_eq(dcv_model_load(dir, "keras3_conv2d_transpose", NULL, &m, err), 0, "%s", err);
    cr_expect_eq(m->layer.conv.act.kind, DCV_ACT_LINEAR);
    /* kernel (2, 2, 2, 1) = [[[[1], [2]], [[3], [4]]], [[[5], [6]], [[7], [8]]]],
     * bias [0.5, -1]; strides 2, valid: each input pixel paints a 2x2 block */
    float in[4] = { 1, 2, 3, 4 }, out[4 * 4 * 2];
    int64_t ishape[4] = { 1, 2, 2, 1 };
    cr_assert_eq(dcv_model_infer(m, in, ishape, 4, out, 32, NULL, err), 0, "%s", err);
    float kern[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, bias[2] = { 0.5f, -1.0f };
    double want[32];
    reference(2, (int64_t[]){ 2, 2 }, (int64_t[]){ 2, 2 }, (int64_t[]){ 1, 1 }, 0, 2, 1, kern,
              bias, in, 1, ishape + 1, (int64_t[]){ 4, 4 }, want);
    expect_close(out, want, 32, 1e-6);
    /* out[y=1, x=2, f=1] = in[0,1] * K[1, 0, 1] + bias[1] = 2*6 - 1 */
    cr_expect_float_eq(out[(1 * 4 + 2) * 2 + 1], 11.0f, 1e-6);
    dcv_model_free(m);
}

Test(model, keras3_serialized_build_config_gives_channels)
{
    char err[DCV_ERRLEN];
    const char *doc_text =
        "{\"module\": \"keras.layers\", \"class_name\": \"Conv2DTranspose\", "
        "\"config\": {\"name\": \"up\", \"filters\": 4, \"kernel_size\": [3, 3], "
        "\"strides\": [2, 2], \"padding\": \"same\"}, \"registered_name\": null, "
        "\"build_config\": {\"input_shape\": [null, 8, 8, 5]}}";
    struct dcv_json *doc = dcv_json_parse(doc_text, strlen(doc_text), err);
    cr_assert_not_null(doc, "%s", err);
    struct dcv_model *m = NULL;
    int rc = dcv_model_from_doc("up", doc, NULL, NULL, &m, err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(m->layer.conv.in_channels, 5, "channels come from build_config.input_shape");
    dcv_model_free(m);
    dcv_json_free(doc);
}

/* Fuzzer find (tests/fuzz/regress/model/): a declared input shape whose
 * images hold 2^36 values or more made the load-time prepack hand oneDNN a
 * shape its index arithmetic overflows on, and the process died of SIGFPE.
 * Such models now load (without prepacking at the declared size). */
Test(model, huge_declared_input_shape_loads)
{
    static const char *const docs[] = {
        "{\"class_name\": \"Conv3DTranspose\", \"config\": {\"filters\": 1, \"kernel_size\": 1, "
        "\"batch_input_shape\": [null, 4096, 4096, 4096, 1]}}",
        "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 1, \"kernel_size\": 1, "
        "\"batch_input_shape\": [null, 131072, 262144, 1]}}",
        "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 1, \"kernel_size\": 1, "
        "\"batch_input_shape\": [null, 2147483648, 2147483648, 1]}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        char err[DCV_ERRLEN] = "";
        struct dcv_json *doc = dcv_json_parse(docs[i], strlen(docs[i]), err);
        cr_assert_not_null(doc, "%s", err);
        struct dcv_model *m = NULL;
        cr_expect_eq(dcv_model_from_doc("big", doc, NULL, NULL, &m, err), 0, "%zu: %s", i, err);
        if (m) {
            cr_expect_eq(m->in_sig[1], i == 0 ? 4096 : i == 1 ? 131072 : INT64_C(2147483648));
            cr_expect_eq(m->out_sig[2], m->in_sig[2], "the signature keeps the declared size");
        }
        dcv_model_free(m);
        dcv_json_free(doc);
    }
}

/* The model file's "image" key (PNG answers, png.c): its range, or the
 * last activation's; a bad one refuses the model, naming the key. */
Test(model, image_range_from_the_file_or_the_activation)
{
    put_model("ranged", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 3, "
              "\"kernel_size\": 1, \"activation\": \"relu\", \"data_format\": "
              "\"channels_first\"}, \"weights\": {\"kernel\": [[[[1], [2], [3]]]]}, "
              "\"image\": {\"range\": [0, 4]}}");
    put_model("tanh", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 1, \"activation\": \"tanh\"}, \"weights\": {\"kernel\": "
              "[[[[1]]]]}}");
    put_model("plain", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 1}, \"weights\": {\"kernel\": [[[[1]]]]}}");
    put_model("bad", "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 1, "
              "\"kernel_size\": 1}, \"weights\": {\"kernel\": [[[[1]]]]}, "
              "\"image\": {\"range\": [1, -1]}}");
    struct dcv_model *m = load_ok("ranged", NULL);
    cr_expect(m->image.has_range && m->image.lo == 0 && m->image.hi == 4);
    cr_expect(m->image.channels_first);
    dcv_model_free(m);
    m = load_ok("tanh", NULL);
    cr_expect(m->image.has_range && m->image.lo == -1 && m->image.hi == 1);
    cr_expect(!m->image.channels_first);
    dcv_model_free(m);
    m = load_ok("plain", NULL);
    cr_expect(!m->image.has_range);
    dcv_model_free(m);
    load_fail("bad", NULL, DCV_EINVAL, "bad.json: image.range must be [lo, hi] with finite "
              "lo < hi, got [1, -1]", NULL);
}
