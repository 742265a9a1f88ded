package homeserver

// The published room directory. Spec: client-server-api "Published room
// directory": GET/PUT /directory/list/room/{roomId} (visibility public or
// private) and GET/POST /publicRooms (limit, since, filter.
// generic_search_term, filter.room_types). Pagination tokens are the
// decimal offset into the list ordered by joined members, then room ID.
//
// With the server parameter naming another server, its directory is
// asked over federation (server-server-api "Public Room Directory", GET or
// POST /_matrix/federation/v1/publicRooms) and its answer passed on.
// NOTSPEC: third-party networks are not supported (include_all_networks
// and third_party_instance_id are ignored).

import (
	"encoding/json"
	"net/url"
	"slices"
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
		{Method: "GET", Pattern: "/_matrix/client/v1/rooms/{roomId}/hierarchy", Auth: AuthUser, Handle: rs.handleHierarchy},
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
		if f := rs.n.Federation(); f != nil && c.Origin == "" && ValidateServerName(s) == nil {
			rs.remotePublicRooms(c, f, s, req.Limit, req.Since, c.Req.Method == "POST", c.Req.Body)
			return
		}
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

// remotePublicRooms answers /publicRooms?server=S with S's directory: a
// GET with limit and since, or a POST with the client's filter.
func (rs *roomsModule) remotePublicRooms(c *Call, f *Federation, server string, limit int, since string, post bool, body []byte) {
	req := OutboundRequest{Method: "GET", URI: "/_matrix/federation/v1/publicRooms"}
	if post {
		req.Method, req.Body = "POST", body
		if len(body) == 0 {
			req.Body = []byte("{}")
		}
	} else {
		q := url.Values{}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		if since != "" {
			q.Set("since", since)
		}
		if len(q) > 0 {
			req.URI += "?" + q.Encode()
		}
	}
	var out struct {
		Chunk     []json.RawMessage `json:"chunk"`
		NextBatch string            `json:"next_batch,omitempty"`
		PrevBatch string            `json:"prev_batch,omitempty"`
		Total     *int64            `json:"total_room_count_estimate,omitempty"`
	}
	f.DoJSON(server, req, &out, func(err error) {
		if err != nil {
			c.Fail(remoteFailure(server, err))
			return
		}
		// Only room objects are passed on.
		out.Chunk = slices.DeleteFunc(out.Chunk, func(r json.RawMessage) bool { return len(r) == 0 || r[0] != '{' })
		if out.Chunk == nil {
			out.Chunk = []json.RawMessage{}
		}
		c.Reply(200, out)
	})
}
