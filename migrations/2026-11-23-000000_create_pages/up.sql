-- Pages worth caching, shared between regions by LiteFS.
CREATE TABLE pages (
    id INTEGER PRIMARY KEY NOT NULL,
    method TEXT NOT NULL,
    host TEXT NOT NULL,
    path_and_query TEXT NOT NULL,
    -- Milliseconds since the Unix epoch.
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    times_stored BIGINT NOT NULL DEFAULT 1,
    UNIQUE (method, host, path_and_query)
);
