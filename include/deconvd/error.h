/* error.h — the one table of deconvd error codes.
 *
 * Every fallible function returns 0 or a negative DCV_E* code. Codes from
 * other libraries (errno, dnnl_status_t, MHD results) are translated into
 * these at the single module that calls that library. Functions that can
 * explain themselves also fill a caller-provided message buffer of
 * DCV_ERRLEN bytes; the message names the argument and the values seen.
 */
#ifndef DECONVD_ERROR_H
#define DECONVD_ERROR_H

#include <stddef.h>

#define DCV_ERRLEN 512

/* X(name, value, short description, HTTP status) */
#define DCV_ERROR_TABLE(X)                                              \
    X(EINVAL,    -1,  "invalid argument",              400)             \
    X(ENOMEM,    -2,  "out of memory",                 500)             \
    X(ENOENT,    -3,  "not found",                     404)             \
    X(EIO,       -4,  "input/output error",            500)             \
    X(EPARSE,    -5,  "malformed input",               400)             \
    X(ESHAPE,    -6,  "shape mismatch",                400)             \
    X(EUNSUPP,   -7,  "unsupported",                   400)             \
    X(ETOOBIG,   -8,  "too large",                     413)             \
    X(EENGINE,   -9,  "compute engine failure",        500)             \
    X(EBUSY,     -10, "overloaded",                    503)             \
    X(ETIMEDOUT, -11, "timed out",                     504)             \
    X(EAUTH,     -12, "unauthorized",                  401)             \
    X(EMETHOD,   -13, "method not allowed",            405)             \
    X(ENOTREADY, -14, "not ready",                     503)             \
    X(EPATH,     -15, "path outside the models directory", 400)         \
    X(EINTERNAL, -16, "internal error",                500)             \
    X(ECANCELED, -17, "cancelled",                     503)             \
    X(ENOTACCEPT, -18, "not acceptable",               406)

enum dcv_error {
    DCV_OK = 0,
#define DCV_X_ENUM(name, val, desc, http) DCV_##name = (val),
    DCV_ERROR_TABLE(DCV_X_ENUM)
#undef DCV_X_ENUM
};

/* Short static description of a code; "unknown error" for anything else.
 * Any thread. */
const char *dcv_strerror(int code);

/* HTTP status that a code maps to (500 for unknown codes). Any thread. */
int dcv_error_http_status(int code);

/* Symbolic name ("EINVAL") of a code, for logs. Any thread. */
const char *dcv_error_name(int code);

/* Formats a message into err (DCV_ERRLEN bytes, may be NULL) and returns
 * code, so failures read `return dcv_errf(err, DCV_EINVAL, "...", ...);`. */
int dcv_errf(char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
