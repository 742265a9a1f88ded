package homeserver

// Room membership endpoints. Spec: client-server-api "Room membership"
// (join by ID and by alias, invite, leave, forget, kick, ban, unban) and
// "Joined rooms"; the membership events are checked by the authorization
// rules (rooms/v10.md "Authorization rules", m.room.member).
//
// Joining a room this server is not in, inviting users of other servers
// and rejecting invites to remote rooms go over federation (fedroom_join.go).

import (
	"sort"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

func (rs *roomsModule) membershipRoutes() []Route {
	return []Route{
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/join", Auth: AuthUser, Handle: rs.handleJoin},
		{Method: "POST", Pattern: "/_matrix/client/v3/join/{roomIdOrAlias}", Auth: AuthUser, Handle: rs.handleJoin},
		{Method: "POST", Pattern: "/_matrix/client/v3/knock/{roomIdOrAlias}", Auth: AuthUser, Handle: rs.handleKnock},
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/invite", Auth: AuthUser, Handle: rs.handleTargetMembership(auth.Invite)},
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/kick", Auth: AuthUser, Handle: rs.handleTargetMembership("kick")},
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/ban", Auth: AuthUser, Handle: rs.handleTargetMembership(auth.Ban)},
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/unban", Auth: AuthUser, Handle: rs.handleTargetMembership("unban")},
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/leave", Auth: AuthUser, Handle: rs.handleLeave},
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/forget", Auth: AuthUser, Handle: rs.handleForget},
		{Method: "GET", Pattern: "/_matrix/client/v3/joined_rooms", Auth: AuthUser, Handle: rs.handleJoinedRooms},
	}
}

// resolveRoom turns a room ID or an alias into a room ID. For another
// server's alias it asks that server (query/directory), and servers lists
// those its directory says are in the room, to join or knock through.
func (rs *roomsModule) resolveRoom(idOrAlias string, done func(roomID string, servers []string, err error)) {
	switch {
	case strings.HasPrefix(idOrAlias, "!"):
		done(idOrAlias, nil, nil)
		return
	case strings.HasPrefix(idOrAlias, "#"):
		if err := checkAlias(idOrAlias); err != nil {
			done("", nil, err)
			return
		}
		if f := rs.n.Federation(); f != nil && serverOf(idOrAlias) != rs.n.ServerName() {
			f.queryAlias(idOrAlias, done)
			return
		}
		roomID, _, err := rs.localAlias(idOrAlias)
		done(roomID, nil, err)
		return
	}
	done("", nil, Errorf(400, ErrCodeInvalidParam, "%q is neither a room ID nor a room alias", idOrAlias))
}

type reasonBody struct {
	Reason string `json:"reason"`
}

func (rs *roomsModule) handleJoin(c *Call) {
	idOrAlias := c.Req.Vars["roomId"]
	if idOrAlias == "" {
		idOrAlias = c.Req.Vars["roomIdOrAlias"]
	}
	var body reasonBody
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	rs.resolveRoom(idOrAlias, func(roomID string, servers []string, err error) {
		if err != nil {
			c.Fail(err)
			return
		}
		if rs.throughServers(c, roomID, servers, func(fr *fedRooms, servers []string, done func(error)) {
			fr.remoteJoin(roomID, c.UserID, body.Reason, servers, done)
		}) {
			return
		}
		if err := rs.join(roomID, c.UserID, body.Reason); err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, map[string]string{"room_id": roomID})
	})
}

// throughServers runs op when this server is not in roomID and knows
// servers that are (the request's server_name and via, those an alias's
// directory named, the sender of an invite): op asks them to let the user
// in, and the call is answered with the room ID when it is done. It
// reports whether op was started.
func (rs *roomsModule) throughServers(c *Call, roomID string, known []string, op func(fr *fedRooms, servers []string, done func(error))) bool {
	fr := fedRoomsOf(rs.n)
	if fr == nil || fr.inRoom(roomID) {
		return false
	}
	via := append(append(append([]string{}, c.Req.Query["server_name"]...), c.Req.Query["via"]...), known...)
	servers := fr.joinServers(roomID, c.UserID, via)
	if len(servers) == 0 {
		return false
	}
	op(fr, servers, func(err error) {
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, map[string]string{"room_id": roomID})
	})
	return true
}

// join makes userID join roomID (a no-op if already joined).
func (rs *roomsModule) join(roomID, userID, reason string) error {
	if _, err := rs.room(roomID); err != nil {
		return err
	}
	if rs.membership(roomID, userID) == auth.Join {
		return nil
	}
	return rs.setOwnMembership(roomID, userID, auth.Join, reason)
}

// setOwnMembership sends userID's own member event with their profile.
func (rs *roomsModule) setOwnMembership(roomID, userID, membership, reason string) error {
	p, err := rs.st.Profile(userID)
	if err != nil {
		return err
	}
	_, err = rs.sendEvent(roomID, eventSpec{Type: auth.TypeMember, StateKey: strPtr(userID), Sender: userID,
		Content: memberContent(membership, p, reason, false)})
	return err
}

// handleKnock asks to join a room whose join rule is knock. Spec:
// client-server-api "Knocking on rooms".
func (rs *roomsModule) handleKnock(c *Call) {
	var body reasonBody
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	rs.resolveRoom(c.Req.Vars["roomIdOrAlias"], func(roomID string, servers []string, err error) {
		if err != nil {
			c.Fail(err)
			return
		}
		rs.knock(c, roomID, servers, body.Reason)
	})
}

