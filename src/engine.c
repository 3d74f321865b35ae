/* engine.c — oneDNN deconvolution primitives behind dcv_engine_*.
 *
 * Design: one process-wide CPU engine. A kernel owns the Keras-layout
 * weights, the packed copies oneDNN asked for (usually one) and an LRU cache
 * of execution plans keyed by (batch, in size, out size, OpenMP threads),
 * because a JIT primitive is specialised to shapes and fixes its thread
 * count when it is created. A plan is: deconvolution without bias (fused
 * bias/eltwise run a slow reference path in oneDNN 2.6), then bias and
 * activation in one in-place pass — our own vectorized loop for the
 * memory-bound ReLU family and linear, else a binary_add carrying the
 * activation as eltwise post-ops — then softmax or a portable pass for
 * what post-ops cannot express. bf16 layers run natively where oneDNN has
 * bf16 kernels and are emulated elsewhere (f32 compute on bf16-rounded
 * weights and inputs: the same products and f32 accumulation).
 * Primitives use user-mode scratchpads so that one plan can run on several
 * threads at once; each thread keeps its scratchpad, bf16 staging buffer,
 * stream and the memory objects of its last plans in thread-specific
 * storage, freed when the thread exits. The cache mutex is held only for
 * lookups; plans are built outside it.
 * A run checks its caller's stop flag before it starts; a long one (see
 * chunk.h) runs as chunks of batch items, one execution each, with a check
 * before each: a batch-1 plan times a few items (or remembers the last
 * time of its shape), then chunks sized from that run on a second plan.
 * The only module that includes dnnl.h; dnnl_status_t is translated here.
 */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "deconvd/budget.h"
#include "deconvd/chunk.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/log.h"
#include "deconvd/sched.h"

#define MAX_POSTOPS 3
#define DEFAULT_CACHE 16
#define DCV_SMALL_WORK 2000000 /* multiply-adds; see dcv_engine_run */
/* Values from which the bias pass is split over threads. The pass is
 * memory-bound, and a second fork/join after the primitive's own costs
 * tens of microseconds (far more when the other core is busy): dcgan_up's
 * 262144 values ran engine/raw ~1.03 on one thread vs ~1.08 split, while
 * vol_up's 524288 ran ~1.07 split vs ~1.09-1.2 on one thread (2 threads). */
#define EPILOGUE_PAR (1 << 19)
#define TLS_MEMS 4             /* plans whose memory objects a thread keeps */

enum { P_BF16, P_DECONV, P_POST, P_SOFTMAX, NPRIM };

struct plan {
    uint64_t id;               /* unique for the process: keys per-thread state */
    int64_t batch, in_sp[DCV_MAX_SPATIAL], out_sp[DCV_MAX_SPATIAL];
    int nthreads;
    dnnl_primitive_t prim[NPRIM];
    dnnl_memory_desc_t scratch_md[NPRIM];
    dnnl_memory_desc_t src_md, dst_md, bf16_md, bias_md, wei_md;
    int wei;                   /* index into kernel->packed */
    size_t scratch_bytes, bf16_bytes;
    size_t dst_values;         /* of the output, for the passes after the primitive */
    int refs;
    uint64_t last_used;
    atomic_uint_fast64_t item_ns; /* batch 1: an item's time in the last chunked run */
};

struct packed {
    dnnl_memory_desc_t md;
    void *data;
};

/* Eltwise post-ops (oneDNN algorithm and its two parameters). */
struct chain { int n; dnnl_alg_kind_t alg[MAX_POSTOPS]; float a[MAX_POSTOPS], b[MAX_POSTOPS]; };

struct dcv_engine_kernel {
    struct dcv_conv conv;
    bool emulate_bf16;         /* set once at creation, before any plan is shared */
    /* How bias + activation run, fixed at creation: epilogue(), else a
     * binary_add carrying `post`, followed by dcv_activation_apply when
     * `portable` (what eltwise post-ops cannot express). */
    bool own_epilogue, portable;
    struct chain post;
    float *keras_kernel;       /* (*k, filters, in_channels) */
    float *bias;               /* filters values, zeros when !use_bias, repeated */
    size_t bias_reps;          /* ... this many times: rows per vector-wide tile */
    pthread_mutex_t lock;      /* guards everything below */
    struct packed packed[4];
    int npacked;
    struct plan **plans;
    size_t nplans, cap;
    uint64_t tick;
    struct dcv_engine_stats stats;
    atomic_uint_fast64_t ps_per_madd;   /* speed of the last timed run; 0 = none yet */
};

/* A thread's memory objects for one plan; run_plan swaps the data handles
 * that change per call instead of creating objects per call, and only
 * when they change: oneDNN 2.6 builds a hash map for every
 * dnnl_memory_set_data_handle (~0.1 us, a third of a tiny layer's run). */
enum { M_SRC, M_BF16, M_WEI, M_DST, M_BIAS, M_SCRATCH, NMEM = M_SCRATCH + NPRIM };

struct mems {
    uint64_t plan_id;          /* 0: empty */
    dnnl_memory_t m[NMEM];
    void *handle[NMEM];        /* what m[i] points at now (plain layouts: no padding) */
};

/* Per-thread execution state. */
struct buffer {
    void *p;
    size_t cap;
    bool held;                 /* its bytes are taken from the memory budget */
};

