package homeserver

// The server side of the federation room endpoints (server-server-api):
//
//	GET  /v1/make_join/{roomId}/{userId}?ver=…     → {"event": template, "room_version"}
//	PUT  /v2/send_join/{roomId}/{eventId}           → {"state", "auth_chain", "event", "members_omitted", "servers_in_room", "origin"}
//	PUT  /v2/invite/{roomId}/{eventId}              → {"event": the invite with our signature}
//	GET  /v1/make_leave/{roomId}/{userId}           → {"event", "room_version"}
//	PUT  /v2/send_leave/{roomId}/{eventId}          → {}
//	GET  /v1/make_knock/{roomId}/{userId}?ver=…     → {"event", "room_version"}
//	PUT  /v1/send_knock/{roomId}/{eventId}          → {"knock_room_state": stripped state}
//	GET  /v1/backfill/{roomId}?v=…&limit=N          → {"origin", "origin_server_ts", "pdus"}
//	POST /v1/get_missing_events/{roomId}            → {"events"}
//	GET  /v1/state/{roomId}?event_id=E              → {"pdus", "auth_chain"}: the state before E
//	GET  /v1/state_ids/{roomId}?event_id=E          → {"pdu_ids", "auth_chain_ids"}
//	GET  /v1/event/{eventId}                        → {"origin", "origin_server_ts", "pdus": [E]}
//	GET  /v1/event_auth/{roomId}/{eventId}          → {"auth_chain"}
//	GET  /v1/hierarchy/{roomId}                     → {"room", "children", "inaccessible_children"}
//
// (all under /_matrix/federation). Every room endpoint applies the room's
// server ACL to the requesting server. Events received through send_join,
// send_leave and send_knock go through the PDU checks and, once accepted,
// are sent on to the other servers in the room, which only learn of them
// from us.
//
// Reading a room's events (backfill, get_missing_events, event, state,
// state_ids) is open to a server one of whose users has a membership in
// the room (or to any server, in a room world readable now); which events
// it may see whole is then decided event by event, by the history
// visibility at each (visibility.go): the others are served redacted,
// and the state at them is refused.

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strconv"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Errcodes of the federation room endpoints.
const (
	ErrCodeIncompatibleRoomVersion = "M_INCOMPATIBLE_ROOM_VERSION"
)

// maxBackfillLimit caps /backfill and /get_missing_events.
const maxBackfillLimit = 100

func (fr *fedRooms) serveRoutes() []Route {
	const p = "/_matrix/federation"
	return []Route{
		{Method: "GET", Pattern: p + "/v1/make_join/{roomId}/{userId}", Auth: AuthFederation, Handle: fr.handleMake(auth.Join)},
		{Method: "PUT", Pattern: p + "/v2/send_join/{roomId}/{eventId}", Auth: AuthFederation, Handle: fr.handleSendMember(auth.Join)},
		{Method: "GET", Pattern: p + "/v1/make_leave/{roomId}/{userId}", Auth: AuthFederation, Handle: fr.handleMake(auth.Leave)},
		{Method: "PUT", Pattern: p + "/v2/send_leave/{roomId}/{eventId}", Auth: AuthFederation, Handle: fr.handleSendMember(auth.Leave)},
		{Method: "GET", Pattern: p + "/v1/make_knock/{roomId}/{userId}", Auth: AuthFederation, Handle: fr.handleMake(auth.Knock)},
		{Method: "PUT", Pattern: p + "/v1/send_knock/{roomId}/{eventId}", Auth: AuthFederation, Handle: fr.handleSendMember(auth.Knock)},
		{Method: "PUT", Pattern: p + "/v2/invite/{roomId}/{eventId}", Auth: AuthFederation, Handle: fr.handleInvite},
		{Method: "GET", Pattern: p + "/v1/backfill/{roomId}", Auth: AuthFederation, Handle: fr.handleBackfill},
		{Method: "POST", Pattern: p + "/v1/get_missing_events/{roomId}", Auth: AuthFederation, Handle: fr.handleMissingEvents},
		{Method: "GET", Pattern: p + "/v1/state/{roomId}", Auth: AuthFederation, Handle: fr.handleState(false)},
		{Method: "GET", Pattern: p + "/v1/state_ids/{roomId}", Auth: AuthFederation, Handle: fr.handleState(true)},
		{Method: "GET", Pattern: p + "/v1/event/{eventId}", Auth: AuthFederation, Handle: fr.handleEvent},
		{Method: "GET", Pattern: p + "/v1/event_auth/{roomId}/{eventId}", Auth: AuthFederation, Handle: fr.handleEventAuth},
		{Method: "GET", Pattern: p + "/v1/hierarchy/{roomId}", Auth: AuthFederation, Handle: fr.handleHierarchy},
	}
}

