/* rawchain.c — deconvd's chain models vs the sum of their raw oneDNN primitives.
 *
 * For each chain workload (dcgan_gen, vae_decoder: bench/models/, written by
 * chain_models.py) the same steps as bare oneDNN primitives, built the way
 * the engine builds them after folding: BatchNormalization folded into the
 * preceding weights (a bias appears), Dense as a 1x1 transposed convolution
 * (and, for comparison, as an inner_product), every transposed convolution
 * a bare deconvolution (channels-last, format_tag_any weights packed once,
 * TF SAME pads, user scratchpad) followed by its epilogue as oneDNN runs it:
 * an in-place binary_add(bias) carrying the activation as an eltwise
 * post-op, or an in-place eltwise when there is no bias. Reshape costs
 * nothing (a Dense output (N, 7*7*C) is NHWC (N, 7, 7, C) in memory).
 * Each primitive reads the previous step's output, as in the chain.
 *
 * Then, interleaved in a rotating order (medians): every primitive on its
 * own, the primitives back to back, and dcv_model_infer on the loaded chain
 * model, at 1 and 2 threads. Reported: engine / sum of the primitives'
 * medians (the goal: <= 1.10), engine / back-to-back, and per step
 * the medians, so a gap can be placed. Per step also the fused form (bias
 * and activation as post-ops of the deconvolution) for information.
 *
 *   rawchain -m MODELS_DIR [-t SECONDS] [-w WORKLOAD] [-n THREADS] [-o OUT.json]
 *   rawchain -r [-t SECONDS] [-w WORKLOAD]    (raw primitives only, no model)
 * -n: only that thread count (default 1 and 2).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <oneapi/dnnl/dnnl.h>

#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/model.h"

#include "benchutil.h"

#define MAX_SAMPLES 50000
#define MAX_STEPS 4
#define MAX_PRIMS (3 * MAX_STEPS + 1)

enum act { A_LINEAR, A_RELU, A_LEAKY, A_TANH, A_SIGMOID };

/* One step after folding: a Dense (k = s = in = 1) or a 2-D "same"
 * transposed convolution on in x in, with its bias and activation. */
struct cstep {
    const char *layers;       /* the Keras layers it stands for */
    bool dense;
    int64_t ic, oc, k, s, in;
    bool bias;
    enum act act;
};

struct cwl {
    const char *name;
    int64_t latent, out_hw, out_c;
    int n;
    struct cstep st[MAX_STEPS];
};

static const struct cwl workloads[] = {
    { "dcgan_gen", 100, 28, 1, 4, {
        { "dense+batch_normalization+leaky_re_lu (+reshape)", true, 100, 12544, 1, 1, 1, true, A_LEAKY },
        { "conv2d_transpose+batch_normalization_1+leaky_re_lu_1", false, 256, 128, 5, 1, 7, true, A_LEAKY },
        { "conv2d_transpose_1+batch_normalization_2+leaky_re_lu_2", false, 128, 64, 5, 2, 7, true, A_LEAKY },
        { "conv2d_transpose_2 (tanh)", false, 64, 1, 5, 2, 14, false, A_TANH } } },
    { "vae_decoder", 2, 28, 1, 4, {
        { "dense (relu, +reshape)", true, 2, 3136, 1, 1, 1, true, A_RELU },
        { "conv2d_transpose (relu)", false, 64, 64, 3, 2, 7, true, A_RELU },
        { "conv2d_transpose_1 (relu)", false, 64, 32, 3, 2, 14, true, A_RELU },
        { "conv2d_transpose_2 (sigmoid)", false, 32, 1, 3, 1, 28, true, A_SIGMOID } } },
};
#define NWL ((int)(sizeof workloads / sizeof *workloads))

/* One primitive with its arguments bound. */
struct prim {
    char what[48], impl[64];
    dnnl_primitive_t p;
    dnnl_exec_arg_t args[6];
    int nargs;
};

struct rc {
    const struct cwl *w;
    int64_t batch;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_memory_t mems[64];
    int nmems;
    struct prim prims[MAX_PRIMS];   /* the chain, in order */
    int n;
    struct prim alt[2 * MAX_STEPS]; /* inner_product for Dense; fused deconvs */
    int nalt;
    dnnl_memory_t src;              /* the chain's input */
};

static char g_err[256];

