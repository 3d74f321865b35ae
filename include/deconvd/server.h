/* server.h — the daemon's lifecycle: start, serve, reload, drain, stop.
 *
 * Runs on the calling (main) thread, which becomes the event-loop thread.
 */
#ifndef DECONVD_SERVER_H
#define DECONVD_SERVER_H

struct dcv_config;

/* Serves until SIGTERM/SIGINT, then drains and returns 0; returns a
 * negative DCV_E* code (with a message in err) when it cannot start.
 * DCV_ETIMEDOUT: drained, but a worker is still computing past
 * drain_timeout_ms and nothing was torn down: the caller exits at once
 * (without running exit handlers, which would wait for that worker). */
int dcv_server_run(const struct dcv_config *cfg, char *err);

#endif
