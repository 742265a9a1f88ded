package homeserver

// Filters: POST /user/{userId}/filter, GET /user/{userId}/filter/{filterId},
// and inline filters on /sync, /messages and /context.
// Spec: client-server-api "Filtering", "Lazy-loading room members".
//
// NOTSPEC: event_fields and event_format "federation" are accepted but not
// applied (events are always sent whole, in the client format), and
// presence filters have nothing to act on (no presence yet).

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// syncFilter is a filter definition (client-server-api "Filter").
type syncFilter struct {
	EventFields []string    `json:"event_fields,omitempty"`
	EventFormat string      `json:"event_format,omitempty"`
	AccountData eventFilter `json:"account_data"`
	Presence    eventFilter `json:"presence"`
	Room        roomFilter  `json:"room"`
}

// roomFilter is the "room" part of a filter.
type roomFilter struct {
	Rooms        *[]string       `json:"rooms,omitempty"`
	NotRooms     []string        `json:"not_rooms,omitempty"`
	IncludeLeave bool            `json:"include_leave,omitempty"`
	Timeline     roomEventFilter `json:"timeline"`
	State        roomEventFilter `json:"state"`
	Ephemeral    roomEventFilter `json:"ephemeral"`
	AccountData  roomEventFilter `json:"account_data"`
}

// eventFilter selects events by type and sender.
type eventFilter struct {
	Limit      int       `json:"limit,omitempty"`
	Types      *[]string `json:"types,omitempty"`
	NotTypes   []string  `json:"not_types,omitempty"`
	Senders    *[]string `json:"senders,omitempty"`
	NotSenders []string  `json:"not_senders,omitempty"`
}

// roomEventFilter is an eventFilter with the room-event extras.
type roomEventFilter struct {
	eventFilter
	Rooms                   *[]string `json:"rooms,omitempty"`
	NotRooms                []string  `json:"not_rooms,omitempty"`
	ContainsURL             *bool     `json:"contains_url,omitempty"`
	LazyLoadMembers         bool      `json:"lazy_load_members,omitempty"`
	IncludeRedundantMembers bool      `json:"include_redundant_members,omitempty"`
}

// typeMatch matches an event type against a filter pattern, where "*"
// stands for any run of characters. Spec: client-server-api "Filter"
// (types: "A '*' can be used as a wildcard").
func typeMatch(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(s, p)
		}
		j := strings.Index(s, p)
		if j < 0 {
			return false
		}
		s = s[j+len(p):]
	}
	return true
}

func anyMatch(patterns []string, s string) bool {
	for _, p := range patterns {
		if typeMatch(p, s) {
			return true
		}
	}
	return false
}

// allows reports whether the filter lets an event of that type and sender
// through.
func (f *eventFilter) allows(typ, sender string) bool {
	if anyMatch(f.NotTypes, typ) || containsStr(f.NotSenders, sender) {
		return false
	}
	if f.Types != nil && !anyMatch(*f.Types, typ) {
		return false
	}
	if f.Senders != nil && !containsStr(*f.Senders, sender) {
		return false
	}
	return true
}

// allowsRow applies a room event filter to a stored event.
func (f *roomEventFilter) allowsRow(r store.EventRow) bool {
	if !f.allows(r.Type, r.Sender) {
		return false
	}
	if containsStr(f.NotRooms, r.RoomID) || (f.Rooms != nil && !containsStr(*f.Rooms, r.RoomID)) {
		return false
	}
	if f.ContainsURL != nil {
		var c struct {
			Content struct {
				URL *string `json:"url"`
			} `json:"content"`
		}
		_ = json.Unmarshal(r.JSON, &c)
		if (c.Content.URL != nil) != *f.ContainsURL {
			return false
		}
	}
	return true
}

// allowsRoom applies the room filter's rooms / not_rooms.
func (f *roomFilter) allowsRoom(roomID string) bool {
	if containsStr(f.NotRooms, roomID) {
		return false
	}
	return f.Rooms == nil || containsStr(*f.Rooms, roomID)
}

// parseFilter decodes and checks a filter definition.
func parseFilter(b []byte) (*syncFilter, error) {
	f := &syncFilter{}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, Errorf(400, ErrCodeBadJSON, "bad filter: %v", err)
	}
	if f.EventFormat != "" && f.EventFormat != "client" && f.EventFormat != "federation" {
		return nil, Errorf(400, ErrCodeBadJSON, "bad filter: event_format must be client or federation")
	}
	if f.Room.Timeline.Limit < 0 {
		return nil, Errorf(400, ErrCodeBadJSON, "bad filter: timeline limit must not be negative")
	}
	return f, nil
}

func (rs *roomsModule) filterRoutes() []Route {
	return []Route{
		{Method: "POST", Pattern: "/_matrix/client/v3/user/{userId}/filter", Auth: AuthUser, Handle: rs.handlePostFilter},
		{Method: "GET", Pattern: "/_matrix/client/v3/user/{userId}/filter/{filterId}", Auth: AuthUser, Handle: rs.handleGetFilter},
	}
}

func (rs *roomsModule) handlePostFilter(c *Call) {
	if c.Req.Vars["userId"] != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may only create filters for yourself"))
		return
	}
	var raw map[string]json.RawMessage
	if err := c.DecodeJSON(&raw); err != nil {
		c.Fail(err)
		return
	}
	if _, err := parseFilter(c.Req.Body); err != nil {
		c.Fail(err)
		return
	}
	id, err := rs.st.InsertFilter(c.UserID, c.Req.Body)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]string{"filter_id": strconv.FormatInt(id, 10)})
}

func (rs *roomsModule) handleGetFilter(c *Call) {
	if c.Req.Vars["userId"] != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may only read your own filters"))
		return
	}
	id, err := strconv.ParseInt(c.Req.Vars["filterId"], 10, 64)
	if err != nil {
		c.Fail(Errorf(404, ErrCodeNotFound, "no such filter"))
		return
	}
	b, err := rs.st.Filter(c.UserID, id)
	if errors.Is(err, store.ErrNotFound) {
		c.Fail(Errorf(404, ErrCodeNotFound, "no such filter"))
		return
	}
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, json.RawMessage(b))
}

// loadFilter turns a filter query parameter (a filter ID or inline JSON)
// into a filter; an empty one is the empty filter.
func (rs *roomsModule) loadFilter(userID, param string) (*syncFilter, error) {
	param = strings.TrimSpace(param)
	if param == "" {
		return &syncFilter{}, nil
	}
	if strings.HasPrefix(param, "{") {
		return parseFilter([]byte(param))
	}
	id, err := strconv.ParseInt(param, 10, 64)
	if err != nil {
		return nil, Errorf(400, ErrCodeInvalidParam, "filter must be a filter ID or a JSON object")
	}
	b, err := rs.st.Filter(userID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, Errorf(400, ErrCodeInvalidParam, "no filter with ID %d", id)
	}
	if err != nil {
		return nil, err
	}
	return parseFilter(b)
}

// inlineFilter reads a RoomEventFilter given inline in a query parameter
// (/messages, /context) as the timeline part of a filter.
func (rs *roomsModule) inlineFilter(c *Call, name string) (*syncFilter, error) {
	f := &syncFilter{}
	s := strings.TrimSpace(c.Req.Query.Get(name))
	if s == "" {
		return f, nil
	}
	if err := json.Unmarshal([]byte(s), &f.Room.Timeline); err != nil {
		return nil, Errorf(400, ErrCodeBadJSON, "bad filter: %v", err)
	}
	f.Room.State = f.Room.Timeline
	return f, nil
}
