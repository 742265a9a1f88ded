package homeserver

// Cross-signing. Spec: client-server-api "End-to-End Encryption" →
// "Cross-signing" (POST /keys/device_signing/upload, POST
// /keys/signatures/upload, the master_keys, self_signing_keys and
// user_signing_keys of POST /keys/query) and server-server-api
// "End-to-End Encryption" (master_keys and self_signing_keys in the
// user/keys/query answer, the m.signing_key_update EDU).
//
// A user has up to three cross-signing keys: the master key, and the
// self-signing and user-signing keys, which the master key signs. The
// self-signing key signs the user's own devices, the user-signing key
// signs other users' master keys, and the user's devices may sign the
// master key. Keys are stored as uploaded (canonical JSON); signatures
// uploaded later are stored apart (store.CrossSigningSig) and merged into
// the key objects when they are served, and only while the signed key and
// the signing key are still the current ones.
//
// Who sees what (client-server-api POST /keys/query): everyone sees a
// user's master and self-signing keys with the signatures the user made
// (by devices over the master key, by the self-signing key over devices);
// a signature by another user's user-signing key over a master key is
// shown only to that other user; the user-signing key is shown only to its
// owner. Over federation only the owner's own signatures travel.
//
// Changes: a change of a local user's cross-signing keys, or a new
// signature by their devices over their master key, is a device list
// change at a new stream position (device_lists.changed in /sync of the
// users sharing a room, the user included) and goes as
// m.signing_key_update to the servers sharing a room. A self-signing
// signature over a device changes that device's keys (m.device_list_update,
// e2ee.go). Received m.signing_key_update EDUs mark the user's cached keys
// stale (e2ee_fed.go).

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// ErrCodeInvalidSignature: a cross-signing key or signature does not
// verify. Spec: client-server-api "Other error codes".
const ErrCodeInvalidSignature = "M_INVALID_SIGNATURE"

// crossSigningRoutes is the route group of cross-signing. It runs after
// e2eeRoutes, whose module it extends.
func crossSigningRoutes(n *Node) ([]Route, error) {
	m := e2eeOf(n)
	if m == nil {
		return nil, errors.New("cross-signing: the e2ee module is missing")
	}
	const v3 = "/_matrix/client/v3"
	return []Route{
		{Method: "POST", Pattern: v3 + "/keys/device_signing/upload", Auth: AuthUser, Handle: m.handleDeviceSigningUpload},
		{Method: "POST", Pattern: v3 + "/keys/signatures/upload", Auth: AuthUser, Handle: m.handleSignaturesUpload},
	}, nil
}

// present reports whether an optional JSON member was given (not absent,
// not null).
func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// parseCrossSigningKey checks the shape of a CrossSigningKey object
// (client-server-api "CrossSigningKey"): it belongs to userID, lists usage,
// and has exactly one key "ed25519:<unpadded base64 public key>" whose
// value is that public key. Errors are 400 M_INVALID_PARAM or M_BAD_JSON.
func parseCrossSigningKey(raw json.RawMessage, userID, usage string) (store.CrossSigningKey, ed25519.PublicKey, error) {
	var k struct {
		UserID string            `json:"user_id"`
		Usage  []string          `json:"usage"`
		Keys   map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return store.CrossSigningKey{}, nil, Errorf(400, ErrCodeBadJSON, "%s key: %v", usage, err)
	}
	if k.UserID != userID {
		return store.CrossSigningKey{}, nil, Errorf(400, ErrCodeInvalidParam, "%s key is for %q, not %s", usage, k.UserID, userID)
	}
	if !slices.Contains(k.Usage, usage) {
		return store.CrossSigningKey{}, nil, Errorf(400, ErrCodeInvalidParam, "%s key: usage %q lacks %q", usage, k.Usage, usage)
	}
	if len(k.Keys) != 1 {
		return store.CrossSigningKey{}, nil, Errorf(400, ErrCodeInvalidParam, "%s key: want exactly one key, got %d", usage, len(k.Keys))
	}
	var keyID, value string
	for keyID, value = range k.Keys {
	}
	alg, name, err := splitKeyID(keyID)
	if err != nil || alg != "ed25519" || name != value {
		return store.CrossSigningKey{}, nil, Errorf(400, ErrCodeInvalidParam, "%s key: key ID %q is not ed25519:<its public key>", usage, keyID)
	}
	pub, err := decodeKey(value)
	if err != nil {
		return store.CrossSigningKey{}, nil, Errorf(400, ErrCodeInvalidParam, "%s key: %v", usage, err)
	}
	canon, err := event.CanonicalJSON(raw)
	if err != nil {
		return store.CrossSigningKey{}, nil, Errorf(400, ErrCodeBadJSON, "%s key: %v", usage, err)
	}
	return store.CrossSigningKey{Usage: usage, KeyID: keyID, JSON: canon}, pub, nil
}

