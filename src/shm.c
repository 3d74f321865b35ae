/* shm.c — the table of registered system shared-memory regions.
 *
 * Each region keeps its object's fd open (to fstat it again before every
 * use) and one MAP_SHARED mapping of the registered range, started at the
 * page boundary below the offset. Regions are reference-counted with an
 * atomic count: the table holds one reference, each request in flight one
 * more, and whoever drops the last unmaps and closes, so unregistering
 * never unmaps memory a worker is reading or writing, and a release needs
 * no lock. The table itself (a small array, searched linearly: at most
 * max_regions entries) is guarded by a mutex, taken by the loop thread to
 * register and by pool threads to resolve. Owns the regions' fds and
 * mappings; errno from shm_open, fstat and mmap is translated here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deconvd/error.h"
#include "deconvd/shm.h"

struct dcv_shm_region {
    atomic_long refs;
    int fd;
    void *map;                 /* mmap result, map_len bytes */
    size_t map_len;
    unsigned char *base;       /* the byte at the registered offset */
    dev_t dev;
    ino_t ino;
    struct dcv_shm_info info;
};

struct dcv_shm {
    pthread_mutex_t lock;
    struct dcv_shm_region **regions;
    size_t n, cap;
};

struct dcv_shm *dcv_shm_new(size_t max_regions)
{
    struct dcv_shm *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->cap = max_regions ? max_regions : DCV_SHM_DEFAULT_MAX_REGIONS;
    if (!(t->regions = calloc(t->cap, sizeof *t->regions))) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

static void region_put(struct dcv_shm_region *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    munmap(r->map, r->map_len);
    close(r->fd);
    free(r);
}

void dcv_shm_free(struct dcv_shm *t)
{
    if (!t) return;
    dcv_shm_unregister_all(t);
    pthread_mutex_destroy(&t->lock);
    free(t->regions);
    free(t);
}

bool dcv_shm_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= DCV_SHM_NAME_MAX || name[0] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

bool dcv_shm_key_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 2 || n >= DCV_SHM_KEY_MAX || key[0] != '/') return false;
    if (!strcmp(key, "/.") || !strcmp(key, "/..")) return false;
    for (size_t i = 1; i < n; i++)
        if (key[i] <= ' ' || key[i] > '~' || key[i] == '/') return false;
    return true;
}

/* Index of name in the table, or -1. Lock held. */
static long find_locked(const struct dcv_shm *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->regions[i]->info.name, name)) return (long)i;
    return -1;
}

static int open_error(const char *key, int e, char *err)
{
    switch (e) {
    case ENOENT:
        return dcv_errf(err, DCV_EINVAL, "no shared memory object '%s' exists (the client "
                        "creates it with shm_open before registering it)", key);
    case EACCES:
    case EPERM:
        return dcv_errf(err, DCV_EINVAL, "shared memory object '%s' cannot be opened for "
                        "reading and writing by the daemon's user (permission denied)", key);
    case EMFILE:
    case ENFILE:
        return dcv_errf(err, DCV_EIO, "cannot open shared memory object '%s': too many open "
                        "files", key);
    default:
        return dcv_errf(err, DCV_EINVAL, "cannot open shared memory object '%s': %s", key,
                        strerror(e));
    }
}

/* Opens and maps one registration; the region it returns holds one
 * reference (the table's). */
static int region_open(const struct dcv_shm_info *info, struct dcv_shm_region **out, char *err)
{
    struct stat st;
    struct dcv_shm_region *r = NULL;
    long page = sysconf(_SC_PAGESIZE);
    int rc = 0, fd = shm_open(info->key, O_RDWR, 0);
    if (fd < 0) return open_error(info->key, errno, err);
    if (fstat(fd, &st) != 0) {
        rc = dcv_errf(err, DCV_EIO, "cannot fstat shared memory object '%s': %s", info->key,
                      strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = dcv_errf(err, DCV_EINVAL, "'%s' is not a shared memory object", info->key);
        goto out;
    }
    if (st.st_size < 0 || info->offset + info->byte_size > (uint64_t)st.st_size) {
        rc = dcv_errf(err, DCV_EINVAL, "shared memory object '%s' has %lld bytes but offset "
                      "%llu + byte_size %llu = %llu", info->key, (long long)st.st_size,
                      (unsigned long long)info->offset, (unsigned long long)info->byte_size,
                      (unsigned long long)(info->offset + info->byte_size));
        goto out;
    }
    if (!(r = calloc(1, sizeof *r))) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory");
        goto out;
    }
    uint64_t start = info->offset - info->offset % (uint64_t)page;
    r->map_len = (size_t)(info->offset - start + info->byte_size);
    r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
    if (r->map == MAP_FAILED) {
        rc = dcv_errf(err, errno == ENOMEM ? DCV_ENOMEM : DCV_EINVAL, "cannot map %llu bytes "
                      "of shared memory object '%s': %s", (unsigned long long)info->byte_size,
                      info->key, strerror(errno));
        goto out;
    }
    r->base = (unsigned char *)r->map + (info->offset - start);
    r->fd = fd;
    r->dev = st.st_dev;
    r->ino = st.st_ino;
    r->info = *info;
    atomic_init(&r->refs, 1);
    *out = r;
    return 0;
out:
    free(r);
    close(fd);
    return rc;
}

