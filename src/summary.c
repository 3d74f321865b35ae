/* summary.c — model.summary() tables: the rows of dcv_model_summary,
 * sized, totalled and written as JSON (/shape answers) or as Keras's text
 * table (`deconvd --check`).
 *
 * A chain's row count is not known before asking, so the rows are asked
 * for once into a small array and again when the model has more. A model
 * config that is not loaded (/v2/shape) gets its rows from the layer
 * registry's parse and shape functions alone. Owns nothing beyond the rows
 * it returns. Pure functions, any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layer.h"
#include "deconvd/layers.h"
#include "deconvd/modelform.h"
#include "deconvd/summary.h"

#define FIRST_CAP 16

int dcv_summary_rows(const struct dcv_model *m, const int64_t *in, int ndim,
                     struct dcv_model_row **rows, int *n, char *err)
{
    int cap = FIRST_CAP, rc;
    *rows = NULL;
    *n = 0;
    for (;;) {
        struct dcv_model_row *r = calloc((size_t)cap, sizeof *r);
        if (!r) return dcv_errf(err, DCV_ENOMEM, "out of memory for %d summary rows", cap);
        if ((rc = dcv_model_summary(m, in, ndim, r, cap, n, err))) {
            free(r);
            return rc;
        }
        if (*n <= cap) {
            *rows = r;
            return 0;
        }
        free(r);
        cap = *n;
    }
}

/* The declared input signature must admit the asked shape. */
static int check_input(const struct dcv_modelform *f, const int64_t *in, int nd, char *err)
{
    if (f->in_ndim < 1) return 0;
    if (nd != f->in_ndim)
        return dcv_errf(err, DCV_ESHAPE, "'%s' takes inputs of rank %d, got rank %d",
                        f->input_name, f->in_ndim, nd);
    for (int i = 1; i < nd; i++)
        if (f->in_shape[i] > 0 && in[i] != f->in_shape[i])
            return dcv_errf(err, DCV_ESHAPE, "'%s' dim %d must be %lld, got %lld",
                            f->input_name, i, (long long)f->in_shape[i], (long long)in[i]);
    return 0;
}

/* One layer's row: parsed, shaped from *cur (which becomes its output). */
static int layer_row(const struct dcv_layer_spec *spec, const struct dcv_layer_ctx *ctx,
                     struct dcv_shape *cur, struct dcv_model_row *r, char *err)
{
    const struct dcv_layer_class *cls = dcv_layers_find(spec->class_name);
    struct dcv_weight_want w[DCV_LAYER_MAX_WEIGHTS];
    char sub[DCV_ERRLEN];
    void *st = NULL;
    int nw = 0, rc;
    if (!cls)
        return dcv_errf(err, DCV_EUNSUPP, "layer '%s' (class %.64s) is not supported; "
                        "supported: %s", spec->name, spec->class_name, dcv_layers_supported());
    if ((rc = cls->parse(spec->config, ctx, &st, sub)))
        return dcv_errf(err, rc, "layer '%s' (%s): %s", spec->name, cls->name, sub);
    if ((rc = cls->shape(st, cur, &r->out, sub))) {
        dcv_errf(err, rc, "layer '%s' (%s): %s", spec->name, cls->name, sub);
        goto out;
    }
    snprintf(r->name, sizeof r->name, "%s", spec->name);
    r->class_name = cls->name;
    r->params = 0;
    if (cls->weights && cls->weights(st, cur, w, &nw, sub) != 0) r->params = DCV_SUMMARY_UNKNOWN;
    for (int i = 0; i < nw && r->params != DCV_SUMMARY_UNKNOWN; i++) {
        int64_t c = dcv_shape_product(w[i].shape.d, w[i].shape.ndim);
        r->params = c < 0 ? DCV_SUMMARY_UNKNOWN : r->params + (uint64_t)c;
    }
    *cur = r->out;
out:
    cls->free_state(st);
    return rc;
}

