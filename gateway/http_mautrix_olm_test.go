//go:build goolm

// This file runs only with the goolm build tag, which makes mautrix's crypto
// package use its pure-Go Olm/Megolm implementation instead of cgo libolm:
//
//	CGO_ENABLED=0 go test -tags goolm ./gateway/ -run TestMautrixOlm
//
// Without the tag mautrix would need the C library, so the plain test run
// leaves this file out.

package gateway

import (
	"context"
	"errors"
	"testing"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// olmDevice is one logged-in device of a real end-to-end encrypting client:
// a mautrix client wrapped in an OlmMachine with in-memory crypto and room
// state stores, fed by this device's own /sync stream.
type olmDevice struct {
	t     *testing.T
	name  string
	cli   *mautrix.Client
	mach  *crypto.OlmMachine
	state *mautrix.MemoryStateStore
	since string

	plain   map[id.EventID]*event.Event // decrypted room events
	pending map[id.EventID]*event.Event // encrypted room events not (yet) decryptable
	lastErr map[id.EventID]error        // why a pending event did not decrypt
	changed map[id.UserID]bool          // users seen in device_lists.changed
	toDev   map[string]bool             // to-device events received, as sender and content
	otks    []int                       // signed_curve25519 counts, one per sync with to-device events
}

// newOlmDevice wraps cli in an OlmMachine and uploads the device's identity
// and one-time keys (POST /keys/upload).
func newOlmDevice(t *testing.T, name string, cli *mautrix.Client) *olmDevice {
	t.Helper()
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("device", name).Logger()
	state := mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore)
	d := &olmDevice{t: t, name: name, cli: cli, state: state,
		mach:  crypto.NewOlmMachine(cli, &log, crypto.NewMemoryStore(nil), state),
		plain: map[id.EventID]*event.Event{}, pending: map[id.EventID]*event.Event{},
		lastErr: map[id.EventID]error{}, changed: map[id.UserID]bool{}, toDev: map[string]bool{}}
	if err := d.mach.Load(ctx); err != nil {
		t.Fatalf("%s: load olm account: %v", name, err)
	}
	if err := d.mach.ShareKeys(ctx, 0); err != nil {
		t.Fatalf("%s: upload keys: %v", name, err)
	}
	return d
}

// loginDevice logs name in once more, which creates a new device.
func loginDevice(t *testing.T, base, name string) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Login(context.Background(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: name},
		Password:   "pw-" + name + "-secret", StoreCredentials: true})
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return cli
}

// sync runs one /sync the way an encrypting client does: room state into
// the state store, then to-device events, device list changes and one-time
// key counts into the machine, then every undecrypted room event is tried
// again (room keys may arrive in a later sync than the message).
func (d *olmDevice) sync(timeoutMS int) {
	d.t.Helper()
	ctx := context.Background()
	resp, err := d.cli.SyncRequest(ctx, timeoutMS, d.since, syncFilter, false, "")
	if err != nil {
		d.t.Fatalf("%s: sync: %v", d.name, err)
	}
	since := d.since
	d.since = resp.NextBatch
	for roomID, jr := range resp.Rooms.Join {
		for _, evt := range append(jr.State.Events, jr.Timeline.Events...) {
			evt.RoomID = roomID
			evt.Type.Class = event.MessageEventType
			if evt.StateKey != nil {
				evt.Type.Class = event.StateEventType
			}
			// Types mautrix has no struct for stay unparsed, as in its syncer.
			if err := evt.Content.ParseRaw(evt.Type); err != nil && event.TypeMap[evt.Type] != nil {
				d.t.Fatalf("%s: parse %s %s: %v", d.name, evt.Type.Type, evt.ID, err)
			}
			if evt.StateKey != nil {
				mautrix.UpdateStateStore(ctx, d.state, evt)
				if evt.Type == event.StateMember {
					d.mach.HandleMemberEvent(ctx, evt)
				}
			} else if evt.Type == event.EventEncrypted {
				d.pending[evt.ID] = evt
			}
		}
	}
	for _, u := range resp.DeviceLists.Changed {
		d.changed[u] = true
	}
	// A to-device message is deleted once a later sync token is used
	// (client-server API "Send-to-Device messaging"): none comes twice.
	for _, evt := range resp.ToDevice.Events {
		key := evt.Sender.String() + " " + string(evt.Content.VeryRaw)
		if d.toDev[key] {
			d.t.Fatalf("%s: to-device %s from %s delivered twice", d.name, evt.Type.Type, evt.Sender)
		}
		d.toDev[key] = true
	}
	if len(resp.ToDevice.Events) > 0 {
		d.otks = append(d.otks, resp.DeviceOTKCount.SignedCurve25519)
	}
	d.mach.ProcessSyncResponse(ctx, resp, since)
	for evID, evt := range d.pending {
		dec, err := d.mach.DecryptMegolmEvent(ctx, evt)
		if err != nil {
			d.lastErr[evID] = err
			continue
		}
		d.plain[evID] = dec
		delete(d.pending, evID)
		delete(d.lastErr, evID)
	}
}

