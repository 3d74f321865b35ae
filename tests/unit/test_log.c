/* test_log.c — the line logger: field formatting, escaping, and batched
 * mode (info lines held until a flush, warn/error flushing them first, a
 * full batch flushing itself). Each test points stderr at a temporary file
 * and reads back what reached it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deconvd/log.h"

static FILE *g_file;
static int g_saved = -1;

static void capture(void)
{
    g_file = tmpfile();
    cr_assert_not_null(g_file);
    fflush(stderr);
    g_saved = dup(STDERR_FILENO);
    cr_assert(g_saved >= 0 && dup2(fileno(g_file), STDERR_FILENO) == STDERR_FILENO);
    dcv_log_setup(DCV_LOG_DEBUG, false);
}

static void restore(void)
{
    dcv_log_batch(false);
    dup2(g_saved, STDERR_FILENO);
    close(g_saved);
    fclose(g_file);
}

/* Everything written to stderr so far, NUL-terminated (caller frees). */
static char *captured(void)
{
    long n = lseek(fileno(g_file), 0, SEEK_END);
    cr_assert(n >= 0);
    char *s = calloc(1, (size_t)n + 1);
    cr_assert_eq(pread(fileno(g_file), s, (size_t)n, 0), n);
    return s;
}

static size_t count(const char *s, const char *needle)
{
    size_t k = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) k++;
    return k;
}

TestSuite(log, .init = capture, .fini = restore);

Test(log, numbers_and_escaping)
{
    DCV_LOG(DCV_LOG_INFO, "access", KV_I("status", 200), KV_I("neg", -42),
            KV_I("min", -9223372036854775807LL - 1), KV_F("ms", 12.3456), KV_F("zero", 0),
            KV_F("big", 2.5e13), KV_F("negf", -1.5), KV_S("path", "/a b\"c\n"));
    char *s = captured();
    cr_assert(strstr(s, " level=info msg=access status=200 neg=-42 "
                        "min=-9223372036854775808 ms=12.346 zero=0.000 big=2.5e+13 "
                        "negf=-1.5 path=\"/a b\\\"c\\n\"\n"), "%s", s);
    cr_assert_eq(count(s, "\n"), 1, "one line, the newline escaped: %s", s);
    cr_assert(!strncmp(s, "ts=20", 5) && s[13] == 'T' && s[26] == 'Z', "%s", s);
    free(s);
}

Test(log, json_lines)
{
    dcv_log_setup(DCV_LOG_DEBUG, true);
    DCV_LOG(DCV_LOG_WARN, "x", KV_I("n", 7), KV_S("s", "q\""));
    char *s = captured();
    cr_assert(strstr(s, "\",\"level\":\"warn\",\"msg\":\"x\",\"n\":7,\"s\":\"q\\\"\"}\n"), "%s", s);
    cr_assert(!strncmp(s, "{\"ts\":\"20", 9), "%s", s);
    free(s);
}

Test(log, below_threshold_dropped)
{
    dcv_log_setup(DCV_LOG_WARN, false);
    DCV_LOG(DCV_LOG_INFO, "quiet", KV_I("n", 1));
    DCV_LOG(DCV_LOG_ERROR, "loud", KV_I("n", 2));
    char *s = captured();
    cr_assert(!strstr(s, "quiet") && strstr(s, "msg=loud"), "%s", s);
    free(s);
}

Test(log, batch_holds_info_until_flush)
{
    dcv_log_batch(true);
    DCV_LOG(DCV_LOG_INFO, "first", KV_I("n", 1));
    DCV_LOG(DCV_LOG_DEBUG, "second", KV_I("n", 2));
    char *s = captured();
    cr_assert_str_empty(s, "held until the flush: %s", s);
    free(s);
    dcv_log_flush();
    s = captured();
    char *a = strstr(s, "msg=first"), *b = strstr(s, "msg=second");
    cr_assert(a && b && a < b, "%s", s);
    free(s);
    dcv_log_flush();                       /* nothing left: writes nothing */
    s = captured();
    cr_assert_eq(count(s, "\n"), 2, "%s", s);
    free(s);
}

Test(log, warn_flushes_batch_first_in_order)
{
    dcv_log_batch(true);
    DCV_LOG(DCV_LOG_INFO, "before", KV_I("n", 1));
    DCV_LOG(DCV_LOG_ERROR, "failure", KV_I("n", 2));
    char *s = captured();
    char *a = strstr(s, "msg=before"), *b = strstr(s, "msg=failure");
    cr_assert(a && b && a < b, "info line first, then the error: %s", s);
    free(s);
}

Test(log, full_batch_flushes_itself_whole_lines)
{
    dcv_log_batch(true);
    char pad[1500];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < 100; i++) DCV_LOG(DCV_LOG_INFO, "big", KV_I("i", i), KV_S("pad", pad));
    char *s = captured();
    size_t lines = count(s, "\n");
    cr_assert(lines > 0 && lines < 100, "some lines out before any flush: %zu", lines);
    cr_assert_eq(s[strlen(s) - 1], '\n', "only whole lines leave");
    free(s);
    dcv_log_batch(false);                  /* turning it off flushes */
    s = captured();
    cr_assert_eq(count(s, "\n"), 100);
    cr_assert(strstr(s, " i=99 "), "last line present");
    free(s);
}

Test(log, unbatched_is_immediate)
{
    DCV_LOG(DCV_LOG_INFO, "now", KV_I("n", 1));
    char *s = captured();
    cr_assert(strstr(s, "msg=now"), "%s", s);
    free(s);
}