#define TRY(call, what)                                                             \
    do {                                                                            \
        dnnl_status_t st_ = (call);                                                 \
        if (st_ != dnnl_success) {                                                  \
            snprintf(g_err, sizeof g_err, "%s: %s failed (status %d)", ctx, what, (int)st_); \
            return -1;                                                              \
        }                                                                           \
    } while (0)

static dnnl_memory_t mem(struct rc *r, const dnnl_memory_desc_t *md, uint64_t seed, float scale)
{
    dnnl_memory_t m = NULL;
    if (r->nmems == 64 || dnnl_memory_create(&m, md, r->eng, DNNL_MEMORY_ALLOCATE)) return NULL;
    r->mems[r->nmems++] = m;
    if (seed) {
        float *p = NULL;
        size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
        dnnl_memory_get_data_handle(m, (void **)&p);
        bu_fill(p, n, seed);
        for (size_t i = 0; i < n; i++) p[i] *= scale;
    }
    return m;
}

/* Another memory object on m's buffer, described by md. */
static dnnl_memory_t view(struct rc *r, dnnl_memory_t m, const dnnl_memory_desc_t *md)
{
    void *h = NULL;
    dnnl_memory_t v = NULL;
    dnnl_memory_get_data_handle(m, &h);
    if (r->nmems == 64 || dnnl_memory_create(&v, md, r->eng, h)) return NULL;
    r->mems[r->nmems++] = v;
    return v;
}

static void md4(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t c, int64_t d,
                dnnl_format_tag_t tag)
{
    dnnl_dims_t dims = { a, b, c, d };
    dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag);
}

/* Creates the primitive of pd into *pr with args; adds its scratchpad. */
static int finish(struct rc *r, dnnl_primitive_desc_t pd, struct prim *pr, const char *what,
                  const dnnl_exec_arg_t *args, int nargs)
{
    const char *ctx = r->w->name, *impl = NULL;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    snprintf(pr->what, sizeof pr->what, "%s", what);
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(pr->impl, sizeof pr->impl, "%s", impl);
    TRY(dnnl_primitive_create(&pr->p, pd), what);
    memcpy(pr->args, args, (size_t)nargs * sizeof *args);
    pr->nargs = nargs;
    if (smd && dnnl_memory_desc_get_size(smd)) {
        dnnl_memory_t s = mem(r, smd, 0, 0);
        if (!s) return -1;
        pr->args[pr->nargs++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, s };
    }
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

static dnnl_primitive_attr_t attr_with(enum act a, bool binary_bias, const dnnl_memory_desc_t *bb)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (a == A_LINEAR && !binary_bias) return attr;
    dnnl_post_ops_create(&po);
    if (binary_bias) dnnl_post_ops_append_binary(po, dnnl_binary_add, bb);
    if (a == A_RELU || a == A_LEAKY)
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, a == A_LEAKY ? 0.3f : 0.0f, 0);
    else if (a == A_TANH)
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_tanh, 0, 0);
    else if (a == A_SIGMOID)
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_logistic, 0, 0);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    return attr;
}

static dnnl_alg_kind_t act_alg(enum act a, float *alpha)
{
    *alpha = a == A_LEAKY ? 0.3f : 0.0f;
    return a == A_TANH ? dnnl_eltwise_tanh : a == A_SIGMOID ? dnnl_eltwise_logistic : dnnl_eltwise_relu;
}

/* Packed weights for pd from deterministic plain (O, I, k, k) values. */
static dnnl_memory_t packed(struct rc *r, dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *plain,
                            uint64_t seed, float scale)
{
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t src = mem(r, plain, seed, scale), dst = mem(r, wmd, 0, 0);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t re = NULL;
    if (!src || !dst || dnnl_reorder_primitive_desc_create(&rpd, plain, r->eng, wmd, r->eng, NULL) ||
        dnnl_primitive_create(&re, rpd))
        return NULL;
    dnnl_exec_arg_t a[] = { { DNNL_ARG_FROM, src }, { DNNL_ARG_TO, dst } };
    dnnl_primitive_execute(re, r->stream, 2, a);
    dnnl_stream_wait(r->stream);
    dnnl_primitive_destroy(re);
    dnnl_primitive_desc_destroy(rpd);
    return dst;
}

/* The deconvolution of step st from src to dst (Dense: 1x1): bare (the
 * chain's), or with bias + activation as post-ops (fused, into r->alt). */
