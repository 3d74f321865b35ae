/* codec_exhaustive.c — checks the float codec on every float32 bit pattern.
 *
 * For each of the 2^32 patterns: dcv_float_format writes at most
 * DCV_FLOAT_MAXLEN bytes, NUL-terminated, nothing past its buffer; finite
 * values parse back with dcv_float_parse to the identical bits (-0 included)
 * consuming the whole text, both alone and followed by a delimiter (the
 * decoder's SIMD path); NaN and infinities use their fixed spellings.
 * With -s it also proves the output shortest (both neighbours with one digit
 * fewer fail to round-trip through strtof) and closest (it equals glibc's
 * correctly rounded printf at that precision whenever that one round-trips).
 * Every pattern also goes through dcv_float_array_format, in arrays of 64
 * consecutive patterns (per thread), whose text must be the single-value
 * texts joined by commas: that covers the array encoder's vector path,
 * which dcv_float_format does not take.
 *
 * Standalone tool, not part of the daemon. Build and run:
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude bench/codec_exhaustive.c \
 *       src/floatparse.c src/floatfmt.c -lpthread -lm -o /tmp/codec_exhaustive
 *   /tmp/codec_exhaustive [-t threads] [-s] [-k stride] [-f first] [-l last]
 * Prints progress per thread and "exhaustive: N checked, M failures"; exits
 * 1 on any failure.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/floatcodec.h"

#define MAX_THREADS 64
#define PROGRESS_EVERY (1u << 27)
#define REPORT_FAILURES 20

struct job {
    uint64_t first, last, step; /* patterns first, first+step, ... <= last */
    int id, strict;
    double t0;
    uint64_t checked, failures;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* Significand (trailing zeros stripped) and exponent of decimal text. */
static int decompose(const char *s, uint64_t *d, int *e)
{
    uint64_t m = 0;
    int exp = 0, after_point = 0, ndig = 0;
    for (; *s && *s != 'e' && *s != 'E'; s++) {
        if (*s == '-')
            continue;
        if (*s == '.') {
            after_point = 1;
            continue;
        }
        if (m == 0 && *s == '0') {
            exp -= after_point;
            continue;
        }
        if (++ndig > 19)
            return -1;
        m = m * 10 + (uint64_t)(*s - '0');
        exp -= after_point;
    }
    if (*s)
        exp += atoi(s + 1);
    while (m && m % 10 == 0) {
        m /= 10;
        exp++;
    }
    *d = m;
    *e = exp;
    return 0;
}

static int digits_of(uint64_t d)
{
    int n = 1;
    while (d >= 10) {
        d /= 10;
        n++;
    }
    return n;
}

static int round_trips(const char *neg, uint64_t d, int e, uint32_t want)
{
    char t[48];
    snprintf(t, sizeof t, "%s%" PRIu64 "e%d", neg, d, e);
    return bits_of(strtof(t, NULL)) == want;
}

/* Shortest and closest, judged by strtof and glibc printf. */
static const char *check_strict(float v, const char *text)
{
    uint64_t d, r;
    int e, re;
    const char *neg = signbit(v) ? "-" : "";
    uint32_t want = bits_of(v);
    if (decompose(text, &d, &e))
        return "undecomposable output";
    if (d == 0)
        return v == 0 ? NULL : "zero text for a nonzero value";
    int n = digits_of(d);
    if (n > 1 && (round_trips(neg, d / 10, e + 1, want) ||
                  round_trips(neg, d / 10 + 1, e + 1, want)))
        return "not shortest";
    char ref[48];
    snprintf(ref, sizeof ref, "%.*e", n - 1, (double)v);
    if (decompose(ref, &r, &re))
        return "bad reference";
    if ((r != d || re != e) && bits_of(strtof(ref, NULL)) == want)
        return "not closest";
    return NULL;
}

static const char *check(uint32_t bits, int strict, char *text)
{
    float v, back;
    memcpy(&v, &bits, sizeof v);
    memset(text, 0x5a, 32);
    size_t len = dcv_float_format(v, text);
    for (int i = DCV_FLOAT_MAXLEN + 1; i < 32; i++)
        if ((unsigned char)text[i] != 0x5a)
            return "wrote past DCV_FLOAT_MAXLEN + 1 bytes";
    if (len > DCV_FLOAT_MAXLEN || strlen(text) != len)
        return "bad length";
    if (isnan(v))
        return strcmp(text, "NaN") ? "bad NaN spelling" : NULL;
    if (isinf(v))
        return strcmp(text, v > 0 ? "Infinity" : "-Infinity") ? "bad inf spelling" : NULL;
    if (dcv_float_parse(text, text + len, &back, 0) != len)
        return "parse rejected or stopped early";
    if (bits_of(back) != bits)
        return "round trip changed bits";
    /* again as an array element, with room for the decoder's quick path */
    char padded[48];
    memcpy(padded, text, len);
    memset(padded + len, ',', sizeof padded - len);
    if (dcv_float_parse(padded, padded + sizeof padded, &back, 0) != len)
        return "parse with slack rejected or stopped early";
    if (bits_of(back) != bits)
        return "round trip with slack changed bits";
    return strict ? check_strict(v, text) : NULL;
}

