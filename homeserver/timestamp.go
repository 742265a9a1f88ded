package homeserver

// Jump to date: the event closest to a time.
//
//	GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event?ts=T&dir=f|b
//	GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=T&dir=f|b
//	  → {"event_id", "origin_server_ts"}; 404 M_NOT_FOUND when there is none
//
// Spec: client-server-api "Room participation" (GET timestamp_to_event),
// server-server-api "Retrieving events" (GET timestamp_to_event). The
// closest event is, forward, the timeline event with the smallest
// origin_server_ts ≥ T, backward the one with the largest ≤ T (ties: the
// earlier event in stream order forward, the later one backward), among
// those the asker may see by history visibility (visibility.go): a user
// for the client API, the asking server for federation, so a server never
// learns the ID of an event it may not see.
//
// The client API asks other servers in the room (the federation
// endpoint, the creator's server first, at most tsServers of them, the
// first that answers) when the local answer is at the edge of what this
// server holds: there is none and, backward, the room's history here is
// incomplete (its oldest timeline event is not the create event), or
// forward it may just not have arrived yet; or the local event borders a
// gap (forward: one of its prev_events is not in the timeline; backward:
// the next timeline event's are not). An answer closer than the local one
// (by the origin_server_ts of the event itself, fetched with GET
// /event/{eventId} and checked) is used once the event is in the timeline
// here: an event older than the room's history here is backfilled
// (fedroom_backfill.go) until it is, at most tsBackfillRounds batches.
// NOTSPEC: an event in a gap in the middle of the timeline, or newer than
// everything here, cannot be placed in the timeline (stream positions are
// fixed): the local answer is used then (the remote event arrives by the
// ordinary paths later).

