/* shm.h — registered system shared-memory regions (Triton's extension).
 *
 * A table of named regions, each a mapping of bytes [offset, offset +
 * byte_size) of a POSIX shared-memory object that a local client created,
 * so that tensors move through memory instead of the HTTP body. Requests
 * resolve a name to a reference that keeps the mapping alive: unregistering
 * frees the name at once and unmaps when the last reference is released.
 * The table is locked: the loop thread registers, pool threads resolve;
 * references are released from any thread.
 */
#ifndef DECONVD_SHM_H
#define DECONVD_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DCV_SHM_NAME_MAX 128           /* region name bytes, NUL included */
#define DCV_SHM_KEY_MAX 256            /* object key bytes, NUL included */
#define DCV_SHM_DEFAULT_MAX_REGIONS 128

struct dcv_shm;
struct dcv_shm_region;

struct dcv_shm_info {
    char name[DCV_SHM_NAME_MAX];
    char key[DCV_SHM_KEY_MAX];
    uint64_t offset, byte_size;        /* within the object, as registered */
};

/* A resolved byte range of a region; holds the mapping while set. */
struct dcv_shm_ref {
    struct dcv_shm_region *region;     /* NULL when empty */
    unsigned char *addr;               /* the first byte asked for */
    size_t len;                        /* the bytes asked for */
};

/* An empty table of at most max_regions (0: DCV_SHM_DEFAULT_MAX_REGIONS).
 * NULL on OOM. Free with dcv_shm_free, which unregisters every region;
 * a region a reference still holds is unmapped when that is released. */
struct dcv_shm *dcv_shm_new(size_t max_regions);
void dcv_shm_free(struct dcv_shm *t);

/* Region names are [A-Za-z0-9_.-], do not start with '.', and are under
 * DCV_SHM_NAME_MAX bytes. Keys are "/" then 1-254 printable ASCII bytes
 * other than '/', and are not "/." or "/..". Pure. */
bool dcv_shm_name_valid(const char *name);
bool dcv_shm_key_valid(const char *key);

/* Opens the object key read-write, checks that [offset, offset + byte_size)
 * lies within it (byte_size > 0) and maps that range shared. 0, or
 * DCV_EINVAL (bad name or key, name already registered, table full, no
 * such object, no permission, range beyond the object) / DCV_ENOMEM /
 * DCV_EIO with a message naming expected vs received. Any thread. */
int dcv_shm_register(struct dcv_shm *t, const char *name, const char *key, uint64_t offset,
                     uint64_t byte_size, char *err);

/* Removes name from the table (its mapping goes when no reference holds
 * it). 0, or DCV_ENOENT for a name not registered. Any thread. */
int dcv_shm_unregister(struct dcv_shm *t, const char *name);
/* Removes every region; returns how many there were. Any thread. */
size_t dcv_shm_unregister_all(struct dcv_shm *t);

/* The registration of name: 0, or DCV_ENOENT. Any thread. */
int dcv_shm_info(struct dcv_shm *t, const char *name, struct dcv_shm_info *out);
/* Up to cap registrations, in registration order; returns how many. */
size_t dcv_shm_list(struct dcv_shm *t, struct dcv_shm_info *out, size_t cap);
/* Regions registered and the bytes their mappings span. */
void dcv_shm_totals(struct dcv_shm *t, size_t *regions, uint64_t *bytes);

/* Resolves len bytes at offset within the region name for one use: checks
 * the range against the registration and, with fstat, against the object's
 * size now (a client may have truncated it since: touching pages past its
 * end would raise SIGBUS). On success *ref holds the mapping until
 * dcv_shm_release. DCV_EINVAL with a message for an unknown name, a range
 * beyond the region or an object now too small; DCV_EIO if fstat fails.
 * Any thread. */
int dcv_shm_acquire(struct dcv_shm *t, const char *name, uint64_t offset, uint64_t len,
                    struct dcv_shm_ref *ref, char *err);
/* Drops the reference (unmapping an unregistered region with it) and
 * empties *ref; an empty ref is a no-op. Any thread. */
void dcv_shm_release(struct dcv_shm_ref *ref);

/* True when two references share bytes of the same object (regions of one
 * key map it at different addresses, so addresses alone cannot tell). */
bool dcv_shm_overlap(const struct dcv_shm_ref *a, const struct dcv_shm_ref *b);

/* What a request that needs the extension gets while it is off. */
#define DCV_SHM_DISABLED "the system shared memory extension is disabled: set " \
                         "\"shared_memory\": true in the config file to enable it (read " \
                         "docs/security.md first)"

#endif
