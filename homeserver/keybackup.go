package homeserver

// Server-side key backups. Spec: client-server-api "End-to-End
// Encryption" → "Server-side key backups" (the /room_keys endpoints).
//
// A client that wants history on its next device creates a backup
// version (POST /room_keys/version) with an algorithm and its auth_data
// (for m.megolm_backup.v1.curve25519-aes-sha2 the backup's curve25519
// public key and signatures over it), then uploads each megolm session
// key encrypted to that public key (PUT /room_keys/keys[/{roomId}
// [/{sessionId}]]?version=V). The server never sees a key: session_data
// and auth_data are opaque JSON objects to it. What it does read is the
// metadata of each key, to keep the better of two uploads for the same
// session (store.BackupKey.Replaces: verified first, then the lower
// first_message_index, then the lower forwarded_count).
//
// Versions are decimal strings numbered per user (store/keybackup.go);
// the current version is the newest one not deleted, and keys may only be
// written to it: a write naming another version is refused with 403
// M_WRONG_ROOM_KEYS_VERSION and current_version, so a client that missed
// a new backup learns of it. Reads and deletes of keys work on any version
// that is not deleted. Deleting a version deletes its keys; deleting it
// again succeeds. Every answer about keys carries the version's etag
// (changes whenever its keys change) and count (its number of keys).
//
// NOTSPEC: the spec sets no limits; this server refuses (413 M_TOO_LARGE)
// auth_data over maxBackupAuthDataBytes, session_data over
// maxBackupSessionDataBytes and more than maxBackupSessionsPerRequest keys
// in one upload, and room and session IDs over maxBackupIDBytes (400
// M_INVALID_PARAM). Clients upload in batches of a few hundred keys at
// most; one batch stays well inside max_request_bytes. A version holds at
// most maxBackupKeysPerVersion keys (413 M_TOO_LARGE for an upload that
// would add past it; the spec has no code for a full backup, and this is
// the one clients show as "too large" rather than retry) and a user has
// at most maxBackupVersions versions that are not deleted (403
// M_LIMIT_EXCEEDED on creating another; deleting an old one makes room).
// Deleted versions keep no auth_data.

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// BackupAlgorithmMegolmV1 is the one backup algorithm the spec defines.
// Spec: client-server-api "Backup algorithm:
// m.megolm_backup.v1.curve25519-aes-sha2".
const BackupAlgorithmMegolmV1 = "m.megolm_backup.v1.curve25519-aes-sha2"

// ErrCodeWrongRoomKeysVersion: keys were written to a backup version that
// is not the current one; the error carries current_version. Spec:
// client-server-api "Other error codes".
const ErrCodeWrongRoomKeysVersion = "M_WRONG_ROOM_KEYS_VERSION"

// Limits on what a backup accepts (NOTSPEC, see above).
const (
	// maxBackupAuthDataBytes bounds a version's auth_data (compact JSON,
	// bytes): a public key with signatures by dozens of devices fits.
	maxBackupAuthDataBytes = 16 << 10
	// maxBackupSessionDataBytes bounds one key's session_data (compact
	// JSON, bytes); an encrypted megolm session export is about 1-2 KiB.
	maxBackupSessionDataBytes = 8 << 10
	// maxBackupSessionsPerRequest bounds the keys in one upload.
	maxBackupSessionsPerRequest = 1000
	// maxBackupIDBytes bounds room and session IDs (appendices
	// "Identifier grammar": 255 bytes).
	maxBackupIDBytes = 255
	// maxBackupKeysPerVersion bounds the keys in one version: a megolm
	// session per room per sender device and rotation, so years of heavy
	// use; at ~2 KiB each, 200 MB of disk.
	maxBackupKeysPerVersion = 100_000
	// maxBackupVersions bounds a user's versions that are not deleted.
	// Clients keep one; old ones linger only until deleted.
	maxBackupVersions = 100
)

