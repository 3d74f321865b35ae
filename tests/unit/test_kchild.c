/* test_kchild.c — Keras files read in a child process: the answer codec
 * and every way the child can go wrong (crash, hang, memory limit,
 * garbage, early exit), each a clean error naming the file, with the child
 * reaped and no descriptor left behind. The child's reader is swapped by
 * the test hook; the real readers are tested in test_kfile.c. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/error.h"
#include "deconvd/kchild.h"
#include "testutil.h"

static const float K[6] = { 1.5f, -2.0f, 0.25f, 3.0f, -0.125f, 7.0f };
static const float B[2] = { 0.5f, -1.0f };

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* No child is left, zombie or running. */
static void assert_no_child(void)
{
    errno = 0;
    cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a child is left behind");
    cr_assert_eq(errno, ECHILD);
}

/* A two-array answer with a config, as a reader would give it. */
static void fill(struct dcv_kfile *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->keras_version, sizeof f->keras_version, "3.15.1");
    snprintf(f->backend, sizeof f->backend, "torch");
    f->config = strdup("{\"class_name\": \"Sequential\"}");
    f->n = 2;
    f->arrays = calloc(2, sizeof *f->arrays);
    struct dcv_kfile_array *a = f->arrays;
    snprintf(a[0].layer, sizeof a[0].layer, "dense");
    snprintf(a[0].name, sizeof a[0].name, "kernel");
    a[0].ndim = 2, a[0].shape[0] = 2, a[0].shape[1] = 3;
    a[0].data = malloc(sizeof K);
    memcpy(a[0].data, K, sizeof K);
    snprintf(a[1].layer, sizeof a[1].layer, "dense");
    a[1].index = 1, a[1].ndim = 1, a[1].shape[0] = 2;
    a[1].data = malloc(sizeof B);
    memcpy(a[1].data, B, sizeof B);
}

static int good_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                       const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                       struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)err;
    fill(out);
    return 0;
}

static int refusing_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                           const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                           struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)cfg, (void)lim, (void)out;
    return dcv_errf(err, DCV_EUNSUPP, "layer 'x' (class Lambda) is not supported [%s]",
                    submodel ? submodel : "-");
}

static int crashing_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                           const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                           struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)out, (void)err;
    raise(SIGSEGV);
    return 0;
}

static int looping_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                          const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                          struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)out, (void)err;
    for (volatile unsigned long i = 0;; i++) {}
    return 0;
}

/* Succeeds only when 512 MiB can be allocated and touched. */
static int greedy_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                         const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                         struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)out;
    size_t n = (size_t)512 << 20;
    char *p = malloc(n);
    if (!p) return dcv_errf(err, DCV_ENOMEM, "could not allocate %zu bytes", n);
    memset(p, 1, n);
    free(p);
    return 0;
}

static int garbage_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                          const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                          struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)out, (void)err;
    unsigned char junk[4096];
    srand(7);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)rand();
    memcpy(junk, "DCVK\1\0\0\0\0\0\0\0", 12);    /* a valid header, then nonsense */
    if (write(DCV_KCHILD_ANSWER_FD, junk, sizeof junk) != (ssize_t)sizeof junk) _exit(9);
    _exit(0);
}

static int silent_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                         const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                         struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)out, (void)err;
    _exit(0);
}

static int failing_exit_reader(const char *path, enum dcv_kfile_kind kind,
                               const char *submodel, const struct dcv_json *cfg,
                               const struct dcv_kfile_limits *lim, struct dcv_kfile *out,
                               char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)out, (void)err;
    _exit(7);
}

/* Reports, as an error, any descriptor beyond the answer and the pipe end
 * and any limit not set. */
