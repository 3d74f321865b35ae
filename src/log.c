/* log.c — structured event lines on stderr.
 *
 * logfmt (`ts=... level=info msg="model loaded" model=up2d`) or one JSON
 * object per line, chosen at start-up. Lines are assembled in a stack buffer
 * and written with a single write(2) so concurrent threads never interleave;
 * over-long values are truncated, never split. Escaping turns control bytes,
 * quotes and backslashes into escapes, which is what keeps request-supplied
 * text (ids, model names, paths) from injecting lines. Any thread.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/json.h"
#include "deconvd/log.h"

#define LINE_MAX_BYTES 2048

static enum dcv_log_level g_level = DCV_LOG_INFO;
static bool g_json;

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

static void put_value(struct line *l, const struct dcv_kv *kv)
{
    char num[64];
    if (kv->type == 'i') snprintf(num, sizeof num, "%lld", kv->i);
    else if (kv->type == 'f') snprintf(num, sizeof num, "%.6g", kv->f);
    if (kv->type != 's') puts_(l, num);
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

void dcv_log_kv(enum dcv_log_level level, const char *msg, const struct dcv_kv *kv, size_t n)
{
    if (level < g_level) return;
    struct line l = { .n = 0 };
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t k = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, sizeof ts - k, ".%03ldZ", now.tv_nsec / 1000000);
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
    ssize_t w = write(STDERR_FILENO, l.buf, l.n);
    (void)w;
}
