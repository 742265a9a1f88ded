package homeserver

// GET /_matrix/client/v3/sync. Spec: client-server-api "Syncing" and
// GET /sync: initial and incremental sync, long-polling with timeout,
// filters (timeline limit, limited + prev_batch, lazy_load_members,
// include_leave), the join / invite / leave sections, state deltas,
// ephemeral events (m.typing, m.receipt), account data and
// unread_notifications. Events and invites from users the syncing user
// ignores are left out (ignore.go); bundled aggregations ride only on
// limited timelines and on those that start a history (syncTimeline).
//
// A long poll is a waiter inside the node loop: when the response would be
// empty, the call stays open; a change touching the user (an event in one
// of their rooms, a membership change, a receipt, typing, account data)
// rebuilds the response, and a timer answers with an empty one when the
// timeout runs out.

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Sync limits.
const (
	defaultTimelineLimit = 10               // timeline events per room when the filter sets none
	maxTimelineLimit     = 1000             // cap on a filter's timeline limit
	maxSyncTimeout       = 10 * time.Minute // cap on the long-poll timeout
)

type syncRequest struct {
	userID, deviceID string
	since            *streamToken // nil: initial sync
	fullState        bool
	filter           *syncFilter
	timeout          time.Duration
	// ignored: the users the user ignores (ignore.go), read afresh by
	// every buildSync.
	ignored map[string]bool
}

// syncWaiter is a pending long poll: of /sync, or of sliding sync
// (slidingsync.go).
type syncWaiter struct {
	seq    uint64 // registration order, for a deterministic wake order
	c      *Call
	userID string
	// build makes the response; empty: nothing new yet, keep waiting.
	build func() (resp any, empty bool, err error)
	timer interface{ Stop() bool }
}

type syncResponse struct {
	NextBatch   string           `json:"next_batch"`
	Rooms       syncRooms        `json:"rooms"`
	AccountData eventList        `json:"account_data"`
	Presence    eventList        `json:"presence"`
	ToDevice    eventList        `json:"to_device"`
	OTKCount    map[string]int   `json:"device_one_time_keys_count"`
	DeviceLists *json.RawMessage `json:"device_lists,omitempty"`
	// FallbackKeyTypes: device_unused_fallback_key_types (e2ee.go).
	FallbackKeyTypes []string `json:"device_unused_fallback_key_types"`
}

type syncRooms struct {
	Join   map[string]*joinedRoom  `json:"join"`
	Invite map[string]*invitedRoom `json:"invite"`
	Leave  map[string]*leftRoom    `json:"leave"`
	Knock  map[string]any          `json:"knock"`
}

type eventList struct {
	Events []any `json:"events"`
}

type timeline struct {
	Events    []*clientEvent `json:"events"`
	Limited   bool           `json:"limited"`
	PrevBatch string         `json:"prev_batch"`
}

type stateList struct {
	Events []*clientEvent `json:"events"`
}

type joinedRoom struct {
	Timeline    timeline       `json:"timeline"`
	State       stateList      `json:"state"`
	Ephemeral   eventList      `json:"ephemeral"`
	AccountData eventList      `json:"account_data"`
	Unread      unreadCounts   `json:"unread_notifications"`
	Summary     map[string]any `json:"summary"`
}

type unreadCounts struct {
	Highlight    int `json:"highlight_count"`
	Notification int `json:"notification_count"`
}

type invitedRoom struct {
	InviteState eventList `json:"invite_state"`
}

type leftRoom struct {
	Timeline    timeline  `json:"timeline"`
	State       stateList `json:"state"`
	AccountData eventList `json:"account_data"`
}

// strippedEvent is a stripped state event of invite_state. Spec:
// client-server-api "Stripped state".
type strippedEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

// strippedStateTypes are the state events an invitee sees.
var strippedStateTypes = []string{"m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
	"m.room.canonical_alias", "m.room.encryption", "m.room.topic"}

func (rs *roomsModule) syncRoutes() []Route {
	return []Route{{Method: "GET", Pattern: "/_matrix/client/v3/sync", Auth: AuthUser, Unlimited: true, Handle: rs.handleSync}}
}

