package homeserver

// Space hierarchy. Spec: client-server-api "Spaces" (GET
// /_matrix/client/v1/rooms/{roomId}/hierarchy) and server-server-api
// "Spaces" (GET /_matrix/federation/v1/hierarchy/{roomId}, served in
// fedroom_serve.go).
//
// A space is a room whose m.space.child state events (state key: the
// child's room ID, content.via: servers to reach it; events without via
// are not children) name its children. The walk is depth first from the
// requested room: each room is listed with its public summary and its
// m.space.child events as stripped state with origin_server_ts, then its
// children in the spec's order (content.order, a string of printable
// ASCII up to 50 characters, compared bytewise, rooms with one first; then
// the child event's origin_server_ts; then the room ID). Rooms this server
// is in are summarised from their state; others are asked of the servers
// in their via list (federation /hierarchy), whose answer also summarises
// their children, so a remote space costs one request and its plain rooms
// none. A room is listed when the user may see it: joined or invited,
// public or knockable, world readable, or restricted to a room the user
// is joined to; others are skipped with what lies below them.
//
// Pagination is stateless: the from token holds how many rooms were
// listed before and the walk's max_depth and suggested_only (which may not
// change between pages, M_INVALID_PARAM); each page walks again from the
// start. NOTSPEC: the walk is bounded (hierarchyMaxRooms rooms,
// hierarchyMaxRemote federation requests per page); beyond that the page
// ends early, and a room whose servers cannot be reached is left out.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/auth"
)

// Hierarchy limits.
const (
	hierarchyDefaultLimit = 50
	hierarchyMaxLimit     = 100
	hierarchyMaxDepth     = 10  // also the default
	hierarchyMaxRooms     = 500 // rooms visited per page
	hierarchyMaxRemote    = 20  // federation requests per page
)

// spaceChild is one valid m.space.child event of a room.
type spaceChild struct {
	roomID    string
	via       []string
	order     string
	ts        int64
	suggested bool
	stripped  map[string]any // the event as stripped state with origin_server_ts
}

// validOrder reports whether an m.space.child order may be used: printable
// ASCII, at most 50 characters.
func validOrder(s string) bool {
	if s == "" || len(s) > 50 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// sortChildren puts children in the spec's order.
func sortChildren(cs []spaceChild) {
	sort.SliceStable(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		ao, bo := validOrder(a.order), validOrder(b.order)
		if ao != bo {
			return ao
		}
		if ao && a.order != b.order {
			return a.order < b.order
		}
		if a.ts != b.ts {
			return a.ts < b.ts
		}
		return a.roomID < b.roomID
	})
}

// parseChild reads a stripped m.space.child event; ok is false when it is
// not a valid child (no via, not a room ID).
func parseChild(stateKey string, content json.RawMessage, ts int64, stripped map[string]any) (spaceChild, bool) {
	var c struct {
		Via       []string `json:"via"`
		Order     any      `json:"order"`
		Suggested any      `json:"suggested"`
	}
	if !strings.HasPrefix(stateKey, "!") || json.Unmarshal(content, &c) != nil || len(c.Via) == 0 {
		return spaceChild{}, false
	}
	ch := spaceChild{roomID: stateKey, ts: ts, stripped: stripped}
	for _, v := range c.Via {
		if ValidateServerName(v) == nil {
			ch.via = append(ch.via, v)
		}
	}
	ch.order, _ = c.Order.(string)
	ch.suggested, _ = c.Suggested.(bool)
	return ch, true
}

// spaceChildren lists a local room's valid children in order.
func spaceChildren(rm *roomCache) []spaceChild {
	var out []spaceChild
	for k, e := range rm.state {
		if k.Type != "m.space.child" {
			continue
		}
		stripped := map[string]any{"type": e.Type(), "state_key": k.StateKey, "content": e.Content(),
			"sender": e.Sender(), "origin_server_ts": e.OriginServerTS()}
		if ch, ok := parseChild(k.StateKey, e.Content(), e.OriginServerTS(), stripped); ok {
			out = append(out, ch)
		}
	}
	sortChildren(out)
	return out
}

// childrenState is the children_state of a summary.
func childrenState(cs []spaceChild) []any {
	out := make([]any, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.stripped)
	}
	return out
}

// hierarchyToken is a page's from/next_batch token.
type hierarchyToken struct {
	skip      int
	maxDepth  int
	suggested bool
}

func (t hierarchyToken) String() string {
	s := 0
	if t.suggested {
		s = 1
	}
	return fmt.Sprintf("h%d_%d_%d", t.skip, t.maxDepth, s)
}

