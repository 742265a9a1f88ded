package homeserver

// EDUs received in transactions. Spec: server-server-api "Typing
// Notifications", "Receipts", "Presence", "Device Management",
// "Send-to-device messaging", "End-to-End Encryption" (m.signing_key_update).
// Every EDU about a user must come from that user's server.

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/mxmesh/mxmesh/homeserver/auth"
)

func (f *Federation) installEDUHandlers() {
	f.HandleEDU("m.typing", f.eduTyping)
	f.HandleEDU("m.receipt", f.eduReceipt)
	f.installE2EEHandlers()
}

// checkOrigin requires userID to belong to origin.
func checkOrigin(origin, userID string) error {
	if userID == "" || serverOf(userID) != origin {
		return fmt.Errorf("user %q does not belong to the sending server %s", userID, origin)
	}
	return nil
}

// errNoRooms is returned by EDU handlers on a node without the rooms module.
var errNoRooms = errors.New("no rooms module")

// eduTyping: {"room_id", "user_id", "typing": bool} (server-server-api
// "Typing Notifications"). The user must be joined to the room.
func (f *Federation) eduTyping(origin string, content json.RawMessage) error {
	var e struct {
		RoomID string `json:"room_id"`
		UserID string `json:"user_id"`
		Typing *bool  `json:"typing"`
	}
	if err := json.Unmarshal(content, &e); err != nil || e.RoomID == "" || e.Typing == nil {
		return fmt.Errorf("m.typing: want room_id, user_id and typing")
	}
	if err := checkOrigin(origin, e.UserID); err != nil {
		return fmt.Errorf("m.typing: %w", err)
	}
	rs := roomsOf(f.n)
	if rs == nil {
		return fmt.Errorf("m.typing: %w", errNoRooms)
	}
	if rs.membership(e.RoomID, e.UserID) != auth.Join {
		return fmt.Errorf("m.typing: %s is not joined to %s", e.UserID, e.RoomID)
	}
	// NOTSPEC: the EDU carries no timeout; the sender stops typing
	// explicitly or re-sends within the client's timeout, so a remote
	// user's typing expires after the default client timeout.
	rs.setTyping(e.RoomID, e.UserID, *e.Typing, defaultTypingTimeout)
	return nil
}

// eduReceipt: {roomId: {"m.read": {userId: {"event_ids": [...], "data":
// {"ts": ms, "thread_id": "..."}}}}} (server-server-api "Receipts").
func (f *Federation) eduReceipt(origin string, content json.RawMessage) error {
	type userReceipt struct {
		EventIDs []string `json:"event_ids"`
		Data     struct {
			ThreadID string `json:"thread_id"`
		} `json:"data"`
	}
	var rooms map[string]map[string]map[string]userReceipt
	if err := json.Unmarshal(content, &rooms); err != nil {
		return fmt.Errorf("m.receipt: %w", err)
	}
	rs := roomsOf(f.n)
	if rs == nil {
		return fmt.Errorf("m.receipt: %w", errNoRooms)
	}
	var errs []error
	for _, roomID := range sortedMapKeys(rooms) {
		users := rooms[roomID]["m.read"]
		for _, userID := range sortedMapKeys(users) {
			r := users[userID]
			if err := checkOrigin(origin, userID); err != nil {
				errs = append(errs, err)
				continue
			}
			if rs.membership(roomID, userID) != auth.Join || len(r.EventIDs) == 0 {
				errs = append(errs, fmt.Errorf("%s in %s: not joined or no event", userID, roomID))
				continue
			}
			if err := rs.putReceipt(roomID, userID, "m.read", r.EventIDs[0], r.Data.ThreadID); err != nil {
				errs = append(errs, fmt.Errorf("%s in %s: %w", userID, roomID, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("m.receipt: %w", err)
	}
	return nil
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
