package homeserver

// Backfill: when a user pages back (/messages, dir=b) past the oldest
// event this server has of a room it joined late, the node asks a server
// in the room for older events (GET /_matrix/federation/v1/backfill with
// the oldest event's prev_events) and adds them to the timeline below
// everything it had, with negative stream positions, older further down.
// Spec: server-server-api "Backfilling and retrieving missing events".
//
// Backfilled events pass the checks on receipt of steps 1–5: format,
// signatures, content hash, auth against their auth events, then, oldest
// first, auth against the state before them. That state is the state
// after their prev events (resolved when there are several): earlier
// events of the same batch, events already stored, or, at the bottom of
// the batch where the prev events are not known yet, the state the serving
// server reports before the event (/state_ids, then /state for what we
// lack). Each added event's state before and after is stored, so history
// is served to other servers like the rest; the room's current state is
// not changed by history, and soft failure (step 6) does not apply.
// A batch is added whole or not at all: when the state under one of its
// events cannot be learned, nothing is added (the events stay outliers),
// so the timeline never has a hole in the middle of history.

import (
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strconv"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// backfillBatch and backfillMax bound how many events one backfill asks
// for: at least the first, whatever the client's page size, and at most
// the second (Synapse asks for 100 too), so a deep history arrives in
// several batches as the client pages.
const (
	backfillBatch = 50
	backfillMax   = 100
)

// backfillFrom returns the events to backfill from: the prev_events of the
// room's oldest timeline event that are not in the timeline ("" when the
// history is complete: the oldest event is the create event).
func (fr *fedRooms) backfillFrom(roomID string) ([]string, error) {
	oldest, err := fr.rs.st.OldestRoomEvent(roomID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	if oldest.Type == auth.TypeCreate {
		return nil, nil
	}
	var out []string
	for _, p := range prevOf(oldest) {
		row, err := fr.rs.st.Event(p)
		if errors.Is(err, store.ErrNotFound) || (err == nil && row.Outlier && row.StateBefore < 0) {
			out = append(out, p)
		} else if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// backfillServers is how many servers one backfill asks at most.
const backfillServers = 5

// backfill fetches up to limit older events of a room from a server in it
// and adds them to the timeline. done reports whether any was added. When
// a server answers with nothing usable (an error, no events, events that
// fail the checks) the next server in the room is asked.
func (fr *fedRooms) backfill(roomID string, limit int, done func(added bool)) {
	fr.backfilling.do(roomID, done, func(finish func(bool)) { fr.backfillOnce(roomID, limit, finish) })
}

// backfillOnce is one backfill of a room (backfill runs at most one per
// room at a time).
func (fr *fedRooms) backfillOnce(roomID string, limit int, done func(added bool)) {
	f := fr.n.Federation()
	rm, err := fr.rs.room(roomID)
	if f == nil || err != nil {
		done(false)
		return
	}
	from, err := fr.backfillFrom(roomID)
	if err != nil || len(from) == 0 {
		done(false)
		return
	}
	servers := slices.DeleteFunc(roomServers(rm.state), func(s string) bool { return s == fr.n.ServerName() })
	// The creator's server first: it most likely holds the whole history.
	if c := rm.state[auth.StateKey{Type: auth.TypeCreate}]; c != nil {
		if i := slices.Index(servers, serverOf(c.Sender())); i > 0 {
			creator := servers[i]
			servers = append([]string{creator}, slices.Delete(servers, i, i+1)...)
		}
	}
	if len(servers) > backfillServers {
		servers = servers[:backfillServers]
	}
	if len(servers) == 0 {
		done(false)
		return
	}
	limit = min(max(limit, backfillBatch), backfillMax)
	q := url.Values{"limit": {strconv.Itoa(limit)}, "v": from}
	uri := "/_matrix/federation/v1/backfill/" + url.PathEscape(roomID) + "?" + q.Encode()
	// A server serves events redacted (their content hash no longer
	// matches) when, by its view of the room, our server may not see them
	// (history visibility), e.g. while it has not yet seen our join. Such
	// a batch is kept only as a last resort: another server may serve the
	// events whole.
	var fallbackServer string
	var fallback []json.RawMessage
	var try func(i int)
	try = func(i int) {
		if i >= len(servers) {
			if fallback != nil {
				raws := fallback
				fallback = nil
				fr.storeBackfill(fallbackServer, rm.version, roomID, from, raws, done)
				return
			}
			done(false)
			return
		}
		var resp struct {
			PDUs []json.RawMessage `json:"pdus"`
		}
		fr.doJSON(servers[i], OutboundRequest{Method: "GET", URI: uri}, &resp, func(err error) {
			if err != nil {
				fr.n.log.Info("backfill failed", "room", roomID, "server", servers[i], "err", err)
				try(i + 1)
				return
			}
			if len(resp.PDUs) > limit {
				resp.PDUs = resp.PDUs[:limit]
			}
			if i+1 < len(servers) && servedRedacted(resp.PDUs) {
				fr.n.log.Info("backfill served redacted events; trying another server", "room", roomID, "server", servers[i])
				if fallback == nil {
					fallbackServer, fallback = servers[i], resp.PDUs
				}
				try(i + 1)
				return
			}
			fr.storeBackfill(servers[i], rm.version, roomID, from, resp.PDUs, func(added bool) {
				if !added {
					fr.n.log.Info("backfill added nothing", "room", roomID, "server", servers[i], "pdus", len(resp.PDUs))
					try(i + 1)
					return
				}
				done(true)
			})
		})
	}
	try(0)
}

// servedRedacted reports whether any of the PDUs fails its content hash
// check (as events served redacted do).
func servedRedacted(raws []json.RawMessage) bool {
	for _, raw := range raws {
		if err := event.CheckContentHash(raw); errors.Is(err, event.ErrContentHash) {
			return true
		}
	}
	return false
}

// storeBackfill checks backfilled events and adds those that pass to the
// timeline, newest first, each below the previous. Only events reached
// from the requested ones (from) through prev_events within the batch
// are taken: history is what lies below them, and a server must not slip
// other events (newer ones, or its own hanging off old events) into it.
func (fr *fedRooms) storeBackfill(origin string, v *event.RoomVersion, roomID string, from []string, raws []json.RawMessage, done func(bool)) {
	byID := map[string]*event.Event{}
	for _, raw := range raws {
		ev, err := event.Parse(raw, v)
		if err != nil || ev.RoomID() != roomID || byID[ev.ID()] != nil || fr.isRejected(ev.ID()) {
			continue
		}
		byID[ev.ID()] = ev
	}
	var evs []*event.Event
	frontier, reached := slices.Clone(from), map[string]bool{}
	for len(frontier) > 0 {
		id := frontier[len(frontier)-1]
		frontier = frontier[:len(frontier)-1]
		ev := byID[id]
		if ev == nil || reached[id] {
			continue
		}
		reached[id] = true
		frontier = append(frontier, ev.PrevEvents()...)
		if row, err := fr.rs.st.Event(id); err == nil && !(row.Outlier && row.StateBefore < 0) {
			continue // already in the timeline (or soft-failed)
		}
		evs = append(evs, ev)
	}
	if n := len(byID) - len(reached); n > 0 {
		fr.n.log.Info("backfill: events not below the requested ones left out", "room", roomID, "server", origin, "count", n)
	}
	if len(evs) == 0 {
		done(false)
		return
	}
	fr.verifyEvents(v, evs, func(checked []*event.Event, errs map[string]error) {
		for _, ev := range evs {
			if e := errs[ev.ID()]; e != nil {
				fr.reject(ev, origin, e)
			}
		}
		// Step 4, auth events first (they are usually older and in the
		// batch).
		ordered := authOrder(checked)
		var ok []*event.Event
		var step func(i int)
		step = func(i int) {
			if i >= len(ordered) {
				fr.checkHistory(origin, roomID, ok, func(hist []*histEvent, err error) {
					if err != nil {
						fr.n.log.Info("backfill: state before history unknown", "room", roomID, "server", origin, "err", err)
						done(false)
						return
					}
					if err := fr.addHistory(roomID, hist); err != nil {
						fr.n.log.Error("backfill", "room", roomID, "err", err)
						done(false)
						return
					}
					done(len(hist) > 0)
				})
				return
			}
			ev := ordered[i]
			fr.ensureAuthEvents(origin, ev, func(err error) {
				if err == nil {
					err = fr.checkAgainstAuthEvents(ev)
				}
				if err != nil {
					fr.reject(ev, origin, err)
				} else {
					// Stored as an outlier now, so later events of the
					// batch find it as an auth event.
					if known, _ := fr.known(ev.ID()); !known {
						if err := fr.storeOutlier(ev, nil); err != nil {
							fr.n.log.Error("backfill", "event", ev.ID(), "err", err)
						}
					}
					ok = append(ok, ev)
				}
				step(i + 1)
			})
		}
		step(0)
	})
}

// histEvent is a backfilled event that passed step 5, with the state
// before and after it.
type histEvent struct {
	ev            *event.Event
	before, after store.StateMap
	// The state before it is that of a stored state group (ID > 0), or
	// the state after an earlier event of the batch (""), when the same.
	beforeGroup store.StateGroup
	beforeEvent string
}

// checkHistory is step 5 for backfilled events (checked by steps 1–4 and
// stored as outliers): oldest first, each is checked against the state
// before it, computed from the states after its prev events, or asked of
// origin when one of them is unknown. Events that fail are recorded as
// rejected; hist lists those that pass, oldest first. err reports a state
// that could not be learned (nothing is rejected for that).
func (fr *fedRooms) checkHistory(origin, roomID string, evs []*event.Event, done func(hist []*histEvent, err error)) {
	ordered := prevOrder(evs)
	byID := map[string]*histEvent{}
	var hist []*histEvent
	// check runs the auth rules against h.before and records the outcome.
	check := func(h *histEvent) error {
		rm, err := fr.rs.room(roomID)
		if err != nil {
			return err
		}
		if err := fr.checkAgainstState(rm, h.ev, h.before); err != nil {
			if errors.Is(err, errRejected) {
				fr.reject(h.ev, origin, err)
				return nil
			}
			return err
		}
		h.after = h.before
		if sk, ok := h.ev.StateKey(); ok {
			h.after = maps.Clone(h.before)
			h.after[store.StateKey{Type: h.ev.Type(), StateKey: sk}] = h.ev.ID()
		}
		byID[h.ev.ID()] = h
		hist = append(hist, h)
		return nil
	}
	var step func(i int)
	step = func(i int) {
		for ; i < len(ordered); i++ {
			h := &histEvent{ev: ordered[i]}
			var sets []store.StateMap
			missing := false
			for _, p := range h.ev.PrevEvents() {
				if prev := byID[p]; prev != nil {
					sets = append(sets, prev.after)
					h.beforeEvent = p
					continue
				}
				if fr.isRejected(p) {
					continue
				}
				st, g, ok, err := fr.stateAfterGroup(p)
				if err != nil {
					done(nil, err)
					return
				}
				if !ok {
					missing = true
					break
				}
				sets = append(sets, st)
				h.beforeGroup = g
			}
			if missing {
				h.beforeEvent, h.beforeGroup = "", store.StateGroup{}
				fr.fetchStateAt(origin, h.ev, func(st store.StateMap, err error) {
					if err == nil {
						h.before = st
						err = check(h)
					}
					if err != nil {
						done(nil, err)
						return
					}
					step(i + 1)
				})
				return
			}
			if len(sets) != 1 {
				h.beforeEvent, h.beforeGroup = "", store.StateGroup{}
			} else if byID[h.beforeEvent] == nil {
				h.beforeEvent = ""
			}
			before, err := fr.resolve(h.ev.Version(), sets)
			if err == nil {
				h.before = before
				err = check(h)
			}
			if err != nil {
				done(nil, err)
				return
			}
		}
		done(hist, nil)
	}
	step(0)
}

// addHistory stores the state groups of checked history (oldest first)
// and moves its events from the outliers into the timeline below
// everything, newest first.
func (fr *fedRooms) addHistory(roomID string, hist []*histEvent) error {
	if len(hist) == 0 {
		return nil
	}
	byPos := slices.Clone(hist)
	sort.SliceStable(byPos, func(i, j int) bool {
		a, b := byPos[i].ev, byPos[j].ev
		if a.Depth() != b.Depth() {
			return a.Depth() > b.Depth()
		}
		return a.OriginServerTS() > b.OriginServerTS()
	})
	return fr.rs.st.RoomTx(func(t *store.RoomTx) error {
		type groups struct{ before, after store.StateGroup }
		stored := make(map[string]groups, len(hist))
		for _, h := range hist {
			var g groups
			var err error
			switch {
			case h.beforeEvent != "":
				g.before = stored[h.beforeEvent].after
			case h.beforeGroup.ID > 0:
				g.before = h.beforeGroup
			case len(h.before) > 0:
				if g.before, err = t.InsertStateGroup(roomID, store.StateGroup{}, nil, h.before); err != nil {
					return err
				}
			}
			g.after = g.before
			if _, ok := h.ev.StateKey(); ok {
				if g.after, err = t.InsertStateGroup(roomID, g.before, h.before, h.after); err != nil {
					return err
				}
			}
			stored[h.ev.ID()] = g
		}
		for _, h := range byPos {
			fr.negPos--
			g := stored[h.ev.ID()]
			if err := t.PromoteOutlier(h.ev.ID(), fr.negPos, g.before.ID, g.after.ID); err != nil {
				return err
			}
		}
		return nil
	})
}
