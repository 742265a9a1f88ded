package homeserver

// Backfill: when a user pages back (/messages, dir=b) past the oldest
// event this server has of a room it joined late, the node asks a server
// in the room for older events (GET /_matrix/federation/v1/backfill with
// the oldest event's prev_events) and adds them to the timeline below
// everything it had, with negative stream positions, older further down.
// Spec: server-server-api "Backfilling and retrieving missing events".
//
// Backfilled events pass the checks of steps 1–4 (format, signatures,
// content hash, auth against their auth events).
// NOTSPEC: the state before a backfilled event is not fetched, so it is not
// checked against it (step 5) and its state is recorded as unknown; the
// room's current state is not changed by history.

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"sort"
	"strconv"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// backfillBatch is how many events one backfill asks for, at least.
const backfillBatch = 50

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

// backfill fetches up to limit older events of a room from a server in it
// and adds them to the timeline. done reports whether any was added.
func (fr *fedRooms) backfill(roomID string, limit int, done func(added bool)) {
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
	if len(servers) == 0 {
		done(false)
		return
	}
	q := url.Values{"limit": {strconv.Itoa(max(limit, backfillBatch))}, "v": from}
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
				fr.storeBackfill(fallbackServer, rm.version, roomID, fallback, done)
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
			if i+1 < len(servers) && servedRedacted(resp.PDUs) {
				fr.n.log.Info("backfill served redacted events; trying another server", "room", roomID, "server", servers[i])
				if fallback == nil {
					fallbackServer, fallback = servers[i], resp.PDUs
				}
				try(i + 1)
				return
			}
			fr.storeBackfill(servers[i], rm.version, roomID, resp.PDUs, done)
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
// timeline, newest first, each below the previous.
func (fr *fedRooms) storeBackfill(origin string, v *event.RoomVersion, roomID string, raws []json.RawMessage, done func(bool)) {
	var evs []*event.Event
	seen := map[string]bool{}
	for _, raw := range raws {
		ev, err := event.Parse(raw, v)
		if err != nil || ev.RoomID() != roomID || seen[ev.ID()] || fr.isRejected(ev.ID()) {
			continue
		}
		seen[ev.ID()] = true
		if row, err := fr.rs.st.Event(ev.ID()); err == nil && !(row.Outlier && row.StateBefore < 0) {
			continue // already in the timeline (or soft-failed)
		}
		evs = append(evs, ev)
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
		// Auth events first (they are usually older and in the batch).
		ordered := authOrder(checked)
		var ok []*event.Event
		var step func(i int)
		step = func(i int) {
			if i >= len(ordered) {
				done(fr.addHistory(ok) == nil && len(ok) > 0)
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

// addHistory moves checked events (stored as outliers) into the timeline
// below everything, newest first.
func (fr *fedRooms) addHistory(evs []*event.Event) error {
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].Depth() != evs[j].Depth() {
			return evs[i].Depth() > evs[j].Depth()
		}
		return evs[i].OriginServerTS() > evs[j].OriginServerTS()
	})
	return fr.rs.st.RoomTx(func(t *store.RoomTx) error {
		for _, ev := range evs {
			fr.negPos--
			if err := t.PromoteOutlier(ev.ID(), fr.negPos); err != nil {
				return err
			}
		}
		return nil
	})
}
