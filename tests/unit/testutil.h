/* testutil.h — small helpers shared by the unit suites. */
#ifndef DCV_TESTUTIL_H
#define DCV_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes len bytes to path; returns 0 on success. */
static inline int tu_write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(buf, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* Creates a fresh temporary directory (mkdtemp template in /tmp); the
 * returned string is static per call site only when copied by the caller. */
static inline char *tu_mkdtemp(char *tmpl /* e.g. "/tmp/dcvtest.XXXXXX" */)
{
    return mkdtemp(tmpl);
}

/* rc is code and the message err contains sub (DCV_* codes, error.h). */
#define assert_err(rc, code, err, sub)                                                        \
    do {                                                                                      \
        cr_assert_eq((rc), (code), "rc %d (%s), expected %s: %s", (rc), dcv_error_name(rc),  \
                     dcv_error_name(code), (err));                                            \
        cr_assert_not_null(strstr((err), (sub)), "message \"%s\" lacks \"%s\"", (err), (sub)); \
    } while (0)

/* Path of the Python with Debian's numpy (see DEVELOPERS.md). */
static inline const char *tu_python(void)
{
    const char *p = getenv("DCV_TEST_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

#endif
