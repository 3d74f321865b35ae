/* fuzz_model.c — model files: JSON layer + Keras config parser + weights.
 *
 * Input: a model file ({"class_name", "config", "weights"}), parsed with
 * dcv_json_parse and built with dcv_model_from_doc without a models
 * directory (inline weights and initializers only), kernels limited to
 * 1<<16 weights so that initializers and oneDNN stay fast. A loaded model
 * must be self-consistent (rank, channels, signature), its config JSON must
 * print and parse back, and when the signature gives a small concrete input
 * the model is run once on it (oneDNN is not instrumented, but the glue that
 * sizes its buffers and paddings is). The bounded parse's count of values
 * must equal the nodes of the tree built (a budget one below is refused).
 */
#include "deconvd/engine.h"
#include "deconvd/json.h"
#include "deconvd/model.h"
#include "fuzzutil.h"

#define MAX_WEIGHTS ((size_t)1 << 16)
#define INFER_MAX ((size_t)1 << 14)   /* elements in and out for the one run */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("OMP_NUM_THREADS", "1", 1);
    /* oneDNN's primitive cache keeps allocations across inputs, which makes
     * libFuzzer run every model twice looking for a leak. */
    setenv("DNNL_PRIMITIVE_CACHE_CAPACITY", "0", 1);
    dcv_engine_set_threads(1);
    return 0;
}

/* A single layer's geometry against its signature; a chain's ranks. */
static void check_shape_facts(const struct dcv_model *m)
{
    char err[DCV_ERRLEN];
    if (m->chain) {
        FUZZ_CHECK(m->ndim >= 1 && m->ndim <= DCV_MAX_DIMS && m->out_ndim >= 1 &&
                   m->out_ndim <= DCV_MAX_DIMS, "chain ranks %d -> %d", m->ndim, m->out_ndim);
        return;
    }
    const struct dcv_conv *c = &m->layer.conv;
    FUZZ_CHECK(c->rank >= 1 && c->rank <= DCV_MAX_SPATIAL && m->ndim == c->rank + 2 &&
               m->out_ndim == m->ndim, "rank %d, ndim %d", c->rank, m->ndim);
    FUZZ_CHECK(dcv_conv_validate(c, err) == 0, "loaded model has an invalid conv: %s", err);
    int cax = dcv_conv_channel_axis(c);
    FUZZ_CHECK(m->in_sig[cax] == c->in_channels, "signature channels %lld, in_channels %lld",
               (long long)m->in_sig[cax], (long long)c->in_channels);
    FUZZ_CHECK(m->out_sig[cax] == -1 || m->out_sig[cax] == c->filters,
               "output signature channels %lld, filters %lld", (long long)m->out_sig[cax],
               (long long)c->filters);
}

static void check_model(const struct dcv_model *m)
{
    char err[DCV_ERRLEN];
    check_shape_facts(m);

    struct dcv_json *cfg = dcv_model_config_json(m);
    FUZZ_CHECK(cfg != NULL, "dcv_model_config_json failed");
    char *text = dcv_json_print(cfg);
    FUZZ_CHECK(text != NULL, "config does not print");
    struct dcv_json *again = dcv_json_parse(text, strlen(text), err);
    FUZZ_CHECK(again != NULL, "printed config is not JSON: %s", err);
    dcv_json_free(again);
    free(text);
    dcv_json_free(cfg);

    /* One run on the signature, unknown dims as 1 (batch) or 4 (spatial). */
    int64_t in[DCV_MAX_DIMS], out[DCV_MAX_DIMS];
    size_t out_count = 0, in_count = 1;
    for (int i = 0; i < m->ndim; i++) {
        in[i] = m->in_sig[i] > 0 ? m->in_sig[i] : i == 0 ? 1 : 4;
        if (in[i] > (int64_t)INFER_MAX) return;
        in_count *= (size_t)in[i];
        if (in_count > INFER_MAX) return;
    }
    fz_err_init(err);
    int rc = dcv_model_output_shape(m, in, m->ndim, out, &out_count, err);
    if (rc) {
        fz_check_error(rc, err, "dcv_model_output_shape");
        return;
    }
    FUZZ_CHECK(out[0] == in[0] && (m->chain ||
               out[dcv_conv_channel_axis(&m->layer.conv)] == m->layer.conv.filters),
               "output shape batch/channels wrong");
    if (out_count > INFER_MAX || out_count == 0) return;
    float *x = malloc(in_count * sizeof *x), *y = malloc(out_count * sizeof *y);
    if (!x || !y) abort();
    for (size_t i = 0; i < in_count; i++) x[i] = (float)((int)(i % 7) - 3) * 0.25f;
    fz_err_init(err);
    rc = dcv_model_infer(m, x, in, m->ndim, y, out_count, NULL, err);
    FZ_LOG("model: infer %zu -> %zu values: %s %s", in_count, out_count, dcv_error_name(rc),
           rc ? err : "");
    if (rc)
        fz_check_error(rc, err, "dcv_model_infer");
    else
        fz_touch(y, out_count);
    free(x);
    free(y);
}

static size_t tree_nodes(const struct dcv_json *n)
{
    size_t k = 1;
    for (const struct dcv_json *c = dcv_json_first(n); c; c = dcv_json_next(c))
        k += tree_nodes(c);
    return k;
}

/* The bounded parse's pre-count is exact: a budget of the tree's node count
 * passes, one less is refused (DCV_ETOOBIG) before anything is built. */
static void bounded_parse_counts_exactly(const char *text, size_t size,
                                         const struct dcv_json *doc)
{
    size_t n = tree_nodes(doc);
    struct dcv_json_bound bound = { n, "budget", NULL, NULL };
    struct dcv_json *again;
    char err[DCV_ERRLEN];
    fz_err_init(err);
    FUZZ_CHECK(dcv_json_parse_bounded(text, size, &bound, &again, err) == 0,
               "bounded parse with the tree's %zu nodes refused: %s", n, err);
    dcv_json_free(again);
    bound.max_nodes = n - 1;
    fz_err_init(err);
    int rc = dcv_json_parse_bounded(text, size, &bound, &again, err);
    FUZZ_CHECK(rc == DCV_ETOOBIG && again == NULL, "bounded parse with %zu of %zu nodes: %s",
               n - 1, n, rc ? err : "accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_copy(data, size);
    char err[DCV_ERRLEN];
    fz_err_init(err);
    struct dcv_json *doc = dcv_json_parse(text, size, err);
    if (!doc) {
        FUZZ_CHECK(memchr(err, '\0', DCV_ERRLEN) && err[0], "dcv_json_parse: no message");
        free(text);
        return 0;
    }
    bounded_parse_counts_exactly(text, size, doc);
    const struct dcv_model_opts opts = { .max_weight_elems = MAX_WEIGHTS, .cache_cap = 2 };
    struct dcv_model *m = NULL;
    fz_err_init(err);
    int rc = dcv_model_from_doc("fuzz", doc, NULL, &opts, &m, err);
    FZ_LOG("model: %s %s", dcv_error_name(rc), rc ? err : "");
    if (rc) {
        fz_check_error(rc, err, "dcv_model_from_doc");
    } else {
        FUZZ_CHECK(m != NULL, "no model");
        check_model(m);
        dcv_model_free(m);
    }
    dcv_json_free(doc);
    free(text);
    return 0;
}
