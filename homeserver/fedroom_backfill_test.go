package homeserver

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// watchRemote records a node's outbound requests and lets a test alter
// the answers.
type watchRemote struct {
	inner Remote
	uris  *[]string
	alter func(dest string, req OutboundRequest, resp *OutboundResponse)
}

func (w watchRemote) Do(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
	*w.uris = append(*w.uris, req.Method+" "+dest+req.URI)
	w.inner.Do(dest, req, func(resp OutboundResponse, err error) {
		if err == nil && w.alter != nil {
			w.alter(dest, req, &resp)
		}
		done(resp, err)
	})
}

// countURIs counts the recorded requests whose URI contains part.
func countURIs(uris []string, part string) int {
	n := 0
	for _, u := range uris {
		if strings.Contains(u, part) {
			n++
		}
	}
	return n
}

// pageBack reads a room's whole history through /messages in pages of
// limit events, as a client scrolling up does, and returns the message
// bodies oldest first.
func (fn *fedNet) pageBack(u fedUser, roomID string, limit int) []string {
	fn.t.Helper()
	var out []string
	from := ""
	for range 100 {
		path := roomPath(roomID, fmt.Sprintf("/messages?dir=b&limit=%d", limit))
		if from != "" {
			path += "&from=" + url.QueryEscape(from)
		}
		r := fn.call(u.tn, 200, "GET", path, u.token, nil)
		chunk, _ := r.Body["chunk"].([]any)
		for _, e := range chunk {
			ev, _ := e.(map[string]any)
			if ev["type"] != "m.room.message" {
				continue
			}
			c, _ := ev["content"].(map[string]any)
			s, _ := c["body"].(string)
			out = append(out, s)
		}
		end, _ := r.Body["end"].(string)
		if end == "" {
			slices.Reverse(out)
			return out
		}
		from = end
	}
	fn.t.Fatal("pagination never ended")
	return nil
}

// Deep history comes in several backfills; the events at the bottom of a
// batch, whose prev events are not known yet, are checked against the
// state the serving server reports before them, fetched by ID only when
// every state event is already known here.
func TestFedRoomBackfillDeepHistoryState(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	want := fn.chat(alice, bob, roomID, 70, 4)
	var uris []string
	c, _ := fn.nodeVia("c.test", t.TempDir(), 3, nil, func(r Remote) Remote { return watchRemote{inner: r, uris: &uris} })
	carol := fn.user(c, "carol")
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": carol.id})
	fn.call(c, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), carol.token, map[string]any{})
	uris = nil
	if got := fn.pageBack(carol, roomID, 20); !sameList(got, want) {
		t.Fatalf("carol sees %q, want %q", got, want)
	}
	if n := countURIs(uris, "/backfill/"); n < 2 {
		t.Fatalf("%d backfill requests, want at least 2: %q", n, uris)
	}
	if countURIs(uris, "/state_ids/") == 0 || countURIs(uris, "/v1/state/") != 0 {
		t.Fatalf("want the state under the batch by ID only: %q", uris)
	}
	// Every event of the timeline has its state recorded, so c.test can
	// serve the state at any point of history.
	rows, err := c.store.RoomEventsRange(roomID, -1<<62, 1<<62, true, 0)
	if err != nil || len(rows) < len(want) {
		t.Fatalf("%d timeline rows, %v", len(rows), err)
	}
	for _, r := range rows {
		if r.StateBefore < 0 || r.StateAfter < 0 {
			t.Fatalf("timeline event %s (%s) has no state: %+v", r.EventID, r.Type, r)
		}
	}
	old := rows[len(rows)/4].EventID
	r, _ := fn.signedAsync(c, alice.tn, "GET", "/_matrix/federation/v1/state_ids/"+url.PathEscape(roomID)+"?event_id="+url.QueryEscape(old), nil)
	fn.run()
	if r.Status != 200 || !strings.Contains(string(r.Raw), "pdu_ids") {
		t.Fatalf("state_ids at backfilled %s: %d %s", old, r.Status, r.Raw)
	}
	// Paging again adds nothing twice.
	if got := fn.pageBack(carol, roomID, 25); !sameList(got, want) {
		t.Fatalf("second read: %q", got)
	}
}

// A backfilled event that its own auth events allow but the state before
// it does not (a message from a user banned just before it, citing their
// old join) is rejected, and the rest of the history is kept; events that
// no requested event leads to are left out.
func TestFedRoomBackfillChecksStateBefore(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	a, b := alice.tn, bob.tn
	fn.say(alice, roomID, "before")
	pre, _ := roomsOf(a.Node).room(roomID)
	preState := maps.Clone(pre.state)
	fn.call(a, 200, "POST", roomPath(roomID, "/ban"), alice.token, map[string]string{"user_id": bob.id, "reason": "spam"})
	rm, _ := roomsOf(a.Node).room(roomID)
	banID, banDepth := rm.extremities[0], rm.depth
	fn.say(alice, roomID, "after")
	ghost := forge(t, signerOf(b), rm, bob.id, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "ghost"},
		[]string{banID}, preState, banDepth+1)
	// A valid event of a.test's that no requested event leads to: a
	// server must not slip it into history.
	stray := forge(t, signerOf(a), rm, alice.id, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "stray"},
		[]string{banID}, rm.state, banDepth+1)

	var uris []string
	inject := func(dest string, req OutboundRequest, resp *OutboundResponse) {
		if !strings.Contains(req.URI, "/backfill/") {
			return
		}
		var body map[string]json.RawMessage
		var pdus []json.RawMessage
		if json.Unmarshal(resp.Body, &body) != nil || json.Unmarshal(body["pdus"], &pdus) != nil {
			t.Errorf("backfill answer: %s", resp.Body)
			return
		}
		body["pdus"], _ = json.Marshal(append(pdus, ghost.JSON(), stray.JSON()))
		resp.Body, _ = json.Marshal(body)
	}
	c, _ := fn.nodeVia("c.test", t.TempDir(), 3, nil, func(r Remote) Remote { return watchRemote{inner: r, uris: &uris, alter: inject} })
	carol := fn.user(c, "carol")
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": carol.id})
	fn.call(c, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), carol.token, map[string]any{})
	if got := fn.bodies(carol, roomID); !sameList(got, []string{"before", "after"}) {
		t.Fatalf("carol sees %q", got)
	}
	if countURIs(uris, "/backfill/") == 0 {
		t.Fatal("c.test did not backfill")
	}
	for _, ev := range []*event.Event{ghost, stray} {
		if _, err := c.store.Event(ev.ID()); err == nil {
			t.Fatalf("%s, below no requested event, was stored", ev.Content())
		}
	}
	// Were a server to link the ghost into what c.test asks for (here:
	// asked for directly), step 5 rejects it.
	added := true
	fedRoomsOf(c.Node).storeBackfill("a.test", rm.version, roomID, []string{ghost.ID()}, []json.RawMessage{ghost.JSON()},
		func(a bool) { added = a })
	fn.run()
	if added {
		t.Fatal("the ghost was added")
	}
	if reason := rejectedReason(c, ghost.ID()); !strings.Contains(reason, "state before") {
		t.Fatalf("ghost rejection %q, want one against the state before it", reason)
	}
	if row, err := c.store.Event(ghost.ID()); err == nil && !row.Outlier {
		t.Fatalf("ghost is in the timeline: %+v", row)
	}
	// The same event is allowed by its auth events alone: only step 5
	// catches it.
	if err := fedRoomsOf(c.Node).checkAgainstAuthEvents(ghost); err != nil {
		t.Fatalf("ghost fails its auth events (the test must reach step 5): %v", err)
	}
}