// pubOf is the public key part of a cross-signing key ID.
func pubOf(keyID string) string { return strings.TrimPrefix(keyID, "ed25519:") }

// deviceSigningUpload is the body of POST /keys/device_signing/upload.
type deviceSigningUpload struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
	Auth           *authDict       `json:"auth"`
}

// checkDeviceSigningUpload validates an upload against the user's stored
// keys and returns the keys that are new or different (in the order
// master, self-signing, user-signing) and whether the user had a master
// key already. The self-signing and user-signing keys must be signed by
// the uploaded master key, or by the stored one when none is uploaded.
func (m *e2eeModule) checkDeviceSigningUpload(userID string, body *deviceSigningUpload) (changed []store.CrossSigningKey, hadMaster bool, err error) {
	stored, err := m.n.store.CrossSigningKeys(userID)
	if err != nil {
		return nil, false, err
	}
	old, hadMaster := stored[store.UsageMaster]
	var master store.CrossSigningKey
	var masterPub ed25519.PublicKey
	switch {
	case present(body.MasterKey):
		if master, masterPub, err = parseCrossSigningKey(body.MasterKey, userID, store.UsageMaster); err != nil {
			return nil, false, err
		}
	case hadMaster:
		master = old
		if masterPub, err = decodeKey(pubOf(old.KeyID)); err != nil {
			return nil, false, fmt.Errorf("stored master key of %s: %w", userID, err)
		}
	case present(body.SelfSigningKey) || present(body.UserSigningKey):
		return nil, false, Errorf(400, ErrCodeMissingParam, "no master key is available")
	}
	keys := []store.CrossSigningKey{}
	if present(body.MasterKey) {
		keys = append(keys, master)
	}
	for _, sub := range []struct {
		usage string
		raw   json.RawMessage
	}{{store.UsageSelfSigning, body.SelfSigningKey}, {store.UsageUserSigning, body.UserSigningKey}} {
		if !present(sub.raw) {
			continue
		}
		k, _, err := parseCrossSigningKey(sub.raw, userID, sub.usage)
		if err != nil {
			return nil, false, err
		}
		if err := event.VerifyJSON(k.JSON, userID, master.KeyID, masterPub); err != nil {
			return nil, false, Errorf(400, ErrCodeInvalidSignature, "%s key is not signed by the master key: %v", sub.usage, err)
		}
		keys = append(keys, k)
	}
	devs, err := m.n.store.Devices(userID)
	if err != nil {
		return nil, false, err
	}
	for _, k := range keys {
		for _, d := range devs {
			if d.DeviceID == pubOf(k.KeyID) {
				return nil, false, Errorf(403, ErrCodeForbidden, "%s key ID %s is one of the user's device IDs", k.Usage, k.KeyID)
			}
		}
		if s, ok := stored[k.Usage]; !ok || string(s.JSON) != string(k.JSON) {
			changed = append(changed, k)
		}
	}
	return changed, hadMaster, nil
}

