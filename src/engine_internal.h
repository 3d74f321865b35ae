/* engine_internal.h — what the engine's files share; not an API.
 *
 * The engine (engine.h) is five files: engine.c (the process-wide oneDNN
 * engine, kernels), engine_plan.c (execution plans: primitives, packed
 * weights, the per-kernel LRU cache), engine_exec.c (each thread's
 * execution state: stream, scratchpad, staging, memory objects),
 * engine_epilogue.c (bias + activation after the primitive) and
 * engine_run.c (a run: plan execution, chunking, stop flag). These files,
 * and no others, include dnnl.h (through this header) and see the types
 * below; every other module sees engine.h only.
 */
#ifndef DECONVD_ENGINE_INTERNAL_H
#define DECONVD_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "deconvd/engine.h"

#define MAX_POSTOPS 3
#define TLS_MEMS 4             /* plans whose memory objects a thread keeps */

enum { P_BF16, P_MAIN, P_POST, P_SOFTMAX, NPRIM };

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

/* engine.c: the process-wide CPU engine (valid after dcv_engine_init) and
 * dnnl_status_t as a DCV_E* code with a message naming `what`. */
dnnl_engine_t dcv_engine_cpu(void);
int dcv_engine_dnnl_error(dnnl_status_t st, char *err, const char *what);

/* Runs `call`; on failure sets rc from dcv_engine_dnnl_error and jumps to
 * the caller's `out:` (needs `int rc` and `char *err` in scope). */
#define DNNL_TRY(call, what)                                          \
    do {                                                              \
        dnnl_status_t st_ = (call);                                   \
        if (st_ != dnnl_success) { rc = dcv_engine_dnnl_error(st_, err, what); goto out; } \
    } while (0)

/* engine_exec.c — per-thread state, created on a thread's first run and
 * freed when the thread exits. */
int dcv_engine_exec_init(void);                 /* once, from dcv_engine_init: 0 or -1 */
struct tls *dcv_engine_exec_tls(char *err);     /* NULL on OOM / stream failure */
/* Grows b to need bytes (big ones taken from the memory budget); 0 or
 * DCV_ENOMEM / DCV_ETOOBIG / DCV_EBUSY naming `what`. */
int dcv_engine_exec_reserve(struct buffer *b, size_t need, const char *what, char *err);
void dcv_engine_exec_shed(void);                /* frees the calling thread's big buffers */
struct mems *dcv_engine_exec_mems(struct tls *t, const struct dcv_engine_kernel *k,
                                  const struct plan *p, char *err);
int dcv_engine_exec_point(struct mems *m, int i, void *handle, char *err);
/* Executes p->prim[which] with args[0..n) and the thread's scratchpad
 * (args has room for one more). */
int dcv_engine_exec_prim(const struct plan *p, int which, struct tls *t, struct mems *m,
                         dnnl_exec_arg_t *args, int n, char *err);
void dcv_engine_exec_round_bf16(float *dst, const float *src, size_t n);

/* engine_plan.c — a plan for (batch, in_sp, out_sp, the calling thread's
 * OpenMP threads) from k's cache, built outside the lock on a miss;
 * release when done with it. */
int dcv_engine_plan_acquire(struct dcv_engine_kernel *k, int64_t batch, const int64_t *in_sp,
                            const int64_t *out_sp, struct plan **out, char *err);
void dcv_engine_plan_release(struct dcv_engine_kernel *k, struct plan *p);
void dcv_engine_plan_free(struct plan *p);

/* engine_epilogue.c — how bias + activation run (chosen at kernel
 * creation) and the pass itself: dst = act(dst + bias), in place. */
bool dcv_engine_epilogue_fusable(const struct dcv_activation *act, struct chain *ch);
bool dcv_engine_epilogue_own(const struct dcv_activation *a);
void dcv_engine_epilogue_run(const struct dcv_engine_kernel *k, const struct plan *p, float *y);

#endif
