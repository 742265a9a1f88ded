package homeserver

// Storing checked events (fedroom_receive.go runs the checks): timeline
// events get the next stream position, state groups before and after them
// (shared with the prev event or the current state when equal, else stored
// as deltas), DAG edges, the room's new forward extremities and current
// state (resolved with state resolution v2 when the extremities fork), and
// the membership changes that state implies. Outliers (auth chains, fetched
// state, soft-failed events) get negative positions and stay out of every
// timeline; their state is recorded as unknown (-1) unless it is known.
// Spec: server-server-api "Room State Resolution", "Soft failure".

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sort"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// storeOutlier stores one checked event outside the timeline. before is
// the state before it when known (a soft-failed event), else nil.
func (fr *fedRooms) storeOutlier(ev *event.Event, before store.StateMap) error {
	rs := fr.rs
	fr.negPos--
	pos := fr.negPos
	sk, isState := ev.StateKey()
	row := store.EventRow{Pos: pos, EventID: ev.ID(), RoomID: ev.RoomID(), Type: ev.Type(), Sender: ev.Sender(),
		Depth: ev.Depth(), OriginServerTS: ev.OriginServerTS(), StateBefore: -1, StateAfter: -1,
		JSON: ev.JSON(), Outlier: true}
	if isState {
		row.StateKey = strPtr(sk)
	}
	return rs.st.RoomTx(func(t *store.RoomTx) error {
		if before != nil {
			g, err := t.InsertStateGroup(ev.RoomID(), store.StateGroup{}, nil, before)
			if err != nil {
				return err
			}
			row.StateBefore, row.StateAfter = g.ID, g.ID
			if isState {
				after := maps.Clone(before)
				after[store.StateKey{Type: ev.Type(), StateKey: sk}] = ev.ID()
				ga, err := t.InsertStateGroup(ev.RoomID(), g, before, after)
				if err != nil {
					return err
				}
				row.StateAfter = ga.ID
			}
		}
		return t.InsertEvent(row, ev.PrevEvents())
	})
}

// storeTimeline stores an accepted event in the timeline: its state groups,
// the DAG edges, the new forward extremities and the room's new current
// state (resolved when the extremities fork), membership changes and a
// redaction it applies; local clients are woken.
func (fr *fedRooms) storeTimeline(rm *roomCache, ev *event.Event, before store.StateMap) error {
	return fr.storeTimelineAt(rm, ev, before, false)
}

