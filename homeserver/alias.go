package homeserver

// Room aliases. Spec: client-server-api "Room aliases" (PUT/GET/DELETE
// /directory/room/{roomAlias}, GET /rooms/{roomId}/aliases). Only aliases
// on this server can be created; deleting needs the alias's creator, a
// server admin, or the power to change m.room.canonical_alias.
// Another server's alias is looked up on that server (server-server-api
// "Querying for information", GET /query/directory: fed_query.go) for GET
// /directory/room and for joins and knocks by alias (room_membership.go).

import (
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

func (rs *roomsModule) aliasRoutes() []Route {
	const d = "/_matrix/client/v3/directory/room/{roomAlias}"
	return []Route{
		{Method: "PUT", Pattern: d, Auth: AuthUser, Handle: rs.handlePutAlias},
		{Method: "GET", Pattern: d, Auth: AuthOptional, Handle: rs.handleGetAlias},
		{Method: "DELETE", Pattern: d, Auth: AuthUser, Handle: rs.handleDeleteAlias},
		{Method: "GET", Pattern: "/_matrix/client/v3/rooms/{roomId}/aliases", Auth: AuthUser, Handle: rs.handleRoomAliases},
	}
}

// checkAlias validates "#localpart:server". Spec: appendices.md "Room
// Aliases".
func checkAlias(alias string) error {
	if len(alias) > 255 || !strings.HasPrefix(alias, "#") {
		return Errorf(400, ErrCodeInvalidParam, "room alias must start with #")
	}
	local, server, ok := strings.Cut(alias[1:], ":")
	if !ok || local == "" || server == "" || strings.ContainsAny(local, " \t\n") {
		return Errorf(400, ErrCodeInvalidParam, "room alias must look like #name:server")
	}
	return nil
}

func (rs *roomsModule) handlePutAlias(c *Call) {
	alias := c.Req.Vars["roomAlias"]
	if err := checkAlias(alias); err != nil {
		c.Fail(err)
		return
	}
	if serverOf(alias) != rs.n.ServerName() {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "aliases can only be created on this server (%s)", rs.n.ServerName()))
		return
	}
	var body struct {
		RoomID string `json:"room_id"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if _, err := rs.room(body.RoomID); err != nil {
		c.Fail(err)
		return
	}
	if rs.membership(body.RoomID, c.UserID) != auth.Join && !c.Admin {
		c.Fail(Errorf(403, ErrCodeForbidden, "you are not joined to %s", body.RoomID))
		return
	}
	if err := rs.st.InsertAlias(alias, body.RoomID, c.UserID); errors.Is(err, store.ErrExists) {
		c.Fail(Errorf(409, ErrCodeUnknown, "room alias %s already exists", alias))
		return
	} else if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}

// localAlias looks up an alias of this server: the room and who created
// the alias; 404 M_NOT_FOUND when there is none.
func (rs *roomsModule) localAlias(alias string) (roomID, creator string, err error) {
	roomID, creator, err = rs.st.Alias(alias)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", Errorf(404, ErrCodeNotFound, "room alias %s not found", alias)
	}
	return roomID, creator, err
}

func (rs *roomsModule) handleGetAlias(c *Call) {
	alias := c.Req.Vars["roomAlias"]
	if err := checkAlias(alias); err != nil {
		c.Fail(err)
		return
	}
	roomID, _, err := rs.localAlias(alias)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"room_id": roomID, "servers": []string{rs.n.ServerName()}})
}

func (rs *roomsModule) handleDeleteAlias(c *Call) {
	alias := c.Req.Vars["roomAlias"]
	roomID, creator, err := rs.localAlias(alias)
	if err != nil {
		c.Fail(err)
		return
	}
	allowed := creator == c.UserID || c.Admin
	if !allowed {
		if rm, err := rs.room(roomID); err == nil && rs.membership(roomID, c.UserID) == auth.Join {
			allowed = auth.PowerLevel(rm.state, c.UserID) >= requiredStateLevel(rm, "m.room.canonical_alias")
		}
	}
	if !allowed {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may not delete %s", alias))
		return
	}
	if err := rs.st.DeleteAlias(alias); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}

func (rs *roomsModule) handleRoomAliases(c *Call) {
	roomID := c.Req.Vars["roomId"]
	if _, _, err := rs.visibleRange(roomID, c.UserID); err != nil {
		c.Fail(err)
		return
	}
	aliases, err := rs.st.RoomAliases(roomID)
	if err != nil {
		c.Fail(err)
		return
	}
	sort.Strings(aliases)
	c.Reply(200, map[string]any{"aliases": aliases})
}

// requiredStateLevel is the power level needed to send a state event of
// the type: events[type], else state_default (50 without power levels).
// Spec: client-server-api m.room.power_levels.
func requiredStateLevel(rm *roomCache, typ string) int64 {
	pl := rm.state[auth.StateKey{Type: auth.TypePowerLevels}]
	if pl == nil {
		return 50
	}
	var c struct {
		Events       map[string]int64 `json:"events"`
		StateDefault *int64           `json:"state_default"`
	}
	if json.Unmarshal(pl.Content(), &c) != nil {
		return 50
	}
	if n, ok := c.Events[typ]; ok {
		return n
	}
	if c.StateDefault != nil {
		return *c.StateDefault
	}
	return 50
}
