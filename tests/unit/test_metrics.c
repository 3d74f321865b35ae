/* test_metrics.c — the Prometheus registry: label values are escaped as text
 * format 0.0.4 asks, endpoints come from the closed table (anything else is
 * "other"), series are bounded no matter how many distinct endpoint texts
 * arrive, counters and histograms keep counting through the hash's growth.
 * Expected lines are written out by hand from the format's rules. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/metrics.h"

static const struct dcv_gauges no_gauges;

/* The rendered text (caller frees). */
static char *render(struct dcv_metrics *m)
{
    size_t len = 0;
    char *t = dcv_metrics_render(m, &no_gauges, &len);
    cr_assert_not_null(t);
    cr_assert_eq(strlen(t), len, "render: length %zu, but a NUL at %zu", len, strlen(t));
    return t;
}

/* Lines of t starting with prefix. */
static int count_lines(const char *t, const char *prefix)
{
    int n = 0;
    size_t k = strlen(prefix);
    for (const char *p = t; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += strncmp(p, prefix, k) == 0;
    return n;
}

static bool has_line(const char *t, const char *line)
{
    size_t k = strlen(line);
    for (const char *p = t; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, line, k) && (p[k] == '\n' || p[k] == '\0')) return true;
    return false;
}

Test(metrics, endpoint_table_is_closed)
{
    cr_expect_str_eq(dcv_metrics_endpoint_name(DCV_EP_INFER), "infer");
    cr_expect_str_eq(dcv_metrics_endpoint_name(DCV_EP_OTHER), "other");
    cr_expect_str_eq(dcv_metrics_endpoint_name((enum dcv_endpoint)DCV_EP_COUNT), "other");
    cr_expect_str_eq(dcv_metrics_endpoint_name((enum dcv_endpoint)-1), "other");
    cr_expect_eq(dcv_metrics_endpoint_find("tfs_predict"), DCV_EP_TFS_PREDICT);
    cr_expect_eq(dcv_metrics_endpoint_find("x\"y"), DCV_EP_OTHER);
    cr_expect_eq(dcv_metrics_endpoint_find("INFER"), DCV_EP_OTHER);
    cr_expect_eq(dcv_metrics_endpoint_find("infer "), DCV_EP_OTHER);
    cr_expect_eq(dcv_metrics_endpoint_find(""), DCV_EP_OTHER);
    cr_expect_eq(dcv_metrics_endpoint_find(NULL), DCV_EP_OTHER);
    /* every name round-trips, and names are distinct label values */
    for (int i = 0; i < DCV_EP_COUNT; i++) {
        const char *n = dcv_metrics_endpoint_name((enum dcv_endpoint)i);
        cr_expect_eq(dcv_metrics_endpoint_find(n), i, "%s", n);
        cr_expect(strspn(n, "abcdefghijklmnopqrstuvwxyz_") == strlen(n), "%s", n);
    }
}

Test(metrics, label_values_are_escaped)
{
    struct dcv_metrics *m = dcv_metrics_new();
    cr_assert_not_null(m);
    dcv_metrics_request(m, "a\"b\\c\nd", "infer", 200);
    dcv_metrics_observe(m, DCV_HIST_COMPUTE, "q\"", 0.003);
    char *t = render(m);
    cr_expect(has_line(t, "deconvd_requests_total{model=\"a\\\"b\\\\c\\nd\",endpoint=\"infer\","
                          "code=\"200\"} 1"), "%s", t);
    cr_expect(has_line(t, "deconvd_compute_duration_seconds_bucket{model=\"q\\\"\",le=\"0.005\"} 1"),
              "%s", t);
    cr_expect(has_line(t, "deconvd_compute_duration_seconds_count{model=\"q\\\"\"} 1"), "%s", t);
    /* no raw newline inside a sample line: every line is a comment or
     * starts with a metric name */
    for (const char *p = t; *p; p = strchr(p, '\n') + 1)
        cr_expect(*p == '#' || (*p >= 'a' && *p <= 'z'), "line starts with '%c': %.40s", *p, p);
    free(t);
    dcv_metrics_free(m);
}

