/* test_shm.c — the system shared-memory region table (shm.c) and the
 * KServe decoding/encoding of the shared-memory parameters (kserve.c, answer.c):
 * register/lookup/list, reference counting (unregister while held keeps
 * the mapping until the last release; msync tells whether a page is still
 * mapped), bounds and overflow, the fstat recheck after a truncation, bad
 * names and keys, the region cap, overlap of two regions of one object,
 * concurrent acquire/release against unregister, and the parameters'
 * error messages. Objects are named /dcv-unit-<pid>-<tag> and unlinked. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deconvd/answer.h"
#include "deconvd/buf.h"
#include "deconvd/error.h"
#include "deconvd/kserve.h"
#include "deconvd/shm.h"
#include "deconvd/tensor.h"

#include "tensorutil.h"
#include "testutil.h"

/* A fresh object of size bytes filled with byte i = i % 251; returns its fd
 * and writes its key (unlinked by drop()). */
static int make_obj(const char *tag, size_t size, char *key, size_t cap)
{
    snprintf(key, cap, "/dcv-unit-%d-%s", (int)getpid(), tag);
    shm_unlink(key);
    int fd = shm_open(key, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0, "shm_open %s: %s", key, strerror(errno));
    cr_assert_eq(ftruncate(fd, (off_t)size), 0);
    unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(p, MAP_FAILED);
    for (size_t i = 0; i < size; i++) p[i] = (unsigned char)(i % 251);
    munmap(p, size);
    return fd;
}

static void drop(int fd, const char *key)
{
    close(fd);
    shm_unlink(key);
}

/* Whether p lies in a mapping of this process, from /proc/self/maps (a
 * syscall on an unmapped address would be an error to memcheck). */
static bool mapped(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long lo, hi, a = (unsigned long)(uintptr_t)p;
    char line[512];
    bool in = false;
    cr_assert_not_null(f);
    while (!in && fgets(line, sizeof line, f))
        in = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi;
    fclose(f);
    return in;
}

