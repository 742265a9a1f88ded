package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/id"
)

// TestMautrixKeyBackup is server-side key backup as a client does it,
// with mautrix's key backup calls and its m.megolm_backup.v1 encryption
// over loopback: one device creates a backup and uploads encrypted
// session keys, a second device of the same user finds the backup,
// downloads the keys and decrypts them with the backup key.
func TestMautrixKeyBackup(t *testing.T) {
	srv := startLive(t, t.TempDir(), "127.0.0.1:0")
	ctx := context.Background()
	first := newUser(t, srv.base, "alice")

	priv := make([]byte, 32)
	for i := range priv {
		priv[i] = byte(i + 7)
	}
	bk, err := backup.MegolmBackupKeyFromBytes(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub := id.Ed25519(base64.RawStdEncoding.EncodeToString(bk.PublicKey().Bytes()))
	created, err := first.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1, AuthData: backup.MegolmAuthData{PublicKey: pub}})
	if err != nil {
		t.Fatalf("create backup: %v", err)
	}

	const roomA, roomB = id.RoomID("!a:mx.test"), id.RoomID("!b:mx.test")
	session := func(sessionKey string, fmi int) mautrix.ReqKeyBackupData {
		enc, err := backup.EncryptSessionData(bk, backup.MegolmSessionData{Algorithm: id.AlgorithmMegolmV1,
			SenderKey: "sender-curve25519", SessionKey: sessionKey, ForwardingKeyChain: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(enc)
		if err != nil {
			t.Fatal(err)
		}
		return mautrix.ReqKeyBackupData{FirstMessageIndex: fmi, IsVerified: true, SessionData: raw}
	}
	up, err := first.PutKeysInBackup(ctx, created.Version, &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{
		roomA: {Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{"sA1": session("key-a1", 0), "sA2": session("key-a2", 3)}},
	}})
	if err != nil || up.Count != 2 {
		t.Fatalf("put keys: %+v %v", up, err)
	}
	// A worse copy of sA2 is not stored; a room's upload is.
	worse, err := first.PutKeysInBackupForRoomAndSession(ctx, created.Version, roomA, "sA2", backupDataPtr(session("key-worse", 9)))
	if err != nil || worse.ETag != up.ETag || worse.Count != 2 {
		t.Fatalf("worse key: %+v (before %+v) %v", worse, up, err)
	}
	roomUp, err := first.PutKeysInBackupForRoom(ctx, created.Version, roomB, &mautrix.ReqRoomKeyBackup{
		Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{"sB1": session("key-b1", 0)}})
	if err != nil || roomUp.Count != 3 || roomUp.ETag == up.ETag {
		t.Fatalf("room put: %+v %v", roomUp, err)
	}

	// The second device finds the backup and decrypts every key.
	second, err := mautrix.NewClient(srv.base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password:   "pw-alice-secret", StoreCredentials: true}); err != nil {
		t.Fatalf("second device login: %v", err)
	}
	latest, err := second.GetKeyBackupLatestVersion(ctx)
	if err != nil || latest.Version != created.Version || latest.AuthData.PublicKey != pub || latest.Count != 3 ||
		latest.ETag != roomUp.ETag || latest.Algorithm != id.KeyBackupAlgorithmMegolmBackupV1 {
		t.Fatalf("latest version: %+v %v", latest, err)
	}
	all, err := second.GetKeyBackup(ctx, latest.Version)
	if err != nil {
		t.Fatalf("get keys: %v", err)
	}
	want := map[id.RoomID]map[id.SessionID]string{roomA: {"sA1": "key-a1", "sA2": "key-a2"}, roomB: {"sB1": "key-b1"}}
	if len(all.Rooms) != len(want) {
		t.Fatalf("rooms: %+v", all.Rooms)
	}
	for room, sessions := range want {
		got := all.Rooms[room].Sessions
		if len(got) != len(sessions) {
			t.Fatalf("%s: %+v", room, got)
		}
		for sid, key := range sessions {
			k := got[sid]
			data, err := k.SessionData.Decrypt(bk)
			if err != nil || data.SessionKey != key || !k.IsVerified {
				t.Fatalf("%s %s: %+v %v", room, sid, data, err)
			}
		}
	}
	one, err := second.GetKeyBackupForRoomAndSession(ctx, latest.Version, roomA, "sA2")
	if err != nil || one.FirstMessageIndex != 3 {
		t.Fatalf("one key: %+v %v", one, err)
	}
	if data, err := one.SessionData.Decrypt(bk); err != nil || data.SessionKey != "key-a2" {
		t.Fatalf("one key decrypted: %+v %v", data, err)
	}
	roomKeys, err := second.GetKeyBackupForRoom(ctx, latest.Version, roomB)
	if err != nil || len(roomKeys.Sessions) != 1 {
		t.Fatalf("room keys: %+v %v", roomKeys, err)
	}

	// New auth_data. (mautrix's UpdateKeyBackupVersion sends no body, so
	// the request is made by hand.)
	pub2 := id.Ed25519(base64.RawStdEncoding.EncodeToString([]byte("another-public-key-of-32-bytes!!")))
	if _, err := second.MakeRequest(ctx, http.MethodPut, second.BuildClientURL("v3", "room_keys", "version", latest.Version),
		&mautrix.ReqRoomKeysVersionUpdate[backup.MegolmAuthData]{Algorithm: id.KeyBackupAlgorithmMegolmBackupV1,
			AuthData: backup.MegolmAuthData{PublicKey: pub2}, Version: latest.Version}, nil); err != nil {
		t.Fatalf("update auth_data: %v", err)
	}
	if v, err := first.GetKeyBackupVersion(ctx, created.Version); err != nil || v.AuthData.PublicKey != pub2 {
		t.Fatalf("after update: %+v %v", v, err)
	}

	// A new backup: the first device, still writing to the old one, is
	// told which version is current.
	newer, err := second.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1, AuthData: backup.MegolmAuthData{PublicKey: pub}})
	if err != nil || newer.Version == created.Version {
		t.Fatalf("second backup: %+v %v", newer, err)
	}
	_, err = first.PutKeysInBackupForRoomAndSession(ctx, created.Version, roomA, "sA3", backupDataPtr(session("key-a3", 0)))
	var httpErr mautrix.HTTPError
	if !errors.Is(err, mautrix.MWrongRoomKeysVersion) || !errors.As(err, &httpErr) ||
		httpErr.RespError.ExtraData["current_version"] != string(newer.Version) {
		t.Fatalf("write to the old backup: %v", err)
	}

	// Deletes on the old version, down to nothing.
	if d, err := first.DeleteKeysInBackupForRoomAndSession(ctx, created.Version, roomA, "sA1"); err != nil || d.Count != 2 {
		t.Fatalf("delete session: %+v %v", d, err)
	}
	if d, err := first.DeleteKeysFromBackupForRoom(ctx, created.Version, roomA); err != nil || d.Count != 1 {
		t.Fatalf("delete room: %+v %v", d, err)
	}
	if d, err := first.DeleteKeyBackup(ctx, created.Version); err != nil || d.Count != 0 {
		t.Fatalf("delete all: %+v %v", d, err)
	}
	// Deleting the newer version leaves the old one current again.
	if err := second.DeleteKeyBackupVersion(ctx, newer.Version); err != nil {
		t.Fatalf("delete version: %v", err)
	}
	if _, err := second.GetKeyBackupVersion(ctx, newer.Version); !errors.Is(err, mautrix.MNotFound) {
		t.Fatalf("deleted version: %v", err)
	}
	if v, err := second.GetKeyBackupLatestVersion(ctx); err != nil || v.Version != created.Version || v.Count != 0 {
		t.Fatalf("latest after delete: %+v %v", v, err)
	}
}

// backupDataPtr is d's address, for the single-key upload call.
func backupDataPtr(d mautrix.ReqKeyBackupData) *mautrix.ReqKeyBackupData { return &d }
