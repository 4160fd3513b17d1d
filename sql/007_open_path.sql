-- 007: a template's open_path (API.md "Templates"): appended to the
-- workspace's address to open it (noVNC's vnc.html?path=..., a notebook's
-- tree/), placeholders expanded at create time into the instance's spec.
ALTER TABLE templates ADD COLUMN open_path text CHECK (length(open_path) BETWEEN 1 AND 512);
