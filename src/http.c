/* http.c — libmicrohttpd driven by the libuv loop.
 *
 * MHD runs without threads of its own (MHD_USE_EPOLL, no internal polling
 * thread): the loop watches MHD's epoll fd and calls MHD_run, and re-arms a
 * timer from MHD_get_timeout. A request object is created on the first
 * callback for a connection, accumulates the body, and is dispatched once.
 * When the handler defers its answer the connection is suspended, and
 * dcv_http_respond resumes it; MHD then calls back and the stored response
 * is queued. The request is freed in MHD's completion callback, which also
 * writes the access log line, so a client that vanishes mid-request costs
 * nothing but that line. MHD's timeout only closes idle connections; a
 * client trickling a byte now and then (slowloris) is cut here instead:
 * a request must arrive within connection_timeout_s plus one second per
 * min_transfer_rate bytes of body, and an answer must be read within the
 * same allowance for its size (the socket is shut down and MHD closes it).
 * Body buffers take their bytes from the memory budget (budget.c) as they
 * are reserved; past it the request is refused with 503. A refusal made
 * before the body has arrived (413, 401, 503) is sent once the body has been
 * read and discarded, within a bound, rather than at once: a client that
 * sends its whole body before reading (Python's http.client, Node's fetch)
 * would otherwise see the connection reset instead of the status. Clients
 * that sent `Expect: 100-continue` get it at once. A request handed to the
 * handler and not yet answered is watched for its client leaving, which is
 * reported to the handler (so it can stop the work). Loop thread only. The
 * only includer of microhttpd.h; MHD results are translated here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "deconvd/budget.h"
#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/http.h"
#include "deconvd/log.h"
#include "deconvd/sched.h"

#define SWEEP_NS 250000000ull           /* how often deadlines are checked */
/* Request heads are refused with JSON 414/431 by us up to what fits in MHD's
 * per-connection pool; only heads beyond the pool get MHD's own HTML page. */
#define POOL_BYTES (32 * 1024)         /* MHD zeroes it per request: keep it small */
#define MAX_URL 8192
#define MAX_HEAD_BYTES 16384
#define MAX_HEADERS 256

/* An open connection, from MHD's connection notifications. */
struct conn {
    struct conn *prev, *next;
    struct MHD_Connection *c;
    struct dcv_http_req *req;      /* NULL while waiting for a request's headers */
    uint64_t since_ns;             /* when it began waiting for the current request */
    bool cut;
};

/* A response body whose bytes are held in the memory budget until MHD
 * frees the response (after the last byte is sent, or the connection
 * closes). */
struct held_body {
    char *block;
    size_t held;
};

struct dcv_http {
    struct MHD_Daemon *d;
    struct dcv_http_opts o;
    int port;
    long active, nconns;
    struct conn *conns;
    uint64_t next_sweep;
    bool quiesced;
};

struct dcv_http_req {
    struct dcv_http *srv;
    struct MHD_Connection *conn;
    struct conn *track;
    const char *url;
    char method[32];
    char *body;                    /* dcv_buf block + pad */
    size_t len, cap, discarded, pad, expect;
    size_t max_body;               /* this request's limit (dcv_http_limit_body) */
    size_t announced;              /* Content-Length (saturated), 0 when absent */
    char limit_why[64];            /* what sets max_body, for the 413 message */
    size_t reserved;               /* budget bytes held for the body buffer */
    bool dispatched, suspended, too_large, cut, refused, body_coming, left;
    struct MHD_Response *resp;     /* waiting to be queued */
    int status;
    size_t out_bytes;
    uint64_t start_ns, body_ns, answer_ns, sending_ns;
    void (*gone)(void *);          /* client left while dispatched, unanswered */
    void *gone_arg;
    char model[128], endpoint[32];
};

