/* tile_probe.c — can oneDNN compute one item's output rows in tiles?
 *
 * The question behind checkpoints inside one batch item: is a range of
 * output rows along the outermost spatial dimension, computed by its own
 * deconvolution from the input rows that reach it (left padding adjusted
 * to pad + o0 - i0*stride), the same as those rows of the untiled run? For
 * each geometry, layout and dtype this builds the untiled primitive and
 * the tile primitives (f32 or bf16 src, f32 dst, weights packed for the
 * untiled one), and prints their implementations, whether the tiles want
 * the same packed weights, how many output values differ bitwise, and the
 * time of the untiled run against the sum of the tiles. Channels-last
 * slabs are dense tensors of their own (batch 1); channels-first ones are
 * strided views. UNALIGNED=1 starts tiles off the stride grid, which gives
 * negative left padding when the kernel is shorter than the stride.
 *
 * Standalone tool, not part of the daemon. Build and run:
 *   gcc -std=c11 -O2 -D_GNU_SOURCE bench/tile_probe.c -ldnnl -lm -o /tmp/tile_probe
 *   OMP_WAIT_POLICY=PASSIVE /tmp/tile_probe
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

struct geo {
    const char *name;
    int rank;
    int64_t ic, oc, k[3], s[3], d[3], in[3];
    int same, cf, bf16;
};

struct prim {
    dnnl_primitive_t p;
    dnnl_memory_desc_t wmd, smd;
    char impl[64];
};

static dnnl_engine_t g_eng;
static dnnl_stream_t g_strm;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int64_t ext(const struct geo *g, int i) { return (g->k[i] - 1) * g->d[i] + 1; }

static int64_t pad_before(const struct geo *g, int i, int64_t n, int64_t out)
{
    int64_t full = (n - 1) * g->s[i] + ext(g, i);
    return g->same && full > out ? (full - out) / 2 : 0;
}

/* Rows [r0, r1) of the outermost spatial dim of a batch-1 tensor of C
 * channels and spatial size sp: channels-last, a dense tensor; channels
 * first, a view with the full tensor's strides. */
static void rows_md(const struct geo *g, int64_t c, const int64_t *sp, int64_t r0, int64_t r1,
                    dnnl_data_type_t dt, dnnl_memory_desc_t *md)
{
    static const dnnl_format_tag_t last[] = { dnnl_nwc, dnnl_nhwc, dnnl_ndhwc };
    dnnl_dims_t dims, str;
    int nd = g->rank + 2;
    dims[0] = 1, dims[1] = c;
    for (int i = 0; i < g->rank; i++) dims[2 + i] = i ? sp[i] : r1 - r0;
    if (!g->cf) {
        dnnl_memory_desc_init_by_tag(md, nd, dims, dt, last[g->rank - 1]);
        return;
    }
    int64_t step = 1;
    for (int i = g->rank - 1; i >= 0; i--) str[2 + i] = step, step *= sp[i];
    str[1] = step, str[0] = step * c;
    dnnl_memory_desc_init_by_strides(md, nd, dims, dt, str);
}

/* Deconvolution of input rows [i0, i1) into output rows [o0, o1) with
 * left padding pl along the first dim; 0, or -1 after saying why. */
static int make(const struct geo *g, const int64_t *in, const int64_t *out, int64_t i0,
                int64_t i1, int64_t o0, int64_t o1, int64_t pl, struct prim *p)
{
    dnnl_memory_desc_t src, dst, wany;
    dnnl_dims_t wd, st, dil, l, r;
    dnnl_deconvolution_desc_t dd;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_data_type_t dt = g->bf16 ? dnnl_bf16 : dnnl_f32;
    const char *impl = "";
    rows_md(g, g->ic, in, i0, i1, dt, &src);
    rows_md(g, g->oc, out, o0, o1, dnnl_f32, &dst);
    wd[0] = g->oc, wd[1] = g->ic;
    for (int i = 0; i < g->rank; i++) {
        int64_t n = i ? in[i] : i1 - i0, o = i ? out[i] : o1 - o0;
        wd[2 + i] = g->k[i], st[i] = g->s[i], dil[i] = g->d[i] - 1;
        l[i] = i ? pad_before(g, i, n, o) : pl;
        r[i] = (n - 1) * g->s[i] + ext(g, i) - o - l[i];
    }
    dnnl_memory_desc_init_by_tag(&wany, g->rank + 2, wd, dt, dnnl_format_tag_any);
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_status_t s = dnnl_dilated_deconvolution_forward_desc_init(
        &dd, dnnl_forward_inference, dnnl_deconvolution_direct, &src, &wany, NULL, &dst, st, dil,
        l, r);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &dd, attr, g_eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) {
        printf("  %s: rows %lld-%lld, padding %lld/%lld refused (status %d)\n", g->name,
               (long long)o0, (long long)o1, (long long)l[0], (long long)r[0], (int)s);
        return -1;
    }
    p->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    p->smd = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(p->impl, sizeof p->impl, "%s", impl);
    s = dnnl_primitive_create(&p->p, pd);
    dnnl_primitive_desc_destroy(pd);
    return s == dnnl_success ? 0 : -1;
}

