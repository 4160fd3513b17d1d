/*
 * settings — berth-api's configuration snapshots (settings.h): one mutex
 * guards which snapshot is current and the pin counts; a snapshot itself is
 * never written after it is published, so readers take no lock.
 */
#include "settings.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "berth/log.h"
#include "berth/workspace.h"

struct snapshot {
    struct berth_config cfg;
    int refs; /* pins, plus one while it is the current snapshot; under lock */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t reloading = PTHREAD_MUTEX_INITIALIZER;
/* Before settings_init (unit tests that never load one): all defaults zero. */
static struct snapshot initial = {.refs = 1};
static struct snapshot *current = &initial;
static __thread struct snapshot *pinned;

/* Checks beyond each key's own type and range. */
static int settings_check(const struct berth_config *cfg, char *err, size_t errlen)
{
    if (!ws_public_url_valid(cfg->public_url, err, errlen) ||
        !ws_pattern_valid(cfg->workspace_host, err, errlen))
        return -1;
    return 0;
}

int settings_init(char *err, size_t errlen)
{
    struct snapshot *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory for the settings");
        return -1;
    }
    if (config_load(&s->cfg, CONF_API, false, err, errlen) < 0 ||
        settings_check(&s->cfg, err, errlen) < 0) {
        free(s);
        return -1;
    }
    s->refs = 1;
    pthread_mutex_lock(&lock);
    current = s;
    pthread_mutex_unlock(&lock);
    return 0;
}

/* Drop one reference; free on the last. Under lock. */
static void snapshot_put(struct snapshot *s)
{
    if (s && --s->refs == 0 && s != &initial)
        free(s);
}

int settings_publish(const struct berth_config *cfg)
{
    struct snapshot *s = malloc(sizeof(*s)), *old;
    if (!s)
        return -1;
    s->cfg = *cfg;
    s->refs = 1;
    pthread_mutex_lock(&lock);
    old = current;
    current = s;
    snapshot_put(old);
    pthread_mutex_unlock(&lock);
    return 0;
}

int settings_reload(void)
{
    char err[1024];
    struct berth_config *next = malloc(sizeof(*next));
    int rc = -1;

    if (!next) {
        log_error("reload refused, keeping the running settings: out of memory");
        return -1;
    }
    pthread_mutex_lock(&reloading); /* one reload at a time: each starts from the last */
    *next = *settings_get();
    if (config_load(next, CONF_API, true, err, sizeof(err)) < 0 ||
        settings_check(next, err, sizeof(err)) < 0) {
        log_error("reload refused, keeping the running settings: %s", err);
    } else if (settings_publish(next) < 0) {
        log_error("reload refused, keeping the running settings: out of memory");
    } else {
        log_set_level(next->log_level);
        log_info("settings reloaded");
        rc = 0;
    }
    pthread_mutex_unlock(&reloading);
    free(next);
    return rc;
}

const struct berth_config *settings_get(void)
{
    struct snapshot *s = pinned;
    if (!s) {
        pthread_mutex_lock(&lock);
        s = current;
        pthread_mutex_unlock(&lock);
    }
    return &s->cfg;
}

void settings_pin(void)
{
    settings_unpin();
    pthread_mutex_lock(&lock);
    pinned = current;
    pinned->refs++;
    pthread_mutex_unlock(&lock);
}

void settings_unpin(void)
{
    if (!pinned)
        return;
    pthread_mutex_lock(&lock);
    snapshot_put(pinned);
    pthread_mutex_unlock(&lock);
    pinned = NULL;
}

void settings_free(void)
{
    pthread_mutex_lock(&lock);
    snapshot_put(current);
    current = &initial;
    pthread_mutex_unlock(&lock);
}