// roomFor loads the call's room and applies its server ACL to the origin.
func (fr *fedRooms) roomFor(c *Call, roomID string) (*roomCache, error) {
	rm, err := fr.rs.room(roomID)
	if err != nil {
		return nil, err
	}
	if err := fr.checkACL(rm, c.Origin); err != nil {
		return nil, err
	}
	return rm, nil
}

// readableRoom is roomFor and readable: a room whose events the origin
// may read.
func (fr *fedRooms) readableRoom(c *Call, roomID string) (*roomCache, error) {
	rm, err := fr.roomFor(c, roomID)
	if err != nil {
		return nil, err
	}
	if err := fr.readable(c, rm); err != nil {
		return nil, err
	}
	return rm, nil
}

// readable checks that the origin may read the room at all: one of its
// users has a membership in the room's current state (joined, invited,
// or once a member), or the room is world readable. Which events it sees
// whole is decided per event (serverViewer).
func (fr *fedRooms) readable(c *Call, rm *roomCache) error {
	for k := range rm.state {
		if k.Type == auth.TypeMember && serverOf(k.StateKey) == c.Origin {
			return nil
		}
	}
	if e := rm.state[auth.StateKey{Type: "m.room.history_visibility"}]; e != nil {
		var hv struct {
			V string `json:"history_visibility"`
		}
		if json.Unmarshal(e.Content(), &hv) == nil && hv.V == "world_readable" {
			return nil
		}
	}
	return Errorf(403, ErrCodeForbidden, "server %s is not in room %s", c.Origin, rm.id)
}

// handleMake serves make_join, make_leave and make_knock: a membership
// event template for the remote user to sign. Spec: server-server-api
// "Joining Rooms", "Leaving Rooms (Rejecting Invites)", "Knocking upon a
// room".
func (fr *fedRooms) handleMake(membership string) func(c *Call) {
	return func(c *Call) {
		roomID, userID := c.Req.Vars["roomId"], c.Req.Vars["userId"]
		if !validUserID(userID) || serverOf(userID) != c.Origin {
			c.Fail(Errorf(403, ErrCodeForbidden, "user %s does not belong to %s", userID, c.Origin))
			return
		}
		fr.afterInvite(roomID, userID, func() {
			if !c.Done() {
				fr.makeMember(c, membership, roomID, userID)
			}
		})
	}
}

// makeMember builds the membership template of make_join, make_leave or
// make_knock.
func (fr *fedRooms) makeMember(c *Call, membership, roomID, userID string) {
	rm, err := fr.roomFor(c, roomID)
	if err != nil {
		c.Fail(err)
		return
	}
	if membership != auth.Leave {
		vers, ok := c.Req.Query["ver"]
		if !ok {
			vers = []string{"1"}
		}
		if !slices.Contains(vers, rm.version.ID) {
			c.Fail(Errorf(400, ErrCodeIncompatibleRoomVersion, "room %s has version %s", roomID, rm.version.ID).
				With("room_version", rm.version.ID))
			return
		}
	}
	contentMap := map[string]string{"membership": membership}
	if membership == auth.Join {
		via, err := fr.restrictedAuthoriser(rm, userID)
		if err != nil {
			c.Fail(err)
			return
		}
		if via != "" {
			contentMap["join_authorised_via_users_server"] = via
		}
	}
	content := mustJSON(contentMap)
	sk := userID
	authEvs, err := auth.SelectAuthEvents(rm.version, auth.TypeMember, sk, userID, content, rm.state)
	if err != nil {
		c.Fail(Errorf(400, ErrCodeBadJSON, "%v", err))
		return
	}
	authIDs := make([]string, len(authEvs))
	for i, e := range authEvs {
		authIDs[i] = e.ID()
	}
	proto := event.Proto{RoomID: rm.id, Sender: userID, Type: auth.TypeMember, StateKey: &sk, Content: content,
		PrevEvents: slices.Clone(rm.extremities), AuthEvents: authIDs, Depth: rm.depth + 1,
		OriginServerTS: fr.n.Now().UnixMilli()}
	// Try the template against the current state, signed in the
	// user's server's name (the rules need the signature to be there,
	// not to verify), so a join that cannot succeed fails now.
	trial, err := event.Build(proto, rm.version, c.Origin, fr.n.key.ID, fr.n.key.Key)
	if err == nil && contentMap["join_authorised_via_users_server"] != "" {
		var raw []byte
		if raw, err = event.SignEvent(trial.JSON(), rm.version, fr.n.ServerName(), fr.n.key.ID, fr.n.key.Key); err == nil {
			trial, err = event.Parse(raw, rm.version)
		}
	}
	if err != nil {
		c.Fail(Errorf(400, ErrCodeBadJSON, "cannot build event: %v", err))
		return
	}
	if err := auth.Check(trial, rm.state); err != nil {
		c.Fail(Errorf(403, ErrCodeForbidden, "%s may not %s %s: %v", userID, membership, roomID, err))
		return
	}
	tmpl := map[string]any{
		"room_id": rm.id, "sender": userID, "type": auth.TypeMember, "state_key": userID,
		"content": content, "prev_events": nonNil(proto.PrevEvents), "auth_events": authIDs,
		"depth": proto.Depth, "origin_server_ts": proto.OriginServerTS, "origin": fr.n.ServerName(),
	}
	c.Reply(200, map[string]any{"event": tmpl, "room_version": rm.version.ID})
}