// handleDeviceSigningUpload: POST /keys/device_signing/upload
// {"master_key", "self_signing_key", "user_signing_key", "auth"} → {}.
//
// User-interactive authentication (m.login.password) is required unless
// the user has no master key yet, or the request holds no new keys (every
// key in it equals the stored one), as the spec's endpoint description
// says (MSC3967). The keys are checked before the 401 challenge, so a bad
// upload fails at once with 400, and again after it, since the stored
// keys may have changed meanwhile.
func (m *e2eeModule) handleDeviceSigningUpload(c *Call) {
	var body deviceSigningUpload
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	changed, hadMaster, err := m.checkDeviceSigningUpload(c.UserID, &body)
	if err != nil {
		c.Fail(err)
		return
	}
	if len(changed) == 0 {
		c.Reply(200, map[string]any{})
		return
	}
	apply := func() {
		changed, _, err := m.checkDeviceSigningUpload(c.UserID, &body)
		if err == nil {
			err = m.putCrossSigningKeys(c.UserID, changed)
		}
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, map[string]any{})
	}
	if !hadMaster {
		apply()
		return
	}
	m.n.requirePassword(c, body.Auth, apply)
}

// putCrossSigningKeys stores changed keys of a local user and announces
// the change (m.signing_key_update only when the master or self-signing
// key changed: other servers never see the user-signing key).
func (m *e2eeModule) putCrossSigningKeys(userID string, changed []store.CrossSigningKey) error {
	if len(changed) == 0 {
		return nil
	}
	if err := m.n.store.PutCrossSigningKeys(userID, changed); err != nil {
		return err
	}
	announce := slices.ContainsFunc(changed, func(k store.CrossSigningKey) bool { return k.Usage != store.UsageUserSigning })
	return m.crossSigningChanged(userID, announce)
}

// crossSigningChanged records a change of a local user's cross-signing
// keys at a new stream position, wakes the long polls of the users
// sharing a room, and, when announce is set, sends m.signing_key_update
// {"user_id", "master_key", "self_signing_key"} to the servers sharing a
// room (server-server-api "End-to-End Encryption").
func (m *e2eeModule) crossSigningChanged(userID string, announce bool) error {
	if err := m.n.store.KeysChanged(userID, m.nextPos()); err != nil {
		return err
	}
	m.wakeLocal(m.roomPeers(userID))
	f := m.n.Federation()
	dests := m.peerServers(userID)
	if !announce || f == nil || len(dests) == 0 {
		return nil
	}
	q := m.newXSignQuery("")
	if err := q.addLocal(userID); err != nil {
		return err
	}
	if err := q.mergeSignatures(nil); err != nil {
		return err
	}
	edu := map[string]any{"user_id": userID}
	if k := q.master[userID]; k != nil {
		edu["master_key"] = k
	}
	if k := q.selfSigning[userID]; k != nil {
		edu["self_signing_key"] = k
	}
	if err := f.SendEDU(dests, "m.signing_key_update", edu); err != nil {
		m.n.log.Error("cannot queue signing key update", "user", userID, "err", err)
	}
	return nil
}

// xsignQuery gathers the cross-signing keys of a /keys/query answer as
// viewer sees them (viewer "" for another server: the owners' own
// signatures only). It belongs to the node loop.
type xsignQuery struct {
	m      *e2eeModule
	viewer string
	// user ID → key object
	master, selfSigning, userSigning map[string]json.RawMessage
	// remote user ID → the keys to cache with their device keys
	toCache map[string][2]json.RawMessage
}

func (m *e2eeModule) newXSignQuery(viewer string) *xsignQuery {
	return &xsignQuery{m: m, viewer: viewer, master: map[string]json.RawMessage{},
		selfSigning: map[string]json.RawMessage{}, userSigning: map[string]json.RawMessage{},
		toCache: map[string][2]json.RawMessage{}}
}

// addLocal adds a local user's keys (their user-signing key only when the
// viewer is the user).
func (q *xsignQuery) addLocal(userID string) error {
	keys, err := q.m.n.store.CrossSigningKeys(userID)
	if err != nil {
		return err
	}
	if k, ok := keys[store.UsageMaster]; ok {
		q.master[userID] = k.JSON
	}
	if k, ok := keys[store.UsageSelfSigning]; ok {
		q.selfSigning[userID] = k.JSON
	}
	if k, ok := keys[store.UsageUserSigning]; ok && userID == q.viewer {
		q.userSigning[userID] = k.JSON
	}
	return nil
}