static int deconv(struct rc *r, const struct cstep *st, int idx, dnnl_memory_t src, dnnl_memory_t dst,
                  dnnl_memory_t bias, bool fused)
{
    const char *ctx = r->w->name;
    int64_t o = st->in * st->s, full = (st->in - 1) * st->s + st->k, tot = full > o ? full - o : 0;
    dnnl_dims_t strides = { st->s, st->s }, dil = { 0, 0 }, pl = { tot / 2, tot / 2 },
                pr = { tot - tot / 2, tot - tot / 2 };
    dnnl_memory_desc_t smd, dmd, wany, wplain, bmd;
    dnnl_deconvolution_desc_t dd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_dims_t bd = { st->oc };
    md4(&smd, r->batch, st->ic, st->in, st->in, dnnl_nhwc);
    md4(&dmd, r->batch, st->oc, o, o, dnnl_nhwc);
    md4(&wany, st->oc, st->ic, st->k, st->k, dnnl_format_tag_any);
    md4(&wplain, st->oc, st->ic, st->k, st->k, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a);
    bool with_bias = fused && st->bias;
    dnnl_primitive_attr_t attr = attr_with(fused ? st->act : A_LINEAR, false, NULL);
    TRY(dnnl_dilated_deconvolution_forward_desc_init(&dd, dnnl_forward_inference,
            dnnl_deconvolution_direct, &smd, &wany, with_bias ? &bmd : NULL, &dmd, strides, dil,
            pl, pr), "deconvolution desc");
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &dd, attr, r->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    TRY(s, "deconvolution pd");
    float scale = (float)sqrt(3.0 / (double)(st->ic * st->k * st->k));
    dnnl_memory_t wei = packed(r, pd, &wplain, 100 + (uint64_t)idx, scale);
    if (!wei) return -1;
    dnnl_exec_arg_t a[] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_WEIGHTS, wei }, { DNNL_ARG_DST, dst },
                            { DNNL_ARG_BIAS, bias } };
    char what[48];
    snprintf(what, sizeof what, "%s%d %s", st->dense ? "dense" : "deconv", idx,
             fused ? "fused bias+act" : "bare");
    struct prim *p = fused ? &r->alt[r->nalt++] : &r->prims[r->n++];
    return finish(r, pd, p, what, a, with_bias ? 4 : 3);
}

/* Dense as inner_product with bias, activation post-op (into r->alt). */
static int inner_product(struct rc *r, const struct cstep *st, int idx, dnnl_memory_t src,
                         dnnl_memory_t bias)
{
    const char *ctx = r->w->name;
    dnnl_memory_desc_t smd, dmd, wany, wplain, bmd;
    dnnl_dims_t sd = { r->batch, st->ic }, dd2 = { r->batch, st->oc }, wd = { st->oc, st->ic },
                bd = { st->oc };
    dnnl_inner_product_desc_t ipd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_f32, dnnl_nc);
    dnnl_memory_desc_init_by_tag(&dmd, 2, dd2, dnnl_f32, dnnl_nc);
    dnnl_memory_desc_init_by_tag(&wany, 2, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wplain, 2, wd, dnnl_f32, dnnl_oi);
    dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a);
    dnnl_primitive_attr_t attr = attr_with(st->act, false, NULL);
    TRY(dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &smd, &wany,
                                             st->bias ? &bmd : NULL, &dmd), "inner product desc");
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &ipd, attr, r->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    TRY(s, "inner product pd");
    dnnl_memory_t wei = packed(r, pd, &wplain, 200 + (uint64_t)idx, 0.1f);
    dnnl_memory_t dst = mem(r, &dmd, 0, 0), in = view(r, src, &smd);  /* input as (N, IC) */
    if (!wei || !dst || !in) return -1;
    dnnl_exec_arg_t a[] = { { DNNL_ARG_SRC, in }, { DNNL_ARG_WEIGHTS, wei }, { DNNL_ARG_DST, dst },
                            { DNNL_ARG_BIAS, bias } };
    char what[48];
    snprintf(what, sizeof what, "dense%d inner_product+bias+act", idx);
    return finish(r, pd, &r->alt[r->nalt++], what, a, st->bias ? 4 : 3);
}

/* In place on dst: binary_add(bias) with the activation as post-op, or
 * the activation alone. */
