-- Purges made on any node, in order; every node applies the ones it has
-- not seen (see src/actors/purge_sync/), so one purge clears every region.
CREATE TABLE purges (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    -- 'url' (host + path and query) or 'tag'.
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    target TEXT NOT NULL,
    -- A soft purge marks entries for revalidation instead of dropping them.
    soft BOOLEAN NOT NULL,
    -- Milliseconds since the Unix epoch.
    created_at BIGINT NOT NULL
);
