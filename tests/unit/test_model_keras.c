/* test_model_keras.c — models from Keras files through the isolated child:
 * <name>.keras / .h5, pointer files, JSON models with a Keras weights file,
 * name clashes, fingerprints, the registry's listing. The child's reader is
 * swapped (kchild.h) for one that answers with a real Keras fixture
 * (model.to_json() + kernel.npy/bias.npy written by Keras 3.15.1), so the
 * outputs are checked against Keras's own output.npy; the real readers are
 * tested in test_kfile.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/kchild.h"
#include "deconvd/model.h"
#include "deconvd/npy.h"
#include "deconvd/registry.h"
#include "testutil.h"

static char tmpdir[64];
/* what the fake reader answers with (the child sees the parent's copy) */
static char fx_dir[PATH_MAX];     /* a fixture case directory */
static char fx_layer[128];        /* its layer's name */
static enum { NORMAL, EXTRA_LAYER, WRONG_SHAPE } fx_mode;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dcvmk.XXXXXX");
    cr_assert_not_null(tu_mkdtemp(tmpdir));
    fx_mode = NORMAL;
}

static void teardown(void)
{
    dcv_kchild_set_reader(NULL);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(model_keras, .init = setup, .fini = teardown);

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static int add_npy(struct dcv_kfile *out, const char *file, const char *layer, int index,
                   char *err)
{
    char path[PATH_MAX + 32];
    struct dcv_npy npy;
    snprintf(path, sizeof path, "%s/%s", fx_dir, file);
    if (access(path, F_OK)) return 0;
    int rc = dcv_npy_load(path, 1 << 24, &npy, err);
    if (rc) return rc;
    struct dcv_kfile_array *a = &out->arrays[out->n++];
    snprintf(a->layer, sizeof a->layer, "%s", layer);
    a->index = index;
    a->ndim = npy.ndim;
    memcpy(a->shape, npy.shape, sizeof(int64_t) * (size_t)npy.ndim);
    if (fx_mode == WRONG_SHAPE && index == 0) a->shape[0] += 1, a->shape[1] -= 1;
    a->data = npy.data;
    return 0;
}

/* The fixture as a reader would hand it back: the file's text is ignored
 * for weights-only reads (the JSON document is the config) and is the
 * config otherwise. */
static int fixture_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                          const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                          struct dcv_kfile *out, char *err)
{
    (void)lim;
    memset(out, 0, sizeof *out);
    if (submodel && strcmp(submodel, "decoder"))
        return dcv_errf(err, DCV_EINVAL, "no layer '%s' in the model", submodel);
    if ((kind == DCV_KFILE_WEIGHTS_H5) != (cfg != NULL))
        return dcv_errf(err, DCV_EINTERNAL, "json_config given for the wrong kind");
    snprintf(out->keras_version, sizeof out->keras_version, "3.15.1");
    snprintf(out->backend, sizeof out->backend, "torch");
    if (kind != DCV_KFILE_WEIGHTS_H5) out->config = slurp(path, NULL);
    out->arrays = calloc(3, sizeof *out->arrays);
    int rc = add_npy(out, "kernel.npy", fx_layer, 0, err);
    if (!rc) rc = add_npy(out, "bias.npy", fx_layer, 1, err);
    if (!rc && fx_mode == EXTRA_LAYER) rc = add_npy(out, "kernel.npy", "ghost", 0, err);
    return rc;
}

static void fixture_path(const char *rel, char *out)
{
    const char *me = __FILE__, *cut = strstr(me, "tests/unit/");
    struct stat st;
    snprintf(out, PATH_MAX, "tests/data/keras/iso/%s", rel);
    if (stat(out, &st) == 0 || !cut) return;
    snprintf(out, PATH_MAX, "%.*stests/data/keras/iso/%s", (int)(cut - me), me, rel);
}

/* Uses fixture layers/<c>; copies its model.json into tmpdir as `as`. */
static void use_case(const char *c, const char *as)
{
    char rel[128], src[PATH_MAX + 16], dst[PATH_MAX];
    size_t len;
    snprintf(rel, sizeof rel, "layers/%s", c);
    fixture_path(rel, fx_dir);
    snprintf(fx_layer, sizeof fx_layer, "%s", c);
    snprintf(src, sizeof src, "%s/model.json", fx_dir);
    char *text = slurp(src, &len);
    if (as) {
        snprintf(dst, sizeof dst, "%s/%s", tmpdir, as);
        cr_assert_eq(tu_write_file(dst, text, len), 0);
    }
    free(text);
    dcv_kchild_set_reader(fixture_reader);
}

static void put(const char *name, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    cr_assert_eq(tu_write_file(p, text, strlen(text)), 0);
}

static void rm_file(const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    cr_assert_eq(unlink(p), 0, "%s: %s", p, strerror(errno));
}