static void exec(struct prim *p, const dnnl_memory_desc_t *smd, const dnnl_memory_desc_t *dmd,
                 void *src, void *wei, float *dst)
{
    dnnl_memory_t m[4];
    void *scratch = malloc(dnnl_memory_desc_get_size(&p->smd) + 64);
    dnnl_memory_create(&m[0], smd, g_eng, src);
    dnnl_memory_create(&m[1], &p->wmd, g_eng, wei);
    dnnl_memory_create(&m[2], dmd, g_eng, dst);
    dnnl_memory_create(&m[3], &p->smd, g_eng, scratch);
    dnnl_exec_arg_t a[] = { { DNNL_ARG_SRC, m[0] }, { DNNL_ARG_WEIGHTS, m[1] },
                            { DNNL_ARG_DST, m[2] }, { DNNL_ARG_SCRATCHPAD, m[3] } };
    dnnl_primitive_execute(p->p, g_strm, 4, a);
    dnnl_stream_wait(g_strm);
    for (int i = 0; i < 4; i++) dnnl_memory_destroy(m[i]);
    free(scratch);
}

/* Plain (O, I, k...) f32 weights packed into md. */
static void *pack(const struct geo *g, const float *w, const dnnl_memory_desc_t *md)
{
    static const dnnl_format_tag_t plain[] = { dnnl_oiw, dnnl_oihw, dnnl_oidhw };
    dnnl_memory_desc_t from;
    dnnl_dims_t wd = { g->oc, g->ic, g->k[0], g->k[1], g->k[2] };
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t r;
    dnnl_memory_t a, b;
    void *buf = malloc(dnnl_memory_desc_get_size(md) + 64);
    dnnl_memory_desc_init_by_tag(&from, g->rank + 2, wd, dnnl_f32, plain[g->rank - 1]);
    dnnl_memory_create(&a, &from, g_eng, (void *)w);
    dnnl_memory_create(&b, md, g_eng, buf);
    dnnl_reorder_primitive_desc_create(&pd, &from, g_eng, md, g_eng, NULL);
    dnnl_primitive_create(&r, pd);
    dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, a }, { DNNL_ARG_TO, b } };
    dnnl_primitive_execute(r, g_strm, 2, args);
    dnnl_stream_wait(g_strm);
    dnnl_primitive_destroy(r), dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(a), dnnl_memory_destroy(b);
    return buf;
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* The untiled run against `ntiles` tiles of output rows. */
static void trial(const struct geo *g, int ntiles, int aligned)
{
    int64_t in[3], out[3], row_in = g->ic, row_out = g->oc;
    size_t nin = (size_t)g->ic, nout = (size_t)g->oc, nw = (size_t)(g->ic * g->oc);
    for (int i = 0; i < g->rank; i++) {
        in[i] = g->in[i];
        out[i] = g->same ? in[i] * g->s[i] : (in[i] - 1) * g->s[i] + ext(g, i);
        nin *= (size_t)in[i], nout *= (size_t)out[i], nw *= (size_t)g->k[i];
        if (i) row_in *= in[i], row_out *= out[i];
    }
    float *x = malloc(nin * 4), *w = malloc(nw * 4), *yf = calloc(nout, 4), *yt = calloc(nout, 4);
    uint16_t *xb = malloc(nin * 2);
    srand(7);
    for (size_t i = 0; i < nin; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (size_t i = 0; i < nin; i++) xb[i] = to_bf16(x[i]);
    for (size_t i = 0; i < nw; i++) w[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    char *src = g->bf16 ? (char *)xb : (char *)x, tiles_impl[128] = "";
    size_t esz = g->bf16 ? 2 : 4;
    int64_t pl = pad_before(g, 0, in[0], out[0]);
    int refused = 0, same_wei = 1;
    struct prim full, t;
    dnnl_memory_desc_t smd, dmd;
    if (make(g, in, out, 0, in[0], 0, out[0], pl, &full)) return;
    void *wf = pack(g, w, &full.wmd);
    rows_md(g, g->ic, in, 0, in[0], g->bf16 ? dnnl_bf16 : dnnl_f32, &smd);
    rows_md(g, g->oc, out, 0, out[0], dnnl_f32, &dmd);
    exec(&full, &smd, &dmd, src, wf, yf);
    double t0 = now(), t_tiles = 0;
    exec(&full, &smd, &dmd, src, wf, yf);
    double t_full = now() - t0;
    int64_t rows = (out[0] + ntiles - 1) / ntiles;
    if (aligned) rows = (rows + g->s[0] - 1) / g->s[0] * g->s[0];
    for (int64_t o0 = 0; o0 < out[0] && !refused; o0 += rows) {
        int64_t o1 = o0 + rows < out[0] ? o0 + rows : out[0];
        int64_t first = o0 + pl - (ext(g, 0) - 1);              /* lowest full index in reach */
        int64_t i0 = first <= 0 ? 0 : (first + g->s[0] - 1) / g->s[0];
        int64_t i1 = (o1 - 1 + pl) / g->s[0] + 1;
        if (i1 > in[0]) i1 = in[0];
        if (i1 <= i0) continue;                                  /* rows no input reaches */
        if (make(g, in, out, i0, i1, o0, o1, pl + o0 - i0 * g->s[0], &t)) {
            refused = 1;
            break;
        }
        int same = dnnl_memory_desc_equal(&t.wmd, &full.wmd);
        void *wt = same ? wf : pack(g, w, &t.wmd);
        same_wei &= same;
        dnnl_memory_desc_t ts, td;
        rows_md(g, g->ic, in, i0, i1, g->bf16 ? dnnl_bf16 : dnnl_f32, &ts);
        rows_md(g, g->oc, out, o0, o1, dnnl_f32, &td);
        char *sp = src + (size_t)i0 * (size_t)(g->cf ? row_in / g->ic : row_in) * esz;
        float *dp = yt + (size_t)o0 * (size_t)(g->cf ? row_out / g->oc : row_out);
        exec(&t, &ts, &td, sp, wt, dp);
        t0 = now();
        exec(&t, &ts, &td, sp, wt, dp);
        t_tiles += now() - t0;
        if (!strstr(tiles_impl, t.impl) && strlen(tiles_impl) + strlen(t.impl) + 2 < 128)
            strcat(strcat(tiles_impl, t.impl), " ");
        if (!same) free(wt);
        dnnl_primitive_destroy(t.p);
    }
    size_t diff = 0;
    double worst = 0;
    for (size_t i = 0; i < nout; i++)
        if (memcmp(&yf[i], &yt[i], 4)) diff++, worst = fmax(worst, fabs(yf[i] - yt[i]));
    if (!refused)
        printf("%-20s %s %-4s %2d tiles  untiled %-28s tiles %-28s same weights %d  bits "
               "differ %zu/%zu (max %.2g)  untiled %.3f ms, tiles %.3f ms\n", g->name,
               g->cf ? "cf" : "cl", g->bf16 ? "bf16" : "f32", ntiles, full.impl, tiles_impl,
               same_wei, diff, nout, worst, t_full * 1e3, t_tiles * 1e3);
    dnnl_primitive_destroy(full.p);
    free(wf), free(x), free(xb), free(w), free(yf), free(yt);
}

int main(void)
{
    static const struct geo geos[] = {
        { "dcgan_up k4 s2", 2, 128, 64, { 4, 4 }, { 2, 2 }, { 1, 1 }, { 32, 32 }, 1, 0, 0 },
        { "audio_up k16 s8", 1, 256, 128, { 16 }, { 8 }, { 1 }, { 128 }, 1, 0, 0 },
        { "vol_up k3 s2", 3, 32, 16, { 3, 3, 3 }, { 2, 2, 2 }, { 1, 1, 1 }, { 16, 16, 16 }, 1, 0,
          0 },
        { "k3 s1 64->64", 2, 64, 64, { 3, 3 }, { 1, 1 }, { 1, 1 }, { 48, 48 }, 1, 0, 0 },
        { "k3 s1 d2", 2, 32, 32, { 3, 3 }, { 1, 1 }, { 2, 2 }, { 40, 40 }, 1, 0, 0 },
        { "k5 s2 valid 17->19", 2, 17, 19, { 5, 5 }, { 2, 2 }, { 1, 1 }, { 30, 30 }, 0, 0, 0 },
        { "k1 s2 32->32", 2, 32, 32, { 1, 1 }, { 2, 2 }, { 1, 1 }, { 24, 24 }, 1, 0, 0 },
        { "k2 s3 64->64", 2, 64, 64, { 2, 2 }, { 3, 3 }, { 1, 1 }, { 24, 24 }, 1, 0, 0 },
    };
    int aligned = !getenv("UNALIGNED");
    if (dnnl_engine_create(&g_eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&g_strm, g_eng, dnnl_stream_default_flags) != dnnl_success)
        return 1;
    for (size_t i = 0; i < sizeof geos / sizeof *geos; i++)
        for (int v = 0; v < 4; v++) {
            struct geo g = geos[i];
            g.cf = v >> 1, g.bf16 = v & 1;
            trial(&g, 4, aligned);
            if (!g.cf) trial(&g, 16, aligned);
        }
    dnnl_stream_destroy(g_strm);
    dnnl_engine_destroy(g_eng);
    return 0;
}
