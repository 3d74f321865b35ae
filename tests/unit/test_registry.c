/* test_registry.c — the model registry: versions never repeat for a name
 * (reload, unload, removal and return), untouched models keep their version
 * without a rebuild, a broken file keeps the previous version, which models
 * count as failed for readiness, references outliving a removal, and the
 * background reload on a real event loop (listing, slices, non-regular
 * files) ending with every change applied. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/log.h"
#include "deconvd/model.h"
#include "deconvd/registry.h"
#include "deconvd/sched.h"
#include "testutil.h"

static char dir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void mk_dir(void)
{
    dcv_log_setup(DCV_LOG_ERROR, false);    /* a model line per change is noise here */
    snprintf(dir, sizeof dir, "/tmp/dcvreg.XXXXXX");
    cr_assert_not_null(tu_mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void rm_dir(void)
{
    if (dir[0]) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = '\0';
}

TestSuite(registry, .init = mk_dir, .fini = rm_dir, .timeout = 60);

/* A valid Conv1DTranspose model; filters makes two files differ. */
static void put(const char *name, int filters)
{
    char path[PATH_MAX], text[256];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    int n = snprintf(text, sizeof text, "{\"class_name\": \"Conv1DTranspose\", \"config\": "
                     "{\"filters\": %d, \"kernel_size\": 3, \"batch_input_shape\": "
                     "[null, null, 2]}}", filters);
    /* a new inode each time, as editors and deploy tools write */
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_eq(tu_write_file(tmp, text, (size_t)n), 0);
    cr_assert_eq(rename(tmp, path), 0);
}

static void put_raw(const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0);
}

static void drop(const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    cr_assert_eq(unlink(path), 0);
}

/* Current version of name, 0 when it serves none, -1 when unknown. */
static int version(struct dcv_registry *r, const char *name)
{
    struct dcv_model_ref ref;
    char err[DCV_ERRLEN];
    int rc = dcv_registry_acquire(r, name, &ref, err);
    if (rc == DCV_ENOENT) return -1;
    if (rc) return 0;
    int v = ref.version;
    dcv_registry_release(r, &ref);
    return v;
}

static struct dcv_model *model_of(struct dcv_registry *r, const char *name)
{
    struct dcv_model_ref ref;
    char err[DCV_ERRLEN];
    cr_assert_eq(dcv_registry_acquire(r, name, &ref, err), 0, "%s", err);
    struct dcv_model *m = ref.model;
    dcv_registry_release(r, &ref);
    return m;
}

Test(registry, versions_never_repeat_for_a_name)
{
    struct dcv_registry *r = dcv_registry_new(dir, NULL);
    put("a", 1);
    cr_assert_eq(dcv_registry_load_all(r), 0);
    cr_expect_eq(version(r, "a"), 1);
    put("a", 2);                                   /* changed: a new version */
    dcv_registry_load_all(r);
    cr_expect_eq(version(r, "a"), 2);
    cr_assert_eq(dcv_registry_unload(r, "a"), 0);  /* unload, load: the next number */
    cr_expect_eq(version(r, "a"), 0);
    dcv_registry_load_all(r);
    cr_expect_eq(version(r, "a"), 3);
    drop("a");                                     /* removed, then back */
    dcv_registry_load_all(r);
    cr_expect_eq(version(r, "a"), -1);
    put("a", 1);
    dcv_registry_load_all(r);
    cr_expect_eq(version(r, "a"), 4, "a returning model restarted at version %d",
                 version(r, "a"));
    dcv_registry_free(r);
}

Test(registry, untouched_model_keeps_its_version_and_object)
{
    struct dcv_registry *r = dcv_registry_new(dir, NULL);
    put("a", 1);
    put("b", 1);
    cr_assert_eq(dcv_registry_load_all(r), 0);
    struct dcv_model *a = model_of(r, "a");
    put("b", 3);
    cr_assert_eq(dcv_registry_load_all(r), 0);
    cr_expect_eq(model_of(r, "a"), a, "an untouched model was rebuilt");
    cr_expect_eq(version(r, "a"), 1);
    cr_expect_eq(version(r, "b"), 2);
    cr_expect_eq(model_of(r, "b")->layer.conv.filters, 3);
    dcv_registry_free(r);
}

