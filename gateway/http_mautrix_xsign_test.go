package gateway

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxmesh/mxmesh/clock"
	mxevent "github.com/mxmesh/mxmesh/homeserver/event"
)

// xsignSet is one user's three cross-signing keys in mautrix's types.
type xsignSet struct {
	master, self, user ed25519.PrivateKey
	req                *mautrix.UploadCrossSigningKeysReq[any]
}

// signInto signs v's JSON as userID's key keyID and decodes the signed
// object back into v.
func signInto(t *testing.T, v any, userID id.UserID, keyID string, priv ed25519.PrivateKey) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	// mautrix's request types send an empty signature map as null.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	if string(obj["signatures"]) == "null" {
		delete(obj, "signatures")
	}
	if raw, err = json.Marshal(obj); err != nil {
		t.Fatal(err)
	}
	signed, err := mxevent.SignJSON(raw, string(userID), keyID, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(signed, v); err != nil {
		t.Fatal(err)
	}
}

func newXSignSet(t *testing.T, userID id.UserID, seed uint64) *xsignSet {
	t.Helper()
	rng := clock.SeededRNG(seed)
	s := &xsignSet{}
	keys := map[id.CrossSigningUsage]*mautrix.CrossSigningKeys{}
	for _, u := range []struct {
		usage id.CrossSigningUsage
		priv  *ed25519.PrivateKey
	}{{id.XSUsageMaster, &s.master}, {id.XSUsageSelfSigning, &s.self}, {id.XSUsageUserSigning, &s.user}} {
		_, priv, err := ed25519.GenerateKey(rng)
		if err != nil {
			t.Fatal(err)
		}
		*u.priv = priv
		pub := id.Ed25519(base64.RawStdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)))
		keys[u.usage] = &mautrix.CrossSigningKeys{UserID: userID, Usage: []id.CrossSigningUsage{u.usage},
			Keys: map[id.KeyID]id.Ed25519{id.NewKeyID(id.KeyAlgorithmEd25519, string(pub)): pub}}
	}
	masterID := "ed25519:" + string(keys[id.XSUsageMaster].FirstKey())
	signInto(t, keys[id.XSUsageSelfSigning], userID, masterID, s.master)
	signInto(t, keys[id.XSUsageUserSigning], userID, masterID, s.master)
	s.req = &mautrix.UploadCrossSigningKeysReq[any]{Master: *keys[id.XSUsageMaster],
		SelfSigning: *keys[id.XSUsageSelfSigning], UserSigning: *keys[id.XSUsageUserSigning]}
	return s
}

// firstKey is the one public key of a cross-signing key ("" if none).
func firstKey(k mautrix.CrossSigningKeys) id.Ed25519 { return k.FirstKey() }

// TestMautrixCrossSigning drives device_signing/upload (with mautrix's
// user-interactive auth callback), signatures/upload and the
// cross-signing parts of /keys/query with mautrix's own types over
// loopback. (mautrix's crypto package, which would do this itself, needs a
// module this repository does not carry.)
func TestMautrixCrossSigning(t *testing.T) {
	srv := startLive(t, t.TempDir(), "127.0.0.1:0")
	ctx := context.Background()
	alice, bob := newUser(t, srv.base, "alice"), newUser(t, srv.base, "bob")
	ka, kb := newXSignSet(t, alice.UserID, 51), newXSignSet(t, bob.UserID, 52)

	// First uploads need no user-interactive auth.
	noUIA := func(*mautrix.RespUserInteractive) any { t.Error("UIA asked for a first upload"); return nil }
	if err := alice.UploadCrossSigningKeys(ctx, ka.req, noUIA); err != nil {
		t.Fatalf("alice's first upload: %v", err)
	}
	if err := bob.UploadCrossSigningKeys(ctx, kb.req, noUIA); err != nil {
		t.Fatalf("bob's first upload: %v", err)
	}
	// Resetting them does, with the password.
	ka2 := newXSignSet(t, alice.UserID, 53)
	asked := false
	err := alice.UploadCrossSigningKeys(ctx, ka2.req, func(r *mautrix.RespUserInteractive) any {
		asked = len(r.Flows) == 1 && len(r.Flows[0].Stages) == 1 && r.Flows[0].Stages[0] == mautrix.AuthTypePassword
		return &mautrix.ReqUIAuthLogin{BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: r.Session},
			User: string(alice.UserID), Password: "pw-alice-secret"}
	})
	if err != nil || !asked {
		t.Fatalf("reset with UIA: asked=%v err=%v", asked, err)
	}

	// Alice signs bob's master key with her (new) user-signing key.
	bobMaster := kb.req.Master
	sig := mautrix.ReqKeysSignatures{UserID: bob.UserID, Usage: bobMaster.Usage, Keys: map[id.KeyID]string{}}
	for k, v := range bobMaster.Keys {
		sig.Keys[k] = string(v)
	}
	aliceUSK := "ed25519:" + string(ka2.req.UserSigning.FirstKey())
	signInto(t, &sig, alice.UserID, aliceUSK, ka2.user)
	up, err := alice.UploadSignatures(ctx, &mautrix.ReqUploadSignatures{bob.UserID: {string(bobMaster.FirstKey()): sig}})
	if err != nil || len(up.Failures) != 0 {
		t.Fatalf("upload signatures: %+v %v", up, err)
	}

	q, err := alice.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: {}, bob.UserID: {}}})
	if err != nil {
		t.Fatalf("alice's query: %v", err)
	}
	if firstKey(q.MasterKeys[alice.UserID]) != ka2.req.Master.FirstKey() ||
		firstKey(q.UserSigningKeys[alice.UserID]) != ka2.req.UserSigning.FirstKey() ||
		firstKey(q.SelfSigningKeys[bob.UserID]) != kb.req.SelfSigning.FirstKey() {
		t.Fatalf("alice's query: %+v", q)
	}
	if _, ok := q.MasterKeys[bob.UserID].Signatures[alice.UserID][id.KeyID(aliceUSK)]; !ok {
		t.Fatalf("alice's signature over bob's master key missing: %+v", q.MasterKeys[bob.UserID])
	}
	q, err = bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: {}, bob.UserID: {}}})
	if err != nil {
		t.Fatalf("bob's query: %v", err)
	}
	if _, ok := q.UserSigningKeys[alice.UserID]; ok || firstKey(q.UserSigningKeys[bob.UserID]) != kb.req.UserSigning.FirstKey() {
		t.Fatalf("bob's user_signing_keys: %+v", q.UserSigningKeys)
	}
	if len(q.MasterKeys[bob.UserID].Signatures[alice.UserID]) != 0 {
		t.Fatalf("bob sees alice's signature: %+v", q.MasterKeys[bob.UserID])
	}
}