struct tls {
    dnnl_stream_t stream;
    struct buffer scratch, bf16;
    struct mems mems[TLS_MEMS];
    unsigned next_mems;
};

static dnnl_engine_t g_engine;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_tls_key;
static dnnl_status_t g_init_status = dnnl_runtime_error;
static atomic_int g_fail_allocs;
static atomic_bool g_force_emulation;
static atomic_size_t g_epilogue_par = EPILOGUE_PAR;
static atomic_uint_fast64_t g_plan_ids;
static atomic_int_fast64_t g_chunk_items;     /* test hook: fixed chunks; 0 = timed */
static atomic_uint_fast64_t g_chunk_window = DCV_CHUNK_WINDOW_NS;

static int dnnl_error(dnnl_status_t st, char *err, const char *what)
{
    static const char *const names[] = {
        [dnnl_success] = "success", [dnnl_out_of_memory] = "out of memory",
        [dnnl_invalid_arguments] = "invalid arguments", [dnnl_unimplemented] = "unimplemented",
        [dnnl_iterator_ends] = "iterator ends", [dnnl_runtime_error] = "runtime error",
        [dnnl_not_required] = "not required",
    };
    const char *name = (unsigned)st < sizeof names / sizeof *names && names[st] ? names[st]
                                                                               : "unknown";
    int code = st == dnnl_out_of_memory ? DCV_ENOMEM
             : st == dnnl_unimplemented ? DCV_EUNSUPP : DCV_EENGINE;
    return dcv_errf(err, code, "oneDNN %s failed: %s (status %d)", what, name, (int)st);
}

#define DNNL_TRY(call, what)                                          \
    do {                                                              \
        dnnl_status_t st_ = (call);                                   \
        if (st_ != dnnl_success) { rc = dnnl_error(st_, err, what); goto out; } \
    } while (0)

static void mems_clear(struct mems *m)
{
    for (int i = 0; i < NMEM; i++)
        if (m->m[i]) dnnl_memory_destroy(m->m[i]);
    memset(m, 0, sizeof *m);
}

static void tls_free(void *p)
{
    struct tls *t = p;
    for (int i = 0; i < TLS_MEMS; i++) mems_clear(&t->mems[i]);
    if (t->stream) dnnl_stream_destroy(t->stream);
    free(t->scratch.p);
    free(t->bf16.p);
    free(t);
}

static void init_once(void)
{
    if (pthread_key_create(&g_tls_key, tls_free) != 0) return;
    g_init_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
}

int dcv_engine_init(char *err)
{
    pthread_once(&g_once, init_once);
    if (g_init_status != dnnl_success)
        return dnnl_error(g_init_status, err, "engine creation");
    return 0;
}

void dcv_engine_set_threads(int n) { if (n > 0) omp_set_num_threads(n); }
int dcv_engine_threads(void) { return omp_get_max_threads(); }
void dcv_engine_inject_alloc_failures(int n) { atomic_store(&g_fail_allocs, n); }
void dcv_engine_force_bf16_emulation(bool on) { atomic_store(&g_force_emulation, on); }
void dcv_engine_set_epilogue_split(size_t v) { atomic_store(&g_epilogue_par, v ? v : EPILOGUE_PAR); }
void dcv_engine_set_chunk_items(int64_t n) { atomic_store(&g_chunk_items, n > 0 ? n : 0); }
void dcv_engine_set_chunk_window(uint64_t ns)
{
    atomic_store(&g_chunk_window, ns ? ns : DCV_CHUNK_WINDOW_NS);
}

/* Grows *buf to at least need bytes, 64-byte aligned. */
/* Execution buffers a thread keeps between runs. A bigger one (a rare
 * huge run: oneDNN's scratchpad can be many times the tensors, 1.2 GB for
 * an 18 MB bf16 input) takes its bytes from the memory budget for the run
 * and is freed when the run ends, so that memory comes back after it
 * instead of staying with the thread. */
#define TLS_KEEP ((size_t)16 << 20)

static void shed(struct buffer *b)
{
    if (b->cap <= TLS_KEEP) return;
    free(b->p);
    if (b->held) dcv_budget_give(b->cap);
    *b = (struct buffer){ 0 };
}

static void shed_big_buffers(void)
{
    struct tls *t = pthread_getspecific(g_tls_key);
    if (!t) return;
    shed(&t->scratch);                        /* mems re-point at the next run */
    shed(&t->bf16);
}

size_t dcv_engine_thread_bytes(void)
{
    struct tls *t = pthread_getspecific(g_tls_key);
    return t ? t->scratch.cap + t->bf16.cap : 0;
}

static int reserve(struct buffer *b, size_t need, const char *what, char *err)
{
    if (need <= b->cap) return 0;
    if (atomic_load(&g_fail_allocs) > 0 && atomic_fetch_sub(&g_fail_allocs, 1) > 0)
        return dcv_errf(err, DCV_ENOMEM, "out of memory for execution buffers");
    size_t sz = (need + 4095) & ~(size_t)4095, limit = dcv_budget_limit();
    bool held = sz > TLS_KEEP;
    if (held && limit && sz > limit)
        return dcv_errf(err, DCV_ETOOBIG, "the computation needs %zu bytes of %s, above "
                        "memory_budget_bytes (%zu)", sz, what, limit);
    if (held && !dcv_budget_take(sz))
        return dcv_errf(err, DCV_EBUSY, "server busy: the computation needs %zu bytes of %s "
                        "and memory_budget_bytes (%zu) is taken by other requests; retry later",
                        sz, what, limit);
    void *p = NULL;
    if (posix_memalign(&p, 64, sz) != 0) {
        if (held) dcv_budget_give(sz);
        return dcv_errf(err, DCV_ENOMEM, "out of memory for %zu bytes of %s", sz, what);
    }
    free(b->p);
    if (b->held) dcv_budget_give(b->cap);
    *b = (struct buffer){ p, sz, held };
    return 0;
}

