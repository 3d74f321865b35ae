/* simdjson_floats.cpp — deconvd's float array decoder vs simdjson, same text, same run.
 *
 * The measuring stick for issue 14's codec goal: Debian's libsimdjson-dev
 * (On Demand API, the way its documentation parses a number array: one
 * reused parser, a padded copy of the text made once, iterate the array,
 * get_double() per element, cast to float into a preallocated array).
 * Both decoders read two texts of the same 131072 float32 values
 * (bu_fill(.., 42), as codec_bench):
 *   python   what a Python client sends: json.dumps(x.tolist()) with
 *            separators=(",", ":"), each float32 as the double's repr
 *            (~17 significant digits, see bu_python_repr);
 *   deconvd  what deconvd's encoder writes (shortest float32 text).
 * Rounds are interleaved in rotating order; medians are reported as ns per
 * value, MB/s of text, and deconvd / simdjson throughput (> 1: deconvd
 * faster). Each decoder's result is checked against the source values:
 * deconvd's must be bit-exact on both texts; simdjson's double -> float
 * cast may round twice (counted, not fatal).
 *
 * Built with -O3 -march=native: simdjson's On Demand code is compiled into
 * the caller and picks its SIMD kernel from the compiler's target, so that
 * is how a user gets its best. deconvd's decoder is the library's build.
 *
 *   simdjson_floats [-n COUNT] [-t SECONDS] [-o OUT.json] [-w DIR]
 * -w writes DIR/values.f32 and DIR/python.json so run.py can check the text
 * against Python's own json.dumps.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include <simdjson.h>

extern "C" {
#include "deconvd/floatcodec.h"
}
#include "benchutil.h"

namespace {

enum { DCV_PY, SJ_PY, DCV_DCV, SJ_DCV, NVAR };
const char *const names[NVAR] = { "python_deconvd", "python_simdjson", "deconvd_deconvd",
                                  "deconvd_simdjson" };

volatile size_t g_sink;

/* The array in text as floats into out (capacity n); returns how many, or
 * (size_t)-1 on any error. */
size_t simdjson_decode(simdjson::ondemand::parser &parser, const simdjson::padded_string &text,
                       float *out, size_t n)
{
    simdjson::ondemand::document doc;
    if (parser.iterate(text).get(doc)) return (size_t)-1;
    simdjson::ondemand::array arr;
    if (doc.get_array().get(arr)) return (size_t)-1;
    size_t i = 0;
    for (auto el : arr) {
        double d;
        if (el.get_double().get(d) || i == n) return (size_t)-1;
        out[i++] = (float)d;
    }
    return i;
}

size_t deconvd_decode(const std::string &text, float *out, size_t n)
{
    size_t count = 0, errpos = 0;
    if (dcv_float_array_parse(text.data(), text.data() + text.size(), out, n, &count, 4, NULL,
                              NULL, &errpos) != text.size())
        return (size_t)-1;
    return count;
}

/* Values in out that differ bit-wise from v, or n + 1 if the count is off. */
size_t mismatches(const float *v, const float *out, size_t n, size_t got)
{
    if (got != n) return n + 1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += memcmp(&v[i], &out[i], sizeof(float)) != 0;
    return m;
}

