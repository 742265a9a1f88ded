package homeserver

// The published room directory. Spec: client-server-api "Published room
// directory": GET/PUT /directory/list/room/{roomId} (visibility public or
// private) and GET/POST /publicRooms (limit, since, filter.
// generic_search_term, filter.room_types). Pagination tokens are the
// decimal offset into the list ordered by joined members, then room ID.
//
// NOTSPEC: the server parameter (another server's directory) and
// third-party networks are not supported; only this server's rooms are
// listed.

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/auth"
)

// Directory limits.
const (
	defaultDirectoryLimit = 100
	maxDirectoryLimit     = 500
)

func (rs *roomsModule) directoryRoutes() []Route {
	return []Route{
		{Method: "GET", Pattern: "/_matrix/client/v3/directory/list/room/{roomId}", Auth: AuthNone, Handle: rs.handleGetVisibility},
		{Method: "PUT", Pattern: "/_matrix/client/v3/directory/list/room/{roomId}", Auth: AuthUser, Handle: rs.handlePutVisibility},
		{Method: "GET", Pattern: "/_matrix/client/v3/publicRooms", Auth: AuthOptional, Handle: rs.handlePublicRooms},
		{Method: "POST", Pattern: "/_matrix/client/v3/publicRooms", Auth: AuthUser, Handle: rs.handlePublicRooms},
	}
}

func (rs *roomsModule) handleGetVisibility(c *Call) {
	room, err := rs.st.Room(c.Req.Vars["roomId"])
	if err != nil {
		c.Fail(errRoomNotFound(c.Req.Vars["roomId"]))
		return
	}
	vis := "private"
	if room.Published {
		vis = "public"
	}
	c.Reply(200, map[string]string{"visibility": vis})
}

func (rs *roomsModule) handlePutVisibility(c *Call) {
	roomID := c.Req.Vars["roomId"]
	var body struct {
		Visibility string `json:"visibility"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.Visibility != "public" && body.Visibility != "private" {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "visibility must be public or private"))
		return
	}
	rm, err := rs.room(roomID)
	if err != nil {
		c.Fail(err)
		return
	}
	if !c.Admin && (rs.membership(roomID, c.UserID) != auth.Join ||
		auth.PowerLevel(rm.state, c.UserID) < requiredStateLevel(rm, "m.room.canonical_alias")) {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may not change the directory visibility of %s", roomID))
		return
	}
	if err := rs.st.SetPublished(roomID, body.Visibility == "public"); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}

// publicRoom is one entry of /publicRooms (PublishedRoomsChunk).
type publicRoom struct {
	RoomID           string  `json:"room_id"`
	Name             string  `json:"name,omitempty"`
	Topic            string  `json:"topic,omitempty"`
	CanonicalAlias   string  `json:"canonical_alias,omitempty"`
	AvatarURL        string  `json:"avatar_url,omitempty"`
	JoinRule         string  `json:"join_rule,omitempty"`
	RoomType         *string `json:"room_type,omitempty"`
	NumJoinedMembers int     `json:"num_joined_members"`
	WorldReadable    bool    `json:"world_readable"`
	GuestCanJoin     bool    `json:"guest_can_join"`
}

func (rs *roomsModule) handlePublicRooms(c *Call) {
	var req struct {
		Limit  int    `json:"limit"`
		Since  string `json:"since"`
		Filter struct {
			Term      string     `json:"generic_search_term"`
			RoomTypes *[]*string `json:"room_types"`
		} `json:"filter"`
	}
	if c.Req.Method == "POST" {
		if err := c.DecodeJSON(&req); err != nil {
			c.Fail(err)
			return
		}
	} else {
		var err error
		if req.Limit, err = queryInt(c, "limit", 0); err != nil {
			c.Fail(err)
			return
		}
		req.Since = c.Req.Query.Get("since")
	}
	if s := c.Req.Query.Get("server"); s != "" && s != rs.n.ServerName() {
		c.Fail(Errorf(404, ErrCodeNotFound, "the directory of %s is not available here", s))
		return
	}
	limit := req.Limit
	if limit <= 0 {
		limit = defaultDirectoryLimit
	}
	limit = min(limit, maxDirectoryLimit)
	offset := 0
	if req.Since != "" {
		n, err := strconv.Atoi(req.Since)
		if err != nil || n < 0 {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "invalid since token"))
			return
		}
		offset = n
	}
	ids, err := rs.st.PublishedRooms()
	if err != nil {
		c.Fail(err)
		return
	}
	term := strings.ToLower(req.Filter.Term)
	var all []publicRoom
	for _, id := range ids {
		rm, err := rs.room(id)
		if err != nil {
			c.Fail(err)
			return
		}
		pr := rs.publicRoomEntry(rm)
		if term != "" && !strings.Contains(strings.ToLower(pr.Name+" "+pr.Topic+" "+pr.CanonicalAlias), term) {
			continue
		}
		if req.Filter.RoomTypes != nil && !roomTypeIn(pr.RoomType, *req.Filter.RoomTypes) {
			continue
		}
		all = append(all, pr)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].NumJoinedMembers > all[j].NumJoinedMembers })
	resp := map[string]any{"total_room_count_estimate": len(all)}
	if offset > len(all) {
		offset = len(all)
	}
	end := min(offset+limit, len(all))
	chunk := all[offset:end]
	if chunk == nil {
		chunk = []publicRoom{}
	}
	resp["chunk"] = chunk
	if end < len(all) {
		resp["next_batch"] = strconv.Itoa(end)
	}
	if offset > 0 {
		resp["prev_batch"] = strconv.Itoa(max(offset-limit, 0))
	}
	c.Reply(200, resp)
}

func roomTypeIn(t *string, types []*string) bool {
	for _, want := range types {
		if (want == nil && t == nil) || (want != nil && t != nil && *want == *t) {
			return true
		}
	}
	return false
}

// publicRoomEntry summarises a room from its current state.
func (rs *roomsModule) publicRoomEntry(rm *roomCache) publicRoom {
	pr := publicRoom{RoomID: rm.id, NumJoinedMembers: len(rs.joinedMembers(rm.id))}
	field := func(typ, key string) string {
		e := rm.state[auth.StateKey{Type: typ}]
		if e == nil {
			return ""
		}
		var m map[string]any
		_ = json.Unmarshal(e.Content(), &m)
		s, _ := m[key].(string)
		return s
	}
	pr.Name = field("m.room.name", "name")
	pr.Topic = field("m.room.topic", "topic")
	pr.CanonicalAlias = field("m.room.canonical_alias", "alias")
	pr.AvatarURL = field("m.room.avatar", "url")
	pr.JoinRule = field(auth.TypeJoinRules, "join_rule")
	pr.WorldReadable = field("m.room.history_visibility", "history_visibility") == "world_readable"
	pr.GuestCanJoin = field("m.room.guest_access", "guest_access") == "can_join"
	if create := rm.state[auth.StateKey{Type: auth.TypeCreate}]; create != nil {
		var c struct {
			Type *string `json:"type"`
		}
		if json.Unmarshal(create.Content(), &c) == nil {
			pr.RoomType = c.Type
		}
	}
	return pr
}
