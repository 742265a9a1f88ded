package homeserver

// End-to-end encryption key management, local and over federation.
// Spec: client-server-api "End-to-End Encryption" → "Key management API"
// (POST /keys/upload, /keys/query, /keys/claim, GET /keys/changes) and
// "Extensions to /sync" (device_lists, device_one_time_keys_count,
// device_unused_fallback_key_types); server-server-api "Device
// Management" (GET /user/devices, m.device_list_update) and "End-to-End
// Encryption" (POST /user/keys/query, /user/keys/claim).
//
// The e2ee module also owns the other per-device and per-user streams of
// /sync: to-device messages (todevice.go) and presence (presence.go). All
// three take their positions from the rooms module's one stream counter,
// so a sync token acknowledges them like everything else.
//
// Device lists: every change of a local user's device keys, and every
// m.device_list_update about a remote user, writes a device_lists row at a
// new stream position; /sync reports the users among them who share a room
// with the syncing user in device_lists.changed. Users who joined a room
// the syncing user is in are reported as changed too, and users who no
// longer share a room after leaving one as left. A remote user's keys are
// cached from their server's user/keys/query answer until an update marks
// the cache stale; the cache is used only while the user has stayed
// joined to one of our rooms since it was fetched (so that their server
// has been sending us their updates all along).

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// e2eeModuleName is the Node.Module key of the e2ee module.
const e2eeModuleName = "e2ee"

// e2eeModule is the per-node state of keys, to-device messages and
// presence. It belongs to the node loop (no locking).
type e2eeModule struct {
	n        *Node
	rs       *roomsModule
	presence bool // presence enabled (Config.Presence)
}

func e2eeOf(n *Node) *e2eeModule {
	m, _ := n.Module(e2eeModuleName).(*e2eeModule)
	return m
}

// e2eeRoutes is the route group of keys, to-device messages and presence.
// It needs the rooms module (it runs after roomRoutes).
func e2eeRoutes(n *Node) ([]Route, error) {
	rs := roomsOf(n)
	if rs == nil {
		return nil, errors.New("e2ee: the rooms module is missing")
	}
	m := &e2eeModule{n: n, rs: rs, presence: n.cfg.Presence}
	pos, err := n.store.MaxE2EEPos()
	if err != nil {
		return nil, fmt.Errorf("e2ee: start: %w", err)
	}
	rs.pos = max(rs.pos, pos)
	n.SetModule(e2eeModuleName, m)
	const v3 = "/_matrix/client/v3"
	routes := []Route{
		{Method: "POST", Pattern: v3 + "/keys/upload", Auth: AuthUser, Handle: m.handleKeysUpload},
		{Method: "POST", Pattern: v3 + "/keys/query", Auth: AuthUser, Handle: m.handleKeysQuery},
		{Method: "POST", Pattern: v3 + "/keys/claim", Auth: AuthUser, Handle: m.handleKeysClaim},
		{Method: "GET", Pattern: v3 + "/keys/changes", Auth: AuthUser, Handle: m.handleKeysChanges},
		// NOTSPEC: the spec has GET only; mautrix-go (v0.32) sends POST.
		{Method: "POST", Pattern: v3 + "/keys/changes", Auth: AuthUser, Handle: m.handleKeysChanges},
	}
	routes = append(routes, m.toDeviceRoutes()...)
	routes = append(routes, m.presenceRoutes()...)
	return routes, nil
}

// nextPos hands out the next stream position.
func (m *e2eeModule) nextPos() int64 {
	m.rs.pos++
	return m.rs.pos
}

// roomPeers lists the users who share a joined room with userID, userID
// included.
func (m *e2eeModule) roomPeers(userID string) map[string]bool {
	out := map[string]bool{userID: true}
	for roomID := range m.rs.userRooms[userID] {
		if m.rs.membership(roomID, userID) != auth.Join {
			continue
		}
		for u, mm := range m.rs.members[roomID] {
			if mm.Membership == auth.Join {
				out[u] = true
			}
		}
	}
	return out
}

