-- 0010: server-side key backups (client-server-api "End-to-End Encryption"
-- → "Server-side key backups", /room_keys/version and /room_keys/keys).

-- A user's backup versions, numbered 1, 2, … per user in creation order;
-- the current one is the newest not deleted. A deleted version keeps its
-- row (deleted = TRUE, no keys) so its number is never reused and a second
-- DELETE still succeeds. auth_data is the algorithm's JSON object; etag
-- counts the changes to the version's keys and key_count is their number.
CREATE TABLE key_backup_versions (
    user_id   TEXT    NOT NULL,
    version   BIGINT  NOT NULL,
    algorithm TEXT    NOT NULL,
    auth_data TEXT    NOT NULL,
    etag      BIGINT  NOT NULL,
    key_count BIGINT  NOT NULL,
    deleted   BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, version)
);

-- The backed-up megolm session keys (KeyBackupData): the metadata the
-- server compares to decide whether an upload replaces the stored key, and
-- session_data, the encrypted key as the client's JSON object.
CREATE TABLE key_backup_keys (
    user_id             TEXT    NOT NULL,
    version             BIGINT  NOT NULL,
    room_id             TEXT    NOT NULL,
    session_id          TEXT    NOT NULL,
    first_message_index BIGINT  NOT NULL,
    forwarded_count     BIGINT  NOT NULL,
    is_verified         BOOLEAN NOT NULL,
    session_data        TEXT    NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
