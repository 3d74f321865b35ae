/* engine_plan.c — execution plans and a kernel's cache of them.
 *
 * A plan is the primitives for one (batch, in size, out size, OpenMP
 * threads): an f32→bf16 input reorder for native bf16, the deconvolution or
 * convolution without bias (fused bias/eltwise run a slow reference path in oneDNN
 * 2.6), the bias add carrying the activation as eltwise post-ops unless
 * the epilogue (engine_epilogue.c) does it, and softmax. Weights are
 * reordered once per layout oneDNN asks for and shared by the plans. The
 * cache is a bounded LRU under the kernel's mutex, held only for lookups:
 * plans are built outside it, and a plan in use is never evicted. Any
 * thread.
 */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/log.h"
#include "engine_internal.h"

static atomic_uint_fast64_t g_plan_ids;

static dnnl_format_tag_t data_tag(const struct dcv_conv *c)
{
    static const dnnl_format_tag_t last[] = { dnnl_nwc, dnnl_nhwc, dnnl_ndhwc };
    static const dnnl_format_tag_t first[] = { dnnl_ncw, dnnl_nchw, dnnl_ncdhw };
    return c->channels_first ? first[c->rank - 1] : last[c->rank - 1];
}

/* oneDNN logical dims: N, C, spatial... */
static void logical_dims(int64_t n, int64_t ch, const int64_t *sp, int rank, dnnl_dims_t d)
{
    d[0] = n;
    d[1] = ch;
    for (int i = 0; i < rank; i++) d[2 + i] = sp[i];
}

/* oneDNN's logical weight dims for c: (O, I, *k), or (G, O/G, I/G, *k) for
 * a grouped forward convolution. Returns the number of dims. */
static int weight_dims(const struct dcv_conv *c, dnnl_dims_t dims)
{
    int64_t g = dcv_conv_groups(c);
    int n = 0;
    if (g > 1) dims[n++] = g;
    dims[n++] = c->filters / g;
    dims[n++] = c->in_channels / g;
    for (int i = 0; i < c->rank; i++) dims[n++] = c->kernel[i];
    return n;
}

/* The Keras kernel seen as weight_dims() through strides: transposed
 * (*k, O, I), forward (*k, I/G, O) with output channel o = group * O/G + oo. */
static void keras_weights_md(const struct dcv_conv *c, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims, strides;
    int64_t g = dcv_conv_groups(c), ig = c->in_channels / g;
    int n = weight_dims(c, dims), sp = n - c->rank;
    int64_t step = c->filters * ig;
    if (!c->forward) {
        strides[0] = c->in_channels;                 /* O */
        strides[1] = 1;                              /* I */
    } else {
        if (g > 1) strides[0] = c->filters / g;      /* G */
        strides[sp - 2] = 1;                         /* O / G */
        strides[sp - 1] = c->filters;                /* I / G */
    }
    for (int i = c->rank - 1; i >= 0; i--) {
        strides[sp + i] = step;
        step *= c->kernel[i];
    }
    dnnl_memory_desc_init_by_strides(md, n, dims, dnnl_f32, strides);
}

void dcv_engine_plan_free(struct plan *p)
{
    if (!p) return;
    for (int i = 0; i < NPRIM; i++)
        if (p->prim[i]) dnnl_primitive_destroy(p->prim[i]);
    free(p);
}


static int user_attr(dnnl_primitive_attr_t *attr, char *err)
{
    int rc = 0;
    DNNL_TRY(dnnl_primitive_attr_create(attr), "attribute creation");
    DNNL_TRY(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user),
             "scratchpad mode");
out:
    return rc;
}

/* Creates primitive `which` of p from pd, records its scratchpad, destroys
 * pd. */