// keyBackupRoutes is the route group of server-side key backups. It keeps
// no state of its own: everything is in the store.
func keyBackupRoutes(n *Node) ([]Route, error) {
	b := &keyBackups{n: n, maxKeys: maxBackupKeysPerVersion, maxVersions: maxBackupVersions}
	n.SetModule(keyBackupModuleName, b)
	const p = "/_matrix/client/v3/room_keys"
	routes := []Route{
		{Method: "POST", Pattern: p + "/version", Auth: AuthUser, Handle: b.handleCreate},
		{Method: "GET", Pattern: p + "/version", Auth: AuthUser, Handle: b.handleGetVersion},
		{Method: "GET", Pattern: p + "/version/{version}", Auth: AuthUser, Handle: b.handleGetVersion},
		{Method: "PUT", Pattern: p + "/version/{version}", Auth: AuthUser, Handle: b.handleUpdate},
		{Method: "DELETE", Pattern: p + "/version/{version}", Auth: AuthUser, Handle: b.handleDelete},
	}
	for _, keys := range []string{p + "/keys", p + "/keys/{roomId}", p + "/keys/{roomId}/{sessionId}"} {
		routes = append(routes,
			Route{Method: "GET", Pattern: keys, Auth: AuthUser, Handle: b.handleGetKeys},
			Route{Method: "PUT", Pattern: keys, Auth: AuthUser, Handle: b.handlePutKeys},
			Route{Method: "DELETE", Pattern: keys, Auth: AuthUser, Handle: b.handleDeleteKeys})
	}
	return routes, nil
}

// keyBackupModuleName names the keyBackups module (Node.Module).
const keyBackupModuleName = "keybackup"

// keyBackups serves the /room_keys endpoints. It belongs to the node loop.
type keyBackups struct {
	n *Node
	// maxKeys and maxVersions are maxBackupKeysPerVersion and
	// maxBackupVersions (lower in tests).
	maxKeys     int64
	maxVersions int
}

// parseBackupVersion parses a version as this server writes them: a
// positive decimal number without leading zeros. ok is false for anything
// else, which names no version here.
func parseBackupVersion(s string) (v int64, ok bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 || strconv.FormatInt(v, 10) != s {
		return 0, false
	}
	return v, true
}

func formatBackupVersion(v int64) string { return strconv.FormatInt(v, 10) }

// errUnknownBackup is the 404 for a version that does not exist (or was
// deleted).
func errUnknownBackup() *Error { return Errorf(404, ErrCodeNotFound, "unknown backup version") }

