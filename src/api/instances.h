/*
 * instances.h — private helpers of the lifecycle handlers (templates.c,
 * instances.c, instance_create.c, instance_rpc.c, volumes.c, jobs.c): object
 * shapes built by PostgreSQL's json_build_object (values never pasted into
 * JSON text), an instance's owner, its events (the jobs row and its push are
 * enqueue.h's).
 */
#ifndef BERTH_API_INSTANCES_H
#define BERTH_API_INSTANCES_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "accounts.h"
#include "api.h"

/* The API's template object of row alias t, as one json column; image_build
 * is the stack's own build of its image (migration 012), null when none. */
#define TEMPLATE_JSON                                                                              \
    "json_build_object('id', t.id, 'name', t.name, 'description', t.description, 'image',"        \
    " t.image, 'http_port', t.http_port, 'proxy_mode', t.proxy_mode, 'ports', t.ports,"           \
    " 'ssh_port', t.ssh_port, 'volumes', t.volumes, 'env', t.env, 'command', t.command,"          \
    " 'cpus', t.cpus, 'memory_mb', t.memory_mb, 'pids_limit', t.pids_limit, 'restart_policy',"    \
    " t.restart_policy, 'idle_timeout_s', t.idle_timeout_s, 'open_path', t.open_path,"           \
    " 'capabilities', t.capabilities, 'disk_mb', t.disk_mb, 'ssh_user', t.ssh_user,"                \
    " 'no_new_privileges', t.no_new_privileges, 'image_build', (SELECT"                            \
    " json_build_object('state', b.state, 'message', b.message, 'started_at', "                   \
    SQL_TS("b.started_at") ", 'finished_at', " SQL_TS("b.finished_at") ", 'updated_at', "          \
    SQL_TS("b.updated_at") ") FROM image_builds b WHERE b.image = t.image),"                        \
    " 'created_at', " SQL_TS("t.created_at")                                                      \
    ", 'updated_at', " SQL_TS("t.updated_at") ")"

/* The job object of row alias j. */
#define JOB_JSON                                                                                   \
    "json_build_object('id', j.id, 'kind', j.kind, 'instance_id', j.instance_id, 'volume_id',"    \
    " j.volume_id, 'status', j.status, 'attempts', j.attempts, 'error', j.error, 'created_at', "   \
    SQL_TS("j.created_at") ", 'started_at', " SQL_TS("j.started_at") ", 'finished_at', "           \
    SQL_TS("j.finished_at") ")"

/* Write a template tmpl_validate() accepted, under id: a new row, an update
 * of row id, or a seed (a new row unless one has its name: ON CONFLICT DO
 * NOTHING). PostgreSQL's answer (the caller clears it), NULL when out of
 * memory. */
enum lc_template_write { LC_TEMPLATE_CREATE, LC_TEMPLATE_UPDATE, LC_TEMPLATE_SEED };
PGresult *lc_template_write(PGconn *pg, const json_t *t, const char *id,
                            enum lc_template_write how);

/* The instance object for instance id (any status), or NULL. New reference. */
json_t *lc_instance_get(PGconn *pg, const char *id);

/* Add urls/ssh to an instance object built by INSTANCE_JSON (in place). */
void lc_instance_finish(json_t *inst);

/* An instance_events row in r's transaction; false after answering 503. */
bool lc_event(struct req *r, const char *instance_id, const char *kind, const char *message)
    __attribute__((warn_unused_result));

/* Owner, status (and node, when not NULL) of instance id, live or deleted;
 * FOR UPDATE when lock (inside r's transaction). 1 found, 0 none (or id is
 * no UUID), -1 after answering 503. */
int lc_instance_owner(struct req *r, const char *id, bool lock, char owner[37],
                      char status[16], char node[64]) __attribute__((warn_unused_result));

/* The job object of job id, or NULL. New reference. */
json_t *lc_job_get(PGconn *pg, const char *id);

#endif
