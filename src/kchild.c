/* kchild.c — Keras files parsed in a short-lived child process.
 *
 * dcv_kfile_load forks from the loading thread. The child is a copy of that
 * one thread: locks other threads held at the fork stay held, so it logs
 * nothing, runs no oneDNN/OpenMP/libuv and execs nothing; it may allocate,
 * since glibc's fork() resets malloc's arena locks in the child (GCC 12's
 * libasan does not: under ASan a child can hang there, and the deadline
 * makes that a load error). It sets rlimits (address space = inherited +
 * mem_bytes, CPU, core 0, few fds, answer size), keeps only the answer memfd
 * and a pipe end, runs the reader (libzip/libhdf5 are only used in children)
 * and writes one framed answer (kchild.h), then _exits. The parent polls the
 * pipe (EOF = the child is gone) against a wall-clock deadline, SIGKILLs a
 * late child, always reaps it and decodes the memfd strictly. The parent
 * owns memfd, pipe and child; the decoded dcv_kfile is the caller's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/error.h"
#include "deconvd/kchild.h"

#define MAGIC "DCVK"
#define VERSION 1u
#define DEF_MAX_ELEMS ((size_t)1 << 28)
#define DEF_TIMEOUT_MS 30000u
#define DEF_MEM ((size_t)4 << 30)
#define MAX_CONFIG ((size_t)64 << 20)      /* a config text is kilobytes; 64 MiB is absurd */
#define MAX_ARRAYS 65536u
#define MAX_INDEX 64
#define ARRAY_OVERHEAD 256u                /* framing bytes of one array, at most */
#define CHILD_NOFILE 16
#define HOLD_FD 4                          /* the pipe end whose close tells the parent */

static dcv_kchild_reader_fn reader_hook;

void dcv_kchild_set_reader(dcv_kchild_reader_fn fn)
{
    reader_hook = fn;
}

static size_t max_elems(const struct dcv_kfile_limits *lim)
{
    return lim && lim->max_weight_elems ? lim->max_weight_elems : DEF_MAX_ELEMS;
}

/* The biggest answer a child may write: every value, the config, framing. */
static size_t max_answer(const struct dcv_kfile_limits *lim)
{
    return max_elems(lim) * sizeof(float) + MAX_CONFIG + (size_t)MAX_ARRAYS * ARRAY_OVERHEAD;
}

/* ---- encoding (the child) ------------------------------------------------------- */

struct wbuf {
    int fd;
    int rc;
    size_t n;
    unsigned char b[1 << 16];
};

static void wflush(struct wbuf *w)
{
    size_t off = 0;
    while (!w->rc && off < w->n) {
        ssize_t k = write(w->fd, w->b + off, w->n - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) w->rc = DCV_EIO;
        else off += (size_t)k;
    }
    w->n = 0;
}

static void wput(struct wbuf *w, const void *p, size_t len)
{
    const unsigned char *s = p;
    while (len && !w->rc) {
        if (w->n == sizeof w->b) wflush(w);
        size_t k = sizeof w->b - w->n < len ? sizeof w->b - w->n : len;
        memcpy(w->b + w->n, s, k);
        w->n += k, s += k, len -= k;
    }
}

static void wu32(struct wbuf *w, uint32_t v) { wput(w, &v, sizeof v); }
static void wi32(struct wbuf *w, int32_t v) { wput(w, &v, sizeof v); }
static void wu64(struct wbuf *w, uint64_t v) { wput(w, &v, sizeof v); }

static void wstr(struct wbuf *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    wu32(w, (uint32_t)n);
    wput(w, s, n);
}

static void warray(struct wbuf *w, const struct dcv_kfile_array *a)
{
    uint64_t count = 1;
    wstr(w, a->layer);
    wi32(w, a->index);
    wstr(w, a->name);
    wi32(w, a->ndim);
    for (int d = 0; d < a->ndim; d++) {
        wput(w, &a->shape[d], sizeof a->shape[d]);
        count *= (uint64_t)a->shape[d];
    }
    wu64(w, count);
    wput(w, a->data, (size_t)count * sizeof(float));
}

