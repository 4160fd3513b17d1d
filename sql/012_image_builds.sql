-- 012: images the stack builds itself (issue 13: the seeded jupyter, desktop
-- and ssh templates come from offline recipes, built in the background after
-- the stack is up). scripts/image-builds.sh writes one row per image
-- reference through `berth-api --image-build`; templates show it as
-- image_build, and a create that finds its image missing waits while the row
-- says queued or building (and its build still reports), and fails with the
-- build's message when it failed. A row only describes a build: the image
-- itself is in each node's Docker.
CREATE TABLE image_builds (
    image text PRIMARY KEY CHECK (length(image) BETWEEN 1 AND 255),
    state text NOT NULL CHECK (state IN ('queued', 'building', 'ready', 'failed')),
    message text NOT NULL DEFAULT '' CHECK (length(message) <= 500),
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
