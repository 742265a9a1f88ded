-- 0007: the content repository (client-server-api "Content repository").
-- One row per piece of media this server holds: uploaded here (origin is
-- our server name) or fetched from another server and cached. The bytes
-- live in a file under the data directory's media/ folder; file is its
-- name relative to that folder.
CREATE TABLE media (
    origin       TEXT   NOT NULL,
    media_id     TEXT   NOT NULL,
    content_type TEXT   NOT NULL,
    -- The upload's file name; NULL when none was given.
    file_name    TEXT,
    size         BIGINT NOT NULL,
    -- The local user who uploaded it; '' for remote media.
    uploader     TEXT   NOT NULL,
    -- When it was uploaded or cached (ms since the Unix epoch).
    created_ts   BIGINT NOT NULL,
    file         TEXT   NOT NULL,
    PRIMARY KEY (origin, media_id)
);
CREATE INDEX media_by_uploader ON media (uploader, created_ts);

-- Media IDs handed out by POST /_matrix/media/v1/create whose content has
-- not been uploaded yet (client-server-api "POST /_matrix/media/v1/create").
-- The row goes when the content arrives or, after expires_ts, when the
-- next ID is created.
CREATE TABLE media_pending (
    media_id   TEXT   NOT NULL PRIMARY KEY,
    uploader   TEXT   NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX media_pending_by_uploader ON media_pending (uploader, expires_ts);
