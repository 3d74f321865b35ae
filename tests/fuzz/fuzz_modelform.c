/* fuzz_modelform.c — Keras Sequential / Functional configs as chains.
 *
 * Input: a JSON document (a model file, to_json(), get_config()). Parsed
 * with dcv_json_parse and flattened with dcv_modelform_parse. A refusal
 * must carry a DCV_E* code and a message, and a document that is not a
 * model (dcv_modelform_is_model) must be refused with DCV_EINVAL. An
 * accepted chain must keep the contract: 1..DCV_MODELFORM_MAX_LAYERS specs
 * with unique non-empty names, config dicts, classes that are neither models
 * nor InputLayers, a signature of sane dims. Flattening is idempotent: the
 * chain written back as a plain Sequential (an InputLayer with the
 * signature, the specs' configs, the same keras_version) flattens to the
 * same chain.
 */
#include "deconvd/json.h"
#include "deconvd/modelform.h"
#include "fuzzutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static bool model_or_input(const char *cls)
{
    return !strcmp(cls, "Sequential") || !strcmp(cls, "Functional") || !strcmp(cls, "Model") ||
           !strcmp(cls, "InputLayer");
}

static void check_form(const struct dcv_modelform *f)
{
    FUZZ_CHECK(f->n >= 1 && f->n <= DCV_MODELFORM_MAX_LAYERS && f->layers, "n %d", f->n);
    FUZZ_CHECK(!strcmp(f->class_name, "Sequential") || !strcmp(f->class_name, "Functional"),
               "class_name %s", f->class_name);
    FUZZ_CHECK(f->keras == DCV_KERAS_2 || f->keras == DCV_KERAS_3, "keras %d", (int)f->keras);
    FUZZ_CHECK(f->in_ndim >= 0 && f->in_ndim <= DCV_MAX_DIMS, "in_ndim %d", f->in_ndim);
    for (int i = 0; i < f->in_ndim; i++)
        FUZZ_CHECK(f->in_shape[i] == -1 || (f->in_shape[i] >= 1 &&
                                            f->in_shape[i] <= DCV_MAX_EXTENT),
                   "in_shape[%d] = %lld", i, (long long)f->in_shape[i]);
    FUZZ_CHECK(memchr(f->input_name, '\0', sizeof f->input_name) && f->input_name[0],
               "input name");
    for (int i = 0; i < f->n; i++) {
        const struct dcv_layer_spec *s = &f->layers[i];
        FUZZ_CHECK(memchr(s->name, '\0', sizeof s->name) && s->name[0], "layer %d: name", i);
        FUZZ_CHECK(s->class_name && s->class_name[0] && !model_or_input(s->class_name),
                   "layer %d: class %s", i, s->class_name ? s->class_name : "(null)");
        FUZZ_CHECK(dcv_json_type(s->config) == DCV_JSON_OBJECT, "layer %d: config %s", i,
                   dcv_json_type_name(s->config));
        FUZZ_CHECK(!s->build || dcv_json_type(s->build) == DCV_JSON_OBJECT, "layer %d: build",
                   i);
        for (int k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(f->layers[k].name, s->name), "layers %d and %d named %s", k, i,
                       s->name);
    }
}

/* The chain as a plain Sequential: InputLayer (when there is a signature),
 * then each spec's config renamed to the spec's name. */
