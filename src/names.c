/* names.c — case- and underscore-insensitive name comparison.
 *
 * Skips underscores on both sides as it goes, so it needs no buffer and
 * cannot overflow on client-supplied names. Pure, any thread, owns nothing.
 */
#include "deconvd/names.h"

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

bool dcv_names_equal(const char *a, const char *b)
{
    for (;;) {
        while (*a == '_') a++;
        while (*b == '_') b++;
        if (lower((unsigned char)*a) != lower((unsigned char)*b)) return false;
        if (!*a) return true;
        a++, b++;
    }
}
