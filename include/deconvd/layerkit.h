/* layerkit.h — pieces that several layer classes (layer_*.c) share as
 * registry functions: element counts, per-element work, the identity run.
 * Pure functions over shapes and buffers, any thread.
 */
#ifndef DECONVD_LAYERKIT_H
#define DECONVD_LAYERKIT_H

#include <stdatomic.h>
#include <stdint.h>

#include "deconvd/layers.h"

/* Product of the dims (unknown dims count as 0), saturating at UINT64_MAX. */
uint64_t dcv_layerkit_elems(const struct dcv_shape *s);

/* As dcv_layer_class.work: one value operation per input element / none. */
uint64_t dcv_layerkit_work_elems(const void *state, const struct dcv_shape *in);
uint64_t dcv_layerkit_no_work(const void *state, const struct dcv_shape *in);

/* As dcv_layer_class.run for identities: out = in (nothing when they are
 * the same buffer). Never fails. */
int dcv_layerkit_copy_run(const void *state, const float *in, const struct dcv_shape *is,
                          float *out, const struct dcv_shape *os, const atomic_bool *stop,
                          char *err);

#endif
