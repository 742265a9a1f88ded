package homeserver

// History visibility, event by event. Spec: client-server-api "Room
// History Visibility" (server behaviour). Whether a viewer may see an
// event depends on the room's state *at that event* (the state just
// before it, events.state_before):
//
//  1. history_visibility world_readable: allow;
//  2. the viewer's membership was join: allow;
//  3. shared, and the viewer joined at any point after the event: allow;
//  4. invited, and the viewer's membership was invite: allow;
//  5. otherwise deny.
//
// A missing or unknown history_visibility counts as shared. The event
// itself counts too: an m.room.history_visibility event is visible when
// the visibility before *or* after it allows it, and so is a change of the
// viewer's own membership when the membership before or after it does
// (the viewer sees its own join in a "joined" room, and its own leave).
// Beyond the spec, and as Synapse does, the viewer's own membership change
// away from an invite (a rejection) is visible too, so a client sees why
// the room went away.
//
// A viewer is a local user (client-server API) or another server: a
// server sees an event when one of its users would, taking the best
// membership among its users at the event (join over invite) and, for
// rule 3, the last time any of them joined. Spec: server-server-api
// "Backfilling and retrieving missing events", "Retrieving events".
//
// On top of the rules, a user who left (or was banned) sees nothing sent
// after their leave ("After a user has left a room, they may see any
// events which they were allowed to see before they left the room, but no
// events received after they left"); a user who left, unlike a banned one,
// still sees world_readable events while the room is world readable now.
//
// Cost: the decision needs the visibility and the viewer's membership in
// the event's state group. State groups are shared by every event between
// two state changes, so one viewer caches them per group for the request;
// the current group is read from the loaded room, so a timeline without
// state changes costs nothing extra. Other groups cost one indexed query
// (store.StateGroupLookup) and, for contents not yet seen, one event read.
// Rule 3 needs the viewer's last join only when it is not joined now.

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// The values of m.room.history_visibility. Spec: client-server-api
// m.room.history_visibility.
const (
	visWorldReadable = "world_readable"
	visShared        = "shared"
	visInvited       = "invited"
	visJoined        = "joined"
)

const typeHistoryVisibility = "m.room.history_visibility"

// historyVisibility reads an m.room.history_visibility content; missing or
// unknown values are shared.
func historyVisibility(content json.RawMessage) string {
	var c struct {
		V string `json:"history_visibility"`
	}
	_ = json.Unmarshal(content, &c)
	switch c.V {
	case visWorldReadable, visInvited, visJoined:
		return c.V
	}
	return visShared
}

// memberRank orders memberships by what they let a viewer see.
func memberRank(m string) int {
	switch m {
	case auth.Join:
		return 2
	case auth.Invite:
		return 1
	}
	return 0
}

// groupView is what a viewer's decision needs of one state group.
type groupView struct {
	vis    string
	member string // the best membership among the viewer's users
}

// viewer decides which events of one room one user or server may see.
// It caches per state group and lives for one request (node loop only).
type viewer struct {
	rs    *roomsModule
	rm    *roomCache
	users map[string]bool // the users whose membership counts
	keys  []store.StateKey
	// joinedNow: one of the users is joined now, so rule 3 holds for
	// every shared event.
	joinedNow bool
	// from, upTo: the stream positions the viewer may read at most,
	// (from, upTo]. Events after upTo are hidden, world_readable ones too
	// when !wrAfterUpTo.
	from, upTo  int64
	wrAfterUpTo bool

	lastJoin    int64 // position of the users' last join (rule 3)
	lastJoinSet bool
	groups      map[int64]groupView
	values      map[string]string // event ID → its visibility or membership
}

func newViewer(rs *roomsModule, rm *roomCache, users []string) *viewer {
	v := &viewer{rs: rs, rm: rm, users: make(map[string]bool, len(users)), from: historyStart, upTo: math.MaxInt64}
	v.keys = make([]store.StateKey, 0, len(users)+1)
	v.keys = append(v.keys, store.StateKey{Type: typeHistoryVisibility})
	for _, u := range users {
		v.users[u] = true
		v.keys = append(v.keys, store.StateKey{Type: auth.TypeMember, StateKey: u})
		if e := rm.state[auth.StateKey{Type: auth.TypeMember, StateKey: u}]; e != nil && e.Membership() == auth.Join {
			v.joinedNow = true
		}
	}
	return v
}

// userViewer is the viewer of a local user, with the range of positions
// the user may read at all (visibleRange).
func (rs *roomsModule) userViewer(roomID, userID string) (*viewer, error) {
	from, upTo, err := rs.visibleRange(roomID, userID)
	if err != nil {
		return nil, err
	}
	rm, err := rs.room(roomID)
	if err != nil {
		return nil, err
	}
	v := newViewer(rs, rm, []string{userID})
	v.from, v.upTo = from, upTo
	v.wrAfterUpTo = rs.members[roomID][userID].Membership != auth.Ban
	return v, nil
}