const char *dcv_http_method(const struct dcv_http_req *r) { return r->method; }
const char *dcv_http_path(const struct dcv_http_req *r) { return r->url; }
double dcv_http_age(const struct dcv_http_req *r) { return (dcv_now_ns() - r->body_ns) / 1e9; }
const char *dcv_http_endpoint(const struct dcv_http_req *r) { return r->endpoint; }

const char *dcv_http_header(const struct dcv_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

char *dcv_http_body(struct dcv_http_req *r, size_t *len)
{
    *len = r->len;
    return r->body;
}

char *dcv_http_take_body(struct dcv_http_req *r, size_t *len, size_t *held)
{
    char *b = r->body;
    *len = r->len;                /* r->len stays for the access log */
    *held = r->reserved;
    r->body = NULL;
    r->cap = 0;
    r->reserved = 0;
    return b;                     /* within the block's first 64 bytes: dcv_buf_free takes it */
}

void dcv_http_limit_body(struct dcv_http_req *r, size_t max, const char *why)
{
    if (max >= r->max_body) return;
    r->max_body = max;
    snprintf(r->limit_why, sizeof r->limit_why, "%s", why);
}

void dcv_http_on_gone(struct dcv_http_req *r, void (*cb)(void *), void *arg)
{
    r->gone = cb;
    r->gone_arg = arg;
}

static void release_body(struct dcv_http_req *r)
{
    dcv_buf_free(r->body);
    dcv_budget_give(r->reserved);
    r->body = NULL;
    r->cap = r->reserved = 0;
}

void dcv_http_set_log(struct dcv_http_req *r, const char *model, const char *endpoint)
{
    if (model) snprintf(r->model, sizeof r->model, "%s", model);
    if (endpoint) snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint);
}

static void free_held(void *cls)
{
    struct held_body *h = cls;
    dcv_buf_free(h->block);
    dcv_budget_give(h->held);
    free(h);
}

static struct MHD_Response *body_response(char *body, size_t off, size_t len, size_t held)
{
    struct held_body *h;
    if (!held)
        return MHD_create_response_from_buffer_with_free_callback_cls(len, body + off,
                                                                     dcv_buf_free, body);
    if (!(h = malloc(sizeof *h))) return NULL;
    *h = (struct held_body){ body, held };
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback_cls(len, body + off, free_held, h);
    if (!resp) free(h);
    return resp;
}

void dcv_http_respond_held(struct dcv_http_req *r, int status, const char *content_type,
                           char *body, size_t off, size_t len, size_t held,
                           const struct dcv_http_header *hdrs, size_t nhdrs)
{
    struct MHD_Response *resp;
    resp = body ? body_response(body, off, len, held)
                : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        dcv_buf_free(body);
        dcv_budget_give(held);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = 500;
    }
    if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (size_t i = 0; i < nhdrs; i++) MHD_add_response_header(resp, hdrs[i].name, hdrs[i].value);
    /* Draining: no further request on this connection, or busy keep-alive
     * clients would hold the drain open until its timeout. */
    if (r->srv->quiesced) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = status;
    r->out_bytes = len;
    r->resp = resp;
    r->answer_ns = dcv_now_ns();
    r->gone = NULL;
    if (r->suspended) {
        /* In external epoll mode a resume does not wake MHD's epoll fd:
         * ask the loop to run MHD (and re-arm its timeout) soon. */
        r->suspended = false;
        MHD_resume_connection(r->conn);
        r->srv->o.wake(r->srv->o.wake_arg);
    }
}

void dcv_http_respond(struct dcv_http_req *r, int status, const char *content_type, char *body,
                      size_t off, size_t len, const struct dcv_http_header *hdrs, size_t nhdrs)
{
    dcv_http_respond_held(r, status, content_type, body, off, len, 0, hdrs, nhdrs);
}

static enum MHD_Result queue_stored(struct dcv_http_req *r)
{
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    r->sending_ns = dcv_now_ns();
    return ok;
}

