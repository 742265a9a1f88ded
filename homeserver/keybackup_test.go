package homeserver

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

const roomKeysPath = "/_matrix/client/v3/room_keys"

// backupAuth is an auth_data object of the shape clients send.
func backupAuth(pub string) map[string]any {
	return map[string]any{"public_key": pub, "signatures": map[string]any{
		"@alice:test.local": map[string]string{"ed25519:DEV": "sig-" + pub}}}
}

// keyData is a KeyBackupData object whose session_data names tag.
func keyData(verified bool, fmi, fc int, tag string) map[string]any {
	return map[string]any{"first_message_index": fmi, "forwarded_count": fc, "is_verified": verified,
		"session_data": map[string]string{"ephemeral": "eph-" + tag, "ciphertext": "ct-" + tag, "mac": "mac-" + tag}}
}

// keysURL is /room_keys/keys[/room[/session]]?version=v with the IDs
// percent-encoded.
func keysURL(version, room, session string) string {
	p := roomKeysPath + "/keys"
	if room != "" {
		p += "/" + url.PathEscape(room)
	}
	if session != "" {
		p += "/" + url.PathEscape(session)
	}
	if version != "" {
		p += "?version=" + url.QueryEscape(version)
	}
	return p
}

// wantOK fails unless r is a 200.
func wantOK(t *testing.T, what string, r testResp) testResp {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("%s: %d %s", what, r.Status, r.Raw)
	}
	return r
}

// updated reads the etag and count of a RoomKeysUpdateResponse (or of a
// backup version).
func updated(t *testing.T, r testResp) (etag string, count int) {
	t.Helper()
	c, ok := r.Body["count"].(float64)
	if !ok || r.str("etag") == "" {
		t.Fatalf("no etag/count in %s", r.Raw)
	}
	return r.str("etag"), int(c)
}

// sessionTag is the tag keyData put in a returned key's session_data.
func sessionTag(t *testing.T, key any) string {
	t.Helper()
	m, _ := key.(map[string]any)
	sd, _ := m["session_data"].(map[string]any)
	ct, _ := sd["ciphertext"].(string)
	if !strings.HasPrefix(ct, "ct-") {
		t.Fatalf("no session_data in %v", key)
	}
	return strings.TrimPrefix(ct, "ct-")
}

