/*
 * docker — the Docker Engine API over its unix socket, through one curl multi
 * handle driven by the worker's libev loop (one ev_io per socket curl opens,
 * one ev_timer for curl's timeouts). Nothing here blocks.
 */
#ifndef BERTH_WORKER_DOCKER_H
#define BERTH_WORKER_DOCKER_H

#include <ev.h>
#include <stddef.h>

/* Engine API version berth speaks; Debian 12's dockerd 20.10 serves 1.41. */
#define DOCKER_API_PREFIX "/v1.41"
/* Largest response body kept in memory; more is an error, never a bigger buffer. */
#define DOCKER_MAX_BODY (8u << 20)

struct docker;

/*
 * Called once per request, on the loop. status is the HTTP status, or 0 when
 * the request failed before one arrived (err then says why: socket missing,
 * timed out, response too large). body is NUL-terminated and borrowed for the
 * duration of the call.
 */
typedef void (*docker_cb)(int status, const char *body, size_t len, const char *err, void *arg);

struct docker *docker_new(struct ev_loop *loop, const char *socket_path);
void docker_free(struct docker *d);

/*
 * Start METHOD path (relative to DOCKER_API_PREFIX, e.g. "/containers/json");
 * body is JSON or NULL and is copied. timeout_ms 0 means none (streams).
 * Returns 0 when started (cb will be called exactly once), -1 otherwise.
 */
int docker_request(struct docker *d, const char *method, const char *path, const char *body,
                   long timeout_ms, docker_cb cb, void *arg) __attribute__((warn_unused_result));

/* Requests in flight. */
int docker_inflight(const struct docker *d);

#endif
