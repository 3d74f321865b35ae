/* test_png.c — PNG answers: the value range from the model file or the
 * activation, content negotiation against RFC 9110's rules worked by hand,
 * the grid layout, the size bound on incompressible pictures, and encoded
 * files decoded by tests/png_ref.py (its own zlib + struct decoder, and
 * Pillow when installed) against the pixels NumPy maps the floats to. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deconvd/activation.h"
#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/png.h"
#include "testutil.h"

/* ---- the value range ---- */

static int spec_of(const char *image_json, const char *act_json, bool cf,
                   struct dcv_png_spec *s, char *err)
{
    char e[DCV_ERRLEN];
    struct dcv_activation a;
    struct dcv_json *act = dcv_json_parse(act_json, strlen(act_json), e);
    cr_assert_not_null(act, "%s: %s", act_json, e);
    cr_assert_eq(dcv_activation_parse(act, &a, e), 0, "%s: %s", act_json, e);
    struct dcv_json *img = image_json ? dcv_json_parse(image_json, strlen(image_json), e) : NULL;
    cr_assert(!image_json || img, "%s: %s", image_json, e);
    memset(err, 0, DCV_ERRLEN);
    int rc = dcv_png_spec_parse(img, &a, cf, s, err);
    dcv_json_free(act);
    dcv_json_free(img);
    return rc;
}

static void expect_range(const char *image, const char *act, double lo, double hi,
                         const char *source)
{
    struct dcv_png_spec s;
    char err[DCV_ERRLEN];
    cr_assert_eq(spec_of(image, act, false, &s, err), 0, "%s / %s: %s", image, act, err);
    cr_assert(s.has_range, "%s / %s: no range (%s)", image, act, s.source);
    cr_assert(s.lo == lo && s.hi == hi, "%s / %s: [%g, %g], expected [%g, %g]", image, act,
              s.lo, s.hi, lo, hi);
    cr_assert_str_eq(s.source, source);
}

static void expect_no_range(const char *act, const char *named)
{
    struct dcv_png_spec s;
    char err[DCV_ERRLEN];
    cr_assert_eq(spec_of(NULL, act, false, &s, err), 0, "%s: %s", act, err);
    cr_assert(!s.has_range, "%s: range [%g, %g] where none is known", act, s.lo, s.hi);
    cr_assert_str_eq(s.source, named);
}

Test(png, range_defaults_from_the_last_activation)
{
    expect_range(NULL, "\"tanh\"", -1, 1, "activation tanh");
    expect_range(NULL, "\"softsign\"", -1, 1, "activation softsign");
    expect_range(NULL, "\"sigmoid\"", 0, 1, "activation sigmoid");
    expect_range(NULL, "\"hard_sigmoid\"", 0, 1, "activation hard_sigmoid");
    expect_range(NULL, "\"softmax\"", 0, 1, "activation softmax");
    expect_range(NULL, "\"hard_tanh\"", -1, 1, "activation hard_tanh");
    expect_range(NULL, "\"sparse_sigmoid\"", 0, 1, "activation sparse_sigmoid");
    expect_range(NULL, "\"sparsemax\"", 0, 1, "activation sparsemax");
    expect_range(NULL, "\"relu6\"", 0, 6, "activation relu6");
    expect_range(NULL, "{\"class_name\":\"ReLU\",\"config\":{\"max_value\":2.5}}", 0, 2.5,
                 "activation relu");
    expect_range("null", "\"tanh\"", -1, 1, "activation tanh");
    expect_range("{}", "\"sigmoid\"", 0, 1, "activation sigmoid");
    /* unbounded on a side: no default, whatever the name */
    expect_no_range("\"linear\"", "linear");
    expect_no_range("null", "linear");
    expect_no_range("\"relu\"", "relu");
    expect_no_range("{\"class_name\":\"ReLU\",\"config\":{\"max_value\":6,"
                    "\"negative_slope\":0.1}}", "relu");
    expect_no_range("\"leaky_relu\"", "leaky_relu");
    expect_no_range("\"elu\"", "elu");
    expect_no_range("\"swish\"", "swish");
    expect_no_range("\"exponential\"", "exponential");
    struct dcv_png_spec s;
    char err[DCV_ERRLEN];
    cr_assert_eq(dcv_png_spec_parse(NULL, NULL, false, &s, err), 0, "%s", err);
    cr_assert(!s.has_range, "no activation known: range [%g, %g]", s.lo, s.hi);
}

