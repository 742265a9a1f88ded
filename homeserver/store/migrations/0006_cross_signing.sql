-- 0006: cross-signing keys and signatures (client-server-api "Cross-signing",
-- POST /keys/device_signing/upload and /keys/signatures/upload).

-- The cross-signing keys of local users, one per usage ("master",
-- "self_signing", "user_signing"), as the canonical JSON object the client
-- uploaded; key_id is "ed25519:" and the unpadded base64 public key.
CREATE TABLE cross_signing_keys (
    user_id TEXT NOT NULL,
    usage   TEXT NOT NULL,
    key_id  TEXT NOT NULL,
    json    TEXT NOT NULL,
    PRIMARY KEY (user_id, usage)
);

-- Signatures uploaded through /keys/signatures/upload: signer_id's key
-- signer_key ("ed25519:" and a device ID or a public key) signed
-- target_user's key target_key (a device ID, or a master key's public key).
-- target_pub is the signed ed25519 public key, so that a signature is
-- served only while the key it covers is still the current one.
CREATE TABLE cross_signing_sigs (
    target_user TEXT NOT NULL,
    target_key  TEXT NOT NULL,
    signer_id   TEXT NOT NULL,
    signer_key  TEXT NOT NULL,
    target_pub  TEXT NOT NULL,
    signature   TEXT NOT NULL,
    PRIMARY KEY (target_user, target_key, signer_id, signer_key)
);
CREATE INDEX cross_signing_sigs_by_signer ON cross_signing_sigs (signer_id, signer_key);

-- A remote user's master and self-signing keys from their server's
-- user/keys/query answer (NULL: the user has none), cached together with
-- the device keys in device_lists: the row is fresh only while
-- device_lists.remote_keys is set and fetched_pos matches it.
CREATE TABLE remote_cross_signing (
    user_id      TEXT   NOT NULL PRIMARY KEY,
    master       TEXT,
    self_signing TEXT,
    fetched_pos  BIGINT NOT NULL
);
