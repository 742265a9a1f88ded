package homeserver

// Receipts and read markers. Spec: client-server-api "Receipts" (POST
// /rooms/{roomId}/receipt/{receiptType}/{eventId}, m.read,
// m.read.private, threaded receipts with thread_id, the m.receipt
// ephemeral event) and "Fully read markers" (POST
// /rooms/{roomId}/read_markers; m.fully_read is room account data).

import (
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Receipt types.
const (
	receiptRead        = "m.read"
	receiptReadPrivate = "m.read.private"
	fullyReadType      = "m.fully_read"
)

func (rs *roomsModule) receiptRoutes() []Route {
	return []Route{
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}", Auth: AuthUser, Handle: rs.handleReceipt},
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/read_markers", Auth: AuthUser, Handle: rs.handleReadMarkers},
	}
}

func (rs *roomsModule) handleReceipt(c *Call) {
	roomID, typ, eventID := c.Req.Vars["roomId"], c.Req.Vars["receiptType"], c.Req.Vars["eventId"]
	var body struct {
		ThreadID string `json:"thread_id"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	var err error
	switch typ {
	case receiptRead, receiptReadPrivate:
		err = rs.putReceipt(roomID, c.UserID, typ, eventID, body.ThreadID)
		if fr := fedRoomsOf(rs.n); err == nil && fr != nil && typ == receiptRead {
			fr.sendReceipt(roomID, c.UserID, eventID, body.ThreadID)
		}
	case fullyReadType:
		if body.ThreadID != "" {
			err = Errorf(400, ErrCodeInvalidParam, "m.fully_read takes no thread_id")
		} else {
			err = rs.setFullyRead(roomID, c.UserID, eventID)
		}
	default:
		err = Errorf(400, ErrCodeInvalidParam, "unknown receipt type %q", typ)
	}
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}

func (rs *roomsModule) handleReadMarkers(c *Call) {
	roomID := c.Req.Vars["roomId"]
	var body struct {
		FullyRead   string `json:"m.fully_read"`
		Read        string `json:"m.read"`
		ReadPrivate string `json:"m.read.private"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.FullyRead != "" {
		if err := rs.setFullyRead(roomID, c.UserID, body.FullyRead); err != nil {
			c.Fail(err)
			return
		}
	}
	for _, r := range []struct{ typ, id string }{{receiptRead, body.Read}, {receiptReadPrivate, body.ReadPrivate}} {
		if r.id == "" {
			continue
		}
		if err := rs.putReceipt(roomID, c.UserID, r.typ, r.id, ""); err != nil {
			c.Fail(err)
			return
		}
		if fr := fedRoomsOf(rs.n); fr != nil && r.typ == receiptRead {
			fr.sendReceipt(roomID, c.UserID, r.id, "")
		}
	}
	c.Reply(200, struct{}{})
}

// putReceipt records a receipt for an event the user can see and wakes the
// room's syncs (only the user's, for a private receipt).
func (rs *roomsModule) putReceipt(roomID, userID, typ, eventID, threadID string) error {
	if _, err := rs.visibleEvent(roomID, eventID, userID); err != nil {
		return err
	}
	pos := rs.pos + 1
	err := rs.st.PutReceipt(store.Receipt{RoomID: roomID, Type: typ, UserID: userID, ThreadID: threadID,
		EventID: eventID, TS: rs.n.Now().UnixMilli(), Pos: pos})
	if err != nil {
		return err
	}
	rs.pos = pos
	if rm := rs.byID[roomID]; rm != nil {
		rm.receiptPos = pos
	}
	delete(rs.unread, unreadKey{roomID, userID})
	if typ == receiptReadPrivate {
		rs.wakeUsers(map[string]bool{userID: true})
	} else {
		rs.wakeRoom(roomID)
	}
	return nil
}

func (rs *roomsModule) setFullyRead(roomID, userID, eventID string) error {
	if _, err := rs.visibleEvent(roomID, eventID, userID); err != nil {
		return err
	}
	return rs.putAccountData(userID, roomID, fullyReadType, mustJSON(map[string]string{"event_id": eventID}))
}

// receiptEvent is the m.receipt ephemeral event for a list of receipts;
// private receipts are shown only to their owner. Nil when nothing shows.
func receiptEvent(receipts []store.Receipt, userID string) map[string]any {
	content := map[string]map[string]map[string]any{}
	n := 0
	for _, r := range receipts {
		if r.Type == receiptReadPrivate && r.UserID != userID {
			continue
		}
		byType := content[r.EventID]
		if byType == nil {
			byType = map[string]map[string]any{}
			content[r.EventID] = byType
		}
		users := byType[r.Type]
		if users == nil {
			users = map[string]any{}
			byType[r.Type] = users
		}
		info := map[string]any{"ts": r.TS}
		if r.ThreadID != "" {
			info["thread_id"] = r.ThreadID
		}
		users[r.UserID] = info
		n++
	}
	if n == 0 {
		return nil
	}
	return map[string]any{"type": "m.receipt", "content": content}
}