// handleSendMember serves send_join, send_leave and send_knock: the signed
// membership event goes through the PDU checks, then to the room's other
// servers.
func (fr *fedRooms) handleSendMember(membership string) func(c *Call) {
	return func(c *Call) {
		roomID, eventID := c.Req.Vars["roomId"], c.Req.Vars["eventId"]
		rm, err := fr.roomFor(c, roomID)
		if err != nil {
			c.Fail(err)
			return
		}
		ev, err := event.Parse(c.Req.Body, rm.version)
		if err != nil {
			c.Fail(Errorf(400, ErrCodeBadJSON, "bad event: %v", err))
			return
		}
		sk, _ := ev.StateKey()
		switch {
		case ev.ID() != eventID:
			c.Fail(Errorf(400, ErrCodeBadJSON, "event ID is %s, not %s", ev.ID(), eventID))
			return
		case ev.RoomID() != rm.id, ev.Type() != auth.TypeMember, ev.Membership() != membership, sk != ev.Sender():
			c.Fail(Errorf(400, ErrCodeBadJSON, "not a %s event of its sender in %s", membership, roomID))
			return
		case serverOf(ev.Sender()) != c.Origin:
			c.Fail(Errorf(403, ErrCodeForbidden, "sender %s does not belong to %s", ev.Sender(), c.Origin))
			return
		}
		raw := c.Req.Body
		if membership == auth.Join {
			// A restricted join authorised by one of our users needs our
			// signature too (rooms/v10.md rule 4.2).
			var jc struct {
				Via string `json:"join_authorised_via_users_server"`
			}
			if json.Unmarshal(ev.Content(), &jc) == nil && jc.Via != "" && serverOf(jc.Via) == fr.n.ServerName() {
				signed, err := event.SignEvent(raw, rm.version, fr.n.ServerName(), fr.n.key.ID, fr.n.key.Key)
				if err != nil {
					c.Fail(Errorf(400, ErrCodeBadJSON, "cannot sign the join: %v", err))
					return
				}
				if ev, err = event.Parse(signed, rm.version); err != nil {
					c.Fail(err)
					return
				}
				raw = signed
			}
		}
		serversBefore := roomServers(rm.state)
		job := &pduJob{origin: c.Origin, raw: raw, roomID: rm.id, live: true, done: func(id string, err error) {
			if c.Done() {
				return
			}
			if err != nil {
				if errors.Is(err, errRejected) {
					c.Fail(Errorf(403, ErrCodeForbidden, "%v", err))
				} else {
					c.Fail(err)
				}
				return
			}
			fr.sendMemberReply(c, membership, ev, serversBefore)
		}}
		fr.enqueue(job)
	}
}

// enqueue queues a PDU job behind the room's earlier ones.
func (fr *fedRooms) enqueue(job *pduJob) {
	fr.queue[job.roomID] = append(fr.queue[job.roomID], job)
	if len(fr.queue[job.roomID]) == 1 {
		fr.runQueue(job.roomID)
	}
}

