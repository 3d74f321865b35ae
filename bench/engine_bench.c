/* engine_bench.c — deconvd's engine (dcv_model_infer) vs the bare primitive.
 *
 * Loads each reference model from the bench models directory with the
 * daemon's own loader, checks its geometry and padding against the bench
 * workload table, then, in one process, interleaves executions of
 *   raw    the bare deconvolution (rawprim.h, RAW_DECONV): the ceiling
 *   chain  raw deconv + in-place binary_add(bias, relu post-op): oneDNN's
 *          own bias+activation, which the engine uses for activations its
 *          own pass does not cover
 *   engine dcv_model_infer on the same input
 * with 1 and 2 OpenMP threads and reports medians and ratios. For dcgan_up
 * also the concurrent throughput (one 1-thread caller per core) of raw and
 * engine, and the bfloat16 model: latency, throughput and the error of its
 * output against the float32 model on the same input.
 *
 *   engine_bench -m MODELS_DIR [-t SECONDS] [-w WORKLOAD] [-o OUT.json]
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deconvd/conv.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/layer.h"
#include "deconvd/model.h"

#include "benchutil.h"
#include "rawprim.h"

#define MAX_SAMPLES 100000

static double g_secs = 2.0;

static struct dcv_model *load(const char *dir, const char *name)
{
    struct dcv_model_opts o = { 0 };
    struct dcv_model *m = NULL;
    char err[DCV_ERRLEN];
    if (dcv_model_load(dir, name, &o, &m, err)) {
        fprintf(stderr, "engine_bench: %s: %s\n", name, err);
        return NULL;
    }
    return m;
}

/* The model must be the workload: same geometry, TF SAME pads. */
static int check_geometry(const struct dcv_model *m, const struct wl *w, char *why, size_t n)
{
    const struct dcv_conv *c = &m->layer.conv;
    int64_t out[3], pl[3], pr[3], epl[3], epr[3];
    if (c->rank != w->rank || c->in_channels != w->ic || c->filters != w->oc ||
        c->channels_first || c->padding != DCV_PADDING_SAME ||
        (c->act.kind == DCV_ACT_RELU) != w->relu) {
        snprintf(why, n, "rank/channels/padding/activation differ from the workload table");
        return -1;
    }
    wl_geometry(w, out, pl, pr);
    dcv_conv_pads(c, w->in, out, epl, epr);
    for (int i = 0; i < w->rank; i++) {
        if (c->kernel[i] != w->k[i] || c->strides[i] != w->s[i] || c->dilation[i] != 1) {
            snprintf(why, n, "kernel/strides differ in dim %d", i);
            return -1;
        }
        if (epl[i] != pl[i] || epr[i] != pr[i]) {
            snprintf(why, n, "dim %d: engine pads (%lld,%lld), TF SAME (%lld,%lld)", i,
                     (long long)epl[i], (long long)epr[i], (long long)pl[i], (long long)pr[i]);
            return -1;
        }
    }
    snprintf(why, n, "ok");
    return 0;
}

static void in_shape(const struct wl *w, int64_t batch, int64_t *shape)
{
    shape[0] = batch;
    for (int i = 0; i < w->rank; i++) shape[1 + i] = w->in[i];
    shape[1 + w->rank] = w->ic;
}

struct series {
    double *t;
    size_t n;
};

static void add(struct series *s, double v)
{
    if (s->n < MAX_SAMPLES) s->t[s->n++] = v;
}

static void print_series(FILE *f, const char *key, const struct series *s, bool comma)
{
    fprintf(f, "\"%s\": {\"median_s\": %.9g, \"p10_s\": %.9g, \"p90_s\": %.9g, \"samples\": %zu}%s",
            key, bu_median(s->t, s->n), bu_quantile(s->t, s->n, 0.1),
            bu_quantile(s->t, s->n, 0.9), s->n, comma ? ", " : "");
}