static struct dcv_npy npy_of(const char *file)
{
    char p[PATH_MAX + 32], err[DCV_ERRLEN];
    struct dcv_npy n;
    snprintf(p, sizeof p, "%s/%s", fx_dir, file);
    cr_assert_eq(dcv_npy_load(p, 1 << 24, &n, err), 0, "%s", err);
    return n;
}

/* Runs m on the fixture's input.npy: output.npy within 1e-5 relative. */
static void expect_keras_output(const struct dcv_model *m)
{
    struct dcv_npy in = npy_of("input.npy"), want = npy_of("output.npy");
    char err[DCV_ERRLEN];
    float *out = malloc(sizeof(float) * want.count);
    cr_assert_eq(dcv_model_infer(m, in.data, in.shape, in.ndim, out, want.count, NULL, err), 0,
                 "%s", err);
    for (size_t i = 0; i < want.count; i++)
        cr_assert(fabsf(out[i] - want.data[i]) <= 1e-5f * fmaxf(1.0f, fabsf(want.data[i])),
                  "%s value %zu: %g, Keras %g", fx_layer, i, out[i], want.data[i]);
    free(out);
    dcv_npy_release(&in);
    dcv_npy_release(&want);
}

static struct dcv_model *load_ok(const char *name)
{
    struct dcv_model *m = NULL;
    char err[DCV_ERRLEN] = "";
    int rc = dcv_model_load(tmpdir, name, NULL, &m, err);
    cr_assert_eq(rc, 0, "%s: %s", name, err);
    return m;
}

static const char *const CASES[] = { "conv2dt_same_s2_k3", "conv1dt_same_outpad",
                                     "conv3dt_channels_first", "conv2dt_dilated_valid",
                                     "conv2dt_same_s1_k3_relu_nobias" };

Test(model_keras, every_fixture_from_a_keras_and_an_h5_file)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        for (int h5 = 0; h5 < 2; h5++) {
            use_case(CASES[i], h5 ? "gen.h5" : "gen.keras");
            struct dcv_model *m = load_ok("gen");
            cr_expect_str_eq(m->file_kind, h5 ? "h5" : "keras");
            cr_expect_str_eq(m->keras_version, "3.15.1");
            cr_expect_str_eq(m->backend, "torch");
            cr_expect_str_eq(dcv_model_class(m), "Sequential");
            expect_keras_output(m);
            struct dcv_json *cfg = dcv_model_config_json(m);
            cr_expect_str_eq(dcv_json_string(dcv_json_get(cfg, "keras_version")), "3.15.1");
            const struct dcv_json *l0 = dcv_json_at(dcv_json_get(cfg, "layers"), 0);
            cr_expect_str_eq(dcv_json_string(dcv_json_get(dcv_json_get(l0, "weights"),
                                                          "kernel")), h5 ? "gen.h5" : "gen.keras");
            dcv_json_free(cfg);
            dcv_model_free(m);
            rm_file(h5 ? "gen.h5" : "gen.keras");
        }
    }
}

Test(model_keras, two_files_of_one_name_are_refused_naming_both)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m = NULL;
    use_case("conv2dt_same_s2_k3", "x.keras");
    put("x.json", "{}");
    assert_err(dcv_model_load(tmpdir, "x", NULL, &m, err), DCV_EINVAL, err,
               "x.json and x.keras both define model 'x'");
    use_case("conv2dt_same_s2_k3", "y.keras");
    use_case("conv2dt_same_s2_k3", "y.h5");
    assert_err(dcv_model_load(tmpdir, "y", NULL, &m, err), DCV_EINVAL, err,
               "y.keras and y.h5");
}

