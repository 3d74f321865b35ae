/* layerargs.c — checked getters for Keras layer config arguments.
 *
 * Every layer class reads its config through these so that the accepted
 * spellings (null as "default", an int for a tuple, Keras 3's lists and
 * tf.keras 2's) and the refusal messages are the same everywhere. Pure,
 * any thread; nothing owned.
 */
#include <math.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layerargs.h"

static bool absent(const struct dcv_json *v)
{
    return !v || dcv_json_type(v) == DCV_JSON_NULL;
}

int dcv_layerargs_number(const struct dcv_json *cfg, const char *layer, const char *key,
                         double def, double lo, double hi, double *out, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, key);
    if (absent(v)) {
        *out = def;
        return 0;
    }
    double d = dcv_json_number(v);
    if (dcv_json_type(v) != DCV_JSON_NUMBER || !isfinite(d) || d < lo || d > hi)
        return dcv_errf(err, DCV_EINVAL, "%s: '%s' must be a number in [%g, %g], got %s%s%.9g",
                        layer, key, lo, hi, dcv_json_type_name(v),
                        dcv_json_type(v) == DCV_JSON_NUMBER ? " " : "",
                        dcv_json_type(v) == DCV_JSON_NUMBER ? d : 0.0);
    *out = d;
    return 0;
}

int dcv_layerargs_bool(const struct dcv_json *cfg, const char *layer, const char *key, bool def,
                       bool *out, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, key);
    if (absent(v)) {
        *out = def;
        return 0;
    }
    if (dcv_json_type(v) != DCV_JSON_BOOL)
        return dcv_errf(err, DCV_EINVAL, "%s: '%s' must be true or false, got %s", layer, key,
                        dcv_json_type_name(v));
    *out = dcv_json_true(v);
    return 0;
}

int dcv_layerargs_channels_first(const struct dcv_json *cfg, const char *layer, bool *out,
                                 char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, "data_format");
    const char *s = dcv_json_string(v);
    *out = false;
    if (absent(v) || (s && !strcmp(s, "channels_last"))) return 0;
    if (s && !strcmp(s, "channels_first")) {
        *out = true;
        return 0;
    }
    return dcv_errf(err, DCV_EINVAL, "%s: 'data_format' must be \"channels_last\" or "
                    "\"channels_first\", got %.64s", layer, s ? s : dcv_json_type_name(v));
}

static bool int_in(const struct dcv_json *v, int64_t lo, int64_t hi, int64_t *out)
{
    return dcv_json_int(v, lo, hi, out);
}

int dcv_layerargs_ints(const struct dcv_json *cfg, const char *layer, const char *key, int n,
                       const int64_t *def, int64_t lo, int64_t hi, int64_t *out, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, key);
    if (absent(v)) {
        memcpy(out, def, sizeof *out * (size_t)n);
        return 0;
    }
    if (int_in(v, lo, hi, &out[0])) {
        for (int i = 1; i < n; i++) out[i] = out[0];
        return 0;
    }
    bool ok = dcv_json_type(v) == DCV_JSON_ARRAY && dcv_json_size(v) == (size_t)n;
    for (int i = 0; ok && i < n; i++) ok = int_in(dcv_json_at(v, (size_t)i), lo, hi, &out[i]);
    if (!ok)
        return dcv_errf(err, DCV_EINVAL, "%s: '%s' must be an integer or a list of %d integers, "
                        "each in [%lld, %lld]", layer, key, n, (long long)lo, (long long)hi);
    return 0;
}

/* One axis's entry: an int (both sides) or a pair. */
static bool pair_of(const struct dcv_json *v, int64_t hi, int64_t *out)
{
    if (int_in(v, 0, hi, &out[0])) {
        out[1] = out[0];
        return true;
    }
    return dcv_json_type(v) == DCV_JSON_ARRAY && dcv_json_size(v) == 2 &&
           int_in(dcv_json_at(v, 0), 0, hi, &out[0]) && int_in(dcv_json_at(v, 1), 0, hi, &out[1]);
}

int dcv_layerargs_pairs(const struct dcv_json *cfg, const char *layer, const char *key, int axes,
                        const int64_t *def, int64_t hi, int64_t *out, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, key);
    if (absent(v)) {
        memcpy(out, def, sizeof *out * 2 * (size_t)axes);
        return 0;
    }
    bool ok;
    if (axes == 1 || dcv_json_type(v) != DCV_JSON_ARRAY) {
        ok = pair_of(v, hi, out);
        for (int i = 1; ok && i < axes; i++) out[2 * i] = out[0], out[2 * i + 1] = out[0];
    } else {
        ok = dcv_json_size(v) == (size_t)axes;
        for (int i = 0; ok && i < axes; i++)
            ok = pair_of(dcv_json_at(v, (size_t)i), hi, &out[2 * i]);
    }
    if (!ok)
        return dcv_errf(err, DCV_EINVAL, "%s: '%s' must be an integer, %s, each in [0, %lld]",
                        layer, key, axes == 1 ? "or a pair (before, after)"
                                              : "a list of one integer or one (before, after) "
                                                "pair per spatial axis", (long long)hi);
    return 0;
}
