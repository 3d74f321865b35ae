/* raw_dnnl.c — the oneDNN ceiling for the reference workloads.
 *
 * For each workload: the bare deconvolution (rawprim.h, batch 1) with 1 and
 * 2 OpenMP threads (median latency, GFLOP/s), and the throughput of one
 * independent 1-thread primitive per core run concurrently (the best
 * images/s a server can reach without batching). For dcgan_up also the
 * binary_add chain (deconv + binary_add bias/relu), the fused form (deconv
 * with bias + relu post-op) and bf16 (src/weights bf16, dst f32; with and
 * without the f32->bf16 input reorder).
 *
 *   raw_dnnl [-t SECONDS] [-w WORKLOAD] [-o OUT.json]
 * Writes JSON (stdout or OUT.json) and a human summary on stderr.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"
#include "rawprim.h"

#define MAX_SAMPLES 200000

struct meas {
    double median, p10, p90, mean;
    size_t n;
    char impl[96], post_impl[96];
};

static double g_secs = 1.0;

struct spec {
    enum raw_mode mode;
    bool bf16, reorder;
    int nt;
};

/* Measures the specs together: one primitive each, executed round-robin
 * (rotating which goes first) so that machine noise hits all alike; each
 * gets about g_secs of samples. */
static int measure_group(const struct wl *w, const struct spec *sp, int n, struct meas *m)
{
    struct rawprim r[8];
    double *t[8];
    size_t cnt[8] = { 0 };
    char err[256];
    int rc = 0, made = 0;
    for (int i = 0; i < n; i++, made++) {
        memset(&m[i], 0, sizeof m[i]);
        t[i] = malloc(MAX_SAMPLES * sizeof(double));
        if (!t[i] || rawprim_create(&r[i], w, 1, sp[i].mode, sp[i].bf16, sp[i].reorder, sp[i].nt,
                                    err, sizeof err)) {
            fprintf(stderr, "raw_dnnl: %s\n", t[i] ? err : "out of memory");
            free(t[i]);
            rc = -1;
            break;
        }
        snprintf(m[i].impl, sizeof m[i].impl, "%s", r[i].impl);
        snprintf(m[i].post_impl, sizeof m[i].post_impl, "%s", r[i].post_impl);
    }
    if (!rc) {
        double t0 = bu_now();
        while (bu_now() - t0 < g_secs * 0.15 * n)            /* warm-up */
            for (int i = 0; i < n; i++) rawprim_run(&r[i]);
        t0 = bu_now();
        for (size_t it = 0; it < MAX_SAMPLES && (it < 10 || bu_now() - t0 < g_secs * n); it++)
            for (int k = 0; k < n && !rc; k++) {
                int i = (int)((it + (size_t)k) % (size_t)n);
                double a = bu_now();
                if (rawprim_run(&r[i])) {
                    fprintf(stderr, "raw_dnnl: %s: execution failed\n", w->name);
                    rc = -1;
                }
                t[i][cnt[i]++] = bu_now() - a;
            }
    }
    for (int i = 0; i < made; i++) {
        if (!rc) {
            m[i].n = cnt[i];
            m[i].median = bu_median(t[i], cnt[i]);
            m[i].p10 = bu_quantile(t[i], cnt[i], 0.1);
            m[i].p90 = bu_quantile(t[i], cnt[i], 0.9);
            m[i].mean = bu_mean(t[i], cnt[i]);
        }
        free(t[i]);
        rawprim_free(&r[i]);
    }
    return rc;
}

struct raw_caller {
    const struct wl *w;
    bool bf16;
};

static void *raw_make(void *ctx)
{
    const struct raw_caller *c = ctx;
    struct rawprim *r = malloc(sizeof *r);
    char err[256];
    if (r && !rawprim_create(r, c->w, 1, RAW_DECONV, c->bf16, c->bf16, 1, err, sizeof err))
        return r;
    if (r) fprintf(stderr, "raw_dnnl: %s\n", err);
    free(r);
    return NULL;
}

static int raw_run(void *st) { return rawprim_run(st); }

static void raw_drop(void *st)
{
    rawprim_free(st);
    free(st);
}

/* images/s of `threads` independent 1-thread primitives run at once. */
static double concurrent(const struct wl *w, bool bf16, int threads)
{
    struct raw_caller c = { w, bf16 };
    struct bu_callers callers = { raw_make, raw_run, raw_drop, &c };
    return bu_concurrent(&callers, threads, g_secs);
}

