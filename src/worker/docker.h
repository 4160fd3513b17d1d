/*
 * docker — the Docker Engine API over its unix socket, through one curl multi
 * handle driven by the worker's libev loop (one ev_io per socket curl opens,
 * one ev_timer for curl's timeouts). Nothing here blocks.
 */
#ifndef BERTH_WORKER_DOCKER_H
#define BERTH_WORKER_DOCKER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

/* Engine API version berth speaks; Debian 12's dockerd 20.10 serves 1.41. */
#define DOCKER_API_PREFIX "/v1.41"
/* Largest response body kept in memory; more is an error, never a bigger buffer. */
#define DOCKER_MAX_BODY (8u << 20)

struct docker;

/* Why a request failed before Docker answered (status 0 in the callback). */
enum docker_fail {
    DOCKER_OK,          /* Docker answered: the status says how */
    DOCKER_UNREACHABLE, /* nothing answers on the socket (dockerd not running) */
    DOCKER_TIMED_OUT,   /* no complete answer within the request's timeout */
    DOCKER_TOO_LARGE,   /* the answer was larger than DOCKER_MAX_BODY */
    DOCKER_TRANSPORT,   /* any other failure of the connection */
};

/*
 * Inside a docker_cb or docker_line_cb called with status 0: why the request
 * failed (err says it in words, for people). DOCKER_OK otherwise. Callers test
 * this, never the wording of err.
 */
enum docker_fail docker_failure(const struct docker *d);

/*
 * Called once per request, on the loop. status is the HTTP status, or 0 when
 * the request failed before one arrived (err then says why: socket missing,
 * timed out, response too large). body is NUL-terminated and borrowed for the
 * duration of the call.
 */
typedef void (*docker_cb)(int status, const char *body, size_t len, const char *err, void *arg);

struct docker *docker_new(struct ev_loop *loop, const char *socket_path);
/* Frees everything, including transfers in flight (their callbacks are not called). */
void docker_free(struct docker *d);

/*
 * Start METHOD path (relative to DOCKER_API_PREFIX, e.g. "/containers/json");
 * body is JSON or NULL and is copied. timeout_ms 0 means none (streams).
 * Returns 0 when started (cb will be called exactly once), -1 otherwise.
 */
int docker_request(struct docker *d, const char *method, const char *path, const char *body,
                   long timeout_ms, docker_cb cb, void *arg) __attribute__((warn_unused_result));

/* Longest line of a streamed response (events, pull progress, logs). */
#define DOCKER_MAX_LINE (64u << 10)

/* One complete line of a streamed response, without the newline; borrowed. */
typedef void (*docker_line_cb)(const char *line, size_t len, void *arg);

/*
 * Like docker_request, but the body is handed over line by line as it
 * arrives (no total cap; a line longer than DOCKER_MAX_LINE ends the
 * transfer with an error). done is called once at the end with the status and
 * any unterminated rest of the body. For /events, pulls and logs.
 */
int docker_stream(struct docker *d, const char *method, const char *path, const char *body,
                  long timeout_ms, docker_line_cb line, docker_cb done, void *arg)
    __attribute__((warn_unused_result));

/*
 * path = prefix + "filters=" + the URL-encoded (libcurl's escaper) JSON
 * {"type":[type], "label":["berth.cluster=<cluster>"]}, built with jansson;
 * type NULL leaves that member out. prefix ends in '?' or '&'
 * ("/events?since=12&"). 0, or -1 when out of memory or path is too small
 * (path is then "").
 */
int docker_cluster_filter(char *path, size_t size, const char *prefix, const char *type,
                          const char *cluster);

/* Docker's error message from a response body ({"message": ...}, else its
 * first 200 bytes) into out, on one line. */
void worker_docker_message(const char *body, size_t len, char *out, size_t outlen);

/*
 * Whether this Docker can bound a container's writable layer
 * (HostConfig.StorageOpt size), from its GET /info answer: Driver and the
 * "Backing Filesystem" of DriverStatus. DOCKER_DISK_YES for btrfs, zfs and
 * devicemapper; DOCKER_DISK_MAYBE for overlay2 on xfs (it also needs the
 * pquota mount option, which /info does not show: Docker says at create);
 * DOCKER_DISK_NO for the rest (overlay2 on ext4, vfs, fuse-overlayfs...).
 * desc gets "overlay2 on extfs" (or the driver alone). DOCKER_DISK_UNKNOWN
 * when the body is not an /info answer.
 */
enum docker_disk { DOCKER_DISK_UNKNOWN, DOCKER_DISK_NO, DOCKER_DISK_MAYBE, DOCKER_DISK_YES };
enum docker_disk docker_disk_limits(const char *info, size_t len, char *desc, size_t desclen);

/* True when a create's answer is Docker refusing HostConfig.StorageOpt
 * (dockerd 20.10 on overlay2 without xfs pquota: 500 "--storage-opt is
 * supported only for overlay over xfs with 'pquota' mount option"). */
bool docker_storage_opt_refused(int status, const char *body, size_t len);

/* Requests in flight. */
int docker_inflight(const struct docker *d);

#endif
