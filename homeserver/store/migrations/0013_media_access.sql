-- 0013: last access of cached remote media, so the cache
-- (media.remote_cache_bytes) can drop the least recently used items.
-- Rows from before this step count as last used when they were cached.
ALTER TABLE media ADD COLUMN last_access_ts BIGINT NOT NULL DEFAULT 0;
UPDATE media SET last_access_ts = created_ts;
CREATE INDEX media_remote_by_access ON media (last_access_ts) WHERE uploader = '';
