/* test_modelform.c — Keras model configs as chains: the real Keras 3.15.1
 * VAE decoder in every form Keras writes it (to_json, .keras config.json,
 * .h5 model_config), the same chain hand-written in Keras 3 Functional and
 * tf.keras 2 Sequential / Functional / Model forms (tests/data/modelform/
 * make_forms.py), nested models inlined both ways, the input signature's
 * sources, which Keras wrote a config, and every refusal (code and a
 * message naming the layer and its class). */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/modelform.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

static struct dcv_json *pj(const char *text)
{
    char err[DCV_ERRLEN] = "";
    struct dcv_json *j = dcv_json_parse(text, strlen(text), err);
    cr_assert_not_null(j, "test JSON does not parse (%s): %.300s", err, text);
    return j;
}

static struct dcv_json *load(const char *file)
{
    char path[PATH_MAX];
    const char *me = __FILE__, *cut = strstr(me, "tests/unit/");
    struct stat st;
    snprintf(path, sizeof path, "tests/data/modelform/%s", file);
    if (stat(path, &st) != 0 && cut)
        snprintf(path, sizeof path, "%.*stests/data/modelform/%s", (int)(cut - me), me, file);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    cr_assert_lt(n, sizeof buf - 1, "%s is too big for the test buffer", path);
    buf[n] = '\0';
    return pj(buf);
}

static void must_parse(const struct dcv_json *doc, struct dcv_modelform *f)
{
    char err[DCV_ERRLEN] = "";
    int rc = dcv_modelform_parse(doc, f, err);
    cr_assert_eq(rc, 0, "parse failed: %s: %s", dcv_error_name(rc), err);
}

/* The file's document (free it) and its chain in *f (release it). */
static struct dcv_json *load_parsed(const char *file, struct dcv_modelform *f)
{
    struct dcv_json *doc = load(file);
    must_parse(doc, f);
    return doc;
}

/* Parses text (the document is returned: free it after releasing *f) and
 * checks the chain's layer names (space-separated), input name and Keras. */
static struct dcv_json *chain_of(const char *text, struct dcv_modelform *f, const char *names,
                                 const char *input, enum dcv_keras keras)
{
    struct dcv_json *doc = pj(text);
    must_parse(doc, f);
    int i = 0;
    for (const char *p = names; *p; i++) {
        size_t len = strcspn(p, " ");
        cr_assert_lt(i, f->n, "only %d layers, expected %s", f->n, names);
        cr_assert(strlen(f->layers[i].name) == len && !strncmp(f->layers[i].name, p, len),
                  "layer %d is '%s', expected %s", i, f->layers[i].name, names);
        p += len + (p[len] == ' ');
    }
    cr_assert_eq(f->n, i, "%d layers, expected %s", f->n, names);
    cr_assert_str_eq(f->input_name, input);
    cr_assert_eq(f->keras, keras);
    return doc;
}

/* rc and message of parsing text; the result must be released (empty). */
static int refuse(const char *text, char *err)
{
    struct dcv_json *doc = pj(text);
    struct dcv_modelform f;
    memset(err, 0, DCV_ERRLEN);
    int rc = dcv_modelform_parse(doc, &f, err);
    cr_assert(rc != 0 ? f.n == 0 && f.layers == NULL : true, "a refused parse kept layers");
    if (rc == 0) dcv_modelform_release(&f);
    dcv_json_free(doc);
    return rc;
}

#define expect_refused(text, code, ...)                                                      \
    do {                                                                                     \
        char err_[DCV_ERRLEN];                                                               \
        int rc_ = refuse((text), err_);                                                      \
        const char *subs_[] = { __VA_ARGS__, NULL };                                         \
        cr_assert_eq(rc_, (code), "rc %s, expected %s: %s", dcv_error_name(rc_),             \
                     dcv_error_name(code), err_);                                            \
        for (const char **s_ = subs_; *s_; s_++)                                             \
            cr_assert_not_null(strstr(err_, *s_), "message \"%s\" lacks \"%s\"", err_, *s_); \
    } while (0)

static const char *const VAE_NAMES[] = { "dense", "reshape", "conv2d_transpose",
                                         "conv2d_transpose_1", "conv2d_transpose_2" };
static const char *const VAE_CLASSES[] = { "Dense", "Reshape", "Conv2DTranspose",
                                           "Conv2DTranspose", "Conv2DTranspose" };

/* The VAE decoder's chain (names and classes as in the fixture's
 * layer_configs.json), its signature [None, 2] and the units of its Dense
 * read through the borrowed config. */
static void expect_vae(const struct dcv_modelform *f, const char *cls, enum dcv_keras keras,
                       const char *input_name)
{
    cr_assert_str_eq(f->class_name, cls);
    cr_assert_str_eq(f->name, "decoder");
    cr_assert_eq(f->keras, keras, "keras %d, expected %d", f->keras, keras);
    cr_assert_eq(f->n, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(f->layers[i].name, VAE_NAMES[i]);
        cr_assert_str_eq(f->layers[i].class_name, VAE_CLASSES[i]);
        cr_assert_str_eq(dcv_json_string(dcv_json_get(f->layers[i].config, "name")),
                         VAE_NAMES[i]);
    }
    int64_t units = 0;
    cr_assert(dcv_json_int(dcv_json_get(f->layers[0].config, "units"), 0, 1 << 20, &units));
    cr_assert_eq(units, 3136);
    cr_assert_eq(f->in_ndim, 2);
    cr_assert_eq(f->in_shape[0], -1);
    cr_assert_eq(f->in_shape[1], 2);
    cr_assert_str_eq(f->input_name, input_name);
}