// storeTimelineAt is storeTimeline; reset makes ev the room's only forward
// extremity (our own join through send_join: the resident server's view of
// the room replaces whatever we had).
func (fr *fedRooms) storeTimelineAt(rm *roomCache, ev *event.Event, before store.StateMap, reset bool) error {
	rs := fr.rs
	v := ev.Version()
	after := before
	sk, isState := ev.StateKey()
	key := store.StateKey{Type: ev.Type(), StateKey: sk}
	if isState {
		after = maps.Clone(before)
		after[key] = ev.ID()
	}
	succ, err := rs.st.Successors(ev.ID())
	if err != nil {
		return err
	}
	ext := make([]string, 0, len(rm.extremities)+1)
	for _, e := range rm.extremities {
		if !slices.Contains(ev.PrevEvents(), e) {
			ext = append(ext, e)
		}
	}
	if len(succ) == 0 {
		ext = append(ext, ev.ID())
	}
	if reset {
		succ, ext = nil, []string{ev.ID()}
	}
	sort.Strings(ext)
	// The new current state.
	current := rm.stateIDs
	changed := false
	switch {
	case len(succ) > 0:
		// An old event filling a gap: the current state stays.
	case len(ext) == 1:
		current, changed = after, true
	default:
		sets := []store.StateMap{after}
		for _, e := range ext {
			if e == ev.ID() {
				continue
			}
			st, ok, err := fr.stateAfterEvent(e)
			if err != nil {
				return err
			}
			if ok {
				sets = append(sets, st)
			}
		}
		if current, err = fr.resolve(v, sets, ev); err != nil {
			return err
		}
		changed = true
	}
	var prevRow store.EventRow
	if prevs := ev.PrevEvents(); len(prevs) == 1 && !(maps.Equal(before, rm.stateIDs) && rm.group.ID > 0) {
		if prevRow, err = rs.st.Event(prevs[0]); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	var prevAfter store.StateMap
	var prevGroup store.StateGroup
	if prevRow.StateAfter > 0 {
		if prevAfter, prevGroup, err = rs.st.LoadStateGroup(prevRow.StateAfter); err != nil {
			return err
		}
	}
	var ev2 *event.Event = ev
	var newGroup store.StateGroup
	err = rs.write(func(b *roomBatch) error {
		b.touched[rm.id] = rm
		pos := b.pos + 1
		// The group before: the prev event's when equal, else a new one
		// stored as a delta against the current state.
		var gBefore store.StateGroup
		if maps.Equal(rm.stateIDs, before) && rm.group.ID > 0 {
			gBefore = rm.group
		} else if prevRow.StateAfter > 0 && maps.Equal(prevAfter, before) {
			gBefore = prevGroup
		} else if len(before) > 0 {
			if gBefore, err = b.t.InsertStateGroup(rm.id, rm.group, rm.stateIDs, before); err != nil {
				return err
			}
		}
		gAfter := gBefore
		row := store.EventRow{Pos: pos, EventID: ev2.ID(), RoomID: rm.id, Type: ev2.Type(), Sender: ev2.Sender(),
			Depth: ev2.Depth(), OriginServerTS: ev2.OriginServerTS(), StateBefore: gBefore.ID, JSON: ev2.JSON()}
		if isState {
			row.StateKey = strPtr(sk)
			row.ReplacesState = before[key]
			if gAfter, err = b.t.InsertStateGroup(rm.id, gBefore, before, after); err != nil {
				return err
			}
		}
		row.StateAfter = gAfter.ID
		if err := b.t.InsertEvent(row, ev2.PrevEvents()); err != nil {
			return err
		}
		if err := b.t.SetForwardExtremities(rm.id, ext); err != nil {
			return err
		}
		if changed {
			g := gAfter
			if maps.Equal(current, rm.stateIDs) && rm.group.ID > 0 {
				g = rm.group
			} else if !maps.Equal(current, after) {
				if g, err = b.t.InsertStateGroup(rm.id, rm.group, rm.stateIDs, current); err != nil {
					return err
				}
			}
			if err := b.t.SetCurrentState(rm.id, g.ID); err != nil {
				return err
			}
			newGroup = g
			if err := b.memberChanges(rm, current, pos); err != nil {
				return err
			}
		}
		if target := ev2.Redacts(); target != "" {
			if err := b.applyRedaction(rm, ev2, target); err != nil && !isForbidden(err) {
				return err
			}
		}
		b.pos = pos
		b.rooms[rm.id] = true
		// The cache must be current before the batch wakes long polls,
		// or they would see no new event in the room.
		b.committed = append(b.committed, func() {
			// The common case, an event on top of the current state:
			// update the cached room in place. Otherwise it is reloaded
			// on next use.
			if cached := rs.byID[rm.id]; cached == rm && !reset && len(succ) == 0 && len(ext) == 1 && maps.Equal(before, rm.stateIDs) {
				rm.extremities, rm.depth = ext, ev.Depth()
				rm.lastPos = rs.pos
				if isState {
					rm.stateIDs, rm.group = after, newGroup
					rm.state[auth.StateKey{Type: ev.Type(), StateKey: sk}] = ev
				}
				return
			}
			// Otherwise the room is reloaded on next use, once the long
			// polls have seen that it has a new event (the join through
			// send_join still uses this cache until then).
			rm.lastPos = rs.pos
			b.woken = append(b.woken, func() { delete(rs.byID, rm.id) })
		})
		return nil
	})
	return err
}

// memberChanges records the memberships that differ between the room's
// cached current state and the new one.
func (b *roomBatch) memberChanges(rm *roomCache, current store.StateMap, pos int64) error {
	for k, id := range current {
		if k.Type != auth.TypeMember || rm.stateIDs[k] == id {
			continue
		}
		row, err := b.t.Event(id)
		if err != nil {
			return err
		}
		var c struct {
			Membership string `json:"membership"`
		}
		ev, err := parseRow(row, rm.version)
		if err != nil {
			return err
		}
		if json.Unmarshal(ev.Content(), &c) != nil || c.Membership == "" {
			continue
		}
		m := store.Membership{RoomID: rm.id, UserID: k.StateKey, Membership: c.Membership, EventID: id, Pos: pos}
		if err := b.t.SetMembership(m); err != nil {
			return err
		}
		if c.Membership != auth.Invite {
			if err := b.t.DeleteRemoteInvite(rm.id, k.StateKey); err != nil {
				return err
			}
		}
		b.members = append(b.members, m)
		b.wake[k.StateKey] = true
	}
	return nil
}
