-- 013: activity that counts (issue 13). Besides proxied HTTP requests, the
-- worker now counts traffic on open WebSockets and SSH sessions (idle.c,
-- activity.c) and a user's snooze (POST /api/v1/instances/{id}/snooze).
-- last_active_kind says which of them last_active_at is; idle_warned_at is
-- when the worker last wrote the idle_warning event, so it warns once per
-- idle period (a warning older than the last activity belongs to an earlier
-- one) and stops only an instance it warned.
ALTER TABLE instances
    ADD COLUMN last_active_kind text
        CHECK (last_active_kind IN ('http', 'websocket', 'ssh', 'snooze')),
    ADD COLUMN idle_warned_at timestamptz;
-- Until now only proxied requests counted.
UPDATE instances SET last_active_kind = 'http' WHERE last_active_at IS NOT NULL;
