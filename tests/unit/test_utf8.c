/* test_utf8.c — the UTF-8 check and scrub (RFC 3629): every sequence length
 * accepted at its bounds, overlong forms, surrogates, code points past
 * U+10FFFF, stray continuation bytes and cut sequences refused with the
 * offset of the first bad byte, ASCII runs on both sides of the 8-byte fast
 * path, and scrubbing that turns exactly the bad bytes into '?'. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/utf8.h"

static int check(const char *s, size_t n, char *err) { return dcv_utf8_check(s, n, err); }

Test(utf8, valid_sequences_at_their_bounds)
{
    char err[DCV_ERRLEN];
    static const char *const ok[] = {
        "", "plain ascii", "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
        "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 ok",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        cr_assert_eq(check(ok[i], strlen(ok[i]), err), 0, "case %zu: %s", i, err);
}

Test(utf8, invalid_sequences_name_their_offset)
{
    char err[DCV_ERRLEN];
    static const struct { const char *s; size_t at; } bad[] = {
        { "\x80", 0 },                    /* stray continuation */
        { "ab\xc0\xaf", 2 },              /* overlong '/' */
        { "\xc1\xbf", 0 },                /* overlong */
        { "\xe0\x9f\xbf", 0 },            /* overlong 3-byte */
        { "x\xed\xa0\x80", 1 },           /* surrogate U+D800 */
        { "\xf0\x8f\xbf\xbf", 0 },        /* overlong 4-byte */
        { "\xf4\x90\x80\x80", 0 },        /* U+110000 */
        { "\xf5\x80\x80\x80", 0 },
        { "\xff", 0 },
        { "12345678\xc3", 8 },            /* cut at the end, after a fast-path block */
        { "1234567\xe2\x82", 7 },         /* cut across the 8-byte boundary */
        { "\xc3(", 0 },                   /* continuation missing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = check(bad[i].s, strlen(bad[i].s), err);
        char want[32];
        snprintf(want, sizeof want, "(byte %zu)", bad[i].at);
        cr_assert_eq(rc, DCV_EPARSE, "case %zu accepted", i);
        cr_assert_not_null(strstr(err, want), "case %zu: %s (want %s)", i, err, want);
    }
}

Test(utf8, length_is_respected_not_the_nul)
{
    char err[DCV_ERRLEN];
    const char s[] = "ok\0\xff";
    cr_assert_eq(check(s, 2, err), 0);
    cr_assert_eq(check(s, 4, err), DCV_EPARSE, "bytes after a NUL are checked too");
}

Test(utf8, scrub_replaces_exactly_the_bad_bytes)
{
    char s[] = "a\xc3\xa9" "b\xff" "c\xe2\x82" "d\xf0\x9f\x98\x80";
    dcv_utf8_scrub(s, strlen(s));
    cr_assert_str_eq(s, "a\xc3\xa9" "b?c??d\xf0\x9f\x98\x80");
    char err[DCV_ERRLEN];
    cr_assert_eq(check(s, strlen(s), err), 0, "%s", err);
}
