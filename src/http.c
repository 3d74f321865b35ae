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
 * a request must arrive within connection_timeout_s, plus one second per
 * MIN_UPLOAD_RATE bytes of body received (the socket is shut down and MHD
 * closes it). Loop thread only. The only includer of microhttpd.h; MHD
 * results are translated here.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/http.h"
#include "deconvd/log.h"
#include "deconvd/sched.h"

#define MIN_UPLOAD_RATE 65536          /* bytes/s a slow upload must keep up */
#define SWEEP_NS 250000000ull           /* how often deadlines are checked */
#define PRESIZE_MAX ((size_t)16 << 20) /* bodies trusted to Content-Length */
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
    bool dispatched, suspended, too_large, cut;
    struct MHD_Response *resp;     /* waiting to be queued */
    int status;
    size_t out_bytes;
    uint64_t start_ns, body_ns;
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

char *dcv_http_take_body(struct dcv_http_req *r, size_t *len)
{
    char *b = r->body;
    *len = r->len;                /* r->len stays for the access log */
    r->body = NULL;
    r->cap = 0;
    return b;                     /* within the block's first 64 bytes: dcv_buf_free takes it */
}

void dcv_http_set_log(struct dcv_http_req *r, const char *model, const char *endpoint)
{
    if (model) snprintf(r->model, sizeof r->model, "%s", model);
    if (endpoint) snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint);
}

void dcv_http_respond(struct dcv_http_req *r, int status, const char *content_type, char *body,
                      size_t off, size_t len, const struct dcv_http_header *hdrs, size_t nhdrs)
{
    struct MHD_Response *resp;
    resp = body ? MHD_create_response_from_buffer_with_free_callback_cls(len, body + off,
                                                                        dcv_buf_free, body)
                : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        dcv_buf_free(body);
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
    if (r->suspended) {
        /* In external epoll mode a resume does not wake MHD's epoll fd:
         * ask the loop to run MHD (and re-arm its timeout) soon. */
        r->suspended = false;
        MHD_resume_connection(r->conn);
        r->srv->o.wake(r->srv->o.wake_arg);
    }
}

static enum MHD_Result queue_stored(struct dcv_http_req *r)
{
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    return ok;
}

static void respond_error(struct dcv_http_req *r, int status, const char *msg)
{
    char *b = dcv_buf_alloc(256);
    int n = b ? snprintf(b, 256, "{\"error\":\"%s\"}", msg) : 0;
    dcv_http_respond(r, status, "application/json", b, 0, (size_t)n, NULL, 0);
}

/* The body buffer is sized from Content-Length when there is one (else it
 * doubles), and starts pad bytes into its block so that the byte at the
 * offset named by the align_after header (a binary tensor after a JSON
 * header) is 64-byte aligned: the engine then reads it in place. */
static bool append(struct dcv_http_req *r, const char *data, size_t n)
{
    if (r->len + n > r->srv->o.max_body) return false;
    if (r->len + n + 1 > r->cap) {
        size_t nc = r->cap ? r->cap * 2 : r->expect >= r->len + n ? r->expect + 1 : 4096;
        while (nc < r->len + n + 1) nc *= 2;
        if (nc > r->srv->o.max_body + 1) nc = r->srv->o.max_body + 1;
        char *p = dcv_buf_realloc(r->body ? r->body - r->pad : NULL, r->pad + nc);
        if (!p) return false;
        r->body = p + r->pad;
        r->cap = nc;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return true;
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
    r->too_large = announced > h->o.max_body;
    /* capped, so that a lying length costs little */
    if (!r->too_large) r->expect = announced < PRESIZE_MAX ? announced : PRESIZE_MAX;
    const char *at = h->o.align_after ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                     h->o.align_after) : NULL;
    if (at) r->pad = (DCV_BUF_ALIGN - strtoull(at, NULL, 10) % DCV_BUF_ALIGN) % DCV_BUF_ALIGN;
    return r;
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
        /* Content-Length already says too large: answer before the body. */
        if (r->too_large) respond_error(r, 413, "request body larger than max_body_bytes");
        else check_head(r);
        if (!r->resp && h->o.precheck) h->o.precheck(h->o.ctx, r, r->expect);
        return r->resp ? queue_stored(r) : MHD_YES;
    }
    if (r->resp) return queue_stored(r);
    if (*upload_size) {
        if (!r->too_large && !append(r, upload, *upload_size)) r->too_large = true;
        if (r->too_large) r->discarded += *upload_size;
        *upload_size = 0;            /* consumed (or discarded once too large) */
        /* MHD takes a response only once the upload is complete: discard
         * the rest (up to another max_body bytes, then give up and close). */
        return r->discarded > h->o.max_body ? MHD_NO : MHD_YES;
    }
    if (r->too_large) {
        respond_error(r, 413, "request body larger than max_body_bytes");
        return queue_stored(r);
    }
    if (!r->dispatched) {
        r->dispatched = true;
        r->body_ns = dcv_now_ns();
        if (!r->body && !append(r, "", 0)) return MHD_NO;
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
    double ms = (dcv_now_ns() - r->start_ns) / 1e6;
    char path[400];                /* keeps the line within the logger's line size */
    snprintf(path, sizeof path, strlen(r->url) < sizeof path ? "%s" : "%.380s...", r->url);
    DCV_LOG(toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? DCV_LOG_INFO : DCV_LOG_WARN, "access",
            KV_S("method", r->method), KV_S("path", path), KV_S("endpoint", r->endpoint),
            KV_S("model", r->model), KV_I("status", r->status), KV_I("bytes_in", r->len),
            KV_I("bytes_out", r->out_bytes), KV_F("ms", ms),
            KV_S("outcome", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "ok"
                            : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED || r->cut ? "timeout"
                            : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client_abort"
                            : "closed"));
    if (r->track) {                /* the connection waits for its next request */
        r->track->req = NULL;
        r->track->since_ns = dcv_now_ns();
    }
    if (r->resp) MHD_destroy_response(r->resp);
    r->srv->active--;
    dcv_buf_free(r->body);
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

/* Shuts down connections whose request is late (see the top of the file);
 * MHD sees the end of the stream and closes them. Requests handed to the
 * API (waiting for inference, or being sent) have no deadline here. */
static void sweep(struct dcv_http *h, uint64_t now)
{
    uint64_t limit = (uint64_t)h->o.connection_timeout_s * 1000000000ull;
    for (struct conn *t = h->conns; t; t = t->next) {
        struct dcv_http_req *r = t->req;
        if (t->cut || (r && r->dispatched)) continue;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(t->c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci) continue;
        uint64_t body = r ? r->len + r->discarded : 0;
        uint64_t allowed = limit + body / MIN_UPLOAD_RATE * 1000000000ull;
        /* A peer that closed while the loop was busy can be missed by MHD's
         * edge-triggered epoll: its half-read request would hold a slot, and
         * a drain, until the timeout. recv sees the end of stream. */
        char c;
        bool gone = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
        if (!gone && now - t->since_ns <= allowed) continue;
        t->cut = true;
        if (r) r->cut = !gone;             /* logged as a timeout, else client_abort */
        DCV_LOG(DCV_LOG_DEBUG, "http", KV_S("detail", gone ? "peer closed, closing"
                                                      : r ? "request body too slow, closing"
                                                          : "request headers too slow, closing"));
        shutdown(ci->connect_fd, SHUT_RDWR);
    }
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
