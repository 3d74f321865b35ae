/* fuzz_kfile.c — a Keras file, start to end: bytes -> dcv_kfile_read_local
 * -> dcv_modelform_parse of its config -> dcv_chain_create with its arrays.
 *
 * Input: the bytes of a `.keras` ("PK" first) or a legacy `.h5` (anything
 * else), written to a memfd and read through /proc/self/fd. Small bounds
 * (1<<20 values, 256 KiB attributes, 16 members, 1 MiB per member, link
 * depth 16). A refusal at any stage must carry a DCV_E* code and a message
 * and leave the output empty. An accepted file has a NUL-terminated config,
 * arrays with names, ranks <= DCV_MAX_DIMS, positive dims whose values sum
 * to at most the bound, each keyed by a layer of the config. The arrays
 * then go to dcv_chain_create as inline weights (the way the loader hands
 * them over); whatever it decides must again be a clean result. libhdf5 is
 * not instrumented: a crash inside it is what the isolated child exists
 * for, and is reported as such. Seeded from the fixtures (make-seeds.py).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "deconvd/chain.h"
#include "deconvd/json.h"
#include "deconvd/kfile.h"
#include "deconvd/modelform.h"
#include "fuzzutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* Values v[0..] as a nested JSON array of shape[d..ndim). */
static struct dcv_json *nested(const float *v, const int64_t *shape, int d, int ndim, size_t *at)
{
    struct dcv_json *a = dcv_json_new_array();
    if (!a) abort();
    if (d == ndim) {
        dcv_json_free(a);
        return dcv_json_new_number(v[(*at)++]);
    }
    for (int64_t i = 0; i < shape[d]; i++) dcv_json_append(a, nested(v, shape, d + 1, ndim, at));
    return a;
}

/* {"<layer>": [array 0, array 1, ...]} in each layer's index order. */
static struct dcv_json *weights_of(const struct dcv_kfile *f)
{
    struct dcv_json *w = dcv_json_new_object();
    for (size_t i = 0; i < f->n; i++) {
        const struct dcv_kfile_array *a = &f->arrays[i];
        struct dcv_json *list = dcv_json_get(w, a->layer);
        if (!list) {
            list = dcv_json_new_array();
            dcv_json_add(w, a->layer, list);
        }
        if ((size_t)a->index != dcv_json_size(list)) continue;   /* out of order: dropped */
        size_t at = 0;
        dcv_json_append(list, nested(a->data, a->shape, 0, a->ndim, &at));
    }
    return w;
}

static void check_arrays(const struct dcv_kfile *f, const struct dcv_modelform *form)
{
    size_t total = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct dcv_kfile_array *a = &f->arrays[i];
        bool known = false;
        FUZZ_CHECK(a->ndim >= 0 && a->ndim <= DCV_MAX_DIMS && a->data, "array %zu: rank %d", i,
                   a->ndim);
        FUZZ_CHECK(memchr(a->layer, 0, sizeof a->layer) && a->layer[0], "array %zu: layer", i);
        size_t n = 1;
        for (int d = 0; d < a->ndim; d++) {
            FUZZ_CHECK(a->shape[d] >= 0, "array %zu dim %d = %lld", i, d, (long long)a->shape[d]);
            n *= (size_t)a->shape[d];
        }
        total += n;
        for (int k = 0; k < form->n; k++) known |= !strcmp(form->layers[k].name, a->layer);
        FUZZ_CHECK(known, "array %zu keyed by '%s', not a layer of the config", i, a->layer);
    }
    FUZZ_CHECK(total <= (1u << 20), "%zu values in all", total);
}

static void to_chain(const struct dcv_kfile *f)
{
    char err[DCV_ERRLEN];
    struct dcv_modelform form;
    struct dcv_json *doc = dcv_json_parse(f->config, strlen(f->config), err);
    FUZZ_CHECK(doc, "read_local returned a config that is not JSON: %s", err);
    fz_err_init(err);
    int rc = dcv_modelform_parse(doc, &form, err);
    FUZZ_CHECK(rc == 0, "read_local accepted a config modelform refuses: %s", err);
    check_arrays(f, &form);
    struct dcv_json *w = weights_of(f);
    struct dcv_chain_opts opts = { .max_weight_elems = 1u << 20 };
    struct dcv_chain *c = NULL;
    fz_err_init(err);
    rc = dcv_chain_create(&form, w, &opts, &c, err);
    if (rc) fz_check_error(rc, err, "dcv_chain_create");
    FZ_LOG("chain: %s", rc ? err : "built");
    dcv_chain_free(c);
    dcv_json_free(w);
    dcv_modelform_release(&form);
    dcv_json_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[DCV_ERRLEN], path[64];
    int fd = memfd_create("fuzz_kfile", MFD_CLOEXEC);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size)) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    enum dcv_kfile_kind kind = size >= 2 && data[0] == 'P' && data[1] == 'K' ? DCV_KFILE_KERAS
                                                                         : DCV_KFILE_H5;
    struct dcv_kfile_limits lim = { .max_weight_elems = 1u << 20, .max_members = 16,
                                    .max_member_bytes = 1u << 20, .max_attr_bytes = 256u << 10,
                                    .max_link_depth = 16 };
    struct dcv_kfile f;
    fz_err_init(err);
    int rc = dcv_kfile_read_local(path, kind, NULL, NULL, &lim, &f, err);
    if (rc) {
        fz_check_error(rc, err, "dcv_kfile_read_local");
        FUZZ_CHECK(f.n == 0 && !f.arrays && !f.config, "refusal left output");
        FZ_LOG("read: %s", err);
    } else {
        FUZZ_CHECK(f.config && memchr(f.keras_version, 0, sizeof f.keras_version),
                   "accepted without a config");
        to_chain(&f);
        dcv_kfile_release(&f);
    }
    close(fd);
    return 0;
}