int write_file(const std::string &path, const void *p, size_t len)
{
    FILE *f = fopen(path.c_str(), "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

} // namespace

int main(int argc, char **argv)
{
    size_t n = 131072;
    double secs = 2.0;
    const char *outpath = NULL, *dumpdir = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "n:t:o:w:")) != -1) {
        if (opt == 'n') n = (size_t)atol(optarg);
        else if (opt == 't') secs = atof(optarg);
        else if (opt == 'o') outpath = optarg;
        else if (opt == 'w') dumpdir = optarg;
        else {
            fprintf(stderr, "usage: simdjson_floats [-n COUNT] [-t SECONDS] [-o OUT.json] [-w DIR]\n");
            return 2;
        }
    }
    std::vector<float> v(n), back(n);
    bu_fill(v.data(), n, 42);

    std::string text[2]; /* [0] python, [1] deconvd */
    size_t plen = 0;
    char *py = bu_python_json(v.data(), n, &plen);
    if (!py) return 1;
    text[0].assign(py, plen);
    free(py);
    std::vector<char> enc(n * (DCV_FLOAT_MAXLEN + 1) + 2);
    text[1].assign(enc.data(), dcv_float_array_format(v.data(), n, enc.data(), enc.size()));
    if (dumpdir &&
        (write_file(std::string(dumpdir) + "/values.f32", v.data(), n * sizeof(float)) ||
         write_file(std::string(dumpdir) + "/python.json", text[0].data(), text[0].size()))) {
        fprintf(stderr, "simdjson_floats: cannot write to %s\n", dumpdir);
        return 1;
    }
    /* simdjson wants SIMDJSON_PADDING readable bytes past the text: the
     * copy is made here, once, as a server would read a body into such a
     * buffer */
    simdjson::padded_string padded[2] = { simdjson::padded_string(text[0]),
                                          simdjson::padded_string(text[1]) };
    simdjson::ondemand::parser parser;

    size_t mism[NVAR];
    for (int k = 0; k < NVAR; k++) {
        int t = k >= DCV_DCV;
        size_t got = k % 2 ? simdjson_decode(parser, padded[t], back.data(), n)
                           : deconvd_decode(text[t], back.data(), n);
        mism[k] = mismatches(v.data(), back.data(), n, got);
    }

    std::vector<double> times[NVAR];
    double t0 = bu_now();
    for (size_t it = 0; it < 20000 && (it < 5 || bu_now() - t0 < secs); it++) {
        for (int k0 = 0; k0 < NVAR; k0++) {
            int k = (int)((it + (size_t)k0) % NVAR), t = k >= DCV_DCV;
            double a = bu_now();
            g_sink += k % 2 ? simdjson_decode(parser, padded[t], back.data(), n)
                            : deconvd_decode(text[t], back.data(), n);
            times[k].push_back(bu_now() - a);
        }
    }
    double med[NVAR];
    for (int k = 0; k < NVAR; k++) med[k] = bu_median(times[k].data(), times[k].size());

    FILE *f = outpath ? fopen(outpath, "w") : stdout;
    if (!f) return 1;
    /* stage 1 (structural indexing) runs in the library, dispatched at run
     * time; On Demand's value parsing is inlined here, for the compile target */
    fprintf(f, "{\"count\": %zu, \"simdjson_version\": \"%s\", \"simdjson_stage1\": \"%s\", "
            "\"simdjson_ondemand\": \"%s\", \"text_bytes_python\": %zu, \"text_bytes_deconvd\": %zu, "
            "\"samples\": %zu", n, SIMDJSON_STRINGIFY(SIMDJSON_VERSION),
            simdjson::get_active_implementation()->name().c_str(),
            SIMDJSON_STRINGIFY(SIMDJSON_BUILTIN_IMPLEMENTATION), text[0].size(), text[1].size(),
            times[0].size());
    for (int k = 0; k < NVAR; k++) {
        size_t bytes = text[k >= DCV_DCV].size();
        fprintf(f, ", \"%s_median_s\": %.9g, \"%s_ns_per_value\": %.4g, \"%s_mb_s\": %.6g, "
                "\"%s_mismatches\": %zu", names[k], med[k], names[k], med[k] / (double)n * 1e9,
                names[k], (double)bytes / med[k] / 1e6, names[k], mism[k]);
    }
    int exact = mism[DCV_PY] == 0 && mism[DCV_DCV] == 0;
    fprintf(f, ", \"ratio_python\": %.6g, \"ratio_deconvd\": %.6g, \"deconvd_exact\": %s}\n",
            med[SJ_PY] / med[DCV_PY], med[SJ_DCV] / med[DCV_DCV], exact ? "true" : "false");
    if (f != stdout) fclose(f);
    fprintf(stderr, "simdjson_floats: python text: deconvd %.2f ns/value vs simdjson %.2f (x%.2f); "
            "deconvd text: deconvd %.2f vs simdjson %.2f (x%.2f); deconvd %s\n",
            med[DCV_PY] / (double)n * 1e9, med[SJ_PY] / (double)n * 1e9, med[SJ_PY] / med[DCV_PY],
            med[DCV_DCV] / (double)n * 1e9, med[SJ_DCV] / (double)n * 1e9,
            med[SJ_DCV] / med[DCV_DCV], exact ? "exact" : "NOT EXACT");
    return exact ? 0 : 1;
}
