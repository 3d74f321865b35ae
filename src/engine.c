/* engine.c — convolutions (transposed and forward) on oneDNN: entry points.
 *
 * Design: one process-wide CPU engine. A kernel owns the Keras-layout
 * weights, the packed copies oneDNN asked for (usually one) and an LRU cache
 * of execution plans (engine_plan.c) keyed by (batch, in size, out size,
 * OpenMP threads), because a JIT primitive is specialised to shapes and
 * fixes its thread count when it is created. bf16 layers run natively where
 * oneDNN has bf16 kernels and are emulated elsewhere (f32 compute on
 * bf16-rounded weights and inputs: the same products and f32 accumulation);
 * which one is decided here, at creation. This file creates and frees
 * kernels and owns the engine; runs are engine_run.c's. dnnl.h is included
 * by the engine files only (engine_internal.h lists them);
 * dnnl_status_t is translated here. Any thread.
 */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/log.h"
#include "engine_internal.h"

#define DEFAULT_CACHE 16

static dnnl_engine_t g_engine;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_status_t g_init_status = dnnl_runtime_error;
static atomic_bool g_force_emulation;

int dcv_engine_dnnl_error(dnnl_status_t st, char *err, const char *what)
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


static void init_once(void)
{
    if (dcv_engine_exec_init() != 0) return;
    g_init_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
}

dnnl_engine_t dcv_engine_cpu(void) { return g_engine; }

int dcv_engine_init(char *err)
{
    pthread_once(&g_once, init_once);
    if (g_init_status != dnnl_success)
        return dcv_engine_dnnl_error(g_init_status, err, "engine creation");
    return 0;
}

void dcv_engine_set_threads(int n) { if (n > 0) omp_set_num_threads(n); }
int dcv_engine_threads(void) { return omp_get_max_threads(); }
void dcv_engine_force_bf16_emulation(bool on) { atomic_store(&g_force_emulation, on); }

/* No bf16 kernels on this CPU (before AVX-512), or forced: compute in f32
 * on bf16-rounded weights (here) and inputs (per run). Creation time only,
 * before any plan exists. */
static void emulate_bf16(struct dcv_engine_kernel *k, int64_t nk)
{
    k->emulate_bf16 = true;
    dcv_engine_exec_round_bf16(k->keras_kernel, k->keras_kernel, (size_t)nk);
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
    int64_t nk, in_sp[DCV_MAX_SPATIAL], out_sp[DCV_MAX_SPATIAL];
    int rc;
    if ((rc = dcv_engine_init(err)) || (rc = dcv_conv_validate(conv, err))) return rc;
    nk = conv->filters * (conv->in_channels / dcv_conv_groups(conv));
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
    k->own_epilogue = dcv_engine_epilogue_own(&conv->act);
    k->portable = !k->own_epilogue && !dcv_engine_epilogue_fusable(&conv->act, &k->post);
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
        if (conv->forward && in_sp[i] < dcv_conv_effective_kernel(conv->kernel[i],
                                                                   conv->dilation[i]))
            in_sp[i] = dcv_conv_effective_kernel(conv->kernel[i], conv->dilation[i]);
        out_sp[i] = dcv_conv_out_length(conv, i, in_sp[i]);
    }
    struct plan *p;
    rc = dcv_engine_plan_acquire(k, 1, in_sp, out_sp, &p, err);
    if (rc == DCV_EUNSUPP && bf16 && !k->emulate_bf16) {
        emulate_bf16(k, nk);
        rc = dcv_engine_plan_acquire(k, 1, in_sp, out_sp, &p, err);
    }
    if (rc) goto fail;
    dcv_engine_plan_release(k, p);
    *out = k;
    return 0;
fail:
    dcv_engine_kernel_free(k);
    return rc;
}

void dcv_engine_kernel_free(struct dcv_engine_kernel *k)
{
    if (!k) return;
    for (size_t i = 0; k->plans && i < k->nplans; i++) dcv_engine_plan_free(k->plans[i]);
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
