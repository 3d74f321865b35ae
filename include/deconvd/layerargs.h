/* layerargs.h — reading the arguments of a Keras layer config.
 *
 * Small checked getters shared by the layer classes (layer_*.c): each reads
 * one key of a get_config() dict, accepts the spellings Keras 3 and tf.keras
 * 2 write (null for "the default", a bare int for a tuple), and refuses
 * anything else with DCV_EINVAL and a message "<Layer>: '<key>' must be
 * ..., got ...". Pure functions, any thread; err is DCV_ERRLEN bytes.
 */
#ifndef DECONVD_LAYERARGS_H
#define DECONVD_LAYERARGS_H

#include <stdbool.h>
#include <stdint.h>

struct dcv_json;

/* cfg[key] as a finite number in [lo, hi]; absent or null → def. */
int dcv_layerargs_number(const struct dcv_json *cfg, const char *layer, const char *key,
                         double def, double lo, double hi, double *out, char *err);

/* cfg[key] as a bool; absent or null → def. */
int dcv_layerargs_bool(const struct dcv_json *cfg, const char *layer, const char *key, bool def,
                       bool *out, char *err);

/* cfg["data_format"]: "channels_last" (also absent or null, Keras's
 * image_data_format default) → false, "channels_first" → true. */
int dcv_layerargs_channels_first(const struct dcv_json *cfg, const char *layer, bool *out,
                                 char *err);

/* cfg[key] as n integers in [lo, hi]: a bare integer is repeated n times,
 * else a list of exactly n. Absent or null → def[0..n). */
int dcv_layerargs_ints(const struct dcv_json *cfg, const char *layer, const char *key, int n,
                       const int64_t *def, int64_t lo, int64_t hi, int64_t *out, char *err);

/* A (before, after) pair per spatial axis, as Cropping/ZeroPadding take it:
 * an int (all sides), a list of `axes` ints (symmetric per axis), or a list
 * of `axes` pairs; for axes == 1 a pair (before, after) or an int. Values
 * in [0, hi]. Absent or null → def[0..2*axes). out[2*i], out[2*i+1]. */
int dcv_layerargs_pairs(const struct dcv_json *cfg, const char *layer, const char *key, int axes,
                        const int64_t *def, int64_t hi, int64_t *out, char *err);

#endif