// addCached adds a remote user's cached keys and reports whether a fresh
// cache entry was there (if not, the user must be asked for afresh).
func (q *xsignQuery) addCached(userID string) bool {
	master, ss, err := q.m.n.store.RemoteCrossSigningKeys(userID)
	if err != nil {
		return false
	}
	if master != nil {
		q.master[userID] = master
	}
	if ss != nil {
		q.selfSigning[userID] = ss
	}
	return true
}

// addRemote adds the keys a remote server answered for one of its users,
// dropping what does not check out: a master key of the wrong shape (and
// then the self-signing key too), a self-signing key of the wrong shape or
// not signed by the master key. They are remembered for cacheRemote.
func (q *xsignQuery) addRemote(userID string, master, selfSigning json.RawMessage) {
	var got [2]json.RawMessage
	if present(master) {
		mk, pub, err := parseCrossSigningKey(master, userID, store.UsageMaster)
		if err != nil {
			q.m.n.log.Debug("remote master key dropped", "user", userID, "err", err)
		} else {
			got[0] = mk.JSON
			if present(selfSigning) {
				sk, _, err := parseCrossSigningKey(selfSigning, userID, store.UsageSelfSigning)
				if err == nil {
					err = event.VerifyJSON(sk.JSON, userID, mk.KeyID, pub)
				}
				if err != nil {
					q.m.n.log.Debug("remote self-signing key dropped", "user", userID, "err", err)
				} else {
					got[1] = sk.JSON
				}
			}
		}
	}
	if got[0] != nil {
		q.master[userID] = got[0]
	}
	if got[1] != nil {
		q.selfSigning[userID] = got[1]
	}
	q.toCache[userID] = got
}

// cacheRemote caches the keys addRemote took for userID along with the
// device keys cached at stream position pos.
func (q *xsignQuery) cacheRemote(userID string, pos int64) {
	got, ok := q.toCache[userID]
	if !ok {
		return
	}
	if err := q.m.n.store.PutRemoteCrossSigningKeys(userID, got[0], got[1], pos); err != nil {
		q.m.n.log.Warn("cannot cache remote cross-signing keys", "user", userID, "err", err)
	}
}

// fill merges the stored signatures into the gathered keys and into
// deviceKeys (user → device → keys), and puts master_keys,
// self_signing_keys and user_signing_keys into a client's answer body.
// An answer to another server gets master_keys and self_signing_keys, and
// only when not empty (both are optional there): bytes count on the links
// this server is built for.
func (q *xsignQuery) fill(body map[string]any, deviceKeys map[string]map[string]json.RawMessage) error {
	if err := q.mergeSignatures(deviceKeys); err != nil {
		return err
	}
	if q.viewer != "" {
		body["master_keys"], body["self_signing_keys"], body["user_signing_keys"] = q.master, q.selfSigning, q.userSigning
		return nil
	}
	if len(q.master) > 0 {
		body["master_keys"] = q.master
	}
	if len(q.selfSigning) > 0 {
		body["self_signing_keys"] = q.selfSigning
	}
	return nil
}

// mergeSignatures adds to each gathered master key, and to the device keys
// of local users in deviceKeys, the stored signatures the viewer may see
// whose signing and signed keys are both still current.
func (q *xsignQuery) mergeSignatures(deviceKeys map[string]map[string]json.RawMessage) error {
	viewerUSK := ""
	if q.viewer != "" {
		keys, err := q.m.n.store.CrossSigningKeys(q.viewer)
		if err != nil {
			return err
		}
		viewerUSK = keys[store.UsageUserSigning].KeyID
	}
	users := map[string]bool{}
	for u := range q.master {
		users[u] = true
	}
	for u := range deviceKeys {
		if serverOf(u) == q.m.n.ServerName() {
			users[u] = true
		}
	}
	for _, userID := range sortedMapKeys(users) {
		sigs, err := q.m.n.store.CrossSigningSigsOn(userID, q.viewer)
		if err != nil {
			return err
		}
		if len(sigs) == 0 {
			continue
		}
		ssk := ""
		if k, ok := q.selfSigning[userID]; ok && serverOf(userID) == q.m.n.ServerName() {
			ssk = keyIDOf(k)
		}
		masterPub := pubOf(keyIDOf(q.master[userID]))
		for _, g := range sigs {
			if g.TargetKey == masterPub && g.TargetPub == masterPub && masterPub != "" &&
				(g.SignerID == userID || (g.SignerID == q.viewer && g.SignerKey == viewerUSK && viewerUSK != "")) {
				if b, err := addSignature(q.master[userID], g.SignerID, g.SignerKey, g.Signature); err == nil {
					q.master[userID] = b
				}
				continue
			}
			dk, ok := deviceKeys[userID][g.TargetKey]
			if !ok || g.SignerID != userID || g.SignerKey != ssk || ssk == "" || deviceEd25519(dk, g.TargetKey) != g.TargetPub {
				continue
			}
			if b, err := addSignature(dk, g.SignerID, g.SignerKey, g.Signature); err == nil {
				deviceKeys[userID][g.TargetKey] = b
			}
		}
	}
	return nil
}

