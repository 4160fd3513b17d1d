/*
 * sshkeys — a user's SSH public keys in their SSH-enabled containers (API.md
 * "SSH keys": a key added reaches the owner's running instances, a key
 * deleted is removed from them).
 *
 * The keys go in with an exec of `sh -c`, as the template's ssh_user (the spec's;
 * root for a spec from before it existed), into that user's
 * ~/.ssh/authorized_keys: written to a temporary file, then renamed, mode 0600
 * in a 0700 directory (sshd's StrictModes). The keys travel in the exec's
 * environment, never in the command text. They are pushed after every start
 * of an instance whose template has an ssh_port (the file in the container
 * may be stale: keys changed while it was stopped) and by the `ssh_keys` job
 * the API queues when a key is added or deleted. Nothing is passed at create
 * time, so a restarted container never brings back a deleted key.
 *
 * A push that fails (no shell in the image, the container stopped meanwhile)
 * is recorded as an instance event; it does not fail the job or the start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "berth/template.h"
#include "berth/validate.h"
#include "pg.h"
#include "worker.h"

#define PUSH_TIMEOUT_S 20

static const char SCRIPT[] =
    "set -e; umask 077; d=\"${HOME:-/root}/.ssh\"; mkdir -p \"$d\"; chmod 700 \"$d\";"
    " printf '%s' \"$BERTH_SSH_KEYS\" > \"$d/.authorized_keys.berth\";"
    " mv -f \"$d/.authorized_keys.berth\" \"$d/authorized_keys\"";

struct push {
    struct worker *w;
    sshkeys_cb cb;
    void *arg;
    int left;
    int failed;
};

struct one {
    struct push *p;
    char instance_id[37];
};

static void on_logged(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("ssh keys: event not recorded: %s", err);
}

static void one_done(struct push *p)
{
    if (--p->left > 0)
        return;
    if (p->cb)
        p->cb(p->failed, p->arg);
    free(p);
}

static void on_exec(const struct dexec_result *r, void *arg)
{
    struct one *o = arg;
    struct push *p = o->p;
    char why[700] = "";
    if (r->failed)
        snprintf(why, sizeof(why), "Docker said HTTP %d %s", r->status, r->err ? r->err : "");
    else if (r->timed_out)
        snprintf(why, sizeof(why), "the command did not finish within %d s", PUSH_TIMEOUT_S);
    else if (!r->has_exit_code || r->exit_code != 0)
        snprintf(why, sizeof(why), "the command exited with %ld: %.300s",
                 r->has_exit_code ? r->exit_code : -1L, r->output);
    if (why[0]) {
        char msg[800];
        const char *q[2] = {o->instance_id, msg};
        snprintf(msg, sizeof(msg), "SSH keys could not be written into the container: %s", why);
        log_warn("instance %s: %s", o->instance_id, msg);
        if (pg_query(p->w->pg,
                     "INSERT INTO instance_events (instance_id, kind, message) SELECT $1,"
                     " 'ssh_keys', $2 WHERE EXISTS (SELECT 1 FROM instances WHERE id = $1)",
                     2, q, on_logged, NULL) < 0)
            log_warn("instance %s: ssh key event not recorded", o->instance_id);
        p->failed++;
    } else {
        log_debug("instance %s: SSH keys written", o->instance_id);
    }
    free(o);
    one_done(p);
}

static void on_rows(PGresult *res, const char *err, void *arg)
{
    struct push *p = arg;
    json_t *cmd = json_pack("[s, s, s]", "/bin/sh", "-c", SCRIPT);
    if (err) {
        log_warn("ssh keys: cannot read the instances: %s", err);
        p->failed++;
    }
    p->left = 1; /* held until every exec is on its way */
    for (int i = 0; !err && cmd && i < PQntuples(res); i++) {
        const char *iid = PQgetvalue(res, i, 0);
        char container[64];
        struct one *o;
        json_t *env;
        const char *user = PQgetvalue(res, i, 2);
        if (!valid_uuid(iid))
            continue;
        /* root as uid 0: Docker needs no passwd entry for a number, and an
         * image without /etc/passwd took root's keys before ssh_user existed */
        if (!tmpl_ssh_user_ok(user) || strcmp(user, "root") == 0)
            user = "0";
        o = calloc(1, sizeof(*o));
        env = json_array();
        if (!o || !env) {
            free(o);
            json_decref(env);
            p->failed++;
            continue;
        }
        o->p = p;
        snprintf(o->instance_id, sizeof(o->instance_id), "%s", iid);
        snprintf(container, sizeof(container), "berth-%s", iid);
        /* a value of validated one-line keys: nothing to escape */
        json_array_append_new(env, json_sprintf("BERTH_SSH_KEYS=%s", PQgetvalue(res, i, 1)));
        p->left++;
        if (dexec_run(p->w, container, user, cmd, env, PUSH_TIMEOUT_S, on_exec, o) < 0) {
            p->left--;
            p->failed++;
            free(o);
        }
        json_decref(env);
    }
    json_decref(cmd);
    one_done(p);
}

int sshkeys_push(struct worker *w, const char *user_id, const char *instance_id, sshkeys_cb cb,
                 void *arg)
{
    const char *params[3] = {w->cfg->node, user_id, instance_id};
    struct push *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    p->w = w;
    p->cb = cb;
    p->arg = arg;
    if (pg_query(w->pg,
                 "SELECT i.id, coalesce((SELECT string_agg(k.public_key, E'\\n' ORDER BY"
                 " k.created_at, k.id) || E'\\n' FROM ssh_keys k WHERE k.user_id = i.user_id),"
                 " ''), coalesce(i.spec->>'ssh_user', 'root') FROM instances i WHERE i.node = $1 AND i.status = 'running' AND"
                 " jsonb_typeof(i.spec->'ssh_port') = 'number' AND (i.user_id = $2::uuid OR"
                 " i.id = $3::uuid)",
                 3, params, on_rows, p) < 0) {
        free(p);
        return -1;
    }
    return 0;
}
