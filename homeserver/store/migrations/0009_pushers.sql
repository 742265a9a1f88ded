-- 0009: pushers (client-server-api "Push Notifications", POST
-- /pushers/set). One row per (user, app_id, pushkey); the device whose
-- access token set the pusher owns it, and deleting the device (logout,
-- DELETE /devices, deactivation) deletes its pushers.
CREATE TABLE pushers (
    user_id             TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    pushkey             TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    kind                TEXT NOT NULL,
    app_display_name    TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag         TEXT NOT NULL DEFAULT '',
    lang                TEXT NOT NULL,
    data                TEXT NOT NULL,  -- the pusher's data object, JSON
    pushkey_ts          BIGINT NOT NULL, -- when the pushkey was last set, ms since the epoch
    PRIMARY KEY (user_id, app_id, pushkey),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
-- Pushers with the same app_id and pushkey under other users (/pushers/set
-- without append).
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
