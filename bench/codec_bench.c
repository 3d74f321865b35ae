/* codec_bench.c — deconvd's float codec vs cJSON's tree, same data, same run.
 *
 * 131072 random float32 values (uniform in [-1, 1), the shape of a
 * dcgan_up input) are
 *   encoded  with dcv_float_array_format, and with cJSON_CreateFloatArray +
 *            cJSON_PrintUnformatted (tree build + print; print alone too);
 *   decoded  from deconvd's own text with dcv_float_array_parse, and with
 *            cJSON_Parse + a walk converting each node to float (parse alone
 *            and parse + walk + delete too).
 * Each variant is timed as the median of repeated runs, interleaved. The
 * round trip format → parse must give back every bit pattern (checked on
 * the random data and on 2^20 random finite bit patterns).
 *
 *   codec_bench [-n COUNT] [-t SECONDS] [-o OUT.json]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "deconvd/floatcodec.h"

#include "benchutil.h"

#define MAX_SAMPLES 20000

enum { ENC_DCV, ENC_CJSON, ENC_CJSON_PRINT, DEC_DCV, DEC_CJSON, DEC_CJSON_PARSE_ONLY,
       DEC_CJSON_FULL, NVAR };
static const char *const names[NVAR] = {
    "encode_dcv", "encode_cjson", "encode_cjson_print_only", "decode_dcv", "decode_cjson",
    "decode_cjson_parse_only", "decode_cjson_with_delete",
};

static volatile size_t g_sink;

static int roundtrip(const float *v, size_t n, char *buf, size_t cap, float *back,
                     size_t *mismatches)
{
    size_t len = dcv_float_array_format(v, n, buf, cap), count = 0, errpos = 0;
    if (len > cap) return -1;
    if (dcv_float_array_parse(buf, buf + len, back, n, &count, 4, NULL, NULL, &errpos) != len ||
        count != n)
        return -1;
    *mismatches = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&v[i], &back[i], sizeof(float)) != 0) ++*mismatches;
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = 131072;
    double secs = 2.0;
    const char *outpath = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "n:t:o:")) != -1) {
        if (opt == 'n') n = (size_t)atol(optarg);
        else if (opt == 't') secs = atof(optarg);
        else if (opt == 'o') outpath = optarg;
        else {
            fprintf(stderr, "usage: codec_bench [-n COUNT] [-t SECONDS] [-o OUT.json]\n");
            return 2;
        }
    }
    size_t cap = n * (DCV_FLOAT_MAXLEN + 1) + 2;
    float *v = malloc(n * sizeof *v), *back = malloc(n * sizeof *back);
    char *text = malloc(cap + 1), *tmp = malloc(cap + 1);
    if (!v || !back || !text || !tmp) return 1;
    bu_fill(v, n, 42);
    size_t text_len = dcv_float_array_format(v, n, text, cap);
    text[text_len] = '\0';

    /* exactness */
    size_t mism = 0, mism_bits = 0, nbits = (size_t)1 << 20;
    int rt_ok = roundtrip(v, n, tmp, cap, back, &mism) == 0 && mism == 0;
    {
        float *bits = malloc(nbits * sizeof *bits), *bback = malloc(nbits * sizeof *bback);
        size_t bcap = nbits * (DCV_FLOAT_MAXLEN + 1) + 2;
        char *bbuf = malloc(bcap);
        uint64_t s = 7;
        for (size_t i = 0; i < nbits; i++) {
            uint32_t u;
            do u = (uint32_t)bu_rand_u64(&s);
            while (((u >> 23) & 0xff) == 0xff);          /* finite only */
            memcpy(&bits[i], &u, sizeof u);
        }
        if (!bits || !bback || !bbuf || roundtrip(bits, nbits, bbuf, bcap, bback, &mism_bits))
            rt_ok = 0;
        rt_ok = rt_ok && mism_bits == 0;
        free(bits);
        free(bback);
        free(bbuf);
    }
    /* cJSON reads our text to the same floats too (decimal → double → float) */
    size_t cjson_mism = 0;
    {
        cJSON *a = cJSON_Parse(text);
        size_t i = 0;
        for (cJSON *e = a ? a->child : NULL; e && i < n; e = e->next, i++)
            if ((float)e->valuedouble != v[i]) cjson_mism++;
        if (!a || i != n) cjson_mism = n;
        cJSON_Delete(a);
    }

    double *t[NVAR];
    size_t cnt[NVAR] = { 0 };
    for (int k = 0; k < NVAR; k++) t[k] = malloc(MAX_SAMPLES * sizeof(double));
    size_t cjson_text_len = 0;
    double t0 = bu_now();
    for (size_t it = 0; it < MAX_SAMPLES && (it < 5 || bu_now() - t0 < secs); it++) {
        for (int k0 = 0; k0 < NVAR; k0++) {
            int k = (int)((it + (size_t)k0) % NVAR);
            double a = bu_now(), b;
            switch (k) {
            case ENC_DCV:
                g_sink += dcv_float_array_format(v, n, tmp, cap);
                b = bu_now();
                break;
            case ENC_CJSON: {
                cJSON *arr = cJSON_CreateFloatArray(v, (int)n);
                char *s = cJSON_PrintUnformatted(arr);
                b = bu_now();
                cjson_text_len = s ? strlen(s) : 0;
                free(s);
                cJSON_Delete(arr);
                break;
            }
            case ENC_CJSON_PRINT: {
                cJSON *arr = cJSON_CreateFloatArray(v, (int)n);
                a = bu_now();
                char *s = cJSON_PrintUnformatted(arr);
                b = bu_now();
                free(s);
                cJSON_Delete(arr);
                break;
            }
            case DEC_DCV: {
                size_t count = 0, errpos = 0;
                g_sink += dcv_float_array_parse(text, text + text_len, back, n, &count, 4, NULL,
                                                NULL, &errpos);
                b = bu_now();
                break;
            }
            case DEC_CJSON:
            case DEC_CJSON_PARSE_ONLY:
            case DEC_CJSON_FULL: {
                cJSON *arr = cJSON_ParseWithLength(text, text_len);
                if (k != DEC_CJSON_PARSE_ONLY) {
                    size_t i = 0;
                    for (cJSON *e = arr ? arr->child : NULL; e && i < n; e = e->next)
                        back[i++] = (float)e->valuedouble;
                }
                if (k == DEC_CJSON_FULL) cJSON_Delete(arr);
                b = bu_now();
                if (k != DEC_CJSON_FULL) cJSON_Delete(arr);
                break;
            }
            default:
                b = a;
            }
            t[k][cnt[k]++] = b - a;
        }
    }
    double med[NVAR];
    for (int k = 0; k < NVAR; k++) med[k] = bu_median(t[k], cnt[k]);
    FILE *f = outpath ? fopen(outpath, "w") : stdout;
    if (!f) return 1;
    fprintf(f, "{\"count\": %zu, \"text_bytes_dcv\": %zu, \"text_bytes_cjson\": %zu, ", n,
            text_len, cjson_text_len);
    for (int k = 0; k < NVAR; k++)
        fprintf(f, "\"%s_median_s\": %.9g, \"%s_samples\": %zu, ", names[k], med[k], names[k],
                cnt[k]);
    fprintf(f, "\"decode_ratio\": %.6g, \"encode_ratio\": %.6g, "
            "\"decode_ratio_parse_only\": %.6g, \"encode_ratio_print_only\": %.6g, "
            "\"decode_dcv_mb_s\": %.6g, \"encode_dcv_mb_s\": %.6g, "
            "\"roundtrip_exact\": %s, \"roundtrip_mismatches\": %zu, "
            "\"roundtrip_random_bits_checked\": %zu, \"roundtrip_random_bits_mismatches\": %zu, "
            "\"cjson_reads_dcv_text_mismatches\": %zu}\n",
            med[DEC_CJSON] / med[DEC_DCV], med[ENC_CJSON] / med[ENC_DCV],
            med[DEC_CJSON_PARSE_ONLY] / med[DEC_DCV], med[ENC_CJSON_PRINT] / med[ENC_DCV],
            text_len / med[DEC_DCV] / 1e6, text_len / med[ENC_DCV] / 1e6,
            rt_ok ? "true" : "false", mism, nbits, mism_bits, cjson_mism);
    if (f != stdout) fclose(f);
    fprintf(stderr, "codec: decode dcv %.3f ms vs cJSON %.3f ms (x%.1f); encode dcv %.3f ms vs "
            "cJSON %.3f ms (x%.1f); round trip %s\n", med[DEC_DCV] * 1e3, med[DEC_CJSON] * 1e3,
            med[DEC_CJSON] / med[DEC_DCV], med[ENC_DCV] * 1e3, med[ENC_CJSON] * 1e3,
            med[ENC_CJSON] / med[ENC_DCV], rt_ok ? "exact" : "FAILED");
    for (int k = 0; k < NVAR; k++) free(t[k]);
    free(v);
    free(back);
    free(text);
    free(tmp);
    return rt_ok ? 0 : 1;
}