// serverViewer is the viewer of another server: all of its users that
// have a membership in the room.
func (rs *roomsModule) serverViewer(rm *roomCache, server string) *viewer {
	var users []string
	for k := range rm.state {
		if k.Type == auth.TypeMember && serverOf(k.StateKey) == server {
			users = append(users, k.StateKey)
		}
	}
	v := newViewer(rs, rm, users)
	v.wrAfterUpTo = true
	return v
}

// allows reports whether the viewer may see the event.
func (v *viewer) allows(row store.EventRow) (bool, error) {
	if row.Pos <= v.from {
		return false, nil
	}
	g, err := v.group(row.StateBefore)
	if err != nil {
		return false, err
	}
	after := g
	own := false
	if sk := row.StateKey; sk != nil {
		switch {
		case row.Type == typeHistoryVisibility && *sk == "":
			after.vis = historyVisibility(contentOf(row.JSON))
		case row.Type == auth.TypeMember && v.users[*sk]:
			own = true
			var c struct {
				M string `json:"membership"`
			}
			_ = json.Unmarshal(contentOf(row.JSON), &c)
			if memberRank(c.M) > memberRank(after.member) {
				after.member = c.M
			}
		}
	}
	if own && row.Pos <= v.upTo && (g.member == auth.Join || g.member == auth.Invite || after.member == auth.Join) {
		return true, nil
	}
	if ok, err := v.rule(row.Pos, g); ok || err != nil {
		return ok, err
	}
	if after != g {
		return v.rule(row.Pos, after)
	}
	return false, nil
}

// rule applies the spec's rules to an event at pos whose state is g.
func (v *viewer) rule(pos int64, g groupView) (bool, error) {
	if pos > v.upTo {
		return g.vis == visWorldReadable && v.wrAfterUpTo, nil
	}
	switch {
	case g.vis == visWorldReadable || g.member == auth.Join:
		return true, nil
	case g.vis == visInvited && g.member == auth.Invite:
		return true, nil
	case g.vis == visShared:
		last, err := v.lastJoinPos()
		return pos < last, err
	}
	return false, nil
}

// lastJoinPos is the stream position of the users' last join event
// (MaxInt64 while one is joined; historyStart when none ever was).
func (v *viewer) lastJoinPos() (int64, error) {
	if v.joinedNow {
		return math.MaxInt64, nil
	}
	if v.lastJoinSet {
		return v.lastJoin, nil
	}
	users := make([]string, 0, len(v.users))
	for u := range v.users {
		users = append(users, u)
	}
	v.lastJoin, v.lastJoinSet = historyStart, true
	if len(users) == 0 {
		return v.lastJoin, nil
	}
	rows, err := v.rs.st.MemberEvents(v.rm.id, users)
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		var c struct {
			M string `json:"membership"`
		}
		_ = json.Unmarshal(contentOf(r.JSON), &c)
		if c.M == auth.Join && r.Pos > v.lastJoin {
			v.lastJoin = r.Pos
		}
	}
	return v.lastJoin, nil
}

// group returns the view of a state group. The state of an event whose
// state is unknown (an outlier, group < 0) is taken to be the current
// state; group 0 is the empty state before the create event.
func (v *viewer) group(id int64) (groupView, error) {
	if id < 0 {
		id = v.rm.group.ID
	}
	if g, ok := v.groups[id]; ok {
		return g, nil
	}
	g := groupView{vis: visShared}
	if id == v.rm.group.ID {
		for _, k := range v.keys {
			e := v.rm.state[auth.StateKey{Type: k.Type, StateKey: k.StateKey}]
			switch {
			case e == nil:
			case k.Type == typeHistoryVisibility:
				g.vis = historyVisibility(e.Content())
			case memberRank(e.Membership()) > memberRank(g.member):
				g.member = e.Membership()
			}
		}
	} else if id > 0 {
		ids, err := v.rs.st.StateGroupLookup(id, v.keys)
		if err != nil {
			return groupView{}, err
		}
		if err := v.loadValues(ids); err != nil {
			return groupView{}, err
		}
		for k, eid := range ids {
			val, ok := v.values[eid]
			switch {
			case !ok:
			case k.Type == typeHistoryVisibility:
				g.vis = val
			case memberRank(val) > memberRank(g.member):
				g.member = val
			}
		}
	}
	if v.groups == nil {
		v.groups = map[int64]groupView{}
	}
	v.groups[id] = g
	return g, nil
}