func (rs *roomsModule) handleSync(c *Call) {
	req := &syncRequest{userID: c.UserID, deviceID: c.DeviceID, fullState: c.Req.Query.Get("full_state") == "true"}
	if s := c.Req.Query.Get("since"); s != "" {
		tok, err := parseStreamToken(s)
		if err != nil {
			c.Fail(err)
			return
		}
		if tok.pos > rs.pos {
			// A token from the future (a database restored from backup):
			// start over rather than miss events.
			tok.pos = rs.pos
		}
		req.since = &tok
	}
	ms, err := queryInt(c, "timeout", 0)
	if err != nil {
		c.Fail(err)
		return
	}
	req.timeout = min(time.Duration(max(ms, 0))*time.Millisecond, maxSyncTimeout)
	if req.filter, err = rs.loadFilter(c.UserID, c.Req.Query.Get("filter")); err != nil {
		c.Fail(err)
		return
	}
	resp, empty, err := rs.buildSync(req)
	if err != nil {
		c.Fail(err)
		return
	}
	if !empty || req.since == nil || req.timeout == 0 || req.fullState {
		c.Reply(200, resp)
		return
	}
	rs.longPoll(c, req.timeout, func() (any, bool, error) { return rs.buildSync(req) })
}

// longPoll keeps c open until build has something to say (wakeUsers) or
// timeout runs out; then it answers with what build gives.
func (rs *roomsModule) longPoll(c *Call, timeout time.Duration, build func() (any, bool, error)) {
	rs.waiterSeq++
	w := &syncWaiter{seq: rs.waiterSeq, c: c, userID: c.UserID, build: build}
	set := rs.waiters[c.UserID]
	if set == nil {
		set = map[*syncWaiter]bool{}
		rs.waiters[c.UserID] = set
	}
	set[w] = true
	w.timer = rs.n.AfterFunc(timeout, func() {
		if !rs.dropWaiter(w) {
			return
		}
		resp, _, err := w.build()
		if err != nil {
			w.c.Fail(err)
			return
		}
		w.c.Reply(200, resp)
	})
	c.OnCancel(func() {
		rs.dropWaiter(w)
		w.timer.Stop()
	})
}

// dropWaiter forgets a waiter; it reports whether it was still waiting.
func (rs *roomsModule) dropWaiter(w *syncWaiter) bool {
	set := rs.waiters[w.userID]
	if !set[w] {
		return false
	}
	delete(set, w)
	if len(set) == 0 {
		delete(rs.waiters, w.userID)
	}
	return !w.c.Done()
}

// wakeUsers re-runs the long polls of the given users and answers those
// that now have something to return.
func (rs *roomsModule) wakeUsers(users map[string]bool) {
	if len(rs.waiters) == 0 {
		return
	}
	names := make([]string, 0, len(users))
	for u := range users {
		if len(rs.waiters[u]) > 0 {
			names = append(names, u)
		}
	}
	sort.Strings(names) // deterministic order for the simulator
	for _, u := range names {
		ws := make([]*syncWaiter, 0, len(rs.waiters[u]))
		for w := range rs.waiters[u] {
			ws = append(ws, w)
		}
		sort.Slice(ws, func(i, j int) bool { return ws[i].seq < ws[j].seq })
		for _, w := range ws {
			resp, empty, err := w.build()
			if err == nil && empty {
				continue
			}
			rs.dropWaiter(w)
			w.timer.Stop()
			if err != nil {
				w.c.Fail(err)
				continue
			}
			w.c.Reply(200, resp)
		}
	}
}

// wakeRoom wakes the long polls of a room's joined members.
func (rs *roomsModule) wakeRoom(roomID string) {
	users := map[string]bool{}
	for u, m := range rs.members[roomID] {
		if m.Membership == auth.Join {
			users[u] = true
		}
	}
	rs.wakeUsers(users)
}