int dcv_kchild_encode(int fd, int status, const char *msg, const struct dcv_kfile *f)
{
    struct wbuf *w = malloc(sizeof *w);
    if (!w) return DCV_ENOMEM;
    w->fd = fd, w->rc = 0, w->n = 0;
    wput(w, MAGIC, 4);
    wu32(w, VERSION);
    wi32(w, status);
    if (status) {
        wstr(w, msg);
    } else {
        unsigned char has = f->config != NULL;
        wstr(w, f->keras_version);
        wstr(w, f->backend);
        wput(w, &has, 1);
        if (has) {
            wu64(w, strlen(f->config));
            wput(w, f->config, strlen(f->config));
        }
        wu64(w, f->n);
        for (size_t i = 0; i < f->n; i++) warray(w, &f->arrays[i]);
    }
    wflush(w);
    int rc = w->rc;
    free(w);
    return rc;
}

/* ---- decoding (the parent) ------------------------------------------------------ */

struct rd {
    const unsigned char *p;
    size_t left;
    char *err;
};

static int bad(struct rd *r, const char *what)
{
    return dcv_errf(r->err, DCV_EPARSE, "malformed answer from the reader process: %s", what);
}

static int take(struct rd *r, void *dst, size_t n, const char *what)
{
    if (n > r->left) return bad(r, what);
    memcpy(dst, r->p, n);
    r->p += n, r->left -= n;
    return 0;
}

/* A string of at most cap-1 bytes, without NUL, into dst (cap bytes). */
static int take_str(struct rd *r, char *dst, size_t cap, const char *what)
{
    uint32_t n = 0;
    int rc = take(r, &n, sizeof n, what);
    if (rc) return rc;
    if ((size_t)n >= cap || n > r->left || memchr(r->p, '\0', n)) return bad(r, what);
    memcpy(dst, r->p, n);
    dst[n] = '\0';
    r->p += n, r->left -= n;
    return 0;
}

static int take_config(struct rd *r, struct dcv_kfile *out)
{
    unsigned char has = 0;
    uint64_t n = 0;
    int rc = take(r, &has, 1, "config flag");
    if (rc || !has) return rc;
    if (has != 1) return bad(r, "config flag");
    if ((rc = take(r, &n, sizeof n, "config length"))) return rc;
    if (n > MAX_CONFIG || n > r->left || memchr(r->p, '\0', (size_t)n))
        return bad(r, "config text (length or NUL)");
    if (!(out->config = malloc((size_t)n + 1)))
        return dcv_errf(r->err, DCV_ENOMEM, "out of memory for a %zu-byte config", (size_t)n);
    memcpy(out->config, r->p, (size_t)n);
    out->config[n] = '\0';
    r->p += n, r->left -= (size_t)n;
    return 0;
}

static int take_array(struct rd *r, struct dcv_kfile_array *a, size_t limit, size_t *total)
{
    int32_t idx = 0, ndim = 0;
    uint64_t count = 0, prod = 1;
    int rc;
    if ((rc = take_str(r, a->layer, sizeof a->layer, "array layer name")) ||
        (rc = take(r, &idx, sizeof idx, "array index")) ||
        (rc = take_str(r, a->name, sizeof a->name, "array name")) ||
        (rc = take(r, &ndim, sizeof ndim, "array rank")))
        return rc;
    if (!a->layer[0] || idx < 0 || idx >= MAX_INDEX) return bad(r, "array layer or index");
    if (ndim < 0 || ndim > DCV_MAX_DIMS) return bad(r, "array rank");
    a->index = idx, a->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        if ((rc = take(r, &a->shape[d], sizeof a->shape[d], "array shape"))) return rc;
        if (a->shape[d] < 0 || (uint64_t)a->shape[d] > limit) return bad(r, "array shape");
        prod *= (uint64_t)a->shape[d];
        if (prod > limit) return bad(r, "array larger than max_weight_elems");
    }
    if ((rc = take(r, &count, sizeof count, "array count"))) return rc;
    if (count != prod) return bad(r, "array count differs from its shape");
    if (count > limit - *total) return bad(r, "arrays larger than max_weight_elems in total");
    if (count * sizeof(float) > r->left) return bad(r, "array data truncated");
    *total += (size_t)count;
    if (!(a->data = malloc(count ? (size_t)count * sizeof(float) : 1)))
        return dcv_errf(r->err, DCV_ENOMEM, "out of memory for array '%s'", a->layer);
    return take(r, a->data, (size_t)count * sizeof(float), "array data");
}