// peerServers lists the other servers with users sharing a room with
// userID, sorted.
func (m *e2eeModule) peerServers(userID string) []string {
	seen := map[string]bool{}
	for u := range m.roomPeers(userID) {
		if s := serverOf(u); s != m.n.ServerName() {
			seen[s] = true
		}
	}
	return sortedMapKeys(seen)
}

// sharesRoom reports whether a and b are both joined to some room.
func (m *e2eeModule) sharesRoom(a, b string) bool {
	if a == b {
		return true
	}
	for roomID := range m.rs.userRooms[a] {
		if m.rs.membership(roomID, a) == auth.Join && m.rs.membership(roomID, b) == auth.Join {
			return true
		}
	}
	return false
}

// joinedSince reports whether a remote user has been joined to one of
// this server's rooms since stream position pos or before: only then has
// this server received every device list update about them since, and
// only then may their cached keys be used.
func (m *e2eeModule) joinedSince(userID string, pos int64) bool {
	for roomID := range m.rs.userRooms[userID] {
		if mm := m.rs.members[roomID][userID]; mm.Membership == auth.Join && mm.Pos <= pos {
			return true
		}
	}
	return false
}

// wakeLocal wakes the long polls of the local users in users.
func (m *e2eeModule) wakeLocal(users map[string]bool) {
	m.rs.wakeUsers(users)
}