static void vae_file(const char *file, const char *cls, enum dcv_keras keras,
                     const char *input_name)
{
    struct dcv_json *doc = load(file);
    struct dcv_modelform f;
    cr_assert(dcv_modelform_is_model(doc), "%s is not taken for a model", file);
    must_parse(doc, &f);
    expect_vae(&f, cls, keras, input_name);
    dcv_modelform_release(&f);
    cr_assert_eq(f.n, 0);
    cr_assert_null(f.layers);
    dcv_json_free(doc);
}

/* ---- real Keras 3.15.1 files ---------------------------------------------- */

/* The legacy HDF5 config has no "module" keys: DTypePolicy dicts tell. */
Test(modelform, keras3_sequential_h5_model_config)
{
    struct dcv_json *doc = load("keras3_vae_decoder.h5_model_config.json");
    cr_assert_null(dcv_json_get(dcv_json_at(dcv_json_get(dcv_json_get(doc, "config"), "layers"),
                                            1), "module"));
    dcv_json_free(doc);
}

/* The same decoder in every form: the real Keras 3.15.1 files, then the
 * hand-made ones (make_forms.py). tf.keras 2.15 writes "module" keys too:
 * its keras_version decides. Without an InputLayer the first layer's
 * batch_input_shape is the signature; Keras 2.2 wrote the layers list as
 * the config; "Model" is tf.keras 2's older name of Functional. */