// buildSync assembles a sync response; empty reports that it carries
// nothing new (only then does a long poll wait).
func (rs *roomsModule) buildSync(req *syncRequest) (*syncResponse, bool, error) {
	now := rs.pos
	since := int64(0)
	var sinceTyping int64
	if req.since != nil {
		since, sinceTyping = req.since.pos, req.since.typing
	}
	resp := &syncResponse{
		NextBatch: streamToken{pos: now, typing: rs.typingSerial}.String(),
		Rooms: syncRooms{Join: map[string]*joinedRoom{}, Invite: map[string]*invitedRoom{},
			Leave: map[string]*leftRoom{}, Knock: map[string]any{}},
		AccountData: eventList{Events: []any{}}, Presence: eventList{Events: []any{}},
		ToDevice: eventList{Events: []any{}}, OTKCount: map[string]int{},
	}
	f := req.filter
	empty := true
	var err error
	if req.ignored, err = rs.ignoredUsers(req.userID); err != nil {
		return nil, false, err
	}

	// Account data, global and per room.
	var ad []store.AccountData
	if last, known := rs.adLast[req.userID]; !known || last > since {
		var err error
		if ad, err = rs.st.AccountDataSince(req.userID, since, now); err != nil {
			return nil, false, err
		}
		last = since
		for _, a := range ad {
			last = max(last, a.Pos)
		}
		if len(rs.adLast) >= maxAccountDataCache {
			clear(rs.adLast)
		}
		rs.adLast[req.userID] = max(last, rs.adLast[req.userID])
	}
	roomAD := map[string][]any{}
	havePushRules := false
	for _, a := range ad {
		ev := map[string]any{"type": a.Type, "content": json.RawMessage(a.Content)}
		if a.RoomID == "" {
			if a.Type == pushRulesType {
				havePushRules = true
			}
			if f.AccountData.allows(a.Type, req.userID) {
				resp.AccountData.Events = append(resp.AccountData.Events, ev)
			}
		} else if f.Room.AccountData.allows(a.Type, req.userID) {
			roomAD[a.RoomID] = append(roomAD[a.RoomID], ev)
		}
	}
	if req.since == nil && !havePushRules && f.AccountData.allows(pushRulesType, req.userID) {
		resp.AccountData.Events = append(resp.AccountData.Events,
			map[string]any{"type": pushRulesType, "content": defaultPushRules(req.userID)})
	}
	if len(resp.AccountData.Events) > 0 {
		empty = false
	}

	roomIDs := make([]string, 0, len(rs.userRooms[req.userID]))
	for id := range rs.userRooms[req.userID] {
		roomIDs = append(roomIDs, id)
	}
	sort.Strings(roomIDs)
	for _, roomID := range roomIDs {
		if !f.Room.allowsRoom(roomID) {
			continue
		}
		m := rs.members[roomID][req.userID]
		if m.Pos > now {
			continue // written after this response's position
		}
		changed := req.since == nil || m.Pos > since
		switch m.Membership {
		case auth.Join:
			jr, err := rs.syncJoined(req, roomID, m, since, sinceTyping, now, roomAD[roomID])
			if err != nil {
				return nil, false, err
			}
			if jr != nil {
				resp.Rooms.Join[roomID] = jr
				empty = false
			}
		case auth.Invite:
			if !changed {
				continue
			}
			if hide, err := rs.inviteFromIgnored(req.ignored, m); err != nil {
				return nil, false, err
			} else if hide {
				continue // Spec: "Servers must not send room invites from ignored users"
			}
			ir, err := rs.syncInvited(roomID, m)
			if err != nil {
				return nil, false, err
			}
			resp.Rooms.Invite[roomID] = ir
			empty = false
		case auth.Knock:
			if !changed {
				continue
			}
			ir, err := rs.syncInvited(roomID, m)
			if err != nil {
				return nil, false, err
			}
			resp.Rooms.Knock[roomID] = map[string]any{"knock_state": ir.InviteState}
			empty = false
		case auth.Leave, auth.Ban:
			if m.Forgotten || !changed || (req.since == nil && !f.Room.IncludeLeave) {
				continue
			}
			lr, err := rs.syncLeft(req, roomID, m, since, roomAD[roomID])
			if err != nil {
				return nil, false, err
			}
			if lr != nil {
				resp.Rooms.Leave[roomID] = lr
				empty = false
			}
		}
	}
	if news, err := rs.syncE2EE(req, resp, since, now); err != nil {
		return nil, false, err
	} else if news {
		empty = false
	}
	return resp, empty, nil
}

