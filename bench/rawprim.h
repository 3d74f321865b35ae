/* rawprim.h — the reference workloads and a bare oneDNN deconvolution.
 *
 * The ceiling every deconvd measurement is compared with: the same oneDNN
 * deconvolution deconvd builds (channels-last src/dst, format_tag_any
 * weights packed once, TensorFlow SAME padding as padding_l/padding_r,
 * user-mode scratchpad), executed with nothing around it. Used by
 * raw_dnnl.c (ceiling table) and engine_bench.c (overhead, same process).
 */
#ifndef DECONVD_RAWPRIM_H
#define DECONVD_RAWPRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

/* One reference workload; must match bench/models/<name>.json. */
struct wl {
    const char *name;
    int rank;
    int64_t ic, oc;
    int64_t k[3], s[3], in[3];
    bool relu;                    /* activation: relu, else linear */
};

extern const struct wl bench_workloads[];
extern const int bench_nworkloads;
const struct wl *wl_find(const char *name);

/* SAME output size and TensorFlow's pad_before / pad_after (oneDNN
 * padding_l / padding_r), written independently of src/conv.c so that the
 * harness checks the engine rather than repeats it. */
void wl_geometry(const struct wl *w, int64_t *out, int64_t *pad_l, int64_t *pad_r);
int64_t wl_in_elems(const struct wl *w);   /* per image */
int64_t wl_out_elems(const struct wl *w);  /* per image */
/* Useful FLOPs per image: 2 * IC * OC * prod(k) * prod(in). */
double wl_flops(const struct wl *w);
/* "Dense-equivalent" FLOPs per image: 2 * IC * OC * prod(k) * prod(out), i.e.
 * counting the multiplications by the zeros a stride-s transposed conv
 * inserts (the ~1.07 GFLOP quoted for dcgan_up). */
double wl_flops_dense(const struct wl *w);

enum raw_mode {
    RAW_DECONV,   /* deconvolution only, no bias/activation: the ceiling */
    RAW_CHAIN,    /* what the engine runs: deconv, then in-place binary_add(bias)
                     with the activation as eltwise post-op */
    RAW_FUSED,    /* one deconvolution with bias + eltwise post-op attribute */
    RAW_BIAS,     /* deconvolution with bias, no post-op (activation dropped) */
    RAW_BIAS_ELTWISE, /* deconvolution with bias, then an in-place eltwise
                         primitive for the activation */
    RAW_POSTOP_ONLY,  /* deconvolution without bias, eltwise post-op (bias dropped) */
    RAW_BINARY_POSTOP,/* deconvolution with a binary_add(bias) post-op, then the
                         eltwise post-op: the whole layer as post-ops */
};
extern const char *const raw_mode_names[];

struct rawprim {
    const struct wl *w;
    int64_t batch;
    int nthreads;
    bool bf16, reorder_input;
    enum raw_mode mode;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_primitive_t deconv, post, eltwise, to_bf16;
    dnnl_memory_t src, src_bf16, wei, bias, bias_bcast, dst, scr_deconv, scr_post, scr_eltwise, scr_reorder;
    char impl[96], post_impl[96];
    size_t wei_bytes;
};

/* Builds the primitive(s) for batch images with nthreads OpenMP threads
 * (set on the calling thread). bf16: src and weights bf16, dst f32;
 * reorder_input adds the f32->bf16 input reorder the engine does. Input is
 * filled with deterministic random values. Returns 0 or -1 with err. */
int rawprim_create(struct rawprim *r, const struct wl *w, int64_t batch, enum raw_mode mode,
                   bool bf16, bool reorder_input, int nthreads, char *err, size_t errlen);
/* One execution, waited for. Sets the calling thread's OpenMP thread count
 * first. Returns 0 or -1. */
int rawprim_run(struct rawprim *r);
/* Host pointers of the f32 source and destination (library-allocated). */
float *rawprim_src(struct rawprim *r);
float *rawprim_dst(struct rawprim *r);
void rawprim_free(struct rawprim *r);

#endif
