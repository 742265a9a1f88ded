package gateway

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxmesh/mxmesh/clock"
	mxevent "github.com/mxmesh/mxmesh/homeserver/event"
)

// signedDeviceKeys builds cli's device keys, self-signed with a fresh
// ed25519 key, in mautrix's own type.
func signedDeviceKeys(t *testing.T, cli *mautrix.Client, seed uint64) *mautrix.DeviceKeys {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(clock.SeededRNG(seed))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawStdEncoding.EncodeToString(pub)
	obj, err := json.Marshal(map[string]any{"user_id": cli.UserID, "device_id": cli.DeviceID,
		"algorithms": []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
		"keys":       map[string]string{"ed25519:" + string(cli.DeviceID): b64, "curve25519:" + string(cli.DeviceID): b64}})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := mxevent.SignJSON(obj, string(cli.UserID), "ed25519:"+string(cli.DeviceID), priv)
	if err != nil {
		t.Fatal(err)
	}
	var dk mautrix.DeviceKeys
	if err := json.Unmarshal(signed, &dk); err != nil {
		t.Fatal(err)
	}
	return &dk
}

// TestMautrixKeysToDevicePresence drives the key, to-device and presence
// endpoints with mautrix's request and response types over loopback.
// mautrix's Olm/Megolm machine itself runs against the server in
// http_mautrix_olm_test.go (build tag goolm).
func TestMautrixKeysToDevicePresence(t *testing.T) {
	srv := startLive(t, t.TempDir(), "127.0.0.1:0")
	ctx := context.Background()
	alice, bob := newUser(t, srv.base, "alice"), newUser(t, srv.base, "bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	first, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	since := first.NextBatch

	dk := signedDeviceKeys(t, alice, 21)
	up, err := alice.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: dk, OneTimeKeys: map[id.KeyID]mautrix.OneTimeKey{
		id.NewKeyID(id.KeyAlgorithmSignedCurve25519, "AAAA"): {Key: "otk-a"}}})
	if err != nil {
		t.Fatalf("upload keys: %v", err)
	}
	if up.OneTimeKeyCounts.SignedCurve25519 != 1 {
		t.Fatalf("one-time key counts %+v", up.OneTimeKeyCounts)
	}
	q, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: {}}})
	if err != nil {
		t.Fatalf("query keys: %v", err)
	}
	got, ok := q.DeviceKeys[alice.UserID][alice.DeviceID]
	if !ok || got.Keys.GetEd25519(alice.DeviceID) != dk.Keys.GetEd25519(alice.DeviceID) || got.Keys.GetEd25519(alice.DeviceID) == "" {
		t.Fatalf("queried keys %+v", q.DeviceKeys)
	}
	c, err := bob.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{
		alice.UserID: {alice.DeviceID: id.KeyAlgorithmSignedCurve25519}}})
	if err != nil {
		t.Fatalf("claim keys: %v", err)
	}
	if k := c.OneTimeKeys[alice.UserID][alice.DeviceID][id.NewKeyID(id.KeyAlgorithmSignedCurve25519, "AAAA")]; k.Key != "otk-a" {
		t.Fatalf("claimed %+v", c.OneTimeKeys)
	}

	if _, err := alice.SendToDevice(ctx, event.ToDeviceRoomKeyRequest, &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {bob.DeviceID: {Raw: map[string]any{
			"action": "request", "requesting_device_id": string(alice.DeviceID), "request_id": "r1"}}}}}); err != nil {
		t.Fatalf("send to device: %v", err)
	}
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "hi"}); err != nil {
		t.Fatalf("set presence: %v", err)
	}
	resp, err := bob.SyncRequest(ctx, 0, since, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToDevice.Events) != 1 || resp.ToDevice.Events[0].Sender != alice.UserID ||
		resp.ToDevice.Events[0].Type.Type != event.ToDeviceRoomKeyRequest.Type {
		t.Fatalf("to-device events %+v", resp.ToDevice.Events)
	}
	changed := false
	for _, u := range resp.DeviceLists.Changed {
		changed = changed || u == alice.UserID
	}
	if !changed {
		t.Fatalf("device_lists %+v", resp.DeviceLists)
	}
	sawPresence := false
	for _, e := range resp.Presence.Events {
		sawPresence = sawPresence || e.Sender == alice.UserID
	}
	if !sawPresence {
		t.Fatal("no presence of alice in bob's sync")
	}
	p, err := bob.GetPresence(ctx, alice.UserID)
	if err != nil || p.Presence != event.PresenceOnline || p.StatusMsg != "hi" {
		t.Fatalf("get presence: %+v %v", p, err)
	}
	ch, err := bob.GetKeyChanges(ctx, since, resp.NextBatch)
	if err != nil || len(ch.Changed) != 1 || ch.Changed[0] != alice.UserID {
		t.Fatalf("key changes: %+v %v", ch, err)
	}
}