// syncTimeline loads a room's timeline for (after, upTo] and the state to
// send with it. full: send the whole state at the start of the timeline
// (initial sync, newly joined, full_state); otherwise only the state that
// changed between after and the start of the timeline.
func (rs *roomsModule) syncTimeline(req *syncRequest, roomID string, after, upTo int64, full bool) (timeline, stateList, error) {
	f := req.filter
	limit := f.Room.Timeline.Limit
	if limit == 0 {
		limit = defaultTimelineLimit
	}
	limit = min(limit, maxTimelineLimit)
	rows, limited, after, err := rs.timelineRows(roomID, req.userID, req.ignored, after, upTo, limit, f.Room.Timeline)
	if isForbidden(err) {
		return timeline{Events: []*clientEvent{}}, stateList{Events: []*clientEvent{}}, nil
	}
	if err != nil {
		return timeline{}, stateList{}, err
	}
	tl := timeline{Events: []*clientEvent{}, Limited: limited}
	view := eventView{userID: req.userID, deviceID: req.deviceID, now: rs.n.Now().UnixMilli()}
	tl.PrevBatch = streamToken{pos: after}.String()
	if len(rows) > 0 {
		tl.PrevBatch = streamToken{pos: rows[0].Pos - 1}.String()
	}
	// Bundled aggregations ride only on limited timelines and on those
	// that start a history (initial sync, a new join, full_state).
	// Spec: client-server-api "Aggregations of child events" lists /sync
	// "when the relevant section has a limited value of true". A
	// timeline without a gap carries the children themselves after what
	// the client already holds, so bundles would only repeat them.
	tlView := view
	tlView.noBundles = req.since != nil && !full && !tl.Limited
	if tl.Events, err = rs.clientEvents(rows, tlView); err != nil {
		return timeline{}, stateList{}, err
	}

	rm, err := rs.room(roomID)
	if err != nil {
		return timeline{}, stateList{}, err
	}
	// The state group at the start of the timeline.
	startGroup := int64(-1)
	switch {
	case len(rows) > 0:
		startGroup = rows[0].StateBefore
	case upTo >= rm.lastPos:
		startGroup = rm.group.ID
	default:
		last, err := rs.st.RoomEventsRange(roomID, 0, upTo, false, 1)
		if err != nil {
			return timeline{}, stateList{}, err
		}
		if len(last) > 0 {
			startGroup = last[0].StateAfter
		}
	}
	var state auth.State
	needed := full || (tl.Limited && len(rows) > 0)
	lazy := f.Room.State.LazyLoadMembers
	if needed || (lazy && len(rows) > 0) {
		if startGroup == rm.group.ID {
			state = rm.state
		} else if startGroup >= 0 {
			if state, err = rs.stateAt(startGroup, rm.version); err != nil {
				return timeline{}, stateList{}, err
			}
		}
	}
	out := auth.State{}
	if full {
		for k, e := range state {
			out[k] = e
		}
	} else if needed {
		// Only what changed in the gap between the token and the timeline.
		gapEnd := upTo
		if len(rows) > 0 {
			gapEnd = rows[0].Pos - 1
		}
		changed, err := rs.st.RoomStateEventsRange(roomID, after, gapEnd)
		if err != nil {
			return timeline{}, stateList{}, err
		}
		for _, r := range changed {
			k := auth.StateKey{Type: r.Type, StateKey: *r.StateKey}
			if e := state[k]; e != nil {
				out[k] = e
			}
		}
	}
	if lazy {
		if full || needed {
			out = lazyMembers(out, rows, req.userID)
		}
		// Members of the timeline's senders, unless the timeline has them.
		inTimeline := map[string]bool{}
		for _, r := range rows {
			if r.Type == auth.TypeMember && r.StateKey != nil {
				inTimeline[*r.StateKey] = true
			}
		}
		for _, r := range rows {
			k := auth.StateKey{Type: auth.TypeMember, StateKey: r.Sender}
			if e := state[k]; e != nil && !inTimeline[r.Sender] {
				out[k] = e
			}
		}
	}
	st := stateList{Events: []*clientEvent{}}
	var keep []*clientEvent
	if len(out) > 0 {
		srows, err := rs.stateRows(out)
		if err != nil {
			return timeline{}, stateList{}, err
		}
		for _, r := range srows {
			if !f.Room.State.allowsRow(r) {
				continue
			}
			ce, err := rs.clientEvent(r, view)
			if err != nil {
				return timeline{}, stateList{}, err
			}
			keep = append(keep, ce)
		}
	}
	if keep != nil {
		st.Events = keep
	}
	return tl, st, nil
}

