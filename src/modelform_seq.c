/* modelform_seq.c — TEMPORARY Sequential-only stand-in for modelform.c.
 *
 * Lets the chain engine be built and tested before the `forms` branch
 * (the real Sequential/Functional reader) lands; delete this file when
 * src/modelform.c arrives. Implements modelform.h's contract for plain
 * Sequential configs only: InputLayer first or a first layer's
 * build_config input_shape. Pure, any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/modelform.h"

static const struct dcv_json *model_dict(const struct dcv_json *doc)
{
    const char *c = dcv_json_string(dcv_json_get(doc, "class_name"));
    if (c && (!strcmp(c, "Sequential") || !strcmp(c, "Functional") || !strcmp(c, "Model")))
        return doc;
    return NULL;
}

bool dcv_modelform_is_model(const struct dcv_json *doc)
{
    return model_dict(doc) != NULL;
}

static void take_shape(const struct dcv_json *bs, struct dcv_modelform *f)
{
    if (dcv_json_type(bs) != DCV_JSON_ARRAY || dcv_json_size(bs) > DCV_MAX_DIMS) return;
    f->in_ndim = (int)dcv_json_size(bs);
    for (int i = 0; i < f->in_ndim; i++)
        if (!dcv_json_int(dcv_json_at(bs, (size_t)i), 1, DCV_MAX_EXTENT, &f->in_shape[i]))
            f->in_shape[i] = -1;
}

int dcv_modelform_parse(const struct dcv_json *doc, struct dcv_modelform *f, char *err)
{
    const struct dcv_json *m = model_dict(doc), *cfg = dcv_json_get(m, "config");
    const struct dcv_json *layers = dcv_json_get(cfg, "layers");
    memset(f, 0, sizeof *f);
    if (!m || strcmp(dcv_json_string(dcv_json_get(m, "class_name")), "Sequential"))
        return dcv_errf(err, DCV_EUNSUPP, "only Sequential models until modelform lands");
    if (dcv_json_type(layers) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "Sequential config needs a 'layers' list");
    snprintf(f->class_name, sizeof f->class_name, "Sequential");
    const char *nm = dcv_json_string(dcv_json_get(cfg, "name"));
    snprintf(f->name, sizeof f->name, "%s", nm ? nm : "sequential");
    snprintf(f->input_name, sizeof f->input_name, "input");
    f->keras = dcv_json_get(m, "module") ? DCV_KERAS_3 : DCV_KERAS_2;
    if (!(f->layers = calloc(dcv_json_size(layers) + 1, sizeof *f->layers)))
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    for (const struct dcv_json *l = dcv_json_first(layers); l; l = dcv_json_next(l)) {
        const char *cls = dcv_json_string(dcv_json_get(l, "class_name"));
        const struct dcv_json *lc = dcv_json_get(l, "config");
        const char *ln = dcv_json_string(dcv_json_get(lc, "name"));
        if (!cls || dcv_json_type(lc) != DCV_JSON_OBJECT) {
            dcv_modelform_release(f);
            return dcv_errf(err, DCV_EINVAL, "layer %d needs class_name and config", f->n);
        }
        if (!strcmp(cls, "InputLayer")) {
            const struct dcv_json *bs = dcv_json_get(lc, "batch_shape");
            take_shape(bs ? bs : dcv_json_get(lc, "batch_input_shape"), f);
            if (ln) snprintf(f->input_name, sizeof f->input_name, "%s", ln);
            continue;
        }
        struct dcv_layer_spec *s = &f->layers[f->n++];
        s->class_name = cls;
        s->config = lc;
        s->build = dcv_json_get(l, "build_config");
        snprintf(s->name, sizeof s->name, "%s", ln ? ln : cls);
        if (f->n == 1 && !f->in_ndim)
            take_shape(dcv_json_get(s->build, "input_shape"), f);
    }
    return 0;
}

void dcv_modelform_release(struct dcv_modelform *f)
{
    free(f->layers);
    f->layers = NULL;
    f->n = 0;
}
