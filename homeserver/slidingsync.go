package homeserver

// Simplified sliding sync: POST
// /_matrix/client/unstable/org.matrix.simplified_msc3575/sync. Spec:
// MSC4186 (proposals/4186-simplified-sliding-sync.md), on the request and
// response shapes of MSC3575, in the unstable form the Element X apps
// (matrix-rust-sdk) send; extensions: to_device (MSC3885), e2ee (MSC3884),
// account_data, receipts (MSC3960) and typing.
//
// Request: pos and timeout in the query (or the body), and a body of
//
//	{"conn_id", "txn_id",
//	 "lists": {NAME: {"ranges": [[0, 19]], "timeline_limit": 1,
//	                  "required_state": [[TYPE, STATE_KEY]], "filters": {...}}},
//	 "room_subscriptions": {ROOM_ID: {"timeline_limit", "required_state"}},
//	 "extensions": {"to_device": {"enabled", "since", "limit"}, "e2ee": {"enabled"},
//	                "account_data": {"enabled", "lists", "rooms"}, "receipts": {...}, "typing": {...}}}
//
// required_state pairs take "*" for any type or state key, "$LAZY" (the
// members of the timeline's senders) and "$ME" (the user) as state keys;
// the MSC's newer object form {"include", "exclude", "lazy_members"} is
// read too. Filters: is_dm (m.direct account data), is_invite (or
// is_invited), is_encrypted, room_types and not_room_types (null: rooms
// without a type), tags and not_tags (m.tag room account data).
//
// Response: {"pos", "txn_id", "lists": {NAME: {"count"}}, "rooms": {ROOM_ID:
// {...}}, "extensions": {...}}. The server's room list holds the rooms the
// user is joined to, invited to (not by an ignored user) or knocked on,
// was kicked or banned from after being in them, and those the user left
// that this connection was already sent. It is ordered by bump_stamp,
// newest first, ties by room ID: the stream position of the room's newest
// event of the MSC's "proper activity" types (ssBumpTypes), or of the
// user's membership event for rooms the user is not joined to. A list's
// rooms are its filtered rooms inside its ranges; the lists' rooms and
// the subscribed ones (the user must have a membership in them) form the
// window, and each room of the window is sent when this connection has
// not sent it yet or when it changed since (new events, a new membership);
// its room configs are merged (the largest timeline_limit, every
// required_state rule). In a room the user has left or was banned from,
// joined_count, invited_count and heroes are those of the state at the
// leave (the state the user may see), not the room's current members.
//
// Connections: per (user, device, conn_id) the node keeps in memory what
// it sent each room up to (ssConn), as one snapshot per pos it handed out:
// a request names the snapshot it continues from, so a retry with the same
// pos gets the same answer again; a snapshot keeps, per room, hashes of
// the required_state rules the room was sent with, not their text. A
// request without pos starts the connection over. A connection unused
// for ssConnIdle is dropped; at most ssMaxConnsPerDevice connections per
// device, ssMaxConnsPerUser per user and ssMaxConns in all are kept, the
// least recently used dropped first, the requesting user's own first when
// the node is full. A pos that is not known (dropped, or from before a
// restart) gets 400 M_UNKNOWN_POS and the client starts over.
//
// Bounds: a request has at most ssMaxLists lists of ssMaxRanges ranges
// each and ssMaxRequestRules required_state rules over its distinct
// configs; beyond them it gets 400 M_INVALID_PARAM. Each list adds its
// config to a room once, however many of its ranges hold the room.
//
// A request whose answer would be empty waits like /sync
// (roomsModule.longPoll).
//
// NOTSPEC: a room whose timeline_limit grows or whose required_state gains
// a rule is sent again whole with initial: true (the MSC's
// expanded_timeline is not used): the client replaces what it had.
// NOTSPEC: $LAZY member events are sent with the timeline events of their
// senders each time, as /sync's lazy loading does, not only once per
// connection.
// NOTSPEC: the spaces filter and set_presence are not implemented; the
// room name is m.room.name only (clients compute a name from the heroes);
// notification counts are /sync's (sync.go unreadCounts), sent with every
// joined room that is sent. The room fields keep the unstable names the
// clients read (timeline, invite_state, knock_state), not the MSC's later
// timeline_events and stripped_state. pos is not accepted by /messages;
// prev_batch is.
//
// Extensions (slidingsync_ext.go) cover the rooms of the window; a room
// that was outside it gets, when it is back, the receipts and account
// data it missed meanwhile (ssRoomSent.extPos).