Test(shm, names_and_keys)
{
    cr_assert(dcv_shm_name_valid("input_data"));
    cr_assert(dcv_shm_name_valid("a-b.c_D9"));
    cr_assert(!dcv_shm_name_valid(""));
    cr_assert(!dcv_shm_name_valid(".hidden"));
    cr_assert(!dcv_shm_name_valid("a/b"));
    cr_assert(!dcv_shm_name_valid("a b"));
    cr_assert(!dcv_shm_name_valid("caf\xc3\xa9"));
    cr_assert(!dcv_shm_name_valid(NULL));
    char long_name[DCV_SHM_NAME_MAX + 1];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[DCV_SHM_NAME_MAX] = '\0';
    cr_assert(!dcv_shm_name_valid(long_name));
    long_name[DCV_SHM_NAME_MAX - 1] = '\0';
    cr_assert(dcv_shm_name_valid(long_name), "127 bytes is the longest name");

    cr_assert(dcv_shm_key_valid("/input"));
    cr_assert(dcv_shm_key_valid("/a.b-c_1"));
    static const char *const bad[] = { "input", "/", "//x", "/a/b", "/.", "/..", "/a b",
                                       "/tab\t", "/\x7f", "/caf\xc3\xa9", "" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert(!dcv_shm_key_valid(bad[i]), "key '%s' must be refused", bad[i]);
    char long_key[DCV_SHM_KEY_MAX + 1];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[0] = '/';
    long_key[DCV_SHM_KEY_MAX] = '\0';
    cr_assert(!dcv_shm_key_valid(long_key));
    long_key[DCV_SHM_KEY_MAX - 1] = '\0';
    cr_assert(dcv_shm_key_valid(long_key), "255 bytes is the longest key");
}

Test(shm, register_lookup_list_unregister)
{
    char key[64], err[DCV_ERRLEN] = "";
    int fd = make_obj("basic", 8192, key, sizeof key);
    struct dcv_shm *t = dcv_shm_new(0);
    cr_assert_not_null(t);
    cr_assert_eq(dcv_shm_register(t, "in", key, 0, 4096, err), 0, "%s", err);
    cr_assert_eq(dcv_shm_register(t, "out", key, 4096, 4096, err), 0, "%s", err);

    struct dcv_shm_info info;
    cr_assert_eq(dcv_shm_info(t, "out", &info), 0);
    cr_assert_str_eq(info.name, "out");
    cr_assert_str_eq(info.key, key);
    cr_assert_eq(info.offset, 4096);
    cr_assert_eq(info.byte_size, 4096);
    cr_assert_eq(dcv_shm_info(t, "nope", &info), DCV_ENOENT);

    struct dcv_shm_info all[4];
    cr_assert_eq(dcv_shm_list(t, all, 4), 2);
    cr_assert_str_eq(all[0].name, "in");
    cr_assert_str_eq(all[1].name, "out");
    cr_assert_eq(dcv_shm_list(t, all, 1), 1, "the list respects cap");
    size_t n;
    uint64_t bytes;
    dcv_shm_totals(t, &n, &bytes);
    cr_assert_eq(n, 2);
    cr_assert_eq(bytes, 8192);

    /* the resolved address sees the object's bytes, and writes reach it */
    struct dcv_shm_ref r;
    cr_assert_eq(dcv_shm_acquire(t, "out", 10, 100, &r, err), 0, "%s", err);
    cr_assert_eq(r.len, 100);
    cr_assert_eq(r.addr[0], (unsigned char)((4096 + 10) % 251));
    cr_assert_eq(r.addr[99], (unsigned char)((4096 + 109) % 251));
    r.addr[0] = 0xee;
    unsigned char b = 0;
    cr_assert_eq(pread(fd, &b, 1, 4096 + 10), 1);
    cr_assert_eq(b, 0xee, "a write through the region is in the object");
    dcv_shm_release(&r);
    cr_assert_null(r.region);
    dcv_shm_release(&r);                     /* an empty ref is a no-op */

    cr_assert_eq(dcv_shm_unregister(t, "in"), 0);
    cr_assert_eq(dcv_shm_unregister(t, "in"), DCV_ENOENT);
    cr_assert_eq(dcv_shm_info(t, "in", &info), DCV_ENOENT);
    cr_assert_eq(dcv_shm_register(t, "in", key, 0, 16, err), 0, "a freed name is reusable: %s",
                 err);
    cr_assert_eq(dcv_shm_unregister_all(t), 2);
    cr_assert_eq(dcv_shm_list(t, all, 4), 0);
    dcv_shm_totals(t, &n, &bytes);
    cr_assert(n == 0 && bytes == 0);
    dcv_shm_free(t);
    drop(fd, key);
}

Test(shm, unaligned_offset_maps_from_the_page_below)
{
    char key[64], err[DCV_ERRLEN] = "";
    int fd = make_obj("unaligned", 3 * 4096, key, sizeof key);
    struct dcv_shm *t = dcv_shm_new(0);
    cr_assert_eq(dcv_shm_register(t, "r", key, 4096 + 123, 1000, err), 0, "%s", err);
    struct dcv_shm_ref r;
    cr_assert_eq(dcv_shm_acquire(t, "r", 7, 993, &r, err), 0, "%s", err);
    for (size_t i = 0; i < 993; i++)
        cr_assert_eq(r.addr[i], (unsigned char)((4096 + 123 + 7 + i) % 251), "byte %zu", i);
    dcv_shm_release(&r);
    dcv_shm_free(t);
    drop(fd, key);
}

Test(shm, unregister_while_held_unmaps_at_last_release)
{
    char key[64], err[DCV_ERRLEN] = "";
    int fd = make_obj("held", 2 * 4096, key, sizeof key);
    struct dcv_shm *t = dcv_shm_new(0);
    cr_assert_eq(dcv_shm_register(t, "r", key, 0, 2 * 4096, err), 0, "%s", err);
    struct dcv_shm_ref a, b;
    cr_assert_eq(dcv_shm_acquire(t, "r", 0, 4096, &a, err), 0, "%s", err);
    cr_assert_eq(dcv_shm_acquire(t, "r", 4096, 4096, &b, err), 0, "%s", err);
    unsigned char *pa = a.addr, *pb = b.addr;

    cr_assert_eq(dcv_shm_unregister(t, "r"), 0);
    struct dcv_shm_ref c;
    assert_err(dcv_shm_acquire(t, "r", 0, 1, &c, err), DCV_EINVAL, err, "unknown shared memory "
               "region 'r'");
    cr_assert_null(c.region);
    cr_assert(mapped(pa) && mapped(pb), "held references keep the mapping");
    pa[5] = 0x42;                                  /* still writable, no fault */
    pb[5] = 0x43;
    cr_assert_eq(pa[5], 0x42);
    dcv_shm_release(&a);
    cr_assert(mapped(pb), "one reference left: still mapped");
    cr_assert_eq(pb[5], 0x43);
    /* the name is free again while the old region is still held */
    cr_assert_eq(dcv_shm_register(t, "r", key, 0, 4096, err), 0, "%s", err);
    dcv_shm_release(&b);
    cr_assert(!mapped(pb), "the last release unmaps the unregistered region");

    /* freeing the table with a reference out: the mapping outlives it */
    cr_assert_eq(dcv_shm_acquire(t, "r", 0, 8, &a, err), 0, "%s", err);
    dcv_shm_free(t);
    cr_assert(mapped(a.addr));
    cr_assert_eq(a.addr[5], 0x42, "the object kept the byte written through the old region");
    unsigned char *last = a.addr;
    dcv_shm_release(&a);
    cr_assert(!mapped(last));
    drop(fd, key);
}

Test(shm, register_bounds_and_sizes)
{
    char key[64], err[DCV_ERRLEN] = "";
    int fd = make_obj("bounds", 1000, key, sizeof key);
    struct dcv_shm *t = dcv_shm_new(0);
    assert_err(dcv_shm_register(t, "r", key, 0, 1001, err), DCV_EINVAL, err,
               "has 1000 bytes but offset 0 + byte_size 1001 = 1001");
    assert_err(dcv_shm_register(t, "r", key, 999, 2, err), DCV_EINVAL, err,
               "offset 999 + byte_size 2 = 1001");
    assert_err(dcv_shm_register(t, "r", key, 1000, 1, err), DCV_EINVAL, err, "1000 bytes");
    assert_err(dcv_shm_register(t, "r", key, 0, 0, err), DCV_EINVAL, err,
               "byte_size must be positive");
    assert_err(dcv_shm_register(t, "r", key, UINT64_MAX, 16, err), DCV_EINVAL, err,
               "below 2^63");
    assert_err(dcv_shm_register(t, "r", key, 16, UINT64_MAX - 8, err), DCV_EINVAL, err,
               "below 2^63");
    assert_err(dcv_shm_register(t, "r", key, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX, err),
               DCV_EINVAL, err, "below 2^63");
    cr_assert_eq(dcv_shm_list(t, NULL, 0), 0, "nothing registered by the failures");
    cr_assert_eq(dcv_shm_register(t, "r", key, 999, 1, err), 0, "%s", err);

    struct dcv_shm_ref r;
    cr_assert_eq(dcv_shm_acquire(t, "r", 0, 1, &r, err), 0, "%s", err);
    cr_assert_eq(r.addr[0], (unsigned char)(999 % 251));
    dcv_shm_release(&r);
    cr_assert_eq(dcv_shm_acquire(t, "r", 1, 0, &r, err), 0, "an empty range at the end: %s",
                 err);
    dcv_shm_release(&r);
    assert_err(dcv_shm_acquire(t, "r", 0, 2, &r, err), DCV_EINVAL, err,
               "holds 1 bytes but shared_memory_offset 0 + shared_memory_byte_size 2");
    assert_err(dcv_shm_acquire(t, "r", 2, 0, &r, err), DCV_EINVAL, err, "offset 2");
    assert_err(dcv_shm_acquire(t, "r", UINT64_MAX, 2, &r, err), DCV_EINVAL, err, "holds 1");
    assert_err(dcv_shm_acquire(t, "r", 1, UINT64_MAX, &r, err), DCV_EINVAL, err, "holds 1");
    cr_assert_null(r.region);
    dcv_shm_free(t);
    drop(fd, key);
}

Test(shm, truncated_object_is_refused_not_touched)
{
    char key[64], err[DCV_ERRLEN] = "";
    int fd = make_obj("trunc", 4 * 4096, key, sizeof key);
    struct dcv_shm *t = dcv_shm_new(0);
    cr_assert_eq(dcv_shm_register(t, "r", key, 4096, 3 * 4096, err), 0, "%s", err);
    cr_assert_eq(ftruncate(fd, 4096 + 100), 0);
    struct dcv_shm_ref r;
    assert_err(dcv_shm_acquire(t, "r", 0, 4096, &r, err), DCV_EINVAL, err,
               "now has 4196 bytes but this tensor needs bytes up to 8192 (the object was "
               "truncated");
    cr_assert_null(r.region);
    cr_assert_eq(dcv_shm_acquire(t, "r", 0, 100, &r, err), 0, "the part still there: %s", err);
    dcv_shm_release(&r);
    cr_assert_eq(ftruncate(fd, 4 * 4096), 0);
    cr_assert_eq(dcv_shm_acquire(t, "r", 0, 3 * 4096, &r, err), 0, "grown back: %s", err);
    r.addr[3 * 4096 - 1] = 1;                      /* the last byte is usable again */
    dcv_shm_release(&r);
    dcv_shm_free(t);
    drop(fd, key);
}

Test(shm, bad_names_keys_and_objects)
{
    char key[64], err[DCV_ERRLEN] = "";
    int fd = make_obj("bad", 4096, key, sizeof key);
    struct dcv_shm *t = dcv_shm_new(0);
    assert_err(dcv_shm_register(t, ".x", key, 0, 16, err), DCV_EINVAL, err,
               "invalid shared memory region name");
    assert_err(dcv_shm_register(t, "a/b", key, 0, 16, err), DCV_EINVAL, err,
               "invalid shared memory region name");
    assert_err(dcv_shm_register(t, "r", "no-slash", 0, 16, err), DCV_EINVAL, err,
               "invalid shared memory key");
    assert_err(dcv_shm_register(t, "r", "/../etc/passwd", 0, 16, err), DCV_EINVAL, err,
               "invalid shared memory key");
    char missing[80];
    snprintf(missing, sizeof missing, "/dcv-unit-%d-never-created", (int)getpid());
    assert_err(dcv_shm_register(t, "r", missing, 0, 16, err), DCV_EINVAL, err,
               "no shared memory object");
    cr_assert_eq(dcv_shm_register(t, "r", key, 0, 16, err), 0, "%s", err);
    assert_err(dcv_shm_register(t, "r", key, 16, 16, err), DCV_EINVAL, err,
               "'r' is already registered");
    struct dcv_shm_info info;
    cr_assert_eq(dcv_shm_info(t, "r", &info), 0);
    cr_assert_eq(info.offset, 0, "the first registration stands");
    dcv_shm_free(t);
    drop(fd, key);

    if (geteuid() != 0) {           /* root opens anything: no permission check to see */
        int ro = make_obj("ro", 4096, key, sizeof key);
        cr_assert_eq(fchmod(ro, 0400), 0);
        t = dcv_shm_new(0);
        assert_err(dcv_shm_register(t, "r", key, 0, 16, err), DCV_EINVAL, err,
                   "permission denied");
        dcv_shm_free(t);
        drop(ro, key);
    }
}

Test(shm, region_cap)
{
    char key[64], err[DCV_ERRLEN] = "";
    int fd = make_obj("cap", 4096, key, sizeof key);
    struct dcv_shm *t = dcv_shm_new(3);
    cr_assert_eq(dcv_shm_register(t, "a", key, 0, 16, err), 0, "%s", err);
    cr_assert_eq(dcv_shm_register(t, "b", key, 0, 16, err), 0, "%s", err);
    cr_assert_eq(dcv_shm_register(t, "c", key, 0, 16, err), 0, "%s", err);
    assert_err(dcv_shm_register(t, "d", key, 0, 16, err), DCV_EINVAL, err,
               "at most 3 shared memory regions");
    cr_assert_eq(dcv_shm_unregister(t, "b"), 0);
    cr_assert_eq(dcv_shm_register(t, "d", key, 0, 16, err), 0, "%s", err);
    struct dcv_shm_info all[3];
    cr_assert_eq(dcv_shm_list(t, all, 3), 3);
    cr_assert_str_eq(all[0].name, "a");
    cr_assert_str_eq(all[1].name, "c");
    cr_assert_str_eq(all[2].name, "d");
    dcv_shm_free(t);
    t = dcv_shm_new(0);
    for (int i = 0; i < DCV_SHM_DEFAULT_MAX_REGIONS; i++) {
        char name[16];
        snprintf(name, sizeof name, "r%d", i);
        cr_assert_eq(dcv_shm_register(t, name, key, 0, 16, err), 0, "%s", err);
    }
    assert_err(dcv_shm_register(t, "one-more", key, 0, 16, err), DCV_EINVAL, err, "at most 128");
    dcv_shm_free(t);
    drop(fd, key);
}

Test(shm, overlap_is_judged_on_the_object)
{
    char key[64], key2[64], err[DCV_ERRLEN] = "";
    int fd = make_obj("ov", 8192, key, sizeof key), fd2 = make_obj("ov2", 8192, key2,
                                                                      sizeof key2);
    struct dcv_shm *t = dcv_shm_new(0);
    cr_assert_eq(dcv_shm_register(t, "a", key, 0, 8192, err), 0, "%s", err);
    cr_assert_eq(dcv_shm_register(t, "b", key, 4000, 4192, err), 0, "%s", err);
    cr_assert_eq(dcv_shm_register(t, "c", key2, 0, 8192, err), 0, "%s", err);
    struct dcv_shm_ref a, b, c, e = { 0 };
    cr_assert_eq(dcv_shm_acquire(t, "a", 3990, 20, &a, err), 0, "%s", err);   /* 3990-4010 */
    cr_assert_eq(dcv_shm_acquire(t, "b", 5, 10, &b, err), 0, "%s", err);      /* 4005-4015 */
    cr_assert_eq(dcv_shm_acquire(t, "c", 3990, 20, &c, err), 0, "%s", err);
    cr_assert_neq(a.addr, b.addr - 15, "different mappings");
    cr_assert(dcv_shm_overlap(&a, &b), "same object, bytes 4005-4010 shared");
    cr_assert(dcv_shm_overlap(&b, &a));
    cr_assert(!dcv_shm_overlap(&a, &c), "another object");
    cr_assert(!dcv_shm_overlap(&a, &e), "an empty reference");
    dcv_shm_release(&b);
    cr_assert_eq(dcv_shm_acquire(t, "b", 10, 10, &b, err), 0, "%s", err);     /* 4010-4020 */
    cr_assert(!dcv_shm_overlap(&a, &b), "adjacent ranges do not overlap");
    dcv_shm_release(&b);
    cr_assert_eq(dcv_shm_acquire(t, "a", 3990, 20, &b, err), 0, "%s", err);
    cr_assert(dcv_shm_overlap(&a, &b), "the same range twice");
    dcv_shm_release(&a);
    dcv_shm_release(&b);
    dcv_shm_release(&c);
    dcv_shm_free(t);
    drop(fd, key);
    drop(fd2, key2);
}

struct stress {
    struct dcv_shm *t;
    atomic_bool stop;
    atomic_long ok, failed;
};

static void *acquirer(void *arg)
{
    struct stress *s = arg;
    char err[DCV_ERRLEN];
    for (unsigned i = 0; !atomic_load(&s->stop); i++) {
        struct dcv_shm_ref r;
        if (dcv_shm_acquire(s->t, "hot", 0, 4096, &r, err) == 0) {
            volatile unsigned char *p = r.addr;
            p[i % 4096] = (unsigned char)i;       /* a use after unmap would fault */
            atomic_fetch_add(&s->ok, 1);
            dcv_shm_release(&r);
        } else {
            atomic_fetch_add(&s->failed, 1);
        }
    }
    return NULL;
}

Test(shm, concurrent_acquire_against_unregister)
{
    char key[64], err[DCV_ERRLEN] = "";
    int fd = make_obj("stress", 4096, key, sizeof key);
    struct stress s = { .t = dcv_shm_new(0) };
    pthread_t th[3];
    atomic_init(&s.stop, false);
    atomic_init(&s.ok, 0);
    atomic_init(&s.failed, 0);
    cr_assert_eq(dcv_shm_register(s.t, "hot", key, 0, 4096, err), 0, "%s", err);
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, acquirer, &s);
    for (int i = 0; i < 300; i++) {
        cr_assert_eq(dcv_shm_unregister(s.t, "hot"), 0);
        cr_assert_eq(dcv_shm_register(s.t, "hot", key, 0, 4096, err), 0, "%s", err);
    }
    /* registered again at the end: the workers must now get through */
    long before = atomic_load(&s.ok);
    for (int i = 0; i < 5000 && atomic_load(&s.ok) < before + 1000; i++) usleep(1000);
    atomic_store(&s.stop, true);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    cr_assert_geq(atomic_load(&s.ok), before + 1000, "acquires after the churn: %ld",
                  atomic_load(&s.ok) - before);
    size_t n;
    uint64_t bytes;
    dcv_shm_totals(s.t, &n, &bytes);
    cr_assert(n == 1 && bytes == 4096);
    dcv_shm_free(s.t);
    drop(fd, key);
}

