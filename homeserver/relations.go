package homeserver

// Relations between events and their bundled aggregations. Spec:
// client-server-api "Forming relationships between events", "Aggregations
// of child events", "Relationships API" (GET /_matrix/client/v1/rooms/
// {roomId}/relations/{eventId}[/{relType}[/{eventType}]]), and the
// server behaviour of "Threading", "Event replacements" and "Reference
// relations".
//
// The store indexes content."m.relates_to" of every event it stores
// (store.Relations); redacting a child drops its relation. Children are
// paged like /messages (the same tokens), newest first unless dir=f, and
// only the ones the caller may see are returned (visibility.go).
//
// Bundles: every event formatted by clientEvents (unless its view sets
// noBundles) gets unsigned["m.relations"] with
//   - m.thread: {latest_event, count, current_user_participated}, count
//     being the thread events the caller may see and does not ignore;
//   - m.replace: the most recent valid edit (same sender and type, not a
//     state event, the original not an edit itself, m.new_content present
//     unless encrypted; newest by origin_server_ts then event_id), left
//     out when the original is redacted;
//   - m.reference: {chunk: [{event_id}]}, at most maxBundledReferences.
//
// A bundle reads a bounded number of child rows per parent (maxEditRows,
// maxReferenceRows), however many children the event has.
//
// m.annotation is not aggregated ("Server-side aggregation of
// m.annotation relationships"); state events get no bundle. A page costs
// one indexed query when none of its events has children; with children,
// three for its threads and one per edited or referenced event.
//
// Events of users the caller ignores (ignore.go) are left out of the
// pages and of the bundles.
//
// /sync adds bundles to limited timelines and to those of an initial
// sync, a new join or full_state, never to an incremental timeline
// without a gap (sync.go, eventView.noBundles).
//
// NOTSPEC: a thread whose newest event the caller may not see, or whose
// sender the caller ignores, gets no m.thread bundle.