static struct tls *tls_get(char *err)
{
    struct tls *t = pthread_getspecific(g_tls_key);
    if (t) return t;
    if (!(t = calloc(1, sizeof *t))) return NULL;
    dnnl_status_t st = dnnl_stream_create(&t->stream, g_engine, dnnl_stream_default_flags);
    if (st != dnnl_success || pthread_setspecific(g_tls_key, t) != 0) {
        dnnl_error(st, err, "stream creation");
        tls_free(t);
        return NULL;
    }
    return t;
}

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

/* The Keras kernel (*k, O, I) seen as oneDNN's (O, I, *k) through strides. */
static void keras_weights_md(const struct dcv_conv *c, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims, strides;
    int64_t step = c->filters * c->in_channels;
    dims[0] = c->filters;
    dims[1] = c->in_channels;
    strides[0] = c->in_channels;
    strides[1] = 1;
    for (int i = c->rank - 1; i >= 0; i--) {
        dims[2 + i] = c->kernel[i];
        strides[2 + i] = step;
        step *= c->kernel[i];
    }
    dnnl_memory_desc_init_by_strides(md, c->rank + 2, dims, dnnl_f32, strides);
}

static void push(struct chain *ch, dnnl_alg_kind_t alg, float a, float b)
{
    ch->alg[ch->n] = alg, ch->a[ch->n] = a, ch->b[ch->n] = b, ch->n++;
}

/* Eltwise post-ops expressing the activation; false if they cannot. The
 * ReLU family is not among them: it always runs in epilogue() (see
 * own_epilogue), because oneDNN's eltwise relu computes x * alpha below zero,
 * -0 for alpha 0, where TensorFlow answers +0. */
static bool fusable(const struct dcv_activation *act, struct chain *ch)
{
    ch->n = 0;
    switch (act->kind) {
    case DCV_ACT_LINEAR: return true;
    case DCV_ACT_SIGMOID: push(ch, dnnl_eltwise_logistic, 0, 0); return true;
    case DCV_ACT_TANH: push(ch, dnnl_eltwise_tanh, 0, 0); return true;
    case DCV_ACT_SOFTPLUS: push(ch, dnnl_eltwise_soft_relu, 0, 0); return true;
    case DCV_ACT_ELU: push(ch, dnnl_eltwise_elu, act->alpha, 0); return true;
    case DCV_ACT_SELU:
        push(ch, dnnl_eltwise_elu, 1.6732632423543772f, 0);
        push(ch, dnnl_eltwise_linear, 1.0507009873554805f, 0);
        return true;
    case DCV_ACT_EXPONENTIAL: push(ch, dnnl_eltwise_exp, 0, 0); return true;
    case DCV_ACT_HARD_SIGMOID:       /* Keras 3: relu6(x + 3) / 6; tf.keras 2: 0.2x + 0.5 */
        push(ch, dnnl_eltwise_linear, act->keras == DCV_KERAS_3 ? 1.0f / 6 : 0.2f, 0.5f);
        push(ch, dnnl_eltwise_clip, 0.0f, 1.0f);
        return true;
    case DCV_ACT_SPARSE_SIGMOID:     /* 0.5(x + 1) clipped to [0, 1] */
        push(ch, dnnl_eltwise_linear, 0.5f, 0.5f);
        push(ch, dnnl_eltwise_clip, 0.0f, 1.0f);
        return true;
    case DCV_ACT_HARD_TANH: push(ch, dnnl_eltwise_clip, -1.0f, 1.0f); return true;
    case DCV_ACT_CELU:               /* max(x, 0) + expm1(min(x, 0)): elu(1) */
        if (act->alpha != 1.0f) return false;
        push(ch, dnnl_eltwise_elu, 1.0f, 0);
        return true;
    case DCV_ACT_SWISH: push(ch, dnnl_eltwise_swish, 1.0f, 0); return true;
    case DCV_ACT_GELU:
        push(ch, act->approximate ? dnnl_eltwise_gelu_tanh : dnnl_eltwise_gelu_erf, 0, 0);
        return true;
    case DCV_ACT_MISH: push(ch, dnnl_eltwise_mish, 0, 0); return true;
    case DCV_ACT_HARD_SILU: push(ch, dnnl_eltwise_hardswish, 0, 0); return true;
    case DCV_ACT_LOG_SIGMOID: push(ch, dnnl_eltwise_logsigmoid, 0, 0); return true;
    default: return false;
    }
}