// timelineRows returns the newest limit events of (after, upTo] that the
// user may see (visibility.go) and does not ignore (ignore.go), oldest
// first; limited says whether more of those are left before them. after
// comes back raised to the first position the user may read (or to where
// the scan bound stopped, scanBudget, when it found none). A room
// closed to the user gives an M_FORBIDDEN error (isForbidden).
func (rs *roomsModule) timelineRows(roomID, userID string, ignored map[string]bool, after, upTo int64, limit int,
	f roomEventFilter) (rows []store.EventRow, limited bool, from int64, err error) {
	v, err := rs.userViewer(roomID, userID)
	if err != nil {
		return nil, false, after, err
	}
	after = max(after, v.from)
	scan := newScan(limit)
	if rows, err = rs.visibleRows(v, scan, ignored, after, upTo, false, limit+1, f); err != nil {
		return nil, false, after, err
	}
	if len(rows) > limit {
		limited = true
		rows = rows[:limit]
	} else if scan.stopped {
		// The scan bound stopped short of after: there may be more, and
		// with no rows the client pages back from where it stopped.
		limited = true
		if len(rows) == 0 {
			after = scan.resume
		}
	}
	slices.Reverse(rows)
	return rows, limited, after, nil
}

func (rs *roomsModule) syncJoined(req *syncRequest, roomID string, m store.Membership, since, sinceTyping, now int64, ad []any) (*joinedRoom, error) {
	rm, err := rs.room(roomID)
	if err != nil {
		return nil, err
	}
	initial := req.since == nil
	newlyJoined := !initial && m.Pos > since
	full := initial || newlyJoined || req.fullState
	jr := &joinedRoom{Ephemeral: eventList{Events: []any{}}, AccountData: eventList{Events: ad}}
	if jr.AccountData.Events == nil {
		jr.AccountData.Events = []any{}
	}
	hasNew := rm.lastPos > since
	if full || hasNew {
		if jr.Timeline, jr.State, err = rs.syncTimeline(req, roomID, since, now, full); err != nil {
			return nil, err
		}
	} else {
		jr.Timeline = timeline{Events: []*clientEvent{}, PrevBatch: streamToken{pos: since}.String()}
		jr.State = stateList{Events: []*clientEvent{}}
	}
	// Ephemeral: typing and receipts.
	if t := rs.typing[roomID]; t != nil && (initial || t.serial > sinceTyping) && (initial && len(t.users) > 0 || !initial) {
		if req.filter.Room.Ephemeral.allows("m.typing", "") {
			jr.Ephemeral.Events = append(jr.Ephemeral.Events, t.event())
		}
	}
	if rm.receiptPos > since && req.filter.Room.Ephemeral.allows("m.receipt", "") {
		receipts, err := rs.st.Receipts(roomID, since, now)
		if err != nil {
			return nil, err
		}
		if ev := receiptEvent(receipts, req.userID); ev != nil {
			jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
		}
	}
	if !full && len(jr.Timeline.Events) == 0 && len(jr.State.Events) == 0 &&
		len(jr.Ephemeral.Events) == 0 && len(jr.AccountData.Events) == 0 {
		return nil, nil
	}
	if jr.Unread, err = rs.unreadCounts(roomID, req.userID, now); err != nil {
		return nil, err
	}
	jr.Summary = rs.roomSummary(rm, req.userID)
	return jr, nil
}