Test(png, range_from_the_model_file_wins)
{
    expect_range("{\"range\": [0, 255]}", "\"tanh\"", 0, 255, "image.range");
    expect_range("{\"range\": [-3.5, 1e3]}", "\"relu\"", -3.5, 1000, "image.range");
    struct dcv_png_spec s;
    char err[DCV_ERRLEN];
    cr_assert_eq(spec_of("{\"range\": [0, 1]}", "\"linear\"", true, &s, err), 0, "%s", err);
    cr_assert(s.channels_first);
}

static void expect_bad(const char *image, const char *sub)
{
    struct dcv_png_spec s;
    char err[DCV_ERRLEN];
    assert_err(spec_of(image, "\"tanh\"", false, &s, err), DCV_EINVAL, err, sub);
}

Test(png, bad_image_keys_are_refused_naming_them)
{
    expect_bad("[0, 1]", "image must be an object");
    expect_bad("{\"rnage\": [0, 1]}", "unknown key 'rnage'");
    expect_bad("{\"range\": [0, 1], \"gap\": 2}", "unknown key 'gap'");
    expect_bad("{\"range\": [1]}", "image.range must be a list of two numbers");
    expect_bad("{\"range\": [0, 1, 2]}", "image.range must be a list of two numbers");
    expect_bad("{\"range\": [\"0\", 1]}", "image.range must be a list of two numbers");
    expect_bad("{\"range\": 1}", "got number");
    expect_bad("{\"range\": [1, 0]}", "finite lo < hi, got [1, 0]");
    expect_bad("{\"range\": [2, 2]}", "finite lo < hi, got [2, 2]");
    expect_bad("{\"range\": [-1e308, 1e308]}", "finite lo < hi");
}

/* ---- content negotiation ---- */

struct nego {
    const char *accept;
    enum dcv_png_choice json, binary;
};

Test(png, negotiation_follows_rfc9110)
{
    /* Worked from RFC 9110 12.5.1: the most specific matching range gives a
     * type its q; PNG must beat the other form's q, or tie it with a more
     * specific range. */
    static const struct nego t[] = {
        { NULL, DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "", DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "*/*", DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "application/json", DCV_PNG_OTHER, DCV_PNG_NEITHER },
        { "application/octet-stream", DCV_PNG_NEITHER, DCV_PNG_OTHER },
        { "image/png", DCV_PNG_ONLY, DCV_PNG_ONLY },
        { "IMAGE/PNG", DCV_PNG_ONLY, DCV_PNG_ONLY },
        { "image/*", DCV_PNG_ONLY, DCV_PNG_ONLY },
        { "image/png, */*", DCV_PNG_FIRST, DCV_PNG_FIRST },
        { "image/png, */*;q=0.8", DCV_PNG_FIRST, DCV_PNG_FIRST },
        { "image/png;q=0.5, */*", DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "image/png, application/json", DCV_PNG_OTHER, DCV_PNG_ONLY },
        { "application/json;q=0.9, image/png", DCV_PNG_FIRST, DCV_PNG_ONLY },
        { "image/png;q=0.8, application/json;q=0.9", DCV_PNG_OTHER, DCV_PNG_ONLY },
        { "image/png;q=1.000, application/json;q=0.999", DCV_PNG_FIRST, DCV_PNG_ONLY },
        { "image/*;q=0.9, image/png;q=0.1, application/json;q=0.5", DCV_PNG_OTHER,
          DCV_PNG_ONLY },
        { "image/png;q=0, */*", DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "image/png;q=0", DCV_PNG_NEITHER, DCV_PNG_NEITHER },
        { "text/html", DCV_PNG_NEITHER, DCV_PNG_NEITHER },
        { "text/html, image/webp", DCV_PNG_NEITHER, DCV_PNG_NEITHER },
        { "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
          DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", DCV_PNG_FIRST,
          DCV_PNG_FIRST },
        { " image/png ; q=0.7 ; foo=\"a,b;q=0.1\" , application/json ; q=0.6", DCV_PNG_FIRST,
          DCV_PNG_ONLY },
        { "application/json; charset=utf-8", DCV_PNG_OTHER, DCV_PNG_NEITHER },
        { "image/png;;q=0.5,,application/json;q=0.4", DCV_PNG_FIRST, DCV_PNG_ONLY },
        /* malformed elements are skipped; nothing valid left: no preference */
        { "image/png;q=2, application/json", DCV_PNG_OTHER, DCV_PNG_NEITHER },
        { "image/png;q=0.5000, text/html", DCV_PNG_NEITHER, DCV_PNG_NEITHER },
        { "image/png;q=abc", DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "png", DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "*/png", DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "image/png; q=\"0.5\"", DCV_PNG_OTHER, DCV_PNG_OTHER },
        { "image/png;foo=\"unterminated", DCV_PNG_OTHER, DCV_PNG_OTHER },
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        enum dcv_png_choice j = dcv_png_negotiate(t[i].accept, "application/json");
        enum dcv_png_choice b = dcv_png_negotiate(t[i].accept, "application/octet-stream");
        cr_expect_eq(j, t[i].json, "Accept: %s vs JSON: %d, expected %d", t[i].accept, j,
                     t[i].json);
        cr_expect_eq(b, t[i].binary, "Accept: %s vs binary: %d, expected %d", t[i].accept, b,
                     t[i].binary);
    }
}