static void plan_free(struct plan *p)
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
        DNNL_TRY(dnnl_primitive_desc_create(&pd, &bd, attr, g_engine, NULL), "bias add");
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
        DNNL_TRY(dnnl_primitive_desc_create(&pd, &sd, attr, g_engine, NULL), "softmax");
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
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, &kmd, g_engine, md, g_engine, NULL),
             "weights reorder descriptor");
    DNNL_TRY(dnnl_primitive_create(&r, pd), "weights reorder");
    DNNL_TRY(dnnl_memory_create(&from, &kmd, g_engine, k->keras_kernel), "memory");
    DNNL_TRY(dnnl_memory_create(&to, md, g_engine, buf), "memory");
    DNNL_TRY(dnnl_stream_create(&s, g_engine, dnnl_stream_default_flags), "stream");
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

static int build_deconv(struct dcv_engine_kernel *k, struct plan *p, char *err)
{
    const struct dcv_conv *c = &k->conv;
    dnnl_memory_desc_t wany;
    dnnl_deconvolution_desc_t dd;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_dims_t wd, strides, dil, pl, pr;
    int64_t pad_l[DCV_MAX_SPATIAL], pad_r[DCV_MAX_SPATIAL];
    int rc = 0;
    bool bf16 = c->dtype == DCV_DTYPE_BFLOAT16 && !k->emulate_bf16;

    dcv_conv_pads(c, p->in_sp, p->out_sp, pad_l, pad_r);
    for (int i = 0; i < c->rank; i++) {
        strides[i] = c->strides[i];
        dil[i] = c->dilation[i] - 1;      /* oneDNN dilation is 0-based */
        pl[i] = pad_l[i];
        pr[i] = pad_r[i];
    }
    wd[0] = c->filters;
    wd[1] = c->in_channels;
    for (int i = 0; i < c->rank; i++) wd[2 + i] = c->kernel[i];
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&wany, c->rank + 2, wd, bf16 ? dnnl_bf16 : dnnl_f32,
                                          dnnl_format_tag_any), "weights descriptor");
    if ((rc = user_attr(&attr, err))) goto out;
    DNNL_TRY(dnnl_dilated_deconvolution_forward_desc_init(
                 &dd, dnnl_forward_inference, dnnl_deconvolution_direct,
                 bf16 ? &p->bf16_md : &p->src_md, &wany, NULL, &p->dst_md, strides, dil, pl, pr),
             "deconvolution descriptor");
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &dd, attr, g_engine, NULL), "deconvolution");
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
    rc = finish(pd, P_DECONV, p, err);
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
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, &p->src_md, g_engine, &p->bf16_md,
                                                g_engine, attr), "bf16 input reorder");
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
    if ((rc = build_deconv(k, p, err))) goto out;
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
    if (rc) plan_free(p);
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
        plan_free(k->plans[victim]);
        k->plans[victim] = k->plans[--k->nplans];
        k->stats.evictions++;
    }
    p->last_used = ++k->tick;
    k->plans[k->nplans++] = p;
}

static int acquire(struct dcv_engine_kernel *k, int64_t batch, const int64_t *in_sp,
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
    plan_free(fresh);
    *out = p;
    return 0;
}

static void release(struct dcv_engine_kernel *k, struct plan *p)
{
    if (p->nthreads == -1) {
        plan_free(p);
        return;
    }
    pthread_mutex_lock(&k->lock);
    p->refs--;
    pthread_mutex_unlock(&k->lock);
}

/* The thread's memory objects for p, created on its first run of p. The
 * weights and bias handles never change; the others are set per run. */
static struct mems *mems_get(struct tls *t, const struct dcv_engine_kernel *k,
                             const struct plan *p, char *err)
{
    for (int i = 0; i < TLS_MEMS; i++)
        if (t->mems[i].plan_id == p->id) return &t->mems[i];
    struct mems *m = &t->mems[t->next_mems++ % TLS_MEMS];
    const dnnl_memory_desc_t *md[NMEM] = {
        [M_SRC] = &p->src_md, [M_BF16] = &p->bf16_md, [M_WEI] = &k->packed[p->wei].md,
        [M_DST] = &p->dst_md, [M_BIAS] = &p->bias_md,
    };
    void *data[NMEM] = { [M_WEI] = k->packed[p->wei].data, [M_BIAS] = k->bias };
    int rc = 0;
    mems_clear(m);
    for (int i = 0; i < NPRIM; i++) md[M_SCRATCH + i] = &p->scratch_md[i];
    for (int i = 0; i < NMEM; i++)
        if (i != M_BF16 || p->prim[P_BF16])
            DNNL_TRY(dnnl_memory_create(&m->m[i], md[i], g_engine,
                                        data[i] ? data[i] : DNNL_MEMORY_NONE), "memory");
    m->plan_id = p->id;
out:
    if (rc) mems_clear(m);
    return rc ? NULL : m;
}

static int point(struct mems *m, int i, void *handle, char *err)
{
    int rc = 0;
    if (m->handle[i] == handle) return 0;
    DNNL_TRY(dnnl_memory_set_data_handle(m->m[i], handle), "memory");
    m->handle[i] = handle;
out:
    return rc;
}

static int exec(const struct plan *p, int which, struct tls *t, struct mems *m,
                dnnl_exec_arg_t *args, int n, char *err)
{
    int rc = 0;
    args[n].arg = DNNL_ARG_SCRATCHPAD;
    args[n].memory = m->m[M_SCRATCH + which];
    if ((rc = point(m, M_SCRATCH + which, t->scratch.p, err))) goto out;
    DNNL_TRY(dnnl_primitive_execute(p->prim[which], t->stream, n + 1, args), "execution");
out:
    return rc;
}

