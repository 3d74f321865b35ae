/* test_summary.c — model.summary() tables (summary.c): rows, totals, JSON
 * and the --check text, on single-layer models. The parameter counts are
 * Keras's rule worked by hand (kernel k*k*filters*in + bias filters), not
 * asked of the code under test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/model.h"
#include "deconvd/summary.h"
#include "testutil.h"

/* A Conv2DTranspose "up" of 2 filters, kernel 3, stride 2, same, on 3
 * input channels (from batch_input_shape), weights from its initializers:
 * 3*3*2*3 + 2 = 56 params. */
static struct dcv_model *up2d(void)
{
    static const char doc[] =
        "{\"class_name\":\"Conv2DTranspose\",\"config\":{\"name\":\"up\",\"filters\":2,"
        "\"kernel_size\":3,\"strides\":2,\"padding\":\"same\","
        "\"batch_input_shape\":[null,null,null,3]}}";
    char err[DCV_ERRLEN];
    struct dcv_json *d = dcv_json_parse(doc, strlen(doc), err);
    cr_assert_not_null(d, "%s", err);
    struct dcv_model *m = NULL;
    int rc = dcv_model_from_doc("up2d", d, NULL, NULL, &m, err);
    dcv_json_free(d);
    cr_assert_eq(rc, 0, "%s", err);
    return m;
}

Test(summary, rows_json_and_total)
{
    struct dcv_model *m = up2d();
    struct dcv_model_row *rows;
    char err[DCV_ERRLEN] = "";
    int n;
    const int64_t in[] = { 5, 7, -1, 3 };
    cr_assert_eq(dcv_summary_rows(m, in, 4, &rows, &n, err), 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_eq(dcv_summary_total(rows, n), 56);
    struct dcv_json *j = dcv_summary_json(rows, n);
    char *s = dcv_json_print(j);
    cr_assert_str_eq(s, "[{\"name\":\"input\",\"class_name\":\"InputLayer\",\"output_shape\":"
                        "[5,7,-1,3],\"params\":0},{\"name\":\"up\",\"class_name\":"
                        "\"Conv2DTranspose\",\"output_shape\":[5,14,-1,2],\"params\":56}]");
    free(s);
    dcv_json_free(j);
    free(rows);
    dcv_model_free(m);
}

/* A shape the model refuses is the summary's error, not a table. */
Test(summary, refused_shape)
{
    struct dcv_model *m = up2d();
    struct dcv_model_row *rows = (void *)1;
    char err[DCV_ERRLEN] = "";
    int n = -1;
    const int64_t in[] = { 1, 4, 4, 5 };
    int rc = dcv_summary_rows(m, in, 4, &rows, &n, err);
    cr_assert_eq(rc, DCV_ESHAPE, "%s", err);
    cr_assert_null(rows);
    cr_assert(strstr(err, "5") && strstr(err, "3"), "%s", err);
    dcv_model_free(m);
}

/* Unknown params are null / "?", and make the total unknown. */
Test(summary, unknown_params)
{
    struct dcv_model_row r[2] = { { .name = "input", .class_name = "InputLayer",
                                    .out = { 2, { -1, 4 } } },
                                  { .name = "d", .class_name = "Dense", .out = { 2, { -1, 8 } },
                                    .params = DCV_SUMMARY_UNKNOWN } };
    cr_assert_eq(dcv_summary_total(r, 2), DCV_SUMMARY_UNKNOWN);
    struct dcv_json *j = dcv_summary_json(r, 2);
    cr_assert_eq(dcv_json_type(dcv_json_get(dcv_json_at(j, 1), "params")), DCV_JSON_NULL);
    dcv_json_free(j);
}

/* The --check text: Keras's columns, None for unknown dims, the total;
 * columns as wide as the widest cell. */
Test(summary, text_table)
{
    struct dcv_model *m = up2d();
    struct dcv_model_row *rows;
    char err[DCV_ERRLEN] = "", buf[1024] = "";
    int n;
    cr_assert_eq(dcv_summary_rows(m, NULL, 0, &rows, &n, err), 0, "%s", err);
    FILE *f = fmemopen(buf, sizeof buf, "w");
    cr_assert_not_null(f);
    dcv_summary_print(f, rows, n, "  ");
    fclose(f);
    cr_assert_str_eq(buf,
                     "  Layer (type)          Output Shape           Param #\n"
                     "  input (InputLayer)    (None, None, None, 3)  0\n"
                     "  up (Conv2DTranspose)  (None, None, None, 2)  56\n"
                     "  Total params: 56\n");
    free(rows);
    dcv_model_free(m);
}

/* A chain longer than the first guess of rows (16): 20 ReLU layers after
 * the InputLayer come back whole, in order, each (None, 4) with 0 params. */
Test(summary, long_chain_regrows)
{
    char doc[4096], err[DCV_ERRLEN] = "";
    size_t k = (size_t)snprintf(doc, sizeof doc,
                                "{\"class_name\":\"Sequential\",\"config\":{\"name\":\"deep\","
                                "\"layers\":[{\"class_name\":\"InputLayer\",\"config\":"
                                "{\"batch_input_shape\":[null,4],\"name\":\"in\"}}");
    for (int i = 0; i < 20; i++)
        k += (size_t)snprintf(doc + k, sizeof doc - k, ",{\"class_name\":\"ReLU\",\"config\":"
                              "{\"name\":\"r%d\"}}", i);
    snprintf(doc + k, sizeof doc - k, "]}}");
    struct dcv_json *d = dcv_json_parse(doc, strlen(doc), err);
    cr_assert_not_null(d, "%s", err);
    struct dcv_model *m = NULL;
    int rc = dcv_model_from_doc("deep", d, NULL, NULL, &m, err);
    dcv_json_free(d);
    cr_assert_eq(rc, 0, "%s", err);
    struct dcv_model_row *rows;
    int n;
    cr_assert_eq(dcv_summary_rows(m, NULL, 0, &rows, &n, err), 0, "%s", err);
    cr_assert_eq(n, 21);
    cr_assert_str_eq(rows[0].name, "in");
    for (int i = 1; i < n; i++) {
        char want[16];
        snprintf(want, sizeof want, "r%d", i - 1);
        cr_assert_str_eq(rows[i].name, want);
        cr_assert_str_eq(rows[i].class_name, "ReLU");
        cr_assert(rows[i].out.ndim == 2 && rows[i].out.d[0] == -1 && rows[i].out.d[1] == 4);
        cr_assert_eq(rows[i].params, 0);
    }
    cr_assert_eq(dcv_summary_total(rows, n), 0);
    free(rows);
    dcv_model_free(m);
}
