package homeserver

// The room half of sliding sync (slidingsync.go): the server's room list,
// the lists' windows and the room results. Spec: MSC4186 "Lists and
// subscriptions", "Room results", RoomResult.

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sort"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// ssResponse is the response body.
type ssResponse struct {
	TxnID      string                  `json:"txn_id,omitempty"`
	Pos        string                  `json:"pos"`
	Lists      map[string]ssListResult `json:"lists"`
	Rooms      map[string]*ssRoom      `json:"rooms"`
	Extensions map[string]any          `json:"extensions"`
}

type ssListResult struct {
	Count int `json:"count"`
}

// ssRoom is a RoomResult; omitted fields are unchanged (initial: false)
// or unset (initial: true).
type ssRoom struct {
	Name              string         `json:"name,omitempty"`
	Avatar            string         `json:"avatar,omitempty"`
	Heroes            []ssHero       `json:"heroes,omitempty"`
	Initial           bool           `json:"initial,omitempty"`
	IsDM              bool           `json:"is_dm,omitempty"`
	Membership        string         `json:"membership,omitempty"`
	Lists             []string       `json:"lists,omitempty"`
	RequiredState     []*clientEvent `json:"required_state,omitempty"`
	Timeline          []*clientEvent `json:"timeline,omitempty"`
	PrevBatch         string         `json:"prev_batch,omitempty"`
	Limited           bool           `json:"limited,omitempty"`
	NumLive           *int           `json:"num_live,omitempty"`
	JoinedCount       *int           `json:"joined_count,omitempty"`
	InvitedCount      *int           `json:"invited_count,omitempty"`
	NotificationCount *int           `json:"notification_count,omitempty"`
	HighlightCount    *int           `json:"highlight_count,omitempty"`
	BumpStamp         *int64         `json:"bump_stamp,omitempty"`
	InviteState       []any          `json:"invite_state,omitempty"`
	KnockState        []any          `json:"knock_state,omitempty"`
}

// ssHero is a StrippedHero.
type ssHero struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// ssEntry is one room of the server's room list.
type ssEntry struct {
	roomID string
	m      store.Membership
	stamp  int64
	// stripped: the invite or knock state (invites and knocks only).
	stripped []any
}

// ssBuild is the work of one response.
type ssBuild struct {
	m                *ssModule
	q                *ssRequest
	userID, deviceID string
	base             *ssSnapshot
	now              int64
	ignored          map[string]bool
	direct           map[string]bool // rooms in m.direct
	tags             map[string]map[string]bool
	entries          map[string]*ssEntry
}