/* Round to nearest even at bf16 precision, kept in f32 — what oneDNN's
 * f32→bf16 reorder does, for the emulated path. */
static void round_bf16(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) u |= 0x00400000u; /* NaN */
        else u += 0x7fffu + ((u >> 16) & 1u);
        u &= 0xffff0000u;
        memcpy(&dst[i], &u, sizeof u);
    }
}

/* The loops below must vectorize (branchy scalar code runs ~20x slower on
 * this memory-bound pass); -O2's cost model alone does not do it. */
#ifdef _OPENMP
#define SIMD _Pragma("omp simd")
#else
#define SIMD
#endif

/* Keras's ReLU family, dcv_activation_relu (+0 below the threshold, as
 * TensorFlow answers) in the form the parameters need, chosen once per call
 * (one loop per form: the vectorized loop must not carry the others'
 * work); NULL = bias only. Rows of c values with one bias value per column
 * (channels last). */
#define RELU_ROWS(form)                                                       \
    for (size_t i = 0; i < rows; i++, y += c)                                 \
        SIMD for (size_t j = 0; j < c; j++) y[j] = form(v, y[j] + b[j])
__attribute__((target_clones("avx512f", "avx2", "default")))
static void bias_rows(float *restrict y, const float *restrict b, size_t rows, size_t c,
                      const struct dcv_relu *r)
{
    if (!r) {
        for (size_t i = 0; i < rows; i++, y += c)
            SIMD for (size_t j = 0; j < c; j++) y[j] += b[j];
        return;
    }
    const struct dcv_relu v = *r;
    switch (v.form) {
    case DCV_RELU_MAX0: RELU_ROWS(dcv_activation_relu_max0); break;
    case DCV_RELU_LEAKY: RELU_ROWS(dcv_activation_relu_leaky); break;
    default: RELU_ROWS(dcv_activation_relu_general); break;
    }
}

/* n values sharing bias value b (part of a channels-first plane). */
#define RELU_PLANE(form) SIMD for (size_t i = 0; i < n; i++) y[i] = form(v, y[i] + b)
__attribute__((target_clones("avx512f", "avx2", "default")))
static void bias_plane(float *restrict y, float b, size_t n, const struct dcv_relu *r)
{
    if (!r) {
        SIMD for (size_t i = 0; i < n; i++) y[i] += b;
        return;
    }
    const struct dcv_relu v = *r;
    switch (v.form) {
    case DCV_RELU_MAX0: RELU_PLANE(dcv_activation_relu_max0); break;
    case DCV_RELU_LEAKY: RELU_PLANE(dcv_activation_relu_leaky); break;
    default: RELU_PLANE(dcv_activation_relu_general); break;
    }
}

/* Every kind of the ReLU family, whatever its parameters: fusable() has no
 * post-op for them. */
static bool own_epilogue(const struct dcv_activation *a)
{
    return a->kind == DCV_ACT_LINEAR || a->kind == DCV_ACT_RELU ||
           a->kind == DCV_ACT_LEAKY_RELU || a->kind == DCV_ACT_RELU6 ||
           a->kind == DCV_ACT_SOFTMAX;         /* its bias; softmax itself follows */
}

/* Units [lo, hi) of the output: rows (channels last) or values (first). */
static void epilogue_range(const struct dcv_engine_kernel *k, const struct plan *p, float *y,
                           size_t lo, size_t hi, const struct dcv_relu *r)
{
    const struct dcv_conv *c = &k->conv;
    size_t ch = (size_t)c->filters, plane = 1;
    if (!c->channels_first) {      /* whole tiles of bias_reps rows, then the rest */
        size_t g = k->bias_reps, whole = (hi - lo) / g * g;
        bias_rows(y + lo * ch, k->bias, whole / g, ch * g, r);
        bias_rows(y + (lo + whole) * ch, k->bias, hi - lo - whole, ch, r);
        return;
    }
    for (int i = 0; i < c->rank; i++) plane *= (size_t)p->out_sp[i];
    for (size_t i = lo; i < hi;) {
        size_t end = (i / plane + 1) * plane;
        if (end > hi) end = hi;
        bias_plane(y + i, k->bias[(i / plane) % ch], end - i, r);
        i = end;
    }
}

/* dst = act(dst + bias) in one pass over the plan's threads. Memory-bound:
 * it costs what reading and writing dst once costs. */
static void epilogue(const struct dcv_engine_kernel *k, const struct plan *p, float *y)
{
    const struct dcv_activation *a = &k->conv.act;
    bool relu = a->kind != DCV_ACT_LINEAR && a->kind != DCV_ACT_SOFTMAX;
    struct dcv_relu r = dcv_activation_relu_params(a);
    if (!k->conv.use_bias && !relu) return;
    size_t total = p->dst_values;
    size_t units = k->conv.channels_first ? total : total / (size_t)k->conv.filters;
    int nt = total >= atomic_load(&g_epilogue_par) && p->nthreads > 1 ? p->nthreads : 1;
    if (nt == 1) {          /* no libgomp at all: it keeps per-thread state forever */
        epilogue_range(k, p, y, 0, units, relu ? &r : NULL);
        return;
    }
#ifdef _OPENMP                 /* the Makefile builds this file with -fopenmp */
    #pragma omp parallel num_threads(nt)
#endif
    {
        size_t id = (size_t)omp_get_thread_num(), n = (size_t)omp_get_num_threads();
        epilogue_range(k, p, y, units * id / n, units * (id + 1) / n, relu ? &r : NULL);
    }
}

