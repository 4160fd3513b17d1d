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
