/*
 * trust.h — checks of what a less trusted local user can influence, before
 * the root worker writes there or signals it (trust.c).
 */
#ifndef BERTH_WORKER_TRUST_H
#define BERTH_WORKER_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * The worker writes snippets nginx loads as configuration, so no one less
 * trusted than the worker may change what a path under box_dir names: dir
 * must be a real directory (not a link), owned by the worker's user or root
 * (own: by the worker's user exactly) and writable by no one else -- except,
 * for box_dir's parent, a sticky directory like /tmp, where no one else can
 * rename box_dir away. false with err naming the directory and the fix.
 */
bool trust_dir(const char *dir, bool own, char *err, size_t errlen);

/* Is pid an nginx master process (its program named nginx, its title "nginx:
 * master process")? Otherwise why says what it is. Reads /proc. */
bool trust_nginx_master(pid_t pid, char *why, size_t whylen);

/* nginx_reload = "signal:/path/nginx.pid": SIGHUP the master directly. The
 * test has just parsed the configuration; `nginx -s reload` would parse it a
 * second time only to find the pid.
 *
 * The pidfile is written by nginx, which runs as a less trusted user than the
 * worker: it is read without following links and its content is never logged,
 * and the pid is signalled only when it is an nginx master -- through a pidfd
 * taken before the check, so a pid reused between check and signal gets
 * nothing (the signal goes to the process checked, or fails). true when
 * signalled; false, logged, otherwise. */
bool trust_signal_master(const char *pidfile);

#endif
