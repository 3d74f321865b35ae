/* init.c — Keras weight initializers for layers shipped without weights.
 *
 * A model file may describe a layer but carry no weights; the daemon then
 * creates them the way Keras would. Parsing maps every spelling Keras accepts
 * (snake_case, CamelCase, Keras 2 and Keras 3 dicts, legacy aliases) onto one
 * table of canonical names, and the glorot/he/lecun families onto
 * variance-scaling presets, so filling only knows nine kinds.
 *
 * Random values come from a private xoshiro256** stream seeded by splitmix64
 * from (seed, salt), normals from the Marsaglia polar method with a local
 * logarithm: only IEEE-754 +, -, *, / and sqrt touch the numbers, so a spec
 * and shape give the same bytes on every machine and libm (as long as the
 * compiler does not contract into FMAs, GCC's default under -std=c11).
 *
 * Pure functions on caller memory, any thread. The only thing owned here is
 * the scratch matrix of the orthogonal initializer, freed before returning.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/init.h"
#include "deconvd/json.h"
#include "deconvd/names.h"

/* ------------------------------------------------------------------ names */

struct preset {
    const char *name;   /* canonical snake_case */
    const char *cls;    /* Keras class name written by dcv_init_to_json */
    enum dcv_init_kind kind;
    double scale;       /* the rest only matters for variance scaling */
    enum dcv_fan_mode mode;
    enum dcv_distribution dist;
};

#define VS DCV_INIT_VARIANCE_SCALING
#define TRUNC DCV_DIST_TRUNCATED_NORMAL
#define UNIF DCV_DIST_UNIFORM

static const struct preset presets[] = {
    { "zeros", "Zeros", DCV_INIT_ZEROS, 1.0, DCV_FAN_IN, TRUNC },
    { "ones", "Ones", DCV_INIT_ONES, 1.0, DCV_FAN_IN, TRUNC },
    { "constant", "Constant", DCV_INIT_CONSTANT, 1.0, DCV_FAN_IN, TRUNC },
    { "random_normal", "RandomNormal", DCV_INIT_RANDOM_NORMAL, 1.0, DCV_FAN_IN, TRUNC },
    { "random_uniform", "RandomUniform", DCV_INIT_RANDOM_UNIFORM, 1.0, DCV_FAN_IN, TRUNC },
    { "truncated_normal", "TruncatedNormal", DCV_INIT_TRUNCATED_NORMAL, 1.0, DCV_FAN_IN, TRUNC },
    { "variance_scaling", "VarianceScaling", VS, 1.0, DCV_FAN_IN, TRUNC },
    { "glorot_uniform", "GlorotUniform", VS, 1.0, DCV_FAN_AVG, UNIF },
    { "glorot_normal", "GlorotNormal", VS, 1.0, DCV_FAN_AVG, TRUNC },
    { "he_normal", "HeNormal", VS, 2.0, DCV_FAN_IN, TRUNC },
    { "he_uniform", "HeUniform", VS, 2.0, DCV_FAN_IN, UNIF },
    { "lecun_normal", "LecunNormal", VS, 1.0, DCV_FAN_IN, TRUNC },
    { "lecun_uniform", "LecunUniform", VS, 1.0, DCV_FAN_IN, UNIF },
    { "orthogonal", "Orthogonal", DCV_INIT_ORTHOGONAL, 1.0, DCV_FAN_IN, TRUNC },
    { "identity", "Identity", DCV_INIT_IDENTITY, 1.0, DCV_FAN_IN, TRUNC },
};
#define NPRESETS (sizeof presets / sizeof presets[0])

/* Spellings Keras resolves that are not a class name in either case style.
 * Keras 3 serializes Orthogonal under its class name OrthogonalInitializer,
 * and some Keras 3 releases did the same for Identity. */
static const struct { const char *alias, *name; } aliases[] = {
    { "normal", "random_normal" },
    { "uniform", "random_uniform" },
    { "one", "ones" },
    { "zero", "zeros" },
    { "orthogonal_initializer", "orthogonal" },
    { "identity_initializer", "identity" },
};

