/* notify.h — systemd's readiness protocol (sd_notify), without libsystemd.
 *
 * Sends datagrams like "READY=1" to $NOTIFY_SOCKET when it is set; a no-op
 * otherwise. Main/loop thread.
 */
#ifndef DECONVD_NOTIFY_H
#define DECONVD_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=serving 3 models"). Returns 0, or
 * DCV_EIO when the socket is set but cannot be written. */
int dcv_notify(const char *state);

#endif