Test(modelform, vae_decoder_in_every_form)
{
    static const struct {
        const char *file, *cls;
        enum dcv_keras keras;
        const char *input;
    } forms[] = {
        { "keras3_vae_decoder.to_json.json", "Sequential", DCV_KERAS_3, "input_layer" },
        { "keras3_vae_decoder.keras_config.json", "Sequential", DCV_KERAS_3, "input_layer" },
        { "keras3_vae_decoder.h5_model_config.json", "Sequential", DCV_KERAS_3, "input_layer" },
        { "keras3_vae_decoder.functional.json", "Functional", DCV_KERAS_3, "input_layer" },
        { "keras2_vae_decoder.sequential.json", "Sequential", DCV_KERAS_2, "input_1" },
        { "keras2_vae_decoder.sequential_no_input.json", "Sequential", DCV_KERAS_2, "input" },
        { "keras2_vae_decoder.functional.json", "Functional", DCV_KERAS_2, "input_1" },
        { "keras2_vae_decoder.model.json", "Functional", DCV_KERAS_2, "input_1" },
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        vae_file(forms[i].file, forms[i].cls, forms[i].keras, forms[i].input);
}

Test(modelform, keras3_single_layer_model_json)
{
    struct dcv_modelform f;
    struct dcv_json *doc = load_parsed("keras3_conv3dt_channels_first.to_json.json", &f);
    cr_assert_eq(f.n, 1);
    cr_assert_str_eq(f.layers[0].class_name, "Conv3DTranspose");
    cr_assert_str_eq(f.layers[0].name, "conv3dt_channels_first");
    cr_assert_not_null(f.layers[0].build);
    cr_assert_eq(f.in_ndim, 5);
    const int64_t want[] = { -1, 2, 3, 3, 2 };
    for (int i = 0; i < 5; i++) cr_assert_eq(f.in_shape[i], want[i], "dim %d", i);
    cr_assert_eq(f.keras, DCV_KERAS_3);
    dcv_modelform_release(&f);
    dcv_json_free(doc);
}

/* The specs borrow the document's nodes: config and build_config. */
Test(modelform, specs_borrow_the_document)
{
    struct dcv_modelform f;
    struct dcv_json *doc = load_parsed("keras3_vae_decoder.to_json.json", &f);
    const struct dcv_json *dense = dcv_json_at(dcv_json_get(dcv_json_get(doc, "config"),
                                                            "layers"), 1);
    cr_assert_eq(f.layers[0].config, dcv_json_get(dense, "config"));
    cr_assert_eq(f.layers[0].build, dcv_json_get(dense, "build_config"));
    cr_assert_null(f.layers[1].build, "Reshape has no build_config in the file");
    dcv_modelform_release(&f);
    dcv_json_free(doc);
}

/* ---- the document forms ----------------------------------------------------- */

/* deconvd's model file: {"class_name", "config", "weights", "image"}. */
Test(modelform, model_file_document)
{
    struct dcv_json *real = load("keras3_vae_decoder.to_json.json");
    struct dcv_json *doc = dcv_json_new_object();
    dcv_json_add(doc, "class_name", dcv_json_new_string("Sequential"));
    dcv_json_add(doc, "config", dcv_json_dup(dcv_json_get(real, "config")));
    dcv_json_add(doc, "weights", pj("{\"dense\": {\"kernel\": \"dense.kernel.npy\"}}"));
    dcv_json_add(doc, "image", pj("{\"range\": [0, 1]}"));
    struct dcv_modelform f;
    must_parse(doc, &f);
    expect_vae(&f, "Sequential", DCV_KERAS_3, "input_layer");
    dcv_modelform_release(&f);
    dcv_json_free(doc);
    dcv_json_free(real);
}

/* model.get_config() alone, bare or under "config" of a model file. */
Test(modelform, get_config_alone)
{
    struct dcv_json *real = load("keras3_vae_decoder.functional.json");
    const struct dcv_json *cfg = dcv_json_get(real, "config");
    struct dcv_modelform f;
    cr_assert(dcv_modelform_is_model(cfg));
    must_parse(cfg, &f);
    expect_vae(&f, "Functional", DCV_KERAS_3, "input_layer");
    dcv_modelform_release(&f);

    struct dcv_json *doc = dcv_json_new_object();
    dcv_json_add(doc, "config", dcv_json_dup(cfg));
    dcv_json_add(doc, "weights", dcv_json_new_object());
    must_parse(doc, &f);
    expect_vae(&f, "Functional", DCV_KERAS_3, "input_layer");
    dcv_modelform_release(&f);
    dcv_json_free(doc);

    struct dcv_json *seq = load("keras3_vae_decoder.to_json.json");
    must_parse(dcv_json_get(seq, "config"), &f);
    expect_vae(&f, "Sequential", DCV_KERAS_3, "input_layer");
    dcv_modelform_release(&f);
    dcv_json_free(seq);
    dcv_json_free(real);
}

Test(modelform, single_layers_are_not_models)
{
    const char *docs[] = {
        "{\"class_name\": \"Conv2DTranspose\", \"config\": {\"filters\": 2}}",
        "{\"class_name\": \"Dense\", \"config\": {\"layers\": []}}",
        "{\"config\": {\"filters\": 2, \"kernel_size\": 3}}",
        "{\"filters\": 2}",
        "[]",
        "{\"config\": {\"config\": {\"layers\": []}}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        struct dcv_json *doc = pj(docs[i]);
        cr_assert_not(dcv_modelform_is_model(doc), "%s taken for a model", docs[i]);
        dcv_json_free(doc);
        expect_refused(docs[i], DCV_EINVAL, "not a Sequential, Functional or Model config");
    }
    cr_assert_not(dcv_modelform_is_model(NULL));
}

/* ---- hand-written forms (make_forms.py, from Keras's source) --------------- */

/* Keras 2.2: the layers list is the config. */
Test(modelform, keras2_sequential_list_config)
{
    struct dcv_modelform f;
    struct dcv_json *doc = load_parsed("keras2_vae_decoder.sequential_list.json", &f);
    cr_assert_eq(f.n, 5);
    cr_assert_str_eq(f.layers[4].name, "conv2d_transpose_2");
    cr_assert_eq(f.in_ndim, 2);
    cr_assert_eq(f.keras, DCV_KERAS_2);
    cr_assert_str_eq(f.name, "model", "a list config has no name");
    dcv_modelform_release(&f);
    dcv_json_free(doc);
}

/* The functional walk follows the graph, not the order of "layers". */
Test(modelform, functional_order_comes_from_the_graph)
{
    struct dcv_json *doc = load("keras2_vae_decoder.functional.json");
    struct dcv_json *layers = dcv_json_get(dcv_json_get(doc, "config"), "layers");
    struct dcv_json *rev = dcv_json_new_array();
    for (int i = (int)dcv_json_size(layers) - 1; i >= 0; i--)
        dcv_json_append(rev, dcv_json_dup(dcv_json_at(layers, (size_t)i)));
    dcv_json_set(dcv_json_get(doc, "config"), "layers", rev);
    struct dcv_modelform f;
    must_parse(doc, &f);
    expect_vae(&f, "Functional", DCV_KERAS_2, "input_1");
    dcv_modelform_release(&f);
    dcv_json_free(doc);
}

/* ---- a compact writer of functional configs for the graph tests ----------- */

struct text {
    char *s;
    size_t n, cap;
};

static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if ((size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        t->cap = 2 * t->cap + (size_t)k + 64;
        t->s = realloc(t->s, t->cap);
        cr_assert_not_null(t->s);
    }
}

/* A tensor reference "name", "name@node" or "name#tensor". */
static void put_ref(struct text *t, bool k3, const char *ref, size_t len)
{
    char name[64];
    int node = 0, tensor = 0;
    snprintf(name, sizeof name, "%.*s", (int)len, ref);
    char *at = strchr(name, '@'), *hash = strchr(name, '#');
    if (at) node = atoi(at + 1), *at = '\0';
    if (hash) tensor = atoi(hash + 1), *hash = '\0';
    if (k3)
        put(t, "{\"class_name\": \"__keras_tensor__\", \"config\": {\"shape\": [null, 4], "
            "\"dtype\": \"float32\", \"keras_history\": [\"%s\", %d, %d]}}", name, node, tensor);
    else
        put(t, "[\"%s\", %d, %d, {}]", name, node, tensor);
}

/* One inbound node reading the comma-separated refs in [s, e). */
static void put_node(struct text *t, bool k3, const char *s, const char *e)
{
    put(t, k3 ? "{\"args\": [" : "[");
    bool many = memchr(s, ',', (size_t)(e - s)) != NULL;
    if (k3 && many) put(t, "[");
    for (const char *p = s; p < e;) {
        const char *c = memchr(p, ',', (size_t)(e - p));
        if (!c) c = e;
        if (p != s) put(t, ", ");
        put_ref(t, k3, p, (size_t)(c - p));
        p = c + 1;
    }
    put(t, k3 && many ? "]], \"kwargs\": {}}" : k3 ? "], \"kwargs\": {}}" : "]");
}

/* "name:Class<a,b|c" items separated by spaces: "<" the inbound nodes, "|"
 * between nodes (a shared layer), "," between the tensors of one node. An
 * InputLayer gets batch_shape [null, 4]. ins / outs: the input_layers /
 * output_layers JSON. k3: Keras 3 nodes, else tf.keras 2. */
static char *functional(bool k3, const char *spec, const char *ins, const char *outs)
{
    struct text t = { 0 };
    put(&t, "{\"class_name\": \"Functional\", \"config\": {\"name\": \"m\", \"layers\": [");
    char *copy = strdup(spec), *save = NULL;
    bool first = true;
    for (char *it = strtok_r(copy, " ", &save); it; it = strtok_r(NULL, " ", &save)) {
        char *colon = strchr(it, ':'), *lt = strchr(it, '<');
        cr_assert_not_null(colon, "bad item %s", it);
        *colon = '\0';
        if (lt) *lt = '\0';
        const char *cls = colon + 1;
        put(&t, "%s{\"class_name\": \"%s\", \"name\": \"%s\", \"config\": {\"name\": \"%s\"%s}, "
            "\"inbound_nodes\": [", first ? "" : ", ", cls, it, it,
            strcmp(cls, "InputLayer") ? "" : ", \"batch_shape\": [null, 4]");
        for (const char *p = lt ? lt + 1 : NULL; p && *p;) {
            const char *bar = strchr(p, '|');
            const char *e = bar ? bar : p + strlen(p);
            if (p != lt + 1) put(&t, ", ");
            put_node(&t, k3, p, e);
            p = bar ? bar + 1 : e;
        }
        put(&t, "]}");
        first = false;
    }
    free(copy);
    put(&t, "], \"input_layers\": %s, \"output_layers\": %s}%s}", ins, outs,
        k3 ? ", \"module\": \"keras.src.models.functional\"" : "");
    return t.s;
}

#define CHAIN "in:InputLayer d1:Dense<in d2:Dense<d1"

static void refused_both(const char *spec, const char *ins, const char *outs, int code,
                         const char *sub1, const char *sub2)
{
    for (int k3 = 0; k3 < 2; k3++) {
        char *text = functional(k3, spec, ins, outs);
        expect_refused(text, code, sub1, sub2);
        free(text);
    }
}

Test(modelform, writer_makes_a_chain_both_ways)
{
    for (int k3 = 0; k3 < 2; k3++) {
        char *text = functional(k3, CHAIN, "[[\"in\", 0, 0]]", "[\"d2\", 0, 0]");
        struct dcv_modelform f;
        struct dcv_json *doc = chain_of(text, &f, "d1 d2", "in", k3 ? DCV_KERAS_3 : DCV_KERAS_2);
        cr_assert_eq(f.in_ndim, 2);
        dcv_modelform_release(&f);
        dcv_json_free(doc);
        free(text);
    }
}

/* ---- graph refusals ------------------------------------------------------- */

Test(modelform, merge_is_refused)
{
    refused_both("in:InputLayer d1:Dense<in d2:Dense<in add:Add<d1,d2", "[\"in\", 0, 0]",
                 "[\"add\", 0, 0]", DCV_EUNSUPP,
                 "layer 'add' (class Add) merges 2 inputs; deconvd serves chains only", "");
}

Test(modelform, concatenate_of_three_is_refused)
{
    refused_both("in:InputLayer a:Dense<in b:Dense<a c:Concatenate<in,a,b", "[\"in\", 0, 0]",
                 "[\"c\", 0, 0]", DCV_EUNSUPP, "layer 'c' (class Concatenate) merges 3 inputs",
                 "");
}

Test(modelform, layer_consumed_twice_is_refused)
{
    refused_both("in:InputLayer d1:Dense<in d2:Dense<d1 d3:Dense<d1", "[\"in\", 0, 0]",
                 "[\"d3\", 0, 0]", DCV_EUNSUPP,
                 "layer 'd1' (class Dense) feeds 2 layers ('d2' and 'd3')", "chains only");
}

Test(modelform, shared_layer_is_refused)
{
    refused_both("in:InputLayer d1:Dense<in d2:Dense<d1|d1", "[\"in\", 0, 0]",
                 "[\"d2\", 1, 0]", DCV_EUNSUPP,
                 "layer 'd2' (class Dense) is called 2 times (a shared layer)", "");
    /* A reference to a second call of a layer (the layer's other call is
     * outside the config). */
    refused_both("in:InputLayer d1:Dense<in d2:Dense<d1@1", "[\"in\", 0, 0]",
                 "[\"d2\", 0, 0]", DCV_EUNSUPP, "reads call 1 of layer 'd1' (class Dense)",
                 "shared layer");
}

Test(modelform, second_output_of_a_layer_is_refused)
{
    refused_both("in:InputLayer d1:Dense<in d2:Dense<d1#1", "[\"in\", 0, 0]",
                 "[\"d2\", 0, 0]", DCV_EUNSUPP,
                 "layer 'd2' (class Dense) reads output 1 of layer 'd1' (class Dense)", "");
}

Test(modelform, several_inputs_or_outputs_are_refused)
{
    refused_both("in:InputLayer in2:InputLayer d1:Dense<in", "[[\"in\", 0, 0], [\"in2\", 0, 0]]",
                 "[\"d1\", 0, 0]", DCV_EUNSUPP, "Functional 'm' has 2 inputs", "chains only");
    refused_both(CHAIN, "[\"in\", 0, 0]", "[[\"d1\", 0, 0], [\"d2\", 0, 0]]", DCV_EUNSUPP,
                 "Functional 'm' has 2 outputs", "");
    /* Keras 3 keeps dict inputs as dicts. */
    refused_both("in:InputLayer in2:InputLayer d1:Dense<in",
                 "{\"a\": [\"in\", 0, 0], \"b\": [\"in2\", 0, 0]}", "[\"d1\", 0, 0]",
                 DCV_EUNSUPP, "has 2 inputs", "");
    /* A second InputLayer not named as an input. */
    refused_both("in:InputLayer in2:InputLayer d1:Dense<in", "[\"in\", 0, 0]",
                 "[\"d1\", 0, 0]", DCV_EUNSUPP, "layer 'in2' (class InputLayer) is not on the path",
                 "");
}

Test(modelform, cycle_and_disconnected_layers_are_refused)
{
    refused_both("in:InputLayer d1:Dense<in a:Dense<b b:Dense<a", "[\"in\", 0, 0]",
                 "[\"d1\", 0, 0]", DCV_EUNSUPP, "layer 'a' (class Dense) is not on the path",
                 "cycle");
    refused_both("in:InputLayer d1:Dense<in s:Dense<s", "[\"in\", 0, 0]", "[\"d1\", 0, 0]",
                 DCV_EUNSUPP, "layer 's' (class Dense) is not on the path", "");
    refused_both("in:InputLayer d1:Dense<in x:Dense", "[\"in\", 0, 0]", "[\"d1\", 0, 0]",
                 DCV_EUNSUPP, "layer 'x' (class Dense) of model 'm' is called on nothing", "");
}

Test(modelform, output_must_end_the_chain)
{
    refused_both(CHAIN, "[\"in\", 0, 0]", "[\"d1\", 0, 0]", DCV_EUNSUPP,
                 "layer 'd2' (class Dense) comes after the output layer 'd1'", "");
    refused_both("in:InputLayer d1:Dense<in a:Dense<b b:Dense<a", "[\"in\", 0, 0]",
                 "[\"b\", 0, 0]", DCV_EUNSUPP,
                 "output layer 'b' (class Dense) of model 'm' is not reachable", "'d1'");
}

Test(modelform, bad_references_are_refused)
{
    refused_both("in:InputLayer d1:Dense<nowhere", "[\"in\", 0, 0]", "[\"d1\", 0, 0]",
                 DCV_EINVAL, "layer 'd1' (class Dense) reads layer 'nowhere'", "");
    refused_both(CHAIN, "[\"nowhere\", 0, 0]", "[\"d2\", 0, 0]", DCV_EINVAL,
                 "input_layers of 'm' reads layer 'nowhere'", "");
    refused_both(CHAIN, "[]", "[\"d2\", 0, 0]", DCV_EINVAL, "Functional 'm' has no input_layers",
                 "");
    refused_both(CHAIN, "[\"d1\", 0, 0]", "[\"d2\", 0, 0]", DCV_EINVAL,
                 "is layer 'd1' (class Dense), not an InputLayer", "");
    refused_both(CHAIN, "[\"in\", -1, 0]", "[\"d2\", 0, 0]", DCV_EINVAL,
                 "[layer, node, tensor]", "");
    expect_refused("{\"class_name\": \"Functional\", \"config\": {\"name\": \"m\", \"layers\": "
                   "[{\"class_name\": \"InputLayer\", \"name\": \"in\", \"config\": "
                   "{\"batch_shape\": [null, 4]}, \"inbound_nodes\": []}, {\"class_name\": "
                   "\"Dense\", \"name\": \"d\", \"config\": {}, \"inbound_nodes\": "
                   "[{\"args\": [{\"class_name\": \"__keras_tensor__\", \"config\": {}}]}]}], "
                   "\"input_layers\": [\"in\", 0, 0], \"output_layers\": [\"d\", 0, 0]}}",
                   DCV_EINVAL, "layer 'd' (class Dense)", "[layer, node, tensor]");
    expect_refused("{\"class_name\": \"Functional\", \"config\": {\"name\": \"m\", \"layers\": "
                   "[{\"class_name\": \"InputLayer\", \"name\": \"in\", \"config\": "
                   "{\"batch_shape\": [null, 4]}, \"inbound_nodes\": []}, {\"class_name\": "
                   "\"Dense\", \"name\": \"d\", \"config\": {}}], \"input_layers\": "
                   "[\"in\", 0, 0], \"output_layers\": [\"d\", 0, 0]}}",
                   DCV_EINVAL, "layer 'd' (class Dense) of model 'm' has no inbound_nodes", "");
    refused_both("in:InputLayer d1:Dense<in d2:Dense<", "[\"in\", 0, 0]", "[\"d2\", 0, 0]",
                 DCV_EUNSUPP, "layer 'd2' (class Dense) of model 'm' is called on nothing", "");
}

Test(modelform, functional_duplicate_names_are_refused)
{
    refused_both("in:InputLayer d1:Dense<in d1:Dropout<in", "[\"in\", 0, 0]",
                 "[\"d1\", 0, 0]", DCV_EINVAL, "model 'm' has two layers named 'd1'",
                 "classes Dense and Dropout");
}

/* ---- nested models ---------------------------------------------------------- */

/* A Keras 3 Sequential (with its own InputLayer) used as a layer of a
 * Functional, read with node 0 (serialize_node's renumbering). */
Test(modelform, sequential_inside_functional)
{
    const char *text =
        "{\"module\": \"keras.src.models.functional\", \"class_name\": \"Functional\", "
        "\"config\": {\"name\": \"outer\", \"layers\": ["
        "{\"class_name\": \"InputLayer\", \"name\": \"z\", \"config\": {\"name\": \"z\", "
        " \"batch_shape\": [null, 8]}, \"inbound_nodes\": []},"
        "{\"class_name\": \"Dense\", \"name\": \"head\", \"config\": {\"name\": \"head\"}, "
        " \"inbound_nodes\": [{\"args\": [{\"class_name\": \"__keras_tensor__\", \"config\": "
        " {\"keras_history\": [\"z\", 0, 0]}}], \"kwargs\": {}}]},"
        "{\"module\": \"keras\", \"class_name\": \"Sequential\", \"name\": \"body\", \"config\": "
        " {\"name\": \"body\", \"layers\": [{\"class_name\": \"InputLayer\", \"config\": "
        " {\"name\": \"body_in\", \"batch_shape\": [null, 16]}}, {\"class_name\": \"Reshape\", "
        " \"config\": {\"name\": \"r\"}}, {\"class_name\": \"Conv2DTranspose\", \"config\": "
        " {\"name\": \"up\"}}]}, \"inbound_nodes\": [{\"args\": [{\"class_name\": "
        " \"__keras_tensor__\", \"config\": {\"keras_history\": [\"head\", 0, 0]}}], "
        " \"kwargs\": {}}]},"
        "{\"class_name\": \"Activation\", \"name\": \"tail\", \"config\": {\"name\": \"tail\"}, "
        " \"inbound_nodes\": [{\"args\": [{\"class_name\": \"__keras_tensor__\", \"config\": "
        " {\"keras_history\": [\"body\", 0, 0]}}], \"kwargs\": {}}]}],"
        "\"input_layers\": [\"z\", 0, 0], \"output_layers\": [\"tail\", 0, 0]}}";
    struct dcv_modelform f;
    /* The nested InputLayer is not the chain's input. */
    struct dcv_json *doc = chain_of(text, &f, "head r up tail", "z", DCV_KERAS_3);
    cr_assert_eq(f.in_shape[1], 8);
    dcv_modelform_release(&f);
    dcv_json_free(doc);
}

/* A tf.keras 2 Functional used as a layer of a Sequential, and as a layer
 * of a Functional read as node 1 (tf.keras 2 numbers a nested model's
 * first call 1). Its InputLayer starts the chain: it gives the signature. */
Test(modelform, functional_inside_sequential_and_functional)
{
    const char *inner =
        "{\"class_name\": \"Functional\", \"name\": \"blk\", \"config\": {\"name\": \"blk\", "
        "\"layers\": [{\"class_name\": \"InputLayer\", \"name\": \"bi\", \"config\": {\"name\": "
        "\"bi\", \"batch_input_shape\": [null, 3]}, \"inbound_nodes\": []}, {\"class_name\": "
        "\"Dense\", \"name\": \"bd\", \"config\": {\"name\": \"bd\"}, \"inbound_nodes\": "
        "[[[\"bi\", 0, 0, {}]]]}], \"input_layers\": [[\"bi\", 0, 0]], \"output_layers\": "
        "[[\"bd\", 0, 0]]}%s}";
    char buf[4096], text[8192];
    snprintf(buf, sizeof buf, inner, "");
    snprintf(text, sizeof text, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
             "\"layers\": [%s, {\"class_name\": \"ReLU\", \"config\": {\"name\": \"act\"}}]}, "
             "\"keras_version\": \"2.11.0\"}", buf);
    struct dcv_modelform f;
    struct dcv_json *doc = chain_of(text, &f, "bd act", "bi", DCV_KERAS_2);
    cr_assert_eq(f.in_ndim, 2);
    cr_assert_eq(f.in_shape[1], 3);
    cr_assert_str_eq(f.class_name, "Sequential");
    dcv_modelform_release(&f);
    dcv_json_free(doc);

    snprintf(buf, sizeof buf, inner, ", \"inbound_nodes\": [[[\"x\", 0, 0, {}]]]");
    snprintf(text, sizeof text, "{\"class_name\": \"Model\", \"config\": {\"name\": \"o\", "
             "\"layers\": [{\"class_name\": \"InputLayer\", \"name\": \"x\", \"config\": "
             "{\"name\": \"x\", \"batch_input_shape\": [null, 3]}, \"inbound_nodes\": []}, %s, "
             "{\"class_name\": \"Dense\", \"name\": \"out\", \"config\": {\"name\": \"out\"}, "
             "\"inbound_nodes\": [[[\"blk\", 1, 0, {}]]]}], \"input_layers\": [[\"x\", 0, 0]], "
             "\"output_layers\": [[\"out\", 0, 0]]}}", buf);
    doc = chain_of(text, &f, "bd out", "x", DCV_KERAS_2);
    dcv_modelform_release(&f);
    dcv_json_free(doc);
}

/* Names are kept when inlining, so a clash across levels is refused. */
Test(modelform, duplicate_names_across_nesting_are_refused)
{
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                   "{\"class_name\": \"Dense\", \"config\": {\"name\": \"dense\"}},"
                   "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"inner\", "
                   "\"layers\": [{\"class_name\": \"Conv1D\", \"config\": {\"name\": "
                   "\"dense\"}}]}}]}}",
                   DCV_EINVAL, "two layers are named 'dense' (classes Dense and Conv1D)");
}