static const char *const mode_names[] = { "fan_in", "fan_out", "fan_avg" };
static const char *const dist_names[] = { "truncated_normal", "untruncated_normal", "uniform" };

static const struct preset *find_preset(const char *name)
{
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (dcv_names_equal(name, aliases[i].alias)) name = aliases[i].name;
    for (size_t i = 0; i < NPRESETS; i++)
        if (dcv_names_equal(name, presets[i].name)) return &presets[i];
    return NULL;
}

static bool is_vs_preset(const struct preset *p)
{
    return p->kind == VS && strcmp(p->name, "variance_scaling") != 0;
}

static int lookup_word(const char *s, const char *const *words, int n)
{
    for (int i = 0; s && i < n; i++)
        if (dcv_names_equal(s, words[i])) return i;
    return -1;
}

/* ---------------------------------------------------------------- parsing */

struct ctx {
    const char *what, *name;
    char *err;
};

static void describe(const struct dcv_json *v, char *buf, size_t cap)
{
    if (dcv_json_type(v) == DCV_JSON_NUMBER)
        snprintf(buf, cap, "%.17g", dcv_json_number(v));
    else if (dcv_json_type(v) == DCV_JSON_STRING)
        snprintf(buf, cap, "\"%.64s\"", dcv_json_string(v));
    else
        snprintf(buf, cap, "%s", dcv_json_type_name(v));
}

static int bad_param(const struct ctx *c, const char *key, const struct dcv_json *v,
                     const char *expect)
{
    char got[96];
    describe(v, got, sizeof got);
    return dcv_errf(c->err, DCV_EINVAL, "%s: %s parameter \"%s\" must be %s, got %s",
                    c->what, c->name, key, expect, got);
}

/* Absent keys keep the Keras default already in *out. Magnitudes are held
 * to float32 range because every parameter ends up scaling float32 output. */
static int get_real(const struct ctx *c, const struct dcv_json *cfg, const char *key,
                    bool nonneg, double *out)
{
    const struct dcv_json *v = dcv_json_get(cfg, key);
    if (!v) return 0;
    double x = dcv_json_number(v);
    if (dcv_json_type(v) != DCV_JSON_NUMBER || !isfinite(x) || fabs(x) > FLT_MAX)
        return bad_param(c, key, v, "a finite float32 number");
    if (nonneg && x < 0) return bad_param(c, key, v, "a number >= 0");
    *out = x;
    return 0;
}

static int get_word(const struct ctx *c, const struct dcv_json *cfg, const char *key,
                    const char *const *words, int n, const char *expect, int *out)
{
    const struct dcv_json *v = dcv_json_get(cfg, key);
    if (!v) return 0;
    int i = lookup_word(dcv_json_string(v), words, n);
    if (i < 0) return bad_param(c, key, v, expect);
    *out = i;
    return 0;
}

/* Keras 3 may serialize a SeedGenerator object in place of an int; its own
 * config carries the int. Seeds are kept within the exact range of a JSON
 * number so that dcv_init_to_json can write them back unchanged. */
static int get_seed(const struct ctx *c, const struct dcv_json *cfg, uint64_t *out)
{
    const struct dcv_json *v = dcv_json_get(cfg, "seed");
    if (dcv_json_type(v) == DCV_JSON_OBJECT)
        v = dcv_json_get(dcv_json_get(v, "config"), "seed");
    if (!v || dcv_json_type(v) == DCV_JSON_NULL) return 0;
    int64_t s;
    const int64_t lim = (int64_t)1 << 53;
    if (!dcv_json_int(v, -lim, lim, &s)) return bad_param(c, "seed", v, "an integer or null");
    *out = (uint64_t)s;
    return 0;
}

static int read_normal(const struct ctx *c, const struct dcv_json *cfg, struct dcv_init *o)
{
    int rc = get_real(c, cfg, "mean", false, &o->mean);
    if (!rc) rc = get_real(c, cfg, "stddev", true, &o->stddev);
    if (!rc) rc = get_seed(c, cfg, &o->seed);
    return rc;
}

