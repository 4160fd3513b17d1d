-- 008: login throttling by (user name, client address) instead of by name
-- (issue 12). Keys are now 'pair:<addr>|<name>' and 'ip:<addr>'; a key's
-- delay grows with its failures (accounts.c) and its count is forgotten a
-- while after the last failure, so last_failure_at is kept. The old
-- 'user:<name>' rows locked a name from everywhere: they go.
ALTER TABLE login_failures ADD COLUMN last_failure_at timestamptz NOT NULL DEFAULT now();
DELETE FROM login_failures WHERE key LIKE 'user:%';
CREATE INDEX login_failures_last_failure ON login_failures (last_failure_at);
