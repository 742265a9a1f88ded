package homeserver

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

// e2eeDevice is a test device with its ed25519 identity key.
type e2eeDevice struct {
	userID, deviceID, token string
	priv                    ed25519.PrivateKey
}

func newE2EEDevice(t testing.TB, userID, deviceID, token string, seed uint64) *e2eeDevice {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(clock.SeededRNG(seed))
	if err != nil {
		t.Fatal(err)
	}
	return &e2eeDevice{userID: userID, deviceID: deviceID, token: token, priv: priv}
}

// deviceKeys returns the device's self-signed device_keys object; extra
// goes into "keys" (to make a changed upload).
func (d *e2eeDevice) deviceKeys(t testing.TB, extra string) json.RawMessage {
	t.Helper()
	pub := base64.RawStdEncoding.EncodeToString(d.priv.Public().(ed25519.PublicKey))
	keys := map[string]string{"ed25519:" + d.deviceID: pub, "curve25519:" + d.deviceID: "c" + pub[1:]}
	if extra != "" {
		keys["curve25519:extra"] = extra
	}
	obj, err := json.Marshal(map[string]any{"user_id": d.userID, "device_id": d.deviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"}, "keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := event.SignJSON(obj, d.userID, "ed25519:"+d.deviceID, d.priv)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// syncOf runs /sync (since may be "") and returns the decoded body.
func syncOf(t *testing.T, tn *testNode, token, since string) testResp {
	t.Helper()
	p := v3 + "/sync"
	if since != "" {
		p += "?since=" + url.QueryEscape(since)
	}
	r := tn.do("GET", p, token, nil)
	if r.Status != 200 {
		t.Fatalf("sync: %d %s", r.Status, r.Raw)
	}
	return r
}

func toDeviceEvents(r testResp) []map[string]any {
	td, _ := r.Body["to_device"].(map[string]any)
	evs, _ := td["events"].([]any)
	var out []map[string]any
	for _, e := range evs {
		m, _ := e.(map[string]any)
		out = append(out, m)
	}
	return out
}

func deviceListChanged(r testResp) []string {
	dl, _ := r.Body["device_lists"].(map[string]any)
	ch, _ := dl["changed"].([]any)
	var out []string
	for _, u := range ch {
		s, _ := u.(string)
		out = append(out, s)
	}
	return out
}

func login(t *testing.T, tn *testNode, user string) (token, deviceID string) {
	t.Helper()
	r := tn.do("POST", v3+"/login", "", map[string]any{"type": "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": user}, "password": "pw"})
	if r.Status != 200 {
		t.Fatalf("login %s: %d %s", user, r.Status, r.Raw)
	}
	return r.str("access_token"), r.str("device_id")
}

func TestSendToDeviceLocal(t *testing.T) {
	tn := newTestNode(t, nil)
	_, aliceTok, _ := tn.register("alice", "pw")
	bobID, bobTok, bobDev := tn.register("bob", "pw")
	bobTok2, _ := login(t, tn, "bob")

	first := syncOf(t, tn, bobTok, "")
	since := first.str("next_batch")
	// A long poll waits, and the message ends it.
	wait, _ := tn.start("GET", v3+"/sync?timeout=30000&since="+url.QueryEscape(since), bobTok, nil)
	if wait.Answered {
		t.Fatalf("long poll answered at once: %s", wait.Raw)
	}
	body := map[string]any{"messages": map[string]any{bobID: map[string]any{bobDev: map[string]string{"n": "1"}}}}
	if r := tn.do("PUT", v3+"/sendToDevice/m.test/t1", aliceTok, body); r.Status != 200 {
		t.Fatalf("sendToDevice: %d %s", r.Status, r.Raw)
	}
	if !wait.Answered || len(toDeviceEvents(*wait)) != 1 {
		t.Fatalf("long poll not woken with the message: %+v", wait)
	}
	ev := toDeviceEvents(*wait)[0]
	if ev["sender"] != "@alice:test.local" || ev["type"] != "m.test" || ev["content"].(map[string]any)["n"] != "1" {
		t.Fatalf("to-device event %v", ev)
	}
	// The same transaction again is not delivered twice.
	if r := tn.do("PUT", v3+"/sendToDevice/m.test/t1", aliceTok, body); r.Status != 200 {
		t.Fatalf("retry: %d %s", r.Status, r.Raw)
	}
	// Syncing again with the old token re-delivers (not acknowledged)...
	if got := toDeviceEvents(syncOf(t, tn, bobTok, since)); len(got) != 1 {
		t.Fatalf("re-sync from old token: %d events, want 1", len(got))
	}
	// ...and with the new token does not (acknowledged and deleted).
	if got := toDeviceEvents(syncOf(t, tn, bobTok, wait.str("next_batch"))); len(got) != 0 {
		t.Fatalf("after ack: %v", got)
	}
	if rows, err := tn.store.ToDeviceSince(bobID, bobDev, 0, 1<<62); err != nil || len(rows) != 0 {
		t.Fatalf("acknowledged rows left: %v %v", rows, err)
	}
	// The other device got nothing; "*" reaches both.
	star := map[string]any{"messages": map[string]any{bobID: map[string]any{"*": map[string]string{"n": "2"}}}}
	if r := tn.do("PUT", v3+"/sendToDevice/m.test/t2", aliceTok, star); r.Status != 200 {
		t.Fatalf("sendToDevice *: %d %s", r.Status, r.Raw)
	}
	for _, tok := range []string{bobTok, bobTok2} {
		got := toDeviceEvents(syncOf(t, tn, tok, wait.str("next_batch")))
		if len(got) != 1 || got[0]["content"].(map[string]any)["n"] != "2" {
			t.Fatalf("device %s: %v", tok, got)
		}
	}
	// Bad bodies.
	wantErr(t, tn.do("PUT", v3+"/sendToDevice/m.test/t3", aliceTok, map[string]any{}), 400, ErrCodeBadJSON)
	wantErr(t, tn.do("PUT", v3+"/sendToDevice/m.test/t4", aliceTok,
		map[string]any{"messages": map[string]any{bobID: map[string]any{bobDev: "x"}}}), 400, ErrCodeBadJSON)
	wantErr(t, tn.do("PUT", v3+"/sendToDevice/m.test/t5", aliceTok,
		map[string]any{"messages": map[string]any{"nobody": map[string]any{"D": map[string]any{}}}}), 400, ErrCodeInvalidParam)
}

func TestKeysUploadQueryClaim(t *testing.T) {
	tn := newTestNode(t, nil)
	aliceID, aliceTok, aliceDev := tn.register("alice", "pw")
	bobID, bobTok, _ := tn.register("bob", "pw")
	room := tn.do("POST", v3+"/createRoom", aliceTok, map[string]any{"invite": []string{bobID}}).str("room_id")
	if r := tn.do("POST", v3+"/join/"+url.PathEscape(room), bobTok, map[string]any{}); r.Status != 200 {
		t.Fatalf("join: %d %s", r.Status, r.Raw)
	}
	bobSince := syncOf(t, tn, bobTok, "").str("next_batch")

	d := newE2EEDevice(t, aliceID, aliceDev, aliceTok, 7)
	// A device_keys object signed by another key is refused.
	other := newE2EEDevice(t, aliceID, aliceDev, aliceTok, 8)
	forged := other.deviceKeys(t, "")
	var fk map[string]any
	_ = json.Unmarshal(forged, &fk)
	fk["keys"] = json.RawMessage(mustJSON(map[string]string{"ed25519:" + aliceDev: base64.RawStdEncoding.EncodeToString(d.priv.Public().(ed25519.PublicKey))}))
	wantErr(t, tn.do("POST", v3+"/keys/upload", aliceTok, map[string]any{"device_keys": fk}), 400, ErrCodeInvalidParam)
	// Keys for another device are refused.
	wrongDev := newE2EEDevice(t, aliceID, "OTHER", aliceTok, 7)
	wantErr(t, tn.do("POST", v3+"/keys/upload", aliceTok, map[string]any{"device_keys": wrongDev.deviceKeys(t, "")}), 400, ErrCodeInvalidParam)

	up := tn.do("POST", v3+"/keys/upload", aliceTok, map[string]any{
		"device_keys":   d.deviceKeys(t, ""),
		"one_time_keys": map[string]any{"signed_curve25519:AAA": map[string]any{"key": "k1"}, "signed_curve25519:AAB": map[string]any{"key": "k2"}},
		"fallback_keys": map[string]any{"signed_curve25519:FB": map[string]any{"key": "fb", "fallback": true}},
	})
	if up.Status != 200 || fmt.Sprint(up.Body["one_time_key_counts"]) != "map[signed_curve25519:2]" {
		t.Fatalf("upload: %d %s", up.Status, up.Raw)
	}
	// Re-using a key ID with other content is refused.
	wantErr(t, tn.do("POST", v3+"/keys/upload", aliceTok, map[string]any{
		"one_time_keys": map[string]any{"signed_curve25519:AAA": map[string]any{"key": "other"}}}), 400, ErrCodeInvalidParam)

	// Bob's sync reports alice's changed device list and alice's shows counts.
	bs := syncOf(t, tn, bobTok, bobSince)
	if !slices.Contains(deviceListChanged(bs), aliceID) {
		t.Fatalf("bob's device_lists: %s", bs.Raw)
	}
	as := syncOf(t, tn, aliceTok, "")
	if fmt.Sprint(as.Body["device_one_time_keys_count"]) != "map[signed_curve25519:2]" ||
		fmt.Sprint(as.Body["device_unused_fallback_key_types"]) != "[signed_curve25519]" {
		t.Fatalf("alice's key counts: %s", as.Raw)
	}
	ch := tn.do("GET", v3+"/keys/changes?from="+url.QueryEscape(bobSince), bobTok, nil)
	if ch.Status != 200 || fmt.Sprint(ch.Body["changed"]) != "["+aliceID+"]" {
		t.Fatalf("keys/changes: %d %s", ch.Status, ch.Raw)
	}

	q := tn.do("POST", v3+"/keys/query", bobTok, map[string]any{"device_keys": map[string]any{aliceID: []string{}}})
	got := q.Body["device_keys"].(map[string]any)[aliceID].(map[string]any)[aliceDev].(map[string]any)
	if got["user_id"] != aliceID || got["signatures"] == nil {
		t.Fatalf("keys/query: %s", q.Raw)
	}
	// Claims take the one-time keys in order, then the fallback key (twice).
	var claimed []string
	for i := 0; i < 4; i++ {
		c := tn.do("POST", v3+"/keys/claim", bobTok, map[string]any{"one_time_keys": map[string]any{aliceID: map[string]string{aliceDev: "signed_curve25519"}}})
		keys := c.Body["one_time_keys"].(map[string]any)[aliceID].(map[string]any)[aliceDev].(map[string]any)
		for id := range keys {
			claimed = append(claimed, id)
		}
	}
	want := []string{"signed_curve25519:AAA", "signed_curve25519:AAB", "signed_curve25519:FB", "signed_curve25519:FB"}
	if !slices.Equal(claimed, want) {
		t.Fatalf("claimed %v, want %v", claimed, want)
	}
	as = syncOf(t, tn, aliceTok, "")
	if fmt.Sprint(as.Body["device_one_time_keys_count"]) != "map[]" || fmt.Sprint(as.Body["device_unused_fallback_key_types"]) != "[]" {
		t.Fatalf("alice's key counts after claims: %s", as.Raw)
	}
	// Unchanged re-upload is not a device list change.
	pos := roomsOf(tn.Node).pos
	tn.do("POST", v3+"/keys/upload", aliceTok, map[string]any{"device_keys": d.deviceKeys(t, "")})
	if roomsOf(tn.Node).pos != pos {
		t.Fatal("unchanged device keys took a stream position")
	}
}

func presenceEvents(r testResp) map[string]map[string]any {
	p, _ := r.Body["presence"].(map[string]any)
	evs, _ := p["events"].([]any)
	out := map[string]map[string]any{}
	for _, e := range evs {
		m, _ := e.(map[string]any)
		s, _ := m["sender"].(string)
		out[s], _ = m["content"].(map[string]any)
	}
	return out
}

func TestPresenceLocal(t *testing.T) {
	tn := newTestNode(t, nil)
	aliceID, aliceTok, _ := tn.register("alice", "pw")
	bobID, bobTok, _ := tn.register("bob", "pw")
	_, carolTok, _ := tn.register("carol", "pw")
	room := tn.do("POST", v3+"/createRoom", aliceTok, map[string]any{"invite": []string{bobID}}).str("room_id")
	tn.do("POST", v3+"/join/"+url.PathEscape(room), bobTok, map[string]any{})
	since := syncOf(t, tn, bobTok, "").str("next_batch")
	p := v3 + "/presence/" + url.PathEscape(aliceID) + "/status"

	wantErr(t, tn.do("PUT", v3+"/presence/"+url.PathEscape(bobID)+"/status", aliceTok, map[string]any{"presence": "online"}), 403, ErrCodeForbidden)
	wantErr(t, tn.do("PUT", p, aliceTok, map[string]any{"presence": "dancing"}), 400, ErrCodeInvalidParam)
	if r := tn.do("PUT", p, aliceTok, map[string]any{"presence": "online", "status_msg": "here"}); r.Status != 200 {
		t.Fatalf("put: %d %s", r.Status, r.Raw)
	}
	tn.clock.Advance(5 * time.Second)
	g := tn.do("GET", p, bobTok, nil)
	if g.Status != 200 || g.str("presence") != "online" || g.str("status_msg") != "here" || g.Body["last_active_ago"].(float64) != 5000 {
		t.Fatalf("get: %d %s", g.Status, g.Raw)
	}
	wantErr(t, tn.do("GET", p, carolTok, nil), 403, ErrCodeForbidden)
	s := syncOf(t, tn, bobTok, since)
	if c := presenceEvents(s)[aliceID]; c == nil || c["presence"] != "online" {
		t.Fatalf("bob's sync presence: %s", s.Raw)
	}
	if len(presenceEvents(syncOf(t, tn, carolTok, ""))) != 0 {
		t.Fatal("carol sees presence of users she shares no room with")
	}
	// Repeating the same presence takes no position: nothing is resent.
	pos := roomsOf(tn.Node).pos
	tn.do("PUT", p, aliceTok, map[string]any{"presence": "online", "status_msg": "here"})
	if roomsOf(tn.Node).pos != pos {
		t.Fatal("an unchanged presence took a stream position")
	}
	if len(presenceEvents(syncOf(t, tn, bobTok, s.str("next_batch")))) != 0 {
		t.Fatal("unchanged presence sent again")
	}
}

func TestPresenceDisabled(t *testing.T) {
	tn := newTestNode(t, func(c *Config) { c.Presence = false })
	aliceID, aliceTok, _ := tn.register("alice", "pw")
	p := v3 + "/presence/" + url.PathEscape(aliceID) + "/status"
	if r := tn.do("PUT", p, aliceTok, map[string]any{"presence": "online"}); r.Status != 200 {
		t.Fatalf("put: %d %s", r.Status, r.Raw)
	}
	wantErr(t, tn.do("GET", p, aliceTok, nil), 403, ErrCodeForbidden)
	if rows, err := tn.store.PresenceSince(0, 1<<62); err != nil || len(rows) != 0 {
		t.Fatalf("presence stored while disabled: %v %v", rows, err)
	}
}

func TestFedE2EE(t *testing.T) {
	fn, alice, bob, _ := twoServers(t)
	aliceDev := alice.tn.do("GET", v3+"/account/whoami", alice.token, nil).str("device_id")
	bobDev := bob.tn.do("GET", v3+"/account/whoami", bob.token, nil).str("device_id")
	bobSince := fn.call(bob.tn, 200, "GET", v3+"/sync", bob.token, nil).str("next_batch")

	// Alice uploads keys; b.test is told, and bob's sync says so.
	d := newE2EEDevice(t, alice.id, aliceDev, alice.token, 11)
	fn.call(alice.tn, 200, "POST", v3+"/keys/upload", alice.token, map[string]any{
		"device_keys":   d.deviceKeys(t, ""),
		"one_time_keys": map[string]any{"signed_curve25519:A1": map[string]any{"key": "k1"}}})
	s := fn.call(bob.tn, 200, "GET", v3+"/sync?since="+url.QueryEscape(bobSince), bob.token, nil)
	if !slices.Contains(deviceListChanged(s), alice.id) {
		t.Fatalf("bob's device_lists after alice's upload: %s", s.Raw)
	}
	// Bob queries alice's keys over federation, then from the cache.
	q := fn.call(bob.tn, 200, "POST", v3+"/keys/query", bob.token, map[string]any{"device_keys": map[string]any{alice.id: []string{}}})
	keys, _ := q.Body["device_keys"].(map[string]any)[alice.id].(map[string]any)
	if keys[aliceDev] == nil {
		t.Fatalf("remote keys/query: %s", q.Raw)
	}
	if _, _, err := bob.tn.store.RemoteDeviceKeys(alice.id); err != nil {
		t.Fatalf("alice's keys not cached on b.test: %v", err)
	}
	// A change marks the cache stale.
	fn.call(alice.tn, 200, "POST", v3+"/keys/upload", alice.token, map[string]any{"device_keys": d.deviceKeys(t, "x")})
	if _, _, err := bob.tn.store.RemoteDeviceKeys(alice.id); err == nil {
		t.Fatal("alice's cached keys still fresh after m.device_list_update")
	}
	q = fn.call(bob.tn, 200, "POST", v3+"/keys/query", bob.token, map[string]any{"device_keys": map[string]any{alice.id: []string{}}})
	if dk, _ := q.Body["device_keys"].(map[string]any)[alice.id].(map[string]any)[aliceDev].(map[string]any); dk == nil ||
		dk["keys"].(map[string]any)["curve25519:extra"] != "x" {
		t.Fatalf("refetched keys: %s", q.Raw)
	}
	// Bob claims alice's one-time key over federation.
	c := fn.call(bob.tn, 200, "POST", v3+"/keys/claim", bob.token, map[string]any{"one_time_keys": map[string]any{alice.id: map[string]string{aliceDev: "signed_curve25519"}}})
	if fmt.Sprint(c.Body["one_time_keys"]) != "map["+alice.id+":map["+aliceDev+":map[signed_curve25519:A1:map[key:k1]]]]" {
		t.Fatalf("remote claim: %s", c.Raw)
	}
	// Alice sends bob a to-device message across.
	fn.call(alice.tn, 200, "PUT", v3+"/sendToDevice/m.room_key_request/r1", alice.token,
		map[string]any{"messages": map[string]any{bob.id: map[string]any{bobDev: map[string]string{"hello": "bob"}}}})
	s = fn.call(bob.tn, 200, "GET", v3+"/sync?since="+url.QueryEscape(s.str("next_batch")), bob.token, nil)
	evs := toDeviceEvents(s)
	if len(evs) != 1 || evs[0]["sender"] != alice.id || evs[0]["type"] != "m.room_key_request" {
		t.Fatalf("bob's to-device: %s", s.Raw)
	}
	// Presence crosses too.
	fn.call(alice.tn, 200, "PUT", v3+"/presence/"+url.PathEscape(alice.id)+"/status", alice.token, map[string]any{"presence": "unavailable"})
	g := fn.call(bob.tn, 200, "GET", v3+"/presence/"+url.PathEscape(alice.id)+"/status", bob.token, nil)
	if g.str("presence") != "unavailable" {
		t.Fatalf("bob sees alice's presence as %s", g.Raw)
	}
	// EDUs about users of another server are refused.
	mb := e2eeOf(bob.tn.Node)
	if err := mb.eduPresence("evil.test", json.RawMessage(`{"push":[{"user_id":"`+alice.id+`","presence":"offline"}]}`)); err == nil {
		t.Fatal("presence EDU from the wrong origin accepted")
	}
	if err := mb.eduToDevice("evil.test", json.RawMessage(`{"sender":"`+alice.id+`","type":"x","message_id":"m","messages":{}}`)); err == nil {
		t.Fatal("to-device EDU from the wrong origin accepted")
	}
	if err := mb.eduDeviceListUpdate("evil.test", json.RawMessage(`{"user_id":"`+alice.id+`","device_id":"D"}`)); err == nil {
		t.Fatal("device list EDU from the wrong origin accepted")
	}
	// Logging out removes the device's keys, here and on b.test.
	fn.call(alice.tn, 200, "POST", v3+"/logout", alice.token, map[string]any{})
	q = fn.call(bob.tn, 200, "POST", v3+"/keys/query", bob.token, map[string]any{"device_keys": map[string]any{alice.id: []string{}}})
	if keys, _ := q.Body["device_keys"].(map[string]any)[alice.id].(map[string]any); len(keys) != 0 {
		t.Fatalf("keys of a logged-out device still served: %s", q.Raw)
	}
}