// keyIDOf is the one key ID of a stored cross-signing key object ("" if
// it has none).
func keyIDOf(raw json.RawMessage) string {
	var k struct {
		Keys map[string]string `json:"keys"`
	}
	if raw == nil || json.Unmarshal(raw, &k) != nil || len(k.Keys) != 1 {
		return ""
	}
	for id := range k.Keys {
		return id
	}
	return ""
}

// deviceEd25519 is the ed25519 key of a device keys object ("" if none).
func deviceEd25519(raw json.RawMessage, deviceID string) string {
	var k struct {
		Keys map[string]string `json:"keys"`
	}
	if json.Unmarshal(raw, &k) != nil {
		return ""
	}
	return k.Keys["ed25519:"+deviceID]
}

// addSignature returns obj with signatures[signer][keyID] = sig added.
func addSignature(obj json.RawMessage, signer, keyID, sig string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, err
	}
	sigs := map[string]map[string]string{}
	if raw, ok := m["signatures"]; ok {
		if err := json.Unmarshal(raw, &sigs); err != nil {
			return nil, err
		}
	}
	if sigs[signer] == nil {
		sigs[signer] = map[string]string{}
	}
	sigs[signer][keyID] = sig
	b, err := json.Marshal(sigs)
	if err != nil {
		return nil, err
	}
	m["signatures"] = b
	return json.Marshal(m)
}

// sameSignedContent reports whether two JSON objects are equal apart from
// their "signatures" and "unsigned" members (what a signature covers).
func sameSignedContent(a, b []byte) bool {
	strip := func(raw []byte) ([]byte, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		delete(m, "signatures")
		delete(m, "unsigned")
		out, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		return event.CanonicalJSON(out)
	}
	ca, errA := strip(a)
	cb, errB := strip(b)
	return errA == nil && errB == nil && string(ca) == string(cb)
}

// signedBy verifies the signature of obj by signer's key keyID (public key
// pub) and returns it as a store row over target.
func signedBy(obj json.RawMessage, signer, keyID string, pub ed25519.PublicKey, target store.CrossSigningSig) (store.CrossSigningSig, error) {
	if err := event.VerifyJSON(obj, signer, keyID, pub); err != nil {
		return store.CrossSigningSig{}, Errorf(400, ErrCodeInvalidSignature, "%v", err)
	}
	var o struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	_ = json.Unmarshal(obj, &o)
	target.SignerID, target.SignerKey, target.Signature = signer, keyID, o.Signatures[signer][keyID]
	return target, nil
}

