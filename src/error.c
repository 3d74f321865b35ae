/* error.c — descriptions, names and HTTP statuses of the DCV_E* codes.
 *
 * Everything here is derived from the single X-macro table in error.h so a
 * new code cannot be added without its HTTP mapping. Pure functions, any
 * thread, no state.
 */
#include <stdarg.h>
#include <stdio.h>

#include "deconvd/error.h"

const char *dcv_strerror(int code)
{
    switch (code) {
    case DCV_OK: return "success";
#define X(name, val, desc, http) case DCV_##name: return desc;
    DCV_ERROR_TABLE(X)
#undef X
    }
    return "unknown error";
}

const char *dcv_error_name(int code)
{
    switch (code) {
    case DCV_OK: return "OK";
#define X(name, val, desc, http) case DCV_##name: return #name;
    DCV_ERROR_TABLE(X)
#undef X
    }
    return "EUNKNOWN";
}

int dcv_error_http_status(int code)
{
    switch (code) {
    case DCV_OK: return 200;
#define X(name, val, desc, http) case DCV_##name: return http;
    DCV_ERROR_TABLE(X)
#undef X
    }
    return 500;
}

int dcv_errf(char *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, DCV_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return code;
}