Test(metrics, unknown_endpoints_share_one_series)
{
    struct dcv_metrics *m = dcv_metrics_new();
    char ep[32];
    for (int i = 0; i < 50000; i++) {
        snprintf(ep, sizeof ep, "p%d", i);
        dcv_metrics_request(m, "up1d", ep, 404);
    }
    dcv_metrics_request(m, "up1d", "x\"y", 404);
    dcv_metrics_request(m, "up1d", "infer", 200);
    char *t = render(m);
    cr_expect_eq(count_lines(t, "deconvd_requests_total{"), 2, "%s", t);
    cr_expect(has_line(t, "deconvd_requests_total{model=\"up1d\",endpoint=\"other\",code=\"404\"} "
                          "50001"), "%s", t);
    cr_expect(has_line(t, "deconvd_requests_total{model=\"up1d\",endpoint=\"infer\",code=\"200\"} 1"),
              "%s", t);
    free(t);
    dcv_metrics_free(m);
}

/* Many models x every endpoint x a few codes: each series is its own
 * counter, found again after the hash has grown many times. */
Test(metrics, every_series_counts_through_growth)
{
    struct dcv_metrics *m = dcv_metrics_new();
    static const int codes[] = { 200, 400, 404, 503 };
    char name[32], line[160];
    enum { MODELS = 300 };
    for (int round = 1; round <= 3; round++)
        for (int i = 0; i < MODELS; i++)
            for (int e = 0; e < DCV_EP_COUNT; e++)
                for (int c = 0; c < 4; c++) {
                    snprintf(name, sizeof name, "m%d", i);
                    if (c <= round) dcv_metrics_request(m, name, dcv_metrics_endpoint_name(e),
                                                        codes[c]);
                }
    char *t = render(m);
    cr_expect_eq(count_lines(t, "deconvd_requests_total{"), MODELS * DCV_EP_COUNT * 4);
    /* code 200 counted in all 3 rounds, 400 in 3, 404 in 2, 503 in 1 */
    snprintf(line, sizeof line, "deconvd_requests_total{model=\"m%d\",endpoint=\"%s\",code=\"200\"} 3",
             MODELS - 1, dcv_metrics_endpoint_name(DCV_EP_COUNT - 1));
    cr_expect(has_line(t, line), "%s", line);
    snprintf(line, sizeof line, "deconvd_requests_total{model=\"m0\",endpoint=\"other\",code=\"404\"} 2");
    cr_expect(has_line(t, line), "%s", line);
    snprintf(line, sizeof line, "deconvd_requests_total{model=\"m7\",endpoint=\"shape\",code=\"503\"} 1");
    cr_expect(has_line(t, line), "%s", line);
    free(t);
    dcv_metrics_free(m);
}

Test(metrics, histograms_per_model)
{
    struct dcv_metrics *m = dcv_metrics_new();
    dcv_metrics_observe(m, DCV_HIST_REQUEST, "up1d", 0.0002);
    dcv_metrics_observe(m, DCV_HIST_REQUEST, "up1d", 3.0);
    dcv_metrics_request(m, "up2d", "infer", 200);       /* a model with no observation */
    char *t = render(m);
    cr_expect(has_line(t, "deconvd_request_duration_seconds_bucket{model=\"up1d\",le=\"0.0001\"} 0"));
    cr_expect(has_line(t, "deconvd_request_duration_seconds_bucket{model=\"up1d\",le=\"0.00025\"} 1"));
    cr_expect(has_line(t, "deconvd_request_duration_seconds_bucket{model=\"up1d\",le=\"2.5\"} 1"));
    cr_expect(has_line(t, "deconvd_request_duration_seconds_bucket{model=\"up1d\",le=\"10\"} 2"));
    cr_expect(has_line(t, "deconvd_request_duration_seconds_bucket{model=\"up1d\",le=\"+Inf\"} 2"));
    cr_expect(has_line(t, "deconvd_request_duration_seconds_sum{model=\"up1d\"} 3.0002"), "%s", t);
    cr_expect_eq(count_lines(t, "deconvd_request_duration_seconds_count{"), 1);
    cr_expect_eq(count_lines(t, "deconvd_queue_duration_seconds_count{"), 0);
    cr_expect_eq(count_lines(t, "deconvd_request_duration_seconds_bucket{model=\"up2d\""), 0);
    free(t);
    dcv_metrics_free(m);
}

/* A name past the 127 bytes a model name may have is cut, not overrun,
 * and the cut name is one series. */
Test(metrics, long_names_are_cut)
{
    struct dcv_metrics *m = dcv_metrics_new();
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    dcv_metrics_request(m, name, "infer", 200);
    name[200] = '\0';
    dcv_metrics_request(m, name, "infer", 200);
    char *t = render(m);
    char want[200];
    snprintf(want, sizeof want, "deconvd_requests_total{model=\"%.127s\",endpoint=\"infer\","
             "code=\"200\"} 2", name);
    cr_expect(has_line(t, want), "%s", t);
    free(t);
    dcv_metrics_free(m);
}
