/* names.h — Keras's two spellings of one name.
 *
 * Keras accepts "HeNormal", "he_normal" and "HE_NORMAL" alike (classes,
 * initializers, activations), so names are compared ignoring case and
 * underscores. Pure, any thread.
 */
#ifndef DECONVD_NAMES_H
#define DECONVD_NAMES_H

#include <stdbool.h>

/* True when a and b are the same name up to case and underscores. */
bool dcv_names_equal(const char *a, const char *b);

#endif