static int decode_ok(struct rd *r, const struct dcv_kfile_limits *lim, struct dcv_kfile *out)
{
    uint64_t n = 0;
    size_t limit = max_elems(lim), total = 0;
    int rc;
    if ((rc = take_str(r, out->keras_version, sizeof out->keras_version, "keras_version")) ||
        (rc = take_str(r, out->backend, sizeof out->backend, "backend")) ||
        (rc = take_config(r, out)) || (rc = take(r, &n, sizeof n, "array count")))
        return rc;
    /* an array takes at least 24 framing bytes: a count beyond that is a lie */
    if (n > MAX_ARRAYS || n > r->left / 24) return bad(r, "number of arrays");
    if (n && !(out->arrays = calloc((size_t)n, sizeof *out->arrays)))
        return dcv_errf(r->err, DCV_ENOMEM, "out of memory for %zu arrays", (size_t)n);
    for (out->n = 0; out->n < n; out->n++)
        if ((rc = take_array(r, &out->arrays[out->n], limit, &total))) {
            free(out->arrays[out->n].data);
            return rc;
        }
    return r->left ? bad(r, "bytes after the last array") : 0;
}

int dcv_kchild_decode(const void *buf, size_t len, const struct dcv_kfile_limits *lim,
                      struct dcv_kfile *out, char *err)
{
    struct rd r = { buf, len, err };
    char magic[4], msg[DCV_ERRLEN];
    uint32_t ver = 0;
    int32_t status = 0;
    int rc;
    memset(out, 0, sizeof *out);
    if (!len) return bad(&r, "no answer");
    if ((rc = take(&r, magic, 4, "header")) || (rc = take(&r, &ver, sizeof ver, "header")) ||
        (rc = take(&r, &status, sizeof status, "header")))
        return rc;
    if (memcmp(magic, MAGIC, 4) || ver != VERSION) return bad(&r, "header");
    if (status) {
        if (status >= 0 || !strcmp(dcv_error_name(status), "EUNKNOWN") ||
            (rc = take_str(&r, msg, sizeof msg, "message")) || r.left)
            return rc ? rc : bad(&r, "status");
        return dcv_errf(err, status, "%s", msg);
    }
    if ((rc = decode_ok(&r, lim, out))) dcv_kfile_release(out);
    return rc;
}

/* ---- the child ------------------------------------------------------------------ */