/* ---- KServe parameters (kserve.c) ---------------------------------------- */

Test(shm_tensor, input_and_output_parameters)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    int rc = kserve_hl("{\"inputs\":[{\"name\":\"input\",\"shape\":[2,3],\"datatype\":\"INT16\","
                       "\"parameters\":{\"shared_memory_region\":\"in_r\","
                       "\"shared_memory_byte_size\":12,\"shared_memory_offset\":64}}],"
                       "\"outputs\":[{\"name\":\"output\",\"parameters\":{\"shared_memory_region\":"
                       "\"out_r\",\"shared_memory_byte_size\":4096}}]}", 0, &req, err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(req.input_shm.used);
    cr_assert_str_eq(req.input_shm.region, "in_r");
    cr_assert_eq(req.input_shm.byte_size, 12);
    cr_assert_eq(req.input_shm.offset, 64);
    cr_assert_str_eq(req.input_datatype, "INT16");
    cr_assert_null(req.input.data, "the decoder reads no data for a shared-memory input");
    cr_assert_eq(req.input.count, 6);
    cr_assert(req.output_shm.used && req.output_requested);
    cr_assert_str_eq(req.output_shm.region, "out_r");
    cr_assert_eq(req.output_shm.byte_size, 4096);
    cr_assert_eq(req.output_shm.offset, 0, "the offset defaults to 0");

    /* the raw bytes: INT16 little-endian, converted and copied */
    const unsigned char raw[12] = { 1, 0, 0xff, 0xff, 0, 1, 0x00, 0x80, 7, 0, 0, 0 };
    assert_err(dcv_kserve_decode_raw(&req, raw, 10, true, err), DCV_EINVAL, err,
               "expected 12 bytes of INT16 in shared memory, got 10");
    cr_assert_eq(dcv_kserve_decode_raw(&req, raw, 12, true, err), 0, "%s", err);
    const float want[6] = { 1, -1, 256, -32768, 7, 0 };
    for (int i = 0; i < 6; i++) cr_assert_eq(req.input.data[i], want[i], "value %d", i);
    cr_assert(!req.input.borrowed);
    dcv_infer_request_release(&req);
}