// sendMemberReply answers an accepted send_join/leave/knock and passes the
// event on to the room's other servers.
func (fr *fedRooms) sendMemberReply(c *Call, membership string, ev *event.Event, serversBefore []string) {
	rs := fr.rs
	row, err := rs.st.Event(ev.ID())
	if err != nil {
		c.Fail(err)
		return
	}
	rm, err := rs.room(ev.RoomID())
	if err != nil {
		c.Fail(err)
		return
	}
	if row.Outlier {
		c.Fail(Errorf(403, ErrCodeForbidden, "%s is not allowed by the room's current state", ev.ID()))
		return
	}
	dests := fr.destinations(serversBefore, ev, rm.state)
	dests = slices.DeleteFunc(dests, func(s string) bool { return s == c.Origin })
	fr.broadcast(dests, ev)
	switch membership {
	case auth.Leave:
		c.Reply(200, struct{}{})
	case auth.Knock:
		before, err := rs.stateAt(row.StateBefore, rm.version)
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, map[string]any{"knock_room_state": strippedState(before)})
	default:
		ids, _, err := rs.st.LoadStateGroup(row.StateBefore)
		if err != nil {
			c.Fail(err)
			return
		}
		state, chain, err := fr.stateAndAuthChain(ids)
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, map[string]any{
			"origin": fr.n.ServerName(), "event": json.RawMessage(ev.JSON()), "members_omitted": false,
			"servers_in_room": roomServers(rm.state), "state": state, "auth_chain": chain,
		})
	}
}

// strippedState is the stripped state an invitee or knocker sees. Spec:
// client-server-api "Stripped state".
func strippedState(state auth.State) []any {
	out := []any{}
	for _, t := range strippedStateTypes {
		if e := state[auth.StateKey{Type: t}]; e != nil {
			sk, _ := e.StateKey()
			out = append(out, strippedEvent{Content: e.Content(), Sender: e.Sender(), StateKey: sk, Type: e.Type()})
		}
	}
	return out
}

// stateAndAuthChain returns the events of a state map and their full auth
// chain (which repeats state events that authorise others: Dendrite checks
// that the chain holds the create event), as raw PDUs sorted by depth.
func (fr *fedRooms) stateAndAuthChain(ids store.StateMap) (state, chain []json.RawMessage, err error) {
	list := make([]string, 0, len(ids))
	for _, id := range ids {
		list = append(list, id)
	}
	rows, err := fr.rs.st.Events(list)
	if err != nil {
		return nil, nil, err
	}
	state = []json.RawMessage{}
	for _, r := range rows {
		state = append(state, json.RawMessage(r.JSON))
	}
	chainRows, err := fr.authChain(list)
	if err != nil {
		return nil, nil, err
	}
	chain = []json.RawMessage{}
	for _, r := range chainRows {
		chain = append(chain, json.RawMessage(r.JSON))
	}
	return state, chain, nil
}

// authChain returns every event reachable from ids over auth_events (ids
// themselves excluded unless reachable), sorted by depth then ID.
func (fr *fedRooms) authChain(ids []string) ([]store.EventRow, error) {
	seen := map[string]bool{}
	var out []store.EventRow
	frontier := ids
	for len(frontier) > 0 {
		rows, err := fr.rs.st.Events(frontier)
		if err != nil {
			return nil, err
		}
		var next []string
		for _, r := range rows {
			var p struct {
				AuthEvents []string `json:"auth_events"`
			}
			if err := json.Unmarshal(r.JSON, &p); err != nil {
				return nil, err
			}
			for _, a := range p.AuthEvents {
				if !seen[a] {
					seen[a] = true
					next = append(next, a)
				}
			}
		}
		frontier = next
		if len(next) > 0 {
			got, err := fr.rs.st.Events(next)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Depth != out[j].Depth {
			return out[i].Depth < out[j].Depth
		}
		return out[i].EventID < out[j].EventID
	})
	return out, nil
}