static void respond_error(struct dcv_http_req *r, int status, const char *msg)
{
    struct dcv_http_header h[] = { { "Retry-After", "1" } };
    char *b = dcv_buf_alloc(512);
    int n = b ? snprintf(b, 512, "{\"error\":\"%s\"}", msg) : 0;
    dcv_http_respond(r, status, "application/json", b, 0, (size_t)n, h, status == 503);
}

/* The body buffer is sized from Content-Length when there is one (else it
 * doubles), and starts pad bytes into its block so that the byte at the
 * offset named by the align_after header (a binary tensor after a JSON
 * header) is 64-byte aligned: the engine then reads it in place. */
enum append_result { APPENDED, OVER_LIMIT, OVER_BUDGET };

/* Growth beyond what Content-Length reserved takes its bytes from the
 * budget as the buffer grows (chunked uploads, or a length that lied). */
static enum append_result append(struct dcv_http_req *r, const char *data, size_t n)
{
    if (r->len + n > r->max_body) return OVER_LIMIT;
    if (r->len + n + 1 > r->cap) {
        size_t nc = r->cap ? r->cap * 2 : r->expect >= r->len + n ? r->expect + 1 : 4096;
        while (nc < r->len + n + 1) nc *= 2;
        if (nc > r->max_body + 1) nc = r->max_body + 1;
        size_t more = nc > r->reserved ? nc - r->reserved : 0;
        if (!dcv_budget_take(more)) return OVER_BUDGET;
        /* a new block and a copy of the bytes received, not of the old
         * block's capacity: pages never written stay unmapped */
        char *p = dcv_buf_alloc(r->pad + nc);
        if (!p) {
            dcv_budget_give(more);
            return OVER_BUDGET;
        }
        if (r->body) {
            memcpy(p + r->pad, r->body, r->len);
            dcv_buf_free(r->body - r->pad);
        }
        r->reserved += more;
        r->body = p + r->pad;
        r->cap = nc;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return APPENDED;
}

/* Printable ASCII copy: the method reaches the log and error messages. */
static void copy_printable(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || (unsigned char)src[i] >= 0x7f ? '?' : src[i];
    dst[i] = '\0';
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    size_t *n = cls;
    (void)kind;
    n[0]++;
    n[1] += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* Our limits on the request line and headers, answered in JSON. */
static void check_head(struct dcv_http_req *r)
{
    size_t n[2] = { 0, 0 };
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_header, n);
    if (strlen(r->url) > MAX_URL)
        respond_error(r, MHD_HTTP_URI_TOO_LONG, "request URL longer than 8192 bytes");
    else if (n[0] > MAX_HEADERS || n[1] > MAX_HEAD_BYTES)
        respond_error(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                      "request headers above 256 fields or 16384 bytes");
}

static struct dcv_http_req *begin(struct dcv_http *h, struct MHD_Connection *conn,
                                  const char *url, const char *method)
{
    struct dcv_http_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->srv = h;
    h->active++;
    r->conn = conn;
    r->url = url;
    copy_printable(r->method, sizeof r->method, method);
    r->start_ns = dcv_now_ns();
    snprintf(r->endpoint, sizeof r->endpoint, "other");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context) {
        r->track = ci->socket_context;
        r->track->req = r;
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
    r->max_body = h->o.max_body;
    r->body_coming = announced > 0 ||
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    r->announced = announced > SIZE_MAX ? SIZE_MAX : (size_t)announced;
    /* A length that lies costs its bytes of the budget (taken before the
     * body is read), not memory: pages never written are never resident. */
    r->expect = r->announced;
    const char *at = h->o.align_after ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                     h->o.align_after) : NULL;
    if (at) r->pad = (DCV_BUF_ALIGN - strtoull(at, NULL, 10) % DCV_BUF_ALIGN) % DCV_BUF_ALIGN;
    return r;
}

static void refuse_too_large(struct dcv_http_req *r)
{
    char msg[160];
    snprintf(msg, sizeof msg, "request body larger than %zu bytes (%s)", r->max_body,
             r->limit_why[0] ? r->limit_why : "max_body_bytes");
    respond_error(r, 413, msg);
}