Test(shm_tensor, fp32_is_read_in_place_unless_told_not_to)
{
    struct dcv_infer_request req;
    char err[DCV_ERRLEN] = "";
    const char *body = "{\"inputs\":[{\"name\":\"input\",\"shape\":[3],\"datatype\":\"FP32\","
                       "\"parameters\":{\"shared_memory_region\":\"r\","
                       "\"shared_memory_byte_size\":12}}]}";
    float v[4] = { 1.5f, -2, 3, 0 };
    cr_assert_eq(kserve_hl(body, 0, &req, err), 0, "%s", err);
    cr_assert_eq(dcv_kserve_decode_raw(&req, v, 12, true, err), 0, "%s", err);
    cr_assert(req.input.borrowed && req.input.data == v, "aligned FP32 is not copied");
    dcv_infer_request_release(&req);
    cr_assert_eq(kserve_hl(body, 0, &req, err), 0, "%s", err);
    cr_assert_eq(dcv_kserve_decode_raw(&req, v, 12, false, err), 0, "%s", err);
    cr_assert(!req.input.borrowed && req.input.data != v && req.input.data[0] == 1.5f,
              "copied when borrowing is not allowed (input overlapping the output)");
    dcv_infer_request_release(&req);
    union { float f[4]; unsigned char b[16]; } u;       /* u.b + 1 is surely unaligned */
    memcpy(u.b + 1, v, 12);
    cr_assert_eq(kserve_hl(body, 0, &req, err), 0, "%s", err);
    cr_assert_eq(dcv_kserve_decode_raw(&req, u.b + 1, 12, true, err), 0, "%s", err);
    cr_assert(!req.input.borrowed && req.input.data[1] == -2.0f, "unaligned: converted");
    dcv_infer_request_release(&req);
    v[1] = 1.0f / 0.0f;
    cr_assert_eq(kserve_hl(body, 0, &req, err), 0, "%s", err);
    assert_err(dcv_kserve_decode_raw(&req, v, 12, true, err), DCV_EINVAL, err, "input 'input'");
    cr_assert_null(req.input.data);
    dcv_infer_request_release(&req);
    /* a request whose input came in the body cannot be read from memory */
    cr_assert_eq(kserve_hl("{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":\"FP32\","
                           "\"data\":[1]}]}", 0, &req, err), 0, "%s", err);
    assert_err(dcv_kserve_decode_raw(&req, v, 4, true, err), DCV_EINVAL, err,
               "not in shared memory");
    dcv_infer_request_release(&req);
}