import (
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"slices"
	"strconv"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

const (
	// tsServers is how many other servers one lookup asks at most.
	tsServers = 3
	// tsBackfillRounds bounds the backfill batches (of backfillMax
	// events) run to bring a remote answer into the timeline.
	tsBackfillRounds = 5
	// tsScanMax bounds the events one lookup reads past those the asker
	// may not see. NOTSPEC: beyond it the lookup answers with what it
	// found (nothing), so a viewer who may see little of a large room
	// cannot make the node read all of it.
	tsScanMax = 5000
	tsBatch   = 100
)

func (rs *roomsModule) timestampRoutes() []Route {
	return []Route{
		{Method: "GET", Pattern: "/_matrix/client/v1/rooms/{roomId}/timestamp_to_event", Auth: AuthUser, Handle: rs.handleTimestampToEvent},
		{Method: "GET", Pattern: "/_matrix/federation/v1/timestamp_to_event/{roomId}", Auth: AuthFederation, Handle: rs.handleFedTimestampToEvent},
	}
}

// tsQuery reads ts and dir.
func tsQuery(c *Call) (ts int64, forward bool, err error) {
	s := c.Req.Query.Get("ts")
	if s == "" {
		return 0, false, Errorf(400, ErrCodeMissingParam, "ts is required")
	}
	if ts, err = strconv.ParseInt(s, 10, 64); err != nil {
		return 0, false, Errorf(400, ErrCodeInvalidParam, "ts must be an integer")
	}
	switch c.Req.Query.Get("dir") {
	case "f":
		return ts, true, nil
	case "b":
		return ts, false, nil
	case "":
		return 0, false, Errorf(400, ErrCodeMissingParam, "dir is required")
	}
	return 0, false, Errorf(400, ErrCodeInvalidParam, "dir must be f or b")
}

// closestEvent is the timeline event closest to ts in the direction that
// v may see; ok is false when there is none.
func (rs *roomsModule) closestEvent(v *viewer, ts int64, forward bool) (row store.EventRow, ok bool, err error) {
	after := int64(math.MinInt64)
	if !forward {
		after = math.MaxInt64
	}
	at := ts
	for read := 0; read < tsScanMax; {
		rows, err := rs.st.RoomEventsByTS(v.rm.id, at, after, forward, tsBatch)
		if err != nil {
			return store.EventRow{}, false, err
		}
		for _, r := range rows {
			ok, err := v.allows(r)
			if err != nil || ok {
				return r, ok, err
			}
		}
		if len(rows) < tsBatch {
			break
		}
		read += len(rows)
		last := rows[len(rows)-1]
		at, after = last.OriginServerTS, last.Pos
	}
	return store.EventRow{}, false, nil
}

// tsAnswer is the answer of both endpoints.
func tsAnswer(r store.EventRow) map[string]any {
	return map[string]any{"event_id": r.EventID, "origin_server_ts": r.OriginServerTS}
}

func tsNotFound(ts int64, forward bool) error {
	dir := "backward"
	if forward {
		dir = "forward"
	}
	return Errorf(404, ErrCodeNotFound, "no event from %d in the %s direction", ts, dir)
}

// handleFedTimestampToEvent serves the federation endpoint: the closest
// event the origin may see (servers that may not read the room at all get
// 403, as for /event).
func (rs *roomsModule) handleFedTimestampToEvent(c *Call) {
	ts, forward, err := tsQuery(c)
	if err != nil {
		c.Fail(err)
		return
	}
	fr := fedRoomsOf(rs.n)
	if fr == nil {
		c.Fail(errRoomNotFound(c.Req.Vars["roomId"]))
		return
	}
	rm, err := fr.readableRoom(c, c.Req.Vars["roomId"])
	if err != nil {
		c.Fail(err)
		return
	}
	row, ok, err := rs.closestEvent(rs.serverViewer(rm, c.Origin), ts, forward)
	if err != nil {
		c.Fail(err)
		return
	}
	if !ok {
		c.Fail(tsNotFound(ts, forward))
		return
	}
	c.Reply(200, tsAnswer(row))
}

func (rs *roomsModule) handleTimestampToEvent(c *Call) {
	roomID := c.Req.Vars["roomId"]
	ts, forward, err := tsQuery(c)
	if err != nil {
		c.Fail(err)
		return
	}
	v, err := rs.userViewer(roomID, c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	local, found, err := rs.closestEvent(v, ts, forward)
	if err != nil {
		c.Fail(err)
		return
	}
	answer := func(r store.EventRow, ok bool) {
		if !ok {
			c.Fail(tsNotFound(ts, forward))
			return
		}
		c.Reply(200, tsAnswer(r))
	}
	fr := fedRoomsOf(rs.n)
	if fr == nil {
		answer(local, found)
		return
	}
	edge, err := fr.tsAtEdge(v.rm, local, found, forward)
	if err != nil {
		c.Fail(err)
		return
	}
	if !edge {
		answer(local, found)
		return
	}
	fr.remoteClosest(v.rm, c.UserID, ts, forward, local, found, answer)
}

// inTimeline reports whether an event is stored in the timeline (not an
// outlier with unknown state), as backfillFrom counts it.
func (fr *fedRooms) inTimeline(eventID string) (bool, error) {
	row, err := fr.rs.st.Event(eventID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !(row.Outlier && row.StateBefore < 0), nil
}

// gapBefore reports whether one of the event's prev_events is missing
// from the timeline.
func (fr *fedRooms) gapBefore(r store.EventRow) (bool, error) {
	for _, p := range prevOf(r) {
		ok, err := fr.inTimeline(p)
		if err != nil || !ok {
			return err == nil, err
		}
	}
	return false, nil
}

// tsAtEdge decides whether a local answer (found or not) may have a
// closer event on other servers (see the file comment).
func (fr *fedRooms) tsAtEdge(rm *roomCache, local store.EventRow, found, forward bool) (bool, error) {
	switch {
	case !found && forward:
		return true, nil
	case !found:
		from, err := fr.backfillFrom(rm.id)
		return len(from) > 0, err
	case forward:
		if local.Type == auth.TypeCreate {
			return false, nil
		}
		return fr.gapBefore(local)
	}
	next, err := fr.rs.st.RoomEventsRange(rm.id, local.Pos, math.MaxInt64, true, 1)
	if err != nil || len(next) == 0 {
		return false, err
	}
	return fr.gapBefore(next[0])
}

// tsServersOf lists the other servers of a room to ask, the creator's
// first (it most likely holds the whole history).
func (fr *fedRooms) tsServersOf(rm *roomCache) []string {
	servers := slices.DeleteFunc(roomServers(rm.state), func(s string) bool { return s == fr.n.ServerName() })
	if c := rm.state[auth.StateKey{Type: auth.TypeCreate}]; c != nil {
		if i := slices.Index(servers, serverOf(c.Sender())); i > 0 {
			first := servers[i]
			servers = append([]string{first}, slices.Delete(servers, i, i+1)...)
		}
	}
	if len(servers) > tsServers {
		servers = servers[:tsServers]
	}
	return servers
}

// closer reports whether an event at t is closer to ts in the direction
// than the local answer (or there is none).
func closer(t, ts int64, forward bool, local store.EventRow, found bool) bool {
	if forward {
		return t >= ts && (!found || t < local.OriginServerTS)
	}
	return t <= ts && (!found || t > local.OriginServerTS)
}

// remoteClosest asks the room's other servers for the closest event and
// calls done with it when it is closer than local and userID may see it
// here, else with local.
func (fr *fedRooms) remoteClosest(rm *roomCache, userID string, ts int64, forward bool, local store.EventRow, found bool, done func(store.EventRow, bool)) {
	servers := fr.tsServersOf(rm)
	dir := "b"
	if forward {
		dir = "f"
	}
	uri := "/_matrix/federation/v1/timestamp_to_event/" + url.PathEscape(rm.id) + "?" +
		url.Values{"ts": {strconv.FormatInt(ts, 10)}, "dir": {dir}}.Encode()
	var try func(i int)
	try = func(i int) {
		if i >= len(servers) {
			done(local, found)
			return
		}
		var resp struct {
			EventID        string `json:"event_id"`
			OriginServerTS int64  `json:"origin_server_ts"`
		}
		fr.doJSON(servers[i], OutboundRequest{Method: "GET", URI: uri}, &resp, func(err error) {
			if err != nil {
				fr.n.log.Info("timestamp_to_event failed", "room", rm.id, "server", servers[i], "err", err)
				try(i + 1)
				return
			}
			if resp.EventID == "" || !closer(resp.OriginServerTS, ts, forward, local, found) {
				done(local, found)
				return
			}
			fr.bringIntoTimeline(rm, servers[i], resp.EventID, func(row store.EventRow, ok bool) {
				if ok && closer(row.OriginServerTS, ts, forward, local, found) {
					if v, err := fr.rs.userViewer(rm.id, userID); err == nil {
						if vis, err := v.allows(row); err == nil && vis {
							done(row, true)
							return
						}
					}
				}
				done(local, found)
			})
		})
	}
	try(0)
}

// bringIntoTimeline makes a remote event of the room available in the
// timeline here: known already, or fetched from server (GET /event) and,
// when older than the room's history here, backfilled down to.
func (fr *fedRooms) bringIntoTimeline(rm *roomCache, server, eventID string, done func(store.EventRow, bool)) {
	have := func() (store.EventRow, bool) {
		row, err := fr.rs.st.Event(eventID)
		if err != nil || row.RoomID != rm.id || row.Outlier {
			return store.EventRow{}, false
		}
		return row, true
	}
	if row, ok := have(); ok {
		done(row, true)
		return
	}
	var resp struct {
		PDUs []json.RawMessage `json:"pdus"`
	}
	fr.doJSON(server, OutboundRequest{Method: "GET", URI: "/_matrix/federation/v1/event/" + url.PathEscape(eventID)}, &resp, func(err error) {
		if err != nil || len(resp.PDUs) != 1 {
			fr.n.log.Info("timestamp_to_event: cannot fetch event", "event", eventID, "server", server, "err", err)
			done(store.EventRow{}, false)
			return
		}
		ev, err := event.Parse(resp.PDUs[0], rm.version)
		if err != nil || ev.ID() != eventID || ev.RoomID() != rm.id {
			done(store.EventRow{}, false)
			return
		}
		fr.verifyEvents(rm.version, []*event.Event{ev}, func(checked []*event.Event, _ map[string]error) {
			if len(checked) != 1 {
				done(store.EventRow{}, false)
				return
			}
			oldest, err := fr.rs.st.OldestRoomEvent(rm.id)
			if err != nil || ev.Depth() >= oldest.Depth {
				// In a gap or newer than everything here (see the file
				// comment).
				done(store.EventRow{}, false)
				return
			}
			var round func(n int)
			round = func(n int) {
				if row, ok := have(); ok {
					done(row, true)
					return
				}
				if n == tsBackfillRounds {
					done(store.EventRow{}, false)
					return
				}
				fr.backfill(rm.id, backfillMax, func(added bool) {
					if !added {
						done(have())
						return
					}
					round(n + 1)
				})
			}
			round(0)
		})
	})
}
