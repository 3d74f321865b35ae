/* png.h — inference answers as PNG pictures (Accept: image/png).
 *
 * Three steps, each a pure function: the model file's "image" key (or the
 * model's last activation) gives the range of values that maps onto 0..255
 * (a model's dcv_png_spec, parsed at load); the request's Accept header
 * decides between the usual answer and a PNG (dcv_png_negotiate); the
 * output's shape decides whether it is a picture and how a batch is laid
 * out as one grid (dcv_png_layout), which also bounds the encoded size
 * before anything is computed; dcv_png_encode writes the file. Any thread.
 */
#ifndef DECONVD_PNG_H
#define DECONVD_PNG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dcv_activation;
struct dcv_json;

#define DCV_PNG_TYPE "image/png"
#define DCV_PNG_GAP 2          /* pixels between the tiles of a batch's grid */

/* How a model's output becomes pixels: the value range mapped onto 0..255
 * (from the model file's "image": {"range": [lo, hi]}, else from its last
 * activation), and the layout of the output's channel axis. When no range
 * is known, why names what was seen, for the 406 answer. */
struct dcv_png_spec {
    bool has_range;
    double lo, hi;
    bool channels_first;       /* (N, C, H, W) instead of (N, H, W, C) */
    char source[64];           /* "image.range", "activation tanh", or why none */
};

/* Fills *out from the model file's "image" member (NULL or absent: none),
 * the activation that makes the model's output (the default range when
 * "image" gives none: tanh and softsign [-1, 1]; sigmoid, hard_sigmoid,
 * softmax [0, 1]; relu or relu6 with a cap and no negative slope [0, cap];
 * anything else, or NULL when no activation is known to end the model,
 * none) and the layout of its output. 0, or DCV_EINVAL naming the key and
 * the value when "image" is not {"range": [lo, hi]} with finite lo < hi.
 * Any thread; *out holds no pointers. */
int dcv_png_spec_parse(const struct dcv_json *image, const struct dcv_activation *last,
                       bool channels_first, struct dcv_png_spec *out, char *err);

/* Content negotiation (RFC 9110 12.5.1) between a PNG and the answer's
 * other form, the media type `other` ("application/json"): each takes the
 * q-value of the most specific media range in accept that matches it
 * (parameters other than q are ignored; 0 when none matches); NULL, empty
 * or unparseable accept accepts anything. */
enum dcv_png_choice {
    DCV_PNG_OTHER,             /* the other form (preferred, or PNG not acceptable) */
    DCV_PNG_FIRST,             /* PNG preferred, the other form acceptable as a fallback */
    DCV_PNG_ONLY,              /* PNG, or nothing */
    DCV_PNG_NEITHER,           /* neither is acceptable: 406 */
};
/* PNG wins on a higher q, or on an equal q when the range that gave it is
 * more specific (image/png beats the image range, which beats the any-type range);
 * otherwise the other form does. */
enum dcv_png_choice dcv_png_negotiate(const char *accept, const char *other);

/* A picture's geometry: batch tiles of height x width pixels of channels
 * (1 gray, 3 RGB, 4 RGBA) on a grid of rows x cols tiles, DCV_PNG_GAP
 * pixels apart, image_w x image_h pixels in all. */
struct dcv_png_layout {
    struct dcv_png_spec spec;
    int64_t batch, height, width, channels;
    int64_t rows, cols;
    uint32_t image_w, image_h;
};

/* The layout of an output of this shape (4 dims: batch, two spatial, and
 * 1, 3 or 4 channels where spec says). 0, or DCV_ENOTACCEPT with a message
 * saying why it is no picture (its rank, its channels, no range known, too
 * many pixels for a PNG). */
int dcv_png_layout(const struct dcv_png_spec *spec, const int64_t *shape, int ndim,
                   struct dcv_png_layout *out, char *err);

/* Bytes the PNG of l can take at most (zlib's deflateBound for the
 * parameters used, plus the chunks), and the bytes the encoder allocates
 * besides it (zlib's state, a few rows). */
size_t dcv_png_bound(const struct dcv_png_layout *l);
size_t dcv_png_scratch(const struct dcv_png_layout *l);

/* Encodes data (batch * height * width * channels floats, laid out per
 * l->spec) as an 8-bit PNG: v maps to floor((v - lo) * 255 / (hi - lo) +
 * 0.5) clipped to 0..255, NaN to 0; the space between and after tiles is
 * 0 in every channel. *out is a dcv_buf block of *len <= dcv_png_bound(l)
 * bytes (free with dcv_buf_free). `stop` (NULL = never) is looked at every
 * row: seen set, DCV_ECANCELED. 0, or DCV_ENOMEM, DCV_EINTERNAL (the
 * library failed; the message has its words); *out NULL then. */
int dcv_png_encode(const struct dcv_png_layout *l, const float *data, const atomic_bool *stop,
                   char **out, size_t *len, char *err);

#endif
