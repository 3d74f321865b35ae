/* utf8.c — UTF-8 validation of request text and repair of answer text.
 *
 * JSON text must be UTF-8 (RFC 8259), and strings from a request are
 * echoed in answers (ids, names in error messages), so request bodies are
 * checked before they are parsed; text the daemon did not write itself
 * (model-file strings, messages cut at a length limit) is scrubbed before
 * it goes out. The check runs 8 ASCII bytes at a time. Pure functions,
 * any thread.
 */
#include <stdint.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/utf8.h"

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs,
 * surrogates or code points above U+10FFFF), 0 if there is none. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    size_t n = (size_t)(end - p), k;
    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) k = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) k = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) k = 4;
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
        return 0;
    return k;
}

int dcv_utf8_check(const char *s, size_t n, char *err)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        uint64_t w;
        if (end - p >= 8 && (memcpy(&w, p, 8), !(w & 0x8080808080808080ull))) {
            p += 8;                                 /* ASCII fast path */
            continue;
        }
        size_t k = utf8_seq(p, end);
        if (!k)
            return dcv_errf(err, DCV_EPARSE, "request body is not valid UTF-8 (byte %zu)",
                            (size_t)(p - (const unsigned char *)s));
        p += k;
    }
    return 0;
}

void dcv_utf8_scrub(char *s, size_t n)
{
    unsigned char *p = (unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t k = utf8_seq(p, end);
        if (!k) *p = '?', k = 1;
        p += k;
    }
}