Test(registry, broken_file_keeps_previous_version_and_is_not_a_readiness_failure)
{
    struct dcv_registry *r = dcv_registry_new(dir, NULL);
    const char *names[4], *errors[4];
    put("a", 1);
    put_raw("bad", "{\"class_name\": ");
    cr_assert_eq(dcv_registry_load_all(r), 1);
    cr_assert_eq(dcv_registry_failed(r, names, errors, 4), 1);
    cr_expect_str_eq(names[0], "bad");
    cr_expect(strstr(errors[0], "bad.json"), "%s", errors[0]);
    cr_expect_eq(dcv_registry_ready_count(r), 1);
    put_raw("a", "not json");                       /* a serving model broken */
    cr_assert_eq(dcv_registry_load_all(r), 2);
    cr_expect_eq(version(r, "a"), 1, "the previous version stopped serving");
    cr_expect_eq(dcv_registry_failed(r, NULL, NULL, 0), 1, "a model still serving counted");
    cr_assert_eq(dcv_registry_unload(r, "bad"), 0);  /* unloaded on purpose: not failed */
    cr_expect_eq(dcv_registry_failed(r, NULL, NULL, 0), 0);
    dcv_registry_load_all(r);                        /* a reload tries it again */
    cr_expect_eq(dcv_registry_failed(r, NULL, NULL, 0), 1);
    put("bad", 1);                                   /* fixed */
    put("a", 1);
    cr_assert_eq(dcv_registry_load_all(r), 0);
    cr_expect_eq(dcv_registry_failed(r, NULL, NULL, 0), 0);
    cr_expect_eq(version(r, "bad"), 1);
    cr_expect_eq(version(r, "a"), 2);
    cr_expect_eq(dcv_registry_ready_count(r), 2);
    drop("bad");
    put_raw("gone", "[");
    dcv_registry_load_all(r);
    cr_expect_eq(dcv_registry_failed(r, names, NULL, 4), 1);
    cr_expect_str_eq(names[0], "gone");
    drop("gone");                                    /* a removed model is not failed */
    dcv_registry_load_all(r);
    cr_expect_eq(dcv_registry_failed(r, NULL, NULL, 0), 0);
    cr_expect_eq(dcv_registry_ready_count(r), 1);
    dcv_registry_free(r);
}

Test(registry, reference_outlives_removal)
{
    struct dcv_registry *r = dcv_registry_new(dir, NULL);
    struct dcv_model_ref ref;
    char err[DCV_ERRLEN];
    put("a", 2);
    cr_assert_eq(dcv_registry_load_all(r), 0);
    cr_assert_eq(dcv_registry_acquire(r, "a", &ref, err), 0);
    drop("a");
    dcv_registry_load_all(r);
    cr_expect_not(dcv_registry_known(r, "a"));
    put("a", 1);                                     /* back while the old one is held */
    dcv_registry_load_all(r);
    cr_expect_eq(version(r, "a"), 2);
    cr_expect_str_eq(ref.name, "a");
    cr_expect_eq(ref.model->layer.conv.filters, 2);  /* still the old, intact */
    ref.stats->inference_count++;
    dcv_registry_release(r, &ref);                   /* frees it (ASan: no leak, no UAF) */
    dcv_registry_free(r);
}

/* Counts of the index's states. */
static void index_counts(struct dcv_registry *r, int *ready, int *unavailable)
{
    struct dcv_json *idx = dcv_registry_index(r);
    *ready = *unavailable = 0;
    for (const struct dcv_json *e = dcv_json_first(idx); e; e = dcv_json_next(e)) {
        const char *st = dcv_json_string(dcv_json_get(e, "state"));
        *ready += !strcmp(st, "READY");
        *unavailable += !strcmp(st, "UNAVAILABLE");
    }
    dcv_json_free(idx);
}

Test(registry, removing_half_of_many_models)
{
    enum { N = 1200 };
    struct dcv_registry *r = dcv_registry_new(dir, NULL);
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "m%04d", i);
        put(name, 1);
    }
    cr_assert_eq(dcv_registry_load_all(r), 0);
    cr_assert_eq(dcv_registry_ready_count(r), N);
    for (int i = 0; i < N; i += 2) {
        snprintf(name, sizeof name, "m%04d", i);
        drop(name);
    }
    cr_assert_eq(dcv_registry_load_all(r), 0);
    cr_expect_eq(dcv_registry_ready_count(r), N / 2);
    int ready, unavailable;
    index_counts(r, &ready, &unavailable);
    cr_expect_eq(ready, N / 2);
    cr_expect_eq(unavailable, 0);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "m%04d", i);
        cr_expect_eq(version(r, name), i % 2 ? 1 : -1, "%s", name);
    }
    dcv_registry_free(r);
}