// build assembles a response against base and the snapshot that follows
// it; empty reports that it carries nothing new.
func (m *ssModule) build(q *ssRequest, userID, deviceID string, base *ssSnapshot) (*ssResponse, *ssSnapshot, bool, error) {
	rs := m.rs
	b := &ssBuild{m: m, q: q, userID: userID, deviceID: deviceID, base: base, now: rs.pos}
	var err error
	if b.ignored, err = rs.ignoredUsers(userID); err != nil {
		return nil, nil, false, err
	}
	if b.direct, err = m.directRooms(userID); err != nil {
		return nil, nil, false, err
	}
	list, err := b.roomList()
	if err != nil {
		return nil, nil, false, err
	}
	resp := &ssResponse{TxnID: q.TxnID, Lists: map[string]ssListResult{}, Rooms: map[string]*ssRoom{}, Extensions: map[string]any{}}
	// Snapshots are never changed: next shares base's rooms unless a room
	// is sent.
	next := &ssSnapshot{pos: b.now, typing: rs.typingSerial, rooms: base.rooms, counts: map[string]int{}}
	empty := true

	// The window: the rooms of the lists' ranges and the subscriptions.
	window := map[string]*ssMerged{}
	names := sortedMapKeys(q.Lists)
	for _, name := range names {
		l := q.Lists[name]
		var rooms []*ssEntry
		for _, e := range list {
			ok, err := b.filter(l.Filters, e)
			if err != nil {
				return nil, nil, false, err
			}
			if ok {
				rooms = append(rooms, e)
			}
		}
		resp.Lists[name] = ssListResult{Count: len(rooms)}
		next.counts[name] = len(rooms)
		if prev, ok := base.counts[name]; !ok || prev != len(rooms) {
			empty = false
		}
		ranges := l.Ranges
		if len(ranges) == 0 {
			// Spec: MSC4186 SyncListConfig range: "If this field is
			// missing, the room list is not limited by range".
			ranges = [][2]int{{0, len(rooms) - 1}}
		}
		for _, r := range ranges {
			for i := r[0]; i <= r[1] && i < len(rooms); i++ {
				mc := window[rooms[i].roomID]
				if mc == nil {
					mc = &ssMerged{}
					window[rooms[i].roomID] = mc
				}
				// Ranges may overlap: the list's config counts once.
				if len(mc.lists) == 0 || mc.lists[len(mc.lists)-1] != name {
					mc.add(l.TimelineLimit, q.listCfg[name])
					mc.lists = append(mc.lists, name)
				}
			}
		}
	}
	for roomID, cfg := range q.RoomSubscriptions {
		e := b.entries[roomID]
		if e == nil {
			// Spec: subscriptions to rooms the user may not see "should
			// be ignored by the server".
			continue
		}
		mc := window[roomID]
		if mc == nil {
			mc = &ssMerged{}
			window[roomID] = mc
		}
		mc.add(cfg.TimelineLimit, q.subCfg[roomID])
	}

	initialRooms := map[string]bool{}
	ruleSets := map[string][]uint64{}
	for _, roomID := range sortedMapKeys(window) {
		room, sent, initial, err := b.room(b.entries[roomID], window[roomID], ruleSets)
		if err != nil {
			return nil, nil, false, err
		}
		if room == nil {
			continue
		}
		resp.Rooms[roomID] = room
		if len(resp.Rooms) == 1 {
			next.rooms = maps.Clone(base.rooms)
		}
		next.rooms[roomID] = sent
		if initial {
			initialRooms[roomID] = true
		}
		empty = false
	}
	if news, err := b.extensions(resp, window, initialRooms); err != nil {
		return nil, nil, false, err
	} else if news {
		empty = false
	}
	if !empty {
		// The extensions covered the window up to now.
		if len(resp.Rooms) == 0 {
			next.rooms = maps.Clone(base.rooms)
		}
		for roomID := range window {
			if r, ok := next.rooms[roomID]; ok {
				r.extPos = b.now
				next.rooms[roomID] = r
			}
		}
	}
	return resp, next, empty, nil
}

// roomList is the server's room list, newest first (slidingsync.go).
func (b *ssBuild) roomList() ([]*ssEntry, error) {
	rs := b.m.rs
	b.entries = map[string]*ssEntry{}
	var list []*ssEntry
	for roomID := range rs.userRooms[b.userID] {
		m := rs.members[roomID][b.userID]
		if m.Pos > b.now || m.Forgotten {
			continue
		}
		e := &ssEntry{roomID: roomID, m: m, stamp: m.Pos}
		switch m.Membership {
		case auth.Join:
			rm, err := rs.room(roomID)
			if err != nil {
				return nil, err
			}
			if e.stamp, err = b.m.bumpPos(rm); err != nil {
				return nil, err
			}
		case auth.Invite, auth.Knock:
			if m.Membership == auth.Invite {
				if hide, err := rs.inviteFromIgnored(b.ignored, m); err != nil {
					return nil, err
				} else if hide {
					continue // Spec: "Servers must not send room invites from ignored users"
				}
			}
			ir, err := rs.syncInvited(roomID, m)
			if err != nil {
				return nil, err
			}
			e.stripped = ir.InviteState.Events
		case auth.Leave, auth.Ban:
			if _, sent := b.base.rooms[roomID]; !sent {
				kept, err := b.m.keptAfterLeave(b.userID, m)
				if err != nil {
					return nil, err
				}
				if !kept {
					continue
				}
			}
		default:
			continue
		}
		b.entries[roomID] = e
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].stamp != list[j].stamp {
			return list[i].stamp > list[j].stamp
		}
		return list[i].roomID < list[j].roomID
	})
	return list, nil
}