/* Interleaved raw / chain / engine at nt threads. */
static int overhead(FILE *f, const struct wl *w, const struct dcv_model *m, int nt,
                    double *ratio_out)
{
    struct rawprim raw, chain;
    char err[256], derr[DCV_ERRLEN];
    int64_t shape[DCV_MAX_DIMS];
    size_t nout = (size_t)wl_out_elems(w);
    if (rawprim_create(&raw, w, 1, RAW_DECONV, false, false, nt, err, sizeof err) ||
        rawprim_create(&chain, w, 1, RAW_CHAIN, false, false, nt, err, sizeof err)) {
        fprintf(stderr, "engine_bench: %s\n", err);
        return -1;
    }
    float *out = malloc(nout * sizeof *out);
    struct series s[3];
    for (int i = 0; i < 3; i++) s[i] = (struct series){ malloc(MAX_SAMPLES * sizeof(double)), 0 };
    if (!out || !s[0].t || !s[1].t || !s[2].t) return -1;
    in_shape(w, 1, shape);
    const float *src = rawprim_src(&raw);
    dcv_engine_set_threads(nt);
    double t0 = bu_now();
    while (bu_now() - t0 < g_secs * 0.15) {           /* warm-up, builds the plan */
        rawprim_run(&raw);
        rawprim_run(&chain);
        dcv_engine_set_threads(nt);
        if (dcv_model_infer(m, src, shape, w->rank + 2, out, nout, NULL, derr)) {
            fprintf(stderr, "engine_bench: %s: %s\n", w->name, derr);
            return -1;
        }
    }
    t0 = bu_now();
    for (size_t it = 0; it < MAX_SAMPLES && (it < 15 || bu_now() - t0 < g_secs); it++) {
        /* rotate the order so no variant always follows another */
        for (int k = 0; k < 3; k++) {
            int which = (int)((it + (size_t)k) % 3);
            double a = bu_now();
            if (which == 0) rawprim_run(&raw);
            else if (which == 1) rawprim_run(&chain);
            else {
                dcv_engine_set_threads(nt);
                dcv_model_infer(m, src, shape, w->rank + 2, out, nout, NULL, derr);
            }
            add(&s[which], bu_now() - a);
        }
    }
    double mr = bu_median(s[0].t, s[0].n), mc = bu_median(s[1].t, s[1].n),
           me = bu_median(s[2].t, s[2].n);
    *ratio_out = me / mr;
    fprintf(f, "\"t%d\": {", nt);
    print_series(f, "raw", &s[0], true);
    print_series(f, "chain", &s[1], true);
    print_series(f, "engine", &s[2], true);
    fprintf(f, "\"engine_over_raw\": %.6g, \"chain_over_raw\": %.6g, \"engine_over_chain\": %.6g, "
            "\"raw_impl\": \"%s\", \"chain_post_impl\": \"%s\"}",
            me / mr, mc / mr, me / mc, raw.impl, chain.post_impl);
    fprintf(stderr, "engine %-9s %dt raw %8.3f ms  chain %8.3f ms  engine %8.3f ms  "
            "engine/raw %.3f  chain/raw %.3f\n", w->name, nt, mr * 1e3, mc * 1e3, me * 1e3,
            me / mr, mc / mr);
    for (int i = 0; i < 3; i++) free(s[i].t);
    free(out);
    rawprim_free(&raw);
    rawprim_free(&chain);
    return 0;
}

/* ---- concurrent throughput: one 1-thread caller per core ---- */

struct conc {
    const struct wl *w;
    const struct dcv_model *m;   /* NULL: raw primitive */
    bool bf16;
};

struct caller {
    const struct conc *c;
    struct rawprim r;
    int64_t shape[DCV_MAX_DIMS];
    size_t nout;
    float *in, *out;
    char err[DCV_ERRLEN];
};

static void *conc_make(void *ctx)
{
    const struct conc *c = ctx;
    struct caller *k = calloc(1, sizeof *k);
    size_t nin = (size_t)wl_in_elems(c->w);
    if (!k) return NULL;
    k->c = c;
    k->nout = (size_t)wl_out_elems(c->w);
    k->in = malloc(nin * sizeof *k->in);
    k->out = malloc(k->nout * sizeof *k->out);
    if (!k->in || !k->out ||
        (!c->m && rawprim_create(&k->r, c->w, 1, RAW_DECONV, c->bf16, c->bf16, 1, k->err,
                                 sizeof k->err))) {
        free(k->in);
        free(k->out);
        free(k);
        return NULL;
    }
    bu_fill(k->in, nin, 5);
    in_shape(c->w, 1, k->shape);
    dcv_engine_set_threads(1);
    return k;
}

static int conc_run(void *st)
{
    struct caller *k = st;
    if (!k->c->m) return rawprim_run(&k->r);
    return dcv_model_infer(k->c->m, k->in, k->shape, k->c->w->rank + 2, k->out, k->nout, NULL,
                           k->err);
}

