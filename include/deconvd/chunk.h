/* chunk.h — cutting a long batch run into chunks that end at checkpoints.
 *
 * The engine runs a big batch as several primitive executions so that a
 * stop flag is seen between them, about every 50-100 ms whatever the speed
 * of the implementation oneDNN picked. This module is the arithmetic of
 * that: whether a run is cut, and into which chunks. Every split uses at
 * most two chunk sizes (`size` items and single items) because each batch
 * size is a plan to build and cache. Pure, any thread, owns nothing.
 */
#ifndef DECONVD_CHUNK_H
#define DECONVD_CHUNK_H

#include <stdbool.h>
#include <stdint.h>

/* A checkpoint at least this often on runs that are cut. */
#define DCV_CHUNK_WINDOW_NS UINT64_C(100000000)
/* Runs under this many multiply-adds per DCV_CHUNK_WINDOW_NS of window are
 * never cut (2^28: twice dcgan_up, a few ms on a JIT kernel). */
#define DCV_CHUNK_MIN_WORK (UINT64_C(1) << 28)
/* Picoseconds per multiply-add assumed of a kernel never timed: between
 * oneDNN's JIT kernels (6-35 ps on 2 cores) and its gemm/reference paths
 * for awkward shapes (500 ps and more). */
#define DCV_CHUNK_GUESS_PS 200

struct dcv_chunks {
    int64_t size;      /* items per chunk, >= 1 */
    int64_t count;     /* chunks of `size` items, run first */
    int64_t singles;   /* then this many one-item chunks; 0 when size is 1 */
};

/* Time of `work` multiply-adds at ps_per_madd (0: DCV_CHUNK_GUESS_PS), in
 * ns, saturating. */
uint64_t dcv_chunk_estimate_ns(uint64_t work, uint64_t ps_per_madd);

/* Whether a run of `batch` items and `work` multiply-adds is cut: batch of
 * 2 or more, at least DCV_CHUNK_MIN_WORK (scaled to window_ns), and longer
 * than window_ns at ps_per_madd (the kernel's measured speed, 0 = never
 * measured). */
bool dcv_chunk_wanted(int64_t batch, uint64_t work, uint64_t ps_per_madd, uint64_t window_ns);

/* Splits `items` (>= 1) items that take item_ns each into the fewest
 * chunks, a power of two of them, that each take at most window_ns (more
 * than half of it, but for rounding, when there are two or more): chunks
 * of items/n items, then items%n (< n) single items. Items longer than the
 * window become single items. */
void dcv_chunk_split(int64_t items, uint64_t item_ns, uint64_t window_ns, struct dcv_chunks *out);

/* Chunks of exactly `size` (>= 1) items, then the rest as single items:
 * the fixed split the engine's test hook asks for. */
void dcv_chunk_fixed(int64_t items, int64_t size, struct dcv_chunks *out);

#endif