/* Content-Length bytes are taken from the budget before the body is read,
 * so that a request that cannot fit is refused before it is sent. */
static void reserve_announced(struct dcv_http_req *r)
{
    if (!r->announced) return;
    if (r->announced > r->max_body) {
        r->too_large = true;
        refuse_too_large(r);
    } else if (dcv_budget_take(r->announced + 1)) {
        r->reserved = r->announced + 1;
    } else {
        char msg[200];
        snprintf(msg, sizeof msg, "server busy: memory_budget_bytes (%zu) is taken by other "
                 "requests; retry later", dcv_budget_limit());
        respond_error(r, 503, msg);
    }
}

static bool expects_continue(const struct dcv_http_req *r)
{
    const char *e = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    return e && !strcasecmp(e, "100-continue");
}

/* Bytes of a refused request's body read and dropped before giving up
 * (and closing, which a client still sending sees as a reset). */
static size_t discard_max(const struct dcv_http *h)
{
    size_t twice = 2 * h->o.max_body, floor = (size_t)64 << 20;
    return twice > floor ? twice : floor;
}

/* A refusal stored before the body arrived. A client that waits for
 * "100 Continue" gets it now and sends no body. Others are sending
 * already: read and drop the body (up to discard_max bytes, at
 * min_transfer_rate), then answer, as nginx's lingering close does. A body
 * announced bigger than that is answered at once: it could not be read. */
static enum MHD_Result refuse_early(struct dcv_http_req *r)
{
    if (!r->body_coming || expects_continue(r) || r->announced > discard_max(r->srv))
        return queue_stored(r);
    r->refused = true;
    release_body(r);
    return MHD_YES;
}

/* Body bytes: kept, or counted and dropped once the request is refused. */
static enum MHD_Result take_upload(struct dcv_http_req *r, const char *upload, size_t n)
{
    if (!r->refused && !r->too_large) {
        enum append_result a = append(r, upload, n);
        if (a == APPENDED) return MHD_YES;
        if (a == OVER_LIMIT) r->too_large = true;
        else {
            char msg[200];
            snprintf(msg, sizeof msg, "server busy: memory_budget_bytes (%zu) is taken by "
                     "other requests; retry later", dcv_budget_limit());
            respond_error(r, 503, msg);
            r->refused = true;
        }
        release_body(r);
    }
    r->discarded += n;
    return r->discarded > discard_max(r->srv) ? MHD_NO : MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload, size_t *upload_size, void **con_cls)
{
    struct dcv_http *h = cls;
    struct dcv_http_req *r = *con_cls;
    (void)version;
    if (!r) {
        if (!(r = *con_cls = begin(h, conn, url, method))) return MHD_NO;
        check_head(r);
        if (!r->resp && h->o.precheck) h->o.precheck(h->o.ctx, r, r->announced);
        if (!r->resp) reserve_announced(r);
        return r->resp ? refuse_early(r) : MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;            /* consumed (or dropped) */
        return take_upload(r, upload, n);
    }
    if (r->resp) return queue_stored(r);
    if (r->too_large) {
        refuse_too_large(r);
        return queue_stored(r);
    }
    if (!r->dispatched) {
        r->dispatched = true;
        r->body_ns = dcv_now_ns();
        if (!r->body) {                 /* no body: nothing taken from the budget */
            if (!(r->body = dcv_buf_alloc(1))) return MHD_NO;
            r->body[0] = '\0';
        }
        h->o.handler(h->o.ctx, r);
        if (r->resp) return queue_stored(r);
        r->suspended = true;
        MHD_suspend_connection(conn);
        return MHD_YES;
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct dcv_http_req *r = *con_cls;
    (void)cls;
    (void)conn;
    if (!r) return;
    uint64_t now = dcv_now_ns();
    double ms = (now - r->start_ns) / 1e6;
    /* where an answered request's time went: body complete -> answer given
     * (handler, workers, hand-backs), -> queued in MHD (the resume: one
     * loop wake-up), -> last byte written */
    bool timed = r->body_ns && r->answer_ns && r->sending_ns >= r->answer_ns;
    char path[400];                /* keeps the line within the logger's line size */
    snprintf(path, sizeof path, strlen(r->url) < sizeof path ? "%s" : "%.380s...", r->url);
    DCV_LOG(toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? DCV_LOG_INFO : DCV_LOG_WARN, "access",
            KV_S("method", r->method), KV_S("path", path), KV_S("endpoint", r->endpoint),
            KV_S("model", r->model), KV_I("status", r->status), KV_I("bytes_in", r->len),
            KV_I("bytes_out", r->out_bytes), KV_F("ms", ms),
            KV_F("answer_ms", timed ? (r->answer_ns - r->body_ns) / 1e6 : 0),
            KV_F("resume_ms", timed ? (r->sending_ns - r->answer_ns) / 1e6 : 0),
            KV_F("send_ms", timed ? (now - r->sending_ns) / 1e6 : 0),
            KV_S("outcome", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "ok"
                            : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED || r->cut ? "timeout"
                            : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || r->left
                            ? "client_abort"
                            : "closed"));
    if (r->track) {                /* the connection waits for its next request */
        r->track->req = NULL;
        r->track->since_ns = dcv_now_ns();
    }
    if (r->resp) MHD_destroy_response(r->resp);
    r->srv->active--;
    release_body(r);
    free(r);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct dcv_http *h = cls;
    struct conn *t = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        if (!(t = calloc(1, sizeof *t))) return;       /* untracked: MHD's timeout only */
        t->c = c;
        t->since_ns = dcv_now_ns();
        t->next = h->conns;
        if (h->conns) h->conns->prev = t;
        h->conns = t;
        h->nconns++;
        *socket_context = t;
    } else if (t) {
        if (t->req) t->req->track = NULL;
        if (t->prev) t->prev->next = t->next;
        else h->conns = t->next;
        if (t->next) t->next->prev = t->prev;
        h->nconns--;
        free(t);
        *socket_context = NULL;
    }
}

