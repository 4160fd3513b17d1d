/*
 * routes — the nginx side of HTTP exposure: per instance with an HTTP port,
 * its location in <box_dir>/box-available/<instance id>.conf and the upstream
 * group it proxies to in <instance id>.upstream (snippet.h), both linked into
 * box-enabled/ (the upstream first, unlinked last); and nginx reloads that
 * are tested first and coalesced.
 *
 * Reloads: a change marks the configuration dirty and arms a short timer; when
 * it fires and no reload is in flight, the worker runs `nginx_test` and then
 * `nginx_reload` as child processes watched by the loop (never waited for).
 * Changes that arrive meanwhile are folded into the next reload, so a burst of
 * changes costs one or two reloads. If the test fails, the snippets written
 * since the last good reload are unlinked from box-enabled/ (the running nginx
 * keeps serving the old configuration), each owner is told through the error
 * callback, and the rest is reloaded.
 *
 * nginx_reload may be a command, or "signal:/path/to/nginx.pid" to send the
 * master SIGHUP directly (one configuration parse fewer per reload).
 * While a reload is in flight (and for a second after the master was told,
 * while it reads box-enabled/), links are not added or removed: such changes
 * wait and go into the next reload, which starts ROUTES_DEBOUNCE_S after that
 * hold at the soonest. Under a stream of changes reload starts are therefore
 * at least 1.25 s apart (plus the test's own time): under one reload a
 * second, however many changes. A link removed under a parsing master
 * would make that reload fail and silently keep the old routes.
 *
 * A snippet exists as long as its instance does, running or not: starting and
 * stopping an instance need no reload (a stopped one gets berth's page).
 */
#ifndef BERTH_WORKER_ROUTES_H
#define BERTH_WORKER_ROUTES_H

#include <ev.h>
#include <stdbool.h>

#include "berth/config.h"
#include "berth/snippet.h"

struct routes;

/* Gather what arrives together into one reload: a change waits this long
 * (seconds) before the test and reload it starts. A create puts its route
 * when its job begins, a few hundred ms before Docker has the container
 * running, so waiting a quarter second costs no one a route and lets a
 * burst's first reload take in much more of it. */
#define ROUTES_DEBOUNCE_S 0.25

/* Called on the loop when nginx refused an instance's snippet. */
typedef void (*routes_error_cb)(const char *instance_id, const char *message, void *arg);

/* cfg is borrowed (nginx_test, nginx_reload, box_dir) and read at each use,
 * so a SIGHUP that changes the commands takes effect at the next reload. */
struct routes *routes_new(struct ev_loop *loop, const struct berth_config *cfg,
                          routes_error_cb on_error, void *arg);
void routes_free(struct routes *r);

/* Create box-available/ and box-enabled/ when missing, and check that box_dir,
 * they and box_dir's parent are directories no one but the worker's user (and
 * root, for the parent) can change: -1 with err naming the directory and the
 * fix otherwise. 0 / -1 (err). */
int routes_prepare(struct routes *r, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Write (or rewrite, when it changed) the snippet of one instance and link it;
 * schedules a reload when anything changed. in->keepalive is ignored: the
 * configured route_keepalive decides whether it has an upstream group. 1 written or linked, 0 already so,
 * -1 with err (refused value, disk error): nothing is linked then. */
int routes_put(struct routes *r, const struct snippet_in *in, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Remove an instance's snippet and link (absent is fine); schedules a reload
 * when anything was removed. */
void routes_remove(struct routes *r, const char *instance_id);

/* Remove every snippet whose instance id is not in keep[0..n), except those
 * whose header names another node (a worker of that node sharing the
 * directory owns them). For the pass that makes the directory agree with the
 * database. Returns how many were removed. */
size_t routes_prune(struct routes *r, const char *const *keep, size_t n);

/* Forget which snippets nginx refused, so the next routes_put of each links
 * it again (an operator fixed what made nginx refuse them). Until then, or
 * until its snippet changes, a refused one stays unlinked. */
void routes_retry(struct routes *r);

/* Reloads done, and reloads refused by the test, since start. */
unsigned long routes_reloads(const struct routes *r);
unsigned long routes_refusals(const struct routes *r);

/* True while a test or reload runs or one is scheduled. */
bool routes_busy(const struct routes *r);

#endif
