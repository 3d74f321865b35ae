/* kzip.c — bounded zip reading over libzip (Keras's `.keras` archives).
 *
 * The archive is read from memory through zip_source_buffer with
 * ZIP_CHECKCONS, so libzip cross-checks the central directory against the
 * local headers. Everything a zip bomb could lie about is bounded here, not
 * trusted: the member count and each declared size at open, and while
 * reading a member the buffer is sized from the declared size and one byte
 * more is asked for, so a member inflating past its header is caught after
 * at most one extra byte. libzip checks each member's CRC at its end. Owns
 * the libzip handle; the bytes are the caller's. One archive per thread.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zip.h>

#include "deconvd/error.h"
#include "deconvd/kzip.h"
#include "deconvd/utf8.h"

#define DEFAULT_MEMBERS 64
#define DEFAULT_MEMBER_BYTES ((size_t)2 << 30)

struct dcv_kzip {
    zip_t *za;
    size_t n;
    size_t max_member_bytes;
};

static const char *zip_msg(zip_error_t *ze)
{
    return zip_error_strerror(ze);
}

/* Each member's name and declared size, before any is read. */
static int check_members(struct dcv_kzip *z, char *err)
{
    for (size_t i = 0; i < z->n; i++) {
        zip_stat_t st;
        zip_stat_init(&st);
        if (zip_stat_index(z->za, i, ZIP_FL_ENC_RAW, &st) != 0)
            return dcv_errf(err, DCV_EPARSE, "zip member %zu: %s", i,
                            zip_msg(zip_get_error(z->za)));
        if (!(st.valid & ZIP_STAT_NAME) || !st.name || !*st.name ||
            dcv_utf8_check(st.name, strlen(st.name), NULL) != 0)
            return dcv_errf(err, DCV_EPARSE, "zip member %zu has no name or a name that is not "
                            "UTF-8", i);
        if (!(st.valid & ZIP_STAT_SIZE))
            return dcv_errf(err, DCV_EPARSE, "zip member '%.64s' declares no size", st.name);
        if (st.size > z->max_member_bytes)
            return dcv_errf(err, DCV_ETOOBIG, "zip member '%.64s' declares %llu uncompressed "
                            "bytes; at most %zu", st.name, (unsigned long long)st.size,
                            z->max_member_bytes);
    }
    return 0;
}

int dcv_kzip_open(const void *bytes, size_t len, const struct dcv_kzip_limits *lim,
                  struct dcv_kzip **out, char *err)
{
    size_t max_members = lim && lim->max_members ? lim->max_members : DEFAULT_MEMBERS;
    zip_error_t ze;
    zip_error_init(&ze);
    *out = NULL;
    struct dcv_kzip *z = calloc(1, sizeof *z);
    if (!z) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    z->max_member_bytes = lim && lim->max_member_bytes ? lim->max_member_bytes
                                                       : DEFAULT_MEMBER_BYTES;
    int rc = 0;
    zip_source_t *src = zip_source_buffer_create(len ? bytes : "", len, 0, &ze);
    if (!src) {
        rc = dcv_errf(err, DCV_ENOMEM, "zip: %s", zip_msg(&ze));
        goto out;
    }
    z->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z->za) {
        zip_source_free(src);
        rc = dcv_errf(err, DCV_EPARSE, "not a readable zip archive (%zu bytes): %s", len,
                      zip_msg(&ze));
        goto out;
    }
    zip_int64_t n = zip_get_num_entries(z->za, 0);
    if (n < 0) {
        rc = dcv_errf(err, DCV_EPARSE, "zip: no member count");
        goto out;
    }
    z->n = (size_t)n;
    if (z->n > max_members) {
        rc = dcv_errf(err, DCV_ETOOBIG, "zip archive has %zu members; at most %zu", z->n,
                      max_members);
        goto out;
    }
    rc = check_members(z, err);
out:
    zip_error_fini(&ze);
    if (rc) dcv_kzip_close(z);
    else *out = z;
    return rc;
}

