ALTER TABLE pages DROP COLUMN peer_url;
ALTER TABLE pages DROP COLUMN stored_by;
