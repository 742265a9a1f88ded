package homeserver

// Room federation: the room half of server-server-api. This file holds the
// module that ties the rooms module to the federation module (the PDU
// handler, sending new events to every server in the room, catch-up),
// and server ACLs. The PDU checks are in fedroom_receive.go, the server
// side of the room endpoints in fedroom_serve.go, the client side (joining,
// inviting and leaving across servers, backfill) in fedroom_join.go.
//
// Sending: every event this node creates in a room is queued (through the
// federation module's persisted per-destination queues) for every other
// server with a joined member in the state before or after it.
// Spec: server-server-api "Room Events" ("the origin adds it to its graph
// ... sends it to every server in the room"), "Server Access Control Lists".

import (
	"encoding/json"
	"slices"
	"sort"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

// fedRoomsModuleName is the Node.Module key of the room federation module.
const fedRoomsModuleName = "fedrooms"

// fedRooms is the per-node state of room federation. It belongs to the
// node loop (no locking).
type fedRooms struct {
	n  *Node
	rs *roomsModule
	// queue holds the inbound PDUs of each room waiting for the one ahead
	// of them (the head is being processed).
	queue map[string][]*pduJob
	// backfilling, joining and inviting are the backfills (by room),
	// remote joins and invites (by room and user) in flight: a repeated
	// request joins the one in flight, and a make_join waits for an
	// invite of the same user in flight (see afterInvite).
	backfilling flights[bool]
	joining     flights[error]
	inviting    flights[error]
	// negPos is the last negative stream position handed to an outlier.
	negPos int64
	// panics counts bugs caught by guard (tests assert it stays 0).
	panics int
}

func init() {
	// Registered after the rooms and federation groups, which it links.
	routeGroups = append(routeGroups, fedRoomRoutes)
}

// fedRoomsOf returns the node's room federation module (nil without one).
func fedRoomsOf(n *Node) *fedRooms {
	fr, _ := n.Module(fedRoomsModuleName).(*fedRooms)
	return fr
}

func fedRoomRoutes(n *Node) ([]Route, error) {
	rs := roomsOf(n)
	if rs == nil {
		return nil, nil
	}
	neg, err := n.store.MinStreamPos()
	if err != nil {
		return nil, err
	}
	fr := &fedRooms{n: n, rs: rs, queue: map[string][]*pduJob{},
		backfilling: flights[bool]{}, joining: flights[error]{}, inviting: flights[error]{}, negPos: neg}
	n.SetModule(fedRoomsModuleName, fr)
	if f := n.Federation(); f != nil {
		f.SetPDUHandler(fr.receivePDU)
		f.SetCatchUp(fr.catchUp)
	}
	return fr.serveRoutes(), nil
}

// roomServers lists the servers with a joined member in state, sorted.
func roomServers(state auth.State) []string {
	set := map[string]bool{}
	for k, e := range state {
		if k.Type == auth.TypeMember && e.Membership() == auth.Join {
			set[serverOf(k.StateKey)] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// destinations lists the other servers an event created here goes to:
// those with joined members before or after it. A kicked user's server is
// among them (its user was joined just before); servers not in the room
// are not sent its events: an invitee's server got the invite through
// /invite, and a server that left cannot place later events (Dendrite
// then ignores an invite that arrives after a ban and unban it saw only in
// part).
func (fr *fedRooms) destinations(before []string, ev *event.Event, after auth.State) []string {
	set := map[string]bool{}
	for _, s := range before {
		set[s] = true
	}
	for _, s := range roomServers(after) {
		set[s] = true
	}
	delete(set, fr.n.ServerName())
	delete(set, "")
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// broadcast queues an event created here for the other servers.
func (fr *fedRooms) broadcast(dests []string, ev *event.Event) {
	f := fr.n.Federation()
	if f == nil || len(dests) == 0 {
		return
	}
	if err := f.SendPDU(dests, json.RawMessage(ev.JSON())); err != nil {
		fr.n.log.Error("cannot queue PDU", "event", ev.ID(), "err", err)
	}
}

// catchUp runs when dest answers again after failures: it queues the
// forward extremities of every room shared with dest, so dest can pull
// what it missed with get_missing_events. Spec: server-server-api
// "Transactions" (catch-up is left to the sender; this is what Synapse
// and Dendrite do).
func (fr *fedRooms) catchUp(dest string) {
	rs := fr.rs
	f := fr.n.Federation()
	if f == nil {
		return
	}
	rooms := make([]string, 0, len(rs.members))
	for roomID := range rs.members {
		rooms = append(rooms, roomID)
	}
	sort.Strings(rooms)
	for _, roomID := range rooms {
		rm, err := rs.room(roomID)
		if err != nil {
			continue
		}
		shared := false
		for _, s := range roomServers(rm.state) {
			shared = shared || s == dest
		}
		if !shared {
			continue
		}
		rows, err := rs.st.Events(rm.extremities)
		if err != nil {
			fr.n.log.Error("catch-up", "room", roomID, "err", err)
			continue
		}
		for _, r := range rows {
			if err := f.SendPDU([]string{dest}, json.RawMessage(r.JSON)); err != nil {
				fr.n.log.Error("catch-up", "room", roomID, "err", err)
			}
		}
	}
}

// checkACL applies the room's m.room.server_acl to a server (ServerAllowed):
// 403 M_FORBIDDEN when it is denied. Spec: server-server-api "Server Access
// Control Lists (ACLs)".
func (fr *fedRooms) checkACL(rm *roomCache, server string) error {
	e := rm.state[auth.StateKey{Type: "m.room.server_acl"}]
	if e == nil || server == fr.n.ServerName() {
		return nil
	}
	if !ServerAllowed(e.Content(), server) {
		return Errorf(403, ErrCodeForbidden, "server %s is denied by the room's server ACL", server)
	}
	return nil
}

// sendEDU queues an EDU about a room for the room's other servers.
func (fr *fedRooms) sendEDU(roomID, eduType string, content any) {
	f := fr.n.Federation()
	rm, err := fr.rs.room(roomID)
	if f == nil || err != nil {
		return
	}
	dests := slices.DeleteFunc(roomServers(rm.state), func(s string) bool { return s == fr.n.ServerName() })
	if len(dests) == 0 {
		return
	}
	if err := f.SendEDU(dests, eduType, content); err != nil {
		fr.n.log.Error("cannot queue EDU", "type", eduType, "room", roomID, "err", err)
	}
}

// sendTyping tells the room's other servers that a local user started or
// stopped typing. Spec: server-server-api "Typing Notifications".
func (fr *fedRooms) sendTyping(roomID, userID string, typing bool) {
	fr.sendEDU(roomID, "m.typing", map[string]any{"room_id": roomID, "user_id": userID, "typing": typing})
}

// sendReceipt tells the room's other servers about a local user's public
// read receipt. Spec: server-server-api "Receipts".
func (fr *fedRooms) sendReceipt(roomID, userID, eventID, threadID string) {
	data := map[string]any{"ts": fr.n.Now().UnixMilli()}
	if threadID != "" {
		data["thread_id"] = threadID
	}
	fr.sendEDU(roomID, "m.receipt", map[string]any{roomID: map[string]any{"m.read": map[string]any{
		userID: map[string]any{"event_ids": []string{eventID}, "data": data}}}})
}