// loadValues reads the visibility or membership of the state events not
// read yet.
func (v *viewer) loadValues(ids store.StateMap) error {
	var need []string
	for _, eid := range ids {
		if _, ok := v.values[eid]; !ok {
			need = append(need, eid)
		}
	}
	if len(need) == 0 {
		return nil
	}
	if v.values == nil {
		v.values = map[string]string{}
	}
	rows, err := v.rs.st.Events(need)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r.Type == typeHistoryVisibility {
			v.values[r.EventID] = historyVisibility(contentOf(r.JSON))
			continue
		}
		var c struct {
			M string `json:"membership"`
		}
		_ = json.Unmarshal(contentOf(r.JSON), &c)
		v.values[r.EventID] = c.M
	}
	return nil
}

// contentOf is a PDU's content object (nil when it has none).
func contentOf(raw []byte) json.RawMessage {
	var p struct {
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(raw, &p)
	return p.Content
}

// Scan bounds. Reading a page of visible events skips the ones the caller
// may not see (history visibility, ignored users, filters); a late joiner
// of a busy room may have a long run of those in front of them. One
// request reads at most scanBudget(limit) rows, then stops and hands the
// client a token for where it stopped: each page stays cheap for the node
// loop, and paging on still reaches everything.
const (
	minScanRows = 1000
	maxScanRows = 5000
)

// scanBudget is how many rows a request for limit events reads at most.
func scanBudget(limit int) int { return min(max(10*limit, minScanRows), maxScanRows) }

// scanCursor bounds the rows read by one request, across the scans it
// makes. The zero value reads nothing: make one with newScan.
type scanCursor struct {
	left int // rows it may still read
	// stopped: the budget ran out before the range did; resume is then the
	// edge of what was not read: the next upTo going backward, the next
	// after going forward (a page token's position either way).
	stopped bool
	resume  int64
}

// newScan is a cursor for a request returning limit events.
func newScan(limit int) *scanCursor { return &scanCursor{left: scanBudget(limit)} }

// scanRows reads the rows fetch returns from (after, upTo], newest first
// unless forward, keeping the ones keep accepts, until limit are kept,
// the range runs out or the cursor's budget does. fetch returns up to n
// rows in that order.
func scanRows(cur *scanCursor, after, upTo int64, forward bool, limit int,
	fetch func(after, upTo int64, n int) ([]store.EventRow, error),
	keep func(store.EventRow) (bool, error)) ([]store.EventRow, error) {
	var out []store.EventRow
	for limit > 0 && after < upTo {
		batch := min(max(limit*2, 50), cur.left)
		if batch <= 0 {
			cur.stopped = true
			if cur.resume = upTo; forward {
				cur.resume = after
			}
			return out, nil
		}
		rows, err := fetch(after, upTo, batch)
		if err != nil {
			return nil, err
		}
		for i, r := range rows {
			ok, err := keep(r)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, r)
				if len(out) == limit {
					cur.left -= i + 1
					return out, nil
				}
			}
		}
		cur.left -= len(rows)
		if len(rows) < batch {
			break
		}
		if last := rows[len(rows)-1].Pos; forward {
			after = last
		} else {
			upTo = last - 1
		}
	}
	return out, nil
}

// visibleRows returns up to limit events of a room with after < pos ≤
// upTo that pass the filter, that the viewer may see and that are not
// hidden by the viewer's ignore list (ignored, ignore.go), newest first
// unless forward, reading no more rows than cur allows.
func (rs *roomsModule) visibleRows(v *viewer, cur *scanCursor, ignored map[string]bool, after, upTo int64, forward bool, limit int,
	f roomEventFilter) ([]store.EventRow, error) {
	after, upTo = max(after, v.from), min(upTo, v.upTo)
	return scanRows(cur, after, upTo, forward, limit, func(after, upTo int64, n int) ([]store.EventRow, error) {
		return rs.st.RoomEventsRange(v.rm.id, after, upTo, forward, n)
	}, func(r store.EventRow) (bool, error) {
		if !f.allowsRow(r) || hiddenByIgnore(ignored, r) {
			return false, nil
		}
		return v.allows(r)
	})
}

// servedPDUs is rows as served to another server: whole when the viewer
// may see them, else redacted (the redaction algorithm of the room
// version), as Synapse and Dendrite serve them. Spec: server-server-api
// "Retrieving events", "Backfilling and retrieving missing events".
func (v *viewer) servedPDUs(rows []store.EventRow) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(rows))
	for _, r := range rows {
		ok, err := v.allows(r)
		if err != nil {
			return nil, err
		}
		raw := r.JSON
		if !ok {
			if raw, err = event.Redact(r.JSON, v.rm.version); err != nil {
				return nil, fmt.Errorf("serve %s: %w", r.EventID, err)
			}
		}
		out = append(out, json.RawMessage(raw))
	}
	return out, nil
}
