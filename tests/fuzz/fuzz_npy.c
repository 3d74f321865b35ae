/* fuzz_npy.c — the .npy loader (dcv_npy_parse, max_elems 1<<20).
 *
 * Input: a .npy image, parsed from an exact-size copy. On success the result
 * must agree with the bytes: data offset + count * itemsize is exactly the
 * image size, and every value is the payload element (float32 bit-exact,
 * float64 rounded like a C cast with saturation), transposed when the
 * header says fortran_order: True. Accepted images are also written to a
 * file and loaded with dcv_npy_load (the pre-flighting reader), which must
 * agree, and saved with dcv_npy_save and loaded again (round trip).
 */
#include <unistd.h>

#include "deconvd/npy.h"
#include "fuzzutil.h"

#define MAX_ELEMS ((size_t)1 << 20)
#define FILE_CHECK_MAX 4096 /* elements: file round trips only for small arrays */

static char tmp_in[64], tmp_out[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("TMPDIR");
    if (access("/dev/shm", W_OK) == 0) dir = "/dev/shm";
    if (!dir) dir = "/tmp";
    snprintf(tmp_in, sizeof tmp_in, "%.40s/fuzz_npy.%d.in.npy", dir, (int)getpid());
    snprintf(tmp_out, sizeof tmp_out, "%.40s/fuzz_npy.%d.out.npy", dir, (int)getpid());
    return 0;
}

static float from_f8(const uint8_t *p)
{
    uint64_t u = 0;
    double d;
    for (int i = 7; i >= 0; i--) u = u << 8 | p[i];
    memcpy(&d, &u, sizeof d);
    if (d >= 0x1.ffffffp127) return INFINITY;
    if (d <= -0x1.ffffffp127) return -INFINITY;
    return (float)d;
}

static bool same_value(float a, float b)
{
    return fz_bits(a) == fz_bits(b) || (isnan(a) && isnan(b));
}

static void check_against_payload(const uint8_t *img, size_t size, const struct dcv_npy *npy)
{
    FUZZ_CHECK(size >= 10, "accepted a %zu-byte image", size);
    size_t width = img[6] == 1 ? 2 : 4;
    size_t hlen = width == 2 ? (size_t)img[8] | (size_t)img[9] << 8 : fz_le32(img + 8);
    size_t off = 8 + width + hlen;
    FUZZ_CHECK(off <= size, "header runs past the image");
    size_t payload = size - off;
    size_t item = npy->count ? payload / npy->count : 0;
    FUZZ_CHECK(npy->count == 0 ? payload == 0 : (item == 4 || item == 8) &&
                                                    item * npy->count == payload,
               "%zu elements in a %zu-byte payload", npy->count, payload);
    if (!npy->count) return;
    bool fortran = memmem(img + 8 + width, hlen, "True", 4) != NULL && npy->ndim > 1;
    const uint8_t *src = img + off;
    for (size_t c = 0; c < npy->count; c++) {
        /* C-order index c -> multi-index -> Fortran-order source index */
        size_t f = c;
        if (fortran) {
            size_t rest = c, stride = 1;
            f = 0;
            size_t idx[DCV_NPY_MAX_DIMS];
            for (int k = npy->ndim - 1; k >= 0; k--) {
                idx[k] = rest % (size_t)npy->shape[k];
                rest /= (size_t)npy->shape[k];
            }
            for (int k = 0; k < npy->ndim; k++) {
                f += idx[k] * stride;
                stride *= (size_t)npy->shape[k];
            }
        }
        float want;
        if (item == 4) {
            uint32_t u = fz_le32(src + 4 * f);
            memcpy(&want, &u, sizeof want);
        } else {
            want = from_f8(src + 8 * f);
        }
        FUZZ_CHECK(same_value(npy->data[c], want), "element %zu (source %zu): %08x, payload "
                   "gives %08x", c, f, fz_bits(npy->data[c]), fz_bits(want));
    }
}

static void same_npy(const struct dcv_npy *a, const struct dcv_npy *b, const char *what)
{
    FUZZ_CHECK(a->ndim == b->ndim && a->count == b->count, "%s: ndim %d/%d count %zu/%zu", what,
               a->ndim, b->ndim, a->count, b->count);
    for (int k = 0; k < a->ndim; k++)
        FUZZ_CHECK(a->shape[k] == b->shape[k], "%s: shape[%d] differs", what, k);
    for (size_t i = 0; i < a->count; i++)
        FUZZ_CHECK(same_value(a->data[i], b->data[i]), "%s: element %zu differs", what, i);
}

static void file_round_trips(const uint8_t *data, size_t size, const struct dcv_npy *npy)
{
    char err[DCV_ERRLEN];
    struct dcv_npy back;
    FILE *f = fopen(tmp_in, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
    fz_err_init(err);
    int rc = dcv_npy_load(tmp_in, MAX_ELEMS, &back, err);
    FUZZ_CHECK(rc == 0, "dcv_npy_parse accepted the image but dcv_npy_load says: %s", err);
    same_npy(npy, &back, "dcv_npy_load");
    dcv_npy_release(&back);

    fz_err_init(err);
    rc = dcv_npy_save(tmp_out, npy->data, npy->shape, npy->ndim, err);
    FUZZ_CHECK(rc == 0, "dcv_npy_save: %s", err);
    fz_err_init(err);
    rc = dcv_npy_load(tmp_out, MAX_ELEMS, &back, err);
    FUZZ_CHECK(rc == 0, "saved file does not load: %s", err);
    same_npy(npy, &back, "save/load round trip");
    dcv_npy_release(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *img = fz_copy(data, size);
    char err[DCV_ERRLEN];
    struct dcv_npy npy;
    fz_err_init(err);
    int rc = dcv_npy_parse(img, size, MAX_ELEMS, &npy, err);
    FZ_LOG("npy: %s %s", dcv_error_name(rc), rc ? err : "");
    if (rc) {
        fz_check_error(rc, err, "dcv_npy_parse");
        FUZZ_CHECK(npy.data == NULL, "failed parse left data behind");
        dcv_npy_release(&npy);
        free(img);
        return 0;
    }
    FUZZ_CHECK(npy.ndim >= 0 && npy.ndim <= DCV_NPY_MAX_DIMS, "ndim %d", npy.ndim);
    size_t p = 1;
    for (int k = 0; k < npy.ndim; k++) {
        FUZZ_CHECK(npy.shape[k] >= 0, "shape[%d] = %lld", k, (long long)npy.shape[k]);
        p *= (size_t)npy.shape[k];
    }
    FUZZ_CHECK(p == npy.count && npy.count <= MAX_ELEMS, "count %zu, shape product %zu",
               npy.count, p);
    FUZZ_CHECK(npy.data != NULL, "no data");
    fz_touch(npy.data, npy.count);
    check_against_payload(data, size, &npy);
    if (npy.count <= FILE_CHECK_MAX) file_round_trips(data, size, &npy);
    dcv_npy_release(&npy);
    dcv_npy_release(&npy); /* documented safe twice */
    free(img);
    return 0;
}