static int run_plan(struct dcv_engine_kernel *k, struct plan *p, const float *src, float *dst,
                    char *err)
{
    const struct dcv_conv *c = &k->conv;
    struct tls *t = tls_get(err);
    struct mems *m;
    dnnl_exec_arg_t a[4];
    int rc = 0;
    if (!t) return dcv_errf(err, DCV_ENOMEM, "out of memory for thread state");
    if ((rc = reserve(&t->scratch, p->scratch_bytes + 64, "scratchpad", err)) ||
        (rc = reserve(&t->bf16, p->bf16_bytes + 64, "bf16 staging", err)))
        return rc;
    if (!(m = mems_get(t, k, p, err))) return DCV_EENGINE;
    dnnl_memory_t msrc = m->m[M_SRC];
    if (k->emulate_bf16) {
        round_bf16(t->bf16.p, src, p->bf16_bytes / sizeof(float));
        src = t->bf16.p;
    }
    if ((rc = point(m, M_SRC, (void *)src, err)) || (rc = point(m, M_DST, dst, err))) goto out;
    if (p->prim[P_BF16]) {
        if ((rc = point(m, M_BF16, t->bf16.p, err))) goto out;
        a[0] = (dnnl_exec_arg_t){ DNNL_ARG_FROM, msrc };
        a[1] = (dnnl_exec_arg_t){ DNNL_ARG_TO, m->m[M_BF16] };
        if ((rc = exec(p, P_BF16, t, m, a, 2, err))) goto out;
        msrc = m->m[M_BF16];
    }
    a[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, msrc };
    a[1] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, m->m[M_WEI] };
    a[2] = (dnnl_exec_arg_t){ DNNL_ARG_DST, m->m[M_DST] };
    if ((rc = exec(p, P_DECONV, t, m, a, 3, err))) goto out;
    if (k->own_epilogue) {
        DNNL_TRY(dnnl_stream_wait(t->stream), "execution");
        epilogue(k, p, dst);
    } else if (p->prim[P_POST]) {
        a[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC_0, m->m[M_DST] };
        a[1] = (dnnl_exec_arg_t){ DNNL_ARG_SRC_1, m->m[M_BIAS] };
        a[2] = (dnnl_exec_arg_t){ DNNL_ARG_DST, m->m[M_DST] };
        if ((rc = exec(p, P_POST, t, m, a, 3, err))) goto out;
    }
    if (p->prim[P_SOFTMAX]) {
        a[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, m->m[M_DST] };
        a[1] = (dnnl_exec_arg_t){ DNNL_ARG_DST, m->m[M_DST] };
        if ((rc = exec(p, P_SOFTMAX, t, m, a, 2, err))) goto out;
    }
    DNNL_TRY(dnnl_stream_wait(t->stream), "execution");
    if (k->portable) {       /* axial kinds run on the last axis as laid out */
        size_t last = (size_t)(c->channels_first ? p->out_sp[c->rank - 1] : c->filters);
        dcv_activation_apply(&c->act, dst, p->dst_values / last, last, 1);
    }
out:
    return rc;
}

static bool stopped(const atomic_bool *stop)
{
    return stop && atomic_load_explicit(stop, memory_order_relaxed);
}

static int canceled(char *err, int64_t done, int64_t batch)
{
    return dcv_errf(err, DCV_ECANCELED, "stopped after %lld of %lld batch items",
                    (long long)done, (long long)batch);
}

/* What the next dcv_chunk_wanted of this kernel goes by. Relaxed: a stale
 * figure only moves one decision. */
static void note_speed(struct dcv_engine_kernel *k, uint64_t work, uint64_t ns)
{
    if (work)
        atomic_store_explicit(&k->ps_per_madd, ns * 1000 / work + 1, memory_order_relaxed);
}

/* One chunked run: the caller's buffers and what one item holds. */
struct span {
    const float *src;
    float *dst;
    size_t in_item, out_item;       /* values per item */
    uint64_t item_work;             /* multiply-adds per item */
    int64_t batch, done;
    const atomic_bool *stop;
};

/* Items [done, done + n) with p (batch n) after a stop check; *ns gets
 * the execution's time. */
static int run_step(struct dcv_engine_kernel *k, struct plan *p, struct span *s, int64_t n,
                    uint64_t *ns, char *err)
{
    if (stopped(s->stop)) return canceled(err, s->done, s->batch);
    uint64_t t0 = dcv_now_ns();
    int rc = run_plan(k, p, s->src + (size_t)s->done * s->in_item,
                      s->dst + (size_t)s->done * s->out_item, err);
    if (rc) return rc;
    *ns = dcv_now_ns() - t0;
    note_speed(k, s->item_work * (uint64_t)n, *ns);
    s->done += n;
    pthread_mutex_lock(&k->lock);
    k->stats.chunks++;
    pthread_mutex_unlock(&k->lock);
    return 0;
}