import (
	"cmp"
	"encoding/json"
	"errors"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/auth"
)

// ErrCodeUnknownPos: the connection or pos is not (or no longer) known.
// Spec: MSC4186 "Connections".
const ErrCodeUnknownPos = "M_UNKNOWN_POS"

// ssPath is the unstable endpoint; ssFeature is its /versions flag.
// Spec: MSC4186 "Unstable prefix".
const (
	ssPath    = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
	ssFeature = "org.matrix.simplified_msc3575"
)

// Sliding sync limits.
const (
	// NOTSPEC: fewer lists than MSC4186's "Max lists: 100"; clients send
	// a handful.
	ssMaxLists         = 50
	ssMaxSubscriptions = 500 // room subscriptions per request
	ssMaxRules         = 100 // required_state rules per room config
	// ssMaxRequestRules bounds the required_state rules of a request,
	// summed over its distinct configs (lists and subscriptions asking
	// for the same rules count once): each state event of each room is
	// matched against them. NOTSPEC: the MSC sets no such bound; a request
	// beyond it gets 400 M_INVALID_PARAM rather than a truncated answer.
	ssMaxRequestRules   = 200
	ssMaxRanges         = 10 // ranges per list
	ssMaxConnIDBytes    = 64
	ssMaxConnsPerDevice = 10   // connections kept per device
	ssMaxConnsPerUser   = 20   // connections kept per user, over their devices
	ssMaxConns          = 2000 // connections kept on the node
	// ssConnIdle: a connection not used for this long (node clock) is
	// dropped; its pos then gets M_UNKNOWN_POS.
	ssConnIdle        = 30 * time.Minute
	ssMaxSnapshots    = 3    // snapshots kept per connection
	ssDefaultToDevice = 100  // to_device messages per response by default
	ssMaxToDevice     = 1000 // cap on the to_device limit
	ssMaxBumpCache    = 20000
)

// ssBumpTypes are the event types that bump a room. Spec: MSC4186
// RoomResult bump_stamp ("Proper" activity).
var ssBumpTypes = map[string]bool{"m.room.create": true, "m.room.message": true, "m.room.encrypted": true,
	"m.sticker": true, "m.call.invite": true, "m.poll.start": true, "m.beacon_info": true}

// ssModuleName is the Node.Module key of the sliding sync module.
const ssModuleName = "slidingsync"

// ssModule is the sliding sync connection state of a node (node loop
// only).
type ssModule struct {
	n     *Node
	rs    *roomsModule
	conns map[ssConnKey]*ssConn
	used  uint64 // last ssConn.used handed out
	// maxConns is ssMaxConns (tests lower it).
	maxConns int
	// nextID numbers the snapshots; it starts at the boot time in ms so
	// positions of an earlier run are unlikely to be reused.
	nextID uint64
	bumps  map[string]ssBump // room → cached bump position
	// kept: membership event ID → whether a leave or ban keeps the room
	// in the list (kicked or banned after being in the room).
	kept map[string]bool
}

type ssConnKey struct{ userID, deviceID, connID string }

// ssConn is one connection: the snapshots of what was sent, oldest first.
type ssConn struct {
	key   ssConnKey
	snaps []*ssSnapshot
	used  uint64
	seen  time.Time // node clock of the last request or answer
}

// ssSnapshot is what a connection had been sent after one response.
// Snapshots are never changed once handed out; a response derives a new
// one.
type ssSnapshot struct {
	id     uint64
	pos    int64 // stream position the response covered (0: nothing yet)
	typing int64 // typing serial it covered
	rooms  map[string]ssRoomSent
	counts map[string]int // list → count sent
}