func TestKeyBackupVersions(t *testing.T) {
	tn := newTestNode(t, nil)
	_, alice, _ := tn.register("alice", "pw-alice-secret")
	_, bob, _ := tn.register("bob", "pw-bob-secret")

	wantErr(t, tn.do("GET", roomKeysPath+"/version", alice, nil), 404, ErrCodeNotFound)
	wantErr(t, tn.do("GET", roomKeysPath+"/version", "", nil), 401, ErrCodeMissingToken)
	for _, c := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"not JSON", "{", 400, ErrCodeNotJSON},
		{"no algorithm", map[string]any{"auth_data": backupAuth("k")}, 400, ErrCodeMissingParam},
		{"unknown algorithm", map[string]any{"algorithm": "m.other", "auth_data": backupAuth("k")}, 400, ErrCodeInvalidParam},
		{"no auth_data", map[string]any{"algorithm": BackupAlgorithmMegolmV1}, 400, ErrCodeMissingParam},
		{"auth_data not an object", map[string]any{"algorithm": BackupAlgorithmMegolmV1, "auth_data": "k"}, 400, ErrCodeBadJSON},
		{"auth_data too large", map[string]any{"algorithm": BackupAlgorithmMegolmV1,
			"auth_data": backupAuth(strings.Repeat("k", maxBackupAuthDataBytes))}, 413, ErrCodeTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, tn.do("POST", roomKeysPath+"/version", alice, c.body), c.status, c.code)
		})
	}
	wantErr(t, tn.do("GET", roomKeysPath+"/version", alice, nil), 404, ErrCodeNotFound) // nothing was created

	r := wantOK(t, "create", tn.do("POST", roomKeysPath+"/version", alice,
		map[string]any{"algorithm": BackupAlgorithmMegolmV1, "auth_data": backupAuth("pub1")}))
	if r.str("version") != "1" {
		t.Fatalf("create: %s", r.Raw)
	}
	for _, path := range []string{roomKeysPath + "/version", roomKeysPath + "/version/1"} {
		r := wantOK(t, path, tn.do("GET", path, alice, nil))
		auth, _ := r.Body["auth_data"].(map[string]any)
		if r.str("algorithm") != BackupAlgorithmMegolmV1 || r.str("version") != "1" || auth["public_key"] != "pub1" ||
			auth["signatures"] == nil {
			t.Fatalf("%s: %s", path, r.Raw)
		}
		if _, count := updated(t, r); count != 0 {
			t.Fatalf("%s: count %d", path, count)
		}
	}
	for _, v := range []string{"2", "01", "x", "-1"} {
		wantErr(t, tn.do("GET", roomKeysPath+"/version/"+v, alice, nil), 404, ErrCodeNotFound)
	}
	// Backups are per user.
	wantErr(t, tn.do("GET", roomKeysPath+"/version", bob, nil), 404, ErrCodeNotFound)
	wantErr(t, tn.do("GET", roomKeysPath+"/version/1", bob, nil), 404, ErrCodeNotFound)

	// Updates change auth_data only, and check algorithm and version.
	upd := func(body map[string]any) map[string]any {
		out := map[string]any{"algorithm": BackupAlgorithmMegolmV1, "auth_data": backupAuth("pub2")}
		for k, v := range body {
			out[k] = v
		}
		return out
	}
	wantErr(t, tn.do("PUT", roomKeysPath+"/version/1", alice, upd(map[string]any{"version": "2"})), 400, ErrCodeInvalidParam)
	wantErr(t, tn.do("PUT", roomKeysPath+"/version/1", alice, upd(map[string]any{"algorithm": "m.other"})), 400, ErrCodeInvalidParam)
	wantErr(t, tn.do("PUT", roomKeysPath+"/version/1", alice, upd(map[string]any{"auth_data": nil})), 400, ErrCodeMissingParam)
	wantErr(t, tn.do("PUT", roomKeysPath+"/version/5", alice, upd(nil)), 404, ErrCodeNotFound)
	wantErr(t, tn.do("PUT", roomKeysPath+"/version/1", bob, upd(nil)), 404, ErrCodeNotFound)
	if r := tn.do("GET", roomKeysPath+"/version/1", alice, nil); !strings.Contains(string(r.Raw), `"pub1"`) {
		t.Fatalf("refused updates changed the backup: %s", r.Raw)
	}
	wantOK(t, "update", tn.do("PUT", roomKeysPath+"/version/1", alice, upd(map[string]any{"version": "1"})))
	if r := tn.do("GET", roomKeysPath+"/version", alice, nil); !strings.Contains(string(r.Raw), `"pub2"`) || r.str("version") != "1" {
		t.Fatalf("after update: %s", r.Raw)
	}

	// A second version becomes current; deleting it brings back the first.
	if r := wantOK(t, "second create", tn.do("POST", roomKeysPath+"/version", alice,
		map[string]any{"algorithm": BackupAlgorithmMegolmV1, "auth_data": backupAuth("pub3")})); r.str("version") != "2" {
		t.Fatalf("second create: %s", r.Raw)
	}
	if r := tn.do("GET", roomKeysPath+"/version", alice, nil); r.str("version") != "2" {
		t.Fatalf("current after second create: %s", r.Raw)
	}
	wantErr(t, tn.do("DELETE", roomKeysPath+"/version/2", bob, nil), 404, ErrCodeNotFound)
	wantOK(t, "delete", tn.do("DELETE", roomKeysPath+"/version/2", alice, nil))
	wantOK(t, "delete again", tn.do("DELETE", roomKeysPath+"/version/2", alice, nil))
	wantErr(t, tn.do("DELETE", roomKeysPath+"/version/9", alice, nil), 404, ErrCodeNotFound)
	wantErr(t, tn.do("GET", roomKeysPath+"/version/2", alice, nil), 404, ErrCodeNotFound)
	if r := tn.do("GET", roomKeysPath+"/version", alice, nil); r.str("version") != "1" {
		t.Fatalf("current after deleting 2: %s", r.Raw)
	}
	wantOK(t, "delete 1", tn.do("DELETE", roomKeysPath+"/version/1", alice, nil))
	wantErr(t, tn.do("GET", roomKeysPath+"/version", alice, nil), 404, ErrCodeNotFound)
	// Version numbers are not reused.
	if r := tn.do("POST", roomKeysPath+"/version", alice,
		map[string]any{"algorithm": BackupAlgorithmMegolmV1, "auth_data": backupAuth("pub4")}); r.str("version") != "3" {
		t.Fatalf("create after deletes: %d %s", r.Status, r.Raw)
	}
}

