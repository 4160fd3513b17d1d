/*
 * authz — the authorisation rules of API.md, one predicate per resource kind
 * (authz.h), used by every handler and by the proxy check. Roles:
 *   admin      everything, on every user's resources -- except reaching another
 *              user's container through /container/ (ACT_PROXY): no implicit access
 *   developer  everything on their own instances, volumes, keys and tokens
 *   viewer     reads their own resources; may reach their own instances'
 *              HTTP ports; manages their own API tokens; nothing else
 */
#include <string.h>

#include "authz.h"

static bool owns(const struct actor *a, const char *owner_id)
{
    return owner_id && strcmp(a->user_id, owner_id) == 0;
}

bool authz_instance(const struct actor *a, enum authz_action act, const char *owner_id)
{
    if (!a || !a->authenticated)
        return false;
    if (act == ACT_PROXY) /* the owner only, whatever the role: admins get no implicit access */
        return owns(a, owner_id);
    if (a->role == ROLE_ADMIN)
        return true;
    if (a->role == ROLE_DEVELOPER)
        return owns(a, owner_id);
    return act == ACT_READ && owns(a, owner_id);
}

bool authz_volume(const struct actor *a, enum authz_action act, const char *owner_id)
{
    if (!a || !a->authenticated || act == ACT_PROXY)
        return false;
    if (a->role == ROLE_ADMIN)
        return true;
    if (a->role == ROLE_DEVELOPER)
        return owns(a, owner_id);
    return act == ACT_READ && owns(a, owner_id);
}

bool authz_template(const struct actor *a, enum authz_action act)
{
    if (!a || !a->authenticated)
        return false;
    if (act == ACT_READ)
        return true;
    return a->role == ROLE_ADMIN && act != ACT_PROXY;
}

bool authz_user(const struct actor *a, enum authz_action act, const char *user_id)
{
    if (!a || !a->authenticated || act == ACT_PROXY)
        return false;
    if (a->role == ROLE_ADMIN)
        return true;
    return act == ACT_READ && owns(a, user_id); /* /auth/me */
}

bool authz_token(const struct actor *a, enum authz_action act, const char *owner_id)
{
    /* Tokens are personal: every role manages its own, nobody else's (API.md: owner). */
    if (!a || !a->authenticated || act == ACT_PROXY || act == ACT_OPERATE)
        return false;
    return owns(a, owner_id);
}

bool authz_ssh_key(const struct actor *a, enum authz_action act, const char *owner_id)
{
    if (!a || !a->authenticated || !owns(a, owner_id))
        return false;
    switch (act) {
    case ACT_READ:
    case ACT_DELETE:
        return true; /* a demoted viewer can still remove an old key */
    case ACT_CREATE:
    case ACT_UPDATE:
        return a->role != ROLE_VIEWER;
    default:
        return false;
    }
}

bool authz_admin(const struct actor *a)
{
    return a && a->authenticated && a->role == ROLE_ADMIN;
}