/* s(depth) : a Sequential holding s(depth - 1), down to one Dense. */
static char *nested(int depth)
{
    struct text t = { 0 };
    for (int i = 0; i < depth; i++)
        put(&t, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s%d\", \"layers\": [",
            i);
    put(&t, "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\"}}");
    for (int i = 0; i < depth; i++) put(&t, "]}}");
    return t.s;
}

Test(modelform, nesting_bound)
{
    char *ok = nested(DCV_MODELFORM_MAX_DEPTH + 1), *deep = nested(DCV_MODELFORM_MAX_DEPTH + 2);
    struct dcv_json *doc = pj(ok);
    struct dcv_modelform f;
    must_parse(doc, &f);
    cr_assert_eq(f.n, 1);
    cr_assert_str_eq(f.layers[0].name, "d");
    dcv_modelform_release(&f);
    dcv_json_free(doc);
    expect_refused(deep, DCV_ETOOBIG, "model 's17' (class Sequential) is nested 17 levels deep",
                   "at most 16");
    free(ok);
    free(deep);
}

static char *many(int n, bool functional_form)
{
    struct text t = { 0 };
    if (!functional_form) {
        put(&t, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
            "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": "
            "[null, 4]}}");
        for (int i = 0; i < n; i++)
            put(&t, ", {\"class_name\": \"Dense\", \"config\": {\"name\": \"d%d\"}}", i);
        put(&t, "]}}");
        return t.s;
    }
    put(&t, "{\"class_name\": \"Functional\", \"config\": {\"name\": \"m\", \"layers\": ["
        "{\"class_name\": \"InputLayer\", \"name\": \"d0\", \"config\": {\"batch_shape\": "
        "[null, 4]}, \"inbound_nodes\": []}");
    for (int i = 1; i <= n; i++)
        put(&t, ", {\"class_name\": \"Dense\", \"name\": \"d%d\", \"config\": {}, "
            "\"inbound_nodes\": [[[\"d%d\", 0, 0, {}]]]}", i, i - 1);
    put(&t, "], \"input_layers\": [[\"d0\", 0, 0]], \"output_layers\": [[\"d%d\", 0, 0]]}}", n);
    return t.s;
}