// checkUploadedSignature checks one entry of POST /keys/signatures/upload,
// signer's object for userID's key keyID, and returns the new signatures
// it carries. A self-signing signature over one of signer's devices, a
// signer's device's signature over signer's master key, and a
// user-signing signature over another user's master key are accepted.
func (m *e2eeModule) checkUploadedSignature(signer string, own map[string]store.CrossSigningKey, userID, keyID string, obj json.RawMessage) ([]store.CrossSigningSig, error) {
	var o struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if err := json.Unmarshal(obj, &o); err != nil {
		return nil, Errorf(400, ErrCodeBadJSON, "%v", err)
	}
	mine := o.Signatures[signer]
	if !validUserID(userID) {
		return nil, Errorf(400, ErrCodeInvalidParam, "%q is not a user ID", userID)
	}
	if userID != signer {
		return m.checkUserSignature(signer, own, userID, keyID, obj)
	}
	if master, ok := own[store.UsageMaster]; ok && keyID == pubOf(master.KeyID) {
		// The user's devices sign the master key.
		if !sameSignedContent(obj, master.JSON) {
			return nil, Errorf(400, ErrCodeInvalidParam, "the object is not the stored master key")
		}
		devKeys, err := m.n.store.UserDeviceKeys(signer)
		if err != nil {
			return nil, err
		}
		var out []store.CrossSigningSig
		for _, sk := range sortedMapKeys(mine) {
			if sk == master.KeyID {
				continue // the master key's own signature, if any
			}
			dev, isDev := strings.CutPrefix(sk, "ed25519:")
			i := slices.IndexFunc(devKeys, func(k store.DeviceKeys) bool { return k.DeviceID == dev })
			if !isDev || i < 0 {
				return nil, Errorf(400, ErrCodeInvalidSignature, "signature by unknown key %s", sk)
			}
			pub, err := decodeKey(deviceEd25519(devKeys[i].JSON, dev))
			if err != nil {
				return nil, Errorf(400, ErrCodeInvalidSignature, "device %s has no ed25519 key", dev)
			}
			g, err := signedBy(obj, signer, sk, pub, store.CrossSigningSig{TargetUser: userID, TargetKey: keyID, TargetPub: keyID})
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		if len(out) == 0 {
			return nil, Errorf(400, ErrCodeInvalidSignature, "no device signature over the master key")
		}
		return out, nil
	}
	// The self-signing key signs one of the user's devices.
	devKeys, err := m.n.store.UserDeviceKeys(signer)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(devKeys, func(k store.DeviceKeys) bool { return k.DeviceID == keyID })
	if i < 0 {
		return nil, Errorf(404, ErrCodeNotFound, "no device or master key %s", keyID)
	}
	if !sameSignedContent(obj, devKeys[i].JSON) {
		return nil, Errorf(400, ErrCodeInvalidParam, "the object is not the stored keys of device %s", keyID)
	}
	ssk, ok := own[store.UsageSelfSigning]
	if !ok {
		return nil, Errorf(400, ErrCodeMissingParam, "no self-signing key is uploaded")
	}
	pub, err := decodeKey(pubOf(ssk.KeyID))
	if err != nil {
		return nil, err
	}
	g, err := signedBy(obj, signer, ssk.KeyID, pub, store.CrossSigningSig{TargetUser: userID, TargetKey: keyID,
		TargetPub: deviceEd25519(devKeys[i].JSON, keyID)})
	if err != nil {
		return nil, err
	}
	return []store.CrossSigningSig{g}, nil
}

// checkUserSignature checks signer's user-signing signature over userID's
// master key keyID: the object must be the master key this server holds
// for userID (its own, or the fresh cache of a remote user's, which a
// client's /keys/query before signing fills). A remote user whose keys
// are not cached is refused with M_NOT_FOUND rather than asking their
// server (a federation request per upload), so a signature is never
// stored over a key nobody here has seen.
func (m *e2eeModule) checkUserSignature(signer string, own map[string]store.CrossSigningKey, userID, keyID string, obj json.RawMessage) ([]store.CrossSigningSig, error) {
	usk, ok := own[store.UsageUserSigning]
	if !ok {
		return nil, Errorf(400, ErrCodeMissingParam, "no user-signing key is uploaded")
	}
	k, _, err := parseCrossSigningKey(obj, userID, store.UsageMaster)
	if err != nil {
		return nil, err
	}
	if pubOf(k.KeyID) != keyID {
		return nil, Errorf(400, ErrCodeInvalidParam, "key %s is not the master key in the object", keyID)
	}
	var current []byte
	if serverOf(userID) == m.n.ServerName() {
		theirs, err := m.n.store.CrossSigningKeys(userID)
		if err != nil {
			return nil, err
		}
		if mk, ok := theirs[store.UsageMaster]; ok {
			current = mk.JSON
		} else {
			return nil, Errorf(404, ErrCodeNotFound, "%s has no master key", userID)
		}
	} else {
		mk, _, err := m.n.store.RemoteCrossSigningKeys(userID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if mk == nil {
			return nil, Errorf(404, ErrCodeNotFound, "the master key of %s is not known here; query their keys first", userID)
		}
		current = mk
	}
	if !sameSignedContent(obj, current) {
		return nil, Errorf(400, ErrCodeInvalidParam, "the object is not %s's master key", userID)
	}
	pub, err := decodeKey(pubOf(usk.KeyID))
	if err != nil {
		return nil, err
	}
	g, err := signedBy(obj, signer, usk.KeyID, pub, store.CrossSigningSig{TargetUser: userID, TargetKey: keyID, TargetPub: keyID})
	if err != nil {
		return nil, err
	}
	return []store.CrossSigningSig{g}, nil
}

// handleSignaturesUpload: POST /keys/signatures/upload {user: {key ID:
// signed object}} → {"failures": {user: {key ID: error}}}. Each object is
// taken whole or not at all; the accepted signatures are stored and
// announced: a signed device as a change of that device's keys
// (m.device_list_update), a signed master key as a cross-signing change
// (m.signing_key_update).
//
// NOTSPEC: a signature over another user's master key is reported as a
// change of that user in device_lists.changed, to everyone sharing a room
// with them rather than only to the signer (whose other devices then
// query the user again and see the signature); it is not sent to other
// servers, as only the signer may see it.
func (m *e2eeModule) handleSignaturesUpload(c *Call) {
	var body map[string]map[string]json.RawMessage
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	total := 0
	for _, keys := range body {
		total += len(keys)
	}
	if total > maxKeysPerUpload {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "at most %d signed objects per upload", maxKeysPerUpload))
		return
	}
	own, err := m.n.store.CrossSigningKeys(c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	failures := map[string]map[string]any{}
	var sigs []store.CrossSigningSig
	for _, userID := range sortedMapKeys(body) {
		for _, keyID := range sortedMapKeys(body[userID]) {
			got, err := m.checkUploadedSignature(c.UserID, own, userID, keyID, body[userID][keyID])
			var apiErr *Error
			if errors.As(err, &apiErr) {
				if failures[userID] == nil {
					failures[userID] = map[string]any{}
				}
				failures[userID][keyID] = map[string]any{"errcode": apiErr.Code, "error": apiErr.Message}
				continue
			}
			if err != nil {
				c.Fail(err)
				return
			}
			sigs = append(sigs, got...)
		}
	}
	if err := m.n.store.PutCrossSigningSigs(sigs); err != nil {
		c.Fail(err)
		return
	}
	if err := m.announceSignatures(c.UserID, own, sigs); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"failures": failures})
}