// roomSummary is the room summary of a joined room. Spec: client-server-api
// GET /sync RoomSummary (heroes only when the room has no name or alias).
func (rs *roomsModule) roomSummary(rm *roomCache, userID string) map[string]any {
	joined, invited, heroes := rs.memberSummary(rm.id, userID)
	s := map[string]any{"m.joined_member_count": joined, "m.invited_member_count": invited}
	if rm.state[auth.StateKey{Type: "m.room.name"}] == nil && rm.state[auth.StateKey{Type: "m.room.canonical_alias"}] == nil {
		s["m.heroes"] = heroes
	}
	return s
}

// memberSummary counts a room's joined and invited members; heroes are
// up to five of them other than userID, sorted (never nil).
func (rs *roomsModule) memberSummary(roomID, userID string) (joined, invited int, heroes []string) {
	heroes = []string{}
	for u, m := range rs.members[roomID] {
		switch m.Membership {
		case auth.Join:
			joined++
		case auth.Invite:
			invited++
		default:
			continue
		}
		if u != userID {
			heroes = append(heroes, u)
		}
	}
	sort.Strings(heroes)
	return joined, invited, heroes[:min(len(heroes), 5)]
}

// syncInvited gives the stripped state of a room the user is invited to
// (or has knocked on), as of their membership event.
func (rs *roomsModule) syncInvited(roomID string, m store.Membership) (*invitedRoom, error) {
	if ri, err := rs.st.RemoteInvite(roomID, m.UserID); err == nil && ri.EventID == m.EventID {
		return rs.syncRemoteInvite(roomID, m)
	}
	rm, err := rs.room(roomID)
	if err != nil {
		return nil, err
	}
	row, err := rs.st.Event(m.EventID)
	if err != nil {
		return nil, err
	}
	state, err := rs.stateAt(row.StateAfter, rm.version)
	if err != nil {
		return nil, err
	}
	ir := &invitedRoom{InviteState: eventList{Events: []any{}}}
	keys := make([]auth.StateKey, 0, len(strippedStateTypes)+1)
	for _, t := range strippedStateTypes {
		keys = append(keys, auth.StateKey{Type: t})
	}
	keys = append(keys, auth.StateKey{Type: auth.TypeMember, StateKey: m.UserID})
	for _, k := range keys {
		e := state[k]
		if e == nil {
			continue
		}
		sk, _ := e.StateKey()
		ir.InviteState.Events = append(ir.InviteState.Events, strippedEvent{
			Content: e.Content(), Sender: e.Sender(), StateKey: sk, Type: e.Type()})
	}
	return ir, nil
}