int dcv_summary_config_rows(const struct dcv_json *doc, const int64_t *in, int ndim,
                            struct dcv_model_row **rows, int *n, char *err)
{
    struct dcv_modelform f;
    struct dcv_shape cur = { .ndim = ndim };
    int rc = dcv_modelform_parse(doc, &f, err);
    *rows = NULL;
    *n = 0;
    if (rc) return rc;
    struct dcv_layer_ctx ctx = { f.keras, 0, 0 };
    struct dcv_model_row *r = calloc((size_t)f.n + 1, sizeof *r);
    if (!r) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory for %d summary rows", f.n + 1);
        goto out;
    }
    if ((rc = check_input(&f, in, ndim, err))) goto out;
    memcpy(cur.d, in, sizeof(int64_t) * (size_t)ndim);
    snprintf(r[0].name, sizeof r[0].name, "%s", f.input_name);
    r[0].class_name = "InputLayer";
    r[0].out = cur;
    for (int i = 0; i < f.n && !rc; i++) rc = layer_row(&f.layers[i], &ctx, &cur, &r[i + 1], err);
out:
    if (rc) free(r);
    else *rows = r, *n = f.n + 1;
    dcv_modelform_release(&f);
    return rc;
}

uint64_t dcv_summary_total(const struct dcv_model_row *rows, int n)
{
    uint64_t t = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].params == DCV_SUMMARY_UNKNOWN) return DCV_SUMMARY_UNKNOWN;
        t += rows[i].params;
    }
    return t;
}

struct dcv_json *dcv_summary_json(const struct dcv_model_row *rows, int n)
{
    struct dcv_json *a = dcv_json_new_array();
    for (int i = 0; a && i < n; i++) {
        const struct dcv_model_row *r = &rows[i];
        struct dcv_json *o = dcv_json_new_object();
        if (!o || dcv_json_append(a, o)) {
            dcv_json_free(o);
            dcv_json_free(a);
            return NULL;
        }
        dcv_json_add(o, "name", dcv_json_new_string(r->name));
        dcv_json_add(o, "class_name", dcv_json_new_string(r->class_name));
        dcv_json_add(o, "output_shape", dcv_json_new_int_array(r->out.d, (size_t)r->out.ndim));
        dcv_json_add(o, "params", r->params == DCV_SUMMARY_UNKNOWN
                                  ? dcv_json_new_null() : dcv_json_new_number((double)r->params));
    }
    return a;
}

/* "(None, 7, 7, 64)": Keras's way, None for an unknown dim. */
static void shape_text(char *buf, size_t cap, const struct dcv_shape *s)
{
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < s->ndim && k < cap; i++) {
        const char *sep = i ? ", " : "";
        k += s->d[i] < 0 ? (size_t)snprintf(buf + k, cap - k, "%sNone", sep)
                         : (size_t)snprintf(buf + k, cap - k, "%s%lld", sep, (long long)s->d[i]);
    }
    if (k < cap) snprintf(buf + k, cap - k, ")");
}

static void params_text(char *buf, size_t cap, uint64_t p)
{
    if (p == DCV_SUMMARY_UNKNOWN) snprintf(buf, cap, "?");
    else snprintf(buf, cap, "%llu", (unsigned long long)p);
}

/* One row's three columns. */
struct cells {
    char layer[DCV_MODEL_NAME_MAX + 48], shape[DCV_MAX_DIMS * 22 + 8], params[24];
};

static void row_cells(const struct dcv_model_row *r, struct cells *c)
{
    snprintf(c->layer, sizeof c->layer, "%s (%s)", r->name, r->class_name);
    shape_text(c->shape, sizeof c->shape, &r->out);
    params_text(c->params, sizeof c->params, r->params);
}

/* Columns as wide as their widest cell: a 5-D shape or a long Keras name
 * never runs into the next column. */
