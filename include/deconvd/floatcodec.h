/* floatcodec.h — fast, exact text codec for float32 tensor data.
 *
 * The JSON `data` arrays of tensors are encoded and decoded here, never
 * through the generic JSON tree. Encoding prints the shortest decimal string
 * that parses back to the same float32 (round trip exact); decoding parses
 * JSON numbers correctly rounded to float32 (as strtof would). Pure
 * functions, any thread, no allocation unless stated.
 */
#ifndef DECONVD_FLOATCODEC_H
#define DECONVD_FLOATCODEC_H

#include <stddef.h>

/* Longest text dcv_float_format can write, excluding the NUL. */
#define DCV_FLOAT_MAXLEN 16

/* Writes the shortest round-trip representation of v into buf (at least
 * DCV_FLOAT_MAXLEN + 1 bytes), NUL-terminated; returns its length. JSON-safe
 * output for finite values ("1", "0.1", "-2.5e-08", "3.4028235e+38", "-0");
 * NaN and infinities are written as "NaN", "Infinity", "-Infinity" (the
 * spellings Python's json module reads), which the caller may refuse. */
size_t dcv_float_format(float v, char *buf);

/* Parses one JSON number at p (p < end) into *out, correctly rounded to
 * float32. Returns the number of bytes consumed, or 0 when p does not start
 * a valid JSON number. Values overflowing float32 are rejected (return 0)
 * unless allow_overflow, in which case they become +-inf. Accepts exactly
 * JSON's number grammar (no leading '+', no hex, no "nan"). */
size_t dcv_float_parse(const char *p, const char *end, float *out, int allow_overflow);

/* Decodes a JSON array of numbers, possibly nested (row-major flattening),
 * starting at p (whitespace allowed before '['). Stores up to cap values in
 * out and the total count in *count. Returns bytes consumed, or 0 on a syntax
 * error / non-number element / nesting deeper than max_depth, in which case
 * *errpos is set to the offending offset from p. Nested arrays must be
 * rectangular only if dims != NULL: then dims[0..*ndim) receives the shape
 * implied by the nesting (up to 8 levels) and ragged input is an error. */
size_t dcv_float_array_parse(const char *p, const char *end, float *out, size_t cap,
                             size_t *count, int max_depth, long long *dims, int *ndim,
                             size_t *errpos);

/* Encodes n floats as a flat JSON array "[a,b,...]" into buf of capacity
 * cap; returns the length written (not NUL-terminated), or the length that
 * would be needed if cap is too small (nothing useful written then).
 * A buffer of n * (DCV_FLOAT_MAXLEN + 1) + 2 bytes always suffices. */
size_t dcv_float_array_format(const float *v, size_t n, char *buf, size_t cap);

/* Index of the first NaN or infinity among v[0, n), or n when all are
 * finite: what decides whether floats may be written as JSON at all, and
 * whether raw input floats are accepted. Memory speed (vectorized). */
size_t dcv_float_first_nonfinite(const float *v, size_t n);

#endif