/* ---- layout ---- */

static struct dcv_png_spec range_spec(double lo, double hi, bool cf)
{
    struct dcv_png_spec s = { .has_range = true, .lo = lo, .hi = hi, .channels_first = cf };
    snprintf(s.source, sizeof s.source, "image.range");
    return s;
}

struct grid {
    int64_t n, rows, cols;
    uint32_t w, h;
};

Test(png, batch_grid_is_near_square_with_gaps)
{
    /* tiles of 5 x 7 (h x w), 2 pixels apart: w = cols*7 + (cols-1)*2 */
    static const struct grid g[] = {
        { 1, 1, 1, 7, 5 },   { 2, 1, 2, 16, 5 },  { 3, 2, 2, 16, 12 }, { 4, 2, 2, 16, 12 },
        { 5, 2, 3, 25, 12 }, { 9, 3, 3, 25, 19 }, { 10, 3, 4, 34, 19 },
    };
    struct dcv_png_spec s = range_spec(0, 1, false);
    for (size_t i = 0; i < sizeof g / sizeof *g; i++) {
        int64_t shape[4] = { g[i].n, 5, 7, 3 };
        struct dcv_png_layout l;
        char err[DCV_ERRLEN];
        cr_assert_eq(dcv_png_layout(&s, shape, 4, &l, err), 0, "%s", err);
        cr_expect(l.rows == g[i].rows && l.cols == g[i].cols && l.image_w == g[i].w &&
                  l.image_h == g[i].h, "batch %lld: %lld x %lld tiles, %u x %u px; expected "
                  "%lld x %lld, %u x %u", (long long)g[i].n, (long long)l.rows,
                  (long long)l.cols, l.image_w, l.image_h, (long long)g[i].rows,
                  (long long)g[i].cols, g[i].w, g[i].h);
    }
}

Test(png, channels_first_reads_axis_one)
{
    struct dcv_png_spec s = range_spec(0, 1, true);
    int64_t shape[4] = { 1, 4, 6, 8 };   /* (N, C, H, W) */
    struct dcv_png_layout l;
    char err[DCV_ERRLEN];
    cr_assert_eq(dcv_png_layout(&s, shape, 4, &l, err), 0, "%s", err);
    cr_assert(l.channels == 4 && l.height == 6 && l.width == 8 && l.image_w == 8 &&
              l.image_h == 6);
    int64_t last[4] = { 1, 6, 8, 4 };    /* channels last in a channels_first model: C = 6 */
    assert_err(dcv_png_layout(&s, last, 4, &l, err), DCV_ENOTACCEPT, err,
               "has 6 channels (channels_first: axis 1)");
}