static int probing_reader(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                          const struct dcv_json *cfg, const struct dcv_kfile_limits *lim,
                          struct dcv_kfile *out, char *err)
{
    (void)path, (void)kind, (void)submodel, (void)cfg, (void)lim, (void)out;
    struct rlimit core, nofile, as;
    for (int fd = 5; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0) return dcv_errf(err, DCV_EINVAL, "fd %d is open", fd);
    getrlimit(RLIMIT_CORE, &core);
    getrlimit(RLIMIT_NOFILE, &nofile);
    getrlimit(RLIMIT_AS, &as);
    if (core.rlim_cur || nofile.rlim_cur > 64 || as.rlim_cur == RLIM_INFINITY)
        return dcv_errf(err, DCV_EINVAL, "limits: core %ju nofile %ju as %ju",
                        (uintmax_t)core.rlim_cur, (uintmax_t)nofile.rlim_cur,
                        (uintmax_t)as.rlim_cur);
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    if (errno || nice != 19)
        return dcv_errf(err, DCV_EINVAL, "the reader runs at nice %d, not 19", nice);
    return 0;
}

static int fds_before;

static void setup(void)
{
    dcv_kchild_set_reader(NULL);
    fds_before = count_fds();
}

static void check_clean(void)
{
    assert_no_child();
    cr_assert_eq(count_fds(), fds_before, "descriptors leaked: %d before, %d after",
                 fds_before, count_fds());
}

TestSuite(kchild, .init = setup);

static int load_with(dcv_kchild_reader_fn fn, const struct dcv_kfile_limits *lim,
                     struct dcv_kfile *f, char *err)
{
    dcv_kchild_set_reader(fn);
    int rc = dcv_kfile_load("models/gen.keras", DCV_KFILE_KERAS, NULL, NULL, lim, f, err);
    dcv_kchild_set_reader(NULL);
    return rc;
}