/* End of stream, or a reset: the peer is gone. Data (a pipelined
 * request) or nothing yet means it is still there. */
static bool peer_gone(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Nanoseconds a transfer of n bytes may take: the connection timeout plus
 * one second per min_transfer_rate bytes. */
static uint64_t allowance(const struct dcv_http *h, uint64_t n)
{
    return (uint64_t)h->o.connection_timeout_s * 1000000000ull +
           n / h->o.min_rate * 1000000000ull + n % h->o.min_rate * 1000000000ull / h->o.min_rate;
}

static void cut(struct conn *t, int fd, bool timeout, const char *why)
{
    t->cut = true;
    if (t->req) t->req->cut = timeout;       /* logged as a timeout, else client_abort */
    DCV_LOG(DCV_LOG_DEBUG, "http", KV_S("detail", why));
    shutdown(fd, SHUT_RDWR);
}

/* Shuts down connections whose request or answer is late (see the top of
 * the file); MHD sees the end of the stream and closes them. A request
 * handed to the handler and not answered yet has no deadline here (the
 * handler has its own); if its client has left, the handler is told. A
 * peer that closed while the loop was busy can be missed by MHD's
 * edge-triggered epoll, so every connection is also probed with recv. */
static void sweep(struct dcv_http *h, uint64_t now)
{
    for (struct conn *t = h->conns; t; t = t->next) {
        struct dcv_http_req *r = t->req;
        if (t->cut) continue;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(t->c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci) continue;
        int fd = ci->connect_fd;
        bool gone = peer_gone(fd);
        if (r && r->dispatched && !r->sending_ns) {
            if (!gone) continue;
            void (*cb)(void *) = r->suspended ? r->gone : NULL;
            r->left = true;
            cut(t, fd, false, "peer left before its answer, stopping the work");
            if (cb) cb(r->gone_arg);             /* the handler answers r */
            continue;
        }
        if (gone) {
            cut(t, fd, false, "peer closed, closing");
        } else if (r && r->sending_ns) {
            if (now - r->sending_ns > allowance(h, r->out_bytes))
                cut(t, fd, true, "answer read too slowly, closing");
        } else if (now - t->since_ns > allowance(h, r ? r->len + r->discarded : 0)) {
            cut(t, fd, true, r ? "request body too slow, closing"
                               : "request headers too slow, closing");
        }
    }
}

/* Drain: every connection not waiting for its answer is shut down now.
 * Returns how many of them held a request that had begun to arrive. */
long dcv_http_cut_unfinished(struct dcv_http *h)
{
    long partial = 0;
    for (struct conn *t = h->conns; t; t = t->next) {
        struct dcv_http_req *r = t->req;
        if (t->cut || (r && (r->dispatched || r->sending_ns))) continue;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(t->c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci) continue;
        partial += r != NULL;
        cut(t, ci->connect_fd, true, r ? "draining: request not complete, closing"
                                       : "draining: idle, closing");
    }
    return partial;
}

/* URL unescaping: MHD's %HH decoding, then every byte that is not printable
 * ASCII becomes '?'. No endpoint or model name has one; an encoded NUL can
 * no longer cut a path short (/v2/models/up1d%00x is not up1d), and paths
 * reach the router and the log as plain ASCII. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    size_t n = MHD_http_unescape(s);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) s[i] = '?';
    return n;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    DCV_LOG(DCV_LOG_DEBUG, "http", KV_S("detail", msg));
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, char *err)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | AI_PASSIVE }, *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0)
        return dcv_errf(err, DCV_EINVAL, "listen host '%.64s': %s", host, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int dcv_http_start(const struct dcv_http_opts *o, struct dcv_http **out, char *err)
{
    struct sockaddr_storage ss;
    struct dcv_http *h = calloc(1, sizeof *h);
    int rc;
    if (!h) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    h->o = *o;
    if ((rc = resolve(o->host, o->port, &ss, err))) {
        free(h);
        return rc;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_access, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,   /* first, as MHD asks */
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->connection_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)POOL_BYTES,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape, h,
                            MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return dcv_errf(err, DCV_EIO, "cannot listen on %s:%d (address in use or not "
                        "available?)", o->host, o->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : o->port;
    *out = h;
    return 0;
}