Test(modelform, layer_count_bound)
{
    for (int fn = 0; fn < 2; fn++) {
        char *ok = many(DCV_MODELFORM_MAX_LAYERS, fn);
        struct dcv_json *doc = pj(ok);
        struct dcv_modelform f;
        must_parse(doc, &f);
        cr_assert_eq(f.n, DCV_MODELFORM_MAX_LAYERS);
        cr_assert_str_eq(f.layers[f.n - 1].name, fn ? "d1024" : "d1023");
        dcv_modelform_release(&f);
        dcv_json_free(doc);
        free(ok);
        char *big = many(DCV_MODELFORM_MAX_LAYERS + 1, fn);
        expect_refused(big, DCV_ETOOBIG, fn ? "has 1026 layers; at most 1024"
                                            : "more than 1024 layers (at layer 'd1024'");
        free(big);
    }
    /* Nesting adds up: 2 x 600 layers in two nested Sequentials. */
    struct text t = { 0 };
    put(&t, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": [");
    for (int k = 0; k < 2; k++) {
        put(&t, "%s{\"class_name\": \"Sequential\", \"config\": {\"name\": \"n%d\", \"layers\": [",
            k ? ", " : "", k);
        for (int i = 0; i < 600; i++)
            put(&t, "%s{\"class_name\": \"Dense\", \"config\": {\"name\": \"n%d_%d\"}}",
                i ? ", " : "", k, i);
        put(&t, "]}}");
    }
    put(&t, "]}}");
    expect_refused(t.s, DCV_ETOOBIG, "more than 1024 layers (at layer 'n1_424', class Dense)");
    free(t.s);
}

