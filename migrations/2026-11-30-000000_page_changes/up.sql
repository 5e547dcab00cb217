-- A change number for every page: set to one more than the largest on each
-- insert or update, in the same write transaction (writes are serialized by
-- SQLite and, across regions, by LiteFS), so a node reads only the pages
-- changed since the last it saw (see src/actors/manifest_watch.rs).
ALTER TABLE pages ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE pages SET seq = id;
CREATE INDEX pages_seq ON pages (seq);