Test(png, outputs_that_are_no_picture_are_refused_saying_why)
{
    struct dcv_png_spec s = range_spec(-1, 1, false), none = s;
    struct dcv_png_layout l;
    char err[DCV_ERRLEN];
    int64_t s1[3] = { 1, 16, 1 }, s3[5] = { 1, 4, 4, 4, 3 }, two[4] = { 1, 8, 8, 2 };
    int64_t five[4] = { 2, 8, 8, 5 }, ok[4] = { 2, 8, 8, 1 };
    int64_t wide[4] = { 1, 1, INT64_C(1) << 31, 1 }, many[4] = { 4, 1, INT64_C(1) << 30, 1 };
    assert_err(dcv_png_layout(&s, s1, 3, &l, err), DCV_ENOTACCEPT, err,
               "its output (1, 16, 1) is 1-D (batch, length, channels): a signal, not a picture");
    assert_err(dcv_png_layout(&s, s3, 5, &l, err), DCV_ENOTACCEPT, err,
               "(1, 4, 4, 4, 3) is 3-D: a volume, not a picture");
    assert_err(dcv_png_layout(&s, two, 4, &l, err), DCV_ENOTACCEPT, err,
               "(1, 8, 8, 2) has 2 channels (the last axis); a picture has 1 (gray), 3 (RGB) "
               "or 4 (RGBA)");
    assert_err(dcv_png_layout(&s, five, 4, &l, err), DCV_ENOTACCEPT, err, "has 5 channels");
    none.has_range = false;
    snprintf(none.source, sizeof none.source, "relu");
    assert_err(dcv_png_layout(&none, ok, 4, &l, err), DCV_ENOTACCEPT, err,
               "its last activation (relu) is unbounded; set \"image\": {\"range\": [lo, hi]}");
    assert_err(dcv_png_layout(&s, wide, 4, &l, err), DCV_ENOTACCEPT, err, "outside 1..");
    assert_err(dcv_png_layout(&s, many, 4, &l, err), DCV_ENOTACCEPT, err,
               "makes a grid of 2147483650 x 4 pixels");
}

/* ---- encoding ---- */

static uint64_t g_rng = 0x243f6a8885a308d3u;

static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static char g_root[] = "/tmp/dcvpng.XXXXXX";

static void remove_root(void)
{
    char cmd[64];
    if (strchr(g_root, 'X')) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_root);
}

/* Encodes x (shape per spec), writes the case for png_ref.py into
 * root/cNN; expect (may be NULL) holds hand-worked pixel bytes. Returns
 * the PNG's size. */
static size_t write_case(int i, const struct dcv_png_spec *s, const int64_t *shape,
                         const float *x, const unsigned char *expect, size_t nexpect)
{
    char dir[96], path[128], err[DCV_ERRLEN];
    struct dcv_png_layout l;
    char *png;
    size_t len, n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    cr_assert_eq(dcv_png_layout(s, shape, 4, &l, err), 0, "case %d: %s", i, err);
    cr_assert_eq(dcv_png_encode(&l, x, NULL, &png, &len, err), 0, "case %d: %s", i, err);
    cr_assert_leq(len, dcv_png_bound(&l), "case %d: %zu bytes, bound %zu", i, len,
                  dcv_png_bound(&l));
    snprintf(dir, sizeof dir, "%s/c%02d", g_root, i);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/out.png", dir);
    cr_assert_eq(tu_write_file(path, png, len), 0);
    snprintf(path, sizeof path, "%s/x.f32", dir);
    cr_assert_eq(tu_write_file(path, x, n * sizeof *x), 0);
    snprintf(path, sizeof path, "%s/params.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"shape\": [%lld, %lld, %lld, %lld], \"channels_first\": %s, "
            "\"range\": [%.17g, %.17g]", (long long)shape[0], (long long)shape[1],
            (long long)shape[2], (long long)shape[3], s->channels_first ? "true" : "false",
            s->lo, s->hi);
    if (expect) {
        fprintf(f, ", \"expect\": [");
        for (size_t k = 0; k < nexpect; k++) fprintf(f, k ? ",%u" : "%u", expect[k]);
        fprintf(f, "]");
    }
    fprintf(f, "}\n");
    cr_assert_eq(fclose(f), 0);
    dcv_buf_free(png);
    return len;
}