/* ---- the input signature -------------------------------------------------- */

static void expect_signature(const char *text, int ndim, const int64_t *dims, const char *input)
{
    struct dcv_json *doc = pj(text);
    struct dcv_modelform f;
    must_parse(doc, &f);
    cr_assert_eq(f.in_ndim, ndim, "ndim %d, expected %d: %s", f.in_ndim, ndim, text);
    for (int i = 0; i < ndim; i++)
        cr_assert_eq(f.in_shape[i], dims[i], "dim %d: %lld, expected %lld", i,
                     (long long)f.in_shape[i], (long long)dims[i]);
    cr_assert_str_eq(f.input_name, input);
    dcv_modelform_release(&f);
    dcv_json_free(doc);
}

Test(modelform, signature_sources_and_precedence)
{
    const char *dense = "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\"%s}}";
    char d[256], text[1024];
    /* InputLayer (Keras 3 batch_shape) wins over build_input_shape. */
    snprintf(d, sizeof d, dense, ", \"batch_input_shape\": [null, 9]");
    snprintf(text, sizeof text, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
             "\"build_input_shape\": [null, 7], \"layers\": [{\"class_name\": \"InputLayer\", "
             "\"config\": {\"name\": \"i\", \"batch_shape\": [4, 5]}}, %s]}, \"build_config\": "
             "{\"input_shape\": [null, 6]}}", d);
    expect_signature(text, 2, (int64_t[]){ 4, 5 }, "i");
    /* build_input_shape next, then build_config.input_shape, then the
     * first layer's batch_input_shape. */
    snprintf(text, sizeof text, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
             "\"build_input_shape\": [null, 7, 3], \"layers\": [%s]}, \"build_config\": "
             "{\"input_shape\": [null, 6]}}", d);
    expect_signature(text, 3, (int64_t[]){ -1, 7, 3 }, "input");
    snprintf(text, sizeof text, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
             "\"build_input_shape\": null, \"layers\": [%s]}, \"build_config\": "
             "{\"input_shape\": [null, 6]}}", d);
    expect_signature(text, 2, (int64_t[]){ -1, 6 }, "input");
    snprintf(text, sizeof text, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
             "\"layers\": [%s]}}", d);
    expect_signature(text, 2, (int64_t[]){ -1, 9 }, "input");
    /* tf.keras 2 InputLayer: batch_input_shape. */
    snprintf(d, sizeof d, dense, "");
    snprintf(text, sizeof text, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
             "\"layers\": [{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"input_1\", "
             "\"batch_input_shape\": [null, null, 2]}}, %s]}}", d);
    expect_signature(text, 3, (int64_t[]){ -1, -1, 2 }, "input_1");
    /* Nothing given: unknown. */
    snprintf(text, sizeof text, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
             "\"layers\": [%s]}}", d);
    expect_signature(text, 0, NULL, "input");
}