// ssRoomSent is what a connection was sent of one room.
type ssRoomSent struct {
	pos int64 // stream position the room was sent up to
	// extPos: the stream position up to which the extensions covered the
	// room (it may have been outside the window since).
	extPos int64
	limit  int // timeline_limit it was sent with
	// rules: the required_state rules it was sent with (ssMerged.ruleSet).
	rules      []uint64
	membership string
}

type ssBump struct{ checked, pos int64 }

func (s *ssSnapshot) token() string { return strconv.FormatUint(s.id, 10) }

func slidingSyncRoutes(n *Node) ([]Route, error) {
	rs := roomsOf(n)
	if rs == nil {
		return nil, errors.New("sliding sync: the rooms module is missing")
	}
	m := &ssModule{n: n, rs: rs, conns: map[ssConnKey]*ssConn{}, maxConns: ssMaxConns, nextID: uint64(max(n.Now().UnixMilli(), 0)),
		bumps: map[string]ssBump{}, kept: map[string]bool{}}
	n.SetModule(ssModuleName, m)
	return []Route{{Method: "POST", Pattern: ssPath, Auth: AuthUser, Unlimited: true, Handle: m.handle}}, nil
}

// ssRequest is the request body.
type ssRequest struct {
	ConnID            string                  `json:"conn_id"`
	TxnID             string                  `json:"txn_id"`
	Pos               string                  `json:"pos"`
	Timeout           *int64                  `json:"timeout"`
	Lists             map[string]ssList       `json:"lists"`
	RoomSubscriptions map[string]ssRoomConfig `json:"room_subscriptions"`
	Extensions        ssExtensions            `json:"extensions"`

	// The distinct configs of the lists and subscriptions (validate).
	listCfg, subCfg map[string]*ssConfig
}

type ssRoomConfig struct {
	TimelineLimit int             `json:"timeline_limit"`
	RequiredState ssRequiredState `json:"required_state"`
}

type ssList struct {
	ssRoomConfig
	Ranges  [][2]int   `json:"ranges"`
	Range   *[2]int    `json:"range"` // MSC4186's later single range
	Filters *ssFilters `json:"filters"`
}

type ssFilters struct {
	IsDM         *bool      `json:"is_dm"`
	IsInvite     *bool      `json:"is_invite"`
	IsInvited    *bool      `json:"is_invited"`
	IsEncrypted  *bool      `json:"is_encrypted"`
	RoomTypes    *[]*string `json:"room_types"`
	NotRoomTypes []*string  `json:"not_room_types"`
	Tags         *[]string  `json:"tags"`
	NotTags      []string   `json:"not_tags"`
}

// ssExtConfig is the common part of an extension's config.
type ssExtConfig struct {
	Enabled *bool     `json:"enabled"`
	Lists   *[]string `json:"lists"`
	Rooms   *[]string `json:"rooms"` // room IDs, "*": every subscribed room
}

type ssExtensions struct {
	ToDevice struct {
		Enabled *bool  `json:"enabled"`
		Since   string `json:"since"`
		Limit   int    `json:"limit"`
	} `json:"to_device"`
	E2EE        ssExtConfig `json:"e2ee"`
	AccountData ssExtConfig `json:"account_data"`
	Receipts    ssExtConfig `json:"receipts"`
	Typing      ssExtConfig `json:"typing"`
}

// ssRule is one required_state rule; "*" matches anything.
type ssRule struct{ typ, key string }

// ssRequiredState is a parsed required_state.
type ssRequiredState struct {
	include, exclude []ssRule
	lazy             bool
}

