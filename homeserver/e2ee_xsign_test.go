package homeserver

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"testing"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

// xsKeys is a test user's three cross-signing key pairs.
type xsKeys struct {
	userID                   string
	master, self, userSigner ed25519.PrivateKey
}

func newXSKeys(t testing.TB, userID string, seed uint64) *xsKeys {
	t.Helper()
	rng := clock.SeededRNG(seed)
	k := &xsKeys{userID: userID}
	for _, p := range []*ed25519.PrivateKey{&k.master, &k.self, &k.userSigner} {
		_, priv, err := ed25519.GenerateKey(rng)
		if err != nil {
			t.Fatal(err)
		}
		*p = priv
	}
	return k
}

func pub64(priv ed25519.PrivateKey) string {
	return base64.RawStdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
}

// keyObj is a CrossSigningKey object for priv, signed by signer's master
// key when signed is set.
func (k *xsKeys) keyObj(t testing.TB, usage string, priv ed25519.PrivateKey, signedBy ed25519.PrivateKey) json.RawMessage {
	t.Helper()
	obj := mustJSON(map[string]any{"user_id": k.userID, "usage": []string{usage},
		"keys": map[string]string{"ed25519:" + pub64(priv): pub64(priv)}})
	if signedBy == nil {
		return obj
	}
	return signAs(t, obj, k.userID, "ed25519:"+pub64(signedBy), signedBy)
}