static int read_uniform(const struct ctx *c, const struct dcv_json *cfg, struct dcv_init *o)
{
    int rc = get_real(c, cfg, "minval", false, &o->minval);
    if (!rc) rc = get_real(c, cfg, "maxval", false, &o->maxval);
    if (!rc && o->minval > o->maxval)
        rc = dcv_errf(c->err, DCV_EINVAL, "%s: %s parameter \"minval\" must be <= \"maxval\", "
                      "got minval=%.17g maxval=%.17g", c->what, c->name, o->minval, o->maxval);
    if (!rc) rc = get_seed(c, cfg, &o->seed);
    return rc;
}

static int read_vs(const struct ctx *c, const struct dcv_json *cfg, struct dcv_init *o)
{
    int mode = (int)o->mode, dist = (int)o->distribution;
    const char *ds = dcv_json_string(dcv_json_get(cfg, "distribution"));
    int rc = get_real(c, cfg, "scale", false, &o->scale);
    if (!rc && !(o->scale > 0))
        rc = bad_param(c, "scale", dcv_json_get(cfg, "scale"), "a number > 0");
    if (!rc)
        rc = get_word(c, cfg, "mode", mode_names, 3, "\"fan_in\", \"fan_out\" or \"fan_avg\"",
                      &mode);
    /* Keras reads the legacy "normal" as truncated_normal. */
    if (!rc && ds && dcv_names_equal(ds, "normal"))
        dist = TRUNC;
    else if (!rc)
        rc = get_word(c, cfg, "distribution", dist_names, 3,
                      "\"truncated_normal\", \"untruncated_normal\", \"uniform\" or \"normal\"",
                      &dist);
    o->mode = (enum dcv_fan_mode)mode;
    o->distribution = (enum dcv_distribution)dist;
    return rc;
}

/* Only the keys the kind takes are looked at: Keras configs routinely carry
 * others (dtype, and presets ignore scale/mode/distribution). */
static int read_config(const struct ctx *c, const struct preset *p, const struct dcv_json *cfg,
                       struct dcv_init *o)
{
    switch (p->kind) {
    case DCV_INIT_ZEROS:
    case DCV_INIT_ONES:
        return 0;
    case DCV_INIT_CONSTANT:
        return get_real(c, cfg, "value", false, &o->value);
    case DCV_INIT_IDENTITY:
        return get_real(c, cfg, "gain", false, &o->gain);
    case DCV_INIT_RANDOM_NORMAL:
    case DCV_INIT_TRUNCATED_NORMAL:
        return read_normal(c, cfg, o);
    case DCV_INIT_RANDOM_UNIFORM:
        return read_uniform(c, cfg, o);
    case DCV_INIT_ORTHOGONAL: {
        int rc = get_real(c, cfg, "gain", false, &o->gain);
        return rc ? rc : get_seed(c, cfg, &o->seed);
    }
    case DCV_INIT_VARIANCE_SCALING: {
        int rc = is_vs_preset(p) ? 0 : read_vs(c, cfg, o);
        return rc ? rc : get_seed(c, cfg, &o->seed);
    }
    }
    return dcv_errf(c->err, DCV_EINTERNAL, "%s: unhandled initializer kind", c->what);
}

static void set_defaults(const struct preset *p, struct dcv_init *o)
{
    memset(o, 0, sizeof *o);
    o->kind = p->kind;
    snprintf(o->name, sizeof o->name, "%s", p->name);
    o->stddev = 0.05;
    o->minval = -0.05;
    o->maxval = 0.05;
    o->scale = p->scale;
    o->mode = p->mode;
    o->distribution = p->dist;
    o->gain = 1.0;
}

