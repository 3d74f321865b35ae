/* datatype.h — the tensor datatypes a request may declare, read as float32.
 *
 * KServe v2 names thirteen datatypes (FP32 ... BOOL); the engine computes in
 * float32. This module knows each one's name, element size and range, checks
 * a value given for it (a JSON number already read as float32, or raw
 * little-endian bytes) and rounds it to what the type holds, and writes the
 * message that names the refused value, its position and the range. Pure
 * functions, any thread.
 */
#ifndef DECONVD_DATATYPE_H
#define DECONVD_DATATYPE_H

#include <stdbool.h>
#include <stddef.h>

enum dcv_datatype {
    DCV_DATATYPE_FP32, DCV_DATATYPE_FP64, DCV_DATATYPE_FP16, DCV_DATATYPE_BF16,
    DCV_DATATYPE_INT8, DCV_DATATYPE_INT16, DCV_DATATYPE_INT32, DCV_DATATYPE_INT64,
    DCV_DATATYPE_UINT8, DCV_DATATYPE_UINT16, DCV_DATATYPE_UINT32, DCV_DATATYPE_UINT64,
    DCV_DATATYPE_BOOL,
    DCV_DATATYPE_COUNT
};

/* Why one value was refused. */
enum dcv_datatype_fault {
    DCV_DATATYPE_OK,
    DCV_DATATYPE_WRONG_KIND,    /* a number for BOOL, or anything else for a number */
    DCV_DATATYPE_NONFINITE,
    DCV_DATATYPE_FRACTION,      /* not an integer, for an integer type */
    DCV_DATATYPE_RANGE,
};

/* The datatype spelled name ("FP32"): 0, or DCV_EINVAL for any other
 * string or NULL (no message: the caller names the field). */
int dcv_datatype_parse(const char *name, enum dcv_datatype *t);
const char *dcv_datatype_name(enum dcv_datatype t);
size_t dcv_datatype_size(enum dcv_datatype t);   /* bytes per element in binary data */

/* d as float32 without the undefined conversion of an out-of-range double:
 * beyond float32 it is +-Infinity, which the checks below refuse. */
float dcv_datatype_narrow(double d);

/* Checks *v, given for type t, and rounds it to what t holds (FP16, BF16).
 * Integer ranges are checked on the float32 value: for 32/64-bit types the
 * top of the range is as float32 sees it (2147483647 and 2147483648 are the
 * same float). BOOL takes no number: DCV_DATATYPE_WRONG_KIND. */
enum dcv_datatype_fault dcv_datatype_check(float *v, enum dcv_datatype t);

/* The message for value i of `what` (e.g. "input 'x'"), refused for fault f
 * under type t; got is the value as text ("1e+40", "a string"). Returns
 * DCV_EINVAL (0 for DCV_DATATYPE_OK). */
int dcv_datatype_error(char *err, const char *what, size_t i, enum dcv_datatype_fault f,
                    enum dcv_datatype t, const char *got);

/* dcv_datatype_check over n finite floats in place (nothing to do for FP32 and
 * FP64); the first refused one gives the message. 0 or DCV_EINVAL. */
int dcv_datatype_check_floats(float *v, size_t n, enum dcv_datatype t, const char *what, char *err);

/* count little-endian values of type t at src as float32: borrowed in place
 * (*out = src, *borrowed = true) when may_borrow and they already are
 * aligned little-endian FP32, else converted into a new malloc'd *out.
 * Non-finite floating values are refused, naming the first. 0, or
 * DCV_EINVAL / DCV_ENOMEM with *out NULL. */
int dcv_datatype_from_bytes(const void *src, size_t count, enum dcv_datatype t, bool may_borrow,
                         const char *what, float **out, bool *borrowed, char *err);

#endif
