/* kserve.h — KServe v2 / Triton inference requests.
 *
 * Decodes the JSON body, the binary tensor extension (a JSON header of
 * Inference-Header-Content-Length bytes followed by raw little-endian
 * tensors) and the shared-memory extension's parameters into a
 * dcv_infer_request (tensor.h). The answers are written by answer.h. Pure
 * functions, any thread.
 */
#ifndef DECONVD_KSERVE_H
#define DECONVD_KSERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "deconvd/tensor.h"

/* KServe v2 infer body. header_len is the Inference-Header-Content-Length
 * value (0 when absent: the whole body is JSON); with binary data, the JSON
 * header is body[0, header_len) and binary inputs follow in input order.
 * Exactly one input is accepted, named anything (reported back), and
 * "outputs" may name one output, under any name (req->output_name: the
 * caller checks both names against the model). Accepted
 * datatypes: FP32, FP64, FP16, BF16, INT8/16/32/64, UINT8/16/32/64, BOOL;
 * all converted to float32. "data" may be flat or nested (row-major), its
 * element count must equal the shape product, and a binary_data_size must
 * equal shape product × element size. The body buffer is modified in place
 * (markers are written over arrays the decoder has consumed), and a binary
 * FP32 input that is 4-byte aligned is not copied: req->input borrows it, so
 * the body must outlive the request. lim (NULL: defaults) bounds tensors and
 * the JSON tree (jsonbody.h). Returns 0 and fills *req (release with
 * dcv_infer_request_release) or DCV_EPARSE / DCV_EINVAL / DCV_ESHAPE /
 * DCV_ETOOBIG / DCV_ENOMEM with a message naming expected vs received.
 * Non-finite numbers (NaN, Infinity, 1e999) are refused.
 *
 * With the shared-memory extension the input may instead name a region
 * (parameters.shared_memory_region + shared_memory_byte_size, which must
 * equal shape product × element size, + optional shared_memory_offset):
 * then req->input_shm is filled and req->input.data stays NULL. A
 * requested output may carry the same parameters (req->output_shm). Only
 * one of "data", binary_data_size and shared_memory_region per input; a
 * byte size or offset without a region, or a region without a byte size,
 * is an error, as in Triton. */
int dcv_kserve_decode(char *body, size_t len, size_t header_len,
                      const struct dcv_decode_limits *lim, struct dcv_infer_request *req,
                      char *err);

/* Reads the input of a decoded request whose input_shm is used from len
 * raw little-endian bytes at src (the resolved region range), converting
 * req->input_datatype to float32 like a binary tensor. With may_borrow, an
 * FP32 input at a 4-byte aligned address is read in place (src must then
 * outlive req); otherwise it is copied. 0, or DCV_EINVAL (len is not
 * shape product × element size, non-finite values) / DCV_ENOMEM with a
 * message. */
int dcv_kserve_decode_raw(struct dcv_infer_request *req, const void *src, size_t len,
                          bool may_borrow, char *err);

#endif
