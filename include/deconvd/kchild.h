/* kchild.h — the isolated reader of Keras files: dcv_kfile_load's child
 * process and the framed answer it hands back.
 *
 * dcv_kfile_load (kfile.h) forks; the child runs a reader (normally
 * dcv_kfile_read_local) under rlimits and writes one answer into a memfd;
 * the parent waits with a wall-clock deadline and decodes the answer
 * strictly. This header exposes what tests and fuzz harnesses need: the
 * answer codec and a hook that swaps the child's reader.
 *
 * Answer format (host byte order: the writer is a fork of the reader):
 *   "DCVK" u32 version(1) i32 status
 *   status != 0: u32 len, message bytes
 *   status == 0: str keras_version, str backend, u8 has_config,
 *                [u64 len, config bytes], u64 n, n x array
 *   array: str layer, i32 index, str name, i32 ndim, ndim x i64 shape,
 *          u64 count, count x float32
 *   str: u32 len, bytes (no NUL inside; the field's capacity bounds len)
 * Nothing may follow the last array.
 */
#ifndef DECONVD_KCHILD_H
#define DECONVD_KCHILD_H

#include <stddef.h>

#include "deconvd/kfile.h"

/* The child's answer descriptor while a reader runs in it (a test reader
 * may write raw bytes there and _exit). */
#define DCV_KCHILD_ANSWER_FD 3

typedef int (*dcv_kchild_reader_fn)(const char *path, enum dcv_kfile_kind kind,
                                    const char *submodel, const struct dcv_json *json_config,
                                    const struct dcv_kfile_limits *lim, struct dcv_kfile *out,
                                    char *err);

/* Test hook: the reader children run from now on (NULL: dcv_kfile_read_local).
 * Not synchronized: set it while no load runs. */
void dcv_kchild_set_reader(dcv_kchild_reader_fn fn);

/* Decodes an answer of len bytes into *out (release with
 * dcv_kfile_release). Every length is bounded by lim (NULL: defaults) and by
 * what remains of buf; shapes times 4 bytes must equal the data. Returns 0,
 * the child's own status with its message (a reader's refusal), or
 * DCV_EPARSE naming what is malformed; *out is then empty. Pure; any thread. */
int dcv_kchild_decode(const void *buf, size_t len, const struct dcv_kfile_limits *lim,
                      struct dcv_kfile *out, char *err);

/* Encodes a reader's result (status 0: f; else status and msg) to fd.
 * Returns 0 or DCV_EIO / DCV_ENOMEM. For the child and tests. */
int dcv_kchild_encode(int fd, int status, const char *msg, const struct dcv_kfile *f);

#endif