static int epilogue(struct rc *r, const struct cstep *st, int idx, dnnl_memory_t dst,
                    dnnl_memory_t bias_bcast)
{
    const char *ctx = r->w->name;
    const dnnl_memory_desc_t *dmd = NULL, *bmd = NULL;
    dnnl_primitive_desc_t pd = NULL;
    char what[48];
    dnnl_memory_get_memory_desc(dst, &dmd);
    dnnl_memory_get_memory_desc(bias_bcast, &bmd);
    if (st->bias) {
        dnnl_binary_desc_t bd;
        dnnl_primitive_attr_t attr = attr_with(st->act, false, NULL);
        TRY(dnnl_binary_desc_init(&bd, dnnl_binary_add, dmd, bmd, dmd), "binary desc");
        dnnl_status_t s = dnnl_primitive_desc_create(&pd, &bd, attr, r->eng, NULL);
        dnnl_primitive_attr_destroy(attr);
        TRY(s, "binary pd");
        snprintf(what, sizeof what, "step%d binary_add(bias)+act", idx);
        dnnl_exec_arg_t a[] = { { DNNL_ARG_SRC_0, dst }, { DNNL_ARG_SRC_1, bias_bcast },
                                { DNNL_ARG_DST, dst } };
        return finish(r, pd, &r->prims[r->n++], what, a, 3);
    }
    if (st->act == A_LINEAR) return 0;
    dnnl_eltwise_desc_t ed;
    float alpha;
    dnnl_alg_kind_t alg = act_alg(st->act, &alpha);
    dnnl_primitive_attr_t attr = attr_with(A_LINEAR, false, NULL);
    TRY(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference, alg, dmd, alpha, 0), "eltwise desc");
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &ed, attr, r->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    TRY(s, "eltwise pd");
    snprintf(what, sizeof what, "step%d eltwise act", idx);
    dnnl_exec_arg_t a[] = { { DNNL_ARG_SRC, dst }, { DNNL_ARG_DST, dst } };
    return finish(r, pd, &r->prims[r->n++], what, a, 2);
}

/* Builds the chain for batch images and nthreads OpenMP threads (a JIT
 * primitive keeps the thread count it was created with). */
static int build(struct rc *r, const struct cwl *w, int64_t batch, int nthreads)
{
    const char *ctx = w->name;
    dnnl_memory_desc_t md;
    memset(r, 0, sizeof *r);
    omp_set_num_threads(nthreads);
    r->w = w;
    r->batch = batch;
    TRY(dnnl_engine_create(&r->eng, dnnl_cpu, 0), "engine");
    TRY(dnnl_stream_create(&r->stream, r->eng, dnnl_stream_default_flags), "stream");
    md4(&md, batch, w->latent, 1, 1, dnnl_nhwc);
    dnnl_memory_t src = r->src = mem(r, &md, 11, 1.0f);
    for (int i = 0; i < w->n; i++) {
        const struct cstep *st = &w->st[i];
        int64_t o = st->in * st->s;
        dnnl_dims_t bd = { st->oc };
        md4(&md, batch, st->oc, o, o, dnnl_nhwc);
        dnnl_memory_t dst = mem(r, &md, 0, 0), dst2 = mem(r, &md, 0, 0);
        dnnl_memory_desc_init_by_tag(&md, 1, bd, dnnl_f32, dnnl_a);
        dnnl_memory_t bias = mem(r, &md, 300 + (uint64_t)i, 0.05f);
        md4(&md, 1, st->oc, 1, 1, dnnl_nhwc);
        dnnl_memory_t bb = bias ? view(r, bias, &md) : NULL;
        /* the previous output as this step's input (Reshape: the same bytes) */
        md4(&md, batch, st->ic, st->in, st->in, dnnl_nhwc);
        src = src ? view(r, src, &md) : NULL;
        if (!src || !dst || !dst2 || !bias || !bb) {
            snprintf(g_err, sizeof g_err, "%s: out of memory objects", ctx);
            return -1;
        }
        if (deconv(r, st, i, src, dst, bias, false) || epilogue(r, st, i, dst, bb)) return -1;
        /* alternatives write elsewhere so that the chain's data stays put */
        if (deconv(r, st, i, src, dst2, bias, true)) return -1;
        if (st->dense && inner_product(r, st, i, src, bias)) return -1;
        src = dst;
    }
    return 0;
}

