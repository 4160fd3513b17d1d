/*
 * authz.h — may the actor do it? One predicate per resource kind (authz.c),
 * used by every handler and by the nginx proxy check; handlers never compare
 * roles themselves. Pure functions of the actor: any thread.
 */
#ifndef BERTH_API_AUTHZ_H
#define BERTH_API_AUTHZ_H

#include <stdbool.h>

#include "auth.h"

enum authz_action {
    ACT_READ,    /* view the resource */
    ACT_CREATE,  /* create one (owner_id: the future owner) */
    ACT_UPDATE,  /* change its settings */
    ACT_DELETE,  /* remove it */
    ACT_OPERATE, /* start, stop, restart, exec, logs follow */
    ACT_PROXY,   /* reach the instance's HTTP port through /container/ */
};

/* The authorisation functions: (actor, action, owner of the resource) -> allowed.
 * owner_id is the owning user's id, or NULL for resources nobody owns. */
bool authz_instance(const struct actor *a, enum authz_action act, const char *owner_id);
bool authz_volume(const struct actor *a, enum authz_action act, const char *owner_id);
bool authz_template(const struct actor *a, enum authz_action act);
bool authz_user(const struct actor *a, enum authz_action act, const char *user_id);
bool authz_token(const struct actor *a, enum authz_action act, const char *owner_id);
bool authz_ssh_key(const struct actor *a, enum authz_action act, const char *owner_id);
bool authz_admin(const struct actor *a); /* audit, stats, nodes */


#endif