// handleInvite serves PUT /v2/invite: a remote user invites one of our
// users. We check the inviter's server's signature, add ours, and — when
// we are not in the room — keep the invite so the user sees it in /sync.
// Spec: server-server-api "Inviting to a room", PUT /v2/invite.
func (fr *fedRooms) handleInvite(c *Call) {
	rs := fr.rs
	roomID, eventID := c.Req.Vars["roomId"], c.Req.Vars["eventId"]
	var body struct {
		Event           json.RawMessage   `json:"event"`
		RoomVersion     string            `json:"room_version"`
		InviteRoomState []json.RawMessage `json:"invite_room_state"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	v, err := event.LookupVersion(body.RoomVersion)
	if err != nil {
		c.Fail(Errorf(400, ErrCodeIncompatibleRoomVersion, "room version %q is not supported", body.RoomVersion).
			With("room_version", body.RoomVersion))
		return
	}
	ev, err := event.Parse(body.Event, v)
	if err != nil {
		c.Fail(Errorf(400, ErrCodeBadJSON, "bad invite event: %v", err))
		return
	}
	sk, _ := ev.StateKey()
	switch {
	case ev.ID() != eventID || ev.RoomID() != roomID:
		c.Fail(Errorf(400, ErrCodeBadJSON, "event does not match the path"))
		return
	case ev.Type() != auth.TypeMember || ev.Membership() != auth.Invite || serverOf(sk) != fr.n.ServerName():
		c.Fail(Errorf(400, ErrCodeBadJSON, "not an invite of a user of %s", fr.n.ServerName()))
		return
	case serverOf(ev.Sender()) != c.Origin:
		c.Fail(Errorf(403, ErrCodeForbidden, "sender %s does not belong to %s", ev.Sender(), c.Origin))
		return
	}
	if rm, err := rs.room(roomID); err == nil {
		if err := fr.checkACL(rm, c.Origin); err != nil {
			c.Fail(err)
			return
		}
	}
	if _, err := rs.st.Account(sk); err != nil {
		c.Fail(Errorf(404, ErrCodeNotFound, "user %s does not exist", sk))
		return
	}
	fr.verifyEvents(v, []*event.Event{ev}, func(checked []*event.Event, errs map[string]error) {
		if err := errs[ev.ID()]; err != nil {
			c.Fail(Errorf(403, ErrCodeForbidden, "%v", err))
			return
		}
		if len(checked) == 0 || !bytesEqual(checked[0].JSON(), ev.JSON()) {
			c.Fail(Errorf(400, ErrCodeBadJSON, "invite event content hash does not match"))
			return
		}
		signed, err := event.SignEvent(ev.JSON(), v, fr.n.ServerName(), fr.n.key.ID, fr.n.key.Key)
		if err != nil {
			c.Fail(err)
			return
		}
		if !fr.inRoom(roomID) {
			// Not in the room: keep the invite (and the event, outside
			// the timeline) for /sync. (When we are in the room, the
			// event reaches us in a transaction like any other.)
			if sev, err := event.Parse(signed, v); err == nil {
				if known, _ := fr.known(sev.ID()); !known {
					if err := fr.storeOutlier(sev, nil); err != nil {
						c.Fail(err)
						return
					}
				}
			}
			state, _ := json.Marshal(nonNilRaw(body.InviteRoomState))
			if err := fr.storeRemoteInvite(store.RemoteInvite{RoomID: roomID, UserID: sk, RoomVersion: v.ID,
				EventID: ev.ID(), JSON: signed, InviteState: state}); err != nil {
				c.Fail(err)
				return
			}
			rs.pushRemoteInvite(sk, ev.ID(), signed, body.InviteRoomState)
		}
		c.Reply(200, map[string]any{"event": json.RawMessage(signed)})
	})
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func nonNilRaw(s []json.RawMessage) []json.RawMessage {
	if s == nil {
		return []json.RawMessage{}
	}
	return s
}

// storeRemoteInvite records an invite to a room we are not in and the
// user's membership, and wakes the user's /sync.
func (fr *fedRooms) storeRemoteInvite(ri store.RemoteInvite) error {
	return fr.storeRemoteMembership(ri, auth.Invite)
}

// storeRemoteMembership records a local user's invite to (or knock on) a
// room we are not in, with the stripped state /sync shows for it.
func (fr *fedRooms) storeRemoteMembership(ri store.RemoteInvite, membership string) error {
	return fr.rs.write(func(b *roomBatch) error {
		if err := b.t.PutRemoteInvite(ri); err != nil {
			return err
		}
		b.pos++
		m := store.Membership{RoomID: ri.RoomID, UserID: ri.UserID, Membership: membership, EventID: ri.EventID, Pos: b.pos}
		if err := b.t.SetMembership(m); err != nil {
			return err
		}
		b.members = append(b.members, m)
		b.wake[ri.UserID] = true
		return nil
	})
}

// handleEvent serves GET /v1/event/{eventId}.
func (fr *fedRooms) handleEvent(c *Call) {
	row, err := fr.rs.st.Event(c.Req.Vars["eventId"])
	if errors.Is(err, store.ErrNotFound) {
		c.Fail(Errorf(404, ErrCodeNotFound, "event not found"))
		return
	}
	if err != nil {
		c.Fail(err)
		return
	}
	rm, err := fr.readableRoom(c, row.RoomID)
	if err != nil {
		c.Fail(err)
		return
	}
	pdus, err := fr.rs.serverViewer(rm, c.Origin).servedPDUs([]store.EventRow{row})
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, fr.pduResponse(pdus))
}

// pduResponse is the Transaction-shaped answer of /event and /backfill.
func (fr *fedRooms) pduResponse(pdus []json.RawMessage) map[string]any {
	if pdus == nil {
		pdus = []json.RawMessage{}
	}
	return map[string]any{"origin": fr.n.ServerName(), "origin_server_ts": fr.n.Now().UnixMilli(), "pdus": pdus}
}

// eventInRoom loads an event of the call's readable room.
func (fr *fedRooms) eventInRoom(c *Call, roomID, eventID string) (store.EventRow, *roomCache, error) {
	rm, err := fr.readableRoom(c, roomID)
	if err != nil {
		return store.EventRow{}, nil, err
	}
	row, err := fr.rs.st.Event(eventID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && row.RoomID != roomID) {
		return store.EventRow{}, nil, Errorf(404, ErrCodeNotFound, "event %s not found in %s", eventID, roomID)
	}
	return row, rm, err
}

// handleState serves /state and /state_ids: the state before event_id and
// its auth chain.
func (fr *fedRooms) handleState(idsOnly bool) func(c *Call) {
	return func(c *Call) {
		eventID := c.Req.Query.Get("event_id")
		if eventID == "" {
			c.Fail(Errorf(400, ErrCodeMissingParam, "event_id is required"))
			return
		}
		row, rm, err := fr.eventInRoom(c, c.Req.Vars["roomId"], eventID)
		if err != nil {
			c.Fail(err)
			return
		}
		if ok, err := fr.rs.serverViewer(rm, c.Origin).allows(row); err != nil || !ok {
			if err == nil {
				err = Errorf(403, ErrCodeForbidden, "server %s may not see %s", c.Origin, eventID)
			}
			c.Fail(err)
			return
		}
		if row.StateBefore < 0 {
			c.Fail(Errorf(404, ErrCodeNotFound, "the state at %s is not known here", eventID))
			return
		}
		ids := store.StateMap{}
		if row.StateBefore > 0 {
			if ids, _, err = fr.rs.st.LoadStateGroup(row.StateBefore); err != nil {
				c.Fail(err)
				return
			}
		}
		state, chain, err := fr.stateAndAuthChain(ids)
		if err != nil {
			c.Fail(err)
			return
		}
		if !idsOnly {
			c.Reply(200, map[string]any{"pdus": state, "auth_chain": chain})
			return
		}
		c.Reply(200, map[string]any{"pdu_ids": rawIDs(state, fr, row.RoomID), "auth_chain_ids": rawIDs(chain, fr, row.RoomID)})
	}
}

// rawIDs computes the event IDs of stored PDUs.
func rawIDs(pdus []json.RawMessage, fr *fedRooms, roomID string) []string {
	out := []string{}
	rm, err := fr.rs.room(roomID)
	if err != nil {
		return out
	}
	for _, p := range pdus {
		if id, err := event.EventID(p, rm.version); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// handleEventAuth serves GET /v1/event_auth: the event's full auth chain.
func (fr *fedRooms) handleEventAuth(c *Call) {
	row, _, err := fr.eventInRoom(c, c.Req.Vars["roomId"], c.Req.Vars["eventId"])
	if err != nil {
		c.Fail(err)
		return
	}
	rows, err := fr.authChain([]string{row.EventID})
	if err != nil {
		c.Fail(err)
		return
	}
	chain := []json.RawMessage{}
	for _, r := range rows {
		chain = append(chain, json.RawMessage(r.JSON))
	}
	c.Reply(200, map[string]any{"auth_chain": chain})
}

// walkBack collects events reachable backwards over prev_events from
// start (start included when include), skipping stop, newest (by depth)
// first, up to limit events with depth ≥ minDepth.
func (fr *fedRooms) walkBack(roomID string, start []string, include bool, stop map[string]bool, limit int, minDepth int64) ([]store.EventRow, error) {
	seen := map[string]bool{}
	var out []store.EventRow
	var frontier []string
	if include {
		frontier = start
	} else {
		rows, err := fr.rs.st.Events(start)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			seen[r.EventID] = true
			frontier = append(frontier, prevOf(r)...)
		}
	}
	for len(frontier) > 0 && len(out) < limit {
		var ids []string
		for _, id := range frontier {
			if !seen[id] && !stop[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		rows, err := fr.rs.st.Events(ids)
		if err != nil {
			return nil, err
		}
		sort.Slice(rows, func(i, j int) bool {
			if rows[i].Depth != rows[j].Depth {
				return rows[i].Depth > rows[j].Depth
			}
			return rows[i].EventID < rows[j].EventID
		})
		frontier = nil
		for _, r := range rows {
			if r.RoomID != roomID || r.Depth < minDepth {
				continue
			}
			if len(out) >= limit {
				break
			}
			out = append(out, r)
			frontier = append(frontier, prevOf(r)...)
		}
	}
	return out, nil
}

// prevOf reads prev_events from a stored event.
func prevOf(r store.EventRow) []string {
	var p struct {
		Prev []string `json:"prev_events"`
	}
	_ = json.Unmarshal(r.JSON, &p)
	return p.Prev
}

// handleBackfill serves GET /v1/backfill: events before (and including)
// the ones named by v, newest first.
func (fr *fedRooms) handleBackfill(c *Call) {
	roomID := c.Req.Vars["roomId"]
	rm, err := fr.readableRoom(c, roomID)
	if err != nil {
		c.Fail(err)
		return
	}
	from := c.Req.Query["v"]
	if len(from) == 0 {
		c.Fail(Errorf(400, ErrCodeMissingParam, "v is required"))
		return
	}
	limit, err := strconv.Atoi(c.Req.Query.Get("limit"))
	if err != nil || limit < 1 {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "limit must be a positive integer"))
		return
	}
	rows, err := fr.walkBack(roomID, from, true, nil, min(limit, maxBackfillLimit), 0)
	if err != nil {
		c.Fail(err)
		return
	}
	pdus, err := fr.rs.serverViewer(rm, c.Origin).servedPDUs(rows)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, fr.pduResponse(pdus))
}

// handleMissingEvents serves POST /v1/get_missing_events: the events
// between earliest_events and latest_events, oldest first.
func (fr *fedRooms) handleMissingEvents(c *Call) {
	roomID := c.Req.Vars["roomId"]
	var body struct {
		Earliest []string `json:"earliest_events"`
		Latest   []string `json:"latest_events"`
		Limit    int      `json:"limit"`
		MinDepth int64    `json:"min_depth"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	rm, err := fr.readableRoom(c, roomID)
	if err != nil {
		c.Fail(err)
		return
	}
	if body.Limit <= 0 {
		body.Limit = 10
	}
	stop := map[string]bool{}
	for _, e := range body.Earliest {
		stop[e] = true
	}
	rows, err := fr.walkBack(roomID, body.Latest, false, stop, min(body.Limit, maxBackfillLimit), body.MinDepth)
	if err != nil {
		c.Fail(err)
		return
	}
	slices.Reverse(rows)
	evs, err := fr.rs.serverViewer(rm, c.Origin).servedPDUs(rows)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"events": evs})
}

