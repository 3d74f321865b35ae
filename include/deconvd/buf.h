/* buf.h — tensor-sized buffers that keep their pages between requests.
 *
 * Request bodies, output tensors and response bodies are allocated and
 * freed once per request and are megabytes long. Mapped afresh each time,
 * every request pays ~one page fault per 4 KiB touched plus an munmap; a
 * bounded cache of recently freed blocks makes a steady stream of
 * same-sized requests fault-free, and blocks leaving it are unmapped, so
 * RSS falls back after a burst (glibc's heap, which would otherwise serve
 * them once its dynamic mmap threshold has risen, grows and never shrinks).
 *
 * Any thread may call any of these. Blocks are 64-byte aligned.
 */
#ifndef DECONVD_BUF_H
#define DECONVD_BUF_H

#include <stddef.h>
#include <stdint.h>

#define DCV_BUF_ALIGN 64

struct dcv_buf_stats {
    size_t cached_bytes;   /* mapped, free, kept for reuse */
    size_t live_bytes;     /* mapped and handed out (pooled sizes only) */
    uint64_t hits, misses;
};

/* n bytes (n may be 0), 64-byte aligned, contents undefined; NULL when out
 * of memory. Free with dcv_buf_free, never free(). */
void *dcv_buf_alloc(size_t n);

/* Grows or shrinks p (NULL allocates) keeping its first min(old, n) bytes;
 * NULL on failure with p untouched. */
void *dcv_buf_realloc(void *p, size_t n);

/* Releases a block. Accepts the pointer dcv_buf_alloc returned or any
 * pointer into its first DCV_BUF_ALIGN bytes, so a caller that starts its
 * data a few bytes in (to align what follows a header) can hand that
 * pointer on. NULL is a no-op. */
void dcv_buf_free(void *p);

/* Usable size of the block holding p. */
size_t dcv_buf_capacity(const void *p);

/* Bytes of free blocks kept for reuse (default 64 MiB; 0 disables caching).
 * Shrinks the cache at once when lowered. */
void dcv_buf_set_cache_limit(size_t bytes);

/* Unmaps cached blocks unused for at least max_idle_ms, so that RSS falls
 * back after a burst. Called periodically from the event loop. */
void dcv_buf_trim(uint64_t max_idle_ms);

void dcv_buf_get_stats(struct dcv_buf_stats *st);

#endif
