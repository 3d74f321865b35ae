/* main.c — the deconvd command line.
 *
 * Reads options and the config file, then either validates every model and
 * prints its signature (--check, like `nginx -t`) or runs the server. The
 * only place that calls exit(); exit codes: 0 ok, 1 runtime or model
 * failure, 2 usage or configuration error.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deconvd/config.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layer.h"
#include "deconvd/log.h"
#include "deconvd/model.h"
#include "deconvd/registry.h"
#include "deconvd/server.h"
#include "deconvd/summary.h"

static const char usage[] =
    "usage: deconvd [options]\n"
    "Serves Keras Conv{1,2,3}DTranspose layers over HTTP (KServe v2, TF Serving).\n\n"
    "  -c, --config FILE            config file (default config/deconvd.json)\n"
    "  -l, --listen HOST:PORT       address to listen on (default 127.0.0.1:8080)\n"
    "  -m, --models DIR             models directory (default: from config)\n"
    "  -w, --workers N              inference workers (0 = from cores)\n"
    "  -t, --threads-per-request N  OpenMP threads per inference (0 = from cores)\n"
    "      --log-level LEVEL        debug, info, warn or error\n"
    "      --check                  load every model, print signatures, exit 0/1\n"
    "  -V, --version                print the version and exit\n"
    "  -h, --help                   print this help and exit\n";

static int fail_usage(const char *msg)
{
    fprintf(stderr, "deconvd: %s\n(see deconvd --help)\n", msg);
    return 2;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static void print_dims(const int64_t *d, int n)
{
    putchar('[');
    for (int i = 0; i < n; i++) printf(i ? ", %lld" : "%lld", (long long)d[i]);
    putchar(']');
}

/* One model's --check lines: its signature, then its model.summary()
 * table on the signature's shapes. */
static void print_model(const struct dcv_model *m, const char *name)
{
    struct dcv_model_row *rows;
    char err[DCV_ERRLEN];
    int n;
    printf("%-24s %-16s input ", name, dcv_model_class(m));
    print_dims(m->in_sig, m->ndim);
    printf(" -> output ");
    print_dims(m->out_sig, m->out_ndim);
    printf("  %s", m->chain ? "" : dcv_layer_layout(&m->layer));
    if (m->keras_version[0] || strcmp(m->file_kind, "json"))
        printf("  %s file, keras %s", m->file_kind,
               m->keras_version[0] ? m->keras_version : "unknown");
    putchar('\n');
    if (dcv_summary_rows(m, NULL, 0, &rows, &n, err)) {
        printf("    (no summary: %s)\n", err);
        return;
    }
    dcv_summary_print(stdout, rows, n, "    ");
    free(rows);
}

static int check(const struct dcv_config *cfg)
{
    struct dcv_model_opts mo = { .max_weight_elems = cfg->max_weight_elems,
                                 .keras_timeout_ms = (unsigned)cfg->keras_load_timeout_ms,
                                 .keras_mem_bytes = cfg->keras_load_memory_bytes };
    struct dcv_registry *reg = dcv_registry_new(cfg->models_dir, &mo);
    if (!reg) return 1;
    int failures = dcv_registry_load_all(reg);
    struct dcv_json *idx = dcv_registry_index(reg);
    int ok = 0;
    for (const struct dcv_json *e = dcv_json_first(idx); e; e = dcv_json_next(e)) {
        const char *name = dcv_json_string(dcv_json_get(e, "name"));
        struct dcv_model_ref ref;
        char err[DCV_ERRLEN];
        if (dcv_registry_acquire(reg, name, &ref, err)) {
            printf("%-24s FAILED  %s\n", name, err);
            continue;
        }
        print_model(ref.model, name);
        dcv_registry_release(reg, &ref);
        ok++;
    }
    printf("%d models ok, %d failed (%s)\n", ok, failures, cfg->models_dir);
    dcv_json_free(idx);
    dcv_registry_free(reg);
    return failures ? 1 : 0;
}