func parseHierarchyToken(s string) (hierarchyToken, bool) {
	var t hierarchyToken
	var sug int
	if n, err := fmt.Sscanf(s, "h%d_%d_%d", &t.skip, &t.maxDepth, &sug); err != nil || n != 3 ||
		t.skip < 0 || t.maxDepth < 0 || sug < 0 || sug > 1 {
		return hierarchyToken{}, false
	}
	t.suggested = sug == 1
	if t.String() != s { // nothing before, after or between the numbers
		return hierarchyToken{}, false
	}
	return t, true
}

// hierarchyWalk is one page's depth-first walk.
type hierarchyWalk struct {
	rs        *roomsModule
	c         *Call
	tok       hierarchyToken
	limit     int
	stack     []walkEntry
	seen      map[string]bool
	rooms     []map[string]any // listed rooms, from the first of the walk
	remote    int
	summaries map[string]map[string]any // remote children summarised by their parent's server
}

type walkEntry struct {
	roomID string
	depth  int
	via    []string
}

// handleHierarchy serves GET /_matrix/client/v1/rooms/{roomId}/hierarchy.
func (rs *roomsModule) handleHierarchy(c *Call) {
	roomID := c.Req.Vars["roomId"]
	limit, err := queryInt(c, "limit", hierarchyDefaultLimit)
	if err != nil {
		c.Fail(err)
		return
	}
	maxDepth, err := queryInt(c, "max_depth", hierarchyMaxDepth)
	if err != nil {
		c.Fail(err)
		return
	}
	if limit <= 0 || maxDepth < 0 {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "limit must be positive and max_depth not negative"))
		return
	}
	tok := hierarchyToken{maxDepth: min(maxDepth, hierarchyMaxDepth)}
	switch s := c.Req.Query.Get("suggested_only"); s {
	case "", "false":
	case "true":
		tok.suggested = true
	default:
		c.Fail(Errorf(400, ErrCodeInvalidParam, "suggested_only must be true or false"))
		return
	}
	if from := c.Req.Query.Get("from"); from != "" {
		prev, ok := parseHierarchyToken(from)
		if !ok {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "unknown from token"))
			return
		}
		if prev.maxDepth != tok.maxDepth || prev.suggested != tok.suggested {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "suggested_only and max_depth cannot change on paginated requests"))
			return
		}
		tok.skip = prev.skip
	}
	rm, err := rs.room(roomID)
	if err != nil || !rs.userMaySee(c.UserID, rm, rs.summaryOf(rm)) {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may not view %s", roomID))
		return
	}
	w := &hierarchyWalk{rs: rs, c: c, tok: tok, limit: min(limit, hierarchyMaxLimit), seen: map[string]bool{},
		stack: []walkEntry{{roomID: roomID}}, summaries: map[string]map[string]any{}}
	w.step()
}

// summaryOf is a local room's public summary.
func (rs *roomsModule) summaryOf(rm *roomCache) map[string]any {
	if fr := fedRoomsOf(rs.n); fr != nil {
		return fr.summary(rm)
	}
	return (&fedRooms{n: rs.n, rs: rs}).summary(rm)
}

// userMaySee reports whether a user may see a room with this summary in a
// hierarchy: joined or invited (rm known here), public, knockable, world
// readable, or restricted to a room the user is joined to.
func (rs *roomsModule) userMaySee(userID string, rm *roomCache, summary map[string]any) bool {
	id, _ := summary["room_id"].(string)
	if m := rs.membership(id, userID); m == auth.Join || m == auth.Invite {
		return true
	}
	if m := rs.membership(id, userID); m == auth.Ban {
		return false
	}
	jr, _ := summary["join_rule"].(string)
	if wr, _ := summary["world_readable"].(bool); wr {
		return true
	}
	switch jr {
	case auth.JoinRulePublic, auth.JoinRuleKnock:
		return true
	case auth.JoinRuleRestricted, auth.JoinRuleKnockRestricted:
		var allowed []string
		if rm != nil {
			if jrEv := rm.state[auth.StateKey{Type: auth.TypeJoinRules}]; jrEv != nil {
				var rules struct {
					Allow []struct {
						RoomID string `json:"room_id"`
					} `json:"allow"`
				}
				if json.Unmarshal(jrEv.Content(), &rules) == nil {
					for _, a := range rules.Allow {
						allowed = append(allowed, a.RoomID)
					}
				}
			}
		} else if ids, ok := summary["allowed_room_ids"].([]any); ok {
			for _, a := range ids {
				if s, ok := a.(string); ok {
					allowed = append(allowed, s)
				}
			}
		}
		for _, a := range allowed {
			if rs.membership(a, userID) == auth.Join {
				return true
			}
		}
	}
	return false
}