/* Whether name can be added: free, and the table not full. */
static int room_locked(const struct dcv_shm *t, const char *name, char *err)
{
    if (find_locked(t, name) >= 0)
        return dcv_errf(err, DCV_EINVAL, "shared memory region '%s' is already registered "
                        "(unregister it first)", name);
    if (t->n >= t->cap)
        return dcv_errf(err, DCV_EINVAL, "at most %zu shared memory regions can be registered "
                        "at once; unregister one first", t->cap);
    return 0;
}

int dcv_shm_register(struct dcv_shm *t, const char *name, const char *key, uint64_t offset,
                     uint64_t byte_size, char *err)
{
    struct dcv_shm_info info = { .offset = offset, .byte_size = byte_size };
    struct dcv_shm_region *r = NULL;
    int rc = 0;
    if (!dcv_shm_name_valid(name))
        return dcv_errf(err, DCV_EINVAL, "invalid shared memory region name: use 1-%d of "
                        "[A-Za-z0-9_.-], not starting with '.'", DCV_SHM_NAME_MAX - 1);
    if (!dcv_shm_key_valid(key))
        return dcv_errf(err, DCV_EINVAL, "invalid shared memory key: a key is '/' followed by "
                        "1-%d printable characters other than '/' (as shm_open takes it)",
                        DCV_SHM_KEY_MAX - 2);
    /* off_t is signed 64-bit: keep every sum below 2^63 */
    if (byte_size == 0 || byte_size > (uint64_t)INT64_MAX || offset > (uint64_t)INT64_MAX ||
        offset + byte_size > (uint64_t)INT64_MAX || byte_size > SIZE_MAX / 2)
        return dcv_errf(err, DCV_EINVAL, "shared memory region '%s': byte_size %llu at offset "
                        "%llu is not a usable range (byte_size must be positive and offset + "
                        "byte_size below 2^63)", name, (unsigned long long)byte_size,
                        (unsigned long long)offset);
    snprintf(info.name, sizeof info.name, "%s", name);
    snprintf(info.key, sizeof info.key, "%s", key);
    pthread_mutex_lock(&t->lock);
    rc = room_locked(t, name, err);
    pthread_mutex_unlock(&t->lock);
    if (rc || (rc = region_open(&info, &r, err))) return rc;
    /* checked again: the table was unlocked while the object was mapped */
    pthread_mutex_lock(&t->lock);
    if (!(rc = room_locked(t, name, err)))
        t->regions[t->n++] = r;
    pthread_mutex_unlock(&t->lock);
    if (rc) region_put(r);
    return rc;
}

int dcv_shm_unregister(struct dcv_shm *t, const char *name)
{
    struct dcv_shm_region *r = NULL;
    pthread_mutex_lock(&t->lock);
    long i = find_locked(t, name);
    if (i >= 0) {
        r = t->regions[i];
        memmove(&t->regions[i], &t->regions[i + 1], (t->n - (size_t)i - 1) * sizeof *t->regions);
        t->n--;
    }
    pthread_mutex_unlock(&t->lock);
    if (!r) return DCV_ENOENT;
    region_put(r);               /* outside the lock: munmap may take a while */
    return 0;
}