Test(kchild, answer_round_trips_through_the_child)
{
    struct dcv_kfile f;
    char err[DCV_ERRLEN] = "";
    int rc = load_with(good_reader, NULL, &f, err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(f.keras_version, "3.15.1");
    cr_assert_str_eq(f.backend, "torch");
    cr_assert_str_eq(f.config, "{\"class_name\": \"Sequential\"}");
    cr_assert_eq(f.n, 2);
    cr_assert_str_eq(f.arrays[0].layer, "dense");
    cr_assert_str_eq(f.arrays[0].name, "kernel");
    cr_assert_eq(f.arrays[0].ndim, 2);
    cr_assert_eq(f.arrays[0].shape[1], 3);
    cr_assert_eq(memcmp(f.arrays[0].data, K, sizeof K), 0);
    cr_assert_eq(f.arrays[1].index, 1);
    cr_assert_str_eq(f.arrays[1].name, "");
    cr_assert_eq(memcmp(f.arrays[1].data, B, sizeof B), 0);
    dcv_kfile_release(&f);
    check_clean();
}

Test(kchild, a_refusal_keeps_its_code_and_message)
{
    struct dcv_kfile f;
    char err[DCV_ERRLEN] = "";
    dcv_kchild_set_reader(refusing_reader);
    int rc = dcv_kfile_load("m/vae.keras", DCV_KFILE_KERAS, "decoder", NULL, NULL, &f, err);
    dcv_kchild_set_reader(NULL);
    assert_err(rc, DCV_EUNSUPP, err, "m/vae.keras: layer 'x' (class Lambda) is not supported "
               "[decoder]");
    cr_assert_null(f.arrays);
    check_clean();
}

Test(kchild, a_crash_is_a_load_error_naming_the_signal)
{
    struct dcv_kfile f;
    char err[DCV_ERRLEN] = "";
    assert_err(load_with(crashing_reader, NULL, &f, err), DCV_EIO, err,
               "models/gen.keras: the reader crashed (SIGSEGV)");
    check_clean();
}

Test(kchild, a_hang_is_killed_at_the_deadline)
{
    struct dcv_kfile f;
    struct dcv_kfile_limits lim = { .timeout_ms = 300 };
    char err[DCV_ERRLEN] = "";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_err(load_with(looping_reader, &lim, &f, err), DCV_ETIMEDOUT, err,
               "models/gen.keras: the reader took longer than 300 ms and was killed");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    cr_assert(s >= 0.29 && s < 3.0, "took %.3f s", s);
    check_clean();
}

Test(kchild, the_memory_limit_holds)
{
    struct dcv_kfile f;
    struct dcv_kfile_limits lim = { .mem_bytes = (size_t)64 << 20 };
    char err[DCV_ERRLEN] = "";
    int rc = load_with(greedy_reader, &lim, &f, err);
    cr_assert_neq(rc, 0, "512 MiB allocated under a 64 MiB limit");
    cr_assert_not_null(strstr(err, "models/gen.keras: "), "%s", err);
    check_clean();
    /* the same reader passes with room (so the refusal above is the limit's) */
    lim.mem_bytes = (size_t)1 << 30;
    rc = load_with(greedy_reader, &lim, &f, err);
    cr_assert_eq(rc, 0, "%s", err);
    dcv_kfile_release(&f);
    check_clean();
}

Test(kchild, garbage_is_malformed)
{
    struct dcv_kfile f;
    char err[DCV_ERRLEN] = "";
    assert_err(load_with(garbage_reader, NULL, &f, err), DCV_EPARSE, err,
               "models/gen.keras: malformed answer from the reader process");
    cr_assert_null(f.arrays);
    check_clean();
}

Test(kchild, an_early_exit_is_an_error)
{
    struct dcv_kfile f;
    char err[DCV_ERRLEN] = "";
    assert_err(load_with(silent_reader, NULL, &f, err), DCV_EPARSE, err, "no answer");
    check_clean();
    assert_err(load_with(failing_exit_reader, NULL, &f, err), DCV_EIO, err,
               "models/gen.keras: the reader exited with status 7");
    check_clean();
}

Test(kchild, the_child_keeps_no_descriptor_and_has_limits)
{
    struct dcv_kfile f;
    char err[DCV_ERRLEN] = "";
    int extra = open("/dev/null", O_RDONLY);      /* must not reach the child */
    cr_assert_geq(extra, 0);
    fds_before = count_fds();
    int rc = load_with(probing_reader, NULL, &f, err);
    cr_assert_eq(rc, 0, "%s", err);
    dcv_kfile_release(&f);
    check_clean();
    close(extra);
}

Test(kchild, without_reader_the_stub_or_reader_answers)
{
    struct dcv_kfile f;
    char err[DCV_ERRLEN] = "";
    int rc = dcv_kfile_load("/nonexistent/x.keras", DCV_KFILE_KERAS, NULL, NULL, NULL, &f, err);
    cr_assert_lt(rc, 0);
    cr_assert_not_null(strstr(err, "/nonexistent/x.keras"), "%s", err);
    check_clean();
}

/* ---- the codec alone ---------------------------------------------------------- */

/* Encodes f (or a refusal) and returns the bytes (malloc'd) in *len. */
static unsigned char *encoded(int status, const char *msg, const struct dcv_kfile *f, size_t *len)
{
    int fd = memfd_create("t", MFD_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(dcv_kchild_encode(fd, status, msg, f), 0);
    off_t n = lseek(fd, 0, SEEK_END);
    unsigned char *b = malloc((size_t)n);
    cr_assert_eq(pread(fd, b, (size_t)n, 0), n);
    close(fd);
    *len = (size_t)n;
    return b;
}

Test(kchild, every_truncation_and_extension_is_refused)
{
    struct dcv_kfile f, g;
    char err[DCV_ERRLEN];
    size_t len;
    fill(&f);
    unsigned char *b = encoded(0, NULL, &f, &len);
    cr_assert_eq(dcv_kchild_decode(b, len, NULL, &g, err), 0, "%s", err);
    dcv_kfile_release(&g);
    for (size_t n = 0; n < len; n++) {
        int rc = dcv_kchild_decode(b, n, NULL, &g, err);
        cr_assert_eq(rc, DCV_EPARSE, "prefix of %zu of %zu bytes: rc %d", n, len, rc);
        cr_assert_null(g.arrays);
        cr_assert_null(g.config);
    }
    unsigned char *more = malloc(len + 1);
    memcpy(more, b, len);
    more[len] = 0;
    assert_err(dcv_kchild_decode(more, len + 1, NULL, &g, err), DCV_EPARSE, err,
               "bytes after the last array");
    free(more);
    free(b);
    dcv_kfile_release(&f);
}

Test(kchild, lies_and_bounds_are_refused)
{
    struct dcv_kfile f, g;
    char err[DCV_ERRLEN];
    size_t len;
    fill(&f);
    /* more values than max_weight_elems allows, per array and in total */
    struct dcv_kfile_limits lim = { .max_weight_elems = 5 };
    unsigned char *b = encoded(0, NULL, &f, &len);
    assert_err(dcv_kchild_decode(b, len, &lim, &g, err), DCV_EPARSE, err,
               "larger than max_weight_elems");
    lim.max_weight_elems = 7;                   /* 6 + 2 values */
    assert_err(dcv_kchild_decode(b, len, &lim, &g, err), DCV_EPARSE, err,
               "larger than max_weight_elems in total");
    free(b);
    /* a count that is not the shape's product: the last array's count sits
     * before its 2 values */
    b = encoded(0, NULL, &f, &len);
    uint64_t lie = 1;
    memcpy(b + len - 8 - 8, &lie, 8);
    assert_err(dcv_kchild_decode(b, len, NULL, &g, err), DCV_EPARSE, err,
               "array count differs from its shape");
    free(b);
    /* a name that fills its field (no room for the NUL) */
    memset(f.arrays[0].layer, 'a', sizeof f.arrays[0].layer);
    f.arrays[0].layer[sizeof f.arrays[0].layer - 1] = '\0';
    b = encoded(0, NULL, &f, &len);
    cr_assert_eq(dcv_kchild_decode(b, len, NULL, &g, err), 0, "%s", err);   /* 127 fits */
    dcv_kfile_release(&g);
    /* flip the length byte of the layer name to 128 */
    size_t off = 12 + 4 + 6 + 4 + 5 + 1 + 8 + strlen(f.config) + 8;
    cr_assert_eq(b[off], 127);
    b[off] = 128;
    assert_err(dcv_kchild_decode(b, len, NULL, &g, err), DCV_EPARSE, err, "array layer name");
    free(b);
    dcv_kfile_release(&f);
    /* a refusal: unknown codes and a positive status are malformed */
    b = encoded(DCV_ETOOBIG, "zip member too big", NULL, &len);
    assert_err(dcv_kchild_decode(b, len, NULL, &g, err), DCV_ETOOBIG, err, "zip member too big");
    int32_t st = -999;
    memcpy(b + 8, &st, 4);
    cr_assert_eq(dcv_kchild_decode(b, len, NULL, &g, err), DCV_EPARSE);
    st = 5;
    memcpy(b + 8, &st, 4);
    cr_assert_eq(dcv_kchild_decode(b, len, NULL, &g, err), DCV_EPARSE);
    free(b);
}

/* ---- fork while other threads allocate ---------------------------------------- */

static atomic_bool churn_stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&churn_stop)) {
        void *p[64];
        for (int i = 0; i < 64; i++) p[i] = malloc((size_t)(i + 1) * 1024);
        for (int i = 0; i < 64; i++) free(p[i]);
    }
    return NULL;
}

/* glibc's fork() takes every malloc arena lock around the fork and resets
 * them in the child: a child that allocates never deadlocks on a lock
 * another thread held at the fork (each load would time out if it did). */
Test(kchild, children_allocate_while_other_threads_do)
{
#if defined(__SANITIZE_ADDRESS__)
    /* GCC 12's libasan does not take its allocator's locks around fork():
     * a child may inherit one held and hang until its deadline (seen here:
     * load 2 of 40 timed out). glibc's malloc, which the daemon runs on,
     * does; this test is about that one. */
    cr_skip("ASan's allocator is not fork-safe in GCC 12's libasan");
#endif
    pthread_t th[2];
    struct dcv_kfile_limits lim = { .timeout_ms = 5000 };
    atomic_store(&churn_stop, false);
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, churn, NULL), 0);
    for (int i = 0; i < 40; i++) {
        struct dcv_kfile f;
        char err[DCV_ERRLEN] = "";
        int rc = load_with(good_reader, &lim, &f, err);
        cr_assert_eq(rc, 0, "load %d: %s", i, err);
        dcv_kfile_release(&f);
    }
    atomic_store(&churn_stop, true);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    check_clean();
}
