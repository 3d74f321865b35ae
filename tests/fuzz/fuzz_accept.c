/* fuzz_accept.c — the Accept header's negotiation (png.c).
 *
 * Input: the header's value (cut at the first NUL, as a C string from the
 * HTTP layer is). dcv_png_negotiate against JSON and the binary answer's
 * type must give one of its four answers, and: negotiating PNG against
 * PNG itself never picks it (equal q, equal specificity); the header in
 * upper case gives the same answers (media types and "q" are
 * case-insensitive, parameter values other than q do not count); spaces
 * added around every comma outside quoted strings give the same answers
 * (OWS is allowed there); an element that matches neither form, put first,
 * changes nothing when the header had some valid element already.
 */
#include <ctype.h>

#include "deconvd/png.h"
#include "fuzzutil.h"

static const char *const OTHERS[] = { "application/json", "application/octet-stream" };

static void check_choice(enum dcv_png_choice c, const char *what)
{
    FUZZ_CHECK(c == DCV_PNG_OTHER || c == DCV_PNG_FIRST || c == DCV_PNG_ONLY ||
                   c == DCV_PNG_NEITHER, "%s: choice %d", what, (int)c);
}

/* s with " , " for every ',' outside a quoted string. */
static char *spaced(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *o = malloc(3 * n + 1);
    bool quoted = false;
    if (!o) abort();
    for (size_t i = 0; i < n; i++) {
        if (quoted && s[i] == '\\' && i + 1 < n) {
            o[k++] = s[i++];
        } else if (s[i] == '"') {
            quoted = !quoted;
        } else if (!quoted && s[i] == ',') {
            o[k++] = ' ', o[k++] = ',', o[k++] = ' ';
            continue;
        }
        o[k++] = s[i];
    }
    o[k] = '\0';
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *accept = malloc(size + 1);
    if (!accept) abort();
    memcpy(accept, data, size);
    accept[size] = '\0';
    size_t n = strlen(accept);
    char *upper = fz_copy((const uint8_t *)accept, n + 1);
    for (size_t i = 0; i < n; i++) upper[i] = (char)toupper((unsigned char)upper[i]);
    char *sp = spaced(accept);
    char *first = malloc(n + 32);
    if (!first) abort();
    snprintf(first, n + 32, "text/x-none;q=0.001,%s", accept);
    for (size_t k = 0; k < 2; k++) {
        enum dcv_png_choice c = dcv_png_negotiate(accept, OTHERS[k]);
        check_choice(c, OTHERS[k]);
        enum dcv_png_choice self = dcv_png_negotiate(accept, DCV_PNG_TYPE);
        FUZZ_CHECK(self == DCV_PNG_OTHER || self == DCV_PNG_NEITHER,
                   "PNG against itself chose PNG (%d)", (int)self);
        enum dcv_png_choice u = dcv_png_negotiate(upper, OTHERS[k]);
        FUZZ_CHECK(u == c, "upper case changed %d to %d", (int)c, (int)u);
        enum dcv_png_choice s = dcv_png_negotiate(sp, OTHERS[k]);
        FUZZ_CHECK(s == c, "spaces around commas changed %d to %d: [%s]", (int)c, (int)s, sp);
        /* with no valid element the header counts as absent (OTHER); a
         * valid element that names neither form then makes it NEITHER */
        enum dcv_png_choice f = dcv_png_negotiate(first, OTHERS[k]);
        FUZZ_CHECK(f == c || (c == DCV_PNG_OTHER && f == DCV_PNG_NEITHER),
                   "a first element naming neither form changed %d to %d", (int)c, (int)f);
    }
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "accept [%s]: json %d, binary %d\n", accept,
                (int)dcv_png_negotiate(accept, OTHERS[0]),
                (int)dcv_png_negotiate(accept, OTHERS[1]));
    free(first);
    free(sp);
    free(upper);
    free(accept);
    return 0;
}
