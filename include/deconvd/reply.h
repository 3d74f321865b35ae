/* reply.h — the API's answers: JSON bodies, error bodies, and the count of
 * every answer in the request metrics (model, endpoint, status). Loop
 * thread only.
 */
#ifndef DECONVD_REPLY_H
#define DECONVD_REPLY_H

#include <stddef.h>

struct dcv_http_req;
struct dcv_json;
struct dcv_metrics;
struct dcv_registry;

#define DCV_REPLY_JSON "application/json"

/* Where answers are counted; borrowed, owned by the server. */
struct dcv_reply {
    struct dcv_metrics *metrics;
    const struct dcv_registry *reg;       /* model labels: only names it knows */
};

/* Counts an answer of this status (the endpoint label is the request's). */
void dcv_reply_count(const struct dcv_reply *r, struct dcv_http_req *req, const char *model,
                     int status);

/* Counts and sends body (a dcv_buf block, ownership taken; NULL for none)
 * of len bytes; a 503 carries Retry-After: 1. */
void dcv_reply_text(const struct dcv_reply *r, struct dcv_http_req *req, const char *model,
                    int status, const char *ctype, char *body, size_t len);

/* Sends doc (freed here) printed, with invalid UTF-8 replaced by '?'; a 500
 * JSON error when out of memory. */
void dcv_reply_json(const struct dcv_reply *r, struct dcv_http_req *req, const char *model,
                    int status, struct dcv_json *doc);

/* {"error": msg} with the HTTP status of code (error.h). */
void dcv_reply_error(const struct dcv_reply *r, struct dcv_http_req *req, const char *model,
                     int code, const char *msg);

/* {"error": msg} as a dcv_buf body of *len bytes, msg quoted and any
 * invalid UTF-8 in it (request bytes, a character cut by a length limit)
 * replaced by '?'. NULL when out of memory. */
char *dcv_reply_error_body(const char *msg, size_t *len);

/* A dcv_buf body holding a copy of s[0, n] (n + 1 bytes: s's NUL too), or
 * NULL. */
char *dcv_reply_dup(const char *s, size_t n);

#endif
