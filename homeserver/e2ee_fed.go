package homeserver

// The federation side of device keys, to-device messages and presence:
// the server half of GET /user/devices/{userId}, POST /user/keys/query
// and POST /user/keys/claim (server-server-api "Device Management",
// "End-to-End Encryption"), and the handlers of the m.presence,
// m.direct_to_device, m.device_list_update and m.signing_key_update EDUs.

import (
	"encoding/json"
	"fmt"
)

// installE2EEHandlers installs the EDU handlers of the e2ee module. They
// find the module when an EDU arrives (it is built after federation).
func (f *Federation) installE2EEHandlers() {
	for t, h := range map[string]func(*e2eeModule, string, json.RawMessage) error{
		"m.presence":           (*e2eeModule).eduPresence,
		"m.direct_to_device":   (*e2eeModule).eduToDevice,
		"m.device_list_update": (*e2eeModule).eduDeviceListUpdate,
		"m.signing_key_update": (*e2eeModule).eduSigningKeyUpdate,
	} {
		t, h := t, h
		f.HandleEDU(t, func(origin string, content json.RawMessage) error {
			m := e2eeOf(f.n)
			if m == nil {
				return fmt.Errorf("%s: no e2ee module", t)
			}
			return h(m, origin, content)
		})
	}
}

// remoteDeviceListChanged marks a remote user's cached keys stale and
// reports the change to local users sharing a room with them.
func (m *e2eeModule) remoteDeviceListChanged(userID string) error {
	if _, err := m.n.store.DeviceListChanged(userID, m.nextPos()); err != nil {
		return err
	}
	m.wakeLocal(m.roomPeers(userID))
	return nil
}

// eduDeviceListUpdate: m.device_list_update {"user_id", "device_id",
// "stream_id", "prev_id", "deleted", "keys"}.
// NOTSPEC: the update is not applied to the cache from its keys and
// prev_id; the user's list is marked stale and refetched on the next
// query, which is always right and costs one request.
func (m *e2eeModule) eduDeviceListUpdate(origin string, content json.RawMessage) error {
	var e struct {
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
	}
	if err := json.Unmarshal(content, &e); err != nil || e.DeviceID == "" {
		return fmt.Errorf("m.device_list_update: want user_id and device_id")
	}
	if err := checkOrigin(origin, e.UserID); err != nil {
		return fmt.Errorf("m.device_list_update: %w", err)
	}
	if err := m.remoteDeviceListChanged(e.UserID); err != nil {
		return fmt.Errorf("m.device_list_update: %w", err)
	}
	return nil
}

// eduSigningKeyUpdate: m.signing_key_update {"user_id", "master_key",
// "self_signing_key"}: the user's keys are stale.
func (m *e2eeModule) eduSigningKeyUpdate(origin string, content json.RawMessage) error {
	var e struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(content, &e); err != nil {
		return fmt.Errorf("m.signing_key_update: %w", err)
	}
	if err := checkOrigin(origin, e.UserID); err != nil {
		return fmt.Errorf("m.signing_key_update: %w", err)
	}
	if err := m.remoteDeviceListChanged(e.UserID); err != nil {
		return fmt.Errorf("m.signing_key_update: %w", err)
	}
	return nil
}

// handleUserDevices: GET /user/devices/{userId} → {"user_id", "stream_id",
// "devices": [{"device_id", "device_display_name", "keys"}], "master_key",
// "self_signing_key"}.
func (f *Federation) handleUserDevices(c *Call) {
	userID := c.Req.Vars["userId"]
	if err := f.localUser(userID); err != nil {
		c.Fail(err)
		return
	}
	devs, err := f.n.store.Devices(userID)
	if err != nil {
		c.Fail(err)
		return
	}
	keys, err := f.n.store.UserDeviceKeys(userID)
	if err != nil {
		c.Fail(err)
		return
	}
	byDev := map[string]json.RawMessage{}
	for _, k := range keys {
		byDev[k.DeviceID] = k.JSON
	}
	reply := map[string]any{"user_id": userID}
	if m := e2eeOf(f.n); m != nil { // cross-signing keys and signatures (e2ee_xsign.go)
		xs := m.newXSignQuery("")
		err := xs.addLocal(userID)
		if err == nil {
			err = xs.mergeSignatures(map[string]map[string]json.RawMessage{userID: byDev})
		}
		if err != nil {
			c.Fail(err)
			return
		}
		if k := xs.master[userID]; k != nil {
			reply["master_key"] = k
		}
		if k := xs.selfSigning[userID]; k != nil {
			reply["self_signing_key"] = k
		}
	}
	streamID, err := f.n.store.DeviceListStreamID(userID)
	if err != nil {
		c.Fail(err)
		return
	}
	out := make([]map[string]any, 0, len(devs))
	for _, d := range devs {
		m := map[string]any{"device_id": d.DeviceID}
		if d.DisplayName != nil {
			m["device_display_name"] = *d.DisplayName
		}
		if k := byDev[d.DeviceID]; k != nil {
			m["keys"] = k
		}
		out = append(out, m)
	}
	reply["stream_id"], reply["devices"] = streamID, out
	c.Reply(200, reply)
}

// handleKeysQuery: POST /user/keys/query {"device_keys": {user:
// [device…]}}, for local users only, with their master_keys and
// self_signing_keys (xsignQuery, e2ee_xsign.go).
func (f *Federation) handleKeysQuery(c *Call) {
	query, err := decodeKeysQuery(c)
	if err != nil {
		c.Fail(err)
		return
	}
	m := e2eeOf(f.n)
	keys := map[string]map[string]json.RawMessage{}
	out := map[string]any{"device_keys": keys}
	if m == nil {
		c.Reply(200, out)
		return
	}
	xs := m.newXSignQuery("")
	for userID, devs := range query {
		if serverOf(userID) != f.n.ServerName() {
			continue
		}
		k, err := m.localDeviceKeys(userID, devs)
		if err == nil {
			err = xs.addLocal(userID)
		}
		if err != nil {
			c.Fail(err)
			return
		}
		keys[userID] = k
	}
	if err := xs.fill(out, keys); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, out)
}

// handleKeysClaim: POST /user/keys/claim {"one_time_keys": {user: {device:
// algorithm}}}, for local users only.
func (f *Federation) handleKeysClaim(c *Call) {
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
	m := e2eeOf(f.n)
	if m == nil {
		c.Reply(200, map[string]any{"one_time_keys": map[string]any{}})
		return
	}
	out, err := m.claimLocal(body.OneTimeKeys)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"one_time_keys": out})
}