// backupAuthData checks auth_data (present, a JSON object, within
// maxBackupAuthDataBytes) and returns it compacted.
func backupAuthData(raw json.RawMessage) ([]byte, error) {
	if !present(raw) {
		return nil, Errorf(400, ErrCodeMissingParam, "auth_data is required")
	}
	if raw[0] != '{' {
		return nil, Errorf(400, ErrCodeBadJSON, "auth_data must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, Errorf(400, ErrCodeBadJSON, "auth_data: %v", err)
	}
	if buf.Len() > maxBackupAuthDataBytes {
		return nil, Errorf(413, ErrCodeTooLarge, "auth_data is %d bytes, more than %d", buf.Len(), maxBackupAuthDataBytes)
	}
	return buf.Bytes(), nil
}

// versionBody is the body of POST /room_keys/version and PUT
// /room_keys/version/{version}.
type versionBody struct {
	Algorithm *string         `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   *string         `json:"version"` // PUT only: must match the path
}

// handleCreate serves POST /room_keys/version: a new backup version,
// which becomes the current one.
func (b *keyBackups) handleCreate(c *Call) {
	var body versionBody
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.Algorithm == nil {
		c.Fail(Errorf(400, ErrCodeMissingParam, "algorithm is required"))
		return
	}
	if *body.Algorithm != BackupAlgorithmMegolmV1 {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "unsupported backup algorithm %q", *body.Algorithm))
		return
	}
	auth, err := backupAuthData(body.AuthData)
	if err != nil {
		c.Fail(err)
		return
	}
	v, err := b.n.store.CreateKeyBackup(c.UserID, *body.Algorithm, auth, b.maxVersions)
	if errors.Is(err, store.ErrBackupLimit) {
		c.Fail(Errorf(403, ErrCodeLimitExceeded, "at most %d backup versions; delete an old one first", b.maxVersions))
		return
	}
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"version": formatBackupVersion(v)})
}

// handleGetVersion serves GET /room_keys/version (the current version)
// and GET /room_keys/version/{version}.
func (b *keyBackups) handleGetVersion(c *Call) {
	var v int64 // 0: the current one
	if s, ok := c.Req.Vars["version"]; ok {
		if v, ok = parseBackupVersion(s); !ok {
			c.Fail(errUnknownBackup())
			return
		}
	}
	kb, err := b.n.store.KeyBackup(c.UserID, v)
	if errors.Is(err, store.ErrNotFound) {
		if v == 0 {
			c.Fail(Errorf(404, ErrCodeNotFound, "no current backup version"))
		} else {
			c.Fail(errUnknownBackup())
		}
		return
	}
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{
		"algorithm": kb.Algorithm,
		"auth_data": json.RawMessage(kb.AuthData),
		"count":     kb.Count,
		"etag":      strconv.FormatInt(kb.ETag, 10),
		"version":   formatBackupVersion(kb.Version),
	})
}

// handleUpdate serves PUT /room_keys/version/{version}: only auth_data
// changes; the algorithm must be the version's, and a version in the body
// must be the one in the path (400 M_INVALID_PARAM otherwise).
func (b *keyBackups) handleUpdate(c *Call) {
	path := c.Req.Vars["version"]
	var body versionBody
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.Algorithm == nil {
		c.Fail(Errorf(400, ErrCodeMissingParam, "algorithm is required"))
		return
	}
	if body.Version != nil && *body.Version != path {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "version %q in the body does not match %q in the path", *body.Version, path))
		return
	}
	auth, err := backupAuthData(body.AuthData)
	if err != nil {
		c.Fail(err)
		return
	}
	v, ok := parseBackupVersion(path)
	if !ok {
		c.Fail(errUnknownBackup())
		return
	}
	kb, err := b.n.store.KeyBackup(c.UserID, v)
	if err != nil {
		c.Fail(unknownBackupIfNotFound(err))
		return
	}
	if *body.Algorithm != kb.Algorithm {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "algorithm %q does not match the backup's %q", *body.Algorithm, kb.Algorithm))
		return
	}
	if err := b.n.store.UpdateKeyBackup(c.UserID, v, auth); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{})
}

// handleDelete serves DELETE /room_keys/version/{version}: the version
// and its keys go; a version deleted before is deleted again without
// error, one that never existed is 404.
func (b *keyBackups) handleDelete(c *Call) {
	v, ok := parseBackupVersion(c.Req.Vars["version"])
	if !ok {
		c.Fail(errUnknownBackup())
		return
	}
	err := b.n.store.DeleteKeyBackup(c.UserID, v)
	if err != nil {
		c.Fail(unknownBackupIfNotFound(err))
		return
	}
	c.Reply(200, map[string]any{})
}

// keyBackupData is a KeyBackupData object as a client sends it; pointers
// tell missing fields from zero ones.
type keyBackupData struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// roomKeyBackup is a RoomKeyBackup object: a room's keys by session ID.
type roomKeyBackup struct {
	Sessions map[string]json.RawMessage `json:"sessions"`
}

// backupKey checks one uploaded KeyBackupData (client-server-api
// "KeyBackupData": every field required, session_data an object) and
// returns it for the store with session_data compacted.
func backupKey(roomID, sessionID string, raw json.RawMessage) (store.BackupKey, error) {
	if err := checkBackupIDs(roomID, sessionID); err != nil {
		return store.BackupKey{}, err
	}
	var d keyBackupData
	if !present(raw) || raw[0] != '{' {
		return store.BackupKey{}, Errorf(400, ErrCodeBadJSON, "key for session %q in %s is not a JSON object", sessionID, roomID)
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return store.BackupKey{}, Errorf(400, ErrCodeBadJSON, "key for session %q in %s: %v", sessionID, roomID, err)
	}
	if d.FirstMessageIndex == nil || d.ForwardedCount == nil || d.IsVerified == nil || !present(d.SessionData) {
		return store.BackupKey{}, Errorf(400, ErrCodeMissingParam,
			"key for session %q in %s needs first_message_index, forwarded_count, is_verified and session_data", sessionID, roomID)
	}
	if *d.FirstMessageIndex < 0 || *d.ForwardedCount < 0 {
		return store.BackupKey{}, Errorf(400, ErrCodeInvalidParam, "key for session %q in %s: negative index or count", sessionID, roomID)
	}
	if d.SessionData[0] != '{' {
		return store.BackupKey{}, Errorf(400, ErrCodeBadJSON, "key for session %q in %s: session_data must be a JSON object", sessionID, roomID)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, d.SessionData); err != nil {
		return store.BackupKey{}, Errorf(400, ErrCodeBadJSON, "key for session %q in %s: %v", sessionID, roomID, err)
	}
	if buf.Len() > maxBackupSessionDataBytes {
		return store.BackupKey{}, Errorf(413, ErrCodeTooLarge, "session_data of session %q in %s is %d bytes, more than %d",
			sessionID, roomID, buf.Len(), maxBackupSessionDataBytes)
	}
	return store.BackupKey{RoomID: roomID, SessionID: sessionID, FirstMessageIndex: *d.FirstMessageIndex,
		ForwardedCount: *d.ForwardedCount, IsVerified: *d.IsVerified, SessionData: buf.Bytes()}, nil
}

// checkBackupIDs checks the shape of a room ID ("!" and at most
// maxBackupIDBytes; room version 12 IDs have no server part) and of a
// session ID (non-empty, at most maxBackupIDBytes).
func checkBackupIDs(roomID, sessionID string) error {
	if len(roomID) < 2 || len(roomID) > maxBackupIDBytes || !strings.HasPrefix(roomID, "!") {
		return Errorf(400, ErrCodeInvalidParam, "%q is not a room ID", roomID)
	}
	if sessionID == "" || len(sessionID) > maxBackupIDBytes {
		return Errorf(400, ErrCodeInvalidParam, "session ID %q: want 1 to %d bytes", sessionID, maxBackupIDBytes)
	}
	return nil
}

// backupQueryVersion is the required version query parameter of the
// /room_keys/keys endpoints; ok is false when it names no version this
// server could have made.
func backupQueryVersion(c *Call) (v int64, ok bool, err error) {
	s := c.Req.Query.Get("version")
	if s == "" {
		return 0, false, Errorf(400, ErrCodeMissingParam, "the version query parameter is required")
	}
	v, ok = parseBackupVersion(s)
	return v, ok, nil
}

// existingBackupVersion is backupQueryVersion for the endpoints that
// read or delete keys: a version that cannot be one of ours is 404.
func existingBackupVersion(c *Call) (int64, error) {
	v, ok, err := backupQueryVersion(c)
	if err == nil && !ok {
		err = errUnknownBackup()
	}
	return v, err
}

// unknownBackupIfNotFound answers a store lookup of a version that is not
// there as 404 unknown backup version.
func unknownBackupIfNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errUnknownBackup()
	}
	return err
}

// uploadedKeys decodes the body of a PUT /room_keys/keys[/{roomId}
// [/{sessionId}]] into keys ordered by room and session (so the writes,
// and a seeded run, are the same whatever the map order).
func uploadedKeys(c *Call) ([]store.BackupKey, error) {
	roomID, sessionID := c.Req.Vars["roomId"], c.Req.Vars["sessionId"]
	rooms := map[string]map[string]json.RawMessage{}
	switch {
	case sessionID != "":
		var raw json.RawMessage
		if err := c.DecodeJSON(&raw); err != nil {
			return nil, err
		}
		rooms[roomID] = map[string]json.RawMessage{sessionID: raw}
	case roomID != "":
		var body roomKeyBackup
		if err := c.DecodeJSON(&body); err != nil {
			return nil, err
		}
		if body.Sessions == nil {
			return nil, Errorf(400, ErrCodeMissingParam, "sessions is required")
		}
		rooms[roomID] = body.Sessions
	default:
		var body struct {
			Rooms map[string]*roomKeyBackup `json:"rooms"`
		}
		if err := c.DecodeJSON(&body); err != nil {
			return nil, err
		}
		if body.Rooms == nil {
			return nil, Errorf(400, ErrCodeMissingParam, "rooms is required")
		}
		for id, r := range body.Rooms {
			if r == nil || r.Sessions == nil {
				return nil, Errorf(400, ErrCodeMissingParam, "room %q: sessions is required", id)
			}
			rooms[id] = r.Sessions
		}
	}
	total := 0
	for _, ss := range rooms {
		total += len(ss)
	}
	if total > maxBackupSessionsPerRequest {
		return nil, Errorf(413, ErrCodeTooLarge, "%d keys in one request, more than %d", total, maxBackupSessionsPerRequest)
	}
	keys := make([]store.BackupKey, 0, total)
	for id, ss := range rooms {
		for sid, raw := range ss {
			k, err := backupKey(id, sid, raw)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b store.BackupKey) int {
		if c := strings.Compare(a.RoomID, b.RoomID); c != 0 {
			return c
		}
		return strings.Compare(a.SessionID, b.SessionID)
	})
	return keys, nil
}

// keysUpdated is the RoomKeysUpdateResponse of writes and deletes.
func keysUpdated(etag, count int64) map[string]any {
	return map[string]any{"etag": strconv.FormatInt(etag, 10), "count": count}
}

// handlePutKeys serves PUT /room_keys/keys[/{roomId}[/{sessionId}]]:
// stores keys in the current version, each replacing the stored key of its
// session only if it is better (store.BackupKey.Replaces). All keys are
// checked before any is stored; one bad key fails the request.
func (b *keyBackups) handlePutKeys(c *Call) {
	v, ok, err := backupQueryVersion(c)
	if err != nil {
		c.Fail(err)
		return
	}
	keys, err := uploadedKeys(c)
	if err != nil {
		c.Fail(err)
		return
	}
	if !ok {
		v = -1 // no version of ours: wrong unless there is none at all
	}
	etag, count, err := b.n.store.PutBackupKeys(c.UserID, v, keys, b.maxKeys)
	switch {
	case errors.Is(err, store.ErrBackupLimit):
		c.Fail(Errorf(413, ErrCodeTooLarge, "a backup version holds at most %d keys", b.maxKeys))
	case errors.Is(err, store.ErrNotCurrentBackup):
		cur, err := b.n.store.KeyBackup(c.UserID, 0)
		if err != nil {
			c.Fail(err)
			return
		}
		c.Fail(Errorf(403, ErrCodeWrongRoomKeysVersion, "backup version %q is not the current one", c.Req.Query.Get("version")).
			With("current_version", formatBackupVersion(cur.Version)))
	case errors.Is(err, store.ErrNotFound):
		c.Fail(Errorf(404, ErrCodeNotFound, "no current backup version"))
	case err != nil:
		c.Fail(err)
	default:
		c.Reply(200, keysUpdated(etag, count))
	}
}

// storedKeyData is a KeyBackupData object as the server answers it.
type storedKeyData struct {
	FirstMessageIndex int64           `json:"first_message_index"`
	ForwardedCount    int64           `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

func storedKey(k store.BackupKey) storedKeyData {
	return storedKeyData{FirstMessageIndex: k.FirstMessageIndex, ForwardedCount: k.ForwardedCount,
		IsVerified: k.IsVerified, SessionData: json.RawMessage(k.SessionData)}
}

// handleGetKeys serves GET /room_keys/keys[/{roomId}[/{sessionId}]] from
// any version that is not deleted: all keys as {"rooms": …}, a room's as
// {"sessions": …} (empty when it has none), or one KeyBackupData (404
// when the session has no key).
func (b *keyBackups) handleGetKeys(c *Call) {
	v, err := existingBackupVersion(c)
	if err != nil {
		c.Fail(err)
		return
	}
	roomID, sessionID := c.Req.Vars["roomId"], c.Req.Vars["sessionId"]
	keys, err := b.n.store.BackupKeys(c.UserID, v, roomID, sessionID)
	if err != nil {
		c.Fail(unknownBackupIfNotFound(err))
		return
	}
	switch {
	case sessionID != "":
		if len(keys) == 0 {
			c.Fail(Errorf(404, ErrCodeNotFound, "no key for session %q in %s", sessionID, roomID))
			return
		}
		c.Reply(200, storedKey(keys[0]))
	case roomID != "":
		sessions := make(map[string]storedKeyData, len(keys))
		for _, k := range keys {
			sessions[k.SessionID] = storedKey(k)
		}
		c.Reply(200, map[string]any{"sessions": sessions})
	default:
		rooms := map[string]map[string]map[string]storedKeyData{}
		for _, k := range keys {
			r := rooms[k.RoomID]
			if r == nil {
				r = map[string]map[string]storedKeyData{"sessions": {}}
				rooms[k.RoomID] = r
			}
			r["sessions"][k.SessionID] = storedKey(k)
		}
		c.Reply(200, map[string]any{"rooms": rooms})
	}
}

// handleDeleteKeys serves DELETE /room_keys/keys[/{roomId}[/{sessionId}]]
// on any version that is not deleted; deleting keys that are not there
// succeeds and leaves the etag alone.
func (b *keyBackups) handleDeleteKeys(c *Call) {
	v, err := existingBackupVersion(c)
	if err != nil {
		c.Fail(err)
		return
	}
	etag, count, err := b.n.store.DeleteBackupKeys(c.UserID, v, c.Req.Vars["roomId"], c.Req.Vars["sessionId"])
	if err != nil {
		c.Fail(unknownBackupIfNotFound(err))
		return
	}
	c.Reply(200, keysUpdated(etag, count))
}
