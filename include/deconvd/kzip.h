/* kzip.h — a bounded reader of zip archives held in memory (Keras's
 * `.keras` files): member count, names and uncompressed sizes checked at
 * open, stored and deflated members read whole into a buffer that never
 * grows past the declared size (a member that inflates to more than its
 * header says is refused, not followed). The only module that includes
 * libzip. Not thread-safe per archive; separate archives in any thread.
 */
#ifndef DECONVD_KZIP_H
#define DECONVD_KZIP_H

#include <stddef.h>

struct dcv_kzip;

struct dcv_kzip_limits {
    size_t max_members;         /* 0 = 64 */
    size_t max_member_bytes;    /* uncompressed bytes of one member; 0 = 2 GiB */
};

/* Opens the zip in bytes[0..len) (borrowed: must outlive *out). Checks the
 * central directory: at most max_members members, each with a name (UTF-8
 * text, no NUL) and a declared size within max_member_bytes. Returns 0 and
 * *out (close with dcv_kzip_close) or DCV_EPARSE (not a zip, truncated,
 * inconsistent), DCV_ETOOBIG (a bound, named with the values) or
 * DCV_ENOMEM. */
int dcv_kzip_open(const void *bytes, size_t len, const struct dcv_kzip_limits *lim,
                  struct dcv_kzip **out, char *err);

/* Reads member `name` whole into *data (malloc'd, NUL-terminated past *len
 * for text; caller frees). Refuses a member larger than max (bytes, also
 * bounded by the open limits) with DCV_ETOOBIG, a missing one with
 * DCV_ENOENT, a compression method other than stored/deflate or an
 * encrypted one with DCV_EUNSUPP, and data that is corrupt, shorter or
 * longer than declared, or fails its CRC with DCV_EPARSE. */
int dcv_kzip_read(struct dcv_kzip *z, const char *name, size_t max, char **data, size_t *len,
                  char *err);

/* Members in the archive (names checked at open). */
size_t dcv_kzip_count(const struct dcv_kzip *z);

void dcv_kzip_close(struct dcv_kzip *z);

#endif
