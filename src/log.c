/* log.c — structured event lines on stderr.
 *
 * logfmt (`ts=... level=info msg="model loaded" model=up2d`) or one JSON
 * object per line, chosen at start-up. Lines are assembled in a stack buffer
 * and leave in whole-line writes so concurrent threads never interleave;
 * over-long values are truncated, never split. Once the server batches
 * (dcv_log_batch), debug/info lines collect in one buffer that the loop
 * flushes before each wait for I/O: under load one write(2) carries the
 * access lines of a whole loop iteration instead of one each, and an idle
 * server still shows every line at once. warn/error lines flush the batch
 * and go out immediately, in order. Escaping turns control bytes,
 * quotes and backslashes into escapes, which is what keeps request-supplied
 * text (ids, model names, paths) from injecting lines. Any thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/json.h"
#include "deconvd/log.h"

#define LINE_MAX_BYTES 2048
#define BATCH_BYTES (32 * 1024)

static enum dcv_log_level g_level = DCV_LOG_INFO;
static bool g_json;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static bool g_batching;                  /* under g_lock */
static char g_batch[BATCH_BYTES];        /* under g_lock */
static atomic_size_t g_batched;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void dcv_log_setup(enum dcv_log_level level, bool json)
{
    g_level = level;
    g_json = json;
}

int dcv_log_parse_level(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0) return i;
    return strcasecmp(s, "warning") == 0 ? DCV_LOG_WARN : -1;
}

bool dcv_log_enabled(enum dcv_log_level level) { return level >= g_level; }

struct line {
    char buf[LINE_MAX_BYTES];
    size_t n;
};

static void put(struct line *l, const char *s, size_t len)
{
    if (l->n + len > sizeof l->buf - 2) len = sizeof l->buf - 2 - l->n;
    memcpy(l->buf + l->n, s, len);
    l->n += len;
}

static void puts_(struct line *l, const char *s) { put(l, s, strlen(s)); }

/* Quoted, escaped string: valid for both JSON and logfmt readers. */
static void put_quoted(struct line *l, const char *s)
{
    char tmp[LINE_MAX_BYTES];
    size_t need = dcv_json_quote(tmp, sizeof tmp, s ? s : "");
    if (need >= sizeof tmp) {       /* truncated: keep it a closed string */
        tmp[sizeof tmp - 5] = '.', tmp[sizeof tmp - 4] = '.', tmp[sizeof tmp - 3] = '.';
        tmp[sizeof tmp - 2] = '"';
        tmp[sizeof tmp - 1] = '\0';
        if (tmp[sizeof tmp - 6] == '\\') tmp[sizeof tmp - 6] = '.';
    }
    puts_(l, tmp);
}

static bool needs_quotes(const char *s)
{
    if (!*s) return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f) return true;
    return false;
}

/* Decimal digits of v at the end of buf[0, 24); returns where they start. */
static char *digits(char *end, unsigned long long v)
{
    do *--end = (char)('0' + v % 10);
    while (v /= 10);
    return end;
}

/* Integers and durations are most of an access line: printf's locale and
 * format parsing cost more than the rest of the line together. */
static void put_number(struct line *l, const struct dcv_kv *kv)
{
    char num[64], *p = num + 32;
    if (kv->type == 'i') {
        unsigned long long u = kv->i < 0 ? 0ull - (unsigned long long)kv->i : (unsigned long long)kv->i;
        p = digits(p, u);
        if (kv->i < 0) *--p = '-';
        put(l, p, (size_t)(num + 32 - p));
    } else if (kv->f >= 0 && kv->f < 1e12) {        /* three decimals, like "12.345" */
        unsigned long long milli = (unsigned long long)(kv->f * 1000 + 0.5);
        char *end = num + 32;
        end[0] = '.';
        end[1] = (char)('0' + milli / 100 % 10);
        end[2] = (char)('0' + milli / 10 % 10);
        end[3] = (char)('0' + milli % 10);
        p = digits(end, milli / 1000);
        put(l, p, (size_t)(end + 4 - p));
    } else {
        put(l, num, (size_t)snprintf(num, sizeof num, "%.6g", kv->f));
    }
}

static void put_value(struct line *l, const struct dcv_kv *kv)
{
    if (kv->type != 's') put_number(l, kv);
    else if (g_json || needs_quotes(kv->s ? kv->s : "")) put_quoted(l, kv->s);
    else puts_(l, kv->s);
}

static void put_field(struct line *l, const char *key, const struct dcv_kv *kv)
{
    if (g_json) {
        puts_(l, ",\"");
        puts_(l, key);
        puts_(l, "\":");
    } else {
        puts_(l, " ");
        puts_(l, key);
        puts_(l, "=");
    }
    put_value(l, kv);
}

/* "2026-11-22T10:00:00.123Z"; the part up to the seconds is cached per
 * thread, strftime and gmtime cost microseconds. */
static void timestamp(char *ts, size_t cap)
{
    static _Thread_local time_t t_sec = -1;
    static _Thread_local char t_text[32];
    static _Thread_local size_t t_len;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != t_sec) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        t_len = strftime(t_text, sizeof t_text, "%Y-%m-%dT%H:%M:%S", &tm);
        t_sec = now.tv_sec;
    }
    long ms = now.tv_nsec / 1000000;
    snprintf(ts, cap, "%.*s.%03ldZ", (int)t_len, t_text, ms);
}

static void write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;                /* nowhere to report it */
        p += w;
        n -= (size_t)w;
    }
}

static void flush_locked(void)
{
    write_all(g_batch, atomic_load(&g_batched));
    atomic_store(&g_batched, 0);
}

static void emit(enum dcv_log_level level, const char *s, size_t n)
{
    pthread_mutex_lock(&g_lock);
    if (g_batching && level <= DCV_LOG_INFO) {
        size_t have = atomic_load(&g_batched);
        if (have + n > sizeof g_batch) flush_locked(), have = 0;
        memcpy(g_batch + have, s, n);
        atomic_store(&g_batched, have + n);
    } else {
        flush_locked();
        write_all(s, n);
    }
    pthread_mutex_unlock(&g_lock);
}

void dcv_log_flush(void)
{
    if (!atomic_load(&g_batched)) return;
    pthread_mutex_lock(&g_lock);
    flush_locked();
    pthread_mutex_unlock(&g_lock);
}

void dcv_log_batch(bool on)
{
    pthread_mutex_lock(&g_lock);
    flush_locked();
    g_batching = on;
    pthread_mutex_unlock(&g_lock);
}

void dcv_log_kv(enum dcv_log_level level, const char *msg, const struct dcv_kv *kv, size_t n)
{
    if (level < g_level) return;
    struct line l = { .n = 0 };
    char ts[40];
    timestamp(ts, sizeof ts);
    struct dcv_kv t = KV_S("ts", ts), lv = KV_S("level", level_names[level]),
                  m = KV_S("msg", msg);
    if (g_json) {
        puts_(&l, "{\"ts\":");
        put_quoted(&l, ts);
    } else {
        puts_(&l, "ts=");
        put_value(&l, &t);
    }
    put_field(&l, "level", &lv);
    put_field(&l, "msg", &m);
    for (size_t i = 0; i < n; i++) put_field(&l, kv[i].key, &kv[i]);
    if (g_json) puts_(&l, "}");
    l.buf[l.n++] = '\n';
    emit(level, l.buf, l.n);
}
