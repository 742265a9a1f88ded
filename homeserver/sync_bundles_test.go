package homeserver

import (
	"encoding/json"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// An incremental /sync timeline without a gap carries no bundled
// aggregations; a limited one and an initial sync do. The test measures
// the bytes the bundles would have added to the incremental timeline.
func TestSyncBundlesOnlyOnLimitedTimelines(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	_, bt, bdev := tn.register("bob", "pw-bob-123")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	since := decodeSync(t, tn.do("GET", cs+"/sync", bt, nil)).NextBatch

	tn.send(at, roomID, "hello", "hello")
	root := tn.send(at, roomID, "root", "what shall we name the rover?")
	for i, tok := range []string{bt, at, bt} {
		tn.clock.Advance(time.Second)
		tn.sendEv(tok, roomID, "m.room.message", relContent("idea "+string(rune('a'+i)), "m.thread", root))
	}
	tn.sendEv(at, roomID, "m.room.message", map[string]any{"body": "* rover?", "m.new_content": map[string]any{"body": "rover?"},
		"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": root}})

	rootOf := func(s syncBody) map[string]any {
		t.Helper()
		for _, ev := range s.Rooms.Join[roomID].Timeline.Events {
			if ev["event_id"] == root {
				return ev
			}
		}
		t.Fatalf("root not in the timeline")
		return nil
	}
	// Incremental, not limited: no bundles.
	inc := decodeSync(t, tn.do("GET", cs+"/sync?since="+url.QueryEscape(since), bt, nil))
	if inc.Rooms.Join[roomID].Timeline.Limited {
		t.Fatal("incremental timeline is limited")
	}
	if u, _ := rootOf(inc)["unsigned"].(map[string]any); u["m.relations"] != nil {
		t.Fatalf("incremental timeline carries bundles: %v", u)
	}
	// Incremental and limited (the first message left out): bundles.
	filter := url.QueryEscape(`{"room":{"timeline":{"limit":5}}}`)
	lim := decodeSync(t, tn.do("GET", cs+"/sync?filter="+filter+"&since="+url.QueryEscape(since), bt, nil))
	if !lim.Rooms.Join[roomID].Timeline.Limited || bundleOf(rootOf(lim), "m.thread") == nil || bundleOf(rootOf(lim), "m.replace") == nil {
		t.Fatalf("limited timeline without bundles: %v", rootOf(lim)["unsigned"])
	}
	// Initial sync: bundles.
	if bundleOf(rootOf(decodeSync(t, tn.do("GET", cs+"/sync", bt, nil))), "m.thread") == nil {
		t.Fatal("initial sync without bundles")
	}

	// The saving: the same timeline events formatted with their bundles.
	evs := inc.Rooms.Join[roomID].Timeline.Events
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev["event_id"].(string)
	}
	rs := roomsOf(tn.Node)
	rows, err := rs.st.Events(ids)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]store.EventRow{}
	for _, r := range rows {
		byID[r.EventID] = r
	}
	rows = rows[:0]
	for _, id := range ids {
		rows = append(rows, byID[id])
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Pos < rows[j].Pos })
	view := eventView{userID: "@bob:test.local", deviceID: bdev, now: tn.Now().UnixMilli()}
	measure := func(noBundles bool) int {
		v := view
		v.noBundles = noBundles
		out, err := rs.clientEvents(rows, v)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	sent, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	without, with := measure(true), measure(false)
	// The events as sent re-marshal from maps (sorted keys), so compare
	// sizes, not bytes.
	if len(sent) != without {
		t.Fatalf("timeline as sent is %d bytes, formatted without bundles %d", len(sent), without)
	}
	if with-without < 500 {
		t.Fatalf("bundles would add %d bytes (%d → %d), want the thread and edit summaries", with-without, without, with)
	}
	t.Logf("incremental timeline of %d events: %d bytes without bundles, %d with (%d saved)", len(evs), without, with, with-without)
}
