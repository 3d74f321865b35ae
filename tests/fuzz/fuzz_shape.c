/* fuzz_shape.c — Keras layer configs and shape inference.
 *
 * Input: a first line of whitespace-separated integers, the input shape
 * (batch first, -1 = unknown; up to 10 are read so wrong ranks are tried
 * too), then a layer as JSON: {"class_name": ..., "config": {...}} or a bare
 * config carrying its own "class_name". The layer is parsed with
 * dcv_layer_parse; a parsed layer must validate as a conv, print a config
 * that parses back, and dcv_layer_output_shape must agree with Keras'
 * deconv_output_length computed here in 128-bit arithmetic, satisfy
 * TensorFlow's SAME/VALID consistency rule and give paddings in the range
 * oneDNN is promised (0 <= before < k_eff, -(s-1) <= after < k_eff).
 */
#include <errno.h>

#include "deconvd/conv.h"
#include "deconvd/json.h"
#include "deconvd/layer.h"
#include "fuzzutil.h"

#define MAX_IN_DIMS 10

__extension__ typedef __int128 i128;

static i128 keras_length(i128 n, i128 k, i128 s, i128 d, enum dcv_padding pad, i128 op)
{
    i128 ke = (k - 1) * d + 1;
    if (op < 0)
        return pad == DCV_PADDING_VALID ? n * s + (ke > s ? ke - s : 0) : n * s;
    i128 p = pad == DCV_PADDING_SAME ? ke / 2 : 0;
    return (n - 1) * s + ke - 2 * p + op;
}

/* Length of the forward convolution of out (TensorFlow's rule). */
static i128 forward_length(i128 out, i128 ke, i128 s, enum dcv_padding pad)
{
    if (pad == DCV_PADDING_SAME) return (out + s - 1) / s;
    return out < ke ? 0 : (out - ke) / s + 1;
}

static void check_output(const struct dcv_layer *l, const int64_t *in, const int64_t *out)
{
    const struct dcv_conv *c = &l->conv;
    int cax = dcv_conv_channel_axis(c), sax = dcv_conv_spatial_axis(c);
    FUZZ_CHECK(out[0] == in[0], "batch %lld -> %lld", (long long)in[0], (long long)out[0]);
    FUZZ_CHECK(out[cax] == c->filters, "channels -> %lld, filters %lld", (long long)out[cax],
               (long long)c->filters);
    int64_t in_sp[DCV_MAX_SPATIAL], out_sp[DCV_MAX_SPATIAL], pl[DCV_MAX_SPATIAL],
        pr[DCV_MAX_SPATIAL];
    bool known = true;
    for (int i = 0; i < c->rank; i++) {
        int64_t n = in[sax + i], o = out[sax + i];
        in_sp[i] = n;
        out_sp[i] = o;
        if (n < 0) {
            FUZZ_CHECK(o == -1, "unknown dim %d gave %lld", i, (long long)o);
            known = false;
            continue;
        }
        i128 want = keras_length(n, c->kernel[i], c->strides[i], c->dilation[i], c->padding,
                                 l->has_output_padding ? l->output_padding[i] : -1);
        FUZZ_CHECK(want == o, "dim %d: output %lld, Keras gives %lld", i, (long long)o,
                   (long long)want);
        FUZZ_CHECK(o >= 1 && o <= DCV_MAX_EXTENT, "dim %d: output %lld accepted", i,
                   (long long)o);
        i128 ke = ((i128)c->kernel[i] - 1) * c->dilation[i] + 1;
        FUZZ_CHECK(forward_length(o, ke, c->strides[i], c->padding) == n,
                   "dim %d: %lld -> %lld is not TF-consistent", i, (long long)n, (long long)o);
    }
    if (!known) return;
    dcv_conv_pads(c, in_sp, out_sp, pl, pr);
    for (int i = 0; i < c->rank; i++) {
        int64_t ke = dcv_conv_effective_kernel(c->kernel[i], c->dilation[i]);
        int64_t full = (in_sp[i] - 1) * c->strides[i] + ke;
        FUZZ_CHECK(pl[i] >= 0 && pl[i] < ke && pr[i] >= -(c->strides[i] - 1) && pr[i] < ke &&
                       full - pl[i] - pr[i] == out_sp[i],
                   "dim %d: pads %lld/%lld for in %lld out %lld (k_eff %lld, s %lld)", i,
                   (long long)pl[i], (long long)pr[i], (long long)in_sp[i], (long long)out_sp[i],
                   (long long)ke, (long long)c->strides[i]);
    }
}