/* Pages of address space this process maps now (the parent's copy). */
static rlim_t mapped_bytes(void)
{
    unsigned long pages = 0;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    char b[64] = "";
    if (fd >= 0) {
        ssize_t n = read(fd, b, sizeof b - 1);
        b[n > 0 ? n : 0] = '\0';
        close(fd);
        pages = strtoul(b, NULL, 10);
    }
    return (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
}

static void set_limit(int res, rlim_t soft, rlim_t hard)
{
    struct rlimit rl = { soft, hard };
    setrlimit(res, &rl);
}

/* Sanitizer builds keep the child's stderr: its reports must reach the log
 * (make asan-test searches it). Elsewhere a library's chatter must not. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define QUIET_FDS 2
#else
#define QUIET_FDS 3
#endif

/* Only the answer (fd 3), the pipe end (fd 4) and /dev/null on 0-2 stay. */
static int child_fds(int ans, int hold)
{
    int a = fcntl(ans, F_DUPFD, 10), h = fcntl(hold, F_DUPFD, 10);
    int nul = open("/dev/null", O_RDWR);
    if (a < 0 || h < 0 || nul < 0) return -1;
    if (dup2(a, DCV_KCHILD_ANSWER_FD) < 0 || dup2(h, HOLD_FD) < 0) return -1;
    for (int i = 0; i < QUIET_FDS; i++)
        if (dup2(nul, i) < 0) return -1;
    return close_range(HOLD_FD + 1, ~0u, 0);
}

static void child_signals(void)
{
    static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGXCPU,
                                SIGXFSZ, SIGPIPE, SIGTERM, SIGINT, SIGHUP };
    sigset_t none;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

struct request {
    const char *path;
    enum dcv_kfile_kind kind;
    const char *submodel;
    const struct dcv_json *json_config;
    const struct dcv_kfile_limits *lim;
    unsigned timeout_ms;
    size_t mem;
};

static _Noreturn void child_main(const struct request *q, int ans, int hold, pid_t parent)
{
    static char err[DCV_ERRLEN];
    struct dcv_kfile f;
    dcv_kchild_reader_fn fn = reader_hook ? reader_hook : dcv_kfile_read_local;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(125);
    child_signals();
    if (child_fds(ans, hold)) _exit(126);
    rlim_t cpu = q->timeout_ms / 1000 + 2;
    set_limit(RLIMIT_CORE, 0, 0);
    set_limit(RLIMIT_CPU, cpu, cpu + 1);
    set_limit(RLIMIT_NOFILE, CHILD_NOFILE, CHILD_NOFILE);
    set_limit(RLIMIT_FSIZE, (rlim_t)max_answer(q->lim), (rlim_t)max_answer(q->lim));
    set_limit(RLIMIT_AS, mapped_bytes() + (rlim_t)q->mem, mapped_bytes() + (rlim_t)q->mem);
    /* lowest CPU priority: a file that keeps libhdf5 busy until the deadline
     * must not take a core from the requests being served meanwhile (a
     * 30 s hang had delayed a health probe by 1.2 s at normal priority) */
    setpriority(PRIO_PROCESS, 0, 19);
    memset(&f, 0, sizeof f);
    err[0] = '\0';
    int rc = fn(q->path, q->kind, q->submodel, q->json_config, q->lim, &f, err);
    if (rc && !err[0]) snprintf(err, sizeof err, "%s", dcv_strerror(rc));
    rc = dcv_kchild_encode(DCV_KCHILD_ANSWER_FD, rc, err, rc ? NULL : &f);
    _exit(rc ? 2 : 0);
}

/* ---- the parent ----------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for the child's end of the pipe to close, up to timeout_ms; then
 * SIGKILLs it if still running and reaps it. True when it was too late. */
static bool wait_child(pid_t pid, int rfd, unsigned timeout_ms, int *status)
{
    int64_t deadline = now_ms() + timeout_ms;
    bool late = false;
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p = { .fd = rfd, .events = POLLIN };
        int n = left > 0 ? poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left) : 0;
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) {
            char c;
            if (read(rfd, &c, 1) > 0) continue;        /* nobody writes; stray byte */
            break;
        }
        late = true;                                    /* timeout (or a poll error) */
        kill(pid, SIGKILL);
        break;
    }
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {}
    return late;
}