Test(modelform, bad_signatures_are_refused)
{
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                   "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"i\"}}, "
                   "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\"}}]}}",
                   DCV_EINVAL, "InputLayer 'i' has no batch_shape");
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                   "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"i\", "
                   "\"batch_shape\": [null, 0]}}, "
                   "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\"}}]}}",
                   DCV_EINVAL, "batch_shape[1] of 'i' must be null or an integer");
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
                   "\"build_input_shape\": [null, 1, 2, 3, 4, 5, 6, 7, 8], \"layers\": ["
                   "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\"}}]}}",
                   DCV_EINVAL, "build_input_shape of 's' must be a list of 1 to");
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                   "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", "
                   "\"batch_input_shape\": \"(None, 2)\"}}]}}",
                   DCV_EINVAL, "batch_input_shape of 'd' must be a list");
}

/* ---- Sequential refusals -------------------------------------------------- */

Test(modelform, sequential_refusals)
{
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                   "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\"}}, "
                   "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"late\", "
                   "\"batch_shape\": [null, 2]}}]}}",
                   DCV_EINVAL, "layer 'late' (class InputLayer) is layer 1 of Sequential 's'");
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\"}}", DCV_EINVAL,
                   "Sequential 's' has no \"layers\" list");
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                   "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"i\", "
                   "\"batch_shape\": [null, 2]}}]}}",
                   DCV_EINVAL, "model 's' has no layers besides its input");
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                   "{\"config\": {\"name\": \"d\"}}]}}",
                   DCV_EINVAL, "layer 0 of model 's' must be an object with a class_name");
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                   "{\"class_name\": \"Dense\", \"config\": {\"units\": 2}}]}}",
                   DCV_EINVAL, "layer 0 (class Dense) of model 's' has no name");
    expect_refused("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                   "{\"class_name\": \"Dense\", \"config\": 3}]}}",
                   DCV_EINVAL, "layer 0 (class Dense) of model 's' has no config dict");
    char text[1024];
    snprintf(text, sizeof text, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
             "\"layers\": [{\"class_name\": \"Dense\", \"config\": {\"name\": \"%0200d\"}}]}}",
             0);
    expect_refused(text, DCV_EINVAL, "(class Dense) is longer than 127 bytes");
    expect_refused("{\"class_name\": \"Functional\", \"config\": {\"name\": \"f\"}}", DCV_EINVAL,
                   "Functional 'f' has no \"layers\" list");
}

