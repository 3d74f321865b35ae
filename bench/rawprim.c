/* rawprim.c — see rawprim.h. Only oneDNN's C API; no deconvd code. */
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "rawprim.h"

const struct wl bench_workloads[] = {
    { "dcgan_up", 2, 128, 64, { 4, 4, 1 }, { 2, 2, 1 }, { 32, 32, 1 }, true },
    { "tiny", 2, 8, 8, { 3, 3, 1 }, { 2, 2, 1 }, { 4, 4, 1 }, false },
    { "audio_up", 1, 256, 128, { 16, 1, 1 }, { 8, 1, 1 }, { 128, 1, 1 }, false },
    { "vol_up", 3, 32, 16, { 3, 3, 3 }, { 2, 2, 2 }, { 16, 16, 16 }, false },
};
const char *const raw_mode_names[] = {
    [RAW_DECONV] = "bare", [RAW_CHAIN] = "chain", [RAW_FUSED] = "fused_bias_eltwise",
    [RAW_BIAS] = "bias_only", [RAW_BIAS_ELTWISE] = "bias_then_eltwise_primitive",
    [RAW_POSTOP_ONLY] = "eltwise_postop_only", [RAW_BINARY_POSTOP] = "binary_and_eltwise_postops",
};
const int bench_nworkloads = (int)(sizeof bench_workloads / sizeof *bench_workloads);

const struct wl *wl_find(const char *name)
{
    for (int i = 0; i < bench_nworkloads; i++)
        if (!strcmp(bench_workloads[i].name, name)) return &bench_workloads[i];
    return NULL;
}

void wl_geometry(const struct wl *w, int64_t *out, int64_t *pad_l, int64_t *pad_r)
{
    for (int i = 0; i < w->rank; i++) {
        /* SAME: out = in * s; TF pads the full (in-1)*s+k signal evenly,
         * the extra one going after. */
        int64_t o = w->in[i] * w->s[i];
        int64_t full = (w->in[i] - 1) * w->s[i] + w->k[i];
        int64_t total = full > o ? full - o : 0;
        if (out) out[i] = o;
        if (pad_l) pad_l[i] = total / 2;
        if (pad_r) pad_r[i] = full - o - total / 2;
    }
}

int64_t wl_in_elems(const struct wl *w)
{
    int64_t n = w->ic;
    for (int i = 0; i < w->rank; i++) n *= w->in[i];
    return n;
}

int64_t wl_out_elems(const struct wl *w)
{
    int64_t out[3], n = w->oc;
    wl_geometry(w, out, NULL, NULL);
    for (int i = 0; i < w->rank; i++) n *= out[i];
    return n;
}

double wl_flops(const struct wl *w)
{
    double f = 2.0 * (double)w->ic * (double)w->oc;
    for (int i = 0; i < w->rank; i++) f *= (double)w->k[i] * (double)w->in[i];
    return f;
}

double wl_flops_dense(const struct wl *w)
{
    int64_t out[3];
    double f = 2.0 * (double)w->ic * (double)w->oc;
    wl_geometry(w, out, NULL, NULL);
    for (int i = 0; i < w->rank; i++) f *= (double)w->k[i] * (double)out[i];
    return f;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

#define TRY(call, what)                                                              \
    do {                                                                             \
        dnnl_status_t st_ = (call);                                                  \
        if (st_ != dnnl_success) {                                                   \
            rc = fail(err, errlen, "%s: %s failed (status %d)", w->name, what, (int)st_); \
            goto out;                                                                \
        }                                                                            \
    } while (0)

static dnnl_format_tag_t data_tag(int rank)
{
    return rank == 1 ? dnnl_nwc : rank == 2 ? dnnl_nhwc : dnnl_ndhwc;
}

static dnnl_format_tag_t plain_wei_tag(int rank)
{
    return rank == 1 ? dnnl_oiw : rank == 2 ? dnnl_oihw : dnnl_oidhw;
}

static void dims_of(int64_t n, int64_t c, const int64_t *sp, int rank, dnnl_dims_t d)
{
    d[0] = n;
    d[1] = c;
    for (int i = 0; i < rank; i++) d[2 + i] = sp[i];
}

static int scratch_mem(dnnl_engine_t eng, const_dnnl_primitive_desc_t pd, dnnl_memory_t *m)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    *m = NULL;
    if (!md || dnnl_memory_desc_get_size(md) == 0) return 0;
    return dnnl_memory_create(m, md, eng, DNNL_MEMORY_ALLOCATE) == dnnl_success ? 0 : -1;
}

