/* benchutil.h — timing and statistics helpers shared by the bench harnesses.
 *
 * Header-only (static functions), so each harness stays one translation
 * unit plus rawprim.c. Times are in seconds, CLOCK_MONOTONIC.
 */
#ifndef DECONVD_BENCHUTIL_H
#define DECONVD_BENCHUTIL_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bu_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* q-th quantile (0..1) of v[0..n) by nearest rank on a sorted copy. */
static inline double bu_quantile(const double *v, size_t n, double q)
{
    if (n == 0) return 0.0;
    double *s = malloc(n * sizeof *s);
    if (!s) return 0.0;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, bu_cmp_double);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    if (i >= n) i = n - 1;
    double r = s[i];
    free(s);
    return r;
}

static inline double bu_median(const double *v, size_t n) { return bu_quantile(v, n, 0.5); }

static inline double bu_mean(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return n ? s / (double)n : 0.0;
}

/* xorshift64* — deterministic test data. */
static inline uint64_t bu_rand_u64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

/* Uniform in [-1, 1). */
static inline float bu_rand_float(uint64_t *state)
{
    return (float)((double)(bu_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static inline void bu_fill(float *v, size_t n, uint64_t seed)
{
    uint64_t s = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) v[i] = bu_rand_float(&s);
}

/* Throughput of several callers at once, each with its own state: make()
 * builds a caller's state on its thread (NULL: it failed), run() computes
 * one image (nonzero: failed), drop() frees the state. After three warm-up
 * runs every caller starts together and runs for `secs`. */
struct bu_callers {
    void *(*make)(void *ctx);
    int (*run)(void *state);
    void (*drop)(void *state);
    void *ctx;
};

struct bu_caller_run {
    const struct bu_callers *c;
    pthread_barrier_t *bar;
    double secs;
    long images;
};

static inline void *bu_caller_thread(void *p)
{
    struct bu_caller_run *a = p;
    void *st = a->c->make(a->c->ctx);
    int rc = !st;
    for (int i = 0; i < 3 && !rc; i++) rc = a->c->run(st);
    pthread_barrier_wait(a->bar);
    if (rc) {
        a->secs = 0;
    } else {
        double t0 = bu_now();
        while (bu_now() - t0 < a->secs) {
            a->c->run(st);
            a->images++;
        }
        a->secs = bu_now() - t0;
    }
    if (st) a->c->drop(st);
    return NULL;
}

/* Summed images/s of `threads` (at most 64) callers that worked. */
static inline double bu_concurrent(const struct bu_callers *c, int threads, double secs)
{
    pthread_t th[64];
    struct bu_caller_run a[64];
    pthread_barrier_t bar;
    double total = 0;
    if (threads > 64) threads = 64;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
        a[i] = (struct bu_caller_run){ .c = c, .bar = &bar, .secs = secs };
        pthread_create(&th[i], NULL, bu_caller_thread, &a[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        if (a[i].secs > 0) total += (double)a[i].images / a[i].secs;
    }
    pthread_barrier_destroy(&bar);
    return total;
}

#endif
