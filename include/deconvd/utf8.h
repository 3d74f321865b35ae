/* utf8.h — UTF-8 checks for the text that crosses the API (RFC 3629: no
 * overlong forms, surrogates or code points above U+10FFFF). Pure
 * functions, any thread.
 */
#ifndef DECONVD_UTF8_H
#define DECONVD_UTF8_H

#include <stddef.h>

/* 0 when s[0, n) is valid UTF-8, else DCV_EPARSE with a message giving the
 * byte offset of the first bad sequence. */
int dcv_utf8_check(const char *s, size_t n, char *err);

/* Replaces each byte of s[0, n) that is not part of valid UTF-8 by '?', in
 * place. */
void dcv_utf8_scrub(char *s, size_t n);

#endif