static void json_meas(FILE *f, const char *key, const struct meas *m, const struct wl *w,
                      bool last)
{
    fprintf(f, "      \"%s\": {\"median_s\": %.9g, \"p10_s\": %.9g, \"p90_s\": %.9g, "
            "\"mean_s\": %.9g, \"samples\": %zu, \"gflops\": %.6g, \"images_s\": %.6g, "
            "\"impl\": \"%s\", \"post_impl\": \"%s\"}%s\n",
            key, m->median, m->p10, m->p90, m->mean, m->n,
            m->median > 0 ? wl_flops(w) / m->median / 1e9 : 0.0,
            m->median > 0 ? 1.0 / m->median : 0.0, m->impl, m->post_impl, last ? "" : ",");
}

/* -c: a quick ceiling for one workload (f32 or bf16), for run.py to measure
 * right next to each HTTP measurement: 1- and 2-thread latency (interleaved)
 * and one-primitive-per-core throughput, about `secs` in all. */
static int ceiling(const struct wl *w, bool bf16, double secs)
{
    int cores = omp_get_num_procs(), maxt = cores < 2 ? cores : 2;
    struct meas m[3];
    struct spec sp[2] = { { RAW_DECONV, bf16, bf16, 1 }, { RAW_DECONV, bf16, bf16, 2 } };
    g_secs = secs / 3.0 / maxt;
    if (measure_group(w, sp, maxt, &m[1])) return 1;
    g_secs = secs / 3.0;
    double conc = concurrent(w, bf16, cores);
    double lat = m[1].median < m[maxt].median ? m[1].median : m[maxt].median;
    double p10 = m[1].p10 < m[maxt].p10 ? m[1].p10 : m[maxt].p10;
    double best = 1.0 / lat > conc ? 1.0 / lat : conc;
    printf("{\"workload\": \"%s\", \"bf16\": %s, \"t1_median_s\": %.9g, \"t%d_median_s\": %.9g, "
           "\"best_latency_s\": %.9g, \"best_latency_p10_s\": %.9g, \"concurrent_images_s\": %.6g, "
           "\"best_images_s\": %.6g}\n", w->name, bf16 ? "true" : "false", m[1].median, maxt,
           m[maxt].median, lat, p10, conc, best);
    return 0;
}