size_t dcv_shm_unregister_all(struct dcv_shm *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->n;
    struct dcv_shm_region **all = t->regions;
    struct dcv_shm_region **fresh = calloc(t->cap, sizeof *fresh);
    if (fresh) {
        t->regions = fresh;
        t->n = 0;
    }
    pthread_mutex_unlock(&t->lock);
    if (!fresh) {                /* out of memory: one at a time, under the lock */
        pthread_mutex_lock(&t->lock);
        while (t->n) region_put(t->regions[--t->n]);
        pthread_mutex_unlock(&t->lock);
        return n;
    }
    for (size_t i = 0; i < n; i++) region_put(all[i]);
    free(all);
    return n;
}

int dcv_shm_info(struct dcv_shm *t, const char *name, struct dcv_shm_info *out)
{
    pthread_mutex_lock(&t->lock);
    long i = find_locked(t, name);
    if (i >= 0) *out = t->regions[i]->info;
    pthread_mutex_unlock(&t->lock);
    return i >= 0 ? 0 : DCV_ENOENT;
}

size_t dcv_shm_list(struct dcv_shm *t, struct dcv_shm_info *out, size_t cap)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->n < cap ? t->n : cap;
    for (size_t i = 0; i < n; i++) out[i] = t->regions[i]->info;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void dcv_shm_totals(struct dcv_shm *t, size_t *regions, uint64_t *bytes)
{
    uint64_t b = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n; i++) b += t->regions[i]->map_len;
    *regions = t->n;
    pthread_mutex_unlock(&t->lock);
    *bytes = b;
}

int dcv_shm_acquire(struct dcv_shm *t, const char *name, uint64_t offset, uint64_t len,
                    struct dcv_shm_ref *ref, char *err)
{
    struct dcv_shm_region *r = NULL;
    struct stat st;
    int rc = 0;
    *ref = (struct dcv_shm_ref){ 0 };
    pthread_mutex_lock(&t->lock);
    long i = find_locked(t, name);
    if (i >= 0) {
        r = t->regions[i];
        atomic_fetch_add(&r->refs, 1);
    }
    pthread_mutex_unlock(&t->lock);
    if (!r)
        return dcv_errf(err, DCV_EINVAL, "unknown shared memory region '%s' (register it with "
                        "POST /v2/systemsharedmemory/region/<name>/register)", name);
    const struct dcv_shm_info *in = &r->info;
    if (offset > in->byte_size || len > in->byte_size - offset) {
        rc = dcv_errf(err, DCV_EINVAL, "shared memory region '%s' holds %llu bytes but "
                      "shared_memory_offset %llu + shared_memory_byte_size %llu reaches "
                      "byte %.0f", name, (unsigned long long)in->byte_size,
                      (unsigned long long)offset, (unsigned long long)len,
                      (double)offset + (double)len);
        goto out;
    }
    if (fstat(r->fd, &st) != 0) {
        rc = dcv_errf(err, DCV_EIO, "cannot fstat shared memory object '%s': %s", in->key,
                      strerror(errno));
        goto out;
    }
    uint64_t end = in->offset + offset + len;      /* < 2^63 + 2^63: no wrap */
    if (st.st_size < 0 || (uint64_t)st.st_size < end) {
        rc = dcv_errf(err, DCV_EINVAL, "shared memory object '%s' of region '%s' now has %lld "
                      "bytes but this tensor needs bytes up to %llu (the object was truncated "
                      "after it was registered)", in->key, name, (long long)st.st_size,
                      (unsigned long long)end);
        goto out;
    }
    *ref = (struct dcv_shm_ref){ .region = r, .addr = r->base + offset, .len = (size_t)len };
    return 0;
out:
    region_put(r);
    return rc;
}

void dcv_shm_release(struct dcv_shm_ref *ref)
{
    if (!ref || !ref->region) return;
    region_put(ref->region);
    *ref = (struct dcv_shm_ref){ 0 };
}

bool dcv_shm_overlap(const struct dcv_shm_ref *a, const struct dcv_shm_ref *b)
{
    if (!a->region || !b->region || !a->len || !b->len) return false;
    const struct dcv_shm_region *ra = a->region, *rb = b->region;
    if (ra->dev != rb->dev || ra->ino != rb->ino) return false;
    uint64_t sa = ra->info.offset + (uint64_t)(a->addr - ra->base);
    uint64_t sb = rb->info.offset + (uint64_t)(b->addr - rb->base);
    return sa < sb + b->len && sb < sa + a->len;
}
