/* tensorutil.h — helpers shared by the request and answer suites
 * (test_jsonbody, test_tensor, test_kserve, test_tfserving, test_answer):
 * random floats, a text builder, decoding from a writable copy, and
 * bit-exact comparisons. */
#ifndef DCV_TENSORUTIL_H
#define DCV_TENSORUTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/floatcodec.h"
#include "deconvd/jsonbody.h"
#include "deconvd/kserve.h"
#include "deconvd/tensor.h"
#include "deconvd/tfserving.h"

static uint64_t tu_rng = 0x9e3779b97f4a7c15u;

static inline uint32_t rnd32(void)
{
    tu_rng ^= tu_rng << 13;
    tu_rng ^= tu_rng >> 7;
    tu_rng ^= tu_rng << 17;
    return (uint32_t)(tu_rng >> 16);
}

/* Any finite float32, subnormals and -0 included. */
static inline float rnd_float(void)
{
    for (;;) {
        uint32_t b = rnd32();
        float f;
        memcpy(&f, &b, sizeof f);
        if (isfinite(f))
            return f;
    }
}

static inline uint32_t bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* Text builder over open_memstream. */
struct sb {
    FILE *f;
    char *p;
    size_t len;
};

static inline void sb_open(struct sb *b)
{
    b->p = NULL;
    b->len = 0;
    b->f = open_memstream(&b->p, &b->len);
    cr_assert_not_null(b->f);
}

static inline char *sb_close(struct sb *b, size_t *len)
{
    fclose(b->f);
    if (len)
        *len = b->len;
    return b->p;
}

static inline void sb_floats(struct sb *b, const float *v, size_t n)
{
    char num[DCV_FLOAT_MAXLEN + 1];
    fputc('[', b->f);
    for (size_t i = 0; i < n; i++) {
        dcv_float_format(v[i], num);
        fprintf(b->f, i ? ",%s" : "%s", num);
    }
    fputc(']', b->f);
}

/* Nested by shape, row-major. */
static inline void sb_nested(struct sb *b, const float *v, const int64_t *shape, int ndim)
{
    if (ndim == 1) {
        sb_floats(b, v, (size_t)shape[0]);
        return;
    }
    size_t inner = 1;
    for (int d = 1; d < ndim; d++)
        inner *= (size_t)shape[d];
    fputc('[', b->f);
    for (int64_t i = 0; i < shape[0]; i++) {
        if (i)
            fputc(',', b->f);
        sb_nested(b, v + (size_t)i * inner, shape + 1, ndim - 1);
    }
    fputc(']', b->f);
}

static inline float *rnd_floats(size_t n)
{
    float *v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = rnd_float();
    return v;
}

/* A malloc'd copy of text, for the decoders that write into their input. */
static inline char *writable(const char *text, size_t *len)
{
    *len = strlen(text);
    char *body = malloc(*len + 1);
    cr_assert_not_null(body);
    memcpy(body, text, *len + 1);
    return body;
}

/* Decodes a KServe body; header_len as the Inference-Header-Content-Length
 * header gives it (0: all JSON). */
static inline int kserve_hl(const char *text, size_t header_len, struct dcv_infer_request *req,
                            char *err)
{
    size_t len;
    char *body = writable(text, &len);
    int rc = dcv_kserve_decode(body, len, header_len, NULL, req, err);
    free(body);
    return rc;
}

static inline int kserve(const char *text, struct dcv_infer_request *req, char *err)
{
    return kserve_hl(text, 0, req, err);
}

static inline int tfs(const char *text, struct dcv_infer_request *req, bool *rows, char *err)
{
    size_t len;
    char *body = writable(text, &len);
    int rc = dcv_tfserving_decode(body, len, NULL, req, rows, err);
    free(body);
    return rc;
}

/* {"inputs":[{"name":"x","shape":SHAPE,"datatype":DT,"data":DATA}]} */
static inline char *kbody(const char *dt, const char *shape, const char *data)
{
    struct sb b;
    sb_open(&b);
    fprintf(b.f, "{\"inputs\":[{\"name\":\"x\",\"shape\":%s,\"datatype\":\"%s\",\"data\":%s}]}",
            shape, dt, data);
    return sb_close(&b, NULL);
}

static inline int kserve_dt(const char *dt, const char *shape, const char *data,
                     struct dcv_infer_request *req, char *err)
{
    char *body = kbody(dt, shape, data);
    int rc = kserve(body, req, err);
    free(body);
    return rc;
}

static inline void assert_floats(const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(bits(got[i]), bits(want[i]), "value %zu: got %.9g (0x%08x), want %.9g (0x%08x)",
                     i, got[i], bits(got[i]), want[i], bits(want[i]));
}

static inline void assert_shape(const struct dcv_tensor *t, int ndim, const int64_t *dims)
{
    cr_assert_eq(t->ndim, ndim, "ndim %d, want %d", t->ndim, ndim);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        cr_assert_eq(t->shape[i], dims[i], "dim %d: %lld vs %lld", i, (long long)t->shape[i],
                     (long long)dims[i]);
        count *= (size_t)dims[i];
    }
    cr_assert_eq(t->count, count);
}

/* A request body and the error it must give: code, and a part of the
 * message. */
struct err_case {
    const char *body, *sub;
    int code;
};

/* dcv_jsonbody_parse, NULL on failure (the message in err). */
static inline struct dcv_jsonbody *parse_body(char *text, size_t len,
                                              const struct dcv_decode_limits *lim, char *err)
{
    struct dcv_jsonbody *b;
    return dcv_jsonbody_parse(text, len, lim, &b, err) ? NULL : b;
}

#endif
