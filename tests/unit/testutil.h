/* testutil.h — small helpers shared by the unit suites. */
#ifndef DCV_TESTUTIL_H
#define DCV_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

/* bf16 rounded to nearest even, through frexp/ldexp rather than the bit
 * tricks the engine uses: 8 significant bits. */
static inline float tu_bf16(float v)
{
    int e;
    double m = frexp((double)v, &e);             /* v = m * 2^e, 0.5 <= |m| < 1 */
    return (float)ldexp(nearbyint(ldexp(m, 8)), e - 8);
}

/* A malloc'd copy of n values rounded by tu_bf16; NULL when out of memory. */
static inline float *tu_bf16_copy(const float *v, size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; p && i < n; i++) p[i] = tu_bf16(v[i]);
    return p;
}

/* Path of the Python with Debian's numpy (see DEVELOPERS.md). */
static inline const char *tu_python(void)
{
    const char *p = getenv("DCV_TEST_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* Runs cmd with the shell: its exit status, -1 when it did not exit. */
static inline int tu_sh(const char *cmd)
{
    int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Whether tu_python() can import numpy (tests skip without it). */
static inline int tu_have_numpy(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy' >/dev/null 2>&1", tu_python());
    return tu_sh(cmd) == 0;
}

#endif