Test(shm_tensor, parameter_errors)
{
    static const struct { const char *params, *want; } cases[] = {
        { "\"shared_memory_region\":\"r\"", "needs parameters.shared_memory_byte_size" },
        { "\"shared_memory_byte_size\":12", "shared_memory_byte_size is given without" },
        { "\"shared_memory_offset\":0", "shared_memory_offset is given without" },
        { "\"shared_memory_region\":5,\"shared_memory_byte_size\":12", "must be a string, got number" },
        { "\"shared_memory_region\":\"\",\"shared_memory_byte_size\":12", "is 0 bytes long" },
        { "\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":-12",
          "shared_memory_byte_size must be a non-negative integer" },
        { "\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":12.5",
          "shared_memory_byte_size must be a non-negative integer" },
        { "\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":1e300",
          "shared_memory_byte_size must be a non-negative integer" },
        { "\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":\"12\"",
          "must be a non-negative integer number of bytes, got string" },
        { "\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":12,"
          "\"shared_memory_offset\":-1", "shared_memory_offset must be a non-negative integer" },
        { "\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":16",
          "shared_memory_byte_size is 16 but shape [3] of FP32 needs 12 bytes" },
        { "\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":12,"
          "\"binary_data_size\":12", "has both parameters.binary_data_size and "
          "parameters.shared_memory_region" },
    };
    char body[512], err[DCV_ERRLEN];
    struct dcv_infer_request req;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"input\",\"shape\":[3],"
                 "\"datatype\":\"FP32\",\"parameters\":{%s}}]}", cases[i].params);
        err[0] = '\0';
        assert_err(kserve_hl(body, 0, &req, err), DCV_EINVAL, err, cases[i].want);
    }
    assert_err(kserve_hl("{\"inputs\":[{\"name\":\"input\",\"shape\":[3],\"datatype\":\"FP32\","
                         "\"data\":[1,2,3],\"parameters\":{\"shared_memory_region\":\"r\","
                         "\"shared_memory_byte_size\":12}}]}", 0, &req, err), DCV_EINVAL, err,
               "has both \"data\" and parameters.shared_memory_region");
    assert_err(kserve_hl("{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":\"FP32\","
                         "\"data\":[1]}],\"outputs\":[{\"name\":\"output\",\"parameters\":"
                         "{\"shared_memory_byte_size\":4}}]}", 0, &req, err), DCV_EINVAL, err,
               "outputs[0]: parameters.shared_memory_byte_size is given without");
    /* binary data after the header when the input is in shared memory */
    const char *hdr = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":\"FP32\","
                      "\"parameters\":{\"shared_memory_region\":\"r\","
                      "\"shared_memory_byte_size\":4}}]}";
    char with_bin[256];
    snprintf(with_bin, sizeof with_bin, "%sXXXX", hdr);
    assert_err(kserve_hl(with_bin, strlen(hdr), &req, err), DCV_EINVAL, err,
               "expected 0 bytes of binary data after the JSON header");
}

Test(shm_tensor, response_has_parameters_and_no_data)
{
    const int64_t shape[] = { 1, 4, 1 };
    struct dcv_tensor_shm s = { .used = true, .region = "out\"r", .offset = 64,
                                .byte_size = 4096 };
    size_t len = 0;
    char *b = dcv_answer_kserve_shm(&(struct dcv_answer_names){ "up1d", "1", "req-\xc3\xa9", NULL }, shape, 3, &s, &len);
    cr_assert_not_null(b);
    const char *want = "{\"model_name\":\"up1d\",\"model_version\":\"1\",\"id\":\"req-\xc3\xa9\","
                       "\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":[1,4,1],"
                       "\"parameters\":{\"shared_memory_region\":\"out\\\"r\","
                       "\"shared_memory_byte_size\":4096,\"shared_memory_offset\":64}}]}";
    cr_assert_eq(len, strlen(want));
    cr_assert_str_eq(b, want);
    dcv_buf_free(b);
}