func (rs *roomsModule) syncLeft(req *syncRequest, roomID string, m store.Membership, since int64, ad []any) (*leftRoom, error) {
	lr := &leftRoom{AccountData: eventList{Events: ad}}
	if lr.AccountData.Events == nil {
		lr.AccountData.Events = []any{}
	}
	// A rejected invite (or a ban before joining) shows only the
	// membership event: the user never saw the room.
	leave, err := rs.st.Event(m.EventID)
	if err != nil {
		return nil, err
	}
	wasJoined := false
	if leave.ReplacesState != "" {
		if prev, err := rs.st.Event(leave.ReplacesState); err == nil {
			var pc struct {
				Content struct {
					Membership string `json:"membership"`
				} `json:"content"`
			}
			_ = json.Unmarshal(prev.JSON, &pc)
			wasJoined = pc.Content.Membership == auth.Join
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	if !wasJoined {
		view := eventView{userID: req.userID, deviceID: req.deviceID, now: rs.n.Now().UnixMilli()}
		ce, err := rs.clientEvent(leave, view)
		if err != nil {
			return nil, err
		}
		lr.Timeline = timeline{Events: []*clientEvent{ce}, PrevBatch: streamToken{pos: leave.Pos - 1}.String()}
		lr.State = stateList{Events: []*clientEvent{}}
		return lr, nil
	}
	if lr.Timeline, lr.State, err = rs.syncTimeline(req, roomID, since, m.Pos, req.since == nil || req.fullState); err != nil {
		return nil, err
	}
	return lr, nil
}

// unreadState is the cached unread count of one user in one room: the
// counts of the events in (readPos, countedTo].
type unreadState struct {
	readPos, countedTo int64
	counts             unreadCounts
}

type unreadKey struct{ roomID, userID string }

// unreadCounts counts the events after the user's read receipt that the
// user's push rules notify for (and, of those, the ones that highlight),
// leaving out those of users the user ignores (ignore.go),
// incrementally: each call only looks at the events since the previous
// one. A new receipt or membership drops the cached state.
// NOTSPEC: conditions are evaluated against the room's current state (member
// count, display name, power levels), not the state at each event, and at
// most maxUnreadScan events are counted when the counting starts.
func (rs *roomsModule) unreadCounts(roomID, userID string, now int64) (unreadCounts, error) {
	key := unreadKey{roomID, userID}
	u := rs.unread[key]
	var rows []store.EventRow
	var err error
	if u == nil {
		var readPos int64
		if readPos, err = rs.st.UserReadPos(roomID, userID); err != nil {
			return unreadCounts{}, err
		}
		if own := rs.members[roomID][userID]; own.Membership == auth.Join && readPos < own.Pos {
			readPos = own.Pos // nothing before joining is unread
		}
		u = &unreadState{readPos: readPos, countedTo: readPos}
		rows, err = rs.st.RoomEventsRange(roomID, readPos, now, false, maxUnreadScan)
		rs.unread[key] = u
	} else if now > u.countedTo {
		rows, err = rs.st.RoomEventsRange(roomID, u.countedTo, now, true, 0)
	}
	if err != nil {
		delete(rs.unread, key)
		return unreadCounts{}, err
	}
	u.countedTo = max(u.countedTo, now)
	if len(rows) == 0 {
		return u.counts, nil
	}
	rules, err := rs.cachedPushRules(userID)
	if err != nil {
		return unreadCounts{}, err
	}
	rm, err := rs.room(roomID)
	if err != nil {
		return unreadCounts{}, err
	}
	pc := rs.pushContextFor(rm, userID)
	ignored, err := rs.ignoredUsers(userID)
	if err != nil {
		return unreadCounts{}, err
	}
	for _, r := range rows {
		if r.Sender == userID || r.RedactedBy != "" || hiddenByIgnore(ignored, r) {
			continue
		}
		var ev map[string]any
		if json.Unmarshal(r.JSON, &ev) != nil {
			continue
		}
		pc.senderPower = auth.PowerLevel(rm.state, r.Sender)
		o := evalPushRules(rules, ev, pc, &rs.globs)
		if o.notify {
			u.counts.Notification++
		}
		if o.highlight {
			u.counts.Highlight++
		}
	}
	return u.counts, nil
}

// pushContextFor gathers what push conditions need from a room's state.
func (rs *roomsModule) pushContextFor(rm *roomCache, userID string) *pushContext {
	pc := &pushContext{userID: userID, memberCount: len(rs.joinedMembers(rm.id)), notifyLevels: map[string]int64{}}
	if m := rm.state[auth.StateKey{Type: auth.TypeMember, StateKey: userID}]; m != nil {
		var c struct {
			DisplayName string `json:"displayname"`
		}
		_ = json.Unmarshal(m.Content(), &c)
		pc.displayName = c.DisplayName
	}
	if pl := rm.state[auth.StateKey{Type: auth.TypePowerLevels}]; pl != nil {
		var c struct {
			Notifications map[string]int64 `json:"notifications"`
		}
		_ = json.Unmarshal(pl.Content(), &c)
		for k, v := range c.Notifications {
			pc.notifyLevels[k] = v
		}
	}
	return pc
}

// cachedPushRules returns the user's push rules, cached until they change.
func (rs *roomsModule) cachedPushRules(userID string) (*pushRules, error) {
	if r := rs.pushCache[userID]; r != nil {
		return r, nil
	}
	r, err := rs.pushRulesOf(userID)
	if err != nil {
		return nil, err
	}
	if len(rs.pushCache) >= maxPushCache {
		clear(rs.pushCache)
	}
	rs.pushCache[userID] = r
	return r, nil
}

// maxPushCache bounds the per-user push rule cache.
const maxPushCache = 10000

// maxAccountDataCache bounds the adLast map; past it, it is emptied.
const maxAccountDataCache = 100000

// maxUnreadScan bounds how many events an unread count starts from.
const maxUnreadScan = 500
