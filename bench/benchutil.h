/* benchutil.h — timing and statistics helpers shared by the bench harnesses.
 *
 * Header-only (static functions), so each harness stays one translation
 * unit plus rawprim.c; valid C++ too (simdjson_floats.cpp). Times are in
 * seconds, CLOCK_MONOTONIC.
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
    double *s = (double *)malloc(n * sizeof *s);
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

/* v as Python's repr writes the double it widens to (what json.dumps of a
 * float32 array's tolist() sends): the fewest significant digits that read
 * back to the same double (shortest-digit counts are monotonic, so a binary
 * search over printf's correctly rounded precisions finds them), laid out
 * as float_repr_style "short" does: plain notation for decimal exponents
 * -5 < x < 16 with ".0" after integers, else "d.ddde-05". buf holds 32. */
static inline size_t bu_python_repr(float v, char *buf)
{
    double d = v;
    char sci[40];
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(sci, sizeof sci, "%.*e", mid - 1, d);
        if (strtod(sci, NULL) == d) hi = mid;
        else lo = mid + 1;
    }
    snprintf(sci, sizeof sci, "%.*e", lo - 1, d);
    char digits[24];
    size_t nd = 0;
    const char *s = sci + (sci[0] == '-');
    for (; *s != 'e'; s++)
        if (*s != '.') digits[nd++] = *s;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int x = atoi(s + 1), decpt = x + 1;                /* value = 0.DIGITS * 10^decpt */
    size_t n = 0;
    if (sci[0] == '-') buf[n++] = '-';
    if (d == 0) nd = 1, decpt = 1;
    if (decpt <= -4 || decpt > 16) {
        buf[n++] = digits[0];
        if (nd > 1) {
            buf[n++] = '.';
            memcpy(buf + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        n += (size_t)snprintf(buf + n, 8, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    } else if (decpt <= 0) {
        buf[n++] = '0';
        buf[n++] = '.';
        for (int i = 0; i < -decpt; i++) buf[n++] = '0';
        memcpy(buf + n, digits, nd);
        n += nd;
    } else if ((size_t)decpt >= nd) {
        memcpy(buf + n, digits, nd);
        n += nd;
        for (size_t i = nd; i < (size_t)decpt; i++) buf[n++] = '0';
        memcpy(buf + n, ".0", 2);
        n += 2;
    } else {
        memcpy(buf + n, digits, (size_t)decpt);
        n += (size_t)decpt;
        buf[n++] = '.';
        memcpy(buf + n, digits + decpt, nd - (size_t)decpt);
        n += nd - (size_t)decpt;
    }
    buf[n] = '\0';
    return n;
}

/* v[0..n) as json.dumps(x.tolist(), separators=(",", ":")) writes a float32
 * array x; returns the malloc'ed text (NUL-terminated) and its length. */
static inline char *bu_python_json(const float *v, size_t n, size_t *len)
{
    char *t = (char *)malloc(n * 32 + 3);
    if (!t) return NULL;
    size_t k = 0;
    t[k++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (i) t[k++] = ',';
        k += bu_python_repr(v[i], t + k);
    }
    t[k++] = ']';
    t[k] = '\0';
    *len = k;
    return t;
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
    struct bu_caller_run *a = (struct bu_caller_run *)p;
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
        memset(&a[i], 0, sizeof a[i]);
        a[i].c = c;
        a[i].bar = &bar;
        a[i].secs = secs;
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