static void conc_drop(void *st)
{
    struct caller *k = st;
    if (!k->c->m) rawprim_free(&k->r);
    free(k->in);
    free(k->out);
    free(k);
}

static double concurrent(const struct wl *w, const struct dcv_model *m, bool bf16, int threads)
{
    struct conc c = { w, m, bf16 };
    struct bu_callers callers = { conc_make, conc_run, conc_drop, &c };
    return bu_concurrent(&callers, threads, g_secs);
}

/* ---- bf16 vs f32 on dcgan_up ---- */

static int bf16_section(FILE *f, const struct wl *w, const struct dcv_model *m32,
                        const struct dcv_model *m16, int cores)
{
    char err[DCV_ERRLEN];
    int64_t shape[DCV_MAX_DIMS];
    size_t nin = (size_t)wl_in_elems(w), nout = (size_t)wl_out_elems(w);
    float *in = malloc(nin * sizeof *in), *o32 = malloc(nout * sizeof *o32),
          *o16 = malloc(nout * sizeof *o16);
    if (!in || !o32 || !o16) return -1;
    bu_fill(in, nin, 99);
    in_shape(w, 1, shape);
    dcv_engine_set_threads(1);
    if (dcv_model_infer(m32, in, shape, w->rank + 2, o32, nout, NULL, err) ||
        dcv_model_infer(m16, in, shape, w->rank + 2, o16, nout, NULL, err)) {
        fprintf(stderr, "engine_bench: bf16: %s\n", err);
        return -1;
    }
    double maxref = 0, maxabs = 0, maxrel_sig = 0, l2d = 0, l2r = 0;
    for (size_t i = 0; i < nout; i++) maxref = fmax(maxref, fabs(o32[i]));
    for (size_t i = 0; i < nout; i++) {
        double d = fabs((double)o16[i] - o32[i]);
        maxabs = fmax(maxabs, d);
        l2d += d * d;
        l2r += (double)o32[i] * o32[i];
        if (fabs(o32[i]) >= 0.01 * maxref) maxrel_sig = fmax(maxrel_sig, d / fabs(o32[i]));
    }
    /* latency, interleaved, at 1 and 2 threads */
    double med[2][3];
    int maxt = cores < 2 ? cores : 2;
    for (int nt = 1; nt <= maxt; nt++) {
        struct series s[2];
        for (int i = 0; i < 2; i++) s[i] = (struct series){ malloc(MAX_SAMPLES * sizeof(double)), 0 };
        dcv_engine_set_threads(nt);
        for (int i = 0; i < 5; i++) {
            dcv_model_infer(m32, in, shape, w->rank + 2, o32, nout, NULL, err);
            dcv_model_infer(m16, in, shape, w->rank + 2, o16, nout, NULL, err);
        }
        double t0 = bu_now();
        for (size_t it = 0; it < MAX_SAMPLES && (it < 15 || bu_now() - t0 < g_secs); it++)
            for (int k = 0; k < 2; k++) {
                int which = (int)((it + (size_t)k) % 2);
                double a = bu_now();
                dcv_model_infer(which ? m16 : m32, in, shape, w->rank + 2, which ? o16 : o32,
                                nout, NULL, err);
                add(&s[which], bu_now() - a);
            }
        med[0][nt] = bu_median(s[0].t, s[0].n);
        med[1][nt] = bu_median(s[1].t, s[1].n);
        free(s[0].t);
        free(s[1].t);
    }
    double c32 = concurrent(w, m32, false, cores), c16 = concurrent(w, m16, true, cores);
    double best32 = c32, best16 = c16;
    for (int nt = 1; nt <= maxt; nt++) {
        best32 = fmax(best32, 1.0 / med[0][nt]);
        best16 = fmax(best16, 1.0 / med[1][nt]);
    }
    fprintf(f, "  \"bf16\": {\"f32_t1_median_s\": %.9g, \"bf16_t1_median_s\": %.9g, "
            "\"f32_t%d_median_s\": %.9g, \"bf16_t%d_median_s\": %.9g, "
            "\"f32_concurrent_images_s\": %.6g, \"bf16_concurrent_images_s\": %.6g, "
            "\"f32_best_images_s\": %.6g, \"bf16_best_images_s\": %.6g, "
            "\"throughput_ratio\": %.6g, \"latency_ratio_t1\": %.6g, "
            "\"max_abs_err\": %.6g, \"max_abs_ref\": %.6g, \"max_err_over_max_ref\": %.6g, "
            "\"max_rel_err_significant\": %.6g, \"rel_l2_err\": %.6g},\n",
            med[0][1], med[1][1], maxt, med[0][maxt], maxt, med[1][maxt], c32, c16, best32,
            best16, best16 / best32, med[0][1] / med[1][1], maxabs, maxref, maxabs / maxref,
            maxrel_sig, sqrt(l2d / l2r));
    fprintf(stderr, "engine bf16: f32 best %.1f img/s, bf16 best %.1f img/s (x%.2f); "
            "max|err|/max|ref| %.3g, rel L2 %.3g\n", best32, best16, best16 / best32,
            maxabs / maxref, sqrt(l2d / l2r));
    free(in);
    free(o32);
    free(o16);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *only = NULL, *outpath = NULL;
    char err[DCV_ERRLEN];
    int opt;
    bool usage = false;
    while (!usage && (opt = getopt(argc, argv, "m:t:w:o:")) != -1) {
        if (opt == 'm') dir = optarg;
        else if (opt == 't') g_secs = atof(optarg);
        else if (opt == 'w') only = optarg;
        else if (opt == 'o') outpath = optarg;
        else usage = true;   /* (optind past argc made getopt loop forever) */
    }
    if (!dir || usage) {
        fprintf(stderr, "usage: engine_bench -m MODELS_DIR [-t SECONDS] [-w WORKLOAD] "
                "[-o OUT.json]\n");
        return 2;
    }
    if (dcv_engine_init(err)) {
        fprintf(stderr, "engine_bench: %s\n", err);
        return 1;
    }
    FILE *f = outpath ? fopen(outpath, "w") : stdout;
    if (!f) {
        perror(outpath);
        return 1;
    }
    int cores = omp_get_num_procs(), maxt = cores < 2 ? cores : 2;
    fprintf(f, "{\n  \"cores\": %d,\n  \"seconds_per_point\": %g,\n", cores, g_secs);
    struct dcv_model *dcgan = NULL;
    fprintf(f, "  \"workloads\": {\n");
    int first = 1;
    for (int i = 0; i < bench_nworkloads; i++) {
        const struct wl *w = &bench_workloads[i];
        char why[160];
        if (only && strcmp(only, w->name)) continue;
        struct dcv_model *m = load(dir, w->name);
        if (!m) return 1;
        int geo = check_geometry(m, w, why, sizeof why);
        fprintf(f, "%s    \"%s\": {\"geometry_check\": \"%s\", ", first ? "" : ",\n", w->name, why);
        first = 0;
        if (geo) {
            fprintf(stderr, "engine_bench: %s: geometry mismatch: %s\n", w->name, why);
            fprintf(f, "\"error\": \"geometry\"}");
            dcv_model_free(m);
            continue;
        }
        double ratio[3] = { 0, 0, 0 };
        for (int nt = 1; nt <= maxt; nt++) {
            if (overhead(f, w, m, nt, &ratio[nt])) return 1;
            fprintf(f, ", ");
        }
        if (!strcmp(w->name, "dcgan_up")) {
            double cr = concurrent(w, NULL, false, cores), ce = concurrent(w, m, false, cores);
            fprintf(f, "\"concurrent\": {\"threads\": %d, \"raw_images_s\": %.6g, "
                    "\"engine_images_s\": %.6g, \"engine_over_raw\": %.6g}, ", cores, cr, ce,
                    ce / cr);
            fprintf(stderr, "engine dcgan_up %dx1 concurrent: raw %.1f img/s, engine %.1f img/s\n",
                    cores, cr, ce);
        }
        struct dcv_engine_stats st;
        dcv_engine_kernel_stats(m->kernel, &st);
        fprintf(f, "\"engine_impl\": \"%s\", \"cache_entries\": %zu}", st.impl, st.cache_entries);
        if (!strcmp(w->name, "dcgan_up")) dcgan = m;
        else dcv_model_free(m);
    }
    fprintf(f, "\n  },\n");
    if (dcgan) {
        struct dcv_model *m16 = load(dir, "dcgan_up_bf16");
        if (!m16 || bf16_section(f, wl_find("dcgan_up"), dcgan, m16, cores)) return 1;
        dcv_model_free(m16);
        dcv_model_free(dcgan);
    }
    fprintf(f, "  \"done\": true\n}\n");
    if (outpath) fclose(f);
    return 0;
}