/* Times single items with `one`, at least two and until `enough` ns have
 * passed (or the batch is done); *item_ns gets the fastest. A plan's first
 * execution on a thread also allocates its buffers and lets oneDNN
 * generate code (11 ms for an item of 0.1 ms seen), and on a small item the
 * execution's own overhead is most of what one reading sees. */
static int probe(struct dcv_engine_kernel *k, struct plan *one, struct span *s, uint64_t enough,
                 uint64_t *item_ns, char *err)
{
    uint64_t spent = 0, ns;
    *item_ns = UINT64_MAX;
    for (int n = 0; (n < 2 || spent < enough) && s->done < s->batch; n++) {
        int rc = run_step(k, one, s, 1, &ns, err);
        if (rc) return rc;
        spent += ns;
        if (ns < *item_ns) *item_ns = ns + 1;
    }
    return 0;
}

/* A long run as chunks (chunk.h): the batch-1 plan times a few items
 * unless it knows an item's time from the last chunked run of this shape,
 * then dcv_chunk_split's chunks run on a second plan and what is left over
 * on the first. Each chunk is exact on its own: the epilogue, softmax and the
 * bf16 passes work per plan, and a plan's rows are whole items. */
static int run_chunked(struct dcv_engine_kernel *k, struct span *s, const int64_t *in_sp,
                       const int64_t *out_sp, char *err)
{
    struct plan *one = NULL, *many = NULL;
    struct dcv_chunks ch;
    int64_t fixed = atomic_load(&g_chunk_items);
    uint64_t ns, spent = 0;
    int rc = acquire(k, 1, in_sp, out_sp, &one, err);
    if (rc) return rc;
    pthread_mutex_lock(&k->lock);
    k->stats.chunked_runs++;
    pthread_mutex_unlock(&k->lock);
    if (fixed) {
        dcv_chunk_fixed(s->batch, fixed, &ch);
    } else {
        uint64_t window = atomic_load(&g_chunk_window);
        uint64_t item_ns = atomic_load_explicit(&one->item_ns, memory_order_relaxed);
        if (!item_ns && (rc = probe(k, one, s, window / 32, &item_ns, err))) goto out;
        if (s->done == s->batch) goto out;
        dcv_chunk_split(s->batch - s->done, item_ns, window, &ch);
    }
    if (ch.size > 1 && (rc = acquire(k, ch.size, in_sp, out_sp, &many, err))) goto out;
    for (int64_t i = 0; i < ch.count; i++) {      /* the next run goes by their mean */
        if ((rc = run_step(k, many ? many : one, s, ch.size, &ns, err))) goto out;
        spent += ns;
        atomic_store_explicit(&one->item_ns, spent / (uint64_t)(ch.size * (i + 1)) + 1,
                              memory_order_relaxed);
    }
    for (int64_t i = 0; i < ch.singles; i++)
        if ((rc = run_step(k, one, s, 1, &ns, err))) goto out;
out:
    if (many) release(k, many);
    release(k, one);
    return rc;
}

static bool cut(const struct dcv_engine_kernel *k, int64_t batch, uint64_t work)
{
    if (batch >= 2 && atomic_load(&g_chunk_items)) return true;
    uint64_t ps = atomic_load_explicit(&k->ps_per_madd, memory_order_relaxed);
    return dcv_chunk_wanted(batch, work, ps, atomic_load(&g_chunk_window));
}

/* What every run did before chunking (with batch 1, under
 * DCV_CHUNK_MIN_WORK, or fast enough), but for two clock reads on runs
 * worth timing. */
static int run_whole(struct dcv_engine_kernel *k, const float *src, int64_t batch,
                     const int64_t *in_sp, const int64_t *out_sp, float *dst, uint64_t work,
                     char *err)
{
    struct plan *p;
    int rc = acquire(k, batch, in_sp, out_sp, &p, err);
    if (rc) return rc;
    uint64_t t0 = work >= DCV_SMALL_WORK ? dcv_now_ns() : 0;
    rc = run_plan(k, p, src, dst, err);
    if (rc == 0 && t0) note_speed(k, work, dcv_now_ns() - t0);
    release(k, p);
    return rc;
}

int dcv_engine_run(struct dcv_engine_kernel *k, const float *src, int64_t batch,
                   const int64_t *in_sp, const int64_t *out_sp, float *dst,
                   const atomic_bool *stop, char *err)
{
    /* oneDNN 2.6 indexes an image with 32-bit ints (SIGFPE found by fuzzing) */
    int64_t in_img = k->conv.in_channels, out_img = k->conv.filters;
    for (int i = 0; i < k->conv.rank; i++) in_img *= in_sp[i], out_img *= out_sp[i];
    if (in_img > INT32_MAX || out_img > INT32_MAX)
        return dcv_errf(err, DCV_ETOOBIG, "one image of %lld input / %lld output values is "
                        "above what oneDNN can index (2^31)", (long long)in_img,
                        (long long)out_img);
    if (stopped(stop)) return canceled(err, 0, batch);
    /* An OpenMP fork/join costs microseconds (milliseconds when the cores
     * are busy); below ~2M multiply-adds one thread finishes sooner. */
    uint64_t work = dcv_conv_work(&k->conv, batch, in_sp);
    int threads = omp_get_max_threads(), rc;
    bool single = threads > 1 && work < DCV_SMALL_WORK;
    if (single) omp_set_num_threads(1);
    if (cut(k, batch, work)) {
        struct span s = { src, dst, (size_t)in_img, (size_t)out_img, work / (uint64_t)batch,
                          batch, 0, stop };
        rc = run_chunked(k, &s, in_sp, out_sp, err);
    } else {
        rc = run_whole(k, src, batch, in_sp, out_sp, dst, work, err);
    }
    if (single) omp_set_num_threads(threads);
    shed_big_buffers();
    return rc;
}

