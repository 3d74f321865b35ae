/* log.h — one line per event on stderr, logfmt or JSON.
 *
 * Events carry a message and typed key/values. Values are escaped so that
 * nothing a client sends can forge a line (no raw newlines or quotes reach
 * the output). Any thread: lines never interleave. Batched mode (the
 * server's) holds debug/info lines until dcv_log_flush.
 */
#ifndef DECONVD_LOG_H
#define DECONVD_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum dcv_log_level { DCV_LOG_DEBUG, DCV_LOG_INFO, DCV_LOG_WARN, DCV_LOG_ERROR };

struct dcv_kv {
    const char *key;
    char type;               /* 's' string, 'i' integer, 'f' double */
    const char *s;
    long long i;
    double f;
};

#define KV_S(k, v) ((struct dcv_kv){ .key = (k), .type = 's', .s = (v) })
#define KV_I(k, v) ((struct dcv_kv){ .key = (k), .type = 'i', .i = (long long)(v) })
#define KV_F(k, v) ((struct dcv_kv){ .key = (k), .type = 'f', .f = (double)(v) })

/* Sets the threshold and format; call before other threads log. */
void dcv_log_setup(enum dcv_log_level level, bool json);
/* "debug", "info", "warn"/"warning", "error" → level; -1 if unknown. */
int dcv_log_parse_level(const char *s);
bool dcv_log_enabled(enum dcv_log_level level);

/* Batching on: debug/info lines wait in a 32 KiB buffer for dcv_log_flush
 * (or for the buffer to fill, or a warn/error line, which flushes first).
 * Off: flushes, then every line is written at once. Any thread; the
 * caller that turns it on flushes once per loop iteration and turns it off
 * before exiting. */
void dcv_log_batch(bool on);
void dcv_log_flush(void);

void dcv_log_kv(enum dcv_log_level level, const char *msg, const struct dcv_kv *kv, size_t n);

#define DCV_LOG(level, msg, ...)                                                  \
    dcv_log_kv((level), (msg), (const struct dcv_kv[]){ __VA_ARGS__ },            \
               sizeof((const struct dcv_kv[]){ __VA_ARGS__ }) / sizeof(struct dcv_kv))

#endif