import (
	"encoding/json"
	"errors"
	"math"
	"slices"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Limits of GET /relations: default and largest page.
const (
	defaultRelationsLimit = 5
	maxRelationsLimit     = 100
)

// Bounds of a bundle, so that an event with thousands of children (sent
// by any member or remote server) costs every page showing it the same as
// one with a few:
//   - maxEditRows: the newest edits by the original's sender read to find
//     a valid, visible one;
//   - maxBundledReferences: the references listed in m.reference.chunk,
//     oldest first; NOTSPEC: the spec bundles them all, the full list is
//     GET /relations/{eventId}/m.reference;
//   - maxReferenceRows: the references read to find those.
const (
	maxEditRows          = 20
	maxBundledReferences = 50
	maxReferenceRows     = 2 * maxBundledReferences
)

// maxThreadCountGroups is how many state groups of a thread
// visibleThreadCounts checks.
const maxThreadCountGroups = 50

// relationRoutes is the route group of relations, threads and search. It
// uses the rooms module, so it comes after roomRoutes.
func relationRoutes(n *Node) ([]Route, error) {
	rs := roomsOf(n)
	if rs == nil {
		return nil, nil
	}
	const base = "/_matrix/client/v1/rooms/{roomId}"
	// The relations endpoints are deliberately not rate limited (spec).
	return []Route{
		{Method: "GET", Pattern: base + "/relations/{eventId}", Auth: AuthUser, Unlimited: true, Handle: rs.handleRelations},
		{Method: "GET", Pattern: base + "/relations/{eventId}/{relType}", Auth: AuthUser, Unlimited: true, Handle: rs.handleRelations},
		{Method: "GET", Pattern: base + "/relations/{eventId}/{relType}/{eventType}", Auth: AuthUser, Unlimited: true, Handle: rs.handleRelations},
		{Method: "GET", Pattern: base + "/threads", Auth: AuthUser, Handle: rs.handleThreads},
		{Method: "POST", Pattern: "/_matrix/client/v3/search", Auth: AuthUser, Handle: rs.handleSearch},
	}, nil
}

// readableBy is the viewer of a local user for the endpoints of this
// file, threads.go and search.go: the one place they ask visibility.go.
func (rs *roomsModule) readableBy(roomID, userID string) (*viewer, error) {
	return rs.userViewer(roomID, userID)
}

// visiblePage reads, through cur, the rows fetch returns from (after,
// upTo], narrowed to what the viewer may read, keeping the ones it may
// see and ignored does not hide, until limit are found: newest first
// unless forward. fetch returns up to n rows in that order.
func visiblePage(v *viewer, cur *scanCursor, ignored map[string]bool, after, upTo int64, forward bool, limit int,
	fetch func(after, upTo int64, n int) ([]store.EventRow, error)) ([]store.EventRow, error) {
	after, upTo = max(after, v.from), min(upTo, v.upTo)
	return scanRows(cur, after, upTo, forward, limit, fetch, func(r store.EventRow) (bool, error) {
		if hiddenByIgnore(ignored, r) {
			return false, nil
		}
		return v.allows(r)
	})
}

// handleRelations serves GET /relations/{eventId}[/{relType}[/{eventType}]].
func (rs *roomsModule) handleRelations(c *Call) {
	roomID, parent := c.Req.Vars["roomId"], c.Req.Vars["eventId"]
	q := c.Req.Query
	forward, err := queryForward(c)
	if err != nil {
		c.Fail(err)
		return
	}
	limit, err := queryInt(c, "limit", defaultRelationsLimit)
	if err != nil {
		c.Fail(err)
		return
	}
	limit = min(max(limit, 1), maxRelationsLimit)
	depth := 1
	recurse := q.Get("recurse")
	switch recurse {
	case "", "false":
	case "true":
		depth = store.MaxRelationDepth
	default:
		c.Fail(Errorf(400, ErrCodeInvalidParam, "recurse must be true or false"))
		return
	}
	lo, hi := historyStart, int64(math.MaxInt64)
	var from streamToken
	if s := q.Get("from"); s != "" {
		if from, err = parsePageToken(s); err != nil {
			c.Fail(err)
			return
		}
		if forward {
			lo = from.pos
		} else {
			hi = from.pos
		}
	}
	if s := q.Get("to"); s != "" {
		to, err := parsePageToken(s)
		if err != nil {
			c.Fail(err)
			return
		}
		if forward {
			hi = to.pos
		} else {
			lo = to.pos
		}
	}
	// The parent must exist and be visible: 404 otherwise, also when the
	// whole room is closed to the caller (spec: "or the user does not have
	// permission to read this event").
	v, err := rs.readableBy(roomID, c.UserID)
	if apiErr := (*Error)(nil); errors.As(err, &apiErr) && apiErr.Status == 403 {
		err = Errorf(404, ErrCodeNotFound, "event %s not found", parent)
	}
	if err == nil {
		_, err = rs.visibleEventFor(v, parent)
	}
	if err != nil {
		c.Fail(err)
		return
	}
	rq := store.RelationsQuery{RoomID: roomID, Parent: parent, RelType: c.Req.Vars["relType"],
		EventType: c.Req.Vars["eventType"], Depth: depth, Forward: forward}
	ignored, err := rs.ignoredUsers(c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	scan := newScan(limit)
	rows, err := visiblePage(v, scan, ignored, lo, hi, forward, limit+1, func(after, upTo int64, n int) ([]store.EventRow, error) {
		rq.After, rq.UpTo, rq.Limit = after, upTo, n
		return rs.st.Relations(rq)
	})
	if err != nil {
		c.Fail(err)
		return
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	chunk, err := rs.clientEvents(rows, rs.viewFor(c, true))
	if err != nil {
		c.Fail(err)
		return
	}
	resp := map[string]any{"chunk": chunk}
	if more {
		last := rows[len(rows)-1].Pos
		if !forward {
			last--
		}
		resp["next_batch"] = streamToken{pos: last}.String()
	} else if scan.stopped {
		resp["next_batch"] = streamToken{pos: scan.resume}.String() // the scan bound: go on from where it stopped
	}
	if q.Get("from") != "" {
		resp["prev_batch"] = q.Get("from")
	}
	if recurse != "" {
		resp["recursion_depth"] = depth
	}
	c.Reply(200, resp)
}

// relatesTo reads the rel_type of a PDU's content."m.relates_to" ("" when
// it has none).
func relatesTo(raw []byte) string {
	var p struct {
		Content struct {
			RelatesTo struct {
				RelType any `json:"rel_type"`
			} `json:"m.relates_to"`
		} `json:"content"`
	}
	_ = json.Unmarshal(raw, &p)
	s, _ := p.Content.RelatesTo.RelType.(string)
	return s
}

// hasNewContent reports whether a PDU's content has an m.new_content
// object (what makes an m.replace valid).
func hasNewContent(raw []byte) bool {
	var p struct {
		Content struct {
			NewContent json.RawMessage `json:"m.new_content"`
		} `json:"content"`
	}
	_ = json.Unmarshal(raw, &p)
	return len(p.Content.NewContent) > 0 && p.Content.NewContent[0] == '{'
}

// bundleRelations adds the bundled aggregations of rows to evs (the same
// events, formatted).
func (rs *roomsModule) bundleRelations(rows []store.EventRow, evs []*clientEvent, view eventView) error {
	return rs.bundle(rows, evs, view, true)
}

// bundle is bundleRelations; withThreads is false for the events nested
// in a bundle (a thread's latest event), which cannot be thread roots.
func (rs *roomsModule) bundle(rows []store.EventRow, evs []*clientEvent, view eventView, withThreads bool) error {
	if view.userID == "" {
		return nil
	}
	var rooms []string
	byRoom := map[string][]int{}
	for i, r := range rows {
		if r.StateKey != nil || r.Outlier {
			continue
		}
		if byRoom[r.RoomID] == nil {
			rooms = append(rooms, r.RoomID)
		}
		byRoom[r.RoomID] = append(byRoom[r.RoomID], i)
	}
	for _, roomID := range rooms {
		if err := rs.bundleRoom(roomID, rows, evs, byRoom[roomID], view, withThreads); err != nil {
			return err
		}
	}
	return nil
}

// bundleRoom bundles the events at idx, all of one room.
func (rs *roomsModule) bundleRoom(roomID string, rows []store.EventRow, evs []*clientEvent, idx []int,
	view eventView, withThreads bool) error {
	ids := make([]string, len(idx))
	for j, i := range idx {
		ids[j] = rows[i].EventID
	}
	kinds, err := rs.st.RelationKinds(roomID, ids)
	if err != nil || len(kinds) == 0 {
		return err
	}
	v, err := rs.readableBy(roomID, view.userID)
	if apiErr := (*Error)(nil); errors.As(err, &apiErr) {
		return nil // a room the user cannot read gets no bundles
	}
	if err != nil {
		return err
	}
	ignored, err := rs.ignoredUsers(view.userID)
	if err != nil {
		return err
	}
	var roots, parents []string
	for _, id := range ids {
		for _, k := range kinds[id] {
			switch {
			case k == store.RelThread && withThreads:
				roots = append(roots, id)
			case k == store.RelReplace || k == store.RelReference:
				if !slices.Contains(parents, id) {
					parents = append(parents, id)
				}
			}
		}
	}
	bundles := map[string]map[string]any{}
	add := func(id, relType string, agg any) {
		if bundles[id] == nil {
			bundles[id] = map[string]any{}
		}
		bundles[id][relType] = agg
	}
	if len(roots) > 0 {
		sums, err := rs.st.ThreadSummaries(roomID, roots, v.upTo, view.userID)
		if err != nil {
			return err
		}
		var latest []store.EventRow
		var of []string
		for _, id := range roots {
			if ts, ok := sums[id]; ok && !hiddenByIgnore(ignored, ts.Latest) {
				if ok, err := v.allows(ts.Latest); err != nil {
					return err
				} else if ok {
					latest, of = append(latest, ts.Latest), append(of, id)
				}
			}
		}
		latestEvs := make([]*clientEvent, len(latest))
		for i, r := range latest {
			if latestEvs[i], err = rs.formatEvent(r, view); err != nil {
				return err
			}
		}
		if err := rs.bundle(latest, latestEvs, view, false); err != nil {
			return err
		}
		counts, err := rs.visibleThreadCounts(v, roomID, of, ignored)
		if err != nil {
			return err
		}
		for i, id := range of {
			ts := sums[id]
			add(id, store.RelThread, map[string]any{"latest_event": latestEvs[i], "count": counts[id],
				"current_user_participated": ts.Participated || rowByID(rows, id).Sender == view.userID})
		}
	}
	for _, id := range parents {
		kinds := kinds[id]
		if slices.Contains(kinds, store.RelReplace) {
			e, ok, err := rs.latestEdit(v, ignored, rowByID(rows, id))
			if err != nil {
				return err
			}
			if ok {
				ce, err := rs.formatEvent(e, view)
				if err != nil {
					return err
				}
				add(id, store.RelReplace, ce)
			}
		}
		if slices.Contains(kinds, store.RelReference) {
			refs, err := rs.st.Children(store.ChildQuery{RoomID: roomID, Parent: id, RelType: store.RelReference,
				UpTo: v.upTo, Limit: maxReferenceRows})
			if err != nil {
				return err
			}
			var chunk []map[string]string
			for _, ref := range refs {
				if hiddenByIgnore(ignored, ref) {
					continue
				}
				if ok, err := v.allows(ref); err != nil {
					return err
				} else if ok {
					chunk = append(chunk, map[string]string{"event_id": ref.EventID})
					if len(chunk) == maxBundledReferences {
						break
					}
				}
			}
			if len(chunk) > 0 {
				add(id, store.RelReference, map[string]any{"chunk": chunk})
			}
		}
	}
	for _, i := range idx {
		if b := bundles[rows[i].EventID]; b != nil && evs[i].Unsigned != nil {
			evs[i].Unsigned.Relations = b
		}
	}
	return nil
}

// visibleThreadCounts is the count of each thread's bundle: its events
// the viewer may see and ignored does not hide. The events are counted by
// state group in the store (store.ThreadGroupCounts), then each group is
// put to the visibility rules once, so a long thread costs one query and
// a lookup per state group, not a row per event.
//
// NOTSPEC: only the maxThreadCountGroups newest state groups of a thread
// are checked; its older events are counted unchecked, so a thread
// spanning more state changes than that may count a few events its
// reader cannot see (a number, never their content). Thread events that
// are state events are checked as messages are.
func (rs *roomsModule) visibleThreadCounts(v *viewer, roomID string, roots []string, ignored map[string]bool) (map[string]int, error) {
	last, err := v.lastJoinPos()
	if err != nil {
		return nil, err
	}
	ign := make([]string, 0, len(ignored))
	for u := range ignored {
		ign = append(ign, u)
	}
	groups, err := rs.st.ThreadGroupCounts(roomID, roots, v.from, v.upTo, last, ign, maxThreadCountGroups)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	checked := map[string]int{}
	for _, c := range groups {
		if _, ok := checked[c.Root]; !ok {
			out[c.Root] = c.Total // the unchecked rest, less what is checked below
		}
		checked[c.Root] += c.Below + c.Rest
		out[c.Root] -= c.Below + c.Rest
		g, err := v.group(c.StateBefore)
		if err != nil {
			return nil, err
		}
		for _, part := range []struct {
			n   int
			pos int64
		}{{c.Below, c.Lo}, {c.Rest, c.Hi}} {
			if part.n == 0 {
				continue
			}
			if ok, err := v.rule(part.pos, g); err != nil {
				return nil, err
			} else if ok {
				out[c.Root] += part.n
			}
		}
	}
	return out, nil
}

// latestEdit is the m.replace bundle of orig: the most recent valid edit
// the caller may see. Only edits by orig's sender can be valid, so only
// those are read, newest first, and at most maxEditRows of them: an
// original with a long run of invalid or hidden edits on top gets no
// bundle rather than a scan of all of them.
func (rs *roomsModule) latestEdit(v *viewer, ignored map[string]bool, orig store.EventRow) (store.EventRow, bool, error) {
	if orig.EventID == "" || orig.RedactedBy != "" || hiddenByIgnore(ignored, orig) {
		return store.EventRow{}, false, nil
	}
	edits, err := rs.st.Children(store.ChildQuery{RoomID: orig.RoomID, Parent: orig.EventID, RelType: store.RelReplace,
		Sender: orig.Sender, UpTo: v.upTo, Newest: true, Limit: maxEditRows})
	if err != nil {
		return store.EventRow{}, false, err
	}
	for _, e := range edits {
		if !validEdit(orig, e) {
			continue
		}
		if ok, err := v.allows(e); err != nil {
			return store.EventRow{}, false, err
		} else if ok {
			return e, true, nil
		}
	}
	return store.EventRow{}, false, nil
}

// rowByID finds an event among rows (the page being bundled).
func rowByID(rows []store.EventRow, id string) store.EventRow {
	for _, r := range rows {
		if r.EventID == id {
			return r
		}
	}
	return store.EventRow{}
}

// validEdit applies client-server-api "Validity of replacement events"
// to an edit of orig, and "If the original event is redacted, any
// m.replace relationship should not be bundled with it".
func validEdit(orig, edit store.EventRow) bool {
	switch {
	case orig.RedactedBy != "" || orig.Sender != edit.Sender || orig.Type != edit.Type:
		return false
	case orig.StateKey != nil || edit.StateKey != nil:
		return false
	case relatesTo(orig.JSON) == store.RelReplace:
		return false
	case edit.Type != "m.room.encrypted" && !hasNewContent(edit.JSON):
		return false
	}
	return true
}
