/* test_buf.c — the tensor buffer cache: alignment, reuse, limits, trimming,
 * interior-pointer frees, realloc. The ASan build caches nothing (a cached
 * block would hide a use-after-free), so reuse checks adapt to it. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "deconvd/buf.h"

#if defined(__SANITIZE_ADDRESS__)
#define CACHING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CACHING 0
#endif
#endif
#ifndef CACHING
#define CACHING 1
#endif

#define BIG ((size_t)1 << 20)

static void reset(size_t limit)
{
    dcv_buf_set_cache_limit(0);          /* empties the cache */
    dcv_buf_set_cache_limit(limit);
}

Test(buf, aligned_writable_any_size)
{
    static const size_t sizes[] = { 0, 1, 63, 64, 4095, 262080, 262144, 3 * BIG + 5 };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = dcv_buf_alloc(sizes[i]);
        cr_assert_not_null(p, "size %zu", sizes[i]);
        cr_assert_eq((uintptr_t)p % DCV_BUF_ALIGN, 0, "size %zu", sizes[i]);
        cr_assert_geq(dcv_buf_capacity(p), sizes[i]);
        memset(p, 0xab, sizes[i]);
        dcv_buf_free(p);
    }
    dcv_buf_free(NULL);
}

Test(buf, big_blocks_are_reused_small_ones_are_not_cached)
{
    reset((size_t)64 << 20);
    struct dcv_buf_stats a, b;
    dcv_buf_get_stats(&a);
    char *p = dcv_buf_alloc(BIG);
    p[0] = 1;
    dcv_buf_free(p);
    char *q = dcv_buf_alloc(BIG + 1000);          /* same size class (2 MiB) */
    dcv_buf_get_stats(&b);
    cr_assert_eq(q == p, CACHING, "a freed block of the class is handed out again");
    cr_assert_eq(b.hits - a.hits, (uint64_t)CACHING);
    cr_assert_eq(b.misses - a.misses, (uint64_t)(2 - CACHING));
    cr_assert_eq(b.cached_bytes, 0);
    size_t cap = dcv_buf_capacity(q);
    cr_assert_eq(cap, BIG * 2 - DCV_BUF_ALIGN, "1 MiB plus the header rounds up to 2 MiB");
    dcv_buf_free(q);
    dcv_buf_get_stats(&b);
    cr_assert_eq(b.cached_bytes, CACHING ? cap : 0);
    char *s = dcv_buf_alloc(100);
    dcv_buf_free(s);
    dcv_buf_get_stats(&a);
    cr_assert_eq(a.cached_bytes, b.cached_bytes, "small blocks go back to malloc");
}

Test(buf, limit_bounds_the_cache_and_evicts_oldest)
{
    reset(3 * (BIG * 2));                    /* room for three 2 MiB-class blocks */
    char *p[5];
    for (int i = 0; i < 5; i++) p[i] = dcv_buf_alloc(BIG + 1);   /* class 2 MiB */
    size_t cap = dcv_buf_capacity(p[0]);
    for (int i = 0; i < 5; i++) dcv_buf_free(p[i]);
    struct dcv_buf_stats st;
    dcv_buf_get_stats(&st);
    cr_assert_leq(st.cached_bytes, 3 * (BIG * 2));
    cr_assert_eq(st.cached_bytes, CACHING ? 3 * cap : 0);
    /* LIFO: the last freed (warmest) comes back first */
    char *q = dcv_buf_alloc(BIG + 1);
    cr_assert_eq(q == p[4], CACHING);
    dcv_buf_free(q);
    dcv_buf_set_cache_limit(0);
    dcv_buf_get_stats(&st);
    cr_assert_eq(st.cached_bytes, 0, "lowering the limit shrinks the cache at once");
    dcv_buf_set_cache_limit((size_t)64 << 20);
}

Test(buf, trim_releases_idle_blocks_only)
{
    reset((size_t)64 << 20);
    char *p = dcv_buf_alloc(BIG);
    dcv_buf_free(p);
    struct dcv_buf_stats st;
    dcv_buf_trim(60000);                     /* just used: kept */
    dcv_buf_get_stats(&st);
    cr_assert_eq(st.cached_bytes > 0, CACHING);
    dcv_buf_trim(0);                         /* everything is idle for >= 0 ms */
    dcv_buf_get_stats(&st);
    cr_assert_eq(st.cached_bytes, 0);
}

Test(buf, free_accepts_pointers_into_the_first_64_bytes)
{
    for (size_t n = 10; n <= 4 * BIG; n *= 64) {
        char *p = dcv_buf_alloc(n);
        dcv_buf_free(p + 37);
        p = dcv_buf_alloc(n);
        dcv_buf_free(p + DCV_BUF_ALIGN - 1);
    }
    dcv_buf_trim(0);
}

Test(buf, realloc_keeps_contents)
{
    char *p = dcv_buf_realloc(NULL, 10);
    cr_assert_not_null(p);
    memcpy(p, "0123456789", 10);
    p = dcv_buf_realloc(p, 3 * BIG);
    cr_assert_not_null(p);
    cr_assert_eq(memcmp(p, "0123456789", 10), 0);
    memset(p + 10, 'x', 3 * BIG - 10);
    p = dcv_buf_realloc(p, 2 * BIG);          /* shrink within a quarter: in place */
    cr_assert_eq(p[2 * BIG - 1], 'x');
    char *q = dcv_buf_realloc(p, 20);         /* far smaller: moves to a small block */
    cr_assert_not_null(q);
    cr_assert_eq(memcmp(q, "0123456789xxxxxxxxxx", 20), 0);
    dcv_buf_free(q);
}