static void drop(struct rc *r)
{
    for (int i = 0; i < r->n; i++) dnnl_primitive_destroy(r->prims[i].p);
    for (int i = 0; i < r->nalt; i++) dnnl_primitive_destroy(r->alt[i].p);
    for (int i = 0; i < r->nmems; i++) dnnl_memory_destroy(r->mems[i]);
    if (r->stream) dnnl_stream_destroy(r->stream);
    if (r->eng) dnnl_engine_destroy(r->eng);
}

static int exec(struct rc *r, const struct prim *p)
{
    return dnnl_primitive_execute(p->p, r->stream, p->nargs, p->args) == dnnl_success &&
                   dnnl_stream_wait(r->stream) == dnnl_success ? 0 : -1;
}

static int exec_all(struct rc *r)
{
    for (int i = 0; i < r->n; i++)
        if (dnnl_primitive_execute(r->prims[i].p, r->stream, r->prims[i].nargs, r->prims[i].args))
            return -1;
    return dnnl_stream_wait(r->stream) == dnnl_success ? 0 : -1;
}

static double g_secs = 2.0;

struct series {
    double *t;
    size_t n;
};

static void print_series(FILE *f, const char *what, const char *impl, const struct series *s)
{
    fprintf(f, "{\"what\": \"%s\", \"impl\": \"%s\", \"median_s\": %.9g, \"p10_s\": %.9g, "
            "\"p90_s\": %.9g, \"samples\": %zu}", what, impl, bu_median(s->t, s->n),
            bu_quantile(s->t, s->n, 0.1), bu_quantile(s->t, s->n, 0.9), s->n);
}

/* What one timed sample runs: a chain primitive (0..n), an alternative
 * (ALT + i), the chain back to back, or the engine. */
enum { ALT = 100, ALL = 200, ENG = 201 };

struct run {
    struct rc *r;
    const struct dcv_model *m;
    int nt;
    int64_t shape[2];
    const float *in;
    float *out;
    size_t nout;
    char err[DCV_ERRLEN];
};

static int run_one(struct run *x, int job)
{
    if (job < ALT) return exec(x->r, &x->r->prims[job]);
    if (job < ALL) return exec(x->r, &x->r->alt[job - ALT]);
    if (job == ALL) return exec_all(x->r);
    dcv_engine_set_threads(x->nt);
    return dcv_model_infer(x->m, x->in, x->shape, 2, x->out, x->nout, NULL, x->err);
}

/* Runs jobs[0..n) in rotating order for `secs` (at least 15 rounds), each
 * sample into s[i]. Each round touches each job's weights once, so none
 * is favoured by the cache. */
static void rounds(struct run *x, const int *jobs, int n, struct series *s, double secs)
{
    for (int i = 0; i < n; i++) s[i] = (struct series){ malloc(MAX_SAMPLES * sizeof(double)), 0 };
    double t0 = bu_now();
    for (size_t it = 0; it < MAX_SAMPLES && (it < 15 || bu_now() - t0 < secs); it++)
        for (int k = 0; k < n; k++) {
            int i = (int)((it + (size_t)k) % (size_t)n);
            double a = bu_now();
            run_one(x, jobs[i]);
            if (s[i].t) s[i].t[s[i].n++] = bu_now() - a;
        }
}

static double med(const struct series *s) { return s->n ? bu_median(s->t, s->n) : 0.0; }
static double p10(const struct series *s) { return s->n ? bu_quantile(s->t, s->n, 0.1) : 0.0; }

/* Three interleaved rounds: (1) the chain's primitives, each on its own,
 * and the engine: the goal ratio; (2) the primitives back to back and the
 * engine; (3) the alternatives. */
