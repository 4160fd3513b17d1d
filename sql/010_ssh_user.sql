-- 010: the user an SSH-enabled template logs in as. berth-worker writes the
-- owner's keys into that user's ~/.ssh/authorized_keys (a Docker exec as that
-- user) and the instance's ssh command names it. Existing templates keep
-- root, which is what they had. The CHECK is tmpl_ssh_user_ok's rule
-- (include/berth/template.h), so a row written around the API cannot hold a
-- name Docker or a shell would read as something else.
ALTER TABLE templates
    ADD COLUMN ssh_user text NOT NULL DEFAULT 'root'
        CHECK (ssh_user ~ '^[A-Za-z_][A-Za-z0-9._-]{0,31}$');