// handleHierarchy serves GET /v1/hierarchy: the room's summary and those
// of its children (m.space.child) this server knows. Spec:
// server-server-api "Spaces".
func (fr *fedRooms) handleHierarchy(c *Call) {
	rm, err := fr.roomFor(c, c.Req.Vars["roomId"])
	if err != nil {
		c.Fail(err)
		return
	}
	if !fr.peekable(rm) && fr.readable(c, rm) != nil {
		c.Fail(Errorf(404, ErrCodeNotFound, "room %s is not accessible", rm.id))
		return
	}
	room := fr.summary(rm)
	suggestedOnly := c.Req.Query.Get("suggested_only") == "true"
	children := []any{}
	inaccessible := []string{}
	all := spaceChildren(rm)
	for _, ch := range all {
		if suggestedOnly && !ch.suggested {
			continue
		}
		child, err := fr.rs.room(ch.roomID)
		if err != nil || !fr.inRoom(ch.roomID) || !fr.peekable(child) {
			inaccessible = append(inaccessible, ch.roomID)
			continue
		}
		children = append(children, fr.summary(child))
	}
	room["children_state"] = childrenState(all)
	c.Reply(200, map[string]any{"room": room, "children": children, "inaccessible_children": inaccessible})
}

// peekable reports whether a room's summary may be shown to anyone: its
// join rule is public (or knock), or it is world readable.
func (fr *fedRooms) peekable(rm *roomCache) bool {
	s := fr.summary(rm)
	jr, _ := s["join_rule"].(string)
	wr, _ := s["world_readable"].(bool)
	return jr == auth.JoinRulePublic || jr == auth.Knock || wr
}

