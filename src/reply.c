/* reply.c — answers in JSON, each counted in the request metrics.
 *
 * Every answer the API sends goes through here, so that each is counted
 * once, under a model label from the registry's names only (a name from a
 * path that no model has is counted under ""), and so that no answer
 * carries text that is not valid UTF-8. A 503 carries Retry-After. Bodies
 * are dcv_buf blocks handed to the HTTP module. Loop thread only (the
 * registry and the metrics are the loop's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/http.h"
#include "deconvd/json.h"
#include "deconvd/metrics.h"
#include "deconvd/registry.h"
#include "deconvd/reply.h"
#include "deconvd/utf8.h"

/* ---- responses ---- */

static const char *label_model(const struct dcv_reply *r, const char *m)
{
    return m && dcv_registry_known(r->reg, m) ? m : "";
}

void dcv_reply_count(const struct dcv_reply *r, struct dcv_http_req *req, const char *model,
                     int status)
{
    dcv_metrics_request(r->metrics, label_model(r, model), dcv_http_endpoint(req), status);
}

void dcv_reply_text(const struct dcv_reply *r, struct dcv_http_req *req, const char *model,
                    int status, const char *ctype, char *body, size_t len)
{
    struct dcv_http_header h[] = { { "Retry-After", "1" } };
    dcv_reply_count(r, req, model, status);
    dcv_http_respond(req, status, ctype, body, 0, len, h, status == 503 ? 1 : 0);
}

char *dcv_reply_error_body(const char *msg, size_t *len)
{
    char *clean = strdup(msg), *b = NULL;
    *len = 0;
    if (!clean) return NULL;
    dcv_utf8_scrub(clean, strlen(clean));
    size_t need = dcv_json_quote(NULL, 0, clean) + 16;
    if ((b = dcv_buf_alloc(need))) {
        size_t n = (size_t)snprintf(b, need, "{\"error\":");
        n += dcv_json_quote(b + n, need - n, clean);
        b[n++] = '}';
        *len = n;
    }
    free(clean);
    return b;
}

char *dcv_reply_dup(const char *s, size_t n)
{
    char *b = dcv_buf_alloc(n + 1);
    if (b) memcpy(b, s, n + 1);
    return b;
}

void dcv_reply_json(const struct dcv_reply *r, struct dcv_http_req *req, const char *model,
                    int status, struct dcv_json *doc)
{
    char *s = dcv_json_print(doc), *b;
    dcv_json_free(doc);
    if (s) dcv_utf8_scrub(s, strlen(s));      /* model-file text (index reasons, config) */
    b = s ? dcv_reply_dup(s, strlen(s)) : NULL;
    free(s);
    if (!b) {
        b = dcv_reply_dup("{\"error\":\"out of memory\"}", 25);
        status = 500;
    }
    dcv_reply_text(r, req, model, status, DCV_REPLY_JSON, b, b ? strlen(b) : 0);
}

void dcv_reply_error(const struct dcv_reply *r, struct dcv_http_req *req, const char *model,
                     int code, const char *msg)
{
    size_t n;
    char *b = dcv_reply_error_body(msg, &n);
    dcv_reply_text(r, req, model, dcv_error_http_status(code), DCV_REPLY_JSON, b, n);
}