// knock is handleKnock once the room is known.
func (rs *roomsModule) knock(c *Call, roomID string, servers []string, reason string) {
	if rs.throughServers(c, roomID, servers, func(fr *fedRooms, servers []string, done func(error)) {
		fr.remoteKnock(roomID, c.UserID, reason, servers, done)
	}) {
		return
	}
	if _, err := rs.room(roomID); err != nil {
		c.Fail(err)
		return
	}
	switch rs.membership(roomID, c.UserID) {
	case auth.Join, auth.Invite:
		c.Fail(Errorf(403, ErrCodeForbidden, "you are already invited to or joined %s", roomID))
		return
	}
	if err := rs.setOwnMembership(roomID, c.UserID, auth.Knock, reason); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]string{"room_id": roomID})
}

type targetBody struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

// handleTargetMembership serves invite, kick, ban and unban: membership
// events the caller sends about another user.
func (rs *roomsModule) handleTargetMembership(action string) func(c *Call) {
	return func(c *Call) {
		roomID := c.Req.Vars["roomId"]
		var body targetBody
		if err := c.DecodeJSON(&body); err != nil {
			c.Fail(err)
			return
		}
		if !validUserID(body.UserID) {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "user_id must be a valid user ID"))
			return
		}
		if _, err := rs.room(roomID); err != nil {
			c.Fail(err)
			return
		}
		if rs.membership(roomID, c.UserID) != auth.Join {
			c.Fail(Errorf(403, ErrCodeForbidden, "you are not joined to %s", roomID))
			return
		}
		cur := rs.membership(roomID, body.UserID)
		var content []byte
		switch action {
		case auth.Invite:
			if cur == auth.Invite {
				c.Reply(200, struct{}{})
				return
			}
			rs.invite(roomID, c.UserID, body.UserID, body.Reason, false, replyEmpty(c))
			return
		case "kick":
			if cur != auth.Join && cur != auth.Invite && cur != auth.Knock {
				c.Fail(Errorf(403, ErrCodeForbidden, "%s is not in the room", body.UserID))
				return
			}
			content = memberContent(auth.Leave, store.Profile{}, body.Reason, false)
		case auth.Ban:
			content = memberContent(auth.Ban, store.Profile{}, body.Reason, false)
		case "unban":
			if cur != auth.Ban {
				c.Fail(Errorf(403, ErrCodeForbidden, "%s is not banned", body.UserID))
				return
			}
			content = memberContent(auth.Leave, store.Profile{}, body.Reason, false)
		}
		_, err := rs.sendEvent(roomID, eventSpec{Type: auth.TypeMember, StateKey: strPtr(body.UserID), Sender: c.UserID, Content: content})
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, struct{}{})
	}
}

// invite makes sender invite target to roomID and calls done once. A
// user of another server gets the invite over federation first (v2
// /invite, fedroom_join.go); a local user's profile goes into the event.
// Spec: client-server-api "Inviting users to a room".
func (rs *roomsModule) invite(roomID, sender, target, reason string, isDirect bool, done func(error)) {
	if fr := fedRoomsOf(rs.n); fr != nil && serverOf(target) != rs.n.ServerName() {
		fr.remoteInvite(roomID, sender, target, memberContent(auth.Invite, store.Profile{}, reason, isDirect), done)
		return
	}
	p, err := rs.st.Profile(target)
	if err != nil {
		done(err)
		return
	}
	_, err = rs.sendEvent(roomID, eventSpec{Type: auth.TypeMember, StateKey: strPtr(target), Sender: sender,
		Content: memberContent(auth.Invite, p, reason, isDirect)})
	done(err)
}

// replyEmpty answers c with {} once an operation is done, or its error.
func replyEmpty(c *Call) func(error) {
	return func(err error) {
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, struct{}{})
	}
}

func (rs *roomsModule) handleLeave(c *Call) {
	roomID := c.Req.Vars["roomId"]
	var body reasonBody
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if fr := fedRoomsOf(rs.n); fr != nil && rs.membership(roomID, c.UserID) == auth.Invite && !fr.inRoom(roomID) {
		fr.rejectRemoteInvite(roomID, c.UserID, body.Reason, replyEmpty(c))
		return
	}
	switch rs.membership(roomID, c.UserID) {
	case auth.Join, auth.Invite, auth.Knock:
	case auth.Leave, auth.Ban:
		c.Reply(200, struct{}{}) // already out: nothing to do
		return
	default:
		c.Fail(Errorf(403, ErrCodeForbidden, "you are not in %s", roomID))
		return
	}
	_, err := rs.sendEvent(roomID, eventSpec{Type: auth.TypeMember, StateKey: strPtr(c.UserID), Sender: c.UserID,
		Content: memberContent(auth.Leave, store.Profile{}, body.Reason, false)})
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}

func (rs *roomsModule) handleForget(c *Call) {
	roomID := c.Req.Vars["roomId"]
	m, ok := rs.members[roomID][c.UserID]
	if !ok {
		c.Fail(Errorf(404, ErrCodeNotFound, "you were never in %s", roomID))
		return
	}
	if m.Membership == auth.Join || m.Membership == auth.Invite || m.Membership == auth.Knock {
		c.Fail(Errorf(400, ErrCodeUnknown, "leave %s before forgetting it", roomID))
		return
	}
	if err := rs.st.ForgetRoom(roomID, c.UserID); err != nil {
		c.Fail(err)
		return
	}
	m.Forgotten = true
	rs.members[roomID][c.UserID] = m
	c.Reply(200, struct{}{})
}

func (rs *roomsModule) handleJoinedRooms(c *Call) {
	out := []string{}
	for roomID := range rs.userRooms[c.UserID] {
		if rs.membership(roomID, c.UserID) == auth.Join {
			out = append(out, roomID)
		}
	}
	sort.Strings(out)
	c.Reply(200, map[string][]string{"joined_rooms": out})
}