// keptAfterLeave reports whether a leave or ban keeps a room in the list:
// the user was kicked or banned by someone else after being joined or
// invited. Spec: MSC4186 "Lists" (left rooms are left out, kicked and
// banned ones kept; "rooms the user has been banned from, but never
// joined, should not be part of the list").
func (m *ssModule) keptAfterLeave(userID string, mem store.Membership) (bool, error) {
	if k, ok := m.kept[mem.EventID]; ok {
		return k, nil
	}
	row, err := m.rs.st.Event(mem.EventID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	kept := false
	if row.Sender != userID && row.ReplacesState != "" {
		prev, err := m.rs.st.Event(row.ReplacesState)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		if err == nil {
			was := membershipOf(prev.JSON)
			kept = was == auth.Join || was == auth.Invite || was == auth.Knock
		}
	}
	if len(m.kept) >= ssMaxBumpCache {
		clear(m.kept)
	}
	m.kept[mem.EventID] = kept
	return kept, nil
}

// isRoomNotFound reports whether err is a 404 API error (errRoomNotFound).
func isRoomNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == 404
}

// membershipOf reads content.membership of a stored member event.
func membershipOf(pdu []byte) string {
	var c struct {
		Membership string `json:"membership"`
	}
	_ = json.Unmarshal(contentOf(pdu), &c)
	return c.Membership
}

// bumpPos is the stream position of the room's newest event of a bump
// type, found by paging back once and then only through the new events.
func (m *ssModule) bumpPos(rm *roomCache) (int64, error) {
	b, known := m.bumps[rm.id]
	if known && b.checked >= rm.lastPos {
		return b.pos, nil
	}
	lo := historyStart
	if known {
		lo = b.checked
	}
	const page = 50
	found, upTo := int64(0), rm.lastPos
	for found == 0 && lo < upTo {
		rows, err := m.rs.st.RoomEventsRange(rm.id, lo, upTo, false, page)
		if err != nil {
			return 0, err
		}
		for _, r := range rows {
			if ssBumpTypes[r.Type] {
				found = r.Pos
				break
			}
		}
		if len(rows) < page {
			break
		}
		upTo = rows[len(rows)-1].Pos - 1
	}
	pos := b.pos
	if found != 0 {
		pos = found
	} else if !known {
		pos = rm.lastPos // no event of a bump type at all
	}
	if len(m.bumps) >= ssMaxBumpCache {
		clear(m.bumps)
	}
	m.bumps[rm.id] = ssBump{checked: rm.lastPos, pos: pos}
	return pos, nil
}

// directRooms are the rooms of the user's m.direct account data. Spec:
// client-server-api "Direct Messaging".
func (m *ssModule) directRooms(userID string) (map[string]bool, error) {
	a, err := m.rs.st.GetAccountData(userID, "", "m.direct")
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c map[string][]string
	_ = json.Unmarshal(a.Content, &c)
	out := map[string]bool{}
	for _, rooms := range c {
		for _, r := range rooms {
			out[r] = true
		}
	}
	return out, nil
}

