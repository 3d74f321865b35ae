/* fuzz_kzip.c — the zip layer of `.keras` files (kzip.c over libzip).
 *
 * Input: the bytes of a zip archive. Opened with dcv_kzip_open under small
 * bounds (16 members, 64 KiB per member), then the three members a .keras
 * holds are read with a 32 KiB bound. A refusal must carry a DCV_E* code
 * and a message; an open archive holds at most 16 members; a member read
 * comes back NUL-terminated with at most the bound's bytes, and a member
 * that is missing is DCV_ENOENT. Seeded from the fixtures' .keras files
 * (stored and deflated) and broken zips (make-seeds.py).
 */
#include "deconvd/kzip.h"
#include "fuzzutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void read_member(struct dcv_kzip *z, const char *name)
{
    char err[DCV_ERRLEN], *data = (char *)1;
    size_t len = 7;
    fz_err_init(err);
    int rc = dcv_kzip_read(z, name, 32 << 10, &data, &len, err);
    if (rc) {
        fz_check_error(rc, err, name);
        FUZZ_CHECK(!data && len == 0, "%s: refused read left data %p len %zu", name,
                   (void *)data, len);
        FZ_LOG("%s: %s", name, err);
        return;
    }
    FUZZ_CHECK(data && len <= 32 << 10 && data[len] == '\0', "%s: %zu bytes", name, len);
    FZ_LOG("%s: %zu bytes", name, len);
    free(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[DCV_ERRLEN];
    char *bytes = fz_copy(data, size);
    struct dcv_kzip_limits lim = { 16, 64 << 10 };
    struct dcv_kzip *z = (struct dcv_kzip *)1;
    fz_err_init(err);
    int rc = dcv_kzip_open(bytes, size, &lim, &z, err);
    if (rc) {
        fz_check_error(rc, err, "dcv_kzip_open");
        FUZZ_CHECK(z == NULL, "refused open left a handle");
        FZ_LOG("open: %s", err);
    } else {
        FUZZ_CHECK(dcv_kzip_count(z) <= 16, "%zu members", dcv_kzip_count(z));
        read_member(z, "metadata.json");
        read_member(z, "config.json");
        read_member(z, "model.weights.h5");
        dcv_kzip_close(z);
    }
    free(bytes);
    return 0;
}