static int unknown_name(const char *what, const char *name, char *err)
{
    char list[320];
    size_t k = 0;
    for (size_t i = 0; i < NPRESETS && k < sizeof list; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", presets[i].name);
    return dcv_errf(err, DCV_EINVAL, "%s: unknown initializer \"%.64s\" (supported: %s)",
                    what, name, list);
}

/* Resolves the spec to a class name and an optional config object. */
static int split_spec(const struct dcv_json *spec, const char *dflt, const char *what,
                      const char **cls, const struct dcv_json **cfg, char *err)
{
    *cfg = NULL;
    switch (dcv_json_type(spec)) {
    case DCV_JSON_INVALID:
    case DCV_JSON_NULL:
        *cls = dflt;
        if (!dflt) return dcv_errf(err, DCV_EINVAL, "%s: no initializer given", what);
        return 0;
    case DCV_JSON_STRING:
        *cls = dcv_json_string(spec);
        return 0;
    case DCV_JSON_OBJECT:
        *cls = dcv_json_string(dcv_json_get(spec, "class_name"));
        if (!*cls)
            return dcv_errf(err, DCV_EINVAL, "%s: initializer object needs a string \"class_name\"",
                            what);
        *cfg = dcv_json_get(spec, "config");
        if (*cfg && dcv_json_type(*cfg) != DCV_JSON_OBJECT && dcv_json_type(*cfg) != DCV_JSON_NULL)
            return dcv_errf(err, DCV_EINVAL, "%s: initializer \"config\" must be an object, got %s",
                            what, dcv_json_type_name(*cfg));
        return 0;
    default:
        return dcv_errf(err, DCV_EINVAL,
                        "%s: initializer must be a name, an object or null, got %s", what,
                        dcv_json_type_name(spec));
    }
}

int dcv_init_parse(const struct dcv_json *spec, const char *dflt, const char *what,
                   struct dcv_init *out, char *err)
{
    const char *cls = NULL;
    const struct dcv_json *cfg;
    if (!what) what = "initializer";
    int rc = split_spec(spec, dflt, what, &cls, &cfg, err);
    if (rc) return rc;
    const struct preset *p = find_preset(cls);
    if (!p) return unknown_name(what, cls, err);
    struct dcv_init tmp;
    set_defaults(p, &tmp);
    struct ctx c = { what, p->name, err };
    rc = read_config(&c, p, cfg, &tmp);
    if (!rc) *out = tmp;
    return rc;
}

/* ---------------------------------------------------------- serialization */

/* A struct named after a preset but holding other numbers (built by hand)
 * would lose them under the preset's class name; write it out in full. */
static const struct preset *preset_for(const struct dcv_init *in)
{
    const struct preset *p = find_preset(in->name);
    if (p && p->kind == in->kind && (!is_vs_preset(p) || (p->scale == in->scale &&
        p->mode == in->mode && p->dist == in->distribution)))
        return p;
    for (size_t i = 0; i < NPRESETS; i++)
        if (presets[i].kind == in->kind) return &presets[i];
    return NULL;
}

static int put_num(struct dcv_json *o, const char *key, double v)
{
    return dcv_json_add(o, key, dcv_json_new_number(v));
}

static int put_str(struct dcv_json *o, const char *key, const char *s)
{
    return dcv_json_add(o, key, dcv_json_new_string(s));
}

/* seed 0 is what parsing stores for null, so it goes back out as null. */
static int put_seed(struct dcv_json *o, uint64_t seed)
{
    return dcv_json_add(o, "seed", seed ? dcv_json_new_number((double)(int64_t)seed)
                                        : dcv_json_new_null());
}

/* Nonzero when a member could not be added (or the struct is invalid). */
static int put_params(struct dcv_json *cfg, const struct preset *p, const struct dcv_init *in)
{
    switch (in->kind) {
    case DCV_INIT_ZEROS:
    case DCV_INIT_ONES:
        return 0;
    case DCV_INIT_CONSTANT:
        return put_num(cfg, "value", in->value);
    case DCV_INIT_IDENTITY:
        return put_num(cfg, "gain", in->gain);
    case DCV_INIT_RANDOM_NORMAL:
    case DCV_INIT_TRUNCATED_NORMAL:
        return put_num(cfg, "mean", in->mean) || put_num(cfg, "stddev", in->stddev)
               || put_seed(cfg, in->seed);
    case DCV_INIT_RANDOM_UNIFORM:
        return put_num(cfg, "minval", in->minval) || put_num(cfg, "maxval", in->maxval)
               || put_seed(cfg, in->seed);
    case DCV_INIT_ORTHOGONAL:
        return put_num(cfg, "gain", in->gain) || put_seed(cfg, in->seed);
    case DCV_INIT_VARIANCE_SCALING:
        if (is_vs_preset(p)) return put_seed(cfg, in->seed);
        if ((unsigned)in->mode > DCV_FAN_AVG || (unsigned)in->distribution > DCV_DIST_UNIFORM)
            return 1;
        return put_num(cfg, "scale", in->scale) || put_str(cfg, "mode", mode_names[in->mode])
               || put_str(cfg, "distribution", dist_names[in->distribution])
               || put_seed(cfg, in->seed);
    }
    return 1;
}

struct dcv_json *dcv_init_to_json(const struct dcv_init *init)
{
    const struct preset *p = init ? preset_for(init) : NULL;
    if (!p) return NULL;
    struct dcv_json *root = dcv_json_new_object();
    struct dcv_json *cfg = dcv_json_new_object();
    if (!root || !cfg || put_params(cfg, p, init) || put_str(root, "class_name", p->cls)) {
        dcv_json_free(cfg);
        dcv_json_free(root);
        return NULL;
    }
    if (dcv_json_add(root, "config", cfg)) {   /* frees cfg on failure */
        dcv_json_free(root);
        return NULL;
    }
    return root;
}

/* -------------------------------------------------------------------- rng */

struct rng {
    uint64_t s[4];
    double spare;       /* the polar method yields normals in pairs */
    bool has_spare;
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The salt is hashed before mixing so that nearby (seed, salt) pairs, such
 * as the kernel and bias of one layer, start far apart. */
static void rng_seed(struct rng *r, uint64_t seed, uint64_t salt)
{
    uint64_t x = seed ^ splitmix64(&salt);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = false;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform on [0, 1) with 53 random bits. */
static double rng_unit(struct rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* Natural log from basic operations only, so that normals do not depend on
 * how a particular libm rounds log(). x = m * 2^e with m in [sqrt(1/2),
 * sqrt(2)); ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, and the series
 * to s^25 is below double precision. */
static double ln(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752) {
        m *= 2;
        e--;
    }
    double s = (m - 1) / (m + 1), s2 = s * s, sum = 0;
    for (int k = 25; k >= 1; k -= 2) sum = sum * s2 + 1.0 / k;
    return 2 * s * sum + e * 0.69314718055994530942;
}

static double rng_normal(struct rng *r)
{
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2 * rng_unit(r) - 1;
        v = 2 * rng_unit(r) - 1;
        s = u * u + v * v;
    } while (s >= 1 || s == 0);
    double f = sqrt(-2 * ln(s) / s);
    r->spare = v * f;
    r->has_spare = true;
    return u * f;
}

/* ---------------------------------------------------------------- filling */

/* Rounding to float32 can step just past a bound that holds in double (the
 * top of a uniform range, the 2-sigma cut), and a double beyond FLT_MAX has
 * no defined conversion; both are settled here so bounds hold exactly. */
static float narrow(double v, double lo, double hi)
{
    if (lo < -FLT_MAX) lo = -FLT_MAX;
    if (hi > FLT_MAX) hi = FLT_MAX;
    v = v < lo ? lo : v > hi ? hi : v;
    float f = (float)v;
    if ((double)f > hi) f = nextafterf(f, -INFINITY);
    if ((double)f < lo) f = nextafterf(f, INFINITY);
    return f;
}

static void fill_const(float *out, size_t n, double v)
{
    float f = narrow(v, -INFINITY, INFINITY);
    for (size_t i = 0; i < n; i++) out[i] = f;
}

static void fill_normal(struct rng *r, double mean, double sd, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = narrow(mean + sd * rng_normal(r), -INFINITY, INFINITY);
}

static void fill_truncated(struct rng *r, double mean, double sd, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double z;
        do z = rng_normal(r); while (fabs(z) > 2);
        out[i] = narrow(mean + sd * z, mean - 2 * sd, mean + 2 * sd);
    }
}

static void fill_uniform(struct rng *r, double lo, double hi, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = narrow(lo + (hi - lo) * rng_unit(r), lo, hi);
}

struct dims {
    size_t count, rows, cols;   /* rows x cols: the matrix view of the tensor */
    double fan_in, fan_out;     /* doubles: exact here and cannot overflow */
};

static int shape_dims(const int64_t *shape, int ndim, struct dims *d, char *err)
{
    if (ndim < 0 || (ndim > 0 && !shape))
        return dcv_errf(err, DCV_EINVAL, "initializer: invalid shape of rank %d", ndim);
    size_t count = 1, limit = SIZE_MAX / sizeof(double);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return dcv_errf(err, DCV_EINVAL, "initializer: shape[%d] is negative (%lld)", i,
                            (long long)shape[i]);
        if (shape[i] && (uint64_t)count > (uint64_t)limit / (uint64_t)shape[i])
            return dcv_errf(err, DCV_EINVAL, "initializer: tensor of rank %d is too large", ndim);
        count *= (size_t)shape[i];
    }
    d->count = count;
    d->cols = ndim ? (size_t)shape[ndim - 1] : 1;
    d->rows = d->cols ? count / d->cols : 0;
    double receptive = 1;
    for (int i = 0; i + 2 < ndim; i++) receptive *= (double)shape[i];
    d->fan_in = ndim == 0 ? 1 : ndim == 1 ? (double)shape[0] : (double)shape[ndim - 2] * receptive;
    d->fan_out = ndim == 0 ? 1 : (double)shape[ndim - 1] * receptive;
    return 0;
}