#define BATCH 64

struct batch {
    float v[BATCH];
    uint32_t bits[BATCH];
    char want[BATCH * (DCV_FLOAT_MAXLEN + 1) + 2], got[BATCH * (DCV_FLOAT_MAXLEN + 1) + 2];
    size_t n, len;
};

/* The batch as one array must read as its values' single texts. */
static int flush_batch(struct job *j, struct batch *b)
{
    int bad = 0;
    if (b->n) {
        b->want[b->len++] = ']';
        size_t len = dcv_float_array_format(b->v, b->n, b->got, sizeof b->got);
        bad = len != b->len || memcmp(b->got, b->want, len) != 0;
        if (bad && ++j->failures <= REPORT_FAILURES) {
            printf("FAIL array of 0x%08" PRIx32 "..0x%08" PRIx32 ": array text differs\n",
                   b->bits[0], b->bits[b->n - 1]);
            fflush(stdout);
        }
    }
    b->n = 0;
    b->want[0] = '[';
    b->len = 1;
    return bad;
}

static void add_to_batch(struct job *j, struct batch *b, uint32_t bits, const char *text)
{
    if (b->n > 0)
        b->want[b->len++] = ',';
    memcpy(&b->v[b->n], &bits, sizeof bits);
    b->bits[b->n++] = bits;
    size_t len = strlen(text);
    memcpy(b->want + b->len, text, len);
    b->len += len;
    if (b->n == BATCH)
        flush_batch(j, b);
}

static void *worker(void *arg)
{
    struct job *j = arg;
    char text[32];
    static _Thread_local struct batch b;
    flush_batch(j, &b);
    uint64_t total = (j->last - j->first) / j->step + 1;
    for (uint64_t i = j->first; i <= j->last; i += j->step) {
        const char *why = check((uint32_t)i, j->strict, text);
        add_to_batch(j, &b, (uint32_t)i, text);
        if (why && ++j->failures <= REPORT_FAILURES) {
            printf("FAIL 0x%08" PRIx64 ": %s (\"%.16s\")\n", i, why, text);
            fflush(stdout);
        }
        if (++j->checked % PROGRESS_EVERY == 0) {
            printf("thread %d: %5.1f%% (%" PRIu64 " checked, %" PRIu64 " failures, %.0f s)\n",
                   j->id, 100.0 * (double)j->checked / (double)total, j->checked,
                   j->failures, now() - j->t0);
            fflush(stdout);
        }
        if (i > UINT64_MAX - j->step)
            break;
    }
    flush_batch(j, &b);
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = 2, strict = 0, opt;
    uint64_t first = 0, last = UINT32_MAX, stride = 1;
    while ((opt = getopt(argc, argv, "t:sk:f:l:")) != -1) {
        switch (opt) {
        case 't': nthreads = atoi(optarg); break;
        case 's': strict = 1; break;
        case 'k': stride = strtoull(optarg, NULL, 0); break;
        case 'f': first = strtoull(optarg, NULL, 0); break;
        case 'l': last = strtoull(optarg, NULL, 0); break;
        default:
            fprintf(stderr, "usage: %s [-t threads] [-s] [-k stride] [-f first] [-l last]\n",
                    argv[0]);
            return 2;
        }
    }
    if (nthreads < 1 || nthreads > MAX_THREADS || stride < 1 || last > UINT32_MAX ||
        first > last) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    double t0 = now();
    struct job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int started = 0;
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (struct job){ .first = first + (uint64_t)t * stride, .last = last,
                                .step = stride * (uint64_t)nthreads, .id = t,
                                .strict = strict, .t0 = t0 };
        if (jobs[t].first > last)
            continue;
        if (pthread_create(&tids[t], NULL, worker, &jobs[t]) != 0) {
            perror("pthread_create");
            return 2;
        }
        started = t + 1;
    }
    uint64_t checked = 0, failures = 0;
    for (int t = 0; t < started; t++) {
        pthread_join(tids[t], NULL);
        checked += jobs[t].checked;
        failures += jobs[t].failures;
    }
    printf("exhaustive: %" PRIu64 " checked, %" PRIu64 " failures (%s, %d threads, %.1f s)\n",
           checked, failures, strict ? "strict" : "round trip", nthreads, now() - t0);
    return failures ? 1 : 0;
}