/* The answer's bytes: mapped read-only (munmap with *len), NULL when empty. */
static void *map_answer(int fd, size_t cap, size_t *len, char *err, int *rc)
{
    struct stat st;
    *len = 0;
    *rc = 0;
    if (fstat(fd, &st) != 0) {
        *rc = dcv_errf(err, DCV_EIO, "reading the reader's answer: %s", strerror(errno));
        return NULL;
    }
    if ((uintmax_t)st.st_size > cap) {
        *rc = dcv_errf(err, DCV_ETOOBIG, "the reader's answer has %jd bytes, above %zu",
                       (intmax_t)st.st_size, cap);
        return NULL;
    }
    if (!st.st_size) return NULL;
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        *rc = dcv_errf(err, DCV_ENOMEM, "mapping the reader's answer: %s", strerror(errno));
        return NULL;
    }
    *len = (size_t)st.st_size;
    return p;
}

/* How the child ended, as a load error (0: it exited 0). */
static int judge(const struct request *q, int status, bool late, char *err)
{
    if (late)
        return dcv_errf(err, DCV_ETIMEDOUT, "the reader took longer than %u ms and was killed",
                        q->timeout_ms);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbr = sigabbrev_np(sig);
        if (sig == SIGXFSZ)
            return dcv_errf(err, DCV_ETOOBIG, "the reader's answer passed %zu bytes (SIGXFSZ)",
                            max_answer(q->lim));
        if (sig == SIGXCPU)
            return dcv_errf(err, DCV_ETIMEDOUT, "the reader passed its CPU time limit (SIGXCPU)");
        return dcv_errf(err, DCV_EIO, "the reader crashed (SIG%s)", abbr ? abbr : "?");
    }
    if (WIFEXITED(status) && WEXITSTATUS(status))
        return dcv_errf(err, DCV_EIO, "the reader exited with status %d", WEXITSTATUS(status));
    return 0;
}

static int run_child(const struct request *q, int ans, struct dcv_kfile *out, char *err)
{
    int pfd[2], status = 0, rc;
    char sub[DCV_ERRLEN];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return dcv_errf(err, DCV_EIO, "pipe: %s", strerror(errno));
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) child_main(q, ans, pfd[1], parent);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return dcv_errf(err, DCV_EIO, "fork: %s", strerror(errno));
    }
    bool late = wait_child(pid, pfd[0], q->timeout_ms, &status);
    close(pfd[0]);
    int verdict = judge(q, status, late, sub);
    size_t len;
    void *buf = map_answer(ans, max_answer(q->lim), &len, err, &rc);
    if (rc) return rc;
    rc = dcv_kchild_decode(buf, len, q->lim, out, err);
    if (buf) munmap(buf, len);
    if (verdict && rc) {        /* the child's own message, when it left one, says more */
        char msg[DCV_ERRLEN];
        snprintf(msg, sizeof msg, "%s", err);
        rc = rc != DCV_EPARSE ? dcv_errf(err, rc, "%.300s (%s)", msg, sub)
                              : dcv_errf(err, verdict, "%s", sub);
    } else if (verdict)
        dcv_kfile_release(out), rc = dcv_errf(err, verdict, "%s", sub);
    return rc;
}

int dcv_kfile_load(const char *path, enum dcv_kfile_kind kind, const char *submodel,
                   const struct dcv_json *json_config, const struct dcv_kfile_limits *lim,
                   struct dcv_kfile *out, char *err)
{
    struct request q = {
        path, kind, submodel, json_config, lim,
        lim && lim->timeout_ms ? lim->timeout_ms : DEF_TIMEOUT_MS,
        lim && lim->mem_bytes ? lim->mem_bytes : DEF_MEM,
    };
    char sub[DCV_ERRLEN];
    memset(out, 0, sizeof *out);
    int ans = memfd_create("deconvd-kfile", MFD_CLOEXEC);
    if (ans < 0) return dcv_errf(err, DCV_EIO, "%.200s: memfd_create: %s", path, strerror(errno));
    int rc = run_child(&q, ans, out, sub);
    close(ans);
    if (rc && !strncmp(sub, path, strlen(path))) dcv_errf(err, rc, "%s", sub);  /* named */
    else if (rc) dcv_errf(err, rc, "%.200s: %s", path, sub);
    return rc;
}