Test(model_keras, pointer_file_selects_a_submodel)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m = NULL;
    cr_assert_eq(mkdir(strcat(strcpy((char[PATH_MAX]){ 0 }, tmpdir), "/src"), 0755), 0);
    use_case("conv2dt_same_s2_k3", "src/vae.keras");
    put("dec.json", "{\"file\": \"src/vae.keras\", \"submodel\": \"decoder\"}");
    m = load_ok("dec");
    cr_expect_str_eq(m->file_kind, "pointer");
    cr_assert_eq(m->n_weight_files, 1);
    cr_expect_str_eq(m->weight_files[0], "src/vae.keras");
    expect_keras_output(m);
    uint64_t fp = dcv_model_fingerprint(tmpdir, "dec", m->weight_files, m->n_weight_files);
    cr_expect_eq(fp, m->fingerprint);
    struct timespec pause = { 0, 20 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    use_case("conv2dt_same_s2_k3", "src/vae.keras");       /* replaced */
    cr_expect_neq(dcv_model_fingerprint(tmpdir, "dec", m->weight_files, m->n_weight_files),
                  m->fingerprint, "a replaced Keras file went unnoticed");
    dcv_model_free(m);
    /* refusals, each naming what is wrong */
    put("p1.json", "{\"file\": \"src/vae.keras\", \"submodel\": \"encoder\"}");
    assert_err(dcv_model_load(tmpdir, "p1", NULL, &m, err), DCV_EINVAL, err,
               "no layer 'encoder' in the model");
    cr_expect_not_null(strstr(err, "vae.keras"), "%s", err);
    put("p2.json", "{\"file\": \"../vae.keras\"}");
    assert_err(dcv_model_load(tmpdir, "p2", NULL, &m, err), DCV_EPATH, err, "../vae.keras");
    put("p3.json", "{\"file\": \"src/vae.keras\", \"layers\": 3}");
    assert_err(dcv_model_load(tmpdir, "p3", NULL, &m, err), DCV_EINVAL, err,
               "unknown key 'layers'");
    put("p4.json", "{\"file\": \"g.weights.h5\"}");
    assert_err(dcv_model_load(tmpdir, "p4", NULL, &m, err), DCV_EINVAL, err,
               "'g.weights.h5' is not a Keras model file");
    put("p5.json", "{\"file\": \"src/none.keras\"}");
    assert_err(dcv_model_load(tmpdir, "p5", NULL, &m, err), DCV_ENOENT, err, "src/none.keras");
    put("p6.json", "{\"file\": \"src\"}");
    assert_err(dcv_model_load(tmpdir, "p6", NULL, &m, err), DCV_EINVAL, err, "'src'");
}

Test(model_keras, json_model_with_a_keras_weights_file)
{
    char src[PATH_MAX + 16], err[DCV_ERRLEN];
    struct dcv_model *m = NULL;
    use_case("conv2dt_dilated_valid", "gen.weights.h5");
    snprintf(src, sizeof src, "%s/model.json", fx_dir);
    char *text = slurp(src, NULL);
    text[strlen(text) - 1] = '\0';           /* drop the closing brace */
    char *doc = malloc(strlen(text) + 64);
    sprintf(doc, "%s, \"weights\": \"gen.weights.h5\"}", text);
    put("gen.json", doc);
    m = load_ok("gen");
    cr_expect_str_eq(m->file_kind, "json+h5");
    cr_expect_str_eq(m->weight_files[0], "gen.weights.h5");
    expect_keras_output(m);
    dcv_model_free(m);
    sprintf(doc, "%s, \"weights\": \"gen.npz\"}", text);
    put("bad.json", doc);
    assert_err(dcv_model_load(tmpdir, "bad", NULL, &m, err), DCV_EINVAL, err,
               "a Keras weights file");
    free(doc);
    free(text);
}

Test(model_keras, arrays_that_do_not_fit_are_refused)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m = NULL;
    use_case("conv2dt_same_s2_k3", "gen.keras");
    fx_mode = EXTRA_LAYER;
    assert_err(dcv_model_load(tmpdir, "gen", NULL, &m, err), DCV_EINVAL, err,
               "weights for layer 'ghost'");
    fx_mode = WRONG_SHAPE;
    assert_err(dcv_model_load(tmpdir, "gen", NULL, &m, err), DCV_ESHAPE, err,
               "layer 'conv2dt_same_s2_k3' weight 'kernel': gen.keras has shape (4, 2, 4, 2)");
}

static int crashing_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                           const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                           struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)out, (void)err;
    abort();
}

Test(model_keras, a_crashing_reader_is_a_load_error_naming_the_file)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m = NULL;
    put("gen.keras", "PK");
    dcv_kchild_set_reader(crashing_reader);
    assert_err(dcv_model_load(tmpdir, "gen", NULL, &m, err), DCV_EIO, err,
               "the reader crashed (SIGABRT)");
    cr_expect_not_null(strstr(err, "gen.keras"), "%s", err);
}

