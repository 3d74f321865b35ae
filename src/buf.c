/* buf.c — a bounded cache of big, recently freed buffers.
 *
 * Design: every block carries a 64-byte header before the pointer handed
 * out. Sizes of 128 KiB and more are rounded up to a power of two (a size
 * class); freeing such a block pushes it on its class's stack (LIFO, so the
 * block whose pages are warmest goes out next) as long as the cached bytes
 * stay under the limit, evicting the longest-unused blocks first. Smaller
 * blocks go straight back to malloc, which recycles them well by itself.
 * Blocks of 128 KiB and more are mapped here (mmap/munmap), not taken from
 * malloc: what leaves the cache goes back to the kernel whatever glibc's
 * mmap threshold is, and that threshold can stay dynamic for the libraries'
 * own scratch (oneDNN's GEMM mallocs and frees its packing buffers on every
 * execution: at a fixed 256 KiB threshold each one was a fresh mapping, a
 * page fault per 4 KiB and an munmap, on every request). The ASan build
 * takes every block from malloc and caches nothing, because a cached block
 * would hide a use-after-free from it; DECONVD_BUF_MALLOC=1 in the
 * environment makes any build take them from malloc (valgrind-test sets it,
 * so that memcheck sees them). Rounding wastes address space, not memory:
 * pages never touched are never resident.
 *
 * Thread: any; one mutex guards the stacks (a few operations per request).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>

#include "deconvd/buf.h"

#define MAGIC 0x64637662756621ULL     /* "dcvbuf!" */
#define MIN_CLASS 18                  /* 256 KiB */
#define MAX_CLASS 31                  /* 2 GiB; bigger blocks are not cached */
#define PER_CLASS 16
#define DEFAULT_LIMIT ((size_t)64 << 20)
#define MAP_MIN ((size_t)128 << 10)   /* blocks from here on are mapped here */

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_ALLOWED false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CACHE_ALLOWED false
#endif
#endif
#ifndef CACHE_ALLOWED
#define CACHE_ALLOWED true
#endif

struct head {
    uint64_t magic;
    size_t cap;                       /* usable bytes after the header */
    int cls;                          /* 0: not a cached size */
    uint64_t last_used;
    char pad[DCV_BUF_ALIGN - 32];
};
_Static_assert(sizeof(struct head) == DCV_BUF_ALIGN, "header must keep the alignment");

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct head *g_free[MAX_CLASS + 1][PER_CLASS];
static int g_nfree[MAX_CLASS + 1];
static size_t g_limit = CACHE_ALLOWED ? DEFAULT_LIMIT : 0;
static struct dcv_buf_stats g_stats;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_map = CACHE_ALLOWED;

static void read_env(void)
{
    const char *e = getenv("DECONVD_BUF_MALLOC");
    if (e && *e && strcmp(e, "0") != 0) g_map = false;
}

/* Whether a block of `bytes` (header included) is mapped here. g_map is
 * settled by the first get_block, before any block exists to give back. */
static bool mapped(size_t bytes) { return g_map && bytes >= MAP_MIN; }

/* A block of `bytes` (header included), 64-byte aligned; NULL when out of
 * memory. */
static struct head *get_block(size_t bytes)
{
    pthread_once(&g_once, read_env);
    if (mapped(bytes)) {
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return m == MAP_FAILED ? NULL : m;
    }
    void *mem = NULL;
    return posix_memalign(&mem, DCV_BUF_ALIGN, bytes) == 0 ? mem : NULL;
}