/* tests/png_ref.py over the cases, from the repository root (where make
 * runs the suite); its exit status 77 says its Python has no NumPy. */
static void run_ref(int ncases)
{
    static const char script[] = "tests/png_ref.py";
    char cmd[4096];
    cr_assert_eq(access(script, R_OK), 0, "%s not found: run from the repository root",
                 script);
    size_t n = (size_t)snprintf(cmd, sizeof cmd, "'%s' %s", tu_python(), script);
    for (int i = 0; i < ncases; i++)
        n += (size_t)snprintf(cmd + n, sizeof cmd - n, " '%s/c%02d'", g_root, i);
    cr_assert_lt(n, sizeof cmd);
    int st = system(cmd), code = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (code == 77) {
        remove_root();                   /* a skip runs no .fini */
        cr_skip_test("%s cannot import numpy (install python3-numpy, or point "
                     "DCV_TEST_PYTHON at a Python that has it)", tu_python());
    }
    cr_assert_eq(code, 0, "png_ref.py found a wrong picture (above): %s", cmd);
}

/* Values around and beyond [lo, hi], with NaN and the infinities. */
static float test_value(double lo, double hi)
{
    uint32_t r = rnd();
    switch (r % 16) {
    case 0: return NAN;
    case 1: return INFINITY;
    case 2: return -INFINITY;
    case 3: return (float)lo;
    case 4: return (float)hi;
    default: return (float)(lo + (hi - lo) * ((double)(rnd() % 1400) / 1000.0 - 0.2));
    }
}

Test(png, pictures_decode_to_the_numpy_mapping, .fini = remove_root)
{
    static const int64_t batches[] = { 1, 2, 3, 5 }, chans[] = { 1, 3, 4 };
    int i = 0;
    cr_assert_not_null(mkdtemp(g_root));
    for (size_t b = 0; b < 4; b++)
        for (size_t c = 0; c < 3; c++)
            for (int cf = 0; cf < 2; cf++) {
                double lo = cf ? -1 : 0, hi = cf ? 1 : 1 + (double)c;
                struct dcv_png_spec s = range_spec(lo, hi, cf);
                int64_t h = 3 + (int64_t)b, w = 5 + (int64_t)c;
                int64_t shape[4] = { batches[b], cf ? chans[c] : h, cf ? h : w,
                                     cf ? w : chans[c] };
                size_t n = (size_t)(batches[b] * h * w * chans[c]);
                float *x = malloc(n * sizeof *x);
                for (size_t k = 0; k < n; k++) x[k] = test_value(lo, hi);
                write_case(i++, &s, shape, x, NULL, 0);
                free(x);
            }
    /* more rows than one IDAT chunk holds, noise that does not compress */
    {
        struct dcv_png_spec s = range_spec(0, 1, false);
        int64_t shape[4] = { 2, 90, 120, 3 };
        size_t n = 2 * 90 * 120 * 3;
        float *x = malloc(n * sizeof *x);
        for (size_t k = 0; k < n; k++) x[k] = (float)(rnd() % 256) / 255.0f;
        cr_assert_gt(write_case(i++, &s, shape, x, NULL, 0), 8192 * 4);
        free(x);
    }
    run_ref(i);
}