// summary is a room's public summary (PublishedRoomsChunk fields).
func (fr *fedRooms) summary(rm *roomCache) map[string]any {
	str := func(typ, field string) string {
		e := rm.state[auth.StateKey{Type: typ}]
		if e == nil {
			return ""
		}
		s, _ := e.ContentMap()[field].(string)
		return s
	}
	out := map[string]any{
		"room_id": rm.id, "num_joined_members": len(fr.rs.joinedMembers(rm.id)),
		"world_readable": str("m.room.history_visibility", "history_visibility") == "world_readable",
		"guest_can_join": str("m.room.guest_access", "guest_access") == "can_join",
		"join_rule":      str(auth.TypeJoinRules, "join_rule"),
	}
	if out["join_rule"] == "" {
		out["join_rule"] = auth.JoinRuleInvite
	}
	for field, typ := range map[string]string{"name": "m.room.name", "topic": "m.room.topic", "avatar_url": "m.room.avatar",
		"canonical_alias": "m.room.canonical_alias"} {
		key := field
		if field == "canonical_alias" {
			key = "alias"
		}
		if field == "avatar_url" {
			key = "url"
		}
		if s := str(typ, key); s != "" {
			out[field] = s
		}
	}
	if t := str(auth.TypeCreate, "type"); t != "" {
		out["room_type"] = t
	}
	return out
}

