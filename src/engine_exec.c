/* engine_exec.c — each thread's execution state for engine runs.
 *
 * A thread that runs plans keeps, in thread-specific storage freed when the
 * thread exits: its oneDNN stream, its scratchpad and bf16 staging buffers
 * (user-mode scratchpads: one plan can run on several threads at once) and
 * the memory objects of its last TLS_MEMS plans, whose data handles are
 * swapped per run only when they change. Buffers above TLS_KEEP are taken
 * from the memory budget and given back when their run ends. Only the
 * owning thread touches its state; the test hook is global.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/budget.h"
#include "deconvd/error.h"
#include "engine_internal.h"

static pthread_key_t g_tls_key;
static atomic_int g_fail_allocs;

void dcv_engine_inject_alloc_failures(int n) { atomic_store(&g_fail_allocs, n); }

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

int dcv_engine_exec_init(void)
{
    return pthread_key_create(&g_tls_key, tls_free) == 0 ? 0 : -1;
}

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

void dcv_engine_exec_shed(void)
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

int dcv_engine_exec_reserve(struct buffer *b, size_t need, const char *what, char *err)
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

struct tls *dcv_engine_exec_tls(char *err)
{
    struct tls *t = pthread_getspecific(g_tls_key);
    if (t) return t;
    if (!(t = calloc(1, sizeof *t))) return NULL;
    dnnl_status_t st = dnnl_stream_create(&t->stream, dcv_engine_cpu(), dnnl_stream_default_flags);
    if (st != dnnl_success || pthread_setspecific(g_tls_key, t) != 0) {
        dcv_engine_dnnl_error(st, err, "stream creation");
        tls_free(t);
        return NULL;
    }
    return t;
}
/* The thread's memory objects for p, created on its first run of p. The
 * weights and bias handles never change; the others are set per run. */
struct mems *dcv_engine_exec_mems(struct tls *t, const struct dcv_engine_kernel *k,
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
            DNNL_TRY(dnnl_memory_create(&m->m[i], md[i], dcv_engine_cpu(),
                                        data[i] ? data[i] : DNNL_MEMORY_NONE), "memory");
    m->plan_id = p->id;
out:
    if (rc) mems_clear(m);
    return rc ? NULL : m;
}

int dcv_engine_exec_point(struct mems *m, int i, void *handle, char *err)
{
    int rc = 0;
    if (m->handle[i] == handle) return 0;
    DNNL_TRY(dnnl_memory_set_data_handle(m->m[i], handle), "memory");
    m->handle[i] = handle;
out:
    return rc;
}

int dcv_engine_exec_prim(const struct plan *p, int which, struct tls *t, struct mems *m,
                dnnl_exec_arg_t *args, int n, char *err)
{
    int rc = 0;
    args[n].arg = DNNL_ARG_SCRATCHPAD;
    args[n].memory = m->m[M_SCRATCH + which];
    if ((rc = dcv_engine_exec_point(m, M_SCRATCH + which, t->scratch.p, err))) goto out;
    DNNL_TRY(dnnl_primitive_execute(p->prim[which], t->stream, n + 1, args), "execution");
out:
    return rc;
}

/* Round to nearest even at bf16 precision, kept in f32 — what oneDNN's
 * f32→bf16 reorder does, for the emulated path. */
void dcv_engine_exec_round_bf16(float *dst, const float *src, size_t n)
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