func signAs(t testing.TB, obj []byte, userID, keyID string, priv ed25519.PrivateKey) json.RawMessage {
	t.Helper()
	b, err := event.SignJSON(obj, userID, keyID, priv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// all is an upload body with the three keys.
func (k *xsKeys) all(t testing.TB) map[string]any {
	return map[string]any{
		"master_key":       k.keyObj(t, "master", k.master, nil),
		"self_signing_key": k.keyObj(t, "self_signing", k.self, k.master),
		"user_signing_key": k.keyObj(t, "user_signing", k.userSigner, k.master),
	}
}

// keyOf digs body[field][userID] out of a /keys/query answer.
func keyOf(r testResp, field, userID string) map[string]any {
	m, _ := r.Body[field].(map[string]any)
	k, _ := m[userID].(map[string]any)
	return k
}

// sigOf is signatures[signer][keyID] of a decoded key object.
func sigOf(obj map[string]any, signer, keyID string) string {
	sigs, _ := obj["signatures"].(map[string]any)
	s, _ := sigs[signer].(map[string]any)
	v, _ := s[keyID].(string)
	return v
}

// verifies checks a signature in a decoded key object with pub.
func verifies(t *testing.T, obj map[string]any, signer, keyID string, pub ed25519.PrivateKey) bool {
	t.Helper()
	return obj != nil && event.VerifyJSON(mustJSON(obj), signer, keyID, pub.Public().(ed25519.PublicKey)) == nil
}

func queryKeys(t *testing.T, tn *testNode, token string, users ...string) testResp {
	t.Helper()
	q := map[string]any{}
	for _, u := range users {
		q[u] = []string{}
	}
	r := tn.do("POST", v3+"/keys/query", token, map[string]any{"device_keys": q})
	if r.Status != 200 {
		t.Fatalf("keys/query: %d %s", r.Status, r.Raw)
	}
	return r
}

func TestCrossSigningKeysUpload(t *testing.T) {
	tn := newTestNode(t, nil)
	aliceID, aliceTok, _ := tn.register("alice", "pw")
	bobID, bobTok, _ := tn.register("bob", "pw")
	room := tn.do("POST", v3+"/createRoom", aliceTok, map[string]any{"invite": []string{bobID}}).str("room_id")
	tn.do("POST", v3+"/join/"+url.PathEscape(room), bobTok, map[string]any{})
	bobSince := syncOf(t, tn, bobTok, "").str("next_batch")
	k := newXSKeys(t, aliceID, 21)
	up := v3 + "/keys/device_signing/upload"

	// Shapes and signatures are checked, and nothing of a refused upload is kept.
	wantErr(t, tn.do("POST", up, aliceTok, map[string]any{"self_signing_key": k.keyObj(t, "self_signing", k.self, k.master)}),
		400, ErrCodeMissingParam)
	bad := k.all(t)
	bad["self_signing_key"] = k.keyObj(t, "self_signing", k.self, k.userSigner)
	wantErr(t, tn.do("POST", up, aliceTok, bad), 400, ErrCodeInvalidSignature)
	bad = k.all(t)
	bad["master_key"] = k.keyObj(t, "self_signing", k.master, nil)
	wantErr(t, tn.do("POST", up, aliceTok, bad), 400, ErrCodeInvalidParam)
	bad = map[string]any{"master_key": mustJSON(map[string]any{"user_id": bobID, "usage": []string{"master"},
		"keys": map[string]string{"ed25519:" + pub64(k.master): pub64(k.master)}})}
	wantErr(t, tn.do("POST", up, aliceTok, bad), 400, ErrCodeInvalidParam)
	bad = map[string]any{"master_key": mustJSON(map[string]any{"user_id": aliceID, "usage": []string{"master"},
		"keys": map[string]string{"ed25519:abc": pub64(k.master)}})}
	wantErr(t, tn.do("POST", up, aliceTok, bad), 400, ErrCodeInvalidParam)
	if keys, err := tn.store.CrossSigningKeys(aliceID); err != nil || len(keys) != 0 {
		t.Fatalf("refused uploads stored %v %v", keys, err)
	}

	// The first upload needs no user-interactive auth.
	if r := tn.do("POST", up, aliceTok, k.all(t)); r.Status != 200 {
		t.Fatalf("first upload: %d %s", r.Status, r.Raw)
	}
	// The same keys again need none either, and change nothing.
	pos := roomsOf(tn.Node).pos
	if r := tn.do("POST", up, aliceTok, k.all(t)); r.Status != 200 {
		t.Fatalf("repeated upload: %d %s", r.Status, r.Raw)
	}
	if roomsOf(tn.Node).pos != pos {
		t.Fatal("an unchanged upload took a stream position")
	}
	// Bob and alice both see alice's keys change.
	if s := syncOf(t, tn, bobTok, bobSince); !slices.Contains(deviceListChanged(s), aliceID) {
		t.Fatalf("bob's device_lists: %s", s.Raw)
	}

	// A new self-signing key needs the password.
	k2 := newXSKeys(t, aliceID, 22)
	k2.master = k.master
	repl := map[string]any{"self_signing_key": k2.keyObj(t, "self_signing", k2.self, k.master)}
	r := tn.do("POST", up, aliceTok, repl)
	if r.Status != 401 || r.Body["flows"] == nil || r.str("session") == "" {
		t.Fatalf("replacement without auth: %d %s", r.Status, r.Raw)
	}
	repl["auth"] = map[string]any{"type": "m.login.password", "session": r.str("session"), "password": "wrong",
		"identifier": map[string]string{"type": "m.id.user", "user": "alice"}}
	wantErr(t, tn.do("POST", up, aliceTok, repl), 401, ErrCodeForbidden)
	repl["auth"].(map[string]any)["password"] = "pw"
	if r := tn.do("POST", up, aliceTok, repl); r.Status != 200 {
		t.Fatalf("replacement with auth: %d %s", r.Status, r.Raw)
	}

	// Bob sees alice's master and new self-signing key, not her user-signing key.
	q := queryKeys(t, tn, bobTok, aliceID)
	if mk := keyOf(q, "master_keys", aliceID); mk == nil || mk["keys"].(map[string]any)["ed25519:"+pub64(k.master)] == nil {
		t.Fatalf("bob's query, master: %s", q.Raw)
	}
	if ssk := keyOf(q, "self_signing_keys", aliceID); !verifies(t, ssk, aliceID, "ed25519:"+pub64(k.master), k.master) ||
		ssk["keys"].(map[string]any)["ed25519:"+pub64(k2.self)] == nil {
		t.Fatalf("bob's query, self-signing: %s", q.Raw)
	}
	if usk, _ := q.Body["user_signing_keys"].(map[string]any); usk == nil || len(usk) != 0 {
		t.Fatalf("bob sees user-signing keys: %s", q.Raw)
	}
	// Alice sees her own user-signing key.
	q = queryKeys(t, tn, aliceTok, aliceID)
	if usk := keyOf(q, "user_signing_keys", aliceID); !verifies(t, usk, aliceID, "ed25519:"+pub64(k.master), k.master) {
		t.Fatalf("alice's own user-signing key: %s", q.Raw)
	}
}

func TestCrossSigningSignaturesUpload(t *testing.T) {
	tn := newTestNode(t, nil)
	aliceID, aliceTok, aliceDev := tn.register("alice", "pw")
	bobID, bobTok, _ := tn.register("bob", "pw")
	alice2Tok, alice2Dev := login(t, tn, "alice")
	d1 := newE2EEDevice(t, aliceID, aliceDev, aliceTok, 31)
	d2 := newE2EEDevice(t, aliceID, alice2Dev, alice2Tok, 32)
	for _, d := range []*e2eeDevice{d1, d2} {
		if r := tn.do("POST", v3+"/keys/upload", d.token, map[string]any{"device_keys": d.deviceKeys(t, "")}); r.Status != 200 {
			t.Fatalf("keys/upload: %d %s", r.Status, r.Raw)
		}
	}
	ka, kb := newXSKeys(t, aliceID, 33), newXSKeys(t, bobID, 34)
	for _, u := range []struct {
		tok string
		k   *xsKeys
	}{{aliceTok, ka}, {bobTok, kb}} {
		if r := tn.do("POST", v3+"/keys/device_signing/upload", u.tok, u.k.all(t)); r.Status != 200 {
			t.Fatalf("device_signing/upload: %d %s", r.Status, r.Raw)
		}
	}
	sskID, uskID, d1KeyID := "ed25519:"+pub64(ka.self), "ed25519:"+pub64(ka.userSigner), "ed25519:"+aliceDev
	body := map[string]any{
		aliceID: map[string]any{
			// Device 1 signed by the self-signing key: good.
			aliceDev: signAs(t, d1.deviceKeys(t, ""), aliceID, sskID, ka.self),
			// Device 2 "signed" with the user-signing key under the self-signing key's ID: bad.
			alice2Dev: signAs(t, d2.deviceKeys(t, ""), aliceID, sskID, ka.userSigner),
			// The master key signed by device 1: good.
			pub64(ka.master): signAs(t, ka.keyObj(t, "master", ka.master, nil), aliceID, d1KeyID, d1.priv),
			// No such key.
			"NOSUCHKEY": signAs(t, d1.deviceKeys(t, ""), aliceID, sskID, ka.self),
		},
		// Bob's master key signed by alice's user-signing key: good.
		bobID: map[string]any{pub64(kb.master): signAs(t, kb.keyObj(t, "master", kb.master, nil), aliceID, uskID, ka.userSigner)},
	}
	r := tn.do("POST", v3+"/keys/signatures/upload", aliceTok, body)
	if r.Status != 200 {
		t.Fatalf("signatures/upload: %d %s", r.Status, r.Raw)
	}
	fails, _ := r.Body["failures"].(map[string]any)
	af, _ := fails[aliceID].(map[string]any)
	if len(fails) != 1 || len(af) != 2 {
		t.Fatalf("failures: %s", r.Raw)
	}
	if e, _ := af[alice2Dev].(map[string]any); e["errcode"] != ErrCodeInvalidSignature {
		t.Fatalf("bad device signature: %s", r.Raw)
	}
	if e, _ := af["NOSUCHKEY"].(map[string]any); e["errcode"] != ErrCodeNotFound {
		t.Fatalf("unknown key: %s", r.Raw)
	}

	// Alice sees all three signatures, and they verify.
	q := queryKeys(t, tn, aliceTok, aliceID, bobID)
	devs, _ := q.Body["device_keys"].(map[string]any)[aliceID].(map[string]any)
	dk1, _ := devs[aliceDev].(map[string]any)
	dk2, _ := devs[alice2Dev].(map[string]any)
	if !verifies(t, dk1, aliceID, sskID, ka.self) || sigOf(dk2, aliceID, sskID) != "" {
		t.Fatalf("device signatures in alice's query: %s", q.Raw)
	}
	if !verifies(t, keyOf(q, "master_keys", aliceID), aliceID, d1KeyID, d1.priv) {
		t.Fatalf("device signature over alice's master key: %s", q.Raw)
	}
	if !verifies(t, keyOf(q, "master_keys", bobID), aliceID, uskID, ka.userSigner) {
		t.Fatalf("alice's signature over bob's master key: %s", q.Raw)
	}
	// Bob sees alice's own signatures but not hers over his master key.
	q = queryKeys(t, tn, bobTok, aliceID, bobID)
	dk1, _ = q.Body["device_keys"].(map[string]any)[aliceID].(map[string]any)[aliceDev].(map[string]any)
	if !verifies(t, dk1, aliceID, sskID, ka.self) || !verifies(t, keyOf(q, "master_keys", aliceID), aliceID, d1KeyID, d1.priv) {
		t.Fatalf("alice's own signatures in bob's query: %s", q.Raw)
	}
	if sigOf(keyOf(q, "master_keys", bobID), aliceID, uskID) != "" {
		t.Fatalf("bob sees alice's user-signing signature: %s", q.Raw)
	}
	// An object that is not the stored one is refused.
	forged := signAs(t, d1.deviceKeys(t, "x"), aliceID, sskID, ka.self)
	r = tn.do("POST", v3+"/keys/signatures/upload", aliceTok, map[string]any{aliceID: map[string]any{aliceDev: forged}})
	if e, _ := r.Body["failures"].(map[string]any)[aliceID].(map[string]any)[aliceDev].(map[string]any); e["errcode"] != ErrCodeInvalidParam {
		t.Fatalf("changed device object: %s", r.Raw)
	}
	// A master key object that is not bob's stored one is refused.
	other := mustJSON(map[string]any{"user_id": bobID, "usage": []string{"master", "other"},
		"keys": map[string]string{"ed25519:" + pub64(kb.master): pub64(kb.master)}})
	r = tn.do("POST", v3+"/keys/signatures/upload", aliceTok, map[string]any{bobID: map[string]any{
		pub64(kb.master): signAs(t, other, aliceID, uskID, ka.userSigner)}})
	if e, _ := r.Body["failures"].(map[string]any)[bobID].(map[string]any)[pub64(kb.master)].(map[string]any); e["errcode"] != ErrCodeInvalidParam {
		t.Fatalf("changed master key object: %s", r.Raw)
	}
	// A new self-signing key invalidates the device signatures by the old one.
	k2 := newXSKeys(t, aliceID, 35)
	r = tn.do("POST", v3+"/keys/device_signing/upload", aliceTok, map[string]any{
		"self_signing_key": k2.keyObj(t, "self_signing", k2.self, ka.master),
		"auth": map[string]any{"type": "m.login.password", "password": "pw",
			"identifier": map[string]string{"type": "m.id.user", "user": aliceID}}})
	if r.Status != 200 {
		t.Fatalf("new self-signing key: %d %s", r.Status, r.Raw)
	}
	q = queryKeys(t, tn, aliceTok, aliceID)
	dk1, _ = q.Body["device_keys"].(map[string]any)[aliceID].(map[string]any)[aliceDev].(map[string]any)
	if sigOf(dk1, aliceID, sskID) != "" {
		t.Fatalf("signature by a replaced self-signing key still served: %s", q.Raw)
	}
	// Bad bodies, and bad entries in good ones.
	wantErr(t, tn.do("POST", v3+"/keys/signatures/upload", aliceTok, `{"x": 1}`), 400, ErrCodeBadJSON)
	r = tn.do("POST", v3+"/keys/signatures/upload", aliceTok,
		`{"nobody": {"K": {}}, "@alice:test.local": {"X": 5, "Y": {"signatures": 5}}, "@carol:test.local": {"K": []}}`)
	fails, _ = r.Body["failures"].(map[string]any)
	codes := map[string]any{}
	for u, ks := range fails {
		for k, e := range ks.(map[string]any) {
			codes[u+" "+k] = e.(map[string]any)["errcode"]
		}
	}
	if r.Status != 200 || len(codes) != 4 || codes["nobody K"] != ErrCodeInvalidParam || codes[aliceID+" X"] != ErrCodeBadJSON ||
		codes[aliceID+" Y"] != ErrCodeBadJSON || codes["@carol:test.local K"] != ErrCodeBadJSON {
		t.Fatalf("bad entries: %d %s", r.Status, r.Raw)
	}
}

func TestFedCrossSigning(t *testing.T) {
	fn, alice, bob, _ := twoServers(t)
	aliceDev := alice.tn.do("GET", v3+"/account/whoami", alice.token, nil).str("device_id")
	d := newE2EEDevice(t, alice.id, aliceDev, alice.token, 41)
	fn.call(alice.tn, 200, "POST", v3+"/keys/upload", alice.token, map[string]any{"device_keys": d.deviceKeys(t, "")})
	bobSince := fn.call(bob.tn, 200, "GET", v3+"/sync", bob.token, nil).str("next_batch")

	// Alice's cross-signing keys reach b.test as m.signing_key_update.
	ka := newXSKeys(t, alice.id, 42)
	fn.call(alice.tn, 200, "POST", v3+"/keys/device_signing/upload", alice.token, ka.all(t))
	s := fn.call(bob.tn, 200, "GET", v3+"/sync?since="+url.QueryEscape(bobSince), bob.token, nil)
	if !slices.Contains(deviceListChanged(s), alice.id) {
		t.Fatalf("bob's device_lists after alice's cross-signing upload: %s", s.Raw)
	}
	// Bob queries them over federation: master and self-signing, no user-signing.
	q := fn.call(bob.tn, 200, "POST", v3+"/keys/query", bob.token, map[string]any{"device_keys": map[string]any{alice.id: []string{}}})
	masterID := "ed25519:" + pub64(ka.master)
	if mk := keyOf(q, "master_keys", alice.id); mk == nil || mk["keys"].(map[string]any)[masterID] == nil {
		t.Fatalf("remote master key: %s", q.Raw)
	}
	if !verifies(t, keyOf(q, "self_signing_keys", alice.id), alice.id, masterID, ka.master) {
		t.Fatalf("remote self-signing key: %s", q.Raw)
	}
	if usk, _ := q.Body["user_signing_keys"].(map[string]any); len(usk) != 0 {
		t.Fatalf("remote user-signing key served: %s", q.Raw)
	}
	if m, _, err := bob.tn.store.RemoteCrossSigningKeys(alice.id); err != nil || m == nil {
		t.Fatalf("alice's cross-signing keys not cached on b.test: %v", err)
	}
	// Alice signs her device and her master key; b.test's cache goes stale
	// and the next query carries the signatures.
	sskID := "ed25519:" + pub64(ka.self)
	r := fn.call(alice.tn, 200, "POST", v3+"/keys/signatures/upload", alice.token, map[string]any{alice.id: map[string]any{
		aliceDev:         signAs(t, d.deviceKeys(t, ""), alice.id, sskID, ka.self),
		pub64(ka.master): signAs(t, ka.keyObj(t, "master", ka.master, nil), alice.id, "ed25519:"+aliceDev, d.priv)}})
	if f, _ := r.Body["failures"].(map[string]any); len(f) != 0 {
		t.Fatalf("signatures/upload: %s", r.Raw)
	}
	if _, _, err := bob.tn.store.RemoteCrossSigningKeys(alice.id); err == nil {
		t.Fatal("alice's cached cross-signing keys still fresh after her signatures")
	}
	q = fn.call(bob.tn, 200, "POST", v3+"/keys/query", bob.token, map[string]any{"device_keys": map[string]any{alice.id: []string{}}})
	dk, _ := q.Body["device_keys"].(map[string]any)[alice.id].(map[string]any)[aliceDev].(map[string]any)
	if !verifies(t, dk, alice.id, sskID, ka.self) || !verifies(t, keyOf(q, "master_keys", alice.id), alice.id, "ed25519:"+aliceDev, d.priv) {
		t.Fatalf("remote signatures: %s", q.Raw)
	}
	// Bob signs alice's master key with his user-signing key: only bob sees it.
	kb := newXSKeys(t, bob.id, 43)
	fn.call(bob.tn, 200, "POST", v3+"/keys/device_signing/upload", bob.token, kb.all(t))
	bobUSK := "ed25519:" + pub64(kb.userSigner)
	r = fn.call(bob.tn, 200, "POST", v3+"/keys/signatures/upload", bob.token, map[string]any{alice.id: map[string]any{
		pub64(ka.master): signAs(t, mustJSON(keyOf(q, "master_keys", alice.id)), bob.id, bobUSK, kb.userSigner)}})
	if f, _ := r.Body["failures"].(map[string]any); len(f) != 0 {
		t.Fatalf("bob's signature over alice's master key: %s", r.Raw)
	}
	q = fn.call(bob.tn, 200, "POST", v3+"/keys/query", bob.token, map[string]any{"device_keys": map[string]any{alice.id: []string{}}})
	if !verifies(t, keyOf(q, "master_keys", alice.id), bob.id, bobUSK, kb.userSigner) {
		t.Fatalf("bob's own signature over alice's master key: %s", q.Raw)
	}
	qa := fn.call(alice.tn, 200, "POST", v3+"/keys/query", alice.token, map[string]any{"device_keys": map[string]any{alice.id: []string{}}})
	if sigOf(keyOf(qa, "master_keys", alice.id), bob.id, bobUSK) != "" {
		t.Fatalf("alice sees bob's signature: %s", qa.Raw)
	}
	// a.test's federation answers carry alice's master and self-signing
	// keys with her own signatures, never bob's nor her user-signing key.
	fed := func(method, uri string, body any) testResp {
		var raw []byte
		if body != nil {
			raw = mustJSON(body)
		}
		return fn.signed(alice.tn, "b.test", bob.tn.key.ID, bob.tn.key.Key, "a.test", method, uri, raw)
	}
	fq := fed("POST", "/_matrix/federation/v1/user/keys/query", map[string]any{"device_keys": map[string]any{alice.id: []string{}}})
	fmk := keyOf(fq, "master_keys", alice.id)
	if fq.Status != 200 || !verifies(t, fmk, alice.id, "ed25519:"+aliceDev, d.priv) || sigOf(fmk, bob.id, bobUSK) != "" ||
		!verifies(t, keyOf(fq, "self_signing_keys", alice.id), alice.id, masterID, ka.master) || fq.Body["user_signing_keys"] != nil {
		t.Fatalf("federation user/keys/query: %d %s", fq.Status, fq.Raw)
	}
	ud := fed("GET", "/_matrix/federation/v1/user/devices/"+url.PathEscape(alice.id), nil)
	mk, _ := ud.Body["master_key"].(map[string]any)
	devs, _ := ud.Body["devices"].([]any)
	dev0, _ := devs[0].(map[string]any)
	keys0, _ := dev0["keys"].(map[string]any)
	if ud.Status != 200 || !verifies(t, mk, alice.id, "ed25519:"+aliceDev, d.priv) || !verifies(t, keys0, alice.id, sskID, ka.self) {
		t.Fatalf("federation user/devices: %d %s", ud.Status, ud.Raw)
	}
	// m.signing_key_update about a user of another server is refused.
	if err := e2eeOf(bob.tn.Node).eduSigningKeyUpdate("evil.test", json.RawMessage(`{"user_id":"`+alice.id+`"}`)); err == nil {
		t.Fatal("signing key update from the wrong origin accepted")
	}
}

// A user-signing signature over a remote user's master key that this
// server has not seen is refused: nothing stored, no change announced.
func TestCrossSigningSignatureUnknownRemoteMaster(t *testing.T) {
	tn := newTestNode(t, nil)
	aliceID, aliceTok, _ := tn.register("alice", "pw")
	ka, kz := newXSKeys(t, aliceID, 51), newXSKeys(t, "@zed:elsewhere.test", 52)
	if r := tn.do("POST", v3+"/keys/device_signing/upload", aliceTok, ka.all(t)); r.Status != 200 {
		t.Fatalf("device_signing/upload: %d %s", r.Status, r.Raw)
	}
	uskID := "ed25519:" + pub64(ka.userSigner)
	r := tn.do("POST", v3+"/keys/signatures/upload", aliceTok, map[string]any{kz.userID: map[string]any{
		pub64(kz.master): signAs(t, kz.keyObj(t, "master", kz.master, nil), aliceID, uskID, ka.userSigner)}})
	f, _ := r.Body["failures"].(map[string]any)[kz.userID].(map[string]any)
	if e, _ := f[pub64(kz.master)].(map[string]any); r.Status != 200 || e["errcode"] != ErrCodeNotFound {
		t.Fatalf("signature over an unknown remote master key: %d %s", r.Status, r.Raw)
	}
	if sigs, err := tn.store.CrossSigningSigsOn(kz.userID, aliceID); err != nil || len(sigs) != 0 {
		t.Fatalf("stored signatures on %s: %v %v", kz.userID, sigs, err)
	}
	changed, err := tn.store.DeviceListsChangedSince(0, 1<<62)
	if err != nil || slices.Contains(changed, kz.userID) {
		t.Fatalf("device list change announced for %s: %v %v", kz.userID, changed, err)
	}
}