// announceSignatures reports newly stored signatures by signer (see
// handleSignaturesUpload).
func (m *e2eeModule) announceSignatures(signer string, own map[string]store.CrossSigningKey, sigs []store.CrossSigningSig) error {
	devices, masterSigned, others := map[string]bool{}, false, map[string]bool{}
	for _, g := range sigs {
		switch {
		case g.TargetUser != signer:
			others[g.TargetUser] = true
		case g.TargetKey == pubOf(own[store.UsageMaster].KeyID):
			masterSigned = true
		default:
			devices[g.TargetKey] = true
		}
	}
	for _, dev := range sortedMapKeys(devices) {
		keys, err := m.localDeviceKeys(signer, []string{dev})
		if err != nil {
			return err
		}
		q := m.newXSignQuery("")
		if err := q.addLocal(signer); err != nil {
			return err
		}
		if err := q.mergeSignatures(map[string]map[string]json.RawMessage{signer: keys}); err != nil {
			return err
		}
		if err := m.deviceListChanged(signer, dev, keys[dev]); err != nil {
			return err
		}
	}
	if masterSigned {
		if err := m.crossSigningChanged(signer, true); err != nil {
			return err
		}
	}
	for _, u := range sortedMapKeys(others) {
		if err := m.n.store.KeysChanged(u, m.nextPos()); err != nil {
			return err
		}
		m.wakeLocal(m.roomPeers(u))
	}
	return nil
}