void dcv_summary_print(FILE *f, const struct dcv_model_row *rows, int n, const char *indent)
{
    struct cells c;
    int wl = (int)strlen("Layer (type)"), ws = (int)strlen("Output Shape");
    for (int i = 0; i < n; i++) {
        row_cells(&rows[i], &c);
        if ((int)strlen(c.layer) > wl) wl = (int)strlen(c.layer);
        if ((int)strlen(c.shape) > ws) ws = (int)strlen(c.shape);
    }
    fprintf(f, "%s%-*s  %-*s  %s\n", indent, wl, "Layer (type)", ws, "Output Shape", "Param #");
    for (int i = 0; i < n; i++) {
        row_cells(&rows[i], &c);
        fprintf(f, "%s%-*s  %-*s  %s\n", indent, wl, c.layer, ws, c.shape, c.params);
    }
    params_text(c.params, sizeof c.params, dcv_summary_total(rows, n));
    fprintf(f, "%sTotal params: %s\n", indent, c.params);
}

/* {model_name, input_shape, output_shape, layers, total_params}; takes rows. */
static struct dcv_json *rows_answer(const char *name, const int64_t *in, int nd,
                                    struct dcv_model_row *rows, int n)
{
    const struct dcv_shape *out = &rows[n - 1].out;
    uint64_t total = dcv_summary_total(rows, n);
    struct dcv_json *o = dcv_json_new_object();
    if (name) dcv_json_add(o, "model_name", dcv_json_new_string(name));
    dcv_json_add(o, "input_shape", dcv_json_new_int_array(in, (size_t)nd));
    dcv_json_add(o, "output_shape", dcv_json_new_int_array(out->d, (size_t)out->ndim));
    dcv_json_add(o, "layers", dcv_summary_json(rows, n));
    dcv_json_add(o, "total_params", total == DCV_SUMMARY_UNKNOWN ? dcv_json_new_null()
                                                                 : dcv_json_new_number((double)total));
    free(rows);
    return o;
}

static int model_answer(const char *name, const struct dcv_model *m, const int64_t *in, int nd,
                        bool counted, struct dcv_json **doc, char *err)
{
    struct dcv_model_row *rows;
    int n, rc = dcv_summary_rows(m, in, nd, &rows, &n, err);
    if (rc) return rc;
    if (!counted) rows[n - 1].params = DCV_SUMMARY_UNKNOWN;
    *doc = rows_answer(name, in, nd, rows, n);
    return 0;
}

int dcv_summary_model_answer(const char *name, const struct dcv_model *m, const int64_t *in,
                             int nd, struct dcv_json **doc, char *err)
{
    return model_answer(name, m, in, nd, true, doc, err);
}

/* A bare layer config: its shape rules alone (as they always answered),
 * then a model shell around the parsed layer (nothing loaded, no weights)
 * for the table, its input channels from the shape when the config leaves
 * them open (else its params are unknown). */
int dcv_summary_config_answer(const struct dcv_json *doc, const int64_t *in, int nd,
                              struct dcv_json **ans, char *err)
{
    const struct dcv_json *cfg = dcv_json_get(doc, "config");
    struct dcv_model shell = { .ndim = nd, .out_ndim = nd, .input_name = "input" };
    struct dcv_layer *l = &shell.layer;
    int64_t out[DCV_MAX_DIMS];
    if (dcv_modelform_is_model(doc)) {    /* a chain: its layers' shape rules, no weights */
        struct dcv_model_row *rows;
        int n, rc = dcv_summary_config_rows(doc, in, nd, &rows, &n, err);
        if (!rc) *ans = rows_answer(NULL, in, nd, rows, n);
        return rc;
    }
    int rc = dcv_layer_parse(dcv_json_string(dcv_json_get(doc, "class_name")), cfg ? cfg : doc,
                             l, err);
    if (rc) return rc;
    if ((rc = dcv_layer_output_shape(l, in, nd, out, err))) goto out;
    int64_t ch = in[dcv_conv_channel_axis(&l->conv)];
    if (!l->conv.in_channels && ch > 0 && (rc = dcv_layer_set_in_channels(l, ch, err)))
        goto out;
    memcpy(shell.in_sig, in, sizeof(int64_t) * (size_t)nd);
    memcpy(shell.out_sig, out, sizeof(int64_t) * (size_t)nd);
    rc = model_answer(NULL, &shell, in, nd, l->conv.in_channels > 0, ans, err);
out:
    dcv_layer_release(l);
    return rc;
}