/* ---- which Keras wrote it ------------------------------------------------- */

static enum dcv_keras keras_of(const char *text)
{
    struct dcv_json *doc = pj(text);
    struct dcv_modelform f;
    must_parse(doc, &f);
    enum dcv_keras k = f.keras;
    dcv_modelform_release(&f);
    dcv_json_free(doc);
    return k;
}

Test(modelform, keras_version_detection)
{
    const char *layer = "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\"%s}%s}";
    char l[512], text[1024];
    struct { const char *dtype, *entry, *top; enum dcv_keras want; } cases[] = {
        { "", "", "", DCV_KERAS_2 },                                          /* plain */
        { ", \"dtype\": \"float32\"", "", "", DCV_KERAS_2 },
        { ", \"dtype\": {\"class_name\": \"Policy\", \"config\": {\"name\": \"mixed_float16\"}}",
          "", "", DCV_KERAS_2 },                                  /* tf.keras 2 mixed policy */
        { ", \"dtype\": {\"class_name\": \"DTypePolicy\", \"config\": {\"name\": \"float32\"}}",
          "", "", DCV_KERAS_3 },
        { ", \"dtype\": {\"class_name\": \"QuantizedDTypePolicy\", \"config\": {}}", "", "",
          DCV_KERAS_3 },
        { "", ", \"module\": \"keras.layers\"", "", DCV_KERAS_3 },
        { "", ", \"registered_name\": null", "", DCV_KERAS_3 },
        { "", "", ", \"module\": \"keras\"", DCV_KERAS_3 },
        { "", "", ", \"keras_version\": \"3.15.1\"", DCV_KERAS_3 },
        { "", ", \"module\": \"keras.layers\"", ", \"keras_version\": \"2.15.0\"", DCV_KERAS_2 },
        { ", \"dtype\": \"float32\"", "", ", \"keras_version\": \"2.4.0\"", DCV_KERAS_2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(l, sizeof l, layer, cases[i].dtype, cases[i].entry);
        snprintf(text, sizeof text, "{\"class_name\": \"Sequential\", \"config\": {\"name\": "
                 "\"s\", \"layers\": [%s]}%s}", l, cases[i].top);
        cr_assert_eq(keras_of(text), cases[i].want, "case %zu: %s", i, text);
    }
    /* A marker deep in a nested model counts. */
    cr_assert_eq(keras_of("{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
                          "\"layers\": [{\"class_name\": \"Sequential\", \"config\": {\"name\": "
                          "\"n\", \"layers\": [{\"class_name\": \"Dense\", \"config\": "
                          "{\"name\": \"d\", \"dtype\": {\"class_name\": \"DTypePolicy\", "
                          "\"config\": {\"name\": \"float32\"}}}}]}}]}}"),
                 DCV_KERAS_3);
}

/* Keras 3's saving_lib names weight groups by snake_case class and position
 * in each model's `layers` (a repeat gets _1, _2...), not by layer name; a
 * nested model's layers sit under its own group. */
Test(modelform, keras3_weight_paths_and_scopes)
{
    struct dcv_json *doc = pj(
        "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"vae\", \"layers\": ["
        "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 4]}},"
        "{\"class_name\": \"Dense\", \"config\": {\"name\": \"enc\"}},"
        "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"decoder\", \"layers\": ["
        " {\"class_name\": \"Dense\", \"config\": {\"name\": \"d0\"}},"
        " {\"class_name\": \"Conv2DTranspose\", \"config\": {\"name\": \"up_a\"}},"
        " {\"class_name\": \"Conv2DTranspose\", \"config\": {\"name\": \"up_b\"}},"
        " {\"class_name\": \"UpSampling2D\", \"config\": {\"name\": \"u\"}}]}},"
        "{\"class_name\": \"Dense\", \"config\": {\"name\": \"dense\"}},"
        "{\"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn\"}}]}}");
    struct dcv_modelform f;
    must_parse(doc, &f);
    static const char *const want[][3] = {
        { "enc", "layers/dense", "" },
        { "d0", "layers/sequential/layers/dense", "decoder" },
        { "up_a", "layers/sequential/layers/conv2d_transpose", "decoder" },
        { "up_b", "layers/sequential/layers/conv2d_transpose_1", "decoder" },
        { "u", "layers/sequential/layers/up_sampling2d", "decoder" },
        { "dense", "layers/dense_1", "" },
        { "bn", "layers/batch_normalization", "" },
    };
    cr_assert_eq(f.n, 7);
    for (int i = 0; i < 7; i++) {
        cr_expect_str_eq(f.layers[i].name, want[i][0]);
        cr_expect_str_eq(f.layers[i].kpath, want[i][1], "%s: %s", want[i][0], f.layers[i].kpath);
        cr_expect_str_eq(f.layers[i].scope, want[i][2], "%s: scope %s", want[i][0], f.layers[i].scope);
    }
    dcv_modelform_release(&f);
    dcv_json_free(doc);
}