// UnmarshalJSON reads [[TYPE, KEY], ...] or {"include", "exclude",
// "lazy_members"} (elements {"type", "state_key"}, either left out for any).
func (r *ssRequiredState) UnmarshalJSON(b []byte) error {
	var pairs [][2]string
	if err := json.Unmarshal(b, &pairs); err == nil {
		for _, p := range pairs {
			if p[0] == auth.TypeMember && p[1] == "$LAZY" {
				r.lazy = true
				continue
			}
			r.include = append(r.include, ssRule{p[0], p[1]})
		}
		return nil
	}
	type elem struct {
		Type     *string `json:"type"`
		StateKey *string `json:"state_key"`
	}
	var o struct {
		Include     []elem `json:"include"`
		Exclude     []elem `json:"exclude"`
		LazyMembers bool   `json:"lazy_members"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return errors.New("required_state: want [[type, state_key], ...] or {include, exclude, lazy_members}")
	}
	conv := func(es []elem) []ssRule {
		var out []ssRule
		for _, e := range es {
			ru := ssRule{"*", "*"}
			if e.Type != nil {
				ru.typ = *e.Type
			}
			if e.StateKey != nil {
				ru.key = *e.StateKey
			}
			out = append(out, ru)
		}
		return out
	}
	r.include, r.exclude, r.lazy = conv(o.Include), conv(o.Exclude), o.LazyMembers
	return nil
}

func (ru ssRule) matches(k auth.StateKey, userID string) bool {
	key := ru.key
	if key == "$ME" {
		key = userID
	}
	return (ru.typ == "*" || ru.typ == k.Type) && (key == "*" || key == k.StateKey)
}

// matches reports whether the rules ask for the state event k.
func (r *ssRequiredState) matches(k auth.StateKey, userID string) bool {
	in := false
	for _, ru := range r.include {
		if ru.matches(k, userID) {
			in = true
			break
		}
	}
	if !in {
		return false
	}
	for _, ru := range r.exclude {
		if ru.matches(k, userID) {
			return false
		}
	}
	return true
}

// ssConfig is one distinct required_state of a request: lists and
// subscriptions asking for the same rules share one (ssRequest.listCfg, subCfg).
type ssConfig struct {
	id    int
	rs    *ssRequiredState
	rules []uint64 // ssRuleHash of each rule, sorted
}

// ssRuleHash names one rule (or "$LAZY") in a few bytes: snapshots keep
// these instead of the rules' text, whose size the client chooses.
func ssRuleHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// newSSConfig gives the canonical key of a required_state and its config.
func newSSConfig(r *ssRequiredState) (string, *ssConfig) {
	parts := make([]string, 0, len(r.include)+len(r.exclude)+1)
	for _, ru := range r.include {
		parts = append(parts, "+"+ru.typ+"\x00"+ru.key)
	}
	for _, ru := range r.exclude {
		parts = append(parts, "-"+ru.typ+"\x00"+ru.key)
	}
	if r.lazy {
		parts = append(parts, "$LAZY")
	}
	sort.Strings(parts)
	parts = slices.Compact(parts)
	c := &ssConfig{rs: r, rules: make([]uint64, len(parts))}
	for i, p := range parts {
		c.rules[i] = ssRuleHash(p)
	}
	slices.Sort(c.rules)
	return strings.Join(parts, "\x01"), c
}

// ssMerged is the room config of one room: the merge of the configs of
// every list and subscription that selects it, each distinct config once.
// Spec: MSC4186 "Combining room configs".
type ssMerged struct {
	limit int
	cfgs  []*ssConfig
	lazy  bool
	lists []string
}

func (mc *ssMerged) add(limit int, c *ssConfig) {
	mc.limit = max(mc.limit, min(limit, maxTimelineLimit))
	mc.lazy = mc.lazy || c.rs.lazy
	for _, have := range mc.cfgs {
		if have == c {
			return
		}
	}
	mc.cfgs = append(mc.cfgs, c)
}

func (mc *ssMerged) matches(k auth.StateKey, userID string) bool {
	for _, c := range mc.cfgs {
		if c.rs.matches(k, userID) {
			return true
		}
	}
	return false
}

// ruleSet is the sorted, distinct rule hashes of the merged configs, to
// notice changes. Rooms merging the same configs share one slice (cache,
// per response); it is never changed once made.
func (mc *ssMerged) ruleSet(cache map[string][]uint64) []uint64 {
	ids := make([]string, len(mc.cfgs))
	for i, c := range mc.cfgs {
		ids[i] = strconv.Itoa(c.id)
	}
	slices.Sort(ids)
	key := strings.Join(ids, ",")
	if set, ok := cache[key]; ok {
		return set
	}
	var set []uint64
	for _, c := range mc.cfgs {
		set = append(set, c.rules...)
	}
	slices.Sort(set)
	set = slices.Clip(slices.Compact(set))
	cache[key] = set
	return set
}

// ssExpands reports whether the rule set now asks for something before
// did not (both sorted).
func ssExpands(before, now []uint64) bool {
	for _, h := range now {
		if _, found := slices.BinarySearch(before, h); !found {
			return true
		}
	}
	return false
}

// validate checks the request's bounds.
func (q *ssRequest) validate() error {
	bad := func(format string, args ...any) error { return Errorf(400, ErrCodeInvalidParam, format, args...) }
	if len(q.ConnID) > ssMaxConnIDBytes {
		return bad("conn_id is longer than %d bytes", ssMaxConnIDBytes)
	}
	if len(q.Lists) > ssMaxLists {
		return bad("more than %d lists", ssMaxLists)
	}
	if len(q.RoomSubscriptions) > ssMaxSubscriptions {
		return bad("more than %d room subscriptions", ssMaxSubscriptions)
	}
	configs := map[string]*ssConfig{}
	rules := 0
	q.listCfg, q.subCfg = map[string]*ssConfig{}, map[string]*ssConfig{}
	checkConfig := func(what string, c *ssRoomConfig) (*ssConfig, error) {
		if c.TimelineLimit < 0 {
			return nil, bad("%s: timeline_limit is negative", what)
		}
		if n := len(c.RequiredState.include) + len(c.RequiredState.exclude); n > ssMaxRules {
			return nil, bad("%s: more than %d required_state rules", what, ssMaxRules)
		}
		key, cfg := newSSConfig(&c.RequiredState)
		if have := configs[key]; have != nil {
			return have, nil
		}
		if rules += len(cfg.rules); rules > ssMaxRequestRules {
			return nil, bad("more than %d required_state rules in all", ssMaxRequestRules)
		}
		cfg.id = len(configs)
		configs[key] = cfg
		return cfg, nil
	}
	for name, l := range q.Lists {
		if name == "" || len(name) > 64 {
			return bad("bad list name %q", name)
		}
		if l.Range != nil {
			l.Ranges = append(l.Ranges, *l.Range)
			q.Lists[name] = l
		}
		if len(l.Ranges) > ssMaxRanges {
			return bad("list %s: more than %d ranges", name, ssMaxRanges)
		}
		for _, r := range l.Ranges {
			if r[0] < 0 || r[1] < r[0] {
				return bad("list %s: bad range [%d, %d]", name, r[0], r[1])
			}
		}
		cfg, err := checkConfig("list "+name, &l.ssRoomConfig)
		if err != nil {
			return err
		}
		q.listCfg[name] = cfg
	}
	for roomID, c := range q.RoomSubscriptions {
		if !strings.HasPrefix(roomID, "!") {
			return bad("bad room ID %q", roomID)
		}
		cfg, err := checkConfig("subscription "+roomID, &c)
		if err != nil {
			return err
		}
		q.subCfg[roomID] = cfg
	}
	return nil
}

func (m *ssModule) handle(c *Call) {
	var q ssRequest
	if err := c.DecodeJSON(&q); err != nil {
		c.Fail(err)
		return
	}
	if p := c.Req.Query.Get("pos"); p != "" {
		q.Pos = p
	}
	timeoutMS := int64(0)
	if q.Timeout != nil {
		timeoutMS = *q.Timeout
	}
	if c.Req.Query.Has("timeout") {
		ms, err := queryInt(c, "timeout", 0)
		if err != nil {
			c.Fail(err)
			return
		}
		timeoutMS = int64(ms)
	}
	if err := q.validate(); err != nil {
		c.Fail(err)
		return
	}
	key := ssConnKey{c.UserID, c.DeviceID, q.ConnID}
	var conn *ssConn
	var base *ssSnapshot
	if q.Pos == "" {
		conn = m.newConn(key)
		base = &ssSnapshot{rooms: map[string]ssRoomSent{}, counts: map[string]int{}}
	} else {
		conn = m.conns[key]
		if conn != nil && m.idle(conn) {
			delete(m.conns, key)
			conn = nil
		}
		id, err := strconv.ParseUint(q.Pos, 10, 64)
		if conn != nil && err == nil {
			for i, s := range conn.snaps {
				if s.id == id {
					base = s
					// The client has this one: older ones are not needed.
					conn.snaps = conn.snaps[i:]
					break
				}
			}
		}
		if base == nil {
			c.Fail(Errorf(400, ErrCodeUnknownPos, "unknown pos %q", q.Pos))
			return
		}
	}
	m.used++
	conn.used, conn.seen = m.used, m.n.Now()
	build := func() (any, bool, error) {
		conn.seen = m.n.Now()
		resp, next, empty, err := m.build(&q, c.UserID, c.DeviceID, base)
		if err != nil {
			return nil, false, err
		}
		if empty && base.id != 0 {
			resp.Pos = base.token()
			return resp, true, nil
		}
		m.nextID++
		next.id = m.nextID
		conn.snaps = append(conn.snaps, next)
		if len(conn.snaps) > ssMaxSnapshots {
			conn.snaps = conn.snaps[len(conn.snaps)-ssMaxSnapshots:]
		}
		resp.Pos = next.token()
		return resp, empty, nil
	}
	resp, empty, err := build()
	if err != nil {
		c.Fail(err)
		return
	}
	timeout := min(time.Duration(max(timeoutMS, 0))*time.Millisecond, maxSyncTimeout)
	if !empty || base.id == 0 || timeout == 0 {
		c.Reply(200, resp)
		return
	}
	m.rs.longPoll(c, timeout, build)
}

// idle reports whether a connection was not used for ssConnIdle.
func (m *ssModule) idle(c *ssConn) bool { return m.n.Now().Sub(c.seen) >= ssConnIdle }

// newConn starts a connection over. It drops the idle connections, then
// the least recently used ones beyond the bounds: of the device, of the
// user, and on the node, where the user's own go first so that one user
// cannot push the others out.
func (m *ssModule) newConn(key ssConnKey) *ssConn {
	delete(m.conns, key)
	var device, user []*ssConn
	for k, c := range m.conns {
		switch {
		case m.idle(c):
			delete(m.conns, k)
		case k.userID == key.userID:
			user = append(user, c)
			if k.deviceID == key.deviceID {
				device = append(device, c)
			}
		}
	}
	byUse := func(a, b *ssConn) int { return cmp.Compare(a.used, b.used) }
	slices.SortFunc(device, byUse)
	slices.SortFunc(user, byUse)
	for _, c := range device[:max(len(device)-(ssMaxConnsPerDevice-1), 0)] {
		delete(m.conns, c.key)
	}
	user = slices.DeleteFunc(user, func(c *ssConn) bool { return m.conns[c.key] != c })
	for _, c := range user[:max(len(user)-(ssMaxConnsPerUser-1), 0)] {
		delete(m.conns, c.key)
	}
	user = slices.DeleteFunc(user, func(c *ssConn) bool { return m.conns[c.key] != c })
	for len(m.conns) >= m.maxConns {
		if len(user) > 0 {
			delete(m.conns, user[0].key)
			user = user[1:]
			continue
		}
		oldest := slices.MinFunc(slices.Collect(maps.Values(m.conns)), byUse)
		delete(m.conns, oldest.key)
	}
	c := &ssConn{key: key, seen: m.n.Now()}
	m.conns[key] = c
	return c
}
