/*
 * config — berth's settings: one declarative table (src/common/config.c) that
 * names every key, its type, default, range, which binaries read it and whether
 * SIGHUP reloads it. Values come from the defaults, then the file
 * (`/etc/berth/berth.conf`, or $BERTH_CONFIG) with `key = value` lines, then
 * environment variables BERTH_<KEY>. A bad value stops start-up with one
 * sentence naming the key and what is accepted.
 */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/log.h"

enum config_user { CONF_API = 1, CONF_WORKER = 2, CONF_CLI = 4 };

#define CONF_STR_MAX 512

struct berth_config {
    enum log_level log_level;
    char node[64];
    char cluster[64];
    char pg_dsn[CONF_STR_MAX];
    char redis_url[CONF_STR_MAX];
    /* berth-api */
    char api_socket[CONF_STR_MAX];
    long api_threads;
    char auth_socket[CONF_STR_MAX]; /* "": api_socket with ".auth" appended */
    long auth_threads;
    long exec_threads;  /* long-call pool (longcall.c) */
    long exec_per_user; /* exec calls in flight per user */
    long body_limit;
    long session_idle_s;
    long session_max_s;
    int cookie_secure; /* 0 auto (X-Forwarded-Proto), 1 always, 2 never */
    long heartbeat_ttl_s;
    long port_min, port_max;
    char public_host[256];
    char public_url[300];
    char workspace_host[300];
    long login_max_failures;
    long login_lockout_s;
    char trusted_proxies[CONF_STR_MAX]; /* addresses/CIDRs whose X-Forwarded-* are believed */
    /* berth-worker */
    char docker_socket[CONF_STR_MAX];
    char box_dir[CONF_STR_MAX];
    char nginx_reload[CONF_STR_MAX];
    char nginx_test[CONF_STR_MAX];
    long route_keepalive;
    char host_address[64];
    char network_pool[64];
    long job_max_attempts;
    long job_timeout_s;
    long reconcile_s;
    long orphan_grace_s;
    long idle_check_s;   /* seconds between activity samples and idle passes */
    long idle_warning_s; /* most lead of the idle_warning event (0: none) */
    char container_log_max_size[16]; /* json-file max-size: "10m" */
    long container_log_max_files;    /* json-file max-file */
    /* berthctl */
    char url[CONF_STR_MAX];
};

/*
 * Load the configuration for `who` (one of enum config_user) into cfg.
 * With reload=true only reloadable keys change in cfg; others are validated
 * but left as they are. Returns 0, or -1 with one sentence in err.
 */
int config_load(struct berth_config *cfg, enum config_user who, bool reload, char *err,
                size_t errlen) __attribute__((warn_unused_result));

/* SIGHUP: reload the reloadable keys and the log level, logging the outcome;
 * a bad file keeps the running settings. */
void config_reload(struct berth_config *cfg, enum config_user who);

/* Print every key of `who` with its current value and help (for --help-config). */
void config_dump(const struct berth_config *cfg, enum config_user who);

/*
 * Address lists (trusted_proxies): comma-separated IPv4/IPv6 addresses or
 * CIDRs ("10.0.0.0/8, ::1, 2001:db8::/32"); the empty list names nobody.
 * check: 0, or -1 with a sentence in why. match: is addr (n bytes, no
 * terminator needed) inside one entry; an IPv4-mapped IPv6 address matches
 * its IPv4 entry. Pure.
 */
int config_addr_list_check(const char *list, char *why, size_t whylen);
bool config_addr_list_match(const char *list, const char *addr, size_t n);

#endif
