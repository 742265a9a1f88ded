package homeserver

// Pushers. Spec: client-server-api "Push Notifications", "Client
// behaviour": GET /pushers and POST /pushers/set
// (data/api/client-server/pusher.yaml). A pusher is identified by the user,
// its app_id and its pushkey; it belongs to the device whose access token
// set it and is deleted with that device (logout, device deletion,
// deactivation: a foreign key in the store). Sending is pushers_send.go.

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// pushersModuleName is the Node.Module key of the pushers module.
const pushersModuleName = "pushers"

// Limits from POST /pushers/set.
const (
	maxPushKeyBytes = 512 // pushkey: "Max length, 512 bytes"
	maxAppIDChars   = 64  // app_id: "Max length, 64 chars"
	// maxPushersPerUser bounds a user's pushers: each event that notifies
	// costs a request per pusher.
	// NOTSPEC: the spec sets no limit; a new pusher past it is refused
	// with 400 M_LIMIT_EXCEEDED (400, not 429: waiting does not help,
	// deleting a pusher does). Replacing an existing one always works.
	maxPushersPerUser = 20
)

// pushersModule is the per-node state of pushers: who has one and the
// send queues. It belongs to the node loop (no locking).
type pushersModule struct {
	n *Node
	// users have at least one pusher. It may name a user whose pushers
	// went away with their device; the store has the last word.
	users map[string]bool
	// seen is the newest stream position whose events were considered.
	seen   int64
	queues map[pushKey]*pushQueue
	// batchUnread holds, during pushCommitted, the unread totals already
	// computed for the batch (unreadTotal); nil outside it.
	batchUnread map[string]int
	// unreadTotals counts unreadTotal's computations (for tests).
	unreadTotals int
}

// pushersOf returns the node's pushers module, or nil.
func pushersOf(n *Node) *pushersModule {
	pm, _ := n.Module(pushersModuleName).(*pushersModule)
	return pm
}

// pusherRoutes is the route group of pushers.
func pusherRoutes(n *Node) ([]Route, error) {
	pm := &pushersModule{n: n, users: map[string]bool{}, queues: map[pushKey]*pushQueue{}}
	var err error
	if pm.seen, err = n.store.MaxStreamPos(); err != nil {
		return nil, fmt.Errorf("pushers: start: %w", err)
	}
	users, err := n.store.PusherUsers()
	if err != nil {
		return nil, fmt.Errorf("pushers: start: %w", err)
	}
	for _, u := range users {
		pm.users[u] = true
	}
	n.SetModule(pushersModuleName, pm)
	n.OnStop(func() {
		for _, q := range pm.queues {
			if q.retry != nil {
				q.retry.Stop()
				q.retry = nil
			}
		}
	})
	const v3 = "/_matrix/client/v3"
	return []Route{
		{Method: "GET", Pattern: v3 + "/pushers", Auth: AuthUser, Handle: pm.handleGet},
		{Method: "POST", Pattern: v3 + "/pushers/set", Auth: AuthUser, Handle: pm.handleSet},
	}, nil
}

