/* weights.c — weight tensors from .npy files and inline JSON arrays.
 *
 * Shared by single-layer models (model.c) and chains (chain.c): one place
 * confines paths to the models directory, reads .npy files (npy.c bounds
 * them), walks inline arrays without trusting their shape, and refuses
 * non-finite values. Shapes are checked against what the config implies
 * before anything large is allocated for an inline array. Runs on the
 * loading thread; owns nothing beyond what it returns.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/conv.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/npy.h"
#include "deconvd/weights.h"

struct tensor {
    int64_t shape[DCV_MAX_DIMS];
    int ndim;
};

/* ctime too, because mtime can be set back by a copy that keeps
 * timestamps, but no write leaves ctime alone. */
void dcv_weights_fingerprint_stat(uint64_t *fp, const struct stat *st)
{
    uint64_t v[7] = { 0 };
    if (st) {
        v[0] = (uint64_t)st->st_dev, v[1] = (uint64_t)st->st_ino, v[2] = (uint64_t)st->st_size;
        v[3] = (uint64_t)st->st_mtim.tv_sec, v[4] = (uint64_t)st->st_mtim.tv_nsec;
        v[5] = (uint64_t)st->st_ctim.tv_sec, v[6] = (uint64_t)st->st_ctim.tv_nsec;
    }
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {   /* FNV-1a over the words */
        for (int b = 0; b < 8; b++) {
            *fp ^= (v[i] >> (8 * b)) & 0xff;
            *fp *= 0x100000001b3ull;
        }
    }
}

void dcv_weights_fingerprint_file(uint64_t *fp, const char *path)
{
    struct stat st;
    dcv_weights_fingerprint_stat(fp, stat(path, &st) == 0 ? &st : NULL);
}

void dcv_weights_shape_str(const int64_t *s, int n, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)s[i]);
    if (k < cap) snprintf(buf + k, cap - k, n == 1 ? ",)" : ")");
}

/* Shape of a nested JSON array (rectangular), into t->shape. */
static int json_shape(const struct dcv_json *v, struct tensor *t, const char *what, char *err)
{
    t->ndim = 0;
    while (dcv_json_type(v) == DCV_JSON_ARRAY) {
        if (t->ndim == DCV_MAX_DIMS)
            return dcv_errf(err, DCV_ESHAPE, "%s: inline array nested deeper than %d levels",
                            what, DCV_MAX_DIMS);
        t->shape[t->ndim++] = (int64_t)dcv_json_size(v);
        v = dcv_json_first(v);
    }
    return 0;
}

static int json_fill(const struct dcv_json *v, const struct tensor *t, int depth, float **dst,
                     const char *what, char *err)
{
    if (depth == t->ndim) {
        if (dcv_json_type(v) != DCV_JSON_NUMBER)
            return dcv_errf(err, DCV_EINVAL, "%s: inline array holds a %s where a number "
                            "belongs", what, dcv_json_type_name(v));
        double d = dcv_json_number(v);
        if (!(fabs(d) < 0x1.ffffffp127))       /* would round to infinity */
            return dcv_errf(err, DCV_EINVAL, "%s: inline value %g is outside float32's range",
                            what, d);
        *(*dst)++ = (float)d;
        return 0;
    }
    if (dcv_json_type(v) != DCV_JSON_ARRAY || (int64_t)dcv_json_size(v) != t->shape[depth])
        return dcv_errf(err, DCV_ESHAPE, "%s: inline array is ragged at depth %d", what, depth);
    for (const struct dcv_json *e = dcv_json_first(v); e; e = dcv_json_next(e)) {
        int rc = json_fill(e, t, depth + 1, dst, what, err);
        if (rc) return rc;
    }
    return 0;
}

static int check_shape(const struct tensor *t, const int64_t *want, int n, const char *what,
                       char *err)
{
    bool ok = t->ndim == n;
    for (int i = 0; ok && i < n; i++) ok = t->shape[i] == want[i];
    if (ok) return 0;
    char got[128], exp[128];
    dcv_weights_shape_str(t->shape, t->ndim, got, sizeof got);
    dcv_weights_shape_str(want, n, exp, sizeof exp);
    return dcv_errf(err, DCV_ESHAPE, "%s has shape %s but the config needs %s", what, got, exp);
}

