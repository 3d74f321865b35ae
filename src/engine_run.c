/* engine_run.c — one run of a kernel: plans executed, chunked, stoppable.
 *
 * A run checks its caller's stop flag before it starts; a long one (see
 * chunk.h) runs as chunks of batch items, one execution each, with a check
 * before each: a batch-1 plan times a few items (or remembers the last
 * time of its shape), then chunks sized from that run on a second plan.
 * Runs under ~2M multiply-adds use one OpenMP thread. A plan's execution is
 * the primitives in order on the thread's stream (engine_exec.c), then the
 * epilogue (engine_epilogue.c). Any thread, concurrently on one kernel.
 */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "deconvd/chunk.h"
#include "deconvd/error.h"
#include "deconvd/sched.h"
#include "engine_internal.h"

#define DCV_SMALL_WORK 2000000 /* multiply-adds; see dcv_engine_run */

static atomic_int_fast64_t g_chunk_items;     /* test hook: fixed chunks; 0 = timed */
static atomic_uint_fast64_t g_chunk_window = DCV_CHUNK_WINDOW_NS;

void dcv_engine_set_chunk_items(int64_t n) { atomic_store(&g_chunk_items, n > 0 ? n : 0); }
void dcv_engine_set_chunk_window(uint64_t ns)
{
    atomic_store(&g_chunk_window, ns ? ns : DCV_CHUNK_WINDOW_NS);
}

static int run_plan(struct dcv_engine_kernel *k, struct plan *p, const float *src, float *dst,
                    char *err)
{
    const struct dcv_conv *c = &k->conv;
    struct tls *t = dcv_engine_exec_tls(err);
    struct mems *m;
    dnnl_exec_arg_t a[4];
    int rc = 0;
    if (!t) return dcv_errf(err, DCV_ENOMEM, "out of memory for thread state");
    if ((rc = dcv_engine_exec_reserve(&t->scratch, p->scratch_bytes + 64, "scratchpad", err)) ||
        (rc = dcv_engine_exec_reserve(&t->bf16, p->bf16_bytes + 64, "bf16 staging", err)))
        return rc;
    if (!(m = dcv_engine_exec_mems(t, k, p, err))) return DCV_EENGINE;
    dnnl_memory_t msrc = m->m[M_SRC];
    if (k->emulate_bf16) {
        dcv_engine_exec_round_bf16(t->bf16.p, src, p->bf16_bytes / sizeof(float));
        src = t->bf16.p;
    }
    if ((rc = dcv_engine_exec_point(m, M_SRC, (void *)src, err)) || (rc = dcv_engine_exec_point(m, M_DST, dst, err))) goto out;
    if (p->prim[P_BF16]) {
        if ((rc = dcv_engine_exec_point(m, M_BF16, t->bf16.p, err))) goto out;
        a[0] = (dnnl_exec_arg_t){ DNNL_ARG_FROM, msrc };
        a[1] = (dnnl_exec_arg_t){ DNNL_ARG_TO, m->m[M_BF16] };
        if ((rc = dcv_engine_exec_prim(p, P_BF16, t, m, a, 2, err))) goto out;
        msrc = m->m[M_BF16];
    }
    a[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, msrc };
    a[1] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, m->m[M_WEI] };
    a[2] = (dnnl_exec_arg_t){ DNNL_ARG_DST, m->m[M_DST] };
    if ((rc = dcv_engine_exec_prim(p, P_MAIN, t, m, a, 3, err))) goto out;
    if (k->own_epilogue) {
        DNNL_TRY(dnnl_stream_wait(t->stream), "execution");
        dcv_engine_epilogue_run(k, p, dst);
    } else if (p->prim[P_POST]) {
        a[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC_0, m->m[M_DST] };
        a[1] = (dnnl_exec_arg_t){ DNNL_ARG_SRC_1, m->m[M_BIAS] };
        a[2] = (dnnl_exec_arg_t){ DNNL_ARG_DST, m->m[M_DST] };
        if ((rc = dcv_engine_exec_prim(p, P_POST, t, m, a, 3, err))) goto out;
    }
    if (p->prim[P_SOFTMAX]) {
        a[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, m->m[M_DST] };
        a[1] = (dnnl_exec_arg_t){ DNNL_ARG_DST, m->m[M_DST] };
        if ((rc = dcv_engine_exec_prim(p, P_SOFTMAX, t, m, a, 2, err))) goto out;
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
    int rc = dcv_engine_plan_acquire(k, 1, in_sp, out_sp, &one, err);
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
    if (ch.size > 1 && (rc = dcv_engine_plan_acquire(k, ch.size, in_sp, out_sp, &many, err))) goto out;
    for (int64_t i = 0; i < ch.count; i++) {      /* the next run goes by their mean */
        if ((rc = run_step(k, many ? many : one, s, ch.size, &ns, err))) goto out;
        spent += ns;
        atomic_store_explicit(&one->item_ns, spent / (uint64_t)(ch.size * (i + 1)) + 1,
                              memory_order_relaxed);
    }
    for (int64_t i = 0; i < ch.singles; i++)
        if ((rc = run_step(k, one, s, 1, &ns, err))) goto out;
out:
    if (many) dcv_engine_plan_release(k, many);
    dcv_engine_plan_release(k, one);
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
    int rc = dcv_engine_plan_acquire(k, batch, in_sp, out_sp, &p, err);
    if (rc) return rc;
    uint64_t t0 = work >= DCV_SMALL_WORK ? dcv_now_ns() : 0;
    rc = run_plan(k, p, src, dst, err);
    if (rc == 0 && t0) note_speed(k, work, dcv_now_ns() - t0);
    dcv_engine_plan_release(k, p);
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
    dcv_engine_exec_shed();
    return rc;
}
