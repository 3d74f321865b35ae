/* tfserving.h — TensorFlow Serving :predict requests.
 *
 * Decodes the REST API's two forms, {"instances": [...]} (row form: each
 * instance one batch element, a nested array or an object whose single key
 * names the input) and {"inputs": ...} (columnar form), into a
 * dcv_infer_request (tensor.h). The answer is written by answer.h. Pure
 * functions, any thread.
 */
#ifndef DECONVD_TFSERVING_H
#define DECONVD_TFSERVING_H

#include <stdbool.h>
#include <stddef.h>

#include "deconvd/tensor.h"

/* TF Serving :predict body of len bytes, modified in place as for
 * dcv_kserve_decode. *row_format (may be NULL) tells which form was used,
 * so the answer can take the same. lim (NULL: defaults) bounds tensors and
 * the JSON tree. 0 and *req filled (release with dcv_infer_request_release)
 * or DCV_EPARSE / DCV_EINVAL / DCV_ESHAPE / DCV_ETOOBIG / DCV_ENOMEM with a
 * message naming the accepted forms or the values seen. */
int dcv_tfserving_decode(char *body, size_t len, const struct dcv_decode_limits *lim,
                         struct dcv_infer_request *req, bool *row_format, char *err);

#endif
