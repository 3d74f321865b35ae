/* layerkit.c — registry functions shared by layer classes (see layerkit.h):
 * counting elements and work, and the identity run. Stateless; any thread.
 */
#include <string.h>

#include "deconvd/layerkit.h"

uint64_t dcv_layerkit_elems(const struct dcv_shape *s)
{
    uint64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        uint64_t d = (uint64_t)(s->d[i] > 0 ? s->d[i] : 0);
        if (d && n > UINT64_MAX / d) return UINT64_MAX;
        n *= d;
    }
    return n;
}

uint64_t dcv_layerkit_work_elems(const void *state, const struct dcv_shape *in)
{
    (void)state;
    return dcv_layerkit_elems(in);
}

uint64_t dcv_layerkit_no_work(const void *state, const struct dcv_shape *in)
{
    (void)state, (void)in;
    return 0;
}

int dcv_layerkit_copy_run(const void *state, const float *in, const struct dcv_shape *is,
                          float *out, const struct dcv_shape *os, const atomic_bool *stop,
                          char *err)
{
    (void)state, (void)os, (void)stop, (void)err;
    if (in != out) memmove(out, in, sizeof(float) * (size_t)dcv_layerkit_elems(is));
    return 0;
}