int main(int argc, char **argv)
{
    const char *only = NULL, *outpath = NULL;
    double ceil_secs = 0;
    bool bf16 = false;
    int opt;
    while ((opt = getopt(argc, argv, "t:w:o:c:b")) != -1) {
        if (opt == 't') g_secs = atof(optarg);
        else if (opt == 'w') only = optarg;
        else if (opt == 'o') outpath = optarg;
        else if (opt == 'c') ceil_secs = atof(optarg);
        else if (opt == 'b') bf16 = true;
        else {
            fprintf(stderr, "usage: raw_dnnl [-t SECONDS] [-w WORKLOAD] [-o OUT.json]\n"
                    "       raw_dnnl -c SECONDS [-b] -w WORKLOAD   (quick ceiling, JSON line)\n");
            return 2;
        }
    }
    if (ceil_secs > 0) {
        const struct wl *w = wl_find(only ? only : "dcgan_up");
        if (!w) {
            fprintf(stderr, "raw_dnnl: unknown workload\n");
            return 2;
        }
        return ceiling(w, bf16, ceil_secs);
    }
    FILE *f = outpath ? fopen(outpath, "w") : stdout;
    if (!f) {
        perror(outpath);
        return 1;
    }
    int cores = omp_get_num_procs();
    int maxt = cores < 2 ? cores : 2;
    fprintf(f, "{\n  \"cores\": %d,\n  \"seconds_per_point\": %g,\n  \"workloads\": {\n", cores,
            g_secs);
    int first = 1, rc = 0;
    for (int i = 0; i < bench_nworkloads; i++) {
        const struct wl *w = &bench_workloads[i];
        if (only && strcmp(only, w->name)) continue;
        struct meas m[3];
        struct spec bare[2] = { { RAW_DECONV, false, false, 1 }, { RAW_DECONV, false, false, 2 } };
        int best = 1;
        if (measure_group(w, bare, maxt, &m[1])) return 1;
        for (int nt = 1; nt <= maxt; nt++)
            if (m[nt].median < m[best].median) best = nt;
        double conc = concurrent(w, false, cores);
        double best_ips = 1.0 / m[best].median;
        const char *best_how = best == 1 ? "1 stream x 1 thread" : "1 stream x 2 threads";
        if (conc > best_ips) best_ips = conc, best_how = "1 primitive per core, concurrent";
        fprintf(stderr, "raw %-9s 1t %8.3f ms %7.1f GFLOP/s | %dt %8.3f ms %7.1f GFLOP/s | "
                "%dx1 %8.1f img/s | impl %s\n", w->name, m[1].median * 1e3,
                wl_flops(w) / m[1].median / 1e9, maxt, m[maxt].median * 1e3,
                wl_flops(w) / m[maxt].median / 1e9, cores, conc, m[best].impl);
        fprintf(f, "%s    \"%s\": {\n      \"flops\": %.6g,\n      \"flops_dense\": %.6g,\n"
                "      \"in_elems\": %lld,\n      \"out_elems\": %lld,\n",
                first ? "" : ",\n", w->name, wl_flops(w), wl_flops_dense(w),
                (long long)wl_in_elems(w), (long long)wl_out_elems(w));
        first = 0;
        for (int nt = 1; nt <= maxt; nt++) {
            char key[32];
            snprintf(key, sizeof key, "f32_t%d", nt);
            json_meas(f, key, &m[nt], w, false);
        }
        fprintf(f, "      \"best_threads\": %d,\n      \"best_gflops\": %.6g,\n"
                "      \"concurrent_images_s\": %.6g,\n      \"best_images_s\": %.6g,\n"
                "      \"best_images_how\": \"%s\"", best, wl_flops(w) / m[best].median / 1e9,
                conc, best_ips, best_how);
        /* how bias + activation can be attached: the binary_add chain and the
         * single-primitive alternatives, at the best thread count */
        {
            enum raw_mode modes[] = { RAW_DECONV, RAW_CHAIN, RAW_BIAS, RAW_FUSED, RAW_BIAS_ELTWISE,
                                      RAW_POSTOP_ONLY, RAW_BINARY_POSTOP };
            int nm = w->relu ? 7 : 3;
            struct spec vs[7];
            struct meas v[7];
            for (int k = 0; k < nm; k++) vs[k] = (struct spec){ modes[k], false, false, best };
            if (measure_group(w, vs, nm, v)) return 1;
            fprintf(f, ",\n      \"variants_threads\": %d,\n      \"variants\": {\n", best);
            for (int k = 0; k < nm; k++) {
                fprintf(f, "  ");
                json_meas(f, raw_mode_names[modes[k]], &v[k], w, k == nm - 1);
                fprintf(stderr, "raw %-9s %dt %-28s %8.3f ms  (x%.2f of bare deconv)%s%s\n",
                        w->name, best, raw_mode_names[modes[k]], v[k].median * 1e3,
                        v[k].median / v[0].median, v[k].post_impl[0] ? "  post: " : "",
                        v[k].post_impl);
            }
            fprintf(f, "      }");
        }
        if (!strcmp(w->name, "dcgan_up")) {
            struct meas b16[3], b16r;
            int bbest = 1;
            struct spec bs[2] = { { RAW_DECONV, true, false, 1 }, { RAW_DECONV, true, false, 2 } };
            if (measure_group(w, bs, maxt, &b16[1])) return 1;
            for (int nt = 1; nt <= maxt; nt++)
                if (b16[nt].median < b16[bbest].median) bbest = nt;
            struct spec br = { RAW_DECONV, true, true, bbest };
            if (measure_group(w, &br, 1, &b16r)) return 1;
            double bconc = concurrent(w, true, cores);
            double bbest_ips = 1.0 / b16[bbest].median > bconc ? 1.0 / b16[bbest].median : bconc;
            fprintf(f, ",\n");
            for (int nt = 1; nt <= maxt; nt++) {
                char key[32];
                snprintf(key, sizeof key, "bf16_t%d", nt);
                json_meas(f, key, &b16[nt], w, false);
            }
            json_meas(f, "bf16_with_input_reorder", &b16r, w, false);
            fprintf(f, "      \"bf16_best_threads\": %d,\n      \"bf16_concurrent_images_s\": "
                    "%.6g,\n      \"bf16_best_images_s\": %.6g", bbest, bconc, bbest_ips);
            fprintf(stderr, "raw dcgan_up bf16 1t %.3f ms | %dt %.3f ms | +reorder %.3f ms | "
                    "%dx1 %.1f img/s | impl %s\n", b16[1].median * 1e3, maxt,
                    b16[maxt].median * 1e3, b16r.median * 1e3, cores, bconc, b16[bbest].impl);
        }
        fprintf(f, "\n    }");
    }
    fprintf(f, "\n  }\n}\n");
    if (outpath) fclose(f);
    return rc;
}
