/* engine.h — transposed and forward convolutions on oneDNN.
 *
 * A dcv_engine_kernel holds one layer's weights, prepacked into the layout
 * oneDNN's deconvolution (or, for a forward conv, convolution) prefers, and a bounded LRU cache of primitives per
 * (batch, input size, output size, thread count). Execution takes
 * caller-owned float32 buffers in the layer's data format; the only copies
 * are the ones a layout or dtype conversion needs (bf16 input).
 *
 * Threads: dcv_engine_run may be called from many threads at once on one
 * kernel (user-mode scratchpad, one per thread). Each execution uses the
 * calling thread's OpenMP thread count, set with dcv_engine_set_threads,
 * except that runs of under ~2M multiply-adds use one thread (an OpenMP
 * fork/join would cost more than it saves).
 *
 * Stopping: a run takes a stop flag, seen before the run starts and
 * between primitive executions. A run of a batch that would take more than
 * DCV_CHUNK_WINDOW_NS (chunk.h) runs as chunks of batch items, one
 * execution each, so that the flag is seen about every 50-100 ms.
 */
#ifndef DECONVD_ENGINE_H
#define DECONVD_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deconvd/conv.h"

struct dcv_engine_kernel;

struct dcv_engine_stats {
    size_t cache_entries;
    uint64_t cache_hits, cache_misses, evictions;
    uint64_t chunked_runs;  /* runs cut into chunks */
    uint64_t chunks;        /* executions those runs made (a run's first timed item too) */
    char impl[64];          /* oneDNN implementation of the last primitive built */
};

/* Creates the process-wide oneDNN CPU engine. Idempotent and thread-safe;
 * every other function calls it. Returns 0 or DCV_EENGINE. */
int dcv_engine_init(char *err);

/* Creates a kernel for conv (validated here too). `kernel` is in Keras
 * layout: (*kernel_size, filters, in_channels) for a transposed conv,
 * (*kernel_size, in_channels / groups, filters) for a forward one (output
 * channel o belongs to group o / (filters / groups)). `bias` has `filters` values
 * or is NULL (zeros). Both are copied. `cache_cap` bounds the primitive
 * cache (0 = default 16). `prepack_in` (rank spatial sizes, -1 = unknown →
 * 8) is the input size used to build and pack a first primitive at load
 * time; NULL skips that (one-off kernels).
 * Returns 0 and *out, or a DCV_E* code with a message. Any thread. */
int dcv_engine_kernel_create(const struct dcv_conv *conv, const float *kernel,
                             const float *bias, size_t cache_cap, const int64_t *prepack_in,
                             struct dcv_engine_kernel **out, char *err);

/* Runs the convolution + bias + activation for `batch` images:
 * src has batch*in_channels*prod(in_sp) floats, dst batch*filters*prod(out_sp),
 * both in the conv's data format. out_sp must be consistent with in_sp
 * (callers check with dcv_conv_check_lengths; forward convs take exactly
 * dcv_conv_forward_length). `stop` (NULL = never) is
 * read before the run starts and between primitive executions; once seen
 * set the run returns DCV_ECANCELED ("stopped after 3 of 16 batch items")
 * and dst holds unspecified values. A long run (chunk.h) costs at most two
 * plans: batch 1 and one chunk size. Returns 0, or DCV_ECANCELED /
 * DCV_ETOOBIG / DCV_ENOMEM / DCV_EENGINE / DCV_EUNSUPP with a message. Any
 * thread, concurrently; the flag may be set from any thread. */
int dcv_engine_run(struct dcv_engine_kernel *k, const float *src, int64_t batch,
                   const int64_t *in_sp, const int64_t *out_sp, float *dst,
                   const atomic_bool *stop, char *err);

/* Frees a kernel. No run may be in progress on it. */
void dcv_engine_kernel_free(struct dcv_engine_kernel *k);

void dcv_engine_kernel_stats(struct dcv_engine_kernel *k, struct dcv_engine_stats *st);

/* Sets / reads the OpenMP thread count of the calling thread. */
void dcv_engine_set_threads(int n);
int dcv_engine_threads(void);

/* Bytes of execution buffers (scratchpad, bf16 staging) the calling thread
 * keeps for its next run: at most 16 MiB each, a bigger one is freed when
 * its run ends. For tests; any thread. */
size_t dcv_engine_thread_bytes(void);

/* Test hook: makes the next n allocations of execution buffers fail. */
void dcv_engine_inject_alloc_failures(int n);

/* bf16 layers created after this call with on=true are emulated (f32
 * compute on bf16-rounded weights and inputs) even where oneDNN has bf16
 * kernels — the path CPUs without AVX-512 take. For tests; any thread. */
void dcv_engine_force_bf16_emulation(bool on);

/* Output size (values) from which the bias/activation pass is split over
 * the run's threads; 0 restores the default (512K). For tests of the split
 * path; any thread, takes effect on the next run. */
void dcv_engine_set_epilogue_split(size_t values);

/* Test hook: every run of batch >= 2 runs as chunks of exactly n items,
 * the rest as single items, whatever its size and speed; 0 restores timed
 * chunking of long runs only. Any thread, takes effect on the next run. */
void dcv_engine_set_chunk_items(int64_t n);

/* Test hook: the checkpoint interval chunked runs are sized for, and with
 * it the work below which runs are never cut (DCV_CHUNK_MIN_WORK per
 * DCV_CHUNK_WINDOW_NS); 0 restores DCV_CHUNK_WINDOW_NS. Any thread. */
void dcv_engine_set_chunk_window(uint64_t ns);

#endif
