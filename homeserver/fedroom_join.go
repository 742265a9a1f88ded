package homeserver

// The client side of room federation: what happens when a local user
// joins a room this server is not in, invites a user of another server, or
// rejects an invite to a room this server is not in.
//
// Join (server-server-api "Joining Rooms"): GET make_join from a resident
// server (the via servers, the inviter's server, the servers of the room's
// known members, the room ID's server), fill in and sign the template, PUT
// it to send_join (v2), check and store the returned auth chain and state
// as outliers, then store the join as the room's first (or, on a rejoin,
// newest) timeline event with that state before it.
//
// Invite (server-server-api "Inviting to a room"): build the invite, PUT it
// to the invitee's server's /v2/invite with stripped room state, and take
// the event it returns (now also signed by that server) through the PDU
// checks into the room, then to the room's servers.
//
// Rejecting a remote invite (server-server-api "Leaving Rooms (Rejecting
// Invites)"): make_leave / send_leave (v2) through the inviter's server.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// syncRemoteInvite is syncInvited for a room this server is not in: the
// stripped state the inviting server sent, plus the invite itself.
func (rs *roomsModule) syncRemoteInvite(roomID string, m store.Membership) (*invitedRoom, error) {
	ri, err := rs.st.RemoteInvite(roomID, m.UserID)
	if err != nil {
		return nil, err
	}
	ir := &invitedRoom{InviteState: eventList{Events: []any{}}}
	var state []json.RawMessage
	_ = json.Unmarshal(ri.InviteState, &state)
	for _, s := range state {
		ir.InviteState.Events = append(ir.InviteState.Events, s)
	}
	v, err := event.LookupVersion(ri.RoomVersion)
	if err != nil {
		return nil, err
	}
	if ev, err := event.Parse(ri.JSON, v); err == nil {
		sk, _ := ev.StateKey()
		ir.InviteState.Events = append(ir.InviteState.Events, strippedEvent{
			Content: ev.Content(), Sender: ev.Sender(), StateKey: sk, Type: ev.Type()})
	}
	return ir, nil
}

// inRoom reports whether this server takes part in the room: it knows the
// room and one of its users is joined.
func (fr *fedRooms) inRoom(roomID string) bool {
	rm, err := fr.rs.room(roomID)
	if err != nil {
		return false
	}
	return slices.Contains(roomServers(rm.state), fr.n.ServerName())
}