static int measure(FILE *f, struct rc *r, const struct dcv_model *m, int nt)
{
    struct run x = { .r = r, .m = m, .nt = nt, .shape = { r->batch, r->w->latent } };
    struct series s1[MAX_PRIMS + 1] = { { NULL, 0 } }, s2[2] = { { NULL, 0 } },
                  s3[2 * MAX_STEPS] = { { NULL, 0 } };
    int jobs[MAX_PRIMS + 1], nj = 0, ne = m ? 1 : 0;
    x.nout = (size_t)(r->batch * r->w->out_hw * r->w->out_hw * r->w->out_c);
    x.out = malloc(x.nout * sizeof *x.out);
    dnnl_memory_get_data_handle(r->src, (void **)&x.in);
    if (!x.out) return -1;
    omp_set_num_threads(nt);
    double t0 = bu_now();
    while (bu_now() - t0 < g_secs * 0.15) {       /* warm-up; builds the engine's plan */
        exec_all(r);
        for (int i = 0; i < r->nalt; i++) exec(r, &r->alt[i]);
        if (m && run_one(&x, ENG)) {
            fprintf(stderr, "rawchain: %s: %s\n", r->w->name, x.err);
            return -1;
        }
    }
    for (nj = 0; nj < r->n; nj++) jobs[nj] = nj;
    jobs[nj] = ENG;
    rounds(&x, jobs, nj + ne, s1, g_secs);
    jobs[0] = ALL, jobs[1] = ENG;
    rounds(&x, jobs, 1 + ne, s2, g_secs * 0.5);
    for (int i = 0; i < r->nalt; i++) jobs[i] = ALT + i;
    rounds(&x, jobs, r->nalt, s3, g_secs * 0.5);

    double sum = 0, sum_p10 = 0, sum_ip = 0, eng = med(&s1[nj]), all = med(&s2[0]);
    for (int i = 0; i < r->n; i++) {
        sum += med(&s1[i]);
        sum_p10 += p10(&s1[i]);
    }
    /* the same sum with the Dense step (its two primitives, the first ones)
     * replaced by one inner_product carrying bias and activation */
    for (int i = 0; i < r->nalt; i++)
        if (strstr(r->alt[i].what, "inner_product"))
            sum_ip = sum - med(&s1[0]) -
                     (r->w->st[0].bias || r->w->st[0].act != A_LINEAR ? med(&s1[1]) : 0) +
                     med(&s3[i]);
    fprintf(f, "\"t%d\": {\"primitives\": [", nt);
    for (int i = 0; i < r->n; i++) {
        print_series(f, r->prims[i].what, r->prims[i].impl, &s1[i]);
        fprintf(f, ", ");
    }
    fprintf(f, "{}], \"alternatives\": [");
    for (int i = 0; i < r->nalt; i++) {
        print_series(f, r->alt[i].what, r->alt[i].impl, &s3[i]);
        fprintf(f, ", ");
    }
    fprintf(f, "{}], \"engine\": ");
    print_series(f, "dcv_model_infer (with the primitives)", "", &s1[nj]);
    fprintf(f, ", \"back_to_back\": ");
    print_series(f, "all primitives back to back", "", &s2[0]);
    fprintf(f, ", \"engine_b2b_round\": ");
    print_series(f, "dcv_model_infer (with back to back)", "", &s2[1]);
    double eng2 = med(&s2[1]);
    fprintf(f, ", \"sum_primitives_s\": %.9g, \"sum_primitives_dense_as_inner_product_s\": %.9g, "
            "\"engine_over_sum\": %.6g, \"engine_over_back_to_back\": %.6g, "
            "\"engine_over_sum_dense_ip\": %.6g, \"sum_primitives_p10_s\": %.9g, "
            "\"engine_p10_over_sum_p10\": %.6g}", sum, sum_ip, eng / sum, all > 0 ? eng2 / all : 0,
            eng / sum_ip, sum_p10, p10(&s1[nj]) / sum_p10);
    fprintf(stderr, "rawchain %-11s %dt sum of %d primitives %8.3f ms  engine %8.3f ms  engine/sum "
            "%.3f | back-to-back %8.3f ms  engine %8.3f ms  engine/b2b %.3f\n", r->w->name, nt, r->n,
            sum * 1e3, eng * 1e3, eng / sum, all * 1e3, eng2 * 1e3, all > 0 ? eng2 / all : 0);
    for (int i = 0; i <= nj; i++) free(s1[i].t);
    for (int i = 0; i < 2; i++) free(s2[i].t);
    for (int i = 0; i < r->nalt; i++) free(s3[i].t);
    free(x.out);
    return 0;
}

/* The output shape the summary gives layer `name`, or NULL. */
static const struct dcv_shape *row_shape(const struct dcv_model_row *rows, int n, const char *name,
                                         size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(rows[i].name) == len && !strncmp(rows[i].name, name, len)) return &rows[i].out;
    return NULL;
}

/* The loaded model must be the workload: a chain from (1, latent) whose
 * summary gives each step's first layer the step's output shape. */