// syncUntil long-polls until cond holds, or fails after a bounded number of
// polls.
func (d *olmDevice) syncUntil(what string, cond func() bool) {
	d.t.Helper()
	for range 30 {
		if cond() {
			return
		}
		d.sync(5000)
	}
	if !cond() {
		d.t.Fatalf("%s: %s: not reached after 30 polls (undecrypted: %v)", d.name, what, d.lastErr)
	}
}

// decrypted reports whether ev has been decrypted to the body want.
func (d *olmDevice) decrypted(ev id.EventID, want string) bool {
	dec, ok := d.plain[ev]
	if ok && bodyOf(dec) != want {
		d.t.Fatalf("%s: %s decrypted to %q, want %q", d.name, ev, bodyOf(dec), want)
	}
	return ok
}

// sendEncrypted shares the room's Megolm session with every member's devices
// (claiming one-time keys and sending m.room_key over Olm to-device
// messages) if it is not shared yet, then sends body as m.room.encrypted.
func (d *olmDevice) sendEncrypted(roomID id.RoomID, body string) (id.EventID, id.SessionID) {
	d.t.Helper()
	ctx := context.Background()
	members, err := d.state.GetRoomJoinedOrInvitedMembers(ctx, roomID)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.mach.ShareGroupSession(ctx, roomID, members); err != nil {
		d.t.Fatalf("%s: share group session: %v", d.name, err)
	}
	enc, err := d.mach.EncryptMegolmEvent(ctx, roomID, event.EventMessage,
		&event.MessageEventContent{MsgType: event.MsgText, Body: body})
	if err != nil {
		d.t.Fatalf("%s: encrypt: %v", d.name, err)
	}
	resp, err := d.cli.SendMessageEvent(ctx, roomID, event.EventEncrypted, enc)
	if err != nil {
		d.t.Fatalf("%s: send encrypted: %v", d.name, err)
	}
	return resp.EventID, enc.SessionID
}

// device is the machine's view of userID's deviceID, fetched with
// /keys/query.
func (d *olmDevice) device(userID id.UserID, deviceID id.DeviceID) *id.Device {
	d.t.Helper()
	devs, err := d.mach.FetchKeys(context.Background(), []id.UserID{userID}, true)
	if err != nil {
		d.t.Fatalf("%s: fetch keys of %s: %v", d.name, userID, err)
	}
	dev := devs[userID][deviceID]
	if dev == nil {
		d.t.Fatalf("%s: /keys/query has no device %s of %s", d.name, deviceID, userID)
	}
	return dev
}