/* No bf16 kernels on this CPU (before AVX-512), or forced: compute in f32
 * on bf16-rounded weights (here) and inputs (per run). Creation time only,
 * before any plan exists. */
static void emulate_bf16(struct dcv_engine_kernel *k, int64_t nk)
{
    k->emulate_bf16 = true;
    round_bf16(k->keras_kernel, k->keras_kernel, (size_t)nk);
    bool forced = atomic_load(&g_force_emulation);
    DCV_LOG(forced ? DCV_LOG_DEBUG : DCV_LOG_INFO, "bf16 emulated",
            KV_S("why", forced ? "forced" : "no bf16 kernels on this CPU"),
            KV_I("filters", k->conv.filters));
}

/* Channels-last rows narrower than a vector (tiny's 8 channels) would run
 * the bias pass one short masked loop per row; a bias repeated over
 * 16 / gcd(filters, 16) rows makes a tile that is a whole number of
 * 16-float vectors. */
static size_t tile_rows(int64_t filters)
{
    size_t f = (size_t)filters, a = f, b = 16;
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return f < 64 ? 16 / a : 1;
}

int dcv_engine_kernel_create(const struct dcv_conv *conv, const float *kernel,
                             const float *bias, size_t cache_cap, const int64_t *prepack_in,
                             struct dcv_engine_kernel **out, char *err)
{
    struct dcv_engine_kernel *k = NULL;
    int64_t nk = conv->filters * conv->in_channels, in_sp[DCV_MAX_SPATIAL], out_sp[DCV_MAX_SPATIAL];
    int rc;
    if ((rc = dcv_engine_init(err)) || (rc = dcv_conv_validate(conv, err))) return rc;
    for (int i = 0; i < conv->rank; i++) nk *= conv->kernel[i];
    if (!(k = calloc(1, sizeof *k)) || !(k->keras_kernel = malloc(sizeof(float) * nk)) ||
        !(k->bias = calloc((size_t)conv->filters * tile_rows(conv->filters), sizeof(float))) ||
        !(k->plans = calloc(2 * (cache_cap ? cache_cap : DEFAULT_CACHE) + 64, sizeof *k->plans))) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory for a kernel of %lld weights",
                      (long long)nk);
        goto fail;
    }
    k->conv = *conv;
    k->cap = cache_cap ? cache_cap : DEFAULT_CACHE;
    k->own_epilogue = own_epilogue(&conv->act);
    k->portable = !k->own_epilogue && !fusable(&conv->act, &k->post);
    memcpy(k->keras_kernel, kernel, sizeof(float) * nk);
    k->bias_reps = tile_rows(conv->filters);
    for (size_t i = 0; bias && conv->use_bias && i < k->bias_reps; i++)
        memcpy(k->bias + i * (size_t)conv->filters, bias, sizeof(float) * conv->filters);
    pthread_mutex_init(&k->lock, NULL);
    atomic_init(&k->ps_per_madd, 0);
    bool bf16 = conv->dtype == DCV_DTYPE_BFLOAT16;
    if (bf16 && atomic_load(&g_force_emulation)) emulate_bf16(k, nk);
    /* Pack weights now so the first request does not pay for it; a bf16
     * layer also finds out here whether this CPU has bf16 kernels. */
    if (!prepack_in && !bf16) {
        *out = k;
        return 0;
    }
    for (int i = 0; i < conv->rank; i++) {
        in_sp[i] = prepack_in && prepack_in[i] > 0 ? prepack_in[i] : 8;
        out_sp[i] = dcv_conv_output_length(in_sp[i], conv->kernel[i], conv->strides[i],
                                           conv->dilation[i], conv->padding, -1);
    }
    struct plan *p;
    rc = acquire(k, 1, in_sp, out_sp, &p, err);
    if (rc == DCV_EUNSUPP && bf16 && !k->emulate_bf16) {
        emulate_bf16(k, nk);
        rc = acquire(k, 1, in_sp, out_sp, &p, err);
    }
    if (rc) goto fail;
    release(k, p);
    *out = k;
    return 0;
fail:
    dcv_engine_kernel_free(k);
    return rc;
}

void dcv_engine_kernel_free(struct dcv_engine_kernel *k)
{
    if (!k) return;
    for (size_t i = 0; k->plans && i < k->nplans; i++) plan_free(k->plans[i]);
    for (int i = 0; i < k->npacked; i++) free(k->packed[i].data);
    if (k->plans) pthread_mutex_destroy(&k->lock);
    free(k->plans);
    free(k->keras_kernel);
    free(k->bias);
    free(k);
}

void dcv_engine_kernel_stats(struct dcv_engine_kernel *k, struct dcv_engine_stats *st)
{
    pthread_mutex_lock(&k->lock);
    *st = k->stats;
    st->cache_entries = k->nplans;
    pthread_mutex_unlock(&k->lock);
}