/* ---- the background reload on a real loop ---- */

struct done { int calls, rc; char err[DCV_ERRLEN]; };

static void on_done(void *arg, int rc, const char *err)
{
    struct done *d = arg;
    d->calls++;
    d->rc = rc;
    snprintf(d->err, sizeof d->err, "%s", err);
    dcv_sched_stop();
}

static struct done reload(struct dcv_registry *r, const char *name)
{
    struct done d = { 0 };
    cr_assert_eq(dcv_registry_reload(r, name, on_done, &d), 0);
    cr_expect_eq(dcv_registry_reload(r, NULL, on_done, &d), DCV_EBUSY);
    cr_assert_eq(dcv_sched_run(), 0);
    cr_assert_eq(d.calls, 1);
    cr_expect_not(dcv_registry_reloading(r));
    return d;
}

static int changes;
static void on_change(void *arg)
{
    (void)arg;
    changes++;
}

Test(registry, background_reload_applies_every_change)
{
    enum { N = 700 };                       /* more than one slice of changes */
    char err[DCV_ERRLEN], name[32], path[PATH_MAX];
    cr_assert_eq(dcv_sched_init(2, 4, NULL, NULL, err), 0, "%s", err);
    struct dcv_registry *r = dcv_registry_new(dir, NULL);
    dcv_registry_on_change(r, on_change, NULL);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "m%04d", i);
        put(name, 1);
    }
    snprintf(path, sizeof path, "%s/fifo.json", dir);
    cr_assert_eq(mkfifo(path, 0644), 0);
    snprintf(path, sizeof path, "%s/zero.json", dir);
    cr_assert_eq(symlink("/dev/zero", path), 0);
    struct done d = reload(r, NULL);
    cr_expect_eq(d.rc, DCV_EINVAL);         /* fifo and zero failed */
    cr_expect_eq(changes, 1);
    cr_expect_eq(dcv_registry_ready_count(r), N);
    const char *names[2], *errors[2];
    cr_assert_eq(dcv_registry_failed(r, names, errors, 2), 2);
    for (int i = 0; i < 2; i++)
        cr_expect(strstr(errors[i], "not a regular file"), "%s: %s", names[i], errors[i]);
    for (int i = 0; i < N; i += 2) {        /* half removed, one changed, one added */
        snprintf(name, sizeof name, "m%04d", i);
        drop(name);
    }
    put("m0001", 4);
    put("new", 1);
    d = reload(r, NULL);
    cr_expect_eq(dcv_registry_ready_count(r), N / 2 + 1);
    cr_expect_eq(version(r, "m0001"), 2);
    cr_expect_eq(version(r, "m0003"), 1);
    cr_expect_eq(version(r, "m0000"), -1);
    cr_expect_eq(version(r, "new"), 1);
    /* one model through the repository path; an absent one is a 404 */
    cr_assert_eq(dcv_registry_unload(r, "m0003"), 0);
    d = reload(r, "m0003");
    cr_expect_eq(d.rc, 0, "%s", d.err);
    cr_expect_eq(version(r, "m0003"), 2);
    d = reload(r, "absent");
    cr_expect_eq(d.rc, DCV_ENOENT);
    cr_expect_not(dcv_registry_known(r, "absent"));
    d = reload(r, "fifo");
    cr_expect_eq(d.rc, DCV_EIO);
    cr_expect(strstr(d.err, "fifo.json is a FIFO"), "%s", d.err);
    dcv_sched_close();
    dcv_registry_free(r);
}

/* An empty (or vanished) directory serves nothing and removes what was there. */
Test(registry, empty_directory)
{
    struct dcv_registry *r = dcv_registry_new(dir, NULL);
    cr_expect_eq(dcv_registry_load_all(r), 0);
    cr_expect_eq(dcv_registry_ready_count(r), 0);
    put("a", 1);
    cr_expect_eq(dcv_registry_load_all(r), 0);
    drop("a");
    cr_expect_eq(dcv_registry_load_all(r), 0);
    cr_expect_eq(dcv_registry_ready_count(r), 0);
    cr_expect_not(dcv_registry_known(r, "a"));
    dcv_registry_free(r);
}