// roomFacts gives a room's type (nil: none) and whether it is encrypted:
// from the current state in rooms the user is or was in, from the
// stripped state for invites and knocks.
func (b *ssBuild) roomFacts(e *ssEntry) (roomType *string, encrypted bool, err error) {
	readType := func(content json.RawMessage) *string {
		var c struct {
			Type *string `json:"type"`
		}
		_ = json.Unmarshal(content, &c)
		return c.Type
	}
	if e.m.Membership == auth.Invite || e.m.Membership == auth.Knock {
		for _, s := range e.stripped {
			se, _ := s.(strippedEvent)
			switch se.Type {
			case auth.TypeCreate:
				roomType = readType(se.Content)
			case "m.room.encryption":
				encrypted = true
			}
		}
		return roomType, encrypted, nil
	}
	rm, err := b.m.rs.room(e.roomID)
	if isRoomNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if c := rm.state[auth.StateKey{Type: auth.TypeCreate}]; c != nil {
		roomType = readType(c.Content())
	}
	return roomType, rm.state[auth.StateKey{Type: "m.room.encryption"}] != nil, nil
}

// filter applies a list's filters. Spec: MSC4186 SlidingRoomFilter.
func (b *ssBuild) filter(f *ssFilters, e *ssEntry) (bool, error) {
	if f == nil {
		return true, nil
	}
	if f.IsDM != nil && *f.IsDM != b.direct[e.roomID] {
		return false, nil
	}
	isInvite := f.IsInvite
	if isInvite == nil {
		isInvite = f.IsInvited
	}
	if isInvite != nil && *isInvite != (e.m.Membership == auth.Invite) {
		return false, nil
	}
	if f.IsEncrypted != nil || f.RoomTypes != nil || len(f.NotRoomTypes) > 0 {
		typ, enc, err := b.roomFacts(e)
		if err != nil {
			return false, err
		}
		if f.IsEncrypted != nil && *f.IsEncrypted != enc {
			return false, nil
		}
		for _, t := range f.NotRoomTypes {
			if sameStr(t, typ) {
				return false, nil
			}
		}
		if f.RoomTypes != nil {
			found := false
			for _, t := range *f.RoomTypes {
				found = found || sameStr(t, typ)
			}
			if !found {
				return false, nil
			}
		}
	}
	if f.Tags != nil || len(f.NotTags) > 0 {
		tags, err := b.roomTags(e.roomID)
		if err != nil {
			return false, err
		}
		for _, t := range f.NotTags {
			if tags[t] {
				return false, nil
			}
		}
		if f.Tags != nil {
			found := false
			for _, t := range *f.Tags {
				found = found || tags[t]
			}
			if !found {
				return false, nil
			}
		}
	}
	return true, nil
}

// roomTags are the user's tags on a room (accountdata.go), cached for the
// build.
func (b *ssBuild) roomTags(roomID string) (map[string]bool, error) {
	if t, ok := b.tags[roomID]; ok {
		return t, nil
	}
	tc, err := b.m.rs.tagsOf(b.userID, roomID)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for t := range tc.Tags {
		out[t] = true
	}
	if b.tags == nil {
		b.tags = map[string]map[string]bool{}
	}
	b.tags[roomID] = out
	return out, nil
}

