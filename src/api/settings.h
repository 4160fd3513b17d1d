/*
 * settings — berth-api's configuration as immutable snapshots.
 *
 * A SIGHUP builds a new snapshot beside the running one and publishes it; it
 * never writes into a struct another thread may be reading. Each request
 * thread pins the snapshot that is current when a request begins and reads
 * only it until the request ends (so one request sees one configuration from
 * start to end); the last thread to unpin an old snapshot frees it.
 *
 * Handlers read it through `api_cfg` (api.h), which names the calling
 * thread's pinned snapshot -- or, on a thread that pinned none (main() before
 * and between requests), the current one.
 */
#ifndef BERTH_API_SETTINGS_H
#define BERTH_API_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/config.h"

/* Load the first snapshot (defaults, file, environment; for berth-api) and
 * check the keys that need more than their own range (public_url,
 * workspace_host). 0, or -1 with one sentence in err. main(), before any
 * thread starts. */
int settings_init(char *err, size_t errlen) __attribute__((warn_unused_result));

/* SIGHUP: a new snapshot from the running one with the reloadable keys read
 * again; published when it is valid, else the running one stays and the
 * reason is logged. Any thread (main's signal loop); concurrent calls are
 * serialised. Returns 0 when a new snapshot was published. */
int settings_reload(void);

/* Publish a copy of cfg as the current snapshot, as a reload does (no
 * checks: the caller made cfg). For settings_reload and for tests that run
 * handlers under chosen settings. 0, or -1 when out of memory. */
int settings_publish(const struct berth_config *cfg);

/* The snapshot this thread reads: its pinned one, else the current one.
 * Never NULL after settings_init. The caller must not keep the pointer past
 * settings_unpin() (or, unpinned, past the next reload). */
const struct berth_config *settings_get(void);

/* Pin the current snapshot for this thread (a request begins) / let it go
 * (the request ended or was handed to another thread, which pins its own).
 * Pins do not nest: pinning again first unpins. */
void settings_pin(void);
void settings_unpin(void);

/* Free the current snapshot at exit (tests, leak checkers); no thread may
 * hold a pin. */
void settings_free(void);

#endif