Test(png, hand_worked_pixels, .fini = remove_root)
{
    cr_assert_not_null(mkdtemp(g_root));
    /* gray, [0, 1]: 0.5 -> 127.5 rounds up; beyond the range clips; NaN -> 0 */
    struct dcv_png_spec gray = range_spec(0, 1, false);
    int64_t g1[4] = { 1, 2, 4, 1 };
    float gx[8] = { 0, 0.5f, 1, 2, -1, NAN, 0.25f, 0.998f };
    unsigned char ge[8] = { 0, 128, 255, 255, 0, 0, 64, 254 };
    write_case(0, &gray, g1, gx, ge, 8);
    /* tanh range, RGB: -1 black, 0 -> 127.5 -> 128, 1 white, +-inf clip */
    struct dcv_png_spec tanh = range_spec(-1, 1, false);
    int64_t r1[4] = { 1, 1, 2, 3 };
    float rx[6] = { -1, 0, 1, INFINITY, -INFINITY, 0.6f };
    unsigned char re[6] = { 0, 128, 255, 255, 0, 204 };
    write_case(1, &tanh, r1, rx, re, 6);
    /* a batch of 2 gray 1 x 1 tiles: [a, 0, 0, b] (2 pixels of gap) */
    int64_t b2[4] = { 2, 1, 1, 1 };
    float bx[2] = { 1, 0.5f };
    unsigned char be[4] = { 255, 0, 0, 128 };
    write_case(2, &gray, b2, bx, be, 4);
    /* channels first, RGBA 1 x 2: planes R, G, B, A */
    struct dcv_png_spec cf = range_spec(0, 255, true);
    int64_t c1[4] = { 1, 4, 1, 2 };
    float cx[8] = { 10, 20, 30, 40, 50, 60, 255, 0 };
    unsigned char ce[8] = { 10, 30, 50, 255, 20, 40, 60, 0 };
    write_case(3, &cf, c1, cx, ce, 8);
    /* a batch of 3 on 2 x 2: the fourth place stays 0 */
    int64_t b3[4] = { 3, 1, 1, 1 };
    float tx[3] = { 1, 1, 1 };
    unsigned char te[16] = { 255, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0 };
    write_case(4, &gray, b3, tx, te, 16);
    run_ref(5);
}

/* The bound is zlib's worst case: noise (nothing to compress) fills it
 * nearly, and never passes it. */
Test(png, size_bound_holds_on_incompressible_pictures)
{
    static const int64_t sides[][3] = { { 1, 1, 1 },    { 1, 1, 4 },    { 7, 13, 3 },
                                        { 64, 64, 1 },  { 64, 64, 4 },  { 181, 181, 3 },
                                        { 300, 7, 4 },  { 3, 1000, 1 }, { 256, 256, 4 } };
    for (size_t i = 0; i < sizeof sides / sizeof *sides; i++) {
        struct dcv_png_spec s = range_spec(0, 255, false);
        int64_t shape[4] = { 1, sides[i][0], sides[i][1], sides[i][2] };
        size_t n = (size_t)(shape[1] * shape[2] * shape[3]);
        struct dcv_png_layout l;
        char err[DCV_ERRLEN], *png;
        size_t len;
        float *x = malloc(n * sizeof *x);
        for (size_t k = 0; k < n; k++) x[k] = (float)(rnd() & 255);
        cr_assert_eq(dcv_png_layout(&s, shape, 4, &l, err), 0, "%s", err);
        cr_assert_eq(dcv_png_encode(&l, x, NULL, &png, &len, err), 0, "%s", err);
        size_t raw = (size_t)l.image_h * (1 + (size_t)l.image_w * (size_t)l.channels);
        cr_expect_leq(len, dcv_png_bound(&l), "%zu bytes, bound %zu", len, dcv_png_bound(&l));
        cr_expect_geq(len, raw, "noise compressed: %zu of %zu raw bytes", len, raw);
        cr_expect_leq(dcv_png_bound(&l) - len, raw / 200 + 200, "bound %zu far above %zu",
                      dcv_png_bound(&l), len);
        cr_expect_eq(memcmp(png, "\x89PNG\r\n\x1a\n", 8), 0);
        dcv_buf_free(png);
        free(x);
    }
}

Test(png, stop_flag_stops_the_encoder)
{
    struct dcv_png_spec s = range_spec(0, 1, false);
    int64_t shape[4] = { 1, 8, 8, 1 };
    float x[64] = { 0 };
    struct dcv_png_layout l;
    char err[DCV_ERRLEN], *png = (char *)1;
    size_t len = 0;
    atomic_bool stop;
    atomic_init(&stop, true);
    cr_assert_eq(dcv_png_layout(&s, shape, 4, &l, err), 0, "%s", err);
    assert_err(dcv_png_encode(&l, x, &stop, &png, &len, err), DCV_ECANCELED, err, "stopped");
    cr_assert_null(png);
}

Test(png, not_acceptable_is_406)
{
    cr_assert_eq(dcv_error_http_status(DCV_ENOTACCEPT), 406);
    cr_assert_str_eq(dcv_error_name(DCV_ENOTACCEPT), "ENOTACCEPT");
}