static int finish(dnnl_primitive_desc_t pd, int which, struct plan *p, char *err)
{
    int rc = 0;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (md) {
        p->scratch_md[which] = *md;
        size_t s = dnnl_memory_desc_get_size(md);
        if (s > p->scratch_bytes) p->scratch_bytes = s;
    }
    DNNL_TRY(dnnl_primitive_create(&p->prim[which], pd), "primitive creation");
out:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* Post step: bias add with the activation as post-ops (unless epilogue()
 * does it), then softmax when asked for. In place on dst. */
static int build_post(const struct dcv_engine_kernel *k, struct plan *p, char *err)
{
    const struct chain *ch = &k->post;
    const struct dcv_conv *c = &k->conv;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int rc = 0;
    if (!k->own_epilogue && (c->use_bias || ch->n > 0)) {
        dnnl_binary_desc_t bd;
        if ((rc = user_attr(&attr, err))) goto out;
        DNNL_TRY(dnnl_post_ops_create(&po), "post-ops creation");
        for (int i = 0; i < ch->n; i++)
            DNNL_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, ch->alg[i], ch->a[i], ch->b[i]),
                     "eltwise post-op");
        DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
        DNNL_TRY(dnnl_binary_desc_init(&bd, dnnl_binary_add, &p->dst_md, &p->bias_md,
                                       &p->dst_md), "bias add descriptor");
        DNNL_TRY(dnnl_primitive_desc_create(&pd, &bd, attr, dcv_engine_cpu(), NULL), "bias add");
        rc = finish(pd, P_POST, p, err);
        pd = NULL;
        if (rc) goto out;
    }
    if (c->act.kind == DCV_ACT_SOFTMAX) {
        dnnl_softmax_desc_t sd;
        int axis = c->channels_first ? c->rank + 1 : 1; /* Keras: the last axis */
        dnnl_primitive_attr_destroy(attr);
        attr = NULL;
        if ((rc = user_attr(&attr, err))) goto out;
        DNNL_TRY(dnnl_softmax_forward_desc_init(&sd, dnnl_forward_inference, &p->dst_md, axis),
                 "softmax descriptor");
        DNNL_TRY(dnnl_primitive_desc_create(&pd, &sd, attr, dcv_engine_cpu(), NULL), "softmax");
        rc = finish(pd, P_SOFTMAX, p, err);
        pd = NULL;
    }
out:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return rc;
}

/* Finds or makes (under k->lock) a packed copy of the weights in md. */
static int packed_weights(struct dcv_engine_kernel *k, const dnnl_memory_desc_t *md, char *err)
{
    dnnl_memory_desc_t kmd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_stream_t s = NULL;
    void *buf = NULL;
    int rc = 0;
    for (int i = 0; i < k->npacked; i++)
        if (dnnl_memory_desc_equal(&k->packed[i].md, md)) return i;
    if (k->npacked == (int)(sizeof k->packed / sizeof *k->packed))
        return dcv_errf(err, DCV_EENGINE, "too many weight layouts for one kernel");
    keras_weights_md(&k->conv, &kmd);
    if (posix_memalign(&buf, 64, dnnl_memory_desc_get_size(md) + 64) != 0)
        return dcv_errf(err, DCV_ENOMEM, "out of memory packing weights");
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, &kmd, dcv_engine_cpu(), md, dcv_engine_cpu(), NULL),
             "weights reorder descriptor");
    DNNL_TRY(dnnl_primitive_create(&r, pd), "weights reorder");
    DNNL_TRY(dnnl_memory_create(&from, &kmd, dcv_engine_cpu(), k->keras_kernel), "memory");
    DNNL_TRY(dnnl_memory_create(&to, md, dcv_engine_cpu(), buf), "memory");
    DNNL_TRY(dnnl_stream_create(&s, dcv_engine_cpu(), dnnl_stream_default_flags), "stream");
    dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
    DNNL_TRY(dnnl_primitive_execute(r, s, 2, args), "weights reorder");
    DNNL_TRY(dnnl_stream_wait(s), "weights reorder");
    k->packed[k->npacked].md = *md;
    k->packed[k->npacked].data = buf;
    buf = NULL;
    rc = k->npacked++;
