/* engine_epilogue.c — bias and activation after the primitive.
 *
 * Which way a kernel's bias + activation run is fixed at its creation:
 * the ReLU family and linear in our own vectorized in-place pass (exact to
 * TensorFlow's +0, memory-bound: it costs one read and write of dst),
 * what eltwise post-ops express as a binary_add carrying them (built in
 * engine_plan.c), the rest by dcv_activation_apply. The pass splits over
 * the plan's OpenMP threads from EPILOGUE_PAR values (this file is built
 * with -fopenmp). Any thread; no state but the split test hook.
 */
#include <omp.h>
#include <stdatomic.h>

#include "engine_internal.h"

/* Values from which the bias pass is split over threads. The pass is
 * memory-bound, and a second fork/join after the primitive's own costs
 * tens of microseconds (far more when the other core is busy): dcgan_up's
 * 262144 values ran engine/raw ~1.03 on one thread vs ~1.08 split, while
 * vol_up's 524288 ran ~1.07 split vs ~1.09-1.2 on one thread (2 threads). */
#define EPILOGUE_PAR (1 << 19)

static atomic_size_t g_epilogue_par = EPILOGUE_PAR;

void dcv_engine_set_epilogue_split(size_t v) { atomic_store(&g_epilogue_par, v ? v : EPILOGUE_PAR); }

static void push(struct chain *ch, dnnl_alg_kind_t alg, float a, float b)
{
    ch->alg[ch->n] = alg, ch->a[ch->n] = a, ch->b[ch->n] = b, ch->n++;
}

/* Eltwise post-ops expressing the activation; false if they cannot. The
 * ReLU family is not among them: it always runs in epilogue() (see
 * own_epilogue), because oneDNN's eltwise relu computes x * alpha below zero,
 * -0 for alpha 0, where TensorFlow answers +0. */
bool dcv_engine_epilogue_fusable(const struct dcv_activation *act, struct chain *ch)
{
    ch->n = 0;
    switch (act->kind) {
    case DCV_ACT_LINEAR: return true;
    case DCV_ACT_SIGMOID: push(ch, dnnl_eltwise_logistic, 0, 0); return true;
    case DCV_ACT_TANH: push(ch, dnnl_eltwise_tanh, 0, 0); return true;
    /* softplus is not fused: oneDNN 2.6's soft_relu loses all relative
     * precision below about -17 (3.8e-6 where 2.5e-19 is right) */
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

/* Every kind of the ReLU family, whatever its parameters: dcv_engine_epilogue_fusable() has no
 * post-op for them. */
bool dcv_engine_epilogue_own(const struct dcv_activation *a)
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
void dcv_engine_epilogue_run(const struct dcv_engine_kernel *k, const struct plan *p, float *y)
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

