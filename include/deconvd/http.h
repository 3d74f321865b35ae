/* http.h — the HTTP/1.1 server (libmicrohttpd in external-event mode).
 *
 * The server hands each request to one callback once its body is complete.
 * The callback answers at once with dcv_http_respond, or later from the
 * loop thread (the connection is suspended meanwhile, costing no thread).
 * Bodies above max_body (or a request's own lower limit) are refused with
 * 413, and bodies that do not fit the memory budget with 503; a client
 * already sending its body gets the refusal once that body has been read
 * and dropped (bounded), one that waits for 100 Continue gets it at once.
 * Uploads and answers must move at min_rate bytes/s after a grace of
 * connection_timeout_s. Everything runs on the loop thread.
 */
#ifndef DECONVD_HTTP_H
#define DECONVD_HTTP_H

#include <stddef.h>

struct dcv_http;
struct dcv_http_req;

typedef void (*dcv_http_handler)(void *ctx, struct dcv_http_req *req);

struct dcv_http_opts {
    const char *host;
    int port;                  /* 0 = ephemeral */
    size_t max_body;
    size_t min_rate;           /* bytes/s an upload or a download keeps up */
    int max_connections;
    int connection_timeout_s;
    dcv_http_handler handler;
    /* optional: runs when the headers are in (announced: Content-Length, 0
     * when absent); answering there refuses the request without keeping
     * its body (see the top of the file for when the answer is sent) */
    void (*precheck)(void *ctx, struct dcv_http_req *req, size_t announced);
    void *ctx;
    void (*wake)(void *arg);   /* asks the loop to call dcv_http_process soon */
    const char *align_after;   /* header naming a body offset to 64-byte align, or NULL */
    void *wake_arg;
};

/* Binds and listens. Returns 0 and *out, or DCV_EIO with a message. */
int dcv_http_start(const struct dcv_http_opts *o, struct dcv_http **out, char *err);
int dcv_http_fd(const struct dcv_http *h);       /* readable → dcv_http_process */
int dcv_http_port(const struct dcv_http *h);     /* bound port */
void dcv_http_process(struct dcv_http *h);
long long dcv_http_timeout_ms(struct dcv_http *h);  /* -1: none pending */
/* Stops accepting new connections (drain); existing ones finish the request
 * in progress and are closed after its answer (Connection: close). */
void dcv_http_quiesce(struct dcv_http *h);
void dcv_http_stop(struct dcv_http *h);
/* Requests received and not yet completed (answered and sent, or aborted). */
long dcv_http_active(const struct dcv_http *h);

const char *dcv_http_method(const struct dcv_http_req *r);
const char *dcv_http_path(const struct dcv_http_req *r);          /* decoded, no query */
const char *dcv_http_header(const struct dcv_http_req *r, const char *name); /* any case */
char *dcv_http_body(struct dcv_http_req *r, size_t *len);          /* mutable, NUL-ended */
/* Takes the body buffer away from the request (caller frees with
 * dcv_buf_free), with the *held bytes of the memory budget it stands for
 * (the caller gives them back with dcv_budget_give). */
char *dcv_http_take_body(struct dcv_http_req *r, size_t *len, size_t *held);

/* Lowers this request's body limit below max_body; why names the limit in
 * the 413 message. From the precheck callback only. */
void dcv_http_limit_body(struct dcv_http_req *r, size_t max, const char *why);

/* cb(arg) runs (loop thread) if the client leaves while the request is
 * handed to the handler and not yet answered; cb must answer it (the
 * answer is then dropped) so that the connection can be closed. Cleared
 * by answering. */
void dcv_http_on_gone(struct dcv_http_req *r, void (*cb)(void *), void *arg);

/* Drain: shuts down every connection that is not waiting for its answer
 * or receiving it. Returns how many had a request partly received. */
long dcv_http_cut_unfinished(struct dcv_http *h);

/* Labels for the access log line. */
void dcv_http_set_log(struct dcv_http_req *r, const char *model, const char *endpoint);
const char *dcv_http_endpoint(const struct dcv_http_req *r);

struct dcv_http_header {
    const char *name, *value;
};

/* Sends the response: body (from dcv_buf_alloc, ownership taken; NULL allowed) of len
 * bytes starting at body + off. Works both inside the handler and later;
 * exactly once per request. */
void dcv_http_respond(struct dcv_http_req *r, int status, const char *content_type, char *body,
                      size_t off, size_t len, const struct dcv_http_header *hdrs, size_t nhdrs);
/* The same for a body standing for `held` bytes of the memory budget,
 * given back when the response is freed (sent, or its connection gone). */
void dcv_http_respond_held(struct dcv_http_req *r, int status, const char *content_type,
                           char *body, size_t off, size_t len, size_t held,
                           const struct dcv_http_header *hdrs, size_t nhdrs);

/* Seconds since the request's body was complete. */
double dcv_http_age(const struct dcv_http_req *r);

#endif