out:
    free(buf);
    if (s) dnnl_stream_destroy(s);
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    if (r) dnnl_primitive_destroy(r);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* Widths past this skip oneDNN's brgemm-based convolutions: creating one
 * costs ~4 us and ~600 B per output column (measured with oneDNN 2.6:
 * Conv1D at 262144 columns 1.2 s, at 1.97 M 6.9 s and 1.2 GB, found by
 * fuzz_model from a 1 KB model file), where the direct JIT kernels took
 * 0.4-1.3 ms at 65536-262144 columns. */
#define BRG_MAX_WIDTH 4096

static bool is_brg(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
           impl && strncmp(impl, "brg", 3) == 0;
}

/* oneDNN's first implementation for op_desc, or past a width of
 * BRG_MAX_WIDTH its first that is not brgemm-based (the first of all when
 * every one is). */
static int narrow_desc(const void *op_desc, const_dnnl_primitive_attr_t attr, int64_t width,
                       dnnl_primitive_desc_t *pd, const char *what, char *err)
{
    dnnl_primitive_desc_iterator_t it = NULL;
    int rc = 0;
    if (width > BRG_MAX_WIDTH &&
        dnnl_primitive_desc_iterator_create(&it, op_desc, attr, dcv_engine_cpu(), NULL) ==
            dnnl_success) {
        do {
            dnnl_primitive_desc_t cand = dnnl_primitive_desc_iterator_fetch(it);
            if (cand && !is_brg(cand)) {
                *pd = cand;
                goto out;
            }
            if (cand) dnnl_primitive_desc_destroy(cand);
        } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    }
    DNNL_TRY(dnnl_primitive_desc_create(pd, op_desc, attr, dcv_engine_cpu(), NULL), what);
out:
    if (it) dnnl_primitive_desc_iterator_destroy(it);
    return rc;
}

/* The operation descriptor of c for p: a convolution or a deconvolution
 * (both without bias), on the bf16 or f32 source. */
static int main_desc(const struct dcv_conv *c, struct plan *p, bool bf16,
                     const dnnl_memory_desc_t *wany, dnnl_primitive_desc_t *pd,
                     dnnl_primitive_attr_t attr, char *err)
{
    dnnl_dims_t strides, dil, pl, pr;
    int64_t pad_l[DCV_MAX_SPATIAL], pad_r[DCV_MAX_SPATIAL];
    const dnnl_memory_desc_t *src = bf16 ? &p->bf16_md : &p->src_md;
    int rc = 0;
    dcv_conv_pads(c, p->in_sp, p->out_sp, pad_l, pad_r);
    for (int i = 0; i < c->rank; i++) {
        strides[i] = c->strides[i];
        dil[i] = c->dilation[i] - 1;      /* oneDNN dilation is 0-based */
        pl[i] = pad_l[i];
        pr[i] = pad_r[i];
    }
    union { dnnl_convolution_desc_t conv; dnnl_deconvolution_desc_t deconv; } d;
    const char *what = c->forward ? "convolution" : "deconvolution";
    if (c->forward)
        DNNL_TRY(dnnl_dilated_convolution_forward_desc_init(
                     &d.conv, dnnl_forward_inference, dnnl_convolution_direct, src, wany, NULL,
                     &p->dst_md, strides, dil, pl, pr), "convolution descriptor");
    else
        DNNL_TRY(dnnl_dilated_deconvolution_forward_desc_init(
                     &d.deconv, dnnl_forward_inference, dnnl_deconvolution_direct, src, wany,
                     NULL, &p->dst_md, strides, dil, pl, pr), "deconvolution descriptor");
    rc = narrow_desc(&d, attr, p->out_sp[c->rank - 1], pd, what, err);
out:
    return rc;
}

