-- Which node stored a page last, and where other nodes can ask it for the
-- page (its `peer_url`; NULL when it is not offered as a peer).
ALTER TABLE pages ADD COLUMN stored_by TEXT;
ALTER TABLE pages ADD COLUMN peer_url TEXT;