// room builds one room's result, or nil when the connection has it
// already and nothing changed. sent is what the connection then has.
func (b *ssBuild) room(e *ssEntry, mc *ssMerged, ruleSets map[string][]uint64) (*ssRoom, ssRoomSent, bool, error) {
	rs := b.m.rs
	prev, wasSent := b.base.rooms[e.roomID]
	rules := mc.ruleSet(ruleSets)
	if slices.Equal(rules, prev.rules) {
		rules = prev.rules // keep one copy across snapshots
	}
	memberChanged := wasSent && (e.m.Pos > prev.pos || e.m.Membership != prev.membership)
	// A room seen only as an invite or knock so far (stripped state) is
	// sent whole once the user is in it (or rejected).
	wasOutside := prev.membership == auth.Invite || prev.membership == auth.Knock
	initial := !wasSent || mc.limit > prev.limit || ssExpands(prev.rules, rules) ||
		wasOutside && e.m.Membership != prev.membership
	sent := ssRoomSent{pos: b.now, extPos: prev.extPos, limit: mc.limit, rules: rules, membership: e.m.Membership}
	stamp := max(e.stamp, 0)
	room := &ssRoom{Initial: initial, BumpStamp: &stamp, Lists: mc.lists}
	if initial || memberChanged {
		room.Membership = e.m.Membership
	}
	if initial && b.direct[e.roomID] {
		room.IsDM = true
	}

	switch e.m.Membership {
	case auth.Invite, auth.Knock:
		if !initial && !memberChanged {
			return nil, ssRoomSent{}, false, nil
		}
		if e.m.Membership == auth.Invite {
			room.InviteState = e.stripped
		} else {
			room.KnockState = e.stripped
		}
		return room, sent, initial, nil
	}

	rm, err := rs.room(e.roomID)
	if isRoomNotFound(err) {
		// A rejected invite to a room this server is not in: the
		// membership is all there is to say.
		if !initial && !memberChanged {
			return nil, ssRoomSent{}, false, nil
		}
		return room, sent, initial, nil
	}
	if err != nil {
		return nil, ssRoomSent{}, false, err
	}
	after := historyStart
	if !initial {
		after = prev.pos
		if rm.lastPos <= after && !memberChanged {
			return nil, ssRoomSent{}, false, nil
		}
	}
	rows, limited, from, err := rs.timelineRows(e.roomID, b.userID, b.ignored, after, b.now, mc.limit, roomEventFilter{})
	if isForbidden(err) {
		return nil, ssRoomSent{}, false, nil
	}
	if err != nil {
		return nil, ssRoomSent{}, false, err
	}
	if !initial && !memberChanged && len(rows) == 0 && !limited {
		// Only events the user may not see or ignores: nothing to say,
		// but the connection has seen up to now. (When the scan bound,
		// scanBudget, stopped before it found any, the room goes out
		// limited with a prev_batch where the scan stopped, as /sync's
		// timeline does: the client learns of the gap and pages back.)
		return nil, ssRoomSent{}, false, nil
	}
	view := eventView{userID: b.userID, deviceID: b.deviceID, now: rs.n.Now().UnixMilli()}
	// Bundled aggregations ride on limited timelines and initial ones
	// (MSC4186 timeline_events: "as per /v3/sync"; sync.go).
	tlView := view
	tlView.noBundles = !initial && !limited
	if room.Timeline, err = rs.clientEvents(rows, tlView); err != nil {
		return nil, ssRoomSent{}, false, err
	}
	room.Limited = limited
	if !initial && !limited {
		// The client holds the events before these too.
		sent.limit = max(prev.limit, mc.limit)
	}
	if len(rows) > 0 {
		room.PrevBatch = streamToken{pos: rows[0].Pos - 1}.String()
	} else if from > historyStart {
		room.PrevBatch = streamToken{pos: from}.String()
	}
	live := 0
	if b.base.id != 0 {
		for _, r := range rows {
			if r.Pos > b.base.pos {
				live++
			}
		}
	}
	room.NumLive = &live

	state, err := rs.visibleState(e.roomID, b.userID)
	if isForbidden(err) {
		return nil, ssRoomSent{}, false, nil
	}
	if err != nil {
		return nil, ssRoomSent{}, false, err
	}
	// changed: the state keys that changed since the room was sent (nil
	// when initial: everything counts).
	var changed map[auth.StateKey]bool
	if !initial {
		changed = map[auth.StateKey]bool{}
		// A user who is not in the room sees no state past the leave.
		upTo := b.now
		if e.m.Membership != auth.Join {
			upTo = min(upTo, e.m.Pos)
		}
		srows, err := rs.st.RoomStateEventsRange(e.roomID, prev.pos, upTo)
		if err != nil {
			return nil, ssRoomSent{}, false, err
		}
		for _, r := range srows {
			changed[auth.StateKey{Type: r.Type, StateKey: *r.StateKey}] = true
		}
	}
	isNew := func(k auth.StateKey) bool { return changed == nil || changed[k] }
	want := auth.State{}
	for k, ev := range state {
		if isNew(k) && mc.matches(k, b.userID) {
			want[k] = ev
		}
	}
	if mc.lazy {
		// Spec: MSC4186 "Lazy loaded memberships": the senders of the
		// timeline, the targets of its member events, and (without a gap)
		// every membership change since the last response.
		for _, r := range rows {
			keys := []auth.StateKey{{Type: auth.TypeMember, StateKey: r.Sender}}
			if r.Type == auth.TypeMember && r.StateKey != nil {
				keys = append(keys, auth.StateKey{Type: auth.TypeMember, StateKey: *r.StateKey})
			}
			for _, k := range keys {
				if ev := state[k]; ev != nil {
					want[k] = ev
				}
			}
		}
		if !initial && !limited {
			for k := range changed {
				if ev := state[k]; k.Type == auth.TypeMember && ev != nil {
					want[k] = ev
				}
			}
		}
	}
	if len(want) > 0 {
		srows, err := rs.stateRows(want)
		if err != nil {
			return nil, ssRoomSent{}, false, err
		}
		if room.RequiredState, err = rs.clientEvents(srows, tlView); err != nil {
			return nil, ssRoomSent{}, false, err
		}
	}

	// The room's summary fields, when new.
	nameKey, avatarKey := auth.StateKey{Type: "m.room.name"}, auth.StateKey{Type: "m.room.avatar"}
	if ev := state[nameKey]; ev != nil && isNew(nameKey) {
		var c struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(ev.Content(), &c)
		room.Name = c.Name
	}
	if ev := state[avatarKey]; ev != nil && isNew(avatarKey) {
		var c struct {
			URL string `json:"url"`
		}
		_ = json.Unmarshal(ev.Content(), &c)
		room.Avatar = c.URL
	}
	membersNew := changed == nil
	for k := range changed {
		membersNew = membersNew || k.Type == auth.TypeMember
	}
	if membersNew {
		var joined, invited int
		var heroes []string
		if e.m.Membership == auth.Join {
			joined, invited, heroes = rs.memberSummary(e.roomID, b.userID)
		} else {
			// Not in the room any more: the members as of the leave or
			// ban (the state the user may see), as /sync shows a left
			// room frozen at the leave; not who came since.
			joined, invited, heroes = ssStateMemberSummary(state, b.userID)
		}
		room.JoinedCount, room.InvitedCount = &joined, &invited
		if state[nameKey] == nil {
			for _, u := range heroes {
				h := ssHero{UserID: u}
				if ev := state[auth.StateKey{Type: auth.TypeMember, StateKey: u}]; ev != nil {
					var c struct {
						DisplayName string `json:"displayname"`
						AvatarURL   string `json:"avatar_url"`
					}
					_ = json.Unmarshal(ev.Content(), &c)
					h.DisplayName, h.AvatarURL = c.DisplayName, c.AvatarURL
				}
				room.Heroes = append(room.Heroes, h)
			}
		}
	}
	if e.m.Membership == auth.Join {
		u, err := rs.unreadCounts(e.roomID, b.userID, b.now)
		if err != nil {
			return nil, ssRoomSent{}, false, err
		}
		room.NotificationCount, room.HighlightCount = &u.Notification, &u.Highlight
	}
	return room, sent, initial, nil
}

// ssStateMemberSummary is memberSummary (sync.go) over a state map: the
// joined and invited members and up to five of them other than userID,
// sorted.
func ssStateMemberSummary(state auth.State, userID string) (joined, invited int, heroes []string) {
	for k, ev := range state {
		if k.Type != auth.TypeMember {
			continue
		}
		switch ev.Membership() {
		case auth.Join:
			joined++
		case auth.Invite:
			invited++
		default:
			continue
		}
		if k.StateKey != userID {
			heroes = append(heroes, k.StateKey)
		}
	}
	sort.Strings(heroes)
	return joined, invited, heroes[:min(len(heroes), 5)]
}
