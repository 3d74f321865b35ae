/* summary.c — model.summary() tables: the rows of dcv_model_summary,
 * sized, totalled and written as JSON (/shape answers) or as Keras's text
 * table (`deconvd --check`).
 *
 * A chain's row count is not known before asking, so the rows are asked
 * for once into a small array and again when the model has more. Owns
 * nothing beyond the rows it returns. Pure functions, any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
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