Test(model_keras, fingerprint_covers_the_keras_file_and_a_new_clash)
{
    use_case("conv1dt_same_outpad", "gen.keras");
    struct dcv_model *m = load_ok("gen");
    cr_expect_eq(m->n_weight_files, 0);
    cr_expect_eq(dcv_model_fingerprint(tmpdir, "gen", NULL, 0), m->fingerprint);
    struct timespec pause = { 0, 20 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    use_case("conv1dt_same_outpad", "gen.keras");
    uint64_t replaced = dcv_model_fingerprint(tmpdir, "gen", NULL, 0);
    cr_expect_neq(replaced, m->fingerprint, "a replaced .keras went unnoticed");
    put("gen.json", "{}");
    cr_expect_neq(dcv_model_fingerprint(tmpdir, "gen", NULL, 0), replaced,
                  "a clashing gen.json went unnoticed");
    dcv_model_free(m);
}

Test(model_keras, model_file_stems)
{
    char s[DCV_MODEL_NAME_MAX];
    cr_expect(dcv_model_file_stem("gen.keras", s) && !strcmp(s, "gen"));
    cr_expect(dcv_model_file_stem("gen.h5", s) && !strcmp(s, "gen"));
    cr_expect(dcv_model_file_stem("a.b.json", s) && !strcmp(s, "a.b"));
    cr_expect(!dcv_model_file_stem("gen.weights.h5", s));
    cr_expect(!dcv_model_file_stem(".keras", s));
    cr_expect(!dcv_model_file_stem("gen.npy", s));
    cr_expect(!dcv_model_file_stem("gen.keras.bak", s));
    cr_expect(!dcv_model_file_stem(".hidden.h5", s));
}

Test(model_keras, registry_lists_keras_files_once_and_skips_weights_files)
{
    use_case("conv2dt_same_s2_k3", "a.keras");
    use_case("conv2dt_same_s2_k3", "b.h5");
    use_case("conv2dt_same_s2_k3", "w.weights.h5");
    use_case("conv2dt_same_s2_k3", "c.keras");
    put("c.json", "{}");
    struct dcv_registry *r = dcv_registry_new(tmpdir, NULL);
    cr_expect_eq(dcv_registry_load_all(r), 1);            /* c: the clash */
    struct dcv_json *idx = dcv_registry_index(r);
    cr_assert_eq(dcv_json_size(idx), 3, "%s", dcv_json_print(idx));
    const char *want[] = { "a", "b", "c" };
    for (int i = 0; i < 3; i++) {
        const struct dcv_json *e = dcv_json_at(idx, (size_t)i);
        cr_expect_str_eq(dcv_json_string(dcv_json_get(e, "name")), want[i]);
        cr_expect_str_eq(dcv_json_string(dcv_json_get(e, "state")), i < 2 ? "READY"
                                                                          : "UNAVAILABLE");
    }
    cr_expect_not_null(strstr(dcv_json_string(dcv_json_get(dcv_json_at(idx, 2), "reason")),
                              "c.json and c.keras"));
    dcv_json_free(idx);
    dcv_registry_free(r);
}

static int slow_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                       const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                       struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)out, (void)err;
    sleep(30);
    return 0;
}

Test(model_keras, the_model_options_bound_the_reader_process)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m = NULL;
    struct dcv_model_opts o = { .keras_timeout_ms = 200 };
    put("gen.keras", "PK");
    dcv_kchild_set_reader(slow_reader);
    assert_err(dcv_model_load(tmpdir, "gen", &o, &m, err), DCV_ETIMEDOUT, err,
               "longer than 200 ms");
}

/* ---- the real readers (kfile.c) in the child ---------------------------------- */

static void copy_fixture(const char *rel, const char *as, size_t cut)
{
    char src[PATH_MAX], dst[PATH_MAX];
    size_t len;
    fixture_path(rel, src);
    char *b = slurp(src, &len);
    snprintf(dst, sizeof dst, "%s/%s", tmpdir, as);
    cr_assert_eq(tu_write_file(dst, b, cut && cut < len ? cut : len), 0);
    free(b);
}

Test(model_keras, real_reader_serves_the_vae_decoder_from_keras_and_h5)
{
    char rel[64];
    fixture_path("models/vae_decoder", fx_dir);
    snprintf(fx_layer, sizeof fx_layer, "decoder");
    for (int h5 = 0; h5 < 2; h5++) {
        snprintf(rel, sizeof rel, "models/vae_decoder/model.%s", h5 ? "h5" : "keras");
        copy_fixture(rel, h5 ? "dec.h5" : "dec.keras", 0);
        struct dcv_model *m = load_ok("dec");
        cr_expect_str_eq(m->keras_version, "3.15.1");
        expect_keras_output(m);
        dcv_model_free(m);
        rm_file(h5 ? "dec.h5" : "dec.keras");
    }
}

Test(model_keras, real_reader_refuses_a_truncated_file_cleanly)
{
    char err[DCV_ERRLEN];
    struct dcv_model *m = NULL;
    copy_fixture("models/vae_decoder/model.keras", "cut.keras", 100000);
    copy_fixture("models/vae_decoder/model.h5", "cut2.h5", 5000);
    int rc = dcv_model_load(tmpdir, "cut", NULL, &m, err);
    cr_expect_lt(rc, 0);
    cr_expect_not_null(strstr(err, "cut.keras"), "%s", err);
    rc = dcv_model_load(tmpdir, "cut2", NULL, &m, err);
    cr_expect_lt(rc, 0);
    cr_expect_not_null(strstr(err, "cut2.h5"), "%s", err);
    errno = 0;
    cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "a reader process is left");
}