static void check_layer(struct dcv_layer *l, const int64_t *in, int ndim)
{
    char err[DCV_ERRLEN];
    struct dcv_conv c = l->conv;
    if (!c.in_channels) c.in_channels = 1;
    FUZZ_CHECK(dcv_conv_validate(&c, err) == 0, "parsed layer fails validation: %s", err);
    FUZZ_CHECK(dcv_layer_layout(l) != NULL, "no layout");

    char *text = dcv_json_print(l->config);
    FUZZ_CHECK(text != NULL, "normalized config does not print");
    struct dcv_json *again = dcv_json_parse(text, strlen(text), err);
    FUZZ_CHECK(again != NULL, "normalized config is not JSON: %s", err);
    dcv_json_free(again);
    free(text);

    /* The signature is the output shape of the declared input, or unknown. */
    int64_t sin[DCV_MAX_DIMS], sout[DCV_MAX_DIMS], tmp[DCV_MAX_DIMS];
    int nd = c.rank + 2;
    dcv_layer_signature(l, sin, sout);
    if (dcv_layer_output_shape(l, sin, nd, tmp, NULL) == 0) {
        for (int i = 0; i < nd; i++)
            FUZZ_CHECK(tmp[i] == sout[i], "signature output dim %d: %lld vs %lld", i,
                       (long long)sout[i], (long long)tmp[i]);
        check_output(l, sin, sout);
    } else {
        for (int i = 0; i < nd; i++)
            FUZZ_CHECK(sout[i] == -1, "failed signature left dim %d = %lld", i,
                       (long long)sout[i]);
    }

    int64_t out[MAX_IN_DIMS];
    fz_err_init(err);
    int rc = dcv_layer_output_shape(l, in, ndim, out, err);
    FZ_LOG("shape: output_shape %s %s", dcv_error_name(rc), rc ? err : "");
    if (rc) {
        fz_check_error(rc, err, "dcv_layer_output_shape");
        FUZZ_CHECK(rc == DCV_ESHAPE || rc == DCV_EINVAL, "output_shape returned %s",
                   dcv_error_name(rc));
    } else {
        check_output(l, in, out);
    }

    /* Channels learnt later (as from a kernel) must keep shapes consistent. */
    int cax = dcv_conv_channel_axis(&l->conv);
    if (ndim == nd && in[cax] > 0) {
        fz_err_init(err);
        rc = dcv_layer_set_in_channels(l, in[cax], err);
        if (rc) {
            fz_check_error(rc, err, "dcv_layer_set_in_channels");
        } else {
            FUZZ_CHECK(l->conv.in_channels == in[cax], "in_channels not set");
            fz_err_init(err);
            if (dcv_layer_output_shape(l, in, ndim, out, err) == 0) check_output(l, in, out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_copy(data, size);
    size_t line = 0;
    while (line < size && text[line] != '\n') line++;
    int64_t in[MAX_IN_DIMS];
    int ndim = 0;
    char *dims = malloc(line + 1);
    if (!dims) abort();
    memcpy(dims, text, line);
    dims[line] = '\0';
    for (char *p = dims, *q; ndim < MAX_IN_DIMS; p = q) {
        errno = 0;
        long long v = strtoll(p, &q, 10);
        if (q == p) break;
        in[ndim++] = v;
    }
    free(dims);

    char err[DCV_ERRLEN];
    size_t off = line < size ? line + 1 : size;
    fz_err_init(err);
    struct dcv_json *doc = dcv_json_parse(text + off, size - off, err);
    if (doc) {
        const struct dcv_json *cfg = dcv_json_get(doc, "config");
        struct dcv_layer l;
        fz_err_init(err);
        int rc = dcv_layer_parse(dcv_json_string(dcv_json_get(doc, "class_name")),
                                 cfg ? cfg : doc, &l, err);
        FZ_LOG("shape: layer %s %s", dcv_error_name(rc), rc ? err : "");
        if (rc) {
            fz_check_error(rc, err, "dcv_layer_parse");
        } else {
            check_layer(&l, in, ndim);
            dcv_layer_release(&l);
        }
        dcv_json_free(doc);
    }
    free(text);
    return 0;
}