// TestMautrixOlm runs mautrix's Olm/Megolm machine against the HTTP front
// door: key upload and claim, Olm-encrypted m.room_key to-device messages,
// Megolm room messages in both directions and to several devices, a device
// added later learnt through /sync device_lists.changed, and cross-signing
// bootstrapped and checked by the other user
// (client-server API "End-to-End Encryption" module).
func TestMautrixOlm(t *testing.T) {
	base := accountsTestServer(t, nil)
	ctx := context.Background()
	alice := newOlmDevice(t, "alice", newUser(t, base, "alice"))
	bob1 := newOlmDevice(t, "bob1", newUser(t, base, "bob"))
	aliceID, bobID := alice.cli.UserID, bob1.cli.UserID

	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat",
		Invite: []id.UserID{bobID},
		InitialState: []*event.Event{{Type: event.StateEncryption, StateKey: new(string),
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	room := created.RoomID
	if _, err := bob1.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("join: %v", err)
	}
	joined := func(d *olmDevice) func() bool {
		return func() bool {
			enc, _ := d.mach.StateStore.IsEncrypted(ctx, room)
			return enc && d.state.IsInRoom(ctx, room, bobID) && d.state.IsInRoom(ctx, room, aliceID)
		}
	}
	for _, d := range []*olmDevice{alice, bob1} {
		d.syncUntil("encrypted room with both members", joined(d))
	}
	// newDevice logs bob in once more; every device already syncing must
	// see bob in device_lists.changed and then know the new device.
	newDevice := func(name string, syncing ...*olmDevice) *olmDevice {
		for _, d := range syncing {
			d.sync(0)
			clear(d.changed)
		}
		nd := newOlmDevice(t, name, loginDevice(t, base, "bob"))
		nd.syncUntil("encrypted room with both members", joined(nd))
		for _, d := range syncing {
			d.syncUntil("device list change for bob", func() bool { return d.changed[bobID] })
			if dev, err := d.mach.CryptoStore.GetDevice(ctx, bobID, nd.cli.DeviceID); err != nil || dev == nil {
				t.Fatalf("%s does not know %s (%s) after the device list change: %v", d.name, name, nd.cli.DeviceID, err)
			}
		}
		return nd
	}
	bob2 := newDevice("bob2", bob1)
	if bob1.cli.DeviceID == bob2.cli.DeviceID {
		t.Fatalf("second login reused device %s", bob1.cli.DeviceID)
	}
	otkBefore := []int{0, 0}
	for i, d := range []*olmDevice{bob1, bob2} {
		up, err := d.cli.UploadKeys(ctx, &mautrix.ReqUploadKeys{})
		if err != nil {
			t.Fatal(err)
		}
		if otkBefore[i] = up.OneTimeKeyCounts.SignedCurve25519; otkBefore[i] == 0 {
			t.Fatalf("%s: no one-time keys on the server after upload", d.name)
		}
	}

	// Alice → both of bob's devices: Olm sessions from claimed one-time keys
	// carry the Megolm key.
	m1, s1 := alice.sendEncrypted(room, "73 de alice")
	m2, s2 := alice.sendEncrypted(room, "qsl?")
	if s1 != s2 {
		t.Fatalf("second message started a new megolm session %s (first %s)", s2, s1)
	}
	for i, d := range []*olmDevice{bob1, bob2} {
		d.syncUntil("alice's messages", func() bool { return d.decrypted(m1, "73 de alice") && d.decrypted(m2, "qsl?") })
		// The sync that carried the m.room_key still reports the count
		// from before the client replenished: one key claimed for alice.
		if len(d.otks) == 0 || d.otks[0] != otkBefore[i]-1 {
			t.Fatalf("%s: one-time key counts with to-device events %v, want first %d", d.name, d.otks, otkBefore[i]-1)
		}
		if got := d.plain[m1].Sender; got != aliceID {
			t.Fatalf("%s: decrypted sender %s", d.name, got)
		}
	}

	// Bob → alice and to bob's other device.
	r1, _ := bob1.sendEncrypted(room, "qsl 73")
	alice.syncUntil("bob's reply", func() bool { return alice.decrypted(r1, "qsl 73") })
	bob2.syncUntil("own device's reply", func() bool { return bob2.decrypted(r1, "qsl 73") })

	// A third device for bob: both senders rotate their Megolm sessions and
	// the new device gets keys for new messages only.
	bob3 := newDevice("bob3", alice, bob1)
	m3, s3 := alice.sendEncrypted(room, "welcome, new rig")
	if s3 == s1 {
		t.Fatal("alice kept her megolm session after bob's device list changed")
	}
	r2, _ := bob1.sendEncrypted(room, "fb, all three rigs")
	bob3.syncUntil("messages after login", func() bool {
		return bob3.decrypted(m3, "welcome, new rig") && bob3.decrypted(r2, "fb, all three rigs")
	})
	bob2.syncUntil("messages after bob3's login", func() bool {
		return bob2.decrypted(m3, "welcome, new rig") && bob2.decrypted(r2, "fb, all three rigs")
	})
	alice.syncUntil("bob's second reply", func() bool { return alice.decrypted(r2, "fb, all three rigs") })
	for _, old := range []id.EventID{m1, m2, r1} {
		if _, ok := bob3.plain[old]; ok {
			t.Fatalf("bob3 decrypted %s, sent before it existed", old)
		}
		if err := bob3.lastErr[old]; !errors.Is(err, crypto.ErrNoSessionFound) {
			t.Fatalf("bob3 on %s: %v, want no session", old, err)
		}
	}

	// Cross-signing bootstrap through the machines: keys in secret storage
	// (account data) and published with /keys/device_signing/upload, alice's
	// device signed with /keys/signatures/upload, bob signs alice's master
	// key with his user-signing key.
	uia := func(d *olmDevice, password string) mautrix.UIACallback {
		return func(r *mautrix.RespUserInteractive) any {
			return &mautrix.ReqUIAuthLogin{BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: r.Session},
				User: d.cli.UserID.String(), Password: password}
		}
	}
	if _, _, err := alice.mach.GenerateAndUploadCrossSigningKeys(ctx, uia(alice, "pw-alice-secret"), ""); err != nil {
		t.Fatalf("alice cross-signing bootstrap: %v", err)
	}
	if err := alice.mach.SignOwnDevice(ctx, alice.mach.OwnIdentity()); err != nil {
		t.Fatalf("alice signs her device: %v", err)
	}
	if _, _, err := bob1.mach.GenerateAndUploadCrossSigningKeys(ctx, uia(bob1, "pw-bob-secret"), ""); err != nil {
		t.Fatalf("bob cross-signing bootstrap: %v", err)
	}
	alicePub := alice.mach.CrossSigningKeys.PublicKeys()
	bobPub := bob1.mach.CrossSigningKeys.PublicKeys()

	// bob3 holds no private cross-signing keys: its trust in alice's device
	// comes only from what /keys/query returned (master → self-signing →
	// device signatures, each checked by mautrix).
	aliceDev := bob3.device(aliceID, alice.cli.DeviceID)
	if trust, err := bob3.mach.ResolveTrustContext(ctx, aliceDev); err != nil || trust != id.TrustStateCrossSignedTOFU {
		t.Fatalf("bob3's trust in alice's device: %s, %v; want %s", trust, err, id.TrustStateCrossSignedTOFU)
	}
	if err := bob1.mach.SignUser(ctx, aliceID, alicePub.MasterKey); err != nil {
		t.Fatalf("bob signs alice: %v", err)
	}
	if trust, err := bob1.mach.ResolveTrustContext(ctx, bob1.device(aliceID, alice.cli.DeviceID)); err != nil || trust != id.TrustStateCrossSignedVerified {
		t.Fatalf("bob1's trust in alice's device: %s, %v; want %s", trust, err, id.TrustStateCrossSignedVerified)
	}
	// The server kept bob's signature on alice's master key and shows it to
	// bob's other devices.
	q, err := bob2.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{aliceID: {}}})
	if err != nil {
		t.Fatal(err)
	}
	mk := q.MasterKeys[aliceID]
	if mk.FirstKey() != alicePub.MasterKey {
		t.Fatalf("alice's master key %s, want %s", mk.FirstKey(), alicePub.MasterKey)
	}
	if ok, err := signatures.VerifySignatureJSON(mk, bobID, bobPub.UserSigningKey.String(), bobPub.UserSigningKey); !ok || err != nil {
		t.Fatalf("bob's signature on alice's master key: %v, %v (signatures %v)", ok, err, mk.Signatures)
	}
	if ok, _ := signatures.VerifySignatureJSON(q.SelfSigningKeys[aliceID], aliceID, alicePub.MasterKey.String(), alicePub.MasterKey); !ok {
		t.Fatal("alice's self-signing key is not signed by her master key")
	}
	dk := q.DeviceKeys[aliceID][alice.cli.DeviceID]
	if ok, _ := signatures.VerifySignatureJSON(dk, aliceID, alicePub.SelfSigningKey.String(), alicePub.SelfSigningKey); !ok {
		t.Fatalf("alice's device keys lack her self-signing signature: %v", dk.Signatures)
	}
	// Only bob sees his signature on alice's master key and his
	// user-signing key.
	qa, err := alice.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{aliceID: {}, bobID: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if amk := qa.MasterKeys[aliceID]; amk.FirstKey() != alicePub.MasterKey || amk.Signatures[bobID] != nil {
		t.Fatalf("alice's own master key as alice sees it: %+v", amk)
	}
	if bmk := qa.MasterKeys[bobID]; bmk.FirstKey() != bobPub.MasterKey {
		t.Fatalf("bob's master key as alice sees it: %+v", bmk)
	}
	if usk, ok := qa.UserSigningKeys[bobID]; ok {
		t.Fatalf("alice sees bob's user-signing key %+v", usk)
	}
}