static int build_main(struct dcv_engine_kernel *k, struct plan *p, char *err)
{
    const struct dcv_conv *c = &k->conv;
    dnnl_memory_desc_t wany;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_dims_t wd;
    int rc = 0;
    bool bf16 = c->dtype == DCV_DTYPE_BFLOAT16 && !k->emulate_bf16;

    DNNL_TRY(dnnl_memory_desc_init_by_tag(&wany, weight_dims(c, wd), wd,
                                          bf16 ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any),
             "weights descriptor");
    if ((rc = user_attr(&attr, err)) || (rc = main_desc(c, p, bf16, &wany, &pd, attr, err)))
        goto out;
    p->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
        impl) {
        pthread_mutex_lock(&k->lock);
        snprintf(k->stats.impl, sizeof k->stats.impl, "%s%s", impl,
                 k->emulate_bf16 ? " (bf16 emulated)" : "");
        pthread_mutex_unlock(&k->lock);
        /* what ONEDNN_VERBOSE would say, once per plan: a ref: or gemm: here
         * explains a slow model */
        DCV_LOG(DCV_LOG_DEBUG, "primitive created", KV_S("impl", impl),
                KV_I("batch", p->batch), KV_I("in0", p->in_sp[0]), KV_I("out0", p->out_sp[0]),
                KV_I("threads", p->nthreads), KV_S("dtype", bf16 ? "bf16" : "f32"));
    }
    rc = finish(pd, P_MAIN, p, err);
    pd = NULL;
out:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return rc;
}

static int build_to_bf16(struct plan *p, char *err)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    int rc = 0;
    if ((rc = user_attr(&attr, err))) goto out;
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, &p->src_md, dcv_engine_cpu(), &p->bf16_md,
                                                dcv_engine_cpu(), attr), "bf16 input reorder");
    p->bf16_bytes = dnnl_memory_desc_get_size(&p->bf16_md);
    rc = finish(pd, P_BF16, p, err);
    pd = NULL;
out:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return rc;
}

static int build_plan(struct dcv_engine_kernel *k, int64_t batch, const int64_t *in_sp,
                      const int64_t *out_sp, struct plan **out, char *err)
{
    const struct dcv_conv *c = &k->conv;
    struct plan *p = calloc(1, sizeof *p);
    dnnl_dims_t d;
    int rc = 0;
    if (!p) return dcv_errf(err, DCV_ENOMEM, "out of memory building a plan");
    p->id = atomic_fetch_add(&g_plan_ids, 1) + 1;
    atomic_init(&p->item_ns, 0);
    p->batch = batch;
    p->nthreads = omp_get_max_threads();
    memcpy(p->in_sp, in_sp, sizeof(int64_t) * c->rank);
    memcpy(p->out_sp, out_sp, sizeof(int64_t) * c->rank);
    logical_dims(batch, c->in_channels, in_sp, c->rank, d);
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&p->src_md, c->rank + 2, d, dnnl_f32, data_tag(c)),
             "source descriptor");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&p->bf16_md, c->rank + 2, d, dnnl_bf16, data_tag(c)),
             "source descriptor");
    logical_dims(batch, c->filters, out_sp, c->rank, d);
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&p->dst_md, c->rank + 2, d, dnnl_f32, data_tag(c)),
             "destination descriptor");
    p->dst_values = dnnl_memory_desc_get_size(&p->dst_md) / sizeof(float);
    for (int i = 0; i < c->rank + 2; i++) d[i] = i == 1 ? c->filters : 1;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&p->bias_md, c->rank + 2, d, dnnl_f32, data_tag(c)),
             "bias descriptor");
    if ((rc = build_main(k, p, err))) goto out;
    if (c->dtype == DCV_DTYPE_BFLOAT16) {
        if (!k->emulate_bf16) rc = build_to_bf16(p, err);
        else p->bf16_bytes = dnnl_memory_desc_get_size(&p->src_md);   /* rounded copy */
        if (rc) goto out;
    }
    if ((rc = build_post(k, p, err))) goto out;
    pthread_mutex_lock(&k->lock);
    rc = packed_weights(k, &p->wei_md, err);
    pthread_mutex_unlock(&k->lock);
    if (rc < 0) goto out;
    p->wei = rc;
    rc = 0;
