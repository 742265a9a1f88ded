package homeserver

// Presence. Spec: client-server-api "Presence" (GET/PUT
// /presence/{userId}/status, m.presence in /sync) and server-server-api
// "Presence" (the m.presence EDU: {"push": [{"user_id", "presence",
// "status_msg", "last_active_ago", "currently_active"}]}).
//
// Only changes travel: a PUT that repeats the stored presence and status
// message only refreshes last_active_ts locally, with no new stream
// position, no /sync wake-up and no EDU. A change is stored at a new
// stream position, woken into the /sync of every local user sharing a
// room, and pushed to the servers sharing one. With Config.Presence set to
// false the node neither stores nor sends presence (the mesh default).

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Presence states (client-server-api "Presence").
const (
	presenceOnline      = "online"
	presenceUnavailable = "unavailable"
	presenceOffline     = "offline"
)

// maxStatusMsg bounds a status message, in bytes.
const maxStatusMsg = 1024

func validPresence(p string) bool {
	return p == presenceOnline || p == presenceUnavailable || p == presenceOffline
}

func (m *e2eeModule) presenceRoutes() []Route {
	const p = "/_matrix/client/v3/presence/{userId}/status"
	return []Route{
		{Method: "GET", Pattern: p, Auth: AuthUser, Handle: m.handleGetPresence},
		{Method: "PUT", Pattern: p, Auth: AuthUser, Handle: m.handlePutPresence},
	}
}

// errPresenceDisabled answers presence requests when presence is off.
var errPresenceDisabled = Errorf(403, ErrCodeForbidden, "presence is disabled on this server")

// handlePutPresence: PUT /presence/{userId}/status {"presence",
// "status_msg"}.
func (m *e2eeModule) handlePutPresence(c *Call) {
	if c.Req.Vars["userId"] != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may only set your own presence"))
		return
	}
	var body struct {
		Presence  string  `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if !validPresence(body.Presence) {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "presence must be online, unavailable or offline"))
		return
	}
	if body.StatusMsg != nil && len(*body.StatusMsg) > maxStatusMsg {
		c.Fail(Errorf(400, ErrCodeTooLarge, "status_msg is longer than %d bytes", maxStatusMsg))
		return
	}
	if !m.presence {
		// NOTSPEC: accepted and ignored, as clients set presence on their
		// own; reading it back fails with errPresenceDisabled.
		c.Reply(200, struct{}{})
		return
	}
	now := m.n.Now().UnixMilli()
	p := store.Presence{UserID: c.UserID, Presence: body.Presence, StatusMsg: body.StatusMsg,
		LastActiveTS: now, CurrentlyActive: body.Presence == presenceOnline}
	changed, err := m.setPresence(p)
	if err != nil {
		c.Fail(err)
		return
	}
	if changed {
		m.sendPresence(p)
	}
	c.Reply(200, struct{}{})
}

// setPresence stores p; when the presence, status message or activity
// changed it takes a new stream position and wakes the user's room peers.
func (m *e2eeModule) setPresence(p store.Presence) (bool, error) {
	old, err := m.n.store.GetPresence(p.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return false, err
	case old.Presence == p.Presence && old.CurrentlyActive == p.CurrentlyActive && sameStr(old.StatusMsg, p.StatusMsg):
		p.Pos = old.Pos
		return false, m.n.store.PutPresence(p)
	}
	p.Pos = m.rs.pos + 1
	if err := m.n.store.PutPresence(p); err != nil {
		return false, err
	}
	m.rs.pos = p.Pos
	m.wakeLocal(m.roomPeers(p.UserID))
	return true, nil
}

func sameStr(a, b *string) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// presenceContent is the content of m.presence, in /sync, GET and EDUs.
func (m *e2eeModule) presenceContent(p store.Presence) map[string]any {
	out := map[string]any{"presence": p.Presence, "currently_active": p.CurrentlyActive,
		"last_active_ago": max(m.n.Now().UnixMilli()-p.LastActiveTS, 0)}
	if p.StatusMsg != nil {
		out["status_msg"] = *p.StatusMsg
	}
	return out
}

// sendPresence pushes a local user's new presence to the servers sharing
// a room with them.
func (m *e2eeModule) sendPresence(p store.Presence) {
	f := m.n.Federation()
	dests := m.peerServers(p.UserID)
	if f == nil || len(dests) == 0 {
		return
	}
	item := m.presenceContent(p)
	item["user_id"] = p.UserID
	if err := f.SendEDU(dests, "m.presence", map[string]any{"push": []any{item}}); err != nil {
		m.n.log.Error("cannot queue presence EDU", "user", p.UserID, "err", err)
	}
}

// handleGetPresence: GET /presence/{userId}/status, for the caller and the
// users sharing a room with them.
func (m *e2eeModule) handleGetPresence(c *Call) {
	if !m.presence {
		c.Fail(errPresenceDisabled)
		return
	}
	userID := c.Req.Vars["userId"]
	if !m.sharesRoom(c.UserID, userID) {
		c.Fail(Errorf(403, ErrCodeForbidden, "you do not share a room with %s", userID))
		return
	}
	p, err := m.n.store.GetPresence(userID)
	if errors.Is(err, store.ErrNotFound) {
		c.Fail(Errorf(404, ErrCodeNotFound, "no presence known for %s", userID))
		return
	} else if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, m.presenceContent(p))
}

// syncPresence lists the m.presence events of users sharing a room with
// the syncing user whose presence changed after since.
func (m *e2eeModule) syncPresence(req *syncRequest, since, now int64) ([]any, error) {
	if !m.presence {
		return nil, nil
	}
	rows, err := m.n.store.PresenceSince(since, now)
	if err != nil {
		return nil, err
	}
	var out []any
	for _, p := range rows {
		if !m.sharesRoom(req.userID, p.UserID) || !req.filter.Presence.allows("m.presence", p.UserID) {
			continue
		}
		out = append(out, map[string]any{"type": "m.presence", "sender": p.UserID, "content": m.presenceContent(p)})
	}
	return out, nil
}

// eduPresence: m.presence from origin, about origin's users.
func (m *e2eeModule) eduPresence(origin string, content json.RawMessage) error {
	var e struct {
		Push []struct {
			UserID          string  `json:"user_id"`
			Presence        string  `json:"presence"`
			StatusMsg       *string `json:"status_msg"`
			LastActiveAgo   int64   `json:"last_active_ago"`
			CurrentlyActive bool    `json:"currently_active"`
		} `json:"push"`
	}
	if err := json.Unmarshal(content, &e); err != nil {
		return fmt.Errorf("m.presence: %w", err)
	}
	if !m.presence {
		return nil
	}
	var errs []error
	for _, p := range e.Push {
		if err := checkOrigin(origin, p.UserID); err != nil {
			errs = append(errs, err)
			continue
		}
		if !validPresence(p.Presence) || (p.StatusMsg != nil && len(*p.StatusMsg) > maxStatusMsg) {
			errs = append(errs, fmt.Errorf("%s: bad presence %q", p.UserID, p.Presence))
			continue
		}
		_, err := m.setPresence(store.Presence{UserID: p.UserID, Presence: p.Presence, StatusMsg: p.StatusMsg,
			LastActiveTS: m.n.Now().UnixMilli() - max(p.LastActiveAgo, 0), CurrentlyActive: p.CurrentlyActive})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.UserID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("m.presence: %w", err)
	}
	return nil
}