/* Reads up to want+1 bytes: the extra one only to see a lie. */
static int read_all(zip_file_t *zf, const char *name, char *buf, uint64_t want, char *err)
{
    uint64_t got = 0;
    char extra;
    while (got < want) {
        zip_int64_t r = zip_fread(zf, buf + got, want - got);
        if (r < 0)
            return dcv_errf(err, DCV_EPARSE, "zip member '%.64s': %s", name,
                            zip_msg(zip_file_get_error(zf)));
        if (r == 0)
            return dcv_errf(err, DCV_EPARSE, "zip member '%.64s' ends after %llu of its %llu "
                            "declared bytes", name, (unsigned long long)got,
                            (unsigned long long)want);
        got += (uint64_t)r;
    }
    zip_int64_t r = zip_fread(zf, &extra, 1);
    if (r < 0)
        return dcv_errf(err, DCV_EPARSE, "zip member '%.64s': %s", name,
                        zip_msg(zip_file_get_error(zf)));
    if (r > 0)
        return dcv_errf(err, DCV_ETOOBIG, "zip member '%.64s' holds more than the %llu bytes "
                        "it declares", name, (unsigned long long)want);
    return 0;
}

static int check_method(const zip_stat_t *st, const char *name, char *err)
{
    if ((st->valid & ZIP_STAT_COMP_METHOD) && st->comp_method != ZIP_CM_STORE &&
        st->comp_method != ZIP_CM_DEFLATE)
        return dcv_errf(err, DCV_EUNSUPP, "zip member '%.64s' uses compression method %u; "
                        "only stored and deflated members are read", name,
                        (unsigned)st->comp_method);
    if ((st->valid & ZIP_STAT_ENCRYPTION_METHOD) && st->encryption_method != ZIP_EM_NONE)
        return dcv_errf(err, DCV_EUNSUPP, "zip member '%.64s' is encrypted", name);
    return 0;
}

int dcv_kzip_read(struct dcv_kzip *z, const char *name, size_t max, char **data, size_t *len,
                  char *err)
{
    zip_stat_t st;
    zip_file_t *zf = NULL;
    char *buf = NULL;
    int rc;
    *data = NULL;
    *len = 0;
    zip_stat_init(&st);
    zip_int64_t i = zip_name_locate(z->za, name, ZIP_FL_ENC_RAW);
    if (i < 0) return dcv_errf(err, DCV_ENOENT, "zip archive has no member '%.64s'", name);
    if (zip_stat_index(z->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW, &st) != 0)
        return dcv_errf(err, DCV_EPARSE, "zip member '%.64s': %s", name,
                        zip_msg(zip_get_error(z->za)));
    if ((rc = check_method(&st, name, err))) return rc;
    if (max > z->max_member_bytes) max = z->max_member_bytes;
    if (st.size > max)
        return dcv_errf(err, DCV_ETOOBIG, "zip member '%.64s' declares %llu bytes; at most %zu",
                        name, (unsigned long long)st.size, max);
    if (!(buf = malloc((size_t)st.size + 1))) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory for zip member '%.64s' (%llu bytes)",
                      name, (unsigned long long)st.size);
        goto out;
    }
    if (!(zf = zip_fopen_index(z->za, (zip_uint64_t)i, 0))) {
        rc = dcv_errf(err, DCV_EPARSE, "zip member '%.64s': %s", name,
                      zip_msg(zip_get_error(z->za)));
        goto out;
    }
    if ((rc = read_all(zf, name, buf, st.size, err))) goto out;
    buf[st.size] = 0;
    *data = buf;
    *len = (size_t)st.size;
    buf = NULL;
out:
    if (zf && zip_fclose(zf) != 0 && !rc)
        rc = dcv_errf(err, DCV_EPARSE, "zip member '%.64s' fails its check (CRC)", name);
    if (rc) {
        free(*data);
        *data = NULL;
        *len = 0;
    }
    free(buf);
    return rc;
}

size_t dcv_kzip_count(const struct dcv_kzip *z)
{
    return z->n;
}

void dcv_kzip_close(struct dcv_kzip *z)
{
    if (!z) return;
    if (z->za) zip_discard(z->za);
    free(z);
}