out:
    if (rc) dcv_engine_plan_free(p);
    else *out = p;
    return rc;
}

static bool plan_matches(const struct plan *p, int rank, int64_t batch, const int64_t *in_sp,
                         const int64_t *out_sp, int nthreads)
{
    if (p->batch != batch || p->nthreads != nthreads) return false;
    for (int i = 0; i < rank; i++)
        if (p->in_sp[i] != in_sp[i] || p->out_sp[i] != out_sp[i]) return false;
    return true;
}

static struct plan *lookup_locked(struct dcv_engine_kernel *k, int64_t batch,
                                  const int64_t *in_sp, const int64_t *out_sp)
{
    int nt = omp_get_max_threads();
    for (size_t i = 0; i < k->nplans; i++)
        if (plan_matches(k->plans[i], k->conv.rank, batch, in_sp, out_sp, nt)) {
            k->plans[i]->refs++;
            k->plans[i]->last_used = ++k->tick;
            return k->plans[i];
        }
    return NULL;
}

/* Inserts p (refs already 1), evicting least recently used idle plans until
 * there is room under cap. If every plan is busy the cache grows past cap
 * for a while; the next insert with idle plans shrinks it back. */
static void insert_locked(struct dcv_engine_kernel *k, struct plan *p)
{
    while (k->nplans >= k->cap) {
        size_t victim = k->nplans;
        for (size_t i = 0; i < k->nplans; i++)
            if (!k->plans[i]->refs &&
                (victim == k->nplans || k->plans[i]->last_used < k->plans[victim]->last_used))
                victim = i;
        if (victim == k->nplans) break;
        dcv_engine_plan_free(k->plans[victim]);
        k->plans[victim] = k->plans[--k->nplans];
        k->stats.evictions++;
    }
    p->last_used = ++k->tick;
    k->plans[k->nplans++] = p;
}

int dcv_engine_plan_acquire(struct dcv_engine_kernel *k, int64_t batch, const int64_t *in_sp,
                   const int64_t *out_sp, struct plan **out, char *err)
{
    struct plan *p, *fresh = NULL;
    pthread_mutex_lock(&k->lock);
    p = lookup_locked(k, batch, in_sp, out_sp);
    if (p) k->stats.cache_hits++;
    pthread_mutex_unlock(&k->lock);
    if (p) {
        *out = p;
        return 0;
    }
    int rc = build_plan(k, batch, in_sp, out_sp, &fresh, err);
    if (rc) return rc;
    pthread_mutex_lock(&k->lock);
    k->stats.cache_misses++;
    p = lookup_locked(k, batch, in_sp, out_sp);   /* another thread may have won */
    if (!p && k->nplans < 2 * k->cap + 64) {
        fresh->refs = 1;
        insert_locked(k, fresh);
        p = fresh;
        fresh = NULL;
    } else if (!p) {
        fresh->refs = 1;                         /* cache saturated: use once */
        p = fresh;
        fresh = NULL;
        p->last_used = 0;
        p->nthreads = -1;                        /* marks an uncached plan */
    }
    k->stats.cache_entries = k->nplans;
    pthread_mutex_unlock(&k->lock);
    dcv_engine_plan_free(fresh);
    *out = p;
    return 0;
}

void dcv_engine_plan_release(struct dcv_engine_kernel *k, struct plan *p)
{
    if (p->nthreads == -1) {
        dcv_engine_plan_free(p);
        return;
    }
    pthread_mutex_lock(&k->lock);
    p->refs--;
    pthread_mutex_unlock(&k->lock);
}