// pusherJSON is a pusher as GET /pushers lists it.
type pusherJSON struct {
	PushKey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

// handleGet: GET /pushers.
func (pm *pushersModule) handleGet(c *Call) {
	ps, err := pm.n.store.Pushers(c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	out := make([]pusherJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, pusherJSON{PushKey: p.PushKey, Kind: p.Kind, AppID: p.AppID, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: p.Data})
	}
	c.Reply(200, map[string]any{"pushers": out})
}

// handleSet: POST /pushers/set. kind null deletes the pusher (app_id,
// pushkey); otherwise the pusher is created or replaced, and unless append
// is true the same app_id and pushkey are taken from every other user.
func (pm *pushersModule) handleSet(c *Call) {
	var raw map[string]json.RawMessage
	if err := c.DecodeJSON(&raw); err != nil {
		c.Fail(err)
		return
	}
	var req struct {
		Kind              *string         `json:"kind"`
		AppID             *string         `json:"app_id"`
		PushKey           *string         `json:"pushkey"`
		AppDisplayName    *string         `json:"app_display_name"`
		DeviceDisplayName *string         `json:"device_display_name"`
		ProfileTag        string          `json:"profile_tag"`
		Lang              *string         `json:"lang"`
		Data              json.RawMessage `json:"data"`
		Append            bool            `json:"append"`
	}
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	if _, ok := raw["kind"]; !ok || req.AppID == nil || req.PushKey == nil {
		c.Fail(Errorf(400, ErrCodeMissingParam, "kind, app_id and pushkey are required"))
		return
	}
	if *req.AppID == "" || utf8.RuneCountInString(*req.AppID) > maxAppIDChars {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "app_id must have 1 to %d characters", maxAppIDChars))
		return
	}
	if *req.PushKey == "" || len(*req.PushKey) > maxPushKeyBytes {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "pushkey must have 1 to %d bytes", maxPushKeyBytes))
		return
	}
	key := pushKey{c.UserID, *req.AppID, *req.PushKey}
	if req.Kind == nil {
		if _, err := pm.n.store.DeletePusher(key.userID, key.appID, key.pushKey); err != nil {
			c.Fail(err)
			return
		}
		pm.forget(key)
		c.Reply(200, struct{}{})
		return
	}
	if *req.Kind != "http" {
		// NOTSPEC: only http pushers; the node sends no email.
		c.Fail(Errorf(400, ErrCodeInvalidParam, "unsupported pusher kind %q", *req.Kind))
		return
	}
	if req.AppDisplayName == nil || req.DeviceDisplayName == nil || req.Lang == nil || req.Data == nil || string(req.Data) == "null" {
		c.Fail(Errorf(400, ErrCodeMissingParam, "app_display_name, device_display_name, lang and data are required"))
		return
	}
	var data map[string]any
	if json.Unmarshal(req.Data, &data) != nil {
		c.Fail(Errorf(400, ErrCodeBadJSON, "data must be an object"))
		return
	}
	u, ok := data["url"]
	if !ok {
		c.Fail(Errorf(400, ErrCodeMissingParam, "data.url is required for http pushers"))
		return
	}
	if s, isStr := u.(string); !isStr || !pushURLAllowed(s) {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "data.url must be an https URL with the path %s", pushNotifyPath))
		return
	}
	if f, ok := data["format"]; ok && f != "event_id_only" {
		c.Fail(Errorf(400, ErrCodeInvalidParam, `data.format must be "event_id_only" or absent`))
		return
	}
	compact, err := json.Marshal(data)
	if err != nil {
		c.Fail(err)
		return
	}
	p := store.Pusher{UserID: c.UserID, AppID: key.appID, PushKey: key.pushKey, DeviceID: c.DeviceID, Kind: *req.Kind,
		AppDisplayName: *req.AppDisplayName, DeviceDisplayName: *req.DeviceDisplayName, ProfileTag: req.ProfileTag,
		Lang: *req.Lang, Data: compact, PushKeyTS: pm.n.Now().UnixMilli()}
	err = pm.n.store.SetPusher(p, req.Append, maxPushersPerUser)
	if errors.Is(err, store.ErrPusherLimit) {
		c.Fail(Errorf(400, ErrCodeLimitExceeded, "at most %d pushers per user; delete one first", maxPushersPerUser))
		return
	}
	if err != nil {
		c.Fail(err)
		return
	}
	pm.users[c.UserID] = true
	c.Reply(200, struct{}{})
}

// forget drops a deleted pusher's queue.
func (pm *pushersModule) forget(k pushKey) {
	if q := pm.queues[k]; q != nil {
		if q.retry != nil {
			q.retry.Stop()
		}
		delete(pm.queues, k)
	}
}