static void fill_mem(dnnl_memory_t m, uint64_t seed)
{
    const dnnl_memory_desc_t *md = NULL;
    void *p = NULL;
    dnnl_memory_get_memory_desc(m, &md);
    dnnl_memory_get_data_handle(m, &p);
    bu_fill(p, dnnl_memory_desc_get_size(md) / sizeof(float), seed);
}

int rawprim_create(struct rawprim *r, const struct wl *w, int64_t batch, enum raw_mode mode,
                   bool bf16, bool reorder_input, int nthreads, char *err, size_t errlen)
{
    dnnl_memory_desc_t src_md, bsrc_md, dst_md, wany, wplain, bias_md, bb_md;
    dnnl_dims_t d, strides, dil, pl, pr;
    int64_t out[3], pad_l[3], pad_r[3];
    dnnl_deconvolution_desc_t dd;
    dnnl_primitive_attr_t attr = NULL, pattr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL, ppd = NULL, rpd = NULL, wpd = NULL;
    dnnl_primitive_t wre = NULL;
    dnnl_memory_t wsrc = NULL;
    const char *impl = NULL;
    int rc = 0;

    memset(r, 0, sizeof *r);
    r->w = w;
    r->batch = batch;
    r->nthreads = nthreads;
    r->bf16 = bf16;
    r->reorder_input = bf16 && reorder_input;
    r->mode = mode;
    omp_set_num_threads(nthreads);
    wl_geometry(w, out, pad_l, pad_r);
    for (int i = 0; i < w->rank; i++) {
        strides[i] = w->s[i];
        dil[i] = 0;
        pl[i] = pad_l[i];
        pr[i] = pad_r[i];
    }
    TRY(dnnl_engine_create(&r->eng, dnnl_cpu, 0), "engine");
    TRY(dnnl_stream_create(&r->stream, r->eng, dnnl_stream_default_flags), "stream");
    dims_of(batch, w->ic, w->in, w->rank, d);
    TRY(dnnl_memory_desc_init_by_tag(&src_md, w->rank + 2, d, dnnl_f32, data_tag(w->rank)), "src md");
    TRY(dnnl_memory_desc_init_by_tag(&bsrc_md, w->rank + 2, d, dnnl_bf16, data_tag(w->rank)),
        "bf16 src md");
    dims_of(batch, w->oc, out, w->rank, d);
    TRY(dnnl_memory_desc_init_by_tag(&dst_md, w->rank + 2, d, dnnl_f32, data_tag(w->rank)), "dst md");
    d[0] = w->oc;
    d[1] = w->ic;
    for (int i = 0; i < w->rank; i++) d[2 + i] = w->k[i];
    TRY(dnnl_memory_desc_init_by_tag(&wany, w->rank + 2, d, bf16 ? dnnl_bf16 : dnnl_f32,
                                     dnnl_format_tag_any), "weights md");
    TRY(dnnl_memory_desc_init_by_tag(&wplain, w->rank + 2, d, dnnl_f32, plain_wei_tag(w->rank)),
        "plain weights md");
    dnnl_dims_t bd1 = { w->oc };
    TRY(dnnl_memory_desc_init_by_tag(&bias_md, 1, bd1, dnnl_f32, dnnl_a), "bias md");
    for (int i = 0; i < w->rank + 2; i++) d[i] = i == 1 ? w->oc : 1;
    TRY(dnnl_memory_desc_init_by_tag(&bb_md, w->rank + 2, d, dnnl_f32, data_tag(w->rank)),
        "broadcast bias md");

    bool bias_in_desc = mode == RAW_FUSED || mode == RAW_BIAS || mode == RAW_BIAS_ELTWISE;
    bool elt_postop = w->relu && (mode == RAW_FUSED || mode == RAW_POSTOP_ONLY ||
                                  mode == RAW_BINARY_POSTOP);
    TRY(dnnl_primitive_attr_create(&attr), "attr");
    TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
    if (elt_postop || mode == RAW_BINARY_POSTOP) {
        TRY(dnnl_post_ops_create(&po), "post-ops");
        if (mode == RAW_BINARY_POSTOP)
            TRY(dnnl_post_ops_append_binary(po, dnnl_binary_add, &bb_md), "binary post-op");
        if (elt_postop)
            TRY(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f), "eltwise");
        TRY(dnnl_primitive_attr_set_post_ops(attr, po), "set post-ops");
    }
    TRY(dnnl_dilated_deconvolution_forward_desc_init(
            &dd, dnnl_forward_inference, dnnl_deconvolution_direct, bf16 ? &bsrc_md : &src_md,
            &wany, bias_in_desc ? &bias_md : NULL, &dst_md, strides, dil, pl, pr),
        "deconvolution desc");
    TRY(dnnl_primitive_desc_create(&pd, &dd, attr, r->eng, NULL), "deconvolution pd");
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(r->impl, sizeof r->impl, "%s", impl);
    TRY(dnnl_primitive_create(&r->deconv, pd), "deconvolution primitive");
    if (scratch_mem(r->eng, pd, &r->scr_deconv)) {
        rc = fail(err, errlen, "%s: scratchpad", w->name);
        goto out;
    }

    /* weights: random plain f32, packed once into what the primitive wants */
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    r->wei_bytes = dnnl_memory_desc_get_size(wmd);
    TRY(dnnl_memory_create(&r->wei, wmd, r->eng, DNNL_MEMORY_ALLOCATE), "weights memory");
    TRY(dnnl_memory_create(&wsrc, &wplain, r->eng, DNNL_MEMORY_ALLOCATE), "weights memory");
    fill_mem(wsrc, 7);
    {
        float *p = NULL;   /* glorot-ish scale keeps outputs O(1) */
        dnnl_memory_get_data_handle(wsrc, (void **)&p);
        size_t n = dnnl_memory_desc_get_size(&wplain) / sizeof(float);
        for (size_t i = 0; i < n; i++) p[i] *= 0.05f;
    }
    TRY(dnnl_reorder_primitive_desc_create(&wpd, &wplain, r->eng, wmd, r->eng, NULL), "weights reorder pd");
    TRY(dnnl_primitive_create(&wre, wpd), "weights reorder");
    dnnl_exec_arg_t wa[] = { { DNNL_ARG_FROM, wsrc }, { DNNL_ARG_TO, r->wei } };
    TRY(dnnl_primitive_execute(wre, r->stream, 2, wa), "weights reorder");
    TRY(dnnl_stream_wait(r->stream), "weights reorder");

    TRY(dnnl_memory_create(&r->src, &src_md, r->eng, DNNL_MEMORY_ALLOCATE), "src memory");
    fill_mem(r->src, 11);
    TRY(dnnl_memory_create(&r->dst, &dst_md, r->eng, DNNL_MEMORY_ALLOCATE), "dst memory");
    TRY(dnnl_memory_create(&r->bias, &bias_md, r->eng, DNNL_MEMORY_ALLOCATE), "bias memory");
    fill_mem(r->bias, 13);
    void *bh = NULL;
    dnnl_memory_get_data_handle(r->bias, &bh);
    TRY(dnnl_memory_create(&r->bias_bcast, &bb_md, r->eng, bh), "bias memory");
    if (bf16) {
        TRY(dnnl_memory_create(&r->src_bf16, &bsrc_md, r->eng, DNNL_MEMORY_ALLOCATE), "bf16 src");
        TRY(dnnl_reorder_primitive_desc_create(&rpd, &src_md, r->eng, &bsrc_md, r->eng, attr),
            "bf16 reorder pd");
        TRY(dnnl_primitive_create(&r->to_bf16, rpd), "bf16 reorder");
        if (scratch_mem(r->eng, rpd, &r->scr_reorder)) {
            rc = fail(err, errlen, "%s: scratchpad", w->name);
            goto out;
        }
        /* convert once so a run without reorder still sees real data */
        dnnl_exec_arg_t ra[] = { { DNNL_ARG_FROM, r->src }, { DNNL_ARG_TO, r->src_bf16 },
                                 { DNNL_ARG_SCRATCHPAD, r->scr_reorder } };
        TRY(dnnl_primitive_execute(r->to_bf16, r->stream, r->scr_reorder ? 3 : 2, ra), "bf16 reorder");
        TRY(dnnl_stream_wait(r->stream), "bf16 reorder");
    }
    if (mode == RAW_BIAS_ELTWISE && w->relu) {
        dnnl_eltwise_desc_t ed;
        dnnl_primitive_desc_t epd = NULL;
        TRY(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference, dnnl_eltwise_relu, &dst_md,
                                           0.0f, 0.0f), "eltwise desc");
        TRY(dnnl_primitive_desc_create(&epd, &ed, attr, r->eng, NULL), "eltwise pd");
        impl = NULL;
        if (dnnl_primitive_desc_query(epd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
            snprintf(r->post_impl, sizeof r->post_impl, "%s", impl);
        rc = dnnl_primitive_create(&r->eltwise, epd) == dnnl_success ? scratch_mem(r->eng, epd, &r->scr_eltwise) : -1;
        dnnl_primitive_desc_destroy(epd);
        if (rc) {
            rc = fail(err, errlen, "%s: eltwise primitive", w->name);
            goto out;
        }
    }
    if (mode == RAW_CHAIN) {
        dnnl_binary_desc_t bd;
        TRY(dnnl_primitive_attr_create(&pattr), "attr");
        TRY(dnnl_primitive_attr_set_scratchpad_mode(pattr, dnnl_scratchpad_mode_user), "scratchpad");
        if (w->relu) {
            TRY(dnnl_post_ops_create(&po), "post-ops");
            TRY(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f), "eltwise");
            TRY(dnnl_primitive_attr_set_post_ops(pattr, po), "set post-ops");
        }
        TRY(dnnl_binary_desc_init(&bd, dnnl_binary_add, &dst_md, &bb_md, &dst_md), "binary desc");
        TRY(dnnl_primitive_desc_create(&ppd, &bd, pattr, r->eng, NULL), "binary pd");
        impl = NULL;
        if (dnnl_primitive_desc_query(ppd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
            snprintf(r->post_impl, sizeof r->post_impl, "%s", impl);
        TRY(dnnl_primitive_create(&r->post, ppd), "binary primitive");
        if (scratch_mem(r->eng, ppd, &r->scr_post)) {
            rc = fail(err, errlen, "%s: scratchpad", w->name);
            goto out;
        }
    }
out:
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (pattr) dnnl_primitive_attr_destroy(pattr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ppd) dnnl_primitive_desc_destroy(ppd);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (wpd) dnnl_primitive_desc_destroy(wpd);
    if (wre) dnnl_primitive_destroy(wre);
    if (wsrc) dnnl_memory_destroy(wsrc);
    if (rc) rawprim_free(r);
    return rc;
}

int rawprim_run(struct rawprim *r)
{
    dnnl_exec_arg_t a[6];
    int n;
    omp_set_num_threads(r->nthreads);
    if (r->reorder_input) {
        a[0] = (dnnl_exec_arg_t){ DNNL_ARG_FROM, r->src };
        a[1] = (dnnl_exec_arg_t){ DNNL_ARG_TO, r->src_bf16 };
        a[2] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, r->scr_reorder };
        if (dnnl_primitive_execute(r->to_bf16, r->stream, r->scr_reorder ? 3 : 2, a)) return -1;
    }
    a[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, r->bf16 ? r->src_bf16 : r->src };
    a[1] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, r->wei };
    a[2] = (dnnl_exec_arg_t){ DNNL_ARG_DST, r->dst };
    n = 3;
    if (r->mode == RAW_FUSED || r->mode == RAW_BIAS || r->mode == RAW_BIAS_ELTWISE)
        a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, r->bias };
    if (r->mode == RAW_BINARY_POSTOP)
        a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, r->bias_bcast };
    if (r->scr_deconv) a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, r->scr_deconv };
    if (dnnl_primitive_execute(r->deconv, r->stream, n, a)) return -1;
    if (r->eltwise) {
        a[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, r->dst };
        a[1] = (dnnl_exec_arg_t){ DNNL_ARG_DST, r->dst };
        n = 2;
        if (r->scr_eltwise) a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, r->scr_eltwise };
        if (dnnl_primitive_execute(r->eltwise, r->stream, n, a)) return -1;
    }
    if (r->post) {
        a[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC_0, r->dst };
        a[1] = (dnnl_exec_arg_t){ DNNL_ARG_SRC_1, r->bias_bcast };
        a[2] = (dnnl_exec_arg_t){ DNNL_ARG_DST, r->dst };
        n = 3;
        if (r->scr_post) a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, r->scr_post };
        if (dnnl_primitive_execute(r->post, r->stream, n, a)) return -1;
    }
    return dnnl_stream_wait(r->stream) == dnnl_success ? 0 : -1;
}

static float *host(dnnl_memory_t m)
{
    void *p = NULL;
    if (m) dnnl_memory_get_data_handle(m, &p);
    return p;
}

float *rawprim_src(struct rawprim *r) { return host(r->src); }
float *rawprim_dst(struct rawprim *r) { return host(r->dst); }

void rawprim_free(struct rawprim *r)
{
    dnnl_primitive_t prims[] = { r->deconv, r->post, r->eltwise, r->to_bf16 };
    dnnl_memory_t mems[] = { r->src, r->src_bf16, r->wei, r->bias_bcast, r->bias, r->dst,
                             r->scr_deconv, r->scr_post, r->scr_eltwise, r->scr_reorder };
    for (size_t i = 0; i < sizeof prims / sizeof *prims; i++)
        if (prims[i]) dnnl_primitive_destroy(prims[i]);
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    if (r->stream) dnnl_stream_destroy(r->stream);
    if (r->eng) dnnl_engine_destroy(r->eng);
    memset(r, 0, sizeof *r);
}