static void put_block(struct head *h)
{
    h->magic = 0;
    if (mapped(sizeof *h + h->cap)) munmap(h, sizeof *h + h->cap);
    else free(h);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int class_of(size_t n)
{
    if (n < ((size_t)1 << (MIN_CLASS - 1)) ||
        n > ((size_t)1 << MAX_CLASS) - sizeof(struct head))
        return 0;
    int c = MIN_CLASS;
    while (((size_t)1 << c) - sizeof(struct head) < n) c++;
    return c;
}

static struct head *head_of(const void *p)
{
    struct head *h = (struct head *)(((uintptr_t)p & ~(uintptr_t)(DCV_BUF_ALIGN - 1)) -
                                     sizeof(struct head));
    if (h->magic != MAGIC) abort();   /* not ours, or a double free */
    return h;
}

static struct head *take_locked(int c)
{
    if (!c || !g_nfree[c]) return NULL;
    struct head *h = g_free[c][--g_nfree[c]];
    g_stats.cached_bytes -= h->cap;
    return h;
}

static void drop_locked(int c, int i)
{
    struct head *h = g_free[c][i];
    memmove(&g_free[c][i], &g_free[c][i + 1], sizeof(g_free[c][0]) * (size_t)(g_nfree[c] - i - 1));
    g_nfree[c]--;
    g_stats.cached_bytes -= h->cap;
    put_block(h);
}

/* Frees the longest-unused cached block; false when none is cached. The
 * bottom of each stack is its oldest block. */
static bool evict_oldest_locked(void)
{
    int bc = 0;
    for (int c = MIN_CLASS; c <= MAX_CLASS; c++)
        if (g_nfree[c] && (!bc || g_free[c][0]->last_used < g_free[bc][0]->last_used)) bc = c;
    if (bc) drop_locked(bc, 0);
    return bc != 0;
}

void *dcv_buf_alloc(size_t n)
{
    int c = class_of(n);
    size_t cap = c ? ((size_t)1 << c) - sizeof(struct head) : n;
    pthread_mutex_lock(&g_lock);
    struct head *h = take_locked(c);
    if (c) {
        if (h) g_stats.hits++;
        else g_stats.misses++;
        g_stats.live_bytes += cap;
    }
    pthread_mutex_unlock(&g_lock);
    if (!h) {
        if (cap > SIZE_MAX - sizeof *h || !(h = get_block(sizeof *h + cap))) {
            if (c) {
                pthread_mutex_lock(&g_lock);
                g_stats.live_bytes -= cap;
                pthread_mutex_unlock(&g_lock);
            }
            return NULL;
        }
        h->magic = MAGIC;
        h->cap = cap;
        h->cls = c;
    }
    return h + 1;
}

void dcv_buf_free(void *p)
{
    if (!p) return;
    struct head *h = head_of(p);
    if (h->cls) {
        pthread_mutex_lock(&g_lock);
        g_stats.live_bytes -= h->cap;
        if (h->cap <= g_limit) {
            if (g_nfree[h->cls] == PER_CLASS) drop_locked(h->cls, 0);
            while (g_stats.cached_bytes + h->cap > g_limit && evict_oldest_locked()) {}
            h->last_used = now_ms();
            g_free[h->cls][g_nfree[h->cls]++] = h;
            g_stats.cached_bytes += h->cap;
            h = NULL;
        }
        pthread_mutex_unlock(&g_lock);
        if (!h) return;
    }
    put_block(h);
}

size_t dcv_buf_capacity(const void *p) { return head_of(p)->cap; }

void *dcv_buf_realloc(void *p, size_t n)
{
    if (!p) return dcv_buf_alloc(n);
    struct head *h = head_of(p);
    char *base = (char *)(h + 1);
    if (n <= h->cap && (!h->cls || n > h->cap / 4)) return base;   /* shrink in place */
    char *q = dcv_buf_alloc(n);
    if (!q) return NULL;
    memcpy(q, base, n < h->cap ? n : h->cap);
    dcv_buf_free(base);
    return q;
}

void dcv_buf_set_cache_limit(size_t bytes)
{
    pthread_mutex_lock(&g_lock);
    g_limit = CACHE_ALLOWED ? bytes : 0;
    while (g_stats.cached_bytes > g_limit && evict_oldest_locked()) {}
    pthread_mutex_unlock(&g_lock);
}

void dcv_buf_trim(uint64_t max_idle_ms)
{
    uint64_t now = now_ms();
    pthread_mutex_lock(&g_lock);
    for (int c = MIN_CLASS; c <= MAX_CLASS; c++) {
        int keep = 0;
        for (int i = 0; i < g_nfree[c]; i++) {
            struct head *h = g_free[c][i];
            if (now - h->last_used < max_idle_ms) {
                g_free[c][keep++] = h;
                continue;
            }
            g_stats.cached_bytes -= h->cap;
            put_block(h);
        }
        g_nfree[c] = keep;
    }
    pthread_mutex_unlock(&g_lock);
}

void dcv_buf_get_stats(struct dcv_buf_stats *st)
{
    pthread_mutex_lock(&g_lock);
    *st = g_stats;
    pthread_mutex_unlock(&g_lock);
}