static struct dcv_json *as_sequential(const struct dcv_modelform *f)
{
    struct dcv_json *doc = dcv_json_new_object(), *cfg = dcv_json_new_object(),
                    *layers = dcv_json_new_array();
    if (!doc || !cfg || !layers) abort();
    if (f->in_ndim > 0) {
        struct dcv_json *in = dcv_json_new_object(), *icfg = dcv_json_new_object(),
                        *shape = dcv_json_new_array();
        for (int i = 0; i < f->in_ndim; i++)
            dcv_json_append(shape, f->in_shape[i] < 0 ? dcv_json_new_null()
                                                      : dcv_json_new_number((double)f->in_shape[i]));
        dcv_json_add(icfg, "name", dcv_json_new_string(f->input_name));
        dcv_json_add(icfg, "batch_shape", shape);
        dcv_json_add(in, "class_name", dcv_json_new_string("InputLayer"));
        dcv_json_add(in, "config", icfg);
        dcv_json_append(layers, in);
    }
    for (int i = 0; i < f->n; i++) {
        struct dcv_json *e = dcv_json_new_object(), *c = dcv_json_dup(f->layers[i].config);
        if (!e || !c) abort();
        dcv_json_set(c, "name", dcv_json_new_string(f->layers[i].name));
        dcv_json_add(e, "class_name", dcv_json_new_string(f->layers[i].class_name));
        dcv_json_add(e, "config", c);
        dcv_json_append(layers, e);
    }
    dcv_json_add(cfg, "name", dcv_json_new_string(f->name));
    dcv_json_add(cfg, "layers", layers);
    dcv_json_add(doc, "class_name", dcv_json_new_string("Sequential"));
    dcv_json_add(doc, "config", cfg);
    dcv_json_add(doc, "keras_version", dcv_json_new_string(f->keras == DCV_KERAS_3 ? "3" : "2"));
    return doc;
}

static void check_idempotent(const struct dcv_modelform *f)
{
    struct dcv_json *doc = as_sequential(f);
    struct dcv_modelform g;
    char err[DCV_ERRLEN];
    fz_err_init(err);
    int rc = dcv_modelform_parse(doc, &g, err);
    FUZZ_CHECK(rc == 0, "the chain written as a Sequential is refused: %s %s",
               dcv_error_name(rc), err);
    FUZZ_CHECK(g.n == f->n && g.keras == f->keras && g.in_ndim == f->in_ndim &&
                   !strcmp(g.input_name, f->input_name) && !strcmp(g.name, f->name),
               "flattened again: n %d/%d keras %d/%d in_ndim %d/%d input %s/%s", g.n, f->n,
               (int)g.keras, (int)f->keras, g.in_ndim, f->in_ndim, g.input_name, f->input_name);
    for (int i = 0; i < f->in_ndim; i++)
        FUZZ_CHECK(g.in_shape[i] == f->in_shape[i], "in_shape[%d] differs", i);
    for (int i = 0; i < f->n; i++)
        FUZZ_CHECK(!strcmp(g.layers[i].name, f->layers[i].name) &&
                       !strcmp(g.layers[i].class_name, f->layers[i].class_name),
                   "layer %d: %s (%s) became %s (%s)", i, f->layers[i].name,
                   f->layers[i].class_name, g.layers[i].name, g.layers[i].class_name);
    dcv_modelform_release(&g);
    dcv_json_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_copy(data, size);
    char err[DCV_ERRLEN];
    fz_err_init(err);
    struct dcv_json *doc = dcv_json_parse(text, size, err);
    free(text);
    if (!doc) return 0;
    bool is_model = dcv_modelform_is_model(doc);
    struct dcv_modelform f;
    fz_err_init(err);
    int rc = dcv_modelform_parse(doc, &f, err);
    FZ_LOG("modelform: model %d, %s %s", is_model, dcv_error_name(rc), rc ? err : "");
    if (rc) {
        fz_check_error(rc, err, "dcv_modelform_parse");
        FUZZ_CHECK(is_model || rc == DCV_EINVAL, "not a model, yet %s", dcv_error_name(rc));
        FUZZ_CHECK(f.n == 0 && f.layers == NULL, "refused, yet %d layers kept", f.n);
    } else {
        FUZZ_CHECK(is_model, "accepted a document dcv_modelform_is_model refuses");
        check_form(&f);
        check_idempotent(&f);
        dcv_modelform_release(&f);
    }
    dcv_json_free(doc);
    return 0;
}