int dcv_http_fd(const struct dcv_http *h)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    return info ? info->epoll_fd : -1;
}

int dcv_http_port(const struct dcv_http *h) { return h->port; }
long dcv_http_active(const struct dcv_http *h) { return h->active; }
void dcv_http_process(struct dcv_http *h)
{
    long before = h->nconns;
    MHD_run(h->d);                 /* first, so that data already in is seen */
    uint64_t now = dcv_now_ns();
    if (now >= h->next_sweep) {
        sweep(h, now);
        h->next_sweep = now + SWEEP_NS;
    }
    /* At max_connections MHD takes its listening socket out of the epoll
     * set and puts it back only at the start of a later run. If this run
     * closed connections, nothing else may come to trigger one (all idle
     * connections timed out at once, say) and the daemon would never accept
     * again: run once more. */
    if (h->nconns < before) MHD_run(h->d);
}

long long dcv_http_timeout_ms(struct dcv_http *h)
{
    MHD_UNSIGNED_LONG_LONG t;
    long long ms = MHD_get_timeout(h->d, &t) == MHD_YES ? (long long)t : -1;
    long long sweep_ms = (long long)(SWEEP_NS / 1000000);
    if (h->conns && (ms < 0 || ms > sweep_ms)) ms = sweep_ms;    /* deadlines to check */
    return ms;
}

void dcv_http_quiesce(struct dcv_http *h)
{
    h->quiesced = true;
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET) close(s);
}

void dcv_http_stop(struct dcv_http *h)
{
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