static int fill_vs(const struct dcv_init *in, const struct dims *d, struct rng *r, float *out,
                   char *err)
{
    double n = in->mode == DCV_FAN_IN ? d->fan_in
             : in->mode == DCV_FAN_OUT ? d->fan_out : (d->fan_in + d->fan_out) / 2;
    if (!(n > 0) || !(in->scale > 0))
        return dcv_errf(err, DCV_EINVAL, "%s: needs scale > 0 and a non-zero fan, got scale=%g "
                        "fan_in=%.0f fan_out=%.0f", in->name, in->scale, d->fan_in, d->fan_out);
    double var = in->scale / n;
    switch (in->distribution) {
    case DCV_DIST_TRUNCATED_NORMAL:
        /* 0.8796... is the std of a unit normal cut at +-2: dividing by it
         * gives the truncated draw the variance asked for. */
        fill_truncated(r, 0, sqrt(var) / 0.87962566103423978, out, d->count);
        return 0;
    case DCV_DIST_UNTRUNCATED_NORMAL:
        fill_normal(r, 0, sqrt(var), out, d->count);
        return 0;
    case DCV_DIST_UNIFORM:
        fill_uniform(r, -sqrt(3 * var), sqrt(3 * var), out, d->count);
        return 0;
    }
    return dcv_errf(err, DCV_EINVAL, "%s: invalid distribution %d", in->name,
                    (int)in->distribution);
}

