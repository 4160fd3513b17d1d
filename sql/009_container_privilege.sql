-- 009: least privilege for containers (issue 12). Every container drops all
-- Linux capabilities; a template names the few it adds back, from the
-- allow-list of include/berth/template.h (TMPL_CAPABILITIES; the CHECK below
-- is the same list, so a row written around the API cannot widen it).
-- disk_mb bounds the container's writable layer (0: no limit); where the
-- node's storage driver cannot, the worker refuses the create (README,
-- "Security"). Existing templates get none: an image that needs some (sshd)
-- must be given them.
ALTER TABLE templates
    ADD COLUMN capabilities text[] NOT NULL DEFAULT '{}'
        CHECK (capabilities <@ ARRAY['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'SETUID',
                                     'SETGID', 'KILL', 'NET_BIND_SERVICE', 'SYS_CHROOT',
                                     'AUDIT_WRITE', 'SETPCAP']::text[]
               AND array_position(capabilities, NULL) IS NULL),
    ADD COLUMN disk_mb integer NOT NULL DEFAULT 0 CHECK (disk_mb BETWEEN 0 AND 1048576);