// joinServers lists the servers to ask for a join, in order: via, the
// inviter's server, servers of the room's known members, the room ID's.
func (fr *fedRooms) joinServers(roomID, userID string, via []string) []string {
	var out []string
	add := func(s string) {
		if s != "" && s != fr.n.ServerName() && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range via {
		add(s)
	}
	if ri, err := fr.rs.st.RemoteInvite(roomID, userID); err == nil {
		if v, err := event.LookupVersion(ri.RoomVersion); err == nil {
			if ev, err := event.Parse(ri.JSON, v); err == nil {
				add(serverOf(ev.Sender()))
			}
		}
	}
	if m, ok := fr.rs.members[roomID][userID]; ok && m.Membership == auth.Invite {
		if row, err := fr.rs.st.Event(m.EventID); err == nil {
			add(serverOf(row.Sender))
		}
	}
	if rm, err := fr.rs.room(roomID); err == nil {
		for _, s := range roomServers(rm.state) {
			add(s)
		}
	}
	add(serverOf(roomID))
	return out
}

// makeResponse is the answer of make_join / make_leave / make_knock.
type makeResponse struct {
	Event       json.RawMessage `json:"event"`
	RoomVersion string          `json:"room_version"`
}

// memberTemplate is the part of a make_* event template we use.
type memberTemplate struct {
	RoomID     string          `json:"room_id"`
	Sender     string          `json:"sender"`
	Type       string          `json:"type"`
	StateKey   *string         `json:"state_key"`
	Content    json.RawMessage `json:"content"`
	PrevEvents []string        `json:"prev_events"`
	AuthEvents []string        `json:"auth_events"`
	Depth      int64           `json:"depth"`
}

// signTemplate fills in a make_* template for userID with membership and
// the user's profile, and signs it. Spec: server-server-api "Joining
// Rooms" (the joining server fills in origin_server_ts and its signature).
func (fr *fedRooms) signTemplate(mr makeResponse, roomID, userID, membership, reason string) (*event.Event, error) {
	v, err := event.LookupVersion(mr.RoomVersion)
	if err != nil {
		return nil, fmt.Errorf("room version %q is not supported", mr.RoomVersion)
	}
	var t memberTemplate
	if err := json.Unmarshal(mr.Event, &t); err != nil {
		return nil, fmt.Errorf("bad event template: %w", err)
	}
	if t.RoomID != roomID || t.Sender != userID || t.Type != auth.TypeMember || t.StateKey == nil || *t.StateKey != userID {
		return nil, errors.New("event template is not our membership event")
	}
	content := map[string]any{}
	_ = json.Unmarshal(t.Content, &content)
	content["membership"] = membership
	if membership != auth.Leave {
		if p, err := fr.rs.st.Profile(userID); err == nil {
			if p.DisplayName != nil {
				content["displayname"] = *p.DisplayName
			}
			if p.AvatarURL != nil {
				content["avatar_url"] = *p.AvatarURL
			}
		}
	}
	if reason != "" {
		content["reason"] = reason
	}
	return event.Build(event.Proto{RoomID: roomID, Sender: userID, Type: auth.TypeMember, StateKey: t.StateKey,
		Content: content, PrevEvents: nonNil(t.PrevEvents), AuthEvents: nonNil(t.AuthEvents), Depth: t.Depth,
		OriginServerTS: fr.n.Now().UnixMilli()}, v, fr.n.ServerName(), fr.n.key.ID, fr.n.key.Key)
}

// remoteJoin joins userID to a room through one of servers, trying each in
// turn. done runs inside the loop. A join of the same user to the same
// room already in flight (a client retrying a join that outlives its
// request on a slow link) is not started again: done gets its result.
func (fr *fedRooms) remoteJoin(roomID, userID, reason string, servers []string, done func(error)) {
	fr.joining.do(roomID+"\x00"+userID, done, func(finish func(error)) {
		fr.remoteJoinVia(roomID, userID, reason, servers, finish)
	})
}

// remoteJoinVia is remoteJoin's work: make_join and send_join through the
// first of servers that answers.
func (fr *fedRooms) remoteJoinVia(roomID, userID, reason string, servers []string, done func(error)) {
	f := fr.n.Federation()
	if f == nil || len(servers) == 0 {
		done(Errorf(404, ErrCodeNotFound, "room %s is not known here and no server to join it through", roomID))
		return
	}
	var lastErr error
	var try func(i int)
	try = func(i int) {
		if i >= len(servers) {
			done(Errorf(404, ErrCodeNotFound, "cannot join %s through any server: %v", roomID, lastErr))
			return
		}
		s := servers[i]
		q := url.Values{"ver": nil}
		for _, v := range event.SupportedVersions() {
			q.Add("ver", v.ID)
		}
		uri := "/_matrix/federation/v1/make_join/" + url.PathEscape(roomID) + "/" + url.PathEscape(userID) + "?" + q.Encode()
		var mr makeResponse
		fr.doJSON(s, OutboundRequest{Method: "GET", URI: uri}, &mr, func(err error) {
			if err != nil {
				lastErr = fmt.Errorf("make_join via %s: %w", s, err)
				var re *RemoteError
				if errors.As(err, &re) && re.Status == 403 {
					done(Errorf(403, ErrCodeForbidden, "%v", lastErr))
					return
				}
				try(i + 1)
				return
			}
			ev, err := fr.signTemplate(mr, roomID, userID, auth.Join, reason)
			if err != nil {
				lastErr = fmt.Errorf("make_join via %s: %w", s, err)
				try(i + 1)
				return
			}
			fr.sendJoin(s, ev, func(err error) {
				if err != nil {
					lastErr = err
					var api *Error
					if errors.As(err, &api) && api.Status == 403 {
						done(err)
						return
					}
					try(i + 1)
					return
				}
				done(nil)
			})
		})
	}
	try(0)
}

// sendJoinResponse is the answer of PUT /v2/send_join.
type sendJoinResponse struct {
	State     []json.RawMessage `json:"state"`
	AuthChain []json.RawMessage `json:"auth_chain"`
	Event     json.RawMessage   `json:"event"`
}

// idempotentAttempts is how many times a membership request that names
// its event (send_join, invite) is sent when no answer comes back: the
// other server may have acted on it and only its answer been lost on the
// way, and sending the same event again is safe (it answers the same).
const idempotentAttempts = 3

// doJSONAgain is doJSON sent up to attempts times while it fails without
// an answer from the other server (a transport failure or timeout, not a
// *RemoteError).
func (fr *fedRooms) doJSONAgain(dest string, req OutboundRequest, out any, attempts int, done func(error)) {
	fr.doJSON(dest, req, out, func(err error) {
		var re *RemoteError
		if err != nil && !errors.As(err, &re) && attempts > 1 {
			fr.n.log.Info("no answer; sending again", "dest", dest, "uri", req.URI, "err", err)
			fr.doJSONAgain(dest, req, out, attempts-1, done)
			return
		}
		done(err)
	})
}

// sendJoin sends a signed join to server and stores the room it joins.
func (fr *fedRooms) sendJoin(server string, ev *event.Event, done func(error)) {
	uri := "/_matrix/federation/v2/send_join/" + url.PathEscape(ev.RoomID()) + "/" + url.PathEscape(ev.ID())
	var resp sendJoinResponse
	fr.doJSONAgain(server, OutboundRequest{Method: "PUT", URI: uri, Body: ev.JSON()}, &resp, idempotentAttempts, func(err error) {
		if err != nil {
			var re *RemoteError
			if errors.As(err, &re) && re.Status == 403 {
				done(Errorf(403, ErrCodeForbidden, "send_join via %s: %v", server, err))
				return
			}
			done(fmt.Errorf("send_join via %s: %w", server, err))
			return
		}
		join := ev
		if len(resp.Event) > 0 {
			// A restricted join comes back with the resident's signature.
			if e, err := event.Parse(resp.Event, ev.Version()); err == nil && e.ID() == ev.ID() {
				join = e
			}
		}
		fr.storeJoinedRoom(server, join, resp, done)
	})
}

// storeJoinedRoom checks and stores the state and auth chain send_join
// returned, then the join itself with that state before it.
func (fr *fedRooms) storeJoinedRoom(server string, join *event.Event, resp sendJoinResponse, done func(error)) {
	rs := fr.rs
	v := join.Version()
	roomID := join.RoomID()
	var create *event.Event
	for _, raw := range resp.State {
		if e, err := event.Parse(raw, v); err == nil && e.IsCreate() {
			create = e
		}
	}
	if create == nil {
		done(fmt.Errorf("send_join via %s: the state has no m.room.create", server))
		return
	}
	if _, err := rs.st.Room(roomID); errors.Is(err, store.ErrNotFound) {
		err := rs.st.RoomTx(func(t *store.RoomTx) error {
			return t.InsertRoom(store.Room{RoomID: roomID, Version: v.ID, Creator: create.Sender()})
		})
		if err != nil {
			done(err)
			return
		}
	} else if err != nil {
		done(err)
		return
	}
	all := append(slices.Clone(resp.AuthChain), resp.State...)
	fr.storeOutliers(server, v, roomID, all, func(err error) {
		if err != nil {
			done(err)
			return
		}
		before, err := fr.stateFromPDUs(v, resp.State)
		if err != nil {
			done(err)
			return
		}
		if err := fr.checkAgainstAuthEvents(join); err != nil {
			done(Errorf(403, ErrCodeForbidden, "our join: %v", err))
			return
		}
		state, err := rs.loadState(before, v)
		if err != nil {
			done(err)
			return
		}
		if err := auth.Check(join, state); err != nil {
			done(Errorf(403, ErrCodeForbidden, "our join is not allowed by the room's state: %v", err))
			return
		}
		rm, err := rs.room(roomID)
		if err != nil {
			// No timeline yet: the join is the room's first event here.
			rm = &roomCache{id: roomID, version: v, state: auth.State{}, stateIDs: store.StateMap{}}
		}
		if err := fr.storeTimelineAt(rm, join, before, true); err != nil {
			done(err)
			return
		}
		fr.n.log.Info("joined remote room", "room", roomID, "via", server, "user", join.Sender())
		done(nil)
	})
}

// afterInvite runs f once no invite of userID to roomID is in flight. The
// invitee's server tells its user about an invite as soon as it has signed
// it, so the user's make_join can arrive here before the signed invite
// has come back over a slow link and been added to the room; answering it
// then would refuse a join that is about to be allowed.
func (fr *fedRooms) afterInvite(roomID, userID string, f func()) {
	fr.inviting.after(roomID+"\x00"+userID, f)
}

// remoteInvite invites a user of another server: their server signs the
// invite first. done runs inside the loop. An invite of the same user to
// the same room already in flight is not made twice: done gets its result.
func (fr *fedRooms) remoteInvite(roomID, sender, target string, content json.RawMessage, done func(error)) {
	fr.inviting.do(roomID+"\x00"+target, done, func(finish func(error)) {
		fr.remoteInviteSigned(roomID, sender, target, content, finish)
	})
}

// remoteInviteSigned is remoteInvite's work: the invite is built, signed
// by the invitee's server, checked and sent to the room.
func (fr *fedRooms) remoteInviteSigned(roomID, sender, target string, content json.RawMessage, done func(error)) {
	rs := fr.rs
	f := fr.n.Federation()
	rm, err := rs.room(roomID)
	if err != nil {
		done(err)
		return
	}
	if f == nil {
		done(Errorf(502, ErrCodeUnknown, "federation is not enabled"))
		return
	}
	ev, err := rs.buildEvent(rm, eventSpec{Type: auth.TypeMember, StateKey: strPtr(target), Sender: sender, Content: content})
	if err != nil {
		done(err)
		return
	}
	if err := auth.Check(ev, rm.state); err != nil {
		done(forbidden(err))
		return
	}
	body, err := json.Marshal(map[string]any{"event": json.RawMessage(ev.JSON()), "room_version": rm.version.ID,
		"invite_room_state": strippedState(rm.state)})
	if err != nil {
		done(err)
		return
	}
	dest := serverOf(target)
	uri := "/_matrix/federation/v2/invite/" + url.PathEscape(roomID) + "/" + url.PathEscape(ev.ID())
	var resp struct {
		Event json.RawMessage `json:"event"`
	}
	fr.doJSONAgain(dest, OutboundRequest{Method: "PUT", URI: uri, Body: body}, &resp, idempotentAttempts, func(err error) {
		var re *RemoteError
		if errors.As(err, &re) {
			done(Errorf(403, ErrCodeForbidden, "%s refused the invite: %v", dest, err))
			return
		}
		if err != nil {
			done(Errorf(502, ErrCodeUnknown, "%s did not answer the invite: %v", dest, err))
			return
		}
		signed, err := event.Parse(resp.Event, rm.version)
		if err != nil || signed.ID() != ev.ID() {
			done(Errorf(502, ErrCodeUnknown, "%s returned a different invite event", dest))
			return
		}
		if len(signed.Signatures()[dest]) == 0 {
			done(Errorf(502, ErrCodeUnknown, "%s did not sign the invite", dest))
			return
		}
		serversBefore := roomServers(rm.state)
		fr.enqueue(&pduJob{origin: fr.n.ServerName(), raw: signed.JSON(), roomID: roomID, live: true,
			done: func(_ string, err error) {
				if err != nil {
					done(err)
					return
				}
				rm, err := rs.room(roomID)
				if err != nil {
					done(err)
					return
				}
				dests := fr.destinations(serversBefore, signed, rm.state)
				fr.broadcast(dests, signed)
				done(nil)
			}})
	})
}

// rejectRemoteInvite declines an invite to a room this server is not in,
// through the inviting server.
func (fr *fedRooms) rejectRemoteInvite(roomID, userID, reason string, done func(error)) {
	f := fr.n.Federation()
	servers := fr.joinServers(roomID, userID, nil)
	if f == nil || len(servers) == 0 {
		done(Errorf(404, ErrCodeNotFound, "no server to reject the invite through"))
		return
	}
	s := servers[0]
	uri := "/_matrix/federation/v1/make_leave/" + url.PathEscape(roomID) + "/" + url.PathEscape(userID)
	var mr makeResponse
	fr.doJSON(s, OutboundRequest{Method: "GET", URI: uri}, &mr, func(err error) {
		if err != nil {
			// NOTSPEC: when the inviting server cannot be reached the
			// invite is dropped locally, so the user is not stuck with it.
			fr.n.log.Info("make_leave failed; dropping the invite locally", "room", roomID, "err", err)
			done(fr.forgetRemoteInvite(roomID, userID, nil))
			return
		}
		ev, err := fr.signTemplate(mr, roomID, userID, auth.Leave, reason)
		if err != nil {
			done(Errorf(502, ErrCodeUnknown, "make_leave via %s: %v", s, err))
			return
		}
		uri := "/_matrix/federation/v2/send_leave/" + url.PathEscape(roomID) + "/" + url.PathEscape(ev.ID())
		fr.do(s, OutboundRequest{Method: "PUT", URI: uri, Body: ev.JSON()}, func(_ OutboundResponse, err error) {
			if err != nil {
				done(Errorf(502, ErrCodeUnknown, "send_leave via %s: %v", s, err))
				return
			}
			done(fr.forgetRemoteInvite(roomID, userID, ev))
		})
	})
}

// forgetRemoteInvite turns a remote invite into a leave membership (with
// the leave event stored outside the timeline when there is one).
func (fr *fedRooms) forgetRemoteInvite(roomID, userID string, leave *event.Event) error {
	rs := fr.rs
	eventID := ""
	if leave != nil {
		eventID = leave.ID()
		if known, _ := fr.known(eventID); !known {
			if err := fr.storeOutlier(leave, nil); err != nil {
				return err
			}
		}
	} else if m, ok := rs.members[roomID][userID]; ok {
		eventID = m.EventID
	}
	return rs.write(func(b *roomBatch) error {
		if err := b.t.DeleteRemoteInvite(roomID, userID); err != nil {
			return err
		}
		b.pos++
		m := store.Membership{RoomID: roomID, UserID: userID, Membership: auth.Leave, EventID: eventID, Pos: b.pos}
		if err := b.t.SetMembership(m); err != nil {
			return err
		}
		b.members = append(b.members, m)
		b.wake[userID] = true
		return nil
	})
}

// remoteKnock knocks on a room this server is not in, through one of
// servers (make_knock, send_knock). The stripped state the resident server
// returns is kept like an invite's, for the /sync knock section. Spec:
// server-server-api "Knocking upon a room".
func (fr *fedRooms) remoteKnock(roomID, userID, reason string, servers []string, done func(error)) {
	f := fr.n.Federation()
	if f == nil || len(servers) == 0 {
		done(Errorf(404, ErrCodeNotFound, "room %s is not known here and no server to knock through", roomID))
		return
	}
	s := servers[0]
	q := url.Values{}
	for _, v := range event.SupportedVersions() {
		q.Add("ver", v.ID)
	}
	uri := "/_matrix/federation/v1/make_knock/" + url.PathEscape(roomID) + "/" + url.PathEscape(userID) + "?" + q.Encode()
	var mr makeResponse
	fr.doJSON(s, OutboundRequest{Method: "GET", URI: uri}, &mr, func(err error) {
		if err != nil {
			done(Errorf(403, ErrCodeForbidden, "make_knock via %s: %v", s, err))
			return
		}
		ev, err := fr.signTemplate(mr, roomID, userID, auth.Knock, reason)
		if err != nil {
			done(Errorf(502, ErrCodeUnknown, "make_knock via %s: %v", s, err))
			return
		}
		var resp struct {
			KnockRoomState []json.RawMessage `json:"knock_room_state"`
		}
		uri := "/_matrix/federation/v1/send_knock/" + url.PathEscape(roomID) + "/" + url.PathEscape(ev.ID())
		fr.doJSON(s, OutboundRequest{Method: "PUT", URI: uri, Body: ev.JSON()}, &resp, func(err error) {
			if err != nil {
				done(Errorf(403, ErrCodeForbidden, "send_knock via %s: %v", s, err))
				return
			}
			if known, _ := fr.known(ev.ID()); !known {
				if err := fr.storeOutlier(ev, nil); err != nil {
					done(err)
					return
				}
			}
			state, _ := json.Marshal(nonNilRaw(resp.KnockRoomState))
			done(fr.storeRemoteMembership(store.RemoteInvite{RoomID: roomID, UserID: userID, RoomVersion: ev.Version().ID,
				EventID: ev.ID(), JSON: ev.JSON(), InviteState: state}, auth.Knock))
		})
	})
}
