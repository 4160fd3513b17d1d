-- berth schema, version 1: accounts, templates, instances, ports, volumes,
-- jobs, events, audit, nodes. Applied by `berth-api --migrate sql/` in one
-- transaction; recorded in schema_migrations.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[a-z][a-z0-9-]{0,30}[a-z0-9]$'),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'developer', 'viewer')),
    quota_instances integer NOT NULL DEFAULT 5 CHECK (quota_instances >= 0),
    quota_cpus      numeric(8,2) NOT NULL DEFAULT 4 CHECK (quota_cpus >= 0),
    quota_memory_mb integer NOT NULL DEFAULT 8192 CHECK (quota_memory_mb >= 0),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    token_hash    text PRIMARY KEY,              -- sha256 hex of the cookie value
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ip            text
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          text NOT NULL,
    token_hash    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE ssh_keys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          text NOT NULL,
    type          text NOT NULL,
    public_key    text NOT NULL,
    fingerprint   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, fingerprint)
);

CREATE TABLE nodes (
    name            text PRIMARY KEY,
    docker_endpoint text NOT NULL,
    status          text NOT NULL DEFAULT 'unknown',
    last_seen_at    timestamptz
);

CREATE TABLE templates (
    id             uuid PRIMARY KEY,
    name           text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9-]{0,30}[a-z0-9]$'),
    description    text NOT NULL DEFAULT '',
    image          text NOT NULL,
    http_port      integer CHECK (http_port BETWEEN 1 AND 65535),
    proxy_mode     text NOT NULL DEFAULT 'strip' CHECK (proxy_mode IN ('strip', 'keep')),
    ports          jsonb NOT NULL DEFAULT '{}',
    ssh_port       integer CHECK (ssh_port BETWEEN 1 AND 65535),
    volumes        jsonb NOT NULL DEFAULT '{}',
    env            jsonb NOT NULL DEFAULT '{}',
    command        jsonb,
    cpus           numeric(8,2) NOT NULL DEFAULT 1 CHECK (cpus > 0),
    memory_mb      integer NOT NULL DEFAULT 1024 CHECK (memory_mb > 0),
    pids_limit     integer NOT NULL DEFAULT 512 CHECK (pids_limit > 0),
    restart_policy text NOT NULL DEFAULT 'unless-stopped'
                   CHECK (restart_policy IN ('no', 'on-failure', 'unless-stopped')),
    idle_timeout_s integer NOT NULL DEFAULT 0 CHECK (idle_timeout_s >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE instances (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users(id),
    template_id    uuid NOT NULL REFERENCES templates(id),
    name           text NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{0,30}[a-z0-9]$'),
    node           text NOT NULL,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN
                   ('pending', 'creating', 'running', 'stopping', 'stopped', 'restarting',
                    'deleting', 'deleted', 'error')),
    desired        text NOT NULL DEFAULT 'running'
                   CHECK (desired IN ('running', 'stopped', 'deleted')),
    spec           jsonb NOT NULL,               -- template settings frozen at create time
    cpus           numeric(8,2) NOT NULL,
    memory_mb      integer NOT NULL,
    container_id   text,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    stopped_at     timestamptz,
    deleted_at     timestamptz,
    last_active_at timestamptz
);
-- A live instance name is unique per user; deleted rows keep their history.
CREATE UNIQUE INDEX instances_user_name ON instances(user_id, name) WHERE status <> 'deleted';
CREATE INDEX instances_user ON instances(user_id);
CREATE INDEX instances_node_status ON instances(node, status);

CREATE TABLE instance_ports (
    node           text NOT NULL,
    port           integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    instance_id    uuid NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name           text NOT NULL,                -- 'http', 'ssh' or a template port name
    container_port integer NOT NULL CHECK (container_port BETWEEN 1 AND 65535),
    PRIMARY KEY (node, port),
    UNIQUE (instance_id, name)
);

CREATE TABLE volumes (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users(id),
    template_id    uuid REFERENCES templates(id) ON DELETE SET NULL,
    template_name  text NOT NULL,
    name           text NOT NULL,
    mount_path     text NOT NULL,
    node           text NOT NULL,
    instance_id    uuid REFERENCES instances(id) ON DELETE SET NULL,
    deleted_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX volumes_user ON volumes(user_id);
CREATE INDEX volumes_instance ON volumes(instance_id);

CREATE TABLE jobs (
    id             uuid PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN
                   ('create', 'start', 'stop', 'restart', 'delete', 'volume_delete',
                    'user_delete', 'ssh_keys')),
    node           text NOT NULL,
    instance_id    uuid REFERENCES instances(id) ON DELETE SET NULL,
    volume_id      uuid REFERENCES volumes(id) ON DELETE SET NULL,
    user_id        uuid REFERENCES users(id) ON DELETE SET NULL,
    args           jsonb NOT NULL DEFAULT '{}',
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts       integer NOT NULL DEFAULT 0,
    error          text,
    not_before     timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz
);
CREATE INDEX jobs_open ON jobs(node, status) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_instance ON jobs(instance_id);

CREATE TABLE instance_events (
    id             bigserial PRIMARY KEY,
    instance_id    uuid NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    at             timestamptz NOT NULL DEFAULT now(),
    kind           text NOT NULL,
    message        text NOT NULL DEFAULT ''
);
CREATE INDEX instance_events_instance ON instance_events(instance_id, id);

CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    actor_id       uuid,
    actor          text,                          -- user name at the time, or NULL (anonymous)
    action         text NOT NULL,
    target_type    text,
    target_id      text,
    outcome        text NOT NULL,                 -- 'ok', 'denied', 'invalid', 'error', ...
    ip             text,
    details        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_actor ON audit_log(actor, id);

CREATE TABLE login_failures (
    key            text PRIMARY KEY,              -- 'user:<name>' or 'ip:<addr>'
    failures       integer NOT NULL DEFAULT 0,
    window_start   timestamptz NOT NULL DEFAULT now(),
    locked_until   timestamptz
);
