-- 004: the routes_sync job (issue 5 "Ops"): `berth-api --sync-routes` asks a
-- node's worker to make its nginx routes agree with the database again, e.g.
-- after restoring a backup. The worker writes what it did into args.result.
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN
    ('create', 'start', 'stop', 'restart', 'delete', 'volume_delete', 'user_delete', 'ssh_keys',
     'routes_sync'));