// restrictedAuthoriser picks, for a join to a restricted room by a user who
// is neither invited nor joined, a local user who may authorise it: one
// joined with at least the invite level, when userID is joined to one of
// the rooms the join rules allow (as far as this server knows). "" when
// the room is not restricted or the user needs no authoriser; 403 when no
// allowed room has the user. Spec: client-server-api "Restricted rooms";
// server-server-api "Restricted rooms" (make_join).
func (fr *fedRooms) restrictedAuthoriser(rm *roomCache, userID string) (string, error) {
	jr := rm.state[auth.StateKey{Type: auth.TypeJoinRules}]
	if jr == nil {
		return "", nil
	}
	var rules struct {
		JoinRule string `json:"join_rule"`
		Allow    []struct {
			Type   string `json:"type"`
			RoomID string `json:"room_id"`
		} `json:"allow"`
	}
	if json.Unmarshal(jr.Content(), &rules) != nil ||
		(rules.JoinRule != auth.JoinRuleRestricted && rules.JoinRule != auth.JoinRuleKnockRestricted) {
		return "", nil
	}
	if m := fr.rs.membership(rm.id, userID); m == auth.Join || m == auth.Invite {
		return "", nil
	}
	allowed := false
	for _, a := range rules.Allow {
		if a.Type == "m.room_membership" && fr.rs.membership(a.RoomID, userID) == auth.Join {
			allowed = true
		}
	}
	if !allowed {
		return "", Errorf(403, ErrCodeForbidden, "%s is not in a room that %s allows joining from", userID, rm.id)
	}
	need := int64(0)
	if pl := rm.state[auth.StateKey{Type: auth.TypePowerLevels}]; pl != nil {
		var l struct {
			Invite *int64 `json:"invite"`
		}
		if json.Unmarshal(pl.Content(), &l) == nil && l.Invite != nil {
			need = *l.Invite
		}
	}
	for _, u := range fr.rs.joinedMembers(rm.id) {
		if serverOf(u) == fr.n.ServerName() && auth.PowerLevel(rm.state, u) >= need {
			return u, nil
		}
	}
	return "", Errorf(400, "M_UNABLE_TO_AUTHORISE_JOIN", "no user of %s can authorise joins to %s", fr.n.ServerName(), rm.id)
}
