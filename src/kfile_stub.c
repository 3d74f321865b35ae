/* kfile_stub.c — TEMPORARY stand-in for k13read's src/kfile.c (issue 13).
 *
 * Lets the isolation child (kchild.c) and the daemon integration build and
 * be tested before the real readers land: read_local refuses every file,
 * and release frees what kchild.c's decoder allocates. Delete this file
 * when src/kfile.c arrives on main (it defines both functions).
 */
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/kfile.h"

int dcv_kfile_read_local(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                         const struct dcv_json *json_config,
                         const struct dcv_kfile_limits *lim, struct dcv_kfile *out, char *err)
{
    (void)kind, (void)submodel, (void)json_config, (void)lim;
    memset(out, 0, sizeof *out);
    return dcv_errf(err, DCV_EUNSUPP, "%.200s: this build has no Keras file reader", path);
}

void dcv_kfile_release(struct dcv_kfile *f)
{
    if (!f) return;
    for (size_t i = 0; f->arrays && i < f->n; i++) free(f->arrays[i].data);
    free(f->arrays);
    free(f->config);
    memset(f, 0, sizeof *f);
}
