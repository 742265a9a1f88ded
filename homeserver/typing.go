package homeserver

// PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}. Spec:
// client-server-api "Typing Notifications": {"typing": bool, "timeout":
// ms}; the server drops the user from the typing list when the timeout
// runs out, and sends the room's whole list as an m.typing ephemeral event
// in /sync whenever it changes. Typing state lives only in memory.

import (
	"sort"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/auth"
)

// Typing timeouts.
const (
	defaultTypingTimeout = 30 * time.Second
	maxTypingTimeout     = 120 * time.Second
)

// roomTyping is who is typing in one room.
type roomTyping struct {
	users  map[string]clock.Timer // user → timer that ends their typing
	serial int64                  // typing serial of the last change
}

// event is the room's m.typing ephemeral event.
func (t *roomTyping) event() map[string]any {
	ids := make([]string, 0, len(t.users))
	for u := range t.users {
		ids = append(ids, u)
	}
	sort.Strings(ids)
	return map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": ids}}
}

func (rs *roomsModule) typingRoutes() []Route {
	return []Route{{Method: "PUT", Pattern: "/_matrix/client/v3/rooms/{roomId}/typing/{userId}", Auth: AuthUser, Handle: rs.handleTyping}}
}

func (rs *roomsModule) handleTyping(c *Call) {
	roomID, userID := c.Req.Vars["roomId"], c.Req.Vars["userId"]
	if userID != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may only set your own typing state"))
		return
	}
	var body struct {
		Typing  *bool `json:"typing"`
		Timeout int64 `json:"timeout"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.Typing == nil {
		c.Fail(Errorf(400, ErrCodeBadJSON, "typing is required"))
		return
	}
	if rs.membership(roomID, c.UserID) != auth.Join {
		c.Fail(Errorf(403, ErrCodeForbidden, "you are not joined to %s", roomID))
		return
	}
	timeout := defaultTypingTimeout
	if body.Timeout > 0 {
		timeout = min(time.Duration(body.Timeout)*time.Millisecond, maxTypingTimeout)
	}
	rs.setTyping(roomID, userID, *body.Typing, timeout)
	if fr := fedRoomsOf(rs.n); fr != nil {
		fr.sendTyping(roomID, userID, *body.Typing)
	}
	c.Reply(200, struct{}{})
}

// setTyping starts or stops a user's typing and wakes the room's syncs
// when the list changes.
func (rs *roomsModule) setTyping(roomID, userID string, typing bool, timeout time.Duration) {
	t := rs.typing[roomID]
	if t == nil {
		t = &roomTyping{users: map[string]clock.Timer{}}
		rs.typing[roomID] = t
	}
	old, was := t.users[userID]
	if was {
		old.Stop()
		delete(t.users, userID)
	}
	if typing {
		t.users[userID] = rs.n.AfterFunc(timeout, func() {
			if cur, ok := t.users[userID]; ok && cur != nil {
				rs.setTyping(roomID, userID, false, 0)
			}
		})
		if was {
			return // still typing: the list did not change
		}
	} else if !was {
		return
	}
	rs.typingSerial++
	t.serial = rs.typingSerial
	rs.wakeRoom(roomID)
}
