-- 003: instance lifecycle (issue 4).
-- A template may be deleted once no live instance uses it; deleted instances keep
-- their history (the spec frozen at create time names the template), so their
-- reference becomes NULL instead of blocking the delete.
ALTER TABLE instances ALTER COLUMN template_id DROP NOT NULL;
ALTER TABLE instances DROP CONSTRAINT instances_template_id_fkey;
ALTER TABLE instances ADD CONSTRAINT instances_template_id_fkey
    FOREIGN KEY (template_id) REFERENCES templates(id) ON DELETE SET NULL;

-- Jobs of one instance, newest first (GET /instances/{id} shows the last one).
CREATE INDEX jobs_instance_created ON jobs(instance_id, created_at DESC);
-- Volumes of a user that are not attached (re-attach on create, volume list).
CREATE INDEX volumes_user_free ON volumes(user_id) WHERE instance_id IS NULL AND deleted_at IS NULL;
