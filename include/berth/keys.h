/*
 * keys — the names berth uses in Redis, shared by berth-api (producer) and
 * berth-worker (consumer). Redis carries work and live signals only; nothing
 * here is the source of truth.
 */
#ifndef BERTH_KEYS_H
#define BERTH_KEYS_H

/* List of queued job ids for a node; the worker BLMOVEs them into ...:active. */
#define KEY_JOBS_FMT   "berth:jobs:%s"
#define KEY_ACTIVE_FMT "berth:jobs:%s:active"
/* Worker heartbeat, a JSON object, SET with EX heartbeat_ttl_s by the worker. */
#define KEY_HEARTBEAT_FMT "berth:heartbeat:%s"
/* Pub/sub channel of live instance events: berth:events:<instance id>. */
#define KEY_EVENTS_FMT "berth:events:%s"

/* Requests berth-api asks the node's worker to answer at once (logs, stats,
 * exec: only the worker talks to Docker): a list of JSON objects
 * {id, kind, instance_id, deadline_ms, ...}; the answer is RPUSHed to
 * berth:rpc:reply:<id> (EXPIRE 30) and BLPOPed by the asking thread. */
#define KEY_RPC_FMT "berth:rpc:%s"
#define KEY_RPC_REPLY_FMT "berth:rpc:reply:%s"

/* A worker's own figures in Prometheus' text format (job, Docker call and
 * nginx durations, event-stream lag), SET with EX by the worker every few
 * seconds and served by berth-api's GET /metrics beside its own. */
#define KEY_METRICS_FMT "berth:metrics:%s"

/* Hash instance id -> UNIX time of the last proxied request (written by the
 * proxy check, folded into instances.last_active_at by the worker). */
#define KEY_ACTIVITY "berth:activity"

#endif