static double dot(const double *a, const double *b, size_t m)
{
    double s = 0;
    for (size_t i = 0; i < m; i++) s += a[i] * b[i];
    return s;
}

/* Makes column j of q (m-long columns) orthogonal to columns 0..j-1 and of
 * unit length. Two Gram-Schmidt passes: one alone leaves errors growing
 * with the condition number, a second brings them to rounding level. */
static bool orthonormalize(double *q, size_t m, size_t j)
{
    double *v = q + j * m, before = sqrt(dot(v, v, m));
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < j; k++) {
            const double *u = q + k * m;
            double c = dot(u, v, m);
            for (size_t i = 0; i < m; i++) v[i] -= c * u[i];
        }
    }
    double norm = sqrt(dot(v, v, m));
    if (!(norm > 1e-10 * before)) return false;
    for (size_t i = 0; i < m; i++) v[i] /= norm;
    return true;
}

/* Q of the QR factorization of a (max, min) normal matrix. Gram-Schmidt
 * yields the Q whose R has a positive diagonal, which is exactly what
 * Keras's "q *= sign(diag(r))" normalizes LAPACK's Q to, so no sign fix is
 * needed. Columns are stored contiguously; that layout is Q for a tall view
 * and already Q^T, row-major, for a wide one. */
static int fill_orthogonal(const struct dcv_init *in, const struct dims *d, struct rng *r,
                           float *out, char *err)
{
    size_t m = d->rows > d->cols ? d->rows : d->cols, n = d->count ? d->count / m : 0;
    double *q = malloc((d->count ? d->count : 1) * sizeof *q);
    if (!q) return dcv_errf(err, DCV_ENOMEM, "orthogonal: cannot allocate %zu doubles", d->count);
    for (size_t j = 0; j < n; j++) {
        int tries = 0;
        do {   /* a dependent column has probability zero; redraw it anyway */
            for (size_t i = 0; i < m; i++) q[j * m + i] = rng_normal(r);
        } while (!orthonormalize(q, m, j) && ++tries < 8);
        if (tries == 8) {
            free(q);
            return dcv_errf(err, DCV_EINVAL, "orthogonal: cannot orthonormalize a %zux%zu matrix",
                            m, n);
        }
    }
    for (size_t i = 0; i < d->rows; i++)
        for (size_t j = 0; j < d->cols; j++) {
            double v = d->rows >= d->cols ? q[j * m + i] : q[i * m + j];
            out[i * d->cols + j] = narrow(in->gain * v, -INFINITY, INFINITY);
        }
    free(q);
    return 0;
}