static int check_model(const struct dcv_model *m, const struct cwl *w, char *why, size_t n)
{
    int64_t in[2] = { 1, w->latent };
    struct dcv_model_row rows[32];
    int nrows = 0;
    char err[DCV_ERRLEN];
    if (!m->chain) {
        snprintf(why, n, "not a chain model (class %s)", dcv_model_class(m));
        return -1;
    }
    if (dcv_model_summary(m, in, 2, rows, 32, &nrows, err) || nrows > 32) {
        snprintf(why, n, "input (1, %lld) refused: %.100s", (long long)w->latent, err);
        return -1;
    }
    for (int i = 0; i < w->n; i++) {
        const struct cstep *st = &w->st[i];
        size_t len = strcspn(st->layers, "+ ");
        const struct dcv_shape *o = row_shape(rows, nrows, st->layers, len);
        int64_t hw = st->in * st->s;
        bool ok = o && (st->dense ? o->ndim == 2 && o->d[1] == st->oc
                                  : o->ndim == 4 && o->d[1] == hw && o->d[2] == hw && o->d[3] == st->oc);
        if (!ok) {
            snprintf(why, n, "layer %.*s: %s", (int)len, st->layers,
                     o ? "output shape differs from the workload table" : "not in the model");
            return -1;
        }
    }
    snprintf(why, n, "ok");
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *only = NULL, *outpath = NULL;
    char err[DCV_ERRLEN];
    bool raw_only = false;
    int opt, only_nt = 0;
    bool usage = false;
    while (!usage && (opt = getopt(argc, argv, "m:t:w:o:rn:")) != -1) {
        if (opt == 'm') dir = optarg;
        else if (opt == 'r') raw_only = true, dir = dir ? dir : "";
        else if (opt == 't') g_secs = atof(optarg);
        else if (opt == 'w') only = optarg;
        else if (opt == 'o') outpath = optarg;
        else if (opt == 'n') only_nt = atoi(optarg);
        else usage = true;
    }
    if (!dir || usage) {
        fprintf(stderr, "usage: rawchain -m MODELS_DIR | -r [-t SECONDS] [-w WORKLOAD[,WORKLOAD]] "
                "[-n THREADS] [-o OUT.json]\n");
        return 2;
    }
    if (dcv_engine_init(err)) {
        fprintf(stderr, "rawchain: %s\n", err);
        return 1;
    }
    FILE *f = outpath ? fopen(outpath, "w") : stdout;
    if (!f) {
        perror(outpath);
        return 1;
    }
    int cores = omp_get_num_procs(), maxt = cores < 2 ? cores : 2, first = 1;
    fprintf(f, "{\n  \"cores\": %d,\n  \"seconds_per_point\": %g,\n  \"workloads\": {\n", cores, g_secs);
    for (int i = 0; i < NWL; i++) {
        const struct cwl *w = &workloads[i];
        struct dcv_model_opts o = { 0 };
        struct dcv_model *m = NULL;
        struct rc r;
        char why[200];
        if (only && !strstr(only, w->name)) continue;
        if (!raw_only && dcv_model_load(dir, w->name, &o, &m, err)) {
            fprintf(stderr, "rawchain: %s: %s\n", w->name, err);
            return 1;
        }
        int bad = raw_only ? (snprintf(why, sizeof why, "raw only"), 0)
                           : check_model(m, w, why, sizeof why);
        fprintf(f, "%s    \"%s\": {\"model_check\": \"%s\", \"steps\": [", first ? "" : ",\n",
                w->name, why);
        first = 0;
        for (int k = 0; k < w->n; k++)
            fprintf(f, "%s\"%s\"", k ? ", " : "", w->st[k].layers);
        fprintf(f, "]");
        if (bad) {
            fprintf(stderr, "rawchain: %s: %s\n", w->name, why);
            fprintf(f, ", \"error\": \"model\"}");
            dcv_model_free(m);
            continue;
        }
        for (int nt = only_nt ? only_nt : 1; nt <= (only_nt ? only_nt : maxt); nt++) {
            if (build(&r, w, 1, nt)) {
                fprintf(stderr, "rawchain: %s\n", g_err);
                return 1;
            }
            fprintf(f, ", ");
            if (measure(f, &r, m, nt)) return 1;
            drop(&r);
        }
        fprintf(f, "}");
        dcv_model_free(m);
    }
    fprintf(f, "\n  },\n  \"done\": true\n}\n");
    if (outpath) fclose(f);
    return 0;
}