func TestKeyBackupKeys(t *testing.T) {
	tn := newTestNode(t, nil)
	_, alice, _ := tn.register("alice", "pw-alice-secret")
	_, bob, _ := tn.register("bob", "pw-bob-secret")
	const roomA, roomB = "!a:test.local", "!b:test.local"
	newVersion := func() string {
		r := wantOK(t, "create", tn.do("POST", roomKeysPath+"/version", alice,
			map[string]any{"algorithm": BackupAlgorithmMegolmV1, "auth_data": backupAuth("pub")}))
		return r.str("version")
	}
	wantErr(t, tn.do("PUT", keysURL("1", "", ""), alice, map[string]any{"rooms": map[string]any{}}), 404, ErrCodeNotFound)
	v1 := newVersion()

	r := wantOK(t, "put all", tn.do("PUT", keysURL(v1, "", ""), alice, map[string]any{"rooms": map[string]any{
		roomA: map[string]any{"sessions": map[string]any{"s1": keyData(false, 5, 1, "a1"), "s2": keyData(false, 0, 0, "a2")}},
		roomB: map[string]any{"sessions": map[string]any{"s1": keyData(true, 3, 0, "b1")}},
	}}))
	etag, count := updated(t, r)
	if count != 3 {
		t.Fatalf("count after first put: %d", count)
	}
	if e, c := updated(t, tn.do("GET", roomKeysPath+"/version", alice, nil)); e != etag || c != 3 {
		t.Fatalf("version info: etag %q count %d, want %q 3", e, c, etag)
	}

	// The replacement rule, step by step on roomA/s1 (stored: unverified,
	// index 5, forwarded once).
	for _, step := range []struct {
		name    string
		key     map[string]any
		replace bool
	}{
		{"higher index", keyData(false, 6, 0, "x1"), false},
		{"same index, more forwards", keyData(false, 5, 2, "x2"), false},
		{"same index, same forwards", keyData(false, 5, 1, "x3"), false},
		{"same index, fewer forwards", keyData(false, 5, 0, "y1"), true},
		{"lower index", keyData(false, 4, 9, "y2"), true},
		{"verified with a worse index", keyData(true, 8, 9, "y3"), true},
		{"unverified with a better index", keyData(false, 0, 0, "x4"), false},
		{"verified with a better index", keyData(true, 7, 9, "y4"), true},
	} {
		before := etag
		r := wantOK(t, step.name, tn.do("PUT", keysURL(v1, roomA, "s1"), alice, step.key))
		var c int
		etag, c = updated(t, r)
		if c != 3 || (etag != before) != step.replace {
			t.Fatalf("%s: etag %q→%q count %d, want replaced=%v", step.name, before, etag, c, step.replace)
		}
		got := sessionTag(t, wantOK(t, "get session", tn.do("GET", keysURL(v1, roomA, "s1"), alice, nil)).Body)
		if strings.HasPrefix(got, "x") {
			t.Fatalf("%s: the worse key %q was stored", step.name, got)
		}
		if step.replace && got != step.key["session_data"].(map[string]string)["ciphertext"][3:] {
			t.Fatalf("%s: stored %q", step.name, got)
		}
	}
	if r := tn.do("GET", keysURL(v1, roomA, "s1"), alice, nil); r.Body["is_verified"] != true ||
		r.Body["first_message_index"] != float64(7) || r.Body["forwarded_count"] != float64(9) {
		t.Fatalf("stored key: %s", r.Raw)
	}

	// The room-level upload, then the reads at each level.
	r = wantOK(t, "put room", tn.do("PUT", keysURL(v1, roomB, ""), alice,
		map[string]any{"sessions": map[string]any{"s2": keyData(false, 0, 0, "b2")}}))
	if e, c := updated(t, r); c != 4 || e == etag {
		t.Fatalf("room put: etag %q count %d", e, c)
	}
	all := wantOK(t, "get all", tn.do("GET", keysURL(v1, "", ""), alice, nil))
	var parsed struct {
		Rooms map[string]struct {
			Sessions map[string]json.RawMessage `json:"sessions"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(all.Raw, &parsed); err != nil || len(parsed.Rooms) != 2 ||
		len(parsed.Rooms[roomA].Sessions) != 2 || len(parsed.Rooms[roomB].Sessions) != 2 {
		t.Fatalf("all keys: %s (%v)", all.Raw, err)
	}
	room := wantOK(t, "get room", tn.do("GET", keysURL(v1, roomB, ""), alice, nil))
	sessions, _ := room.Body["sessions"].(map[string]any)
	if len(sessions) != 2 || sessionTag(t, sessions["s2"]) != "b2" || sessionTag(t, sessions["s1"]) != "b1" {
		t.Fatalf("room keys: %s", room.Raw)
	}
	if r := wantOK(t, "empty room", tn.do("GET", keysURL(v1, "!none:test.local", ""), alice, nil)); string(r.Raw) != `{"sessions":{}}` {
		t.Fatalf("room without keys: %s", r.Raw)
	}
	wantErr(t, tn.do("GET", keysURL(v1, roomA, "nope"), alice, nil), 404, ErrCodeNotFound)
	wantErr(t, tn.do("GET", keysURL(v1, "", ""), bob, nil), 404, ErrCodeNotFound)
	wantErr(t, tn.do("GET", keysURL("", "", ""), alice, nil), 400, ErrCodeMissingParam)
	wantErr(t, tn.do("GET", keysURL("7", "", ""), alice, nil), 404, ErrCodeNotFound)

	// A new version: writes to the old one are refused with the current
	// version, reads of it still work.
	v2 := newVersion()
	for _, v := range []string{v1, "x", "9"} {
		r := tn.do("PUT", keysURL(v, roomA, "s3"), alice, keyData(false, 0, 0, "a3"))
		wantErr(t, r, 403, ErrCodeWrongRoomKeysVersion)
		if r.str("current_version") != v2 {
			t.Fatalf("wrong version %q: %s", v, r.Raw)
		}
	}
	if _, c := updated(t, tn.do("GET", roomKeysPath+"/version/"+v1, alice, nil)); c != 4 {
		t.Fatalf("old version count %d", c)
	}
	r = wantOK(t, "put v2", tn.do("PUT", keysURL(v2, roomA, "s3"), alice, keyData(false, 0, 0, "a3")))
	if _, c := updated(t, r); c != 1 {
		t.Fatalf("v2 count %d", c)
	}

	// Deletes, on the old version: a session, a missing one, a room, all.
	etag, _ = updated(t, tn.do("GET", roomKeysPath+"/version/"+v1, alice, nil))
	for _, d := range []struct {
		room, session string
		count         int
		changes       bool
	}{
		{roomA, "s1", 3, true},
		{roomA, "s1", 3, false},
		{roomB, "", 1, true},
		{"", "", 0, true},
		{"", "", 0, false},
	} {
		r := wantOK(t, "delete", tn.do("DELETE", keysURL(v1, d.room, d.session), alice, nil))
		e, c := updated(t, r)
		if c != d.count || (e != etag) != d.changes {
			t.Fatalf("delete %q %q: etag %q→%q count %d, want %d changed=%v", d.room, d.session, etag, e, c, d.count, d.changes)
		}
		etag = e
	}
	wantErr(t, tn.do("DELETE", keysURL("7", "", ""), alice, nil), 404, ErrCodeNotFound)
	if r := tn.do("GET", keysURL(v1, "", ""), alice, nil); string(r.Raw) != `{"rooms":{}}` {
		t.Fatalf("emptied version: %s", r.Raw)
	}

	// Deleting a version takes its keys with it.
	wantOK(t, "delete v2", tn.do("DELETE", roomKeysPath+"/version/"+v2, alice, nil))
	wantErr(t, tn.do("GET", keysURL(v2, "", ""), alice, nil), 404, ErrCodeNotFound)
	wantErr(t, tn.do("GET", keysURL(v2, roomA, "s3"), alice, nil), 404, ErrCodeNotFound)
	wantErr(t, tn.do("DELETE", keysURL(v2, "", ""), alice, nil), 404, ErrCodeNotFound)
	v3 := newVersion()
	if r := tn.do("GET", keysURL(v3, "", ""), alice, nil); string(r.Raw) != `{"rooms":{}}` {
		t.Fatalf("new version after delete: %s", r.Raw)
	}
}

func TestKeyBackupBadKeys(t *testing.T) {
	tn := newTestNode(t, nil)
	_, alice, _ := tn.register("alice", "pw-alice-secret")
	r := wantOK(t, "create", tn.do("POST", roomKeysPath+"/version", alice,
		map[string]any{"algorithm": BackupAlgorithmMegolmV1, "auth_data": backupAuth("pub")}))
	v := r.str("version")
	const room = "!r:test.local"
	good := keyData(false, 0, 0, "good")
	wantOK(t, "seed", tn.do("PUT", keysURL(v, room, "s0"), alice, good))
	etag, _ := updated(t, tn.do("GET", roomKeysPath+"/version", alice, nil))

	without := func(field string) map[string]any {
		k := keyData(false, 0, 0, "k")
		delete(k, field)
		return k
	}
	with := func(field string, value any) map[string]any {
		k := keyData(false, 0, 0, "k")
		k[field] = value
		return k
	}
	many := map[string]any{}
	for i := range maxBackupSessionsPerRequest + 1 {
		many[fmt.Sprintf("s%d", i)] = good
	}
	for _, c := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"no first_message_index", without("first_message_index"), 400, ErrCodeMissingParam},
		{"no forwarded_count", without("forwarded_count"), 400, ErrCodeMissingParam},
		{"no is_verified", without("is_verified"), 400, ErrCodeMissingParam},
		{"no session_data", without("session_data"), 400, ErrCodeMissingParam},
		{"session_data not an object", with("session_data", "ct"), 400, ErrCodeBadJSON},
		{"index not a number", with("first_message_index", "1"), 400, ErrCodeBadJSON},
		{"fractional index", with("first_message_index", 1.5), 400, ErrCodeBadJSON},
		{"negative count", with("forwarded_count", -1), 400, ErrCodeInvalidParam},
		{"is_verified not a bool", with("is_verified", "yes"), 400, ErrCodeBadJSON},
		{"session_data too large", with("session_data", map[string]string{"ciphertext": strings.Repeat("c", maxBackupSessionDataBytes)}), 413, ErrCodeTooLarge},
		{"key not an object", []any{good}, 400, ErrCodeBadJSON},
		{"not JSON", "{\"first_message_index\":", 400, ErrCodeNotJSON},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, tn.do("PUT", keysURL(v, room, "s1"), alice, c.body), c.status, c.code)
		})
	}
	for _, c := range []struct {
		name   string
		url    string
		body   any
		status int
		code   string
	}{
		{"no version", keysURL("", room, ""), map[string]any{"sessions": map[string]any{"s1": good}}, 400, ErrCodeMissingParam},
		{"no sessions", keysURL(v, room, ""), map[string]any{}, 400, ErrCodeMissingParam},
		{"no rooms", keysURL(v, "", ""), map[string]any{}, 400, ErrCodeMissingParam},
		{"room without sessions", keysURL(v, "", ""), map[string]any{"rooms": map[string]any{room: map[string]any{}}}, 400, ErrCodeMissingParam},
		{"not a room ID", keysURL(v, "", ""), map[string]any{"rooms": map[string]any{"r:test.local": map[string]any{"sessions": map[string]any{"s1": good}}}}, 400, ErrCodeInvalidParam},
		{"room ID in the path", keysURL(v, "#alias:test.local", "s1"), good, 400, ErrCodeInvalidParam},
		{"long session ID", keysURL(v, room, strings.Repeat("s", maxBackupIDBytes+1)), good, 400, ErrCodeInvalidParam},
		{"empty session ID", keysURL(v, room, ""), map[string]any{"sessions": map[string]any{"": good}}, 400, ErrCodeInvalidParam},
		{"too many sessions", keysURL(v, room, ""), map[string]any{"sessions": many}, 413, ErrCodeTooLarge},
		// One bad key among good ones stores none of them.
		{"one bad key", keysURL(v, "", ""), map[string]any{"rooms": map[string]any{
			room:            map[string]any{"sessions": map[string]any{"s1": good, "s2": good}},
			"!z:test.local": map[string]any{"sessions": map[string]any{"s1": without("is_verified")}},
		}}, 400, ErrCodeMissingParam},
	} {
		t.Run(c.name, func(t *testing.T) { wantErr(t, tn.do("PUT", c.url, alice, c.body), c.status, c.code) })
	}
	e, count := updated(t, tn.do("GET", roomKeysPath+"/version", alice, nil))
	if e != etag || count != 1 {
		t.Fatalf("refused uploads changed the backup: etag %q→%q count %d", etag, e, count)
	}
	if r := tn.do("GET", keysURL(v, room, "s0"), alice, nil); sessionTag(t, r.Body) != "good" {
		t.Fatalf("seed key: %s", r.Raw)
	}
}

// FuzzKeyBackupUpload throws arbitrary bodies and versions at the three
// upload endpoints: each is answered once, never with a 500, and a refused
// upload leaves the backup exactly as it was (no partial writes), while an
// accepted one reports the stored number of keys.
func FuzzKeyBackupUpload(f *testing.F) {
	good, _ := json.Marshal(keyData(true, 1, 0, "f"))
	f.Add(uint8(0), "1", `{"rooms":{"!r:x":{"sessions":{"s":`+string(good)+`}}}}`)
	f.Add(uint8(1), "1", `{"sessions":{"s":`+string(good)+`,"t":{"first_message_index":1}}}`)
	f.Add(uint8(2), "1", string(good))
	f.Add(uint8(2), "2", `{"first_message_index":-1,"forwarded_count":0,"is_verified":true,"session_data":{}}`)
	f.Add(uint8(0), "01", `{"rooms":{"x":null}}`)
	tn := newTestNode(f, nil)
	userID, tok, _ := tn.register("fuzzer", "pw")
	if r := tn.do("POST", roomKeysPath+"/version", tok,
		map[string]any{"algorithm": BackupAlgorithmMegolmV1, "auth_data": backupAuth("pub")}); r.Status != 200 {
		f.Fatalf("create: %s", r.Raw)
	}
	f.Fuzz(func(t *testing.T, level uint8, version, body string) {
		before, err := tn.store.KeyBackup(userID, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Dispatch directly: tn's helpers report to f, not t.
		path := []string{roomKeysPath + "/keys", roomKeysPath + "/keys/%21r%3Ax", roomKeysPath + "/keys/%21r%3Ax/s"}[level%3]
		req := &Request{Method: "PUT", Path: path, Query: url.Values{"version": {version}}, Body: []byte(body),
			AccessToken: tok, RemoteIP: "192.0.2.9"}
		answers := 0
		var resp Response
		tn.Dispatch(req, func(r Response) { answers++; resp = r })
		if answers != 1 || resp.Status == 500 {
			t.Fatalf("PUT %s %q: %d answers, %d %v", path, body, answers, resp.Status, resp.Body)
		}
		after, err := tn.store.KeyBackup(userID, 0)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := tn.store.BackupKeys(userID, after.Version, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(keys)) != after.Count {
			t.Fatalf("count %d, %d keys stored", after.Count, len(keys))
		}
		if resp.Status != 200 && (after.ETag != before.ETag || after.Count != before.Count) {
			t.Fatalf("refused upload (%d %v) changed the backup: %+v → %+v", resp.Status, resp.Body, before, after)
		}
		if resp.Status == 200 {
			m, _ := resp.Body.(map[string]any)
			if c, _ := m["count"].(int64); c != after.Count {
				t.Fatalf("answered count %v, stored %d", m["count"], after.Count)
			}
		}
	})
}

// The per-version key limit answers 413 M_TOO_LARGE and stores nothing;
// the per-user version limit answers 403 M_LIMIT_EXCEEDED until a version
// is deleted.
func TestKeyBackupLimits(t *testing.T) {
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("alice", "pw")
	b := tn.Module(keyBackupModuleName).(*keyBackups)
	if b.maxKeys != maxBackupKeysPerVersion || b.maxVersions != maxBackupVersions {
		t.Fatalf("limits %d %d", b.maxKeys, b.maxVersions)
	}
	b.maxKeys, b.maxVersions = 2, 2
	create := func() testResp {
		return tn.do("POST", roomKeysPath+"/version", tok, map[string]any{"algorithm": BackupAlgorithmMegolmV1, "auth_data": backupAuth("K")})
	}
	wantOK(t, "create 1", create())
	v := wantOK(t, "create 2", create()).str("version")
	wantErr(t, create(), 403, ErrCodeLimitExceeded)

	put := func(sessions ...string) testResp {
		s := map[string]any{}
		for _, id := range sessions {
			s[id] = keyData(false, 0, 0, id)
		}
		return tn.do("PUT", keysURL(v, "!r:test.local", ""), tok, map[string]any{"sessions": s})
	}
	wantOK(t, "two keys", put("a", "b"))
	wantErr(t, put("a", "c"), 413, ErrCodeTooLarge)
	if _, n := updated(t, wantOK(t, "version", tn.do("GET", roomKeysPath+"/version/"+v, tok, nil))); n != 2 {
		t.Fatalf("count after a refused upload: %d", n)
	}

	wantOK(t, "delete 1", tn.do("DELETE", roomKeysPath+"/version/1", tok, nil))
	wantOK(t, "create after a delete", create())
}