/* Keras's Identity accepts only 2-D shapes; here any rank is taken through
 * the same (prod(shape[:-1]), shape[-1]) view as Orthogonal, so a 1x1
 * convolution kernel comes out as the identity channel map. */
static void fill_identity(const struct dcv_init *in, const struct dims *d, float *out)
{
    float g = narrow(in->gain, -INFINITY, INFINITY);
    for (size_t i = 0; i < d->rows; i++)
        for (size_t j = 0; j < d->cols; j++) out[i * d->cols + j] = i == j ? g : 0.0f;
}

int dcv_init_fill(const struct dcv_init *init, const int64_t *shape, int ndim,
                  uint64_t salt, float *out, char *err)
{
    struct dims d = { 0 };
    if (!init) return dcv_errf(err, DCV_EINVAL, "initializer: missing");
    int rc = shape_dims(shape, ndim, &d, err);
    if (rc) return rc;
    if (d.count && !out) return dcv_errf(err, DCV_EINVAL, "%s: no output buffer", init->name);
    struct rng r;
    rng_seed(&r, init->seed, salt);
    switch (init->kind) {
    case DCV_INIT_ZEROS: fill_const(out, d.count, 0); return 0;
    case DCV_INIT_ONES: fill_const(out, d.count, 1); return 0;
    case DCV_INIT_CONSTANT: fill_const(out, d.count, init->value); return 0;
    case DCV_INIT_RANDOM_NORMAL: fill_normal(&r, init->mean, init->stddev, out, d.count); return 0;
    case DCV_INIT_TRUNCATED_NORMAL:
        fill_truncated(&r, init->mean, init->stddev, out, d.count);
        return 0;
    case DCV_INIT_RANDOM_UNIFORM:
        fill_uniform(&r, init->minval, init->maxval, out, d.count);
        return 0;
    case DCV_INIT_VARIANCE_SCALING: return fill_vs(init, &d, &r, out, err);
    case DCV_INIT_ORTHOGONAL: return fill_orthogonal(init, &d, &r, out, err);
    case DCV_INIT_IDENTITY: fill_identity(init, &d, out); return 0;
    }
    return dcv_errf(err, DCV_EINVAL, "initializer: invalid kind %d", (int)init->kind);
}