/* OpenMP helper threads that spin after each parallel region (libgomp's
 * default) take the core another worker's inference needs; sleeping ones
 * measured 3-11 % more images/s at 1-8 clients. libgomp reads
 * OMP_WAIT_POLICY when it loads, before main, so a daemon started without
 * it sets it and runs itself again, once (same pid, same arguments). An
 * explicit OMP_WAIT_POLICY, even ACTIVE, is left alone. */
static void prefer_passive_openmp(char **argv)
{
    char self[PATH_MAX];
    if (getenv("OMP_WAIT_POLICY")) return;
    /* the path, not /proc/self/exe itself: under valgrind that names the
     * tool, while readlink answers for the program being checked */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t)n >= sizeof self - 1) return;
    self[n] = '\0';
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv(self, argv);                   /* failing, run on with the default */
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_LOG };
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' },  { "listen", required_argument, 0, 'l' },
        { "models", required_argument, 0, 'm' },  { "workers", required_argument, 0, 'w' },
        { "threads-per-request", required_argument, 0, 't' },
        { "log-level", required_argument, 0, OPT_LOG }, { "check", no_argument, 0, OPT_CHECK },
        { "version", no_argument, 0, 'V' },       { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    struct dcv_config cfg, over;
    const char *config_path = "config/deconvd.json", *listen = NULL, *models = NULL;
    int workers = -1, threads = -1, level = -1, do_check = 0, c;
    char err[DCV_ERRLEN];

    prefer_passive_openmp(argv);
    dcv_config_defaults(&cfg);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:l:m:w:t:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'l': listen = optarg; break;
        case 'm': models = optarg; break;
        case 'w':
            if (parse_int(optarg, 0, 1024, &workers)) return fail_usage("--workers needs 0-1024");
            break;
        case 't':
            if (parse_int(optarg, 0, 1024, &threads))
                return fail_usage("--threads-per-request needs 0-1024");
            break;
        case OPT_LOG:
            if ((level = dcv_log_parse_level(optarg)) < 0)
                return fail_usage("--log-level must be debug, info, warn or error");
            break;
        case OPT_CHECK: do_check = 1; break;
        case 'V': printf("deconvd %s\n", DCV_VERSION); return 0;
        case 'h': fputs(usage, stdout); return 0;
        case ':': snprintf(err, sizeof err, "option %s needs a value", argv[optind - 1]);
                  return fail_usage(err);
        default: snprintf(err, sizeof err, "unknown option '%s'", argv[optind - 1]);
                 return fail_usage(err);
        }
    }
    if (optind < argc) {
        snprintf(err, sizeof err, "unexpected argument '%s'", argv[optind]);
        return fail_usage(err);
    }
    if (dcv_config_load(&cfg, config_path, err)) return fail_usage(err);
    over = cfg;
    if (listen && dcv_config_parse_listen(&over, listen, err)) return fail_usage(err);
    if (models) snprintf(over.models_dir, sizeof over.models_dir, "%s", models);
    if (workers >= 0) over.workers = workers;
    if (threads >= 0) over.threads_per_request = threads;
    if (level >= 0) over.log_level = level;
    dcv_config_finalize(&over, (int)sysconf(_SC_NPROCESSORS_ONLN));
    dcv_log_setup((enum dcv_log_level)over.log_level, over.log_json);
    /* Fault injection for tests: the next N execution-buffer allocations fail. */
    const char *fail = getenv("DECONVD_TEST_FAIL_ALLOCS");
    if (fail && atoi(fail) > 0) {
        dcv_engine_inject_alloc_failures(atoi(fail));
        DCV_LOG(DCV_LOG_WARN, "fault injection enabled", KV_I("failing_allocations", atoi(fail)));
    }
    if (do_check) return check(&over);
    int rc = dcv_server_run(&over, err);
    if (rc == DCV_ETIMEDOUT) {
        fflush(NULL);
        _exit(0);                /* libuv's exit handler would join the busy worker */
    }
    if (rc) {
        DCV_LOG(DCV_LOG_ERROR, "cannot start", KV_S("error", err));
        return 1;
    }
    return 0;
}