// deviceKeysBody is the part of an uploaded device_keys object the server
// checks. Spec: client-server-api "DeviceKeys".
type deviceKeysBody struct {
	UserID     string                       `json:"user_id"`
	DeviceID   string                       `json:"device_id"`
	Algorithms []string                     `json:"algorithms"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// verifyDeviceKeys checks that raw is the device keys of userID/deviceID,
// self-signed with the device's own ed25519 key.
func verifyDeviceKeys(raw json.RawMessage, userID, deviceID string) error {
	var dk deviceKeysBody
	if err := json.Unmarshal(raw, &dk); err != nil {
		return fmt.Errorf("device_keys: %w", err)
	}
	if dk.UserID != userID || dk.DeviceID != deviceID {
		return fmt.Errorf("device_keys are for %s/%s, not %s/%s", dk.UserID, dk.DeviceID, userID, deviceID)
	}
	keyID := "ed25519:" + deviceID
	pub, err := decodeKey(dk.Keys[keyID])
	if err != nil {
		return fmt.Errorf("device_keys: key %s: %w", keyID, err)
	}
	if err := event.VerifyJSON(raw, userID, keyID, pub); err != nil {
		return fmt.Errorf("device_keys: self-signature: %w", err)
	}
	return nil
}

// decodeKey decodes an unpadded base64 ed25519 public key.
func decodeKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("bad base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("want %d bytes, got %d", ed25519.PublicKeySize, len(b))
	}
	return b, nil
}

// splitKeyID splits "algorithm:key_id".
func splitKeyID(s string) (alg, id string, err error) {
	alg, id, ok := strings.Cut(s, ":")
	if !ok || alg == "" || id == "" {
		return "", "", fmt.Errorf("key ID %q is not algorithm:id", s)
	}
	return alg, id, nil
}

// Limits on one upload.
const maxKeysPerUpload = 1000

// handleKeysUpload: POST /keys/upload {"device_keys", "one_time_keys",
// "fallback_keys"} → {"one_time_key_counts"}.
func (m *e2eeModule) handleKeysUpload(c *Call) {
	var body struct {
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if len(body.OneTimeKeys)+len(body.FallbackKeys) > maxKeysPerUpload {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "at most %d keys per upload", maxKeysPerUpload))
		return
	}
	var otks, fbs []store.OneTimeKey
	for _, kk := range []struct {
		kind string
		src  map[string]json.RawMessage
	}{{"one_time_keys", body.OneTimeKeys}, {"fallback_keys", body.FallbackKeys}} {
		kind, src := kk.kind, kk.src
		for _, id := range sortedMapKeys(src) {
			alg, kid, err := splitKeyID(id)
			if err != nil {
				c.Fail(Errorf(400, ErrCodeInvalidParam, "%s: %v", kind, err))
				return
			}
			raw, err := event.CanonicalJSON(src[id])
			if err != nil {
				c.Fail(Errorf(400, ErrCodeBadJSON, "%s %s: %v", kind, id, err))
				return
			}
			k := store.OneTimeKey{Algorithm: alg, KeyID: kid, JSON: raw}
			if kind == "one_time_keys" {
				otks = append(otks, k)
			} else {
				fbs = append(fbs, k)
			}
		}
	}
	if len(body.DeviceKeys) > 0 && string(body.DeviceKeys) != "null" {
		if err := verifyDeviceKeys(body.DeviceKeys, c.UserID, c.DeviceID); err != nil {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "%v", err))
			return
		}
		canon, err := event.CanonicalJSON(body.DeviceKeys)
		if err != nil {
			c.Fail(Errorf(400, ErrCodeBadJSON, "device_keys: %v", err))
			return
		}
		if err := m.putDeviceKeys(c.UserID, c.DeviceID, canon); err != nil {
			c.Fail(err)
			return
		}
	}
	if err := m.n.store.AddOneTimeKeys(c.UserID, c.DeviceID, otks); errors.Is(err, store.ErrExists) {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "%v", err))
		return
	} else if err != nil {
		c.Fail(err)
		return
	}
	for _, k := range fbs {
		if err := m.n.store.PutFallbackKey(c.UserID, c.DeviceID, k); err != nil {
			c.Fail(err)
			return
		}
	}
	counts, err := m.n.store.OneTimeKeyCounts(c.UserID, c.DeviceID)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"one_time_key_counts": counts})
}

// putDeviceKeys stores a local device's keys and, when they changed,
// announces the change: a device list position for local syncs and an
// m.device_list_update EDU to the servers sharing a room with the user.
func (m *e2eeModule) putDeviceKeys(userID, deviceID string, canon []byte) error {
	old, err := m.n.store.UserDeviceKeys(userID)
	if err != nil {
		return err
	}
	for _, k := range old {
		if k.DeviceID == deviceID && string(k.JSON) == string(canon) {
			return nil // unchanged
		}
	}
	if err := m.n.store.PutDeviceKeys(userID, deviceID, canon); err != nil {
		return err
	}
	return m.deviceListChanged(userID, deviceID, canon)
}

// deviceListChanged records a change of a local user's device and sends
// m.device_list_update (server-server-api "Device Management"). keys is
// nil for a deleted device.
func (m *e2eeModule) deviceListChanged(userID, deviceID string, keys json.RawMessage) error {
	streamID, err := m.n.store.DeviceListChanged(userID, m.nextPos())
	if err != nil {
		return err
	}
	m.wakeLocal(m.roomPeers(userID))
	f := m.n.Federation()
	dests := m.peerServers(userID)
	if f == nil || len(dests) == 0 {
		return nil
	}
	edu := map[string]any{"user_id": userID, "device_id": deviceID, "stream_id": streamID, "prev_id": []int64{}}
	if streamID > 1 {
		edu["prev_id"] = []int64{streamID - 1}
	}
	if keys == nil {
		edu["deleted"] = true
	} else {
		edu["keys"] = keys
	}
	if d, err := m.n.store.Device(userID, deviceID); err == nil && d.DisplayName != nil {
		edu["device_display_name"] = *d.DisplayName
	}
	if err := f.SendEDU(dests, "m.device_list_update", edu); err != nil {
		m.n.log.Error("cannot queue device list update", "user", userID, "err", err)
	}
	return nil
}

// devicesDeleted forgets the keys and messages of deleted local devices
// and announces the removal of those that had keys (m.device_list_update
// with "deleted": true).
func (m *e2eeModule) devicesDeleted(userID string, deviceIDs []string) error {
	had, err := m.n.store.DeleteDeviceE2EE(userID, deviceIDs)
	if err != nil {
		return err
	}
	for _, d := range had {
		if err := m.deviceListChanged(userID, d, nil); err != nil {
			return err
		}
	}
	return nil
}

// localDeviceKeys answers a query for a local user's devices (all of them
// when deviceIDs is empty): device ID → keys with
// unsigned.device_display_name.
func (m *e2eeModule) localDeviceKeys(userID string, deviceIDs []string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	if serverOf(userID) != m.n.ServerName() {
		return out, nil
	}
	keys, err := m.n.store.UserDeviceKeys(userID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if len(deviceIDs) > 0 && !slices.Contains(deviceIDs, k.DeviceID) {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(k.JSON, &obj); err != nil {
			return nil, fmt.Errorf("device keys of %s/%s: %w", userID, k.DeviceID, err)
		}
		if k.DisplayName != nil {
			u, _ := json.Marshal(map[string]string{"device_display_name": *k.DisplayName})
			obj["unsigned"] = u
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out[k.DeviceID] = b
	}
	return out, nil
}

// keysQueryTimeout bounds how long /keys/query and /keys/claim wait for
// other servers (the spec's default for their "timeout").
const keysQueryTimeout = 10 * time.Second

// decodeKeysQuery reads the body of a client or federation keys query:
// {"device_keys": {user: [device…]}} (an empty list: every device).
func decodeKeysQuery(c *Call) (map[string][]string, error) {
	var body struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		return nil, err
	}
	if body.DeviceKeys == nil {
		return nil, Errorf(400, ErrCodeBadJSON, "device_keys is required")
	}
	return body.DeviceKeys, nil
}

// handleKeysQuery: POST /keys/query {"device_keys": {user: [device…]}}.
// Local users are answered from the store, remote ones from the cache or
// their servers' POST /user/keys/query; a server that fails is listed in
// "failures". The cross-signing keys come along (xsignQuery, e2ee_xsign.go).
func (m *e2eeModule) handleKeysQuery(c *Call) {
	query, err := decodeKeysQuery(c)
	if err != nil {
		c.Fail(err)
		return
	}
	result := map[string]map[string]json.RawMessage{}
	failures := map[string]any{}
	remote := map[string]map[string][]string{} // server → user → devices
	xs := m.newXSignQuery(c.UserID)            // cross-signing keys (e2ee_xsign.go)
	for _, userID := range sortedMapKeys(query) {
		devs := query[userID]
		server := serverOf(userID)
		if server == m.n.ServerName() {
			keys, err := m.localDeviceKeys(userID, devs)
			if err != nil {
				c.Fail(err)
				return
			}
			result[userID] = keys
			if err := xs.addLocal(userID); err != nil {
				c.Fail(err)
				return
			}
			continue
		}
		if server == "" || ValidateServerName(server) != nil {
			continue
		}
		if cached, at, err := m.n.store.RemoteDeviceKeys(userID); err == nil && m.joinedSince(userID, at) && xs.addCached(userID) {
			var all map[string]json.RawMessage
			if json.Unmarshal(cached, &all) == nil {
				result[userID] = pickDevices(all, devs)
				continue
			}
		}
		if remote[server] == nil {
			remote[server] = map[string][]string{}
		}
		remote[server][userID] = devs
	}
	reply := func() {
		out := map[string]any{"device_keys": result, "failures": failures}
		if err := xs.fill(out, result); err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, out)
	}
	fetchedAt := m.rs.pos
	m.askServers(c, sortedMapKeys(remote), failures, "/_matrix/federation/v1/user/keys/query",
		func(server string) any { return map[string]any{"device_keys": remote[server]} },
		func(server string, raw json.RawMessage) error {
			var out struct {
				DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
				MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
				SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			for userID, devs := range remote[server] {
				got := m.checkedRemoteKeys(userID, out.DeviceKeys[userID])
				xs.addRemote(userID, out.MasterKeys[userID], out.SelfSigningKeys[userID])
				if len(devs) == 0 && m.joinedSince(userID, fetchedAt) {
					if b, err := json.Marshal(got); err == nil {
						if err := m.n.store.PutRemoteDeviceKeys(userID, b, fetchedAt); err != nil {
							m.n.log.Warn("cannot cache remote device keys", "user", userID, "err", err)
						} else {
							xs.cacheRemote(userID, fetchedAt)
						}
					}
				}
				result[userID] = pickDevices(got, devs)
			}
			return nil
		}, reply)
}

// askServers sends one federation POST to each server at once and calls
// reply when all have answered or keysQueryTimeout has passed, whichever
// is first. A server that failed, or did not answer in time, is listed in
// failures (client-server-api /keys/query and /keys/claim "failures");
// handle gets each answer's JSON and may refuse it with an error.
func (m *e2eeModule) askServers(c *Call, servers []string, failures map[string]any, uri string,
	body func(server string) any, handle func(server string, answer json.RawMessage) error, reply func()) {
	fail := func(server, msg string) {
		if _, done := failures[server]; !done {
			failures[server] = map[string]any{"errcode": ErrCodeUnknown, "error": msg}
		}
	}
	f := m.n.Federation()
	if len(servers) == 0 || f == nil {
		for _, s := range servers {
			fail(s, "federation is disabled")
		}
		reply()
		return
	}
	pending := len(servers)
	timer := m.n.AfterFunc(keysQueryTimeout, func() {
		if c.Done() {
			return
		}
		for _, s := range servers {
			fail(s, "timed out")
		}
		reply()
	})
	for _, server := range servers {
		raw, _ := json.Marshal(body(server))
		var answer json.RawMessage
		f.DoJSON(server, OutboundRequest{Method: "POST", URI: uri, Body: raw}, &answer, func(err error) {
			pending--
			if c.Done() {
				return
			}
			if err == nil {
				err = handle(server, answer)
			}
			if err != nil {
				fail(server, err.Error())
			}
			if pending == 0 {
				timer.Stop()
				reply()
			}
		})
	}
}

// checkedRemoteKeys keeps the devices of a remote server's answer whose
// keys name that user and device and carry a valid self-signature.
func (m *e2eeModule) checkedRemoteKeys(userID string, devs map[string]json.RawMessage) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for id, raw := range devs {
		if err := verifyDeviceKeys(raw, userID, id); err != nil {
			m.n.log.Debug("remote device keys dropped", "user", userID, "device", id, "err", err)
			continue
		}
		out[id] = raw
	}
	return out
}

// pickDevices restricts all to devs (all when devs is empty).
func pickDevices(all map[string]json.RawMessage, devs []string) map[string]json.RawMessage {
	if len(devs) == 0 {
		if all == nil {
			return map[string]json.RawMessage{}
		}
		return all
	}
	out := map[string]json.RawMessage{}
	for _, d := range devs {
		if k, ok := all[d]; ok {
			out[d] = k
		}
	}
	return out
}

// claimLocal claims keys of local devices: {user: {device: algorithm}} →
// {user: {device: {"algorithm:key_id": key}}}.
func (m *e2eeModule) claimLocal(req map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error) {
	out := map[string]map[string]map[string]json.RawMessage{}
	for _, userID := range sortedMapKeys(req) {
		if serverOf(userID) != m.n.ServerName() {
			continue
		}
		for _, deviceID := range sortedMapKeys(req[userID]) {
			k, err := m.n.store.ClaimKey(userID, deviceID, req[userID][deviceID])
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if out[userID] == nil {
				out[userID] = map[string]map[string]json.RawMessage{}
			}
			out[userID][deviceID] = map[string]json.RawMessage{k.Algorithm + ":" + k.KeyID: k.JSON}
		}
	}
	return out, nil
}

// handleKeysClaim: POST /keys/claim {"one_time_keys": {user: {device:
// algorithm}}}; remote users through POST /user/keys/claim.
func (m *e2eeModule) handleKeysClaim(c *Call) {
	var body struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.OneTimeKeys == nil {
		c.Fail(Errorf(400, ErrCodeBadJSON, "one_time_keys is required"))
		return
	}
	result, err := m.claimLocal(body.OneTimeKeys)
	if err != nil {
		c.Fail(err)
		return
	}
	failures := map[string]any{}
	remote := map[string]map[string]map[string]string{}
	for userID, devs := range body.OneTimeKeys {
		s := serverOf(userID)
		if s == m.n.ServerName() || s == "" || ValidateServerName(s) != nil {
			continue
		}
		if remote[s] == nil {
			remote[s] = map[string]map[string]string{}
		}
		remote[s][userID] = devs
	}
	reply := func() { c.Reply(200, map[string]any{"one_time_keys": result, "failures": failures}) }
	m.askServers(c, sortedMapKeys(remote), failures, "/_matrix/federation/v1/user/keys/claim",
		func(server string) any { return map[string]any{"one_time_keys": remote[server]} },
		func(server string, raw json.RawMessage) error {
			var out struct {
				OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			for userID, devs := range out.OneTimeKeys {
				if remote[server][userID] != nil {
					result[userID] = devs
				}
			}
			return nil
		}, reply)
}

// deviceListDelta computes device_lists for userID between two stream
// positions: users sharing a room whose keys changed or who joined one of
// the user's rooms (changed), and users who left a shared room and share
// none any more (left).
func (m *e2eeModule) deviceListDelta(userID string, since, upTo int64) (changed, left []string, err error) {
	if since >= upTo {
		return nil, nil, nil
	}
	users, err := m.n.store.DeviceListsChangedSince(since, upTo)
	if err != nil {
		return nil, nil, err
	}
	ch, lf := map[string]bool{}, map[string]bool{}
	for _, u := range users {
		if m.sharesRoom(userID, u) {
			ch[u] = true
		}
	}
	for roomID := range m.rs.userRooms[userID] {
		own := m.rs.members[roomID][userID]
		if own.Membership != auth.Join {
			continue
		}
		joinedNow := own.Pos > since && own.Pos <= upTo
		for u, mm := range m.rs.members[roomID] {
			if u == userID || mm.Pos > upTo {
				continue
			}
			switch {
			case mm.Membership == auth.Join && (joinedNow || mm.Pos > since):
				ch[u] = true
			case (mm.Membership == auth.Leave || mm.Membership == auth.Ban) && mm.Pos > since && !m.sharesRoom(userID, u):
				lf[u] = true
			}
		}
	}
	for u := range ch {
		delete(lf, u)
	}
	return sortedMapKeys(ch), sortedMapKeys(lf), nil
}

// handleKeysChanges: GET /keys/changes?from=…&to=….
func (m *e2eeModule) handleKeysChanges(c *Call) {
	from, err := parseStreamToken(c.Req.Query.Get("from"))
	if err != nil {
		c.Fail(err)
		return
	}
	to := streamToken{pos: m.rs.pos}
	if s := c.Req.Query.Get("to"); s != "" {
		if to, err = parseStreamToken(s); err != nil {
			c.Fail(err)
			return
		}
	}
	changed, left, err := m.deviceListDelta(c.UserID, from.pos, min(to.pos, m.rs.pos))
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"changed": nonNil(changed), "left": nonNil(left)})
}

// syncE2EE fills the parts of a sync response this module owns: to_device,
// presence, device_lists and the key counts. It reports whether it added
// anything that should end a long poll.
func (rs *roomsModule) syncE2EE(req *syncRequest, resp *syncResponse, since, now int64) (bool, error) {
	m := e2eeOf(rs.n)
	if m == nil {
		return false, nil
	}
	news := false
	if req.deviceID != "" {
		evs, err := m.syncToDevice(req, since, now)
		if err != nil {
			return false, err
		}
		if len(evs) > 0 {
			resp.ToDevice.Events = evs
			news = true
		}
		counts, err := m.n.store.OneTimeKeyCounts(req.userID, req.deviceID)
		if err != nil {
			return false, err
		}
		resp.OTKCount = counts
		if resp.FallbackKeyTypes, err = m.n.store.UnusedFallbackKeyTypes(req.userID, req.deviceID); err != nil {
			return false, err
		}
	}
	pres, err := m.syncPresence(req, since, now)
	if err != nil {
		return false, err
	}
	if len(pres) > 0 {
		resp.Presence.Events = pres
		news = true
	}
	if req.since != nil {
		changed, left, err := m.deviceListDelta(req.userID, since, now)
		if err != nil {
			return false, err
		}
		if len(changed)+len(left) > 0 {
			b, err := json.Marshal(map[string][]string{"changed": nonNil(changed), "left": nonNil(left)})
			if err != nil {
				return false, err
			}
			raw := json.RawMessage(b)
			resp.DeviceLists = &raw
			news = true
		}
	}
	return news, nil
}
