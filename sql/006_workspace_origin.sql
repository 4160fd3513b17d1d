-- 006: workspaces on an origin of their own (issue 10). A browser signs in
-- on a workspace host with a one-time code minted on the UI origin for one
-- instance; berth exchanges it for a cookie of that host only (berth_ws),
-- bound to that instance and to the UI session it came from: logging out,
-- or the session's end, ends it too.

-- One-time codes: single use (deleted when exchanged), valid for seconds.
CREATE TABLE workspace_codes (
    code_hash     text PRIMARY KEY,              -- sha256 hex of the code
    session_hash  text NOT NULL REFERENCES sessions(token_hash) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    instance_id   uuid NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    path          text NOT NULL,                 -- where the browser goes next
    expires_at    timestamptz NOT NULL
);

CREATE TABLE workspace_sessions (
    token_hash    text PRIMARY KEY,              -- sha256 hex of the cookie value
    session_hash  text NOT NULL REFERENCES sessions(token_hash) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    instance_id   uuid NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workspace_sessions_session ON workspace_sessions(session_hash);
CREATE INDEX workspace_sessions_instance ON workspace_sessions(instance_id);

-- Access taken away (issue 10 item 8): a WebSocket proxied to a workspace
-- was authorised once, when it opened. Every change that takes a user's
-- access away leaves a row here, written by the database itself so that no
-- path (logout, a password change ending sessions, a revoked token, a
-- disabled account, a deleted instance) can forget it; each node's worker
-- reads the new rows every few seconds and cuts the proxied connections to
-- the instances concerned on its node. Rows older than a day go.
CREATE TABLE access_revocations (
    id            bigserial PRIMARY KEY,
    user_id       uuid,                          -- every instance of this user
    instance_id   uuid,                          -- or this one
    reason        text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);

-- One trigger function; each trigger passes its reason.
CREATE FUNCTION berth_revoke() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'instances' THEN
        INSERT INTO access_revocations (instance_id, reason) VALUES (NEW.id, TG_ARGV[0]);
    ELSIF TG_TABLE_NAME = 'users' THEN
        INSERT INTO access_revocations (user_id, reason) VALUES (NEW.id, TG_ARGV[0]);
    ELSE -- sessions, api_tokens: the row went
        INSERT INTO access_revocations (user_id, reason) VALUES (OLD.user_id, TG_ARGV[0]);
    END IF;
    RETURN NULL;
END $$;
-- a session that simply ran out is not a decision; one ended early is
CREATE TRIGGER sessions_revoke AFTER DELETE ON sessions
    FOR EACH ROW WHEN (OLD.expires_at > now()) EXECUTE FUNCTION berth_revoke('session ended');
CREATE TRIGGER api_tokens_revoke AFTER DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION berth_revoke('token revoked');
CREATE TRIGGER users_revoke AFTER UPDATE OF disabled ON users
    FOR EACH ROW WHEN (NEW.disabled AND NOT OLD.disabled) EXECUTE FUNCTION berth_revoke('account disabled');
CREATE TRIGGER instances_revoke AFTER UPDATE OF desired ON instances
    FOR EACH ROW WHEN (NEW.desired = 'deleted' AND OLD.desired <> 'deleted')
    EXECUTE FUNCTION berth_revoke('instance deleted');