int dcv_weights_confine(const char *dir, const char *rel, char *out, char *err)
{
    char root[PATH_MAX], joined[PATH_MAX];
    if (!dir)
        return dcv_errf(err, DCV_EPATH, "weights file '%.100s' given but no models directory",
                        rel);
    if (rel[0] == '/' || strstr(rel, "..") || rel[0] == '\0')
        return dcv_errf(err, DCV_EPATH, "weights path '%.100s' must be relative to the "
                        "models directory without '..'", rel);
    if (!realpath(dir, root))
        return dcv_errf(err, DCV_ENOENT, "models directory %.200s: %s", dir, strerror(errno));
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", root, rel) >= sizeof joined)
        return dcv_errf(err, DCV_EPATH, "weights path too long");
    if (!realpath(joined, out))
        return dcv_errf(err, DCV_ENOENT, "weights file '%.100s': %s", rel, strerror(errno));
    size_t n = strlen(root);
    if (strncmp(out, root, n) != 0 || (out[n] != '/' && out[n] != '\0'))
        return dcv_errf(err, DCV_EPATH, "weights file '%.100s' resolves outside the models "
                        "directory", rel);
    return 0;
}

static int load_npy(const char *path, const char *dir, const int64_t *want, int n,
                    size_t max_elems, const char *what, float **data, uint64_t *fp, char *err)
{
    char real[PATH_MAX], sub[DCV_ERRLEN];
    struct dcv_npy npy = { 0 };
    struct tensor t = { 0 };
    int rc;
    if ((rc = dcv_weights_confine(dir, path, real, err))) return rc;
    if (fp) dcv_weights_fingerprint_file(fp, real);
    if ((rc = dcv_npy_load(real, max_elems, &npy, sub)))
        return dcv_errf(err, rc, "%s (%.100s): %s", what, path, sub);
    if (npy.ndim > DCV_MAX_DIMS) {
        dcv_npy_release(&npy);
        return dcv_errf(err, DCV_ESHAPE, "%s (%.100s) has %d dims but the config needs %d",
                        what, path, npy.ndim, n);
    }
    t.ndim = npy.ndim;
    memcpy(t.shape, npy.shape, sizeof(int64_t) * (size_t)npy.ndim);
    if ((rc = check_shape(&t, want, n, what, err))) {
        free(npy.data);
        return rc;
    }
    *data = npy.data;
    return 0;
}

int dcv_weights_load(const struct dcv_json *src, const char *dir, const int64_t *want, int n,
                     size_t max_elems, const char *what, float **data, const char **kind,
                     uint64_t *fp, char *err)
{
    const char *path = dcv_json_string(src);
    struct tensor t = { 0 };
    int rc;
    *data = NULL;
    if (path) {
        *kind = path;
        return load_npy(path, dir, want, n, max_elems, what, data, fp, err);
    }
    if (dcv_json_type(src) != DCV_JSON_ARRAY)
        return dcv_errf(err, DCV_EINVAL, "%s must be a .npy path or a nested array, got %s",
                        what, dcv_json_type_name(src));
    *kind = "inline";
    if ((rc = json_shape(src, &t, what, err)) || (rc = check_shape(&t, want, n, what, err)))
        return rc;
    int64_t count = dcv_shape_product(want, n);
    if (count < 0 || (size_t)count > max_elems)
        return dcv_errf(err, DCV_ETOOBIG, "%s has %lld values, above the limit of %zu", what,
                        (long long)count, max_elems);
    float *p = *data = malloc(sizeof(float) * (size_t)count + 1);
    if (!p) return dcv_errf(err, DCV_ENOMEM, "out of memory for %s", what);
    if ((rc = json_fill(src, &t, 0, &p, what, err))) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

int dcv_weights_check_finite(const float *v, size_t n, const char *what, const char *kind,
                             char *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return dcv_errf(err, DCV_EINVAL, "%s (%s) value %zu is %g: weights must be finite",
                            what, kind, i, (double)v[i]);
    return 0;
}
