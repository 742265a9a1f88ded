package homeserver

// Send-to-device messaging. Spec: client-server-api "Send-to-Device
// messaging" (PUT /sendToDevice/{eventType}/{txnId}, to_device in /sync)
// and server-server-api "Send-to-device messaging" (m.direct_to_device).
//
// PUT body: {"messages": {userId: {deviceId | "*": content}}}. Each
// message for a local device is stored at its own stream position; /sync
// returns a device's messages after the since token as {"sender", "type",
// "content"} and deletes those at or before the token (the client has
// seen them). Messages for another server's users go out as one
// m.direct_to_device EDU per server: {"sender", "type", "message_id",
// "messages"}. The transaction ID makes a client's retry a no-op, and the
// message_id does the same for a server's.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// toDeviceTxnMaxAge is how long handled transaction IDs are remembered.
const toDeviceTxnMaxAge = 24 * time.Hour

func (m *e2eeModule) toDeviceRoutes() []Route {
	return []Route{{Method: "PUT", Pattern: "/_matrix/client/v3/sendToDevice/{eventType}/{txnId}", Auth: AuthUser,
		Handle: m.handleSendToDevice}}
}

// handleSendToDevice: PUT /sendToDevice/{eventType}/{txnId}.
func (m *e2eeModule) handleSendToDevice(c *Call) {
	typ, txnID := c.Req.Vars["eventType"], c.Req.Vars["txnId"]
	var body struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.Messages == nil {
		c.Fail(Errorf(400, ErrCodeBadJSON, "messages is required"))
		return
	}
	local := map[string]map[string]json.RawMessage{}
	remote := map[string]map[string]map[string]json.RawMessage{} // server → user → device → content
	for userID, devs := range body.Messages {
		for dev, content := range devs {
			if !isJSONObject(content) {
				c.Fail(Errorf(400, ErrCodeBadJSON, "message for %s/%s is not an object", userID, dev))
				return
			}
		}
		switch s := serverOf(userID); {
		case s == m.n.ServerName():
			local[userID] = devs
		case s != "" && ValidateServerName(s) == nil:
			if remote[s] == nil {
				remote[s] = map[string]map[string]json.RawMessage{}
			}
			remote[s][userID] = devs
		default:
			c.Fail(Errorf(400, ErrCodeInvalidParam, "bad user ID %q", userID))
			return
		}
	}
	scope := "c " + c.UserID + " " + c.DeviceID
	fresh, err := m.deliverToDevice(scope, txnID, c.UserID, typ, local)
	if err != nil {
		c.Fail(err)
		return
	}
	if fresh {
		m.sendRemoteToDevice(c.UserID, typ, remote)
	}
	c.Reply(200, struct{}{})
}

func isJSONObject(b json.RawMessage) bool {
	var o map[string]json.RawMessage
	return json.Unmarshal(b, &o) == nil && o != nil
}

// deliverToDevice stores messages for local devices ("*": every device of
// the user) unless (scope, txnID) was handled before, and wakes the
// recipients' long polls. It reports whether the transaction was new.
func (m *e2eeModule) deliverToDevice(scope, txnID, sender, typ string, msgs map[string]map[string]json.RawMessage) (bool, error) {
	var rows []store.ToDevice
	wake := map[string]bool{}
	for _, userID := range sortedMapKeys(msgs) {
		devs := msgs[userID]
		ds, err := m.n.store.Devices(userID)
		if err != nil {
			return false, err
		}
		all, star := devs["*"]
		// Messages for devices that do not exist are dropped.
		for _, d := range ds {
			content, ok := devs[d.DeviceID]
			if star {
				content, ok = all, true
			}
			if !ok {
				continue
			}
			rows = append(rows, store.ToDevice{UserID: userID, DeviceID: d.DeviceID, Sender: sender, Type: typ, Content: content})
			wake[userID] = true
		}
	}
	// Positions are taken only once the rows are known to be stored.
	base := m.rs.pos
	for i := range rows {
		rows[i].Pos = base + int64(i) + 1
	}
	now := m.n.Now()
	fresh, err := m.n.store.PutToDevice(scope, txnID, now.UnixMilli(), rows)
	if err != nil || !fresh {
		return false, err
	}
	m.rs.pos = base + int64(len(rows))
	if err := m.n.store.PruneToDeviceTxns(now.Add(-toDeviceTxnMaxAge).UnixMilli()); err != nil {
		m.n.log.Warn("cannot prune to-device transactions", "err", err)
	}
	m.wakeLocal(wake)
	return true, nil
}

// sendRemoteToDevice queues one m.direct_to_device EDU per server.
func (m *e2eeModule) sendRemoteToDevice(sender, typ string, remote map[string]map[string]map[string]json.RawMessage) {
	f := m.n.Federation()
	if f == nil {
		return
	}
	for _, server := range sortedMapKeys(remote) {
		msgID := strconv.FormatUint(m.n.RNG().Uint64(), 36)
		edu := map[string]any{"sender": sender, "type": typ, "message_id": msgID, "messages": remote[server]}
		if err := f.SendEDU([]string{server}, "m.direct_to_device", edu); err != nil {
			m.n.log.Error("cannot queue to-device EDU", "dest", server, "err", err)
		}
	}
}

// syncToDevice acknowledges the messages at or before since and returns
// all of the device's others up to now.
// NOTSPEC: the spec lets a server page a large backlog (limited to_device);
// as next_batch acknowledges everything up to now, all pending messages
// are sent in one response.
func (m *e2eeModule) syncToDevice(req *syncRequest, since, now int64) ([]any, error) {
	if req.since != nil {
		if err := m.n.store.AckToDevice(req.userID, req.deviceID, since); err != nil {
			return nil, err
		}
	}
	rows, err := m.n.store.ToDeviceSince(req.userID, req.deviceID, 0, now)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(rows))
	for _, r := range rows {
		out = append(out, map[string]any{"sender": r.Sender, "type": r.Type, "content": json.RawMessage(r.Content)})
	}
	return out, nil
}

// eduToDevice: m.direct_to_device from origin, for local users only.
func (m *e2eeModule) eduToDevice(origin string, content json.RawMessage) error {
	var e struct {
		Sender    string                                `json:"sender"`
		Type      string                                `json:"type"`
		MessageID string                                `json:"message_id"`
		Messages  map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(content, &e); err != nil || e.Type == "" || e.MessageID == "" {
		return fmt.Errorf("m.direct_to_device: want sender, type, message_id and messages")
	}
	if err := checkOrigin(origin, e.Sender); err != nil {
		return fmt.Errorf("m.direct_to_device: %w", err)
	}
	for userID, devs := range e.Messages {
		if serverOf(userID) != m.n.ServerName() {
			return fmt.Errorf("m.direct_to_device: %s is not a user of this server", userID)
		}
		for dev, c := range devs {
			if !isJSONObject(c) {
				return fmt.Errorf("m.direct_to_device: message for %s/%s is not an object", userID, dev)
			}
		}
	}
	if _, err := m.deliverToDevice("s "+origin, e.MessageID, e.Sender, e.Type, e.Messages); err != nil {
		return fmt.Errorf("m.direct_to_device: %w", err)
	}
	return nil
}