// step walks on until the page is full or a remote answer is needed.
func (w *hierarchyWalk) step() {
	rs := w.rs
	for len(w.stack) > 0 {
		if w.c.Done() {
			return
		}
		if len(w.rooms) > w.tok.skip+w.limit || len(w.seen) >= hierarchyMaxRooms {
			break
		}
		e := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		if w.seen[e.roomID] {
			continue
		}
		w.seen[e.roomID] = true
		if fr := fedRoomsOf(rs.n); fr == nil || fr.inRoom(e.roomID) {
			if rm, err := rs.room(e.roomID); err == nil {
				summary := rs.summaryOf(rm)
				w.visit(e, rm, summary, spaceChildren(rm))
				continue
			}
		}
		if s := w.summaries[e.roomID]; s != nil && s["room_type"] != "m.space" {
			// A plain room summarised by its parent's server: nothing
			// below it to ask for.
			w.visit(e, nil, s, nil)
			continue
		}
		if f := rs.n.Federation(); f != nil && len(e.via) > 0 && w.remote < hierarchyMaxRemote {
			w.remote++
			w.askRemote(f, e, 0)
			return
		}
	}
	w.finish()
}

// visit lists a room when the user may see it and puts its children on
// the stack (first child on top).
func (w *hierarchyWalk) visit(e walkEntry, rm *roomCache, summary map[string]any, children []spaceChild) {
	if !w.rs.userMaySee(w.c.UserID, rm, summary) {
		return
	}
	room := make(map[string]any, len(summary)+1)
	for k, v := range summary {
		if k != "children_state" && k != "allowed_room_ids" {
			room[k] = v
		}
	}
	room["children_state"] = childrenState(children)
	w.rooms = append(w.rooms, room)
	if e.depth >= w.tok.maxDepth {
		return
	}
	for i := len(children) - 1; i >= 0; i-- {
		ch := children[i]
		if w.tok.suggested && !ch.suggested {
			continue
		}
		if !w.seen[ch.roomID] {
			w.stack = append(w.stack, walkEntry{roomID: ch.roomID, depth: e.depth + 1, via: ch.via})
		}
	}
}

// askRemote asks e.via[i] for the room's hierarchy summary (server-server
// /hierarchy), trying the next server on failure.
func (w *hierarchyWalk) askRemote(f *Federation, e walkEntry, i int) {
	if i >= len(e.via) || w.c.Done() {
		w.step()
		return
	}
	server := e.via[i]
	if server == w.rs.n.ServerName() {
		w.askRemote(f, e, i+1)
		return
	}
	uri := "/_matrix/federation/v1/hierarchy/" + url.PathEscape(e.roomID) + "?suggested_only=" + strconv.FormatBool(w.tok.suggested)
	var resp struct {
		Room struct {
			RoomID        string            `json:"room_id"`
			ChildrenState []json.RawMessage `json:"children_state"`
		} `json:"room"`
		Children []json.RawMessage `json:"children"`
	}
	var raw struct {
		Room map[string]any `json:"room"`
	}
	f.Do(server, OutboundRequest{Method: "GET", URI: uri}, func(out OutboundResponse, err error) {
		if err == nil {
			if err = json.Unmarshal(out.Body, &resp); err == nil {
				err = json.Unmarshal(out.Body, &raw)
			}
		}
		if err != nil || resp.Room.RoomID != e.roomID {
			w.rs.n.log.Info("hierarchy: remote room not summarised", "room", e.roomID, "server", server, "err", err)
			w.askRemote(f, e, i+1)
			return
		}
		for _, c := range resp.Children {
			var s map[string]any
			if json.Unmarshal(c, &s) == nil {
				if id, _ := s["room_id"].(string); strings.HasPrefix(id, "!") && w.summaries[id] == nil {
					w.summaries[id] = s
				}
			}
		}
		var children []spaceChild
		for _, cs := range resp.Room.ChildrenState {
			var ev struct {
				Type     string          `json:"type"`
				StateKey string          `json:"state_key"`
				Content  json.RawMessage `json:"content"`
				TS       int64           `json:"origin_server_ts"`
			}
			var stripped map[string]any
			if json.Unmarshal(cs, &ev) != nil || json.Unmarshal(cs, &stripped) != nil || ev.Type != "m.space.child" {
				continue
			}
			if ch, ok := parseChild(ev.StateKey, ev.Content, ev.TS, stripped); ok {
				children = append(children, ch)
			}
		}
		sortChildren(children)
		w.visit(e, nil, raw.Room, children)
		w.step()
	})
}

// finish answers the page.
func (w *hierarchyWalk) finish() {
	if w.c.Done() {
		return
	}
	rooms := []map[string]any{}
	if w.tok.skip < len(w.rooms) {
		rooms = w.rooms[w.tok.skip:]
	}
	resp := map[string]any{}
	if len(rooms) > w.limit {
		rooms = rooms[:w.limit]
		next := w.tok
		next.skip += w.limit
		resp["next_batch"] = next.String()
	}
	resp["rooms"] = slices.Clip(rooms)
	w.c.Reply(200, resp)
}
