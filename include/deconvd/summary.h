/* summary.h — model.summary(): a model's per-layer table as rows, JSON and
 * text, for /shape answers and `deconvd --check`.
 *
 * The rows come from dcv_model_summary (model.h), which knows single
 * layers and chains alike; this module sizes, totals and formats them,
 * and builds the /shape answers from them. Pure functions, any thread.
 */
#ifndef DECONVD_SUMMARY_H
#define DECONVD_SUMMARY_H

#include <stdint.h>
#include <stdio.h>

#include "deconvd/model.h"

/* A row's params when they cannot be counted (a bare layer config whose
 * input channels are unknown): null in JSON, "?" in text. */
#define DCV_SUMMARY_UNKNOWN UINT64_MAX

/* The rows of m for input shape `in` (NULL: the model's signature), as
 * dcv_model_summary fills them: *rows (free with free()) of *n rows. 0, or
 * that function's shape error (the message names the layer), DCV_ENOMEM. */
int dcv_summary_rows(const struct dcv_model *m, const int64_t *in, int ndim,
                     struct dcv_model_row **rows, int *n, char *err);

/* The rows of a Sequential / Functional config (a model file's document)
 * for input shape `in`, without loading it: each layer parsed and asked
 * for its output shape and weight shapes, nothing allocated for weights
 * (/v2/shape). Same row form and ownership as dcv_summary_rows; refusals as
 * loading would give them (DCV_EUNSUPP naming an unknown class, DCV_ESHAPE
 * naming the layer that refuses the shape, DCV_EINVAL). */
int dcv_summary_config_rows(const struct dcv_json *doc, const int64_t *in, int ndim,
                            struct dcv_model_row **rows, int *n, char *err);

/* Sum of the rows' params (DCV_SUMMARY_UNKNOWN if any is unknown). */
uint64_t dcv_summary_total(const struct dcv_model_row *rows, int n);

/* [{"name", "class_name", "output_shape" (-1 unknown), "params"}, ...]:
 * a new tree, NULL on OOM. */
struct dcv_json *dcv_summary_json(const struct dcv_model_row *rows, int n);

/* The table as Keras's model.summary() prints it: a header, one line per
 * row ("name (Class)", the output shape as "(None, 7, 7, 64)", params),
 * then "Total params: N". Each line starts with indent. */
void dcv_summary_print(FILE *f, const struct dcv_model_row *rows, int n, const char *indent);

/* The /shape answer {model_name, input_shape, output_shape, layers,
 * total_params} of loaded model m named `name` for input shape `in`: *doc
 * (the caller frees it). 0, or dcv_summary_rows's errors. Any thread. */
int dcv_summary_model_answer(const char *name, const struct dcv_model *m, const int64_t *in,
                             int nd, struct dcv_json **doc, char *err);

/* The same answer (no model_name) for /v2/shape's document: a bare layer
 * config (its params unknown when its input channels are) or a
 * Sequential / Functional config (dcv_summary_config_rows). 0 with *ans,
 * or the parse/shape error naming the key or layer. Any thread. */
int dcv_summary_config_answer(const struct dcv_json *doc, const int64_t *in, int nd,
                              struct dcv_json **ans, char *err);

#endif
